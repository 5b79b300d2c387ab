/* txn.c - the transaction's state and its one end (txn_end): the access log,
 * the counters, the release of what it holds, and what happens to the client
 * connection after (next request, lingering close, teardown). */
#include "conn.h"
#include "access_log.h"
#include "h1_fwd.h"
#include "../core/io.h"
#include "tls.h"
#include "../core/check.h"
#include "../core/sbuf.h"
#include "../policy/limit.h"

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

struct gw_txn *txn_get(struct gw_worker *w)
{
    struct gw_txn *t = fl_pop(&w->free_txns, struct gw_txn, fl);

    if (t == NULL) {
        t = malloc(sizeof(*t));
        if (t == NULL)
            abort();
    }
    memset(t, 0, offsetof(struct gw_txn, urf));
    t->urf.len = t->crf.len = 0;
    return t;
}

static void txn_put(struct gw_worker *w, struct gw_txn *t)
{
    if (!fl_push(&w->free_txns, &t->fl))
        free(t);
}

static void txn_free_node(struct fl_node *n)
{
    free((char *)n - offsetof(struct gw_txn, fl));
}

void gw_txns_free(struct gw_worker *w)
{
    fl_drain(&w->free_txns, txn_free_node);
}

/* The request now goes to target t (NULL: it no longer occupies one). */
void txn_target(struct gw_conn *c, const struct up_target *t)
{
    struct gw_txn *x = c->t;

    if (x->tb)
        cnt_sub1(&x->tb->inflight);
    x->tb = NULL;
    if (x->infl)
        up_inflight_sub(x->infl);
    x->infl = NULL;
    if (t == NULL)
        return;
    x->target = t;
    x->infl = t;
    up_inflight_add(t);
    x->tb = x->ws->buckets[t->gidx];
    if (x->tb) {
        gw_cnt_add(&x->tb->inflight, 1);
        gw_cnt_add(&x->tb->requests, 1);
        pool_note_busy(x->tb, atomic_load_explicit(&x->tb->inflight, memory_order_relaxed));
    }
}

void txn_target_failed(struct gw_conn *c)
{
    if (c->t->tb)
        gw_cnt_add(&c->t->tb->failures, 1);
}

/* The txn is failing for why: the first cause is what its end counts. */
void txn_why(struct gw_conn *c, enum gw_end why)
{
    if (c->t && c->t->why == GW_END_DONE)
        c->t->why = (uint8_t)why;
}

/* Counters of a finished request (next to its access log line). */
static void txn_account(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_stats *st = &c->w->stats;

    gw_cnt_add(&st->bytes_in, t->bytes_in);
    gw_cnt_add(&st->bytes_out, t->bytes_out);
    gw_hist_observe(&st->req_duration, gw_turn_ns(c->w) - t->t_start);
    if (t->status >= 100 && t->status < 600) {
        struct gw_route_stats *rs = t->rs ? t->rs : t->route ? t->ws->rstats[t->route->index]
                                                             : t->ws->unmatched;
        if (rs == NULL)
            rs = gw_wsnap_route_stats(c->w, t->ws, t->route);
        gw_cnt_add(&rs->code[t->status / 100 - 1], 1);
    }
    txn_target(c, NULL);
}

static uint16_t peer_port(const struct gw_conn *c)
{
    return ntohs(c->peer.sa.sa_family == AF_INET6 ? c->peer.in6.sin6_port : c->peer.in4.sin_port);
}

static void access_log(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;
    const char *head = t->rid ? t->rid->data : c->in ? c->in->data : NULL;
    bool req = t->hlen && head;
    char line[ALOG_LINE_MAX];

    if (w->alog.fd < 0)
        return;
    char ip[INET6_ADDRSTRLEN];
    size_t iplen = peer_ip(c, ip, sizeof(ip));
    struct alog_rec r = {
        .client_ip = ip, .client_ip_len = iplen, .client_port = peer_port(c),
        .method = req ? head + t->m_off : NULL, .method_len = t->m_len,
        .target = req ? head + t->t_off : NULL, .target_len = t->t_len,
        .http10 = t->client10,
        .host = req && t->h_len ? head + t->h_off : NULL, .host_len = t->h_len,
        .status = t->status, .bytes_in = t->bytes_in, .bytes_out = t->bytes_out,
        .upstream = t->target ? t->target->text : NULL,
        .upstream_ns = t->t_up ? t->t_up - t->t_start : 0,
        .ttfb_ns = t->t_first ? t->t_first - t->t_start : 0,
        .total_ns = gw_turn_ns(w) - t->t_start,
        .route = t->route ? t->route->name : NULL,
        .auth_id = t->pol.has_auth_id ? t->pol.auth_id : NULL,
        .auth_id_len = t->pol.auth_id_len,
    };
    size_t n = alog_format(line, &r, t->ws && t->ws->s->cfg->access_log_json);
    gw_alog_append(&w->alog, line, n);
}

static void txn_pipes_put(struct gw_worker *w, struct gw_txn *t)
{
    gw_pipe_put(&w->pipes, t->pu);     /* closed, not pooled, if bytes are left in it */
    gw_pipe_put(&w->pipes, t->pc);
    t->pu = t->pc = NULL;
}

/* Give back everything the txn holds but the connection: the upstream
 * connection (pooled when done and clean, else closed), pipes, buffers, the
 * snapshot pin. */
static void txn_release(struct gw_conn *c, struct gw_txn *t, bool done)
{
    struct gw_worker *w = c->w;

    /* token_budget: debit the usage the response carried (limit.h) */
    pol_budget_end(&t->pol, t->ws ? t->ws->s->cfg->pstore : NULL);
    pol_txn_end(&t->pol);   /* a pending check is cancelled: it will not call back */
    gw_q_unlink(c);         /* it ends while waiting for a connection (client gone, shutdown) */
    txn_target(c, NULL);
    if (t->up) {
        struct pool_facts f = {
            .resp_done = done && t->rstate == RS_DONE,
            .req_sent = t->req_done && iovq_empty(&t->uq) && !t->uhead_pending && !t->pu,
            .keepalive = t->up_clean && c->state != C_TUNNEL,
            .draining = w->draining,
            .max_idle = t->ups->cfg->max_idle_per_target,
        };
        /* pool.max_connections: requests wait for the target in another
         * worker and none here: give the slot back rather than pool it */
        const struct hc_target *h = t->target->health;
        if (h && t->ups->cfg->max_connections &&
            atomic_load_explicit(&h->waiting, memory_order_relaxed) > 0 && !gw_q_has(w, h))
            f.max_idle = 0;
        up_conn_checkin(&t->up, t->ws->buckets[t->target->gidx], &f,
                        t->ups->cfg->pool_idle_timeout_ms);
    }
    if (w->nqueued)         /* a slot or a pooled connection may be free: serve the queue */
        event_active(w->qev, EV_TIMEOUT, 1);
    txn_pipes_put(w, t);
    gw_buf_put(w, t->ubuf);
    t->ubuf = NULL;
    gw_buf_put(w, t->scratch);
    t->scratch = NULL;
    gw_buf_put(w, t->jbuf);        /* ended while reading a body to route it */
    t->jbuf = NULL;
    gw_rid_put(w, t->rid);          /* after the access log line that read it */
    t->rid = NULL;
    gw_wsnap_unpin(w, t->ws);
    t->ws = NULL;
}

/* The connection waits for its next request: this request's bytes go,
 * pipelined ones move to the front. */
static void conn_next(struct gw_conn *c, struct gw_txn *t)
{
    struct gw_worker *w = c->w;
    uint32_t used = t->body_end;

    if (t->lowat_c)
        gw_splice_lowat(c->io.fd, false);
    c->t = NULL;
    txn_put(w, t);
    c->state = C_HEAD;
    struct gw_buf *in = c->in;
    if (in) {
        if (used < in->end) {
            memmove(in->data, in->data + used, in->end - used);
            in->end -= used;
            c->parse_pending = true;
        } else {
            in->end = 0;
        }
        in->start = 0;
        if (in->end == 0 && !c->peeked) {
            gw_buf_put(w, in);      /* an idle connection holds no buffer */
            c->in = NULL;
        }
    }
    if (c->peeked) {
        c->peeked = false;
        c->r_ready = true;
    }
    conn_timer_arm(c, c->parse_pending || c->r_ready ? w->cur->s->cfg->client_header_ms
                                                     : w->cur->s->cfg->client_idle_ms);
}

/*
 * The one end of a transaction, and of a client connection between
 * transactions (c->t NULL).  Idempotent: a connection that is closed or
 * lingering has ended.  It alone writes the access log line, counts the
 * request and its reason, and releases.  GW_END_DONE: the response went
 * out whole; the connection then serves the next request, or lingers while
 * the client may still be sending, or closes.  Any other reason closes it.
 * The reason counted is the first failure recorded (txn_why), else why.
 * The txn itself is freed with the connection (gw_gc): callers up the
 * stack may still look at c->t after this returns.
 */
void txn_end(struct gw_conn *c, enum gw_end why)
{
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;

    if (c->state == C_CLOSED || c->state == C_LINGER || (t && t->ws == NULL))
        return;
    if (t == NULL) {
        gw_cnt_add(&w->stats.closes[why], 1);
        if (why == GW_END_CLIENT_TLS && c->hs_want == GW_HS_PLAINTEXT)
            conn_linger(c);     /* our 400 went out; the rest is read and dropped */
        else
            conn_teardown(c);
        return;
    }
    bool done = why == GW_END_DONE;
    if (!done && t->status == 0 && t->hlen)
        t->status = 499;        /* the client left before the response (nginx's code) */
    if (why == GW_END_CLIENT_CLOSED && t->target)   /* the upstream goes with it (release) */
        gw_cnt_add(&w->stats.cancels[stream_cancel_phase(t)], 1);
    stream_end(c);
    if (t->hlen || t->status) {
        access_log(c);
        txn_account(c);
    }
    gw_cnt_add(&w->stats.closes[t->why != GW_END_DONE ? t->why : why], 1);
    txn_release(c, t, done);
    if (done && t->keepalive && !w->draining && c->state != C_TUNNEL)
        conn_next(c, t);
    else if (done && !t->req_done && c->state != C_TUNNEL)
        conn_linger(c);
    else
        conn_teardown(c);
}

/*
 * The response went out but the client may still be sending (a request
 * body we refused or did not need).  Closing now would make the kernel
 * answer the unread bytes with a RST, which can destroy the response in the
 * client's receive buffer.  So: send our FIN, read and discard for a while,
 * then close (nginx's lingering close).
 */
#define LINGER_QUIET_MS 5000    /* nginx's lingering_timeout */
#define LINGER_TOTAL_MS 30000   /* nginx's lingering_time */

void conn_linger(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;

    c->t = NULL;
    if (t)
        txn_put(w, t);      /* released by txn_end */
    gw_buf_put(w, c->in);
    c->in = NULL;
    gw_io_shutdown_wr(&c->io);
    c->state = C_LINGER;
    c->scanned = gw_now_ms(w) + LINGER_TOTAL_MS;    /* the parse hint is unused now */
    conn_timer_arm(c, LINGER_QUIET_MS);
}

/* A lingering close ends with the connection's teardown: its transaction
 * already ended (and was counted) in txn_end. */
void linger_step(struct gw_conn *c)
{
    if (gw_now_ms(c->w) >= c->scanned) {
        conn_teardown(c);
        return;
    }
    for (int i = 0; i < 64 && c->r_ready; i++) {
        ssize_t n = gw_sock_discard(c->io.fd, 256 * 1024);
        if (n > 0) {
            conn_timer_arm(c, LINGER_QUIET_MS);
            continue;
        }
        if (n == -1 && errno == EAGAIN) {
            c->r_ready = false;
            return;
        }
        conn_teardown(c);      /* EOF or error: the client is done */
        return;
    }
    if (c->r_ready) {   /* edge-triggered: no new edge will come; continue next turn */
        /* EVLOOP_ONCE goes on to that turn without returning to
         * worker_main, which would forget the turn's clock: do it here */
        c->w->turn.ok = false;
        event_active(&c->ev, EV_READ, 1);
    }
}

/* Close the client connection and free what it holds (its txn, already
 * released by txn_end, waits in c->t for gw_gc).  Counts nothing: only
 * txn_end and the linger that follows one call this. */
void conn_teardown(struct gw_conn *c)
{
    struct gw_worker *w = c->w;

    if (c->state == C_CLOSED)
        return;
    c->state = C_CLOSED;
    event_del(&c->ev);
    lt_heap_remove(&w->ctimers, &c->tn);
    c->deadline_ms = 0;
    if (c->io.ctx)
        gw_tls_close(&c->io);
    close(c->io.fd);
    c->io.fd = -1;
    gw_buf_put(w, c->in);
    c->in = NULL;
    /* unlink from the worker's list */
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    cnt_sub1(&w->stats.client_conns);
    atomic_fetch_sub_explicit(&g_nconns, 1, memory_order_relaxed);
    c->prev = NULL;
    c->next = w->gc_conns;          /* off w->conns: the link now chains the gc list */
    w->gc_conns = c;
}

void gw_gc(struct gw_worker *w)
{
    while (w->gc_conns) {
        struct gw_conn *c = w->gc_conns;
        w->gc_conns = c->next;
        if (c->t)
            txn_put(w, c->t);
        gw_listener_unref(c->l);
        c->magic = 0;
        free(c);
    }
    up_conn_gc(&w->up);
    if (w->draining && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}
