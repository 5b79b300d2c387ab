/*
 * load.h - (k8s) manifests from files and directories into a store.
 *
 * Owns: the file names it keeps for messages (freed by k8s_load_free).
 * May call: k8s/yaml_read, k8s/obj, k8s/cond.
 * A directory contributes its *.yaml, *.yml and *.json files (not its
 * subdirectories), in name order, so the output does not depend on readdir.
 */
#ifndef SLUICE_K8S_LOAD_H
#define SLUICE_K8S_LOAD_H

#include <stddef.h>

struct k8s_store;
struct k8s_conds;

#define K8S_MAX_FILE (64u << 20)

struct k8s_load {
    char **names;
    size_t n, cap;
};

/* Reads path (a file or a directory) into s.  Returns 0, or -1 when a file
 * cannot be read or parsed; each problem is a condition (kind "File"). */
int k8s_load_path(struct k8s_load *l, const char *path, struct k8s_store *s, struct k8s_conds *conds);
/* Parses text already in memory (named src in messages). */
int k8s_load_text(struct k8s_load *l, const char *src, const char *buf, size_t len,
                  struct k8s_store *s, struct k8s_conds *conds);
void k8s_load_free(struct k8s_load *l);

#endif
