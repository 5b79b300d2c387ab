/*
 * pool.h - per-worker idle keep-alive connection pools, one bucket per
 * target address.
 *
 * A pool belongs to one worker thread and is never touched by another, so
 * nothing here locks.  Buckets live as long as the pool (they are keyed by
 * address, not by config), so a reload that keeps a target keeps its idle
 * connections.  The pool does not know what a connection is: callers embed a
 * struct pool_node in their connection object.
 *
 * Ownership: pool_checkin() hands the connection to the pool; pool_get()
 * hands it back (removed from the bucket).  What may be checked in is the
 * pool's policy (pool_may_keep), decided from facts the caller states: only
 * a clean connection, the last response fully read, its request fully sent,
 * no "Connection: close" on either side, nothing unread (nginx's keepalive
 * module, h2o's sticky keep-alive flag).  The pool also owns the idle
 * policy: the per-target bound (the oldest goes) and expiry (pool_sweep).
 *
 * The bound follows demand unless the config caps it (POOL_FOLLOW_DEMAND,
 * the default): a bucket keeps as many idle connections as its worker had
 * requests in flight to the target at once (pool_note_busy) over the last
 * one to two demand periods (a sixth of the idle timeout each: 10 s of the
 * default 60 s), so a steady load never
 * closes a connection only to open another for the next request.  After a
 * burst the surplus drains gradually (pool_sweep, oldest first: a fortieth
 * of it per sweep, at least one, sweeps every 200 ms), as HAProxy purges
 * idle connections above recent use.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../core/counter.h"

struct pool_bucket;

/* max_idle: follow demand (the default of upstreams[].pool.max_idle_per_target) */
#define POOL_FOLLOW_DEMAND UINT32_MAX
/* Demand is the peak of the current period and the one before; a period
 * is idle_timeout_ms / POOL_DEMAND_PERIODS (at least 200 ms). */
#define POOL_DEMAND_PERIODS 6u
/* A sweep closes surplus/POOL_DRAIN_DIV of the surplus (at least one). */
#define POOL_DRAIN_DIV 40u

/* Why an upstream connection was closed (sluice_pool_closed_total{reason}). */
enum pool_close {
    POOL_CLOSE_IDLE_TIMEOUT = 0,    /* idle longer than idle_timeout_ms */
    POOL_CLOSE_SURPLUS,             /* idle beyond recent demand, drained */
    POOL_CLOSE_OVER_CAP,            /* checked in with max_idle_per_target already idle */
    POOL_CLOSE_PEER,                /* the target closed it (or sent bytes) while idle */
    POOL_CLOSE_NOT_REUSABLE,        /* its exchange ended unfit for reuse */
    POOL_CLOSE_FAILED,              /* connect, TLS or I/O failure, timeout */
    POOL_CLOSE_ABORTED,             /* its request ended early (client gone, error) */
    POOL_CLOSE_RELOAD,              /* the target left the config */
    POOL_CLOSE_SHUTDOWN,
    POOL_CLOSE_N
};
extern const char *const pool_close_names[POOL_CLOSE_N];

struct pool_node {
    struct pool_node *prev, *next;
    struct pool_bucket *bucket;     /* NULL when not pooled */
    uint64_t idle_since_ms;
    uint32_t idle_ms;               /* how long it may stay idle (the upstream's setting) */
};

struct pool_bucket {
    struct pool_node head;          /* circular list; head.next = most recent */
    _Atomic uint32_t count;         /* idle connections (read by the admin thread) */
    struct sockaddr_storage sa;
    socklen_t salen;
    uint64_t key;                   /* how connections are made: 0 = plain TCP, else a
                                       hash of the TLS settings (SNI, verification) */
    void *user;                     /* the caller's per-bucket state (a TLS session) */
    struct pool_bucket *hnext;      /* hash chain */
    /* Per target and worker, written by the owning worker only (relaxed
     * loads and stores), read by the admin thread: */
    _Atomic uint64_t requests, failures, inflight;
    _Atomic uint64_t opened;                /* connections opened */
    _Atomic uint64_t closed[POOL_CLOSE_N];  /* connections closed, by reason */
    _Atomic uint64_t code[5];               /* response heads, by status class 1xx..5xx */
    struct gw_hist resp;                    /* request start to the response head */
    struct pool_bucket *_Atomic all_next;   /* every bucket, append-only */
    uint64_t mark;                  /* the newest config version using this address */
    /* demand (owning worker only) */
    uint32_t peak, peak_prev;       /* most requests in flight at once: this period, the last */
    uint64_t period_start_ms;
    uint32_t period_ms;             /* from the idle timeout of the last check-in */
    bool follow;                    /* bounded by demand, not by a configured cap */
};

/* The worker now has busy requests in flight to b's target (call after
 * counting one more). */
static inline void pool_note_busy(struct pool_bucket *b, uint64_t busy)
{
    if (busy > b->peak)
        b->peak = (uint32_t)(busy > UINT32_MAX ? UINT32_MAX : busy);
}

/* The idle connections b may keep now: its recent demand, at least one. */
static inline uint32_t pool_demand(const struct pool_bucket *b)
{
    uint32_t d = b->peak > b->peak_prev ? b->peak : b->peak_prev;
    return d ? d : 1;
}

/* A counter of b written by its worker only: a relaxed load and store. */
static inline void pool_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

struct pool {
    struct pool_bucket **tab;
    size_t cap, n;
    struct pool_bucket *_Atomic all;        /* walkable from other threads */
};

void pool_init(struct pool *p);

/* The bucket for an address and connection key (0 = plain TCP; TLS
 * connections with different settings must not be shared), created on
 * first use.  Never NULL (aborts on OOM). */
struct pool_bucket *pool_bucket_for(struct pool *p, const struct sockaddr *sa, socklen_t salen,
                                    uint64_t key);

/* What the caller knows about a connection it is done with. */
struct pool_facts {
    bool resp_done;         /* the last response was read to its end */
    bool req_sent;          /* the request went out whole (nothing queued, nothing in a pipe) */
    bool keepalive;         /* nothing said otherwise: a keep-alive response, no error, not
                               upgraded, no bytes after the response */
    bool unread;            /* readiness or a FIN seen and not consumed, or decrypted bytes
                               waiting inside TLS: they would reach the next request */
    bool draining;          /* the worker is shutting down */
    bool has_bucket;        /* the target's address resolved (a bucket exists) */
    uint32_t max_idle;      /* the target's max_idle_per_target; 0 = no pooling,
                               POOL_FOLLOW_DEMAND = recent demand */
};

/* May this connection be checked in?  Only when every fact says clean.
 * (Inline: it runs once per keep-alive request.) */
static inline bool pool_may_keep(const struct pool_facts *f)
{
    return f->resp_done && f->req_sent && f->keepalive && !f->unread && !f->draining &&
           f->has_bucket && f->max_idle > 0;
}

/* Put an idle connection (pool_may_keep said yes); the most recent is
 * taken first (warm in caches, least likely to have been closed by the
 * peer).  It may stay idle idle_ms.  When the bucket already holds
 * max_idle, its oldest connection is taken out first and returned: the
 * caller closes it.  Otherwise NULL.  POOL_FOLLOW_DEMAND evicts nothing
 * here (pool_sweep drains what exceeds demand). */
struct pool_node *pool_checkin(struct pool_bucket *b, struct pool_node *n, uint64_t now_ms,
                               uint32_t idle_ms, uint32_t max_idle);

/* Put without a bound (pool_checkin's last step; tests). */
void pool_put(struct pool_bucket *b, struct pool_node *n, uint64_t now_ms);

/* Take the most recently pooled connection, or NULL. */
struct pool_node *pool_get(struct pool_bucket *b);

/* Remove a pooled connection (it closed while idle). */
void pool_remove(struct pool_node *n);

/* The least recently pooled connection of a bucket, or NULL (for expiry and
 * for trimming a bucket to its max_idle_per_target). */
struct pool_node *pool_oldest(struct pool_bucket *b);

/* Calls fn on every bucket (shutdown, dropping unused targets). */
void pool_foreach(struct pool *p, void (*fn)(struct pool_bucket *, void *), void *arg);

/* The oldest connection of b whose idle time is up at now_ms, or NULL
 * (still pooled: the caller's close removes it). */
struct pool_node *pool_expired(struct pool_bucket *b, uint64_t now_ms);

/* Expiry, every 200 ms or so: in every bucket, close (fn, which must
 * pool_remove the node; why is POOL_CLOSE_IDLE_TIMEOUT or _SURPLUS) every
 * connection idle for longer than its idle_ms, oldest first; then, in a
 * bucket that follows demand, part of the idle connections beyond it (see
 * the top).  Demand periods turn here too. */
void pool_sweep(struct pool *p, uint64_t now_ms,
                void (*close_fn)(struct pool_node *, enum pool_close why));

/* How many idle connections of b beyond its demand the next sweep closes
 * (0 when b does not follow demand or has none to spare). */
uint32_t pool_surplus_to_close(const struct pool_bucket *b);

/* Close (fn, which must pool_remove) every connection of a bucket. */
void pool_bucket_close_all(struct pool_bucket *b, enum pool_close why,
                           void (*close_fn)(struct pool_node *, enum pool_close why));

/* Free the buckets; they must be empty.  free_user (may be NULL) is called
 * on each non-NULL bucket->user. */
void pool_destroy(struct pool *p, void (*free_user)(void *));

#endif
