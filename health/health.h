/*
 * health.h - target health shared by every worker without locks.
 *
 * Each distinct target address has one struct hc_state for the life of the
 * process, so health survives config reloads.  Workers read it on every
 * balancer pick (a relaxed atomic load: read-mostly, no cache-line bouncing)
 * and write it only when a connection fails or recovers.
 *
 * Passive health (SPEC "health absent"): a connect failure or a reset before
 * any response byte marks the target down for a back-off period that doubles
 * with consecutive failures (1 s, 2 s, 4 s ... capped at 30 s); failures
 * reported while it is already down (requests that were on their way) do
 * not count.  The first success clears it.  Active probes (upstreams[].health) come with their own
 * issue and plug in by writing the same state.
 */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <stdint.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <sys/socket.h>

struct hc_state {
    _Atomic uint64_t down_until_ms;   /* monotonic ms; 0 = up */
    _Atomic uint32_t fails;           /* consecutive failures */
    _Atomic uint32_t inflight;        /* requests in flight (upstream.h up_inflight) */
};

/* The state for an address, created on first use; never freed before
 * hc_shutdown().  Thread-safe; call it off the hot path (config build). */
struct hc_state *hc_state_for(const struct sockaddr *sa, socklen_t salen);

static inline bool hc_is_up(const struct hc_state *s, uint64_t now_ms)
{
    return atomic_load_explicit(&s->down_until_ms, memory_order_relaxed) <= now_ms;
}

/* A connection to the target failed (connect error, reset before a response). */
void hc_fail(struct hc_state *s, uint64_t now_ms);

/* A response came back: the target is up. */
static inline void hc_ok(struct hc_state *s)
{
    if (atomic_load_explicit(&s->fails, memory_order_relaxed) != 0) {
        atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
        atomic_store_explicit(&s->down_until_ms, 0, memory_order_relaxed);
    }
}

/* Free every state (at exit, after all workers stopped). */
void hc_shutdown(void);

#endif
