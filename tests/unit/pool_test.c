/* pool_test.c - unit tests for pool/pool.c: the check-in policy
 * (pool_may_keep), the per-target bound, LIFO reuse and idle expiry. */
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

static void close_node(struct pool_node *n)
{
    pool_remove(n);
    of(n)->closed = true;
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
    pool_bucket_close_all(b, close_node);
    ok(c[0].closed && c[1].closed && b->count == 0, "closing a bucket closes each connection");
    pool_destroy(&p, NULL);
}

int main(void)
{
    test_policy();
    test_buckets();
    test_idle_list();
    return tap_done();
}
