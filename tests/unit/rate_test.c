/*
 * rate_test.c - policy/rate.c (the key table: GCRA rate limits, token
 * budgets, eviction, SipHash) and policy/usage.c (the streaming usage
 * scanner, fed split at every byte).
 */
#include "tap.h"
#include "../../policy/rate.c"
#include "../../policy/usage.c"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC 1000000000ull

/* ---- SipHash: the reference vector of the paper (key 00..0f, message
 * 00..0e, 15 bytes) ---- */
static void test_siphash(void)
{
    uint8_t k[16], m[64];
    struct pol_ktab *t;

    for (int i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        m[i] = (uint8_t)i;
    ok(pol_siphash(k, m, 15) == 0xa129ca6149be45e5ull, "SipHash-2-4 paper vector (15 bytes)");
    ok(pol_siphash(k, m, 0) == 0x726fdb47dd0e0e31ull, "SipHash-2-4 of the empty message");
    /* streaming in pieces equals one call */
    struct sip s;
    sip_init(&s, k);
    sip_update(&s, m, 3);
    sip_update(&s, m + 3, 9);
    sip_update(&s, m + 12, 20);
    ok(sip_final(&s) == pol_siphash(k, m, 32), "SipHash fed in pieces = in one");
    t = pol_ktab_get(64);
    ok(pol_ktab_hash(t, "ab", 2, "c", 1) != pol_ktab_hash(t, "a", 1, "bc", 2),
       "the route identity and the key bytes do not run together");
    ok(pol_ktab_hash(t, "r", 1, "k", 1) == pol_ktab_hash(t, "r", 1, "k", 1), "hash is stable");
    pol_ktab_unref(&t);
}

/* ---- GCRA counts ---- */
static uint64_t count_allowed(struct pol_ktab *t, uint64_t key, double rps, uint64_t burst,
                              uint64_t t0, uint64_t span_ns, uint64_t step_ns)
{
    uint64_t T = (uint64_t)(1e9 / rps), tau = (burst - 1) * T, n = 0, wait;

    for (uint64_t now = t0; now <= t0 + span_ns; now += step_ns)
        n += pol_rate_take(t, key, T, tau, now, &wait);
    return n;
}

static void test_gcra(void)
{
    struct pol_ktab *t = pol_ktab_get(1024);
    uint64_t now = pol_now_ns(), wait = 0, n;
    const double rates[] = { 1, 3, 10, 50, 1000 };
    const uint64_t bursts[] = { 1, 5, 100 };

    /* requests every 100 us over t seconds: rps * t + burst within one */
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
        for (size_t j = 0; j < sizeof(bursts) / sizeof(bursts[0]); j++) {
            uint64_t key = 1000 + i * 10 + j, span = 3 * SEC;
            double want = rates[i] * 3 + (double)bursts[j];
            n = count_allowed(t, key, rates[i], bursts[j], now, span, 100000);
            ok((double)n >= want - 1 && (double)n <= want + 1,
               "rps %g burst %" PRIu64 " over 3 s: %" PRIu64 " allowed, want %g +- 1",
               rates[i], bursts[j], n, want);
        }

    /* the burst at once, then a denial with its wait */
    uint64_t T = SEC / 2, tau = 3 * T;     /* 2/s, burst 4 */
    n = 0;
    for (int i = 0; i < 10; i++)
        n += pol_rate_take(t, 7, T, tau, now, &wait);
    ok(n == 4, "burst 4 passes at once (%" PRIu64 ")", n);
    ok(wait == T, "the denial waits one emission interval (%" PRIu64 " ns)", wait);
    ok(!pol_rate_take(t, 7, T, tau, now + T - 1, &wait) && wait == 1, "1 ns early is still denied");
    ok(pol_rate_take(t, 7, T, tau, now + T, &wait), "on time it passes");
    /* denials do not move the state */
    ok(!pol_rate_take(t, 7, T, tau, now + T, &wait), "and the next is denied again");
    /* a key that rested long has only its burst */
    n = 0;
    for (int i = 0; i < 10; i++)
        n += pol_rate_take(t, 7, T, tau, now + 3600 * SEC, &wait);
    ok(n == 4, "after an hour's rest, still only the burst (%" PRIu64 ")", n);
    pol_ktab_unref(&t);
}

/* ---- two threads on one key ---- */
struct thr {
    struct pol_ktab *t;
    uint64_t start, T, tau, allowed;
};

static uint64_t shared_clock_ns;    /* both threads walk the same fake clock */

static void *hammer(void *arg)
{
    struct thr *a = arg;
    uint64_t wait;

    for (int i = 0; i < 200000; i++) {
        /* a clock that advances by 10 us per request of either thread */
        uint64_t now = a->start + __atomic_fetch_add(&shared_clock_ns, 10000, __ATOMIC_RELAXED);
        a->allowed += pol_rate_take(a->t, 42, a->T, a->tau, now, &wait);
    }
    return NULL;
}

static void test_threads(void)
{
    struct pol_ktab *t = pol_ktab_get(1024);
    struct thr a[2];
    pthread_t th[2];
    uint64_t start = pol_now_ns(), total;

    for (int i = 0; i < 2; i++) {
        a[i] = (struct thr){ t, start, SEC / 100, 9 * (SEC / 100), 0 };     /* 100/s, burst 10 */
        pthread_create(&th[i], NULL, hammer, &a[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    total = a[0].allowed + a[1].allowed;
    /* 400000 requests 10 us apart: 4 s of fake time -> 100 * 4 + 10 */
    ok(total >= 409 && total <= 411, "two threads on one key: %" PRIu64 " allowed, want 410 +- 1", total);
    ok(a[0].allowed > 0 && a[1].allowed > 0, "both threads got some (%" PRIu64 ", %" PRIu64 ")",
       a[0].allowed, a[1].allowed);
    pol_ktab_unref(&t);
}

/* ---- eviction ---- */
static void test_eviction(void)
{
    struct pol_ktab *t = pol_ktab_get(1000);
    uint64_t now = pol_now_ns(), wait, T = SEC, tau = 0;
    bool hot_kept = true;

    ok(pol_ktab_capacity(t) == 1000, "capacity: 1000 keys (125 sets of 8)");
    for (uint64_t k = 1; k <= 20000; k++) {
        uint64_t key = pol_ktab_hash(t, "r", 1, &k, sizeof(k));
        /* time moves 1 ms per new key, so stamps tell old from new */
        pol_rate_take(t, key, T, tau, now + k * 1048576, &wait);
        /* a hot key used all along stays */
        uint64_t hot = pol_ktab_hash(t, "r", 1, "hot", 3);
        pol_rate_take(t, hot, 1, 0, now + k * 1048576, &wait);
        if (k > 10 && find(set_of(t, hot), hot) < 0)
            hot_kept = false;
    }
    ok(pol_ktab_used(t) <= pol_ktab_capacity(t), "20000 keys in a 1000-key table: %zu used", pol_ktab_used(t));
    ok(pol_ktab_used(t) > 900, "and the table is nearly full (%zu)", pol_ktab_used(t));
    ok(hot_kept, "a key in constant use is never evicted");
    /* the last key added is present, the first long gone */
    uint64_t k1 = 1, klast = 20000;
    ok(find(set_of(t, pol_ktab_hash(t, "r", 1, &klast, 8)), pol_ktab_hash(t, "r", 1, &klast, 8)) >= 0,
       "the newest key is in the table");
    ok(find(set_of(t, pol_ktab_hash(t, "r", 1, &k1, 8)), pol_ktab_hash(t, "r", 1, &k1, 8)) < 0,
       "the oldest key was evicted");
    /* an evicted key comes back fresh: its burst again */
    ok(pol_rate_take(t, pol_ktab_hash(t, "r", 1, &k1, 8), T, tau, now + 20001 * 1048576ull, &wait),
       "an evicted key starts afresh");

    /* tables: same size shared, another size new, small sizes rounded */
    struct pol_ktab *t2 = pol_ktab_get(1000), *t3 = pol_ktab_get(5);
    ok(t2 == t, "a config with the same max_rate_limit_keys shares the table (state survives reloads)");
    ok(t3 != t && pol_ktab_capacity(t3) == 8, "a tiny table holds one set of 8");
    pol_ktab_unref(&t2);
    pol_ktab_unref(&t3);
    pol_ktab_unref(&t);
    ok(t == NULL, "unref clears the caller's pointer");
}

/* ---- budgets ---- */
static void test_budget(void)
{
    struct pol_ktab *t = pol_ktab_get(64);
    uint64_t now = pol_now_ns(), wait = 0;
    uint64_t per = 60 * SEC / 600, cap = 60 * SEC;     /* 600 tokens/min: 10/s */

    ok(pol_budget_ok(t, 5, now, &wait), "an unknown key has its budget");
    pol_budget_debit(t, 5, per, cap, 599, now);
    ok(pol_budget_ok(t, 5, now, &wait), "599 of 600 spent: still allowed");
    pol_budget_debit(t, 5, per, cap, 1, now);
    ok(!pol_budget_ok(t, 5, now, &wait), "600 of 600 spent (balance 0): denied");
    ok(wait > 0 && wait <= per + 1, "... until one token refilled (%" PRIu64 " ns)", wait);
    ok(pol_retry_after_s(wait) == 1, "Retry-After 1");
    pol_budget_debit(t, 5, per, cap, 300, now);     /* 300 in debt: 30 s */
    ok(!pol_budget_ok(t, 5, now + 29 * SEC, &wait) && pol_retry_after_s(wait) == 1,
       "300 tokens in debt at 10/s: denied 29 s later, Retry-After 1");
    ok(pol_budget_ok(t, 5, now + 30 * SEC + 1, &wait), "allowed 30 s later");
    /* the balance never exceeds one minute's worth */
    pol_budget_debit(t, 5, per, cap, 600, now + 3600 * SEC);
    ok(!pol_budget_ok(t, 5, now + 3600 * SEC, &wait), "an hour's rest refills one minute's worth, no more");
    /* huge debits saturate */
    pol_budget_debit(t, 6, per, cap, UINT64_MAX / 2, now);
    ok(!pol_budget_ok(t, 6, now, &wait) && pol_retry_after_s(wait) == UINT32_MAX, "a huge debit saturates");
    pol_ktab_unref(&t);
}

static void test_retry_after(void)
{
    ok(pol_retry_after_s(1) == 1, "1 ns -> 1 s");
    ok(pol_retry_after_s(SEC) == 1, "1 s -> 1 s");
    ok(pol_retry_after_s(SEC + 1) == 2, "1 s + 1 ns -> 2 s");
    ok(pol_retry_after_s(0) == 1, "0 -> 1 s (never 0)");
    ok(pol_retry_after_s(59 * SEC + SEC / 2) == 60, "59.5 s -> 60 s");
}

/* ---- the usage scanner ---- */

/* Feed s whole, then split at every position into two, and at every byte;
 * each must give want (UINT64_MAX = no usage found). */
static void scan_all(const char *what, const char *s, bool sse, uint64_t want)
{
    size_t n = strlen(s);
    struct pol_usage u;
    bool good = true;
    uint64_t got;

    pol_usage_init(&u, sse);
    pol_usage_feed(&u, s, n);
    got = u.found ? pol_usage_tokens(&u) : UINT64_MAX;
    for (size_t cut = 0; cut <= n && good; cut++) {
        pol_usage_init(&u, sse);
        pol_usage_feed(&u, s, cut);
        pol_usage_feed(&u, s + cut, n - cut);
        if ((u.found ? pol_usage_tokens(&u) : UINT64_MAX) != want)
            good = false;
    }
    pol_usage_init(&u, sse);
    for (size_t i = 0; i < n; i++)
        pol_usage_feed(&u, s + i, 1);
    if ((u.found ? pol_usage_tokens(&u) : UINT64_MAX) != want)
        good = false;
    ok(got == want && good, "usage: %s (%" PRIu64 ", want %" PRIu64 ", every split)", what, got, want);
}

static void test_usage(void)
{
    const uint64_t none = UINT64_MAX;

    scan_all("a chat completion",
             "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
             "{\"role\":\"assistant\",\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":12,"
             "\"completion_tokens\":30,\"total_tokens\":42}}", false, 42);
    scan_all("no total: prompt + completion",
             "{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5}}", false, 12);
    scan_all("missing usage", "{\"id\":\"x\",\"choices\":[]}", false, none);
    scan_all("usage null", "{\"usage\":null,\"x\":1}", false, none);
    scan_all("usage in a string does not count",
             "{\"content\":\"\\\"usage\\\":{\\\"total_tokens\\\":99}\",\"usage\":{\"total_tokens\":3}}", false, 3);
    scan_all("a string with only usage-like text",
             "{\"content\":\"{\\\"usage\\\": {\\\"total_tokens\\\": 99}}\"}", false, none);
    scan_all("escaped backslash before a quote ends the string",
             "{\"a\":\"x\\\\\",\"usage\":{\"total_tokens\":8}}", false, 8);
    scan_all("a key with escapes does not match",
             "{\"us\\u0061ge\":{\"total_tokens\":9}}", false, none);
    scan_all("nested usage (not top level) does not count",
             "{\"choices\":[{\"usage\":{\"total_tokens\":50}}],\"meta\":{\"usage\":{\"total_tokens\":60}}}", false, none);
    scan_all("nested objects inside usage",
             "{\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4,"
             "\"total_tokens\":1000},\"completion_tokens\":6,\"completion_tokens_details\":"
             "{\"reasoning_tokens\":[1,2,{\"total_tokens\":7}]},\"total_tokens\":16}}", false, 16);
    scan_all("whitespace and newlines (pretty JSON)",
             "{\n  \"usage\" : {\n    \"total_tokens\" : 21 ,\n    \"prompt_tokens\": 1\n  }\n}\n", false, 21);
    scan_all("huge number saturates", "{\"usage\":{\"total_tokens\":123456789012345678901234567890}}",
             false, POL_USAGE_MAX);
    scan_all("negative and fractional numbers ignored",
             "{\"usage\":{\"total_tokens\":-5,\"prompt_tokens\":2.5,\"completion_tokens\":3}}", false, 3);
    scan_all("usage that never closes does not count", "{\"usage\":{\"total_tokens\":5", false, none);
    scan_all("a top-level array of a usage is not an object member",
             "{\"usage\":[{\"total_tokens\":5}]}", false, none);
    scan_all("SSE with a final usage event",
             "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n"
             "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":null}\n\n"
             "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,"
             "\"total_tokens\":11}}\n\n"
             "data: [DONE]\n\n", true, 11);
    scan_all("SSE: cumulative usage per event, the last counts",
             "data: {\"usage\":{\"total_tokens\":1}}\n\ndata: {\"usage\":{\"total_tokens\":2}}\n\n"
             "data: {\"usage\":{\"total_tokens\":3}}\n\n", true, 3);
    scan_all("SSE with CRLF, event and id lines",
             "event: message\r\nid: 1\r\ndata: {\"usage\":{\"total_tokens\":4}}\r\n\r\n", true, 4);
    scan_all("SSE: an event cut short does not swallow the next",
             "data: {\"choices\":[{\"x\":1\n\ndata: {\"usage\":{\"total_tokens\":5}}\n\n", true, 5);
    scan_all("SSE: a broken string resets at its newline",
             "data: {\"content\":\"abc\ndata: {\"usage\":{\"total_tokens\":6}}\n\n", true, 6);
    scan_all("text that is not JSON", "hello world, total_tokens: 5\n", false, none);
    scan_all("JSON body with a bracket in a string",
             "{\"a\":\"}}}]]]{{{\",\"usage\":{\"total_tokens\":13}}", false, 13);
}

int main(void)
{
    test_siphash();
    test_gcra();
    test_threads();
    test_eviction();
    test_budget();
    test_retry_after();
    test_usage();
    return tap_done();
}
