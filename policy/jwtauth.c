/*
 * jwtauth.c - auth.jwt as a policy check (pol_int.h): the route's conf
 * (jwt.h) tied to its config's life, and the check of a request's bearer
 * token through the worker's cache of verified tokens.
 */
#include "pol_int.h"
#include "jwt.h"
#include "../core/arena.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

static _Atomic uint64_t g_verified;

uint64_t pol_jwt_verifications_total(void)
{
    return atomic_load_explicit(&g_verified, memory_order_relaxed);
}

static void conf_free(void *jc)
{
    jwt_conf_free(jc);
}

struct jwt_conf *pol_jwt_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                               struct pol_auth *au)
{
    struct jwt_conf *jc = jwt_conf_parse(cx, v, path);

    if (jc == NULL)
        return NULL;
    /* the keys live as long as the config's arena, however it is shared */
    cm_on_free(cx->mem, conf_free, jc);
    au->cred_header = "authorization";
    au->cred_header_len = 13;
    /* a client may not send what the claims say */
    au->nstrip = jc->nclaims;
    au->strip = cfg_calloc(cx, jc->nclaims, sizeof(*au->strip));
    au->strip_lens = cfg_calloc(cx, jc->nclaims, sizeof(*au->strip_lens));
    for (size_t i = 0; i < jc->nclaims; i++) {
        au->strip[i] = jc->claims[i].header;
        au->strip_lens[i] = jc->claims[i].header_len;
    }
    return jc;
}

enum pol_verdict pol_jwt_check(const struct pol_auth *au, struct pol_txn *t,
                               const struct pol_req *r)
{
    /* RFC 6750 3.1: no error code when the request has no token */
    static const char missing[] = "WWW-Authenticate: Bearer\r\n";
    static const char invalid[] = "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n";
    const struct h1_header *h = pol_header(r, "authorization", 13);
    struct pol_worker *pw = t->pw;
    const struct jwt_id *id;

    if (h == NULL || !pol_prefix_ieq(h->value, h->value_len, "bearer ", 7))
        return pol_txn_deny(t, 401, missing);
    const char *tok = h->value + 7, *end = h->value + h->value_len;
    while (tok < end && *tok == ' ')
        tok++;
    if (tok == end)
        return pol_txn_deny(t, 401, missing);
    size_t n = (size_t)(end - tok);
    if (n > JWT_MAX_TOKEN)          /* not worth hashing */
        return pol_txn_deny(t, 401, invalid);
    if (pw->jcache == NULL)
        pw->jcache = jwt_cache_new(POL_JWT_CACHE);
    unsigned char digest[32];
    pol_sha256(pw, tok, n, digest);
    uint64_t hits, misses, misses0;
    jwt_cache_counts(pw->jcache, &hits, &misses0);
    enum jwt_err e = jwt_check(pw->jcache, au->jwt, tok, n, digest, (int64_t)time(NULL), &id);
    jwt_cache_counts(pw->jcache, &hits, &misses);
    if (misses != misses0)      /* a verification: rare enough to share a counter */
        atomic_fetch_add_explicit(&g_verified, 1, memory_order_relaxed);
    if (e != JWT_OK)
        return pol_txn_deny(t, 401, invalid);
    pol_txn_set_auth_id(t, id->auth_id, id->auth_id_len);
    if (id->hdrs_len) {
        struct pol_buf *b = pol_txn_buf(t);
        /* auth runs first: nothing is in the buffer yet, and JWT_HDRS_MAX
         * is far below its size */
        if (b->used == b->up_len && b->up_len + id->hdrs_len <= POL_BUF_CAP) {
            memcpy(b->data + b->up_len, id->hdrs, id->hdrs_len);
            b->up_len += id->hdrs_len;
            b->used = b->up_len;
        }
    }
    return POL_ALLOW;
}

void pol_jwt_worker_end(struct pol_worker *pw)
{
    jwt_cache_free(pw->jcache);
    pw->jcache = NULL;
}
