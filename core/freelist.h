/*
 * freelist.h - a bounded, intrusive LIFO of recycled objects (per worker,
 * never shared between threads, so nothing locks).
 *
 * The object embeds a struct fl_node (anywhere; fl_pop takes its offset).
 * The most recently freed object is handed out first (warm in the caches).
 * At most `max` objects are kept: fl_push() says false beyond that and the
 * caller frees the object itself (or closes it: pipes).
 */
#ifndef SLUICE_FREELIST_H
#define SLUICE_FREELIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fl_node {
    struct fl_node *next;
};

struct freelist {
    struct fl_node *head;
    uint32_t n, max;
};

static inline void fl_init(struct freelist *fl, uint32_t max)
{
    fl->head = NULL;
    fl->n = 0;
    fl->max = max;
}

/* The node of the most recently pushed object, or NULL. */
static inline struct fl_node *fl_pop_node(struct freelist *fl)
{
    struct fl_node *n = fl->head;

    if (n) {
        fl->head = n->next;
        fl->n--;
        n->next = NULL;
    }
    return n;
}

/* The object (of type T whose fl_node is at offset off) or NULL. */
#define fl_pop(fl, T, member)                                                           \
    ({ struct fl_node *fl_n_ = fl_pop_node(fl);                                         \
       fl_n_ ? (T *)(void *)((char *)fl_n_ - offsetof(T, member)) : (T *)NULL; })

/* Keep n; false when the list is full (n not taken). */
static inline bool fl_push(struct freelist *fl, struct fl_node *n)
{
    if (fl->n >= fl->max)
        return false;
    n->next = fl->head;
    fl->head = n;
    fl->n++;
    return true;
}

/* Empty the list, calling fn on each object's node (free or close it). */
static inline void fl_drain(struct freelist *fl, void (*fn)(struct fl_node *))
{
    struct fl_node *n;

    while ((n = fl_pop_node(fl)) != NULL)
        fn(n);
}

#endif
