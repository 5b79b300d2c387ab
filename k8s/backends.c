/*
 * backends.c - (k8s) backendRefs to sluice upstreams: a Service port is
 * resolved to its EndpointSlices' ready endpoints (by port name), or, with
 * no slice, to the Service's cluster DNS name.  One upstream per Service
 * port, however many routes use it.
 */
#include "tr.h"
#include "index.h"
#include "obj.h"
#include "../core/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Service's port object whose port is `port`, or NULL. */
static const cJSON *service_port(const struct k8s_obj *svc, long port)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, k8s_get(k8s_get(svc->doc, "spec"), "ports")) {
        long v;
        if (k8s_int(p, "port", 1, 65535, &v) && v == port)
            return p;
    }
    return NULL;
}

static bool target_seen(const cJSON *targets, const char *addr)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, targets)
        if (strcmp(k8s_str(t, "address", ""), addr) == 0)
            return true;
    return false;
}

/* Addresses of the ready endpoints of the slices for the port named pname. */
static void slice_targets(const struct k8s_obj *const *sl, size_t n, const char *pname,
                          cJSON *targets)
{
    for (size_t i = 0; i < n; i++) {
        const cJSON *doc = sl[i]->doc, *p, *ep;
        const char *atype = k8s_str(doc, "addressType", "IPv4");
        bool v6 = strcmp(atype, "IPv6") == 0;
        long port = -1;
        if (!v6 && strcmp(atype, "IPv4") != 0)
            continue;               /* FQDN slices are not followed */
        cJSON_ArrayForEach(p, k8s_get(doc, "ports")) {
            long v;
            if (strcmp(k8s_str(p, "name", ""), pname) == 0 && k8s_int(p, "port", 1, 65535, &v)) {
                port = v;
                break;
            }
        }
        if (port < 0)
            continue;
        cJSON_ArrayForEach(ep, k8s_get(doc, "endpoints")) {
            const cJSON *cond = k8s_get(ep, "conditions");
            const cJSON *ready = k8s_get(cond, "ready"), *a;
            if (cJSON_IsFalse(ready))
                continue;           /* absent ready means ready (the API's rule) */
            cJSON_ArrayForEach(a, k8s_get(ep, "addresses")) {
                if (!cJSON_IsString(a) || !*a->valuestring || strlen(a->valuestring) > 64 ||
                    strpbrk(a->valuestring, "[]/ ") != NULL || (!v6 && strchr(a->valuestring, ':')))
                    continue;
                char addr[96];
                snprintf(addr, sizeof addr, v6 ? "[%s]:%ld" : "%s:%ld", a->valuestring, port);
                if (target_seen(targets, addr))
                    continue;
                cJSON *t = cJSON_CreateObject();
                cJSON_AddStringToObject(t, "address", addr);
                cJSON_AddItemToArray(targets, t);
            }
        }
    }
}

/* The route being made used upstream name (the route cache replays it). */
static void record(struct tr_ctx *t, const char *name)
{
    struct rc_route *e = t->rec;
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->nups; i++)
        if (strcmp(e->ups[i], name) == 0)
            return;
    if ((e->nups & (e->nups - 1)) == 0)
        e->ups = xrealloc(e->ups, (e->nups ? 2 * e->nups : 1) * sizeof(*e->ups));
    e->ups[e->nups++] = xstrdup(name);
}

static const char *add_upstream(struct tr_ctx *t, const char *key, cJSON *u)
{
    cJSON_AddItemToArray(t->upstreams, u);
    if ((t->nup & (t->nup - 1)) == 0)   /* 0, 1, 2, 4, ...: double */
        t->up_keys = xrealloc(t->up_keys, (t->nup ? 2 * t->nup : 1) * sizeof(*t->up_keys));
    t->up_keys[t->nup] = xstrdup(key);
    nidx_add(&t->up_names, t->up_keys[t->nup], t->nup);
    record(t, key);
    return t->up_keys[t->nup++];
}

bool tr_upstream_reuse(struct tr_ctx *t, const char *name)
{
    size_t at = nidx_find(&t->up_names, name);
    if (at != NOT_FOUND_IDX) {
        record(t, name);
        return true;
    }
    if (!t->rc_use || (at = nidx_find(&t->rc->old.ups, name)) == NOT_FOUND_IDX)
        return false;
    cJSON *u = (cJSON *)(uintptr_t)at;
    add_upstream(t, name, cJSON_DetachItemViaPointer(t->rc->upstreams, u));
    return true;
}

static const char *make_upstream(struct tr_ctx *t, const struct k8s_obj *svc, const cJSON *sp,
                                 long port)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%s:%ld", svc->ns, svc->name, port);
    if (tr_upstream_reuse(t, key))
        return t->up_keys[nidx_find(&t->up_names, key)];

    cJSON *targets = cJSON_CreateArray();
    const struct k8s_obj *const *sl;
    size_t n = k8s_slices_of(t->ix, svc->ns, svc->name, &sl);
    slice_targets(sl, n, k8s_str(sp, "name", ""), targets);
    if (cJSON_GetArraySize(targets) == 0) {
        /* no slice (or none ready): the cluster DNS name, resolved by sluice */
        char addr[600];
        snprintf(addr, sizeof addr, "%s.%s.svc.cluster.local:%ld", svc->name, svc->ns, port);
        cJSON *tg = cJSON_CreateObject();
        cJSON_AddStringToObject(tg, "address", addr);
        cJSON_AddItemToArray(targets, tg);
    }
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "name", key);
    cJSON_AddItemToObject(u, "targets", targets);
    return add_upstream(t, key, u);
}

const char *tr_backend(struct tr_ctx *t, const struct k8s_obj *route, const cJSON *ref,
                       const char **reason, char *msg, size_t msglen)
{
    const char *group = k8s_str(ref, "group", "");
    const char *kind = k8s_str(ref, "kind", "Service");
    const char *name = k8s_str(ref, "name", NULL);
    const char *ns = k8s_str(ref, "namespace", route->ns);
    long port;

    if ((*group && strcmp(group, "core") != 0) || strcmp(kind, "Service") != 0) {
        *reason = "InvalidKind";
        snprintf(msg, msglen, "backendRef %s/%s %s: only core Services are supported", group, kind,
                 name ? name : "");
        return NULL;
    }
    if (name == NULL || !*name) {
        *reason = "BackendNotFound";
        snprintf(msg, msglen, "backendRef without a name");
        return NULL;
    }
    if (strcmp(ns, route->ns) != 0 &&
        !tr_granted(t, "HTTPRoute", route->ns, "", "Service", ns, name)) {
        *reason = "RefNotPermitted";
        snprintf(msg, msglen, "backendRef Service %s/%s is in another namespace and no ReferenceGrant allows it",
                 ns, name);
        return NULL;
    }
    const struct k8s_obj *svc = k8s_find(t->ix, K8S_SERVICE, ns, name);
    if (svc == NULL) {
        *reason = "BackendNotFound";
        snprintf(msg, msglen, "Service %s/%s not found", ns, name);
        return NULL;
    }
    if (!k8s_int(ref, "port", 1, 65535, &port)) {
        *reason = "UnsupportedValue";
        snprintf(msg, msglen, "backendRef Service %s/%s needs a port", ns, name);
        return NULL;
    }
    const cJSON *sp = service_port(svc, port);
    if (sp == NULL) {
        *reason = "BackendNotFound";
        snprintf(msg, msglen, "Service %s/%s has no port %ld", ns, name, port);
        return NULL;
    }
    const char *proto = k8s_str(sp, "appProtocol", "");
    if (strcmp(proto, "kubernetes.io/h2c") == 0 || strcmp(proto, "kubernetes.io/wss") == 0) {
        *reason = "UnsupportedProtocol";
        snprintf(msg, msglen, "Service %s/%s port %ld has appProtocol %s; sluice speaks HTTP/1.1 to upstreams",
                 ns, name, port, proto);
        return NULL;
    }
    return make_upstream(t, svc, sp, port);
}

void tr_backends_free(struct tr_ctx *t)
{
    for (size_t i = 0; i < t->nup; i++)
        free(t->up_keys[i]);
    free(t->up_keys);
    nidx_free(&t->up_names);
}
