/*
 * config.h - the configuration document (SPEC "The configuration document").
 *
 * cfg_parse() turns JSON text into an immutable struct sl_config, validating
 * the whole document and collecting every error with its JSON pointer path
 * (e.g. "/routes/2/match/path").  Nothing in a config is modified after
 * parsing; a running proxy shares it read-only between threads.
 *
 * Ownership: everything hanging off a struct sl_config is owned by it and
 * released by cfg_free(), all at once: no member may be freed or
 * reallocated on its own.
 *
 * This module holds the document and its own sections (workers, listeners,
 * limits, timeouts, access log, admin, splice); the sections other modules
 * use are parsed by them: "upstreams" by upstream/upstream_config.h,
 * "routes" by router/route_config.h, with core/cfgparse.h's getters, so
 * every error carries its JSON path.  May call: router/, upstream/, core/.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "../core/addr.h"               /* struct cfg_addr */
struct pol_store;
#include "../core/cfgerr.h"             /* struct cfg_errors, cfg_pace_hook */
#include "../router/route_config.h"     /* struct cfg_route: the "routes" section */
#include "../upstream/upstream_config.h" /* struct cfg_upstream: the "upstreams" section */
#include "../router/router.h"           /* rt_table_*_routes, for the adapters below */

/* One certificate of a TLS listener: from files or inline PEM (exactly one
 * of the two pairs is set). */
struct cfg_cert {
    char *cert_file, *key_file;
    char *cert_pem, *key_pem;
};

enum { CFG_TLS_1_2 = 0, CFG_TLS_1_3 = 1 };

struct cfg_listener_tls {
    struct cfg_cert *certs; size_t ncerts;   /* at least one; the first is the default */
    bool ktls;                  /* ask for kernel TLS (falls back silently) */
    int min_version;            /* CFG_TLS_1_2 (default) or CFG_TLS_1_3 */
    uint32_t handshake_timeout_ms;  /* default 10000 */
    bool session_tickets;       /* default true: stateless resumption */
};

struct cfg_listener {
    char *name;             /* NULL when absent */
    struct cfg_addr addr;
    struct cfg_listener_tls *tls;   /* NULL = plain HTTP */
};

struct sl_config {
    int workers;                    /* 0 = one per CPU */
    struct cfg_listener *listeners; size_t nlisteners;
    uint32_t max_header_bytes;      /* default 16384, 1024..65536 */
    uint64_t max_body_bytes;        /* 0 = no limit */
    uint32_t max_connections;       /* 0 = no limit (per process) */
    uint32_t max_json_match_bytes;  /* routes' match.json_body reads at most this (65536) */
    uint32_t max_rate_limit_keys;   /* the in-process rate_limit/token_budget table (100000) */
    struct pol_store *pstore;       /* rate_limit_store and that table (policy/limit.h); NULL
                                       when no route limits and no store is set */
    uint32_t client_header_ms;      /* default 10000 */
    uint32_t client_idle_ms;        /* default 60000 */
    uint32_t drain_ms;              /* default 10000 */
    char *access_log;               /* "stdout" (default), a file path, or NULL for none */
    bool access_log_json;           /* "access_log_format": "json" (default "text") */
    bool has_admin;                 /* an "admin" section is present */
    struct cfg_addr admin_addr;     /* admin.address */
    char *admin_token;              /* admin.token, NULL = none (loopback only) */
    struct cfg_upstream *upstreams; size_t nupstreams;
    struct cfg_route **routes; size_t nroutes;  /* routes[i]->index == i.  Read-only: a
                                       reload shares the structs of unchanged routes */
    bool splice;                    /* "splice": {"enabled"}, default true */
    uint32_t splice_min_bytes;      /* "splice": {"min_bytes"}: bodies shorter are copied */
    char *dns_servers;              /* "dns": {"servers"} as a c-ares CSV list, NULL = the
                                       system's (resolv.conf) */
    uint32_t dns_timeout_ms;        /* "dns": {"timeout_ms"}: a build's lookups, default 2000 */
    char *source;                   /* the JSON text as given (for GET /config later) */
    struct cfg_shape *shape;        /* where each route's text sits in source, for the
                                       next cfg_parse_update (NULL: not found) */
    size_t routes_reused;           /* routes cfg_parse_update copied from its base */
    uint64_t id;                    /* unique among the configs parsed by this process */
    uint64_t base_id;               /* cfg_parse_update: the id of the base it copied from */
    uint32_t *copied_from;          /* cfg_parse_update: per route, 1 + the index of the
                                       base route it is a copy of, 0 if parsed; or NULL */
    struct cfg_share *share;        /* config.c: whose memory the routes sit in (a reload
                                       shares unchanged routes with the config before) */
    struct cfg_mem *mem;            /* config.c: the arena while parsing; after, the
                                       strings and arrays above live in arenas that
                                       share (refcounted) keeps; cfg_free frees it all */
};

/*
 * Parse and validate a whole document (json need not be NUL-terminated; len
 * bytes are read, and anything but whitespace after the JSON value is an
 * error).  Success is judged only by errors added by this call, so errs may
 * already hold entries; on success returns a config and adds nothing.  On failure returns NULL and errs holds every problem
 * found (at least one).  Fields whose behaviour is not built yet
 * (upstreams[].health, balance other than "round_robin", ...) are errors
 * "not supported yet: <path>".  Certificate files are not read here: the
 * TLS layer (tls.h) loads them and reports problems with the same paths.
 * Unknown fields are errors "unknown field".  Upstream names referenced by
 * routes must exist; listener names referenced must exist; names unique.
 */
struct sl_config *cfg_parse(const char *json, size_t len, struct cfg_errors *errs);
/* Messages are short and fixed where scripts may test them: "unknown field",
 * "duplicate key", "is required", "must be a string" / "an integer" /
 * "an object" / "an array", "not supported yet: <path>".  Invalid JSON is one
 * error at path "" naming line, column and byte offset.  Not thread-safe
 * against other cJSON_Parse callers (cJSON keeps its last error globally). */

/*
 * cfg_parse() for a reload: the same result and the same errors, cheaper
 * when most of the document is unchanged.  If everything outside the
 * "routes" array is byte for byte what base was parsed from, a route whose
 * text is byte for byte the text of one of base's routes is copied from
 * base (it passed the same checks there, against the same upstreams and
 * listeners) and only the others are parsed; the route names are checked
 * for duplicates across all of them.  Any error, or any other difference,
 * and the whole document is parsed by cfg_parse() instead, so error
 * reports never depend on base.  base may be NULL (then this is cfg_parse).
 * The result's routes_reused says how many routes were copied.
 */
struct sl_config *cfg_parse_update(const char *json, size_t len, struct cfg_errors *errs,
                                   const struct sl_config *base);

/* cfg_parse() and cfg_parse_update() call cfg_pace_hook (core/cfgerr.h)
 * every few routes. */

/* True when cfg came from cfg_parse_update() with base and its route i is a
 * copy of base's route j (so equal in every member but index and the
 * memory it sits in).  Configs are told apart by id, not address. */
static inline bool cfg_route_copied(const struct sl_config *cfg, size_t i,
                                    const struct sl_config *base, size_t j)
{
    return cfg->copied_from != NULL && base->id != 0 && cfg->base_id == base->id &&
           i < cfg->nroutes && j < base->nroutes && cfg->copied_from[i] == j + 1;
}

/* Build the config of quick mode (--listen/--backend/--workers): one
 * listener and one upstream, both named "quick", and one catch-all route to
 * that upstream, everything else at its default.  The config's source is
 * the equivalent JSON document.  Returns NULL and adds errors with paths
 * "--listen", "--backend" or "--workers" (every bad value is reported). */
struct sl_config *cfg_quick(const char *listen, const char *const *backends,
                            size_t nbackends, int workers, const char *admin,
                            const char *tls_cert, const char *tls_key,
                            struct cfg_errors *errs);

void cfg_free(struct sl_config *cfg);

/* The route index of a whole document (router.h works on arrays of routes,
 * and knows nothing of the document). */
static inline struct rt_table *rt_table_build(const struct sl_config *cfg)
{
    return rt_table_build_routes((const struct cfg_route *const *)cfg->routes, cfg->nroutes);
}

/* rt_table_update_routes() for a reload from prev_cfg (whose table is
 * prev) to cfg: routes cfg_route_copied() at the same position are not
 * compared. */
static inline struct rt_table *rt_table_update(const struct rt_table *prev,
                                               const struct sl_config *prev_cfg,
                                               const struct sl_config *cfg, bool *shared)
{
    const uint32_t *same = NULL;

    if (prev_cfg == NULL) {
        *shared = false;
        return rt_table_build(cfg);
    }
    if (cfg->copied_from != NULL && prev_cfg->id != 0 && cfg->base_id == prev_cfg->id)
        same = cfg->copied_from;
    return rt_table_update_routes(prev, (const struct cfg_route *const *)prev_cfg->routes,
                                  prev_cfg->nroutes, same,
                                  (const struct cfg_route *const *)cfg->routes, cfg->nroutes, shared);
}

#endif
