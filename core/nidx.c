/* nidx.c - the name -> position index (nidx.h). */
#include "nidx.h"
#include "arena.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

void nidx_grow(struct nidx *x, size_t want)
{
    size_t cap = x->cap ? x->cap * 2 : 64;
    while (cap < want * 2)
        cap *= 2;
    struct nidx_slot *v = xcalloc(cap, sizeof(*v));

    for (size_t i = 0; i < x->cap; i++) {
        if (x->v[i].key == NULL)
            continue;
        size_t j = x->v[i].hash & (cap - 1);
        while (v[j].key)
            j = (j + 1) & (cap - 1);
        v[j] = x->v[i];
    }
    free(x->v);
    x->v = v;
    x->cap = cap;
}

/* The slot of k (hash h), or the empty slot where it would go. */
static struct nidx_slot *nidx_slot(const struct nidx *x, const char *k, uint64_t h)
{
    size_t j = h & (x->cap - 1);
    while (x->v[j].key && (x->v[j].hash != h || strcmp(x->v[j].key, k) != 0))
        j = (j + 1) & (x->cap - 1);
    return &x->v[j];
}

uint64_t nidx_hash(const char *k)
{
    uint64_t h = gw_hash_str(k);
    return h ? h : 1;
}

size_t nidx_find_h(const struct nidx *x, const char *k, uint64_t h)
{
    if (x->cap == 0)
        return NOT_FOUND_IDX;
    const struct nidx_slot *sl = nidx_slot(x, k, h);
    return sl->key ? sl->val : NOT_FOUND_IDX;
}

bool nidx_may_have(const struct nidx *x, uint64_t h)
{
    if (x->cap == 0)
        return false;
    for (size_t j = h & (x->cap - 1); x->v[j].key; j = (j + 1) & (x->cap - 1))
        if (x->v[j].hash == h)
            return true;
    return false;
}

size_t nidx_find(const struct nidx *x, const char *k)
{
    return x->cap == 0 ? NOT_FOUND_IDX : nidx_find_h(x, k, nidx_hash(k));
}

size_t nidx_add(struct nidx *x, const char *k, size_t v)
{
    uint64_t h = nidx_hash(k);

    if ((x->n + 1) * 2 > x->cap)
        nidx_grow(x, x->n + 1);
    struct nidx_slot *sl = nidx_slot(x, k, h);
    if (sl->key)
        return sl->val;
    sl->key = k;
    sl->hash = h;
    sl->val = v;
    x->n++;
    return NOT_FOUND_IDX;
}

void nidx_free(struct nidx *x)
{
    free(x->v);
    x->v = NULL;
    x->cap = 0;
    x->n = 0;
}
