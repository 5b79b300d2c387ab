/*
 * index.h - (k8s) the resource index: the objects translate uses, by kind,
 * sorted so that a lookup by namespace and name (or an EndpointSlice by
 * its Service) is a binary search, which keeps 1,000 routes over 5,000
 * Services well under a second.
 *
 * Owns: its pointer arrays (not the objects: the store holds those).
 * May call: k8s/obj, k8s/cond.
 */
#ifndef SLUICE_K8S_INDEX_H
#define SLUICE_K8S_INDEX_H

#include <stddef.h>

struct k8s_obj;
struct k8s_store;
struct k8s_conds;

enum k8s_kind {
    K8S_GATEWAY, K8S_HTTPROUTE, K8S_SERVICE, K8S_ENDPOINTSLICE, K8S_SECRET,
    K8S_REFERENCEGRANT, K8S_NAMESPACE, K8S_NKINDS
};

struct k8s_list {
    const struct k8s_obj **v;
    size_t n, cap;
};

struct k8s_index {
    struct k8s_list by_kind[K8S_NKINDS];
    /* HTTPRoutes in Gateway API precedence order for ties: oldest
     * creationTimestamp first, then namespace/name */
    struct k8s_list routes_ordered;
};

/* Indexes every object of s; a kind translate does not know is a condition
 * (reason UnknownKind) and is otherwise ignored; GatewayClass is known and
 * ignored.  Two objects with the same kind, namespace and name: the later
 * one wins, with a condition. */
void k8s_index_build(struct k8s_index *ix, const struct k8s_store *s, struct k8s_conds *conds);
void k8s_index_free(struct k8s_index *ix);

/* The object of kind k named ns/name, or NULL. */
const struct k8s_obj *k8s_find(const struct k8s_index *ix, enum k8s_kind k, const char *ns,
                               const char *name);
/* The EndpointSlices of Service ns/svc (label kubernetes.io/service-name):
 * sets *first and returns how many. */
size_t k8s_slices_of(const struct k8s_index *ix, const char *ns, const char *svc,
                     const struct k8s_obj *const **first);

#endif
