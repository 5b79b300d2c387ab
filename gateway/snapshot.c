/* snapshot.c - immutable runtime configs: build, share, publish, free. */
#include "snapshot.h"
#include "../upstream/dns.h"
#include "tls.h"
#include "../core/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pthread_mutex_t g_snap_lock = PTHREAD_MUTEX_INITIALIZER;
struct gw_snapshot *g_snap;
_Atomic uint64_t g_snap_version;

static int listen_socket(const struct sockaddr_storage *sa, socklen_t salen, char *err, size_t errlen,
                         const char *text)
{
    int one = 1;
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    if (sa->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)sa, salen) == -1)
        goto fail;
    if (listen(fd, 4096) == -1)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "cannot listen on %s: %s", text, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

static struct gw_listener *listener_new(const struct cfg_listener *cl, int nworkers,
                                        char *err, size_t errlen)
{
    struct gw_listener *l = calloc(1, sizeof(*l));
    int i;

    if (l == NULL)
        return NULL;
    atomic_init(&l->refs, 1);
    memcpy(&l->sa, &cl->addr.sa, cl->addr.salen);
    l->salen = cl->addr.salen;
    l->port = cl->addr.port;
    snprintf(l->text, sizeof(l->text), "%s", cl->addr.text);
    l->nfds = nworkers;
    l->fds = malloc(sizeof(int) * (size_t)nworkers);
    if (l->fds == NULL) {
        free(l);
        return NULL;
    }
    for (i = 0; i < nworkers; i++) {
        l->fds[i] = listen_socket(&l->sa, l->salen, err, errlen, l->text);
        if (l->fds[i] == -1)
            break;
    }
    if (i < nworkers) {
        while (i-- > 0)
            close(l->fds[i]);
        free(l->fds);
        free(l);
        return NULL;
    }
    return l;
}

void gw_listener_unref(struct gw_listener *l)
{
    if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    /* Workers close their own fds when they stop using a listener; what is
     * left was never handed over (a snapshot that was never published). */
    for (int i = 0; i < l->nfds; i++)
        if (l->fds[i] != -1)
            close(l->fds[i]);
    free(l->fds);
    free(l);
}

static void snapshot_free(struct gw_snapshot *s)
{
    if (s->listeners)
        for (size_t i = 0; i < s->cfg->nlisteners; i++)
            gw_listener_unref(s->listeners[i]);
    free(s->listeners);
    free(s->route_rr_off);
    up_set_free(&s->ups);
    rt_table_free(s->rt);
    gw_tls_set_free(s->tls);
    if (s->alog_fd >= 0)
        close(s->alog_fd);
    cfg_free(s->cfg);
    free(s);
}

struct gw_snapshot *gw_snapshot_build(struct sl_config *cfg, struct gw_tls_set *tls,
                                      const struct gw_snapshot *prev,
                                      int nworkers, char *err, size_t errlen)
{
    struct gw_snapshot *s = calloc(1, sizeof(*s));
    char warn[1024];

    err[0] = '\0';
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        cfg_free(cfg);
        gw_tls_set_free(tls);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->cfg = cfg;
    s->tls = tls;
    s->alog_fd = gw_alog_open(cfg->access_log);
    if (s->alog_fd == -2) {
        snprintf(err, errlen, "/access_log: cannot open %s: %s", cfg->access_log, strerror(errno));
        s->alog_fd = -1;
        goto fail;
    }
    /* a reload that moved no route in the index shares the running one */
    s->rt = rt_table_update(prev ? prev->rt : NULL, prev ? prev->cfg : NULL, cfg, &s->rt_shared);
    if (s->rt == NULL) {
        snprintf(err, errlen, "out of memory building the route table");
        goto fail;
    }
    up_dns_servers(cfg->dns_servers);
    if (up_set_build(cfg->upstreams, cfg->nupstreams, &s->ups, warn, sizeof(warn),
                     (int)cfg->dns_timeout_ms) != 0) {
        snprintf(err, errlen, "out of memory building upstreams");
        goto fail;
    }
    if (warn[0])
        gw_log(GW_LOG_WARN, "%s", warn);
    s->route_rr_off = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(size_t));
    if (s->route_rr_off == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        s->route_rr_off[i] = s->route_rr_len;
        s->route_rr_len += cfg->routes[i]->nbackends;
    }
    s->listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*s->listeners));
    if (s->listeners == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *cl = &cfg->listeners[i];
        struct gw_listener *l = NULL;
        /* keep the sockets of a listener that stays: no connection is refused */
        for (size_t j = 0; prev && j < prev->cfg->nlisteners; j++) {
            struct gw_listener *pl = prev->listeners[j];
            if (pl->salen == cl->addr.salen && memcmp(&pl->sa, &cl->addr.sa, pl->salen) == 0) {
                l = pl;
                atomic_fetch_add(&l->refs, 1);
                break;
            }
        }
        if (l == NULL)
            l = listener_new(cl, nworkers, err, errlen);
        if (l == NULL) {
            if (!err[0])
                snprintf(err, errlen, "out of memory");
            goto fail;
        }
        s->listeners[i] = l;
    }
    return s;
fail:
    snapshot_free(s);
    return NULL;
}

void gw_snapshot_ref(struct gw_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void gw_snapshot_unref(struct gw_snapshot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(s);
}

static pthread_mutex_t reap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_snapshot *reap_list;

void gw_snapshot_unref_deferred(struct gw_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_lock(&reap_lock);
    s->reap_next = reap_list;
    reap_list = s;
    pthread_mutex_unlock(&reap_lock);
}

void gw_snapshot_reap(void)
{
    pthread_mutex_lock(&reap_lock);
    struct gw_snapshot *s = reap_list;
    reap_list = NULL;
    pthread_mutex_unlock(&reap_lock);
    while (s) {
        struct gw_snapshot *n = s->reap_next;
        snapshot_free(s);
        s = n;
    }
}

void gw_snapshot_publish(struct gw_snapshot *s)
{
    struct gw_snapshot *old;

    pthread_mutex_lock(&g_snap_lock);
    old = g_snap;
    s->version = (old ? old->version : 0) + 1;
    g_snap = s;
    atomic_store_explicit(&g_snap_version, s->version, memory_order_release);
    pthread_mutex_unlock(&g_snap_lock);
    /* health/ probes the running targets (publishes are serialised) */
    SSL_CTX *uctx[s->ups.n ? s->ups.n : 1];
    for (size_t i = 0; i < s->ups.n; i++)
        uctx[i] = gw_tls_upstream_ctx(s->tls, i);
    up_set_publish(&s->ups, uctx);
    gw_snapshot_unref(old);
}

struct gw_snapshot *gw_snapshot_current(void)
{
    pthread_mutex_lock(&g_snap_lock);
    struct gw_snapshot *s = g_snap;
    if (s)
        gw_snapshot_ref(s);
    pthread_mutex_unlock(&g_snap_lock);
    return s;
}
