/*
 * cfgparse.h - (core) reading a config section out of a cJSON tree: typed
 * getters, the known-keys check and the one list walker, each reporting
 * its problems with the JSON pointer of the value (cfgerr.h).
 *
 * Owns: nothing; what it copies goes into the caller's arena (cfg_ctx).
 * May call: core/cfgerr, core/arena, cJSON.  Used by the section parsers
 * of gateway/config.c, router/route_config.c and upstream/upstream_config.c,
 * so the same mistake reads the same in every section: "unknown field",
 * "duplicate key", "is required", "must be a string" / "an integer" /
 * "an object" / "an array", "not supported yet: <path>".
 */
#ifndef SLUICE_CORE_CFGPARSE_H
#define SLUICE_CORE_CFGPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "arena.h"
#include "cfgerr.h"

/* ---- cJSON type tests, inline: cJSON_IsString() and friends are calls
 * into the shared library, a dozen per route of a large document.  Same
 * tests as cJSON's own (the type's low byte; NULL is no type). */

static inline int j_type(const cJSON *v)
{
    return v ? v->type & 0xff : cJSON_Invalid;
}

#define J_IS_OBJECT(v) (j_type(v) == cJSON_Object)
#define J_IS_ARRAY(v)  (j_type(v) == cJSON_Array)
#define J_IS_STRING(v) (j_type(v) == cJSON_String)
#define J_IS_NUMBER(v) (j_type(v) == cJSON_Number)
#define J_IS_NULL(v)   (j_type(v) == cJSON_NULL)
#define J_IS_TRUE(v)   (j_type(v) == cJSON_True)
#define J_IS_BOOL(v)   ((v) != NULL && ((v)->type & (cJSON_True | cJSON_False)) != 0)

/* Copies into the arena of the config being built. */
static inline char *cfg_strdup(struct cfg_ctx *cx, const char *s)
{
    return cm_strdup(cx->mem, s);
}

static inline char *cfg_strndup(struct cfg_ctx *cx, const char *s, size_t n)
{
    return cm_strndup(cx->mem, s, n);
}

static inline void *cfg_calloc(struct cfg_ctx *cx, size_t n, size_t sz)
{
    return cm_calloc(cx->mem, n, sz);
}

/* Known-key lists are short; found[] has one slot per entry. */
#define CFG_MAX_KEYS 16

/*
 * Check that item is an object and that its members are all known and not
 * repeated (cJSON keeps both copies of a duplicate key and lookups see only
 * the first, so a repeated key would silently lose a value).  Members listed
 * in unsupported are refused as "not supported yet".  Returns false (with an
 * error) only when item is not an object.
 *
 * found (NULL, or one slot per entry of known) gets the first member of
 * each known key, or NULL: the callers read their fields from it instead of
 * scanning the object again for each one.
 */
bool cfg_check_object(struct cfg_ctx *cx, const cJSON *item, const struct jp *path,
                      const char *const *known, const char *const *unsupported,
                      const cJSON **found);

/* The member key of obj, or NULL (also when obj is not an object); for the
 * few top-level lookups (cfg_check_object's found[] serves the rest). */
const cJSON *cfg_member(const cJSON *obj, const char *key);

/* The number of members of an array or object (cJSON_GetArraySize, inline). */
size_t cfg_nchildren(const cJSON *a);

/* Value results: the member is absent, fine, or bad (error recorded).
 * The getters take the member v (NULL = absent) of the object at path, and
 * its key for the error path. */
enum cfg_get { CFG_ABSENT = 0, CFG_OK, CFG_BAD };

enum cfg_get cfg_get_uint(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                          const char *key, uint64_t min, uint64_t max, uint64_t *out);
enum cfg_get cfg_get_u32(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                         const char *key, uint32_t min, uint32_t max, uint32_t *out);
enum cfg_get cfg_get_int(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                         const char *key, int min, int max, int *out);
enum cfg_get cfg_get_bool(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                          const char *key, bool *out);
/* A string; *out points into the cJSON tree.  Absent and required is
 * "is required". */
enum cfg_get cfg_get_str(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                         const char *key, bool required, const char **out);
/* cfg_get_str() of a string that must not be empty. */
enum cfg_get cfg_get_name(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                          const char *key, bool required, const char **out);

/* ---- lists: every array (or object used as a map) of the document is
 * read by cfg_list(), which checks its type, counts it, allocates one
 * slot per element and calls back for each element with its path. */

/* One element: it the value, path its JSON pointer (the list's path plus
 * its index, or its key for an object), i its position, elem its slot in
 * the array cfg_list() allocated (elem - i is the array's start; NULL
 * when the spec allocates nothing), arg the caller's. */
typedef void (*cfg_elem_fn)(struct cfg_ctx *cx, const cJSON *it, const struct jp *path,
                            size_t i, void *elem, void *arg);

struct cfg_list {
    const char *key;        /* the list's name in the object at path */
    bool required;          /* absent: "is required" */
    bool object;            /* the members of an object, not an array's elements */
    const char *if_empty;   /* the error for an empty list; NULL: empty is fine */
    size_t elem_size;       /* bytes per slot of *out; 0: nothing allocated */
    /* called once the slots exist (n may be 0), before any element; or NULL */
    void (*start)(struct cfg_ctx *cx, size_t n, void *elems, void *arg);
    cfg_elem_fn each;
};

/*
 * Read the list v, the member spec->key of the object at path (NULL =
 * absent).  Absent: nothing, or "is required".  Not an array (object):
 * "must be an array" ("must be an object") at the list's path.  Empty:
 * the spec's if_empty error if it has one, and nothing more.  Otherwise
 * n zeroed slots of elem_size in the arena, spec->start, then spec->each
 * for every element in order.  *n gets the length whenever v is a list of
 * the right type (and is left alone otherwise).  Returns the slots, or
 * NULL when there are none.
 */
void *cfg_list(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
               const struct cfg_list *spec, size_t *n, void *arg);

#endif
