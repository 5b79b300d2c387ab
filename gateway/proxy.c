/*
 * proxy.c - client connections and the request/response pump.
 *
 * Every socket has ONE libevent event, registered once, edge-triggered for
 * both directions (EV_ET|EV_PERSIST): the kernel's epoll set is never
 * touched on the request path.  Callbacks only record readiness
 * (r_ready/w_ready) and call conn_pump(), which makes all the progress it
 * can in every direction and returns when nothing more can move.
 *
 * Bytes are never copied between sockets: a request or response head is
 * rebuilt into the connection's scratch buffer (it has to be: hop-by-hop
 * headers go, X-Forwarded-* come), bodies are written straight from the
 * buffer they were read into.  Back-pressure is structural: a buffer is read
 * into only when everything queued from it has been written, so memory per
 * connection is bounded by three buffers whatever the body size.  Large
 * bodies and tunnels between splice-capable sockets skip user space: they
 * move socket -> pipe -> socket with splice(2), the pipe (borrowed from the
 * worker's pool) standing in for the buffer (see "splice" below).
 *
 * Lifetime: objects are never freed inside the call stack that closes them;
 * conn_teardown()/up_close() mark them, unlink them from libevent and queue
 * them on the worker's gc lists, and gw_gc() frees them once the top-level
 * callback is done (tmux/Redis style).
 */
#include "access_log.h"
#include "gateway.h"
#include "h1_fwd.h"
#include "io.h"
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

#define CONN_MAGIC 0x534c4343u
#define UP_MAGIC   0x534c5550u

enum cstate { C_HEAD = 0, C_ACTIVE, C_LOCAL, C_TUNNEL, C_LINGER, C_CLOSED };
enum rstate { RS_WAIT = 0, RS_BODY, RS_DONE };

#define IOVQ_N 8

struct iovq {
    struct iovec v[IOVQ_N];
    uint8_t i, n;
};

/*
 * The framing sluice writes in front of the pieces of a chunked body it
 * re-frames (h1_fwd.h), and the data of pieces too small to be worth an
 * iovec of their own.  Bytes here stay put until the queue that points at
 * them is empty; then the area is reused from its start.
 */
#define RF_CAP   512
#define RF_SMALL 64     /* a data piece up to this size is copied next to its framing */

struct reframe {
    uint16_t len;
    char b[RF_CAP];
};

struct gw_upconn {
    uint32_t magic;
    struct gw_io io;
    struct gw_worker *w;
    struct gw_conn *owner;          /* NULL while pooled */
    struct event ev;
    struct event timer;
    struct pool_node pn;
    const struct up_target *t;      /* of the snapshot that opened it; only for this request */
    uint32_t nreq;
    uint64_t connect_start;         /* ns, for the connect-time histogram */
    uint64_t deadline_ms;           /* 0 = no timeout wanted (lazy timer) */
    uint64_t timer_at_ms;           /* when the armed timer fires; 0 = not armed */
    bool connected, r_ready, w_ready, reused, closed, rdhup;
    bool hs;                        /* TLS handshake still to finish */
    bool lowat;                     /* gw_splice_lowat is on (a request body was spliced in) */
    bool tls_refused;               /* the handshake failed (verification, protocol) */
    uint8_t hs_want;                /* what it waits for: GW_HS_WANT_READ/WRITE, 0 = try */
    struct gw_upconn *gc_next;
};

/* What one request needs while it is in flight.  Idle keep-alive
 * connections hold none of it: a txn comes from the worker's free list when
 * a request starts and goes back when it ends. */
struct gw_txn {
    struct fl_node fl;              /* the worker's free list (first: txn_get clears the rest) */
    uint8_t rstate;
    bool keepalive, client10, req_done, body_lost, resp_started, dechunk, up_clean;
    bool upgrade, head_req, uhead_pending;
    bool cli_eof, up_eof;           /* tunnel half-closes seen */
    /* splice(2): a direction that started splicing keeps splicing (sticky,
     * so one body is not split between the counters by its threshold);
     * pu/pc are borrowed from the worker's pool only while bytes move;
     * *_fin: the source ended, drain the pipe and stop */
    bool req_spliced, resp_spliced, pu_fin, pc_fin;
    bool lowat_c;                   /* gw_splice_lowat is on for the client socket */
    struct gw_pipe *pu, *pc;        /* toward the upstream / toward the client */
    uint32_t uq_head, cq_head;      /* head (non-body) bytes at the front of uq / cq */
    uint8_t attempts, req_kind, resp_kind, method;
    uint8_t why;                    /* enum gw_end: the first failure, counted at the end */
    uint64_t up_sent;               /* bytes written to the current upstream attempt */
    struct gw_buf *scratch, *ubuf;
    struct gw_upconn *up;
    struct gw_wsnap *ws;
    const struct cfg_route *route;
    const struct up_upstream *ups;
    const struct up_target *target;
    struct pool_bucket *tb;         /* the target's counters while it counts us in flight */
    uint64_t tried;
    size_t uscanned;
    /* the request: its head stays at in->data[0, hlen) until the txn ends */
    uint32_t hlen, m_off, m_len, t_off, t_len, h_off, h_len;
    uint32_t body_pos, body_end;    /* body bytes in `in`: queued up to body_pos, known up to body_end */
    uint32_t uhead_len;
    uint64_t req_remaining, req_body_bytes;
    struct h1_chunked req_ck;
    struct iovq uq, cq;
    uint64_t resp_remaining;
    struct h1_chunked resp_ck;
    int status;
    uint64_t bytes_in, bytes_out;
    uint64_t t_start, t_up;
    uint64_t req_cl;                /* the request's Content-Length (to walk its body again) */
    /* not cleared per request (txn_get): reset when their queue is empty */
    struct reframe urf, crf;        /* toward the upstream / toward the client */
};

struct gw_conn {
    uint32_t magic;
    uint8_t state;
    bool r_ready, w_ready, rdhup, parse_pending, peeked, header_clock;
    bool hs;                        /* TLS handshake still to finish */
    bool https;                     /* accepted on a TLS listener */
    bool ktls_want;                 /* its listener asked for kernel TLS */
    uint8_t hs_want;                /* GW_HS_WANT_READ/WRITE, 0 = try */
    struct gw_io io;
    struct gw_worker *w;
    struct gw_listener *l;
    struct gw_conn *next, *prev;    /* w->conns */
    struct gw_conn *gc_next;
    struct gw_txn *t;               /* NULL between requests */
    uint64_t deadline_ms;           /* 0 = no timeout wanted (lazy timer) */
    uint64_t timer_at_ms;           /* when the armed timer fires; 0 = not armed */
    uint8_t iplen;
    char ip[INET6_ADDRSTRLEN];      /* the peer's address, formatted once */
    struct gw_buf *in;              /* NULL while idle with nothing buffered */
    size_t scanned;
    struct event ev;
    struct event timer;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer;
};

static void conn_pump(struct gw_conn *c);
static void txn_end(struct gw_conn *c, enum gw_end why);
static void up_close(struct gw_upconn *u);
static void conn_linger(struct gw_conn *c);
static void conn_teardown(struct gw_conn *c);
static void linger_step(struct gw_conn *c);
static void local_response(struct gw_conn *c, int status, const char *ctype,
                           const char *body, size_t body_len, const char *extra);
static bool up_connect(struct gw_conn *c);
static void rewalk_body(struct gw_conn *c);

/* ---- small helpers ---- */

static inline void iovq_reset(struct iovq *q) { q->i = q->n = 0; }
static inline bool iovq_empty(const struct iovq *q) { return q->i == q->n; }
static inline unsigned iovq_free(const struct iovq *q) { return IOVQ_N - (unsigned)(q->n - q->i); }

static bool iovq_push(struct iovq *q, const char *p, size_t len)
{
    if (len == 0)
        return true;
    if (q->n > q->i) {
        struct iovec *last = &q->v[q->n - 1];
        if ((const char *)last->iov_base + last->iov_len == p) {
            last->iov_len += len;
            return true;
        }
    }
    if (q->n == IOVQ_N) {
        if (q->i == 0)
            return false;
        memmove(q->v, q->v + q->i, sizeof(q->v[0]) * (size_t)(q->n - q->i));
        q->n -= q->i;
        q->i = 0;
    }
    q->v[q->n].iov_base = (void *)p;
    q->v[q->n].iov_len = len;
    q->n++;
    return true;
}

/* Write what the queue holds.  Returns bytes written, 0 when the socket is
 * full (EAGAIN), -1 on error. */
static ssize_t iovq_write(struct gw_io *io, struct iovq *q)
{
    ssize_t n = gw_io_writev(io, q->v + q->i, q->n - q->i);

    if (n == GW_IO_AGAIN)
        return 0;
    if (n < 0)
        return -1;
    size_t left = (size_t)n;
    while (q->i < q->n && left >= q->v[q->i].iov_len) {
        left -= q->v[q->i].iov_len;
        q->i++;
    }
    if (q->i < q->n) {
        q->v[q->i].iov_base = (char *)q->v[q->i].iov_base + left;
        q->v[q->i].iov_len -= left;
    } else {
        q->i = q->n = 0;
    }
    return n;
}

/* ---- re-framing a chunked body ---- */

/* Room for one more piece of any size, or the last chunk: three iovecs
 * (size line, data, CRLF; the CRLF and the next size line share one) and
 * the framing plus a small piece's copy.  Checked before the chunked
 * decoder is asked for a piece, whose size it alone decides. */
static bool rf_room(struct iovq *q, struct reframe *f)
{
    if (iovq_empty(q))
        f->len = 0;     /* nothing points into the area any more */
    return iovq_free(q) >= 3 && f->len + H1_FWD_CHUNK_MAX + RF_SMALL + 2 <= RF_CAP;
}

/* Queue n data bytes at p as a whole chunk (or, plain, as bare data for
 * an HTTP/1.0 client).  rf_room() said yes. */
static void rf_data(struct iovq *q, struct reframe *f, const char *p, size_t n, bool plain)
{
    char *at = f->b + f->len;
    size_t k = plain ? 0 : h1_fwd_chunk_head(at, n);

    if (n <= RF_SMALL) {    /* size line, data and CRLF in one run */
        memcpy(at + k, p, n);
        k += n;
        n = 0;
    } else {
        iovq_push(q, at, k);
        iovq_push(q, p, n);
        at += k;
        f->len += (uint16_t)k;
        k = 0;
    }
    if (!plain) {
        memcpy(at + k, "\r\n", 2);
        k += 2;
    }
    iovq_push(q, at, k);
    f->len += (uint16_t)k;
}

/* Queue the last chunk (no trailers: sluice forwards none). */
static void rf_last(struct iovq *q, struct reframe *f)
{
    char *at = f->b + f->len;
    size_t k = h1_fwd_chunk_last(at);

    iovq_push(q, at, k);
    f->len += (uint16_t)k;
}

static size_t peer_ip(const struct gw_conn *c, char *out, size_t cap)
{
    if (c->peer.sa.sa_family == AF_INET6) {
        if (!inet_ntop(AF_INET6, &c->peer.in6.sin6_addr, out, (socklen_t)cap))
            return 0;
    } else if (!inet_ntop(AF_INET, &c->peer.in4.sin_addr, out, (socklen_t)cap)) {
        return 0;
    }
    return strlen(out);
}

static uint16_t peer_port(const struct gw_conn *c)
{
    return ntohs(c->peer.sa.sa_family == AF_INET6 ? c->peer.in6.sin6_port : c->peer.in4.sin_port);
}

/*
 * Lazy timers: a connection keeps its wanted deadline, and its libevent
 * timer is re-armed only when the new deadline is earlier than the armed
 * one.  A timer firing early re-arms itself for the rest.  A keep-alive
 * request thus costs no timer operation at all, where arming and disarming
 * per request would cost four.
 */
static void timer_want(struct gw_worker *w, struct event *ev, uint64_t *deadline,
                       uint64_t *armed_at, uint32_t ms)
{
    uint64_t now = gw_now_ms(w);

    *deadline = now + ms;
    if (*armed_at && *armed_at <= *deadline)
        return;     /* the armed timer fires first and will re-arm */
    event_add(ev, gw_common_timeout(w, ms));
    *armed_at = *deadline;
}

/* Called when a lazy timer fired: true if the deadline really passed;
 * otherwise re-arms for the rest (or stays off) and returns false. */
static bool timer_due(struct gw_worker *w, struct event *ev, uint64_t *deadline, uint64_t *armed_at)
{
    uint64_t now = gw_now_ms(w);

    *armed_at = 0;
    if (*deadline == 0)
        return false;
    if (now + 2 < *deadline) {  /* the coarse clock ticks every few ms */
        uint64_t left = *deadline - now;
        struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
        event_add(ev, &tv);
        *armed_at = *deadline;
        return false;
    }
    *deadline = 0;
    return true;
}

static void conn_timer_arm(struct gw_conn *c, uint32_t ms)
{
    timer_want(c->w, &c->timer, &c->deadline_ms, &c->timer_at_ms, ms);
}

static void conn_timer_off(struct gw_conn *c)
{
    c->deadline_ms = 0;
}

static const struct sl_config *conn_cfg(const struct gw_conn *c)
{
    return (c->t && c->t->ws ? c->t->ws : c->w->cur)->s->cfg;
}

static struct gw_txn *txn_get(struct gw_worker *w)
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

/* ---- per-target accounting ---- */

static inline void cnt_sub1(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - 1, memory_order_relaxed);
}

/* The request now goes to target t (NULL: it no longer occupies one). */
static void txn_target(struct gw_conn *c, const struct up_target *t)
{
    struct gw_txn *x = c->t;

    if (x->tb)
        cnt_sub1(&x->tb->inflight);
    x->tb = NULL;
    if (t == NULL)
        return;
    x->target = t;
    x->tb = x->ws->buckets[t->gidx];
    if (x->tb) {
        gw_cnt_add(&x->tb->inflight, 1);
        gw_cnt_add(&x->tb->requests, 1);
    }
}

static void txn_target_failed(struct gw_conn *c)
{
    if (c->t->tb)
        gw_cnt_add(&c->t->tb->failures, 1);
}

/* The txn is failing for why: the first cause is what its end counts. */
static void txn_why(struct gw_conn *c, enum gw_end why)
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
        struct gw_route_stats *rs = t->route ? t->ws->rstats[t->route->index] : t->ws->unmatched;
        if (rs == NULL)
            rs = gw_wsnap_route_stats(c->w, t->ws, t->route);
        gw_cnt_add(&rs->code[t->status / 100 - 1], 1);
    }
    txn_target(c, NULL);
}

/* ---- the access log ---- */

static void access_log(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;
    bool req = t->hlen && c->in;
    char line[ALOG_LINE_MAX];

    if (w->alog.fd < 0)
        return;
    struct alog_rec r = {
        .client_ip = c->ip, .client_ip_len = c->iplen, .client_port = peer_port(c),
        .method = req ? c->in->data + t->m_off : NULL, .method_len = t->m_len,
        .target = req ? c->in->data + t->t_off : NULL, .target_len = t->t_len,
        .http10 = t->client10,
        .host = req && t->h_len ? c->in->data + t->h_off : NULL, .host_len = t->h_len,
        .status = t->status, .bytes_in = t->bytes_in, .bytes_out = t->bytes_out,
        .upstream = t->target ? t->target->text : NULL,
        .upstream_ns = t->t_up ? t->t_up - t->t_start : 0,
        .total_ns = gw_turn_ns(w) - t->t_start,
        .route = t->route ? t->route->name : NULL,
    };
    size_t n = alog_format(line, &r, t->ws && t->ws->s->cfg->access_log_json);
    gw_alog_append(&w->alog, line, n);
}

/* ---- upstream connections ---- */

static void up_timer_arm(struct gw_upconn *u, uint32_t ms)
{
    timer_want(u->w, &u->timer, &u->deadline_ms, &u->timer_at_ms, ms);
}

static void up_timer_off(struct gw_upconn *u)
{
    u->deadline_ms = 0;
}

static void up_close(struct gw_upconn *u)
{
    if (u == NULL || u->closed)
        return;
    u->closed = true;
    cnt_sub1(&u->w->stats.upstream_conns);
    pool_remove(&u->pn);
    event_del(&u->ev);
    event_del(&u->timer);
    if (u->io.ctx)
        gw_tls_close(&u->io);
    close(u->io.fd);
    u->io.fd = -1;
    if (u->owner && u->owner->t && u->owner->t->up == u)
        u->owner->t->up = NULL;
    u->owner = NULL;
    u->gc_next = u->w->gc_ups;
    u->w->gc_ups = u;
}

static void up_event(evutil_socket_t fd, short what, void *arg);
static void up_timer_cb(evutil_socket_t fd, short what, void *arg);

/* A target failed before answering: try another one if the request allows
 * it (SPEC "retries"), else answer with status. */
static void up_failed(struct gw_conn *c, int status, bool stale, enum gw_end reason, const char *why)
{
    struct gw_upconn *u = c->t->up;
    bool reached = u && u->connected;

    if (!stale)
        txn_target_failed(c);
    if (u) {
        /* a certificate we refuse says nothing about the target's health */
        if (!stale && !u->tls_refused && c->t->target && c->t->target->health)
            hc_fail((struct hc_state *)c->t->target->health, gw_now_ms(c->w));
        up_close(u);
    }
    gw_log(GW_LOG_WARN, "upstream %s: %s", c->t->target ? c->t->target->text : "-", why);
    /* Resend only what is still in the buffer; a non-idempotent request that
     * reached a target is not retried (SPEC), except over a stale pooled
     * connection, which the server closed before reading it. */
    bool idempotent = c->t->method == H1_M_GET || c->t->method == H1_M_HEAD ||
                      c->t->method == H1_M_OPTIONS || c->t->method == H1_M_TRACE ||
                      c->t->method == H1_M_PUT || c->t->method == H1_M_DELETE;
    bool can = !c->t->resp_started && !c->t->body_lost && c->state == C_ACTIVE &&
               (!reached || idempotent || c->t->up_sent == 0);
    if (can && stale) {
        c->t->tried &= ~(1ull << ((c->t->target - c->t->ups->targets) & 63));
    } else if (can && c->t->attempts < c->t->ups->cfg->retries) {
        c->t->attempts++;
    } else {
        can = false;
    }
    if (can) {
        uint64_t now = gw_now_ms(c->w);
        int ti = stale ? (int)(c->t->target - c->t->ups->targets)
                       : up_pick(c->t->ups, c->t->ws->target_rr + c->t->ups->targets[0].gidx, now, c->t->tried);
        if (ti >= 0) {
            txn_target(c, &c->t->ups->targets[ti]);
            c->t->tried |= 1ull << (ti & 63);
            iovq_reset(&c->t->uq);
            c->t->up_sent = 0;
            iovq_push(&c->t->uq, c->t->scratch->data, c->t->uhead_len);
            c->t->uq_head = c->t->uhead_len;
            c->t->uhead_pending = true;
            rewalk_body(c);
            if (up_connect(c))
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

/* A new upstream connection speaks TLS: SNI and verification from the
 * upstream's settings, the bucket's last session offered for resumption and
 * its new tickets kept there. */
static bool up_tls_setup(struct gw_upconn *u, SSL_CTX *ctx, const struct cfg_upstream_tls *tc,
                         struct pool_bucket *b)
{
    char ip[INET6_ADDRSTRLEN] = "";
    const struct up_target *t = u->t;

    if (t->name[0] == '\0') {
        const void *a = t->sa.ss_family == AF_INET6
                            ? (const void *)&((const struct sockaddr_in6 *)&t->sa)->sin6_addr
                            : (const void *)&((const struct sockaddr_in *)&t->sa)->sin_addr;
        inet_ntop(t->sa.ss_family, a, ip, sizeof(ip));
    }
    SSL *ssl = gw_tls_client_new(ctx, u->io.fd, tc, t->name[0] ? t->name : ip, t->name[0] == '\0',
                                 b ? b->user : NULL);
    if (ssl == NULL)
        return false;
    if (!gw_tls_attach(&u->io, ssl)) {
        SSL_free(ssl);
        return false;
    }
    if (b)
        gw_tls_session_slot(ssl, (SSL_SESSION **)&b->user);
    u->hs = true;
    return true;
}

static bool up_connect(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    const struct up_target *t = c->t->target;
    struct pool_bucket *b = c->t->ws->buckets[t->gidx];
    struct pool_node *pn;
    struct gw_upconn *u;

    /* a pooled connection first: the most recent is the least likely stale */
    while (b && (pn = pool_get(b)) != NULL) {
        u = (struct gw_upconn *)((char *)pn - offsetof(struct gw_upconn, pn));
        u->owner = c;
        u->t = t;
        u->reused = true;
        u->r_ready = false;
        c->t->up = u;
        gw_cnt_add(&w->stats.pool_hits, 1);
        return true;
    }
    gw_cnt_add(&w->stats.pool_misses, 1);
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        abort();
    u->magic = UP_MAGIC;
    u->w = w;
    u->t = t;
    u->owner = c;
    u->io.ops = &gw_io_plain;
    u->io.fd = socket(t->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->io.fd == -1) {
        gw_log(GW_LOG_ERROR, "socket: %s", strerror(errno));
        free(u);
        txn_why(c, GW_END_INTERNAL);
        local_response(c, 502, NULL, NULL, 0, NULL);
        return true;
    }
    SSL_CTX *tctx = gw_tls_upstream_ctx(c->t->ws->s->tls, (size_t)(c->t->ups - c->t->ws->s->ups.v));
    if (tctx && !up_tls_setup(u, tctx, c->t->ups->cfg->tls, b)) {
        gw_log(GW_LOG_ERROR, "upstream %s: cannot set up TLS", t->text);
        close(u->io.fd);
        free(u);
        c->t->up = NULL;
        txn_why(c, GW_END_INTERNAL);
        local_response(c, 502, NULL, NULL, 0, NULL);
        return true;
    }
    int one = 1;
    gw_cnt_add(&w->stats.upstream_conns, 1);
    u->connect_start = gw_turn_ns(c->w);
    setsockopt(u->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&u->ev, w->base, u->io.fd, EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST, up_event, u);
    event_assign(&u->timer, w->base, -1, 0, up_timer_cb, u);
    c->t->up = u;
    if (connect(u->io.fd, (const struct sockaddr *)&t->sa, t->salen) == 0) {
        u->connected = u->w_ready = true;
        gw_hist_observe(&w->stats.connect_time, gw_turn_ns(w) - u->connect_start);
    } else if (errno != EINPROGRESS) {
        int e = errno;
        event_add(&u->ev, NULL);    /* up_close() deletes it */
        char why[128];
        snprintf(why, sizeof(why), "connect: %s", strerror(e));
        up_failed(c, 502, false, GW_END_UP_CONNECT, why);
        return true;
    }
    event_add(&u->ev, NULL);
    up_timer_arm(u, c->t->ups->cfg->connect_ms);
    return true;
}

/* The txn is done with its upstream connection: pooled if the pool's
 * policy takes it (f: what the txn knows), else closed. */
static void up_checkin(struct gw_conn *c, struct pool_facts *f)
{
    struct gw_upconn *u = c->t->up;

    if (u == NULL)
        return;
    c->t->up = NULL;
    u->owner = NULL;
    struct pool_bucket *b = c->t->ws->buckets[c->t->target->gidx];
    f->has_bucket = b != NULL;
    /* Readiness seen while we owned it will not be reported again (edge
     * triggered): stray bytes or a FIN would reach the next request.  A
     * response whose last read took exactly its last bytes leaves the
     * readiness unconsumed though nothing is left: a plain socket is asked
     * (one peek) rather than closed for it, so whether a connection is
     * pooled does not depend on how the bytes happened to arrive. */
    if (u->r_ready && !u->rdhup && u->io.ctx == NULL && pool_may_keep(f)) {
        char one;
        ssize_t k = recv(u->io.fd, &one, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            u->r_ready = false;
    }
    f->unread = u->r_ready || u->rdhup || (u->io.ctx && gw_tls_pending(&u->io));
    if (!pool_may_keep(f)) {
        up_close(u);
        return;
    }
    if (u->lowat) {     /* pooled: the next request may copy */
        gw_splice_lowat(u->io.fd, false);
        u->lowat = false;
    }
    up_timer_off(u);
    u->r_ready = false;
    struct pool_node *old = pool_checkin(b, &u->pn, gw_now_ms(c->w),
                                         c->t->ups->cfg->pool_idle_timeout_ms, f->max_idle);
    if (old)
        up_close((struct gw_upconn *)((char *)old - offsetof(struct gw_upconn, pn)));
}

static void up_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_upconn *u = arg;

    CHECK_MAGIC(u, UP_MAGIC);
    struct gw_worker *w = u->w;
    struct gw_conn *c = u->owner;

    if (c == NULL) {
        /* Idle in the pool: any readiness is the server closing (or junk).
         * Either way the connection is no longer clean. */
        if (what & (EV_READ | EV_CLOSED))
            up_close(u);
        gw_gc(w);
        return;
    }
    if (what & (EV_READ | EV_CLOSED))
        u->r_ready = true;
    if (what & EV_CLOSED)
        u->rdhup = true;
    if (what & EV_WRITE)
        u->w_ready = true;
    if (!u->connected && (what & (EV_WRITE | EV_READ))) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(u->io.fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            char why[128];
            snprintf(why, sizeof(why), "connect: %s", strerror(err));
            up_failed(c, 502, false, GW_END_UP_CONNECT, why);
            conn_pump(c);
            gw_gc(w);
            return;
        }
        u->connected = true;
        if (!u->hs)
            up_timer_off(u);    /* a TLS handshake stays under connect_ms */
        gw_hist_observe(&w->stats.connect_time, gw_turn_ns(w) - u->connect_start);
    }
    conn_pump(c);
    gw_gc(w);
}

static void up_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_upconn *u = arg;

    CHECK_MAGIC(u, UP_MAGIC);
    struct gw_worker *w = u->w;
    struct gw_conn *c = u->owner;

    if (!timer_due(w, &u->timer, &u->deadline_ms, &u->timer_at_ms))
        return;
    if (c == NULL) {
        up_close(u);
    } else if (!u->connected) {
        up_failed(c, 504, false, GW_END_UP_CONNECT_TIMEOUT, "connect timed out");
    } else if (u->hs) {
        up_failed(c, 504, false, GW_END_UP_CONNECT_TIMEOUT, "TLS handshake timed out");
    } else if (c->t->rstate == RS_WAIT && !c->t->resp_started) {
        gw_log(GW_LOG_WARN, "upstream %s: no response header within %u ms",
               c->t->target->text, c->t->ups->cfg->response_header_ms);
        up_close(u);
        txn_target_failed(c);
        txn_why(c, GW_END_UP_HEADER_TIMEOUT);
        c->t->keepalive = c->t->keepalive && c->t->req_done;
        local_response(c, 504, NULL, NULL, 0, NULL);
    } else {
        gw_log(GW_LOG_WARN, "upstream %s: idle for %u ms mid-response", c->t->target->text,
               c->t->ups->cfg->idle_ms);
        up_close(u);
        txn_end(c, GW_END_UP_IDLE_TIMEOUT);
    }
    if (c)
        conn_pump(c);
    gw_gc(w);
}

/* ---- building heads ---- */

static bool build_upstream_head(struct gw_conn *c, const struct h1_request *r)
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

    t->scratch = gw_buf_get(w, need);
    struct h1_fwd_req f = {
        .route = rt, .client_ip = c->ip, .client_ip_len = c->iplen,
        .default_host = t->target->host, .https = c->https, .websocket = t->upgrade,
        .rid_hi = w->rid_seed, .rid_lo = ++w->rid_count ^ ((uint64_t)w->id << 56),
    };
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

/* ---- local responses ---- */

static void local_response(struct gw_conn *c, int status, const char *ctype,
                           const char *body, size_t body_len, const char *extra)
{
    char dflt[96];

    if (c->state == C_CLOSED)
        return;
    if (c->t->up) {
        c->t->up_clean = false;
        up_close(c->t->up);
    }
    if (body == NULL && status >= 200 && status != 204 && status != 304) {
        body_len = (size_t)snprintf(dflt, sizeof(dflt), "%d %s\n", status, h1_reason(status));
        body = dflt;
        ctype = "text/plain";
    }
    if (!c->t->req_done)
        c->t->keepalive = false;    /* the unread body must not be parsed as a request */
    if (c->t->scratch == NULL)
        c->t->scratch = gw_buf_get(c->w, body_len + 1024 + (extra ? strlen(extra) : 0));
    struct gw_buf *b = c->t->scratch;
    b->start = b->end = 0;
    iovq_reset(&c->t->cq);
    struct sbuf s = { b->data, 0, b->cap, false };
    sb_fmt(&s, "HTTP/1.1 %d %s\r\n", status, h1_reason(status));
    if (ctype)
        sb_fmt(&s, "Content-Type: %s\r\n", ctype);
    if (status >= 200 && status != 204 && status != 304) {
        SB_LIT(&s, "Content-Length: ");
        sb_u64(&s, body_len);
        SB_LIT(&s, "\r\n");
    }
    if (extra)
        sb_put(&s, extra, strlen(extra));
    if (c->t->route && status < 400)
        h1_fwd_put_edits(&s, &c->t->route->resp_headers);
    if (!c->t->keepalive)
        SB_LIT(&s, "Connection: close\r\n");
    else if (c->t->client10)
        SB_LIT(&s, "Connection: keep-alive\r\n");
    SB_LIT(&s, "\r\n");
    if (!c->t->head_req)
        sb_put(&s, body, body_len);
    if (s.overflow) {   /* cannot happen with the sizes above; never send half */
        txn_end(c, GW_END_INTERNAL);
        return;
    }
    b->end = (uint32_t)s.len;
    iovq_push(&c->t->cq, b->data, s.len);
    c->t->cq_head = (uint32_t)s.len;   /* our own answer: no body moved between sockets */
    c->t->status = status;
    c->t->resp_started = true;
    c->state = C_LOCAL;
}

/* ---- the request ---- */

static void route_request(struct gw_conn *c, const struct h1_request *r)
{
    struct gw_wsnap *ws = c->t->ws;
    const struct sl_config *cfg = ws->s->cfg;
    struct rt_request q;
    size_t li = cfg->nlisteners;

    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (ws->s->listeners[i] == c->l) {
            li = i;
            break;
        }
    if (li == cfg->nlisteners) {
        /* the listener was removed by a reload: it has no routes any more */
        c->t->keepalive = false;
        local_response(c, 404, NULL, NULL, 0, NULL);
        return;
    }
    q.listener = li;
    q.method = r->method;
    q.method_len = r->method_len;
    q.host = r->host;
    q.host_len = r->host_len;
    q.path = r->path;
    q.path_len = r->path_len;
    q.query = r->query;
    q.query_len = r->query_len;
    q.headers = r->headers;
    q.nheaders = r->nheaders;
    c->t->route = rt_match(ws->s->rt, &q);
    if (c->t->route == NULL) {
        local_response(c, 404, NULL, NULL, 0, NULL);
        return;
    }
    const struct cfg_route *rt = c->t->route;
    if (rt->action == CFG_ACT_RESPOND) {
        local_response(c, rt->respond.status, rt->respond.content_type,
                       rt->respond.body ? rt->respond.body : "", rt->respond.body_len, NULL);
        return;
    }
    if (rt->action == CFG_ACT_REDIRECT) {
        char loc[8192], tmp[4096];
        struct sbuf s = { loc, 0, sizeof(loc) - 1, false };
        const char *scheme = rt->redirect.scheme ? rt->redirect.scheme : c->https ? "https" : "http";
        SB_LIT(&s, "Location: ");
        sb_put(&s, scheme, strlen(scheme));
        SB_LIT(&s, "://");
        if (rt->redirect.host) {
            sb_put(&s, rt->redirect.host, strlen(rt->redirect.host));
        } else if (r->host) {   /* the request's host without its port */
            size_t hl = r->host_len;
            if (r->host[0] == '[') {
                const char *e = memchr(r->host, ']', hl);
                if (e)
                    hl = (size_t)(e - r->host) + 1;
            } else {
                const char *e = memchr(r->host, ':', hl);
                if (e)
                    hl = (size_t)(e - r->host);
            }
            sb_put(&s, r->host, hl);
        }
        int port = rt->redirect.port;
        if (port == 0)
            port = rt->redirect.scheme ? (strcmp(scheme, "https") == 0 ? 443 : 80) : c->l->port;
        if (!((port == 80 && strcmp(scheme, "http") == 0) || (port == 443 && strcmp(scheme, "https") == 0)))
            sb_fmt(&s, ":%d", port);
        if (rt->redirect.path) {
            sb_put(&s, rt->redirect.path, strlen(rt->redirect.path));
        } else if (rt->redirect.replace_prefix) {
            struct cfg_route tmp_rt = *rt;
            tmp_rt.rewrite = CFG_RW_REPLACE_PREFIX;
            tmp_rt.rewrite_path = rt->redirect.replace_prefix;
            tmp_rt.rewrite_path_len = (uint32_t)strlen(rt->redirect.replace_prefix);
            int n = rt_rewrite_path(&tmp_rt, r->path, r->path_len, tmp, sizeof(tmp));
            if (n > 0)
                sb_put(&s, tmp, (size_t)n);
        } else {
            sb_put(&s, r->path, r->path_len);
        }
        if (r->query) {
            SB_LIT(&s, "?");
            sb_put(&s, r->query, r->query_len);
        }
        SB_LIT(&s, "\r\n");
        loc[s.len] = '\0';
        if (s.overflow) {
            local_response(c, 400, NULL, NULL, 0, NULL);
            return;
        }
        local_response(c, rt->redirect.status, NULL, "", 0, loc);
        return;
    }
    /* backends: weighted split, then a target of that upstream */
    size_t bi = 0;
    if (rt->nbackends > 1) {
        uint32_t wts[64];
        size_t nb = rt->nbackends < 64 ? rt->nbackends : 64;
        for (size_t i = 0; i < nb; i++)
            wts[i] = rt->backends[i].weight;
        int k = up_swrr(ws->route_rr + ws->s->route_rr_off[rt->index], wts, nb, NULL, NULL);
        bi = k < 0 ? 0 : (size_t)k;
    }
    c->t->ups = &ws->s->ups.v[rt->backends[bi].upstream_idx];
    int ti = c->t->ups->ntargets ? up_pick(c->t->ups, ws->target_rr + c->t->ups->targets[0].gidx,
                                        gw_now_ms(c->w), 0) : -1;
    if (ti < 0) {
        local_response(c, 503, NULL, NULL, 0, NULL);
        return;
    }
    txn_target(c, &c->t->ups->targets[ti]);
    c->t->tried = 1ull << (ti & 63);
    if (!build_upstream_head(c, r)) {
        local_response(c, 431, NULL, NULL, 0, NULL);
        return;
    }
    /* queue the head and whatever body bytes came with it */
    iovq_reset(&c->t->uq);
    iovq_push(&c->t->uq, c->t->scratch->data, c->t->uhead_len);
    c->t->uq_head = c->t->uhead_len;
    c->t->uhead_pending = true;
    c->state = C_ACTIVE;
    c->t->rstate = RS_WAIT;
    c->t->up_clean = true;
    up_connect(c);
}

/*
 * Walk the body bytes in in[body_end, in->end): decide which belong to this
 * request and queue them upstream.  A Content-Length body goes as it came;
 * a chunked one is re-framed (sizes, extensions and trailers are sluice's,
 * not the client's).  It stops early when the queue is full; the rest is
 * walked once the queue has drained (client_body_recv).  Returns false
 * after answering an error.
 */
static bool take_body(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_buf *in = c->in;
    uint64_t max = conn_cfg(c)->max_body_bytes;

    while (!t->req_done && t->body_end < in->end && c->state == C_ACTIVE) {
        const char *p = in->data + t->body_end;
        size_t avail = in->end - t->body_end, used = 0;
        int k = H1C_DATA;
        if (t->req_kind == H1_BODY_LENGTH) {
            used = avail < t->req_remaining ? avail : (size_t)t->req_remaining;
            t->req_remaining -= used;
            if (t->req_remaining == 0)
                k = H1C_DONE;
        } else {
            if (!rf_room(&t->uq, &t->urf))
                break;
            k = h1_chunked_next(&t->req_ck, p, avail, &used);
            if (k == H1C_ERROR) {
                txn_why(c, GW_END_CLIENT_PARSE);
                local_response(c, 400, NULL, NULL, 0, NULL);
                return false;
            }
        }
        if (t->req_kind == H1_BODY_LENGTH || k == H1C_DATA)
            t->req_body_bytes += used;
        if (max && t->req_body_bytes > max) {
            local_response(c, 413, NULL, NULL, 0, NULL);
            return false;
        }
        if (t->req_kind == H1_BODY_LENGTH)
            iovq_push(&t->uq, p, used);     /* one run after the head: always fits */
        else if (k == H1C_DATA)
            rf_data(&t->uq, &t->urf, p, used, false);
        else if (k == H1C_DONE)
            rf_last(&t->uq, &t->urf);
        t->body_end += (uint32_t)used;
        t->bytes_in += used;
        if (k == H1C_DONE)
            t->req_done = true;
        if (k == H1C_AGAIN)
            break;
    }
    t->body_pos = t->body_end;
    return true;
}

/* The body walked so far goes again, to another target (a retry): walk it
 * anew from the start, all of it still in the buffer (!body_lost). */
static void rewalk_body(struct gw_conn *c)
{
    struct gw_txn *t = c->t;

    t->bytes_in -= t->body_end - t->hlen;
    t->body_pos = t->body_end = t->hlen;
    t->req_body_bytes = 0;
    t->req_remaining = t->req_cl;
    t->req_done = t->req_kind == H1_BODY_NONE;
    if (t->req_kind == H1_BODY_CHUNKED)
        h1_chunked_init(&t->req_ck);
    t->urf.len = 0;     /* the queue was emptied: nothing points into it */
    take_body(c);
}

static void start_request(struct gw_conn *c, uint32_t hlen)
{
    struct gw_worker *w = c->w;
    const struct h1_request *r = &w->req;
    const char *base = c->in->data;

    c->t = txn_get(w);
    c->t->ws = w->cur;
    c->t->ws->pins++;
    c->t->t_start = gw_turn_ns(c->w);
    c->t->t_up = 0;
    c->t->hlen = hlen;
    c->t->m_off = (uint32_t)(r->method - base);
    c->t->m_len = r->method_len;
    c->t->t_off = (uint32_t)(r->target - base);
    c->t->t_len = r->target_len;
    c->t->h_off = r->host ? (uint32_t)(r->host - base) : 0;
    c->t->h_len = r->host ? r->host_len : 0;
    c->t->method = (uint8_t)r->m;
    c->t->client10 = r->minor == 0;
    c->t->keepalive = r->keep_alive && !w->draining;
    c->t->head_req = r->m == H1_M_HEAD;
    c->t->req_kind = (uint8_t)r->body;
    c->t->req_remaining = c->t->req_cl = r->content_length;
    c->t->req_body_bytes = 0;
    c->t->req_done = r->body == H1_BODY_NONE || (r->body == H1_BODY_LENGTH && r->content_length == 0);
    c->t->body_pos = c->t->body_end = hlen;
    c->t->body_lost = c->t->resp_started = c->t->dechunk = c->t->up_clean = false;
    /* only a WebSocket upgrade is passed on (h2c would tunnel past the routes) */
    c->t->upgrade = (r->flags & H1_F_UPGRADE_WS) && (r->flags & H1_F_CONN_UPGRADE) && r->minor == 1;
    c->t->attempts = 0;
    c->t->status = 0;
    c->t->bytes_in = hlen;
    c->t->bytes_out = 0;
    c->t->target = NULL;
    c->t->route = NULL;
    c->t->uscanned = 0;
    if (r->body == H1_BODY_CHUNKED)
        h1_chunked_init(&c->t->req_ck);
    conn_timer_off(c);
    iovq_reset(&c->t->cq);
    iovq_reset(&c->t->uq);
    c->t->cq_head = c->t->uq_head = 0;

    const struct sl_config *cfg = c->t->ws->s->cfg;
    if (r->m == H1_M_CONNECT) {     /* a reverse proxy opens no tunnels to arbitrary hosts */
        c->t->keepalive = false;
        local_response(c, 405, NULL, NULL, 0, "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n");
        return;
    }
    if (cfg->max_body_bytes && r->body == H1_BODY_LENGTH && r->content_length > cfg->max_body_bytes) {
        local_response(c, 413, NULL, NULL, 0, NULL);
        return;
    }
    route_request(c, r);
    if (c->state == C_ACTIVE) {
        if ((r->flags & H1_F_EXPECT_CONTINUE) && !c->t->req_done && !c->t->client10) {
            /* answer it ourselves (as nginx does) so the client sends the body
             * while we connect; Expect is not forwarded */
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            iovq_push(&c->t->cq, cont, sizeof(cont) - 1);
            c->t->cq_head += sizeof(cont) - 1;
        }
        take_body(c);
        if (c->state == C_ACTIVE && !c->t->req_done)
            conn_timer_arm(c, c->t->ws->s->cfg->client_idle_ms);   /* a body that never comes */
    }
}

static void answer_parse_error(struct gw_conn *c, int err)
{
    int status = err == H1_ERR_TOO_LARGE ? 431 : err == H1_ERR_TE ? 501 :
                 err == H1_ERR_VERSION ? 505 : 400;
    c->t = txn_get(c->w);
    c->t->ws = c->w->cur;
    c->t->ws->pins++;
    c->t->t_start = gw_turn_ns(c->w);
    c->t->hlen = 0;
    c->t->route = NULL;
    c->t->target = NULL;
    c->t->keepalive = false;
    c->t->req_done = false;
    c->t->head_req = false;
    c->t->client10 = false;
    c->t->bytes_in = c->in ? c->in->end : 0;
    c->t->bytes_out = 0;
    c->t->why = GW_END_CLIENT_PARSE;
    conn_timer_off(c);
    local_response(c, status, NULL, NULL, 0, NULL);
}

/* ---- reading ---- */

/* Read from fd into b's free tail.  >0 bytes, 0 EOF, -1 error, -2 no data.
 * rdhup: the peer's FIN is known to be pending (EPOLLRDHUP), so a short
 * read does not mean the edge was consumed: the EOF still has to be read. */
static ssize_t buf_read(struct gw_io *io, struct gw_buf *b, bool *ready, bool rdhup)
{
    size_t room = b->cap - b->end;
    ssize_t n = gw_io_read(io, b->data + b->end, room);

    if (n > 0) {
        b->end += (uint32_t)n;
        if ((size_t)n < room && !rdhup)
            *ready = false;     /* a short read drained the socket (edge-triggered) */
        return n;
    }
    if (n == 0)
        return 0;
    if (n == GW_IO_AGAIN) {
        *ready = false;
        return -2;
    }
    return -1;
}

/* One step of a client's TLS handshake; true when it finished (the pump
 * goes on to read the request). */
static bool conn_handshake(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    char why[256];

    if ((c->hs_want == GW_HS_WANT_READ && !c->r_ready) || (c->hs_want == GW_HS_WANT_WRITE && !c->w_ready))
        return false;
    int r = gw_tls_handshake(&c->io, why, sizeof(why));
    switch (r) {
    case GW_HS_DONE: {
        bool tx, rx;
        c->hs = false;
        c->hs_want = 0;
        gw_cnt_add(&w->stats.tls_hs[0][gw_tls_resumed(&c->io) ? 1 : 0], 1);
        gw_tls_pick_ops(&c->io, &tx, &rx);
        if (c->ktls_want)
            gw_cnt_add(tx ? &w->stats.ktls_on : &w->stats.ktls_fallback, 1);
        /* the request may have come with the client's Finished and already
         * sit decrypted-to-be in OpenSSL's buffer: no new edge would say so */
        c->r_ready = true;
        conn_timer_arm(c, w->cur->s->cfg->client_header_ms);
        return true;
    }
    case GW_HS_WANT_READ:
        c->hs_want = (uint8_t)r;
        c->r_ready = false;
        return false;
    case GW_HS_WANT_WRITE:
        c->hs_want = (uint8_t)r;
        c->w_ready = false;
        return false;
    case GW_HS_PLAINTEXT: {
        static const char msg[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 46\r\nConnection: close\r\n\r\n"
                                  "The plain HTTP request was sent to HTTPS port\n";
        gw_cnt_add(&w->stats.tls_hs[0][2], 1);
        ssize_t n = send(c->io.fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL);
        (void)n;
        c->hs_want = GW_HS_PLAINTEXT;   /* txn_end lingers: the rest is read and dropped */
        txn_end(c, GW_END_CLIENT_TLS);
        return false;
    }
    default:
        gw_cnt_add(&w->stats.tls_hs[0][2], 1);
        gw_log(GW_LOG_INFO, "TLS handshake with %.*s failed: %s", (int)c->iplen, c->ip, why);
        txn_end(c, GW_END_CLIENT_TLS);
        return false;
    }
}

static bool head_step(struct gw_conn *c)
{
    struct gw_worker *w = c->w;

    gw_worker_refresh(w);
    if (c->hs)
        return conn_handshake(c);
    const struct sl_config *cfg = w->cur->s->cfg;
    if (!c->parse_pending) {
        if (!c->r_ready)
            return false;
        if (c->in == NULL)
            c->in = gw_buf_get(w, cfg->max_header_bytes + 1024);
        if (c->in->end == c->in->cap)
            return false;
        bool was_empty = c->in->end == 0;
        ssize_t n = buf_read(&c->io, c->in, &c->r_ready, c->rdhup);
        if (n == 0 || n == -1) {
            txn_end(c, c->in->end ? GW_END_CLIENT_CLOSED : GW_END_IDLE_CLOSED);
            return false;
        }
        if (n == -2) {
            if (c->in->end == 0) {  /* idle: hold no buffer */
                gw_buf_put(w, c->in);
                c->in = NULL;
            }
            return false;
        }
        c->header_clock |= was_empty;
    }
    c->parse_pending = false;
    int rc = h1_parse_request(c->in->data, c->in->end, cfg->max_header_bytes, &c->scanned, &w->req);
    if (rc == H1_INCOMPLETE) {
        /* start client_header_ms at a request's first byte, and only when
         * the head did not come whole (the common case costs nothing) */
        if (c->header_clock) {
            conn_timer_arm(c, cfg->client_header_ms);
            c->header_clock = false;
        }
        return c->r_ready;
    }
    c->header_clock = false;
    c->scanned = 0;
    if (rc < 0) {
        answer_parse_error(c, rc);
        return true;
    }
    start_request(c, (uint32_t)rc);
    return true;
}

/* ---- the response ---- */

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
                txn_why(c, GW_END_UP_PARSE);
                c->t->up_clean = false;
                up_close(c->t->up);
                local_response(c, 502, NULL, NULL, 0, NULL);
            }
            return false;
        }
        c->t->uscanned = 0;
        if (rc < 0) {
            gw_log(GW_LOG_WARN, "upstream %s: %s", c->t->target->text,
                   rc == H1_ERR_TE ? "a Transfer-Encoding other than chunked"
                                   : rc == H1_ERR_TOO_LARGE ? "response header too large"
                                                            : "malformed response");
            txn_why(c, GW_END_UP_PARSE);
            c->t->up_clean = false;
            up_close(c->t->up);
            local_response(c, 502, NULL, NULL, 0, NULL);
            return false;
        }
        if (r->status >= 100 && r->status < 200 && r->status != 101) {
            /* interim responses: pass to HTTP/1.1 clients, drop for 1.0 */
            ub->start += (uint32_t)rc;
            c->t->body_lost = true;     /* something went to the client: no retry */
            if (!c->t->client10 && !build_client_head(c, r)) {
                c->t->up_clean = false;
                up_close(c->t->up);
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
    c->t->status = r->status;
    c->t->resp_started = true;
    c->t->body_lost = true;
    if (c->t->target->health)
        hc_ok((struct hc_state *)c->t->target->health);
    up_timer_off(c->t->up);

    if (r->status == 101) {
        /* only to a WebSocket upgrade the client asked for */
        if (!c->t->upgrade || !(r->flags & H1_F_UPGRADE_WS)) {
            txn_why(c, GW_END_UP_PARSE);
            c->t->up_clean = false;
            up_close(c->t->up);
            c->t->resp_started = false;
            local_response(c, 502, NULL, NULL, 0, NULL);
            return false;
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
    if (!build_client_head(c, r)) {
        txn_why(c, GW_END_UP_PARSE);
        c->t->up_clean = false;
        up_close(c->t->up);
        c->t->resp_started = false;
        local_response(c, 502, NULL, NULL, 0, NULL);
        return false;
    }
    c->t->rstate = r->body == H1_BODY_NONE ? RS_DONE : RS_BODY;
    if (c->t->rstate == RS_DONE && ub->start < ub->end)
        c->t->up_clean = false;        /* bytes after a bodiless response: not clean */
    return true;
}

/* Queue the body bytes in ubuf[start, end) for the client: a chunked body
 * re-framed (de-chunked for an HTTP/1.0 client), up to what the queue
 * holds; up_recv() comes back for the rest once the queue has drained. */
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
            t->resp_remaining -= used;
            if (t->resp_remaining == 0)
                t->rstate = RS_DONE;
        } else if (t->resp_kind == H1_BODY_CLOSE) {
            iovq_push(&t->cq, p, used);
        } else {
            if (!rf_room(&t->cq, &t->crf))
                return;
            int k = h1_chunked_next(&t->resp_ck, p, avail, &used);
            if (k == H1C_ERROR) {
                gw_log(GW_LOG_WARN, "upstream %s: bad chunked framing", t->target->text);
                t->up_clean = false;
                up_close(t->up);
                txn_end(c, GW_END_UP_PARSE);
                return;
            }
            if (k == H1C_DATA)
                rf_data(&t->cq, &t->crf, p, used, t->dechunk);
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

static bool up_recv(struct gw_conn *c)
{
    struct gw_upconn *u = c->t->up;
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
    if (c->t->ubuf == NULL)
        c->t->ubuf = gw_buf_get(w, c->t->rstate == RS_BODY ? GW_BUF_LARGE : GW_BUF_SMALL);
    struct gw_buf *ub = c->t->ubuf;
    if (ub->start == ub->end) {
        ub->start = ub->end = 0;
        /* a long body: move to a large buffer, fewer syscalls per byte */
        if (c->t->rstate == RS_BODY && ub->cap == GW_BUF_SMALL &&
            (c->t->resp_kind != H1_BODY_LENGTH || c->t->resp_remaining > GW_BUF_SMALL)) {
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
    if (n == 0 || n == -1) {
        if (c->t->rstate == RS_WAIT) {
            bool nothing = ub->end == 0;
            if (nothing && u->reused)
                up_failed(c, 502, true, GW_END_UP_RESET,
                          "pooled connection closed before the response; retrying");
            else if (nothing)
                up_failed(c, 502, false, GW_END_UP_RESET,
                          n == 0 ? "closed before responding" : "reset before responding");
            else {
                gw_log(GW_LOG_WARN, "upstream %s: incomplete response header", c->t->target->text);
                txn_why(c, GW_END_UP_RESET);
                c->t->up_clean = false;
                up_close(u);
                local_response(c, 502, NULL, NULL, 0, NULL);
            }
            return true;
        }
        if (c->t->resp_kind == H1_BODY_CLOSE && n == 0) {
            c->t->rstate = RS_DONE;
            c->t->up_clean = false;
            up_close(u);
            return true;
        }
        gw_log(GW_LOG_WARN, "upstream %s: connection lost mid-response", c->t->target->text);
        c->t->up_clean = false;
        up_close(u);
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
        up_timer_arm(c->t->up, c->t->ups->cfg->idle_ms);   /* silence mid-response */
    return true;
}

/* ---- writing ---- */

/* n bytes of a queue went out: the head bytes at its front first, the rest
 * is body copied through user space. */
static void count_copied(struct gw_conn *c, uint32_t *head, size_t n)
{
    size_t h = n < *head ? n : *head;

    *head -= (uint32_t)h;
    if (n > h)
        gw_cnt_add(&c->w->stats.body_copy, n - h);
}

static bool client_send(struct gw_conn *c)
{
    if (iovq_empty(&c->t->cq) || !c->w_ready)
        return false;
    ssize_t n = iovq_write(&c->io, &c->t->cq);
    if (n < 0) {
        txn_end(c, GW_END_CLIENT_CLOSED);      /* drops the upstream too */
        return false;
    }
    if (n == 0) {
        c->w_ready = false;
        return false;
    }
    c->t->bytes_out += (uint64_t)n;
    count_copied(c, &c->t->cq_head, (size_t)n);
    if (iovq_empty(&c->t->cq) && c->t->ubuf && c->t->ubuf->start == c->t->ubuf->end)
        c->t->ubuf->start = c->t->ubuf->end = 0;
    return true;
}

/* One step of an upstream TLS handshake; true when it made progress. */
static bool up_handshake(struct gw_conn *c, struct gw_upconn *u)
{
    char why[300];

    if ((u->hs_want == GW_HS_WANT_READ && !u->r_ready) || (u->hs_want == GW_HS_WANT_WRITE && !u->w_ready))
        return false;
    int r = gw_tls_handshake(&u->io, why + 15, sizeof(why) - 15);
    switch (r) {
    case GW_HS_DONE: {
        bool tx, rx;
        u->hs = false;
        u->hs_want = 0;
        up_timer_off(u);
        gw_cnt_add(&c->w->stats.tls_hs[1][gw_tls_resumed(&u->io) ? 1 : 0], 1);
        gw_tls_pick_ops(&u->io, &tx, &rx);
        u->r_ready = true;      /* bytes may wait inside OpenSSL: no edge would tell */
        return true;
    }
    case GW_HS_WANT_READ:
        u->hs_want = (uint8_t)r;
        u->r_ready = false;
        return false;
    case GW_HS_WANT_WRITE:
        u->hs_want = (uint8_t)r;
        u->w_ready = false;
        return false;
    default:
        gw_cnt_add(&c->w->stats.tls_hs[1][2], 1);
        memcpy(why, "TLS handshake: ", 15);
        u->tls_refused = true;
        up_failed(c, 502, false, GW_END_UP_TLS, why);
        return true;
    }
}

static bool up_send(struct gw_conn *c)
{
    struct gw_upconn *u = c->t->up;

    if (u == NULL || !u->connected)
        return false;
    if (u->hs)
        return up_handshake(c, u);
    if (!u->w_ready || iovq_empty(&c->t->uq))
        return false;
    ssize_t n = iovq_write(&u->io, &c->t->uq);
    if (n < 0) {
        if (c->t->rstate == RS_WAIT && !c->t->resp_started)
            up_failed(c, 502, u->reused && u->nreq > 0, GW_END_UP_RESET, "write failed");
        else {
            up_close(u);
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
            up_timer_arm(u, c->t->ups->cfg->response_header_ms);
        }
    }
    return true;
}

/* Read more of the request body (only when all queued bytes went up). */
static bool client_body_recv(struct gw_conn *c)
{
    if (c->t->req_done || !iovq_empty(&c->t->uq) || c->t->up == NULL || c->t->req_spliced)
        return false;
    struct gw_buf *in = c->in;
    if (c->t->body_end < in->end) {
        /* read before, not walked yet: the queue was full (re-framing) */
        uint32_t before = c->t->body_end;
        take_body(c);
        return c->state != C_ACTIVE || c->t->body_end != before;
    }
    if (!c->r_ready)
        return false;
    if (in->end > c->t->hlen) {
        /* everything queued was written: the buffer can be reused */
        in->end = c->t->hlen;
        c->t->body_pos = c->t->body_end = c->t->hlen;
        c->t->body_lost = true;
    }
    ssize_t n = buf_read(&c->io, in, &c->r_ready, c->rdhup);
    if (n == -2)
        return false;
    if (n == 0 || n == -1) {
        c->t->up_clean = false;
        up_close(c->t->up);
        txn_end(c, GW_END_CLIENT_CLOSED);
        return false;
    }
    conn_timer_arm(c, c->t->ws->s->cfg->client_idle_ms);
    take_body(c);
    return true;
}

/* The request is complete: a readable client now is either the next
 * pipelined request or the client leaving (EOF), which must stop the
 * upstream at once (an LLM stops generating). */
static bool client_watch(struct gw_conn *c)
{
    char b;

    if (!c->r_ready || !c->t->req_done || c->peeked)
        return false;
    /* Under TLS the bytes are records, not a request to peek at: the FIN
     * (seen as RDHUP) says the client left; anything else waits its turn. */
    ssize_t n = !c->io.ctx ? recv(c->io.fd, &b, 1, MSG_PEEK) : c->rdhup ? 0 : 1;
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
        if (c->t->up) {
            c->t->up_clean = false;
            up_close(c->t->up);
        }
        txn_end(c, GW_END_CLIENT_CLOSED);
        return false;
    }
    if (n > 0)
        c->peeked = true;
    c->r_ready = false;
    return false;
}

/* ---- splice(2): body bytes that never enter user space ---- */

enum { SP_MOVED = 1, SP_EOF = 2, SP_RERR = 4, SP_WERR = 8 };

/* May body bytes move from src to dst by splice under this request's config? */
static bool splice_ok(const struct gw_conn *c, const struct gw_io *src, const struct gw_io *dst)
{
    /* a kernel-TLS source may still hold decrypted bytes inside OpenSSL,
     * which a splice from the socket would overtake */
    return conn_cfg(c)->splice && src->ops->splice_from && dst->ops->splice_to &&
           !(src->ctx && gw_tls_pending(src));
}

static int pass_drain(struct gw_pipe *p, int dfd, bool *w_ready, uint64_t *out)
{
    if (p->len == 0 || !*w_ready)
        return 0;
    ssize_t n = gw_pipe_drain(p, dfd);
    if (n > 0) {
        *out += (uint64_t)n;
        return SP_MOVED;
    }
    if (n == GW_IO_AGAIN) {
        *w_ready = false;
        return 0;
    }
    return SP_WERR;
}

static int pass_fill(struct gw_pipe *p, int sfd, bool *r_ready, uint64_t *left, uint64_t *in)
{
    if (*left == 0 || !*r_ready)
        return 0;
    bool was_empty = p->len == 0;
    ssize_t n = gw_pipe_fill(p, sfd, *left < GW_SPLICE_CHUNK ? (size_t)*left : GW_SPLICE_CHUNK);
    if (n > 0) {
        *in += (uint64_t)n;
        *left -= (uint64_t)n;
        return SP_MOVED;
    }
    if (n == 0) {
        *left = 0;
        return SP_EOF;
    }
    if (n == GW_IO_AGAIN) {
        if (was_empty)
            *r_ready = false;
        return 0;
    }
    return SP_RERR;
}

/* One pass of src -> pipe -> dst: drain (making room), fill at most *left
 * bytes, drain again.  Readiness is cleared only on EAGAIN, never on a
 * short transfer: a splice stops at the pipe's capacity, which says nothing
 * about what the socket still holds.  And a fill's EAGAIN clears r_ready
 * only when the pipe was empty: into a non-empty pipe it may mean the pipe
 * is full, so the fill after the next drain tells. */
static int splice_pass(struct gw_pipe *p, int sfd, bool *r_ready, int dfd, bool *w_ready,
                       uint64_t *left, uint64_t *in, uint64_t *out)
{
    int rc = pass_drain(p, dfd, w_ready, out);

    if (rc & SP_WERR)
        return rc;
    rc |= pass_fill(p, sfd, r_ready, left, in);
    if (rc & SP_RERR)
        return rc;
    return rc | pass_drain(p, dfd, w_ready, out);
}

/* Borrow a pipe when bytes are ready to move; false when none can be had
 * (out of descriptors): the caller copies instead. */
static bool pipe_borrow(struct gw_conn *c, struct gw_pipe **pp)
{
    if (*pp == NULL)
        *pp = gw_pipe_get(&c->w->pipes);
    return *pp != NULL;
}

/* Give an empty pipe back while its source has nothing more for now, so an
 * idle stream or tunnel holds no descriptors. */
static void pipe_idle(struct gw_conn *c, struct gw_pipe **pp, bool src_ready)
{
    if (*pp && (*pp)->len == 0 && !src_ready) {
        gw_pipe_put(&c->w->pipes, *pp);
        *pp = NULL;
    }
}

static void txn_pipes_put(struct gw_worker *w, struct gw_txn *t)
{
    gw_pipe_put(&w->pipes, t->pu);     /* closed, not pooled, if bytes are left in it */
    gw_pipe_put(&w->pipes, t->pc);
    t->pu = t->pc = NULL;
}

/*
 * The response body by splice, upstream -> pipe -> client.  It starts once
 * the head and the body bytes that came with it (copied) have gone out, for
 * a Content-Length body with at least splice.min_bytes left, or a
 * close-delimited one.  Chunked bodies are copied: their framing is parsed.
 */
static bool resp_splice(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_upconn *u = t->up;

    if (!t->resp_spliced) {
        if (t->rstate != RS_BODY || t->dechunk || !iovq_empty(&t->cq) || u == NULL ||
            !u->r_ready || (t->ubuf && t->ubuf->start != t->ubuf->end))
            return false;
        if (t->resp_kind == H1_BODY_LENGTH) {
            if (t->resp_remaining < conn_cfg(c)->splice_min_bytes)
                return false;
        } else if (t->resp_kind != H1_BODY_CLOSE) {
            return false;
        }
        if (!splice_ok(c, &u->io, &c->io))
            return false;
        t->resp_spliced = true;
        gw_splice_lowat(c->io.fd, true);
        t->lowat_c = true;
    }
    if (t->rstate != RS_BODY)
        return false;
    if (u == NULL && !t->pc_fin) {     /* the upstream was closed under us */
        t->pc_fin = true;
        t->keepalive = false;
    }
    if (t->pc == NULL) {
        if (t->pc_fin) {            /* the source ended and the pipe was drained */
            t->rstate = RS_DONE;
            return true;
        }
        if (u == NULL || !u->r_ready)
            return false;
        if (!pipe_borrow(c, &t->pc)) {
            t->resp_spliced = false;    /* no descriptor for a pipe: copy the rest */
            return true;
        }
    }
    uint64_t left = t->pc_fin || u == NULL ? 0 :
                    t->resp_kind == H1_BODY_LENGTH ? t->resp_remaining : UINT64_MAX;
    uint64_t in = 0, out = 0;
    bool no_src = false;
    int rc = splice_pass(t->pc, u ? u->io.fd : -1, u ? &u->r_ready : &no_src, c->io.fd, &c->w_ready,
                         &left, &in, &out);
    if (t->resp_kind == H1_BODY_LENGTH)
        t->resp_remaining -= in;
    t->bytes_out += out;
    gw_cnt_add(&c->w->stats.body_splice, out);
    if (rc & SP_WERR) {
        txn_end(c, GW_END_CLIENT_CLOSED);      /* drops the upstream too */
        return false;
    }
    if (u && (rc & (SP_EOF | SP_RERR))) {
        if (t->resp_kind != H1_BODY_CLOSE || (rc & SP_RERR)) {
            gw_log(GW_LOG_WARN, "upstream %s: connection lost mid-response", t->target->text);
            txn_why(c, GW_END_UP_RESET);
            t->keepalive = false;   /* the client sees the body cut: deliver what we have, close */
        }
        t->pc_fin = true;
        t->up_clean = false;
        up_close(u);
        u = NULL;
    } else if (u && in) {
        up_timer_arm(u, t->ups->cfg->idle_ms);     /* silence mid-response */
    }
    if (u && t->resp_kind == H1_BODY_LENGTH && t->resp_remaining == 0 && !t->pc_fin) {
        /* the body is all in the pipe; the socket's readiness was not
         * consumed by a short read, so look: a clean connection has nothing
         * more to say (else up_checkin closes it) */
        char b;
        ssize_t n = recv(u->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            u->r_ready = false;
        t->pc_fin = true;
    }
    if (t->pc_fin && t->pc->len == 0) {
        gw_pipe_put(&c->w->pipes, t->pc);
        t->pc = NULL;
        t->rstate = RS_DONE;
        return true;
    }
    pipe_idle(c, &t->pc, u && u->r_ready);
    return rc & SP_MOVED;
}

/*
 * The request body by splice, client -> pipe -> upstream: a Content-Length
 * body with at least splice.min_bytes left once what was buffered with the
 * head went up.  Bytes spliced out of the client socket cannot be sent
 * again: the request is no longer retryable (body_lost).
 */
static bool req_splice(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_upconn *u = t->up;

    if (u == NULL || !u->connected || !iovq_empty(&t->uq))
        return false;
    if (!t->req_spliced) {
        if (t->req_done || t->req_kind != H1_BODY_LENGTH || !c->r_ready ||
            t->req_remaining < conn_cfg(c)->splice_min_bytes || !splice_ok(c, &c->io, &u->io))
            return false;
        t->req_spliced = true;
        gw_splice_lowat(u->io.fd, true);
        u->lowat = true;
        if (c->in->end > t->hlen) {     /* everything buffered went up: drop it */
            c->in->end = t->hlen;
            t->body_pos = t->body_end = t->hlen;
            t->body_lost = true;
        }
    }
    if (t->pu == NULL) {
        if (t->req_done || !c->r_ready)
            return false;
        if (!pipe_borrow(c, &t->pu)) {
            t->req_spliced = false;     /* copy the rest */
            return true;
        }
    }
    uint64_t left = t->req_remaining, in = 0, out = 0;
    int rc = splice_pass(t->pu, c->io.fd, &c->r_ready, u->io.fd, &u->w_ready, &left, &in, &out);
    t->req_remaining -= in;
    t->req_body_bytes += in;
    t->bytes_in += in;
    t->up_sent += out;
    gw_cnt_add(&c->w->stats.body_splice, out);
    if (in) {
        t->body_lost = true;
        conn_timer_arm(c, t->ws->s->cfg->client_idle_ms);
    }
    if (rc & (SP_EOF | SP_RERR)) {      /* the client left mid-body */
        t->up_clean = false;
        up_close(u);
        txn_end(c, GW_END_CLIENT_CLOSED);
        return false;
    }
    if (rc & SP_WERR) {
        if (t->rstate == RS_WAIT && !t->resp_started)
            up_failed(c, 502, false, GW_END_UP_RESET, "write failed");
        else {
            up_close(u);
            txn_end(c, GW_END_UP_RESET);
        }
        return true;
    }
    if (t->req_remaining == 0)
        t->req_done = true;         /* all read from the client (the pipe may still hold some) */
    if (t->req_done && t->pu->len == 0) {
        gw_pipe_put(&c->w->pipes, t->pu);
        t->pu = NULL;
        if (t->rstate == RS_WAIT && c->state == C_ACTIVE) {
            u->nreq++;
            up_timer_arm(u, t->ups->cfg->response_header_ms);
        }
        return true;
    }
    pipe_idle(c, &t->pu, c->r_ready);
    return rc & SP_MOVED;
}

/* One tunnel direction by splice.  Returns SP_* bits; *fin is set once the
 * source's FIN was seen and the pipe drained: the caller passes it on. */
static int tunnel_splice(struct gw_conn *c, struct gw_pipe **pp, bool *src_eof, int sfd, bool *r_ready,
                         int dfd, bool *w_ready, uint64_t *in, uint64_t *out, bool *fin)
{
    uint64_t left = *src_eof ? 0 : UINT64_MAX;

    if (*pp == NULL) {
        if (!*r_ready || *src_eof)
            return 0;
        if (!pipe_borrow(c, pp))
            return -1;
    }
    uint64_t before = *out;
    int rc = splice_pass(*pp, sfd, r_ready, dfd, w_ready, &left, in, out);
    gw_cnt_add(&c->w->stats.body_splice, *out - before);
    if (rc & SP_EOF)
        *src_eof = true;
    if (*src_eof && (*pp)->len == 0)
        *fin = true;
    pipe_idle(c, pp, *r_ready && !*src_eof);
    return rc;
}

/* A two-way byte pipe after a 101.  Each direction ends on its own: a FIN
 * from one side is passed on (shutdown SHUT_WR) once what it sent before is
 * written, and the tunnel closes when both directions have ended. */
static bool tunnel_step(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_upconn *u = t->up;
    bool p = false;

    if (u == NULL) {
        if (iovq_empty(&t->cq))
            txn_end(c, GW_END_TUNNEL);
        else
            p = client_send(c);
        return p;
    }
    p |= up_send(c);
    p |= client_send(c);
    if (c->state == C_CLOSED || t->up == NULL)
        return false;
    bool spliced = false;
    if (!t->cli_eof && iovq_empty(&t->uq) && (t->pu || c->r_ready) && splice_ok(c, &c->io, &u->io)) {
        uint64_t in = 0, out = 0;
        bool fin = false;
        int rc = tunnel_splice(c, &t->pu, &t->pu_fin, c->io.fd, &c->r_ready, u->io.fd, &u->w_ready,
                               &in, &out, &fin);
        if (rc > 0 && (rc & (SP_RERR | SP_WERR))) {
            txn_end(c, GW_END_TUNNEL);
            return false;
        }
        spliced = rc >= 0;      /* < 0: no pipe to be had, copy */
        t->bytes_in += in;
        if (in)
            up_timer_arm(u, t->ups->cfg->idle_ms);
        if (fin) {
            t->cli_eof = true;
            gw_io_shutdown_wr(&u->io);
            p = true;
        }
        p |= rc > 0 && (rc & SP_MOVED);
    }
    if (!spliced && !t->cli_eof && iovq_empty(&t->uq) && c->r_ready) {
        c->in->start = 0;
        c->in->end = t->hlen;       /* keep the request head for the access log */
        ssize_t n = buf_read(&c->io, c->in, &c->r_ready, c->rdhup);
        if (n == -1) {
            txn_end(c, GW_END_TUNNEL);
            return false;
        }
        if (n == 0) {
            t->cli_eof = true;
            gw_io_shutdown_wr(&u->io);
            p = true;
        } else if (n > 0) {
            t->bytes_in += (uint64_t)n;
            iovq_push(&t->uq, c->in->data + t->hlen, (size_t)n);
            up_timer_arm(u, t->ups->cfg->idle_ms);
            p = true;
        }
    }
    spliced = false;
    if (!t->up_eof && iovq_empty(&t->cq) && (t->pc || u->r_ready) && splice_ok(c, &u->io, &c->io)) {
        uint64_t in = 0, out = 0;
        bool fin = false;
        int rc = tunnel_splice(c, &t->pc, &t->pc_fin, u->io.fd, &u->r_ready, c->io.fd, &c->w_ready,
                               &in, &out, &fin);
        if (rc > 0 && (rc & (SP_RERR | SP_WERR))) {
            txn_end(c, GW_END_TUNNEL);
            return false;
        }
        spliced = rc >= 0;
        t->bytes_out += out;
        if (in)
            up_timer_arm(u, t->ups->cfg->idle_ms);
        if (fin) {
            t->up_eof = true;
            gw_io_shutdown_wr(&c->io);
            p = true;
        }
        p |= rc > 0 && (rc & SP_MOVED);
    }
    if (!spliced && !t->up_eof && iovq_empty(&t->cq) && u->r_ready) {
        t->ubuf->start = t->ubuf->end = 0;
        ssize_t n = buf_read(&u->io, t->ubuf, &u->r_ready, u->rdhup);
        if (n == -1) {
            txn_end(c, GW_END_TUNNEL);
            return false;
        }
        if (n == 0) {
            t->up_eof = true;
            gw_io_shutdown_wr(&c->io);
            p = true;
        } else if (n > 0) {
            iovq_push(&t->cq, t->ubuf->data, (size_t)n);
            up_timer_arm(u, t->ups->cfg->idle_ms);
            p = true;
        }
    }
    if (t->cli_eof && t->up_eof && iovq_empty(&t->cq) && iovq_empty(&t->uq) && !t->pu && !t->pc) {
        txn_end(c, GW_END_TUNNEL);
        return false;
    }
    return p;
}

/* ---- the pump ---- */

static void conn_pump(struct gw_conn *c)
{
    for (int guard = 0; guard < 10000; guard++) {
        bool p = false;
        switch (c->state) {
        case C_HEAD:
            p = head_step(c);
            break;
        case C_ACTIVE:
            p |= up_send(c);
            if (c->state != C_ACTIVE)
                break;
            p |= req_splice(c);
            if (c->state != C_ACTIVE)
                break;
            p |= client_body_recv(c);
            if (c->state != C_ACTIVE)
                break;
            p |= client_send(c);
            if (c->state != C_ACTIVE)
                break;
            p |= resp_splice(c);
            if (c->state != C_ACTIVE)
                break;
            p |= up_recv(c);
            if (c->state != C_ACTIVE)
                break;
            client_watch(c);
            if (c->state != C_ACTIVE)
                break;
            if (c->t->rstate == RS_DONE && iovq_empty(&c->t->cq) &&
                ((c->t->req_done && iovq_empty(&c->t->uq) && c->t->pu == NULL) || !c->t->keepalive)) {
                txn_end(c, GW_END_DONE);
                p = true;
            }
            break;
        case C_LOCAL:
            p = client_send(c);
            if (c->state == C_LOCAL && iovq_empty(&c->t->cq)) {
                txn_end(c, GW_END_DONE);
                p = true;
            }
            break;
        case C_TUNNEL:
            p = tunnel_step(c);
            break;
        case C_LINGER:
            linger_step(c);
            return;
        case C_CLOSED:
            return;
        }
        if (!p)
            return;
    }
}

/* ---- lifecycle ---- */

/* Give back everything the txn holds but the connection: the upstream
 * connection (pooled when done and clean, else closed), pipes, buffers, the
 * snapshot pin. */
static void txn_release(struct gw_conn *c, struct gw_txn *t, bool done)
{
    struct gw_worker *w = c->w;

    txn_target(c, NULL);
    if (t->up) {
        struct pool_facts f = {
            .resp_done = done && t->rstate == RS_DONE,
            .req_sent = t->req_done && iovq_empty(&t->uq) && !t->uhead_pending && !t->pu,
            .keepalive = t->up_clean && c->state != C_TUNNEL,
            .draining = w->draining,
            .max_idle = t->ups->cfg->max_idle_per_target,
        };
        up_checkin(c, &f);
    }
    txn_pipes_put(w, t);
    gw_buf_put(w, t->ubuf);
    t->ubuf = NULL;
    gw_buf_put(w, t->scratch);
    t->scratch = NULL;
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
static void txn_end(struct gw_conn *c, enum gw_end why)
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

static void conn_linger(struct gw_conn *c)
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
static void linger_step(struct gw_conn *c)
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
        c->w->turn_ok = false;
        event_active(&c->ev, EV_READ, 1);
    }
}

/* Close the client connection and free what it holds (its txn, already
 * released by txn_end, waits in c->t for gw_gc).  Counts nothing: only
 * txn_end and the linger that follows one call this. */
static void conn_teardown(struct gw_conn *c)
{
    struct gw_worker *w = c->w;

    if (c->state == C_CLOSED)
        return;
    c->state = C_CLOSED;
    event_del(&c->ev);
    event_del(&c->timer);
    c->deadline_ms = c->timer_at_ms = 0;
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
    c->gc_next = w->gc_conns;
    w->gc_conns = c;
}

void gw_gc(struct gw_worker *w)
{
    while (w->gc_conns) {
        struct gw_conn *c = w->gc_conns;
        w->gc_conns = c->gc_next;
        if (c->t)
            txn_put(w, c->t);
        gw_listener_unref(c->l);
        c->magic = 0;
        free(c);
    }
    while (w->gc_ups) {
        struct gw_upconn *u = w->gc_ups;
        w->gc_ups = u->gc_next;
        u->magic = 0;
        free(u);
    }
    if (w->draining && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;

    CHECK_MAGIC(c, CONN_MAGIC);
    struct gw_worker *w = c->w;

    if (what & (EV_READ | EV_CLOSED))
        c->r_ready = true;
    if (what & EV_CLOSED)
        c->rdhup = true;
    if (what & EV_WRITE)
        c->w_ready = true;
    conn_pump(c);
    gw_gc(w);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;

    CHECK_MAGIC(c, CONN_MAGIC);
    struct gw_worker *w = c->w;

    if (!timer_due(w, &c->timer, &c->deadline_ms, &c->timer_at_ms))
        return;
    if (c->state == C_HEAD) {
        if (c->in && c->in->end > 0) {
            /* slow header section: say why, best effort, then close */
            static const char msg[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
                                      "Content-Length: 20\r\nConnection: close\r\n\r\n408 Request Timeout\n";
            struct iovec v = { (void *)msg, sizeof(msg) - 1 };
            ssize_t r = gw_io_writev(&c->io, &v, 1);    /* through TLS when it is on */
            (void)r;
            txn_end(c, GW_END_CLIENT_TIMEOUT);
        } else {
            txn_end(c, c->hs ? GW_END_CLIENT_TIMEOUT : GW_END_IDLE_TIMEOUT);
        }
    } else if (c->state == C_ACTIVE && !c->t->req_done) {
        gw_log(GW_LOG_INFO, "client stopped sending its request body");
        txn_end(c, GW_END_CLIENT_TIMEOUT);
    } else if (c->state == C_LINGER) {
        conn_teardown(c);
    }
    gw_gc(w);
}

void gw_conn_accept(struct gw_worker *w, struct gw_listener *l, int fd,
                    const struct sockaddr *sa, socklen_t salen)
{
    struct gw_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL)
        abort();
    c->magic = CONN_MAGIC;
    c->io.fd = fd;
    c->io.ops = &gw_io_plain;
    c->w = w;
    c->l = l;
    gw_worker_refresh(w);
    const struct gw_snapshot *s = w->cur->s;
    uint32_t first_ms = s->cfg->client_header_ms;
    for (size_t i = 0; i < s->cfg->nlisteners; i++) {
        SSL_CTX *ctx;
        if (s->listeners[i] != l || (ctx = gw_tls_listener_ctx(s->tls, i)) == NULL)
            continue;
        SSL *ssl = gw_tls_server_new(ctx, fd);
        if (ssl == NULL || !gw_tls_attach(&c->io, ssl)) {
            gw_log(GW_LOG_ERROR, "cannot set up TLS for a new connection");
            SSL_free(ssl);
            close(fd);
            free(c);
            return;
        }
        c->hs = c->https = true;
        c->ktls_want = s->cfg->listeners[i].tls->ktls;
        first_ms = s->cfg->listeners[i].tls->handshake_timeout_ms;
        break;
    }
    if (salen <= sizeof(c->peer))
        memcpy(&c->peer, sa, salen);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&c->ev, w->base, fd, EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST, conn_event, c);
    event_assign(&c->timer, w->base, -1, 0, conn_timer_cb, c);
    event_add(&c->ev, NULL);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    gw_cnt_add(&w->stats.client_conns, 1);
    atomic_fetch_add_explicit(&g_nconns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);  /* c->l outlives reloads */
    c->iplen = (uint8_t)peer_ip(c, c->ip, sizeof(c->ip));
    conn_timer_arm(c, first_ms);
}

void gw_conns_drain(struct gw_worker *w)
{
    struct gw_conn *c = w->conns, *next;

    for (; c; c = next) {
        next = c->next;
        if (c->state == C_HEAD && (c->in == NULL || c->in->end == 0))
            txn_end(c, GW_END_DRAIN);
        else if (c->t)
            c->t->keepalive = false;
    }
}

void gw_conns_close_all(struct gw_worker *w)
{
    while (w->conns) {
        if (w->conns->state == C_LINGER)
            conn_teardown(w->conns);
        else
            txn_end(w->conns, GW_END_SHUTDOWN);
    }
}

static void up_close_node(struct pool_node *pn)
{
    up_close((struct gw_upconn *)((char *)pn - offsetof(struct gw_upconn, pn)));
}

void gw_pool_sweep(struct gw_worker *w)
{
    pool_sweep(&w->pool, gw_now_ms(w), up_close_node);
}

static void close_bucket(struct pool_bucket *b, void *arg)
{
    pool_bucket_close_all(b, up_close_node);
}

void gw_pool_close_all(struct gw_worker *w)
{
    pool_foreach(&w->pool, close_bucket, w);
}

static void drop_bucket(struct pool_bucket *b, void *arg)
{
    if (b->mark != *(const uint64_t *)arg)
        close_bucket(b, NULL);
}

void gw_pool_drop_unused(struct gw_worker *w, uint64_t version)
{
    pool_foreach(&w->pool, drop_bucket, &version);
}
