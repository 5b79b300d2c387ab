/* worker.c - worker threads: the event loop, accept, listeners across
 * reloads, commands from main.  A worker's buffers, clock and snapshot
 * views are wstate.c's; its client connections are proxy.h's. */
#include "worker.h"
#include "proxy.h"
#include "tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct gw_worker *g_workers;
int g_nworkers;

struct gw_lev {                         /* a worker's accept event */
    struct gw_listener *l;
    struct event *ev;
    struct gw_worker *w;
};

static void up_loop_init(struct gw_worker *w)
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

/* Switch to the published snapshot (if newer) and follow its listeners.
 * A request may have switched the view first (gw_wsnap_refresh at its
 * start), so the listeners are synced whether or not this switched. */
static void worker_refresh(struct gw_worker *w)
{
    gw_wsnap_refresh(w);
    levs_sync(w, w->cur->s);
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
        worker_refresh(w);
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
    if (w->cur)
        gw_queue_tick(w);
    gw_gc(w);
    worker_maybe_exit(w);
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;
    char name[16];

    snprintf(name, sizeof(name), "sluice-w%d", w->id);
    pthread_setname_np(pthread_self(), name);   /* as ps -L and top -H show it */

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
    gw_guard_free(w);
    levs_sync(w, NULL);
    free(w->levs);
    event_free(w->tick);
    event_free(w->cmd_ev);
    event_free(w->accept_resume);
    event_free(w->qev);
    event_free(w->ctimer);
    lt_heap_free(&w->ctimers);
    event_base_free(w->base);
    close(w->cmd_fd);
    gw_wstate_free(w);
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
        w->cmd_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->cmd_ev = event_new(w->base, w->cmd_fd, EV_READ | EV_PERSIST, cmd_cb, w);
        w->tick = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
        w->accept_resume = event_new(w->base, -1, 0, accept_resume_cb, w);
        w->qev = event_new(w->base, -1, 0, gw_queue_run, w);
        w->ctimer = event_new(w->base, -1, 0, gw_conn_timers, w);
        event_add(w->cmd_ev, NULL);
        event_add(w->tick, &tick);
        gw_wstate_init(w);
        gw_guard_init(w);
        up_loop_init(w);
        worker_refresh(w);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return -1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}
