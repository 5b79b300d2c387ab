/*
 * admin.h - the admin API (/status, /metrics, /config, ...) on its own
 * thread and event loop, never a worker's.
 *
 * Owns: admin.c.  May call: metrics.h (/metrics, /stats), reload.h (PUT /config), snapshot.h, worker.h
 * (reads each worker's counters and pool, atomics only), stats, tls.h.
 * Called by: main.c.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stddef.h>

#include "../core/addr.h"

int gw_admin_start(const struct cfg_addr *addr, char *err, size_t errlen);
void gw_admin_stop(void);

#endif
