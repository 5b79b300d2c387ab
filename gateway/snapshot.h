/*
 * snapshot.h - the running configuration as workers see it: an immutable
 * gw_snapshot (the parsed document, the route index, the resolved
 * upstreams, the listening sockets, the TLS contexts), built off the
 * request path and published with one pointer swap.
 *
 * Lifetime: the main thread (or the admin thread, for PUT /config)
 * publishes under g_snap_lock, taken only on reload and by a worker
 * switching to a new version.  Each worker holds one reference through its
 * view (struct gw_wsnap, wstate.h); a worker dropping the last reference
 * queues the snapshot for the main thread to free (gw_snapshot_reap), so a
 * 10,000-route config is never freed on the request path.
 *
 * Owns: snapshot.c.  May call: config, router/, upstream/, tls.h, core/.
 */
#ifndef SLUICE_SNAPSHOT_H
#define SLUICE_SNAPSHOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "../router/router.h"
#include "../upstream/upstream.h"

/* A listening address.  Each worker accepts on its own SO_REUSEPORT socket,
 * so the kernel spreads connections with no lock between workers. */
struct gw_listener {
    _Atomic int refs;
    struct sockaddr_storage sa;
    socklen_t salen;
    uint16_t port;
    char text[64];
    int nfds;
    int *fds;                   /* fds[w] belongs to worker w once published; -1 = closed */
};

struct gw_tls_set;

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

extern pthread_mutex_t g_snap_lock;
extern struct gw_snapshot *g_snap;          /* under g_snap_lock */
extern _Atomic uint64_t g_snap_version;     /* read lock-free by workers */

/* Takes cfg and tls (from gw_tls_set_build; freed on failure too). */
struct gw_snapshot *gw_snapshot_build(struct sl_config *cfg, struct gw_tls_set *tls,
                                      const struct gw_snapshot *prev,
                                      int nworkers, char *err, size_t errlen);
void gw_snapshot_ref(struct gw_snapshot *s);
void gw_snapshot_unref(struct gw_snapshot *s);
/* For workers: dropping the last reference queues the snapshot for
 * gw_snapshot_reap() instead of freeing it on the request path. */
void gw_snapshot_unref_deferred(struct gw_snapshot *s);
void gw_snapshot_reap(void);            /* main thread: free what workers released */
void gw_snapshot_publish(struct gw_snapshot *s);   /* takes the caller's ref */
/* The running snapshot, with a reference the caller drops (gw_snapshot_unref). */
struct gw_snapshot *gw_snapshot_current(void);
void gw_listener_unref(struct gw_listener *l);

#endif
