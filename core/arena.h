/*
 * arena.h - (core) allocation that aborts on failure, and the arena a
 * parsed config lives in.
 *
 * Owns: struct cfg_mem, a chain of chunks freed all at once.  May call:
 * libc only.  A config parser out of memory has nothing sane to do, so
 * like h2o these abort instead of returning NULL.
 *
 * What a parsed config owns lives in one arena (gateway/config.c hangs it
 * off the config, and the section parsers of router/ and upstream/ fill
 * it): a 10,000-route config is some 60,000 strings and small arrays,
 * which cost a malloc each to build and a free each to release (on the
 * admin thread, next to a worker).  Nothing in an arena is freed or
 * reallocated on its own; a value dropped during parsing just stays until
 * the arena goes.
 */
#ifndef SLUICE_CORE_ARENA_H
#define SLUICE_CORE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

/* malloc and friends that abort with "sluice: out of memory"; a size of 0
 * is taken as 1, so the result is never NULL.  xstrdup(NULL) is NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);
char *xstrdup(const char *s);

/* Prints "sluice: out of memory" and aborts. */
void x_oom(void) __attribute__((noreturn));

struct cfg_mem;     /* a chunk of the arena; *head NULL is an empty arena */

/* n bytes aligned to align (a power of two), zeroed when zero. */
void *cm_alloc(struct cfg_mem **head, size_t n, size_t align, bool zero);
/* n zeroed elements of sz bytes (at least 1 byte), aborting on overflow. */
void *cm_calloc(struct cfg_mem **head, size_t n, size_t sz);
/* A copy of s[0..n) in the arena, or with malloc when head is NULL (for a
 * caller that frees it on its own, as cfg_addr_free does). */
char *cm_strndup(struct cfg_mem **head, const char *s, size_t n);
/* cm_strndup of a whole string; NULL gives NULL. */
char *cm_strdup(struct cfg_mem **head, const char *s);
/* Frees every chunk from c on; NULL is a no-op. */
void cm_free_all(struct cfg_mem *c);
/* fn(arg) when the arena is freed (cm_free_all), for what a parsed config
 * holds outside it (OpenSSL keys): the arena is the one thing a config's
 * owners free, however it is shared.  Several run in no set order. */
void cm_on_free(struct cfg_mem **head, void (*fn)(void *), void *arg);

#endif
