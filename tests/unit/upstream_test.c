/*
 * upstream_test.c - upstream/: smooth weighted round robin (up_swrr), the
 * per-request pick (up_pick, round robin: resolved, healthy, not yet tried) and the
 * runtime set built from a config (up_set_build), DNS names included.
 *
 * DNS is tested without a network: "localhost" comes from /etc/hosts,
 * which c-ares reads before asking a server, and a name that is not there
 * is given no time at all (dns_timeout_ms 0), so no answer can arrive.
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
#include "../../core/ltimer.h"
#include "../../gateway/config.h"   /* struct sl_config: the document the tests build upstreams in */
#include "tap.h"

#include <arpa/inet.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof(*(a)))

/* up_pick for a round robin upstream (balance_test.c tests the others):
 * cur is the upstream's own current weights. */
static int rr_pick(const struct up_upstream *u, int64_t *cur, uint64_t now, uint64_t tried)
{
    static uint64_t pos, rng = 1;
    struct up_wpick st = { cur, &pos, &rng };

    return up_pick(u, &st, now, tried, NULL);
}

/* The picks of up_swrr as letters ("aabacaa"). */
static void swrr_seq(char *out, size_t picks, int64_t *cur, const uint32_t *w, size_t n,
                     bool (*okf)(size_t, const void *), const void *ctx)
{
    for (size_t i = 0; i < picks; i++) {
        int k = up_swrr(cur, w, n, okf, ctx);
        out[i] = k < 0 ? '-' : (char)('a' + k);
    }
    out[picks] = '\0';
}

static bool not_first(size_t i, const void *ctx)
{
    return i != 0;
}

static bool none_ok(size_t i, const void *ctx)
{
    return false;
}

static bool mask_ok(size_t i, const void *ctx)
{
    return (*(const uint32_t *)ctx >> i) & 1;
}

/* ---- up_swrr ---- */

static void test_swrr(void)
{
    char seq[64];

    {   /* nginx's example: smooth, not a a a a a b c */
        static const uint32_t w[] = { 5, 1, 1 };
        int64_t cur[3] = { 0 };
        swrr_seq(seq, 14, cur, w, 3, NULL, NULL);
        ok(strcmp(seq, "aabacaaaabacaa") == 0, "5,1,1: a a b a c a a, twice (have %s)", seq);
        ok(cur[0] == 0 && cur[1] == 0 && cur[2] == 0, "5,1,1: the current weights are back to 0 after a cycle");
    }
    {
        static const uint32_t w[] = { 1, 1, 1 };
        int64_t cur[3] = { 0 };
        swrr_seq(seq, 9, cur, w, 3, NULL, NULL);
        ok(strcmp(seq, "abcabcabc") == 0, "1,1,1: plain round robin (have %s)", seq);
    }
    {
        static const uint32_t w[] = { 2, 1 };
        int64_t cur[2] = { 0 };
        swrr_seq(seq, 6, cur, w, 2, NULL, NULL);
        ok(strcmp(seq, "abaaba") == 0, "2,1: a b a (have %s)", seq);
    }
    {
        static const uint32_t w[] = { 1, 1 };
        int64_t cur[1 + 1] = { 0 };
        swrr_seq(seq, 1, cur, w, 1, NULL, NULL);
        ok(strcmp(seq, "a") == 0, "one entry: always it");
        ok(up_swrr(cur, w, 0, NULL, NULL) == -1, "no entry: -1");
    }

    /* proportions over many picks, and never a long run of one target */
    {
        static const uint32_t w[] = { 7, 3, 1, 13, 1000 };
        int64_t cur[N(w)] = { 0 };
        size_t count[N(w)] = { 0 }, total = 0, picks = 1024 * 10;
        int last = -1, run = 0, maxrun[N(w)] = { 0 };
        for (size_t i = 0; i < N(w); i++)
            total += w[i];
        for (size_t i = 0; i < picks * total / 1024; i++) {
            int k = up_swrr(cur, w, N(w), NULL, NULL);
            count[k]++;
            run = k == last ? run + 1 : 1;
            last = k;
            if (run > maxrun[k])
                maxrun[k] = run;
        }
        bool exact = true;
        for (size_t i = 0; i < N(w); i++)
            exact &= count[i] == w[i] * 10;
        ok(exact, "7,3,1,13,1000 over 10 cycles: exactly 70,30,10,130,10000 picks (have %zu,%zu,%zu,%zu,%zu)",
           count[0], count[1], count[2], count[3], count[4]);
        ok(maxrun[0] == 1 && maxrun[1] == 1 && maxrun[2] == 1 && maxrun[3] == 1,
           "the light targets are never picked twice in a row");
    }
    {   /* large weights (the config allows up to 1000000) do not overflow */
        static const uint32_t w[] = { 1000000, 1000000, 1 };
        int64_t cur[3] = { 0 };
        size_t count[3] = { 0 };
        for (size_t i = 0; i < 2000001; i++)
            count[up_swrr(cur, w, 3, NULL, NULL)]++;
        ok(count[0] == 1000000 && count[1] == 1000000 && count[2] == 1,
           "1e6,1e6,1: one cycle gives 1e6,1e6,1 (have %zu,%zu,%zu)", count[0], count[1], count[2]);
    }

    /* weight 0: never picked, its current weight untouched */
    {
        static const uint32_t w[] = { 0, 1, 0, 1 };
        int64_t cur[4] = { 0 };
        swrr_seq(seq, 6, cur, w, 4, NULL, NULL);
        ok(strcmp(seq, "bdbdbd") == 0, "0,1,0,1: only b and d (have %s)", seq);
        ok(cur[0] == 0 && cur[2] == 0, "weight 0: current weight never moves");
        static const uint32_t z[] = { 0, 0 };
        ok(up_swrr(cur, z, 2, NULL, NULL) == -1, "all weights 0: -1");
    }

    /* ok() excludes targets: the others share the picks by weight */
    {
        static const uint32_t w[] = { 5, 1, 1 };
        int64_t cur[3] = { 0 };
        swrr_seq(seq, 6, cur, w, 3, not_first, NULL);
        ok(strcmp(seq, "bcbcbc") == 0, "5,1,1 without a: b c b c (have %s)", seq);
        ok(cur[0] == 0, "an excluded target's current weight does not grow");
        int64_t before[3];
        memcpy(before, cur, sizeof(cur));
        ok(up_swrr(cur, w, 3, none_ok, NULL) == -1, "nothing eligible: -1");
        ok(memcmp(before, cur, sizeof(cur)) == 0, "nothing eligible: current weights unchanged");
    }
    {   /* a target excluded for a while comes back without a flood of picks */
        static const uint32_t w[] = { 1, 1, 1 };
        int64_t cur[3] = { 0 };
        uint32_t mask = 0x6;            /* a down */
        swrr_seq(seq, 4, cur, w, 3, mask_ok, &mask);
        ok(strcmp(seq, "bcbc") == 0, "1,1,1 with a down: b c b c (have %s)", seq);
        mask = 0x7;
        swrr_seq(seq, 6, cur, w, 3, mask_ok, &mask);
        ok(strcmp(seq, "abcabc") == 0, "a back: one pick each per round (have %s)", seq);
    }
}

/* ---- up_pick ---- */

struct fixture {
    struct up_target t[8];
    uint32_t w[8];
    struct up_upstream u;
    int64_t cur[8];
    struct hc_member m[8];
};

/* f's health group (upstream name), as up_set_build makes it */
static void fixture_health(struct fixture *f, const char *name)
{
    for (size_t i = 0; i < f->u.ntargets; i++)
        f->m[i] = (struct hc_member){ f->t[i].salen ? (struct sockaddr *)&f->t[i].sa : NULL,
                                      f->t[i].salen, f->t[i].host, NULL };
    hc_group_free(f->u.hg);
    f->u.hg = hc_group_new(name, &hc_policy_default, f->m, f->u.ntargets);
    f->u.hbits = f->u.hg->bits;
    for (size_t i = 0; i < f->u.ntargets; i++)
        f->t[i].health = f->u.hg->t[i];
}

static void fixture_init(struct fixture *f, const uint32_t *w, size_t n, uint16_t port0)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_in *a = (struct sockaddr_in *)&f->t[i].sa;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)(port0 + i));
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        f->t[i].salen = sizeof(*a);
        f->t[i].weight = f->w[i] = w[i];
        f->t[i].gidx = i;
        snprintf(f->t[i].text, sizeof(f->t[i].text), "127.0.0.1:%u", port0 + (unsigned)i);
    }
    f->u.targets = f->t;
    f->u.weights = f->w;
    f->u.ntargets = n;
    fixture_health(f, "u");
}

static void pick_seq(char *out, size_t picks, struct fixture *f, uint64_t now, uint64_t tried)
{
    for (size_t i = 0; i < picks; i++) {
        int k = rr_pick(&f->u, f->cur, now, tried);
        out[i] = k < 0 ? '-' : (char)('a' + k);
    }
    out[picks] = '\0';
}

static void test_pick(void)
{
    static const uint32_t w511[] = { 5, 1, 1 };
    struct fixture f;
    char seq[64];
    uint64_t now = 1000000;

    fixture_init(&f, w511, 3, 20000);
    pick_seq(seq, 7, &f, now, 0);
    ok(strcmp(seq, "aabacaa") == 0, "up_pick, all up: the SWRR sequence (have %s)", seq);

    /* passive health: b ejected for 1 s is skipped, then picked again */
    hc_fail(f.t[1].health, now);
    pick_seq(seq, 6, &f, now, 0);
    ok(strchr(seq, 'b') == NULL && strchr(seq, 'a') && strchr(seq, 'c'),
       "b ejected: never picked while out (have %s)", seq);
    hc_tick(now + 999);
    pick_seq(seq, 6, &f, now + 999, 0);
    ok(strchr(seq, 'b') == NULL, "... still not 1 ms before the ejection ends (have %s)", seq);
    memset(f.cur, 0, sizeof(f.cur));
    hc_tick(now + 1000);
    pick_seq(seq, 7, &f, now + 1000, 0);
    ok(strcmp(seq, "aabacaa") == 0, "b back after 1 s: the full sequence again (have %s)", seq);

    /* the second ejection in a row: 2 s */
    hc_fail(f.t[1].health, now + 1000);
    hc_tick(now + 2999);
    pick_seq(seq, 7, &f, now + 2999, 0);
    ok(strchr(seq, 'b') == NULL, "second ejection: out at 1.999 s (have %s)", seq);
    hc_tick(now + 3000);
    pick_seq(seq, 7, &f, now + 3000, 0);
    ok(strchr(seq, 'b') != NULL, "second ejection: back at 2 s (have %s)", seq);
    hc_answered(f.t[1].health, 200);

    /* all down: none (the proxy answers 503); half of 3 = 1 may be ejected,
     * so the others are taken down by their probes */
    hc_fail(f.t[0].health, now + 5000);
    hc_fail(f.t[1].health, now + 5000);
    ok(rr_pick(&f.u, f.cur, now + 5000, 0) >= 0, "3 targets failing: no more than 1 is ejected");
    hc_tick(now + 6000);

    /* tried: a retry goes to a target not tried yet */
    memset(f.cur, 0, sizeof(f.cur));
    pick_seq(seq, 4, &f, now, 1u << 0);
    ok(strcmp(seq, "bcbc") == 0, "a tried: b and c only (have %s)", seq);
    ok(rr_pick(&f.u, f.cur, now, 0x7) == -1, "every target tried: -1");
    pick_seq(seq, 3, &f, now, 0x3);
    ok(strcmp(seq, "ccc") == 0, "a and b tried: c (have %s)", seq);
    hc_fail(f.t[2].health, now + 10000);
    ok(rr_pick(&f.u, f.cur, now, 0x3) == -1, "a and b tried, c ejected: -1");
    hc_tick(now + 20000);

    /* an unresolved target (no address, no health state) is never picked */
    f.t[0].salen = 0;
    fixture_health(&f, "u-unresolved");
    memset(f.cur, 0, sizeof(f.cur));
    pick_seq(seq, 4, &f, now, 0);
    ok(strcmp(seq, "bcbc") == 0, "a unresolved: b c b c (have %s)", seq);
    ok(f.t[0].health == NULL, "... and has no health state");
    hc_group_free(f.u.hg);

    /* one target: no bookkeeping, but the same rules */
    static const uint32_t w1[] = { 3 };
    fixture_init(&f, w1, 1, 20100);
    ok(rr_pick(&f.u, f.cur, now, 0) == 0 && rr_pick(&f.u, f.cur, now, 0) == 0, "one target up: picked every time");
    ok(f.cur[0] == 0, "one target: no current weight kept");
    ok(rr_pick(&f.u, f.cur, now, 1) == -1, "one target, tried: -1");
    hc_fail(f.t[0].health, now + 30000);
    ok(rr_pick(&f.u, f.cur, now, 0) == -1, "one target, ejected: -1 (503)");
    hc_tick(now + 30000 + 1000);
    ok(rr_pick(&f.u, f.cur, now, 0) == 0, "one target, 1 s later: picked");
    f.t[0].salen = 0;
    fixture_health(&f, "u-one-unresolved");
    ok(rr_pick(&f.u, f.cur, now, 0) == -1, "one target, unresolved: -1");
    hc_group_free(f.u.hg);

    /* no target */
    fixture_init(&f, w1, 0, 20200);
    ok(rr_pick(&f.u, f.cur, now, 0) == -1, "no target: -1");
    hc_group_free(f.u.hg);

    /* two upstreams on the same address: separate states (an upstream's
     * own policy and probes decide), so one's ejection leaves the other */
    struct fixture g;
    static const uint32_t w11[] = { 1, 1 };
    fixture_init(&f, w11, 2, 20300);
    fixture_init(&g, w11, 2, 20301);        /* g.a is f.b */
    fixture_health(&g, "other");
    ok(g.t[0].health != f.t[1].health, "the same address in two upstreams: two states");
    hc_fail(f.t[1].health, now + 40000);
    ok(rr_pick(&g.u, g.cur, now, 0) == 0 && rr_pick(&g.u, g.cur, now, 0) == 1,
       "an ejection in one upstream leaves the other's picks alone");
    hc_group_free(f.u.hg);
    hc_group_free(g.u.hg);
    hc_shutdown();
}

/* ---- the pick's cost: 1,000 targets, the bitmap read per target ---- */

static void test_pick_cost(void)
{
    enum { N = 1000, PICKS = 200000 };
    static struct up_target t[N];
    static uint32_t w[N];
    static int64_t cur[N];
    static struct hc_member m[N];
    struct up_upstream u = { .targets = t, .weights = w, .ntargets = N };

    memset(t, 0, sizeof(t));
    for (size_t i = 0; i < N; i++) {
        struct sockaddr_in *a = (struct sockaddr_in *)&t[i].sa;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)(30000 + i));
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        t[i].salen = sizeof(*a);
        t[i].weight = w[i] = 1;
        m[i] = (struct hc_member){ (struct sockaddr *)a, sizeof(*a), "h", NULL };
    }
    u.hg = hc_group_new("thousand", &hc_policy_default, m, N);
    u.hbits = u.hg->bits;
    /* a tenth of them out: the picks skip them */
    for (size_t i = 0; i < N; i += 10)
        hc_fail(u.hg->t[i], 1);
    size_t ok_n = 0;
    for (size_t i = 0; i < N; i++)
        ok_n += up_target_ok(&u, i, 0);
    ok(ok_n == N - N / 10, "1000 targets, 100 ejected: %zu pickable", ok_n);
    uint64_t t0 = lt_mono_ns();
    size_t hits = 0;
    for (int k = 0; k < PICKS; k++)
        hits += up_target_ok(&u, (size_t)k % N, 0);
    uint64_t t1 = lt_mono_ns();
    int last = -1;
    for (int k = 0; k < 2000; k++)
        last = rr_pick(&u, cur, 0, 0);
    uint64_t t2 = lt_mono_ns();
    ok(hits > 0 && last >= 0 && last % 10 != 0, "picks never land on an ejected target");
    printf("# up_target_ok (one bitmap load): %.2f ns; a full SWRR pick over 1000 targets: %.0f ns\n",
         (double)(t1 - t0) / PICKS, (double)(t2 - t1) / 2000);
    hc_group_free(u.hg);
    hc_shutdown();
}

/* ---- up_set_build ---- */

static void addr_ip(struct cfg_addr *a, char *text, char *host, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->text = text;
    a->host = host;
    a->port = port;
    a->is_ip = true;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->sa;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        inet_pton(AF_INET6, host, &s->sin6_addr);
        a->salen = sizeof(*s);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&a->sa;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        inet_pton(AF_INET, host, &s->sin_addr);
        a->salen = sizeof(*s);
    }
}

static void addr_name(struct cfg_addr *a, char *text, char *host, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->text = text;
    a->host = host;
    a->port = port;
}

static bool is_loopback(const struct up_target *t, uint16_t port)
{
    if (t->sa.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&t->sa;
        return t->salen == sizeof(*s) && ntohs(s->sin_port) == port &&
               (ntohl(s->sin_addr.s_addr) >> 24) == 127;
    }
    if (t->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&t->sa;
        return t->salen == sizeof(*s) && ntohs(s->sin6_port) == port &&
               IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
    }
    return false;
}

static void test_set_build(void)
{
    struct cfg_target ta[3], tb[2];
    struct cfg_upstream ups[2];
    struct { struct cfg_upstream *upstreams; size_t nupstreams; } cfg;    /* what up_set_build reads */
    struct up_set set;
    char warn[512];

    addr_ip(&ta[0].addr, "127.0.0.1:8080", "127.0.0.1", 8080);
    ta[0].weight = 5;
    addr_ip(&ta[1].addr, "[::1]:8081", "::1", 8081);
    ta[1].weight = 1;
    addr_name(&ta[2].addr, "localhost:8082", "localhost", 8082);
    ta[2].weight = 2;
    addr_ip(&tb[0].addr, "127.0.0.1:8080", "127.0.0.1", 8080);
    tb[0].weight = 1;
    addr_ip(&tb[1].addr, "10.1.2.3:9", "10.1.2.3", 9);
    tb[1].weight = 7;
    memset(ups, 0, sizeof(ups));
    ups[0].health = ups[1].health = hc_policy_default;
    ups[0].name = "web";
    ups[0].targets = ta;
    ups[0].ntargets = 3;
    ups[1].name = "api";
    ups[1].targets = tb;
    ups[1].ntargets = 2;
    memset(&cfg, 0, sizeof(cfg));
    cfg.upstreams = ups;
    cfg.nupstreams = 2;

    strcpy(warn, "stale");
    ok(up_set_build(cfg.upstreams, cfg.nupstreams, &set, warn, sizeof(warn), 2000) == 0, "up_set_build: 0");
    ok(warn[0] == '\0', "no warning when every name resolves (have \"%s\")", warn);
    ok(set.n == 2 && set.ntargets == 5, "2 upstreams, 5 targets (have %zu, %zu)", set.n, set.ntargets);
    ok(set.v[0].cfg == &ups[0] && set.v[1].cfg == &ups[1], "each upstream points at its config");
    ok(set.v[0].ntargets == 3 && set.v[1].ntargets == 2, "targets per upstream");

    const struct up_target *t = set.v[0].targets;
    ok(t[0].gidx == 0 && t[1].gidx == 1 && t[2].gidx == 2 &&
       set.v[1].targets[0].gidx == 3 && set.v[1].targets[1].gidx == 4,
       "gidx numbers the targets of all upstreams in order");
    ok(set.v[0].weights[0] == 5 && set.v[0].weights[1] == 1 && set.v[0].weights[2] == 2 &&
       t[0].weight == 5 && set.v[1].weights[1] == 7, "weights copied to targets and the weights array");
    ok(strcmp(t[0].text, "127.0.0.1:8080") == 0 && strcmp(t[1].text, "[::1]:8081") == 0 &&
       strcmp(t[2].text, "localhost:8082 (127.0.0.1)") == 0,
       "text is the address as configured, and a name's address (have \"%s\")", t[2].text);
    ok(strcmp(t[0].host, "127.0.0.1:8080") == 0, "host of an IPv4 target: %s", t[0].host);
    ok(strcmp(t[1].host, "[::1]:8081") == 0, "host of an IPv6 target is bracketed: %s", t[1].host);
    ok(strcmp(t[2].host, "localhost:8082") == 0, "host of a named target: %s", t[2].host);
    ok(t[0].name[0] == '\0' && t[1].name[0] == '\0' && strcmp(t[2].name, "localhost") == 0,
       "name is set for DNS names only");
    ok(memcmp(&t[0].sa, &ta[0].addr.sa, ta[0].addr.salen) == 0 && t[0].salen == ta[0].addr.salen,
       "an IP literal's address is the config's");
    ok(t[1].sa.ss_family == AF_INET6 && t[1].salen == sizeof(struct sockaddr_in6), "an IPv6 literal stays IPv6");
    ok(is_loopback(&t[2], 8082), "localhost resolves (from /etc/hosts) to loopback, port 8082");
    ok(t[0].health && t[1].health && t[2].health && set.v[1].targets[1].health, "every resolved target has a health state");
    ok(t[0].health != set.v[1].targets[0].health, "one address in two upstreams: a state each");
    ok(t[0].health != t[1].health && t[0].health != set.v[1].targets[1].health, "other addresses: other states");
    ok(set.v[0].hbits && hc_bit(set.v[0].hbits, 0) && hc_bit(set.v[0].hbits, 2), "the health bits are set for the resolved targets");

    /* the set picks like the algorithm */
    int64_t cur[3] = { 0 };
    char seq[9];
    static const char *want = "acaabaca";   /* 5,1,2 */
    for (int i = 0; i < 8; i++)
        seq[i] = (char)('a' + rr_pick(&set.v[0], cur, 1, 0));
    seq[8] = '\0';
    ok(strcmp(seq, want) == 0, "picks over the built upstream 5,1,2: %s (have %s)", want, seq);

    /* health survives a rebuild (a reload): the states are the (upstream, address)'s */
    hc_fail(set.v[1].targets[0].health, 1000);
    struct up_set set2;
    ok(up_set_build(cfg.upstreams, cfg.nupstreams, &set2, NULL, 0, 2000) == 0, "a second build (warn NULL): 0");
    ok(set2.v[0].targets[0].health == t[0].health, "a rebuild finds the same health state");
    ok(!hc_bit(set2.v[1].hbits, 0) && hc_bit(set2.v[1].hbits, 1), "the new set's bits start from the registry");
    ok(rr_pick(&set2.v[1], cur, 1000, 0) == 1, "a target down before the rebuild is still down after it");
    up_set_free(&set2);
    up_set_free(&set);
    ok(set.v == NULL && set.n == 0 && set.ntargets == 0, "up_set_free zeroes the set");
    up_set_free(&set);
    ok(set.v == NULL, "up_set_free twice is harmless");

    /* no upstream at all */
    memset(&cfg, 0, sizeof(cfg));
    ok(up_set_build(cfg.upstreams, cfg.nupstreams, &set, warn, sizeof(warn), 100) == 0 && set.n == 0 && set.ntargets == 0,
       "a config without upstreams builds an empty set");
    up_set_free(&set);
    hc_shutdown();
}

/* A name that does not resolve in time: the target stays (never picked),
 * the build succeeds and the warning says why. */
static void test_unresolved(void)
{
    struct cfg_target tt[2];
    struct cfg_upstream up;
    struct { struct cfg_upstream *upstreams; size_t nupstreams; } cfg;    /* what up_set_build reads */
    struct up_set set;
    char warn[512];

    addr_name(&tt[0].addr, "sluice-unit-test.invalid:80", "sluice-unit-test.invalid", 80);
    tt[0].weight = 1;
    addr_ip(&tt[1].addr, "127.0.0.1:8090", "127.0.0.1", 8090);
    tt[1].weight = 1;
    memset(&up, 0, sizeof(up));
    up.name = "u";
    up.health = hc_policy_default;
    up.targets = tt;
    up.ntargets = 2;
    memset(&cfg, 0, sizeof(cfg));
    cfg.upstreams = &up;
    cfg.nupstreams = 1;

    ok(up_set_build(cfg.upstreams, cfg.nupstreams, &set, warn, sizeof(warn), 0) == 0, "a name without an answer does not fail the build");
    const struct up_target *t = set.v[0].targets;
    ok(t[0].salen == 0 && t[0].health == NULL, "the unresolved target has no address and no health");
    ok(t[1].salen != 0 && t[1].health != NULL, "the other target is there");
    ok(strcmp(t[0].name, "sluice-unit-test.invalid") == 0, "the name to resolve is kept");
    ok(strstr(warn, "cannot resolve sluice-unit-test.invalid:80") != NULL, "warning names the target (have \"%s\")", warn);
    ok(strstr(warn, "timed out") != NULL, "warning says it timed out (have \"%s\")", warn);
    int64_t cur[2] = { 0 };
    ok(rr_pick(&set.v[0], cur, 0, 0) == 1 && rr_pick(&set.v[0], cur, 0, 0) == 1,
       "only the resolved target is picked");
    ok(rr_pick(&set.v[0], cur, 0, 2) == -1, "the resolved one tried: -1, not the unresolved");
    up_set_free(&set);

    /* one target only, unresolved: the single-target path */
    up.targets = tt;
    up.ntargets = 1;
    ok(up_set_build(cfg.upstreams, cfg.nupstreams, &set, NULL, 0, 0) == 0, "an upstream with only an unresolved target builds");
    ok(rr_pick(&set.v[0], cur, 0, 0) == -1, "... and picks nothing (503)");
    up_set_free(&set);

    /* a small warning buffer is cut, never overrun */
    char small[24];
    memset(small, 'x', sizeof(small));
    up.ntargets = 1;
    ok(up_set_build(cfg.upstreams, cfg.nupstreams, &set, small, 16, 0) == 0 && strlen(small) == 15 && small[16] == 'x',
       "a 16-byte warning buffer: 15 characters and the NUL, nothing past it");
    up_set_free(&set);
    hc_shutdown();
}

/* The resolver's cache (dns.c): one entry per name while a set holds it,
 * /etc/hosts before any server, a failure keeps the last good answer. */
static void test_dns_cache(void)
{
    static struct up_dns_answer a[2];
    struct up_dns_name *ref[2];
    const char *names[2] = { "localhost", "localhost" };

    /* nothing listens on the discard port: any question to a server fails */
    up_dns_servers("127.0.0.1:9");
    up_dns_acquire(names, 2, 500, a, ref);
    ok(ref[0] && ref[0] == ref[1] && ref[0]->refs == 2, "one entry per name, a reference per use");
    ok(a[0].n == 1 && a[0].a[0].ss_family == AF_INET &&
       ntohl(((struct sockaddr_in *)&a[0].a[0])->sin_addr.s_addr) == 0x7f000001 &&
       ((struct sockaddr_in *)&a[0].a[0])->sin_port == 0,
       "localhost from /etc/hosts, with the servers configured (port 0)");
    ok(a[1].n == 1 && ref[0]->ans.n == 1 && ref[0]->due_ms > 0, "cached, with a time to look again");

    /* a failed lookup keeps the answer and backs off */
    struct up_dns_answer fail = { .n = 0, .err = "server failure" };
    struct query q = { .name = "localhost", .out = &fail, .ttl_ms = 1000 };
    uint64_t now = 5000;
    pthread_mutex_lock(&D_lock);
    ok(!store(ref[0], &q, now) && ref[0]->ans.n == 1, "a failure changes nothing served");
    ok(ref[0]->retry_ms == 1000 && ref[0]->due_ms == now + 1000, "... and is retried in 1 s");
    store(ref[0], &q, now);
    ok(ref[0]->retry_ms == 2000 && ref[0]->due_ms == now + 2000, "... then 2 s");
    for (int i = 0; i < 10; i++)
        store(ref[0], &q, now);
    ok(ref[0]->retry_ms == UP_DNS_RETRY_MAX_MS, "... at most %u ms", UP_DNS_RETRY_MAX_MS);
    ok(strcmp(ref[0]->ans.err, "server failure") == 0, "the failure is remembered");

    /* a new answer: changed; the same again: not */
    struct up_dns_answer two = { .n = 2 };
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&two.a[i];
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(0x7f000002 + (uint32_t)i);
        two.alen[i] = sizeof(*s4);
    }
    q.out = &two;
    q.ttl_ms = 7000;
    ok(store(ref[0], &q, now), "two addresses instead of one: changed");
    ok(ref[0]->retry_ms == 0 && ref[0]->due_ms == now + 7000, "a success ends the back-off, next lookup at the TTL");
    ok(!store(ref[0], &q, now), "the same two again: not changed");
    pthread_mutex_unlock(&D_lock);

    /* a build now takes the cache's two, one target each */
    struct cfg_target tt;
    struct cfg_upstream up;
    struct up_set set;
    addr_name(&tt.addr, "localhost:8090", "localhost", 8090);
    tt.weight = 3;
    memset(&up, 0, sizeof(up));
    up.name = "dns";
    up.health = hc_policy_default;
    up.targets = &tt;
    up.ntargets = 1;
    int brc = up_set_build(&up, 1, &set, NULL, 0, 500);
    ok(brc == 0 && set.v[0].ntargets == 2,
       "a name with two addresses is two targets (have %zu)", brc == 0 ? set.v[0].ntargets : 0);
    ok(set.v[0].ntargets == 2 && is_loopback(&set.v[0].targets[0], 8090) &&
       is_loopback(&set.v[0].targets[1], 8090) &&
       strcmp(set.v[0].targets[0].text, "localhost:8090 (127.0.0.2)") == 0 &&
       strcmp(set.v[0].targets[1].text, "localhost:8090 (127.0.0.3)") == 0 &&
       set.v[0].weights[0] == 3 && set.v[0].weights[1] == 3,
       "each with its address, the port and the weight configured");
    ok(set.v[0].ntargets == 2 && set.v[0].targets[0].health != set.v[0].targets[1].health,
       "and a health state each");
    ok(ref[0]->refs == 3, "the set holds the name too");
    up_dns_release(ref[0]);
    up_dns_release(ref[1]);
    ok(D_names != NULL && D_names->refs == 1, "released by the first user: the set still holds it");
    up_set_free(&set);
    ok(D_names == NULL, "no user left: the name is forgotten");
    up_dns_servers(NULL);
    hc_shutdown();
}

int main(void)
{
    gw_log_level = GW_LOG_ERROR;
    test_swrr();
    test_pick();
    test_pick_cost();
    test_set_build();
    test_unresolved();
    test_dns_cache();
    ares_library_cleanup();
    return tap_done();
}
