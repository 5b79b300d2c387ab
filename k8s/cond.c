#include "cond.h"
#include "../core/arena.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

void k8s_cond_add(struct k8s_conds *c, const char *kind, const char *ns, const char *name,
                  const char *type, const char *status, const char *reason,
                  const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    struct k8s_cond *k = &c->v[c->n++];
    k->kind = xstrdup(kind ? kind : "");
    k->ns = xstrdup(ns ? ns : "");
    k->name = xstrdup(name ? name : "");
    k->type = xstrdup(type);
    k->status = xstrdup(status);
    k->reason = xstrdup(reason);
    k->message = xstrdup(msg);
}

size_t k8s_conds_print(const struct k8s_conds *c, FILE *f)
{
    size_t printed = 0;

    for (size_t i = 0; i < c->n; i++) {
        const struct k8s_cond *k = &c->v[i];
        if (strcmp(k->status, "True") == 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", k->kind);
        cJSON_AddStringToObject(o, "namespace", k->ns);
        cJSON_AddStringToObject(o, "name", k->name);
        cJSON_AddStringToObject(o, "type", k->type);
        cJSON_AddStringToObject(o, "status", k->status);
        cJSON_AddStringToObject(o, "reason", k->reason);
        cJSON_AddStringToObject(o, "message", k->message);
        char *s = cJSON_PrintUnformatted(o);
        if (s == NULL)
            x_oom();
        fprintf(f, "%s\n", s);
        free(s);
        cJSON_Delete(o);
        printed++;
    }
    return printed;
}

const struct k8s_cond *k8s_cond_find(const struct k8s_conds *c, const char *reason)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].reason, reason) == 0)
            return &c->v[i];
    return NULL;
}

void k8s_conds_free(struct k8s_conds *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct k8s_cond *k = &c->v[i];
        free(k->kind);
        free(k->ns);
        free(k->name);
        free(k->type);
        free(k->status);
        free(k->reason);
        free(k->message);
    }
    free(c->v);
    c->v = NULL;
    c->n = c->cap = 0;
}
