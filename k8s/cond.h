/*
 * cond.h - (k8s) Kubernetes-style conditions: what translate found wrong
 * (and, for part 2's status writer, what it accepted), each naming the
 * object it is about.
 *
 * Owns: its copies of every string.  May call: cJSON, core/arena.
 */
#ifndef SLUICE_K8S_COND_H
#define SLUICE_K8S_COND_H

#include <stdio.h>
#include <stddef.h>

struct k8s_cond {
    char *kind, *ns, *name;         /* the object */
    char *type, *status, *reason, *message;
};

struct k8s_conds {
    struct k8s_cond *v;
    size_t n, cap;
};

void k8s_cond_add(struct k8s_conds *c, const char *kind, const char *ns, const char *name,
                  const char *type, const char *status, const char *reason,
                  const char *fmt, ...) __attribute__((format(printf, 8, 9)));
/* Prints every condition whose status is not "True", one JSON object a line:
 * {"kind","namespace","name","type","status","reason","message"}.
 * Returns how many it printed. */
size_t k8s_conds_print(const struct k8s_conds *c, FILE *f);
/* The first condition with that reason (any object), or NULL. */
const struct k8s_cond *k8s_cond_find(const struct k8s_conds *c, const char *reason);
void k8s_conds_free(struct k8s_conds *c);

#endif
