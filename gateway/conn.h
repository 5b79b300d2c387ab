/*
 * conn.h - the data plane's connection objects (client connection, its
 * transaction) and the functions the gateway's files call on them.  Only
 * gateway .c files include this.  The upstream connection under a
 * transaction (struct up_conn: connect, TLS, its events and timer, the pool)
 * is upstream/upconn.h's; the gateway is its owner and hears of its events
 * through gw_up_ops (proxy.c).
 *
 * Calls go one way, top to bottom, never back up:
 *   worker.c (accept, drain: proxy.h)
 *   -> proxy.c (events, the pump, a request's start, the up_conn ops)
 *     -> guard.c (a route's policy checks, the C_GUARD wait) -> authreq.c
 *        (auth.forward's subrequest over an up_conn of its own)
 *     -> pass.c (splice, tunnels) -> forward.c (the HTTP/1 exchange upstream,
 *        retries) -> client.c (client I/O) -> body.c (request body)
 *     -> local.c (own answers) -> txn.c (the one end, check-in)
 *     -> stream.c (route timeouts, SSE heartbeat, stream counters)
 *     -> wstate.h (the worker's buffers, clock, snapshot view)
 *     -> upstream/upconn.h (the upstream connection) -> pool/, health/
 * forward.c's functions are fwd_*, to tell them from upstream/'s up_*.
 */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include "proxy.h"
#include "../core/io.h"
#include "tls.h"
#include "../policy/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define CONN_MAGIC 0x534c4343u
#define AREQ_MAGIC 0x534c4152u     /* authreq.c's subrequest, the other owner of an up_conn */

/* C_ROUTE: the request's body is being read to route it (match.json_body),
 * nothing sent upstream yet.  C_GUARD: a policy check of the route pends
 * (guard.c), nothing sent upstream, nothing more read (the client only
 * peeked at: its leaving cancels the check). */
enum cstate { C_HEAD = 0, C_ACTIVE, C_LOCAL, C_TUNNEL, C_LINGER, C_CLOSED, C_ROUTE, C_GUARD };
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
    struct up_conn *up;
    struct gw_wsnap *ws;
    const struct cfg_route *route;
    const struct up_upstream *ups;
    const struct up_target *target;
    struct pool_bucket *tb;         /* the target's counters while it counts us in flight */
    uint64_t tried;
    const struct up_target *infl;   /* the target counting us in flight (up_inflight_add) */
    uint64_t hkey;                  /* balance hash: the request's key, when has_hkey */
    bool has_hkey;
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
    /* streaming (stream.c) */
    struct gw_route_stats *rs;      /* the route's counters (a proxied route), else NULL */
    uint64_t total_deadline_ms;     /* the route's timeouts.total_ms from the start; 0 = none */
    uint64_t t_first;               /* ns: the response's first body byte (or bodiless head) */
    uint64_t stream_t0, stream_bytes;
    bool sse, stream, hb;           /* text/event-stream; a stream (counted open); heartbeats on */
    bool expect_sent;               /* our 100 Continue went (C_ROUTE asks for the body early) */
    bool ub_filled;                 /* a read filled ubuf: a bulk body, not a stream's pieces */
    struct gw_rid *rid;             /* the head's method, target, host once `in` went back
                                       (m_off, t_off, h_off then point into it) */
    /* match.json_body: the body read before routing (body.c body_for_route) */
    uint8_t jstate;                 /* enum rt_body */
    struct gw_buf *jbuf;            /* a chunked body decoded, while routing */
    uint32_t jraw;                  /* raw bytes of in decoded into jbuf so far (from hlen) */
    const char *jbody;              /* the body as the router sees it (READY), while routing */
    size_t jbody_len;
    struct h1_chunked jck;
    /* pool.max_connections: waiting on the worker's queue (w->qhead) */
    bool queued;
    bool q_again;                   /* gw_queue_run is trying it again */
    struct gw_conn *qprev, *qnext;
    uint64_t q_deadline_ms;         /* when the wait ends in a 503; 0 = never queued */
    bool sse_cr;                    /* the last byte forwarded was a \r */
    uint8_t sse_nl;                 /* line ends at the tail of what was forwarded (2 = between events) */
    /* the route's policy checks (guard.c): progress, the auth id, what
     * goes upstream; zeroed with the rest */
    struct pol_txn pol;
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
    struct gw_conn *next, *prev;    /* w->conns; once closed, next chains w->gc_conns */
    struct gw_txn *t;               /* NULL between requests */
    uint64_t deadline_ms;           /* 0 = no timeout wanted (lazy timer) */
    struct lt_hnode tn;             /* its place in the worker's timer heap (w->ctimers) */
    struct gw_buf *in;              /* NULL while idle with nothing buffered */
    size_t scanned;
    struct event ev;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer;
};

static inline void iovq_reset(struct iovq *q) { q->i = q->n = 0; }
static inline bool iovq_empty(const struct iovq *q) { return q->i == q->n; }
static inline unsigned iovq_free(const struct iovq *q) { return IOVQ_N - (unsigned)(q->n - q->i); }

static inline bool iovq_push(struct iovq *q, const char *p, size_t len)
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

/* Lazy (core/ltimer.h): the node moves only when the new deadline is
 * earlier than where it sits; one that fires early is put back for the
 * rest (gw_conn_timers). */
static inline void conn_timer_arm(struct gw_conn *c, uint32_t ms)
{
    uint64_t d = lt_now_ms() + ms;

    c->deadline_ms = d;
    if (c->tn.idx && c->tn.at <= d)
        return;
    gw_ctimer_set(c->w, &c->tn, d);
}

/* The peer's address as text (formatted on demand: idle connections keep
 * only the binary address); out has INET6_ADDRSTRLEN bytes. */
static inline size_t peer_ip(const struct gw_conn *c, char *out, size_t cap)
{
    if (c->peer.sa.sa_family == AF_INET6) {
        if (!inet_ntop(AF_INET6, &c->peer.in6.sin6_addr, out, (socklen_t)cap))
            return 0;
    } else if (!inet_ntop(AF_INET, &c->peer.in4.sin_addr, out, (socklen_t)cap)) {
        return 0;
    }
    return strlen(out);
}

static inline void conn_timer_off(struct gw_conn *c)
{
    c->deadline_ms = 0;
}

static inline const struct sl_config *conn_cfg(const struct gw_conn *c)
{
    return (c->t && c->t->ws ? c->t->ws : c->w->cur)->s->cfg;
}

static inline void cnt_sub1(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - 1, memory_order_relaxed);
}

/* The worker's queue of requests waiting for a connection slot.  Oldest
 * first; front puts back a request that lost a race for a slot. */
static inline void gw_q_push(struct gw_conn *c, bool front)
{
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;

    t->queued = true;
    t->qprev = front ? NULL : w->qtail;
    t->qnext = front ? w->qhead : NULL;
    if (t->qprev)
        t->qprev->t->qnext = c;
    else
        w->qhead = c;
    if (t->qnext)
        t->qnext->t->qprev = c;
    else
        w->qtail = c;
    w->nqueued++;
    atomic_fetch_add_explicit(&t->target->health->waiting, 1, memory_order_relaxed);
}

static inline void gw_q_unlink(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;

    if (!t->queued)
        return;
    if (t->qprev)
        t->qprev->t->qnext = t->qnext;
    else
        w->qhead = t->qnext;
    if (t->qnext)
        t->qnext->t->qprev = t->qprev;
    else
        w->qtail = t->qprev;
    t->qprev = t->qnext = NULL;
    t->queued = false;
    w->nqueued--;
    atomic_fetch_sub_explicit(&t->target->health->waiting, 1, memory_order_relaxed);
}

/* Does this worker have a request queued for target h? */
static inline bool gw_q_has(const struct gw_worker *w, const struct hc_target *h)
{
    for (const struct gw_conn *q = w->qhead; q; q = q->t->qnext)
        if (q->t->target->health == h)
            return true;
    return false;
}

/* txn.c */
struct gw_txn *txn_get(struct gw_worker *w);
void txn_target(struct gw_conn *c, const struct up_target *t);
void txn_target_failed(struct gw_conn *c);
void txn_why(struct gw_conn *c, enum gw_end why);
void txn_end(struct gw_conn *c, enum gw_end why);
void conn_linger(struct gw_conn *c);
void linger_step(struct gw_conn *c);
void conn_teardown(struct gw_conn *c);

/* local.c */
void local_response(struct gw_conn *c, int status, const char *ctype,
                           const char *body, size_t body_len, const char *extra);
void answer_parse_error(struct gw_conn *c, int err);
void local_redirect(struct gw_conn *c, const struct h1_request *r, const struct cfg_route *rt);

/* body.c */
bool rf_room(struct iovq *q, struct reframe *f);
void rf_data(struct iovq *q, struct reframe *f, const char *p, size_t n, bool plain);
void rf_last(struct iovq *q, struct reframe *f);
bool take_body(struct gw_conn *c);
/* While C_ROUTE: how far the body read so far lets a json_body route be
 * decided (enum rt_body; RT_BODY_UNREAD = read on) and, when READY, the
 * whole body at *p, *n. */
int body_for_route(struct gw_conn *c, uint32_t limit, const char **p, size_t *n);
void body_route_done(struct gw_conn *c);
void rewalk_body(struct gw_conn *c);

/* client.c */
ssize_t iovq_write(struct gw_io *io, struct iovq *q);
ssize_t buf_read(struct gw_io *io, struct gw_buf *b, bool *ready, bool rdhup);
void count_copied(struct gw_conn *c, uint32_t *head, size_t n);
bool conn_handshake(struct gw_conn *c);
bool client_send(struct gw_conn *c);
bool client_body_recv(struct gw_conn *c);
bool client_watch(struct gw_conn *c);
/* A readable client whose request is being served: -1 it left (EOF, reset),
 * 1 bytes wait (a body, the next request), 0 nothing; r_ready is cleared
 * unless it left (edge-triggered: what waits is read in its turn). */
int client_peek(struct gw_conn *c);

/* forward.c */
void fwd_failed(struct gw_conn *c, int status, bool stale, enum gw_end reason, const char *why);
/* A target of the txn's upstream (c->t->ups) by its balancer, not one of
 * tried; -1 when none is eligible. */
int fwd_pick(struct gw_conn *c, uint64_t tried);
bool fwd_connect(struct gw_conn *c);
/* A queued request is refused (the queue is full or its wait ran out): 503. */
void fwd_queue_refuse(struct gw_conn *c, enum gw_end why);
/* How often a worker with requests queued looks for a slot freed elsewhere */
#define GW_QUEUE_RECHECK_MS 5
bool fwd_build_head(struct gw_conn *c, const struct h1_request *r);
bool fwd_send(struct gw_conn *c);
bool fwd_recv(struct gw_conn *c);

/* stream.c (bottom: calls none of the files above) */
enum stream_to { STREAM_TO_FIRST_BYTE, STREAM_TO_IDLE, STREAM_TO_TOTAL };
void stream_start(struct gw_conn *c);
uint32_t stream_first_byte_ms(const struct gw_txn *t);
uint32_t stream_idle_ms(const struct gw_txn *t);
enum stream_to stream_timeout_kind(const struct gw_txn *t);
/* Before the client's head is written over the upstream's (it reads r's
 * header slices): what kind of response; after it went: count and arm. */
void stream_resp_classify(struct gw_conn *c, const struct h1_response *r);
void stream_resp_head(struct gw_conn *c, const struct h1_response *r);
/* n body bytes went toward the client (p NULL: spliced, unseen) */
void stream_body(struct gw_conn *c, const char *p, size_t n);
/* The client timer fired mid-response: queue a heartbeat if one is due
 * (true: the caller pumps). */
bool stream_heartbeat(struct gw_conn *c);
void stream_end(struct gw_conn *c);
enum gw_cancel stream_cancel_phase(const struct gw_txn *t);

/* guard.c: the route's policy checks.  ALLOW: go on; DENY: answered;
 * PENDING: the connection waits in C_GUARD until done(c) is called, then
 * guard_resume() (with the head parsed again) goes on from there. */
enum pol_verdict guard_start(struct gw_conn *c, const struct h1_request *r, pol_done_fn done);
enum pol_verdict guard_resume(struct gw_conn *c, const struct h1_request *r);
/* C_GUARD's step: a client that left while its check pends ends the
 * request at once (the check cancelled: a subrequest's connection closed,
 * a queued hash dropped).  Always false (nothing more to pump). */
bool guard_watch(struct gw_conn *c);

/* authreq.c: auth.forward's subrequest (pol_forward_fn; ctx is the
 * worker), and the events of its upstream connection (proxy.c passes
 * them on when the owner's magic is AREQ_MAGIC). */
enum pol_verdict gw_areq_start(void *ctx, const struct pol_fwdauth *fa, struct pol_txn *t,
                               const struct pol_req *r);
void areq_on_io(void *owner, struct up_conn *u);
void areq_on_connect_error(void *owner, struct up_conn *u, int err);
void areq_on_timeout(void *owner, struct up_conn *u);
void gw_areqs_free(struct gw_worker *w);     /* the free list, at the worker's end */

/* pass.c */
bool resp_splice(struct gw_conn *c);
bool req_splice(struct gw_conn *c);
bool tunnel_step(struct gw_conn *c);

#endif
