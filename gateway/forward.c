/* forward.c - the transaction's upstream side: picking a connection (pooled
 * or new), retries to another target, sending the request, reading and
 * rebuilding the response head and body.  The connection itself (connect,
 * TLS, events, pool) is upstream/upconn.h's; this is the HTTP/1 exchange
 * over it, which needs the txn's queues and codec. */
#include "conn.h"
#include "access_log.h"
#include "h1_fwd.h"
#include "../core/io.h"
#include "tls.h"
#include "../core/check.h"
#include "../core/sbuf.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int fwd_pick(struct gw_conn *c, uint64_t tried)
{
    const struct up_upstream *u = c->t->ups;
    struct gw_wsnap *ws = c->t->ws;

    if (u->ntargets == 0)
        return -1;
    struct up_wpick st = { ws->target_rr + u->targets[0].gidx, &ws->ups_pos[u->index], &ws->rng };
    return up_pick(u, &st, gw_now_ms(c->w), tried, c->t->has_hkey ? &c->t->hkey : NULL);
}

/* A target failed before answering: try another one if the request allows
 * it (SPEC "retries"), else answer with status. */
void fwd_failed(struct gw_conn *c, int status, bool stale, enum gw_end reason, const char *why)
{
    struct up_conn *u = c->t->up;
    bool reached = u && u->connected;

    if (!stale)
        txn_target_failed(c);
    if (u)
        up_conn_fail(u, stale);     /* tells health/ unless stale or a refused certificate */
    gw_log(GW_LOG_WARN, "upstream %s: %s", c->t->target ? c->t->target->text : "-", why);
    /* Resend only what is still in the buffer.  SPEC: a request that is not
     * idempotent, or whose body was partly sent, is retried only if nothing
     * reached the target (a refused connect, or nothing written yet): never
     * a second copy of a body a target may have taken. */
    bool idempotent = c->t->method == H1_M_GET || c->t->method == H1_M_HEAD ||
                      c->t->method == H1_M_OPTIONS || c->t->method == H1_M_TRACE ||
                      c->t->method == H1_M_PUT || c->t->method == H1_M_DELETE;
    bool body_sent = c->t->up_sent > c->t->uhead_len;
    bool can = !c->t->resp_started && !c->t->body_lost && c->state == C_ACTIVE &&
               (!reached || c->t->up_sent == 0 || (idempotent && !body_sent));
    if (can && stale) {
        c->t->tried &= ~(1ull << ((c->t->target - c->t->ups->targets) & 63));
    } else if (can && c->t->attempts < c->t->ups->cfg->retries) {
        c->t->attempts++;
    } else {
        can = false;
    }
    if (can) {
        int ti = stale ? (int)(c->t->target - c->t->ups->targets) : fwd_pick(c, c->t->tried);
        if (ti >= 0) {
            if (!stale)     /* sluice_retries_total: another target, another attempt */
                gw_cnt_add(&c->t->ws->ustats[c->t->ups->index]->retries, 1);
            txn_target(c, &c->t->ups->targets[ti]);
            c->t->tried |= 1ull << (ti & 63);
            iovq_reset(&c->t->uq);
            c->t->up_sent = 0;
            iovq_push(&c->t->uq, c->t->scratch->data, c->t->uhead_len);
            c->t->uq_head = c->t->uhead_len;
            c->t->uhead_pending = true;
            rewalk_body(c);
            if (fwd_connect(c))
                return;
        }
    }
    if (c->t->resp_started) {
        txn_end(c, reason);
        return;
    }
    txn_why(c, reason);
    if (!c->t->req_done)
        c->t->keepalive = false;
    local_response(c, status, NULL, NULL, 0, NULL);
}

void fwd_queue_refuse(struct gw_conn *c, enum gw_end why)
{
    txn_why(c, why);
    if (!c->t->req_done)
        c->t->keepalive = false;
    local_response(c, 503, NULL, NULL, 0, NULL);
}

/* The target is at pool.max_connections: the request waits on the worker's
 * queue, holding no upstream connection, until a slot frees (gw_queue_run)
 * or its queue_timeout_ms passes; 503 at once when max_queue requests
 * already wait for the target (over every worker). */
static bool fwd_queue(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_worker *w = c->w;
    struct hc_target *h = t->target->health;
    const struct cfg_upstream *u = t->ups->cfg;

    if (t->q_again) {       /* another worker took the slot it saw: back to the front */
        gw_q_push(c, true);
        return true;
    }
    if (atomic_load_explicit(&h->waiting, memory_order_relaxed) >= u->max_queue) {
        atomic_fetch_add_explicit(&h->q_overflows, 1, memory_order_relaxed);
        gw_log(GW_LOG_INFO, "upstream %s: %u connections and %u requests queued: 503",
               t->target->text, u->max_connections, u->max_queue);
        fwd_queue_refuse(c, GW_END_QUEUE_FULL);
        return true;
    }
    t->q_deadline_ms = gw_now_ms(w) + u->queue_timeout_ms;
    gw_q_push(c, false);
    if (!evtimer_pending(w->qev, NULL))
        evtimer_add(w->qev, gw_common_timeout(w, GW_QUEUE_RECHECK_MS));
    return true;
}

/* A connection to the txn's target: a pooled one, else a new one (or a
 * place in the queue when the target is at pool.max_connections). */
bool fwd_connect(struct gw_conn *c)
{
    const struct up_target *t = c->t->target;
    struct pool_bucket *b = c->t->ws->buckets[t->gidx];

    /* requests of this worker already wait for the target: behind them,
     * even if a connection was just pooled (the queue's run takes it) */
    if (c->w->nqueued && !c->t->q_again && t->health && c->t->ups->cfg->max_connections &&
        gw_q_has(c->w, t->health))
        return fwd_queue(c);
    if (up_conn_reuse(&c->w->up, b, t, c, &c->t->up))
        return true;
    SSL_CTX *tctx = gw_tls_upstream_ctx(c->t->ws->s->tls, (size_t)(c->t->ups - c->t->ws->s->ups.v));
    int err = 0;
    switch (up_conn_open(&c->w->up, t, tctx, c->t->ups->cfg->tls, b, c->t->ups->cfg->connect_ms,
                         c->t->ups->cfg->max_connections, c, &c->t->up, &err)) {
    case UP_OPEN_OK:
        return true;
    case UP_OPEN_FULL:
        return fwd_queue(c);
    case UP_OPEN_CONNECT_ERR: {
        char why[128];
        snprintf(why, sizeof(why), "connect: %s", strerror(err));
        fwd_failed(c, 502, false, GW_END_UP_CONNECT, why);
        return true;
    }
    default:
        txn_why(c, GW_END_INTERNAL);
        local_response(c, 502, NULL, NULL, 0, NULL);
        return true;
    }
}

/* One step of an upstream TLS handshake; true when it made progress. */
static bool up_handshake(struct gw_conn *c, struct up_conn *u)
{
    char why[300];

    switch (up_conn_handshake(u, why, sizeof(why))) {
    case UP_HS_DONE:
        return true;
    case UP_HS_WAIT:
        return false;
    default:
        fwd_failed(c, 502, false, GW_END_UP_TLS, why);
        return true;
    }
}

bool fwd_send(struct gw_conn *c)
{
    struct up_conn *u = c->t->up;

    if (u == NULL || !u->connected)
        return false;
    if (u->hs)
        return up_handshake(c, u);
    if (!u->w_ready || iovq_empty(&c->t->uq))
        return false;
    ssize_t n = iovq_write(&u->io, &c->t->uq);
    if (n < 0) {
        if (c->t->rstate == RS_WAIT && !c->t->resp_started)
            fwd_failed(c, 502, u->reused && u->nreq > 0, GW_END_UP_RESET, "write failed");
        else {
            up_conn_close(u);
            txn_end(c, GW_END_UP_RESET);
        }
        return true;
    }
    if (n == 0) {
        u->w_ready = false;
        return false;
    }
    c->t->up_sent += (uint64_t)n;
    count_copied(c, &c->t->uq_head, (size_t)n);
    if (iovq_empty(&c->t->uq)) {
        c->t->uhead_pending = false;
        if (c->t->req_done && c->t->rstate == RS_WAIT && c->state == C_ACTIVE) {
            u->nreq++;
            up_conn_timer_arm(u, stream_first_byte_ms(c->t));
        }
    }
    return true;
}

bool fwd_build_head(struct gw_conn *c, const struct h1_request *r)
{
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;
    const struct cfg_route *rt = t->route;
    uint32_t need = t->hlen + 4096;
    for (size_t i = 0; i < rt->req_headers.nset; i++)
        need += rt->req_headers.set[i].name_len + rt->req_headers.set[i].value_len + 4;
    for (size_t i = 0; i < rt->req_headers.nadd; i++)
        need += rt->req_headers.add[i].name_len + rt->req_headers.add[i].value_len + 4;
    need += rt->rewrite_path_len + (rt->rewrite_host ? (uint32_t)strlen(rt->rewrite_host) : 0);
    const struct pol_txn *pt = &t->pol;
    need += POL_AUTH_ID_MAX + 16 + (pt->buf ? pt->buf->up_len : 0);

    t->scratch = gw_buf_get(w, need);
    char ip[INET6_ADDRSTRLEN];
    size_t iplen = peer_ip(c, ip, sizeof(ip));
    struct h1_fwd_req f = {
        .route = rt, .client_ip = ip, .client_ip_len = iplen,
        .default_host = t->target->host, .https = c->https, .websocket = t->upgrade,
        .rid_hi = w->rid_seed, .rid_lo = ++w->rid_count ^ ((uint64_t)w->id << 56),
    };
    const struct pol_auth *au = rt->policy ? rt->policy->auth : NULL;
    if (au && !au->forward_credential && au->cred_header) {
        f.drop = au->cred_header;
        f.drop_len = au->cred_header_len;
    }
    if (au && au->nstrip) {
        f.strip = au->strip;
        f.strip_lens = au->strip_lens;
        f.nstrip = au->nstrip;
    }
    if (pt->has_auth_id) {
        f.auth_id = pt->auth_id;
        f.auth_id_len = pt->auth_id_len;
    }
    if (pt->buf && pt->buf->up_len) {
        f.extra = pt->buf->data;
        f.extra_len = pt->buf->up_len;
    }
    int n = h1_fwd_request_head(t->scratch->data, t->scratch->cap, r, &f);
    if (n < 0)
        return false;
    t->scratch->end = (uint32_t)n;
    t->uhead_len = (uint32_t)n;
    return true;
}

/* The response head for the client, appended to scratch. */
static bool build_client_head(struct gw_conn *c, const struct h1_response *r)
{
    struct gw_txn *t = c->t;
    struct gw_buf *b = t->scratch;
    if (!t->uhead_pending && iovq_empty(&t->cq))
        b->start = b->end = 0;
    struct h1_fwd_resp f = {
        .edits = t->route ? &t->route->resp_headers : NULL,
        .keepalive = t->keepalive, .client10 = t->client10,
    };
    int n = h1_fwd_response_head(b->data + b->end, b->cap - b->end, r, &f);
    if (n < 0)
        return false;
    size_t len = (size_t)n;
    t->cq_head += (uint32_t)len;
    /* The upstream's own head is in ubuf in front of the body, and nothing
     * refers to it any more (r's slices were read above; cq is empty).
     * When the new head fits there, put it right in front of the body:
     * head and body then leave in one piece, one sendto(2) instead of a
     * two-element sendmsg(2).  Copied are the head's bytes, never the
     * body's. */
    struct gw_buf *ub = t->ubuf;
    if (iovq_empty(&t->cq) && r->status >= 200 && len <= ub->start) {
        ub->start -= (uint32_t)len;
        memcpy(ub->data + ub->start, b->data + b->end, len);
        iovq_push(&t->cq, ub->data + ub->start, len);
        ub->start += (uint32_t)len;
        return true;
    }
    iovq_push(&t->cq, b->data + b->end, len);
    b->end += (uint32_t)len;
    return true;
}

/* The upstream sent what sluice cannot forward: its connection is closed
 * (never pooled) and the client gets a 502.  Always false. */
static bool bad_response(struct gw_conn *c)
{
    txn_why(c, GW_END_UP_PARSE);
    c->t->up_clean = false;
    up_conn_close(c->t->up);
    local_response(c, 502, NULL, NULL, 0, NULL);
    return false;
}

/* A 101 answer: only to a WebSocket upgrade the client asked for; the
 * connection becomes a tunnel.  false after answering 502 instead. */
static bool resp_upgrade(struct gw_conn *c, const struct h1_response *r, struct gw_buf *ub)
{
    /* only to a WebSocket upgrade the client asked for */
    if (!c->t->upgrade || !(r->flags & H1_F_UPGRADE_WS)) {
        c->t->resp_started = false;
        return bad_response(c);
    }
    c->t->keepalive = false;
    c->t->up_clean = false;
    build_client_head(c, r);
    iovq_push(&c->t->cq, ub->data + ub->start, ub->end - ub->start);
    ub->start = ub->end;
    c->state = C_TUNNEL;
    c->t->rstate = RS_BODY;
    /* bytes the client sent after its request head go up too */
    if (c->t->body_end < c->in->end) {
        iovq_push(&c->t->uq, c->in->data + c->t->body_end, c->in->end - c->t->body_end);
        c->t->body_pos = c->t->body_end = c->in->end;
    }
    return true;
}

static bool resp_head(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    struct h1_response *r = &w->resp;
    struct gw_buf *ub = c->t->ubuf;

    for (;;) {
        int rc = h1_parse_response(ub->data + ub->start, ub->end - ub->start,
                                   conn_cfg(c)->max_header_bytes, &c->t->uscanned,
                                   (enum h1_method)c->t->method, r);
        if (rc == H1_INCOMPLETE) {
            if (ub->end == ub->cap) {
                gw_log(GW_LOG_WARN, "upstream %s: response header too large", c->t->target->text);
                bad_response(c);
            }
            return false;
        }
        c->t->uscanned = 0;
        if (rc < 0) {
            gw_log(GW_LOG_WARN, "upstream %s: %s", c->t->target->text,
                   rc == H1_ERR_TE ? "a Transfer-Encoding other than chunked"
                                   : rc == H1_ERR_TOO_LARGE ? "response header too large"
                                                            : "malformed response");
            return bad_response(c);
        }
        if (r->status >= 100 && r->status < 200 && r->status != 101) {
            /* interim responses: pass to HTTP/1.1 clients, drop for 1.0 */
            ub->start += (uint32_t)rc;
            c->t->body_lost = true;     /* something went to the client: no retry */
            if (!c->t->client10 && !build_client_head(c, r)) {
                c->t->up_clean = false;
                up_conn_close(c->t->up);
                txn_end(c, GW_END_UP_PARSE);
                return false;
            }
            continue;
        }
        ub->start += (uint32_t)rc;
        break;
    }
    c->t->t_up = gw_turn_ns(c->w);
    gw_hist_observe(&c->t->ws->ustats[c->t->ups - c->t->ws->s->ups.v]->resp, c->t->t_up - c->t->t_start);
    if (c->t->tb) {             /* the same, per target (this worker's bucket for it) */
        gw_hist_observe(&c->t->tb->resp, c->t->t_up - c->t->t_start);
        gw_cnt_add(&c->t->tb->code[r->status / 100 - 1], 1);
    }
    c->t->status = r->status;
    c->t->resp_started = true;
    c->t->body_lost = true;
    up_conn_answered(c->t->up, r->status);    /* health/: the target answers */

    if (r->status == 101)
        return resp_upgrade(c, r, ub);
    c->t->resp_kind = (uint8_t)r->body;
    c->t->resp_remaining = r->content_length;
    if (!r->keep_alive)
        c->t->up_clean = false;
    if (r->body == H1_BODY_CHUNKED) {
        h1_chunked_init(&c->t->resp_ck);
        if (c->t->client10) {
            c->t->dechunk = true;      /* a 1.0 client cannot read chunked */
            c->t->keepalive = false;
        }
    } else if (r->body == H1_BODY_CLOSE) {
        c->t->keepalive = false;       /* the end of the body is our close */
        c->t->up_clean = false;
    }
    /* An early answer (the request body still arriving) keeps the client
     * connection if the body completes by the time the response does; the
     * txn ends only then, and closes if it cannot. */
    stream_resp_classify(c, r);
    if (!build_client_head(c, r)) {
        c->t->resp_started = false;
        return bad_response(c);
    }
    stream_resp_head(c, r);
    c->t->rstate = r->body == H1_BODY_NONE ? RS_DONE : RS_BODY;
    if (c->t->rstate == RS_DONE && ub->start < ub->end)
        c->t->up_clean = false;        /* bytes after a bodiless response: not clean */
    return true;
}

/* Queue the body bytes in ubuf[start, end) for the client: a chunked body
 * re-framed (de-chunked for an HTTP/1.0 client), up to what the queue
 * holds; fwd_recv() comes back for the rest once the queue has drained. */
static void resp_body(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_buf *ub = t->ubuf;

    while (t->rstate == RS_BODY && ub->start < ub->end) {
        const char *p = ub->data + ub->start;
        size_t avail = ub->end - ub->start, used = avail;
        if (t->resp_kind == H1_BODY_LENGTH) {
            used = avail < t->resp_remaining ? avail : (size_t)t->resp_remaining;
            iovq_push(&t->cq, p, used);
            stream_body(c, p, used);
            t->resp_remaining -= used;
            if (t->resp_remaining == 0)
                t->rstate = RS_DONE;
        } else if (t->resp_kind == H1_BODY_CLOSE) {
            iovq_push(&t->cq, p, used);
            stream_body(c, p, used);
        } else {
            if (!rf_room(&t->cq, &t->crf))
                return;
            int k = h1_chunked_next(&t->resp_ck, p, avail, &used);
            if (k == H1C_ERROR) {
                gw_log(GW_LOG_WARN, "upstream %s: bad chunked framing", t->target->text);
                t->up_clean = false;
                up_conn_close(t->up);
                txn_end(c, GW_END_UP_PARSE);
                return;
            }
            if (k == H1C_DATA) {
                rf_data(&t->cq, &t->crf, p, used, t->dechunk);
                stream_body(c, p, used);
            }
            else if (k == H1C_DONE && !t->dechunk)
                rf_last(&t->cq, &t->crf);
            if (k == H1C_DONE)
                t->rstate = RS_DONE;
            ub->start += (uint32_t)used;
            if (k == H1C_AGAIN)
                break;
            continue;
        }
        ub->start += (uint32_t)used;
    }
    if (t->rstate == RS_DONE && ub->start < ub->end)
        t->up_clean = false;        /* the server sent more than the message */
}

bool fwd_recv(struct gw_conn *c)
{
    struct up_conn *u = c->t->up;
    struct gw_worker *w = c->w;

    if (u == NULL || !u->connected || u->hs || !iovq_empty(&c->t->cq) || c->t->rstate == RS_DONE ||
        c->t->resp_spliced)
        return false;
    if (c->t->rstate == RS_BODY && c->t->ubuf && c->t->ubuf->start < c->t->ubuf->end) {
        /* body bytes read earlier but not yet queued (re-framing filled
         * the queue): queue them before reading more */
        uint32_t before = c->t->ubuf->start;
        resp_body(c);
        return c->state != C_ACTIVE || c->t->ubuf == NULL || c->t->ubuf->start != before ||
               c->t->rstate != RS_BODY;
    }
    if (!u->r_ready)
        return false;
    /* A long body (a Content-Length past the small buffer, or reads that
     * fill it) moves through a large buffer, fewer syscalls per byte; a
     * stream's pieces through a small one, given back between them
     * (client_send), so 10,000 quiet streams hold no buffers. */
    bool bulk = c->t->rstate == RS_BODY &&
                (c->t->resp_kind == H1_BODY_LENGTH ? c->t->resp_remaining > GW_BUF_SMALL : c->t->ub_filled);
    if (c->t->ubuf == NULL)
        c->t->ubuf = gw_buf_get(w, bulk ? GW_BUF_LARGE : GW_BUF_SMALL);
    struct gw_buf *ub = c->t->ubuf;
    if (ub->start == ub->end) {
        ub->start = ub->end = 0;
        if (bulk && ub->cap == GW_BUF_SMALL) {
            gw_buf_put(w, ub);
            ub = c->t->ubuf = gw_buf_get(w, GW_BUF_LARGE);
        }
    } else if (ub->start > 0 && ub->end == ub->cap) {
        memmove(ub->data, ub->data + ub->start, ub->end - ub->start);
        ub->end -= ub->start;
        ub->start = 0;
    }
    ssize_t n = buf_read(&u->io, ub, &u->r_ready, u->rdhup);
    if (n == -2)
        return false;
    if (n > 0 && ub->end == ub->cap)
        c->t->ub_filled = true;
    if (n == 0 || n == -1) {
        if (c->t->rstate == RS_WAIT) {
            bool nothing = ub->end == 0;
            if (nothing && u->reused)
                fwd_failed(c, 502, true, GW_END_UP_RESET,
                          "pooled connection closed before the response; retrying");
            else if (nothing)
                fwd_failed(c, 502, false, GW_END_UP_RESET,
                          n == 0 ? "closed before responding" : "reset before responding");
            else {
                gw_log(GW_LOG_WARN, "upstream %s: incomplete response header", c->t->target->text);
                txn_why(c, GW_END_UP_RESET);
                c->t->up_clean = false;
                up_conn_close(u);
                local_response(c, 502, NULL, NULL, 0, NULL);
            }
            return true;
        }
        if (c->t->resp_kind == H1_BODY_CLOSE && n == 0) {
            c->t->rstate = RS_DONE;
            c->t->up_clean = false;
            up_conn_close(u);
            return true;
        }
        gw_log(GW_LOG_WARN, "upstream %s: connection lost mid-response", c->t->target->text);
        c->t->up_clean = false;
        up_conn_close(u);
        c->t->keepalive = false;
        if (iovq_empty(&c->t->cq))
            txn_end(c, GW_END_UP_RESET);
        else {
            txn_why(c, GW_END_UP_RESET);
            c->t->rstate = RS_DONE;    /* flush what we have, then close (keepalive off) */
        }
        return true;
    }
    if (c->t->rstate == RS_WAIT) {
        if (!resp_head(c))
            return true;
        if (c->state != C_ACTIVE)
            return true;
    }
    resp_body(c);
    if (c->t->rstate == RS_BODY && c->t->up)
        up_conn_timer_arm(c->t->up, stream_idle_ms(c->t));   /* silence mid-response */
    return true;
}
