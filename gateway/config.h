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
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/socket.h>

struct cfg_addr {
    char *text;             /* as written, e.g. "127.0.0.1:8080", "[::1]:80", "api.internal:8002" */
    char *host;             /* host part without brackets; for a listener, "localhost"
                               becomes "127.0.0.1" and "*" becomes "0.0.0.0" */
    uint16_t port;
    bool is_ip;             /* host is a literal IPv4/IPv6 address (always true for listeners) */
    struct sockaddr_storage sa;  /* valid when is_ip (or after DNS resolution by the caller) */
    socklen_t salen;
};

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

enum cfg_balance { CFG_BAL_ROUND_ROBIN = 0 };

struct cfg_upstream {
    char *name;
    struct cfg_target *targets;
    size_t ntargets;
    enum cfg_balance balance;
    uint32_t max_idle_per_target;   /* pool.max_idle_per_target, default 64 */
    uint32_t pool_idle_timeout_ms;  /* pool.idle_timeout_ms, default 60000 */
    uint32_t connect_ms;            /* timeouts.connect_ms, default 1000 */
    uint32_t response_header_ms;    /* timeouts.response_header_ms, default 30000 */
    uint32_t idle_ms;               /* timeouts.idle_ms, default 300000 */
    uint32_t retries;               /* default 1 */
    struct cfg_upstream_tls *tls;   /* NULL = plain */
};

struct cfg_kv {
    char *name;             /* header names are stored lower-case */
    char *value;
    uint32_t name_len, value_len;
};

struct cfg_header_edits {
    struct cfg_kv *set;  size_t nset;
    struct cfg_kv *add;  size_t nadd;
    struct cfg_kv *remove; size_t nremove;   /* value unused */
};

enum cfg_path_kind { CFG_PATH_ANY = 0, CFG_PATH_PREFIX, CFG_PATH_EXACT };
enum cfg_action { CFG_ACT_BACKENDS = 0, CFG_ACT_REDIRECT, CFG_ACT_RESPOND };
enum cfg_rewrite_kind { CFG_RW_NONE = 0, CFG_RW_STRIP_PREFIX, CFG_RW_REPLACE_PREFIX, CFG_RW_REPLACE_PATH };

struct cfg_backend_ref {
    char *upstream;
    size_t upstream_idx;    /* index into sl_config.upstreams, resolved by cfg_parse */
    uint32_t weight;        /* default 1; 0 allowed (never chosen) */
};

struct cfg_route {
    char *name;             /* NULL when absent */
    size_t index;           /* position in the document */

    /* match */
    char **listeners;  size_t nlisteners;   /* NULL/0 = all listeners */
    size_t *listener_idx;                    /* resolved indexes into sl_config.listeners */
    char **hosts;      size_t nhosts;        /* lower-case; "*.example.com" for wildcards; 0 = any */
    enum cfg_path_kind path_kind;
    char *path;        uint32_t path_len;    /* prefix or exact; prefix stored without trailing '/' except "/" */
    char **methods;    size_t nmethods;      /* upper-case as written; 0 = any */
    struct cfg_kv *match_headers; size_t nmatch_headers;   /* exact value match, name lower-case */
    struct cfg_kv *match_query;   size_t nmatch_query;     /* exact name and value, case-sensitive */

    /* rewrite */
    enum cfg_rewrite_kind rewrite;
    char *rewrite_path; uint32_t rewrite_path_len;   /* replace_prefix / replace_path value */
    char *rewrite_host;                              /* NULL = keep; lower-case.  May be set
                                                        with rewrite == CFG_RW_NONE (host only) */

    struct cfg_header_edits req_headers;
    struct cfg_header_edits resp_headers;

    /* action */
    enum cfg_action action;
    struct cfg_backend_ref *backends; size_t nbackends;
    struct {
        char *scheme;       /* NULL = keep */
        char *host;         /* NULL = keep */
        int port;           /* 0 = default rule (SPEC) */
        char *path;         /* NULL = keep */
        char *replace_prefix; /* NULL unless path is {replace_prefix} */
        int status;         /* default 302 */
    } redirect;
    struct {
        int status;
        char *body;  size_t body_len;       /* NULL/0 = empty */
        char *content_type;                 /* NULL = none given */
    } respond;
};

struct sl_config {
    int workers;                    /* 0 = one per CPU */
    struct cfg_listener *listeners; size_t nlisteners;
    uint32_t max_header_bytes;      /* default 16384, 1024..65536 */
    uint64_t max_body_bytes;        /* 0 = no limit */
    uint32_t max_connections;       /* 0 = no limit (per process) */
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

/* One validation problem. */
struct cfg_error {
    char *path;             /* JSON pointer, e.g. "/routes/2/match/path" ("" = document root) */
    char *message;
};

struct cfg_errors {
    struct cfg_error *v;
    size_t n, cap;
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

/* Called every few routes by cfg_parse() and cfg_parse_update(), so that a
 * caller building a config beside busy threads can give the core back now
 * and then (the proxy's reload.c yields there).  NULL: nothing.  Set before
 * any parse and not changed after. */
extern void (*cfg_pace_hook)(void);

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

/* Append one error (path NULL = ""); the strings are copied.  Aborts on OOM. */
void cfg_errors_add(struct cfg_errors *errs, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Free every entry and the array; errs is then empty and reusable.  A
 * zero-initialised struct cfg_errors needs no other setup. */
void cfg_errors_clear(struct cfg_errors *errs);

/* Parse "host:port" / "[v6]:port" into a (which it zeroes first).  host is
 * an IPv4 literal, a bracketed IPv6 literal, or a DNS name (LDH labels; an
 * all-numeric name must be a valid IPv4 address); port 1..65535.  sa/salen
 * are filled when is_ip.  On success a owns copies (free with
 * cfg_addr_free); on failure a holds nothing and err gets a short message. */
bool cfg_parse_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen);
/* Free a's strings and NULL them; safe on a zeroed or already freed addr. */
void cfg_addr_free(struct cfg_addr *a);

#endif
