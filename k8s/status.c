/*
 * status.c - (k8s) status write-back (see status.h).
 */
#include "status.h"
#include "cond.h"
#include "obj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_GROUP "gateway.networking.k8s.io"

struct acc {
    struct k8s_status_patch *v;
    size_t n;
};

static void add_patch(struct acc *a, const char *plural, const struct k8s_obj *o, cJSON *status)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "status", status);
    char path[1024];
    snprintf(path, sizeof path, "/apis/" GW_GROUP "/v1/namespaces/%s/%s/%s/status", o->ns, plural, o->name);
    struct k8s_status_patch *nv = realloc(a->v, (a->n + 1) * sizeof(*nv));
    char *b = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (nv == NULL || b == NULL) {
        free(b);
        if (nv)
            a->v = nv;
        return;
    }
    a->v = nv;
    a->v[a->n].path = strdup(path);
    a->v[a->n].body = b;
    if (a->v[a->n].path == NULL) {
        free(b);
        return;
    }
    a->n++;
}

static long generation(const struct k8s_obj *o)
{
    long g = 0;
    k8s_int(k8s_get(o->doc, "metadata"), "generation", 0, 1L << 62, &g);
    return g;
}

/* A condition; lastTransitionTime kept from old (a list of conditions) when
 * the type had the same status there. */
static cJSON *cond(const char *type, bool ok, const char *reason, const char *msg, long gen,
                   const cJSON *old, const char *now)
{
    const char *st = ok ? "True" : "False";
    const char *ltt = now;
    const cJSON *e;
    cJSON_ArrayForEach(e, old) {
        if (!strcmp(k8s_str(e, "type", ""), type) && !strcmp(k8s_str(e, "status", ""), st))
            ltt = k8s_str(e, "lastTransitionTime", now);
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "type", type);
    cJSON_AddStringToObject(c, "status", st);
    cJSON_AddStringToObject(c, "reason", reason);
    cJSON_AddStringToObject(c, "message", msg ? msg : "");
    cJSON_AddNumberToObject(c, "observedGeneration", (double)gen);
    cJSON_AddStringToObject(c, "lastTransitionTime", ltt);
    return c;
}

/* The first condition about the object with that type and status (and,
 * with prefix, a message starting with it), or NULL. */
static const struct k8s_cond *find(const struct k8s_conds *cs, const char *kind, const struct k8s_obj *o,
                                   const char *type, const char *status, const char *prefix)
{
    for (size_t i = 0; i < cs->n; i++) {
        const struct k8s_cond *c = &cs->v[i];
        if (!strcmp(c->kind, kind) && !strcmp(c->ns, o->ns) && !strcmp(c->name, o->name) &&
            !strcmp(c->type, type) && !strcmp(c->status, status) &&
            (prefix == NULL || !strncmp(c->message, prefix, strlen(prefix))))
            return c;
    }
    return NULL;
}

/* The condition of type from the translation's findings: the first False
 * one, else True with ok_reason. */
static cJSON *from_conds(const struct k8s_conds *cs, const char *kind, const struct k8s_obj *o,
                         const char *type, const char *ok_reason, const char *prefix, const cJSON *old,
                         const char *now, bool *ok)
{
    const struct k8s_cond *f = find(cs, kind, o, type, "False", prefix);
    *ok = f == NULL;
    return cond(type, f == NULL, f ? f->reason : ok_reason, f ? f->message : "", generation(o), old, now);
}

/* gws: the Gateways of the store (looked up for every parentRef of every
 * route: not a walk of 11,000 objects each time) */
static const struct k8s_obj *our_gateway(const struct k8s_store *gws, const char *cls, const char *ns,
                                         const char *name)
{
    for (size_t i = 0; i < gws->n; i++) {
        const struct k8s_obj *o = &gws->v[i];
        if (!strcmp(o->kind, "Gateway") && !strcmp(o->ns, ns) && !strcmp(o->name, name))
            return strcmp(k8s_str(k8s_get(o->doc, "spec"), "gatewayClassName", ""), cls) == 0 ? o : NULL;
    }
    return NULL;
}

/* The Gateway a parentRef names (ours), or NULL. */
static const struct k8s_obj *ref_gateway(const struct k8s_store *gws, const char *cls, const struct k8s_obj *r,
                                         const cJSON *ref)
{
    if (strcmp(k8s_str(ref, "group", GW_GROUP), GW_GROUP) != 0 || strcmp(k8s_str(ref, "kind", "Gateway"), "Gateway") != 0)
        return NULL;
    const char *name = k8s_str(ref, "name", NULL);
    return name ? our_gateway(gws, cls, k8s_str(ref, "namespace", r->ns), name) : NULL;
}

static void route_status(struct acc *a, const struct k8s_store *gws, const struct k8s_conds *cs,
                         const struct k8s_status_in *in, const struct k8s_obj *r)
{
    const cJSON *old = k8s_get(k8s_get(r->doc, "status"), "parents");
    cJSON *parents = cJSON_CreateArray();
    const cJSON *e, *ref;
    bool ours_before = false, ours_now = false;
    cJSON_ArrayForEach(e, old) {
        if (strcmp(k8s_str(e, "controllerName", ""), K8S_CONTROLLER_NAME) != 0)
            cJSON_AddItemToArray(parents, cJSON_Duplicate(e, true));   /* another controller's */
        else
            ours_before = true;
    }
    bool accepted = find(cs, "HTTPRoute", r, "Accepted", "True", NULL) != NULL;
    cJSON_ArrayForEach(ref, k8s_get(k8s_get(r->doc, "spec"), "parentRefs")) {
        if (ref_gateway(gws, in->gateway_class, r, ref) == NULL)
            continue;
        const cJSON *old_conds = NULL;
        cJSON_ArrayForEach(e, old)
            if (!strcmp(k8s_str(e, "controllerName", ""), K8S_CONTROLLER_NAME) &&
                cJSON_Compare(k8s_get(e, "parentRef"), ref, true))
                old_conds = k8s_get(e, "conditions");
        cJSON *p = cJSON_CreateObject();
        cJSON_AddItemToObject(p, "parentRef", cJSON_Duplicate(ref, true));
        cJSON_AddStringToObject(p, "controllerName", K8S_CONTROLLER_NAME);
        cJSON *conds = cJSON_AddArrayToObject(p, "conditions");
        bool ok;
        if (accepted)
            cJSON_AddItemToArray(conds, cond("Accepted", true, "Accepted", "", generation(r), old_conds, in->now));
        else
            cJSON_AddItemToArray(conds, from_conds(cs, "HTTPRoute", r, "Accepted", "Accepted", NULL, old_conds,
                                                   in->now, &ok));
        cJSON_AddItemToArray(conds, from_conds(cs, "HTTPRoute", r, "ResolvedRefs", "ResolvedRefs", NULL,
                                               old_conds, in->now, &ok));
        cJSON_AddItemToArray(parents, p);
        ours_now = true;
    }
    bool same = old ? cJSON_Compare(old, parents, true) : cJSON_GetArraySize(parents) == 0;
    if ((ours_now || ours_before) && !same) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddItemToObject(s, "parents", parents);
        add_patch(a, "httproutes", r, s);
        return;
    }
    cJSON_Delete(parents);
}

/* Accepted routes attached to gateway gw (and, with section, that listener). */
static long attached(const struct k8s_store *st, const struct k8s_store *gws, const struct k8s_conds *cs,
                     const char *cls, const struct k8s_obj *gw, const char *section)
{
    long n = 0;
    for (size_t i = 0; i < st->n; i++) {
        const struct k8s_obj *r = &st->v[i];
        if (strcmp(r->kind, "HTTPRoute") != 0 || !find(cs, "HTTPRoute", r, "Accepted", "True", NULL))
            continue;
        const cJSON *ref;
        cJSON_ArrayForEach(ref, k8s_get(k8s_get(r->doc, "spec"), "parentRefs")) {
            const char *sec = k8s_str(ref, "sectionName", NULL);
            const struct k8s_obj *g = ref_gateway(gws, cls, r, ref);
            if (g && g->doc == gw->doc && (sec == NULL || !strcmp(sec, section))) {
                n++;
                break;
            }
        }
    }
    return n;
}

static void gateway_status(struct acc *a, const struct k8s_store *st, const struct k8s_store *gws,
                           const struct k8s_conds *cs,
                           const struct k8s_status_in *in, const struct k8s_obj *gw)
{
    const cJSON *old = k8s_get(gw->doc, "status");
    const cJSON *oldc = k8s_get(old, "conditions");
    cJSON *s = cJSON_CreateObject();
    if (in->address && *in->address) {
        cJSON *addrs = cJSON_AddArrayToObject(s, "addresses");
        cJSON *ad = cJSON_CreateObject();
        bool ip = strspn(in->address, "0123456789.") == strlen(in->address) || strchr(in->address, ':');
        cJSON_AddStringToObject(ad, "type", ip ? "IPAddress" : "Hostname");
        cJSON_AddStringToObject(ad, "value", in->address);
        cJSON_AddItemToArray(addrs, ad);
    }
    cJSON *conds = cJSON_AddArrayToObject(s, "conditions");
    bool acc = find(cs, "Gateway", gw, "Accepted", "True", NULL) != NULL;
    const struct k8s_cond *why = acc ? NULL : find(cs, "Gateway", gw, "Accepted", "False", NULL);
    cJSON_AddItemToArray(conds, cond("Accepted", acc, acc ? "Accepted" : why ? why->reason : "Invalid",
                                     why ? why->message : "", generation(gw), oldc, in->now));
    bool prog = acc && in->programmed;
    cJSON_AddItemToArray(conds, cond("Programmed", prog, prog ? "Programmed" : acc ? "Pending" : "Invalid",
                                     prog ? "" : acc ? "the gateway has not applied it yet" : "not accepted",
                                     generation(gw), oldc, in->now));
    cJSON *ls = cJSON_AddArrayToObject(s, "listeners");
    const cJSON *l;
    cJSON_ArrayForEach(l, k8s_get(k8s_get(gw->doc, "spec"), "listeners")) {
        const char *name = k8s_str(l, "name", "");
        const cJSON *oldl = NULL, *e;
        cJSON_ArrayForEach(e, k8s_get(old, "listeners"))
            if (!strcmp(k8s_str(e, "name", ""), name))
                oldl = k8s_get(e, "conditions");
        char prefix[300];
        snprintf(prefix, sizeof prefix, "listener %s:", name);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON *kinds = cJSON_AddArrayToObject(o, "supportedKinds");
        cJSON *k = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "group", GW_GROUP);
        cJSON_AddStringToObject(k, "kind", "HTTPRoute");
        cJSON_AddItemToArray(kinds, k);
        cJSON_AddNumberToObject(o, "attachedRoutes", (double)attached(st, gws, cs, in->gateway_class, gw, name));
        cJSON *lc = cJSON_AddArrayToObject(o, "conditions");
        bool la, lr;
        cJSON_AddItemToArray(lc, from_conds(cs, "Gateway", gw, "Accepted", "Accepted", prefix, oldl, in->now, &la));
        cJSON_AddItemToArray(lc, from_conds(cs, "Gateway", gw, "ResolvedRefs", "ResolvedRefs", prefix, oldl,
                                            in->now, &lr));
        bool lp = la && lr && prog;
        cJSON_AddItemToArray(lc, cond("Programmed", lp, lp ? "Programmed" : "Invalid", "", generation(gw),
                                      oldl, in->now));
        cJSON_AddItemToArray(ls, o);
    }
    /* only the fields written here are compared: another writer's are kept */
    cJSON *cmp = cJSON_CreateObject();
    static const char *const keys[] = { "addresses", "conditions", "listeners" };
    for (size_t i = 0; i < 3; i++) {
        const cJSON *v = k8s_get(old, keys[i]);
        if (v)
            cJSON_AddItemToObject(cmp, keys[i], cJSON_Duplicate(v, true));
    }
    if (cJSON_Compare(cmp, s, true)) {
        cJSON_Delete(s);
    } else {
        if (!k8s_get(s, "addresses") && k8s_get(old, "addresses"))
            cJSON_AddNullToObject(s, "addresses");
        add_patch(a, "gateways", gw, s);
    }
    cJSON_Delete(cmp);
}

size_t k8s_status_compute(const struct k8s_store *st, const struct k8s_conds *conds,
                          const struct k8s_status_in *in, struct k8s_status_patch **out)
{
    struct acc a = { 0 };
    struct k8s_store gws = { 0 };
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->v[i].kind, "Gateway"))
            gws.n++;
    gws.v = malloc((gws.n ? gws.n : 1) * sizeof(*gws.v));
    if (gws.v == NULL) {
        *out = NULL;
        return 0;
    }
    gws.n = 0;
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->v[i].kind, "Gateway"))
            gws.v[gws.n++] = st->v[i];
    for (size_t i = 0; i < st->n; i++) {
        const struct k8s_obj *o = &st->v[i];
        if (!strcmp(o->kind, "HTTPRoute"))
            route_status(&a, &gws, conds, in, o);
        else if (!strcmp(o->kind, "Gateway") &&
                 !strcmp(k8s_str(k8s_get(o->doc, "spec"), "gatewayClassName", ""), in->gateway_class))
            gateway_status(&a, st, &gws, conds, in, o);
    }
    free(gws.v);
    *out = a.v;
    return a.n;
}

void k8s_status_free(struct k8s_status_patch *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].path);
        free(p[i].body);
    }
    free(p);
}
