#include "index.h"
#include "cond.h"
#include "obj.h"
#include "../core/arena.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *kind, *group;       /* group "" = core (apiVersion "v1") */
} kind_names[K8S_NKINDS] = {
    [K8S_GATEWAY] = { "Gateway", "gateway.networking.k8s.io" },
    [K8S_HTTPROUTE] = { "HTTPRoute", "gateway.networking.k8s.io" },
    [K8S_SERVICE] = { "Service", "" },
    [K8S_ENDPOINTSLICE] = { "EndpointSlice", "discovery.k8s.io" },
    [K8S_SECRET] = { "Secret", "" },
    [K8S_REFERENCEGRANT] = { "ReferenceGrant", "gateway.networking.k8s.io" },
    [K8S_NAMESPACE] = { "Namespace", "" },
};

/* apiVersion "group/version" names group; "v1" is the core group.  An
 * object without apiVersion is taken by its kind alone. */
static bool group_is(const struct k8s_obj *o, const char *group)
{
    const char *av = k8s_str(o->doc, "apiVersion", NULL);
    if (av == NULL)
        return true;
    const char *slash = strchr(av, '/');
    if (slash == NULL)
        return *group == '\0';
    return strlen(group) == (size_t)(slash - av) && memcmp(av, group, (size_t)(slash - av)) == 0;
}

static void push(struct k8s_list *l, const struct k8s_obj *o)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 32;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = o;
}

static int cmp_nsname(const struct k8s_obj *a, const struct k8s_obj *b)
{
    int c = strcmp(a->ns, b->ns);
    return c ? c : strcmp(a->name, b->name);
}

/* stable: equal keys keep store order (the later one is kept below) */
static int by_nsname(const void *pa, const void *pb)
{
    const struct k8s_obj *a = *(const struct k8s_obj *const *)pa;
    const struct k8s_obj *b = *(const struct k8s_obj *const *)pb;
    int c = cmp_nsname(a, b);
    return c ? c : (a < b ? -1 : a > b);
}

static const char *slice_svc(const struct k8s_obj *o)
{
    return o->svc ? o->svc : "";
}

static int by_service(const void *pa, const void *pb)
{
    const struct k8s_obj *a = *(const struct k8s_obj *const *)pa;
    const struct k8s_obj *b = *(const struct k8s_obj *const *)pb;
    int c = strcmp(a->ns, b->ns);
    if (c == 0)
        c = strcmp(slice_svc(a), slice_svc(b));
    return c ? c : by_nsname(pa, pb);
}

static const char *created(const struct k8s_obj *o)
{
    return k8s_str(k8s_get(o->doc, "metadata"), "creationTimestamp", "");
}

static int by_age(const void *pa, const void *pb)
{
    const struct k8s_obj *a = *(const struct k8s_obj *const *)pa;
    const struct k8s_obj *b = *(const struct k8s_obj *const *)pb;
    int c = strcmp(created(a), created(b));
    return c ? c : cmp_nsname(a, b);
}

/* Sorted by ns/name; of two equal keys the later (in the store) stays. */
static void dedupe(struct k8s_list *l, enum k8s_kind k, struct k8s_conds *conds)
{
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (w > 0 && cmp_nsname(l->v[w - 1], l->v[i]) == 0) {
            k8s_cond_add(conds, kind_names[k].kind, l->v[i]->ns, l->v[i]->name, "Accepted", "False",
                         "Duplicate", "defined twice (%s and %s); the later one is used",
                         l->v[w - 1]->src, l->v[i]->src);
            l->v[w - 1] = l->v[i];
            continue;
        }
        l->v[w++] = l->v[i];
    }
    l->n = w;
}

void k8s_index_build(struct k8s_index *ix, const struct k8s_store *s, struct k8s_conds *conds)
{
    memset(ix, 0, sizeof(*ix));
    for (size_t i = 0; i < s->n; i++) {
        const struct k8s_obj *o = &s->v[i];
        int k;
        for (k = 0; k < K8S_NKINDS; k++)
            if (strcmp(o->kind, kind_names[k].kind) == 0 && group_is(o, kind_names[k].group))
                break;
        if (k == K8S_NKINDS) {
            if (strcmp(o->kind, "GatewayClass") != 0)
                k8s_cond_add(conds, o->kind, o->ns, o->name, "Accepted", "False", "UnknownKind",
                             "%s %s is not a kind translate reads; ignored (from %s)",
                             k8s_str(o->doc, "apiVersion", "(no apiVersion)"), o->kind, o->src);
            continue;
        }
        push(&ix->by_kind[k], o);
    }
    for (int k = 0; k < K8S_NKINDS; k++) {
        struct k8s_list *l = &ix->by_kind[k];
        if (l->n)
            qsort(l->v, l->n, sizeof(*l->v), by_nsname);
        dedupe(l, (enum k8s_kind)k, conds);
        if (k == K8S_ENDPOINTSLICE && l->n)
            qsort(l->v, l->n, sizeof(*l->v), by_service);
    }
    const struct k8s_list *r = &ix->by_kind[K8S_HTTPROUTE];
    for (size_t i = 0; i < r->n; i++)
        push(&ix->routes_ordered, r->v[i]);
    if (r->n)
        qsort(ix->routes_ordered.v, r->n, sizeof(*r->v), by_age);
}

void k8s_index_free(struct k8s_index *ix)
{
    for (int k = 0; k < K8S_NKINDS; k++)
        free(ix->by_kind[k].v);
    free(ix->routes_ordered.v);
    memset(ix, 0, sizeof(*ix));
}

const struct k8s_obj *k8s_find(const struct k8s_index *ix, enum k8s_kind k, const char *ns,
                               const char *name)
{
    const struct k8s_list *l = &ix->by_kind[k];
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->v[mid]->ns, ns);
        if (c == 0)
            c = strcmp(l->v[mid]->name, name);
        if (c == 0)
            return l->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t k8s_slices_of(const struct k8s_index *ix, const char *ns, const char *svc,
                     const struct k8s_obj *const **first)
{
    const struct k8s_list *l = &ix->by_kind[K8S_ENDPOINTSLICE];
    size_t lo = 0, hi = l->n;
    /* the first slice whose (ns, service) is not below (ns, svc) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->v[mid]->ns, ns);
        if (c == 0)
            c = strcmp(slice_svc(l->v[mid]), svc);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < l->n && strcmp(l->v[end]->ns, ns) == 0 && strcmp(slice_svc(l->v[end]), svc) == 0)
        end++;
    *first = l->v + lo;
    return end - lo;
}
