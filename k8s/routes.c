/*
 * routes.c - (k8s) HTTPRoutes to sluice routes: parentRefs attach a route
 * to Gateway listeners (sectionName, port, allowedRoutes, hostnames), and
 * each rule x match becomes one sluice route scoped to those listeners and
 * the intersected hostnames.  Routes come out in Gateway API tie-break
 * order (oldest, then namespace/name, then rule and match order), which is
 * sluice's last precedence key (document order).
 */
#include "tr.h"
#include "cond.h"
#include "hostname.h"
#include "index.h"
#include "obj.h"
#include "translate.h"
#include "../core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GW_GROUP "gateway.networking.k8s.io"
#define MAX_HOSTS 64

/* What one route gets on one sluice listener. */
struct attach {
    bool used, any;
    const char *hosts[MAX_HOSTS];
    size_t nhosts;
};

struct rctx {
    struct tr_ctx *t;
    const struct k8s_obj *r;
    struct attach *at;              /* one per sluice listener */
};

__attribute__((format(printf, 4, 5)))
static void rcond(struct rctx *c, const char *type, const char *reason, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    k8s_cond_add(c->t->conds, "HTTPRoute", c->r->ns, c->r->name, type, "False", reason, "%s", msg);
}

/* ---- attachment */

static bool selector_match(const struct tr_ctx *t, const cJSON *sel, const char *ns)
{
    const struct k8s_obj *nso = k8s_find(t->ix, K8S_NAMESPACE, "", ns);
    const cJSON *labels = nso ? k8s_get(k8s_get(nso->doc, "metadata"), "labels") : NULL;
    const cJSON *e;

#define LABEL(k) (strcmp((k), "kubernetes.io/metadata.name") == 0 ? ns : k8s_str(labels, (k), NULL))
    cJSON_ArrayForEach(e, k8s_get(sel, "matchLabels")) {
        const char *v = LABEL(e->string);
        if (!cJSON_IsString(e) || v == NULL || strcmp(v, e->valuestring) != 0)
            return false;
    }
    cJSON_ArrayForEach(e, k8s_get(sel, "matchExpressions")) {
        const char *key = k8s_str(e, "key", "");
        const char *op = k8s_str(e, "operator", "");
        const char *v = LABEL(key);
        bool in = false;
        const cJSON *x;
        cJSON_ArrayForEach(x, k8s_get(e, "values"))
            if (cJSON_IsString(x) && v && strcmp(x->valuestring, v) == 0)
                in = true;
        if (strcmp(op, "In") == 0 ? !in : strcmp(op, "NotIn") == 0 ? in :
            strcmp(op, "Exists") == 0 ? v == NULL : strcmp(op, "DoesNotExist") == 0 ? v != NULL : true)
            return false;
    }
#undef LABEL
    return true;
}

static bool allowed(const struct tr_ctx *t, const struct tr_glistener *g, const char *route_ns)
{
    const cJSON *ar = k8s_get(g->spec, "allowedRoutes");
    const cJSON *nsp = k8s_get(ar, "namespaces");
    const char *from = k8s_str(nsp, "from", "Same");
    const cJSON *kinds = k8s_get(ar, "kinds"), *k;

    if (cJSON_GetArraySize(kinds) > 0) {
        bool ok = false;
        cJSON_ArrayForEach(k, kinds)
            if (strcmp(k8s_str(k, "kind", ""), "HTTPRoute") == 0 &&
                strcmp(k8s_str(k, "group", GW_GROUP), GW_GROUP) == 0)
                ok = true;
        if (!ok)
            return false;
    }
    if (strcmp(from, "All") == 0)
        return true;
    if (strcmp(from, "Selector") == 0)
        return selector_match(t, k8s_get(nsp, "selector"), route_ns);
    return strcmp(from, "Same") == 0 && strcmp(route_ns, g->gw->ns) == 0;
}

static void add_host(struct rctx *c, struct attach *a, const char *h)
{
    for (size_t i = 0; i < a->nhosts; i++)
        if (strcasecmp(a->hosts[i], h) == 0)
            return;
    if (a->nhosts < MAX_HOSTS)
        a->hosts[a->nhosts++] = h;
    else
        rcond(c, "Accepted", "UnsupportedValue", "more than %s hostnames on one port; %.100s is left out",
              "64", h);
}

/* Listener isolation: host x, which the route would get on listener g,
 * belongs to a narrower listener on the same port (requests go to the most
 * specific listener, and only its routes answer them). */
static bool owned_elsewhere(const struct tr_ctx *t, const struct tr_glistener *g, const char *x)
{
    for (size_t i = 0; i < t->ngl; i++) {
        const struct tr_glistener *o = &t->gl[i];
        if (o->sl == g->sl && k8s_host_wider(g->hostname, o->hostname) &&
            (strcasecmp(x, o->hostname) == 0 || k8s_host_wider(o->hostname, x)))
            return true;
    }
    return false;
}

/* Attaches the route to the listeners parentRef ref selects; false (with
 * a condition) when it attaches to none. */
static bool attach_ref(struct rctx *c, const cJSON *ref, const cJSON *hostnames)
{
    struct tr_ctx *t = c->t;
    const char *group = k8s_str(ref, "group", GW_GROUP);
    const char *kind = k8s_str(ref, "kind", "Gateway");
    const char *gname = k8s_str(ref, "name", "");
    const char *gns = k8s_str(ref, "namespace", c->r->ns);
    const char *section = k8s_str(ref, "sectionName", NULL);
    long port = 0;
    bool has_port = k8s_get(ref, "port") != NULL;
    char what[300];

    snprintf(what, sizeof what, "%s/%s", gns, gname);
    if (strcmp(group, GW_GROUP) != 0 || strcmp(kind, "Gateway") != 0) {
        rcond(c, "Accepted", "NoMatchingParent", "parentRef %s of kind %s is not a Gateway", what, kind);
        return false;
    }
    if (has_port && !k8s_int(ref, "port", 1, 65535, &port)) {
        rcond(c, "Accepted", "NoMatchingParent", "parentRef %s: bad port", what);
        return false;
    }
    const struct k8s_obj *gw = k8s_find(t->ix, K8S_GATEWAY, gns, gname);
    if (gw == NULL) {
        rcond(c, "Accepted", "NoMatchingParent", "parentRef Gateway %s not found", what);
        return false;
    }
    if (strcmp(k8s_str(k8s_get(gw->doc, "spec"), "gatewayClassName", ""), t->opt->gateway_class) != 0)
        return false;               /* another controller's Gateway: its status is not ours */
    size_t matched = 0, permitted = 0, attached = 0;
    for (size_t i = 0; i < t->ngl; i++) {
        const struct tr_glistener *g = &t->gl[i];
        if (g->gw != gw || (section && strcmp(section, g->name) != 0) || (has_port && port != g->port))
            continue;
        matched++;
        if (!allowed(t, g, c->r->ns))
            continue;
        permitted++;
        struct attach *a = &c->at[g->sl];
        bool got = false;
        if (cJSON_GetArraySize(hostnames) == 0) {
            if (g->hostname == NULL)
                a->any = true;
            else
                add_host(c, a, g->hostname);
            got = true;
        } else {
            const cJSON *h;
            cJSON_ArrayForEach(h, hostnames) {
                const char *x = k8s_host_intersect(g->hostname, h->valuestring);
                if (x != NULL && !owned_elsewhere(t, g, x)) {
                    add_host(c, a, x);
                    got = true;
                }
            }
        }
        if (got) {
            a->used = true;
            attached++;
        }
    }
    if (matched == 0) {
        rcond(c, "Accepted", "NoMatchingParent", "parentRef %s: no listener of the Gateway matches%s",
              what, section || has_port ? " its sectionName/port" : "");
        return false;
    }
    if (permitted == 0) {
        rcond(c, "Accepted", "NotAllowedByListeners",
              "parentRef %s: the listeners' allowedRoutes do not admit this route", what);
        return false;
    }
    if (attached == 0) {
        rcond(c, "Accepted", "NoMatchingListenerHostname",
              "parentRef %s: no hostname of the route intersects the listeners' hostnames", what);
        return false;
    }
    return true;
}

/* ---- rules */

static bool token_char(int ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

static bool header_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!token_char((unsigned char)*s))
            return false;
    return true;
}

static bool value_ok(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static bool path_ok(const char *s)
{
    if (s[0] != '/')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '?' || *s == '#')
            return false;
    return true;
}

static cJSON *obj_child(cJSON *o, const char *key, bool array)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL) {
        v = array ? cJSON_CreateArray() : cJSON_CreateObject();
        cJSON_AddItemToObject(o, key, v);
    }
    return v;
}

static bool has_name_ci(const cJSON *o, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, o) {
        const char *n = cJSON_IsString(e) && e->string == NULL ? e->valuestring : e->string;
        if (n && strcasecmp(n, name) == 0)
            return true;
    }
    return false;
}

/* A RequestHeaderModifier / ResponseHeaderModifier (m) into *dst, the
 * sluice {"set", "add", "remove"} object. */
static void header_mod(struct rctx *c, const cJSON *m, cJSON **dst)
{
    static const char *const ops[] = { "set", "add", "remove" };
    if (*dst == NULL)
        *dst = cJSON_CreateObject();
    for (int op = 0; op < 3; op++) {
        const cJSON *e;
        cJSON_ArrayForEach(e, k8s_get(m, ops[op])) {
            const char *name = op == 2 ? (cJSON_IsString(e) ? e->valuestring : "") : k8s_str(e, "name", "");
            const char *value = op == 2 ? "" : k8s_str(e, "value", "");
            if (!header_name_ok(name) || !value_ok(value)) {
                rcond(c, "Accepted", "UnsupportedValue",
                      "header modifier %s \"%.100s\": not a valid header name or value", ops[op], name);
                continue;
            }
            cJSON *target = obj_child(*dst, ops[op], op == 2);
            if (has_name_ci(target, name)) {
                rcond(c, "Accepted", "UnsupportedValue",
                      "header modifier %s \"%.100s\" given twice; the first one is used", ops[op], name);
                continue;
            }
            if (op == 2)
                cJSON_AddItemToArray(target, cJSON_CreateString(name));
            else
                cJSON_AddStringToObject(target, name, value);
        }
    }
}

struct rule_out {
    cJSON *req_h, *resp_h, *rewrite, *redirect, *backends;
    uint32_t total_ms;              /* rule timeouts: routes[].timeouts.total_ms (0 = none) */
    bool fail;                      /* answer 500 */
    bool needs_prefix;              /* a ReplacePrefixMatch: only with a PathPrefix match */
};

/* filter.path {type, replaceFullPath | replacePrefixMatch} into o[key]
 * (a string or {"replace_prefix"}), or into rewrite's keys. */
static bool path_mod(struct rctx *c, const cJSON *p, cJSON *o, bool redirect, struct rule_out *ro)
{
    const char *type = k8s_str(p, "type", "");
    const char *v;
    if (strcmp(type, "ReplaceFullPath") == 0 && (v = k8s_str(p, "replaceFullPath", NULL)) && path_ok(v)) {
        cJSON_AddStringToObject(o, redirect ? "path" : "replace_path", v);
        return true;
    }
    if (strcmp(type, "ReplacePrefixMatch") == 0 && (v = k8s_str(p, "replacePrefixMatch", NULL)) && path_ok(v)) {
        ro->needs_prefix = true;
        if (redirect) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "replace_prefix", v);
            cJSON_AddItemToObject(o, "path", x);
        } else {
            cJSON_AddStringToObject(o, "replace_prefix", v);
        }
        return true;
    }
    rcond(c, "Accepted", "UnsupportedValue", "path modifier of type \"%.60s\" is not valid", type);
    return false;
}

static void redirect_filter(struct rctx *c, const cJSON *f, struct rule_out *ro)
{
    const char *scheme = k8s_str(f, "scheme", NULL);
    const char *host = k8s_str(f, "hostname", NULL);
    long port, status = 302;
    cJSON *o = cJSON_CreateObject();

    if (scheme && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        rcond(c, "Accepted", "UnsupportedValue", "redirect scheme \"%.20s\" is not http or https", scheme);
        ro->fail = true;
    }
    if (scheme)
        cJSON_AddStringToObject(o, "scheme", scheme);
    if (host) {
        if (!k8s_host_valid(host) || host[0] == '*') {
            rcond(c, "Accepted", "UnsupportedValue", "redirect hostname \"%.100s\" is not valid", host);
            ro->fail = true;
        }
        cJSON_AddStringToObject(o, "host", host);
    }
    if (k8s_int(f, "port", 1, 65535, &port))
        cJSON_AddNumberToObject(o, "port", (double)port);
    else if (scheme)
        /* a new scheme without a port: its well-known port (Gateway API) */
        cJSON_AddNumberToObject(o, "port", strcmp(scheme, "https") == 0 ? 443 : 80);
    if (k8s_get(f, "path") && !path_mod(c, k8s_get(f, "path"), o, true, ro))
        ro->fail = true;
    if (k8s_get(f, "statusCode") && (!k8s_int(f, "statusCode", 300, 399, &status) ||
        (status != 301 && status != 302 && status != 303 && status != 307 && status != 308))) {
        rcond(c, "Accepted", "UnsupportedValue", "redirect statusCode must be 301, 302, 303, 307 or 308");
        ro->fail = true;
    }
    cJSON_AddNumberToObject(o, "status", (double)status);
    cJSON_Delete(ro->redirect);
    ro->redirect = o;
}

static void rewrite_filter(struct rctx *c, const cJSON *f, struct rule_out *ro)
{
    const char *host = k8s_str(f, "hostname", NULL);
    cJSON *o = cJSON_CreateObject();

    if (k8s_get(f, "path") && !path_mod(c, k8s_get(f, "path"), o, false, ro))
        ro->fail = true;
    if (host) {
        if (!k8s_host_valid(host) || host[0] == '*') {
            rcond(c, "Accepted", "UnsupportedValue", "rewrite hostname \"%.100s\" is not valid", host);
            ro->fail = true;
        }
        cJSON_AddStringToObject(o, "host", host);
    }
    cJSON_Delete(ro->rewrite);
    ro->rewrite = o->child ? o : (cJSON_Delete(o), NULL);
}

static void filters(struct rctx *c, const cJSON *list, struct rule_out *ro, bool backend_level)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, list) {
        const char *type = k8s_str(f, "type", "");
        if (strcmp(type, "RequestHeaderModifier") == 0)
            header_mod(c, k8s_get(f, "requestHeaderModifier"), &ro->req_h);
        else if (strcmp(type, "ResponseHeaderModifier") == 0)
            header_mod(c, k8s_get(f, "responseHeaderModifier"), &ro->resp_h);
        else if (!backend_level && strcmp(type, "RequestRedirect") == 0)
            redirect_filter(c, k8s_get(f, "requestRedirect"), ro);
        else if (!backend_level && strcmp(type, "URLRewrite") == 0)
            rewrite_filter(c, k8s_get(f, "urlRewrite"), ro);
        else {
            rcond(c, "Accepted", "UnsupportedValue",
                  "filter %.60s is not supported%s; the rule answers 500", type,
                  backend_level ? " on a backendRef" : "");
            ro->fail = true;
        }
    }
}

static void backend_refs(struct rctx *c, const cJSON *refs, struct rule_out *ro)
{
    const cJSON *ref;
    int nrefs = cJSON_GetArraySize(refs);
    ro->backends = cJSON_CreateArray();
    cJSON_ArrayForEach(ref, refs) {
        const char *reason;
        char msg[400];
        long w = 1;
        if (k8s_get(ref, "weight") && !k8s_int(ref, "weight", 0, 1000000, &w)) {
            rcond(c, "ResolvedRefs", "UnsupportedValue", "backendRef weight must be 0-1000000");
            continue;
        }
        const char *up = tr_backend(c->t, c->r, ref, &reason, msg, sizeof msg);
        if (up == NULL) {
            rcond(c, "ResolvedRefs", reason, "%s%s", msg,
                  nrefs > 1 ? " (its share of the traffic goes to the other backends)" : "");
            continue;
        }
        if (k8s_get(ref, "filters")) {
            if (nrefs == 1)
                filters(c, k8s_get(ref, "filters"), ro, true);
            else
                rcond(c, "Accepted", "UnsupportedValue",
                      "filters on one of several backendRefs are not supported (%s); ignored", up);
        }
        if (w == 0)
            continue;               /* weight 0 gets nothing */
        cJSON *b, *same = NULL;
        cJSON_ArrayForEach(b, ro->backends)
            if (strcmp(k8s_str(b, "upstream", ""), up) == 0)
                same = b;
        if (same) {
            cJSON *wv = cJSON_GetObjectItemCaseSensitive(same, "weight");
            double sum = wv->valuedouble + (double)w;
            cJSON_SetNumberValue(wv, sum > 1000000 ? 1000000 : sum);   /* sluice's bound */
            continue;
        }
        b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "upstream", up);
        cJSON_AddNumberToObject(b, "weight", (double)w);
        cJSON_AddItemToArray(ro->backends, b);
    }
    if (cJSON_GetArraySize(ro->backends) == 0) {
        cJSON_Delete(ro->backends);
        ro->backends = NULL;
    }
}

static void rule_free(struct rule_out *ro)
{
    cJSON_Delete(ro->req_h);
    cJSON_Delete(ro->resp_h);
    cJSON_Delete(ro->rewrite);
    cJSON_Delete(ro->redirect);
    cJSON_Delete(ro->backends);
}

/* The match object of m (NULL with a condition when sluice cannot express
 * it); *prefix tells whether its path is a prefix. */
static cJSON *match_obj(struct rctx *c, const cJSON *m, bool *prefix)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *p = k8s_get(m, "path"), *e;
    const char *ptype = k8s_str(p, "type", "PathPrefix");
    const char *pval = k8s_str(p, "value", "/");

    *prefix = false;
    if (!path_ok(pval) || (strcmp(ptype, "PathPrefix") != 0 && strcmp(ptype, "Exact") != 0)) {
        rcond(c, "Accepted", "UnsupportedValue", "path match %.40s \"%.100s\" is not supported", ptype, pval);
        goto bad;
    }
    cJSON *po = cJSON_CreateObject();
    if (strcmp(ptype, "Exact") == 0) {
        cJSON_AddStringToObject(po, "exact", pval);
    } else {
        /* sluice prefixes are segment-aware; a trailing '/' adds nothing */
        char buf[2048];
        size_t n = strlen(pval);
        if (n >= sizeof buf) {
            cJSON_Delete(po);
            rcond(c, "Accepted", "UnsupportedValue", "path \"%.100s...\" is too long", pval);
            goto bad;
        }
        memcpy(buf, pval, n + 1);
        while (n > 1 && buf[n - 1] == '/')
            buf[--n] = '\0';
        cJSON_AddStringToObject(po, "prefix", buf);
        *prefix = true;
    }
    cJSON_AddItemToObject(o, "path", po);

    static const char *const kinds[] = { "headers", "queryParams" };
    for (int k = 0; k < 2; k++) {
        cJSON *arr = NULL;
        cJSON_ArrayForEach(e, k8s_get(m, kinds[k])) {
            const char *type = k8s_str(e, "type", "Exact");
            const char *name = k8s_str(e, "name", "");
            const char *value = k8s_str(e, "value", NULL);
            /* header names are tokens; a query name only needs to be non-empty
             * and free of what would split a query string */
            bool name_ok = k ? *name && strpbrk(name, "&=# \r\n") == NULL : header_name_ok(name);
            if (strcmp(type, "Exact") != 0 || value == NULL || !name_ok || !value_ok(value)) {
                rcond(c, "Accepted", "UnsupportedValue", "%s match \"%.100s\" is not supported (Exact matches are)",
                      kinds[k], name);
                goto bad;
            }
            if (arr == NULL)
                arr = obj_child(o, k ? "query" : "headers", true);
            bool dup = false;
            const cJSON *x;
            cJSON_ArrayForEach(x, arr)
                if (k ? strcmp(k8s_str(x, "name", ""), name) == 0 : strcasecmp(k8s_str(x, "name", ""), name) == 0)
                    dup = true;
            if (dup)
                continue;           /* the first one counts (Gateway API) */
            cJSON *kv = cJSON_CreateObject();
            cJSON_AddStringToObject(kv, "name", name);
            cJSON_AddStringToObject(kv, "value", value);
            cJSON_AddItemToArray(arr, kv);
        }
    }
    const char *method = k8s_str(m, "method", NULL);
    if (method) {
        if (!header_name_ok(method)) {
            rcond(c, "Accepted", "UnsupportedValue", "method \"%.40s\" is not valid", method);
            goto bad;
        }
        cJSON *ms = cJSON_AddArrayToObject(o, "methods");
        cJSON_AddItemToArray(ms, cJSON_CreateString(method));
    }
    return o;
bad:
    cJSON_Delete(o);
    return NULL;
}

/* One sluice route: a rule's match on one group of listeners. */
static void emit(struct rctx *c, const struct rule_out *ro, cJSON *match, const char *name,
                 bool prefix)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "name", name);
    cJSON_AddItemToObject(r, "match", match);
    bool fail = ro->fail || (ro->needs_prefix && !prefix);
    if (ro->needs_prefix && !prefix)
        rcond(c, "Accepted", "UnsupportedValue",
              "ReplacePrefixMatch needs a PathPrefix match (%s); it answers 500", name);
    if (fail) {
        cJSON *resp = cJSON_AddObjectToObject(r, "respond");
        cJSON_AddNumberToObject(resp, "status", 500);
    } else if (ro->redirect) {
        cJSON_AddItemToObject(r, "redirect", cJSON_Duplicate(ro->redirect, true));
    } else if (ro->backends) {
        cJSON_AddItemToObject(r, "backends", cJSON_Duplicate(ro->backends, true));
        if (ro->rewrite)
            cJSON_AddItemToObject(r, "rewrite", cJSON_Duplicate(ro->rewrite, true));
        if (ro->req_h)
            cJSON_AddItemToObject(r, "request_headers", cJSON_Duplicate(ro->req_h, true));
        if (ro->total_ms)
            cJSON_AddNumberToObject(cJSON_AddObjectToObject(r, "timeouts"), "total_ms", ro->total_ms);
    } else {
        cJSON *resp = cJSON_AddObjectToObject(r, "respond");
        cJSON_AddNumberToObject(resp, "status", 500);
    }
    if (ro->resp_h && !fail)
        cJSON_AddItemToObject(r, "response_headers", cJSON_Duplicate(ro->resp_h, true));
    cJSON_AddItemToArray(c->t->routes, r);
}

/* Listener groups: sluice listeners with the same host set share routes. */
static bool same_hosts(const struct attach *a, const struct attach *b)
{
    if (a->any != b->any || a->nhosts != b->nhosts)
        return false;
    for (size_t i = 0; i < a->nhosts; i++)
        if (strcmp(a->hosts[i], b->hosts[i]) != 0)
            return false;
    return true;
}

static void scope(struct rctx *c, cJSON *match, size_t lead)
{
    const struct attach *a = &c->at[lead];
    cJSON *ls = cJSON_AddArrayToObject(match, "listeners");
    for (size_t i = lead; i < c->t->nsl; i++)
        if (c->at[i].used && same_hosts(&c->at[i], a))
            cJSON_AddItemToArray(ls, cJSON_CreateString(c->t->sl[i].name));
    if (!a->any) {
        cJSON *hs = cJSON_AddArrayToObject(match, "hosts");
        for (size_t i = 0; i < a->nhosts; i++)
            cJSON_AddItemToArray(hs, cJSON_CreateString(a->hosts[i]));
    }
}

/* A Gateway API Duration (GEP-2257: one to four of 1-5 digits followed by
 * h, m, s or ms, e.g. "1h30m", "500ms", "0s") in milliseconds. */
static bool duration_ms(const char *s, uint64_t *ms)
{
    int parts = 0;
    *ms = 0;
    while (*s) {
        uint64_t v = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 6) {
            v = v * 10 + (uint64_t)(*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 5 || ++parts > 4)
            return false;
        if (s[0] == 'm' && s[1] == 's') {
            s += 2;
        } else if (*s == 'h' || *s == 'm' || *s == 's') {
            v *= *s == 'h' ? 3600000 : *s == 'm' ? 60000 : 1000;
            s++;
        } else {
            return false;
        }
        *ms += v;
    }
    return parts > 0;
}

/* rule.timeouts {request, backendRequest}: sluice bounds a proxied
 * response as a whole (routes[].timeouts.total_ms: 504 before the header,
 * the connection cut after it), the strictest of the two; "0s" = none.
 * sluice does not retry within a rule, so one backend request is the
 * whole request. */
static void rule_timeouts(struct rctx *c, const cJSON *to, struct rule_out *ro)
{
    static const char *const keys[] = { "request", "backendRequest" };
    uint64_t best = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, to) {
        if (e->string == NULL || (strcmp(e->string, keys[0]) != 0 && strcmp(e->string, keys[1]) != 0)) {
            rcond(c, "Accepted", "UnsupportedValue", "rule timeouts.%.60s is not supported; ignored",
                  e->string ? e->string : "?");
            continue;
        }
        uint64_t ms;
        if (!cJSON_IsString(e) || !duration_ms(e->valuestring, &ms)) {
            rcond(c, "Accepted", "UnsupportedValue", "rule timeouts.%s \"%.60s\" is not a duration; ignored",
                  e->string, cJSON_IsString(e) ? e->valuestring : "(not a string)");
            continue;
        }
        if (ms && (best == 0 || ms < best))
            best = ms;
    }
    ro->total_ms = best > UINT32_MAX ? UINT32_MAX : (uint32_t)best;
}

static void rules(struct rctx *c)
{
    const cJSON *spec = k8s_get(c->r->doc, "spec"), *rule;
    size_t ri = 0;
    cJSON_ArrayForEach(rule, k8s_get(spec, "rules")) {
        struct rule_out ro = { 0 };
        static const char *const unsupported[] = { "retry", "sessionPersistence" };
        for (int u = 0; u < 2; u++)
            if (k8s_get(rule, unsupported[u]))
                rcond(c, "Accepted", "UnsupportedValue", "rule field %s is not supported; ignored",
                      unsupported[u]);
        if (k8s_get(rule, "timeouts"))
            rule_timeouts(c, k8s_get(rule, "timeouts"), &ro);
        filters(c, k8s_get(rule, "filters"), &ro, false);
        if (ro.redirect && ro.rewrite) {
            rcond(c, "Accepted", "UnsupportedValue", "RequestRedirect and URLRewrite together");
            ro.fail = true;
        }
        if (!ro.redirect)
            backend_refs(c, k8s_get(rule, "backendRefs"), &ro);
        if (!ro.redirect && !ro.backends && !ro.fail)
        {
            char rn[32];
            snprintf(rn, sizeof rn, "#%zu", ri);
            rcond(c, "ResolvedRefs", "BackendNotFound", "rule %s has no usable backend; it answers 500",
                  k8s_str(rule, "name", rn));
        }

        const cJSON *matches = k8s_get(rule, "matches");
        cJSON *dflt = NULL;
        if (cJSON_GetArraySize(matches) == 0) {
            dflt = cJSON_CreateArray();
            cJSON_AddItemToArray(dflt, cJSON_CreateObject());
            matches = dflt;
        }
        const cJSON *m;
        size_t mi = 0;
        cJSON_ArrayForEach(m, matches) {
            for (size_t lead = 0; lead < c->t->nsl; lead++) {
                if (!c->at[lead].used)
                    continue;
                bool first = true;
                for (size_t j = 0; j < lead; j++)
                    if (c->at[j].used && same_hosts(&c->at[j], &c->at[lead]))
                        first = false;
                if (!first)
                    continue;
                bool prefix;
                cJSON *mo = match_obj(c, m, &prefix);
                if (mo == NULL)
                    break;
                char name[700];
                snprintf(name, sizeof name, "%s/%s#%zu.%zu@%s", c->r->ns, c->r->name, ri, mi,
                         c->t->sl[lead].name);
                scope(c, mo, lead);
                emit(c, &ro, mo, name, prefix);
            }
            mi++;
        }
        cJSON_Delete(dflt);
        rule_free(&ro);
        ri++;
    }
}

static void one_route(struct tr_ctx *t, const struct k8s_obj *r)
{
    const cJSON *spec = k8s_get(r->doc, "spec"), *ref, *h;
    const cJSON *hostnames = k8s_get(spec, "hostnames");
    struct rctx c = { t, r, xcalloc(t->nsl ? t->nsl : 1, sizeof(struct attach)) };
    bool any = false;

    cJSON_ArrayForEach(h, hostnames) {
        if (!cJSON_IsString(h) || !k8s_host_valid(h->valuestring)) {
            rcond(&c, "Accepted", "UnsupportedValue", "hostname \"%.100s\" is not valid; the route is ignored",
                  cJSON_IsString(h) ? h->valuestring : "(not a string)");
            free(c.at);
            return;
        }
    }
    cJSON_ArrayForEach(ref, k8s_get(spec, "parentRefs"))
        any |= attach_ref(&c, ref, hostnames);
    if (any) {
        k8s_cond_add(t->conds, "HTTPRoute", r->ns, r->name, "Accepted", "True", "Accepted",
                     "attached");
        rules(&c);
    }
    free(c.at);
}

/* A listener whose hostname a wider listener on the same port also
 * accepts gets a last-resort 404 route: a request for its hostname that
 * none of its routes match must not fall through (sluice tries wildcard
 * and any-host routes after exact ones) to the wider listener's routes.
 * It comes last in the document, so any of the listener's own routes with
 * the same matches goes first. */
static void isolation_guards(struct tr_ctx *t)
{
    for (size_t i = 0; i < t->ngl; i++) {
        const struct tr_glistener *g = &t->gl[i];
        bool covered = false, dup = false;
        if (g->hostname == NULL)
            continue;
        for (size_t j = 0; j < t->ngl; j++) {
            const struct tr_glistener *o = &t->gl[j];
            if (o->sl != g->sl)
                continue;
            covered |= k8s_host_wider(o->hostname, g->hostname);
            dup |= j < i && o->hostname && strcasecmp(o->hostname, g->hostname) == 0;
        }
        if (!covered || dup)
            continue;
        char name[400];
        snprintf(name, sizeof name, "isolation@%s/%s", t->sl[g->sl].name, g->hostname);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "name", name);
        cJSON *m = cJSON_AddObjectToObject(r, "match");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(m, "listeners"), cJSON_CreateString(t->sl[g->sl].name));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(m, "hosts"), cJSON_CreateString(g->hostname));
        cJSON_AddStringToObject(cJSON_AddObjectToObject(m, "path"), "prefix", "/");
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(r, "respond"), "status", 404);
        cJSON_AddItemToArray(t->routes, r);
    }
}

/* ---- the route cache (translate.h) */

static void rc_route_free(struct rc_route *e)
{
    free(e->key);
    free(e->nodes);
    for (size_t i = 0; i < e->nups; i++)
        free(e->ups[i]);
    free(e->ups);
    struct k8s_conds cs = { e->conds, e->nconds, e->nconds };
    k8s_conds_free(&cs);
}

static void rc_set_free(struct rc_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        rc_route_free(&s->v[i]);
    free(s->v);
    nidx_free(&s->by_key);
    nidx_free(&s->ups);
    for (size_t i = 0; i < s->nup; i++)
        free(s->up_names[i]);
    free(s->up_names);
    memset(s, 0, sizeof(*s));
}

static struct rc_route *rc_new_entry(struct tr_ctx *t, const struct k8s_obj *r)
{
    struct rc_set *s = &t->rc->next;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    struct rc_route *e = &s->v[s->n++];
    memset(e, 0, sizeof(*e));
    e->doc = r->doc;
    return e;
}

/* The routes appended to the document after `after` (NULL: all). */
static void rc_take_nodes(struct tr_ctx *t, struct rc_route *e, cJSON *after)
{
    for (cJSON *n = after ? after->next : t->routes->child; n; n = n->next) {
        if ((e->nnodes & (e->nnodes - 1)) == 0)
            e->nodes = xrealloc(e->nodes, (e->nnodes ? 2 * e->nnodes : 1) * sizeof(*e->nodes));
        e->nodes[e->nnodes++] = n;
    }
}

static void rc_take_conds(struct tr_ctx *t, struct rc_route *e, size_t from)
{
    struct k8s_conds cs = { 0 };
    for (size_t i = from; i < t->conds->n; i++) {
        const struct k8s_cond *c = &t->conds->v[i];
        k8s_cond_add(&cs, c->kind, c->ns, c->name, c->type, c->status, c->reason, "%s", c->message);
    }
    e->conds = cs.v;
    e->nconds = cs.n;
}

/* r as the last translation made it, if it saw this very object and every
 * upstream it used is at hand: its routes, upstreams and conditions move
 * into this document.  False: make it. */
static bool rc_reuse(struct tr_ctx *t, const struct k8s_obj *r, const char *key)
{
    size_t at = nidx_find(&t->rc->old.by_key, key);
    if (at == NOT_FOUND_IDX)
        return false;
    struct rc_route *o = &t->rc->old.v[at];
    if (o->doc != r->doc || o->key == NULL)
        return false;
    for (size_t i = 0; i < o->nups; i++)
        if (nidx_find(&t->up_names, o->ups[i]) == NOT_FOUND_IDX &&
            nidx_find(&t->rc->old.ups, o->ups[i]) == NOT_FOUND_IDX)
            return false;
    struct rc_route *e = rc_new_entry(t, r);
    t->rec = e;
    for (size_t i = 0; i < o->nups; i++)
        tr_upstream_reuse(t, o->ups[i]);
    t->rec = NULL;
    for (size_t i = 0; i < o->nconds; i++) {
        const struct k8s_cond *c = &o->conds[i];
        k8s_cond_add(t->conds, c->kind, c->ns, c->name, c->type, c->status, c->reason, "%s", c->message);
    }
    e->conds = o->conds;            /* the entry moves to the new set */
    e->nconds = o->nconds;
    o->conds = NULL;
    o->nconds = 0;
    for (size_t i = 0; i < o->nnodes; i++)
        cJSON_AddItemToArray(t->routes, cJSON_DetachItemViaPointer(t->rc->routes, o->nodes[i]));
    e->nodes = o->nodes;
    e->nnodes = o->nnodes;
    o->nodes = NULL;
    o->nnodes = 0;
    e->key = o->key;
    o->key = NULL;
    t->rc->reused++;
    return true;
}

static void route_cached(struct tr_ctx *t, const struct k8s_obj *r)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%s", r->ns, r->name);
    if (t->rc_use && rc_reuse(t, r, key))
        return;
    cJSON *last = t->routes->child ? t->routes->child->prev : NULL;
    size_t c0 = t->conds->n;
    struct rc_route *e = rc_new_entry(t, r);
    e->key = xstrdup(key);
    t->rec = e;
    one_route(t, r);
    t->rec = NULL;
    /* e may have moved: one_route adds no entry, but take it anew */
    e = &t->rc->next.v[t->rc->next.n - 1];
    rc_take_nodes(t, e, last);
    rc_take_conds(t, e, c0);
    t->rc->made++;
}

void tr_rcache_end(struct tr_ctx *t)
{
    struct k8s_rcache *rc = t->rc;
    struct rc_set *s = &rc->next;
    nidx_grow(&s->by_key, s->n);
    for (size_t i = 0; i < s->n; i++)
        nidx_add(&s->by_key, s->v[i].key, i);
    const cJSON *u;
    cJSON_ArrayForEach(u, t->upstreams) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(u, "name");
        if (!cJSON_IsString(name))
            continue;
        if ((s->nup & (s->nup - 1)) == 0)
            s->up_names = xrealloc(s->up_names, (s->nup ? 2 * s->nup : 1) * sizeof(*s->up_names));
        s->up_names[s->nup] = xstrdup(name->valuestring);
        nidx_add(&s->ups, s->up_names[s->nup++], (size_t)(uintptr_t)u);
    }
    rc_set_free(&rc->old);
    rc->old = *s;
    memset(s, 0, sizeof(*s));
    rc->routes = t->routes;
    rc->upstreams = t->upstreams;
    rc->world = t->opt->world;
    rc->valid = true;
}

void k8s_rcache_forget(struct k8s_rcache *rc)
{
    if (rc == NULL)
        return;
    rc_set_free(&rc->old);
    rc_set_free(&rc->next);
    rc->valid = false;
    rc->routes = rc->upstreams = NULL;
}

void tr_routes(struct tr_ctx *t)
{
    const struct k8s_list *l = &t->ix->routes_ordered;
    for (size_t i = 0; i < l->n; i++) {
        if (t->rc)
            route_cached(t, l->v[i]);
        else
            one_route(t, l->v[i]);
    }
    isolation_guards(t);
}
