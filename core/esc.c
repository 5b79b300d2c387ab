/* esc.c - escaping for log fields (see esc.h). */
#include "esc.h"

static const char hexu[] = "0123456789ABCDEF";
static const char hexl[] = "0123456789abcdef";

/* Bytes the escaped form of ch takes. */
static inline size_t esc_len(unsigned char ch, enum esc_style st)
{
    if (ch == '\\' || (ch == '"' && st != ESC_LOG))
        return st == ESC_JSON ? 2 : 4;
    if (ch < 0x20 || ch >= 0x7f)
        return st == ESC_JSON ? 6 : 4;
    return 1;
}

/* The length of the marker "...[+n]". */
static size_t mark_len(size_t n)
{
    size_t d = 1;

    while (n >= 10) {
        n /= 10;
        d++;
    }
    return 6 + d;
}

static inline size_t esc_one(char *o, unsigned char ch, enum esc_style st)
{
    size_t k = esc_len(ch, st);

    if (k == 1) {
        o[0] = (char)ch;
    } else if (st != ESC_JSON) {
        o[0] = '\\';
        o[1] = 'x';
        o[2] = hexu[ch >> 4];
        o[3] = hexu[ch & 15];
    } else if (k == 2) {
        o[0] = '\\';
        o[1] = (char)ch;
    } else {
        o[0] = '\\';
        o[1] = 'u';
        o[2] = '0';
        o[3] = '0';
        o[4] = hexl[ch >> 4];
        o[5] = hexl[ch & 15];
    }
    return k;
}

void esc_put(struct sbuf *s, const char *p, size_t n, enum esc_style st, size_t max)
{
    size_t need = 0, i;

    if (max == 0 || max > sb_room(s))
        max = sb_room(s);
    for (i = 0; i < n && need <= max; i++)
        need += esc_len((unsigned char)p[i], st);
    bool cut = need > max;
    /* a cut field keeps room for its marker, which is never longer than
     * the one for "nothing written" */
    size_t mark = mark_len(n), limit = max;
    if (cut && max < mark) {
        /* no room for any marker: as many dots of it as fit */
        sb_put(s, "...", max < 3 ? max : 3);
        return;
    }
    if (cut)
        limit = max - mark;
    char *o = s->p + s->len;
    size_t w = 0;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (w + esc_len(ch, st) > limit)
            break;
        w += esc_one(o + w, ch, st);
    }
    s->len += w;
    if (cut || i < n) {
        SB_LIT(s, "...[+");
        sb_u64(s, (uint64_t)(n - i));
        SB_LIT(s, "]");
    }
}
