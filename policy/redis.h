/*
 * redis.h - (policy) the Redis store of rate limits and token budgets
 * (`rate_limit_store.redis`): one asynchronous hiredis connection per
 * worker on the worker's event base, one round trip per decision.
 *
 * A decision is one EVALSHA of a Lua script (GCRA on the server's clock,
 * Redis TIME, so processes on different hosts agree without synchronised
 * clocks) loaded with SCRIPT LOAD when the connection opens; a NOSCRIPT
 * answer (a Redis restarted or flushed) sends the same call as EVAL and
 * loads the script again.  Every call has a deadline (POL_REDIS_TIMEOUT_MS)
 * after which it completes as an error, so a slow or hung Redis never holds
 * a request longer; at most POL_REDIS_INFLIGHT calls are outstanding per
 * worker (more complete as errors at once).  A connection that fails or
 * closes completes its calls as errors and is opened again after a back-off
 * (100 ms doubling to 2 s); while it is down, calls fail at once.
 *
 * Keys: "sluice:" + 32 hex digits of a SHA-256 of the route's identity and
 * the key's bytes (pol_redis_key), so every process sharing the Redis
 * computes the same key; values expire once they no longer matter.
 *
 * Owns: the connection, its calls' completions.  May call: hiredis, libevent,
 * OpenSSL (SHA-1 of the script, SHA-256 of keys), core/log.
 * Threads: a struct pol_redis belongs to one worker thread.
 */
#ifndef SLUICE_POLICY_REDIS_H
#define SLUICE_POLICY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct pol_redis;

#define POL_REDIS_TIMEOUT_MS 100
#define POL_REDIS_INFLIGHT 1024
#define POL_REDIS_KEY_LEN 16

enum pol_store_res { POL_STORE_OK = 0, POL_STORE_DENY, POL_STORE_ERR };

/* A call's completion (worker thread, exactly once unless cancelled):
 * res, and for a deny the wait in microseconds. */
typedef void (*pol_redis_cb)(void *arg, enum pol_store_res res, uint64_t wait_us);

/* A connection to host:port on base (opened at once, asynchronously).
 * NULL when out of memory. */
struct pol_redis *pol_redis_new(struct event_base *base, const char *host, uint16_t port);
/* Close: outstanding calls complete as errors first (synchronously: call
 * it where no request can be resumed under the caller, at worker exit). */
void pol_redis_free(struct pol_redis **rdp);
/* Stop using rd (a reload moved the store): no new calls, no reconnect;
 * the calls in flight complete from the event loop as usual (their
 * replies, their deadlines), then the connection closes.  Free it later. */
void pol_redis_retire(struct pol_redis *rd);
/* A retired connection with nothing left in flight and closed: freeing it
 * completes nothing. */
bool pol_redis_idle(const struct pol_redis *rd);
/* The worker's list of retired connections (linked through rd). */
struct pol_redis **pol_redis_next(struct pol_redis *rd);
/* Whether rd talks to host:port (a reload that changes the address makes
 * the worker open a new one). */
bool pol_redis_is(const struct pol_redis *rd, const char *host, uint16_t port);

/* The store key of a route identity and key bytes (rd lends its digest
 * context). */
void pol_redis_key(struct pol_redis *rd, const void *ident, size_t ilen, const void *key, size_t klen,
                   uint8_t out[POL_REDIS_KEY_LEN]);

/*
 * The calls.  Each returns a handle (non-zero) when the call is on its way
 * (cb will be called), or 0 when it failed at once (no connection, too
 * many outstanding): the caller treats that as an error, cb is not called.
 *   rate: t_us = 1 s / rate, tau_us = (burst - 1) * t_us.
 *   budget_check: denied while the balance is not positive.
 *   budget_debit: no completion (handle 0 always; failures are counted).
 */
uint64_t pol_redis_rate(struct pol_redis *rd, const uint8_t key[POL_REDIS_KEY_LEN], double t_us,
                        double tau_us, pol_redis_cb cb, void *arg);
uint64_t pol_redis_budget_check(struct pol_redis *rd, const uint8_t key[POL_REDIS_KEY_LEN],
                                pol_redis_cb cb, void *arg);
void pol_redis_budget_debit(struct pol_redis *rd, const uint8_t key[POL_REDIS_KEY_LEN],
                            double per_token_us, double cap_us, uint64_t tokens);
/* Forget a call's completion (the request went away): the call of that
 * handle made with that arg, if rd has it.  True when it was found. */
bool pol_redis_cancel(struct pol_redis *rd, uint64_t handle, const void *arg);

/* Store errors of this process (every worker's calls that failed). */
uint64_t pol_store_errors(void);
/* Count one store error, and log it (what) at most once a second per process. */
void pol_store_error(const char *what);

#endif
