/*
 * gateway.h - the data plane's internals: config snapshots, workers, client
 * and upstream connections.  Only the gateway .c files include this.
 *
 * Threads: main (signals, reloads), N workers (one event_base each, own
 * SO_REUSEPORT socket per listener).  Nothing on the request path is shared
 * and written between workers except health state (atomics, on failures).
 *
 * Config lifetime: the main thread publishes an immutable gw_snapshot with
 * one pointer swap (under g_snap_lock, taken only on reload and by a worker
 * switching to a new version).  Each worker holds one reference through its
 * gw_wsnap; each request pins the worker's current gw_wsnap (a plain
 * counter: the wsnap is worker-private), so a reload never frees what a
 * request still uses, and the per-request cost is two increments.
 */
#ifndef SLUICE_GATEWAY_H
#define SLUICE_GATEWAY_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config.h"
#include "http1.h"
#include "../core/log.h"
#include "splice.h"
#include "stats.h"
#include "../router/router.h"
#include "../upstream/upstream.h"
#include "../pool/pool.h"
#include "../upstream/upconn.h"
#include "../core/ltimer.h"
#include "../core/freelist.h"

#define SLUICE_VERSION "0.1.0"

/* ---- buffers: fixed-size, recycled per worker ----
 * Small holds a head of the default limits.max_header_bytes (16 KiB) and
 * the 1 KiB a client's read buffer has beyond it: at 16 KiB every active
 * client connection held a large buffer (256 KiB), and more than
 * FREE_LARGE_MAX of them made each request's buffer a malloc and a free. */
#define GW_BUF_SMALL  (20u * 1024)
#define GW_BUF_LARGE  (256u * 1024)

#define GW_FREE_TXN_MAX 1024

struct gw_buf {
    struct fl_node fl;          /* the worker's free list */
    uint32_t start, end, cap;
    char data[];
};

/* ---- listeners ---- */
struct gw_listener {
    _Atomic int refs;
    struct sockaddr_storage sa;
    socklen_t salen;
    uint16_t port;
    char text[64];
    int nfds;
    int *fds;                   /* fds[w] belongs to worker w once published; -1 = closed */
};

/* ---- snapshots ---- */
struct gw_snapshot {
    _Atomic int refs;
    uint64_t version;
    struct sl_config *cfg;
    struct rt_table *rt;
    bool rt_shared;                     /* rt shares the index of the snapshot built before */
    struct up_set ups;
    struct gw_listener **listeners;     /* [cfg->nlisteners] */
    size_t *route_rr_off;               /* [cfg->nroutes]: offset of a route's split state */
    size_t route_rr_len;
    int alog_fd;                        /* access log, -1 = none; closed with the snapshot */
    struct gw_tls_set *tls;             /* TLS contexts of the listeners and upstreams */
    struct gw_snapshot *reap_next;      /* waiting to be freed by the main thread */
};

/* A worker's view of a snapshot: the mutable per-worker state that goes
 * with it (balancer positions, pool buckets). */
struct gw_wsnap {
    struct gw_snapshot *s;
    uint32_t pins;
    bool retired;
    struct gw_wsnap *next;              /* retired list */
    int64_t *target_rr;                 /* [ups.ntargets], by up_target.gidx */
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
struct gw_txn;

struct gw_worker;
struct gw_lev {                         /* a worker's accept event */
    struct gw_listener *l;
    struct event *ev;
    struct gw_worker *w;
};

struct gw_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    int cmd_fd;                         /* eventfd: main -> worker */
    struct event *cmd_ev;
    _Atomic uint32_t cmd;               /* GW_CMD_* bits */
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
};

enum { GW_CMD_SNAPSHOT = 1, GW_CMD_DRAIN = 2, GW_CMD_STOP = 4 };

/* ---- globals owned by main ---- */
extern pthread_mutex_t g_snap_lock;
extern struct gw_snapshot *g_snap;          /* under g_snap_lock */
extern _Atomic uint64_t g_snap_version;     /* read lock-free by workers */
extern _Atomic uint32_t g_nconns;           /* for limits.max_connections */

/* reload.c: the one way a config is applied after start (PUT /config, SIGHUP) */
extern struct gw_worker *g_workers;
extern int g_nworkers;
extern _Atomic uint64_t g_reloads_ok, g_reloads_err;
/* Validate and apply a whole document; 0 with *version set, or -1 with
 * errs filled (nothing changed).  Thread-safe; origin names the caller in logs. */
int gw_config_apply(const char *json, size_t len, const char *origin,
                    struct cfg_errors *errs, uint64_t *version);
/* The calling thread (the admin thread, at the head of a PUT /config) goes
 * to idle priority for what follows, under the build watchdog, as a build
 * does; gw_config_apply ends it when it publishes, gw_reload_idle_end
 * when the request fails first.  No-ops where builds keep their priority. */
void gw_reload_idle_begin(void);
void gw_reload_idle_end(void);
/* Reload builds that ran out of idle time and finished at normal priority. */
uint64_t gw_builds_escalated(void);
/* In a build's loops (cfg_pace_hook, the admin listener's body reads): on
 * the builder thread, after each turn of its CPU (100 µs, longer as the
 * watchdog raises it), sched_yield(), so a busy worker on its core waits no
 * longer than a turn; on any other thread nothing. */
void gw_build_pace(void);
uint64_t gw_build_yields(void);
/* Routes reloads copied unchanged from the running config (cfg_parse_update). */
uint64_t gw_reload_routes_reused(void);
/* Reloads that kept the running route index (rt_table_update). */
uint64_t gw_reload_index_kept(void);
/* The running snapshot, with a reference the caller drops (gw_snapshot_unref). */
struct gw_snapshot *gw_snapshot_current(void);

/* admin.c: the admin API on its own thread */
int gw_admin_start(const struct cfg_addr *addr, char *err, size_t errlen);
void gw_admin_stop(void);

/* snapshot.c */
struct gw_tls_set;
/* Takes cfg and tls (from gw_tls_set_build; freed on failure too). */
struct gw_snapshot *gw_snapshot_build(struct sl_config *cfg, struct gw_tls_set *tls,
                                      const struct gw_snapshot *prev,
                                      int nworkers, char *err, size_t errlen);
void gw_snapshot_ref(struct gw_snapshot *s);
void gw_snapshot_unref(struct gw_snapshot *s);
/* For workers: dropping the last reference queues the snapshot for
 * gw_snapshot_reap() instead of freeing a 10,000-route config on the
 * request path. */
void gw_snapshot_unref_deferred(struct gw_snapshot *s);
void gw_snapshot_reap(void);            /* main thread: free what workers released */
void gw_snapshot_publish(struct gw_snapshot *s);   /* takes the caller's ref */
void gw_listener_unref(struct gw_listener *l);

/* worker.c */
int gw_workers_start(struct gw_worker *ws, int n);
void gw_worker_command(struct gw_worker *w, uint32_t cmd);
void gw_worker_refresh(struct gw_worker *w);
void gw_wsnap_unpin(struct gw_worker *w, struct gw_wsnap *ws);
struct gw_route_stats *gw_wsnap_route_stats(struct gw_worker *w, struct gw_wsnap *ws,
                                            const struct cfg_route *r);
struct gw_buf *gw_buf_get(struct gw_worker *w, uint32_t min_cap);
void gw_buf_put(struct gw_worker *w, struct gw_buf *b);
const struct timeval *gw_common_timeout(struct gw_worker *w, uint32_t ms);
/* w->up: the base, clocks, counters and ops its upstream connections use */
void gw_up_loop_init(struct gw_worker *w);
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

/* proxy.c */
void gw_conn_accept(struct gw_worker *w, struct gw_listener *l, int fd,
                    const struct sockaddr *sa, socklen_t salen);
void gw_conns_drain(struct gw_worker *w);
void gw_gc(struct gw_worker *w);
/* what the gateway does on an upstream connection's events (owner: gw_conn) */
extern const struct up_conn_ops gw_up_ops;
void gw_conns_close_all(struct gw_worker *w);
void gw_txns_free(struct gw_worker *w);

#endif
