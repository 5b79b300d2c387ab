/* pool.c - per-worker idle connection buckets keyed by address. */
#include "pool.h"
#include "../core/hash.h"

#include <stdlib.h>
#include <string.h>

void pool_init(struct pool *p)
{
    p->cap = 64;
    p->n = 0;
    p->tab = calloc(p->cap, sizeof(*p->tab));
    if (p->tab == NULL)
        abort();
    p->all = NULL;
}

static void pool_grow(struct pool *p)
{
    size_t ncap = p->cap * 2;
    struct pool_bucket **nt = calloc(ncap, sizeof(*nt));

    if (nt == NULL)
        abort();
    for (size_t i = 0; i < p->cap; i++) {
        struct pool_bucket *b = p->tab[i], *next;
        for (; b; b = next) {
            size_t j = (gw_hash_bytes(&b->sa, b->salen) ^ b->key) & (ncap - 1);
            next = b->hnext;
            b->hnext = nt[j];
            nt[j] = b;
        }
    }
    free(p->tab);
    p->tab = nt;
    p->cap = ncap;
}

struct pool_bucket *pool_bucket_for(struct pool *p, const struct sockaddr *sa, socklen_t salen,
                                    uint64_t key)
{
    size_t i = (gw_hash_bytes(sa, salen) ^ key) & (p->cap - 1);
    struct pool_bucket *b;

    for (b = p->tab[i]; b; b = b->hnext)
        if (b->salen == salen && b->key == key && memcmp(&b->sa, sa, salen) == 0)
            return b;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        abort();
    memcpy(&b->sa, sa, salen);
    b->salen = salen;
    b->key = key;
    b->head.next = b->head.prev = &b->head;
    b->hnext = p->tab[i];
    p->tab[i] = b;
    b->all_next = atomic_load_explicit(&p->all, memory_order_relaxed);
    atomic_store_explicit(&p->all, b, memory_order_release);
    if (++p->n > p->cap)
        pool_grow(p);
    return b;
}

struct pool_node *pool_checkin(struct pool_bucket *b, struct pool_node *n, uint64_t now_ms,
                               uint32_t idle_ms, uint32_t max_idle)
{
    struct pool_node *evicted = NULL;

    if (b->count >= max_idle) {
        evicted = pool_oldest(b);
        pool_remove(evicted);
    }
    n->idle_ms = idle_ms;
    pool_put(b, n, now_ms);
    return evicted;
}

void pool_put(struct pool_bucket *b, struct pool_node *n, uint64_t now_ms)
{
    n->bucket = b;
    n->idle_since_ms = now_ms;
    n->prev = &b->head;
    n->next = b->head.next;
    b->head.next->prev = n;
    b->head.next = n;
    atomic_store_explicit(&b->count, atomic_load_explicit(&b->count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void pool_remove(struct pool_node *n)
{
    if (n->bucket == NULL)
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    atomic_store_explicit(&n->bucket->count,
                          atomic_load_explicit(&n->bucket->count, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    n->bucket = NULL;
    n->prev = n->next = NULL;
}

struct pool_node *pool_get(struct pool_bucket *b)
{
    struct pool_node *n = b->head.next;

    if (n == &b->head)
        return NULL;
    pool_remove(n);
    return n;
}

struct pool_node *pool_oldest(struct pool_bucket *b)
{
    return b->head.prev == &b->head ? NULL : b->head.prev;
}

struct pool_node *pool_expired(struct pool_bucket *b, uint64_t now_ms)
{
    struct pool_node *n = pool_oldest(b);

    return n && n->idle_since_ms + n->idle_ms <= now_ms ? n : NULL;
}

void pool_sweep(struct pool *p, uint64_t now_ms, void (*close_fn)(struct pool_node *))
{
    struct pool_node *n;

    for (size_t i = 0; i < p->cap; i++)
        for (struct pool_bucket *b = p->tab[i]; b; b = b->hnext)
            while ((n = pool_expired(b, now_ms)) != NULL)
                close_fn(n);
}

void pool_bucket_close_all(struct pool_bucket *b, void (*close_fn)(struct pool_node *))
{
    struct pool_node *n;

    while ((n = pool_oldest(b)) != NULL)
        close_fn(n);
}

void pool_foreach(struct pool *p, void (*fn)(struct pool_bucket *, void *), void *arg)
{
    for (size_t i = 0; i < p->cap; i++)
        for (struct pool_bucket *b = p->tab[i]; b; b = b->hnext)
            fn(b, arg);
}

void pool_destroy(struct pool *p, void (*free_user)(void *))
{
    for (size_t i = 0; i < p->cap; i++) {
        struct pool_bucket *b = p->tab[i], *next;
        for (; b; b = next) {
            next = b->hnext;
            if (b->user && free_user)
                free_user(b->user);
            free(b);
        }
    }
    free(p->tab);
    p->tab = NULL;
    p->all = NULL;
    p->cap = p->n = 0;
}
