/*
 * proxy.h - what the worker asks of its client connections.  The files
 * behind it (proxy.c, pass.c, forward.c, client.c, body.c, local.c, txn.c;
 * their shared internals are conn.h) own a client connection from accept
 * to close and the transactions on it.
 *
 * Called by: worker.c.  The connection files call wstate.h, never worker.h.
 */
#ifndef SLUICE_PROXY_H
#define SLUICE_PROXY_H

#include <sys/socket.h>

#include "wstate.h"

/* Take an accepted socket of listener l (TLS or plain as l is configured). */
void gw_conn_accept(struct gw_worker *w, struct gw_listener *l, int fd,
                    const struct sockaddr *sa, socklen_t salen);
/* Draining: close idle clients now, the others after their response. */
void gw_conns_drain(struct gw_worker *w);
/* Free connections closed during this turn (after their callbacks returned). */
void gw_gc(struct gw_worker *w);
/* Stopping: close every connection at once. */
void gw_conns_close_all(struct gw_worker *w);
/* Stopping: free the recycled transactions. */
void gw_txns_free(struct gw_worker *w);
/* w->ctimer's callback: the client connections whose deadline passed. */
void gw_conn_timers(evutil_socket_t fd, short what, void *arg);
/* w->qev's callback: serve the requests queued for a connection slot
 * (pool.max_connections) in order, 503 those whose wait ran out; re-arms
 * itself every GW_QUEUE_RECHECK_MS while any wait.  A worker learns of a
 * slot freed by another worker here, from the target's shared counter. */
void gw_queue_run(evutil_socket_t fd, short what, void *arg);
/* Every tick: idle pooled connections to a target that requests of other
 * workers wait for (and none of this one) are closed, so their slots move. */
void gw_queue_tick(struct gw_worker *w);
/* The worker's policy state (w->pol), on its base, before it runs. */
void gw_guard_init(struct gw_worker *w);
/* ... and its end, every connection closed. */
void gw_guard_free(struct gw_worker *w);
/* What the gateway does on an upstream connection's events (owner: gw_conn);
 * the worker puts it in w->up. */
extern const struct up_conn_ops gw_up_ops;

#endif
