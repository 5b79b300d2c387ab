/* wstate.c - a worker's own resources: buffers, clock, snapshot views. */
#include "wstate.h"
#include "tls.h"
#include "../core/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define FREE_SMALL_MAX 1024
#define FREE_LARGE_MAX 32

_Atomic uint32_t g_nconns;

uint64_t gw_mono_ns(void)
{
    return lt_mono_ns();
}

uint64_t gw_now_ms(struct gw_worker *w)
{
    (void)w;
    return lt_now_ms();
}

/* ---- buffers ---- */

struct gw_buf *gw_buf_get(struct gw_worker *w, uint32_t min_cap)
{
    struct gw_buf *b;
    uint32_t cap = min_cap <= GW_BUF_SMALL ? GW_BUF_SMALL : GW_BUF_LARGE;

    b = fl_pop(cap == GW_BUF_SMALL ? &w->free_small : &w->free_large, struct gw_buf, fl);
    if (b == NULL) {
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            abort();    /* as h2o: running out of memory is not recoverable here */
        b->cap = cap;
        b->fl.next = NULL;
    }
    b->start = b->end = 0;
    return b;
}

void gw_buf_put(struct gw_worker *w, struct gw_buf *b)
{
    if (b == NULL)
        return;
    if (!fl_push(b->cap == GW_BUF_SMALL ? &w->free_small : &w->free_large, &b->fl))
        free(b);
}

static void buf_free_node(struct fl_node *n)
{
    free((char *)n - offsetof(struct gw_buf, fl));
}

struct gw_rid *gw_rid_get(struct gw_worker *w)
{
    struct gw_rid *r = fl_pop(&w->free_rids, struct gw_rid, fl);

    if (r == NULL && (r = malloc(sizeof(*r))) == NULL)
        abort();
    r->fl.next = NULL;
    return r;
}

void gw_rid_put(struct gw_worker *w, struct gw_rid *r)
{
    if (r != NULL && !fl_push(&w->free_rids, &r->fl))
        free(r);
}

static void rid_free_node(struct fl_node *n)
{
    free((char *)n - offsetof(struct gw_rid, fl));
}

const struct timeval *gw_common_timeout(struct gw_worker *w, uint32_t ms)
{
    return lt_common_timeout(&w->tmo, ms);
}

/* ---- snapshot views ---- */

static void wsnap_free(struct gw_wsnap *ws)
{
    gw_snapshot_unref_deferred(ws->s);
    free(ws->target_rr);
    free(ws->ups_pos);
    free(ws->route_rr);
    free(ws->buckets);
    free(ws->rstats);
    free(ws->ustats);
    free(ws);
}

/* What makes two upstream connections to one address interchangeable: plain
 * TCP (0), or TLS with the same name sent and checked and the same trust. */
static uint64_t conn_key(const struct cfg_upstream_tls *tls, const struct up_target *t)
{
    if (tls == NULL)
        return 0;
    uint64_t h = gw_hash_str(tls->sni ? tls->sni : t->name);
    h = h * 1099511628211ull ^ gw_hash_str(tls->ca_file ? tls->ca_file : "");
    h = (h * 1099511628211ull) ^ (tls->verify ? 0x5a00 : 0xa500);
    return h | 1;       /* never 0 (plain); bit 0 carries nothing else */
}

static struct gw_wsnap *wsnap_new(struct gw_worker *w, struct gw_snapshot *s)
{
    struct gw_wsnap *ws = calloc(1, sizeof(*ws));
    size_t nt = s->ups.ntargets ? s->ups.ntargets : 1;

    if (ws == NULL)
        abort();
    ws->s = s;
    ws->target_rr = calloc(nt, sizeof(int64_t));
    ws->route_rr = calloc(s->route_rr_len ? s->route_rr_len : 1, sizeof(int64_t));
    ws->buckets = calloc(nt, sizeof(*ws->buckets));
    ws->ups_pos = calloc(s->ups.n ? s->ups.n : 1, sizeof(uint64_t));
    if (!ws->target_rr || !ws->route_rr || !ws->buckets || !ws->ups_pos)
        abort();
    /* each worker draws its own sequence */
    ws->rng = (gw_mono_ns() ^ ((uint64_t)(w->id + 1) * 0x9e3779b97f4a7c15ull)) | 1;
    for (size_t i = 0; i < s->ups.n; i++)
        for (size_t j = 0; j < s->ups.v[i].ntargets; j++) {
            const struct up_target *t = &s->ups.v[i].targets[j];
            if (t->salen) {
                ws->buckets[t->gidx] = pool_bucket_for(&w->pool, (const struct sockaddr *)&t->sa, t->salen,
                                                       conn_key(s->ups.v[i].cfg->tls, t));
                ws->buckets[t->gidx]->mark = s->version;
            }
        }
    ws->rstats = calloc(s->cfg->nroutes ? s->cfg->nroutes : 1, sizeof(*ws->rstats));
    ws->ustats = calloc(s->cfg->nupstreams ? s->cfg->nupstreams : 1, sizeof(*ws->ustats));
    if (!ws->rstats || !ws->ustats)
        abort();
    ws->unmatched = gw_stats_route(&w->stats, "_unmatched");
    for (size_t i = 0; i < s->cfg->nupstreams; i++)
        ws->ustats[i] = gw_stats_ups(&w->stats, s->cfg->upstreams[i].name);
    ws->to_header = gw_common_timeout(w, s->cfg->client_header_ms);
    ws->to_idle = gw_common_timeout(w, s->cfg->client_idle_ms);
    return ws;
}

struct gw_route_stats *gw_wsnap_route_stats(struct gw_worker *w, struct gw_wsnap *ws,
                                            const struct cfg_route *r)
{
    char name[32];
    const char *n = r->name;

    if (n == NULL) {
        snprintf(name, sizeof(name), "_%zu", r->index);     /* unnamed: its position */
        n = name;
    }
    return ws->rstats[r->index] = gw_stats_route(&w->stats, n);
}

void gw_wsnap_unpin(struct gw_worker *w, struct gw_wsnap *ws)
{
    if (--ws->pins > 0 || !ws->retired)
        return;
    for (struct gw_wsnap **pp = &w->retired; *pp; pp = &(*pp)->next)
        if (*pp == ws) {
            *pp = ws->next;
            break;
        }
    wsnap_free(ws);
}

bool gw_wsnap_refresh(struct gw_worker *w)
{
    struct gw_snapshot *s;
    uint64_t v = atomic_load_explicit(&g_snap_version, memory_order_acquire);

    if (v == w->version)
        return false;
    pthread_mutex_lock(&g_snap_lock);
    s = g_snap;
    gw_snapshot_ref(s);
    pthread_mutex_unlock(&g_snap_lock);

    struct gw_wsnap *old = w->cur;
    w->cur = wsnap_new(w, s);
    w->version = s->version;
    gw_alog_set(&w->alog, s->alog_fd);
    up_pool_drop_unused(&w->pool, s->version);     /* targets that went: no idle connections stay */
    if (old) {
        if (old->pins == 0) {
            wsnap_free(old);
        } else {
            old->retired = true;
            old->next = w->retired;
            w->retired = old;
        }
    }
    return true;
}

/* ---- the worker's life ---- */

void gw_wstate_init(struct gw_worker *w)
{
    w->tmo.base = w->base;
    w->alog.fd = -1;
    pool_init(&w->pool);
    fl_init(&w->free_small, FREE_SMALL_MAX);
    fl_init(&w->free_large, FREE_LARGE_MAX);
    fl_init(&w->free_txns, GW_FREE_TXN_MAX);
    fl_init(&w->free_rids, GW_FREE_TXN_MAX);
    gw_pipe_pool_init(&w->pipes);
    if (getrandom(&w->rid_seed, sizeof(w->rid_seed), 0) != sizeof(w->rid_seed))
        w->rid_seed = gw_mono_ns() ^ ((uint64_t)w->id << 56);
}

void gw_wstate_free(struct gw_worker *w)
{
    gw_pipe_pool_free(&w->pipes);      /* every txn gave its pipes back or closed them */
    gw_alog_free(&w->alog);
    if (w->cur)
        wsnap_free(w->cur);
    while (w->retired) {
        struct gw_wsnap *n = w->retired->next;
        wsnap_free(w->retired);
        w->retired = n;
    }
    w->cur = NULL;
    pool_destroy(&w->pool, gw_tls_session_free);
    gw_stats_free(&w->stats);
    fl_drain(&w->free_small, buf_free_node);
    fl_drain(&w->free_large, buf_free_node);
    fl_drain(&w->free_rids, rid_free_node);
}

void gw_ctimer_set(struct gw_worker *w, struct lt_hnode *n, uint64_t at)
{
    lt_heap_remove(&w->ctimers, n);
    n->at = at;
    lt_heap_push(&w->ctimers, n);
    if (w->ctimer_at == 0 || at < w->ctimer_at) {
        uint64_t now = lt_now_ms(), left = at > now ? at - now : 0;
        struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
        event_add(w->ctimer, &tv);
        w->ctimer_at = at;
    }
}
