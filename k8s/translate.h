/*
 * translate.h - (k8s) Gateway API objects to one sluice config document.
 *
 * Owns: nothing after it returns (the document is the caller's).
 * May call: k8s/index, k8s/obj, k8s/cond, k8s/hostname, cJSON.
 * Pure: the same index gives the same document, so part 2 (watch) can call
 * it on objects received from the API server and PUT only what changed.
 */
#ifndef SLUICE_K8S_TRANSLATE_H
#define SLUICE_K8S_TRANSLATE_H

#include <cJSON.h>

struct k8s_index;
struct k8s_conds;

struct k8s_rcache;

struct k8s_opts {
    const char *gateway_class;      /* default "sluice" */
    const char *bind_host;          /* listener address host, default "0.0.0.0" */
    /* sluice-k8s watch: what the last translation made of each HTTPRoute,
     * reused for an HTTPRoute object it saw unchanged when world (a count
     * the caller bumps on any change to an object of another kind) is the
     * same; NULL = translate everything */
    struct k8s_rcache *cache;
    unsigned long world;
};

/* The sluice config document for every Gateway of the class and the
 * HTTPRoutes attached to them.  Problems go to conds; what cannot be
 * expressed in sluice's config is left out with a condition, never
 * emitted as a field sluice would refuse. */
cJSON *k8s_translate(const struct k8s_index *ix, const struct k8s_opts *opt, struct k8s_conds *conds);

/* The cache lends the nodes of the document the last k8s_translate with it
 * returned: a translation with it moves the nodes it reuses out of that
 * document, which the caller deletes afterwards (and keeps alive, unchanged
 * but for lending its arrays, until then).  A caller that drops the last
 * document without translating with the cache again calls k8s_rcache_forget
 * first. */
struct k8s_rcache *k8s_rcache_new(void);
void k8s_rcache_forget(struct k8s_rcache *rc);
void k8s_rcache_free(struct k8s_rcache *rc);
/* After a translation: HTTPRoutes reused, and translated. */
void k8s_rcache_counts(const struct k8s_rcache *rc, size_t *reused, size_t *made);

#endif
