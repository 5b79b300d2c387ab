/* stats.c - per-worker counters and histograms. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

const double gw_hist_le[GW_HIST_N] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void gw_hist_observe(struct gw_hist *h, uint64_t ns)
{
    static const uint64_t le_ns[GW_HIST_N] = {
        500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull, 25000000ull, 50000000ull,
        100000000ull, 250000000ull, 500000000ull, 1000000000ull, 2500000000ull,
        5000000000ull, 10000000000ull,
    };
    int i = 0;

    while (i < GW_HIST_N && ns > le_ns[i])
        i++;
    gw_cnt_add(&h->b[i], 1);
    gw_cnt_add(&h->sum_ns, ns);
}

struct gw_route_stats *gw_stats_route(struct gw_stats *st, const char *name)
{
    struct gw_route_stats *r;

    for (r = atomic_load_explicit(&st->routes, memory_order_relaxed); r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    size_t n = strlen(name) + 1;
    r = calloc(1, sizeof(*r) + n);
    if (r == NULL)
        abort();
    memcpy(r->name, name, n);
    r->next = atomic_load_explicit(&st->routes, memory_order_relaxed);
    atomic_store_explicit(&st->routes, r, memory_order_release);
    return r;
}

struct gw_ups_stats *gw_stats_ups(struct gw_stats *st, const char *name)
{
    struct gw_ups_stats *u;

    for (u = atomic_load_explicit(&st->ups, memory_order_relaxed); u; u = u->next)
        if (strcmp(u->name, name) == 0)
            return u;
    size_t n = strlen(name) + 1;
    u = calloc(1, sizeof(*u) + n);
    if (u == NULL)
        abort();
    memcpy(u->name, name, n);
    u->next = atomic_load_explicit(&st->ups, memory_order_relaxed);
    atomic_store_explicit(&st->ups, u, memory_order_release);
    return u;
}

void gw_stats_free(struct gw_stats *st)
{
    struct gw_route_stats *r = st->routes;
    while (r) {
        struct gw_route_stats *n = r->next;
        free(r);
        r = n;
    }
    struct gw_ups_stats *u = st->ups;
    while (u) {
        struct gw_ups_stats *n = u->next;
        free(u);
        u = n;
    }
    st->routes = NULL;
    st->ups = NULL;
}
