#include "obj.h"
#include "cond.h"
#include "../core/arena.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const cJSON *k8s_get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

const char *k8s_str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = k8s_get(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : dflt;
}

bool k8s_int(const cJSON *o, const char *key, long lo, long hi, long *out)
{
    const cJSON *v = k8s_get(o, key);
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || floor(d) != d)
        return false;
    *out = (long)d;
    return true;
}

const char *k8s_label(const cJSON *doc, const char *key)
{
    return k8s_str(k8s_get(k8s_get(doc, "metadata"), "labels"), key, NULL);
}

static void add_obj(struct k8s_store *s, cJSON *o, const char *src, struct k8s_conds *conds)
{
    const char *kind = k8s_str(o, "kind", NULL);
    const cJSON *md = k8s_get(o, "metadata");
    const char *name = k8s_str(md, "name", NULL);

    if (!cJSON_IsObject(o) || kind == NULL || !*kind || name == NULL || !*name) {
        k8s_cond_add(conds, "File", "", src, "Accepted", "False", "InvalidObject",
                     "a document that is not an object with kind and metadata.name was skipped");
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    /* a namespaced object without a namespace lives in "default" (what
     * kubectl apply does); cluster-scoped kinds have none */
    static const char *const cluster_scoped[] = {
        "Namespace", "GatewayClass", "Node", "ClusterRole", "ClusterRoleBinding",
        "CustomResourceDefinition", "PersistentVolume", "StorageClass", NULL };
    const char *ns = k8s_str(md, "namespace", NULL);
    if (ns == NULL || !*ns) {
        ns = "default";
        for (int i = 0; cluster_scoped[i]; i++)
            if (strcmp(kind, cluster_scoped[i]) == 0)
                ns = "";
    }
    const char *svc = NULL;
    if (strcmp(kind, "EndpointSlice") == 0) {
        svc = k8s_label(o, "kubernetes.io/service-name");
        svc = svc ? svc : "";
    }
    s->v[s->n++] = (struct k8s_obj){ kind, ns, name, o, src, svc };
}

void k8s_store_add(struct k8s_store *s, cJSON *doc, const char *src, struct k8s_conds *conds)
{
    if (s->ndocs == s->capdocs) {
        s->capdocs = s->capdocs ? 2 * s->capdocs : 16;
        s->docs = xrealloc(s->docs, s->capdocs * sizeof(*s->docs));
    }
    s->docs[s->ndocs++] = doc;
    k8s_store_borrow(s, doc, src, conds);
}

void k8s_store_borrow(struct k8s_store *s, cJSON *doc, const char *src, struct k8s_conds *conds)
{
    const char *kind = k8s_str(doc, "kind", NULL);
    const cJSON *items = k8s_get(doc, "items");
    size_t kl = kind ? strlen(kind) : 0;
    if (cJSON_IsArray(doc) || (kl >= 4 && strcmp(kind + kl - 4, "List") == 0 && cJSON_IsArray(items))) {
        const cJSON *it;
        cJSON_ArrayForEach(it, (cJSON_IsArray(doc) ? doc : items))
            add_obj(s, (cJSON *)it, src, conds);
        return;
    }
    add_obj(s, doc, src, conds);
}

void k8s_store_free(struct k8s_store *s)
{
    for (size_t i = 0; i < s->ndocs; i++)
        cJSON_Delete(s->docs[i]);
    free(s->docs);
    free(s->v);
    *s = (struct k8s_store){ 0 };
}
