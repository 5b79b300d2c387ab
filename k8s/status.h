/*
 * status.h - (k8s) what sluice-k8s watch writes back to the status
 * subresources: HTTPRoute status.parents (Accepted, ResolvedRefs) for the
 * parents that are Gateways of our class, and Gateway status (Accepted,
 * Programmed, addresses, listeners with attachedRoutes and conditions).
 *
 * Owns: the patches it returns (k8s_status_free).
 * May call: k8s/obj, k8s/cond, cJSON.
 * Pure: it reads the objects (with their current status) and translate's
 * conditions, and returns a merge patch only for an object whose status
 * would change, so writing status back converges (the PATCH's own watch
 * event computes the same status and writes nothing).
 */
#ifndef SLUICE_K8S_STATUS_H
#define SLUICE_K8S_STATUS_H

#include <stdbool.h>
#include <stddef.h>

struct k8s_store;
struct k8s_conds;

#define K8S_CONTROLLER_NAME "sluice.dev/gateway-controller"

struct k8s_status_patch {
    char *path;                     /* .../namespaces/NS/PLURAL/NAME/status */
    char *body;                     /* {"status": {...}} */
};

struct k8s_status_in {
    const char *gateway_class;
    const char *address;            /* the Gateway's address (IP or host name), or NULL */
    bool programmed;                /* the gateway runs this translation */
    const char *now;                /* RFC 3339, for lastTransitionTime */
};

/* The patches to send, in *out (n returned). */
size_t k8s_status_compute(const struct k8s_store *st, const struct k8s_conds *conds,
                          const struct k8s_status_in *in, struct k8s_status_patch **out);
void k8s_status_free(struct k8s_status_patch *p, size_t n);

#endif
