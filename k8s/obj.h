/*
 * obj.h - (k8s) the neutral object model: every manifest, whether it came
 * from YAML, JSON or (part 2) the Kubernetes API, is a cJSON tree, and a
 * store holds them with their kind, namespace and name pulled out.
 *
 * Owns: the documents added to it (k8s_store_add; not those it borrows).  May call: cJSON, core/arena.
 */
#ifndef SLUICE_K8S_OBJ_H
#define SLUICE_K8S_OBJ_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

struct k8s_obj {
    const char *kind, *ns, *name;   /* point into doc (ns: "default" when absent,
                                     * "" for cluster-scoped kinds) */
    cJSON *doc;
    const char *src;                /* where it came from, for messages (not owned) */
    const char *svc;                /* an EndpointSlice's kubernetes.io/service-name
                                     * label ("" when absent; NULL for other kinds):
                                     * read once, the index sorts and searches by it */
};

struct k8s_store {
    struct k8s_obj *v;
    size_t n, cap;
    cJSON **docs;                   /* owned roots (a List's items live in it) */
    size_t ndocs, capdocs;
};

struct k8s_conds;

/* Takes doc (any JSON value).  An object with kind/metadata.name becomes an
 * object; a "List" (kind ending in List, with items) adds its items; an
 * array adds each element.  Anything else is reported in conds (kind
 * "File", name src) and skipped.  src must outlive the store. */
void k8s_store_add(struct k8s_store *s, cJSON *doc, const char *src, struct k8s_conds *conds);
/* The same for a document the store does not own: the caller keeps doc
 * alive and unchanged while the store is used (the watcher's objects are
 * borrowed this way rather than copied for every translation). */
void k8s_store_borrow(struct k8s_store *s, cJSON *doc, const char *src, struct k8s_conds *conds);
void k8s_store_free(struct k8s_store *s);

/* o[key] when o is an object, else NULL. */
const cJSON *k8s_get(const cJSON *o, const char *key);
/* o[key] as a string, or dflt when absent or not a string. */
const char *k8s_str(const cJSON *o, const char *key, const char *dflt);
/* o[key] as an integer in [lo, hi]: true and *out set, false when absent,
 * not an integer, or out of range. */
bool k8s_int(const cJSON *o, const char *key, long lo, long hi, long *out);
/* metadata.labels[key] of an object, or NULL. */
const char *k8s_label(const cJSON *doc, const char *key);

#endif
