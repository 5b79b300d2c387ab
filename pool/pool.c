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

const char *const pool_close_names[POOL_CLOSE_N] = {
    [POOL_CLOSE_IDLE_TIMEOUT] = "idle_timeout",
    [POOL_CLOSE_SURPLUS] = "surplus",
    [POOL_CLOSE_OVER_CAP] = "over_cap",
    [POOL_CLOSE_PEER] = "peer_closed",
    [POOL_CLOSE_NOT_REUSABLE] = "not_reusable",
    [POOL_CLOSE_FAILED] = "failed",
    [POOL_CLOSE_ABORTED] = "aborted",
    [POOL_CLOSE_RELOAD] = "reload",
    [POOL_CLOSE_SHUTDOWN] = "shutdown",
};

struct pool_node *pool_checkin(struct pool_bucket *b, struct pool_node *n, uint64_t now_ms,
                               uint32_t idle_ms, uint32_t max_idle)
{
    struct pool_node *evicted = NULL;

    /* following demand, nothing is evicted here: every idle connection was
     * in use within the demand periods, and the sweep drains the surplus
     * gradually once demand falls */
    b->follow = max_idle == POOL_FOLLOW_DEMAND;
    b->period_ms = idle_ms / POOL_DEMAND_PERIODS > 200 ? idle_ms / POOL_DEMAND_PERIODS : 200;
    if (!b->follow && b->count >= max_idle) {
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

/* Turn b's demand period when it is over: the peak of the period that
 * ends is remembered, the new one starts from what is in flight now. */
static void demand_turn(struct pool_bucket *b, uint64_t now_ms)
{
    if (b->period_start_ms == 0) {     /* the first sweep that sees it */
        b->period_start_ms = now_ms;
        return;
    }
    uint64_t period = b->period_ms ? b->period_ms : 10000;
    if (now_ms - b->period_start_ms < period)
        return;
    /* a bucket not swept for two periods or more forgets the old peak too */
    b->peak_prev = now_ms - b->period_start_ms < 2 * period ? b->peak : 0;
    uint64_t busy = atomic_load_explicit(&b->inflight, memory_order_relaxed);
    b->peak = (uint32_t)(busy > UINT32_MAX ? UINT32_MAX : busy);
    b->period_start_ms = now_ms;
}

uint32_t pool_surplus_to_close(const struct pool_bucket *b)
{
    uint32_t idle = atomic_load_explicit(&b->count, memory_order_relaxed);
    uint32_t want = pool_demand(b);

    if (!b->follow || idle <= want)
        return 0;
    uint32_t surplus = idle - want;
    return surplus / POOL_DRAIN_DIV ? surplus / POOL_DRAIN_DIV : 1;
}

void pool_sweep(struct pool *p, uint64_t now_ms,
                void (*close_fn)(struct pool_node *, enum pool_close why))
{
    struct pool_node *n;

    for (size_t i = 0; i < p->cap; i++)
        for (struct pool_bucket *b = p->tab[i]; b; b = b->hnext) {
            demand_turn(b, now_ms);
            while ((n = pool_expired(b, now_ms)) != NULL)
                close_fn(n, POOL_CLOSE_IDLE_TIMEOUT);
            for (uint32_t k = pool_surplus_to_close(b); k > 0 && (n = pool_oldest(b)) != NULL; k--)
                close_fn(n, POOL_CLOSE_SURPLUS);
        }
}

void pool_bucket_close_all(struct pool_bucket *b, enum pool_close why,
                           void (*close_fn)(struct pool_node *, enum pool_close why))
{
    struct pool_node *n;

    while ((n = pool_oldest(b)) != NULL)
        close_fn(n, why);
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
