/*
 * route_config.c - parse and check the routes of a config (route_config.h).
 *
 * Every problem is recorded with its JSON pointer and parsing goes on, so
 * a user fixing a config sees all of its mistakes in one `sluice --check`.
 */
#include "route_config.h"
#include "../core/addr.h"
#include "../core/cfgparse.h"
#include "../core/hdr.h"
#include "../core/check.h"
#include "../policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- syntax checks shared by several fields */

/* ASCII case folding, inline: the process never calls setlocale(). */
static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + ('a' - 'A'));
}

/* lower() of n bytes, eight at a time: ASCII 'A'..'Z' gain 0x20, all
 * other bytes (>= 0x80 too) stay as they are. */
static void lower_n(char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w, x;
        memcpy(&w, s + i, 8);
        x = w & ~highs;
        uint64_t ge_a = x + ones * (0x80 - 'A');
        uint64_t gt_z = x + ones * (0x80 - 'Z' - 1);
        w |= ((ge_a & ~gt_z & ~w) & highs) >> 2;
        memcpy(s + i, &w, 8);
    }
    for (; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] + ('a' - 'A'));
}

static bool is_tchar(unsigned char c)
{
    unsigned char l = c | 0x20;

    if ((c >= '0' && c <= '9') || (l >= 'a' && l <= 'z'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* An HTTP token (RFC 9110 5.6.2): header names and methods. */
static bool valid_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

/* Header values go onto the wire verbatim, so CR/LF would split headers. */
static bool valid_header_value(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* Paths in matches, rewrites and redirects: absolute, no query or fragment
 * (those are not part of what is matched or replaced), nothing that would
 * break a request line. */
static const char *path_problem(const char *p)
{
    if (p[0] != '/')
        return "must start with '/'";
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f)
            return "must not contain spaces or control characters";
        if (c == '?' || c == '#')
            return "must not contain '?' or '#'";
    }
    return NULL;
}

/* Framing, hop-by-hop and Host lines are sluice's own (h1_fwd.h): an edit
 * could frame a message twice or leave it unframed. */
#define MANAGED_HEADER "is written by sluice itself (framing, hop-by-hop and Host headers " \
                       "cannot be edited; use rewrite.host for Host)"

/* ---- match */

/* An array of strings, each checked by check(); entries that failed are
 * left NULL so nothing needs freeing on its own. */
typedef const char *(*str_check_fn)(char *s);

static void str_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                     void *elem, void *arg)
{
    str_check_fn check = *(const str_check_fn *)arg;
    char **out = (char **)elem - i;
    const char *why;
    char *s;

    if (!J_IS_STRING(it)) {
        cfg_errp(cx, path, "must be a string");
        return;
    }
    s = cfg_strdup(cx, it->valuestring);
    if ((why = check(s)) != NULL) {
        cfg_errp(cx, path, "%s", why);
        return;             /* s stays in the arena until the config goes */
    }
    for (size_t j = 0; j < i; j++)
        if (out[j] && strcmp(out[j], s) == 0) {
            cfg_errp(cx, path, "duplicate \"%s\"", s);
            break;
        }
    out[i] = s;
}

static void parse_str_list(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                           const char *key, bool allow_empty, str_check_fn check,
                           char ***out, size_t *nout)
{
    const struct cfg_list spec = {
        .key = key, .elem_size = sizeof(char *), .each = str_elem,
        .if_empty = allow_empty ? NULL : "must not be empty (leave it out instead)" };

    *out = cfg_list(cx, v, path, &spec, nout, &check);
}

static const char *check_listener_name(char *s)
{
    return *s ? NULL : "must not be empty";
}

/* Hosts are matched case-insensitively, so they are stored lower-case. */
static const char *check_match_host(char *s)
{
    const char *rest = s;
    size_t n = strlen(s);

    lower_n(s, n);
    if (memchr(s, ':', n))
        return "a host may not carry a port (ports are ignored when matching)";
    if (s[0] == '*' && s[1] == '\0')
        return "\"*\" alone is not allowed (leave hosts out to match any host)";
    if (s[0] == '*') {
        if (s[1] != '.')
            return "a wildcard host must look like *.example.com";
        rest = s + 2;
    }
    if (memchr(rest, '*', n - (size_t)(rest - s)))
        return "'*' is only allowed as the whole first label, as in *.example.com";
    if (!cfg_valid_hostname(rest))
        return "not a valid host name";
    return NULL;
}

static const char *check_method(char *s)
{
    return valid_token(s) ? NULL : "must be an HTTP method token";
}

/* match.headers / match.query: [{"name", "value"}]; header names are
 * checked as tokens and stored lower-case. */
static void kv_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                    void *elem, void *arg)
{
    static const char *const keys[] = { "name", "value", NULL };
    bool header = *(const bool *)arg;
    struct cfg_kv *kv = elem;
    const cJSON *f[2];
    const char *name = NULL, *value = NULL;
    enum cfg_get rn, rv;

    if (!cfg_check_object(cx, it, path, keys, NULL, f))
        return;
    rn = cfg_get_name(cx, f[0], path, "name", true, &name);
    rv = cfg_get_str(cx, f[1], path, "value", true, &value);
    if (rn == CFG_OK && header && !valid_token(name)) {
        cfg_errp(cx, JP_K(path, "name"), "must be a header name (an HTTP token)");
        rn = CFG_BAD;
    }
    if (rv == CFG_OK && header && !valid_header_value(value)) {
        cfg_errp(cx, JP_K(path, "value"), "must not contain CR or LF");
        rv = CFG_BAD;
    }
    if (rn != CFG_OK || rv != CFG_OK)
        return;
    kv->name = cfg_strdup(cx, name);
    if (header)
        lower(kv->name);
    kv->value = cfg_strdup(cx, value);
    kv->name_len = (uint32_t)strlen(name);
    kv->value_len = (uint32_t)strlen(value);
}

static void parse_kv_list(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                          const char *key, bool header, struct cfg_kv **out, size_t *nout)
{
    const struct cfg_list spec = { .key = key, .elem_size = sizeof(**out), .each = kv_elem };

    *out = cfg_list(cx, v, path, &spec, nout, &header);
}

/* match.json_body: [{"field", "value"}]; a value ending in '*' is a prefix */
static void json_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                      void *elem, void *arg)
{
    static const char *const keys[] = { "field", "value", NULL };
    struct cfg_json_match *m = elem;
    const cJSON *f[2];
    const char *field = NULL, *value = NULL;

    if (!cfg_check_object(cx, it, path, keys, NULL, f))
        return;
    enum cfg_get rf = cfg_get_str(cx, f[0], path, "field", true, &field);
    enum cfg_get rv = cfg_get_str(cx, f[1], path, "value", true, &value);
    if (rf == CFG_OK && (field[0] == '\0' || strlen(field) > 256)) {
        cfg_errp(cx, JP_K(path, "field"), "must be 1 to 256 bytes");
        rf = CFG_BAD;
    }
    if (rv == CFG_OK && strlen(value) > 1024) {
        cfg_errp(cx, JP_K(path, "value"), "must be at most 1024 bytes");
        rv = CFG_BAD;
    }
    if (rf != CFG_OK || rv != CFG_OK)
        return;
    size_t vn = strlen(value);
    m->prefix = vn > 0 && value[vn - 1] == '*';
    if (m->prefix)
        vn--;
    m->field = cfg_strdup(cx, field);
    m->field_len = (uint32_t)strlen(field);
    m->value = cfg_strndup(cx, value, vn);
    m->value_len = (uint32_t)vn;
}

static void parse_match_listeners(struct rt_conf_ctx *rc, const cJSON *v, const struct jp *path,
                                  struct cfg_route *r)
{
    parse_str_list(rc->cx, v, path, "listeners", false, check_listener_name,
                   &r->listeners, &r->nlisteners);
    if (r->nlisteners == 0)
        return;
    r->listener_idx = cfg_calloc(rc->cx, r->nlisteners, sizeof(size_t));
    for (size_t i = 0; i < r->nlisteners; i++) {
        if (r->listeners[i] == NULL)
            continue;
        r->listener_idx[i] = nidx_find(rc->listeners, r->listeners[i]);
        if (r->listener_idx[i] == NOT_FOUND_IDX)
            cfg_errp(rc->cx, JP_I(JP_K(path, "listeners"), i),
                     "unknown listener \"%s\"", r->listeners[i]);
    }
}

static void parse_match_path(struct cfg_ctx *cx, const cJSON *v, const struct jp *p,
                             struct cfg_route *r)
{
    static const char *const path_keys[] = { "prefix", "exact", NULL };
    const cJSON *pf[2];

    if (!cfg_check_object(cx, v, p, path_keys, NULL, pf))
        return;
    const cJSON *pre = pf[0], *ex = pf[1];
    const char *key = pre ? "prefix" : "exact";
    const char *s, *why;

    if ((pre == NULL) == (ex == NULL)) {
        cfg_errp(cx, p, "must have exactly one of prefix, exact");
    } else if (cfg_get_str(cx, pre ? pre : ex, p, key, true, &s) == CFG_OK) {
        if ((why = path_problem(s)) != NULL) {
            cfg_errp(cx, JP_K(p, key), "%s", why);
        } else {
            size_t n = strlen(s);
            /* "/api/" and "/api" select the same segments, and the
             * router probes segment boundaries without the slash. */
            if (pre)
                while (n > 1 && s[n - 1] == '/')
                    n--;
            r->path_kind = pre ? CFG_PATH_PREFIX : CFG_PATH_EXACT;
            r->path = cfg_strndup(cx, s, n);
            r->path_len = (uint32_t)n;
        }
    }
}

static void parse_match(struct rt_conf_ctx *rc, const cJSON *m, const struct jp *path,
                        struct cfg_route *r)
{
    static const char *const keys[] = {
        "listeners", "hosts", "path", "methods", "headers", "query", "json_body", NULL };
    enum { K_LISTENERS, K_HOSTS, K_PATH, K_METHODS, K_HEADERS, K_QUERY, K_JSON };
    struct cfg_ctx *cx = rc->cx;
    const cJSON *f[7];

    if (!cfg_check_object(cx, m, path, keys, NULL, f))
        return;
    parse_match_listeners(rc, f[K_LISTENERS], path, r);
    parse_str_list(cx, f[K_HOSTS], path, "hosts", true, check_match_host, &r->hosts, &r->nhosts);
    if (r->nhosts == 0)
        r->hosts = NULL;
    if (f[K_PATH] != NULL)
        parse_match_path(cx, f[K_PATH], JP_K(path, "path"), r);
    parse_str_list(cx, f[K_METHODS], path, "methods", true, check_method,
                   &r->methods, &r->nmethods);
    if (r->nmethods == 0)
        r->methods = NULL;
    parse_kv_list(cx, f[K_HEADERS], path, "headers", true, &r->match_headers, &r->nmatch_headers);
    parse_kv_list(cx, f[K_QUERY], path, "query", false, &r->match_query, &r->nmatch_query);
    const struct cfg_list js = { .key = "json_body", .elem_size = sizeof(*r->json_body), .each = json_elem };
    r->json_body = cfg_list(cx, f[K_JSON], path, &js, &r->njson_body, NULL);
    if (r->njson_body == 0)
        r->json_body = NULL;
    if (r->njson_body > 16)
        cfg_errp(cx, JP_K(path, "json_body"), "has %zu conditions; at most 16", r->njson_body);
}

/* ---- header edits */

/* A header name that may be edited, or an error at path. */
static bool editable_name(struct cfg_ctx *cx, const char *k, const struct jp *path)
{
    if (!valid_token(k)) {
        cfg_errp(cx, path, "must be a header name (an HTTP token)");
        return false;
    }
    if (hdr_managed(k, strlen(k))) {
        cfg_errp(cx, path, MANAGED_HEADER);
        return false;
    }
    return true;
}

/* set / add: {"Name": "value"}, names unique case-insensitively. */
static void map_elem(struct cfg_ctx *cx, const cJSON *c, const struct jp *path, size_t i,
                     void *elem, void *arg)
{
    struct cfg_kv *out = (struct cfg_kv *)elem - i;
    const char *k = c->string ? c->string : "";
    char *name;

    if (!editable_name(cx, k, path))
        return;
    if (!J_IS_STRING(c)) {
        cfg_errp(cx, path, "must be a string");
        return;
    }
    if (!valid_header_value(c->valuestring)) {
        cfg_errp(cx, path, "must not contain CR or LF");
        return;
    }
    name = cfg_strdup(cx, k);
    lower(name);
    for (size_t j = 0; j < i; j++)
        if (out[j].name && strcmp(out[j].name, name) == 0) {
            cfg_errp(cx, path, "duplicate header name (names are case-insensitive)");
            return;
        }
    out[i].name = name;
    out[i].name_len = (uint32_t)strlen(name);
    out[i].value = cfg_strdup(cx, c->valuestring);
    out[i].value_len = (uint32_t)strlen(c->valuestring);
}

/* remove: ["Name", ...] */
static void remove_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                        void *elem, void *arg)
{
    struct cfg_kv *kv = elem;

    if (!J_IS_STRING(it)) {
        cfg_errp(cx, path, "must be a string");
        return;
    }
    if (!editable_name(cx, it->valuestring, path))
        return;
    kv->name = cfg_strdup(cx, it->valuestring);
    lower(kv->name);
    kv->name_len = (uint32_t)strlen(kv->name);
}

static void parse_header_edits(struct cfg_ctx *cx, const cJSON *obj, const struct jp *path,
                               struct cfg_header_edits *h)
{
    static const char *const keys[] = { "set", "add", "remove", NULL };
    const struct cfg_list set = { .key = "set", .object = true,
                                  .elem_size = sizeof(struct cfg_kv), .each = map_elem };
    const struct cfg_list add = { .key = "add", .object = true,
                                  .elem_size = sizeof(struct cfg_kv), .each = map_elem };
    const struct cfg_list remove = { .key = "remove",
                                     .elem_size = sizeof(struct cfg_kv), .each = remove_elem };
    const cJSON *f[3];

    if (!cfg_check_object(cx, obj, path, keys, NULL, f))
        return;
    h->set = cfg_list(cx, f[0], path, &set, &h->nset, NULL);
    h->add = cfg_list(cx, f[1], path, &add, &h->nadd, NULL);
    h->remove = cfg_list(cx, f[2], path, &remove, &h->nremove, NULL);
}

/* ---- rewrite */

/* rewrite.replace_prefix / replace_path (v, key at path): a path. */
static void parse_rewrite_path(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                               const char *key, enum cfg_rewrite_kind kind, struct cfg_route *r)
{
    const char *s, *why;

    if (cfg_get_str(cx, v, path, key, true, &s) != CFG_OK)
        return;
    if ((why = path_problem(s)) != NULL) {
        cfg_errp(cx, JP_K(path, key), "%s", why);
        return;
    }
    r->rewrite = kind;
    r->rewrite_path = cfg_strdup(cx, s);
    r->rewrite_path_len = (uint32_t)strlen(s);
}

static void parse_rewrite(struct cfg_ctx *cx, const cJSON *obj, const struct jp *path,
                          struct cfg_route *r)
{
    static const char *const keys[] = {
        "strip_prefix", "replace_prefix", "replace_path", "host", NULL };
    const cJSON *f[4];
    const char *s;

    if (!cfg_check_object(cx, obj, path, keys, NULL, f))
        return;
    const cJSON *strip = f[0], *rpre = f[1], *rpath = f[2];
    int nkinds = (strip != NULL) + (rpre != NULL) + (rpath != NULL);
    if (nkinds > 1) {
        cfg_errp(cx, path, "must have only one of strip_prefix, replace_prefix, replace_path");
        return;
    }
    if (nkinds == 0 && f[3] == NULL) {
        cfg_errp(cx, path, "must have one of strip_prefix, replace_prefix, replace_path, host");
        return;
    }
    if (strip) {
        if (!J_IS_BOOL(strip))
            cfg_errp(cx, JP_K(path, "strip_prefix"), "must be a boolean");
        else if (!J_IS_TRUE(strip))
            cfg_errp(cx, JP_K(path, "strip_prefix"), "must be true (leave rewrite out for no rewrite)");
        else
            r->rewrite = CFG_RW_STRIP_PREFIX;
    } else if (rpre) {
        parse_rewrite_path(cx, rpre, path, "replace_prefix", CFG_RW_REPLACE_PREFIX, r);
    } else if (rpath) {
        parse_rewrite_path(cx, rpath, path, "replace_path", CFG_RW_REPLACE_PATH, r);
    }
    if ((strip || rpre) && r->path_kind != CFG_PATH_PREFIX)
        cfg_errp(cx, JP_K(path, strip ? "strip_prefix" : "replace_prefix"),
                 "needs a match.path.prefix to act on");

    if (cfg_get_str(cx, f[3], path, "host", false, &s) == CFG_OK) {
        if (!cfg_valid_hostname(s)) {
            cfg_errp(cx, JP_K(path, "host"), "must be a host name (without a port)");
        } else {
            r->rewrite_host = cfg_strdup(cx, s);
            lower(r->rewrite_host);
        }
    }
}

/* ---- actions */

struct backends_st {
    struct rt_conf_ctx *rc;
    bool any_weight, all_ok;
};

static void backend_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                         void *elem, void *arg)
{
    static const char *const keys[] = { "upstream", "weight", NULL };
    struct backends_st *st = arg;
    struct cfg_backend_ref *b = elem;
    const cJSON *f[2];
    const char *s;

    b->weight = 1;
    b->upstream_idx = NOT_FOUND_IDX;
    if (!cfg_check_object(cx, it, path, keys, NULL, f)) {
        st->all_ok = false;
        return;
    }
    if (cfg_get_name(cx, f[0], path, "upstream", true, &s) == CFG_OK) {
        b->upstream = cfg_strdup(cx, s);
        b->upstream_idx = nidx_find(st->rc->upstreams, s);
        if (b->upstream_idx == NOT_FOUND_IDX)
            cfg_errp(cx, JP_K(path, "upstream"), "unknown upstream \"%s\"", s);
    }
    if (cfg_get_u32(cx, f[1], path, "weight", 0, 1000000, &b->weight) == CFG_BAD)
        st->all_ok = false;
    else if (b->weight > 0)
        st->any_weight = true;
}

/* "backends" (v) of the route at path */
static void parse_backends(struct rt_conf_ctx *rc, const cJSON *v, const struct jp *path,
                           struct cfg_route *r)
{
    const struct cfg_list spec = {
        .key = "backends", .if_empty = "must contain at least one backend",
        .elem_size = sizeof(*r->backends), .each = backend_elem };
    struct backends_st st = { rc, false, true };

    r->backends = cfg_list(rc->cx, v, path, &spec, &r->nbackends, &st);
    if (r->nbackends && st.all_ok && !st.any_weight)
        cfg_errp(rc->cx, JP_K(path, "backends"), "at least one backend needs a weight above 0");
}

/* "upstream" (v) of the route at path: one backend, unless backends gave some. */
static void parse_upstream_ref(struct rt_conf_ctx *rc, const cJSON *v, const struct jp *path,
                               struct cfg_route *r)
{
    const char *s;

    if (cfg_get_name(rc->cx, v, path, "upstream", true, &s) != CFG_OK || r->backends != NULL)
        return;
    r->backends = cfg_calloc(rc->cx, 1, sizeof(*r->backends));
    r->nbackends = 1;
    r->backends[0].upstream = cfg_strdup(rc->cx, s);
    r->backends[0].weight = 1;
    r->backends[0].upstream_idx = nidx_find(rc->upstreams, s);
    if (r->backends[0].upstream_idx == NOT_FOUND_IDX)
        cfg_errp(rc->cx, JP_K(path, "upstream"), "unknown upstream \"%s\"", s);
}

/* redirect.path: a path, or {"replace_prefix": path} */
static void parse_redirect_path(struct cfg_ctx *cx, const cJSON *v, const struct jp *p,
                                struct cfg_route *r)
{
    static const char *const path_keys[] = { "replace_prefix", NULL };
    const struct jp *kp = JP_K(p, "replace_prefix");
    const cJSON *pf[1];
    const char *s, *why;

    if (J_IS_STRING(v)) {
        if ((why = path_problem(v->valuestring)) != NULL)
            cfg_errp(cx, p, "%s", why);
        else
            r->redirect.path = cfg_strdup(cx, v->valuestring);
    } else if (J_IS_OBJECT(v)) {
        cfg_check_object(cx, v, p, path_keys, NULL, pf);
        if (cfg_get_str(cx, pf[0], p, "replace_prefix", true, &s) == CFG_OK) {
            if ((why = path_problem(s)) != NULL)
                cfg_errp(cx, kp, "%s", why);
            else
                r->redirect.replace_prefix = cfg_strdup(cx, s);
            if (r->path_kind != CFG_PATH_PREFIX)
                cfg_errp(cx, kp, "needs a match.path.prefix to act on");
        }
    } else {
        cfg_errp(cx, p, "must be a string or an object {\"replace_prefix\": ...}");
    }
}

static void parse_redirect(struct cfg_ctx *cx, const cJSON *obj, const struct jp *path,
                           struct cfg_route *r)
{
    static const char *const keys[] = { "scheme", "host", "port", "path", "status", NULL };
    enum { K_SCHEME, K_HOST, K_PORT, K_PATH, K_STATUS };
    const cJSON *f[5];
    const char *s;

    r->redirect.status = 302;
    if (!cfg_check_object(cx, obj, path, keys, NULL, f))
        return;
    if (cfg_get_str(cx, f[K_SCHEME], path, "scheme", false, &s) == CFG_OK) {
        if (strcmp(s, "http") != 0 && strcmp(s, "https") != 0)
            cfg_errp(cx, JP_K(path, "scheme"), "must be http or https");
        else
            r->redirect.scheme = cfg_strdup(cx, s);
    }
    if (cfg_get_str(cx, f[K_HOST], path, "host", false, &s) == CFG_OK) {
        if (!cfg_valid_hostname(s)) {
            cfg_errp(cx, JP_K(path, "host"), "must be a host name (give the port in \"port\")");
        } else {
            r->redirect.host = cfg_strdup(cx, s);
            lower(r->redirect.host);
        }
    }
    cfg_get_int(cx, f[K_PORT], path, "port", 1, 65535, &r->redirect.port);
    if (f[K_PATH] != NULL)
        parse_redirect_path(cx, f[K_PATH], JP_K(path, "path"), r);
    if (cfg_get_int(cx, f[K_STATUS], path, "status", 0, 999, &r->redirect.status) != CFG_BAD) {
        int st = r->redirect.status;
        if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308)
            cfg_errp(cx, JP_K(path, "status"), "must be one of 301, 302, 303, 307, 308");
    }
}

static void parse_respond(struct cfg_ctx *cx, const cJSON *obj, const struct jp *path,
                          struct cfg_route *r)
{
    static const char *const keys[] = { "status", "body", "content_type", NULL };
    const cJSON *f[3];
    const char *s;

    if (!cfg_check_object(cx, obj, path, keys, NULL, f))
        return;
    if (f[0] == NULL)
        cfg_errp(cx, JP_K(path, "status"), "is required");
    else
        cfg_get_int(cx, f[0], path, "status", 200, 599, &r->respond.status);
    if (cfg_get_str(cx, f[1], path, "body", false, &s) == CFG_OK) {
        r->respond.body = cfg_strdup(cx, s);
        r->respond.body_len = strlen(s);
    }
    if (cfg_get_str(cx, f[2], path, "content_type", false, &s) == CFG_OK) {
        if (*s == '\0' || !valid_header_value(s))
            cfg_errp(cx, JP_K(path, "content_type"),
                     "must be a non-empty header value without CR or LF");
        else
            r->respond.content_type = cfg_strdup(cx, s);
    }
}

/* ---- a route */

enum { RK_NAME, RK_MATCH, RK_REWRITE, RK_REQH, RK_RESPH,
       RK_BACKENDS, RK_UPSTREAM, RK_REDIRECT, RK_RESPOND, RK_TIMEOUTS, RK_HEARTBEAT,
       RK_ACCESS, RK_AUTH, RK_RATE, RK_BUDGET, RK_NKEYS };

/* timeouts and sse_heartbeat_ms: only for a route that proxies */
static void parse_streaming(struct cfg_ctx *cx, const cJSON *const *f, const struct jp *path,
                            struct cfg_route *r, int nact)
{
    static const char *const keys[] = { "first_byte_ms", "idle_ms", "total_ms", NULL };
    const struct jp *tp = JP_K(path, "timeouts");
    const cJSON *g[3];

    if (f[RK_TIMEOUTS] != NULL && cfg_check_object(cx, f[RK_TIMEOUTS], tp, keys, NULL, g)) {
        cfg_get_u32(cx, g[0], tp, "first_byte_ms", 0, UINT32_MAX, &r->timeouts.first_byte_ms);
        cfg_get_u32(cx, g[1], tp, "idle_ms", 0, UINT32_MAX, &r->timeouts.idle_ms);
        cfg_get_u32(cx, g[2], tp, "total_ms", 0, UINT32_MAX, &r->timeouts.total_ms);
    }
    cfg_get_u32(cx, f[RK_HEARTBEAT], path, "sse_heartbeat_ms", 0, UINT32_MAX, &r->sse_heartbeat_ms);
    if (nact != 1 || r->action == CFG_ACT_BACKENDS)
        return;
    if (f[RK_TIMEOUTS] != NULL)
        cfg_errp(cx, tp, "is only allowed on a route with backends or upstream");
    if (f[RK_HEARTBEAT] != NULL)
        cfg_errp(cx, JP_K(path, "sse_heartbeat_ms"), "is only allowed on a route with backends or upstream");
}

/* Exactly one action; returns how many there are. */
static int count_actions(struct cfg_ctx *cx, const cJSON *const *f, const struct jp *path)
{
    static const char *const actions[] = { "backends", "upstream", "redirect", "respond" };
    const char *found[4];
    int nact = 0;

    for (int a = 0; a < 4; a++)
        if (f[RK_BACKENDS + a])
            found[nact++] = actions[a];
    if (nact == 0)
        cfg_errp(cx, path, "needs an action: one of backends, upstream, redirect, respond");
    else if (nact > 1)
        cfg_errp(cx, path, "has more than one action (%s and %s); keep exactly one",
                 found[0], found[1]);
    return nact;
}

static void parse_actions(struct rt_conf_ctx *rc, const cJSON *const *f, const struct jp *path,
                          struct cfg_route *r)
{
    if (f[RK_BACKENDS] != NULL) {
        r->action = CFG_ACT_BACKENDS;
        parse_backends(rc, f[RK_BACKENDS], path, r);
    }
    if (f[RK_UPSTREAM] != NULL) {
        r->action = CFG_ACT_BACKENDS;
        parse_upstream_ref(rc, f[RK_UPSTREAM], path, r);
    }
    if (f[RK_REDIRECT] != NULL) {
        r->action = CFG_ACT_REDIRECT;
        parse_redirect(rc->cx, f[RK_REDIRECT], JP_K(path, "redirect"), r);
    }
    if (f[RK_RESPOND] != NULL) {
        r->action = CFG_ACT_RESPOND;
        parse_respond(rc->cx, f[RK_RESPOND], JP_K(path, "respond"), r);
    }
}

void rt_conf_parse_route(struct rt_conf_ctx *rc, const cJSON *it, const struct jp *path,
                         size_t i, struct cfg_route *r)
{
    static const char *const keys[RK_NKEYS + 1] = {
        "name", "match", "rewrite", "request_headers", "response_headers",
        "backends", "upstream", "redirect", "respond", "timeouts", "sse_heartbeat_ms",
        "access", "auth", "rate_limit", "token_budget", NULL };
    struct cfg_ctx *cx = rc->cx;
    const cJSON *v, *f[RK_NKEYS];
    const char *s;

    r->index = i;
    if (!cfg_check_object(cx, it, path, keys, NULL, f))
        return;
    if (cfg_get_name(cx, f[RK_NAME], path, "name", false, &s) == CFG_OK) {
        r->name = cfg_strdup(cx, s);
        size_t j = nidx_add(rc->route_names, r->name, i);
        if (j != NOT_FOUND_IDX)
            cfg_errp(cx, JP_K(path, "name"), "duplicate route name \"%s\" (also /routes/%zu)", s, j);
    }
    if ((v = f[RK_MATCH]) != NULL)
        parse_match(rc, v, JP_K(path, "match"), r);
    int nact = count_actions(cx, f, path);
    parse_actions(rc, f, path, r);
    if ((v = f[RK_REWRITE]) != NULL) {
        parse_rewrite(cx, v, JP_K(path, "rewrite"), r);
        if (nact == 1 && r->action != CFG_ACT_BACKENDS)
            cfg_errp(cx, JP_K(path, "rewrite"), "is only allowed on a route with backends or upstream");
    }
    parse_streaming(cx, f, path, r, nact);
    if ((v = f[RK_REQH]) != NULL)
        parse_header_edits(cx, v, JP_K(path, "request_headers"), &r->req_headers);
    if ((v = f[RK_RESPH]) != NULL)
        parse_header_edits(cx, v, JP_K(path, "response_headers"), &r->resp_headers);
    char unnamed[32];
    snprintf(unnamed, sizeof(unnamed), "_%zu", r->index);  /* as the route's metrics call it */
    const struct pol_conf_in pin = { f[RK_ACCESS], f[RK_AUTH], f[RK_RATE], f[RK_BUDGET], rc->upstreams,
                                     r->name ? r->name : unnamed };
    pol_conf_route(cx, &pin, path, &r->policy);
}

/* ---- the routes array */

struct routes_st {
    struct rt_conf_ctx *rc;
    struct cfg_route ***routes;
};

/* the structs in the arena (a reload may share them), the array not */
static void routes_start(struct cfg_ctx *cx, size_t n, void *elems, void *arg)
{
    struct routes_st *st = arg;
    struct cfg_route *block = elems;

    *st->routes = xmalloc((n ? n : 1) * sizeof(**st->routes));
    for (size_t k = 0; k < n; k++)
        (*st->routes)[k] = &block[k];
    nidx_grow(st->rc->route_names, n);
}

static void route_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                       void *elem, void *arg)
{
    struct routes_st *st = arg;

    cfg_pace(i);
    rt_conf_parse_route(st->rc, it, path, i, elem);
}

void rt_conf_parse_routes(struct rt_conf_ctx *rc, const cJSON *v, const struct jp *path,
                          struct cfg_route ***routes, size_t *nroutes)
{
    /* An empty list is allowed: every request then gets a 404. */
    const struct cfg_list spec = {
        .key = "routes", .required = true, .elem_size = sizeof(struct cfg_route),
        .start = routes_start, .each = route_elem };
    struct routes_st st = { rc, routes };

    cfg_list(rc->cx, v, path, &spec, nroutes, &st);
}

/* ---- copies (a reload reusing a route it cannot share) */

static char *dup_or_null(struct cfg_mem **mem, const char *s)
{
    return s ? cm_strdup(mem, s) : NULL;
}

static char *dupn_or_null(struct cfg_mem **mem, const char *s, size_t n)
{
    return s ? cm_strndup(mem, s, n) : NULL;
}

static char **dup_strv(struct cfg_mem **mem, char *const *v, size_t n)
{
    if (v == NULL)
        return NULL;
    char **o = cm_calloc(mem, n ? n : 1, sizeof(*o));
    for (size_t i = 0; i < n; i++)
        o[i] = dup_or_null(mem, v[i]);
    return o;
}

static struct cfg_kv *dup_kv(struct cfg_mem **mem, const struct cfg_kv *v, size_t n)
{
    if (v == NULL)
        return NULL;
    struct cfg_kv *o = cm_calloc(mem, n ? n : 1, sizeof(*o));
    for (size_t i = 0; i < n; i++) {
        o[i] = v[i];
        o[i].name = dupn_or_null(mem, v[i].name, v[i].name_len);
        o[i].value = dupn_or_null(mem, v[i].value, v[i].value_len);
    }
    return o;
}

static void dup_edits(struct cfg_mem **mem, struct cfg_header_edits *d,
                      const struct cfg_header_edits *s)
{
    *d = *s;
    d->set = dup_kv(mem, s->set, s->nset);
    d->add = dup_kv(mem, s->add, s->nadd);
    d->remove = dup_kv(mem, s->remove, s->nremove);
}

/* Every member of struct cfg_route is copied below (scalars such as
 * timeouts and sse_heartbeat_ms by the struct copy): a new member must be
 * added there too, which this reminds whoever changes the struct. */
_Static_assert(sizeof(struct cfg_route) == 400 || sizeof(void *) != 8,
               "struct cfg_route changed: update rt_conf_copy_route()");

static struct cfg_json_match *dup_json(struct cfg_mem **mem, const struct cfg_json_match *v, size_t n)
{
    if (v == NULL)
        return NULL;
    struct cfg_json_match *o = cm_calloc(mem, n ? n : 1, sizeof(*o));
    for (size_t i = 0; i < n; i++) {
        o[i] = v[i];
        o[i].field = dupn_or_null(mem, v[i].field, v[i].field_len);
        o[i].value = dupn_or_null(mem, v[i].value, v[i].value_len);
    }
    return o;
}

static void dup_actions(struct cfg_mem **mem, struct cfg_route *d, const struct cfg_route *s)
{
    if (s->backends) {
        d->backends = cm_calloc(mem, s->nbackends ? s->nbackends : 1, sizeof(*d->backends));
        for (size_t k = 0; k < s->nbackends; k++) {
            d->backends[k] = s->backends[k];
            d->backends[k].upstream = dup_or_null(mem, s->backends[k].upstream);
        }
    }
    d->redirect.scheme = dup_or_null(mem, s->redirect.scheme);
    d->redirect.host = dup_or_null(mem, s->redirect.host);
    d->redirect.path = dup_or_null(mem, s->redirect.path);
    d->redirect.replace_prefix = dup_or_null(mem, s->redirect.replace_prefix);
    d->respond.body = dupn_or_null(mem, s->respond.body, s->respond.body_len);
    d->respond.content_type = dup_or_null(mem, s->respond.content_type);
}

void rt_conf_copy_route(struct cfg_mem **mem, struct cfg_route *d, const struct cfg_route *s,
                        size_t i)
{
    *d = *s;
    d->index = i;
    d->name = dup_or_null(mem, s->name);
    d->listeners = dup_strv(mem, s->listeners, s->nlisteners);
    if (s->listener_idx) {
        d->listener_idx = cm_calloc(mem, s->nlisteners ? s->nlisteners : 1, sizeof(*d->listener_idx));
        memcpy(d->listener_idx, s->listener_idx, s->nlisteners * sizeof(*d->listener_idx));
    }
    d->hosts = dup_strv(mem, s->hosts, s->nhosts);
    d->path = dupn_or_null(mem, s->path, s->path_len);
    d->methods = dup_strv(mem, s->methods, s->nmethods);
    d->match_headers = dup_kv(mem, s->match_headers, s->nmatch_headers);
    d->match_query = dup_kv(mem, s->match_query, s->nmatch_query);
    d->json_body = dup_json(mem, s->json_body, s->njson_body);
    d->rewrite_path = dupn_or_null(mem, s->rewrite_path, s->rewrite_path_len);
    d->rewrite_host = dup_or_null(mem, s->rewrite_host);
    dup_edits(mem, &d->req_headers, &s->req_headers);
    dup_edits(mem, &d->resp_headers, &s->resp_headers);
    dup_actions(mem, d, s);
    /* A route with a policy is never reused by a reload (its files are
     * read again: gateway/config.c reuse_find), so it is never copied. */
    BUG_ON(s->policy != NULL);
}
