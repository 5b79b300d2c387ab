/* ltimer.c - a loop's common-timeout cache and its deadline heap (see ltimer.h). */
#include "ltimer.h"

#include <stdlib.h>

static void heap_set(struct lt_heap *h, uint32_t i, struct lt_hnode *x)
{
    h->v[i] = x;
    x->idx = i + 1;
}

static void heap_up(struct lt_heap *h, uint32_t i)
{
    struct lt_hnode *x = h->v[i];

    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (h->v[p]->at <= x->at)
            break;
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, x);
}

static void heap_down(struct lt_heap *h, uint32_t i)
{
    struct lt_hnode *x = h->v[i];

    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        uint64_t best = x->at;
        if (l < h->n && h->v[l]->at < best) {
            m = l;
            best = h->v[l]->at;
        }
        if (l + 1 < h->n && h->v[l + 1]->at < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(h, i, h->v[m]);
        i = m;
    }
    heap_set(h, i, x);
}

void lt_heap_push(struct lt_heap *h, struct lt_hnode *x)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        struct lt_hnode **v = realloc(h->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            abort();
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n] = x;
    heap_up(h, h->n++);
}

void lt_heap_remove(struct lt_heap *h, struct lt_hnode *x)
{
    if (x->idx == 0)
        return;
    uint32_t i = x->idx - 1;
    x->idx = 0;
    if (--h->n == i)
        return;
    heap_set(h, i, h->v[h->n]);
    if (i > 0 && h->v[(i - 1) / 2]->at > h->v[i]->at)
        heap_up(h, i);
    else
        heap_down(h, i);
}

void lt_heap_free(struct lt_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

const struct timeval *lt_common_timeout(struct lt_common *c, uint32_t ms)
{
    for (int i = 0; i < c->n; i++)
        if (c->ms[i] == ms)
            return &c->tv[i];
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    const struct timeval *ct = event_base_init_common_timeout(c->base, &tv);
    if (c->n < (int)(sizeof(c->ms) / sizeof(c->ms[0]))) {
        c->ms[c->n] = ms;
        c->tv[c->n] = *ct;
        return &c->tv[c->n++];
    }
    return ct;  /* libevent keeps it alive for the life of the base */
}
