/*
 * upconn_test.c - upstream/upconn.c on real loopback sockets and a libevent
 * base: connect and the owner's on_io, check-in under the pool's policy and
 * reuse, a pooled connection closed by its peer, a refused connect reported
 * to the owner and to health/, the lazy timer's on_timeout, and that close
 * clears the owner's slot.  (TLS is covered through the integration suite.)
 */
/* before tap.h: "ok" is an identifier in the code under test */
#include "../../upstream/upconn.c"
#include "../../pool/pool.c"
#include "../../health/health.c"
#include "../../core/nidx.c"
#include "../../core/arena.c"
#include "../../core/io.c"
#include "../../core/tls_io.c"
#include "../../core/ltimer.c"
#include "../../core/counter.c"
#include "../../core/log.c"
#include "../../core/esc.c"
#include "tap.h"

#include <arpa/inet.h>
#include <unistd.h>

struct owner {
    int io, timeouts, conn_err;
    struct up_conn *up;             /* the slot upconn clears on close */
};

static void on_io(void *o, struct up_conn *u)
{
    ((struct owner *)o)->io++;
}

static void on_connect_error(void *o, struct up_conn *u, int err)
{
    struct owner *w = o;
    w->conn_err = err;
    up_conn_fail(u, false);
}

static void on_timeout(void *o, struct up_conn *u)
{
    ((struct owner *)o)->timeouts++;
}

static const struct up_conn_ops ops = { on_io, on_connect_error, on_timeout };

static _Atomic uint64_t g_conns, g_hits, g_misses, g_hs[3];
static struct gw_hist g_connect;

/* Runs the loop until *flag is non-zero (or about 2 s pass). */
static void run_until(struct event_base *base, const int *flag)
{
    for (int i = 0; i < 400 && *flag == 0; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (*flag == 0)
            usleep(5000);
    }
}

static int listener(struct sockaddr_in *sa)
{
    socklen_t sl = sizeof(*sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)sa, sizeof(*sa));
    listen(fd, 8);
    getsockname(fd, (struct sockaddr *)sa, &sl);
    return fd;
}

static struct hc_group *t_group;

static void target_of(struct up_target *t, const struct sockaddr_in *sa)
{
    memset(t, 0, sizeof(*t));
    memcpy(&t->sa, sa, sizeof(*sa));
    t->salen = sizeof(*sa);
    snprintf(t->text, sizeof(t->text), "127.0.0.1:%u", ntohs(sa->sin_port));
    struct hc_member m = { (const struct sockaddr *)&t->sa, t->salen, t->text, NULL };
    t_group = hc_group_new("u", &hc_policy_default, &m, 1);
    t->health = t_group->t[0];
}

static const struct pool_facts clean = {
    .resp_done = true, .req_sent = true, .keepalive = true, .max_idle = 4,
};

int main(void)
{
    struct event_base *base = event_base_new();
    struct lt_common tmo = { .base = base };
    struct lt_turn turn = { 0 };
    struct up_loop l = {
        .base = base, .tmo = &tmo, .turn = &turn, .ops = &ops,
        .cnt = { &g_conns, &g_hits, &g_misses, g_hs, &g_connect },
    };
    struct pool p;
    struct sockaddr_in sa;
    struct up_target t;
    struct owner o = { 0 };
    int err = 0;

    gw_log_level = GW_LOG_ERROR + 1;    /* quiet */
    pool_init(&p);
    int lfd = listener(&sa);
    target_of(&t, &sa);
    struct pool_bucket *b = pool_bucket_for(&p, (struct sockaddr *)&sa, sizeof(sa), 0);

    /* connect */
    ok(up_conn_reuse(&l, b, &t, &o, &o.up) == NULL && gw_cnt_get(&g_misses) == 1,
       "an empty bucket: no reuse, a miss counted");
    ok(up_conn_open(&l, &t, NULL, NULL, b, 1000, 0, &o, &o.up, &err) == UP_OPEN_OK && o.up != NULL,
       "open: the owner's slot holds the new connection");
    struct up_conn *u = o.up;
    ok(u->magic == UP_MAGIC && gw_cnt_get(&g_conns) == 1, "magic set, the gauge counts it");
    run_until(base, &o.io);
    ok(o.io > 0 && u->connected && u->w_ready, "the connect completes: on_io, connected, writable");
    uint64_t nobs = 0;
    for (int i = 0; i <= GW_HIST_N; i++)
        nobs += gw_cnt_get(&g_connect.b[i]);
    ok(nobs == 1, "connect time observed once (have %llu)", (unsigned long long)nobs);
    int sfd = accept(lfd, NULL, NULL);

    /* check-in, reuse */
    struct pool_facts f = clean;
    up_conn_checkin(&o.up, b, &f, 60000);
    ok(o.up == NULL && u->owner == NULL && b->count == 1 && !u->closed,
       "a clean connection is pooled; the owner's pointer is cleared");
    struct owner o2 = { 0 };
    ok(up_conn_reuse(&l, b, &t, &o2, &o2.up) == u && o2.up == u && u->reused && u->owner == &o2 &&
       gw_cnt_get(&g_hits) == 1, "reuse hands it to the next owner, a hit counted");
    f = clean;
    up_conn_checkin(&o2.up, b, &f, 60000);

    /* the peer closes a pooled connection */
    close(sfd);
    /* (u is freed once closed: watch the bucket) */
    for (int i = 0; i < 400 && b->count > 0; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(2000);
    }
    int closed = b->count == 0 && gw_cnt_get(&g_conns) == 0 && l.gc == NULL;
    ok(closed, "a pooled connection the peer closed is closed and freed (count %u)", b->count);

    /* an unclean check-in closes */
    struct owner o3 = { 0 };
    ok(up_conn_open(&l, &t, NULL, NULL, b, 1000, 0, &o3, &o3.up, &err) == UP_OPEN_OK, "open again");
    run_until(base, &o3.io);
    sfd = accept(lfd, NULL, NULL);
    f = clean;
    f.keepalive = false;
    u = o3.up;
    up_conn_checkin(&o3.up, b, &f, 60000);
    ok(o3.up == NULL && u->closed && b->count == 0, "Connection: close: not pooled, closed");
    up_conn_gc(&l);
    close(sfd);

    /* the lazy timer */
    struct owner o4 = { 0 };
    ok(up_conn_open(&l, &t, NULL, NULL, b, 1000, 0, &o4, &o4.up, &err) == UP_OPEN_OK, "open a third");
    run_until(base, &o4.io);
    sfd = accept(lfd, NULL, NULL);
    up_conn_timer_arm(o4.up, 1000);
    up_conn_timer_arm(o4.up, 30);   /* earlier: re-armed */
    run_until(base, &o4.timeouts);
    ok(o4.timeouts == 1 && o4.up != NULL, "the earlier deadline fires on_timeout; still open");
    u = o4.up;
    up_conn_close(u);
    up_conn_close(u);
    up_conn_close(NULL);
    ok(o4.up == NULL && u->closed, "close clears the owner's slot (twice and NULL: no-ops)");
    up_conn_gc(&l);
    close(sfd);

    /* pool.max_connections: a connection holds a slot of its target until it closes */
    ok(atomic_load(&t.health->conns) == 0, "every connection closed: no slot held");
    struct owner o6 = { 0 }, o7 = { 0 }, o8 = { 0 };
    ok(up_conn_open(&l, &t, NULL, NULL, b, 1000, 1, &o6, &o6.up, &err) == UP_OPEN_OK &&
       atomic_load(&t.health->conns) == 1, "max 1: the first open takes the slot");
    ok(up_conn_open(&l, &t, NULL, NULL, b, 1000, 1, &o7, &o7.up, &err) == UP_OPEN_FULL &&
       o7.up == NULL && atomic_load(&t.health->conns) == 1, "max 1: the second is refused, nothing opened");
    run_until(base, &o6.io);
    sfd = accept(lfd, NULL, NULL);
    f = clean;
    up_conn_checkin(&o6.up, b, &f, 60000);
    ok(b->count == 1 && atomic_load(&t.health->conns) == 1, "a pooled connection keeps its slot");
    ok(up_conn_reuse(&l, b, &t, &o7, &o7.up) != NULL, "reuse needs no new slot");
    up_conn_close(o7.up);
    up_conn_gc(&l);
    ok(atomic_load(&t.health->conns) == 0, "closing gives the slot back");
    ok(up_conn_open(&l, &t, NULL, NULL, b, 1000, 1, &o8, &o8.up, &err) == UP_OPEN_OK,
       "max 1: a slot is free again");
    up_conn_close(o8.up);
    up_conn_gc(&l);
    close(sfd);

    /* refused: the owner hears of it, health/ marks the target down */
    close(lfd);
    struct owner o5 = { 0 };
    int r = up_conn_open(&l, &t, NULL, NULL, b, 1000, 0, &o5, &o5.up, &err);
    if (r == UP_OPEN_CONNECT_ERR) {
        o5.conn_err = err;
        up_conn_fail(o5.up, false);
    } else {
        run_until(base, &o5.conn_err);
    }
    ok(o5.conn_err == ECONNREFUSED, "a refused connect is reported (err %d)", o5.conn_err);
    ok(o5.up == NULL && !hc_bit(t_group->bits, 0), "the connection closed, the target is ejected");
    ok(gw_cnt_get(&g_conns) == 0, "the gauge is back to 0");
    up_conn_gc(&l);

    up_pool_close_all(&p);
    up_conn_gc(&l);
    pool_destroy(&p, NULL);
    hc_group_free(t_group);
    hc_shutdown();
    event_base_free(base);
    return tap_done();
}
