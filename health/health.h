/*
 * health.h - target health: the registry that survives reloads, the
 * bitmaps every worker reads, passive ejection and the active prober.
 *
 * The truth is a registry of struct hc_target, one per (upstream name,
 * address), kept for the life of the process, so a target that stays
 * through a config reload keeps its state.  What a worker reads is derived
 * from it: each upstream of a snapshot has a struct hc_group whose bitmap
 * (_Atomic uint64_t words, one bit per target, no limit on the count) has
 * bit i set while target i may be picked: resolved, not ejected, and (with
 * active checks) last seen up.  A pick is one relaxed load; only health
 * code writes the bits, under the registry lock, when a target changes
 * state (rare), and a new group's bits are initialised from the registry.
 *
 * Passive health (every upstream, struct hc_outlier): connect failures,
 * resets before a response and response timeouts reported by workers
 * (hc_fail) count against a target; `failures` in a row eject it for a
 * back-off that doubles with each ejection (base_ms, 2*base_ms ... max_ms)
 * and ends when it expires (hc_tick, the prober thread) or when an active
 * probe sees the target healthy.  Optionally `consecutive_5xx` answers in a
 * row eject it too.  No more than max(1, n * max_percent / 100) targets of
 * an upstream are ejected at once.  A response clears the failure count
 * and the back-off step.
 *
 * Active health (struct hc_check): the prober thread (hc_prober_start) sends
 * an HTTP GET (HTTPS for TLS upstreams) to every target of the running
 * config every interval_ms (with jitter); `fall` bad probes in a row take a
 * target down, `rise` good ones bring it up.  A target the registry has not
 * seen before starts down when its upstream has checks, and its first probe
 * (sent at once) decides; without checks it starts up.
 *
 * Owns: health.c (registry, bits, passive), prober.c (the thread).
 * May call: core/, OpenSSL, libevent.  Used by upstream/ (which embeds the
 * policy in its config and a group in each runtime upstream) and gateway/
 * (start, stop, publish, status).
 */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <sys/socket.h>

typedef struct ssl_ctx_st SSL_CTX;

/* upstreams[].health: active probes (on = the member is present) */
struct hc_check {
    bool on;
    char path[256];             /* default "/" */
    uint32_t interval_ms;       /* default 5000 */
    uint32_t timeout_ms;        /* default 1000 */
    uint32_t rise, fall;        /* default 2, 2 */
    uint16_t status_lo, status_hi;  /* expect_status, default [200, 399] */
};

/* upstreams[].outlier: passive health / ejection */
struct hc_outlier {
    uint32_t failures;          /* consecutive_failures, default 1 (0 = off) */
    uint32_t consecutive_5xx;   /* default 0 = off */
    uint32_t base_ms;           /* base_ejection_ms, default 1000 */
    uint32_t max_ms;            /* max_ejection_ms, default 30000 */
    uint32_t max_percent;       /* max_ejection_percent, default 50 */
};

struct hc_policy {
    struct hc_check check;
    struct hc_outlier outlier;
};

/* What an upstream has unless its document says otherwise. */
static const struct hc_policy hc_policy_default = {
    .check = { .on = false, .path = "/", .interval_ms = 5000, .timeout_ms = 1000,
               .rise = 2, .fall = 2, .status_lo = 200, .status_hi = 399 },
    .outlier = { .failures = 1, .consecutive_5xx = 0, .base_ms = 1000, .max_ms = 30000,
                 .max_percent = 50 },
};

struct hc_ups;
struct hc_member;

/* One (upstream, address): see the top.  Fields are the registry's. */
struct hc_target {
    struct hc_target *next;             /* in its upstream's list */
    struct hc_ups *ups;
    struct sockaddr_storage sa;
    socklen_t salen;
    char text[64];                      /* "10.0.0.5:80", "[::1]:80" */
    /* passive: written by workers with atomics */
    _Atomic uint32_t fails;             /* consecutive failures */
    _Atomic uint32_t fails_5xx;         /* consecutive 5xx answers */
    _Atomic uint32_t step;              /* back-off step: ejections without a success */
    _Atomic uint64_t ejected_until;     /* monotonic ms, 0 = not ejected (under the lock) */
    _Atomic uint64_t ejections;         /* total, for /metrics */
    _Atomic uint32_t inflight;          /* requests in flight, all workers (upstream.h up_inflight) */
    /* pool.max_connections (upstream.h up_slot_take): written by workers with atomics */
    _Atomic uint32_t conns;             /* open upstream connections, all workers (idle ones too) */
    _Atomic uint32_t waiting;           /* requests queued for a connection, all workers */
    _Atomic uint64_t q_overflows;       /* refused: the queue was full */
    _Atomic uint64_t q_timeouts;        /* waited longer than pool.queue_timeout_ms */
    bool capped;                        /* refused by the cap and logged (lock) */
    /* active and derived: under the registry lock */
    int active;                         /* 1 up, 0 down, -1 no checks */
    bool first;                         /* checks on, no result yet: the first decides */
    uint32_t run;                       /* results in a row agreeing with `run_ok` */
    bool run_ok;
    bool up;                            /* the bit's value */
    uint64_t since_ms;                  /* wall clock ms of the last change of `up` */
    char last[96];                      /* the last probe's result, "" = none */
    uint64_t probes_ok, probes_bad, went_up, went_down;
    /* prober: under the lock */
    uint64_t pub;                       /* publish generation it was last seen in */
    uint64_t next_probe_ms;
    bool in_flight;
    char host[280];                     /* Host header of the probes */
    char sni[256];                      /* "" = none */
};

/* One upstream of one snapshot: the bitmap its workers read. */
struct hc_group {
    struct hc_group *next, *prev;       /* live groups (registry lock) */
    struct hc_ups *ups;
    struct hc_policy pol;
    size_t n;
    struct hc_target **t;               /* [n]; NULL = unresolved */
    struct hc_member *m;                /* [n]: the strings are the caller's */
    _Atomic uint64_t *bits;             /* [(n + 63) / 64] */
};

/* What a group is made of: one per target of the upstream (the strings
 * must outlive the group). */
struct hc_member {
    const struct sockaddr *sa;          /* NULL = unresolved */
    socklen_t salen;
    const char *host;                   /* Host header for probes */
    const char *sni;                    /* NULL = none */
};

/* A group for upstream `name` with policy pol, its bits set from the
 * registry (targets created as needed).  NULL on allocation failure.
 * Call it off the hot path (config build); free with hc_group_free. */
struct hc_group *hc_group_new(const char *name, const struct hc_policy *pol,
                              const struct hc_member *m, size_t n);
void hc_group_free(struct hc_group *g);

static inline bool hc_bit(const _Atomic uint64_t *bits, size_t i)
{
    return (atomic_load_explicit(&bits[i >> 6], memory_order_relaxed) >> (i & 63)) & 1;
}

/* The groups of a config that just became the running one: their policies
 * are the upstreams' now, their targets are the ones probed.  tls[i] is the
 * client context for group i's probes (NULL = plain HTTP); the registry
 * takes a reference.  verify[i]: check the certificate. */
void hc_publish(struct hc_group *const *g, SSL_CTX *const *tls, const bool *verify, size_t n);

/* A worker's reports (any thread, no lock unless the target changes state).
 * hc_fail: a connection failed (connect error or timeout, reset before a
 * response, no response header in time).  hc_answered: a response head
 * with this status came. */
void hc_fail(struct hc_target *t, uint64_t now_ms);
void hc_answered_slow(struct hc_target *t, int status);
static inline void hc_answered(struct hc_target *t, int status)
{
    /* the common case reads two words it does not write */
    if (atomic_load_explicit(&t->fails, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&t->step, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&t->fails_5xx, memory_order_relaxed) != 0 || status >= 500)
        hc_answered_slow(t, status);
}

/* Ends the ejections due at now_ms (the prober thread, every tick). */
void hc_tick(uint64_t now_ms);

/* An active probe's result (the prober; tests). */
void hc_probe_result(struct hc_target *t, bool ok, const char *why, uint64_t now_ms);

/* For /status: a consistent copy of what a target shows. */
struct hc_view {
    bool up;
    int active;                 /* 1 up, 0 down, -1 no checks */
    bool ejected;
    uint64_t ejected_for_ms;    /* left of the ejection */
    uint64_t since_ms;          /* wall clock ms */
    char last[96];
    uint64_t probes_ok, probes_bad, went_up, went_down, ejections;
};
void hc_view(const struct hc_target *t, uint64_t now_ms, struct hc_view *v);

/* The prober thread: start once the first config is published; stop before
 * hc_shutdown.  0 or -1. */
int hc_prober_start(void);
void hc_prober_stop(void);

/* Free every state (at exit, after the prober and all workers stopped and
 * every group was freed). */
void hc_shutdown(void);

#endif
