/*
 * rate.h - (policy) the in-process store of rate limits and token budgets:
 * one table of per-key states shared by every worker, with no lock on the
 * hot path.
 *
 * A key's state is one 64-bit word, a GCRA "theoretical arrival time" (TAT,
 * nanoseconds on pol_now_ns's clock): a decision is a load and one
 * compare-and-swap of that word.  Rate limit: a request is allowed when
 * max(TAT, now) - now <= (burst - 1) * T, T = 1 s / requests_per_s, and
 * TAT then moves on by T; so in any window of t seconds at most
 * requests_per_s * t + burst requests pass.  Token budget: the balance is
 * min(cap, (now - TAT) / T) tokens, T = 60 s / tokens_per_min and cap one
 * minute's worth; a request is allowed while the balance is positive
 * (now > TAT) and a response's usage moves TAT on by tokens * T.
 *
 * The table: sets of 8 slots (a 64-bit key hash, the TAT, a last-use stamp),
 * a key's set chosen by a seeded SipHash-2-4 of the route's identity and the
 * key's bytes, so a client cannot aim keys at one set.  A new key takes a
 * free slot of its set (compare-and-swap on the key word) or evicts the
 * set's least recently used one: a set-associative approximation of LRU,
 * bounded (limits.max_rate_limit_keys rounded down to a multiple of 8, at
 * least 8) and lock-free.  A decision racing with the eviction of its own
 * key, within the same nanoseconds, may apply to the key that took the slot:
 * the approximation is that one decision, never a lost bound.
 *
 * The table is process-wide and refcounted: configurations with the same
 * max_rate_limit_keys share one (so a reload keeps every key's state; the
 * hash includes the route's name and limits, so a route that changes them
 * starts afresh).
 *
 * Owns: the table, its seed, the SipHash.  May call: libc, core/.
 */
#ifndef SLUICE_POLICY_RATE_H
#define SLUICE_POLICY_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POL_KTAB_WAYS 8
#define POL_KTAB_DEFAULT_KEYS 100000

struct pol_ktab;

/* Nanoseconds on the monotonic clock, offset so "0" (a fresh key's TAT)
 * lies far in the past. */
uint64_t pol_now_ns(void);

/* The process's table for that many keys: an existing one of the same size
 * (a reference more) or a new one.  NULL when out of memory.  Called while
 * loading a configuration, never on the hot path. */
struct pol_ktab *pol_ktab_get(uint32_t max_keys);
void pol_ktab_unref(struct pol_ktab **tp);

/* The key hash: SipHash-2-4 with the table's seed over the two byte strings
 * (the route's identity, then the key's bytes), never 0. */
uint64_t pol_ktab_hash(const struct pol_ktab *t, const void *a, size_t alen, const void *b, size_t blen);

/* SipHash-2-4 of msg under the 16-byte key k. */
uint64_t pol_siphash(const uint8_t k[16], const void *msg, size_t len);

/* Rate limit: one decision for key.  t_ns = 1 s / rate, tau_ns = (burst - 1)
 * * t_ns.  True = allowed; false = denied and *wait_ns is how long until a
 * request would be allowed (> 0). */
bool pol_rate_take(struct pol_ktab *t, uint64_t key, uint64_t t_ns, uint64_t tau_ns, uint64_t now,
                   uint64_t *wait_ns);

/* Token budget: true while key's balance is positive (a key not in the
 * table has a full budget); else *wait_ns until it is.  Changes nothing but
 * the key's last-use stamp. */
bool pol_budget_ok(struct pol_ktab *t, uint64_t key, uint64_t now, uint64_t *wait_ns);

/* Debit tokens from key's budget (per_token_ns = 60 s / tokens_per_min,
 * cap_ns = the one minute the budget holds), inserting the key. */
void pol_budget_debit(struct pol_ktab *t, uint64_t key, uint64_t per_token_ns, uint64_t cap_ns,
                      uint64_t tokens, uint64_t now);

/* Retry-After for a wait: whole seconds, rounded up, at least 1. */
uint32_t pol_retry_after_s(uint64_t wait_ns);

/* The table's capacity and how many slots hold a key (a scan: for tests and
 * /metrics, not the hot path). */
size_t pol_ktab_capacity(const struct pol_ktab *t);
size_t pol_ktab_used(const struct pol_ktab *t);

#endif
