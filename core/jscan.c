/* jscan.c - the extent of JSON values (jscan.h). */
#include "jscan.h"

#include <string.h>

uint64_t js_hash(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;

    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

size_t js_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

size_t js_str(const char *s, size_t n, size_t i)
{
    size_t start = ++i;

    while (i < n) {
        const char *q = memchr(s + i, '"', n - i);
        if (q == NULL)
            return n;
        size_t k = (size_t)(q - s), bs = 0;
        while (k - bs > start && s[k - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return k + 1;
        i = k + 1;
    }
    return n;
}

size_t js_value(const char *s, size_t n, size_t i)
{
    size_t depth = 0;

    if (i >= n)
        return n;
    if (s[i] == '"')
        return js_str(s, n, i);
    if (s[i] != '{' && s[i] != '[') {
        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
               s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            i++;
        return i;
    }
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = js_str(s, n, i);
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return i + 1;
        }
        i++;
    }
    return n;
}

int js_sep(const char *s, size_t n, size_t *i, char close)
{
    *i = js_ws(s, n, *i);
    if (*i < n && s[*i] == ',') {
        *i = js_ws(s, n, *i + 1);
        return 1;
    }
    return *i < n && s[*i] == close ? 0 : -1;
}
