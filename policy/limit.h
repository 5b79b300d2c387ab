/*
 * limit.h - (policy) a route's `rate_limit` and `token_budget`, and the
 * document's `rate_limit_store` and `limits.max_rate_limit_keys` (SPEC
 * "Traffic policy"): their config, the key of a request, and the two
 * checks, in process (rate.h) or through Redis (redis.h).
 *
 * The key of a request (`per`): client_ip (the address's bytes), auth_id
 * (the auth id the auth check set; the route must have `auth`), route (one
 * key for the route), header:NAME (the header's value; requests without it
 * share one key).  A key's identity also holds the route's name and its
 * limits, so two routes never share a bucket and a reload that keeps a
 * route's name and limits keeps its buckets.
 *
 * Token budgets: after a budgeted request is allowed, the gateway scans
 * the response body with a struct pol_usage (usage.h) and calls
 * pol_budget_end when the transaction ends, which debits the usage found.
 *
 * Owns: struct pol_limit (in the config's arena), struct pol_store
 * (malloc'd, refcounted by the configs that hold it).  May call: rate.h,
 * redis.h, usage.h, core/.
 */
#ifndef SLUICE_POLICY_LIMIT_H
#define SLUICE_POLICY_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/cfgerr.h"

struct cJSON;
struct pol_txn;
struct pol_req;
struct pol_worker;

enum pol_per { POL_PER_CLIENT_IP = 0, POL_PER_AUTH_ID, POL_PER_ROUTE, POL_PER_HEADER };

struct pol_limit {
    uint8_t per;                /* enum pol_per */
    bool budget;                /* token_budget, else rate_limit */
    const char *hname;          /* per header:NAME, lower-case */
    uint32_t hlen;
    const char *ident;          /* "rl|route|rps|burst" / "tb|route|tpm": the key's identity */
    size_t ident_len;
    const char *route;          /* the route's name (metrics) */
    /* rate_limit */
    uint64_t t_ns, tau_ns;      /* emission interval, (burst - 1) * t_ns */
    /* token_budget */
    uint64_t per_token_ns, cap_ns;
};

/* The document-wide part: the in-process table and the Redis store. */
struct pol_store {
    struct pol_ktab *tab;       /* NULL when no route limits */
    char *redis_host;           /* NULL: in-process */
    uint16_t redis_port;
    bool deny_on_error;         /* on_error "deny" */
};

/* Parse a route's rate_limit (budget false) or token_budget at path;
 * route: the route's name ("_N" for an unnamed one at position N, as its
 * metrics call it; copied); has_auth: the route has an auth section (per
 * auth_id needs one). */
struct pol_limit *pol_limit_parse(struct cfg_ctx *cx, const struct cJSON *v, const struct jp *path,
                                  bool budget, const char *route, bool has_auth);

/* Parse the top-level rate_limit_store (v may be NULL) and build the
 * document's store; max_keys is limits.max_rate_limit_keys.  need_table:
 * some route has a limit.  NULL on error (reported at path) or when there
 * is nothing to hold. */
struct pol_store *pol_store_new(struct cfg_ctx *cx, const struct cJSON *v, const struct jp *path,
                                uint32_t max_keys, bool need_table);
void pol_store_free(struct pol_store *s);

/* The checks (policy.c's order runs them after auth).  r->store must be
 * the request's config's store. */
int pol_limit_check(const struct pol_limit *l, struct pol_txn *t, const struct pol_req *r);

/* The response of a budgeted request ended: debit what its scanner found
 * (counted in sluice_tokens_total).  Does nothing for other requests. */
void pol_budget_end(struct pol_txn *t, const struct pol_store *s);

/* The worker's Redis connection (pol_worker_free). */
void pol_limit_worker_free(struct pol_worker *pw);

/* sluice_tokens_total: call fn for every (route, auth id, kind) counted. */
typedef void (*pol_tokens_fn)(void *arg, const char *route, const char *auth_id, const char *kind,
                              uint64_t v);
void pol_tokens_each(pol_tokens_fn fn, void *arg);

#endif
