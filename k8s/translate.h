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

struct k8s_opts {
    const char *gateway_class;      /* default "sluice" */
    const char *bind_host;          /* listener address host, default "0.0.0.0" */
};

/* The sluice config document for every Gateway of the class and the
 * HTTPRoutes attached to them.  Problems go to conds; what cannot be
 * expressed in sluice's config is left out with a condition, never
 * emitted as a field sluice would refuse. */
cJSON *k8s_translate(const struct k8s_index *ix, const struct k8s_opts *opt, struct k8s_conds *conds);

#endif
