/*
 * router.h - the route index, built once per config and then read-only.
 *
 * rt_table_build() indexes the routes of a config: exact hosts in a hash
 * table, wildcard hosts by suffix, then any-host; within each, exact paths in
 * a hash table and prefixes in a hash table keyed by the prefix, probed from
 * the longest segment boundary of the request path down to "/".  Each index
 * slot holds its candidate routes already sorted by the remaining precedence
 * (method match, most header matches, most query matches, document order), so
 * a lookup costs O(host labels + path segments + candidates in the slot), not
 * O(routes).
 *
 * Precedence (SPEC): exact host > wildcard host (longer suffix first) > any
 * host; then exact path > longest prefix; then method match; then most header
 * matches; then most query matches; then document order.  If no candidate of a
 * more specific host matches, less specific hosts are tried.
 *
 * Thread safety: a built table is immutable and may be read by any number of
 * threads at once.  The table points to the routes of the config it was
 * built for; that config must outlive it.  The index itself holds no
 * pointer into any config: it names routes by position and owns copies of
 * its keys, so rt_table_update() can share it between the tables of two
 * configs whose routes index the same way (a reload that changed only what
 * routes do, or only their header values, not where they sit).
 *
 * Owns: the index (struct rt_table) and the route config (route_config.h).
 * May call: core/.  It reads routes as an array and requests as slices
 * (struct rt_request): it knows neither the config document nor the
 * codec.  gateway/config.h has rt_table_build(cfg) and rt_table_update()
 * over a whole document.
 */
#ifndef SLUICE_ROUTER_H
#define SLUICE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "route_config.h"       /* struct cfg_route */
#include "../core/httpmsg.h"    /* struct h1_header */

struct rt_table;

/* What a lookup needs to know about a request.  Strings are not
 * NUL-terminated.  host may carry ":port" and any case; the router strips
 * the port and compares case-insensitively.  query excludes the '?'. */
enum rt_body {
    RT_BODY_NONE = 0,   /* no body (or not JSON-matchable): json_body routes do not match */
    RT_BODY_UNREAD,     /* a body not read yet: a json_body candidate sets *need_body */
    RT_BODY_READY,      /* the whole body is body[0, body_len) */
    RT_BODY_OVER,       /* longer than limits.max_json_match_bytes: no json_body match */
};

struct rt_request {
    size_t listener;                    /* index into the document's listeners */
    const char *method; size_t method_len;
    const char *host;   size_t host_len;    /* NULL/0 = no host */
    const char *path;   size_t path_len;
    const char *query;  size_t query_len;   /* NULL/0 = no query */
    const struct h1_header *headers; size_t nheaders;
    /* match.json_body (SPEC "Streaming and model routing") */
    enum rt_body body_state;
    const char *body;   size_t body_len;
    bool *need_body;    /* may be NULL; set when the route returned needs the body
                           (RT_BODY_UNREAD): read it and call rt_match() again */
};

/* Whether the JSON text body[0, n) is an object whose top-level members
 * satisfy every one of the nm conditions (router/jsonmatch.c): strict
 * RFC 8259 syntax over the whole text, escapes decoded before comparing,
 * a field that appears twice matches nothing. */
bool rt_json_match(const char *body, size_t n, const struct cfg_json_match *m, size_t nm);

/* Build the index of the n routes (routes[i]->index == i).  Returns NULL
 * only on allocation failure.  The routes are only read, and must outlive
 * the table (lookups return them).  A host "*" is treated as any host. */
struct rt_table *rt_table_build_routes(const struct cfg_route *const *routes, size_t n);
/*
 * The table for routes, given prev, the table of prev_routes (a reload).
 * When every route puts the same entries in the index as the route at the
 * same position in prev_routes (same hosts, path, and whether and how many
 * method, header, query and listener conditions it has; the values of the
 * conditions are read at lookup and may differ), the result shares prev's
 * index and *shared is set; otherwise it is rt_table_build_routes().
 * Route i with same[i] == i + 1 is a copy of prev's route i and is not
 * compared (same may be NULL).  prev may be NULL.  Returns NULL only on
 * allocation failure.
 */
struct rt_table *rt_table_update_routes(const struct rt_table *prev,
                                        const struct cfg_route *const *prev_routes, size_t prev_n,
                                        const uint32_t *same,
                                        const struct cfg_route *const *routes, size_t n,
                                        bool *shared);

/* True when a and b share one index (for tests). */
bool rt_table_shares_index(const struct rt_table *a, const struct rt_table *b);

/* Free the table, and its index when no other table shares it; NULL is a
 * no-op.  No lookup on this table may be running. */
void rt_table_free(struct rt_table *t);

/* Find the route for a request, or NULL when none matches (404).
 * Never allocates; reads req only during the call.  Host: ":port" and one
 * trailing '.' are dropped, "[v6]:port" gives "v6" (config hosts may be
 * written with or without brackets), case is ignored.  Path and query are
 * compared raw (no percent-decoding, no dot-segment removal): normalising
 * them is the caller's job, before the lookup. */
const struct cfg_route *rt_match(const struct rt_table *t, const struct rt_request *req);

/*
 * Apply a route's path rewrite to a request path, writing the new path (no
 * query) to out (capacity outcap).  Returns the length written, or -1 if it
 * does not fit.  With CFG_RW_NONE the path is copied unchanged.
 * strip_prefix removes the matched prefix (an empty result becomes "/");
 * replace_prefix swaps the matched prefix for the given one, segment-aware
 * (Gateway API ReplacePrefixMatch: "/v2" + "/x" -> "/v2/x", "/" + "/x" -> "/x");
 * replace_path replaces the whole path.
 * The matched prefix is r's own configured prefix (pass the route rt_match
 * returned for this path); "/" and a route without a path consume nothing,
 * an exact route consumes its whole path, and a path r could not have
 * matched is copied unchanged.  A trailing '/' of the request survives
 * ("/api/" with strip -> "/", with "/v2" -> "/v2/").  out gets a NUL after
 * the path when there is room for it (not counted); it need not.
 */
int rt_rewrite_path(const struct cfg_route *r, const char *path, size_t path_len,
                    char *out, size_t outcap);

#endif
