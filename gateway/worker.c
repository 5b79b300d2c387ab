/* worker.c - worker threads: event loop, accept, snapshot switching, buffers. */
#include "gateway.h"
#include "../core/hash.h"
#include "tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define FREE_SMALL_MAX 1024
#define FREE_LARGE_MAX 32

uint64_t gw_mono_ns(void)
{
    return lt_mono_ns();
}

void gw_up_loop_init(struct gw_worker *w)
{
    w->up = (struct up_loop){
        .base = w->base,
        .tmo = &w->tmo,
        .turn = &w->turn,
        .ops = &gw_up_ops,
        .cnt = {
            .conns = &w->stats.upstream_conns,
            .pool_hits = &w->stats.pool_hits,
            .pool_misses = &w->stats.pool_misses,
            .tls_hs = w->stats.tls_hs[1],
            .connect_time = &w->stats.connect_time,
        },
    };
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

/* libevent keeps one queue per distinct duration ("common timeouts"), so
 * re-arming a connection's timer is O(1) instead of a heap operation. */
const struct timeval *gw_common_timeout(struct gw_worker *w, uint32_t ms)
{
    return lt_common_timeout(&w->tmo, ms);
}

/* ---- snapshot views ---- */

static void wsnap_free(struct gw_wsnap *ws)
{
    gw_snapshot_unref_deferred(ws->s);
    free(ws->target_rr);
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
    if (!ws->target_rr || !ws->route_rr || !ws->buckets)
        abort();
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

static void accept_cb(evutil_socket_t fd, short what, void *arg);

static void levs_sync(struct gw_worker *w, struct gw_snapshot *s)
{
    /* stop accepting on listeners the new snapshot no longer has */
    for (size_t i = 0; i < w->nlevs;) {
        struct gw_lev *lev = w->levs[i];
        bool keep = false;
        for (size_t j = 0; s && !w->draining && j < s->cfg->nlisteners; j++)
            keep |= s->listeners[j] == lev->l;
        if (keep) {
            i++;
            continue;
        }
        event_free(lev->ev);
        close(lev->l->fds[w->id]);
        lev->l->fds[w->id] = -1;
        free(lev);
        w->levs[i] = w->levs[--w->nlevs];
    }
    if (s == NULL || w->draining)
        return;
    for (size_t j = 0; j < s->cfg->nlisteners; j++) {
        struct gw_listener *l = s->listeners[j];
        bool have = false;
        for (size_t i = 0; i < w->nlevs; i++)
            have |= w->levs[i]->l == l;
        if (have || l->fds[w->id] == -1)
            continue;
        struct gw_lev **nl = realloc(w->levs, sizeof(*nl) * (w->nlevs + 1));
        struct gw_lev *lev = calloc(1, sizeof(*lev));
        if (nl == NULL || lev == NULL)
            abort();
        w->levs = nl;
        lev->l = l;
        lev->w = w;
        lev->ev = event_new(w->base, l->fds[w->id], EV_READ | EV_PERSIST, accept_cb, lev);
        if (!w->accept_paused)
            event_add(lev->ev, NULL);
        w->levs[w->nlevs++] = lev;
    }
}

void gw_worker_refresh(struct gw_worker *w)
{
    struct gw_snapshot *s;
    uint64_t v = atomic_load_explicit(&g_snap_version, memory_order_acquire);

    if (v == w->version)
        return;
    pthread_mutex_lock(&g_snap_lock);
    s = g_snap;
    gw_snapshot_ref(s);
    pthread_mutex_unlock(&g_snap_lock);

    struct gw_wsnap *old = w->cur;
    w->cur = wsnap_new(w, s);
    w->version = s->version;
    gw_alog_set(&w->alog, s->alog_fd);
    levs_sync(w, s);
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
}

/* ---- accept ---- */

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;

    w->accept_paused = false;
    if (!w->draining)
        for (size_t i = 0; i < w->nlevs; i++)
            event_add(w->levs[i]->ev, NULL);
}

static void accept_pause(struct gw_worker *w)
{
    /* Out of descriptors: the listen queue keeps the clients; retry in 100 ms
     * (relayd's approach) instead of spinning on a readable listener. */
    struct timeval tv = { 0, 100000 };

    w->accept_paused = true;
    for (size_t i = 0; i < w->nlevs; i++)
        event_del(w->levs[i]->ev);
    event_add(w->accept_resume, &tv);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct gw_lev *lev = arg;
    struct gw_worker *w = lev->w;
    uint32_t maxc = w->cur ? w->cur->s->cfg->max_connections : 0;

    for (int i = 0; i < 64 && !w->draining; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4((int)lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                gw_log(GW_LOG_WARN, "accept on %s: %s; pausing accepts for 100 ms",
                       lev->l->text, strerror(errno));
                accept_pause(w);
            }
            break;
        }
        if (maxc && atomic_load_explicit(&g_nconns, memory_order_relaxed) >= maxc) {
            close(fd);  /* over limits.max_connections */
            continue;
        }
        gw_conn_accept(w, lev->l, fd, (struct sockaddr *)&ss, sl);
    }
    gw_gc(w);
}

/* ---- commands from main ---- */

void gw_worker_command(struct gw_worker *w, uint32_t cmd)
{
    uint64_t one = 1;

    atomic_fetch_or(&w->cmd, cmd);
    if (write(w->cmd_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
        gw_log(GW_LOG_ERROR, "worker %d: cannot signal: %s", w->id, strerror(errno));
}

static void worker_maybe_exit(struct gw_worker *w)
{
    if (w->draining && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

static void cmd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    uint64_t v;

    if (read(fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
        return;
    uint32_t cmd = atomic_exchange(&w->cmd, 0);
    if (cmd & GW_CMD_STOP) {
        event_base_loopbreak(w->base);
        return;
    }
    if (cmd & GW_CMD_SNAPSHOT)
        gw_worker_refresh(w);
    if ((cmd & GW_CMD_DRAIN) && !w->draining) {
        w->draining = true;
        levs_sync(w, NULL);         /* stop accepting */
        gw_conns_drain(w);          /* close idle clients, the rest after their response */
        gw_gc(w);
    }
    worker_maybe_exit(w);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;

    gw_alog_flush(&w->alog);
    up_pool_sweep(&w->pool, gw_now_ms(w));
    gw_gc(w);
    worker_maybe_exit(w);
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;

    /* one turn at a time, so that gw_turn_ns() is read afresh in each;
     * event_base_dispatch() but for that (it returns 1 with no events) */
    while (!event_base_got_exit(w->base) && !event_base_got_break(w->base)) {
        w->turn.ok = false;
        if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
            break;
    }

    /* stopped: close what is left (drain deadline passed, or stop) */
    gw_conns_close_all(w);
    up_pool_close_all(&w->pool);
    gw_gc(w);
    gw_txns_free(w);
    gw_pipe_pool_free(&w->pipes);      /* every txn gave its pipes back or closed them */
    levs_sync(w, NULL);
    gw_alog_free(&w->alog);
    if (w->cur)
        wsnap_free(w->cur);
    while (w->retired) {
        struct gw_wsnap *n = w->retired->next;
        wsnap_free(w->retired);
        w->retired = n;
    }
    w->cur = NULL;
    free(w->levs);
    event_free(w->tick);
    event_free(w->cmd_ev);
    event_free(w->accept_resume);
    event_base_free(w->base);
    close(w->cmd_fd);
    pool_destroy(&w->pool, gw_tls_session_free);
    gw_stats_free(&w->stats);
    fl_drain(&w->free_small, buf_free_node);
    fl_drain(&w->free_large, buf_free_node);
    return NULL;
}

int gw_workers_start(struct gw_worker *ws, int n)
{
    sigset_t all, old;
    struct timeval tick = { 0, 200000 };

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);    /* signals go to main only */
    for (int i = 0; i < n; i++) {
        struct gw_worker *w = &ws[i];
        struct event_config *ec = event_config_new();
        w->id = i;
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(ec);
        event_config_free(ec);
        if (w->base == NULL)
            return -1;
        w->tmo.base = w->base;
        w->cmd_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->cmd_ev = event_new(w->base, w->cmd_fd, EV_READ | EV_PERSIST, cmd_cb, w);
        w->tick = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
        w->accept_resume = event_new(w->base, -1, 0, accept_resume_cb, w);
        event_add(w->cmd_ev, NULL);
        event_add(w->tick, &tick);
        w->alog.fd = -1;
        pool_init(&w->pool);
        gw_up_loop_init(w);
        fl_init(&w->free_small, FREE_SMALL_MAX);
        fl_init(&w->free_large, FREE_LARGE_MAX);
        fl_init(&w->free_txns, GW_FREE_TXN_MAX);
        gw_pipe_pool_init(&w->pipes);
        if (getrandom(&w->rid_seed, sizeof(w->rid_seed), 0) != sizeof(w->rid_seed))
            w->rid_seed = gw_mono_ns() ^ ((uint64_t)i << 56);
        gw_worker_refresh(w);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return -1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}
