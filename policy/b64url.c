/* b64url.c - strict base64url decoding (b64url.h). */
#include "b64url.h"

#include <stdint.h>

/* 0..63 for the URL-safe alphabet, 0xff for every other byte ('=',
 * '+', '/' and white space included). */
static inline uint8_t val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (uint8_t)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (uint8_t)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (uint8_t)(c - '0' + 52);
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return 0xff;
}

bool b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    size_t o = 0, i = 0;
    uint32_t acc;

    if (n % 4 == 1 || b64url_decoded_len(n) > cap)
        return false;
    for (; i + 4 <= n; i += 4) {
        uint8_t a = val((unsigned char)s[i]), b = val((unsigned char)s[i + 1]);
        uint8_t c = val((unsigned char)s[i + 2]), d = val((unsigned char)s[i + 3]);
        if ((a | b | c | d) & 0xc0)
            return false;
        acc = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        out[o++] = (unsigned char)(acc >> 16);
        out[o++] = (unsigned char)(acc >> 8);
        out[o++] = (unsigned char)acc;
    }
    if (n - i == 2) {
        uint8_t a = val((unsigned char)s[i]), b = val((unsigned char)s[i + 1]);
        if ((a | b) & 0xc0 || (b & 0x0f) != 0)
            return false;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
    } else if (n - i == 3) {
        uint8_t a = val((unsigned char)s[i]), b = val((unsigned char)s[i + 1]);
        uint8_t c = val((unsigned char)s[i + 2]);
        if ((a | b | c) & 0xc0 || (c & 0x03) != 0)
            return false;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
        out[o++] = (unsigned char)(b << 4 | c >> 2);
    }
    *outlen = o;
    return true;
}
