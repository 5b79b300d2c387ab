/* cfgerr.c - config errors and their JSON pointers (cfgerr.h). */
#include "cfgerr.h"
#include "arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void (*cfg_pace_hook)(void);

void cfg_errors_vadd(struct cfg_errors *errs, const char *path, const char *fmt, va_list ap)
{
    va_list ap2;
    char *msg;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    msg = xmalloc((size_t)n + 1);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);

    if (errs->n == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 8;
        errs->v = xrealloc(errs->v, cap * sizeof(*errs->v));
        errs->cap = cap;
    }
    errs->v[errs->n].path = xstrdup(path ? path : "");
    errs->v[errs->n].message = msg;
    errs->n++;
}

void cfg_errors_add(struct cfg_errors *errs, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cfg_errors_vadd(errs, path, fmt, ap);
    va_end(ap);
}

void cfg_errors_truncate(struct cfg_errors *errs, size_t n)
{
    while (errs->n > n) {
        errs->n--;
        free(errs->v[errs->n].path);
        free(errs->v[errs->n].message);
    }
}

void cfg_errors_clear(struct cfg_errors *errs)
{
    cfg_errors_truncate(errs, 0);
    free(errs->v);
    errs->v = NULL;
    errs->n = errs->cap = 0;
}

static void jp_key(char *out, const char *base, const char *key)
{
    size_t n = strlen(base);

    if (n >= JP_MAX - 2)
        n = JP_MAX - 2;
    memmove(out, base, n);
    out[n++] = '/';
    for (; *key && n < JP_MAX - 3; key++) {
        if (*key == '~' || *key == '/') {
            out[n++] = '~';
            out[n++] = *key == '~' ? '0' : '1';
        } else {
            out[n++] = *key;
        }
    }
    out[n] = '\0';
}

static void jp_idx(char *out, const char *base, size_t i)
{
    char k[24];
    size_t n = sizeof(k) - 1;

    k[n] = '\0';       /* digits from the right: no printf per array element */
    do {
        k[--n] = (char)('0' + i % 10);
        i /= 10;
    } while (i && n > 0);
    jp_key(out, base, k + n);
}

void jp_render(char *out, const struct jp *p)
{
    if (p == NULL) {
        out[0] = '\0';
        return;
    }
    jp_render(out, p->up);
    if (p->key)
        jp_key(out, out, p->key);
    else
        jp_idx(out, out, p->idx);
}

void cfg_errp(struct cfg_ctx *cx, const struct jp *path, const char *fmt, ...)
{
    char p[JP_MAX];
    va_list ap;

    jp_render(p, path);
    va_start(ap, fmt);
    cfg_errors_vadd(cx->errs, p, fmt, ap);
    va_end(ap);
}

void cfg_unsupported(struct cfg_ctx *cx, const struct jp *path)
{
    char p[JP_MAX];

    jp_render(p, path);
    cfg_errors_add(cx->errs, p, "not supported yet: %s", p);
}
