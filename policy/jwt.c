/* jwt.c - verifying a JSON Web Token, and the per-worker cache of verified
 * tokens (jwt.h).  The config side is jwt_conf.c. */
#include "jwt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "../core/arena.h"
#include "../core/cfgparse.h"
#include "b64url.h"

#define JOSE_HDR_MAX     1024    /* decoded bytes of the JOSE header */
#define SIG_MAX     (JWKS_RSA_MAX_BITS / 8)
#define MAX_MEMBERS 256     /* top-level members of the header or the claims */

const char *jwt_err_str(enum jwt_err e)
{
    switch (e) {
    case JWT_OK:          return "ok";
    case JWT_E_TOO_LONG:  return "token too long";
    case JWT_E_FORMAT:    return "malformed token";
    case JWT_E_ALG:       return "algorithm not allowed";
    case JWT_E_KID:       return "unknown key";
    case JWT_E_SIGNATURE: return "bad signature";
    case JWT_E_EXPIRED:   return "expired";
    case JWT_E_NOT_YET:   return "not yet valid";
    case JWT_E_ISSUER:    return "wrong issuer";
    case JWT_E_AUDIENCE:  return "wrong audience";
    case JWT_E_SUBJECT:   return "no usable sub";
    }
    return "?";
}

/* ---- JSON */

/* JSON text that reads the same to every parser: no raw control byte but
 * white space (JSON forbids them in strings; cJSON would take them), and
 * no "\u0000" (cJSON's C strings would end there: "alice\u0000admin"
 * would be "alice" here and not elsewhere).  An escaped backslash before
 * "u0000" is refused too: failing closed on that rarity is fine. */
static bool plain_json(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return false;
        if (c == '\\' && n - i >= 6 && memcmp(p + i + 1, "u0000", 5) == 0)
            return false;
    }
    return true;
}

/* b64url text s[0..n) decoded (into buf, cap bytes) and parsed: a JSON
 * object, alone in its text (only white space after it), whose members
 * are all distinct (cJSON keeps both copies of a repeated member and
 * lookups see the first; another parser might see the last, so a token
 * that repeats one means two things). */
static cJSON *json_part(const char *s, size_t n, char *buf, size_t cap)
{
    size_t len, nm = 0;
    const char *end = NULL;
    cJSON *o;

    if (!b64url_decode(s, n, (unsigned char *)buf, cap, &len) || !plain_json(buf, len))
        return NULL;
    o = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (o == NULL)
        return NULL;
    if (!J_IS_OBJECT(o) || end == NULL)
        goto bad;
    for (; end < buf + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
            goto bad;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (++nm > MAX_MEMBERS)
            goto bad;
        for (const cJSON *d = o->child; d != c; d = d->next)
            if (strcmp(c->string, d->string) == 0)
                goto bad;
    }
    return o;
bad:
    cJSON_Delete(o);
    return NULL;
}

/* No byte below 0x20, nor DEL: fit for a header value and a log line. */
static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* ---- signatures */

/* ES256's JWS signature is r || s, 32 bytes each (RFC 7518 3.4); EVP
 * wants the DER ECDSA-Sig-Value. */
static bool es256_der(const unsigned char *sig, size_t n, unsigned char *der, size_t *dlen)
{
    ECDSA_SIG *es;
    BIGNUM *r, *s;
    unsigned char *p = der;
    int l;

    if (n != 64)
        return false;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, 32, NULL);
    s = BN_bin2bn(sig + 32, 32, NULL);
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return false;
    }
    l = i2d_ECDSA_SIG(es, NULL);
    if (l > 0 && (size_t)l <= *dlen)
        l = i2d_ECDSA_SIG(es, &p);
    else
        l = -1;
    ECDSA_SIG_free(es);
    if (l <= 0)
        return false;
    *dlen = (size_t)l;
    return true;
}

static bool sig_ok(const struct jwk *k, const char *msg, size_t mlen, const unsigned char *sig,
                   size_t slen)
{
    unsigned char der[80], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t dlen = sizeof(der);
    EVP_MD_CTX *md;
    bool ok;

    if (k->alg == JWT_HS256) {
        if (HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)msg, mlen,
                 mac, &maclen) == NULL)
            return false;
        return slen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    }
    if (k->alg == JWT_ES256) {
        if (!es256_der(sig, slen, der, &dlen))
            return false;
        sig = der;
        slen = dlen;
    }
    md = EVP_MD_CTX_new();
    if (md == NULL)
        return false;
    /* Ed25519 hashes inside the algorithm: no digest, one-shot only */
    ok = EVP_DigestVerifyInit(md, NULL, k->alg == JWT_EDDSA ? NULL : EVP_sha256(), NULL,
                              k->pkey) == 1 &&
         EVP_DigestVerify(md, sig, slen, (const unsigned char *)msg, mlen) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* ---- claims */

/* The member name of o as a number: absent (true, *present false), a
 * number (true), anything else (false). */
static bool num_claim(const cJSON *o, const char *name, bool *present, double *out)
{
    const cJSON *v = cfg_member(o, name);

    *present = v != NULL;
    if (v == NULL)
        return true;
    if (!J_IS_NUMBER(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static bool aud_listed(const struct jwt_conf *jc, const char *a)
{
    for (size_t i = 0; i < jc->naudiences; i++)
        if (strcmp(jc->audiences[i], a) == 0)
            return true;
    return false;
}

static enum jwt_err check_aud(const struct jwt_conf *jc, const cJSON *aud)
{
    if (aud == NULL)
        return jc->naudiences ? JWT_E_AUDIENCE : JWT_OK;
    if (jc->naudiences == 0)
        return JWT_E_AUDIENCE;
    if (J_IS_STRING(aud))
        return aud_listed(jc, aud->valuestring) ? JWT_OK : JWT_E_AUDIENCE;
    if (!J_IS_ARRAY(aud))
        return JWT_E_FORMAT;
    for (const cJSON *c = aud->child; c; c = c->next)
        if (J_IS_STRING(c) && aud_listed(jc, c->valuestring))
            return JWT_OK;
    return JWT_E_AUDIENCE;
}

/* A claim's value as header text into buf (JWT_CLAIM_VALUE_MAX + 1
 * bytes): its length, or 0 when it sends no header. */
static size_t claim_text(const cJSON *v, char *buf)
{
    size_t n;

    if (J_IS_STRING(v)) {
        n = strlen(v->valuestring);
        if (n > JWT_CLAIM_VALUE_MAX || !printable(v->valuestring, n))
            return 0;
        memcpy(buf, v->valuestring, n);
        return n;
    }
    if (J_IS_NUMBER(v)) {
        double d = v->valuedouble;
        int l;
        /* integers (the usual case: ids, timestamps) as integers */
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            l = snprintf(buf, JWT_CLAIM_VALUE_MAX + 1, "%lld", (long long)d);
        else
            l = snprintf(buf, JWT_CLAIM_VALUE_MAX + 1, "%.17g", d);
        return l > 0 && l <= JWT_CLAIM_VALUE_MAX ? (size_t)l : 0;
    }
    return 0;
}

static void claim_headers(const struct jwt_conf *jc, const cJSON *claims, struct jwt_id *out)
{
    char val[JWT_CLAIM_VALUE_MAX + 1];

    out->hdrs_len = 0;
    for (size_t i = 0; i < jc->nclaims; i++) {
        const struct jwt_claim_hdr *m = &jc->claims[i];
        size_t vn = claim_text(cfg_member(claims, m->claim), val);
        /* the config bounds the worst case to JWT_HDRS_MAX (jwt_conf.c) */
        if (vn == 0 || out->hdrs_len + m->header_len + vn + 4 > JWT_HDRS_MAX)
            continue;
        char *p = out->hdrs + out->hdrs_len;
        memcpy(p, m->header, m->header_len);
        p += m->header_len;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, val, vn);
        p += vn;
        *p++ = '\r';
        *p++ = '\n';
        out->hdrs_len = (uint32_t)(p - out->hdrs);
    }
}

static enum jwt_err check_claims(const struct jwt_conf *jc, const cJSON *cl, int64_t now,
                                 struct jwt_id *out)
{
    double exp = 0, nbf = 0, t = (double)now, skew = jc->clock_skew_s;
    bool has_exp, has_nbf;
    const cJSON *iss, *sub;
    enum jwt_err e;

    if (!num_claim(cl, "exp", &has_exp, &exp) || !num_claim(cl, "nbf", &has_nbf, &nbf))
        return JWT_E_FORMAT;
    if (has_exp && !(t < exp + skew))
        return JWT_E_EXPIRED;
    if (has_nbf && t < nbf - skew)
        return JWT_E_NOT_YET;
    if (jc->issuer != NULL) {
        iss = cfg_member(cl, "iss");
        if (!J_IS_STRING(iss) || strcmp(iss->valuestring, jc->issuer) != 0)
            return JWT_E_ISSUER;
    }
    if ((e = check_aud(jc, cfg_member(cl, "aud"))) != JWT_OK)
        return e;
    sub = cfg_member(cl, "sub");
    if (!J_IS_STRING(sub))
        return JWT_E_SUBJECT;
    size_t sl = strlen(sub->valuestring);
    if (sl == 0 || sl > JWT_AUTH_ID_MAX || !printable(sub->valuestring, sl))
        return JWT_E_SUBJECT;
    memcpy(out->auth_id, sub->valuestring, sl);
    out->auth_id_len = (uint32_t)sl;
    if (!has_exp || exp + skew >= 9.2e18)
        out->until = INT64_MAX;
    else
        out->until = (int64_t)ceil(exp + skew);   /* now < until <=> now < exp + skew */
    claim_headers(jc, cl, out);
    return JWT_OK;
}

/* ---- the token */

/* The JOSE header: alg allowed and the key named by kid, of that alg. */
static enum jwt_err check_header(const struct jwt_conf *jc, const cJSON *h, const struct jwk **key)
{
    const cJSON *alg = cfg_member(h, "alg"), *kid = cfg_member(h, "kid");
    unsigned bit;

    if (!J_IS_STRING(alg))
        return JWT_E_FORMAT;
    /* critical extensions (RFC 7515 4.1.11) must be understood; none is */
    if (cfg_member(h, "crit") != NULL)
        return JWT_E_FORMAT;
    bit = jwt_alg_bit(alg->valuestring, strlen(alg->valuestring));   /* "none" gives 0 */
    if (bit == 0 || !(jc->algs & bit))
        return JWT_E_ALG;
    if (!J_IS_STRING(kid))
        return JWT_E_KID;
    *key = jwks_find(jc->keys, kid->valuestring, strlen(kid->valuestring));
    if (*key == NULL)
        return JWT_E_KID;
    /* the key decides the algorithm; a token naming another is refused
     * before any use of the key (no RSA key as an HMAC secret) */
    if ((*key)->alg != bit)
        return JWT_E_ALG;
    return JWT_OK;
}

enum jwt_err jwt_verify(const struct jwt_conf *jc, const char *tok, size_t len, int64_t now,
                        struct jwt_id *out)
{
    char hbuf[JOSE_HDR_MAX], cbuf[JWT_MAX_TOKEN / 4 * 3];
    unsigned char sig[SIG_MAX];
    const char *d1, *d2, *end = tok + len;
    const struct jwk *key = NULL;
    size_t slen;
    cJSON *h, *cl;
    enum jwt_err e;

    if (len > JWT_MAX_TOKEN)
        return JWT_E_TOO_LONG;
    d1 = memchr(tok, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL || d1 == tok ||
        d2 == d1 + 1)
        return JWT_E_FORMAT;
    h = json_part(tok, (size_t)(d1 - tok), hbuf, sizeof(hbuf));
    if (h == NULL)
        return JWT_E_FORMAT;
    e = check_header(jc, h, &key);
    cJSON_Delete(h);
    if (e != JWT_OK)
        return e;
    if (!b64url_decode(d2 + 1, (size_t)(end - d2 - 1), sig, sizeof(sig), &slen) || slen == 0)
        return JWT_E_FORMAT;
    if (!sig_ok(key, tok, (size_t)(d2 - tok), sig, slen))
        return JWT_E_SIGNATURE;
    /* the claims are read only once they are known to be the key holder's */
    cl = json_part(d1 + 1, (size_t)(d2 - d1 - 1), cbuf, sizeof(cbuf));
    if (cl == NULL)
        return JWT_E_FORMAT;
    e = check_claims(jc, cl, now, out);
    cJSON_Delete(cl);
    return e;
}

/* ---- the cache */

#define WAYS 4

struct jwt_cache_ent {
    unsigned char key[SHA256_DIGEST_LENGTH];
    uint64_t conf_id;           /* 0: empty */
    int64_t expires;            /* usable while now < expires */
    uint64_t used;              /* tick of the last hit: the least recently used goes */
    struct jwt_id id;
};

struct jwt_cache {
    size_t mask;                /* sets - 1 */
    uint64_t tick, hits, misses;
    struct jwt_id scratch;      /* a token being verified */
    struct jwt_cache_ent *ents; /* sets * WAYS */
};

struct jwt_cache *jwt_cache_new(size_t n)
{
    struct jwt_cache *c = xcalloc(1, sizeof(*c));
    size_t sets = 1;

    while (sets * WAYS < n)
        sets <<= 1;
    c->mask = sets - 1;
    c->ents = xcalloc(sets * WAYS, sizeof(*c->ents));
    return c;
}

void jwt_cache_free(struct jwt_cache *c)
{
    if (c == NULL)
        return;
    OPENSSL_cleanse(c->ents, (c->mask + 1) * WAYS * sizeof(*c->ents));
    free(c->ents);
    free(c);
}

void jwt_cache_counts(const struct jwt_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c->hits;
    *misses = c->misses;
}

enum jwt_err jwt_check(struct jwt_cache *c, const struct jwt_conf *jc, const char *tok,
                       size_t len, const unsigned char key[SHA256_DIGEST_LENGTH], int64_t now,
                       const struct jwt_id **id)
{
    struct jwt_cache_ent *set, *victim;
    uint64_t h;
    enum jwt_err e;

    if (len > JWT_MAX_TOKEN)
        return JWT_E_TOO_LONG;
    memcpy(&h, key, sizeof(h));
    set = &c->ents[(h & c->mask) * WAYS];
    victim = &set[0];
    for (int w = 0; w < WAYS; w++) {
        struct jwt_cache_ent *x = &set[w];
        if (x->conf_id == jc->id && now < x->expires &&
            CRYPTO_memcmp(x->key, key, SHA256_DIGEST_LENGTH) == 0) {
            x->used = ++c->tick;
            c->hits++;
            *id = &x->id;
            return JWT_OK;
        }
        /* an empty or stale slot first, else the least recently used */
        bool free_x = x->conf_id == 0 || now >= x->expires;
        bool free_v = victim->conf_id == 0 || now >= victim->expires;
        if ((free_x && !free_v) || (free_x == free_v && x->used < victim->used))
            victim = x;
    }
    c->misses++;
    e = jwt_verify(jc, tok, len, now, &c->scratch);
    if (e != JWT_OK)
        return e;
    memcpy(victim->key, key, SHA256_DIGEST_LENGTH);
    victim->conf_id = jc->id;
    victim->expires = c->scratch.until;
    if (now <= INT64_MAX - JWT_CACHE_TTL_MAX && now + JWT_CACHE_TTL_MAX < victim->expires)
        victim->expires = now + JWT_CACHE_TTL_MAX;
    victim->used = ++c->tick;
    victim->id = c->scratch;
    *id = &victim->id;
    return JWT_OK;
}
