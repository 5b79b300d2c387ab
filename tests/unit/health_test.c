/*
 * health_test.c - health/: the (upstream, address) registry and the bitmaps
 * derived from it, passive ejection (threshold, doubling bounded back-off,
 * the cap on ejected targets, 5xx), probe results (rise, fall, the first
 * probe of a new target), publish (policy changes, reload keeps state),
 * threads, and the prober itself against sockets of this process.
 *
 * Times are the caller's monotonic milliseconds (hc_fail, hc_tick), so
 * only the prober tests sleep.
 */
#include "tap.h"
#include "../../health/health.c"
#include "../../core/nidx.c"
#include "../../core/arena.c"
#include "../../health/prober.c"
#include "../../core/io.c"
#include "../../core/tls_io.c"
#include "../../core/ltimer.c"
#include "../../core/log.c"
#include "../../core/esc.c"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

/* A group of n targets 10.0.0.1..n:80 (or from addrs) under name. */
struct grp {
    struct sockaddr_in a[70];
    struct hc_member m[70];
    struct hc_group *g;
};

static struct hc_group *grp_new(struct grp *x, const char *name, const struct hc_policy *pol,
                                size_t n, uint16_t port)
{
    char ip[32];

    memset(x, 0, sizeof(*x));
    for (size_t i = 0; i < n; i++) {
        snprintf(ip, sizeof(ip), "10.0.%zu.%zu", i / 250, i % 250 + 1);
        x->a[i] = v4(ip, port);
        x->m[i].sa = (struct sockaddr *)&x->a[i];
        x->m[i].salen = sizeof(x->a[i]);
        x->m[i].host = "h";
    }
    x->g = hc_group_new(name, pol, x->m, n);
    return x->g;
}

static int nbits(const struct hc_group *g)
{
    int k = 0;
    for (size_t i = 0; i < g->n; i++)
        k += hc_bit(g->bits, i);
    return k;
}

static void publish1(struct hc_group *g)
{
    SSL_CTX *none = NULL;
    bool v = false;
    hc_publish(&g, &none, &v, 1);
}

/* ---- registry and bits ---- */

static void test_registry(void)
{
    struct grp a, b, c;
    struct hc_policy pol = hc_policy_default;

    grp_new(&a, "api", &pol, 3, 80);
    grp_new(&b, "api", &pol, 3, 80);
    grp_new(&c, "web", &pol, 3, 80);
    ok(a.g && b.g && c.g, "three groups");
    ok(a.g->t[0] == b.g->t[0] && a.g->t[2] == b.g->t[2], "the same (upstream, address): one state");
    ok(a.g->t[0] != c.g->t[0], "the same address in another upstream: another state");
    ok(nbits(a.g) == 3 && nbits(c.g) == 3, "new targets without checks start up (all bits set)");
    ok(strcmp(a.g->t[1]->text, "10.0.0.2:80") == 0, "a target's text is its address (%s)", a.g->t[1]->text);

    /* unresolved member: no state, bit clear */
    struct hc_member m[2] = { { NULL, 0, "x", NULL }, a.m[0] };
    struct hc_group *u = hc_group_new("api", &pol, m, 2);
    ok(u->t[0] == NULL && !hc_bit(u->bits, 0) && hc_bit(u->bits, 1),
       "an unresolved target has no state and a clear bit");

    /* 130 targets: three words */
    struct grp big;
    struct hc_member bm[130];
    struct sockaddr_in ba[130];
    for (int i = 0; i < 130; i++) {
        ba[i] = v4("10.9.0.1", (uint16_t)(1000 + i));
        bm[i] = (struct hc_member){ (struct sockaddr *)&ba[i], sizeof(ba[i]), "h", NULL };
    }
    big.g = hc_group_new("big", &pol, bm, 130);
    ok(nbits(big.g) == 130, "130 targets: 130 bits over three words");
    hc_fail(big.g->t[129], 100);
    ok(!hc_bit(big.g->bits, 129) && hc_bit(big.g->bits, 128) && nbits(big.g) == 129,
       "target 129 ejected: its bit (word 2) alone is clear");

    /* a failure seen through one group clears the bit in every group */
    hc_fail(a.g->t[1], 1000);
    ok(!hc_bit(a.g->bits, 1) && !hc_bit(b.g->bits, 1), "an ejection clears the bit in both groups");
    ok(hc_bit(c.g->bits, 1), "... not in the other upstream's");
    hc_group_free(u);
    hc_group_free(big.g);
    hc_group_free(a.g);
    hc_group_free(b.g);
    hc_group_free(c.g);
    hc_shutdown();
}

/* ---- passive ---- */

static void test_backoff(void)
{
    struct grp x;
    struct hc_policy pol = hc_policy_default;
    static const uint64_t want[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
    uint64_t now = 1000000;

    grp_new(&x, "u", &pol, 2, 80);
    publish1(x.g);
    struct hc_target *t = x.g->t[0];
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ok(hc_bit(x.g->bits, 0), "ejection %zu: up before it", i + 1);
        hc_fail(t, now);
        ok(!hc_bit(x.g->bits, 0), "ejection %zu: the bit is clear", i + 1);
        ok(t->ejected_until == now + want[i], "ejection %zu: %llu ms (have %llu)", i + 1,
           (unsigned long long)want[i], (unsigned long long)(t->ejected_until - now));
        hc_fail(t, now + 10);
        ok(t->ejected_until == now + want[i], "... a failure while ejected changes nothing");
        hc_tick(now + want[i] - 1);
        ok(!hc_bit(x.g->bits, 0), "... still out 1 ms before the end");
        hc_tick(now + want[i]);
        ok(hc_bit(x.g->bits, 0), "... back at %llu ms", (unsigned long long)want[i]);
        now += want[i];
    }
    ok(atomic_load(&t->ejections) == 7, "7 ejections counted");
    hc_answered(t, 200);
    ok(t->step == 0 && t->fails == 0, "an answer resets the back-off");
    hc_fail(t, now);
    ok(t->ejected_until == now + 1000, "after an answer the next ejection is 1 s again");
    hc_tick(now + 1000);

    /* consecutive_failures 3: two failures, an answer, two more: still up */
    hc_group_free(x.g);
    pol.outlier.failures = 3;
    grp_new(&x, "v", &pol, 2, 80);
    publish1(x.g);
    t = x.g->t[1];
    hc_fail(t, now);
    hc_fail(t, now);
    hc_answered(t, 200);
    hc_fail(t, now);
    hc_fail(t, now);
    ok(hc_bit(x.g->bits, 1), "consecutive_failures 3: 2, an answer, 2 more: still up");
    hc_fail(t, now);
    ok(!hc_bit(x.g->bits, 1), "... the third in a row ejects");
    hc_tick(now + 1000);

    /* consecutive_failures 0: passive ejection off */
    hc_group_free(x.g);
    pol.outlier.failures = 0;
    grp_new(&x, "w", &pol, 2, 80);
    for (int i = 0; i < 10; i++)
        hc_fail(x.g->t[0], now);
    ok(hc_bit(x.g->bits, 0), "consecutive_failures 0: never ejected");
    hc_group_free(x.g);
    hc_shutdown();
}

static void test_cap(void)
{
    struct grp x;
    struct hc_policy pol = hc_policy_default;
    uint64_t now = 5000;

    grp_new(&x, "four", &pol, 4, 80);
    publish1(x.g);
    for (int i = 0; i < 4; i++)
        hc_fail(x.g->t[i], now);
    ok(nbits(x.g) == 2, "4 targets all failing: only 2 ejected (half), 2 still picked");
    ok(x.g->t[2]->fails == 0 && x.g->t[2]->ejected_until == 0, "a refused ejection starts its count over");
    hc_tick(now + 1000);
    ok(nbits(x.g) == 4, "the ejections end: 4 up");
    hc_fail(x.g->t[3], now + 1000);
    ok(nbits(x.g) == 3 && !hc_bit(x.g->bits, 3), "then another may be ejected");
    hc_tick(now + 5000);
    hc_group_free(x.g);

    /* one target: the SPEC's passive health takes it down (503) */
    grp_new(&x, "one", &pol, 1, 80);
    publish1(x.g);
    hc_fail(x.g->t[0], now);
    ok(nbits(x.g) == 0, "a single target may be ejected (max(1, n/2))");
    hc_tick(now + 1000);
    hc_group_free(x.g);

    /* three targets, 50 %: one */
    grp_new(&x, "three", &pol, 3, 80);
    publish1(x.g);
    for (int i = 0; i < 3; i++)
        hc_fail(x.g->t[i], now);
    ok(nbits(x.g) == 2, "3 targets: at most 1 ejected");
    hc_tick(now + 1000);
    hc_group_free(x.g);

    /* max_ejection_percent 100: all; 0: none */
    pol.outlier.max_percent = 100;
    grp_new(&x, "all", &pol, 3, 80);
    publish1(x.g);
    for (int i = 0; i < 3; i++)
        hc_fail(x.g->t[i], now);
    ok(nbits(x.g) == 0, "max_ejection_percent 100: every target may go");
    hc_tick(now + 1000);
    hc_group_free(x.g);
    pol.outlier.max_percent = 0;
    grp_new(&x, "none", &pol, 3, 80);
    publish1(x.g);
    hc_fail(x.g->t[0], now);
    ok(nbits(x.g) == 3, "max_ejection_percent 0: none");
    hc_group_free(x.g);
    hc_shutdown();
}

static void test_5xx(void)
{
    struct grp x;
    struct hc_policy pol = hc_policy_default;

    grp_new(&x, "u", &pol, 2, 80);
    publish1(x.g);
    for (int i = 0; i < 20; i++)
        hc_answered(x.g->t[0], 503);
    ok(nbits(x.g) == 2, "5xx answers do not eject by default");
    hc_group_free(x.g);
    pol.outlier.consecutive_5xx = 3;
    grp_new(&x, "v", &pol, 2, 80);
    publish1(x.g);
    hc_answered(x.g->t[0], 500);
    hc_answered(x.g->t[0], 502);
    hc_answered(x.g->t[0], 404);
    hc_answered(x.g->t[0], 500);
    hc_answered(x.g->t[0], 500);
    ok(hc_bit(x.g->bits, 0), "consecutive_5xx 3: 2, a 404, 2 more: up");
    hc_answered(x.g->t[0], 504);
    ok(!hc_bit(x.g->bits, 0), "... the third 5xx in a row ejects");
    hc_group_free(x.g);
    hc_shutdown();
}

/* ---- active ---- */

static void test_probe_results(void)
{
    struct grp x;
    struct hc_policy pol = hc_policy_default;

    pol.check.on = true;
    pol.check.rise = 2;
    pol.check.fall = 3;
    grp_new(&x, "act", &pol, 2, 80);
    publish1(x.g);
    struct hc_target *t = x.g->t[0];
    ok(nbits(x.g) == 0, "with checks, new targets start down");
    hc_probe_result(t, true, "status 200", 0);
    ok(hc_bit(x.g->bits, 0), "the first good probe of a new target brings it up at once");
    hc_probe_result(x.g->t[1], false, "status 503", 0);
    ok(!hc_bit(x.g->bits, 1), "the first bad probe keeps it down");
    hc_probe_result(t, false, "timeout after 500 ms", 0);
    hc_probe_result(t, false, "timeout after 500 ms", 0);
    ok(hc_bit(x.g->bits, 0), "fall 3: two bad probes, still up");
    hc_probe_result(t, true, "status 200", 0);
    hc_probe_result(t, false, "x", 0);
    hc_probe_result(t, false, "x", 0);
    ok(hc_bit(x.g->bits, 0), "... a good one between starts the count over");
    hc_probe_result(t, false, "timeout after 500 ms", 0);
    ok(!hc_bit(x.g->bits, 0) && t->went_down == 1, "the third bad in a row: down");
    struct hc_view v;
    hc_view(t, 0, &v);
    ok(!v.up && v.active == 0 && strcmp(v.last, "timeout after 500 ms") == 0 && v.probes_bad == 5 &&
       v.probes_ok == 2 && v.since_ms > 0, "the view: down, the last result, counts, since");
    hc_probe_result(t, true, "status 200", 0);
    ok(!hc_bit(x.g->bits, 0), "rise 2: one good probe, still down");
    hc_probe_result(t, true, "status 200", 0);
    ok(hc_bit(x.g->bits, 0) && t->went_up == 2, "the second: up");

    /* an ejected target seen healthy by the prober is back at once */
    hc_fail(t, 100);
    ok(!hc_bit(x.g->bits, 0), "ejected by a failure");
    hc_probe_result(t, true, "status 200", 100);
    ok(hc_bit(x.g->bits, 0) && t->ejected_until == 0, "a good probe ends the ejection");
    ok(hc_nejected == 0, "no ejection left");

    /* a reload keeps the state: a new group for the same targets */
    struct grp y;
    grp_new(&y, "act", &pol, 2, 80);
    ok(hc_bit(y.g->bits, 0) && !hc_bit(y.g->bits, 1), "a reload's new group starts from the registry");
    /* checks turned off by the new config: every target up */
    struct hc_policy off = hc_policy_default;
    struct grp z;
    grp_new(&z, "act", &off, 2, 80);
    publish1(z.g);
    ok(nbits(z.g) == 2 && nbits(x.g) == 2, "checks removed: the down target comes up (in every group)");
    /* and back on: the targets serving stay up until their first probe */
    publish1(y.g);
    ok(nbits(y.g) == 2, "checks on again: serving targets stay up for now");
    hc_probe_result(y.g->t[1], false, "status 500", 0);
    ok(!hc_bit(y.g->bits, 1), "... and the first bad probe decides");
    hc_group_free(x.g);
    hc_group_free(y.g);
    hc_group_free(z.g);
    hc_shutdown();
}

static void test_due(void)
{
    struct grp x;
    struct hc_policy pol = hc_policy_default;
    struct hc_probe_req r[8];

    pol.check.on = true;
    pol.check.interval_ms = 1000;
    strcpy(pol.check.path, "/hz");
    grp_new(&x, "d", &pol, 3, 8080);
    ok(hc_due(0, r, 8, rnd) == 0, "nothing is probed before a publish");
    publish1(x.g);
    P.rnd = 12345;
    size_t n = hc_due(0, r, 8, rnd);
    ok(n == 3, "after the publish: every target is due at once (%zu)", n);
    ok(strcmp(r[0].check.path, "/hz") == 0 && strcmp(r[0].host, "h") == 0 && r[0].tls == NULL,
       "a probe carries the path and Host");
    ok(hc_due(0, r, 8, rnd) == 0, "in flight: not again");
    for (int i = 0; i < 3; i++)
        hc_probe_result(x.g->t[i], true, "status 200", 0);
    ok(hc_due(899, r, 8, rnd) == 0, "nothing before 0.9 interval");
    n = hc_due(1100, r, 8, rnd);
    ok(n == 3, "all again within 1.1 interval (%zu)", n);
    bool spread = false;
    for (int i = 1; i < 3; i++)
        spread |= x.g->t[i]->next_probe_ms != x.g->t[0]->next_probe_ms;
    ok(spread, "the next probes are jittered apart");
    for (int i = 0; i < 3; i++)
        hc_probe_result(x.g->t[i], true, "status 200", 0);
    /* another config without the upstream: not probed any more */
    struct grp y;
    struct hc_policy plain = hc_policy_default;
    grp_new(&y, "other", &plain, 1, 80);
    publish1(y.g);
    ok(hc_due(100000, r, 8, rnd) == 0, "an upstream gone from the running config is not probed");
    hc_group_free(x.g);
    hc_group_free(y.g);
    hc_shutdown();
}

/* ---- threads ---- */

#define NTHREADS 8

struct thr {
    pthread_barrier_t *bar;
    struct hc_target *t;
    uint64_t now;
};

static void *thr_fail(void *arg)
{
    struct thr *t = arg;
    pthread_barrier_wait(t->bar);
    for (int i = 0; i < 1000; i++)
        hc_fail(t->t, t->now);
    return NULL;
}

static void test_threads(void)
{
    pthread_barrier_t bar;
    pthread_t tid[NTHREADS];
    struct thr t[NTHREADS];
    struct grp x;
    struct hc_policy pol = hc_policy_default;

    pol.outlier.failures = 5;
    grp_new(&x, "thr", &pol, 2, 80);
    publish1(x.g);
    pthread_barrier_init(&bar, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        t[i] = (struct thr){ &bar, x.g->t[0], 7000 };
        pthread_create(&tid[i], NULL, thr_fail, &t[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(tid[i], NULL);
    ok(x.g->t[0]->ejected_until == 8000 && x.g->t[0]->ejections == 1,
       "%d workers failing at once: one ejection of 1 s", NTHREADS);
    ok(hc_bit(x.g->bits, 1) && !hc_bit(x.g->bits, 0), "... the other target stays up");
    pthread_barrier_destroy(&bar);
    hc_group_free(x.g);
    hc_shutdown();
}

/* ---- the prober, against sockets of this process ---- */

struct srv {
    int lfd;
    uint16_t port;
    const char *answer;         /* NULL = accept and say nothing */
    _Atomic int stop;
    _Atomic int accepted;
    pthread_t th;
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    int held[64], nh = 0;

    while (!atomic_load(&s->stop)) {
        struct pollfd pf = { s->lfd, POLLIN, 0 };
        if (poll(&pf, 1, 20) != 1)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&s->accepted, 1);
        if (s->answer) {
            char buf[1024];
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            (void)n;
            ssize_t w = send(fd, s->answer, strlen(s->answer), MSG_NOSIGNAL);
            (void)w;
            close(fd);
        } else if (nh < 64) {
            held[nh++] = fd;
        } else {
            close(fd);
        }
    }
    while (nh)
        close(held[--nh]);
    return NULL;
}

static void srv_start(struct srv *s, const char *answer)
{
    struct sockaddr_in a = v4("127.0.0.1", 0);
    socklen_t sl = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->answer = answer;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bind(s->lfd, (struct sockaddr *)&a, sizeof(a));
    listen(s->lfd, 64);
    getsockname(s->lfd, (struct sockaddr *)&a, &sl);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, srv_main, s);
}

static void srv_stop(struct srv *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static bool wait_last(struct hc_target *t, const char *want, int ms)
{
    struct hc_view v;
    for (int i = 0; i < ms / 10; i++) {
        hc_view(t, 0, &v);
        if (strstr(v.last, want))
            return true;
        usleep(10000);
    }
    return false;
}

static void test_prober(void)
{
    struct srv good, bad, mute;
    struct hc_policy pol = hc_policy_default;

    srv_start(&good, "HTTP/1.1 204 No Content\r\n\r\n");
    srv_start(&bad, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    srv_start(&mute, NULL);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);   /* a closed port */
    struct sockaddr_in ca = v4("127.0.0.1", 0);
    socklen_t sl = sizeof(ca);
    bind(lfd, (struct sockaddr *)&ca, sizeof(ca));
    getsockname(lfd, (struct sockaddr *)&ca, &sl);

    struct sockaddr_in a[4] = { v4("127.0.0.1", good.port), v4("127.0.0.1", bad.port),
                                v4("127.0.0.1", mute.port), ca };
    struct hc_member m[4];
    for (int i = 0; i < 4; i++)
        m[i] = (struct hc_member){ (struct sockaddr *)&a[i], sizeof(a[i]), "svc.test", NULL };
    pol.check.on = true;
    pol.check.interval_ms = 300;
    pol.check.timeout_ms = 150;
    pol.check.rise = 1;
    pol.check.fall = 1;
    struct hc_group *g = hc_group_new("probed", &pol, m, 4);
    ok(hc_prober_start() == 0, "the prober starts");
    publish1(g);
    ok(wait_last(g->t[0], "status 204", 2000), "a 204 target: probed, status 204");
    ok(hc_bit(g->bits, 0), "... and up");
    ok(wait_last(g->t[1], "status 503", 2000) && !hc_bit(g->bits, 1), "a 503 target: down (status 503)");
    ok(wait_last(g->t[2], "timeout after 150 ms", 2000) && !hc_bit(g->bits, 2),
       "a target that never answers: down, timeout after 150 ms");
    ok(wait_last(g->t[3], "connect: Connection refused", 2000) && !hc_bit(g->bits, 3),
       "a closed port: down, connect refused");
    /* every interval: by 1 s, the good target saw at least 3 probes */
    usleep(1000000);
    ok(atomic_load(&good.accepted) >= 3 && atomic_load(&good.accepted) <= 6,
       "probes every interval (300 ms): %d in about 1.1 s", atomic_load(&good.accepted));
    hc_prober_stop();
    ok(!P.running && P.live == NULL, "the prober stops, nothing in flight left");
    hc_group_free(g);
    srv_stop(&good);
    srv_stop(&bad);
    srv_stop(&mute);
    close(lfd);
    hc_shutdown();
}

static void test_status_line(void)
{
    ok(status_of("HTTP/1.1 200 OK\r\n", 17) == 200, "status line: 200");
    ok(status_of("HTTP/1.0 503", 12) == 503, "status line, no reason: 503");
    ok(status_of("HTTP/1.1 2", 10) == -1, "incomplete: -1");
    ok(status_of("SSH-2.0\r\n", 9) == -2, "not HTTP (a line): -2");
    ok(status_of("HTTP/1.1 2x0 OK\r\n", 17) == -2, "a bad status: -2");
    ok(status_of("HTTP/2.0 200 OK\r\n", 17) == -2, "not HTTP/1: -2");
}

int main(void)
{
    gw_log_level = GW_LOG_ERROR;
    test_registry();
    test_backoff();
    test_cap();
    test_5xx();
    test_probe_results();
    test_due();
    test_threads();
    test_status_line();
    test_prober();
    return tap_done();
}
