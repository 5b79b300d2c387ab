/*
 * ltimer.h - the clocks and lazy timers of one event loop (libevent).
 *
 * Lazy timers: a connection keeps its wanted deadline, and its libevent
 * timer is re-armed only when the new deadline is earlier than the armed
 * one.  A timer firing early re-arms itself for the rest.  A keep-alive
 * request thus costs no timer operation at all, where arming and disarming
 * per request would cost four.  Timers are added with libevent "common
 * timeouts" (one queue per distinct duration, O(1) insert), cached per loop.
 *
 * The turn clock: the monotonic clock read once per turn of the loop (the
 * loop's owner forgets it before each turn), as HAProxy's now_ns and nginx's
 * cached time are.
 *
 * The heap: a loop's own binary min-heap of deadlines, for objects too
 * numerous to each embed a libevent timer (a struct event is 128 bytes):
 * client connections, most of them idle keep-alive ones, hold a 16-byte
 * node and the loop one timer armed at the earliest deadline, as nginx's
 * and HAProxy's timer trees do.  The same lazy rule applies: a node is
 * moved only when its new deadline is earlier than where it sits.
 *
 * Owns: lt_common (a loop's common-timeout cache), lt_turn, the lazy-timer
 * re-arm rule, lt_heap.  May call: libevent, libc.  Used by gateway/ and upstream/.
 */
#ifndef SLUICE_LTIMER_H
#define SLUICE_LTIMER_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct lt_common {
    struct event_base *base;
    struct timeval tv[8];
    uint32_t ms[8];
    int n;
};

/* The common timeout of ms for c->base (cached; libevent keeps it alive
 * for the life of the base). */
const struct timeval *lt_common_timeout(struct lt_common *c, uint32_t ms);

/* The coarse monotonic clock in ms (ticks every few ms; a vDSO read). */
static inline uint64_t lt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t lt_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct lt_turn {
    uint64_t ns;            /* valid while ok */
    bool ok;
};

static inline uint64_t lt_turn_ns(struct lt_turn *t)
{
    if (!t->ok) {
        t->ns = lt_mono_ns();
        t->ok = true;
    }
    return t->ns;
}

/* A node of an lt_heap: embedded in its owner. */
struct lt_hnode {
    uint64_t at;            /* its place in the heap (ms), valid while idx */
    uint32_t idx;           /* 1 + its index in the heap; 0 = not in it */
};

struct lt_heap {
    struct lt_hnode **v;
    uint32_t n, cap;
};

/* Insert x (not in the heap) at x->at.  The array grows by doubling
 * (aborts on OOM); it never shrinks, so a steady load allocates nothing. */
void lt_heap_push(struct lt_heap *h, struct lt_hnode *x);
/* Remove x; a no-op when it is not in the heap. */
void lt_heap_remove(struct lt_heap *h, struct lt_hnode *x);
void lt_heap_free(struct lt_heap *h);

static inline struct lt_hnode *lt_heap_min(const struct lt_heap *h)
{
    return h->n ? h->v[0] : NULL;
}

/* Want ev to fire ms from now: armed only if that is earlier than what is
 * armed (*armed_at, 0 = nothing). */
static inline void lt_want(struct lt_common *c, struct event *ev, uint64_t *deadline,
                           uint64_t *armed_at, uint32_t ms)
{
    *deadline = lt_now_ms() + ms;
    if (*armed_at && *armed_at <= *deadline)
        return;     /* the armed timer fires first and will re-arm */
    event_add(ev, lt_common_timeout(c, ms));
    *armed_at = *deadline;
}

/* Called when a lazy timer fired: true if the deadline really passed;
 * otherwise re-arms for the rest (or stays off) and returns false. */
static inline bool lt_due(struct event *ev, uint64_t *deadline, uint64_t *armed_at)
{
    uint64_t now = lt_now_ms();

    *armed_at = 0;
    if (*deadline == 0)
        return false;
    if (now + 2 < *deadline) {  /* the coarse clock ticks every few ms */
        uint64_t left = *deadline - now;
        struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
        event_add(ev, &tv);
        *armed_at = *deadline;
        return false;
    }
    *deadline = 0;
    return true;
}

#endif
