/*
 * worker.h - the worker threads: one event loop each, its own
 * SO_REUSEPORT socket per listener, commands from the main thread.
 *
 * Owns: worker.c (threads, the loop, accept, listeners followed across
 * reloads, commands).  May call: proxy.h (hands accepted sockets to the
 * connection files, drains and frees them), wstate.h, snapshot.h.
 * Called by: main.c and reload.c.
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <stdint.h>

#include "wstate.h"

enum { GW_CMD_SNAPSHOT = 1, GW_CMD_DRAIN = 2, GW_CMD_STOP = 4 };

/* Set by main before the first reload can run; read by reload and admin. */
extern struct gw_worker *g_workers;
extern int g_nworkers;

/* Start n workers on the published snapshot; -1 when one cannot start. */
int gw_workers_start(struct gw_worker *ws, int n);
/* Post GW_CMD_* bits to a worker (any thread): SNAPSHOT switches to the
 * published snapshot, DRAIN stops accepting and closes connections as their
 * responses end, STOP leaves the loop and closes what is left. */
void gw_worker_command(struct gw_worker *w, uint32_t cmd);

#endif
