/*
 * jsonmatch.c - (router) match.json_body: top-level string members of a
 * JSON request body, without building a tree and without allocating.
 *
 * The whole text is checked against RFC 8259 (a body that is not JSON
 * matches nothing, as the SPEC says), nesting is bounded, and names and
 * values are compared after their escapes are decoded, so "mod\u0065l"
 * is the member "model" here as it is for the backend's parser.  A member
 * name that appears twice makes the body match nothing: parsers disagree on
 * which one wins, and routing on one while the backend reads the other is
 * how a request reaches a model its route was not meant for.
 */
#include "router.h"

#include <string.h>

#define JM_MAX_DEPTH 64
#define JM_NAME_MAX  257    /* longer names cannot equal a field (at most 256) */
#define JM_VALUE_MAX 1025   /* longer values cannot equal a value (at most 1024) */

struct jm {
    const unsigned char *p;
    size_t n, i;
};

static void ws(struct jm *s)
{
    while (s->i < s->n && (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' ||
                           s->p[s->i] == '\r'))
        s->i++;
}

static int jm_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool hex4(struct jm *s, unsigned *out)
{
    unsigned v = 0;

    if (s->n - s->i < 4)
        return false;
    for (int k = 0; k < 4; k++) {
        int h = jm_hexval(s->p[s->i + (size_t)k]);
        if (h < 0)
            return false;
        v = v << 4 | (unsigned)h;
    }
    s->i += 4;
    *out = v;
    return true;
}

/* Append byte c to out (cap bytes); past cap only the length grows. */
static void put(char *out, size_t cap, size_t *len, unsigned char c)
{
    if (out && *len < cap)
        out[*len] = (char)c;
    (*len)++;
}

static void put_utf8(char *out, size_t cap, size_t *len, unsigned cp)
{
    if (cp < 0x80) {
        put(out, cap, len, (unsigned char)cp);
    } else if (cp < 0x800) {
        put(out, cap, len, (unsigned char)(0xC0 | cp >> 6));
        put(out, cap, len, (unsigned char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        put(out, cap, len, (unsigned char)(0xE0 | cp >> 12));
        put(out, cap, len, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
        put(out, cap, len, (unsigned char)(0x80 | (cp & 0x3F)));
    } else {
        put(out, cap, len, (unsigned char)(0xF0 | cp >> 18));
        put(out, cap, len, (unsigned char)(0x80 | (cp >> 12 & 0x3F)));
        put(out, cap, len, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
        put(out, cap, len, (unsigned char)(0x80 | (cp & 0x3F)));
    }
}

/* An escape after the backslash; false when it is not one JSON has. */
static bool escape(struct jm *s, char *out, size_t cap, size_t *len)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    unsigned char c = s->p[s->i++];
    const char *k = c ? memchr(from, c, sizeof(from) - 1) : NULL;
    unsigned cp, lo;

    if (k != NULL) {
        put(out, cap, len, (unsigned char)to[k - from]);
        return true;
    }
    if (c != 'u' || !hex4(s, &cp))
        return false;
    if (cp >= 0xD800 && cp <= 0xDBFF) {     /* a high surrogate wants its low half */
        if (s->n - s->i < 2 || s->p[s->i] != '\\' || s->p[s->i + 1] != 'u')
            return false;
        s->i += 2;
        if (!hex4(s, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return false;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return false;
    }
    put_utf8(out, cap, len, cp);
    return true;
}

/* A string at s->i (the opening quote), decoded into out[0, cap) with its
 * decoded length in *len (which may exceed cap: then it was cut). */
static bool string(struct jm *s, char *out, size_t cap, size_t *len)
{
    *len = 0;
    if (s->i >= s->n || s->p[s->i] != '"')
        return false;
    s->i++;
    while (s->i < s->n) {
        unsigned char c = s->p[s->i++];
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;       /* control characters must be escaped */
        if (c == '\\') {
            if (s->i >= s->n || !escape(s, out, cap, len))
                return false;
        } else {
            put(out, cap, len, c);
        }
    }
    return false;
}

static bool digits(struct jm *s)
{
    size_t start = s->i;

    while (s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9')
        s->i++;
    return s->i > start;
}

static bool number(struct jm *s)
{
    if (s->i < s->n && s->p[s->i] == '-')
        s->i++;
    if (s->i < s->n && s->p[s->i] == '0')
        s->i++;
    else if (!digits(s))
        return false;
    if (s->i < s->n && s->p[s->i] == '.') {
        s->i++;
        if (!digits(s))
            return false;
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
            s->i++;
        if (!digits(s))
            return false;
    }
    return true;
}

static bool literal(struct jm *s, const char *w, size_t len)
{
    if (s->n - s->i < len || memcmp(s->p + s->i, w, len) != 0)
        return false;
    s->i += len;
    return true;
}

static bool value(struct jm *s, int depth);

/* An array or object at s->i; close is ']' or '}'. */
static bool container(struct jm *s, int depth, char close)
{
    size_t len;

    if (depth >= JM_MAX_DEPTH)
        return false;
    s->i++;
    ws(s);
    if (s->i < s->n && s->p[s->i] == close) {
        s->i++;
        return true;
    }
    for (;;) {
        if (close == '}') {
            if (!string(s, NULL, 0, &len))
                return false;
            ws(s);
            if (s->i >= s->n || s->p[s->i++] != ':')
                return false;
        }
        if (!value(s, depth + 1))
            return false;
        ws(s);
        if (s->i >= s->n)
            return false;
        unsigned char c = s->p[s->i++];
        if (c == (unsigned char)close)
            return true;
        if (c != ',')
            return false;
        ws(s);
    }
}

static bool value(struct jm *s, int depth)
{
    size_t len;

    ws(s);
    if (s->i >= s->n)
        return false;
    switch (s->p[s->i]) {
    case '{': return container(s, depth, '}');
    case '[': return container(s, depth, ']');
    case '"': return string(s, NULL, 0, &len);
    case 't': return literal(s, "true", 4);
    case 'f': return literal(s, "false", 5);
    case 'n': return literal(s, "null", 4);
    default: return number(s);
    }
}

static bool cond_holds(const struct cfg_json_match *m, const char *v, size_t len)
{
    if (m->prefix)
        return len >= m->value_len && memcmp(v, m->value, m->value_len) == 0;
    return len == m->value_len && memcmp(v, m->value, len) == 0;
}

/* The value of member name[0, len) at s->i, against every condition on
 * that name; false when the text is not JSON or the name came before. */
static bool member(struct jm *s, const char *name, size_t len, const struct cfg_json_match *m,
                   size_t nm, uint64_t *seen, uint64_t *ok)
{
    char v[JM_VALUE_MAX];
    size_t vlen = 0;
    bool any = false, str = false;

    for (size_t k = 0; k < nm && !any; k++)
        any = len == m[k].field_len && memcmp(name, m[k].field, len) == 0;
    if (!any)
        return value(s, 1);
    ws(s);
    if (s->i < s->n && s->p[s->i] == '"') {
        if (!string(s, v, sizeof(v), &vlen))
            return false;
        str = true;
    } else if (!value(s, 1)) {
        return false;
    }
    for (size_t k = 0; k < nm; k++) {
        if (len != m[k].field_len || memcmp(name, m[k].field, len) != 0)
            continue;
        if (*seen >> k & 1)
            return false;       /* a field given twice */
        *seen |= 1ull << k;
        if (str && cond_holds(&m[k], v, vlen))   /* value_len <= 1024 < sizeof(v) */
            *ok |= 1ull << k;
    }
    return true;
}

bool rt_json_match(const char *body, size_t n, const struct cfg_json_match *m, size_t nm)
{
    struct jm s = { (const unsigned char *)body, n, 0 };
    uint64_t seen = 0, ok = 0;     /* bit k: condition k's field seen / matched */
    char name[JM_NAME_MAX];
    size_t len;

    if (nm == 0 || nm > 64)
        return false;
    ws(&s);
    if (s.i >= s.n || s.p[s.i] != '{')
        return false;
    s.i++;
    ws(&s);
    bool empty = s.i < s.n && s.p[s.i] == '}';
    if (empty)
        s.i++;
    while (!empty) {
        if (!string(&s, name, sizeof(name), &len))
            return false;
        ws(&s);
        if (s.i >= s.n || s.p[s.i++] != ':')
            return false;
        if (!member(&s, name, len, m, nm, &seen, &ok))
            return false;
        ws(&s);
        if (s.i >= s.n)
            return false;
        unsigned char c = s.p[s.i++];
        if (c == '}')
            break;
        if (c != ',')
            return false;
        ws(&s);
    }
    ws(&s);
    uint64_t all = nm == 64 ? ~0ull : (1ull << nm) - 1;
    return s.i == s.n && ok == all;
}
