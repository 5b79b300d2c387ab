/*
 * jwks.h - (policy) a JSON Web Key Set file (RFC 7517) read into OpenSSL
 * keys, for auth.jwt (jwt.h).
 *
 * Owns: struct jwks and its keys (EVP_PKEYs, HMAC secrets), freed by
 * jwks_free().  May call: core/ (cfgerr, cfgparse, arena), OpenSSL 3,
 * cJSON.  A set is built once, when the config that names its file is
 * parsed, and read-only after: the workers share it without a lock
 * (OpenSSL 3 keys may be used for verification from several threads).
 *
 * Each key serves exactly one algorithm, decided by its type, never by
 * the token: kty RSA -> RS256, EC P-256 -> ES256, OKP Ed25519 -> EdDSA,
 * oct -> HS256.  So an RSA public key can never be taken for an HMAC
 * secret (the key-confusion attack), whatever a token's header says.
 */
#ifndef SLUICE_POLICY_JWKS_H
#define SLUICE_POLICY_JWKS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "../core/cfgerr.h"

/* The algorithms sluice verifies; a set of them is a bit mask. */
enum jwt_alg {
    JWT_RS256 = 1u << 0,
    JWT_ES256 = 1u << 1,
    JWT_EDDSA = 1u << 2,
    JWT_HS256 = 1u << 3,
};

/* The bit of an algorithm name as JWS spells it ("RS256", "EdDSA", ...),
 * or 0 for any other (including "none"). */
unsigned jwt_alg_bit(const char *name, size_t len);
/* The name of one algorithm bit ("?" for anything else). */
const char *jwt_alg_name(unsigned bit);

/* Bounds on what a set may hold. */
#define JWKS_MAX_FILE  (1u << 20)       /* bytes of the file */
#define JWKS_MAX_KEYS  256
#define JWKS_MAX_KID   256              /* bytes of a kid */
#define JWKS_RSA_MIN_BITS 2048          /* RFC 7518 3.3 */
#define JWKS_RSA_MAX_BITS 8192          /* bounds the cost of one verification */
#define JWKS_HMAC_MIN  32               /* RFC 7518 3.2: at least the hash's size */
#define JWKS_HMAC_MAX  1024

struct jwk {
    char *kid;  size_t kid_len;
    unsigned alg;                   /* the one algorithm (bit) this key verifies */
    EVP_PKEY *pkey;                 /* RS256, ES256, EdDSA; NULL for HS256 */
    unsigned char *secret;          /* HS256: the octets of k */
    size_t secret_len;
};

struct jwks {
    struct jwk *keys;  size_t nkeys;
};

/*
 * Read the JWKS file (JSON {"keys": [...]}) into a new set.  algs is the
 * mask of the algorithms the config lists: a key that serves none of them
 * is an error, as is a key sluice cannot use (another kty or curve, a
 * private part, a weak size, a missing or repeated kid, a JWK "alg" other
 * than the key's own, "use" other than "sig").  Every problem is an error
 * at path (the config's "jwks_file" member), its text naming the file and
 * the JSON pointer inside it, e.g. "keys.json: /keys/2/n: not base64url".
 * Returns NULL on any error.
 */
struct jwks *jwks_load(struct cfg_ctx *cx, const struct jp *path, const char *file,
                       unsigned algs);

/* jwks_load() of text already read (name is only for the messages). */
struct jwks *jwks_parse(struct cfg_ctx *cx, const struct jp *path, const char *name,
                        const char *text, size_t len, unsigned algs);

/* The key named kid (len bytes), or NULL. */
const struct jwk *jwks_find(const struct jwks *ks, const char *kid, size_t len);

/* Frees every key (secrets are wiped first); NULL is a no-op. */
void jwks_free(struct jwks *ks);

#endif
