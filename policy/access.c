/*
 * access.c - access: allow/deny CIDR lists for the client address.
 *
 * Every address is a 128-bit number: IPv4 a.b.c.d is ::ffff:a.b.c.d (its
 * IPv4-mapped form), so a v4 rule /n is the v6 prefix /96+n and a peer
 * that connected to a dual-stack socket as ::ffff:10.1.2.3 meets the
 * IPv4 rules.  Each list is compiled at load into sorted, disjoint,
 * merged ranges [lo, hi]; a lookup is one binary search per list
 * (O(log n), no per-request scan, two cache lines for lists of dozens).
 * deny wins; with an allow list, any address outside it is denied.
 */
#include "pol_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct u128 {
    uint64_t hi, lo;
};

struct range {
    struct u128 lo, hi;
};

struct cidr_list {
    struct range *v;
    size_t n;
};

struct pol_access {
    struct cidr_list allow, deny;
    bool has_allow;
};

static int u128_cmp(struct u128 a, struct u128 b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo)
        return a.lo < b.lo ? -1 : 1;
    return 0;
}

static struct u128 from_bytes(const unsigned char b[16])
{
    struct u128 x = { 0, 0 };

    for (int i = 0; i < 8; i++) {
        x.hi = x.hi << 8 | b[i];
        x.lo = x.lo << 8 | b[8 + i];
    }
    return x;
}

static struct u128 from_v4(const unsigned char a[4])
{
    unsigned char b[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3] };

    return from_bytes(b);
}

/* The low (128 - len) bits of all ones: the host part of a /len. */
static struct u128 host_mask(unsigned len)
{
    struct u128 m;

    if (len >= 128)
        return (struct u128){ 0, 0 };
    if (len >= 64) {
        m.hi = 0;
        m.lo = len == 64 ? UINT64_MAX : (UINT64_MAX >> (len - 64));
    } else {
        m.hi = len == 0 ? UINT64_MAX : (UINT64_MAX >> len);
        m.lo = UINT64_MAX;
    }
    return m;
}

/* "a.b.c.d/n", "v6/n", or a bare address (/32, /128) into r; NULL or why not. */
static const char *parse_cidr(const char *s, struct range *r)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    unsigned char a[16];
    unsigned len, max;
    struct u128 x;

    if (alen == 0 || alen >= sizeof(buf))
        return "is not an address or CIDR block (like 10.0.0.0/8 or 2001:db8::/32)";
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET, buf, a) == 1) {
        x = from_v4(a);
        max = 32;
    } else if (inet_pton(AF_INET6, buf, a) == 1) {
        x = from_bytes(a);
        max = 128;
    } else {
        return "is not an address or CIDR block (like 10.0.0.0/8 or 2001:db8::/32)";
    }
    len = max;
    if (slash) {
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '\0') || strlen(p) > 3)
            return max == 32 ? "has a bad prefix length (0 to 32 for IPv4)"
                             : "has a bad prefix length (0 to 128 for IPv6)";
        len = (unsigned)atoi(p);
        for (; *p; p++)
            if (*p < '0' || *p > '9')
                len = 999;
        if (len > max)
            return max == 32 ? "has a bad prefix length (0 to 32 for IPv4)"
                             : "has a bad prefix length (0 to 128 for IPv6)";
    }
    struct u128 m = host_mask(len + (max == 32 ? 96 : 0));
    if ((x.hi & m.hi) || (x.lo & m.lo))
        return "has bits set after its prefix length (write the network address, like 10.0.0.0/8)";
    r->lo = x;
    r->hi = (struct u128){ x.hi | m.hi, x.lo | m.lo };
    return NULL;
}

static int range_cmp(const void *a, const void *b)
{
    return u128_cmp(((const struct range *)a)->lo, ((const struct range *)b)->lo);
}

/* Sort and merge overlapping or touching ranges: disjoint, increasing. */
static void compile(struct cidr_list *l)
{
    size_t k = 0;

    if (l->n == 0)
        return;
    qsort(l->v, l->n, sizeof(*l->v), range_cmp);
    for (size_t i = 1; i < l->n; i++) {
        struct range *cur = &l->v[k];
        struct u128 next = cur->hi;
        bool touch = false;
        if (++next.lo == 0)     /* hi + 1, unless hi is the last address */
            next.hi++;
        touch = !(cur->hi.hi == UINT64_MAX && cur->hi.lo == UINT64_MAX) &&
                u128_cmp(l->v[i].lo, next) <= 0;
        if (u128_cmp(l->v[i].lo, cur->hi) <= 0 || touch) {
            if (u128_cmp(l->v[i].hi, cur->hi) > 0)
                cur->hi = l->v[i].hi;
        } else {
            l->v[++k] = l->v[i];
        }
    }
    l->n = k + 1;
}

static bool list_has(const struct cidr_list *l, struct u128 x)
{
    size_t lo = 0, hi = l->n;

    /* the last range whose lo <= x */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u128_cmp(l->v[mid].lo, x) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && u128_cmp(x, l->v[lo - 1].hi) <= 0;
}

static void cidr_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                      void *elem, void *arg)
{
    struct range *r = elem;
    const char *why;

    (void)i;
    (void)arg;
    if (!J_IS_STRING(it)) {
        cfg_errp(cx, path, "must be a string (an address or CIDR block)");
        return;
    }
    if ((why = parse_cidr(it->valuestring, r)) != NULL)
        cfg_errp(cx, path, "\"%s\" %s", it->valuestring, why);
}

static void parse_list(struct cfg_ctx *cx, const cJSON *v, const struct jp *path, const char *key,
                       struct cidr_list *l)
{
    const struct cfg_list spec = { .key = key, .elem_size = sizeof(struct range), .each = cidr_elem };

    l->v = cfg_list(cx, v, path, &spec, &l->n, NULL);
    compile(l);
}

struct pol_access *pol_access_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path)
{
    static const char *const keys[] = { "allow", "deny", NULL };
    const cJSON *f[2];
    struct pol_access *a;

    if (!cfg_check_object(cx, v, path, keys, NULL, f))
        return NULL;
    if (!f[0] && !f[1]) {
        cfg_errp(cx, path, "needs allow or deny (or both)");
        return NULL;
    }
    a = cfg_calloc(cx, 1, sizeof(*a));
    a->has_allow = f[0] != NULL;
    parse_list(cx, f[0], path, "allow", &a->allow);
    parse_list(cx, f[1], path, "deny", &a->deny);
    return a;
}

bool pol_access_allows(const struct pol_access *a, const struct sockaddr *sa)
{
    struct u128 x;

    if (sa->sa_family == AF_INET6)
        x = from_bytes(((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr);
    else if (sa->sa_family == AF_INET)
        x = from_v4((const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr);
    else
        return !a->has_allow && a->deny.n == 0;     /* (a unix socket: no address) */
    if (list_has(&a->deny, x))
        return false;
    return !a->has_allow || list_has(&a->allow, x);
}
