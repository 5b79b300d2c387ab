/*
 * b64url.h - (policy) strict base64url decoding (RFC 4648 section 5) for
 * JSON Web Tokens and JSON Web Keys (RFC 7515 section 2: no padding).
 *
 * Owns: nothing.  May call: nothing.  "Strict" means one text per byte
 * string: only the 64 URL-safe characters, no '=' padding, no white space,
 * no length of 1 modulo 4, and the unused low bits of the last character
 * zero, so a token cannot be re-spelled into a different text with the
 * same bytes (which would dodge a cache keyed by the text, or a signature
 * check done on re-encoded bytes).
 */
#ifndef SLUICE_POLICY_B64URL_H
#define SLUICE_POLICY_B64URL_H

#include <stdbool.h>
#include <stddef.h>

/* The decoded length of n characters (valid or not: an upper bound). */
static inline size_t b64url_decoded_len(size_t n)
{
    return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

/*
 * Decode s[0..n) into out (room for cap bytes).  Returns true and the
 * length in *outlen; false when s is not strict base64url or the result
 * would not fit in cap (out is then garbage).  An empty s is valid (0).
 */
bool b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen);

#endif
