/*
 * counter.h - per-thread counters and latency histograms read by another
 * thread.
 *
 * Each counter is written by exactly one thread, so an increment is a
 * relaxed load and store (a plain add on x86; no lock prefix, no shared
 * cache line); readers use relaxed loads.
 *
 * Owns: the counter primitives and the histogram's buckets.  May call: libc.
 * gateway/stats.h keeps the worker's counters; upstream/ updates its own
 * through these.
 */
#ifndef SLUICE_COUNTER_H
#define SLUICE_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

#define GW_HIST_N 14    /* finite buckets; one more counts +Inf */

extern const double gw_hist_le[GW_HIST_N];     /* upper bounds, seconds */

struct gw_hist {
    _Atomic uint64_t b[GW_HIST_N + 1];  /* per bucket, not cumulative */
    _Atomic uint64_t sum_ns;
};

static inline void gw_cnt_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}

static inline uint64_t gw_cnt_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

void gw_hist_observe(struct gw_hist *h, uint64_t ns);

#endif
