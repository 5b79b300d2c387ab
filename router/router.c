/*
 * router.c - the route index (see router.h for the contract).
 *
 * Layout of a built table:
 *
 *   hosts  : exact host     -> bucket      (open addressing, keys lower-case)
 *   wilds  : ".suffix"      -> bucket      ("*.example.com" is keyed ".example.com")
 *   any    : bucket for routes without hosts
 *   bucket : exact path     -> candidates
 *            prefix         -> candidates  (normalised: no trailing '/', except "/")
 *
 * Host keys are hashed right to left and path keys left to right, so one pass
 * over the request host yields the hash of every dot-suffix, and one pass over
 * the request path yields the hash of every segment-boundary prefix; a lookup
 * therefore hashes each request byte once however many probes follow.
 *
 * The index proper (struct rt_core) lives in one arena and names routes by
 * their position in the config, with its keys copied in, so it does not
 * point into any config: the tables of two configs whose routes index the
 * same way share one core (rt_table_update), each with its own routes.
 */
#include "router.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A DNS name has at most 127 labels (255 octets), so 128 dot positions is
 * every suffix a wildcard key can be; deeper wildcard keys can never match a
 * real host name anyway. */
#define RT_MAX_LABELS 128
/* Paths deeper than this (in segments) are still routed correctly, only the
 * per-boundary hashes beyond it are recomputed instead of remembered. */
#define RT_MAX_DEPTH 64
#define RT_BLOCK_SIZE 16384
#define RT_ALIGN 16


/* ---- arena: the table is built once and freed at once ---- */

struct rt_block {
    struct rt_block *next;
    size_t used, cap;
};

#define RT_BLOCK_HDR ((sizeof(struct rt_block) + RT_ALIGN - 1) & ~(size_t)(RT_ALIGN - 1))

struct rt_arena {
    struct rt_block *head;
};

/* Zeroed memory, aligned for any member type we store; NULL on OOM. */
static void *arena_alloc(struct rt_arena *a, size_t size)
{
    size = (size + RT_ALIGN - 1) & ~(size_t)(RT_ALIGN - 1);
    if (size == 0)
        size = RT_ALIGN;
    struct rt_block *b = a->head;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = size > RT_BLOCK_SIZE ? size : RT_BLOCK_SIZE;
        b = calloc(1, RT_BLOCK_HDR + cap);
        if (b == NULL)
            return NULL;
        b->cap = cap;
        /* A big one-off block goes behind the current one so the current
         * block's free space is still used by later small allocations. */
        if (a->head != NULL && cap > RT_BLOCK_SIZE) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = (char *)b + RT_BLOCK_HDR + b->used;
    b->used += size;
    return p;
}

static void arena_free(struct rt_arena *a)
{
    struct rt_block *b = a->head;
    while (b != NULL) {
        struct rt_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- byte helpers (no locale: header and host names are ASCII) ---- */

static inline unsigned char rt_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}


/* True when the NUL-terminated s equals the n bytes at p (p may hold NULs). */
static bool rt_streq_n(const char *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] != p[i])
            return false;
    return s[n] == '\0';
}

/*
 * Hashing, eight bytes at a time.  A key of n bytes is cut into words: for a
 * path from the left, for a host from the right (so a host and each of its
 * dot-suffixes share their trailing words); the leftover n % 8 bytes form a
 * last, zero-padded word.  Because of that, one scan over a request path or
 * host yields the hash of every segment prefix or dot-suffix as it passes:
 * the words folded so far plus the masked current word.  Byte at a time
 * (FNV) cost a multiply of latency per byte and was most of a lookup.
 */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "router.c assumes a little-endian target (word hashing)"
#endif

#define RT_SEED 0x243f6a8885a308d3ULL
#define RT_ONES 0x0101010101010101ULL
#define RT_HIGHS 0x8080808080808080ULL

static inline uint64_t load8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* The first n (< 8) bytes at p in the low bytes; never reads past p + n. */
static inline uint64_t load_part(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    if (n >= 4) {
        /* two overlapping 4-byte loads: no variable-length memcpy call */
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return (uint64_t)lo | ((uint64_t)hi << (8 * (n - 4)));
    }
    if (n == 0)
        return 0;
    return (uint64_t)u[0] | ((uint64_t)u[n / 2] << (8 * (n / 2))) |
           ((uint64_t)u[n - 1] << (8 * (n - 1)));
}

static inline uint64_t mixw(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9fb21c651e98df25ULL;
    return h ^ (h >> 29);
}

static inline uint64_t rt_fin(uint64_t h, size_t n)
{
    return h ^ (uint64_t)n;
}

/* High bit set in each byte of w equal to c, and only there (no borrow
 * false positives). */
static inline uint64_t byte_eq_mask(uint64_t w, unsigned char c)
{
    uint64_t t = w ^ (RT_ONES * c);
    return ~(((t & ~RT_HIGHS) + ~RT_HIGHS) | t | ~RT_HIGHS);
}

/* ASCII lower-case of 8 bytes; bytes >= 0x80 untouched. */
static inline uint64_t swar_lower(uint64_t w)
{
    uint64_t x = w & ~RT_HIGHS;
    uint64_t ge_a = x + RT_ONES * (0x80 - 'A');
    uint64_t gt_z = x + RT_ONES * (0x80 - 'Z' - 1);
    return w | (((ge_a & ~gt_z & ~w) & RT_HIGHS) >> 2);
}

/* ASCII case-insensitive equality of n bytes, a word at a time. */
static bool rt_caseeq(const char *a, const char *b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (swar_lower(load8(a + i)) != swar_lower(load8(b + i)))
            return false;
    if (i == n)
        return true;
    return swar_lower(load_part(a + i, n - i)) == swar_lower(load_part(b + i, n - i));
}

/* Low j bytes of w (j < 8). */
static inline uint64_t low_bytes(uint64_t w, unsigned j)
{
    return j ? w & (~0ULL >> (64 - 8 * j)) : 0;
}

static uint64_t path_hash(const char *s, size_t n)
{
    uint64_t h = RT_SEED;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = mixw(h, load8(s + i));
    if (i < n)
        h = mixw(h, load_part(s + i, n - i));
    return rt_fin(h, n);
}

static uint64_t host_hash(const char *s, size_t n)
{
    uint64_t h = RT_SEED;
    size_t i = n;
    for (; i >= 8; i -= 8)
        h = mixw(h, swar_lower(load8(s + i - 8)));
    if (i > 0)
        h = mixw(h, swar_lower(load_part(s, i)));
    return rt_fin(h, n);
}

/* The key hash ends with a plain xor of the length; mix before masking. */
static inline size_t rt_slot_of(uint64_t h, size_t mask)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return (size_t)h & mask;
}

/* ---- open-addressing map (linear probing, load <= 1/2) ---- */

struct rt_slot {
    uint64_t hash;
    const char *key;            /* NULL = empty slot */
    uint32_t len;
    uint32_t n;                 /* path maps: number of candidates */
    const void *val;            /* host maps: struct rt_bucket; path maps: struct rt_cand[n] */
};

/* A route in a path slot.  always spares a lookup the cache misses of
 * reading the route itself when it has no listener, method, header or
 * query condition (the common case). */
struct rt_cand {
    uint32_t pos;               /* the route's position in the config's routes */
    bool always;
};

struct rt_map {
    struct rt_slot *slots;
    size_t mask;
    size_t count;
};

static bool map_init(struct rt_arena *a, struct rt_map *m, size_t n)
{
    m->count = 0;
    m->slots = NULL;
    m->mask = 0;
    if (n == 0)
        return true;
    size_t cap = 4;
    while (cap < 2 * n)
        cap <<= 1;
    m->slots = arena_alloc(a, cap * sizeof(*m->slots));
    if (m->slots == NULL)
        return false;
    m->mask = cap - 1;
    return true;
}

/* Keys are unique by construction (entries are grouped before insertion);
 * each is copied into the arena.  NULL on allocation failure. */
static struct rt_slot *map_put(struct rt_arena *a, struct rt_map *m, uint64_t h,
                               const char *key, uint32_t len)
{
    char *k = arena_alloc(a, (size_t)len + 1);
    if (k == NULL)
        return NULL;
    memcpy(k, key, len);
    size_t i = rt_slot_of(h, m->mask);
    while (m->slots[i].key != NULL)
        i = (i + 1) & m->mask;
    m->slots[i].hash = h;
    m->slots[i].key = k;
    m->slots[i].len = len;
    m->count++;
    return &m->slots[i];
}

static inline const struct rt_slot *map_get(const struct rt_map *m, uint64_t h,
                                            const char *key, size_t len, bool icase)
{
    if (m->count == 0)
        return NULL;
    size_t i = rt_slot_of(h, m->mask);
    for (;;) {
        const struct rt_slot *s = &m->slots[i];
        if (s->key == NULL)
            return NULL;
        if (s->hash == h && s->len == len &&
            (icase ? rt_caseeq(s->key, key, len) : memcmp(s->key, key, len) == 0))
            return s;
        i = (i + 1) & m->mask;
    }
}

/* ---- the table ---- */

struct rt_bucket {
    struct rt_map exact;        /* exact path -> candidates */
    struct rt_map prefix;       /* prefix -> candidates */
    uint32_t max_depth;         /* most '/' in a prefix key of this bucket ("/" not counted) */
};

/* The index: the same for every config whose routes index the same way. */
struct rt_core {
    atomic_uint refs;
    size_t nroutes;
    struct rt_arena arena;
    struct rt_map hosts;        /* exact host -> bucket */
    struct rt_map wilds;        /* ".suffix" -> bucket */
    const struct rt_bucket *any;    /* NULL when every route names hosts */
    uint32_t max_wild_dots;     /* most '.' in a wildcard key, capped at RT_MAX_LABELS */
    uint32_t max_depth;         /* max of the buckets' max_depth */
    uint64_t root_hash;         /* path_hash("/") */
};

struct rt_table {
    const struct rt_core *core;
    const struct cfg_route *const *routes;  /* the config's: core positions index it */
};

enum { RT_H_EXACT = 0, RT_H_WILD = 1, RT_H_ANY = 2 };
enum { RT_P_EXACT = 0, RT_P_PREFIX = 1 };

/* One (host, route) pair while building; sorted so that equal host keys,
 * then equal path keys, are adjacent and candidates come out in precedence
 * order. */
struct rt_entry {
    int hkind;
    const char *hkey; uint32_t hlen; uint64_t hhash;
    int pkind;
    const char *pkey; uint32_t plen; uint64_t phash;
    uint32_t pos;               /* of the route in the config */
    /* copied from the route while the routes are read in order, so sorting
     * and bucket building never touch a route (a cache miss each, in sorted
     * order, on a 10,000-route config) */
    bool has_methods, always;
    size_t nheaders, nquery, index;
};

static int cmp_u64(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }

static int cmp_keys(const char *a, uint32_t alen, const char *b, uint32_t blen, bool icase)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    for (uint32_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (icase) {
            x = rt_lower(x);
            y = rt_lower(y);
        }
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static inline int entry_cmp(const struct rt_entry *a, const struct rt_entry *b)
{
    int c;
    if (a->hkind != b->hkind)
        return a->hkind - b->hkind;
    if ((c = cmp_u64(a->hhash, b->hhash)) != 0)
        return c;
    if ((c = cmp_keys(a->hkey, a->hlen, b->hkey, b->hlen, true)) != 0)
        return c;
    if (a->pkind != b->pkind)
        return a->pkind - b->pkind;
    if ((c = cmp_u64(a->phash, b->phash)) != 0)
        return c;
    if ((c = cmp_keys(a->pkey, a->plen, b->pkey, b->plen, false)) != 0)
        return c;
    /* precedence inside a slot */
    if (a->has_methods != b->has_methods)
        return a->has_methods ? -1 : 1;
    if (a->nheaders != b->nheaders)
        return a->nheaders > b->nheaders ? -1 : 1;
    if (a->nquery != b->nquery)
        return a->nquery > b->nquery ? -1 : 1;
    if (a->index != b->index)
        return a->index < b->index ? -1 : 1;
    /* same route listed under one host twice: adjacent, deduplicated later */
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Merge sort of v[0..n) by entry_cmp through tmp (n >= 1); the result
 * ends in v.  Only for the short runs sort_entries() leaves. */
static void sort_run(const struct rt_entry **v, const struct rt_entry **tmp, size_t n)
{
    if (n < 2)
        return;
    if (n <= 8) {
        for (size_t i = 1; i < n; i++) {
            const struct rt_entry *x = v[i];
            size_t j = i;
            while (j > 0 && entry_cmp(v[j - 1], x) > 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    sort_run(v, tmp, h);
    sort_run(v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = entry_cmp(v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    /* v[j..n) is already in place */
    memcpy(v, tmp, k * sizeof(*v));
}

/* The radix key of an entry: the top bits of (hkind, hhash) above those of
 * (pkind, phash), so ordering by it agrees with entry_cmp wherever the keys
 * differ in the host half, and nearly so in the path half. */
struct rt_skey {
    uint64_t key;
    const struct rt_entry *e;
};

static inline uint32_t host_bits(const struct rt_entry *e)
{
    return (uint32_t)((uint64_t)e->hkind << 30 | e->hhash >> 34);
}

/*
 * Order the entries by entry_cmp into out[0..n).  A 10,000-route table
 * sorted with qsort() spent most of its build time in comparisons (a call
 * each, mispredicted branches, entry cache misses); instead: an LSD radix
 * sort on a 64-bit key (host bits high, path bits low), then the runs that
 * key cannot order are put right with entry_cmp: entries with equal keys
 * (the same host and path: precedence decides), and, should two hosts
 * share their host bits, the whole run of that host-bits value.
 * Returns false on allocation failure.
 */
static bool sort_entries(const struct rt_entry *u, size_t n, const struct rt_entry **out)
{
    struct rt_skey *a = malloc(2 * n * sizeof(*a));
    size_t (*cnt)[256] = calloc(8, sizeof(*cnt));
    if (a == NULL || cnt == NULL) {
        free(a);
        free(cnt);
        return false;
    }
    struct rt_skey *b = a + n;
    for (size_t i = 0; i < n; i++) {
        const struct rt_entry *e = &u[i];
        uint32_t pbits = (uint32_t)((uint64_t)e->pkind << 31 | e->phash >> 33);
        a[i].key = (uint64_t)host_bits(e) << 32 | pbits;
        a[i].e = e;
        for (unsigned d = 0; d < 8; d++)
            cnt[d][(a[i].key >> (8 * d)) & 0xff]++;
    }
    for (unsigned d = 0; d < 8; d++) {
        size_t sum = 0;
        bool trivial = false;
        for (unsigned v = 0; v < 256; v++) {
            size_t c = cnt[d][v];
            if (c == n)
                trivial = true;     /* every key has this digit: nothing moves */
            cnt[d][v] = sum;
            sum += c;
        }
        if (trivial)
            continue;
        for (size_t i = 0; i < n; i++)
            b[cnt[d][(a[i].key >> (8 * d)) & 0xff]++] = a[i];
        struct rt_skey *t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = a[i].e;

    /* b's space is free now: scratch for sort_run */
    const struct rt_entry **tmp = (const struct rt_entry **)b;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && a[j].key == a[i].key)
            j++;
        sort_run(out + i, tmp, j - i);
        i = j;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        bool sorted = true;
        while (j < n && (a[j].key >> 32) == (a[i].key >> 32)) {
            if (entry_cmp(out[j - 1], out[j]) > 0)
                sorted = false;
            j++;
        }
        if (!sorted)
            sort_run(out + i, tmp, j - i);
        i = j;
    }
    free(a < b ? a : b);
    free(cnt);
    return true;
}

static bool same_host(const struct rt_entry *a, const struct rt_entry *b)
{
    return a->hkind == b->hkind && a->hhash == b->hhash &&
           cmp_keys(a->hkey, a->hlen, b->hkey, b->hlen, true) == 0;
}

static bool same_path(const struct rt_entry *a, const struct rt_entry *b)
{
    return a->pkind == b->pkind && a->phash == b->phash &&
           cmp_keys(a->pkey, a->plen, b->pkey, b->plen, false) == 0;
}

/* Classify one configured host.  Config hosts are already lower-case; we
 * still compare case-insensitively so a hand-built config works too. */
static void entry_set_host(struct rt_entry *e, const char *h)
{
    size_t n = h ? strlen(h) : 0;
    /* IPv6 literals may be written with or without brackets; requests are
     * stripped of them, so keys are too. */
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    } else if (n > 1 && h[n - 1] == '.') {
        n--;
    }
    if (n == 0 || (n == 1 && h[0] == '*')) {
        e->hkind = RT_H_ANY;
        e->hkey = NULL;
        e->hlen = 0;
        e->hhash = 0;
        return;
    }
    if (n >= 2 && h[0] == '*' && h[1] == '.') {
        e->hkind = RT_H_WILD;
        h++;            /* keep the dot: the key is ".example.com" */
        n--;
    } else {
        e->hkind = RT_H_EXACT;
    }
    e->hkey = h;
    e->hlen = (uint32_t)n;
    e->hhash = host_hash(h, n);
}

static void entry_set_path(struct rt_entry *e, const struct cfg_route *r)
{
    static const char root[] = "/";
    const char *p = r->path;
    size_t n = p ? r->path_len : 0;
    if (r->path_kind == CFG_PATH_EXACT && p != NULL) {
        e->pkind = RT_P_EXACT;
    } else {
        e->pkind = RT_P_PREFIX;
        if (r->path_kind != CFG_PATH_PREFIX || p == NULL)
            n = 0;
        while (n > 1 && p[n - 1] == '/')
            n--;
        if (n == 0 || (n == 1 && p[0] == '/')) {
            p = root;
            n = 1;
        }
    }
    e->pkey = p;
    e->plen = (uint32_t)n;
    e->phash = path_hash(p, n);
}

static uint32_t count_char(const char *s, size_t n, char c)
{
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

/* Build one host bucket from the entries [e, e + n), all of the same host. */
static struct rt_bucket *build_bucket(struct rt_arena *a, const struct rt_entry *const *e, size_t n)
{
    struct rt_bucket *b = arena_alloc(a, sizeof(*b));
    if (b == NULL)
        return NULL;
    size_t nexact = 0, nprefix = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && same_path(e[i - 1], e[i]))
            continue;
        if (e[i]->pkind == RT_P_EXACT)
            nexact++;
        else
            nprefix++;
    }
    if (!map_init(a, &b->exact, nexact) || !map_init(a, &b->prefix, nprefix))
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && same_path(e[i], e[j]))
            j++;
        struct rt_cand *c = arena_alloc(a, (j - i) * sizeof(*c));
        if (c == NULL)
            return NULL;
        uint32_t nc = 0;
        for (size_t k = i; k < j; k++) {
            if (nc > 0 && c[nc - 1].pos == e[k]->pos)
                continue;
            c[nc].pos = e[k]->pos;
            c[nc].always = e[k]->always;
            nc++;
        }
        struct rt_map *m = e[i]->pkind == RT_P_EXACT ? &b->exact : &b->prefix;
        struct rt_slot *s = map_put(a, m, e[i]->phash, e[i]->pkey, e[i]->plen);
        if (s == NULL)
            return NULL;
        s->n = nc;
        s->val = c;
        if (e[i]->pkind == RT_P_PREFIX && e[i]->plen > 1) {
            uint32_t d = count_char(e[i]->pkey, e[i]->plen, '/');
            if (d > b->max_depth)
                b->max_depth = d;
        }
        i = j;
    }
    return b;
}

static void core_unref(struct rt_core *t)
{
    if (t != NULL && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        arena_free(&t->arena);
        free(t);
    }
}

/* Fill t's maps from the n entries e, sorted by sort_entries(): one bucket
 * per host.  False on allocation failure. */
static bool core_index(struct rt_core *t, const struct rt_entry **e, size_t n)
{
    size_t nhosts = 0, nwilds = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && same_host(e[i - 1], e[i]))
            continue;
        if (e[i]->hkind == RT_H_EXACT)
            nhosts++;
        else if (e[i]->hkind == RT_H_WILD)
            nwilds++;
    }
    if (!map_init(&t->arena, &t->hosts, nhosts) || !map_init(&t->arena, &t->wilds, nwilds))
        return false;

    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && same_host(e[i], e[j]))
            j++;
        struct rt_bucket *b = build_bucket(&t->arena, e + i, j - i);
        if (b == NULL)
            return false;
        if (b->max_depth > t->max_depth)
            t->max_depth = b->max_depth;
        if (e[i]->hkind == RT_H_ANY) {
            t->any = b;
        } else {
            struct rt_map *m = e[i]->hkind == RT_H_EXACT ? &t->hosts : &t->wilds;
            struct rt_slot *s = map_put(&t->arena, m, e[i]->hhash, e[i]->hkey, e[i]->hlen);
            if (s == NULL)
                return false;
            s->val = b;
            if (e[i]->hkind == RT_H_WILD) {
                uint32_t dots = count_char(e[i]->hkey, e[i]->hlen, '.');
                if (dots > RT_MAX_LABELS)
                    dots = RT_MAX_LABELS;
                if (dots > t->max_wild_dots)
                    t->max_wild_dots = dots;
            }
        }
        i = j;
    }
    return true;
}

static struct rt_core *core_build(const struct cfg_route *const *routes, size_t nroutes)
{
    struct rt_core *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    atomic_init(&t->refs, 1);
    t->nroutes = nroutes;
    t->root_hash = path_hash("/", 1);

    size_t n = 0;
    for (size_t i = 0; i < nroutes; i++)
        n += routes[i]->nhosts ? routes[i]->nhosts : 1;
    struct rt_entry *u = n ? malloc(n * sizeof(*u)) : NULL;
    const struct rt_entry **e = n ? malloc(n * sizeof(*e)) : NULL;
    if (n && (u == NULL || e == NULL))
        goto fail;

    size_t k = 0;
    for (size_t i = 0; i < nroutes; i++) {
        const struct cfg_route *r = routes[i];
        size_t nh = r->nhosts ? r->nhosts : 1;
        for (size_t j = 0; j < nh; j++, k++) {
            u[k].pos = (uint32_t)i;
            u[k].has_methods = r->nmethods > 0;
            u[k].always = r->nlisteners == 0 && r->nmethods == 0 &&
                          r->nmatch_headers == 0 && r->nmatch_query == 0 && r->njson_body == 0;
            u[k].nheaders = r->nmatch_headers;
            u[k].nquery = r->nmatch_query;
            u[k].index = r->index;
            entry_set_host(&u[k], r->nhosts ? r->hosts[j] : NULL);
            entry_set_path(&u[k], r);
        }
    }
    if (n > 0 && !sort_entries(u, n, e))
        goto fail;

    if (!core_index(t, e, n))
        goto fail;
    free(e);
    free(u);
    return t;

fail:
    free(u);
    free(e);
    core_unref(t);
    return NULL;
}

static struct rt_table *table_of(struct rt_core *core, const struct cfg_route *const *routes)
{
    struct rt_table *t = core ? malloc(sizeof(*t)) : NULL;
    if (t == NULL) {
        core_unref(core);
        return NULL;
    }
    t->core = core;
    t->routes = routes;
    return t;
}

struct rt_table *rt_table_build_routes(const struct cfg_route *const *routes, size_t n)
{
    if (n > UINT32_MAX)
        return NULL;
    return table_of(core_build(routes, n), routes);
}

static bool strv_eq(char *const *a, char *const *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

/* Whether a and b put the same entries in the index: everything of a route
 * that rt_table_build_routes reads but its position (the caller compares those). */
static bool same_index_entries(const struct cfg_route *a, const struct cfg_route *b)
{
    if (a->index != b->index || a->nhosts != b->nhosts || a->path_kind != b->path_kind ||
        (a->nmethods > 0) != (b->nmethods > 0) || (a->nlisteners > 0) != (b->nlisteners > 0) ||
        a->nmatch_headers != b->nmatch_headers || a->nmatch_query != b->nmatch_query ||
        (a->njson_body > 0) != (b->njson_body > 0) || (a->path == NULL) != (b->path == NULL))
        return false;
    if (a->path != NULL && (a->path_len != b->path_len || memcmp(a->path, b->path, a->path_len) != 0))
        return false;
    return strv_eq(a->hosts, b->hosts, a->nhosts);
}

struct rt_table *rt_table_update_routes(const struct rt_table *prev,
                                        const struct cfg_route *const *prev_routes, size_t prev_n,
                                        const uint32_t *same,
                                        const struct cfg_route *const *routes, size_t n,
                                        bool *shared)
{
    *shared = false;
    if (prev == NULL || prev_n != n || prev->core->nroutes != n)
        return rt_table_build_routes(routes, n);
    for (size_t i = 0; i < n; i++)
        if (!(same != NULL && same[i] == i + 1) && !same_index_entries(prev_routes[i], routes[i]))
            return rt_table_build_routes(routes, n);
    struct rt_core *core = (struct rt_core *)prev->core;
    atomic_fetch_add_explicit(&core->refs, 1, memory_order_relaxed);
    struct rt_table *t = table_of(core, routes);
    *shared = t != NULL;
    return t;
}

bool rt_table_shares_index(const struct rt_table *a, const struct rt_table *b)
{
    return a != NULL && b != NULL && a->core == b->core;
}

void rt_table_free(struct rt_table *t)
{
    if (t == NULL)
        return;
    core_unref((struct rt_core *)t->core);
    free(t);
}

/* ---- lookup ---- */

/* What one pass over the request path tells every bucket. */
struct rt_pathinfo {
    const char *p;
    size_t len;
    uint64_t hfull;             /* hash of the whole path */
    size_t nslash;              /* '/' in the path */
    bool rooted;                /* starts with '/' */
    uint32_t pos[RT_MAX_DEPTH]; /* pos[k]: offset of the k-th '/' (k >= 1) */
    uint64_t h[RT_MAX_DEPTH];   /* h[k]: hash of p[0 .. pos[k]) */
};

static void path_scan(const struct rt_core *t, const char *p, size_t len,
                      struct rt_pathinfo *pi)
{
    size_t keep = t->max_depth < RT_MAX_DEPTH - 1 ? t->max_depth : RT_MAX_DEPTH - 1;
    uint64_t h = RT_SEED;
    size_t ns = 0, i = 0;
    pi->p = p;
    pi->len = len;
    pi->rooted = len > 0 && p[0] == '/';
    for (;;) {
        size_t wl = len - i < 8 ? len - i : 8;
        if (wl == 0)
            break;
        uint64_t w = wl == 8 ? load8(p + i) : load_part(p + i, wl);
        uint64_t m = byte_eq_mask(w, '/');
        if (wl < 8)
            m &= ~0ULL >> (64 - 8 * wl);
        while (m != 0) {
            unsigned j = (unsigned)__builtin_ctzll(m) >> 3;
            m &= m - 1;
            /* p[0 .. i + j) is the prefix ending before this '/' */
            if (ns >= 1 && ns <= keep) {
                pi->pos[ns] = (uint32_t)(i + j);
                pi->h[ns] = rt_fin(j ? mixw(h, low_bytes(w, j)) : h, i + j);
            }
            ns++;
        }
        h = mixw(h, w);
        i += wl;
    }
    pi->hfull = rt_fin(h, len);
    pi->nslash = ns;
}

/* Hash of the whole host (lower-cased); records in dpos/dh, shortest first,
 * up to maxd dot-suffixes with at least one byte in front of the dot. */
static uint64_t host_scan(const char *s, size_t n, uint32_t maxd,
                          uint32_t *dpos, uint64_t *dh, uint32_t *nd)
{
    uint64_t h = RT_SEED;
    size_t i = n;
    uint32_t k = 0;
    while (i > 0) {
        size_t wl = i < 8 ? i : 8;
        size_t q = i - wl;          /* word covers s[q .. i) */
        uint64_t w = swar_lower(wl == 8 ? load8(s + q) : load_part(s, wl));
        uint64_t m = k < maxd ? byte_eq_mask(w, '.') : 0;
        if (wl < 8)
            m &= ~0ULL >> (64 - 8 * wl);
        uint64_t hn = mixw(h, w);
        while (m != 0 && k < maxd) {
            unsigned bit = 63u - (unsigned)__builtin_clzll(m);
            unsigned j = bit >> 3;
            m &= ~(1ULL << bit);
            size_t at = q + j;
            if (at == 0)
                break;
            /* suffix s[at .. n): the words already folded, then s[at .. i) */
            dpos[k] = (uint32_t)at;
            dh[k] = rt_fin(j ? mixw(h, w >> (8 * j)) : hn, n - at);
            k++;
        }
        h = hn;
        i = q;
    }
    *nd = k;
    return rt_fin(h, n);
}

static bool header_present(const struct rt_request *req, const struct cfg_kv *kv)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct h1_header *h = &req->headers[i];
        if (h->name_len == kv->name_len && h->value_len == kv->value_len &&
            rt_caseeq(h->name, kv->name, kv->name_len) &&
            memcmp(h->value, kv->value, kv->value_len) == 0)
            return true;
    }
    return false;
}

/* Query parameters compare raw: no percent-decoding and '+' is not a space,
 * so what the operator wrote is what must be on the wire. */
static bool query_present(const struct rt_request *req, const struct cfg_kv *kv)
{
    const char *q = req->query;
    if (q == NULL)
        return false;
    const char *end = q + req->query_len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ne = eq ? eq : pe;
        const char *v = eq ? eq + 1 : pe;
        if ((size_t)(ne - q) == kv->name_len && (size_t)(pe - v) == kv->value_len &&
            memcmp(q, kv->name, kv->name_len) == 0 &&
            memcmp(v, kv->value, kv->value_len) == 0)
            return true;
        q = pe + 1;
    }
    return false;
}

static bool route_accepts(const struct cfg_route *r, const struct rt_request *req)
{
    if (r->nlisteners > 0) {
        size_t i;
        for (i = 0; i < r->nlisteners; i++)
            if (r->listener_idx[i] == req->listener)
                break;
        if (i == r->nlisteners)
            return false;
    }
    if (r->nmethods > 0) {
        size_t i;
        for (i = 0; i < r->nmethods; i++)
            if (rt_streq_n(r->methods[i], req->method, req->method_len))
                break;
        if (i == r->nmethods)
            return false;
    }
    for (size_t i = 0; i < r->nmatch_headers; i++)
        if (!header_present(req, &r->match_headers[i]))
            return false;
    for (size_t i = 0; i < r->nmatch_query; i++)
        if (!query_present(req, &r->match_query[i]))
            return false;
    if (r->njson_body > 0) {
        if (req->body_state == RT_BODY_UNREAD) {
            /* the best candidate needs the body: the caller reads it and asks again */
            if (req->need_body)
                *req->need_body = true;
            return true;
        }
        return req->body_state == RT_BODY_READY &&
               rt_json_match(req->body, req->body_len, r->json_body, r->njson_body);
    }
    return true;
}

static const struct cfg_route *slot_pick(const struct cfg_route *const *routes, const struct rt_slot *s,
                                         const struct rt_request *req)
{
    if (s == NULL)
        return NULL;
    const struct rt_cand *c = s->val;
    for (uint32_t i = 0; i < s->n; i++)
        if (c[i].always || route_accepts(routes[c[i].pos], req))
            return routes[c[i].pos];
    return NULL;
}

static const struct cfg_route *bucket_pick(const struct rt_core *t, const struct cfg_route *const *routes,
                                           const struct rt_bucket *b,
                                           const struct rt_pathinfo *pi,
                                           const struct rt_request *req)
{
    const struct cfg_route *r;
    if ((r = slot_pick(routes, map_get(&b->exact, pi->hfull, pi->p, pi->len, false), req)) != NULL)
        return r;
    if (b->prefix.count == 0)
        return NULL;
    if (pi->rooted && b->max_depth > 0) {
        /* The whole path is a candidate prefix unless it ends in '/'
         * (keys never do, but "/").  Then each segment boundary, longest
         * first; a key with d slashes can only sit at the d-th boundary. */
        if (pi->nslash <= b->max_depth && pi->p[pi->len - 1] != '/' &&
            (r = slot_pick(routes, map_get(&b->prefix, pi->hfull, pi->p, pi->len, false), req)) != NULL)
            return r;
        size_t k = pi->nslash - 1 < b->max_depth ? pi->nslash - 1 : b->max_depth;
        for (; k >= 1; k--) {
            size_t len;
            uint64_t h;
            if (k < RT_MAX_DEPTH) {
                len = pi->pos[k];
                h = pi->h[k];
            } else {
                size_t seen = 0;
                for (len = 0; len < pi->len; len++)
                    if (pi->p[len] == '/' && seen++ == k)
                        break;
                h = path_hash(pi->p, len);
            }
            if (len <= 1)
                break;          /* "//x": the root is probed below */
            if ((r = slot_pick(routes, map_get(&b->prefix, h, pi->p, len, false), req)) != NULL)
                return r;
        }
    }
    return slot_pick(routes, map_get(&b->prefix, t->root_hash, "/", 1, false), req);
}

const struct cfg_route *rt_match(const struct rt_table *tab, const struct rt_request *req)
{
    const struct rt_core *t = tab->core;
    const struct cfg_route *const *routes = tab->routes;
    struct rt_pathinfo pi;
    const struct cfg_route *r;
    path_scan(t, req->path ? req->path : "", req->path ? req->path_len : 0, &pi);

    const char *h = req->host;
    size_t hn = h ? req->host_len : 0;
    if (hn > 0 && h[0] == '[') {
        const char *rb = memchr(h, ']', hn);
        if (rb != NULL) {
            hn = (size_t)(rb - h) - 1;
            h++;
        }
    } else if (hn > 0) {
        const char *colon = memchr(h, ':', hn);
        /* a second ':' means a bare IPv6 literal: no port to strip */
        if (colon != NULL && memchr(colon + 1, ':', hn - (size_t)(colon - h) - 1) == NULL)
            hn = (size_t)(colon - h);
    }
    if (hn > 1 && h[hn - 1] == '.')
        hn--;

    if (hn > 0 && (t->hosts.count > 0 || t->wilds.count > 0)) {
        uint32_t dpos[RT_MAX_LABELS];
        uint64_t dh[RT_MAX_LABELS];
        uint32_t nd;
        uint64_t hh = host_scan(h, hn, t->max_wild_dots, dpos, dh, &nd);
        const struct rt_slot *s = map_get(&t->hosts, hh, h, hn, true);
        if (s != NULL && (r = bucket_pick(t, routes, s->val, &pi, req)) != NULL)
            return r;
        while (nd-- > 0) {
            s = map_get(&t->wilds, dh[nd], h + dpos[nd], hn - dpos[nd], true);
            if (s != NULL && (r = bucket_pick(t, routes, s->val, &pi, req)) != NULL)
                return r;
        }
    }
    if (t->any != NULL)
        return bucket_pick(t, routes, t->any, &pi, req);
    return NULL;
}

/* ---- rewrite ---- */

/* Length of p without trailing '/' (so "/" and "" become 0). */
static size_t trim_slashes(const char *p, size_t n)
{
    while (n > 0 && p[n - 1] == '/')
        n--;
    return n;
}

int rt_rewrite_path(const struct cfg_route *r, const char *path, size_t path_len,
                    char *out, size_t outcap)
{
    const char *head = NULL, *tail = path;
    size_t headlen = 0, taillen = path_len;

    switch (r->rewrite) {
    case CFG_RW_NONE:
        break;
    case CFG_RW_REPLACE_PATH:
        head = r->rewrite_path;
        headlen = head ? r->rewrite_path_len : 0;
        taillen = 0;
        break;
    case CFG_RW_STRIP_PREFIX:
    case CFG_RW_REPLACE_PREFIX: {
        /* The matched prefix, segment-aware: "/" (and a route without a
         * path) matches with nothing consumed; an exact route's whole path
         * is its prefix.  A path the route could not have matched is passed
         * through unchanged rather than mangled. */
        size_t plen = 0;
        if ((r->path_kind == CFG_PATH_PREFIX || r->path_kind == CFG_PATH_EXACT) && r->path)
            plen = trim_slashes(r->path, r->path_len);
        if (plen > 0) {
            if (path_len < plen || memcmp(path, r->path, plen) != 0 ||
                (path_len > plen && path[plen] != '/'))
                break;
            tail = path + plen;
            taillen = path_len - plen;
        }
        if (r->rewrite == CFG_RW_REPLACE_PREFIX && r->rewrite_path) {
            /* "/v2/" + "/x" must not give "//x", and "/" + "/x" is "/x" */
            head = r->rewrite_path;
            headlen = trim_slashes(head, r->rewrite_path_len);
        }
        break;
    }
    }

    size_t total = headlen + taillen;
    bool empty = total == 0;
    if (empty)
        total = 1;
    if (total > outcap || total > (size_t)INT32_MAX)
        return -1;
    if (empty) {
        out[0] = '/';
    } else {
        if (headlen)
            memcpy(out, head, headlen);
        if (taillen)
            memcpy(out + headlen, tail, taillen);
    }
    if (total < outcap)
        out[total] = '\0';
    return (int)total;
}
