/*
 * upstream_config.h - (upstream) the "upstreams" section of the
 * configuration document: what an upstream is, and the parser that checks
 * and builds it.
 *
 * Owns: struct cfg_upstream and its targets, TLS, pool, timeout, retry,
 * health and outlier settings, and the rules they follow.  May call: core/
 * (arena, cfgerr/cfgparse, nidx, addr), health/ (the policy's types).  The document (gateway/config.h) holds
 * the upstreams; the routes refer to them by the names indexed here.
 */
#ifndef SLUICE_UPSTREAM_CONFIG_H
#define SLUICE_UPSTREAM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/addr.h"
#include "../core/cfgerr.h"
#include "../core/nidx.h"
#include "../health/health.h"

struct cJSON;

/* upstreams[].tls: connect to the targets over TLS */
struct cfg_upstream_tls {
    char *sni;              /* NULL = the target's host when it is a name */
    bool verify;            /* default true */
    char *ca_file;          /* NULL = the system store */
};

struct cfg_target {
    struct cfg_addr addr;
    uint32_t weight;        /* default 1, 1..1000000 */
};

enum cfg_balance {
    CFG_BAL_ROUND_ROBIN = 0,    /* smooth weighted round robin */
    CFG_BAL_LEAST_REQUEST,      /* fewest in-flight requests (per weight) */
    CFG_BAL_RANDOM_TWO,         /* power of two random choices */
    CFG_BAL_HASH,               /* consistent hash of hash_on */
};

/* upstreams[].hash_on: what balance "hash" hashes */
enum cfg_hash_on {
    CFG_HASH_NONE = 0,          /* balance is not hash */
    CFG_HASH_CLIENT_IP,         /* "client_ip": the client's address */
    CFG_HASH_HEADER,            /* "header:NAME": the first NAME header's value */
    CFG_HASH_COOKIE,            /* "cookie:NAME": the value of cookie NAME */
};

struct cfg_upstream {
    char *name;
    struct cfg_target *targets;
    size_t ntargets;
    enum cfg_balance balance;
    enum cfg_hash_on hash_on;
    char *hash_name;                /* header or cookie NAME of hash_on, else NULL */
    uint32_t hash_name_len;
    uint32_t max_idle_per_target;   /* pool.max_idle_per_target; absent = POOL_FOLLOW_DEMAND */
    uint32_t pool_idle_timeout_ms;  /* pool.idle_timeout_ms, default 60000 */
    uint32_t max_connections;       /* pool.max_connections per target, all workers; 0 = none */
    uint32_t max_queue;             /* pool.max_queue: requests waiting per target, default 1024 */
    uint32_t queue_timeout_ms;      /* pool.queue_timeout_ms, default 5000 */
    uint32_t connect_ms;            /* timeouts.connect_ms, default 1000 */
    uint32_t response_header_ms;    /* timeouts.response_header_ms, default 30000 */
    uint32_t idle_ms;               /* timeouts.idle_ms, default 300000 */
    uint32_t retries;               /* default 1 */
    struct cfg_upstream_tls *tls;   /* NULL = plain */
    struct hc_policy health;        /* health (active probes) and outlier (ejection) */
};

/*
 * The document's "upstreams" member v (of the object at path; NULL =
 * absent, which is fine: no upstreams).  *ups gets *nups upstreams in the
 * arena, and names maps each name to its position (a duplicate is an
 * error and keeps the first).  Every problem is an error in cx.
 */
void up_conf_parse_upstreams(struct cfg_ctx *cx, const struct cJSON *v, const struct jp *path,
                             struct cfg_upstream **ups, size_t *nups, struct nidx *names);

#endif
