/* jwks.c - a JWKS file into OpenSSL keys (jwks.h). */
#include "jwks.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>

#include "../core/arena.h"
#include "../core/cfgparse.h"
#include "b64url.h"
#include "pol_int.h"

static const struct {
    const char *name;
    unsigned bit;
} algs_tab[] = {
    { "RS256", JWT_RS256 },
    { "ES256", JWT_ES256 },
    { "EdDSA", JWT_EDDSA },
    { "HS256", JWT_HS256 },
};

unsigned jwt_alg_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(algs_tab) / sizeof(algs_tab[0]); i++)
        if (strlen(algs_tab[i].name) == len && memcmp(algs_tab[i].name, name, len) == 0)
            return algs_tab[i].bit;
    return 0;
}

const char *jwt_alg_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof(algs_tab) / sizeof(algs_tab[0]); i++)
        if (algs_tab[i].bit == bit)
            return algs_tab[i].name;
    return "?";
}

/* Where a problem in the file is: the config's path, the file's name and
 * the JSON pointer inside the file (key index i, member m or NULL). */
struct kwhere {
    struct cfg_ctx *cx;
    const struct jp *path;
    const char *name;
    size_t i;
};

__attribute__((format(printf, 3, 4)))
static void kerr(const struct kwhere *w, const char *member, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (member != NULL)
        cfg_errp(w->cx, w->path, "%s: /keys/%zu/%s: %s", w->name, w->i, member, msg);
    else
        cfg_errp(w->cx, w->path, "%s: /keys/%zu: %s", w->name, w->i, msg);
}

/* Member m of key object o as bytes: a base64url string decoded into a
 * malloc'ed buffer of at most max bytes (*n its length), or NULL with an
 * error. */
static unsigned char *b64_member(const struct kwhere *w, const cJSON *o, const char *m,
                                 size_t max, size_t *n)
{
    const cJSON *v = cfg_member(o, m);
    unsigned char *buf;

    if (v == NULL) {
        kerr(w, m, "is required");
        return NULL;
    }
    if (!J_IS_STRING(v)) {
        kerr(w, m, "must be a string");
        return NULL;
    }
    size_t sl = strlen(v->valuestring);
    if (b64url_decoded_len(sl) > max) {
        kerr(w, m, "longer than %zu bytes", max);
        return NULL;
    }
    buf = xmalloc(max);
    if (!b64url_decode(v->valuestring, sl, buf, max, n) || *n == 0) {
        kerr(w, m, "must be non-empty base64url without padding");
        free(buf);
        return NULL;
    }
    return buf;
}

/* An EVP_PKEY of type name from the parameters in bld (consumed). */
static EVP_PKEY *from_params(const char *name, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    EVP_PKEY *pk = NULL;

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pk;
}

/* The public key is a valid point / key (an EC point on its curve). */
static bool pub_ok(EVP_PKEY *pk)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    bool ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *rsa_key(const struct kwhere *w, const cJSON *o)
{
    size_t nl, el;
    unsigned char *nb = b64_member(w, o, "n", JWKS_RSA_MAX_BITS / 8 + 1, &nl);
    unsigned char *eb = b64_member(w, o, "e", 8, &el);
    EVP_PKEY *pk = NULL;

    if (nb != NULL && eb != NULL) {
        BIGNUM *n = BN_bin2bn(nb, (int)nl, NULL), *e = BN_bin2bn(eb, (int)el, NULL);
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        int bits = n ? BN_num_bits(n) : 0;

        if (n == NULL || e == NULL || bld == NULL) {
            OSSL_PARAM_BLD_free(bld);
            kerr(w, NULL, "out of memory");
        } else if (bits < JWKS_RSA_MIN_BITS || bits > JWKS_RSA_MAX_BITS) {
            OSSL_PARAM_BLD_free(bld);
            kerr(w, "n", "an RSA modulus of %d bits (%d to %d allowed)", bits,
                 JWKS_RSA_MIN_BITS, JWKS_RSA_MAX_BITS);
        } else if (!BN_is_odd(e) || BN_is_one(e)) {
            OSSL_PARAM_BLD_free(bld);
            kerr(w, "e", "not a valid RSA public exponent");
        } else if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
                   !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
                   (pk = from_params("RSA", bld)) == NULL) {
            kerr(w, NULL, "OpenSSL refused the RSA key");
        }
        BN_free(n);
        BN_free(e);
    }
    free(nb);
    free(eb);
    return pk;
}

/* EC (P-256) and OKP (Ed25519) keys: a point given as x (and y). */
static EVP_PKEY *point_key(const struct kwhere *w, const cJSON *o, bool ec)
{
    const char *want = ec ? "P-256" : "Ed25519";
    const cJSON *crv = cfg_member(o, "crv");
    unsigned char pub[65], *x, *y = NULL;
    size_t xl = 0, yl = 0, pl;
    EVP_PKEY *pk = NULL;

    if (!J_IS_STRING(crv)) {
        kerr(w, "crv", crv ? "must be a string" : "is required");
        return NULL;
    }
    if (strcmp(crv->valuestring, want) != 0) {
        kerr(w, "crv", "\"%.32s\" is not supported (a kty %s key must be %s)", crv->valuestring,
             ec ? "EC" : "OKP", want);
        return NULL;
    }
    x = b64_member(w, o, "x", 32, &xl);
    if (ec)
        y = b64_member(w, o, "y", 32, &yl);
    if (x == NULL || (ec && y == NULL))
        goto out;
    /* RFC 7518 6.2.1.2 wants EC coordinates at full width, but some
     * writers (PyJWT 2.6 among them) drop leading zero bytes, one key in
     * 256: a shorter coordinate is the same number, so it is widened.  An
     * Ed25519 key is a byte string, never shortened. */
    if (!ec && xl != 32) {          /* (b64_member bounds them at 32) */
        kerr(w, "x", "must be 32 bytes");
        goto out;
    }
    if (ec) {
        memset(pub, 0, sizeof(pub));
        pub[0] = 0x04;          /* SEC 1 uncompressed point */
        memcpy(pub + 1 + 32 - xl, x, xl);
        memcpy(pub + 33 + 32 - yl, y, yl);
        pl = 65;
    } else {
        memcpy(pub, x, 32);
        pl = 32;
    }
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld == NULL || (ec && !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                                                "P-256", 0)) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pl)) {
        OSSL_PARAM_BLD_free(bld);
        kerr(w, NULL, "out of memory");
        goto out;
    }
    pk = from_params(ec ? "EC" : "ED25519", bld);
    if (pk == NULL || !pub_ok(pk)) {
        kerr(w, NULL, ec ? "x, y is not a point of P-256" : "x is not an Ed25519 public key");
        EVP_PKEY_free(pk);
        pk = NULL;
    }
out:
    free(x);
    free(y);
    return pk;
}

/* The members a public JWK must not have: private parts (RFC 7518 6.2.2,
 * 6.3.2; RFC 8037 2).  A file holding them is a private key that was put
 * in the wrong place. */
static const char *private_member(const cJSON *o, bool oct)
{
    static const char *const priv[] = { "d", "p", "q", "dp", "dq", "qi", "oth", NULL };

    if (oct)
        return NULL;            /* an HMAC key is its secret "k" */
    for (size_t i = 0; priv[i]; i++)
        if (cfg_member(o, priv[i]) != NULL)
            return priv[i];
    return NULL;
}

static bool use_ok(const struct kwhere *w, const cJSON *o)
{
    const cJSON *use = cfg_member(o, "use"), *ops = cfg_member(o, "key_ops");

    if (use != NULL && !(J_IS_STRING(use) && strcmp(use->valuestring, "sig") == 0)) {
        kerr(w, "use", "must be \"sig\" when present");
        return false;
    }
    if (ops != NULL) {
        bool verify = false;
        if (J_IS_ARRAY(ops))
            for (const cJSON *c = ops->child; c; c = c->next)
                verify |= J_IS_STRING(c) && strcmp(c->valuestring, "verify") == 0;
        if (!verify) {
            kerr(w, "key_ops", "must list \"verify\" when present");
            return false;
        }
    }
    return true;
}

/* One element of "keys" into k; false (with an error) if it is unusable. */
static bool parse_key(const struct kwhere *w, const cJSON *o, unsigned algs, struct jwk *k,
                      const struct jwks *done)
{
    const cJSON *kty = cfg_member(o, "kty"), *kid = cfg_member(o, "kid"), *alg;
    const char *t, *pm;

    if (!J_IS_OBJECT(o)) {
        kerr(w, NULL, "must be an object");
        return false;
    }
    if (!J_IS_STRING(kty)) {
        kerr(w, "kty", kty ? "must be a string" : "is required");
        return false;
    }
    t = kty->valuestring;
    if (strcmp(t, "RSA") == 0)
        k->alg = JWT_RS256;
    else if (strcmp(t, "EC") == 0)
        k->alg = JWT_ES256;
    else if (strcmp(t, "OKP") == 0)
        k->alg = JWT_EDDSA;
    else if (strcmp(t, "oct") == 0)
        k->alg = JWT_HS256;
    else {
        kerr(w, "kty", "\"%.32s\" is not supported (RSA, EC, OKP or oct)", t);
        return false;
    }
    if (!J_IS_STRING(kid) || kid->valuestring[0] == '\0' ||
        strlen(kid->valuestring) > JWKS_MAX_KID) {
        kerr(w, "kid", kid == NULL ? "is required (tokens name their key by kid)"
                                   : "must be a string of 1 to %d bytes", JWKS_MAX_KID);
        return false;
    }
    if (jwks_find(done, kid->valuestring, strlen(kid->valuestring)) != NULL) {
        kerr(w, "kid", "\"%.64s\" names an earlier key too", kid->valuestring);
        return false;
    }
    alg = cfg_member(o, "alg");
    if (alg != NULL && !(J_IS_STRING(alg) && strcmp(alg->valuestring, jwt_alg_name(k->alg)) == 0)) {
        /* a key announcing another algorithm than the one its type
         * verifies is a mistake, or an attempt at confusion */
        kerr(w, "alg", "kty %s verifies %s only", t, jwt_alg_name(k->alg));
        return false;
    }
    if (!(algs & k->alg)) {
        kerr(w, NULL, "kty %s verifies %s, which is not in algorithms", t, jwt_alg_name(k->alg));
        return false;
    }
    if ((pm = private_member(o, k->alg == JWT_HS256)) != NULL) {
        kerr(w, pm, "a private key part: the file must hold public keys only");
        return false;
    }
    if (!use_ok(w, o))
        return false;
    switch (k->alg) {
    case JWT_RS256:
        k->pkey = rsa_key(w, o);
        break;
    case JWT_ES256:
    case JWT_EDDSA:
        k->pkey = point_key(w, o, k->alg == JWT_ES256);
        break;
    default:
        k->secret = b64_member(w, o, "k", JWKS_HMAC_MAX, &k->secret_len);
        if (k->secret != NULL && k->secret_len < JWKS_HMAC_MIN) {
            kerr(w, "k", "an HS256 key must be at least %d bytes", JWKS_HMAC_MIN);
            OPENSSL_clear_free(k->secret, k->secret_len);
            k->secret = NULL;
        }
        if (k->secret == NULL)
            return false;
        break;
    }
    if (k->alg != JWT_HS256 && k->pkey == NULL)
        return false;
    k->kid_len = strlen(kid->valuestring);
    k->kid = xstrndup(kid->valuestring, k->kid_len);
    return true;
}

struct jwks *jwks_parse(struct cfg_ctx *cx, const struct jp *path, const char *name,
                        const char *text, size_t len, unsigned algs)
{
    cJSON *doc = cJSON_ParseWithLength(text, len);
    const cJSON *keys = cfg_member(doc, "keys");
    struct kwhere w = { cx, path, name, 0 };
    struct jwks *ks;
    bool ok = true;

    if (doc == NULL || !J_IS_OBJECT(doc)) {
        cfg_errp(cx, path, "%s: not a JSON object (a JWKS is {\"keys\": [...]})", name);
        cJSON_Delete(doc);
        return NULL;
    }
    if (!J_IS_ARRAY(keys) || keys->child == NULL) {
        cfg_errp(cx, path, "%s: /keys: %s", name,
                 keys == NULL ? "is required" : "must be a non-empty array");
        cJSON_Delete(doc);
        return NULL;
    }
    size_t n = cfg_nchildren(keys);
    if (n > JWKS_MAX_KEYS) {
        cfg_errp(cx, path, "%s: /keys: more than %d keys", name, JWKS_MAX_KEYS);
        cJSON_Delete(doc);
        return NULL;
    }
    ks = xcalloc(1, sizeof(*ks));
    ks->keys = xcalloc(n, sizeof(*ks->keys));
    for (const cJSON *o = keys->child; o; o = o->next, w.i++) {
        if (parse_key(&w, o, algs, &ks->keys[ks->nkeys], ks))
            ks->nkeys++;
        else
            ok = false;
    }
    cJSON_Delete(doc);
    if (!ok) {
        jwks_free(ks);
        return NULL;
    }
    return ks;
}

struct jwks *jwks_load(struct cfg_ctx *cx, const struct jp *path, const char *file,
                       unsigned algs)
{
    size_t n;
    char *buf = pol_read_file(cx, path, file, JWKS_MAX_FILE, &n);
    struct jwks *ks = buf ? jwks_parse(cx, path, file, buf, n, algs) : NULL;

    free(buf);
    return ks;
}

const struct jwk *jwks_find(const struct jwks *ks, const char *kid, size_t len)
{
    for (size_t i = 0; ks != NULL && i < ks->nkeys; i++)
        if (ks->keys[i].kid_len == len && memcmp(ks->keys[i].kid, kid, len) == 0)
            return &ks->keys[i];
    return NULL;
}

void jwks_free(struct jwks *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->nkeys; i++) {
        EVP_PKEY_free(ks->keys[i].pkey);
        OPENSSL_clear_free(ks->keys[i].secret, ks->keys[i].secret_len);
        free(ks->keys[i].kid);
    }
    free(ks->keys);
    free(ks);
}
