/*
 * wstate.h - a worker's state, and what its connections borrow from it:
 * recycled buffers, the clock read once per turn, libevent common
 * timeouts, and the worker's view of the running snapshot (pinned by each
 * request so a reload never frees what a request still uses).
 *
 * Threads: a struct gw_worker is written only by its own thread, except
 * cmd (main -> worker commands, atomic) and stats (read by the admin
 * thread).  Nothing on the request path is shared and written between
 * workers except health state (atomics).
 *
 * Owns: wstate.c.  May call: snapshot.h, stats, splice, pool/, upstream/,
 * core/.  Called by: worker.c (the thread and its loop) and the connection
 * files (conn.h); it calls neither.
 */
#ifndef SLUICE_WSTATE_H
#define SLUICE_WSTATE_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "snapshot.h"
#include "http1.h"
#include "splice.h"
#include "stats.h"
#include "../core/freelist.h"
#include "../core/log.h"
#include "../core/ltimer.h"
#include "../pool/pool.h"
#include "../upstream/upconn.h"

/* ---- buffers: fixed-size, recycled per worker ----
 * Small holds a head of the default limits.max_header_bytes (16 KiB) and
 * the 1 KiB a client's read buffer has beyond it: at 16 KiB every active
 * client connection held a large buffer (256 KiB), and more than
 * FREE_LARGE_MAX of them made each request's buffer a malloc and a free. */
#define GW_BUF_SMALL  (20u * 1024)
#define GW_BUF_LARGE  (256u * 1024)

#define GW_FREE_TXN_MAX 1024

/* What the access log needs of a request head (method, target, host),
 * kept while a long response flows so the head's buffer can go back
 * (gw_rid_get; a head too long for it keeps its buffer). */
#define GW_RID_CAP 480
struct gw_rid {
    struct fl_node fl;
    char data[GW_RID_CAP];
};

struct gw_buf {
    struct fl_node fl;          /* the worker's free list */
    uint32_t start, end, cap;
    char data[];
};

/* A worker's view of a snapshot: the mutable per-worker state that goes
 * with it (balancer positions, pool buckets).  Each request pins the
 * worker's current view (a plain counter: the view is worker-private), so
 * the per-request cost of a safe reload is two increments. */
struct gw_wsnap {
    struct gw_snapshot *s;
    uint32_t pins;
    bool retired;
    struct gw_wsnap *next;              /* retired list */
    int64_t *target_rr;                 /* [ups.ntargets], by up_target.gidx */
    uint64_t *ups_pos;                  /* [ups.n]: round robin positions (balance.h) */
    uint64_t rng;                       /* random_two, least_request: never 0 */
    int64_t *route_rr;                  /* [s->route_rr_len] */
    struct pool_bucket **buckets;       /* [ups.ntargets] */
    const struct timeval *to_header;    /* libevent common timeouts */
    const struct timeval *to_idle;
    /* [cfg->nroutes], each found on the route's first answered request
     * (gw_wsnap_route_stats): a reload of 10,000 routes then costs the
     * worker a zeroed array, not 10,000 name lookups while requests wait */
    struct gw_route_stats **rstats;
    struct gw_route_stats *unmatched;   /* requests no route took */
    struct gw_ups_stats **ustats;       /* [cfg->nupstreams] */
};

struct gw_conn;
struct gw_lev;                          /* worker.c: an accept event */

struct gw_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    int cmd_fd;                         /* eventfd: main -> worker */
    struct event *cmd_ev;
    _Atomic uint32_t cmd;               /* GW_CMD_* bits (worker.h) */
    uint64_t version;                   /* of cur */
    struct gw_wsnap *cur;
    struct gw_wsnap *retired;
    struct gw_lev **levs;               /* each allocated: callbacks point at them */
    size_t nlevs;
    struct event *tick;
    struct event *accept_resume;        /* EMFILE back-off */
    bool accept_paused;
    bool draining;
    struct pool pool;
    struct freelist free_small, free_large;     /* of struct gw_buf */
    struct freelist free_rids;                  /* of struct gw_rid */
    struct gw_conn *conns;              /* all client connections (drain) */
    uint32_t nconns;
    struct gw_conn *gc_conns;           /* closed, freed after the callback */
    struct freelist free_txns;          /* recycled request state (struct gw_txn), at most
                                           GW_FREE_TXN_MAX */
    struct gw_pipe_pool pipes;          /* for splice(2) body moves */
    struct h1_request req;              /* parse scratch, reused */
    struct h1_response resp;
    uint64_t rid_seed, rid_count;
    struct gw_alog alog;
    struct gw_stats stats;              /* read by the admin thread */
    struct lt_common tmo;               /* common-timeout cache */
    struct lt_turn turn;                /* gw_turn_ns() */
    struct up_loop up;                  /* what upstream connections use of the worker */
    /* requests waiting for a connection slot (pool.max_connections), all
     * targets, oldest first: conn.h gw_q_*, served by proxy.c gw_queue_run */
    struct gw_conn *qhead, *qtail;
    uint32_t nqueued;
    struct event *qev;                  /* runs the queue: a re-check timer while it is not
                                           empty, made active when a request ends */
    /* client connection timers: one heap, one libevent timer at its
     * earliest deadline (conn.h conn_timer_arm, proxy.c gw_conn_timers) */
    struct lt_heap ctimers;
    struct event *ctimer;
    uint64_t ctimer_at;                 /* when ctimer fires (ms); 0 = not armed */
    struct pol_worker *pol;             /* the policy checks' worker state (guard.c) */
    struct freelist free_areqs;         /* auth.forward subrequests (authreq.c) */
};

/* Open client connections of every worker, for limits.max_connections. */
extern _Atomic uint32_t g_nconns;

/* Buffers, free lists and the view's memory: set up before the worker's
 * thread starts, released after its loop ends (views included). */
void gw_wstate_init(struct gw_worker *w);
void gw_wstate_free(struct gw_worker *w);

struct gw_buf *gw_buf_get(struct gw_worker *w, uint32_t min_cap);
void gw_buf_put(struct gw_worker *w, struct gw_buf *b);
struct gw_rid *gw_rid_get(struct gw_worker *w);
void gw_rid_put(struct gw_worker *w, struct gw_rid *r);

/* libevent keeps one queue per distinct duration ("common timeouts"), so
 * re-arming a connection's timer is O(1) instead of a heap operation. */
const struct timeval *gw_common_timeout(struct gw_worker *w, uint32_t ms);
uint64_t gw_now_ms(struct gw_worker *w);
uint64_t gw_mono_ns(void);
/* gw_mono_ns() read once per turn of the worker's event loop (worker_main
 * forgets it before each): every event of a turn is timed from when its
 * wait ended, as HAProxy's now_ns and nginx's cached time are.  Request
 * and upstream times take three readings per request; this takes one per
 * turn, a few requests' worth.  A callback that event_active()s must clear
 * turn.ok itself: with an event still active, EVLOOP_ONCE runs the next
 * turn without returning to worker_main. */
static inline uint64_t gw_turn_ns(struct gw_worker *w)
{
    return lt_turn_ns(&w->turn);
}

/* Put n (a client connection's timer node) in the worker's heap at
 * deadline at (ms), moving it if it was there, and arm the worker's timer
 * when that is now the earliest. */
void gw_ctimer_set(struct gw_worker *w, struct lt_hnode *n, uint64_t at);

/* Switch w->cur to the published snapshot when a newer one exists (one
 * atomic load when not); the old view is freed once no request pins it.
 * Returns true when it switched.  Listeners are the worker's to follow
 * (worker.c, on GW_CMD_SNAPSHOT). */
bool gw_wsnap_refresh(struct gw_worker *w);
void gw_wsnap_unpin(struct gw_worker *w, struct gw_wsnap *ws);
struct gw_route_stats *gw_wsnap_route_stats(struct gw_worker *w, struct gw_wsnap *ws,
                                            const struct cfg_route *r);

#endif
