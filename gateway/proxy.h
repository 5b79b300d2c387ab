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
/* What the gateway does on an upstream connection's events (owner: gw_conn);
 * the worker puts it in w->up. */
extern const struct up_conn_ops gw_up_ops;

#endif
