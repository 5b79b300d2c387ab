/*
 * route_config.h - (router) the "routes" section of the configuration
 * document: what a route is, and the parser that checks and builds it.
 *
 * Owns: struct cfg_route and the types it is made of, and every rule a
 * route must follow (match, rewrite, header edits, actions).  May call:
 * core/ (arena, cfgerr/cfgparse, nidx, addr, hdr).  The document
 * (gateway/config.h) holds the routes and hands this module the names
 * routes may refer to; nothing here knows the rest of the document.
 *
 * A parsed route sits in the arena of the config it was parsed for and is
 * never written again: a reload may share it with the configs after.
 */
#ifndef SLUICE_ROUTE_CONFIG_H
#define SLUICE_ROUTE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/cfgerr.h"
#include "../core/nidx.h"

struct cJSON;
struct cfg_mem;
struct pol_route;

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

/* match.json_body: the request body is a JSON object whose top-level
 * string member field equals value (value_len bytes, or starts with them
 * when prefix: the document's value ended in '*'). */
struct cfg_json_match {
    char *field;  uint32_t field_len;
    char *value;  uint32_t value_len;
    bool prefix;
};

struct cfg_backend_ref {
    char *upstream;
    size_t upstream_idx;    /* index into the document's upstreams, resolved by the parser */
    uint32_t weight;        /* default 1; 0 allowed (never chosen) */
};

struct cfg_route {
    char *name;             /* NULL when absent */
    size_t index;           /* position in the document */

    /* match */
    char **listeners;  size_t nlisteners;   /* NULL/0 = all listeners */
    size_t *listener_idx;                    /* resolved indexes into the document's listeners */
    char **hosts;      size_t nhosts;        /* lower-case; "*.example.com" for wildcards; 0 = any */
    enum cfg_path_kind path_kind;
    char *path;        uint32_t path_len;    /* prefix or exact; prefix stored without trailing '/' except "/" */
    char **methods;    size_t nmethods;      /* upper-case as written; 0 = any */
    struct cfg_kv *match_headers; size_t nmatch_headers;   /* exact value match, name lower-case */
    struct cfg_kv *match_query;   size_t nmatch_query;     /* exact name and value, case-sensitive */
    struct cfg_json_match *json_body; size_t njson_body;   /* all must hold */

    /* rewrite */
    enum cfg_rewrite_kind rewrite;
    char *rewrite_path; uint32_t rewrite_path_len;   /* replace_prefix / replace_path value */
    char *rewrite_host;                              /* NULL = keep; lower-case.  May be set
                                                        with rewrite == CFG_RW_NONE (host only) */

    struct cfg_header_edits req_headers;
    struct cfg_header_edits resp_headers;

    /* streaming (SPEC "Streaming and model routing"); 0 = none */
    struct {
        uint32_t first_byte_ms;     /* replaces the upstream's response_header_ms */
        uint32_t idle_ms;           /* longest silence between two pieces of the body */
        uint32_t total_ms;          /* the whole response, from the request's start */
    } timeouts;
    uint32_t sse_heartbeat_ms;      /* a comment line to a silent text/event-stream client */

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

    /* access, auth, rate_limit, token_budget (policy/policy.h); NULL = none */
    struct pol_route *policy;
};

/* What parsing a route reads besides its JSON. */
struct rt_conf_ctx {
    struct cfg_ctx *cx;                 /* errors and the arena */
    const struct nidx *listeners;       /* listener name -> position in the document */
    const struct nidx *upstreams;       /* upstream name -> position */
    struct nidx *route_names;           /* names of the routes parsed so far (duplicates) */
};

/*
 * The document's "routes" member v (of the object at path; NULL = absent,
 * an error: routes are required, though the list may be empty).  *routes
 * gets an array of *nroutes pointers, malloc'ed (the caller frees it),
 * pointing to structs in the arena; route i has index i.  Every problem is
 * an error in rc->cx; the routes are then only fit to be freed.
 */
void rt_conf_parse_routes(struct rt_conf_ctx *rc, const struct cJSON *v, const struct jp *path,
                          struct cfg_route ***routes, size_t *nroutes);

/* One route: the element it at path, position i of the document, into r
 * (zeroed by the caller). */
void rt_conf_parse_route(struct rt_conf_ctx *rc, const struct cJSON *it, const struct jp *path,
                         size_t i, struct cfg_route *r);

/* A deep copy of route s as route i, everything it points to in mem. */
void rt_conf_copy_route(struct cfg_mem **mem, struct cfg_route *d, const struct cfg_route *s,
                        size_t i);

#endif
