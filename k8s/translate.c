#include "translate.h"
#include "cond.h"
#include "index.h"
#include "tr.h"
#include "../core/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *k8s_translate(const struct k8s_index *ix, const struct k8s_opts *opt, struct k8s_conds *conds)
{
    struct k8s_opts o = *opt;
    if (o.gateway_class == NULL)
        o.gateway_class = "sluice";
    if (o.bind_host == NULL)
        o.bind_host = "0.0.0.0";

    struct tr_ctx t = { .ix = ix, .opt = &o, .conds = conds, .rc = o.cache };
    if (t.rc) {
        t.rc_use = t.rc->valid && t.rc->world == o.world;
        t.rc->reused = t.rc->made = 0;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *listeners = cJSON_AddArrayToObject(doc, "listeners");
    t.upstreams = cJSON_AddArrayToObject(doc, "upstreams");
    t.routes = cJSON_AddArrayToObject(doc, "routes");

    tr_gateways(&t);
    if (t.nsl == 0)
        k8s_cond_add(conds, "GatewayClass", "", o.gateway_class, "Accepted", "False", "NoListeners",
                     "no Gateway of class %s has a listener sluice can serve", o.gateway_class);
    tr_routes(&t);

    for (size_t i = 0; i < t.nsl; i++) {
        struct tr_slistener *s = &t.sl[i];
        char addr[300];
        snprintf(addr, sizeof addr, strchr(o.bind_host, ':') ? "[%s]:%ld" : "%s:%ld", o.bind_host, s->port);
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "name", s->name);
        cJSON_AddStringToObject(l, "address", addr);
        if (s->certs) {
            cJSON *tls = cJSON_AddObjectToObject(l, "tls");
            cJSON_AddItemToObject(tls, "certificates", s->certs);
            s->certs = NULL;
        }
        cJSON_AddItemToArray(listeners, l);
        for (size_t k = 0; k < s->nkeys; k++)
            free(s->keys[k]);
        free(s->keys);
        nidx_free(&s->cert_keys);
    }
    free(t.sl);
    free(t.gl);
    if (t.rc)
        tr_rcache_end(&t);
    tr_backends_free(&t);
    return doc;
}

struct k8s_rcache *k8s_rcache_new(void)
{
    return xcalloc(1, sizeof(struct k8s_rcache));
}

void k8s_rcache_free(struct k8s_rcache *rc)
{
    k8s_rcache_forget(rc);
    free(rc);
}

void k8s_rcache_counts(const struct k8s_rcache *rc, size_t *reused, size_t *made)
{
    *reused = rc->reused;
    *made = rc->made;
}
