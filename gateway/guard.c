/*
 * guard.c - a route's policy checks for one request (policy/policy.h):
 * the step between the route and the upstream (SPEC "Traffic policy").
 *
 * A check that answers on the spot (access lists, an API key, a cached
 * credential) costs a function call.  One that pends (a password hash on
 * the verifier thread, a forward auth subrequest) leaves the connection in
 * C_GUARD with nothing sent upstream and nothing more read from the
 * client, as C_ROUTE waits for a body: the request's head stays in `in`,
 * and proxy.c parses it again when the check's completion arrives on this
 * worker's loop.  The client is watched meanwhile (guard_watch): going
 * away ends the txn at once, which cancels the pending check (pol_txn_end
 * in txn.c): a forward auth subrequest's connection is closed, as a proxied
 * request's is when its client leaves.
 *
 * Decisions are counted per route (sluice_policy_decisions_total).
 */
#include "conn.h"
#include "../core/check.h"

#include <stdio.h>
#include <string.h>

static void req_of(struct gw_conn *c, const struct h1_request *r, struct pol_req *q)
{
    q->peer = &c->peer.sa;
    q->method = r->method;
    q->method_len = r->method_len;
    q->target = r->target;
    q->target_len = r->target_len;
    q->headers = r->headers;
    q->nheaders = r->nheaders;
    q->store = conn_cfg(c)->pstore;
}

static struct gw_route_stats *route_stats(struct gw_conn *c)
{
    struct gw_txn *t = c->t;

    if (t->rs)
        return t->rs;
    return t->ws->rstats[t->route->index] ? t->ws->rstats[t->route->index]
                                          : gw_wsnap_route_stats(c->w, t->ws, t->route);
}

/* Every check that decided: counted once, when the sequence ends. */
static void count(struct gw_conn *c)
{
    struct gw_route_stats *rs = route_stats(c);
    struct pol_txn *p = &c->t->pol;

    for (int k = 0; k < POL_NCHECKS; k++)
        if (p->res[k])
            gw_cnt_add(&rs->policy[k][p->res[k] - 1], 1);
}

/* A deny's answer: the status, its challenge or Retry-After, and for a
 * forward auth 401/403 the auth upstream's own headers and body. */
static void deny(struct gw_conn *c)
{
    struct pol_txn *p = &c->t->pol;
    char extra[POL_BUF_CAP / 2 + 256];     /* a forward auth answer's lines fit (authreq.c) */
    size_t n = 0;
    const char *body = NULL;
    size_t body_len = 0;

    extra[0] = '\0';
    if (p->challenge)
        n = (size_t)snprintf(extra, sizeof(extra), "%s", p->challenge);
    else if (p->status == 429)
        n = (size_t)snprintf(extra, sizeof(extra), "Retry-After: %u\r\n",
                             p->retry_after_s ? p->retry_after_s : 1);
    if (p->buf && p->buf->hdr_len && n + p->buf->hdr_len < sizeof(extra)) {
        memcpy(extra + n, p->buf->data + p->buf->hdr_off, p->buf->hdr_len);
        n += p->buf->hdr_len;
        extra[n] = '\0';
    }
    if (p->buf && p->buf->body_len) {     /* its Content-Type is in the header lines */
        body = p->buf->data + p->buf->body_off;
        body_len = p->buf->body_len;
    }
    local_response(c, p->status ? p->status : 403, NULL, body, body_len,
                   n ? extra : NULL);
}

static enum pol_verdict settle(struct gw_conn *c, enum pol_verdict v)
{
    if (v == POL_PENDING) {
        c->state = C_GUARD;
        conn_timer_off(c);      /* the pending check has its own timeout */
        return v;
    }
    count(c);
    if (v == POL_DENY)
        deny(c);
    return v;
}

enum pol_verdict guard_start(struct gw_conn *c, const struct h1_request *r, pol_done_fn done)
{
    struct gw_txn *t = c->t;
    struct pol_req q;

    t->pol.pw = c->w->pol;
    t->pol.owner = c;
    t->pol.done = done;
    req_of(c, r, &q);
    return settle(c, pol_run(t->route->policy, &t->pol, &q));
}

enum pol_verdict guard_resume(struct gw_conn *c, const struct h1_request *r)
{
    struct pol_req q;

    BUG_ON(c->state != C_GUARD);
    c->state = C_ACTIVE;
    c->r_ready = true;      /* guard_watch may have cleared it with bytes waiting (a body) */
    req_of(c, r, &q);
    return settle(c, pol_run(c->t->route->policy, &c->t->pol, &q));
}

bool guard_watch(struct gw_conn *c)
{
    if (c->r_ready && client_peek(c) < 0)
        txn_end(c, GW_END_CLIENT_CLOSED);   /* (counted by reason, as any client leaving) */
    return false;
}

void gw_guard_init(struct gw_worker *w)
{
    w->pol = pol_worker_new(w->base, gw_areq_start, w);
    fl_init(&w->free_areqs, 256);
}

void gw_guard_free(struct gw_worker *w)
{
    pol_worker_free(w->pol);
    w->pol = NULL;
    gw_areqs_free(w);
}
