/* cfgparse.c - typed getters and the list walker for config sections
 * (cfgparse.h). */
#include "cfgparse.h"

#include <string.h>

/* strcmp() == 0 for the short keys of the document, without a call. */
static inline bool streq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* Position of s in the NULL-terminated list, or -1. */
static int list_pos(const char *s, const char *const *list)
{
    for (int i = 0; list && list[i]; i++)
        if (list[i][0] == s[0] && streq(s, list[i]))
            return i;
    return -1;
}

size_t cfg_nchildren(const cJSON *a)
{
    size_t n = 0;
    for (const cJSON *c = a->child; c; c = c->next)
        n++;
    return n;
}

/* Whether c repeats a member before it: a known key repeats when its slot
 * in f is already taken, so only unknown keys need a scan. */
static bool repeated(const cJSON *item, const cJSON *c, const char *k, int pos, const cJSON **f)
{
    if (pos >= 0) {
        if (f[pos] != NULL)
            return true;
        f[pos] = c;
        return false;
    }
    for (const cJSON *d = item->child; d != c; d = d->next)
        if (d->string && d->string[0] == k[0] && streq(d->string, k))
            return true;
    return false;
}

bool cfg_check_object(struct cfg_ctx *cx, const cJSON *item, const struct jp *path,
                      const char *const *known, const char *const *unsupported,
                      const cJSON **found)
{
    const cJSON *slots[CFG_MAX_KEYS];
    const cJSON **f = found ? found : slots;
    size_t nknown = 0;

    while (known && known[nknown])
        nknown++;
    for (size_t i = 0; i < nknown; i++)
        f[i] = NULL;
    if (!J_IS_OBJECT(item)) {
        cfg_errp(cx, path, "must be an object");
        return false;
    }
    /* The path of a member is only built for an error: a 10,000-route
     * document has some 200,000 members and almost never an error. */
    for (const cJSON *c = item->child; c; c = c->next) {
        const char *k = c->string ? c->string : "";
        int pos = list_pos(k, known);
        if (repeated(item, c, k, pos, f))
            cfg_errp(cx, JP_K(path, k), "duplicate key");
        else if (list_pos(k, unsupported) >= 0)
            cfg_unsupported(cx, JP_K(path, k));
        else if (pos < 0)
            cfg_errp(cx, JP_K(path, k), "unknown field");
    }
    return true;
}

const cJSON *cfg_member(const cJSON *obj, const char *key)
{
    if (!J_IS_OBJECT(obj))
        return NULL;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && c->string[0] == key[0] && strcmp(c->string, key) == 0)
            return c;
    return NULL;
}

enum cfg_get cfg_get_uint(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                          const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    double d;

    if (v == NULL)
        return CFG_ABSENT;
    if (!J_IS_NUMBER(v)) {
        cfg_errp(cx, JP_K(path, key), "must be an integer");
        return CFG_BAD;
    }
    d = v->valuedouble;
    if (d >= -9.0e18 && d <= 9.0e18 && (double)(int64_t)d != d) {
        cfg_errp(cx, JP_K(path, key), "must be an integer");
        return CFG_BAD;
    }
    if (d < (double)min || d > (double)max) {
        cfg_errp(cx, JP_K(path, key), "must be an integer from %llu to %llu",
                 (unsigned long long)min, (unsigned long long)max);
        return CFG_BAD;
    }
    *out = (uint64_t)d;
    return CFG_OK;
}

enum cfg_get cfg_get_u32(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                         const char *key, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t x;
    enum cfg_get r = cfg_get_uint(cx, v, path, key, min, max, &x);
    if (r == CFG_OK)
        *out = (uint32_t)x;
    return r;
}

enum cfg_get cfg_get_int(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                         const char *key, int min, int max, int *out)
{
    uint64_t x;
    enum cfg_get r = cfg_get_uint(cx, v, path, key, (uint64_t)min, (uint64_t)max, &x);
    if (r == CFG_OK)
        *out = (int)x;
    return r;
}

enum cfg_get cfg_get_bool(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                          const char *key, bool *out)
{
    if (v == NULL)
        return CFG_ABSENT;
    if (!J_IS_BOOL(v)) {
        cfg_errp(cx, JP_K(path, key), "must be true or false");
        return CFG_BAD;
    }
    *out = J_IS_TRUE(v);
    return CFG_OK;
}

enum cfg_get cfg_get_str(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                         const char *key, bool required, const char **out)
{
    if (v != NULL && J_IS_STRING(v)) {
        *out = v->valuestring;
        return CFG_OK;
    }
    if (v == NULL && !required)
        return CFG_ABSENT;
    cfg_errp(cx, JP_K(path, key), v == NULL ? "is required" : "must be a string");
    return CFG_BAD;
}

enum cfg_get cfg_get_name(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                          const char *key, bool required, const char **out)
{
    enum cfg_get r = cfg_get_str(cx, v, path, key, required, out);
    if (r == CFG_OK && **out == '\0') {
        cfg_errp(cx, JP_K(path, key), "must not be empty");
        return CFG_BAD;
    }
    return r;
}

void *cfg_list(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
               const struct cfg_list *spec, size_t *n, void *arg)
{
    const struct jp *lp = JP_K(path, spec->key);
    bool ok = spec->object ? J_IS_OBJECT(v) : J_IS_ARRAY(v);
    char *slots = NULL;
    size_t i = 0;

    if (!ok) {
        if (v != NULL || spec->required)
            cfg_errp(cx, lp, v == NULL ? "is required" :
                     spec->object ? "must be an object" : "must be an array");
        return NULL;
    }
    *n = cfg_nchildren(v);
    if (*n == 0 && spec->if_empty) {
        cfg_errp(cx, lp, "%s", spec->if_empty);
        return NULL;
    }
    if (*n && spec->elem_size)
        slots = cfg_calloc(cx, *n, spec->elem_size);
    if (spec->start)
        spec->start(cx, *n, slots, arg);
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        const char *k = it->string ? it->string : "";
        spec->each(cx, it, spec->object ? JP_K(lp, k) : JP_I(lp, i), i,
                   slots ? slots + i * spec->elem_size : NULL, arg);
    }
    return slots;
}
