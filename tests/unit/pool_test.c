/* pool_test.c - unit tests for pool/pool.c: the check-in policy
 * (pool_may_keep), the per-target bound, LIFO reuse, idle expiry, and the
 * bound that follows demand (POOL_FOLLOW_DEMAND) with its gradual drain. */
#include "tap.h"
#include "../../pool/pool.c"

#include <arpa/inet.h>
#include <netinet/in.h>

struct conn {               /* what a caller embeds a pool_node in */
    int id;
    bool closed;
    struct pool_node pn;
};

static struct conn *of(struct pool_node *n)
{
    return n ? (struct conn *)((char *)n - offsetof(struct conn, pn)) : NULL;
}

static int closed_why[POOL_CLOSE_N];

static void close_node(struct pool_node *n, enum pool_close why)
{
    pool_remove(n);
    of(n)->closed = true;
    closed_why[why]++;
}

static struct sockaddr_in addr(uint16_t port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static const struct pool_facts clean = {
    .resp_done = true, .req_sent = true, .keepalive = true, .unread = false,
    .draining = false, .has_bucket = true, .max_idle = 8,
};

static void test_policy(void)
{
    struct pool_facts f = clean;

    ok(pool_may_keep(&f), "a clean, fully read keep-alive connection may be kept");
    f = clean; f.resp_done = false;
    ok(!pool_may_keep(&f), "a response not read to its end: refused");
    f = clean; f.req_sent = false;
    ok(!pool_may_keep(&f), "a request not sent whole: refused");
    f = clean; f.keepalive = false;
    ok(!pool_may_keep(&f), "Connection: close, an error or an upgrade: refused");
    f = clean; f.unread = true;
    ok(!pool_may_keep(&f), "bytes or a FIN waiting unread: refused");
    f = clean; f.draining = true;
    ok(!pool_may_keep(&f), "a draining worker keeps nothing");
    f = clean; f.has_bucket = false;
    ok(!pool_may_keep(&f), "no bucket for the target: refused");
    f = clean; f.max_idle = 0;
    ok(!pool_may_keep(&f), "max_idle_per_target 0: no pooling");
    struct pool_facts none = { 0 };
    ok(!pool_may_keep(&none), "no facts stated: refused");
}

static void test_buckets(void)
{
    struct pool p;
    struct sockaddr_in a = addr(8080), b = addr(8081);

    pool_init(&p);
    struct pool_bucket *ba = pool_bucket_for(&p, (struct sockaddr *)&a, sizeof(a), 0);
    ok(ba == pool_bucket_for(&p, (struct sockaddr *)&a, sizeof(a), 0), "one bucket per address and key");
    ok(ba != pool_bucket_for(&p, (struct sockaddr *)&a, sizeof(a), 7),
       "TLS settings (another key) get their own bucket");
    ok(ba != pool_bucket_for(&p, (struct sockaddr *)&b, sizeof(b), 0), "another port, another bucket");
    /* enough addresses to grow the table: every bucket stays findable */
    struct pool_bucket *v[200];
    for (int i = 0; i < 200; i++) {
        struct sockaddr_in x = addr((uint16_t)(10000 + i));
        v[i] = pool_bucket_for(&p, (struct sockaddr *)&x, sizeof(x), 0);
    }
    int same = 0;
    for (int i = 0; i < 200; i++) {
        struct sockaddr_in x = addr((uint16_t)(10000 + i));
        same += pool_bucket_for(&p, (struct sockaddr *)&x, sizeof(x), 0) == v[i];
    }
    ok(same == 200 && p.cap >= p.n, "after growth every bucket is found again (%d of 200)", same);
    pool_destroy(&p, NULL);
}

static void test_idle_list(void)
{
    struct pool p;
    struct sockaddr_in a = addr(9000);
    struct conn c[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };

    pool_init(&p);
    struct pool_bucket *b = pool_bucket_for(&p, (struct sockaddr *)&a, sizeof(a), 0);
    ok(pool_get(b) == NULL && pool_oldest(b) == NULL, "an empty bucket gives nothing");
    ok(pool_checkin(b, &c[0].pn, 1000, 500, 3) == NULL, "check-in under the bound evicts nothing");
    pool_checkin(b, &c[1].pn, 1100, 500, 3);
    pool_checkin(b, &c[2].pn, 1200, 500, 3);
    ok(b->count == 3 && c[2].pn.bucket == b, "three idle (count %u)", (unsigned)b->count);
    struct pool_node *ev = pool_checkin(b, &c[3].pn, 1300, 500, 3);
    ok(of(ev) == &c[0] && ev->bucket == NULL && b->count == 3,
       "at max_idle the oldest is taken out for the caller to close");
    ok(of(pool_get(b)) == &c[3], "the most recent is reused first");
    ok(b->count == 2 && c[3].pn.bucket == NULL, "a reused connection leaves the bucket");
    pool_remove(&c[3].pn);
    ok(b->count == 2, "removing a connection that is not pooled changes nothing");

    /* expiry: c[1] idle since 1100, c[2] since 1200, 500 ms each */
    ok(pool_expired(b, 1599) == NULL, "nothing expires before its idle time");
    ok(of(pool_expired(b, 1600)) == &c[1], "the oldest expires first, at exactly its idle time");
    pool_sweep(&p, 1650, close_node);
    ok(c[1].closed && !c[2].closed && b->count == 1, "the sweep closes what expired, keeps the rest");
    pool_sweep(&p, 1700, close_node);
    ok(c[2].closed && b->count == 0 && pool_oldest(b) == NULL, "then the next one");

    /* per-connection idle times, and closing a bucket */
    c[0].closed = c[1].closed = false;
    pool_checkin(b, &c[0].pn, 2000, 100, 8);
    pool_checkin(b, &c[1].pn, 2000, 50, 8);
    ok(pool_expired(b, 2060) == NULL, "expiry looks at the oldest only (LIFO order, not deadline)");
    pool_bucket_close_all(b, POOL_CLOSE_SHUTDOWN, close_node);
    ok(c[0].closed && c[1].closed && b->count == 0, "closing a bucket closes each connection");
    pool_destroy(&p, NULL);
}

/* in-flight requests to b: what txn.c does per request start and end */
static void busy(struct pool_bucket *b, uint64_t n)
{
    atomic_store(&b->inflight, n);
    pool_note_busy(b, n);
}

static void test_follow_demand(void)
{
    struct pool p;
    struct sockaddr_in a = addr(9100);
    enum { N = 300 };
    static struct conn c[N];
    uint64_t now = 1000;

    memset(closed_why, 0, sizeof(closed_why));
    pool_init(&p);
    struct pool_bucket *b = pool_bucket_for(&p, (struct sockaddr *)&a, sizeof(a), 0);
    pool_sweep(&p, now, close_node);                    /* the first sweep starts a period */
    ok(pool_demand(b) == 1, "no demand seen yet: one idle connection may stay");

    /* 256 requests at once, then they all end: every connection is kept */
    for (int i = 0; i < 256; i++)
        busy(b, (uint64_t)i + 1);
    int evicted = 0;
    for (int i = 0; i < 256; i++) {
        busy(b, (uint64_t)(255 - i));
        evicted += pool_checkin(b, &c[i].pn, now, 60000, POOL_FOLLOW_DEMAND) != NULL;
    }
    ok(evicted == 0 && b->count == 256 && b->follow,
       "256 in flight at once: all 256 connections stay idle for the next round (%d evicted)", evicted);

    /* a steady load of 256: taken and given back, never closed */
    for (int round = 0; round < 50; round++) {
        now += 200;
        struct pool_node *taken[256];
        for (int i = 0; i < 256; i++) {
            taken[i] = pool_get(b);
            busy(b, (uint64_t)i + 1);
        }
        for (int i = 0; i < 256; i++) {
            busy(b, (uint64_t)(255 - i));
            evicted += taken[i] && pool_checkin(b, taken[i], now, 60000, POOL_FOLLOW_DEMAND) != NULL;
        }
        pool_sweep(&p, now, close_node);
    }
    ok(evicted == 0 && b->count == 256 && closed_why[POOL_CLOSE_SURPLUS] == 0,
       "50 rounds of 256 over 10 s: nothing closed (%d evicted, %d drained)", evicted,
       closed_why[POOL_CLOSE_SURPLUS]);

    /* the load falls to 10: the surplus drains gradually, oldest first */
    int prev_count = (int)b->count, first_sweep_closed = -1, sweeps = 0;
    bool monotone = true;
    for (; sweeps < 400 && b->count > 10; sweeps++) {
        now += 200;
        struct pool_node *taken[10];
        for (int i = 0; i < 10; i++) {
            taken[i] = pool_get(b);
            busy(b, (uint64_t)i + 1);
        }
        for (int i = 0; i < 10; i++) {
            busy(b, (uint64_t)(9 - i));
            pool_checkin(b, taken[i], now, 60000, POOL_FOLLOW_DEMAND);
        }
        pool_sweep(&p, now, close_node);
        int closed_now = prev_count - (int)b->count;
        if (closed_now > 0 && first_sweep_closed < 0)
            first_sweep_closed = closed_now;
        monotone &= closed_now >= 0 && closed_now <= 1 + (prev_count - 10) / (int)POOL_DRAIN_DIV;
        prev_count = (int)b->count;
    }
    ok(b->count == 10, "the surplus drains to the new demand (%u idle after %d sweeps)",
       (unsigned)b->count, sweeps);
    ok(monotone && first_sweep_closed > 0 && first_sweep_closed <= 7,
       "never more than a fortieth of the surplus (at least one) per sweep: %d in the first", first_sweep_closed);
    ok(sweeps > 100, "gradually: %d sweeps of 200 ms, not all at once", sweeps);
    ok(closed_why[POOL_CLOSE_SURPLUS] == 246, "each drained connection counted as surplus (%d)",
       closed_why[POOL_CLOSE_SURPLUS]);

    /* the oldest go first: the ten in use are the most recent */
    struct pool_node *n = b->head.next;
    int recent = 0;
    for (; n != &b->head; n = n->next)
        recent += n->idle_since_ms == now;
    ok(recent == 10, "what stays is what was used last (%d of 10)", recent);

    /* an explicit cap keeps today's behaviour: no drain below it */
    struct sockaddr_in a2 = addr(9101);
    struct pool_bucket *b2 = pool_bucket_for(&p, (struct sockaddr *)&a2, sizeof(a2), 0);
    for (int i = 256; i < 276; i++)
        pool_checkin(b2, &c[i].pn, now, 600000, 64);
    for (int k = 0; k < 100; k++) {
        now += 200;
        pool_sweep(&p, now, close_node);
    }
    ok(b2->count == 20 && !b2->follow, "max_idle_per_target set: 20 idle under a cap of 64 stay (%u)",
       (unsigned)b2->count);
    pool_bucket_close_all(b, POOL_CLOSE_SHUTDOWN, close_node);
    pool_bucket_close_all(b2, POOL_CLOSE_SHUTDOWN, close_node);
    pool_destroy(&p, NULL);
}

int main(void)
{
    test_policy();
    test_buckets();
    test_idle_list();
    test_follow_demand();
    return tap_done();
}
