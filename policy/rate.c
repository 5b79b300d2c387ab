/*
 * rate.c - the in-process key table of rate limits and token budgets (see
 * rate.h for the model and its approximations).
 */
#include "rate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct pol_kset {
    _Atomic uint64_t key[POL_KTAB_WAYS];    /* 0 = free */
    _Atomic uint64_t tat[POL_KTAB_WAYS];    /* 0 for a free slot */
    _Atomic uint32_t used[POL_KTAB_WAYS];   /* last use, ~ms (pol_now_ns >> 20), wraps */
} __attribute__((aligned(64)));

struct pol_ktab {
    _Atomic uint32_t refs;
    uint32_t max_keys;
    uint64_t nsets;
    uint8_t seed[16];
    struct pol_kset *sets;
};

/* ---- SipHash-2-4 (Aumasson and Bernstein's specification) ---------- */

static inline uint64_t rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

struct sip {
    uint64_t v0, v1, v2, v3;
    uint8_t tail[8];
    size_t ntail, total;
};

static inline void sip_round(struct sip *s)
{
    s->v0 += s->v1; s->v1 = rotl64(s->v1, 13); s->v1 ^= s->v0; s->v0 = rotl64(s->v0, 32);
    s->v2 += s->v3; s->v3 = rotl64(s->v3, 16); s->v3 ^= s->v2;
    s->v0 += s->v3; s->v3 = rotl64(s->v3, 21); s->v3 ^= s->v0;
    s->v2 += s->v1; s->v1 = rotl64(s->v1, 17); s->v1 ^= s->v2; s->v2 = rotl64(s->v2, 32);
}

static void sip_init(struct sip *s, const uint8_t k[16])
{
    uint64_t k0 = le64(k), k1 = le64(k + 8);

    s->v0 = 0x736f6d6570736575ull ^ k0;
    s->v1 = 0x646f72616e646f6dull ^ k1;
    s->v2 = 0x6c7967656e657261ull ^ k0;
    s->v3 = 0x7465646279746573ull ^ k1;
    s->ntail = s->total = 0;
}

static inline void sip_block(struct sip *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

static void sip_update(struct sip *s, const void *msg, size_t len)
{
    const uint8_t *p = msg;

    s->total += len;
    if (s->ntail) {
        while (len && s->ntail < 8) {
            s->tail[s->ntail++] = *p++;
            len--;
        }
        if (s->ntail < 8)
            return;
        sip_block(s, le64(s->tail));
        s->ntail = 0;
    }
    for (; len >= 8; p += 8, len -= 8)
        sip_block(s, le64(p));
    memcpy(s->tail, p, len);
    s->ntail = len;
}

static uint64_t sip_final(struct sip *s)
{
    uint64_t b = (uint64_t)(s->total & 0xff) << 56;

    for (size_t i = 0; i < s->ntail; i++)
        b |= (uint64_t)s->tail[i] << (8 * i);
    sip_block(s, b);
    s->v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

uint64_t pol_siphash(const uint8_t k[16], const void *msg, size_t len)
{
    struct sip s;

    sip_init(&s, k);
    sip_update(&s, msg, len);
    return sip_final(&s);
}

uint64_t pol_ktab_hash(const struct pol_ktab *t, const void *a, size_t alen, const void *b, size_t blen)
{
    struct sip s;
    uint64_t h;
    uint8_t sep[8];

    sip_init(&s, t->seed);
    /* the first string's length goes in, so ("ab","c") and ("a","bc") differ */
    for (int i = 0; i < 8; i++)
        sep[i] = (uint8_t)((uint64_t)alen >> (8 * i));
    sip_update(&s, sep, sizeof(sep));
    sip_update(&s, a, alen);
    sip_update(&s, b, blen);
    h = sip_final(&s);
    return h ? h : 1;
}

/* ---- the table -------------------------------------------------------- */

uint64_t pol_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* a fresh key's TAT (0) must lie more than a budget's minute in the past */
    return (1ull << 50) + (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static pthread_mutex_t ktab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pol_ktab *ktab_cur;   /* the newest table, for the next configuration */

struct pol_ktab *pol_ktab_get(uint32_t max_keys)
{
    struct pol_ktab *t;

    if (max_keys < POL_KTAB_WAYS)
        max_keys = POL_KTAB_WAYS;
    pthread_mutex_lock(&ktab_mu);
    t = ktab_cur;
    if (t && t->max_keys == max_keys) {
        atomic_fetch_add(&t->refs, 1);
        pthread_mutex_unlock(&ktab_mu);
        return t;
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        goto fail;
    t->max_keys = max_keys;
    t->nsets = max_keys / POL_KTAB_WAYS;
    t->sets = aligned_alloc(64, sizeof(struct pol_kset) * t->nsets);
    if (!t->sets)
        goto fail_sets;
    memset(t->sets, 0, sizeof(struct pol_kset) * t->nsets);
    if (getrandom(t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed)) {
        /* no entropy source: still unpredictable enough to a remote client */
        uint64_t a = pol_now_ns(), b = (uint64_t)(uintptr_t)t;
        memcpy(t->seed, &a, 8);
        memcpy(t->seed + 8, &b, 8);
    }
    atomic_init(&t->refs, 1);
    ktab_cur = t;
    pthread_mutex_unlock(&ktab_mu);
    return t;

fail_sets:
    free(t);
fail:
    pthread_mutex_unlock(&ktab_mu);
    return NULL;
}

void pol_ktab_unref(struct pol_ktab **tp)
{
    struct pol_ktab *t = *tp;

    *tp = NULL;
    if (!t)
        return;
    pthread_mutex_lock(&ktab_mu);
    if (atomic_fetch_sub(&t->refs, 1) == 1) {
        if (ktab_cur == t)
            ktab_cur = NULL;
        free(t->sets);
        free(t);
    }
    pthread_mutex_unlock(&ktab_mu);
}

size_t pol_ktab_capacity(const struct pol_ktab *t)
{
    return (size_t)t->nsets * POL_KTAB_WAYS;
}

size_t pol_ktab_used(const struct pol_ktab *t)
{
    size_t n = 0;

    for (uint64_t s = 0; s < t->nsets; s++)
        for (int i = 0; i < POL_KTAB_WAYS; i++)
            n += atomic_load_explicit(&t->sets[s].key[i], memory_order_relaxed) != 0;
    return n;
}

static inline struct pol_kset *set_of(struct pol_ktab *t, uint64_t key)
{
    return &t->sets[(uint64_t)(((unsigned __int128)key * t->nsets) >> 64)];
}

static inline void touch(struct pol_kset *s, int i, uint64_t now)
{
    uint32_t stamp = (uint32_t)(now >> 20);

    /* written once a millisecond at most: a hot key's line stays shared */
    if (atomic_load_explicit(&s->used[i], memory_order_relaxed) != stamp)
        atomic_store_explicit(&s->used[i], stamp, memory_order_relaxed);
}

/* The slot holding key, or -1. */
static int find(struct pol_kset *s, uint64_t key)
{
    for (int i = 0; i < POL_KTAB_WAYS; i++)
        if (atomic_load_explicit(&s->key[i], memory_order_acquire) == key)
            return i;
    return -1;
}

/*
 * The slot for key, taking one when it has none: a free slot, else the
 * least recently used.  Two threads adding the same key at once may claim
 * two slots; the lower index wins and the other gives its slot back.
 */
static int find_or_add(struct pol_kset *s, uint64_t key, uint64_t now)
{
    for (int tries = 0; tries < 4; tries++) {
        int i = find(s, key), victim = -1;
        uint32_t stamp = (uint32_t)(now >> 20), oldest = 0;
        uint64_t cur;

        if (i >= 0)
            return i;
        for (int j = 0; j < POL_KTAB_WAYS; j++) {
            if (atomic_load_explicit(&s->key[j], memory_order_relaxed) == 0) {
                victim = j;
                break;
            }
            uint32_t age = stamp - atomic_load_explicit(&s->used[j], memory_order_relaxed);
            if (victim < 0 || age > oldest) {
                victim = j;
                oldest = age;
            }
        }
        cur = atomic_load_explicit(&s->key[victim], memory_order_relaxed);
        uint64_t old_tat = atomic_load_explicit(&s->tat[victim], memory_order_relaxed);
        if (!atomic_compare_exchange_strong_explicit(&s->key[victim], &cur, key,
                                                     memory_order_acq_rel, memory_order_relaxed))
            continue;
        /* the evicted key's state is not the new one's; a user of the new
         * key that got there first keeps its own write */
        atomic_compare_exchange_strong_explicit(&s->tat[victim], &old_tat, 0,
                                                memory_order_acq_rel, memory_order_relaxed);
        atomic_store_explicit(&s->used[victim], stamp, memory_order_relaxed);
        for (int j = 0; j < victim; j++) {
            if (atomic_load_explicit(&s->key[j], memory_order_acquire) == key) {
                uint64_t mine = key;
                atomic_compare_exchange_strong_explicit(&s->key[victim], &mine, 0,
                                                        memory_order_acq_rel, memory_order_relaxed);
                return j;
            }
        }
        return victim;
    }
    return -1;      /* a set churning under other threads: decide without state */
}

bool pol_rate_take(struct pol_ktab *t, uint64_t key, uint64_t t_ns, uint64_t tau_ns, uint64_t now,
                   uint64_t *wait_ns)
{
    struct pol_kset *s = set_of(t, key);
    int i = find_or_add(s, key, now);
    uint64_t tat, base;

    if (i < 0)
        return true;
    touch(s, i, now);
    tat = atomic_load_explicit(&s->tat[i], memory_order_relaxed);
    for (;;) {
        base = tat > now ? tat : now;
        if (base - now > tau_ns) {
            *wait_ns = base - now - tau_ns;
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&s->tat[i], &tat, base + t_ns,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

bool pol_budget_ok(struct pol_ktab *t, uint64_t key, uint64_t now, uint64_t *wait_ns)
{
    struct pol_kset *s = set_of(t, key);
    int i = find(s, key);
    uint64_t tat;

    if (i < 0)
        return true;
    touch(s, i, now);
    tat = atomic_load_explicit(&s->tat[i], memory_order_relaxed);
    if (now > tat)
        return true;
    *wait_ns = tat > now ? tat - now : 1;
    return false;
}

static inline uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

void pol_budget_debit(struct pol_ktab *t, uint64_t key, uint64_t per_token_ns, uint64_t cap_ns,
                      uint64_t tokens, uint64_t now)
{
    struct pol_kset *s = set_of(t, key);
    int i = find_or_add(s, key, now);
    uint64_t tat, floor_, cost;

    if (i < 0 || tokens == 0)
        return;
    touch(s, i, now);
    cost = tokens > UINT64_MAX / per_token_ns ? UINT64_MAX : tokens * per_token_ns;
    floor_ = now > cap_ns ? now - cap_ns : 0;
    tat = atomic_load_explicit(&s->tat[i], memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->tat[i], &tat, sat_add(tat > floor_ ? tat : floor_, cost),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

uint32_t pol_retry_after_s(uint64_t wait_ns)
{
    uint64_t s = wait_ns / 1000000000ull + (wait_ns % 1000000000ull != 0);

    if (s == 0)
        s = 1;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}
