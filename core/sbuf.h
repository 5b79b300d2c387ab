/*
 * sbuf.h - a bounded appender over caller memory.
 *
 * Every helper of the tree that builds bytes into a fixed buffer (request
 * and response heads, log lines, JSON bodies) goes through this: an append
 * that does not fit sets `overflow` and writes nothing, so a caller checks
 * once at the end and never sends or logs half a field.  Header-only; it
 * allocates nothing.
 */
#ifndef SLUICE_CORE_SBUF_H
#define SLUICE_CORE_SBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct sbuf {
    char *p;
    size_t len, cap;
    bool overflow;          /* an append did not fit; nothing of it was written */
};

static inline struct sbuf sb_init(char *p, size_t cap)
{
    struct sbuf s = { p, 0, cap, false };
    return s;
}

static inline size_t sb_room(const struct sbuf *s)
{
    return s->cap - s->len;
}

static inline void sb_put(struct sbuf *s, const char *d, size_t n)
{
    if (n > s->cap - s->len) {
        s->overflow = true;
        return;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
}

#define SB_LIT(s, lit) sb_put((s), (lit), sizeof(lit) - 1)

static inline void sb_str(struct sbuf *s, const char *z)
{
    sb_put(s, z, strlen(z));
}

static inline void sb_fmt(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void sb_fmt(struct sbuf *s, const char *fmt, ...)
{
    va_list ap;
    size_t room = s->cap - s->len;

    va_start(ap, fmt);
    int n = vsnprintf(s->p + s->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        s->overflow = true;     /* vsnprintf may have written a prefix: not counted */
    else
        s->len += (size_t)n;
}

/* Decimal, without printf: it runs for every request. */
static inline void sb_u64(struct sbuf *s, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_put(s, tmp + i, sizeof(tmp) - i);
}

/* Lower-case hex without leading zeros ("0" for 0). */
static inline void sb_hex(struct sbuf *s, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = hex[v & 15];
        v >>= 4;
    } while (v);
    sb_put(s, tmp + i, sizeof(tmp) - i);
}

/* Exactly 16 lower-case hex digits. */
static inline void sb_hex64(struct sbuf *s, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];

    for (int i = 15; i >= 0; i--, v >>= 4)
        tmp[i] = hex[v & 15];
    sb_put(s, tmp, 16);
}

#endif
