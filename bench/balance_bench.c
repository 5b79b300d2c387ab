/*
 * balance_bench.c - ns per up_pick() among 1,000 targets, for each balancer
 * (upstream/balance.h), every pick reading each candidate's eligibility
 * (up_target_ok: its health state) and, for least_request and random_two,
 * the shared in-flight counts.
 *
 * The upstreams are built by up_set_build from IP literals, as the proxy
 * builds them.  Weights: all 1, and a mixed set (1..4) where it changes the
 * algorithm (round robin's precomputed period, weighted draws).  Ten targets
 * are marked down so the pickers pass over some; the in-flight counts are
 * spread (0..7).  hash picks with 1,024 distinct keys, cycled.
 *
 * Build: cc <project CFLAGS> -Wno-missing-prototypes -o build/bench/balance_bench \
 *        bench/balance_bench.c $(pkg-config --libs libcares)
 * Output: one line per case, "balance: NAME X ns/pick", X the best of ROUNDS
 * rounds of PICKS picks (the machine is shared; interference only adds
 * time), and last "balance: worst X ns/pick (goal < 100)".  Exit status 1
 * when a pick returns -1 or a down target.
 */
#include "../upstream/dns.c"
#include "../upstream/upstream.c"
#include "../upstream/balance.c"
#include "../health/health.c"
#include "../core/nidx.c"
#include "../core/arena.c"
#include "../core/log.c"
#include "../core/esc.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NT 1000
#ifndef PICKS
#define PICKS 2000000L
#endif
#ifndef ROUNDS
#define ROUNDS 7
#endif
#define NKEYS 1024

static struct cfg_target ct[NT];
static char text[NT][24];
static int64_t cur[NT];
static uint64_t keys[NKEYS];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void build(struct up_set *set, struct cfg_upstream *cu, enum cfg_balance bal, bool mixed)
{
    for (size_t i = 0; i < NT; i++) {
        struct cfg_addr *a = &ct[i].addr;
        struct sockaddr_in *s = (struct sockaddr_in *)&a->sa;
        memset(a, 0, sizeof(*a));
        snprintf(text[i], sizeof(text[i]), "10.0.%zu.%zu:80", i / 250, i % 250 + 1);
        a->text = text[i];
        a->host = text[i];
        a->port = 80;
        a->is_ip = true;
        s->sin_family = AF_INET;
        s->sin_port = htons(80);
        s->sin_addr.s_addr = htonl(0x0a000000u | (uint32_t)((i / 250) << 8) | (uint32_t)(i % 250 + 1));
        a->salen = sizeof(*s);
        ct[i].weight = mixed ? (uint32_t)(i % 4 + 1) : 1;
    }
    memset(cu, 0, sizeof(*cu));
    cu->name = "bench";
    cu->targets = ct;
    cu->ntargets = NT;
    cu->balance = bal;
    cu->hash_on = bal == CFG_BAL_HASH ? CFG_HASH_HEADER : CFG_HASH_NONE;
    if (up_set_build(cu, 1, set, NULL, 0, 100) != 0) {
        fprintf(stderr, "balance_bench: build failed\n");
        exit(1);
    }
    const struct up_upstream *u = &set->v[0];
    for (size_t i = 0; i < NT; i++) {
        struct hc_target *h = u->targets[i].health;
        if (i % 100 == 7)       /* 10 down: their bits cleared, as health/ does */
            atomic_fetch_and(&u->hg->bits[i / 64], ~(1ull << (i % 64)));
        atomic_store(&h->inflight, (uint32_t)(i * 2654435761u >> 29));   /* 0..7 */
    }
}

static double run(const char *name, enum cfg_balance bal, bool mixed, bool use_key)
{
    struct cfg_upstream cu;
    struct up_set set;
    uint64_t pos = 0, rng = 0x9e3779b97f4a7c15ull;
    double best = 1e30;
    long bad = 0;

    build(&set, &cu, bal, mixed);
    const struct up_upstream *u = &set.v[0];
    struct up_wpick st = { cur, &pos, &rng };
    memset(cur, 0, sizeof(cur));
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < PICKS; i++) {
            int k = up_pick(u, &st, 1, 0, use_key ? &keys[i & (NKEYS - 1)] : NULL);
            bad += k < 0 || k % 100 == 7;
        }
        double ns = (now_ns() - t0) / PICKS;
        if (ns < best)
            best = ns;
    }
    up_set_free(&set);
    printf("balance: %-34s %6.1f ns/pick\n", name, best);
    if (bad) {
        fprintf(stderr, "balance_bench: %s: %ld bad picks\n", name, bad);
        exit(1);
    }
    return best;
}

int main(void)
{
    double worst = 0, v;

    for (unsigned i = 0; i < NKEYS; i++) {
        char k[32];
        int n = snprintf(k, sizeof(k), "session-%u", i);
        keys[i] = up_hash(k, (size_t)n, 0);
    }
#define RUN(...) (v = run(__VA_ARGS__), worst = v > worst ? v : worst)
    RUN("round_robin, 1000 equal", CFG_BAL_ROUND_ROBIN, false, false);
    RUN("round_robin, 1000 weighted 1..4", CFG_BAL_ROUND_ROBIN, true, false);
    RUN("least_request, 1000 equal", CFG_BAL_LEAST_REQUEST, false, false);
    RUN("least_request, 1000 weighted 1..4", CFG_BAL_LEAST_REQUEST, true, false);
    RUN("random_two, 1000 equal", CFG_BAL_RANDOM_TWO, false, false);
    RUN("random_two, 1000 weighted 1..4", CFG_BAL_RANDOM_TWO, true, false);
    RUN("hash, 1000 equal, 1024 keys", CFG_BAL_HASH, false, true);
    RUN("hash, 1000 weighted 1..4, 1024 keys", CFG_BAL_HASH, true, true);
    printf("balance: worst %.1f ns/pick (goal < 100)\n", worst);
    hc_shutdown();
    return 0;
}
