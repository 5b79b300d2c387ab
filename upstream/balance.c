/* balance.c - the balancers (balance.h). */
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- hashing ---- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

uint64_t up_hash(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = 14695981039346656037ull ^ seed;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return mix64(h ^ n);
}

/* The value of cookie name (len nlen) in one Cookie header value, or NULL. */
static const char *cookie_find(const char *v, size_t vlen, const char *name, size_t nlen,
                               size_t *outlen)
{
    const char *p = v, *end = v + vlen;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            p++;
        const char *pair = p;
        while (p < end && *p != ';')
            p++;
        /* pair .. p: name=value */
        const char *eq = memchr(pair, '=', (size_t)(p - pair));
        if (eq && (size_t)(eq - pair) == nlen && memcmp(pair, name, nlen) == 0) {
            const char *val = eq + 1, *ve = p;
            while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *outlen = (size_t)(ve - val);
            return val;
        }
    }
    return NULL;
}

bool up_hash_key(const struct cfg_upstream *cu, const struct h1_header *hs, size_t nh,
                 const void *ip, size_t iplen, uint64_t *key)
{
    if (cu->balance != CFG_BAL_HASH)
        return false;
    switch (cu->hash_on) {
    case CFG_HASH_CLIENT_IP:
        if (ip == NULL || iplen == 0)
            return false;
        *key = up_hash(ip, iplen, 0);
        return true;
    case CFG_HASH_HEADER:
        for (size_t i = 0; i < nh; i++)
            if (hs[i].name_len == cu->hash_name_len &&
                strncasecmp(hs[i].name, cu->hash_name, cu->hash_name_len) == 0) {
                *key = up_hash(hs[i].value, hs[i].value_len, 0);
                return true;
            }
        return false;
    case CFG_HASH_COOKIE:
        for (size_t i = 0; i < nh; i++) {
            size_t vl;
            const char *v;
            if (hs[i].name_len != 6 || strncasecmp(hs[i].name, "cookie", 6) != 0)
                continue;
            v = cookie_find(hs[i].value, hs[i].value_len, cu->hash_name, cu->hash_name_len, &vl);
            if (v) {
                *key = up_hash(v, vl, 0);
                return true;
            }
        }
        return false;
    default:
        return false;
    }
}

/* ---- building the shared part ---- */

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Points on the hash ring for a target of the upstream's lowest weight
 * (ketama's 160: each target's share within about 8 % of its weight's);
 * one of weight w has w / lowest times as many. */
#define RING_VNODES 160
#define RING_MAX    (1u << 24)

struct ring_pt {
    uint32_t h;             /* position on the ring */
    uint32_t t;             /* target index */
    uint64_t tie;           /* orders equal positions the same whatever the indexes */
};

static int ring_cmp(const void *a, const void *b)
{
    const struct ring_pt *x = a, *y = b;

    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->tie < y->tie ? -1 : x->tie > y->tie;
}

/*
 * A ring with virtual nodes: each target has points in proportion to its
 * weight (RING_VNODES for an average one), placed by hashing its address
 * and the point's number, so a target's points do not depend on the other
 * targets: removing one moves its own keys and no other (Maglev, tried
 * first, moved up to 30 % of the others' keys when two targets happened to
 * draw one skip).  A key goes to the first point at or after its hash.  The
 * jump table maps the top bits of a hash to the first point of that range,
 * so a lookup reads a bucket and a point or two, not a binary search.
 */
static int ring_build(struct up_upstream *u)
{
    size_t n = u->ntargets;
    uint32_t wmin = UINT32_MAX;
    uint64_t total = 0;

    /* A target's points depend on its own weight and the lowest, never on
     * how many targets there are: removing one (not the only one of the
     * lowest weight) leaves the others' points where they were. */
    for (size_t i = 0; i < n; i++)
        wmin = u->weights[i] < wmin ? u->weights[i] : wmin;
    double per = (double)RING_VNODES / wmin;
    if (per * (double)u->bal.wtotal > RING_MAX)     /* bounded, consistent no longer */
        per = (double)RING_MAX / (double)u->bal.wtotal;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = (uint64_t)(u->weights[i] * per + 0.5);
        total += k ? k : 1;
    }
    struct ring_pt *pts = malloc(total * sizeof(*pts));
    if (pts == NULL)
        return -1;
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = u->targets[i].text;
        size_t tl = strlen(t);
        uint64_t tie = up_hash(t, tl, 0x72696e6774696521ull);
        uint64_t k = (uint64_t)(u->weights[i] * per + 0.5);
        for (uint64_t v = 0; v < (k ? k : 1); v++) {
            char buf[320];     /* text (< 280) "#" and up to 20 digits */
            int bl = snprintf(buf, sizeof(buf), "%s#%llu", t, (unsigned long long)v);
            pts[np++] = (struct ring_pt){ (uint32_t)(up_hash(buf, (size_t)bl, 0) >> 32),
                                          (uint32_t)i, tie };
        }
    }
    qsort(pts, np, sizeof(*pts), ring_cmp);
    uint32_t bits = 1;
    while ((1ull << bits) < np && bits < 24)
        bits++;
    u->bal.ring_h = malloc(np * sizeof(uint32_t));
    u->bal.ring_t = malloc(np * sizeof(uint32_t));
    u->bal.jump = malloc(((size_t)1 << bits) * sizeof(uint32_t));
    if (!u->bal.ring_h || !u->bal.ring_t || !u->bal.jump) {
        free(pts);
        return -1;
    }
    for (size_t i = 0; i < np; i++) {
        u->bal.ring_h[i] = pts[i].h;
        u->bal.ring_t[i] = pts[i].t;
    }
    free(pts);
    u->bal.nring = (uint32_t)np;
    u->bal.jshift = 32 - bits;
    for (size_t b = 0, i = 0; b < ((size_t)1 << bits); b++) {
        while (i < np && (u->bal.ring_h[i] >> u->bal.jshift) < b)
            i++;
        u->bal.jump[b] = (uint32_t)i;       /* np: past the end, wraps to 0 */
    }
    return 0;
}

/* The longest round robin period precomputed, and the work spent on it. */
#define SCHED_MAX      65536u
#define SCHED_WORK_MAX (64u << 20)

/* One period of smooth weighted round robin over all targets: a worker
 * walking it picks what up_swrr would, in O(1). */
static int sched_build(struct up_upstream *u, uint64_t g)
{
    size_t n = u->ntargets;
    uint64_t period = u->bal.wtotal / g;

    if (period > SCHED_MAX || period * n > SCHED_WORK_MAX)
        return 0;       /* the O(n) algorithm then */
    int64_t *cur = calloc(n, sizeof(int64_t));
    u->bal.sched = malloc((size_t)period * sizeof(uint32_t));
    if (cur == NULL || u->bal.sched == NULL) {
        free(cur);
        return -1;
    }
    for (uint64_t k = 0; k < period; k++)
        u->bal.sched[k] = (uint32_t)up_swrr(cur, u->weights, n, NULL, NULL);
    u->bal.nsched = (uint32_t)period;
    free(cur);
    return 0;
}

/* Walker's alias table (Vose's construction): a draw is one uniform index
 * and one coin, whatever the weights; a binary search over running sums
 * took 10 mispredicted branches among 1,000 targets (~100 ns). */
static int alias_build(struct up_upstream *u)
{
    size_t n = u->ntargets, ns = 0, nl = 0;
    double *p = malloc(n * sizeof(double));
    size_t *small = malloc(n * sizeof(size_t)), *large = malloc(n * sizeof(size_t));

    u->bal.alias = malloc(n * sizeof(*u->bal.alias));
    if (!p || !small || !large || !u->bal.alias) {
        free(p), free(small), free(large);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = (double)u->weights[i] * (double)n / (double)u->bal.wtotal;
        if (p[i] < 1.0)
            small[ns++] = i;
        else
            large[nl++] = i;
    }
    while (ns && nl) {
        size_t s = small[--ns], l = large[nl - 1];
        u->bal.alias[s].prob = (uint64_t)(p[s] * 4294967296.0);
        u->bal.alias[s].alias = l;
        p[l] -= 1.0 - p[s];
        if (p[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl) {
        size_t l = large[--nl];
        u->bal.alias[l] = (struct up_alias){ 1ull << 32, l };
    }
    while (ns) {    /* rounding leftovers: as good as 1 */
        size_t s = small[--ns];
        u->bal.alias[s] = (struct up_alias){ 1ull << 32, s };
    }
    free(p), free(small), free(large);
    return 0;
}

int up_bal_build(struct up_upstream *u)
{
    size_t n = u->ntargets;
    uint64_t g = 0;
    bool equal = true;

    memset(&u->bal, 0, sizeof(u->bal));
    for (size_t i = 0; i < n; i++) {
        u->bal.wtotal += u->weights[i];
        g = gcd64(g, u->weights[i]);
        if (u->weights[i] != u->weights[0])
            equal = false;
    }
    if (n == 0 || u->bal.wtotal == 0)
        return 0;
    u->bal.wequal = equal;
    if (!equal) {
        if (alias_build(u) != 0 || (n > BAL_SMALL && sched_build(u, g) != 0))
            return -1;
    }
    if (u->cfg && u->cfg->balance == CFG_BAL_HASH && ring_build(u) != 0)
        return -1;
    return 0;
}

void up_bal_free(struct up_upstream *u)
{
    free(u->bal.alias);
    free(u->bal.sched);
    free(u->bal.ring_h);
    free(u->bal.ring_t);
    free(u->bal.jump);
    memset(&u->bal, 0, sizeof(u->bal));
}

/* ---- picking ---- */

int up_swrr(int64_t *cur, const uint32_t *w, size_t n,
            bool (*ok)(size_t i, const void *ctx), const void *ctx)
{
    int64_t total = 0;
    int best = -1;

    for (size_t i = 0; i < n; i++) {
        if (w[i] == 0 || (ok && !ok(i, ctx)))
            continue;
        cur[i] += w[i];
        total += w[i];
        if (best < 0 || cur[i] > cur[best])
            best = (int)i;
    }
    if (best >= 0)
        cur[best] -= total;
    return best;
}

struct pick_ctx {
    const struct up_upstream *u;
    uint64_t now;
    uint64_t tried;
    uint64_t num, den;      /* least_request: the minimum load, num/den */
};

static inline bool elig(const struct pick_ctx *c, size_t i)
{
    return !(c->tried & (1ull << (i & 63))) && c->u->weights[i] != 0 &&
           up_target_ok(c->u, i, c->now);
}

static bool pick_ok(size_t i, const void *arg)
{
    return elig(arg, i);
}

/* load(a) < load(b), load = in flight / weight */
static inline bool less_loaded(const struct up_upstream *u, size_t a, size_t b)
{
    return (uint64_t)up_inflight(&u->targets[a]) * u->weights[b] <
           (uint64_t)up_inflight(&u->targets[b]) * u->weights[a];
}

static bool tied_ok(size_t i, const void *arg)
{
    const struct pick_ctx *c = arg;

    return elig(c, i) &&
           (uint64_t)up_inflight(&c->u->targets[i]) * c->den == c->num * c->u->weights[i];
}

/* Round robin: the exact algorithm over the eligible targets of a small
 * upstream; over BAL_SMALL the precomputed period, an ineligible entry
 * passed over. */
static int pick_rr(const struct up_upstream *u, const struct up_wpick *st, struct pick_ctx *c)
{
    size_t n = u->ntargets;

    if (n <= BAL_SMALL || (!u->bal.wequal && u->bal.sched == NULL))
        return up_swrr(st->cur, u->weights, n, pick_ok, c);
    if (u->bal.sched) {
        for (int k = 0; k < BAL_SMALL; k++) {
            size_t i = u->bal.sched[(*st->pos)++ % u->bal.nsched];
            if (elig(c, i))
                return (int)i;
        }
        return up_swrr(st->cur, u->weights, n, pick_ok, c);
    }
    /* equal weights: the sequence is 0, 1, ..., n-1 */
    for (size_t k = 0; k < n; k++) {
        size_t i = (*st->pos)++ % n;
        if (elig(c, i))
            return (int)i;
    }
    return -1;
}

/* The exact least loaded eligible target; ties by round robin. */
static int pick_least_exact(const struct up_upstream *u, const struct up_wpick *st,
                            struct pick_ctx *c)
{
    int best = -1;

    for (size_t i = 0; i < u->ntargets; i++)
        if (elig(c, i) && (best < 0 || less_loaded(u, i, (size_t)best)))
            best = (int)i;
    if (best < 0)
        return -1;
    c->num = up_inflight(&u->targets[best]);
    c->den = u->weights[best];
    int k = up_swrr(st->cur, u->weights, u->ntargets, tied_ok, c);
    return k >= 0 ? k : best;   /* a count moved between the passes */
}

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;        /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* A target drawn at random in proportion to its weight. */
static size_t draw(const struct up_upstream *u, uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    size_t i = (size_t)(((r >> 32) * (uint64_t)u->ntargets) >> 32);

    if (u->bal.alias == NULL)
        return i;
    const struct up_alias *a = &u->bal.alias[i];
    return (r & 0xffffffffu) < a->prob ? i : (size_t)a->alias;
}

/* The power of two choices: two distinct eligible targets drawn by weight,
 * the less loaded wins (the first on a tie).  A few draws find them unless
 * most targets are out; then the exact scan. */
static int pick_two(const struct up_upstream *u, const struct up_wpick *st, struct pick_ctx *c)
{
    int a = -1;

    for (int k = 0; k < 8; k++) {
        size_t i = draw(u, st->rng);
        if ((int)i == a || !elig(c, i))
            continue;
        if (a < 0) {
            a = (int)i;
            continue;
        }
        return less_loaded(u, i, (size_t)a) ? (int)i : a;
    }
    return a >= 0 ? a : pick_least_exact(u, st, c);
}

/* The ring: the first point at or after the key, else the next points'
 * targets; no eligible one within a few points (most targets out): round
 * robin. */
static int pick_hash(const struct up_upstream *u, const struct up_wpick *st, struct pick_ctx *c,
                     uint64_t key)
{
    uint32_t h = (uint32_t)(key >> 32), np = u->bal.nring;
    uint32_t i = u->bal.jump[h >> u->bal.jshift];

    while (i < np && u->bal.ring_h[i] < h)
        i++;
    for (int k = 0; k < 64; k++) {
        if (i >= np)
            i = 0;
        size_t t = u->bal.ring_t[i++];
        if (elig(c, t))
            return (int)t;
    }
    return pick_rr(u, st, c);
}

int up_pick(const struct up_upstream *u, const struct up_wpick *st, uint64_t now_ms,
            uint64_t tried, const uint64_t *key)
{
    struct pick_ctx c = { u, now_ms, tried, 0, 0 };

    if (u->ntargets <= 1)   /* the common case needs no bookkeeping */
        return u->ntargets == 1 && elig(&c, 0) ? 0 : -1;
    switch (u->cfg ? u->cfg->balance : CFG_BAL_ROUND_ROBIN) {
    case CFG_BAL_LEAST_REQUEST:
        return u->ntargets <= BAL_SMALL ? pick_least_exact(u, st, &c) : pick_two(u, st, &c);
    case CFG_BAL_RANDOM_TWO:
        return pick_two(u, st, &c);
    case CFG_BAL_HASH:
        if (key && u->bal.ring_h)
            return pick_hash(u, st, &c, *key);
        return pick_rr(u, st, &c);
    default:
        return pick_rr(u, st, &c);
    }
}
