/* stats.c - per-worker counters and histograms. */
#include "stats.h"
#include "../core/hash.h"

#include <stdlib.h>
#include <string.h>

const char *const gw_end_names[GW_END__N] = {
    [GW_END_DONE] = "done",
    [GW_END_CLIENT_CLOSED] = "client_closed",
    [GW_END_CLIENT_TIMEOUT] = "client_timeout",
    [GW_END_CLIENT_PARSE] = "client_parse_error",
    [GW_END_CLIENT_TLS] = "client_tls",
    [GW_END_IDLE_CLOSED] = "idle_closed",
    [GW_END_IDLE_TIMEOUT] = "idle_timeout",
    [GW_END_UP_CONNECT] = "upstream_connect",
    [GW_END_UP_CONNECT_TIMEOUT] = "upstream_connect_timeout",
    [GW_END_UP_TLS] = "upstream_tls",
    [GW_END_UP_HEADER_TIMEOUT] = "upstream_header_timeout",
    [GW_END_UP_IDLE_TIMEOUT] = "upstream_idle_timeout",
    [GW_END_UP_TOTAL_TIMEOUT] = "response_total_timeout",
    [GW_END_UP_RESET] = "upstream_reset",
    [GW_END_UP_PARSE] = "upstream_parse_error",
    [GW_END_TUNNEL] = "tunnel_end",
    [GW_END_DRAIN] = "drain",
    [GW_END_SHUTDOWN] = "shutdown",
    [GW_END_INTERNAL] = "internal",
    [GW_END_QUEUE_FULL] = "queue_full",
    [GW_END_QUEUE_TIMEOUT] = "queue_timeout",
};

const char *const gw_cancel_names[GW_CANCEL__N] = {
    [GW_CANCEL_REQUEST_BODY] = "request_body",
    [GW_CANCEL_WAITING] = "waiting",
    [GW_CANCEL_STREAMING] = "streaming",
};

/* Open addressing over entries whose name sits at name_off inside them. */
static void *idx_find(void **tab, size_t cap, size_t name_off, const char *name, size_t *slot)
{
    size_t j = cap ? gw_hash_str(name) & (cap - 1) : 0;

    for (; cap && tab[j]; j = (j + 1) & (cap - 1))
        if (strcmp((const char *)tab[j] + name_off, name) == 0)
            return tab[j];
    *slot = j;
    return NULL;
}

static void idx_add(void ***tab, size_t *cap, size_t *n, size_t name_off, void *e)
{
    size_t slot;

    if ((*n + 1) * 2 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        void **nt = calloc(ncap, sizeof(*nt));
        if (nt == NULL)
            abort();
        for (size_t i = 0; i < *cap; i++)
            if ((*tab)[i]) {
                idx_find(nt, ncap, name_off, (const char *)(*tab)[i] + name_off, &slot);
                nt[slot] = (*tab)[i];
            }
        free(*tab);
        *tab = nt;
        *cap = ncap;
    }
    idx_find(*tab, *cap, name_off, (const char *)e + name_off, &slot);
    (*tab)[slot] = e;
    (*n)++;
}

/* A zeroed counter block of size bytes with name copied into its
 * flexible name field at name_off; never NULL. */
static void *named_new(size_t size, size_t name_off, const char *name)
{
    size_t n = strlen(name) + 1;
    char *p = calloc(1, size + n);

    if (p == NULL)
        abort();
    memcpy(p + name_off, name, n);
    return p;
}

struct gw_route_stats *gw_stats_route(struct gw_stats *st, const char *name)
{
    size_t slot;
    struct gw_route_stats *r = idx_find((void **)st->ridx, st->rcap,
                                        offsetof(struct gw_route_stats, name), name, &slot);
    if (r)
        return r;
    r = named_new(sizeof(*r), offsetof(struct gw_route_stats, name), name);
    r->next = atomic_load_explicit(&st->routes, memory_order_relaxed);
    atomic_store_explicit(&st->routes, r, memory_order_release);
    idx_add((void ***)&st->ridx, &st->rcap, &st->rn, offsetof(struct gw_route_stats, name), r);
    return r;
}

struct gw_ups_stats *gw_stats_ups(struct gw_stats *st, const char *name)
{
    size_t slot;
    struct gw_ups_stats *u = idx_find((void **)st->uidx, st->ucap,
                                      offsetof(struct gw_ups_stats, name), name, &slot);
    if (u)
        return u;
    u = named_new(sizeof(*u), offsetof(struct gw_ups_stats, name), name);
    u->next = atomic_load_explicit(&st->ups, memory_order_relaxed);
    atomic_store_explicit(&st->ups, u, memory_order_release);
    idx_add((void ***)&st->uidx, &st->ucap, &st->un, offsetof(struct gw_ups_stats, name), u);
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
    free(st->ridx);
    free(st->uidx);
    st->ridx = NULL;
    st->uidx = NULL;
    st->rcap = st->rn = st->ucap = st->un = 0;
}
