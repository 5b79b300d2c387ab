/*
 * metrics.h - the metric model behind GET /metrics and GET /stats.
 *
 * Every metric family is written once, by a producer that sums what the
 * workers publish (stats.h counters, pool buckets, health states) and hands
 * each family to an emitter: its name, type and help, then its samples (a
 * label set and a value, or a histogram's buckets).  Two emitters render
 * what they are handed: Prometheus text (version 0.0.4) and one JSON
 * document.  Both read the same counters through the same producers, so
 * the two answers cannot disagree on what is counted, only on the moment.
 *
 * Adding a family: write a producer (static void x_metrics(struct mx_emit *e,
 * const struct gw_snapshot *s)) in the module that owns the counters or here,
 * and call it from gw_metrics_emit().  Within a family, call mx_value() or
 * mx_hist() once per label set; a family's samples must follow its
 * mx_family() call, before the next family starts.
 *
 * The emitter and the renderers are in mx.h.
 *
 * Owns: metrics.c.  May call: mx.h, stats.h, worker.h (each worker's counters
 * and pool, atomics only), snapshot.h, reload.h, tls.h.
 * Called by: admin.c.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "mx.h"
#include "../pool/pool.h"

struct gw_snapshot;
struct up_target;

/* The process started (wall clock): main, once, early. */
void gw_metrics_started(void);
/* Wall clock ms of that start. */
uint64_t gw_metrics_start_ms(void);

/* Every family of sluice's own, in /metrics order. */
void gw_metrics_emit(struct mx_emit *e, const struct gw_snapshot *s);

/* A target's counters summed over the workers (also /status). */
struct gw_target_sum {
    uint64_t idle, inflight, requests, failures, opened, in_use;
    uint64_t closed[POOL_CLOSE_N];
    uint64_t code[5];           /* response heads by status class */
    struct mx_hist resp;        /* request start to response head */
};
void gw_target_sum(const struct up_target *t, struct gw_target_sum *out);

#endif
