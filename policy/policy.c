/*
 * policy.c - a route's policy section (policy.h): parsing the members,
 * the order the checks run in, a request's state, the worker's state.
 */
#include "pol_int.h"
#include "../core/arena.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const pol_check_names[POL_NCHECKS] = { "access", "auth", "rate_limit", "token_budget" };
const char *const pol_result_names[POL_NRESULTS] = { "allowed", "denied", "error" };

/* ---- config */

/* auth: exactly one of the kinds, and forward_credential. */
static struct pol_auth *parse_auth(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                   const struct nidx *upstreams)
{
    static const char *const keys[] = { "api_key", "jwt", "basic", "forward", "forward_credential", NULL };
    const cJSON *f[5];
    struct pol_auth *au;
    int nkinds = 0;

    if (!cfg_check_object(cx, v, path, keys, NULL, f))
        return NULL;
    for (int i = 0; i < 4; i++)
        nkinds += f[i] != NULL;
    if (nkinds != 1) {
        cfg_errp(cx, path, nkinds ? "holds more than one kind; keep exactly one of api_key, jwt, basic, forward"
                                  : "needs one of api_key, jwt, basic, forward");
        return NULL;
    }
    au = cfg_calloc(cx, 1, sizeof(*au));
    cfg_get_bool(cx, f[4], path, "forward_credential", &au->forward_credential);
    if (f[0]) {
        au->kind = POL_AUTH_API_KEY;
        au->api_key = pol_apikey_parse(cx, f[0], JP_K(path, "api_key"), au);
    } else if (f[1]) {
        au->kind = POL_AUTH_JWT;
        au->jwt = pol_jwt_parse(cx, f[1], JP_K(path, "jwt"), au);
    } else if (f[2]) {
        au->kind = POL_AUTH_BASIC;
        au->basic = pol_basic_parse(cx, f[2], JP_K(path, "basic"), au);
    } else {
        au->kind = POL_AUTH_FORWARD;
        au->forward = pol_fwdauth_parse(cx, f[3], JP_K(path, "forward"), upstreams, au);
    }
    return au;
}

void pol_conf_route(struct cfg_ctx *cx, const struct pol_conf_in *in, const struct jp *path,
                    struct pol_route **out)
{
    struct pol_route *p;

    *out = NULL;
    if (!in->access && !in->auth && !in->rate_limit && !in->token_budget)
        return;
    p = cfg_calloc(cx, 1, sizeof(*p));
    if (in->access)
        p->access = pol_access_parse(cx, in->access, JP_K(path, "access"));
    if (in->auth)
        p->auth = parse_auth(cx, in->auth, JP_K(path, "auth"), in->upstreams);
    if (in->rate_limit)
        p->rate = pol_limit_parse(cx, in->rate_limit, JP_K(path, "rate_limit"), false,
                                  in->route_name, in->auth != NULL);
    if (in->token_budget)
        p->budget = pol_limit_parse(cx, in->token_budget, JP_K(path, "token_budget"), true,
                                    in->route_name, in->auth != NULL);
    *out = p;
}

/* One check; t->result says how it went when it did not pend. */
static enum pol_verdict run_one(const struct pol_route *p, struct pol_txn *t,
                                const struct pol_req *r, enum pol_check k)
{
    switch (k) {
    case POL_CHECK_ACCESS:
        if (p->access == NULL)
            return POL_ALLOW;
        if (pol_access_allows(p->access, r->peer))
            return POL_ALLOW;
        return pol_txn_deny(t, 403, NULL);
    case POL_CHECK_AUTH:
        if (p->auth == NULL)
            return POL_ALLOW;
        switch (p->auth->kind) {
        case POL_AUTH_API_KEY:
            return pol_apikey_check(p->auth, t, r);
        case POL_AUTH_BASIC:
            return pol_basic_check(p->auth, t, r);
        case POL_AUTH_JWT:
            return pol_jwt_check(p->auth, t, r);
        case POL_AUTH_FORWARD:
            return t->pw->fwd(t->pw->fwd_ctx, p->auth->forward, t, r);
        default:
            return pol_txn_deny(t, 503, NULL);      /* parsing refuses the others */
        }
    case POL_CHECK_RATE:
        return (enum pol_verdict)pol_limit_check(p->rate, t, r);
    case POL_CHECK_BUDGET:
        t->budget = p->budget;
        return (enum pol_verdict)pol_limit_check(p->budget, t, r);
    default:
        return POL_ALLOW;
    }
}

/* Does the route have check k? (only those are counted) */
static bool has_check(const struct pol_route *p, enum pol_check k)
{
    switch (k) {
    case POL_CHECK_ACCESS: return p->access != NULL;
    case POL_CHECK_AUTH:   return p->auth != NULL;
    case POL_CHECK_RATE:   return p->rate != NULL;
    case POL_CHECK_BUDGET: return p->budget != NULL;
    default:               return false;
    }
}

enum pol_verdict pol_run(const struct pol_route *p, struct pol_txn *t, const struct pol_req *r)
{
    if (t->pending)
        return POL_PENDING;
    /* a check that pended has finished: its verdict stands */
    if (t->next > 0 && t->verdict != POL_PENDING && t->res[t->next - 1] == 0 &&
        has_check(p, (enum pol_check)(t->next - 1))) {
        t->res[t->next - 1] = (uint8_t)(t->result + 1);
        if (t->verdict == POL_DENY)
            return POL_DENY;
    }
    while (t->next < POL_NCHECKS) {
        enum pol_check k = (enum pol_check)t->next++;
        if (!has_check(p, k))
            continue;
        t->result = POL_RES_ALLOWED;
        enum pol_verdict v = run_one(p, t, r, k);
        t->verdict = (uint8_t)v;
        if (v == POL_PENDING) {
            t->pending = true;
            return v;
        }
        t->res[k] = (uint8_t)(t->result + 1);
        if (v == POL_DENY)
            return v;
    }
    return POL_ALLOW;
}

/* ---- the worker */

struct pol_worker *pol_worker_new(struct event_base *base, pol_forward_fn fwd, void *fwd_ctx)
{
    struct pol_worker *pw = xcalloc(1, sizeof(*pw));

    pw->base = base;
    pw->fwd = fwd;
    pw->fwd_ctx = fwd_ctx;
    pw->vpipe[0] = pw->vpipe[1] = -1;
    return pw;
}

void pol_worker_free(struct pol_worker *pw)
{
    if (pw == NULL)
        return;
    pol_basic_worker_end(pw);
    while (pw->free_bufs) {
        struct pol_buf *b = pw->free_bufs;
        pw->free_bufs = b->next;
        free(b);
    }
    if (pw->vev)
        event_free(pw->vev);
    if (pw->vpipe[0] != -1) {
        close(pw->vpipe[0]);
        close(pw->vpipe[1]);
    }
    pol_bcache_free(pw->bcache);
    EVP_MD_CTX_free(pw->md);
    pol_jwt_worker_end(pw);
    pol_limit_worker_free(pw);
    free(pw);
}
