/*
 * reload.h - the one way a config is applied after start: PUT /config (the
 * admin thread) and SIGHUP (main) both come here.  A document is parsed,
 * checked and built into a snapshot off the request path, at idle
 * priority, then published with one pointer swap; the workers follow.
 *
 * Owns: reload.c.  May call: config, snapshot.h, tls.h, worker.h
 * (GW_CMD_SNAPSHOT).  Called by: main.c, admin.c.
 */
#ifndef SLUICE_RELOAD_H
#define SLUICE_RELOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/cfgerr.h"

extern _Atomic uint64_t g_reloads_ok, g_reloads_err;

/* Validate and apply a whole document; 0 with *version set, or -1 with
 * errs filled (nothing changed).  Thread-safe; origin names the caller in logs. */
int gw_config_apply(const char *json, size_t len, const char *origin,
                    struct cfg_errors *errs, uint64_t *version);
/* Apply the running document again (its upstreams' names are re-read from
 * the resolver's cache: the DNS thread calls it when an answer changed).
 * Serialised with gw_config_apply, so it never brings back a document a
 * PUT /config replaced.  0 with *version set, or -1 (logged). */
int gw_config_reapply(const char *origin, uint64_t *version);
/* The calling thread (the admin thread, at the head of a PUT /config) goes
 * to idle priority for what follows, under the build watchdog, as a build
 * does; gw_config_apply ends it when it publishes, gw_reload_idle_end
 * when the request fails first.  No-ops where builds keep their priority. */
void gw_reload_idle_begin(void);
void gw_reload_idle_end(void);
/* The same for the admin thread's answers (/stats, /metrics, /status: work
 * a thousand pollers may ask for): idle priority under the same watchdog,
 * not counted as a build when raised.  Ended by gw_reload_idle_end (a PUT
 * that begins meanwhile makes it a build's).  False if the thread stays at
 * its priority. */
bool gw_admin_idle_begin(void);
/* Whether the calling thread is at idle priority by one of the above. */
bool gw_reload_idle_now(void);
/* The last reload (PUT /config, SIGHUP, a DNS change re-applying the
 * document) since the start, for /status and the dashboard. */
struct gw_reload_last {
    uint64_t time_ms;           /* wall clock when it ended; 0: none since the start */
    bool ok;
    uint64_t version;           /* the version it made (ok), or the one kept */
    double took_ms;
    char origin[32];            /* "PUT /config", "SIGHUP", ... */
    char error[256];            /* the first error: "PATH: message" (not ok) */
};
void gw_reload_last(struct gw_reload_last *out);

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

#endif
