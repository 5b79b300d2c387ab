/* jwt_conf.c - "auth": {"jwt": {...}} into a struct jwt_conf (jwt.h). */
#include "jwt.h"

#include <string.h>

#include "../core/arena.h"
#include "../core/cfgparse.h"
#include "../core/hdr.h"

#define CLAIM_NAME_MAX 64
#define SKEW_MAX       3600

static uint64_t conf_ids;       /* the last id given (atomic) */

/* RFC 9110 5.6.2 tchar */
static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* algorithms: ["RS256", ...] */
static void alg_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                     void *elem, void *arg)
{
    unsigned *algs = arg, bit;

    if (!J_IS_STRING(it)) {
        cfg_errp(cx, path, "must be a string");
        return;
    }
    if (strcmp(it->valuestring, "none") == 0) {
        cfg_errp(cx, path, "\"none\" is never allowed: a token must be signed");
        return;
    }
    bit = jwt_alg_bit(it->valuestring, strlen(it->valuestring));
    if (bit == 0) {
        cfg_errp(cx, path, "unknown algorithm \"%.32s\" (RS256, ES256, EdDSA or HS256)",
                 it->valuestring);
        return;
    }
    if (*algs & bit) {
        cfg_errp(cx, path, "\"%s\" is listed twice", it->valuestring);
        return;
    }
    *algs |= bit;
}

/* audiences: ["api", ...] */
static void aud_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                     void *elem, void *arg)
{
    if (!J_IS_STRING(it) || it->valuestring[0] == '\0') {
        cfg_errp(cx, path, "must be a non-empty string");
        return;
    }
    *(char **)elem = cfg_strdup(cx, it->valuestring);
}

/* The headers sluice sets itself or takes away on an authenticated
 * route: a claim may not be sent as one of them. */
static const char *reserved_header(const char *name)
{
    if (strcmp(name, "x-auth-id") == 0)
        return "is the auth id's header (the token's sub goes there already)";
    if (hdr_class(name, strlen(name)) != HDR_OTHER)
        return "is a header sluice writes itself";
    if (strcmp(name, "authorization") == 0)
        return "is the credential's header";
    return NULL;
}

/* claims_to_headers: {"claim": "header", ...} */
static void claim_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                       void *elem, void *arg)
{
    struct jwt_claim_hdr *m = elem, *all = m - i;
    const char *claim = it->string ? it->string : "", *why;
    char *h;

    if (claim[0] == '\0' || strlen(claim) > CLAIM_NAME_MAX) {
        cfg_errp(cx, path, "a claim name must be 1 to %d bytes", CLAIM_NAME_MAX);
        return;
    }
    if (!J_IS_STRING(it) || it->valuestring[0] == '\0') {
        cfg_errp(cx, path, "must be a header name (an HTTP token)");
        return;
    }
    for (const char *p = it->valuestring; *p; p++)
        if (!tchar((unsigned char)*p)) {
            cfg_errp(cx, path, "must be a header name (an HTTP token)");
            return;
        }
    h = cfg_strdup(cx, it->valuestring);
    for (char *p = h; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if ((why = reserved_header(h)) != NULL) {
        cfg_errp(cx, path, "\"%s\" %s", h, why);
        return;
    }
    for (size_t j = 0; j < i; j++)
        if (all[j].header != NULL && strcmp(all[j].header, h) == 0) {
            cfg_errp(cx, path, "header \"%s\" is given to two claims", h);
            return;
        }
    m->claim = cfg_strdup(cx, claim);
    m->claim_len = (uint32_t)strlen(claim);
    m->header = h;
    m->header_len = (uint32_t)strlen(h);
}

static void free_conf(struct jwt_conf *jc)
{
    jwks_free(jc->keys);
    cm_free_all(jc->mem);
    free(jc);
}

struct jwt_conf *jwt_conf_parse(struct cfg_ctx *cx0, const cJSON *v, const struct jp *path)
{
    static const char *const keys[] = {
        "jwks_file", "issuer", "audiences", "algorithms", "clock_skew_s", "claims_to_headers",
        NULL };
    enum { K_JWKS, K_ISS, K_AUD, K_ALGS, K_SKEW, K_CLAIMS };
    const struct cfg_list algs = { .key = "algorithms", .required = true, .each = alg_elem,
                                   .if_empty = "must list at least one algorithm" };
    const struct cfg_list auds = { .key = "audiences", .elem_size = sizeof(char *),
                                   .each = aud_elem,
                                   .if_empty = "must not be empty (leave it out instead)" };
    const struct cfg_list claims = { .key = "claims_to_headers", .object = true,
                                     .elem_size = sizeof(struct jwt_claim_hdr),
                                     .each = claim_elem };
    struct jwt_conf *jc = xcalloc(1, sizeof(*jc));
    /* everything the conf holds goes into its own arena, freed with
     * the keys by jwt_conf_free */
    struct cfg_ctx cxv = { cx0->errs, &jc->mem }, *cx = &cxv;
    size_t nerr = cx->errs->n, nalgs = 0;
    const cJSON *f[6];
    const char *file = NULL, *iss = NULL;

    jc->clock_skew_s = 60;
    if (!cfg_check_object(cx, v, path, keys, NULL, f))
        goto fail;
    cfg_list(cx, f[K_ALGS], path, &algs, &nalgs, &jc->algs);
    if (cfg_get_str(cx, f[K_ISS], path, "issuer", false, &iss) == CFG_OK) {
        if (iss[0] == '\0')
            cfg_errp(cx, JP_K(path, "issuer"), "must not be empty (leave it out instead)");
        else
            jc->issuer = cfg_strdup(cx, iss);
    }
    jc->audiences = cfg_list(cx, f[K_AUD], path, &auds, &jc->naudiences, NULL);
    cfg_get_u32(cx, f[K_SKEW], path, "clock_skew_s", 0, SKEW_MAX, &jc->clock_skew_s);
    jc->claims = cfg_list(cx, f[K_CLAIMS], path, &claims, &jc->nclaims, NULL);
    if (jc->nclaims > JWT_MAX_CLAIM_HDRS) {
        cfg_errp(cx, JP_K(path, "claims_to_headers"), "at most %d claims", JWT_MAX_CLAIM_HDRS);
    } else {
        /* every header at its longest must fit what the cache keeps */
        size_t worst = 0;
        for (size_t i = 0; i < jc->nclaims; i++)
            worst += jc->claims[i].header_len + 4 + JWT_CLAIM_VALUE_MAX;
        if (worst > JWT_HDRS_MAX)
            cfg_errp(cx, JP_K(path, "claims_to_headers"),
                     "too many headers: each may be %d bytes long and all must fit in %d",
                     JWT_CLAIM_VALUE_MAX, JWT_HDRS_MAX);
    }
    if (cfg_get_name(cx, f[K_JWKS], path, "jwks_file", true, &file) == CFG_OK) {
        jc->jwks_file = cfg_strdup(cx, file);
        /* the keys are checked against the algorithms: only once those
         * are known (else every key would be "not in algorithms") */
        if (cx->errs->n == nerr)
            jc->keys = jwks_load(cx, JP_K(path, "jwks_file"), file, jc->algs);
    }
    if (cx->errs->n != nerr)
        goto fail;
    jc->id = __atomic_add_fetch(&conf_ids, 1, __ATOMIC_RELAXED);
    return jc;
fail:
    free_conf(jc);
    return NULL;
}

void jwt_conf_free(struct jwt_conf *jc)
{
    if (jc != NULL)
        free_conf(jc);
}
