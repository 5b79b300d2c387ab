/* cfg_equal.h - deep comparison of two parsed configs' routes, for the tests
 * (unit and fuzz) that check cfg_parse_update() against cfg_parse().  Every
 * member of struct cfg_route is compared, pointers by what they point to and
 * by being NULL or not.  Include after config.h; why gets the first
 * difference. */
#ifndef SLUICE_CFG_EQUAL_H
#define SLUICE_CFG_EQUAL_H

#include <stdio.h>
#include <string.h>

static bool ceq_str(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

static bool ceq_mem(const void *a, const void *b, size_t n)
{
    return (a == NULL) == (b == NULL) && (a == NULL || memcmp(a, b, n) == 0);
}

static bool ceq_strv(char *const *a, char *const *b, size_t n)
{
    if ((a == NULL) != (b == NULL))
        return false;
    for (size_t i = 0; a && i < n; i++)
        if (!ceq_str(a[i], b[i]))
            return false;
    return true;
}

static bool ceq_kv(const struct cfg_kv *a, const struct cfg_kv *b, size_t n)
{
    if ((a == NULL) != (b == NULL))
        return false;
    for (size_t i = 0; a && i < n; i++)
        if (!ceq_str(a[i].name, b[i].name) || !ceq_str(a[i].value, b[i].value) ||
            a[i].name_len != b[i].name_len || a[i].value_len != b[i].value_len)
            return false;
    return true;
}

static bool ceq_edits(const struct cfg_header_edits *a, const struct cfg_header_edits *b)
{
    return a->nset == b->nset && a->nadd == b->nadd && a->nremove == b->nremove &&
           ceq_kv(a->set, b->set, a->nset) && ceq_kv(a->add, b->add, a->nadd) &&
           ceq_kv(a->remove, b->remove, a->nremove);
}

static bool ceq_route(const struct cfg_route *a, const struct cfg_route *b)
{
    if (!ceq_str(a->name, b->name) || a->index != b->index ||
        a->nlisteners != b->nlisteners || !ceq_strv(a->listeners, b->listeners, a->nlisteners) ||
        !ceq_mem(a->listener_idx, b->listener_idx, a->nlisteners * sizeof(*a->listener_idx)) ||
        a->nhosts != b->nhosts || !ceq_strv(a->hosts, b->hosts, a->nhosts) ||
        a->path_kind != b->path_kind || a->path_len != b->path_len ||
        !ceq_mem(a->path, b->path, a->path_len) ||
        a->nmethods != b->nmethods || !ceq_strv(a->methods, b->methods, a->nmethods) ||
        a->nmatch_headers != b->nmatch_headers ||
        !ceq_kv(a->match_headers, b->match_headers, a->nmatch_headers) ||
        a->nmatch_query != b->nmatch_query ||
        !ceq_kv(a->match_query, b->match_query, a->nmatch_query) ||
        a->rewrite != b->rewrite || a->rewrite_path_len != b->rewrite_path_len ||
        !ceq_mem(a->rewrite_path, b->rewrite_path, a->rewrite_path_len) ||
        !ceq_str(a->rewrite_host, b->rewrite_host) ||
        !ceq_edits(&a->req_headers, &b->req_headers) ||
        !ceq_edits(&a->resp_headers, &b->resp_headers) ||
        a->njson_body != b->njson_body || (a->json_body == NULL) != (b->json_body == NULL) ||
        a->timeouts.first_byte_ms != b->timeouts.first_byte_ms ||
        a->timeouts.idle_ms != b->timeouts.idle_ms || a->timeouts.total_ms != b->timeouts.total_ms ||
        a->sse_heartbeat_ms != b->sse_heartbeat_ms ||
        a->action != b->action || a->nbackends != b->nbackends ||
        (a->backends == NULL) != (b->backends == NULL))
        return false;
    for (size_t i = 0; a->json_body && i < a->njson_body; i++)
        if (a->json_body[i].prefix != b->json_body[i].prefix ||
            a->json_body[i].field_len != b->json_body[i].field_len ||
            a->json_body[i].value_len != b->json_body[i].value_len ||
            !ceq_mem(a->json_body[i].field, b->json_body[i].field, a->json_body[i].field_len) ||
            !ceq_mem(a->json_body[i].value, b->json_body[i].value, a->json_body[i].value_len))
            return false;
    for (size_t i = 0; a->backends && i < a->nbackends; i++)
        if (!ceq_str(a->backends[i].upstream, b->backends[i].upstream) ||
            a->backends[i].upstream_idx != b->backends[i].upstream_idx ||
            a->backends[i].weight != b->backends[i].weight)
            return false;
    return ceq_str(a->redirect.scheme, b->redirect.scheme) &&
           ceq_str(a->redirect.host, b->redirect.host) && a->redirect.port == b->redirect.port &&
           ceq_str(a->redirect.path, b->redirect.path) &&
           ceq_str(a->redirect.replace_prefix, b->redirect.replace_prefix) &&
           a->redirect.status == b->redirect.status &&
           a->respond.status == b->respond.status && a->respond.body_len == b->respond.body_len &&
           ceq_mem(a->respond.body, b->respond.body, a->respond.body_len) &&
           ceq_str(a->respond.content_type, b->respond.content_type);
}

/* The routes and what routes refer to (listener and upstream counts). */
static bool cfg_routes_equal(const struct sl_config *a, const struct sl_config *b,
                             char *why, size_t n)
{
    if (a->nroutes != b->nroutes || a->nlisteners != b->nlisteners ||
        a->nupstreams != b->nupstreams) {
        snprintf(why, n, "counts differ: %zu/%zu routes", a->nroutes, b->nroutes);
        return false;
    }
    for (size_t i = 0; i < a->nroutes; i++)
        if (!ceq_route(a->routes[i], b->routes[i])) {
            snprintf(why, n, "route %zu differs", i);
            return false;
        }
    return true;
}

#endif
