/*
 * balance.h - (upstream) the four balancers: which target of an upstream
 * takes a request.
 *
 *   round_robin    smooth weighted round robin (nginx's): up to BAL_SMALL
 *                  targets the exact algorithm over the eligible ones; over
 *                  that, the same sequence precomputed once per config
 *                  (struct up_bal.sched) and walked by a per-worker
 *                  position, so a pick among 1,000 targets is O(1).
 *   least_request  fewest requests in flight per unit of weight.  The
 *                  counts are shared by every worker (one atomic counter
 *                  per target address, health/health.h: it survives
 *                  reloads); up to BAL_SMALL targets the exact minimum
 *                  (ties broken by smooth weighted round robin, so an idle
 *                  upstream still gets 3:1 for weights 3:1), over that the
 *                  power of two choices.
 *   random_two     the power of two choices at every size: two distinct
 *                  targets drawn at random in proportion to their weights,
 *                  the one with fewer in flight per weight wins.
 *   hash           consistent hashing on a ring with virtual nodes (160
 *                  per target of average weight, in proportion to weight,
 *                  placed by the target's address alone), looked up through
 *                  a jump table in O(1): removing one of N targets moves its
 *                  own keys (1/N) and no other.  An ineligible target's keys
 *                  go to the next points' targets; a request without a key
 *                  falls back to round robin.
 *
 * Eligibility is up_target_ok() (upstream.h) and not being in the
 * request's tried bitmap, nothing else.  The shared part (struct up_bal) is
 * built with the set and read-only; the mutable part (struct up_wpick) is
 * the worker's own, so a pick takes no lock and allocates nothing.
 *
 * Owns: balance.c.  Called by: upstream.c (build/free with the set), the
 * gateway (up_pick, up_hash_key, the in-flight counts of upstream.h).
 */
#ifndef SLUICE_BALANCE_H
#define SLUICE_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/httpmsg.h"    /* struct h1_header */

struct up_upstream;
struct cfg_upstream;

/* Up to this many targets the balancers scan every target (exact); over it
 * they use O(1) structures. */
#define BAL_SMALL 16

/* What an upstream's balancer shares between workers: built once, read-only. */
struct up_alias {           /* Walker's alias method: one entry per target */
    uint64_t prob;          /* keep the drawn index below this (of 2^32) */
    uint64_t alias;         /* else take this one */
};

struct up_bal {
    bool wequal;            /* all weights are the same */
    uint64_t wtotal;        /* the sum of the weights */
    struct up_alias *alias; /* draws in proportion to weight in O(1); NULL when equal */
    uint32_t *sched;        /* round robin over BAL_SMALL targets: one SWRR period;
                               NULL when weights are equal (the identity) or the
                               period is too long (then the O(n) algorithm) */
    uint32_t nsched;
    uint32_t *ring_h;       /* hash: the ring's points, sorted ... */
    uint32_t *ring_t;       /* ... and the target of each */
    uint32_t nring;
    uint32_t *jump;         /* [1 << (32 - jshift)]: first point of each range of hashes */
    uint32_t jshift;
};

/* What a worker keeps per upstream: its own, written without atomics. */
struct up_wpick {
    int64_t *cur;           /* [u->ntargets]: SWRR current weights */
    uint64_t *pos;          /* the position in the round robin sequence */
    uint64_t *rng;          /* the worker's random state (never 0) */
};

/* Build u->bal from u's targets and config (called by up_set_build).
 * Returns 0, or -1 on allocation failure (u->bal then holds what was
 * built, for up_bal_free). */
int up_bal_build(struct up_upstream *u);
void up_bal_free(struct up_upstream *u);

/*
 * Smooth weighted round robin (nginx's algorithm): over the n entries with
 * weight w[i] > 0 for which ok(i, ctx) holds (ok may be NULL = all), add each
 * weight to its current value, pick the largest, subtract the total from it.
 * cur has n entries owned by the caller (per worker).  Returns the index, or
 * -1 when nothing is eligible.  Weights 5,1,1 give a a b a c a a, not a a a a a b c.
 */
int up_swrr(int64_t *cur, const uint32_t *w, size_t n,
            bool (*ok)(size_t i, const void *ctx), const void *ctx);

/*
 * Pick a target of u for a request with u's balancer: eligible at now_ms
 * (up_target_ok) and not in the tried bitmap (bit i%64 = target i already
 * tried for this request).  key: the request's hash key (up_hash_key), NULL
 * when it has none (round robin then, for balance hash).  Returns the
 * index, or -1 when no target is eligible (503).
 */
int up_pick(const struct up_upstream *u, const struct up_wpick *st, uint64_t now_ms,
            uint64_t tried, const uint64_t *key);

/*
 * The hash key of a request for an upstream with balance hash: hash_on
 * client_ip hashes ip (the address's bytes, iplen 4 or 16), header:NAME the
 * first NAME header's value, cookie:NAME the value of the first cookie NAME
 * in the Cookie headers.  Returns false (no key: round robin) when the
 * upstream does not hash or the request has no such header or cookie.
 */
bool up_hash_key(const struct cfg_upstream *cu, const struct h1_header *hs, size_t nh,
                 const void *ip, size_t iplen, uint64_t *key);

/* A 64-bit hash of n bytes (FNV-1a, then a finaliser that spreads every
 * input bit over the result: the ring takes the top bits). */
uint64_t up_hash(const void *p, size_t n, uint64_t seed);

#endif
