#include "load.h"
#include "cond.h"
#include "obj.h"
#include "yaml_read.h"
#include "../core/arena.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *keep_name(struct k8s_load *l, const char *name)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->names = xrealloc(l->names, l->cap * sizeof(*l->names));
    }
    return l->names[l->n++] = xstrdup(name);
}

int k8s_load_text(struct k8s_load *l, const char *src, const char *buf, size_t len,
                  struct k8s_store *s, struct k8s_conds *conds)
{
    struct k8s_read_err err;
    const char *name = keep_name(l, src);
    cJSON *docs = k8s_text_parse(buf, len, &err);

    if (docs == NULL) {
        k8s_cond_add(conds, "File", "", name, "Accepted", "False", "ParseError",
                     "%s:%lu:%lu: %s", name, err.line, err.column, err.msg);
        return -1;
    }
    while (docs->child) {
        cJSON *d = cJSON_DetachItemViaPointer(docs, docs->child);
        k8s_store_add(s, d, name, conds);
    }
    cJSON_Delete(docs);
    return 0;
}

static int load_file(struct k8s_load *l, const char *path, struct k8s_store *s,
                     struct k8s_conds *conds)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    if (f == NULL) {
        k8s_cond_add(conds, "File", "", path, "Accepted", "False", "ReadError", "%s: %s",
                     path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= K8S_MAX_FILE) {
                fclose(f);
                free(buf);
                k8s_cond_add(conds, "File", "", path, "Accepted", "False", "ReadError",
                             "%s: larger than %u bytes", path, K8S_MAX_FILE);
                return -1;
            }
            cap = cap ? 2 * cap : 65536;
            buf = xrealloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    rc = ferror(f) ? -1 : 0;
    fclose(f);
    if (rc == 0)
        rc = k8s_load_text(l, path, buf, len, s, conds);
    else
        k8s_cond_add(conds, "File", "", path, "Accepted", "False", "ReadError", "%s: read error", path);
    free(buf);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool manifest_name(const char *n)
{
    size_t len = strlen(n);
    if (n[0] == '.')
        return false;
    return (len > 5 && strcmp(n + len - 5, ".yaml") == 0) ||
           (len > 4 && strcmp(n + len - 4, ".yml") == 0) ||
           (len > 5 && strcmp(n + len - 5, ".json") == 0);
}

int k8s_load_path(struct k8s_load *l, const char *path, struct k8s_store *s, struct k8s_conds *conds)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        k8s_cond_add(conds, "File", "", path, "Accepted", "False", "ReadError", "%s: %s",
                     path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return load_file(l, path, s, conds);

    DIR *d = opendir(path);
    if (d == NULL) {
        k8s_cond_add(conds, "File", "", path, "Accepted", "False", "ReadError", "%s: %s",
                     path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!manifest_name(e->d_name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            names = xrealloc(names, cap * sizeof(*names));
        }
        size_t sz = strlen(path) + strlen(e->d_name) + 2;
        names[n] = xmalloc(sz);
        snprintf(names[n], sz, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat fst;
        if (stat(names[i], &fst) == 0 && S_ISREG(fst.st_mode) && load_file(l, names[i], s, conds) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

void k8s_load_free(struct k8s_load *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    *l = (struct k8s_load){ 0 };
}
