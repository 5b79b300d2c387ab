/*
 * cfgerr.h - (core) config errors and the JSON pointers that say where
 * they are (RFC 6901), for every module that parses a config section.
 *
 * Owns: struct cfg_errors (a growable list of path + message) and the
 * lazy JSON pointer (struct jp) a section parser walks with.  May call:
 * core/arena.  No cJSON here: the getters that read cJSON values are in
 * cfgparse.h, so headers that only name these types stay free of it.
 */
#ifndef SLUICE_CORE_CFGERR_H
#define SLUICE_CORE_CFGERR_H

#include <stdarg.h>
#include <stddef.h>

struct cfg_mem;

/* One validation problem. */
struct cfg_error {
    char *path;             /* JSON pointer, e.g. "/routes/2/match/path" ("" = document root) */
    char *message;
};

struct cfg_errors {
    struct cfg_error *v;
    size_t n, cap;
};

/* Append one error (path NULL = ""); the strings are copied.  Aborts on OOM. */
void cfg_errors_add(struct cfg_errors *errs, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cfg_errors_vadd(struct cfg_errors *errs, const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Free every entry and the array; errs is then empty and reusable.  A
 * zero-initialised struct cfg_errors needs no other setup. */
void cfg_errors_clear(struct cfg_errors *errs);
/* Drops the errors added since there were n. */
void cfg_errors_truncate(struct cfg_errors *errs, size_t n);

/* JSON pointers longer than this are cut short; only error text suffers. */
#define JP_MAX 512

/*
 * A JSON pointer being walked: a chain of nodes on the stack, one per
 * object key or array index, rendered by jp_render() only when an error is
 * reported (building the text for every member cost more than the checks).
 * NULL is the document root "".  Rendering goes from the root down, so a
 * path cut short at JP_MAX keeps its beginning.
 */
struct jp {
    const struct jp *up;
    const char *key;        /* NULL: an array index */
    size_t idx;
};

/* A child node as a compound literal: it lives until the end of the
 * enclosing block, so keep the pointer no longer than that. */
#define JP_K(parent, k) (&(const struct jp){ (parent), (k), 0 })
#define JP_I(parent, i) (&(const struct jp){ (parent), NULL, (i) })

/* The text of p into out (JP_MAX bytes): '~' -> "~0", '/' -> "~1". */
void jp_render(char *out, const struct jp *p);

/* What every section parser is handed: where its errors go and the arena
 * what it parses is allocated in. */
struct cfg_ctx {
    struct cfg_errors *errs;
    struct cfg_mem **mem;
};

/* An error at a lazy JSON pointer: the path is rendered only here. */
void cfg_errp(struct cfg_ctx *cx, const struct jp *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error "not supported yet: <path>" at path. */
void cfg_unsupported(struct cfg_ctx *cx, const struct jp *path);

/* Called every few routes while a config is parsed, so that a caller
 * building a config beside busy threads can give the core back now and
 * then (the proxy's reload.c yields there).  NULL: nothing.  Set before
 * any parse and not changed after. */
extern void (*cfg_pace_hook)(void);

/* Every 8th call of a loop (i its counter) the pace hook, if any. */
static inline void cfg_pace(size_t i)
{
    if ((i & 7) == 7 && cfg_pace_hook != NULL)
        cfg_pace_hook();
}

#endif
