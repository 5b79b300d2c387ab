/*
 * upconn.h - the upstream connection: one socket to a target, plain or TLS,
 * and its whole life: non-blocking connect, client TLS setup and handshake
 * steps, its one edge-triggered libevent event and its lazy timer, pooling
 * (the pool's policy decides) and closing.  It reports what it learns about
 * the target to health/ (a failure, an answer).
 *
 * What goes over the connection (the HTTP/1 exchange) is its owner's: the
 * gateway's transaction.  The owner is told of events through the loop's
 * struct up_conn_ops, with the void *owner it gave at open or reuse; while
 * pooled a connection has no owner and any readiness closes it.
 *
 * Lifetime: up_conn_close() never frees inside the call stack that closes:
 * it unlinks the connection from libevent and the pool and queues it on the
 * loop's gc list; up_conn_gc() frees, once the top-level callback is done.
 * up_conn_close() also clears the owner's pointer to it (the slot given at
 * open or reuse), so no reachable pointer dangles.
 *
 * Owns: struct up_conn, struct up_loop.  May call: pool/, health/, core/
 * (io, tls_io, ltimer, counter, log, check), libevent, OpenSSL.  Knows
 * nothing of gateway/.
 */
#ifndef SLUICE_UPCONN_H
#define SLUICE_UPCONN_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>

#include "upstream.h"
#include "../pool/pool.h"
#include "../core/counter.h"
#include "../core/io.h"
#include "../core/ltimer.h"
#include "../core/tls_io.h"

#define UP_MAGIC 0x534c5550u

struct up_conn;

/* What the owner is told; each is called from the connection's libevent
 * callback, the connection still open (the owner may close it). */
struct up_conn_ops {
    /* readiness was recorded (r_ready/w_ready/rdhup), or the connect
     * completed (connected) */
    void (*on_io)(void *owner, struct up_conn *u);
    /* the non-blocking connect failed with errno err */
    void (*on_connect_error)(void *owner, struct up_conn *u, int err);
    /* the deadline set with up_conn_timer_arm passed */
    void (*on_timeout)(void *owner, struct up_conn *u);
};

/* The worker's counters a connection updates (they stay in the worker's
 * stats, summed by the admin thread). */
struct up_counters {
    _Atomic uint64_t *conns;            /* gauge: open upstream connections */
    _Atomic uint64_t *pool_hits, *pool_misses;
    _Atomic uint64_t *tls_hs;           /* [3]: full, resumed, failed */
    struct gw_hist *connect_time;
};

/* What a connection needs of its event loop (one per worker thread). */
struct up_loop {
    struct event_base *base;
    struct lt_common *tmo;
    struct lt_turn *turn;
    const struct up_conn_ops *ops;
    struct up_counters cnt;
    struct up_conn *gc;                 /* closed, freed by up_conn_gc */
};

struct up_conn {
    uint32_t magic;
    struct gw_io io;
    struct up_loop *loop;
    void *owner;                        /* NULL while pooled */
    struct up_conn **slot;              /* the owner's pointer to it; cleared on close */
    struct event ev;
    struct event timer;
    struct pool_node pn;
    struct pool_bucket *home;           /* its address's bucket (counts), NULL = none */
    const struct up_target *t;          /* of the snapshot that opened it; only for this request */
    struct hc_target *held;             /* the target whose connection slot it holds (its
                                           `conns`, given back on close); NULL = none */
    uint32_t nreq;
    uint64_t connect_start;             /* ns, for the connect-time histogram */
    uint64_t deadline_ms;               /* 0 = no timeout wanted (lazy timer) */
    uint64_t timer_at_ms;               /* when the armed timer fires; 0 = not armed */
    bool connected, r_ready, w_ready, reused, closed, rdhup;
    bool hs;                            /* TLS handshake still to finish */
    bool lowat;                         /* gw_splice_lowat is on (a request body was spliced in) */
    bool tls_refused;                   /* the handshake failed (verification, protocol) */
    uint8_t hs_want;                    /* what it waits for: GW_HS_WANT_READ/WRITE, 0 = try */
    struct up_conn *gc_next;
};

/* A pooled connection to b's address for owner (*slot = it), or NULL
 * (counted as a pool hit or miss).  b may be NULL (nothing pooled). */
struct up_conn *up_conn_reuse(struct up_loop *l, struct pool_bucket *b, const struct up_target *t,
                              void *owner, struct up_conn **slot);

enum up_open { UP_OPEN_OK = 0, UP_OPEN_CONNECT_ERR, UP_OPEN_INTERNAL, UP_OPEN_FULL };
/*
 * A new connection to t for owner: socket, TLS set up when ctx is not NULL
 * (tc: the upstream's TLS settings; b: the bucket whose session is offered
 * and where new ones are kept, may be NULL), connect started, its timer
 * armed for connect_ms.  *slot = the connection unless UP_OPEN_INTERNAL
 * (no socket or no TLS: logged, nothing left).  UP_OPEN_CONNECT_ERR: the
 * connect failed at once with *err; the connection is open for the owner's
 * failure path (up_conn_fail) to close.  UP_OPEN_FULL: t already has
 * max_conns open connections over every worker (up_slot_take; 0 = no
 * limit): nothing was opened, the owner queues.  A connection holds its
 * slot until it closes, pooled or not.
 */
enum up_open up_conn_open(struct up_loop *l, const struct up_target *t, SSL_CTX *ctx,
                          const struct cfg_upstream_tls *tc, struct pool_bucket *b,
                          uint32_t connect_ms, uint32_t max_conns, void *owner,
                          struct up_conn **slot, int *err);

enum { UP_HS_DONE = 0, UP_HS_WAIT, UP_HS_FAILED };
/* One step of the TLS handshake when the readiness it waits for came;
 * UP_HS_FAILED fills why ("TLS handshake: ..."). */
int up_conn_handshake(struct up_conn *u, char *why, size_t whylen);

/* The target failed on this connection before answering: health/ is told
 * (unless stale: a pooled connection the server had closed, or a
 * certificate we refused, which says nothing of the target's health), then
 * the connection closes. */
void up_conn_fail(struct up_conn *u, bool stale);

/* Close (idempotent; NULL allowed); freed later by up_conn_gc.  why is
 * counted on the connection's bucket (sluice_pool_closed_total); the owner's
 * closes in the middle of an exchange are POOL_CLOSE_ABORTED. */
void up_conn_close_why(struct up_conn *u, enum pool_close why);
void up_conn_close(struct up_conn *u);
void up_conn_gc_free(struct up_loop *l);
/* After each top-level callback (inline: usually nothing to free). */
static inline void up_conn_gc(struct up_loop *l)
{
    if (l->gc)
        up_conn_gc_free(l);
}

/* The owner is done: *up is checked in to b if the pool's policy takes it
 * (f: what the owner knows; has_bucket and unread are filled here), else
 * closed.  *up is NULL afterwards either way. */
void up_conn_checkin(struct up_conn **up, struct pool_bucket *b, struct pool_facts *f,
                     uint32_t idle_ms);

/* The pool's idle connections: expiry, all of them, buckets not used by
 * config version `version`. */
void up_pool_sweep(struct pool *p, uint64_t now_ms);
void up_pool_close_all(struct pool *p);
/* Close every idle connection of b (why: counted on b). */
void up_bucket_close_idle(struct pool_bucket *b, enum pool_close why);
void up_pool_drop_unused(struct pool *p, uint64_t version);

static inline void up_conn_timer_arm(struct up_conn *u, uint32_t ms)
{
    lt_want(u->loop->tmo, &u->timer, &u->deadline_ms, &u->timer_at_ms, ms);
}

static inline void up_conn_timer_off(struct up_conn *u)
{
    u->deadline_ms = 0;
}

/* A response head with this status came: health/ hears of it (the target
 * answers; 5xx count when the upstream ejects on them); the header
 * deadline is off. */
static inline void up_conn_answered(struct up_conn *u, int status)
{
    if (u->t->health)
        hc_answered(u->t->health, status);
    up_conn_timer_off(u);
}

#endif
