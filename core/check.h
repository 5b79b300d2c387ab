/*
 * check.h - always-on invariant checks (HAProxy's BUG_ON, Varnish's
 * CHECK_OBJ): a broken invariant aborts at once with where and what, rather
 * than running on with memory that is not what the code thinks it is.
 *
 * CHECK_MAGIC(p, M): p is non-NULL and p->magic == M.  One load and one
 * compare on the success path; the report is out of line (cold).
 */
#ifndef SLUICE_CHECK_H
#define SLUICE_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noreturn, cold, noinline, unused))
static void sl_check_magic_fail(const char *file, int line, const char *what, const void *p,
                                uint32_t found, uint32_t want)
{
    fprintf(stderr, "%s:%d: BUG: %s (%p) has magic 0x%08x, expected 0x%08x\n", file, line, what,
            p, (unsigned)found, (unsigned)want);
    abort();
}

__attribute__((noreturn, cold, noinline, unused))
static void sl_bug(const char *file, int line, const char *cond)
{
    fprintf(stderr, "%s:%d: BUG: %s\n", file, line, cond);
    abort();
}

#define CHECK_MAGIC(p, m)                                                               \
    do {                                                                                \
        if (__builtin_expect((p) == NULL || (p)->magic != (m), 0))                     \
            sl_check_magic_fail(__FILE__, __LINE__, #p, (const void *)(p),             \
                                (p) ? (p)->magic : 0u, (m));                            \
    } while (0)

/* Always on, like CHECK_MAGIC: for invariants whose breach would corrupt. */
#define BUG_ON(cond)                                                                    \
    do {                                                                                \
        if (__builtin_expect(!!(cond), 0))                                              \
            sl_bug(__FILE__, __LINE__, #cond);                                          \
    } while (0)

#endif
