/*
 * tr.h - (k8s) what the translation's files share: the state of one run.
 *
 * Owns: the listener and upstream tables.  May call: k8s/index, core/nidx.
 * Private to k8s/translate.c, k8s/gateways.c, k8s/backends.c, k8s/routes.c.
 */
#ifndef SLUICE_K8S_TR_H
#define SLUICE_K8S_TR_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "../core/nidx.h"

struct k8s_obj;
struct k8s_index;
struct k8s_opts;
struct k8s_conds;
struct k8s_cond;

/* One listener of one Gateway that translate serves. */
struct tr_glistener {
    const struct k8s_obj *gw;
    const cJSON *spec;              /* the listener object */
    const char *name;
    const char *hostname;           /* NULL = any */
    long port;
    size_t sl;                      /* its sluice listener */
};

/* One sluice listener: every Gateway listener on one port. */
struct tr_slistener {
    long port;
    bool https;
    char name[32];
    cJSON *certs;                   /* array of {cert_pem, key_pem}, or NULL */
    struct nidx cert_keys;          /* "ns/name" of Secrets already in certs */
    char **keys;                    /* owned strings cert_keys points to */
    size_t nkeys;
};

/* The route cache (translate.h): one HTTPRoute's share of a document. */
struct rc_route {
    char *key;                      /* "ns/name" (owned) */
    const cJSON *doc;               /* the HTTPRoute object it was made from */
    cJSON **nodes;                  /* its routes, in the document */
    size_t nnodes;
    char **ups;                     /* upstreams it used, in order (owned) */
    size_t nups;
    struct k8s_cond *conds;         /* its conditions (owned copies) */
    size_t nconds;
};

struct rc_set {
    struct rc_route *v;
    size_t n, cap;
    struct nidx by_key;
    struct nidx ups;                /* upstream name -> its node (uintptr_t) */
    char **up_names;                /* the strings ups points to (owned) */
    size_t nup;
};

struct k8s_rcache {
    bool valid;                     /* old describes the last document */
    unsigned long world;
    cJSON *routes, *upstreams;      /* that document's arrays */
    struct rc_set old, next;
    size_t reused, made;
};

struct tr_ctx {
    const struct k8s_index *ix;
    const struct k8s_opts *opt;
    struct k8s_conds *conds;
    struct tr_glistener *gl;
    size_t ngl;
    struct tr_slistener *sl;
    size_t nsl;
    cJSON *upstreams;               /* the document's "upstreams" array */
    struct nidx up_names;           /* upstream name -> position */
    char **up_keys;
    size_t nup;
    cJSON *routes;                  /* the document's "routes" array */
    struct k8s_rcache *rc;          /* NULL: no cache */
    bool rc_use;                    /* its old set describes this world */
    struct rc_route *rec;           /* the route being made (records its upstreams) */
};

/* gateways.c: fills gl/sl from the Gateways of the class. */
void tr_gateways(struct tr_ctx *t);
/* gateways.c: may ns use a Secret/Service in target_ns (ReferenceGrant)? */
bool tr_granted(const struct tr_ctx *t, const char *from_kind, const char *from_ns,
                const char *to_group, const char *to_kind, const char *to_ns, const char *to_name);

/* backends.c: the upstream for backendRef ref of route, creating it once;
 * NULL when the ref is invalid (reason and message set, for the condition). */
const char *tr_backend(struct tr_ctx *t, const struct k8s_obj *route, const cJSON *ref,
                       const char **reason, char *msg, size_t msglen);
void tr_backends_free(struct tr_ctx *t);
/* backends.c: upstream name, made before (true), or moved from the cached
 * document into this one; false when neither */
bool tr_upstream_reuse(struct tr_ctx *t, const char *name);
/* routes.c: the cache's sets after a translation (old freed, next kept). */
void tr_rcache_end(struct tr_ctx *t);

/* routes.c: every HTTPRoute attached to a served listener becomes routes. */
void tr_routes(struct tr_ctx *t);

#endif
