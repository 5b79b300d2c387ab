/*
 * balance_test.c - upstream/balance.c: the four balancers over upstreams
 * built by up_set_build (IP literals, no DNS), the in-flight counts they
 * read, and the hash keys of requests (up_hash_key).
 *
 * Randomised balancers are checked over many picks against bounds far
 * outside their spread (a fixed seed makes each run the same), never
 * against one pick.
 */
/* before tap.h: up_swrr's parameter "ok" would be taken for tap's ok() */
#include "../../upstream/dns.c"
#include "../../upstream/upstream.c"
#include "../../upstream/balance.c"
#include "../../health/health.c"
#include "../../core/nidx.c"
#include "../../core/arena.c"
#include "../../core/log.c"
#include "../../core/esc.c"
#include "tap.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define MAXT 1000

/* An upstream of n targets 127.0.0.1:port0+i, built as the proxy builds it. */
struct fix {
    struct cfg_target ct[MAXT];
    char text[MAXT][24];
    struct cfg_upstream cu;
    struct up_set set;
    const struct up_upstream *u;
    int64_t cur[MAXT];
    uint64_t pos, rng;
    struct up_wpick st;
};

static void fix_init(struct fix *f, size_t n, const uint32_t *w, enum cfg_balance bal,
                     uint16_t port0)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        struct cfg_addr *a = &f->ct[i].addr;
        struct sockaddr_in *s = (struct sockaddr_in *)&a->sa;
        uint16_t port = (uint16_t)(port0 + i);
        snprintf(f->text[i], sizeof(f->text[i]), "127.0.0.1:%u", port);
        a->text = f->text[i];
        a->host = "127.0.0.1";
        a->port = port;
        a->is_ip = true;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->salen = sizeof(*s);
        f->ct[i].weight = w ? w[i] : 1;
    }
    f->cu.name = "u";
    f->cu.targets = f->ct;
    f->cu.ntargets = n;
    f->cu.balance = bal;
    f->cu.hash_on = bal == CFG_BAL_HASH ? CFG_HASH_HEADER : CFG_HASH_NONE;
    f->cu.hash_name = "x-key";
    f->cu.hash_name_len = 5;
    if (up_set_build(&f->cu, 1, &f->set, NULL, 0, 100) != 0)
        abort();
    f->u = &f->set.v[0];
    f->rng = 0x853c49e6748fea9bull;
    f->st = (struct up_wpick){ f->cur, &f->pos, &f->rng };
}

static void fix_free(struct fix *f)
{
    up_set_free(&f->set);
}

static int pick(struct fix *f, uint64_t tried)
{
    return up_pick(f->u, &f->st, 1, tried, NULL);
}

static int pick_key(struct fix *f, uint64_t key)
{
    return up_pick(f->u, &f->st, 1, 0, &key);
}

/* Take every in-flight count of f's targets back to 0. */
static void inflight_clear(struct fix *f)
{
    for (size_t i = 0; i < f->u->ntargets; i++)
        while (up_inflight(&f->u->targets[i]))
            up_inflight_sub(&f->u->targets[i]);
}

static struct fix F, G;     /* large: static */

/* Target i of u down or up for the balancers: its bit in the health bitmap
 * (health/ decides the bit in the proxy; health_test.c tests that). */
static void mark(const struct up_upstream *u, size_t i, bool up)
{
    _Atomic uint64_t *w = &u->hg->bits[i / 64];

    if (up)
        atomic_fetch_or(w, 1ull << (i % 64));
    else
        atomic_fetch_and(w, ~(1ull << (i % 64)));
}

/* ---- round robin ---- */

static void test_round_robin(void)
{
    static const uint32_t w31[] = { 3, 1 };
    size_t cnt[MAXT];

    fix_init(&F, 2, w31, CFG_BAL_ROUND_ROBIN, 30000);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 4000; i++)
        cnt[pick(&F, 0)]++;
    ok(cnt[0] == 3000 && cnt[1] == 1000, "round_robin 3:1: 3000/1000 of 4000 (have %zu/%zu)", cnt[0], cnt[1]);
    fix_free(&F);

    /* over BAL_SMALL: the precomputed period is the SWRR sequence */
    uint32_t w[40];
    for (size_t i = 0; i < 40; i++)
        w[i] = (uint32_t)(i % 4 + 1);
    fix_init(&F, 40, w, CFG_BAL_ROUND_ROBIN, 30100);
    ok(F.u->bal.sched != NULL && F.u->bal.nsched == 100, "40 targets of weights 1..4: a period of 100 precomputed (%u)",
       F.u->bal.nsched);
    int64_t cur[40] = { 0 };
    bool same = true;
    for (int i = 0; i < 300; i++)
        same &= pick(&F, 0) == up_swrr(cur, w, 40, NULL, NULL);
    ok(same, "40 targets: 300 picks are up_swrr's");
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 1000; i++)
        cnt[pick(&F, 0)]++;
    bool prop = true;
    for (size_t i = 0; i < 40; i++)
        prop &= cnt[i] == 10 * w[i];
    ok(prop, "40 targets: 10 periods give each target 10 x its weight");
    mark(F.u, 7, false);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 1000; i++)
        cnt[pick(&F, 0)]++;
    ok(cnt[7] == 0 && cnt[3] > 0 && cnt[11] > 0, "a target down is passed over (%zu picks)", cnt[7]);
    mark(F.u, 7, true);
    ok(pick(&F, ~0ull) == -1, "every target tried: -1");
    fix_free(&F);

    /* equal weights, 1,000 targets: one each per 1,000 picks */
    fix_init(&F, 1000, NULL, CFG_BAL_ROUND_ROBIN, 31000);
    ok(F.u->bal.sched == NULL && F.u->bal.alias == NULL && F.u->bal.wequal, "equal weights: no tables");
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 3000; i++)
        cnt[pick(&F, 0)]++;
    bool each3 = true;
    for (size_t i = 0; i < 1000; i++)
        each3 &= cnt[i] == 3;
    ok(each3, "1,000 equal targets: 3 picks each in 3,000");
    for (size_t i = 0; i < 1000; i++)
        mark(F.u, i, false);
    ok(pick(&F, 0) == -1, "1,000 targets all down: -1");
    for (size_t i = 0; i < 1000; i++)
        mark(F.u, i, true);
    fix_free(&F);
}

/* ---- least_request ---- */

static void test_least_request(void)
{
    static const uint32_t w31[] = { 3, 1 };
    static const uint32_t w1111[] = { 1, 1, 1, 1 };
    size_t cnt[MAXT];

    /* the exact minimum */
    fix_init(&F, 4, w1111, CFG_BAL_LEAST_REQUEST, 32000);
    for (int k = 0; k < 5; k++) {
        up_inflight_add(&F.u->targets[0]);
        up_inflight_add(&F.u->targets[1]);
        up_inflight_add(&F.u->targets[3]);
    }
    up_inflight_add(&F.u->targets[2]);
    bool min = true;
    for (int i = 0; i < 50; i++)
        min &= pick(&F, 0) == 2;
    ok(min, "least_request: the target with fewest in flight, every time (1 against 5)");
    ok(pick(&F, 1u << 2) != 2, "... unless tried");
    mark(F.u, 2, false);
    ok(pick(&F, 0) != 2, "... or down");
    mark(F.u, 2, true);
    inflight_clear(&F);

    /* it spreads: requests held open stay within one of each other */
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 400; i++) {
        int k = pick(&F, 0);
        cnt[k]++;
        up_inflight_add(&F.u->targets[k]);
    }
    ok(cnt[0] == 100 && cnt[1] == 100 && cnt[2] == 100 && cnt[3] == 100,
       "least_request, 400 requests held: 100 each (%zu %zu %zu %zu)", cnt[0], cnt[1], cnt[2], cnt[3]);
    /* one finishes everything it had: it takes the next ones */
    while (up_inflight(&F.u->targets[1]) > 0)
        up_inflight_sub(&F.u->targets[1]);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 100; i++) {
        int k = pick(&F, 0);
        cnt[k]++;
        up_inflight_add(&F.u->targets[k]);
    }
    ok(cnt[1] == 100, "the target that drained gets the next 100 (%zu)", cnt[1]);
    inflight_clear(&F);
    fix_free(&F);

    /* weights: idle, ties go by round robin (3:1); loaded, in flight follows the weights */
    fix_init(&F, 2, w31, CFG_BAL_LEAST_REQUEST, 32100);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 400; i++)
        cnt[pick(&F, 0)]++;
    ok(cnt[0] == 300 && cnt[1] == 100, "least_request 3:1, nothing in flight: 300/100 (%zu/%zu)", cnt[0], cnt[1]);
    for (int i = 0; i < 400; i++)
        up_inflight_add(&F.u->targets[pick(&F, 0)]);
    uint32_t a = up_inflight(&F.u->targets[0]), b = up_inflight(&F.u->targets[1]);
    ok(a >= 297 && a <= 303 && a + b == 400, "least_request 3:1, 400 held: %u/%u", a, b);
    inflight_clear(&F);
    fix_free(&F);

    /* over BAL_SMALL: two choices */
    fix_init(&F, 100, NULL, CFG_BAL_LEAST_REQUEST, 32200);
    for (int k = 0; k < 10; k++)
        up_inflight_add(&F.u->targets[5]);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 10000; i++)
        cnt[pick(&F, 0)]++;
    ok(cnt[5] == 0, "100 targets, one with 10 in flight: never picked in 10,000 (%zu)", cnt[5]);
    inflight_clear(&F);
    for (int i = 0; i < 10000; i++)
        up_inflight_add(&F.u->targets[pick(&F, 0)]);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (size_t i = 0; i < 100; i++) {
        uint32_t v = up_inflight(&F.u->targets[i]);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    ok(lo >= 95 && hi <= 105, "100 targets, 10,000 held: 95..105 each (have %u..%u)", lo, hi);
    inflight_clear(&F);
    for (size_t i = 1; i < 100; i++)
        mark(F.u, i, false);
    ok(pick(&F, 0) == 0 && pick(&F, 0) == 0, "99 of 100 down: the one left (the exact scan)");
    ok(pick(&F, 1) == -1, "... and -1 when it is tried");
    for (size_t i = 1; i < 100; i++)
        mark(F.u, i, true);
    fix_free(&F);
}

/* ---- random_two ---- */

static void test_random_two(void)
{
    static const uint32_t w1111[] = { 1, 1, 1, 1 };
    static const uint32_t w31[] = { 3, 1 };
    size_t cnt[MAXT];

    fix_init(&F, 4, w1111, CFG_BAL_RANDOM_TWO, 33000);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 40000; i++)
        cnt[pick(&F, 0)]++;
    bool even = true;
    for (int i = 0; i < 4; i++)
        even &= cnt[i] >= 9500 && cnt[i] <= 10500;
    ok(even, "random_two, 4 idle targets, 40,000 picks: 9,500..10,500 each (%zu %zu %zu %zu)",
       cnt[0], cnt[1], cnt[2], cnt[3]);
    /* a slow target has more in flight: it loses every comparison */
    for (int k = 0; k < 3; k++)
        up_inflight_add(&F.u->targets[2]);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 10000; i++)
        cnt[pick(&F, 0)]++;
    ok(cnt[2] == 0 && cnt[0] > 2800 && cnt[1] > 2800 && cnt[3] > 2800,
       "random_two: a target with 3 in flight is avoided (%zu %zu %zu %zu)", cnt[0], cnt[1], cnt[2], cnt[3]);
    inflight_clear(&F);
    /* random: two workers (two states) do not pick in lockstep */
    uint64_t r2 = 12345, p2 = 0;
    struct up_wpick other = { F.cur, &p2, &r2 };
    int same = 0;
    for (int i = 0; i < 1000; i++)
        same += pick(&F, 0) == up_pick(F.u, &other, 1, 0, NULL);
    ok(same < 500, "two random states agree on %d of 1,000 picks (not lockstep)", same);
    fix_free(&F);

    fix_init(&F, 2, w31, CFG_BAL_RANDOM_TWO, 33100);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 40000; i++)
        cnt[pick(&F, 0)]++;
    ok(cnt[0] >= 29000 && cnt[0] <= 31000, "random_two 3:1 idle: %zu of 40,000 on the heavier", cnt[0]);
    fix_free(&F);

    fix_init(&F, 1000, NULL, CFG_BAL_RANDOM_TWO, 34000);
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 100000; i++) {
        int k = pick(&F, 0);
        cnt[k]++;
        up_inflight_add(&F.u->targets[k]);
    }
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t i = 0; i < 1000; i++) {
        lo = cnt[i] < lo ? cnt[i] : lo;
        hi = cnt[i] > hi ? cnt[i] : hi;
    }
    ok(lo >= 95 && hi <= 105, "random_two, 1,000 targets, 100,000 held: 95..105 each (have %zu..%zu)", lo, hi);
    inflight_clear(&F);
    fix_free(&F);
}

/* ---- hash ---- */

static uint64_t key_of(unsigned i)
{
    char k[32];
    int n = snprintf(k, sizeof(k), "user-%u", i);
    return up_hash(k, (size_t)n, 0);
}

static void test_hash(void)
{
    enum { NK = 20000 };
    static int first[NK];
    size_t cnt[MAXT];

    fix_init(&F, 10, NULL, CFG_BAL_HASH, 35000);
    ok(F.u->bal.ring_h != NULL && F.u->bal.nring == 1600, "hash, 10 targets: a ring of 1,600 points (%u)",
       F.u->bal.nring);
    memset(cnt, 0, sizeof(cnt));
    for (unsigned i = 0; i < NK; i++)
        cnt[first[i] = pick_key(&F, key_of(i))]++;
    bool sticky = true;
    for (unsigned i = 0; i < NK; i++)
        sticky &= pick_key(&F, key_of(i)) == first[i];
    ok(sticky, "hash: 20,000 keys picked again: the same target each");
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t i = 0; i < 10; i++) {
        lo = cnt[i] < lo ? cnt[i] : lo;
        hi = cnt[i] > hi ? cnt[i] : hi;
    }
    ok(lo >= 1700 && hi <= 2300, "hash: 20,000 keys over 10 targets, 1,700..2,300 each (have %zu..%zu)", lo, hi);

    /* a target down: only its keys move */
    mark(F.u, 4, false);
    size_t moved = 0, wrong = 0;
    for (unsigned i = 0; i < NK; i++) {
        int k = pick_key(&F, key_of(i));
        if (first[i] == 4)
            moved += k != 4;
        else
            wrong += k != first[i];
    }
    ok(moved == cnt[4] && wrong == 0, "a target down: its %zu keys move (%zu), no other key does (%zu)",
       cnt[4], moved, wrong);
    mark(F.u, 4, true);
    uint64_t k0 = key_of(0);
    int t0 = pick_key(&F, k0);
    int t1 = up_pick(F.u, &F.st, 1, 1ull << t0, &k0);
    ok(t1 >= 0 && t1 != t0 && up_pick(F.u, &F.st, 1, 1ull << t0, &k0) == t1,
       "a retry (first target tried): another target, the same for the key every time");

    /* no key: round robin */
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < 100; i++)
        cnt[pick(&F, 0)]++;
    bool rr = true;
    for (size_t i = 0; i < 10; i++)
        rr &= cnt[i] == 10;
    ok(rr, "hash without a key: round robin (10 each of 100)");

    /* a target removed (the config without it): about 1/N of the keys move */
    fix_init(&G, 10, NULL, CFG_BAL_HASH, 35000);
    G.cu.targets = G.ct;
    /* drop target 6 of 10: shift the rest down */
    for (size_t i = 6; i < 9; i++) {
        G.ct[i] = G.ct[i + 1];
        memcpy(G.text[i], G.text[i + 1], sizeof(G.text[i]));
        G.ct[i].addr.text = G.text[i];
    }
    G.cu.ntargets = 9;
    up_set_free(&G.set);
    if (up_set_build(&G.cu, 1, &G.set, NULL, 0, 100) != 0)
        abort();
    G.u = &G.set.v[0];
    size_t mv = 0, of6 = 0;
    for (unsigned i = 0; i < NK; i++) {
        int k = pick_key(&G, key_of(i));
        bool same_t = strcmp(G.u->targets[k].text, F.u->targets[first[i]].text) == 0;
        mv += !same_t;
        of6 += first[i] == 6;
    }
    ok(mv == of6 && of6 >= NK / 10 * 8 / 10 && of6 <= NK / 10 * 12 / 10,
       "one of 10 targets removed: %zu of %d keys move, exactly its own (%zu, about 1/10)", mv, NK, of6);
    fix_free(&G);
    fix_free(&F);

    /* a target added back is the same as removing it the other way: covered;
     * weights: a target of weight 3 takes about 3/4 */
    static const uint32_t w31[] = { 3, 1 };
    fix_init(&F, 2, w31, CFG_BAL_HASH, 35100);
    memset(cnt, 0, sizeof(cnt));
    for (unsigned i = 0; i < NK; i++)
        cnt[pick_key(&F, key_of(i))]++;
    ok(cnt[0] >= NK * 72 / 100 && cnt[0] <= NK * 78 / 100, "hash 3:1: %zu of %d keys on the heavier", cnt[0], NK);
    fix_free(&F);

    /* 1,000 targets: each gets a share */
    fix_init(&F, 1000, NULL, CFG_BAL_HASH, 36000);
    memset(cnt, 0, sizeof(cnt));
    for (unsigned i = 0; i < 100000; i++)
        cnt[pick_key(&F, key_of(i))]++;
    lo = SIZE_MAX, hi = 0;
    for (size_t i = 0; i < 1000; i++) {
        lo = cnt[i] < lo ? cnt[i] : lo;
        hi = cnt[i] > hi ? cnt[i] : hi;
    }
    ok(F.u->bal.nring == 160000 && lo >= 50 && hi <= 160,
       "hash, 1,000 targets, 100,000 keys: 50..160 each (have %zu..%zu)", lo, hi);
    for (size_t i = 0; i < 1000; i++)
        mark(F.u, i, false);
    ok(pick_key(&F, key_of(1)) == -1, "hash, every target down: -1");
    for (size_t i = 0; i < 1000; i++)
        mark(F.u, i, true);
    fix_free(&F);
}

/* ---- the request's key ---- */

static struct h1_header hdr(const char *n, const char *v)
{
    return (struct h1_header){ n, v, (uint32_t)strlen(n), (uint32_t)strlen(v) };
}

static void test_hash_key(void)
{
    struct cfg_upstream cu;
    uint64_t k1 = 0, k2 = 0;
    struct in_addr a1, a2;

    inet_pton(AF_INET, "10.0.0.1", &a1);
    inet_pton(AF_INET, "10.0.0.2", &a2);
    memset(&cu, 0, sizeof(cu));
    cu.balance = CFG_BAL_HASH;
    cu.hash_on = CFG_HASH_CLIENT_IP;
    ok(up_hash_key(&cu, NULL, 0, &a1, 4, &k1) && up_hash_key(&cu, NULL, 0, &a2, 4, &k2) && k1 != k2,
       "client_ip: two addresses, two keys");
    ok(up_hash_key(&cu, NULL, 0, &a1, 4, &k2) && k1 == k2, "client_ip: the same address, the same key");
    cu.balance = CFG_BAL_ROUND_ROBIN;
    ok(!up_hash_key(&cu, NULL, 0, &a1, 4, &k1), "an upstream that does not hash: no key");

    struct h1_header hs[4];
    cu.balance = CFG_BAL_HASH;
    cu.hash_on = CFG_HASH_HEADER;
    cu.hash_name = "X-User";
    cu.hash_name_len = 6;
    hs[0] = hdr("Host", "a");
    hs[1] = hdr("x-user", "alice");
    hs[2] = hdr("X-User", "bob");
    ok(up_hash_key(&cu, hs, 3, NULL, 0, &k1) && k1 == up_hash("alice", 5, 0),
       "header:X-User: the first one's value, the name in any case");
    ok(!up_hash_key(&cu, hs, 1, NULL, 0, &k1), "header missing: no key");
    hs[0] = hdr("X-Users", "carol");
    ok(!up_hash_key(&cu, hs, 1, NULL, 0, &k1), "a longer header name is another header");

    cu.hash_on = CFG_HASH_COOKIE;
    cu.hash_name = "sid";
    cu.hash_name_len = 3;
    hs[0] = hdr("Cookie", "xsid=no; a=1;  sid=s3cr3t ; b=2");
    ok(up_hash_key(&cu, hs, 1, NULL, 0, &k1) && k1 == up_hash("s3cr3t", 6, 0),
       "cookie:sid: its value among others (xsid is not sid)");
    hs[0] = hdr("cookie", "a=1");
    hs[1] = hdr("Cookie", "sid=");
    ok(up_hash_key(&cu, hs, 2, NULL, 0, &k1) && k1 == up_hash("", 0, 0), "cookie:sid in a second Cookie header, empty value");
    hs[1] = hdr("Set-Cookie", "sid=1");
    ok(!up_hash_key(&cu, hs, 2, NULL, 0, &k1), "no cookie sid: no key");
    hs[0] = hdr("Cookie", "sid");
    ok(!up_hash_key(&cu, hs, 1, NULL, 0, &k1), "a cookie without '=' is no value");
}

/* ---- in-flight counts ---- */

static void test_inflight(void)
{
    fix_init(&F, 2, NULL, CFG_BAL_LEAST_REQUEST, 37000);
    fix_init(&G, 2, NULL, CFG_BAL_LEAST_REQUEST, 37001);   /* G's first is F's second */
    up_inflight_add(&F.u->targets[1]);
    up_inflight_add(&F.u->targets[1]);
    ok(up_inflight(&G.u->targets[0]) == 2, "one address in two upstreams: one in-flight count");
    ok(pick(&G, 0) == 1, "... which the other upstream's least_request sees");
    up_inflight_sub(&G.u->targets[0]);
    up_inflight_sub(&G.u->targets[0]);
    ok(up_inflight(&F.u->targets[1]) == 0, "counted down through either");
    struct up_target none = { .health = NULL };
    up_inflight_add(&none);
    ok(up_inflight(&none) == 0, "an unresolved target counts nothing (and does not crash)");
    fix_free(&G);
    fix_free(&F);
}

int main(void)
{
    test_round_robin();
    test_least_request();
    test_random_two();
    test_hash();
    test_hash_key();
    test_inflight();
    hc_shutdown();
    ares_library_cleanup();
    return tap_done();
}
