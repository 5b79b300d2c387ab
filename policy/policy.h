/*
 * policy.h - (policy) the traffic policy of a route (SPEC "Traffic policy
 * (route fields)"): who may call it (access lists, authentication) and how
 * much (rate limits, token budgets), compiled at config load and checked
 * by the gateway between the route and the upstream (gateway/guard.c).
 *
 * Owns: struct pol_route (a route's checks, in the config's arena: a
 * route with a policy is never shared with a later config, so every reload
 * reads its keys and users files again), struct pol_worker (what one
 * worker thread keeps for the checks: caches, its end of the verifier
 * thread), struct pol_txn (one request's progress through the checks).
 * May call: core/ only (plus OpenSSL, libcrypt, libevent, cJSON).
 *
 * Checks run in the SPEC's order, each answering at once on a deny:
 * access -> auth -> rate_limit -> token_budget.  A check that cannot
 * answer on the spot (a hash off the event loop, a subrequest, a store
 * round trip) answers POL_PENDING and later calls the request's done
 * callback once, on the worker thread that asked, unless the request
 * cancelled it first (pol_txn_cancel); every pending check has a timeout.
 *
 * Threads: a struct pol_route is read-only after parsing and shared by all
 * workers; a struct pol_worker and the pol_txns of its requests belong to
 * one worker thread.
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../core/cfgerr.h"
#include "../core/httpmsg.h"
#include "../core/nidx.h"

struct cJSON;
struct event_base;

enum pol_verdict { POL_ALLOW = 0, POL_DENY, POL_PENDING };

/* The checks, in the order they run (also the metrics' check label). */
enum pol_check { POL_CHECK_ACCESS = 0, POL_CHECK_AUTH, POL_CHECK_RATE, POL_CHECK_BUDGET, POL_NCHECKS };
/* A decision's result label: allowed, denied, or error (a store or an auth
 * upstream that failed: the request got a 503, or went through on
 * on_error "allow"). */
enum pol_result { POL_RES_ALLOWED = 0, POL_RES_DENIED, POL_RES_ERROR, POL_NRESULTS };
extern const char *const pol_check_names[POL_NCHECKS];
extern const char *const pol_result_names[POL_NRESULTS];

enum pol_auth_kind { POL_AUTH_NONE = 0, POL_AUTH_API_KEY, POL_AUTH_JWT, POL_AUTH_BASIC, POL_AUTH_FORWARD };

struct pol_access;      /* access.c: the CIDR lists */
struct pol_apikey;      /* apikey.c: the keys file */
struct pol_basic;       /* basic.c: the users file */

/* auth.forward: a subrequest to an upstream of the document (the gateway
 * sends it: it owns the pool and the balancers). */
struct pol_fwdauth {
    char *upstream;             /* its name */
    size_t upstream_idx;        /* position in the document's upstreams */
    char *path;                 /* the subrequest's path: "/check" */
    size_t path_len;
    char **copy_headers;        /* lower-case names copied from a 2xx answer upstream */
    uint32_t *copy_lens;
    size_t ncopy;
};

struct pol_auth {
    enum pol_auth_kind kind;
    bool forward_credential;    /* the credential goes upstream too */
    /* the header that carries the credential (lower-case), removed from the
     * request sent upstream unless forward_credential; NULL for forward
     * auth, which passes every header to its upstream and removes none */
    const char *cred_header;
    uint32_t cred_header_len;
    /* headers the check itself sends upstream (jwt's claims_to_headers):
     * a client's own of these names are removed, as x-auth-id is.
     * Lower-case; nstrip 0 = none */
    char **strip;
    uint32_t *strip_lens;
    size_t nstrip;
    struct pol_apikey *api_key;
    struct pol_basic *basic;
    struct pol_fwdauth *forward;
};

/* One route's policy (NULL on a route without one). */
struct pol_route {
    struct pol_access *access;  /* NULL = no access lists */
    struct pol_auth *auth;      /* NULL = no authentication */
};

/*
 * Parse a route's policy members (each NULL when absent) of the route at
 * path into *out (NULL when the route has none), in cx's arena.  Files
 * named (keys_file, users_file) are read here.  upstreams maps upstream
 * names to positions (auth.forward).  Errors go to cx with their JSON
 * paths; fields not built are refused.
 */
struct pol_conf_in {
    const struct cJSON *access, *auth, *rate_limit, *token_budget;
    const struct nidx *upstreams;
};
void pol_conf_route(struct cfg_ctx *cx, const struct pol_conf_in *in, const struct jp *path,
                    struct pol_route **out);

/* ---- run time ---- */

/* What the checks read of a request; the slices point into the request's
 * head and are valid only during the call that is given them. */
struct pol_req {
    const struct sockaddr *peer;            /* the client's address */
    const char *method;   uint32_t method_len;
    const char *target;   uint32_t target_len;
    const struct h1_header *headers; size_t nheaders;
};

/* Bytes a request's checks produce beyond the verdict: header lines for
 * the upstream (x-auth-id, copied headers), and a deny answer's headers
 * and body (a forward auth 401/403).  One per request at most, borrowed
 * from the worker (pol_txn_buf) and given back with the request. */
#define POL_BUF_CAP (16u * 1024)
struct pol_buf {
    struct pol_buf *next;       /* the worker's free list */
    uint32_t up_len;            /* data[0, up_len): header lines for the upstream */
    uint32_t hdr_off, hdr_len;  /* a deny answer's header lines */
    uint32_t body_off, body_len;/* a deny answer's body */
    uint32_t used;
    char data[POL_BUF_CAP];
};

#define POL_AUTH_ID_MAX 128

struct pol_worker;
struct pol_txn;
/* A pending check finished: the txn's verdict is in t->verdict. */
typedef void (*pol_done_fn)(void *owner);

/*
 * One request's progress through the checks.  The gateway zeroes it when
 * the request starts, sets owner/done, and calls pol_txn_end() when the
 * request ends (which cancels a pending check).
 */
struct pol_txn {
    uint8_t next;               /* enum pol_check: the next check to run */
    uint8_t verdict;            /* enum pol_verdict of the last check run */
    bool pending;               /* a check is in flight: done will be called */
    bool has_auth_id;
    uint16_t status;            /* a deny: 401, 403, 429, 503 */
    uint8_t auth_id_len;
    uint8_t result;             /* enum pol_result of the last check (metrics) */
    uint32_t retry_after_s;     /* a 429: Retry-After */
    uint8_t res[POL_NCHECKS];   /* each check's enum pol_result + 1; 0 = not run */
    const char *challenge;      /* a 401: the WWW-Authenticate line, CRLF-ended (static) */
    struct pol_buf *buf;        /* NULL until a check needs one */
    /* the pending operation: cancel(op) stops it without calling done */
    void *op;
    void (*cancel)(struct pol_txn *t);
    pol_done_fn done;
    void *owner;
    struct pol_worker *pw;
    char auth_id[POL_AUTH_ID_MAX];
};

/* A buffer for t's extra bytes (taken from the worker once per request). */
struct pol_buf *pol_txn_buf(struct pol_txn *t);
/* Set the auth id (cut at POL_AUTH_ID_MAX; bytes other than visible ASCII
 * become '_', so it is safe in a header and a log line). */
void pol_txn_set_auth_id(struct pol_txn *t, const char *id, size_t n);
/* A deny: status (and for a 401 its challenge line). */
enum pol_verdict pol_txn_deny(struct pol_txn *t, int status, const char *challenge);
/* A pending check completes: sets the verdict and calls done (worker thread). */
void pol_txn_complete(struct pol_txn *t, enum pol_verdict v);
/* The request ends: a pending check is cancelled, the buffer given back. */
void pol_txn_end(struct pol_txn *t);

/*
 * Run the route's checks from t->next on: POL_ALLOW when all passed,
 * POL_DENY (t->status and friends say how to answer), or POL_PENDING (done
 * will be called; then call pol_run again to go on).  Checks the policy
 * does not have are skipped.  pw and owner/done must be set in t.
 */
enum pol_verdict pol_run(const struct pol_route *p, struct pol_txn *t, const struct pol_req *r);

/* The gateway's hook for auth.forward (the gateway owns the upstreams):
 * start the subrequest for t, answer as a check does (POL_PENDING usually). */
typedef enum pol_verdict (*pol_forward_fn)(void *ctx, const struct pol_fwdauth *f,
                                           struct pol_txn *t, const struct pol_req *r);

/* The worker's side: caches, the verifier's answers, the buffer list.
 * Created on the worker thread's event base before it runs requests. */
struct pol_worker *pol_worker_new(struct event_base *base, pol_forward_fn fwd, void *fwd_ctx);
/* After every request of the worker ended (pending checks cancelled): waits
 * for its jobs still with the verifier threads, then frees. */
void pol_worker_free(struct pol_worker *pw);

/* Counters of work done (for /metrics): password hashes computed. */
uint64_t pol_hashes_total(void);

/* Decision counting is the gateway's (per route, sluice_policy_decisions_
 * total): once the sequence ends, t->res[check] holds each check's result
 * + 1 (0: it did not run). */

#endif
