/*
 * health_test.c - health/: the per-address registry (hc_state_for,
 * hc_shutdown) and passive health (hc_fail, hc_ok, hc_is_up).
 *
 * The back-off is checked to the millisecond against the README's table:
 * "passive health marks a failing target down for 1 s, then 2 s, 4 s, ...,
 * at most 30 s".  Times are the caller's monotonic milliseconds, so no test
 * sleeps.
 */
#include "tap.h"
#include "../../health/health.c"

#include <arpa/inet.h>
#include <netinet/in.h>
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

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

static struct hc_state *state4(const char *ip, uint16_t port)
{
    struct sockaddr_in a = v4(ip, port);
    return hc_state_for((struct sockaddr *)&a, sizeof(a));
}

static uint64_t down_until(const struct hc_state *s)
{
    return atomic_load(&s->down_until_ms);
}

static uint32_t fails(const struct hc_state *s)
{
    return atomic_load(&s->fails);
}

static size_t registry_len(void)
{
    size_t n = 0;
    pthread_mutex_lock(&hc_lock);
    for (struct hc_entry *e = hc_list; e; e = e->next)
        n++;
    pthread_mutex_unlock(&hc_lock);
    return n;
}

/* ---- the registry ---- */

static void test_registry(void)
{
    struct hc_state *a = state4("127.0.0.1", 8080);
    struct hc_state *b = state4("127.0.0.1", 8080);
    struct hc_state *c = state4("127.0.0.1", 8081);
    struct hc_state *d = state4("127.0.0.2", 8080);

    ok(a != NULL, "hc_state_for gives a state");
    ok(a == b, "the same address gives the same state");
    ok(c != a && d != a && c != d, "another port or another IP: another state");
    ok(registry_len() == 3, "three addresses, three entries (have %zu)", registry_len());
    ok(down_until(a) == 0 && fails(a) == 0, "a new state is up with no failure");
    ok(hc_is_up(a, 0) && hc_is_up(a, UINT64_MAX), "a new state is up at any time");

    struct sockaddr_in6 x = v6("::1", 8080), y = v6("::1", 8080), z = v6("::1", 8081);
    struct hc_state *sx = hc_state_for((struct sockaddr *)&x, sizeof(x));
    ok(sx == hc_state_for((struct sockaddr *)&y, sizeof(y)), "IPv6: the same address gives the same state");
    ok(sx != hc_state_for((struct sockaddr *)&z, sizeof(z)), "IPv6: another port, another state");
    ok(sx != a, "::1:8080 is not 127.0.0.1:8080");

    /* the state is the address's, not the caller's: health survives a
     * reload that builds its targets again */
    hc_fail(a, 5000);
    ok(!hc_is_up(state4("127.0.0.1", 8080), 5000), "a failure is seen through a later lookup");
    ok(hc_is_up(c, 5000) && hc_is_up(d, 5000), "... and not by the other addresses");

    hc_shutdown();
    ok(registry_len() == 0, "hc_shutdown empties the registry");
    struct hc_state *again = state4("127.0.0.1", 8080);
    ok(down_until(again) == 0 && fails(again) == 0 && hc_is_up(again, 5000),
       "after hc_shutdown an address starts up again");
    hc_shutdown();
}

/* ---- passive health: the back-off ---- */

static void test_backoff(void)
{
    struct hc_state *s = state4("10.0.0.1", 80);
    /* the README's table: 1 s, then 2 s, 4 s, ..., at most 30 s */
    static const uint64_t want[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };
    uint64_t now = 100000;

    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        ok(hc_is_up(s, now), "failure %zu: up before it", i + 1);
        hc_fail(s, now);
        ok(down_until(s) == now + want[i], "failure %zu: down for %llu ms (have %llu)", i + 1,
           (unsigned long long)want[i], (unsigned long long)(down_until(s) - now));
        ok(!hc_is_up(s, now) && !hc_is_up(s, now + want[i] - 1), "failure %zu: down until the last ms", i + 1);
        ok(hc_is_up(s, now + want[i]), "failure %zu: up again at %llu ms", i + 1, (unsigned long long)want[i]);
        now += want[i];         /* the next try is the first one allowed */
    }

    /* the first success clears it */
    hc_ok(s);
    ok(fails(s) == 0 && down_until(s) == 0, "hc_ok clears failures and the down mark");
    ok(hc_is_up(s, 0), "hc_ok: up at once, even at an earlier time");
    hc_fail(s, now);
    ok(down_until(s) == now + 1000, "after a success the next failure is 1 s again");

    /* a success while marked down (a request sent before the failure) */
    hc_ok(s);
    ok(hc_is_up(s, now), "a success while down brings the target up");

    /* hc_ok on a healthy state changes nothing */
    hc_ok(s);
    ok(fails(s) == 0 && down_until(s) == 0, "hc_ok on a healthy state: still up, no failure");

    /* a huge number of failures stays at the cap (no shift past 64 bits) */
    atomic_store(&s->fails, 4000000000u);
    atomic_store(&s->down_until_ms, 0);
    hc_fail(s, now);
    ok(down_until(s) == now + 30000, "after 4e9 failures: still 30 s");
    hc_shutdown();
}

/* Requests already on their way to a target fail together when it dies
 * (every connection of a pool is reset at once): that is one failure of
 * the target, not many.  Failures reported while the target is already
 * marked down neither lengthen the mark nor step the back-off, or a burst
 * of N concurrent requests would take it out for 30 s at once. */
static void test_burst(void)
{
    struct hc_state *s = state4("10.0.0.2", 80);
    uint64_t now = 50000;

    hc_fail(s, now);
    for (int i = 0; i < 9; i++)
        hc_fail(s, now + (uint64_t)i * 10);
    ok(down_until(s) == now + 1000, "ten failures within the first down period: down 1 s (have %llu ms)",
       (unsigned long long)(down_until(s) - now));
    ok(hc_is_up(s, now + 1000), "... and up again after 1 s");
    now += 1000;
    hc_fail(s, now);
    ok(down_until(s) == now + 2000, "the next failure, after the mark expired: 2 s (have %llu ms)",
       (unsigned long long)(down_until(s) - now));
    hc_fail(s, now + 1999);
    ok(down_until(s) == now + 2000, "a failure 1 ms before the mark expires changes nothing");
    hc_fail(s, now + 2000);
    ok(down_until(s) == now + 2000 + 4000, "a failure at the expiry steps to 4 s");
    hc_shutdown();
}

/* ---- threads ---- */

#define NTHREADS 8

struct thr {
    pthread_barrier_t *bar;
    struct hc_state *got[64];
    uint64_t now;
};

static void *thr_lookup(void *arg)
{
    struct thr *t = arg;
    pthread_barrier_wait(t->bar);
    for (int i = 0; i < 64; i++)
        t->got[i] = state4("192.0.2.1", (uint16_t)(1000 + i));
    return NULL;
}

static void *thr_fail(void *arg)
{
    struct thr *t = arg;
    pthread_barrier_wait(t->bar);
    hc_fail(t->got[0], t->now);
    return NULL;
}

static void test_threads(void)
{
    pthread_barrier_t bar;
    pthread_t tid[NTHREADS];
    struct thr t[NTHREADS];
    int same = 1;

    pthread_barrier_init(&bar, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].bar = &bar;
        pthread_create(&tid[i], NULL, thr_lookup, &t[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(tid[i], NULL);
    for (int i = 1; i < NTHREADS; i++)
        for (int j = 0; j < 64; j++)
            same &= t[i].got[j] == t[0].got[j];
    ok(same, "threads looking up the same 64 addresses at once get the same states");
    ok(registry_len() == 64, "... and the registry holds each once (have %zu)", registry_len());

    pthread_barrier_destroy(&bar);
    hc_shutdown();
}

/* the same burst from several workers at the same moment */
static void test_burst_threads(void)
{
    pthread_barrier_t bar;
    pthread_t tid[NTHREADS];
    struct thr t[NTHREADS];
    struct hc_state *s = state4("192.0.2.2", 80), *other = state4("192.0.2.3", 80);

    pthread_barrier_init(&bar, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].bar = &bar;
        t[i].got[0] = s;
        t[i].now = 7000;
        pthread_create(&tid[i], NULL, thr_fail, &t[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(tid[i], NULL);
    ok(down_until(s) == 8000, "%d workers failing at once: down 1 s (have %llu ms)", NTHREADS,
       (unsigned long long)(down_until(s) - 7000));
    ok(hc_is_up(other, 7000), "... another address stays up");
    pthread_barrier_destroy(&bar);
    hc_shutdown();
}

int main(void)
{
    test_registry();
    test_backoff();
    test_burst();
    test_threads();
    test_burst_threads();
    return tap_done();
}
