/*
 * gateways.c - (k8s) Gateways of the class to sluice listeners: every
 * Gateway listener on one port shares one sluice listener (routes are then
 * scoped by hostname), HTTPS listeners carry their Secrets' PEM.
 */
#include "tr.h"
#include "cond.h"
#include "hostname.h"
#include "index.h"
#include "obj.h"
#include "translate.h"
#include "../core/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_GROUP "gateway.networking.k8s.io"

static void gw_cond(struct tr_ctx *t, const struct k8s_obj *gw, const char *type,
                    const char *reason, const char *lname, const char *msg)
{
    k8s_cond_add(t->conds, "Gateway", gw->ns, gw->name, type, "False", reason,
                 "listener %s: %s", lname, msg);
}

bool tr_granted(const struct tr_ctx *t, const char *from_kind, const char *from_ns,
                const char *to_group, const char *to_kind, const char *to_ns, const char *to_name)
{
    const struct k8s_list *l = &t->ix->by_kind[K8S_REFERENCEGRANT];
    for (size_t i = 0; i < l->n; i++) {
        const struct k8s_obj *g = l->v[i];
        if (strcmp(g->ns, to_ns) != 0)
            continue;
        const cJSON *spec = k8s_get(g->doc, "spec"), *e;
        bool from_ok = false, to_ok = false;
        cJSON_ArrayForEach(e, k8s_get(spec, "from")) {
            if (strcmp(k8s_str(e, "group", ""), GW_GROUP) == 0 &&
                strcmp(k8s_str(e, "kind", ""), from_kind) == 0 &&
                strcmp(k8s_str(e, "namespace", ""), from_ns) == 0)
                from_ok = true;
        }
        cJSON_ArrayForEach(e, k8s_get(spec, "to")) {
            const char *n = k8s_str(e, "name", NULL);
            if (strcmp(k8s_str(e, "group", ""), to_group) == 0 &&
                strcmp(k8s_str(e, "kind", ""), to_kind) == 0 && (n == NULL || !*n || strcmp(n, to_name) == 0))
                to_ok = true;
        }
        if (from_ok && to_ok)
            return true;
    }
    return false;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* base64 (whitespace ignored) to a NUL-terminated string; NULL when bad */
static char *b64dec(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n / 4 * 3 + 4);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *s; s++) {
        if (*s == '=' )
            break;
        if (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
            continue;
        int v = b64val((unsigned char)*s);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    if (memchr(out, '\0', o) != NULL) {
        free(out);
        return NULL;
    }
    return out;
}

/* data[key] (base64) or stringData[key] of a Secret, decoded; NULL if absent/bad */
static char *secret_field(const cJSON *doc, const char *key)
{
    const char *v = k8s_str(k8s_get(doc, "data"), key, NULL);
    if (v != NULL)
        return b64dec(v);
    v = k8s_str(k8s_get(doc, "stringData"), key, NULL);
    return v ? xstrdup(v) : NULL;
}

/* Adds ref's certificate to sl; false (with a condition) when it cannot. */
static bool add_cert(struct tr_ctx *t, const struct tr_glistener *g, struct tr_slistener *sl,
                     const cJSON *ref)
{
    const struct k8s_obj *gw = g->gw;
    const char *group = k8s_str(ref, "group", "");
    const char *kind = k8s_str(ref, "kind", "Secret");
    const char *name = k8s_str(ref, "name", NULL);
    const char *ns = k8s_str(ref, "namespace", gw->ns);
    char msg[300];

    if ((*group && strcmp(group, "core") != 0) || strcmp(kind, "Secret") != 0 || name == NULL) {
        snprintf(msg, sizeof msg, "certificateRef %s/%s %s: only core Secrets are supported",
                 group, kind, name ? name : "(no name)");
        gw_cond(t, gw, "ResolvedRefs", "InvalidCertificateRef", g->name, msg);
        return false;
    }
    if (strcmp(ns, gw->ns) != 0 && !tr_granted(t, "Gateway", gw->ns, "", "Secret", ns, name)) {
        snprintf(msg, sizeof msg, "Secret %s/%s is in another namespace and no ReferenceGrant allows it",
                 ns, name);
        gw_cond(t, gw, "ResolvedRefs", "RefNotPermitted", g->name, msg);
        return false;
    }
    const struct k8s_obj *sec = k8s_find(t->ix, K8S_SECRET, ns, name);
    if (sec == NULL) {
        snprintf(msg, sizeof msg, "Secret %s/%s not found", ns, name);
        gw_cond(t, gw, "ResolvedRefs", "InvalidCertificateRef", g->name, msg);
        return false;
    }
    char key[512];
    snprintf(key, sizeof key, "%s/%s", ns, name);
    if (nidx_find(&sl->cert_keys, key) != NOT_FOUND_IDX)
        return true;
    const char *type = k8s_str(sec->doc, "type", "");
    char *crt = secret_field(sec->doc, "tls.crt"), *pk = secret_field(sec->doc, "tls.key");
    if (strcmp(type, "kubernetes.io/tls") != 0 || crt == NULL || pk == NULL ||
        strstr(crt, "-----BEGIN") == NULL || strstr(pk, "-----BEGIN") == NULL) {
        snprintf(msg, sizeof msg, "Secret %s/%s is not a kubernetes.io/tls Secret with PEM tls.crt and tls.key",
                 ns, name);
        gw_cond(t, gw, "ResolvedRefs", "InvalidCertificateRef", g->name, msg);
        free(crt);
        free(pk);
        return false;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "cert_pem", crt);
    cJSON_AddStringToObject(c, "key_pem", pk);
    free(crt);
    free(pk);
    if (sl->certs == NULL)
        sl->certs = cJSON_CreateArray();
    cJSON_AddItemToArray(sl->certs, c);
    sl->keys = xrealloc(sl->keys, (sl->nkeys + 1) * sizeof(*sl->keys));
    sl->keys[sl->nkeys] = xstrdup(key);
    nidx_add(&sl->cert_keys, sl->keys[sl->nkeys], sl->nkeys);
    sl->nkeys++;
    return true;
}

static size_t slistener(struct tr_ctx *t, long port, bool https)
{
    for (size_t i = 0; i < t->nsl; i++)
        if (t->sl[i].port == port)
            return i;
    t->sl = xrealloc(t->sl, (t->nsl + 1) * sizeof(*t->sl));
    struct tr_slistener *s = &t->sl[t->nsl];
    memset(s, 0, sizeof(*s));
    s->port = port;
    s->https = https;
    snprintf(s->name, sizeof s->name, "%s-%ld", https ? "https" : "http", port);
    return t->nsl++;
}

static void one_listener(struct tr_ctx *t, const struct k8s_obj *gw, const cJSON *l, size_t idx)
{
    char lname_buf[32];
    const char *lname = k8s_str(l, "name", NULL);
    const char *proto = k8s_str(l, "protocol", "");
    const char *host = k8s_str(l, "hostname", NULL);
    long port;
    char msg[300];

    if (lname == NULL) {
        snprintf(lname_buf, sizeof lname_buf, "#%zu", idx);
        lname = lname_buf;
    }
    if (!k8s_int(l, "port", 1, 65535, &port)) {
        gw_cond(t, gw, "Accepted", "UnsupportedValue", lname, "port must be an integer 1-65535");
        return;
    }
    bool https = strcmp(proto, "HTTPS") == 0;
    if (!https && strcmp(proto, "HTTP") != 0) {
        snprintf(msg, sizeof msg, "protocol \"%s\" is not supported (HTTP and HTTPS are)", proto);
        gw_cond(t, gw, "Accepted", "UnsupportedProtocol", lname, msg);
        return;
    }
    if (host != NULL && !k8s_host_valid(host)) {
        snprintf(msg, sizeof msg, "hostname \"%s\" is not a valid hostname", host);
        gw_cond(t, gw, "Accepted", "UnsupportedValue", lname, msg);
        return;
    }
    for (size_t i = 0; i < t->nsl; i++)
        if (t->sl[i].port == port && t->sl[i].https != https) {
            snprintf(msg, sizeof msg, "port %ld has both HTTP and HTTPS listeners", port);
            gw_cond(t, gw, "Accepted", "ProtocolConflict", lname, msg);
            return;
        }
    struct tr_glistener g = { gw, l, lname, host, port, 0 };
    if (lname == lname_buf)
        g.name = "";                /* the name is only used for messages and sectionName */
    if (https) {
        const cJSON *tls = k8s_get(l, "tls");
        const char *mode = k8s_str(tls, "mode", "Terminate");
        const cJSON *refs = k8s_get(tls, "certificateRefs"), *ref;
        if (strcmp(mode, "Terminate") != 0) {
            snprintf(msg, sizeof msg, "tls.mode %s is not supported (Terminate is)", mode);
            gw_cond(t, gw, "Accepted", "UnsupportedValue", lname, msg);
            return;
        }
        if (cJSON_GetArraySize(refs) == 0) {
            gw_cond(t, gw, "ResolvedRefs", "InvalidCertificateRef", lname, "HTTPS needs tls.certificateRefs");
            return;
        }
        if (k8s_get(tls, "options") != NULL)
            gw_cond(t, gw, "Accepted", "UnsupportedValue", lname, "tls.options are ignored");
        /* the certificates first: an HTTPS listener none of whose
         * certificates resolve must not become a listener at all */
        struct tr_slistener tmp = { 0 };
        bool any = false;
        cJSON_ArrayForEach(ref, refs)
            any |= add_cert(t, &g, &tmp, ref);
        if (any) {
            g.sl = slistener(t, port, true);
            struct tr_slistener *sl = &t->sl[g.sl];
            for (size_t k = 0; k < tmp.nkeys; k++) {
                cJSON *c = cJSON_DetachItemFromArray(tmp.certs, 0);
                if (nidx_find(&sl->cert_keys, tmp.keys[k]) != NOT_FOUND_IDX) {
                    cJSON_Delete(c);
                    free(tmp.keys[k]);
                    continue;
                }
                if (sl->certs == NULL)
                    sl->certs = cJSON_CreateArray();
                cJSON_AddItemToArray(sl->certs, c);
                sl->keys = xrealloc(sl->keys, (sl->nkeys + 1) * sizeof(*sl->keys));
                sl->keys[sl->nkeys] = tmp.keys[k];
                nidx_add(&sl->cert_keys, sl->keys[sl->nkeys], sl->nkeys);
                sl->nkeys++;
            }
        }
        cJSON_Delete(tmp.certs);
        free(tmp.keys);
        nidx_free(&tmp.cert_keys);
        if (!any)
            return;
    } else {
        g.sl = slistener(t, port, false);
    }
    t->gl = xrealloc(t->gl, (t->ngl + 1) * sizeof(*t->gl));
    t->gl[t->ngl++] = g;
}

void tr_gateways(struct tr_ctx *t)
{
    const struct k8s_list *gws = &t->ix->by_kind[K8S_GATEWAY];
    for (size_t i = 0; i < gws->n; i++) {
        const struct k8s_obj *gw = gws->v[i];
        const cJSON *spec = k8s_get(gw->doc, "spec");
        if (strcmp(k8s_str(spec, "gatewayClassName", ""), t->opt->gateway_class) != 0)
            continue;               /* another controller's */
        const cJSON *ls = k8s_get(spec, "listeners"), *l;
        if (!cJSON_IsArray(ls) || cJSON_GetArraySize(ls) == 0) {
            k8s_cond_add(t->conds, "Gateway", gw->ns, gw->name, "Accepted", "False",
                         "Invalid", "spec.listeners must be a non-empty list");
            continue;
        }
        if (k8s_get(spec, "addresses") != NULL)
            k8s_cond_add(t->conds, "Gateway", gw->ns, gw->name, "Accepted", "False",
                         "UnsupportedAddress", "spec.addresses are ignored: sluice binds every address");
        size_t idx = 0;
        cJSON_ArrayForEach(l, ls)
            one_listener(t, gw, l, idx++);
        k8s_cond_add(t->conds, "Gateway", gw->ns, gw->name, "Accepted", "True", "Accepted",
                     "accepted by gatewayClass %s", t->opt->gateway_class);
    }
}
