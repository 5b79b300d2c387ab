/* upconn.c - the upstream connection: connect, TLS, its events and timer,
 * pooling and closing (see upconn.h). */
#include "upconn.h"
#include "../core/check.h"
#include "../core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void up_event(evutil_socket_t fd, short what, void *arg);
static void up_timer_cb(evutil_socket_t fd, short what, void *arg);

static struct up_conn *of_node(struct pool_node *pn)
{
    return (struct up_conn *)((char *)pn - offsetof(struct up_conn, pn));
}

void up_conn_close_why(struct up_conn *u, enum pool_close why)
{
    if (u == NULL || u->closed)
        return;
    struct up_loop *l = u->loop;
    u->closed = true;
    if (u->home)
        pool_count(&u->home->closed[why], 1);
    gw_cnt_add(l->cnt.conns, (uint64_t)-1);
    if (u->held)
        atomic_fetch_sub_explicit(&u->held->conns, 1, memory_order_relaxed);
    u->held = NULL;
    pool_remove(&u->pn);
    event_del(&u->ev);
    event_del(&u->timer);
    if (u->io.ctx)
        gw_tls_close(&u->io);
    close(u->io.fd);
    u->io.fd = -1;
    if (u->slot && *u->slot == u)
        *u->slot = NULL;
    u->slot = NULL;
    u->owner = NULL;
    u->gc_next = l->gc;
    l->gc = u;
}

void up_conn_close(struct up_conn *u)
{
    up_conn_close_why(u, POOL_CLOSE_ABORTED);
}

void up_conn_gc_free(struct up_loop *l)
{
    while (l->gc) {
        struct up_conn *u = l->gc;
        l->gc = u->gc_next;
        u->magic = 0;
        free(u);
    }
}

void up_conn_fail(struct up_conn *u, bool stale)
{
    /* a certificate we refuse says nothing about the target's health */
    if (!stale && !u->tls_refused && u->t->health)
        hc_fail(u->t->health, lt_now_ms());
    up_conn_close_why(u, POOL_CLOSE_FAILED);
}

/* ---- opening ---- */

struct up_conn *up_conn_reuse(struct up_loop *l, struct pool_bucket *b, const struct up_target *t,
                              void *owner, struct up_conn **slot)
{
    struct pool_node *pn;

    /* the most recent is the least likely stale */
    if (b && (pn = pool_get(b)) != NULL) {
        struct up_conn *u = of_node(pn);
        u->owner = owner;
        u->slot = slot;
        u->t = t;
        u->reused = true;
        u->r_ready = false;
        *slot = u;
        gw_cnt_add(l->cnt.pool_hits, 1);
        return u;
    }
    gw_cnt_add(l->cnt.pool_misses, 1);
    return NULL;
}

/* A new connection speaks TLS: SNI and verification from the upstream's
 * settings, the bucket's last session offered for resumption and its new
 * tickets kept there. */
static bool up_tls_setup(struct up_conn *u, SSL_CTX *ctx, const struct cfg_upstream_tls *tc,
                         struct pool_bucket *b)
{
    char ip[INET6_ADDRSTRLEN] = "";
    const struct up_target *t = u->t;

    if (t->name[0] == '\0') {
        const void *a = t->sa.ss_family == AF_INET6
                            ? (const void *)&((const struct sockaddr_in6 *)&t->sa)->sin6_addr
                            : (const void *)&((const struct sockaddr_in *)&t->sa)->sin_addr;
        inet_ntop(t->sa.ss_family, a, ip, sizeof(ip));
    }
    /* SNI: the configured one, else the target's name (an IP has none) */
    const char *sni = tc->sni ? tc->sni : t->name[0] ? t->name : NULL;
    SSL *ssl = gw_tls_client_new(ctx, u->io.fd, sni, tc->verify, ip, b ? b->user : NULL);
    if (ssl == NULL)
        return false;
    if (!gw_tls_attach(&u->io, ssl)) {
        SSL_free(ssl);
        return false;
    }
    if (b)
        gw_tls_session_slot(ssl, (SSL_SESSION **)&b->user);
    u->hs = true;
    return true;
}

enum up_open up_conn_open(struct up_loop *l, const struct up_target *t, SSL_CTX *ctx,
                          const struct cfg_upstream_tls *tc, struct pool_bucket *b,
                          uint32_t connect_ms, uint32_t max_conns, void *owner,
                          struct up_conn **slot, int *err)
{
    if (!up_slot_take(t, max_conns))
        return UP_OPEN_FULL;
    struct up_conn *u = calloc(1, sizeof(*u));

    if (u == NULL)
        abort();
    u->held = t->health;
    u->magic = UP_MAGIC;
    u->loop = l;
    u->t = t;
    u->owner = owner;
    u->home = b;
    u->io.ops = &gw_io_plain;
    u->io.fd = socket(t->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->io.fd == -1) {
        gw_log(GW_LOG_ERROR, "socket: %s", strerror(errno));
        if (u->held)
            atomic_fetch_sub_explicit(&u->held->conns, 1, memory_order_relaxed);
        free(u);
        return UP_OPEN_INTERNAL;
    }
    if (ctx && !up_tls_setup(u, ctx, tc, b)) {
        gw_log(GW_LOG_ERROR, "upstream %s: cannot set up TLS", t->text);
        close(u->io.fd);
        if (u->held)
            atomic_fetch_sub_explicit(&u->held->conns, 1, memory_order_relaxed);
        free(u);
        *slot = NULL;
        return UP_OPEN_INTERNAL;
    }
    int one = 1;
    gw_cnt_add(l->cnt.conns, 1);
    if (b)
        pool_count(&b->opened, 1);
    u->connect_start = lt_turn_ns(l->turn);
    setsockopt(u->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&u->ev, l->base, u->io.fd, EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST, up_event, u);
    event_assign(&u->timer, l->base, -1, 0, up_timer_cb, u);
    u->slot = slot;
    *slot = u;
    if (connect(u->io.fd, (const struct sockaddr *)&t->sa, t->salen) == 0) {
        u->connected = u->w_ready = true;
        gw_hist_observe(l->cnt.connect_time, lt_turn_ns(l->turn) - u->connect_start);
    } else if (errno != EINPROGRESS) {
        *err = errno;
        event_add(&u->ev, NULL);    /* up_conn_close() deletes it */
        return UP_OPEN_CONNECT_ERR;
    }
    event_add(&u->ev, NULL);
    up_conn_timer_arm(u, connect_ms);
    return UP_OPEN_OK;
}

int up_conn_handshake(struct up_conn *u, char *why, size_t whylen)
{
    if ((u->hs_want == GW_HS_WANT_READ && !u->r_ready) || (u->hs_want == GW_HS_WANT_WRITE && !u->w_ready))
        return UP_HS_WAIT;
    int r = gw_tls_handshake(&u->io, why + 15, whylen - 15);
    switch (r) {
    case GW_HS_DONE: {
        bool tx, rx;
        u->hs = false;
        u->hs_want = 0;
        up_conn_timer_off(u);
        gw_cnt_add(&u->loop->cnt.tls_hs[gw_tls_resumed(&u->io) ? 1 : 0], 1);
        gw_tls_pick_ops(&u->io, &tx, &rx);
        u->r_ready = true;      /* bytes may wait inside OpenSSL: no edge would tell */
        return UP_HS_DONE;
    }
    case GW_HS_WANT_READ:
        u->hs_want = (uint8_t)r;
        u->r_ready = false;
        return UP_HS_WAIT;
    case GW_HS_WANT_WRITE:
        u->hs_want = (uint8_t)r;
        u->w_ready = false;
        return UP_HS_WAIT;
    default:
        gw_cnt_add(&u->loop->cnt.tls_hs[2], 1);
        memcpy(why, "TLS handshake: ", 15);
        u->tls_refused = true;
        return UP_HS_FAILED;
    }
}

/* ---- events ---- */

static void up_event(evutil_socket_t fd, short what, void *arg)
{
    struct up_conn *u = arg;

    CHECK_MAGIC(u, UP_MAGIC);
    struct up_loop *l = u->loop;

    if (u->owner == NULL) {
        /* Idle in the pool: any readiness is the server closing (or junk).
         * Either way the connection is no longer clean. */
        if (what & (EV_READ | EV_CLOSED))
            up_conn_close_why(u, POOL_CLOSE_PEER);
        up_conn_gc(l);
        return;
    }
    if (what & (EV_READ | EV_CLOSED))
        u->r_ready = true;
    if (what & EV_CLOSED)
        u->rdhup = true;
    if (what & EV_WRITE)
        u->w_ready = true;
    if (!u->connected && (what & (EV_WRITE | EV_READ))) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(u->io.fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            l->ops->on_connect_error(u->owner, u, err);
            return;
        }
        u->connected = true;
        if (!u->hs)
            up_conn_timer_off(u);   /* a TLS handshake stays under connect_ms */
        gw_hist_observe(l->cnt.connect_time, lt_turn_ns(l->turn) - u->connect_start);
    }
    l->ops->on_io(u->owner, u);
}

static void up_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct up_conn *u = arg;

    CHECK_MAGIC(u, UP_MAGIC);
    struct up_loop *l = u->loop;

    if (!lt_due(&u->timer, &u->deadline_ms, &u->timer_at_ms))
        return;
    if (u->owner == NULL) {
        up_conn_close_why(u, POOL_CLOSE_IDLE_TIMEOUT);
        up_conn_gc(l);
        return;
    }
    l->ops->on_timeout(u->owner, u);
}

/* ---- the pool ---- */

void up_conn_checkin(struct up_conn **up, struct pool_bucket *b, struct pool_facts *f,
                     uint32_t idle_ms)
{
    struct up_conn *u = *up;

    if (u == NULL)
        return;
    *up = NULL;
    u->owner = NULL;
    u->slot = NULL;
    f->has_bucket = b != NULL;
    /* Readiness seen while we owned it will not be reported again (edge
     * triggered): stray bytes or a FIN would reach the next request.  A
     * response whose last read took exactly its last bytes leaves the
     * readiness unconsumed though nothing is left: a plain socket is asked
     * (one peek) rather than closed for it, so whether a connection is
     * pooled does not depend on how the bytes happened to arrive. */
    if (u->r_ready && !u->rdhup && u->io.ctx == NULL && pool_may_keep(f)) {
        char one;
        ssize_t k = recv(u->io.fd, &one, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            u->r_ready = false;
    }
    f->unread = u->r_ready || u->rdhup || (u->io.ctx && gw_tls_pending(&u->io));
    if (!pool_may_keep(f)) {
        up_conn_close_why(u, POOL_CLOSE_NOT_REUSABLE);
        return;
    }
    if (u->lowat) {     /* pooled: the next request may copy */
        gw_splice_lowat(u->io.fd, false);
        u->lowat = false;
    }
    up_conn_timer_off(u);
    u->r_ready = false;
    struct pool_node *old = pool_checkin(b, &u->pn, lt_now_ms(), idle_ms, f->max_idle);
    if (old)
        up_conn_close_why(of_node(old), POOL_CLOSE_OVER_CAP);
}

static void close_node(struct pool_node *pn, enum pool_close why)
{
    up_conn_close_why(of_node(pn), why);
}

void up_pool_sweep(struct pool *p, uint64_t now_ms)
{
    pool_sweep(p, now_ms, close_node);
}

static void close_bucket(struct pool_bucket *b, void *arg)
{
    pool_bucket_close_all(b, POOL_CLOSE_SHUTDOWN, close_node);
}

void up_bucket_close_idle(struct pool_bucket *b, enum pool_close why)
{
    pool_bucket_close_all(b, why, close_node);
}

void up_pool_close_all(struct pool *p)
{
    pool_foreach(p, close_bucket, NULL);
}

static void drop_bucket(struct pool_bucket *b, void *arg)
{
    if (b->mark != *(const uint64_t *)arg)
        pool_bucket_close_all(b, POOL_CLOSE_RELOAD, close_node);
}

void up_pool_drop_unused(struct pool *p, uint64_t version)
{
    pool_foreach(p, drop_bucket, &version);
}
