/*
 * upstream.h - runtime upstreams: resolved targets and balancing.
 *
 * up_set_build() turns the config's upstreams into targets with socket
 * addresses.  A target given by a DNS name is one target per address of
 * the name (all its A/AAAA records, each with the configured weight), taken
 * from the resolver's cache (dns.h; a name seen for the first time is
 * resolved there and then, all names in parallel, bounded in time, on the
 * calling thread, which is never a worker).  A name without any address
 * leaves one target unresolved (never picked), reported in the warnings; it
 * does not fail the build.  The set is immutable afterwards and shared
 * read-only by the workers; balancer state (struct up_wpick, balance.h) is
 * per worker, so picking takes no lock.  When the resolver sees a name's
 * addresses change, the gateway builds a new set from the same document.
 *
 * Owns: the runtime set and the upstream config (upstream_config.h); the
 * balancers are balance.h's, the upstream connection upconn.h's.  May call: health/, pool/ (upconn),
 * core/, c-ares.  It reads the config's upstreams as an
 * array and knows nothing of the rest of the document.
 */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include "upstream_config.h"
#include "balance.h"
#include "../health/health.h"

struct up_dns_name;

struct up_target {
    struct sockaddr_storage sa;
    socklen_t salen;            /* 0 when the name did not resolve */
    uint32_t weight;
    size_t gidx;                /* index among all targets of the set */
    struct hc_target *health;   /* the registry's state; NULL when unresolved */
    char text[280];             /* "host:port" as configured, for logs */
    char host[280];             /* Host header for HTTP/1.0 clients without one */
    char name[256];             /* the DNS name to resolve ("" for IP literals) */
};

struct up_upstream {
    const struct cfg_upstream *cfg;
    struct up_target *targets;
    uint32_t *weights;          /* weights[i] == targets[i].weight */
    size_t ntargets;
    const _Atomic uint64_t *hbits;  /* health bitmap: bit i = target i may be picked */
    struct hc_group *hg;        /* health/'s, which writes hbits */
    size_t index;               /* in the set */
    struct up_bal bal;          /* the balancer's shared part (balance.h) */
};

struct up_set {
    struct up_upstream *v;
    size_t n;
    size_t ntargets;            /* over all upstreams */
    struct up_dns_name **dns;   /* the names it holds in the resolver (dns.h) */
    size_t ndns;
};

/* Build the runtime upstreams of the nups config upstreams ups (which must
 * outlive the set; upstream i of the set is ups[i]).
 * Warnings (unresolved names) are written to warn (may be NULL).
 * dns_timeout_ms bounds the lookups of names the resolver has no answer for.
 * Returns 0, or -1 on allocation failure. */
int up_set_build(const struct cfg_upstream *ups, size_t nups, struct up_set *set,
                 char *warn, size_t warnlen, int dns_timeout_ms);
void up_set_free(struct up_set *set);

/* The one test every balancer makes before it picks target i of u: resolved,
 * healthy (active checks) and not ejected.  One relaxed load of u's health
 * bitmap, which only health/ writes (now_ms is not needed: ejections end on
 * the health thread). */
static inline bool up_target_ok(const struct up_upstream *u, size_t i, uint64_t now_ms)
{
    (void)now_ms;
    return hc_bit(u->hbits, i);
}

/* The word of u's health bitmap that holds targets 64*w .. 64*w+63, for a
 * balancer that scans many targets with one load per 64. */
static inline uint64_t up_health_word(const struct up_upstream *u, size_t w)
{
    return atomic_load_explicit(&u->hbits[w], memory_order_relaxed);
}

/* The set became the running config: health/ probes its targets with its
 * upstreams' checks.  tls[i]: the client context of upstream i (NULL =
 * plain).  Called once per publish, in publish order. */
void up_set_publish(const struct up_set *set, SSL_CTX *const *tls);

/* Requests in flight to target t, over every worker (the count lives in the target's health state,
 * one per upstream and address, so it survives reloads).  The gateway adds one when an attempt starts on t and takes it
 * off when that attempt ends, whatever ends it; least_request and
 * random_two read it. */
static inline uint32_t up_inflight(const struct up_target *t)
{
    return t->health ? atomic_load_explicit(&t->health->inflight, memory_order_relaxed) : 0;
}

static inline void up_inflight_add(const struct up_target *t)
{
    if (t->health)
        atomic_fetch_add_explicit(&t->health->inflight, 1, memory_order_relaxed);
}

static inline void up_inflight_sub(const struct up_target *t)
{
    if (t->health)
        atomic_fetch_sub_explicit(&t->health->inflight, 1, memory_order_relaxed);
}

/* A connection slot of t (pool.max_connections): the count of t's open
 * connections over every worker (idle pooled ones included) goes up by one
 * unless it is already at max (0 = no limit: always taken).  A compare and
 * swap on the target's counter, once per new connection, never per reused
 * one.  false: the target is full, the caller queues. */
static inline bool up_slot_take(const struct up_target *t, uint32_t max)
{
    if (t->health == NULL)
        return true;
    _Atomic uint32_t *n = &t->health->conns;
    if (max == 0) {
        atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
        return true;
    }
    uint32_t cur = atomic_load_explicit(n, memory_order_relaxed);
    do {
        if (cur >= max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(n, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

/* t's open connections over every worker (what up_slot_take compares). */
static inline uint32_t up_slots_used(const struct up_target *t)
{
    return t->health ? atomic_load_explicit(&t->health->conns, memory_order_relaxed) : 0;
}

#endif
