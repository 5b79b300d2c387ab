/* upconn.c - the upstream connection below a transaction: closing it, TLS setup,
 * handing it to the pool (whose policy decides), and the pool's idle sweep. */
#include "conn.h"
#include "access_log.h"
#include "h1_fwd.h"
#include "../core/io.h"
#include "tls.h"
#include "../core/check.h"
#include "../core/sbuf.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void up_close(struct gw_upconn *u)
{
    if (u == NULL || u->closed)
        return;
    u->closed = true;
    cnt_sub1(&u->w->stats.upstream_conns);
    pool_remove(&u->pn);
    event_del(&u->ev);
    event_del(&u->timer);
    if (u->io.ctx)
        gw_tls_close(&u->io);
    close(u->io.fd);
    u->io.fd = -1;
    if (u->owner && u->owner->t && u->owner->t->up == u)
        u->owner->t->up = NULL;
    u->owner = NULL;
    u->gc_next = u->w->gc_ups;
    u->w->gc_ups = u;
}

/* A new upstream connection speaks TLS: SNI and verification from the
 * upstream's settings, the bucket's last session offered for resumption and
 * its new tickets kept there. */
bool up_tls_setup(struct gw_upconn *u, SSL_CTX *ctx, const struct cfg_upstream_tls *tc,
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

/* The txn is done with its upstream connection: pooled if the pool's
 * policy takes it (f: what the txn knows), else closed. */
void up_checkin(struct gw_conn *c, struct pool_facts *f)
{
    struct gw_upconn *u = c->t->up;

    if (u == NULL)
        return;
    c->t->up = NULL;
    u->owner = NULL;
    struct pool_bucket *b = c->t->ws->buckets[c->t->target->gidx];
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
        up_close(u);
        return;
    }
    if (u->lowat) {     /* pooled: the next request may copy */
        gw_splice_lowat(u->io.fd, false);
        u->lowat = false;
    }
    up_timer_off(u);
    u->r_ready = false;
    struct pool_node *old = pool_checkin(b, &u->pn, gw_now_ms(c->w),
                                         c->t->ups->cfg->pool_idle_timeout_ms, f->max_idle);
    if (old)
        up_close((struct gw_upconn *)((char *)old - offsetof(struct gw_upconn, pn)));
}

static void up_close_node(struct pool_node *pn)
{
    up_close((struct gw_upconn *)((char *)pn - offsetof(struct gw_upconn, pn)));
}

void gw_pool_sweep(struct gw_worker *w)
{
    pool_sweep(&w->pool, gw_now_ms(w), up_close_node);
}

static void close_bucket(struct pool_bucket *b, void *arg)
{
    pool_bucket_close_all(b, up_close_node);
}

void gw_pool_close_all(struct gw_worker *w)
{
    pool_foreach(&w->pool, close_bucket, w);
}

static void drop_bucket(struct pool_bucket *b, void *arg)
{
    if (b->mark != *(const uint64_t *)arg)
        close_bucket(b, NULL);
}

void gw_pool_drop_unused(struct gw_worker *w, uint64_t version)
{
    pool_foreach(&w->pool, drop_bucket, &version);
}
