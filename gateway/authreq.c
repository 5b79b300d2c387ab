/*
 * authreq.c - auth.forward: the subrequest to an auth upstream (nginx's
 * auth_request, Traefik's ForwardAuth), so oauth2-proxy or Authelia can
 * decide for sluice.
 *
 * The subrequest is an HTTP/1.1 exchange over the upstream's normal
 * machinery: a target picked by its balancer (health included), a pooled
 * connection when there is one (else a new one, TLS when the upstream has
 * it), its connect_ms and response_header_ms.  It carries the client's
 * method and headers (no body; hop-by-hop and framing headers dropped) to
 * the configured path, plus X-Forwarded-Method/-Uri/-Host/-Proto/-For and
 * X-Original-URI, the headers auth services read.
 *
 * The answer: 2xx allows (the copy_headers listed go upstream, X-Auth-Id is
 * the auth id); 401 and 403 go back to the client with their
 * WWW-Authenticate, Content-Type and body (up to AREQ_BODY_MAX, of known
 * length or chunked: a chunked one is decoded; a longer one, or one that
 * does not fit the buffer, is replaced by sluice's own);
 * anything else, a timeout, a failed connect or no healthy target: 503.
 *
 * The connection's owner is the struct gw_areq (not the client's gw_conn):
 * proxy.c's upstream callbacks tell the two apart by their magic.  The
 * client going away cancels the subrequest (its connection is closed).
 */
#include "conn.h"
#include "../core/check.h"
#include "../core/hdr.h"
#include "../core/sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AREQ_BODY_MAX 4096u

struct gw_areq {
    uint32_t magic;                 /* AREQ_MAGIC (first: proxy.c reads it) */
    struct fl_node fl;              /* the worker's free list */
    struct gw_worker *w;
    struct pol_txn *pt;
    const struct pol_fwdauth *fa;
    const struct up_upstream *ups;
    const struct up_target *target;
    struct gw_wsnap *ws;            /* pinned by the client's txn while we live */
    struct up_conn *up;
    struct gw_buf *buf;             /* the request, then the response */
    uint32_t req_len, sent;
    enum h1_method method;
    bool head_done;
    bool retried;                   /* a stale pooled connection was replaced */
    uint32_t hlen;                  /* the response head's length, once parsed */
};

/* The client's headers that do not go to the auth upstream: sluice's own
 * framing and hop-by-hop ones, and the X-Forwarded-* it writes itself. */
static bool skip_header(const struct h1_header *h)
{
    switch (hdr_class(h->name, h->name_len)) {
    case HDR_OTHER:
    case HDR_XRID:
    case HDR_XFF:
        return false;
    default:
        return true;
    }
}

static bool build_request(struct gw_areq *a, const struct pol_req *r, const char *ip, size_t iplen,
                          bool https)
{
    struct gw_buf *b = a->buf;
    struct sbuf s = sb_init(b->data, b->cap);
    const struct h1_header *host = NULL, *xff = NULL;

    sb_put(&s, r->method, r->method_len);
    SB_LIT(&s, " ");
    sb_put(&s, a->fa->path, a->fa->path_len);
    SB_LIT(&s, " HTTP/1.1\r\nHost: ");
    sb_str(&s, a->target->host);
    SB_LIT(&s, "\r\n");
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        enum hdr_class k = hdr_class(h->name, h->name_len);
        if (k == HDR_HOST && host == NULL)
            host = h;
        if (k == HDR_XFF && xff == NULL) {
            xff = h;
            continue;
        }
        if (skip_header(h))
            continue;
        sb_put(&s, h->name, h->name_len);
        SB_LIT(&s, ": ");
        sb_put(&s, h->value, h->value_len);
        SB_LIT(&s, "\r\n");
    }
    SB_LIT(&s, "X-Forwarded-Method: ");
    sb_put(&s, r->method, r->method_len);
    SB_LIT(&s, "\r\nX-Forwarded-Uri: ");
    sb_put(&s, r->target, r->target_len);
    SB_LIT(&s, "\r\nX-Original-URI: ");
    sb_put(&s, r->target, r->target_len);
    SB_LIT(&s, "\r\nX-Forwarded-Proto: ");
    sb_str(&s, https ? "https" : "http");
    if (host) {
        SB_LIT(&s, "\r\nX-Forwarded-Host: ");
        sb_put(&s, host->value, host->value_len);
    }
    SB_LIT(&s, "\r\nX-Forwarded-For: ");
    if (xff && xff->value_len) {
        sb_put(&s, xff->value, xff->value_len);
        SB_LIT(&s, ", ");
    }
    sb_put(&s, ip, iplen);
    SB_LIT(&s, "\r\nContent-Length: 0\r\n\r\n");
    if (s.overflow)
        return false;
    a->req_len = (uint32_t)s.len;
    b->end = 0;
    return true;
}

static void areq_free(struct gw_areq *a)
{
    struct gw_worker *w = a->w;

    gw_buf_put(w, a->buf);
    a->magic = 0;
    if (!fl_push(&w->free_areqs, &a->fl))
        free(a);
}

static void areq_free_node(struct fl_node *n)
{
    free((char *)n - offsetof(struct gw_areq, fl));
}

void gw_areqs_free(struct gw_worker *w)
{
    fl_drain(&w->free_areqs, areq_free_node);
}

/* The subrequest ends with verdict v for the request (t's status and
 * bytes already set); the connection is pooled when keep says so. */
static void areq_done(struct gw_areq *a, enum pol_verdict v, bool keep)
{
    struct pol_txn *pt = a->pt;

    if (a->up) {
        if (keep) {
            struct pool_facts f = {
                .resp_done = true, .req_sent = true, .keepalive = true,
                .draining = a->w->draining, .max_idle = a->ups->cfg->max_idle_per_target,
            };
            up_conn_checkin(&a->up, a->ws->buckets[a->target->gidx], &f,
                            a->ups->cfg->pool_idle_timeout_ms);
        } else {
            up_conn_close(a->up);
        }
    }
    areq_free(a);
    pol_txn_complete(pt, v);
}

/* A connection for the subrequest: a pooled one (reuse), else a new one.
 * False when none could be had (logged; nothing left open). */
static bool areq_connect(struct gw_areq *a, bool reuse)
{
    struct gw_worker *w = a->w;
    const struct up_upstream *ups = a->ups;
    struct pool_bucket *b = a->ws->buckets[a->target->gidx];

    a->sent = 0;
    if (reuse && up_conn_reuse(&w->up, b, a->target, a, &a->up)) {
        /* an idle pooled socket takes the request at once; written from
         * the loop (an answer never comes back inside the caller's check) */
        w->turn.ok = false;
        event_active(&a->up->ev, EV_WRITE, 1);
        up_conn_timer_arm(a->up, ups->cfg->response_header_ms);
        return true;
    }
    SSL_CTX *tctx = gw_tls_upstream_ctx(a->ws->s->tls, (size_t)(ups - a->ws->s->ups.v));
    int err = 0;
    switch (up_conn_open(&w->up, a->target, tctx, ups->cfg->tls, b, ups->cfg->connect_ms, 0, a, &a->up,
                         &err)) {
    case UP_OPEN_OK:
        return true;
    case UP_OPEN_CONNECT_ERR:
        gw_log(GW_LOG_WARN, "auth upstream %s: connect: %s: 503", a->target->text, strerror(err));
        up_conn_fail(a->up, false);
        return false;
    default:
        gw_log(GW_LOG_WARN, "auth upstream %s: cannot open a connection: 503", a->target->text);
        return false;
    }
}

static void areq_fail(struct gw_areq *a, const char *why, bool target_failed)
{
    /* A pooled connection the server closed meanwhile (nothing came back,
     * the request still whole in the buffer): once more on a new one, as
     * forward.c does for a stale connection; says nothing of the target. */
    if (a->up && a->up->reused && !a->head_done && a->buf->end == 0 && !a->retried) {
        a->retried = true;
        up_conn_close(a->up);
        if (areq_connect(a, false))
            return;
        pol_txn_deny(a->pt, 503, NULL);
        areq_done(a, POL_DENY, false);
        return;
    }
    gw_log(GW_LOG_WARN, "auth upstream %s: %s: 503", a->target->text, why);
    if (a->up && target_failed)
        up_conn_fail(a->up, false);
    pol_txn_deny(a->pt, 503, NULL);
    areq_done(a, POL_DENY, false);
}

static void areq_cancel(struct pol_txn *t)
{
    struct gw_areq *a = t->op;

    CHECK_MAGIC(a, AREQ_MAGIC);
    up_conn_close(a->up);
    areq_free(a);
}

/* A 2xx: the headers to copy upstream, and the auth id. */
static void allow(struct gw_areq *a, const struct h1_response *r)
{
    struct pol_txn *pt = a->pt;
    const struct pol_fwdauth *fa = a->fa;
    const struct h1_header *id = h1_find_header(r->headers, r->nheaders, "x-auth-id", 9);

    if (id && id->value_len)
        pol_txn_set_auth_id(pt, id->value, id->value_len);
    if (fa->ncopy == 0)
        return;
    struct pol_buf *b = pol_txn_buf(pt);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        for (size_t k = 0; k < fa->ncopy; k++) {
            if (h->name_len != fa->copy_lens[k] || !h1_casecmp(h->name, fa->copy_headers[k], h->name_len))
                continue;
            size_t need = h->name_len + h->value_len + 4;
            if (b->up_len + need > sizeof(b->data) / 2)
                break;      /* bounded: the rest is not copied */
            memcpy(b->data + b->up_len, fa->copy_headers[k], h->name_len);
            b->up_len += h->name_len;
            memcpy(b->data + b->up_len, ": ", 2);
            memcpy(b->data + b->up_len + 2, h->value, h->value_len);
            b->up_len += 2 + h->value_len;
            memcpy(b->data + b->up_len, "\r\n", 2);
            b->up_len += 2;
        }
    }
    b->used = b->up_len;
}

/* A 401/403 for the client: its challenge and content type, and its body
 * when it is here whole. */
static void deny(struct gw_areq *a, const struct h1_response *r, const char *body, size_t body_len)
{
    struct pol_txn *pt = a->pt;
    struct pol_buf *b = pol_txn_buf(pt);
    struct sbuf s = sb_init(b->data + b->used, sizeof(b->data) / 2);
    static const char *const pass[] = { "www-authenticate", "content-type" };

    pol_txn_deny(pt, r->status, NULL);
    b->hdr_off = b->used;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        for (size_t k = 0; k < 2; k++)
            if (h->name_len == strlen(pass[k]) && h1_casecmp(h->name, pass[k], h->name_len)) {
                if (k == 1 && body == NULL)
                    continue;   /* sluice's own body then: its own type */
                sb_put(&s, h->name, h->name_len);
                SB_LIT(&s, ": ");
                sb_put(&s, h->value, h->value_len);
                SB_LIT(&s, "\r\n");
            }
    }
    if (body && !h1_find_header(r->headers, r->nheaders, "content-type", 12))
        SB_LIT(&s, "Content-Type: application/octet-stream\r\n");
    if (s.overflow) {
        b->hdr_len = 0;
        return;
    }
    b->hdr_len = (uint32_t)s.len;
    b->used += b->hdr_len;
    if (body && body_len && b->used + body_len <= sizeof(b->data)) {
        b->body_off = b->used;
        memcpy(b->data + b->used, body, body_len);
        b->body_len = (uint32_t)body_len;
        b->used += (uint32_t)body_len;
    }
}

/* Walks the chunked body in p[0..len) from its start: H1C_DONE when it
 * ends there (*data_len its decoded length; with compact, its data moved to
 * p[0..*data_len), over the framing it had), H1C_AGAIN while more is needed,
 * H1C_ERROR for bad framing. */
static int dechunk(char *p, size_t len, bool compact, uint64_t *data_len)
{
    struct h1_chunked ck;
    size_t off = 0, out = 0;

    h1_chunked_init(&ck);
    for (;;) {
        size_t used = 0;
        int k = h1_chunked_next(&ck, p + off, len - off, &used);
        if (k == H1C_DATA) {
            if (compact)
                memmove(p + out, p + off, used);
            out += used;
        }
        off += used;
        if (k == H1C_DONE || k == H1C_ERROR || k == H1C_AGAIN) {
            *data_len = out;
            return k;
        }
    }
}

/* The response so far: false while more is needed. */
static bool read_response(struct gw_areq *a)
{
    struct up_conn *u = a->up;
    struct gw_buf *b = a->buf;
    struct h1_response *r = &a->w->resp;
    size_t scanned = 0;
    int rc;

    for (;;) {
        if (u->r_ready && b->end < b->cap) {
            ssize_t n = buf_read(&u->io, b, &u->r_ready, u->rdhup);
            if (n == 0 || n == -1) {
                areq_fail(a, "closed before a whole answer", true);
                return true;
            }
        }
        rc = h1_parse_response(b->data, b->end, b->cap, &scanned, a->method, r);
        if (rc == H1_INCOMPLETE) {
            if (b->end == b->cap) {
                areq_fail(a, "response header too large", false);
                return true;
            }
            if (!u->r_ready)
                return false;
            continue;
        }
        if (rc < 0) {
            areq_fail(a, "malformed response", false);
            return true;
        }
        if (r->status >= 200)
            break;
        memmove(b->data, b->data + rc, b->end - (uint32_t)rc);     /* a 1xx: skip it */
        b->end -= (uint32_t)rc;
        scanned = 0;
    }
    if (!a->head_done) {
        a->head_done = true;
        up_conn_answered(u, r->status);     /* (its timer off) */
        a->hlen = (uint32_t)rc;
        /* a body to wait for has a deadline too: a head and then silence
         * must not hold the request */
        up_conn_timer_arm(u, a->ups->cfg->response_header_ms);
    }
    /* the body: read whole when its length is known and small, or when a
     * 401/403's chunked one ends within the buffer (SPEC: passed back with
     * its body), decoded in place then */
    bool have_len = r->body == H1_BODY_NONE || r->body == H1_BODY_LENGTH;
    uint64_t blen = r->body == H1_BODY_LENGTH ? r->content_length : 0;
    bool small = have_len && blen <= AREQ_BODY_MAX && a->hlen + blen <= b->cap;
    bool keep;
    if (r->body == H1_BODY_CHUNKED && (r->status == 401 || r->status == 403)) {
        int ck = dechunk(b->data + a->hlen, b->end - a->hlen, false, &blen);
        if (ck == H1C_AGAIN && b->end < b->cap) {
            if (u->r_ready)
                return read_response(a);
            return false;
        }
        small = ck == H1C_DONE && blen <= AREQ_BODY_MAX;
        if (small)
            dechunk(b->data + a->hlen, b->end - a->hlen, true, &blen);
        keep = false;       /* bytes after the last chunk are not looked at */
    } else {
        if (small && b->end < a->hlen + blen) {
            if (u->r_ready)
                return read_response(a);
            return false;
        }
        keep = small && b->end == a->hlen + blen && r->keep_alive;
    }
    const char *body = small && blen ? b->data + a->hlen : NULL;
    if (r->status >= 200 && r->status < 300) {
        allow(a, r);
        areq_done(a, POL_ALLOW, keep);
    } else if (r->status == 401 || r->status == 403) {
        deny(a, r, body, (size_t)blen);
        areq_done(a, POL_DENY, keep);
    } else {
        char why[64];
        snprintf(why, sizeof(why), "answered %d", r->status);
        gw_log(GW_LOG_WARN, "auth upstream %s: %s: 503", a->target->text, why);
        pol_txn_deny(a->pt, 503, NULL);
        areq_done(a, POL_DENY, keep);
    }
    return true;
}

static void areq_io(struct gw_areq *a, struct up_conn *u)
{
    if (!u->connected)
        return;
    if (u->hs) {
        char why[300];
        int hs = up_conn_handshake(u, why, sizeof(why));
        if (hs == UP_HS_FAILED)
            areq_fail(a, why, false);
        if (hs != UP_HS_DONE)
            return;
    }
    if (a->sent < a->req_len) {
        if (!u->w_ready)
            return;
        struct iovec v = { a->buf->data + a->sent, a->req_len - a->sent };
        ssize_t n = gw_io_writev(&u->io, &v, 1);
        if (n == GW_IO_AGAIN) {
            u->w_ready = false;
            return;
        }
        if (n < 0) {
            areq_fail(a, "write failed", true);
            return;
        }
        a->sent += (uint32_t)n;
        if (a->sent < a->req_len)
            return;
        /* all sent: the answer has response_header_ms; the buffer takes it */
        a->buf->end = 0;
        up_conn_timer_arm(u, a->ups->cfg->response_header_ms);
    }
    read_response(a);
}

/* The upstream connection's events (proxy.c hands them over by the
 * owner's magic); what the completion closed or freed goes at the end. */
void areq_on_io(void *owner, struct up_conn *u)
{
    struct gw_areq *a = owner;

    CHECK_MAGIC(a, AREQ_MAGIC);
    struct gw_worker *w = a->w;
    areq_io(a, u);
    gw_gc(w);
}

void areq_on_connect_error(void *owner, struct up_conn *u, int err)
{
    struct gw_areq *a = owner;
    char why[128];

    CHECK_MAGIC(a, AREQ_MAGIC);
    struct gw_worker *w = a->w;
    snprintf(why, sizeof(why), "connect: %s", strerror(err));
    areq_fail(a, why, true);
    gw_gc(w);
}

void areq_on_timeout(void *owner, struct up_conn *u)
{
    struct gw_areq *a = owner;

    CHECK_MAGIC(a, AREQ_MAGIC);
    struct gw_worker *w = a->w;
    a->retried = true;      /* a silent target is not a stale connection: no second wait */
    areq_fail(a, !u->connected || u->hs ? "connect timed out"
                 : a->head_done ? "its body did not come within response_header_ms"
                 : "no answer within response_header_ms", true);
    gw_gc(w);
}

enum pol_verdict gw_areq_start(void *ctx, const struct pol_fwdauth *fa, struct pol_txn *t,
                               const struct pol_req *r)
{
    struct gw_worker *w = ctx;
    struct gw_conn *c = t->owner;

    CHECK_MAGIC(c, CONN_MAGIC);
    struct gw_wsnap *ws = c->t->ws;
    const struct up_upstream *ups = &ws->s->ups.v[fa->upstream_idx];
    if (ups->ntargets == 0)
        return pol_txn_deny(t, 503, NULL);
    struct up_wpick st = { ws->target_rr + ups->targets[0].gidx, &ws->ups_pos[ups->index], &ws->rng };
    int ti = up_pick(ups, &st, gw_now_ms(w), 0, NULL);
    if (ti < 0) {
        gw_log(GW_LOG_WARN, "auth upstream %s: no healthy target: 503", ups->cfg->name);
        return pol_txn_deny(t, 503, NULL);
    }
    struct gw_areq *a = fl_pop(&w->free_areqs, struct gw_areq, fl);
    if (a == NULL && (a = malloc(sizeof(*a))) == NULL)
        abort();
    memset(a, 0, sizeof(*a));
    a->magic = AREQ_MAGIC;
    a->w = w;
    a->pt = t;
    a->fa = fa;
    a->ups = ups;
    a->ws = ws;
    a->target = &ups->targets[ti];
    a->method = (enum h1_method)c->t->method;
    a->buf = gw_buf_get(w, GW_BUF_SMALL);
    char ip[INET6_ADDRSTRLEN];
    size_t iplen = peer_ip(c, ip, sizeof(ip));
    if (!build_request(a, r, ip, iplen, c->https)) {
        areq_free(a);
        gw_log(GW_LOG_WARN, "auth upstream %s: the request's headers do not fit a subrequest: 503",
               ups->cfg->name);
        return pol_txn_deny(t, 503, NULL);
    }
    t->op = a;
    t->cancel = areq_cancel;
    if (areq_connect(a, true))
        return POL_PENDING;
    t->op = NULL;
    t->cancel = NULL;
    areq_free(a);
    return pol_txn_deny(t, 503, NULL);
}
