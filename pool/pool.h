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
 * Ownership: pool_put() hands the connection to the pool; pool_get() hands it
 * back (removed from the bucket).  Only clean connections may be put: no
 * unread bytes, the last response fully read, its request fully sent, no
 * "Connection: close" on either side.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct pool_bucket;

struct pool_node {
    struct pool_node *prev, *next;
    struct pool_bucket *bucket;     /* NULL when not pooled */
    uint64_t idle_since_ms;
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
    struct pool_bucket *_Atomic all_next;   /* every bucket, append-only */
    uint64_t mark;                  /* the newest config version using this address */
};

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

/* Put an idle connection; the most recent is taken first (warm in caches,
 * least likely to have been closed by the peer). */
void pool_put(struct pool_bucket *b, struct pool_node *n, uint64_t now_ms);

/* Take the most recently pooled connection, or NULL. */
struct pool_node *pool_get(struct pool_bucket *b);

/* Remove a pooled connection (it closed while idle). */
void pool_remove(struct pool_node *n);

/* The least recently pooled connection of a bucket, or NULL (for expiry and
 * for trimming a bucket to its max_idle_per_target). */
struct pool_node *pool_oldest(struct pool_bucket *b);

/* Calls fn on every bucket (expiry sweep, shutdown). */
void pool_foreach(struct pool *p, void (*fn)(struct pool_bucket *, void *), void *arg);

/* Free the buckets; they must be empty.  free_user (may be NULL) is called
 * on each non-NULL bucket->user. */
void pool_destroy(struct pool *p, void (*free_user)(void *));

#endif
