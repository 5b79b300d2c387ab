/*
 * jwt.h - (policy) auth.jwt: JSON Web Tokens (RFC 7519) signed with
 * RS256, ES256, EdDSA (Ed25519) or HS256 (RFC 7518, RFC 8037), verified
 * with OpenSSL against the keys of a JWKS file (jwks.h), and a per-worker
 * cache of verified tokens.
 *
 * Owns: struct jwt_conf (a route's compiled "auth": {"jwt": ...}, shared
 * read-only by the workers) and struct jwt_cache (one per worker, never
 * shared).  May call: core/ (cfgerr, cfgparse, arena, hdr),
 * policy/jwks, policy/b64url, OpenSSL 3, cJSON.
 *
 * The rules a token must pass, in order (each failure is a 401 upstream
 * of here; the enum says which rule failed, for logs and tests):
 *   - three base64url parts (strict, no padding), at most JWT_MAX_TOKEN
 *     bytes, header and claims JSON objects alone in their text, with no
 *     repeated member, raw control byte or \u0000;
 *   - header "alg" one of the configured algorithms ("none" never is),
 *     no "crit" (no extension is understood), "kid" naming a key of the
 *     JWKS, and that key's own algorithm equal to "alg" (an RSA key is
 *     never an HMAC secret);
 *   - the signature over "header.claims";
 *   - "exp" if present: now < exp + clock_skew_s.  A token without exp is
 *     accepted, as RFC 7519 makes exp optional and the common libraries
 *     (PyJWT, jose, Envoy's jwt_authn) do by default;
 *   - "nbf" if present: now >= nbf - clock_skew_s;
 *   - "iss" equal to the configured issuer, when one is configured;
 *   - "aud" (a string or an array of strings) naming one of the configured
 *     audiences; with no audiences configured, a token that has an "aud"
 *     is refused (RFC 7519 4.1.3: a recipient not named must reject);
 *   - "sub" a string of 1 to JWT_AUTH_ID_MAX bytes with no control
 *     character: it becomes the auth id (x-auth-id upstream).
 */
#ifndef SLUICE_POLICY_JWT_H
#define SLUICE_POLICY_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/cfgerr.h"
#include "jwks.h"

struct cJSON;
struct cfg_mem;

#define JWT_MAX_TOKEN       8192    /* bytes of the compact serialization */
#define JWT_AUTH_ID_MAX     128     /* bytes of "sub" */
#define JWT_CLAIM_VALUE_MAX 256     /* bytes of a claim sent as a header */
#define JWT_HDRS_MAX        2048    /* bytes of all the claim headers of a token */
#define JWT_MAX_CLAIM_HDRS  16
#define JWT_CACHE_TTL_MAX   600     /* seconds a verified token stays cached at most */

/* claims_to_headers: claim -> request header upstream. */
struct jwt_claim_hdr {
    char *claim;    uint32_t claim_len;
    char *header;   uint32_t header_len;    /* lower-case */
};

struct jwt_conf {
    uint64_t id;                    /* unique in the process: scopes the cache */
    char *jwks_file;
    struct jwks *keys;
    unsigned algs;                  /* enum jwt_alg bits */
    char *issuer;                   /* NULL: not checked */
    char **audiences;  size_t naudiences;   /* 0: a token must carry no aud */
    uint32_t clock_skew_s;          /* default 60 */
    struct jwt_claim_hdr *claims;  size_t nclaims;
    struct cfg_mem *mem;            /* the strings and arrays above */
};

/*
 * Parse the object v ("auth": {"jwt": v}) at path, reading the JWKS file
 * (so a reload reads it again).  Returns a conf, malloc'ed with everything
 * it holds (not in cx's arena: the keys are OpenSSL's), or NULL with every
 * problem added to cx's errors (paths like /routes/0/auth/jwt/algorithms/1).
 */
struct jwt_conf *jwt_conf_parse(struct cfg_ctx *cx, const struct cJSON *v, const struct jp *path);

/* Frees the conf, its keys and strings; NULL is a no-op. */
void jwt_conf_free(struct jwt_conf *jc);

enum jwt_err {
    JWT_OK = 0,
    JWT_E_TOO_LONG,     /* more than JWT_MAX_TOKEN bytes */
    JWT_E_FORMAT,       /* not three strict base64url parts of JSON objects, crit, ... */
    JWT_E_ALG,          /* alg none, not configured, or not the key's */
    JWT_E_KID,          /* no kid, or no such key */
    JWT_E_SIGNATURE,
    JWT_E_EXPIRED,
    JWT_E_NOT_YET,      /* nbf in the future */
    JWT_E_ISSUER,
    JWT_E_AUDIENCE,
    JWT_E_SUBJECT,      /* no usable sub */
};

/* A short text for logs: "expired", "bad signature", ... */
const char *jwt_err_str(enum jwt_err e);

/* What a good token yields. */
struct jwt_id {
    char auth_id[JWT_AUTH_ID_MAX];  uint32_t auth_id_len;
    /* the claims_to_headers lines, "name: value\r\n" each, in config order;
     * a claim absent, not a string or number, longer than
     * JWT_CLAIM_VALUE_MAX or holding a control character sends no line */
    char hdrs[JWT_HDRS_MAX];        uint32_t hdrs_len;
    int64_t until;                  /* valid while now < until (exp + skew, or no exp: INT64_MAX) */
};

/*
 * Verify tok[0..len) (the bare token, no "Bearer ") against jc at wall
 * clock time now (seconds since the epoch), without any cache: JWT_OK and
 * *out filled, or the first rule that failed (*out is then garbage).
 */
enum jwt_err jwt_verify(const struct jwt_conf *jc, const char *tok, size_t len, int64_t now,
                        struct jwt_id *out);

/* ---- the verified-token cache, one per worker ---- */

struct jwt_cache;

/* A cache of about n tokens (rounded up to a power of two, at least 4);
 * its memory is taken once, here. */
struct jwt_cache *jwt_cache_new(size_t n);
void jwt_cache_free(struct jwt_cache *c);

/* Lookups that found a verified token, and those that did not. */
void jwt_cache_counts(const struct jwt_cache *c, uint64_t *hits, uint64_t *misses);

/*
 * jwt_verify() through the cache c: a token verified before for this
 * conf (known by digest, the SHA-256 of its len bytes, which the caller
 * computes: a worker keeps a context for it) and still within min(its
 * until, the time it was verified + JWT_CACHE_TTL_MAX) is not verified
 * again.  A token that fails is never cached.  On JWT_OK *id points into
 * the cache and stays valid until the next jwt_check() on c: copy what
 * you need.
 */
enum jwt_err jwt_check(struct jwt_cache *c, const struct jwt_conf *jc, const char *tok,
                       size_t len, const unsigned char digest[32], int64_t now,
                       const struct jwt_id **id);

#endif
