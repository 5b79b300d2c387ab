/*
 * config.c - parse and validate the configuration document (config.h).
 *
 * The parser fills a struct sl_config directly while walking the cJSON tree
 * and records every problem it meets instead of stopping at the first, so a
 * user fixing a config sees all of its mistakes in one `sluice --check`.
 * A partly filled config is freed when any error was recorded.
 */
#include "config.h"
#include "../core/hash.h"
#include "../core/hdr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

/* JSON pointers longer than this are cut short; only error text suffers. */
#define JP_MAX 512
#define NOT_FOUND ((size_t)-1)
/* Largest integer a double (cJSON's only number type) holds exactly. */
#define MAX_EXACT_INT 9007199254740991ULL

/* ---- memory: like h2o, a config parser out of memory has nothing sane to do */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fputs("sluice: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (p == NULL) {
        fputs("sluice: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL) {
        fputs("sluice: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

/*
 * What a parsed config owns lives in one arena hanging off it (but for
 * its routes array, source text and shape: see cfg_store), and
 * cfg_free() drops the arena whole: a 10,000-route config is some 60,000
 * strings and small arrays, which cost a malloc each to build and a free
 * each to release (on the admin thread, next to a worker).  Nothing in a
 * config is freed or reallocated on its own; a value dropped during parsing
 * (a bad entry, an overridden default) just stays until cfg_free.
 */
#define CFG_MEM_CHUNK (64u << 10)

struct cfg_mem {
    struct cfg_mem *next;
    size_t used, cap;
    max_align_t data[];
};

/* n bytes aligned to align (a power of two), zeroed when zero.  Big pieces
 * get a chunk of their own behind the current one, so its free space still
 * serves the small allocations that follow. */
static void *cm_alloc(struct cfg_mem **head, size_t n, size_t align, bool zero)
{
    struct cfg_mem *c = *head;
    size_t off;

    if (n > CFG_MEM_CHUNK / 4) {
        c = zero ? calloc(1, sizeof(*c) + n) : malloc(sizeof(*c) + n);
        if (c == NULL) {
            fputs("sluice: out of memory\n", stderr);
            abort();
        }
        c->used = c->cap = n;
        if (*head) {
            c->next = (*head)->next;
            (*head)->next = c;
        } else {
            c->next = NULL;
            *head = c;
        }
        return c->data;
    }
    off = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (c == NULL || off + n > c->cap) {
        c = xmalloc(sizeof(*c) + CFG_MEM_CHUNK);
        c->cap = CFG_MEM_CHUNK;
        c->next = *head;
        *head = c;
        off = 0;
    }
    c->used = off + n;
    void *p = (char *)c->data + off;
    if (zero)
        memset(p, 0, n);
    return p;
}

static void cm_free_all(struct cfg_mem *c)
{
    while (c) {
        struct cfg_mem *n = c->next;
        free(c);
        c = n;
    }
}

/* A copy of s[0..n) in the arena, or with malloc when head is NULL (the
 * public cfg_parse_addr(), whose caller frees with cfg_addr_free). */
static char *cm_strndup(struct cfg_mem **head, const char *s, size_t n)
{
    char *p = head ? cm_alloc(head, n + 1, 1, false) : xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *cm_strdup(struct cfg_mem **head, const char *s)
{
    return s ? cm_strndup(head, s, strlen(s)) : NULL;
}

/*
 * A reload shares the routes it did not change with the config before it
 * (cfg_parse_update): sl_config.routes is an array of pointers, and an
 * unchanged route at the same position is the same struct, in the arena it
 * was parsed into (a 10,000-route reload then copies 80 KB of pointers, not
 * 3.6 MB of structs).  A route that moved gets a struct of its own, for its
 * new index, in the new config's arena; what it points to stays where it
 * was parsed.  A struct is never written once its config is parsed.  So
 * once parsing is done an arena belongs to a store with a reference count,
 * held by the config that parsed into it and by every config with a route
 * (or a route's struct) in it.  A
 * config points into at most CFG_MAX_FOREIGN stores besides its own; the
 * routes of any further one are deep-copied, so a store that keeps only a
 * few routes alive is let go within a reload or two.  What only one config
 * needs (its array of pointers, source text, shape) is not in the arena,
 * so a store kept for a few routes keeps little else.
 */
#define CFG_MAX_FOREIGN 8

struct cfg_store {
    atomic_uint refs;
    struct cfg_mem *mem;
};

struct cfg_share {
    struct cfg_store *own;                      /* this config's arena; NULL while parsing */
    struct cfg_store *foreign[CFG_MAX_FOREIGN]; /* other configs' arenas its routes are in */
    size_t nforeign;
    uint8_t *route_store;       /* per route, where what it points to is: 0 own,
                                   k foreign[k - 1]; NULL: all own */
    uint8_t *struct_store;      /* per route, where its struct is, the same way.  A
                                   struct moved to a new position is a copy in the
                                   config's own arena, pointing into another store */
};

static void store_unref(struct cfg_store *st)
{
    if (st != NULL && atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1) {
        cm_free_all(st->mem);
        free(st);
    }
}

/* Parsing done: the arena becomes a store later configs may share. */
static void share_seal(struct sl_config *cfg)
{
    if (cfg->share == NULL)
        cfg->share = xcalloc(1, sizeof(*cfg->share));
    cfg->share->own = xmalloc(sizeof(*cfg->share->own));
    atomic_init(&cfg->share->own->refs, 1);
    cfg->share->own->mem = cfg->mem;
    cfg->mem = NULL;            /* nothing more is allocated in it */
}

/* Character classes in ASCII, inline: the process never calls setlocale(),
 * so these answer what <ctype.h> would, without a call per byte (the
 * per-byte checks of hosts and names were a good part of a large reload). */
static inline bool c_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool c_alnum(unsigned char c)
{
    unsigned char l = c | 0x20;
    return c_digit(c) || (l >= 'a' && l <= 'z');
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + ('a' - 'A'));
}

/* lower() of n bytes, eight at a time: ASCII 'A'..'Z' gain 0x20, all
 * other bytes (>= 0x80 too) stay as they are. */
static void lower_n(char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w, x;
        memcpy(&w, s + i, 8);
        x = w & ~highs;
        uint64_t ge_a = x + ones * (0x80 - 'A');
        uint64_t gt_z = x + ones * (0x80 - 'Z' - 1);
        w |= ((ge_a & ~gt_z & ~w) & highs) >> 2;
        memcpy(s + i, &w, 8);
    }
    for (; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] + ('a' - 'A'));
}

/* strcmp() == 0 for the short keys of the document, without a call. */
static inline bool streq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* ---- cJSON type tests, inline: cJSON_IsString() and friends are calls
 * into the shared library, a dozen per route of a large document.  Same
 * tests as cJSON's own (the type's low byte; NULL is no type). */

static inline int j_type(const cJSON *v)
{
    return v ? v->type & 0xff : cJSON_Invalid;
}

#define J_IS_OBJECT(v) (j_type(v) == cJSON_Object)
#define J_IS_ARRAY(v)  (j_type(v) == cJSON_Array)
#define J_IS_STRING(v) (j_type(v) == cJSON_String)
#define J_IS_NUMBER(v) (j_type(v) == cJSON_Number)
#define J_IS_NULL(v)   (j_type(v) == cJSON_NULL)
#define J_IS_TRUE(v)   (j_type(v) == cJSON_True)
#define J_IS_BOOL(v)   ((v) != NULL && ((v)->type & (cJSON_True | cJSON_False)) != 0)

/* ---- errors */

static void cfg_errors_vadd(struct cfg_errors *errs, const char *path, const char *fmt, va_list ap)
{
    va_list ap2;
    char *msg;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    msg = xmalloc((size_t)n + 1);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);

    if (errs->n == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 8;
        struct cfg_error *v = realloc(errs->v, cap * sizeof(*v));
        if (v == NULL) {
            fputs("sluice: out of memory\n", stderr);
            abort();
        }
        errs->v = v;
        errs->cap = cap;
    }
    errs->v[errs->n].path = xstrdup(path ? path : "");
    errs->v[errs->n].message = msg;
    errs->n++;
}

void cfg_errors_add(struct cfg_errors *errs, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cfg_errors_vadd(errs, path, fmt, ap);
    va_end(ap);
}

void cfg_errors_clear(struct cfg_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->v[i].path);
        free(errs->v[i].message);
    }
    free(errs->v);
    errs->v = NULL;
    errs->n = errs->cap = 0;
}

/* ---- JSON pointers (RFC 6901: '~' -> "~0", '/' -> "~1") */

static void jp_key(char *out, const char *base, const char *key)
{
    size_t n = strlen(base);

    if (n >= JP_MAX - 2)
        n = JP_MAX - 2;
    memmove(out, base, n);
    out[n++] = '/';
    for (; *key && n < JP_MAX - 3; key++) {
        if (*key == '~' || *key == '/') {
            out[n++] = '~';
            out[n++] = *key == '~' ? '0' : '1';
        } else {
            out[n++] = *key;
        }
    }
    out[n] = '\0';
}

static void jp_idx(char *out, const char *base, size_t i)
{
    char k[24];
    size_t n = sizeof(k) - 1;

    k[n] = '\0';       /* digits from the right: no printf per array element */
    do {
        k[--n] = (char)('0' + i % 10);
        i /= 10;
    } while (i && n > 0);
    jp_key(out, base, k + n);
}

/*
 * A JSON pointer being walked: a chain of nodes on the stack, one per
 * object key or array index, rendered by jp_render() only when an error is
 * reported (building the text for every member cost more than the checks).
 * NULL is the document root "".  Rendering applies jp_key/jp_idx from the
 * root down, so a path (even one cut short at JP_MAX) reads as before.
 */
struct jp {
    const struct jp *up;
    const char *key;        /* NULL: an array index */
    size_t idx;
};

/* A child node as a compound literal: it lives until the end of the
 * enclosing block, so keep the pointer no longer than that. */
#define JP_K(parent, k) (&(const struct jp){ (parent), (k), 0 })
#define JP_I(parent, i) (&(const struct jp){ (parent), NULL, (i) })

static void jp_render(char *out, const struct jp *p)
{
    if (p == NULL) {
        out[0] = '\0';
        return;
    }
    jp_render(out, p->up);
    if (p->key)
        jp_key(out, out, p->key);
    else
        jp_idx(out, out, p->idx);
}

/* ---- syntax checks shared by several fields */

static bool is_tchar(unsigned char c)
{
    if (c_alnum(c))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* An HTTP token (RFC 9110 5.6.2): header names and methods. */
static bool valid_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

/* Header values go onto the wire verbatim, so CR/LF would split headers. */
static bool valid_header_value(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* A DNS host name: LDH labels of 1..63, 253 in all, no trailing dot.
 * A name made only of digits and dots must be a real IPv4 address, so
 * "10.0.0.300" is not silently sent to the resolver. */
static bool valid_hostname(const char *h)
{
    /* byte classes: 0 not allowed, 1 letter, 2 digit, 3 '-' ('.' and NUL
     * end a label and are handled first) */
    static const unsigned char cls[256] = {
        ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 2, ['-'] = 3 };
    size_t i = 0, lab = 0;
    bool only_digits = true;
    unsigned char prev = 0;

    /* one pass: the length limit is checked at the end, which gives the
     * same answer as checking it first */
    for (;; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.' || c == '\0') {
            if (lab == 0 || lab > 63 || prev == '-')
                return false;
            if (c == '\0')
                break;
            lab = 0;
            prev = c;
            continue;
        }
        unsigned char k = cls[c];
        if (k == 0 || (k == 3 && lab == 0))
            return false;
        only_digits &= k == 2;
        lab++;
        prev = c;
    }
    if (i > 253)
        return false;
    if (only_digits) {
        struct in_addr a4;
        return inet_pton(AF_INET, h, &a4) == 1;
    }
    return true;
}

/* Paths in matches, rewrites and redirects: absolute, no query or fragment
 * (those are not part of what is matched or replaced), nothing that would
 * break a request line. */
static const char *path_problem(const char *p)
{
    if (p[0] != '/')
        return "must start with '/'";
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f)
            return "must not contain spaces or control characters";
        if (c == '?' || c == '#')
            return "must not contain '?' or '#'";
    }
    return NULL;
}

/* ---- addresses
 *
 * With mem, the strings of an address go into a config's arena (and a
 * failed one just drops them); without, they are malloc'ed for the
 * public cfg_parse_addr() and freed with cfg_addr_free(). */

static bool addr_fail(struct cfg_addr *a, char *err, size_t errlen, const char *msg,
                      struct cfg_mem **mem)
{
    if (mem)
        a->text = a->host = NULL;
    else
        cfg_addr_free(a);
    if (errlen)
        snprintf(err, errlen, "%s", msg);
    return false;
}

static bool parse_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen,
                       struct cfg_mem **mem)
{
    const char *host, *portp, *p;
    size_t hlen;
    bool bracketed = false;
    unsigned long port = 0;

    memset(a, 0, sizeof(*a));
    if (text == NULL || *text == '\0')
        return addr_fail(a, err, errlen, "empty address", mem);

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return addr_fail(a, err, errlen, "missing ']' after the IPv6 address", mem);
        host = text + 1;
        hlen = (size_t)(close - host);
        if (close[1] == '\0')
            return addr_fail(a, err, errlen, "missing port (expected [v6]:port)", mem);
        if (close[1] != ':')
            return addr_fail(a, err, errlen, "expected ':' and a port after ']'", mem);
        portp = close + 2;
        bracketed = true;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL)
            return addr_fail(a, err, errlen, "missing port (expected host:port)", mem);
        host = text;
        hlen = (size_t)(colon - text);
        if (memchr(host, ':', hlen))
            return addr_fail(a, err, errlen,
                             "an IPv6 address must be in brackets, e.g. [::1]:8080", mem);
        if (memchr(host, '[', hlen) || memchr(host, ']', hlen))
            return addr_fail(a, err, errlen, "misplaced '[' or ']'", mem);
        portp = colon + 1;
    }
    if (hlen == 0)
        return addr_fail(a, err, errlen, "empty host", mem);
    if (*portp == '\0')
        return addr_fail(a, err, errlen, "missing port", mem);
    for (p = portp; *p; p++) {
        if (!c_digit((unsigned char)*p) || p - portp >= 5)
            return addr_fail(a, err, errlen, "port must be a number from 1 to 65535", mem);
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port == 0 || port > 65535)
        return addr_fail(a, err, errlen, "port must be a number from 1 to 65535", mem);

    a->host = cm_strndup(mem, host, hlen);
    a->port = (uint16_t)port;
    if (bracketed) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->sa;
        if (inet_pton(AF_INET6, a->host, &s6->sin6_addr) != 1)
            return addr_fail(a, err, errlen, "not a valid IPv6 address inside [ ]", mem);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        a->salen = sizeof(*s6);
        a->is_ip = true;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
        if (inet_pton(AF_INET, a->host, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            s4->sin_port = htons(a->port);
            a->salen = sizeof(*s4);
            a->is_ip = true;
        } else if (!valid_hostname(a->host)) {
            return addr_fail(a, err, errlen,
                             "host is neither an IP address nor a valid DNS name", mem);
        }
    }
    a->text = cm_strdup(mem, text);
    return true;
}

bool cfg_parse_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen)
{
    return parse_addr(text, a, err, errlen, NULL);
}

void cfg_addr_free(struct cfg_addr *a)
{
    free(a->text);
    free(a->host);
    a->text = a->host = NULL;
}

/* A listener binds, so its host must be an address now, not a name to
 * resolve: only IP literals, "localhost" and the wildcards "*"/"0.0.0.0".
 * mem as for parse_addr(). */
static bool listener_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen,
                          struct cfg_mem **mem)
{
    bool ok;

    if (text[0] == '*' && text[1] == ':') {
        size_t n = strlen(text) + 8;
        char *buf = xmalloc(n);
        snprintf(buf, n, "0.0.0.0%s", text + 1);
        ok = parse_addr(buf, a, err, errlen, mem);
        free(buf);
        if (ok) {
            if (!mem)
                free(a->text);
            a->text = cm_strdup(mem, text);
        }
        return ok;
    }
    if (!parse_addr(text, a, err, errlen, mem))
        return false;
    if (a->is_ip)
        return true;
    if (strcasecmp(a->host, "localhost") == 0) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->salen = sizeof(*s4);
        a->is_ip = true;
        if (!mem)
            free(a->host);
        a->host = cm_strdup(mem, "127.0.0.1");
        return true;
    }
    return addr_fail(a, err, errlen,
                     "a listener host must be an IP address, localhost or *", mem);
}

static bool same_sockaddr(const struct cfg_addr *x, const struct cfg_addr *y)
{
    if (x->sa.ss_family != y->sa.ss_family)
        return false;
    if (x->sa.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&x->sa, *b = (const void *)&y->sa;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (x->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&x->sa, *b = (const void *)&y->sa;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
    }
    return false;
}

/* ---- generic field access with error reporting */

/* A name -> position index, so a 10,000-route document is checked in
 * linear time (duplicate names, upstream references). Keys point into the
 * config being built; a slot keeps its key's hash (one cache line holds all
 * a probe reads, and strings are compared only on a full hash match), and a
 * name is hashed once. */
struct nidx_slot {
    const char *key;        /* NULL = empty */
    uint64_t hash;
    size_t val;
};

struct nidx {
    struct nidx_slot *v;
    size_t cap;
};

/* Room for at least want keys at load <= 1/2 (cap stays a power of two). */
static void nidx_grow(struct nidx *x, size_t want)
{
    size_t cap = x->cap ? x->cap * 2 : 64;
    while (cap < want * 2)
        cap *= 2;
    struct nidx_slot *v = xcalloc(cap, sizeof(*v));

    for (size_t i = 0; i < x->cap; i++) {
        if (x->v[i].key == NULL)
            continue;
        size_t j = x->v[i].hash & (cap - 1);
        while (v[j].key)
            j = (j + 1) & (cap - 1);
        v[j] = x->v[i];
    }
    free(x->v);
    x->v = v;
    x->cap = cap;
}

#define NOT_FOUND_IDX ((size_t)-1)

/* The slot of k (hash h), or the empty slot where it would go. */
static struct nidx_slot *nidx_slot(const struct nidx *x, const char *k, uint64_t h)
{
    size_t j = h & (x->cap - 1);
    while (x->v[j].key && (x->v[j].hash != h || strcmp(x->v[j].key, k) != 0))
        j = (j + 1) & (x->cap - 1);
    return &x->v[j];
}

/* The hash of a name in an nidx, never 0: a route's name_hash (struct
 * shape_span) of 0 says it has no name. */
static uint64_t name_hash(const char *k)
{
    uint64_t h = gw_hash_str(k);
    return h ? h : 1;
}

/* nidx_find() of k whose name_hash() is h */
static size_t nidx_find_h(const struct nidx *x, const char *k, uint64_t h)
{
    if (x->cap == 0)
        return NOT_FOUND_IDX;
    const struct nidx_slot *sl = nidx_slot(x, k, h);
    return sl->key ? sl->val : NOT_FOUND_IDX;
}

/* Whether a key with name_hash() h may be in x (false is sure), without
 * reading the key itself. */
static bool nidx_may_have(const struct nidx *x, uint64_t h)
{
    if (x->cap == 0)
        return false;
    for (size_t j = h & (x->cap - 1); x->v[j].key; j = (j + 1) & (x->cap - 1))
        if (x->v[j].hash == h)
            return true;
    return false;
}

static size_t nidx_find(const struct nidx *x, const char *k)
{
    return x->cap == 0 ? NOT_FOUND_IDX : nidx_find_h(x, k, name_hash(k));
}

/* Adds k unless present; returns the earlier position or NOT_FOUND_IDX. */
static size_t nidx_add(struct nidx *x, const char *k, size_t v, size_t *count)
{
    uint64_t h = name_hash(k);

    if ((*count + 1) * 2 > x->cap)
        nidx_grow(x, *count + 1);
    struct nidx_slot *sl = nidx_slot(x, k, h);
    if (sl->key)
        return sl->val;
    sl->key = k;
    sl->hash = h;
    sl->val = v;
    (*count)++;
    return NOT_FOUND_IDX;
}

static void nidx_free(struct nidx *x)
{
    free(x->v);
    x->v = NULL;
    x->cap = 0;
}

struct pctx {
    struct cfg_errors *errs;
    struct sl_config *cfg;
    struct nidx route_names, up_names;
    size_t nroute_names, nup_names;
};

#define ERR(pc, path, ...) cfg_errors_add((pc)->errs, (path), __VA_ARGS__)

/* Allocations owned by the config being built (see cfg_mem). */
static char *c_strndup(struct pctx *pc, const char *s, size_t n)
{
    return cm_strndup(&pc->cfg->mem, s, n);
}

static char *c_strdup(struct pctx *pc, const char *s)
{
    return cm_strdup(&pc->cfg->mem, s);
}

static void *c_calloc(struct pctx *pc, size_t n, size_t sz)
{
    if (sz && n > SIZE_MAX / sz) {
        fputs("sluice: out of memory\n", stderr);
        abort();
    }
    size_t bytes = n * sz;
    return cm_alloc(&pc->cfg->mem, bytes ? bytes : 1, _Alignof(max_align_t), true);
}


/* An error at a lazy JSON pointer: the path is rendered only here. */
static void errp(struct pctx *pc, const struct jp *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errp(struct pctx *pc, const struct jp *path, const char *fmt, ...)
{
    char p[JP_MAX];
    va_list ap;

    jp_render(p, path);
    va_start(ap, fmt);
    cfg_errors_vadd(pc->errs, p, fmt, ap);
    va_end(ap);
}

/* Position of s in the NULL-terminated list, or -1. */
static int list_pos(const char *s, const char *const *list)
{
    for (int i = 0; list && list[i]; i++)
        if (list[i][0] == s[0] && streq(s, list[i]))
            return i;
    return -1;
}

/* Known-key lists are short; found[] has one slot per entry. */
#define MAX_KEYS 16

/* The number of members of an array or object (cJSON_GetArraySize, inline). */
static size_t nchildren(const cJSON *a)
{
    size_t n = 0;
    for (const cJSON *c = a->child; c; c = c->next)
        n++;
    return n;
}

/*
 * Check that item is an object and that its members are all known and not
 * repeated (cJSON keeps both copies of a duplicate key and lookups see only
 * the first, so a repeated key would silently lose a value).  Members listed
 * in unsupported are refused as "not supported yet".  Returns false (with an
 * error) only when item is not an object.
 *
 * found (NULL, or one slot per entry of known) gets the first member of
 * each known key, or NULL: the callers read their fields from it instead of
 * scanning the object again for each one.  A known key repeats when its
 * slot is already taken, so only unknown keys need a scan for duplicates.
 */
static bool check_object(struct pctx *pc, const cJSON *item, const struct jp *path,
                         const char *const *known, const char *const *unsupported,
                         const cJSON **found)
{
    const cJSON *slots[MAX_KEYS];
    const cJSON **f = found ? found : slots;
    size_t nknown = 0;

    while (known && known[nknown])
        nknown++;
    for (size_t i = 0; i < nknown; i++)
        f[i] = NULL;
    if (!J_IS_OBJECT(item)) {
        errp(pc, path, "must be an object");
        return false;
    }
    /* The path of a member is only built for an error: a 10,000-route
     * document has some 200,000 members and almost never an error. */
    for (const cJSON *c = item->child; c; c = c->next) {
        const char *k = c->string ? c->string : "";
        int pos = list_pos(k, known);
        bool dup = false;
        if (pos >= 0) {
            dup = f[pos] != NULL;
            if (!dup)
                f[pos] = c;
        } else {
            for (const cJSON *d = item->child; d != c; d = d->next)
                if (d->string && d->string[0] == k[0] && streq(d->string, k))
                    dup = true;
        }
        if (dup) {
            errp(pc, JP_K(path, k), "duplicate key");
        } else if (list_pos(k, unsupported) >= 0) {
            char p[JP_MAX];
            jp_render(p, JP_K(path, k));
            ERR(pc, p, "not supported yet: %s", p);
        } else if (pos < 0) {
            errp(pc, JP_K(path, k), "unknown field");
        }
    }
    return true;
}

/* cJSON_GetObjectItemCaseSensitive, with the first byte compared before
 * strcmp; for the few top-level lookups (check_object's found[] serves the
 * rest). */
static const cJSON *member(const cJSON *obj, const char *key)
{
    if (!J_IS_OBJECT(obj))
        return NULL;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && c->string[0] == key[0] && strcmp(c->string, key) == 0)
            return c;
    return NULL;
}

/* Value results: the member is absent, fine, or bad (error recorded).
 * The getters take the member v (NULL = absent) of the object at path, and
 * its key for the error path. */
enum getr { G_ABSENT = 0, G_OK, G_BAD };

static enum getr get_uint(struct pctx *pc, const cJSON *v, const struct jp *path,
                          const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    double d;

    if (v == NULL)
        return G_ABSENT;
    if (!J_IS_NUMBER(v)) {
        errp(pc, JP_K(path, key), "must be an integer");
        return G_BAD;
    }
    d = v->valuedouble;
    if (d >= -9.0e18 && d <= 9.0e18 && (double)(int64_t)d != d) {
        errp(pc, JP_K(path, key), "must be an integer");
        return G_BAD;
    }
    if (d < (double)min || d > (double)max) {
        errp(pc, JP_K(path, key), "must be an integer from %llu to %llu",
             (unsigned long long)min, (unsigned long long)max);
        return G_BAD;
    }
    *out = (uint64_t)d;
    return G_OK;
}

static enum getr get_u32(struct pctx *pc, const cJSON *v, const struct jp *path,
                         const char *key, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t x;
    enum getr r = get_uint(pc, v, path, key, min, max, &x);
    if (r == G_OK)
        *out = (uint32_t)x;
    return r;
}

static enum getr get_int(struct pctx *pc, const cJSON *v, const struct jp *path,
                         const char *key, int min, int max, int *out)
{
    uint64_t x;
    enum getr r = get_uint(pc, v, path, key, (uint64_t)min, (uint64_t)max, &x);
    if (r == G_OK)
        *out = (int)x;
    return r;
}

static enum getr get_bool(struct pctx *pc, const cJSON *v, const struct jp *path,
                          const char *key, bool *out)
{
    if (v == NULL)
        return G_ABSENT;
    if (!J_IS_BOOL(v)) {
        errp(pc, JP_K(path, key), "must be true or false");
        return G_BAD;
    }
    *out = J_IS_TRUE(v);
    return G_OK;
}

static enum getr get_str(struct pctx *pc, const cJSON *v, const struct jp *path,
                         const char *key, bool required, const char **out)
{
    if (v != NULL && J_IS_STRING(v)) {
        *out = v->valuestring;
        return G_OK;
    }
    if (v == NULL && !required)
        return G_ABSENT;
    errp(pc, JP_K(path, key), v == NULL ? "is required" : "must be a string");
    return G_BAD;
}

/* A required non-empty string. */
static enum getr get_name(struct pctx *pc, const cJSON *v, const struct jp *path,
                          const char *key, bool required, const char **out)
{
    enum getr r = get_str(pc, v, path, key, required, out);
    if (r == G_OK && **out == '\0') {
        errp(pc, JP_K(path, key), "must not be empty");
        return G_BAD;
    }
    return r;
}

static const cJSON *get_array(struct pctx *pc, const cJSON *v, const struct jp *path,
                              const char *key, bool required, bool *bad)
{
    *bad = false;
    if (v != NULL && J_IS_ARRAY(v))
        return v;
    if (v == NULL && !required)
        return NULL;
    errp(pc, JP_K(path, key), v == NULL ? "is required" : "must be an array");
    *bad = true;
    return NULL;
}

/* ---- top level: workers, limits, timeouts, access_log */

static bool is_loopback(const struct cfg_addr *a)
{
    if (a->sa.ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr) >> 24) == 127;
    if (a->sa.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    return false;
}

static bool listener_addr(const char *text, struct cfg_addr *a, char *err, size_t errlen,
                          struct cfg_mem **mem);

/* The admin API changes what the proxy does: without a token it may only
 * listen where nobody else can reach it. */
static void parse_admin(struct pctx *pc, const cJSON *v)
{
    static const char *const keys[] = { "address", "token", NULL };
    enum { K_ADDRESS, K_TOKEN };
    const struct jp *path = JP_K(NULL, "admin");
    const cJSON *f[2];
    struct sl_config *cfg = pc->cfg;
    const char *addr = NULL, *token = NULL;
    char err[160];

    if (!check_object(pc, v, path, keys, NULL, f))
        return;
    if (get_str(pc, f[K_TOKEN], path, "token", false, &token) == G_OK) {
        if (token[0] == '\0')
            ERR(pc, "/admin/token", "must not be empty");
        else
            cfg->admin_token = c_strdup(pc, token);
    }
    if (get_str(pc, f[K_ADDRESS], path, "address", true, &addr) != G_OK)
        return;
    if (!listener_addr(addr, &cfg->admin_addr, err, sizeof(err), &cfg->mem)) {
        ERR(pc, "/admin/address", "%s", err);
        return;
    }
    cfg->has_admin = true;
    if (cfg->admin_token == NULL && token == NULL && !is_loopback(&cfg->admin_addr))
        ERR(pc, "/admin/address",
            "a non-loopback admin address needs admin.token (anyone could change the config)");
}

static void parse_globals(struct pctx *pc, const cJSON *root)
{
    struct sl_config *cfg = pc->cfg;
    const cJSON *v, *f[3];
    static const char *const limit_keys[] = {
        "max_header_bytes", "max_body_bytes", "max_connections", NULL };
    static const char *const timeout_keys[] = {
        "client_header_ms", "client_idle_ms", "drain_ms", NULL };
    const struct jp *lp = JP_K(NULL, "limits"), *tp = JP_K(NULL, "timeouts");
    const struct jp *sp = JP_K(NULL, "splice");

    get_int(pc, member(root, "workers"), NULL, "workers", 0, 1024, &cfg->workers);

    if ((v = member(root, "limits")) != NULL &&
        check_object(pc, v, lp, limit_keys, NULL, f)) {
        get_u32(pc, f[0], lp, "max_header_bytes", 1024, 65536, &cfg->max_header_bytes);
        get_uint(pc, f[1], lp, "max_body_bytes", 0, MAX_EXACT_INT, &cfg->max_body_bytes);
        get_u32(pc, f[2], lp, "max_connections", 0, UINT32_MAX, &cfg->max_connections);
    }
    if ((v = member(root, "timeouts")) != NULL &&
        check_object(pc, v, tp, timeout_keys, NULL, f)) {
        get_u32(pc, f[0], tp, "client_header_ms", 1, UINT32_MAX, &cfg->client_header_ms);
        get_u32(pc, f[1], tp, "client_idle_ms", 1, UINT32_MAX, &cfg->client_idle_ms);
        get_u32(pc, f[2], tp, "drain_ms", 1, UINT32_MAX, &cfg->drain_ms);
    }
    if ((v = member(root, "access_log_format")) != NULL) {
        if (!J_IS_STRING(v) || (strcmp(v->valuestring, "text") && strcmp(v->valuestring, "json")))
            ERR(pc, "/access_log_format", "must be \"text\" or \"json\"");
        else
            cfg->access_log_json = strcmp(v->valuestring, "json") == 0;
    }
    if ((v = member(root, "admin")) != NULL)
        parse_admin(pc, v);
    static const char *const splice_keys[] = { "enabled", "min_bytes", NULL };
    if ((v = member(root, "splice")) != NULL && check_object(pc, v, sp, splice_keys, NULL, f)) {
        get_bool(pc, f[0], sp, "enabled", &cfg->splice);
        get_u32(pc, f[1], sp, "min_bytes", 0, UINT32_MAX, &cfg->splice_min_bytes);
    }
    if ((v = member(root, "access_log")) != NULL) {
        cfg->access_log = NULL;
        if (J_IS_NULL(v))
            ;
        else if (!J_IS_STRING(v))
            ERR(pc, "/access_log", "must be a string or null");
        else if (v->valuestring[0] == '\0')
            ERR(pc, "/access_log", "must not be empty (use null for no access log)");
        else
            cfg->access_log = c_strdup(pc, v->valuestring);
    }
}

/* ---- listeners */

/* listeners[].tls: the certificates are only checked for shape here; the
 * TLS layer loads them (tls.c) and reports with the same paths. */
static struct cfg_listener_tls *parse_listener_tls(struct pctx *pc, const cJSON *v,
                                                   const struct jp *path)
{
    static const char *const keys[] = {
        "certificates", "ktls", "min_version", "handshake_timeout_ms", "session_tickets", NULL };
    enum { K_CERTS, K_KTLS, K_MINV, K_HS, K_TICKETS };
    static const char *const cert_keys[] = { "cert_file", "key_file", "cert_pem", "key_pem", NULL };
    const cJSON *f[5], *cf_[4];
    const char *s;
    bool bad;

    if (!check_object(pc, v, path, keys, NULL, f))
        return NULL;
    struct cfg_listener_tls *t = c_calloc(pc, 1, sizeof(*t));
    t->handshake_timeout_ms = 10000;
    t->session_tickets = true;
    get_bool(pc, f[K_KTLS], path, "ktls", &t->ktls);
    get_bool(pc, f[K_TICKETS], path, "session_tickets", &t->session_tickets);
    get_u32(pc, f[K_HS], path, "handshake_timeout_ms", 1, UINT32_MAX, &t->handshake_timeout_ms);
    if (get_str(pc, f[K_MINV], path, "min_version", false, &s) == G_OK) {
        if (strcmp(s, "1.2") == 0)
            t->min_version = CFG_TLS_1_2;
        else if (strcmp(s, "1.3") == 0)
            t->min_version = CFG_TLS_1_3;
        else
            errp(pc, JP_K(path, "min_version"), "must be \"1.2\" or \"1.3\"");
    }
    const cJSON *arr = get_array(pc, f[K_CERTS], path, "certificates", true, &bad);
    if (arr == NULL)
        return t;
    const struct jp *p = JP_K(path, "certificates");
    t->ncerts = nchildren(arr);
    if (t->ncerts == 0) {
        errp(pc, p, "must contain at least one certificate");
        return t;
    }
    t->certs = c_calloc(pc, t->ncerts, sizeof(*t->certs));
    size_t i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        struct cfg_cert *ce = &t->certs[i];
        const struct jp *cp = JP_I(p, i);
        if (!check_object(pc, c, cp, cert_keys, NULL, cf_))
            continue;
        const char *cf = NULL, *kf = NULL, *cpem = NULL, *kpem = NULL;
        get_name(pc, cf_[0], cp, "cert_file", false, &cf);
        get_name(pc, cf_[1], cp, "key_file", false, &kf);
        get_name(pc, cf_[2], cp, "cert_pem", false, &cpem);
        get_name(pc, cf_[3], cp, "key_pem", false, &kpem);
        if ((cf || kf) && (cpem || kpem)) {
            errp(pc, cp, "give cert_file and key_file, or cert_pem and key_pem, not both");
            continue;
        }
        if (!(cf || kf || cpem || kpem)) {
            errp(pc, cp, "needs cert_file and key_file, or cert_pem and key_pem");
            continue;
        }
        if ((cf || kf) && !(cf && kf)) {
            errp(pc, JP_K(cp, cf ? "key_file" : "cert_file"), "is required");
            continue;
        }
        if ((cpem || kpem) && !(cpem && kpem)) {
            errp(pc, JP_K(cp, cpem ? "key_pem" : "cert_pem"), "is required");
            continue;
        }
        ce->cert_file = cf ? c_strdup(pc, cf) : NULL;
        ce->key_file = kf ? c_strdup(pc, kf) : NULL;
        ce->cert_pem = cpem ? c_strdup(pc, cpem) : NULL;
        ce->key_pem = kpem ? c_strdup(pc, kpem) : NULL;
    }
    return t;
}

static void parse_listeners(struct pctx *pc, const cJSON *root)
{
    struct sl_config *cfg = pc->cfg;
    static const char *const keys[] = { "name", "address", "tls", NULL };
    enum { K_NAME, K_ADDRESS, K_TLS };
    const struct jp *lp = JP_K(NULL, "listeners");
    bool bad;
    const cJSON *arr = get_array(pc, member(root, "listeners"), NULL, "listeners", true, &bad);
    size_t i = 0;

    if (arr == NULL)
        return;
    cfg->nlisteners = nchildren(arr);
    if (cfg->nlisteners == 0) {
        ERR(pc, "/listeners", "must contain at least one listener");
        return;
    }
    cfg->listeners = c_calloc(pc, cfg->nlisteners, sizeof(*cfg->listeners));
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        struct cfg_listener *l = &cfg->listeners[i];
        const struct jp *path = JP_I(lp, i);
        const cJSON *f[3];
        char err[160];
        const char *s;

        if (!check_object(pc, it, path, keys, NULL, f))
            continue;
        if (f[K_TLS])
            l->tls = parse_listener_tls(pc, f[K_TLS], JP_K(path, "tls"));
        if (get_name(pc, f[K_NAME], path, "name", false, &s) == G_OK) {
            for (size_t j = 0; j < i; j++)
                if (cfg->listeners[j].name && strcmp(cfg->listeners[j].name, s) == 0) {
                    errp(pc, JP_K(path, "name"),
                         "duplicate listener name \"%s\" (also /listeners/%zu)", s, j);
                    break;
                }
            l->name = c_strdup(pc, s);
        }
        if (get_str(pc, f[K_ADDRESS], path, "address", true, &s) == G_OK) {
            const struct jp *p = JP_K(path, "address");
            if (!listener_addr(s, &l->addr, err, sizeof(err), &cfg->mem)) {
                errp(pc, p, "bad address \"%s\": %s", s, err);
                continue;
            }
            for (size_t j = 0; j < i; j++)
                if (cfg->listeners[j].addr.text && same_sockaddr(&cfg->listeners[j].addr, &l->addr)) {
                    errp(pc, p, "same address as /listeners/%zu", j);
                    break;
                }
        }
    }
}

static size_t find_listener(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (cfg->listeners[i].name && strcmp(cfg->listeners[i].name, name) == 0)
            return i;
    return NOT_FOUND;
}

/* ---- upstreams */

static void parse_targets(struct pctx *pc, const cJSON *v, const struct jp *path,
                          struct cfg_upstream *u)
{
    static const char *const keys[] = { "address", "weight", NULL };
    bool bad;
    const cJSON *arr = get_array(pc, v, path, "targets", true, &bad);
    size_t i = 0;

    if (arr == NULL)
        return;
    const struct jp *apath = JP_K(path, "targets");
    u->ntargets = nchildren(arr);
    if (u->ntargets == 0) {
        errp(pc, apath, "must contain at least one target");
        return;
    }
    u->targets = c_calloc(pc, u->ntargets, sizeof(*u->targets));
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        struct cfg_target *t = &u->targets[i];
        const struct jp *tpath = JP_I(apath, i);
        const cJSON *f[2];
        char err[160];
        const char *s;

        t->weight = 1;
        if (!check_object(pc, it, tpath, keys, NULL, f))
            continue;
        if (get_str(pc, f[0], tpath, "address", true, &s) == G_OK &&
            !parse_addr(s, &t->addr, err, sizeof(err), &pc->cfg->mem))
            errp(pc, JP_K(tpath, "address"), "bad address \"%s\": %s", s, err);
        get_u32(pc, f[1], tpath, "weight", 1, 1000000, &t->weight);
    }
}

static void parse_upstream(struct pctx *pc, const cJSON *it, const struct jp *path, size_t i)
{
    struct sl_config *cfg = pc->cfg;
    struct cfg_upstream *u = &cfg->upstreams[i];
    static const char *const keys[] = {
        "name", "targets", "balance", "pool", "timeouts", "retries", "tls", NULL };
    enum { K_NAME, K_TARGETS, K_BALANCE, K_POOL, K_TIMEOUTS, K_RETRIES, K_TLS };
    static const char *const unsupported[] = { "health", "hash_on", NULL };
    static const char *const tls_keys[] = { "sni", "verify", "ca_file", NULL };
    static const char *const pool_keys[] = { "max_idle_per_target", "idle_timeout_ms", NULL };
    static const char *const to_keys[] = {
        "connect_ms", "response_header_ms", "idle_ms", NULL };
    const cJSON *v, *f[7], *g[3];
    const char *s;

    u->balance = CFG_BAL_ROUND_ROBIN;
    u->max_idle_per_target = 64;
    u->pool_idle_timeout_ms = 60000;
    u->connect_ms = 1000;
    u->response_header_ms = 30000;
    u->idle_ms = 300000;
    u->retries = 1;
    if (!check_object(pc, it, path, keys, unsupported, f))
        return;

    if (get_name(pc, f[K_NAME], path, "name", true, &s) == G_OK) {
        u->name = c_strdup(pc, s);
        size_t j = nidx_add(&pc->up_names, u->name, i, &pc->nup_names);
        if (j != NOT_FOUND_IDX)
            errp(pc, JP_K(path, "name"),
                 "duplicate upstream name \"%s\" (also /upstreams/%zu)", s, j);
    }
    parse_targets(pc, f[K_TARGETS], path, u);

    if (get_str(pc, f[K_BALANCE], path, "balance", false, &s) == G_OK) {
        const struct jp *p = JP_K(path, "balance");
        if (strcmp(s, "round_robin") == 0) {
            u->balance = CFG_BAL_ROUND_ROBIN;
        } else if (strcmp(s, "least_request") == 0 || strcmp(s, "random_two") == 0 ||
                   strcmp(s, "hash") == 0) {
            char ps[JP_MAX];
            jp_render(ps, p);
            ERR(pc, ps, "not supported yet: %s", ps);
        } else {
            errp(pc, p, "must be one of round_robin, least_request, random_two, hash");
        }
    }

    const struct jp *p = JP_K(path, "tls");
    if ((v = f[K_TLS]) != NULL && check_object(pc, v, p, tls_keys, NULL, g)) {
        u->tls = c_calloc(pc, 1, sizeof(*u->tls));
        u->tls->verify = true;
        get_bool(pc, g[1], p, "verify", &u->tls->verify);
        if (get_name(pc, g[0], p, "sni", false, &s) == G_OK)
            u->tls->sni = c_strdup(pc, s);
        if (get_name(pc, g[2], p, "ca_file", false, &s) == G_OK)
            u->tls->ca_file = c_strdup(pc, s);
    }
    p = JP_K(path, "pool");
    if ((v = f[K_POOL]) != NULL && check_object(pc, v, p, pool_keys, NULL, g)) {
        get_u32(pc, g[0], p, "max_idle_per_target", 0, 1000000, &u->max_idle_per_target);
        get_u32(pc, g[1], p, "idle_timeout_ms", 1, UINT32_MAX, &u->pool_idle_timeout_ms);
    }
    p = JP_K(path, "timeouts");
    if ((v = f[K_TIMEOUTS]) != NULL && check_object(pc, v, p, to_keys, NULL, g)) {
        get_u32(pc, g[0], p, "connect_ms", 1, UINT32_MAX, &u->connect_ms);
        get_u32(pc, g[1], p, "response_header_ms", 1, UINT32_MAX, &u->response_header_ms);
        get_u32(pc, g[2], p, "idle_ms", 1, UINT32_MAX, &u->idle_ms);
    }
    get_u32(pc, f[K_RETRIES], path, "retries", 0, 10, &u->retries);
}

static void parse_upstreams(struct pctx *pc, const cJSON *root)
{
    struct sl_config *cfg = pc->cfg;
    const struct jp *up = JP_K(NULL, "upstreams");
    bool bad;
    const cJSON *arr = get_array(pc, member(root, "upstreams"), NULL, "upstreams", false, &bad);
    size_t i = 0;

    if (arr == NULL)
        return;
    cfg->nupstreams = nchildren(arr);
    cfg->upstreams = c_calloc(pc, cfg->nupstreams, sizeof(*cfg->upstreams));
    nidx_grow(&pc->up_names, cfg->nupstreams);
    for (const cJSON *it = arr->child; it; it = it->next, i++)
        parse_upstream(pc, it, JP_I(up, i), i);
}

static size_t find_upstream(const struct pctx *pc, const char *name)
{
    size_t i = nidx_find(&pc->up_names, name);
    return i == NOT_FOUND_IDX ? NOT_FOUND : i;
}

/* ---- routes: match */

/* An array of strings, each checked by check(); returns a NULL-free copy in
 * *out (entries that failed are left NULL so cfg_free stays simple). */
typedef const char *(*str_check_fn)(char *s);

static void parse_str_list(struct pctx *pc, const cJSON *v, const struct jp *path,
                           const char *key, bool allow_empty, str_check_fn check,
                           char ***out, size_t *nout)
{
    bool bad;
    const cJSON *arr = get_array(pc, v, path, key, false, &bad);
    size_t i = 0;

    if (arr == NULL)
        return;
    const struct jp *apath = JP_K(path, key);
    *nout = nchildren(arr);
    if (*nout == 0) {
        if (!allow_empty)
            errp(pc, apath, "must not be empty (leave it out instead)");
        return;
    }
    *out = c_calloc(pc, *nout, sizeof(char *));
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        const char *why;
        char *s;

        if (!J_IS_STRING(it)) {
            errp(pc, JP_I(apath, i), "must be a string");
            continue;
        }
        s = c_strdup(pc, it->valuestring);
        if ((why = check(s)) != NULL) {
            errp(pc, JP_I(apath, i), "%s", why);
            continue;       /* s stays in the arena until cfg_free */
        }
        for (size_t j = 0; j < i; j++)
            if ((*out)[j] && strcmp((*out)[j], s) == 0) {
                errp(pc, JP_I(apath, i), "duplicate \"%s\"", s);
                break;
            }
        (*out)[i] = s;
    }
}

static const char *check_listener_name(char *s)
{
    return *s ? NULL : "must not be empty";
}

/* Hosts are matched case-insensitively, so they are stored lower-case. */
static const char *check_match_host(char *s)
{
    const char *rest = s;
    size_t n = strlen(s);

    lower_n(s, n);
    if (memchr(s, ':', n))
        return "a host may not carry a port (ports are ignored when matching)";
    if (s[0] == '*' && s[1] == '\0')
        return "\"*\" alone is not allowed (leave hosts out to match any host)";
    if (s[0] == '*') {
        if (s[1] != '.')
            return "a wildcard host must look like *.example.com";
        rest = s + 2;
    }
    if (memchr(rest, '*', n - (size_t)(rest - s)))
        return "'*' is only allowed as the whole first label, as in *.example.com";
    if (!valid_hostname(rest))
        return "not a valid host name";
    return NULL;
}

static const char *check_method(char *s)
{
    return valid_token(s) ? NULL : "must be an HTTP method token";
}

static void parse_kv_list(struct pctx *pc, const cJSON *v, const struct jp *path,
                          const char *key, bool header, struct cfg_kv **out, size_t *nout)
{
    static const char *const keys[] = { "name", "value", NULL };
    bool bad;
    const cJSON *arr = get_array(pc, v, path, key, false, &bad);
    size_t i = 0;

    if (arr == NULL)
        return;
    const struct jp *apath = JP_K(path, key);
    *nout = nchildren(arr);
    if (*nout == 0)
        return;
    *out = c_calloc(pc, *nout, sizeof(**out));
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        const struct jp *ipath = JP_I(apath, i);
        const cJSON *f[2];
        const char *name = NULL, *value = NULL;
        enum getr rn, rv;

        if (!check_object(pc, it, ipath, keys, NULL, f))
            continue;
        rn = get_name(pc, f[0], ipath, "name", true, &name);
        rv = get_str(pc, f[1], ipath, "value", true, &value);
        if (rn == G_OK && header && !valid_token(name)) {
            errp(pc, JP_K(ipath, "name"), "must be a header name (an HTTP token)");
            rn = G_BAD;
        }
        if (rv == G_OK && header && !valid_header_value(value)) {
            errp(pc, JP_K(ipath, "value"), "must not contain CR or LF");
            rv = G_BAD;
        }
        if (rn != G_OK || rv != G_OK)
            continue;
        (*out)[i].name = c_strdup(pc, name);
        if (header)
            lower((*out)[i].name);
        (*out)[i].value = c_strdup(pc, value);
        (*out)[i].name_len = (uint32_t)strlen(name);
        (*out)[i].value_len = (uint32_t)strlen(value);
    }
}

static void parse_match(struct pctx *pc, const cJSON *m, const struct jp *path, struct cfg_route *r)
{
    static const char *const keys[] = {
        "listeners", "hosts", "path", "methods", "headers", "query", NULL };
    enum { K_LISTENERS, K_HOSTS, K_PATH, K_METHODS, K_HEADERS, K_QUERY };
    static const char *const path_keys[] = { "prefix", "exact", NULL };
    const cJSON *v, *f[6], *pf[2];

    if (!check_object(pc, m, path, keys, NULL, f))
        return;

    parse_str_list(pc, f[K_LISTENERS], path, "listeners", false, check_listener_name,
                   &r->listeners, &r->nlisteners);
    if (r->nlisteners) {
        r->listener_idx = c_calloc(pc, r->nlisteners, sizeof(size_t));
        for (size_t i = 0; i < r->nlisteners; i++) {
            if (r->listeners[i] == NULL)
                continue;
            r->listener_idx[i] = find_listener(pc->cfg, r->listeners[i]);
            if (r->listener_idx[i] == NOT_FOUND)
                errp(pc, JP_I(JP_K(path, "listeners"), i),
                     "unknown listener \"%s\"", r->listeners[i]);
        }
    }
    parse_str_list(pc, f[K_HOSTS], path, "hosts", true, check_match_host, &r->hosts, &r->nhosts);
    if (r->nhosts == 0)
        r->hosts = NULL;

    const struct jp *p = JP_K(path, "path");
    if ((v = f[K_PATH]) != NULL && check_object(pc, v, p, path_keys, NULL, pf)) {
        const cJSON *pre = pf[0], *ex = pf[1];
        const char *key = pre ? "prefix" : "exact";
        const char *s, *why;

        if ((pre == NULL) == (ex == NULL)) {
            errp(pc, p, "must have exactly one of prefix, exact");
        } else if (get_str(pc, pre ? pre : ex, p, key, true, &s) == G_OK) {
            if ((why = path_problem(s)) != NULL) {
                errp(pc, JP_K(p, key), "%s", why);
            } else {
                size_t n = strlen(s);
                /* "/api/" and "/api" select the same segments, and the
                 * router probes segment boundaries without the slash. */
                if (pre)
                    while (n > 1 && s[n - 1] == '/')
                        n--;
                r->path_kind = pre ? CFG_PATH_PREFIX : CFG_PATH_EXACT;
                r->path = c_strndup(pc, s, n);
                r->path_len = (uint32_t)n;
            }
        }
    }

    parse_str_list(pc, f[K_METHODS], path, "methods", true, check_method,
                   &r->methods, &r->nmethods);
    if (r->nmethods == 0)
        r->methods = NULL;
    parse_kv_list(pc, f[K_HEADERS], path, "headers", true, &r->match_headers, &r->nmatch_headers);
    parse_kv_list(pc, f[K_QUERY], path, "query", false, &r->match_query, &r->nmatch_query);
}

/* ---- routes: header edits, rewrite, actions */

/* Framing, hop-by-hop and Host lines are sluice's own (h1_fwd.h): an edit
 * could frame a message twice or leave it unframed. */
#define MANAGED_HEADER "is written by sluice itself (framing, hop-by-hop and Host headers " \
                       "cannot be edited; use rewrite.host for Host)"

static void parse_kv_map(struct pctx *pc, const cJSON *obj, const struct jp *path,
                         struct cfg_kv **out, size_t *nout)
{
    size_t i = 0;

    if (!J_IS_OBJECT(obj)) {
        errp(pc, path, "must be an object");
        return;
    }
    *nout = nchildren(obj);
    if (*nout == 0)
        return;
    *out = c_calloc(pc, *nout, sizeof(**out));
    for (const cJSON *c = obj->child; c; c = c->next, i++) {
        const char *k = c->string ? c->string : "";
        bool dup = false;
        char *name;

        if (!valid_token(k)) {
            errp(pc, JP_K(path, k), "must be a header name (an HTTP token)");
            continue;
        }
        if (hdr_managed(k, strlen(k))) {
            errp(pc, JP_K(path, k), MANAGED_HEADER);
            continue;
        }
        if (!J_IS_STRING(c)) {
            errp(pc, JP_K(path, k), "must be a string");
            continue;
        }
        if (!valid_header_value(c->valuestring)) {
            errp(pc, JP_K(path, k), "must not contain CR or LF");
            continue;
        }
        name = c_strdup(pc, k);
        lower(name);
        for (size_t j = 0; j < i; j++)
            if ((*out)[j].name && strcmp((*out)[j].name, name) == 0)
                dup = true;
        if (dup) {
            errp(pc, JP_K(path, k), "duplicate header name (names are case-insensitive)");
            continue;
        }
        (*out)[i].name = name;
        (*out)[i].name_len = (uint32_t)strlen(name);
        (*out)[i].value = c_strdup(pc, c->valuestring);
        (*out)[i].value_len = (uint32_t)strlen(c->valuestring);
    }
}

static void parse_header_edits(struct pctx *pc, const cJSON *obj, const struct jp *path,
                               struct cfg_header_edits *h)
{
    static const char *const keys[] = { "set", "add", "remove", NULL };
    const cJSON *v, *f[3];
    bool bad;

    if (!check_object(pc, obj, path, keys, NULL, f))
        return;
    if ((v = f[0]) != NULL)
        parse_kv_map(pc, v, JP_K(path, "set"), &h->set, &h->nset);
    if ((v = f[1]) != NULL)
        parse_kv_map(pc, v, JP_K(path, "add"), &h->add, &h->nadd);
    if ((v = get_array(pc, f[2], path, "remove", false, &bad)) != NULL) {
        const struct jp *p = JP_K(path, "remove");
        size_t i = 0;
        h->nremove = nchildren(v);
        if (h->nremove)
            h->remove = c_calloc(pc, h->nremove, sizeof(*h->remove));
        for (const cJSON *it = v->child; it; it = it->next, i++) {
            if (!J_IS_STRING(it)) {
                errp(pc, JP_I(p, i), "must be a string");
                continue;
            }
            if (!valid_token(it->valuestring)) {
                errp(pc, JP_I(p, i), "must be a header name (an HTTP token)");
                continue;
            }
            if (hdr_managed(it->valuestring, strlen(it->valuestring))) {
                errp(pc, JP_I(p, i), MANAGED_HEADER);
                continue;
            }
            h->remove[i].name = c_strdup(pc, it->valuestring);
            lower(h->remove[i].name);
            h->remove[i].name_len = (uint32_t)strlen(h->remove[i].name);
        }
    }
}

static void parse_rewrite(struct pctx *pc, const cJSON *obj, const struct jp *path,
                          struct cfg_route *r)
{
    static const char *const keys[] = {
        "strip_prefix", "replace_prefix", "replace_path", "host", NULL };
    const cJSON *f[4];
    const char *s, *why;
    /* at function scope: the error after the if/else below names them */
    const struct jp *strip_p = JP_K(path, "strip_prefix");
    const struct jp *rpre_p = JP_K(path, "replace_prefix");
    const struct jp *rpath_p = JP_K(path, "replace_path");
    const struct jp *p = NULL;
    int nkinds;

    if (!check_object(pc, obj, path, keys, NULL, f))
        return;
    const cJSON *strip = f[0], *rpre = f[1], *rpath = f[2];
    nkinds = (strip != NULL) + (rpre != NULL) + (rpath != NULL);
    if (nkinds > 1) {
        errp(pc, path, "must have only one of strip_prefix, replace_prefix, replace_path");
        return;
    }
    if (nkinds == 0 && f[3] == NULL) {
        errp(pc, path, "must have one of strip_prefix, replace_prefix, replace_path, host");
        return;
    }
    if (strip) {
        p = strip_p;
        if (!J_IS_BOOL(strip))
            errp(pc, p, "must be a boolean");
        else if (!J_IS_TRUE(strip))
            errp(pc, p, "must be true (leave rewrite out for no rewrite)");
        else
            r->rewrite = CFG_RW_STRIP_PREFIX;
    } else if (rpre || rpath) {
        const char *key = rpre ? "replace_prefix" : "replace_path";
        p = rpre ? rpre_p : rpath_p;
        if (get_str(pc, rpre ? rpre : rpath, path, key, true, &s) == G_OK) {
            if ((why = path_problem(s)) != NULL) {
                errp(pc, p, "%s", why);
            } else {
                r->rewrite = rpre ? CFG_RW_REPLACE_PREFIX : CFG_RW_REPLACE_PATH;
                r->rewrite_path = c_strdup(pc, s);
                r->rewrite_path_len = (uint32_t)strlen(s);
            }
        }
    }
    /* p is set: strip or rpre chose it above */
    if ((strip || rpre) && r->path_kind != CFG_PATH_PREFIX)
        errp(pc, p, "needs a match.path.prefix to act on");

    if (get_str(pc, f[3], path, "host", false, &s) == G_OK) {
        if (!valid_hostname(s)) {
            errp(pc, JP_K(path, "host"), "must be a host name (without a port)");
        } else {
            r->rewrite_host = c_strdup(pc, s);
            lower(r->rewrite_host);
        }
    }
}

static void parse_backends(struct pctx *pc, const cJSON *arr, const struct jp *path,
                           struct cfg_route *r)
{
    static const char *const keys[] = { "upstream", "weight", NULL };
    bool any_weight = false, all_ok = true;
    size_t i = 0;

    if (!J_IS_ARRAY(arr)) {
        errp(pc, path, "must be an array");
        return;
    }
    r->nbackends = nchildren(arr);
    if (r->nbackends == 0) {
        errp(pc, path, "must contain at least one backend");
        return;
    }
    r->backends = c_calloc(pc, r->nbackends, sizeof(*r->backends));
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        struct cfg_backend_ref *b = &r->backends[i];
        const struct jp *bpath = JP_I(path, i);
        const cJSON *f[2];
        const char *s;

        b->weight = 1;
        b->upstream_idx = NOT_FOUND;
        if (!check_object(pc, it, bpath, keys, NULL, f)) {
            all_ok = false;
            continue;
        }
        if (get_name(pc, f[0], bpath, "upstream", true, &s) == G_OK) {
            b->upstream = c_strdup(pc, s);
            b->upstream_idx = find_upstream(pc, s);
            if (b->upstream_idx == NOT_FOUND)
                errp(pc, JP_K(bpath, "upstream"), "unknown upstream \"%s\"", s);
        }
        if (get_u32(pc, f[1], bpath, "weight", 0, 1000000, &b->weight) == G_BAD)
            all_ok = false;
        else if (b->weight > 0)
            any_weight = true;
    }
    if (all_ok && !any_weight)
        errp(pc, path, "at least one backend needs a weight above 0");
}

static void parse_redirect(struct pctx *pc, const cJSON *obj, const struct jp *path,
                           struct cfg_route *r)
{
    static const char *const keys[] = { "scheme", "host", "port", "path", "status", NULL };
    enum { K_SCHEME, K_HOST, K_PORT, K_PATH, K_STATUS };
    static const char *const path_keys[] = { "replace_prefix", NULL };
    const cJSON *v, *f[5], *pf[1];
    const char *s, *why;

    r->redirect.status = 302;
    if (!check_object(pc, obj, path, keys, NULL, f))
        return;
    if (get_str(pc, f[K_SCHEME], path, "scheme", false, &s) == G_OK) {
        if (strcmp(s, "http") != 0 && strcmp(s, "https") != 0)
            errp(pc, JP_K(path, "scheme"), "must be http or https");
        else
            r->redirect.scheme = c_strdup(pc, s);
    }
    if (get_str(pc, f[K_HOST], path, "host", false, &s) == G_OK) {
        if (!valid_hostname(s)) {
            errp(pc, JP_K(path, "host"), "must be a host name (give the port in \"port\")");
        } else {
            r->redirect.host = c_strdup(pc, s);
            lower(r->redirect.host);
        }
    }
    get_int(pc, f[K_PORT], path, "port", 1, 65535, &r->redirect.port);

    const struct jp *p = JP_K(path, "path");
    if ((v = f[K_PATH]) != NULL) {
        if (J_IS_STRING(v)) {
            if ((why = path_problem(v->valuestring)) != NULL)
                errp(pc, p, "%s", why);
            else
                r->redirect.path = c_strdup(pc, v->valuestring);
        } else if (J_IS_OBJECT(v)) {
            const struct jp *kp = JP_K(p, "replace_prefix");
            check_object(pc, v, p, path_keys, NULL, pf);
            if (get_str(pc, pf[0], p, "replace_prefix", true, &s) == G_OK) {
                if ((why = path_problem(s)) != NULL)
                    errp(pc, kp, "%s", why);
                else
                    r->redirect.replace_prefix = c_strdup(pc, s);
                if (r->path_kind != CFG_PATH_PREFIX)
                    errp(pc, kp, "needs a match.path.prefix to act on");
            }
        } else {
            errp(pc, p, "must be a string or an object {\"replace_prefix\": ...}");
        }
    }

    if (get_int(pc, f[K_STATUS], path, "status", 0, 999, &r->redirect.status) != G_BAD) {
        int st = r->redirect.status;
        if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308)
            errp(pc, JP_K(path, "status"), "must be one of 301, 302, 303, 307, 308");
    }
}

static void parse_respond(struct pctx *pc, const cJSON *obj, const struct jp *path,
                          struct cfg_route *r)
{
    static const char *const keys[] = { "status", "body", "content_type", NULL };
    const cJSON *f[3];
    const char *s;

    if (!check_object(pc, obj, path, keys, NULL, f))
        return;
    if (f[0] == NULL)
        errp(pc, JP_K(path, "status"), "is required");
    else
        get_int(pc, f[0], path, "status", 200, 599, &r->respond.status);
    if (get_str(pc, f[1], path, "body", false, &s) == G_OK) {
        r->respond.body = c_strdup(pc, s);
        r->respond.body_len = strlen(s);
    }
    if (get_str(pc, f[2], path, "content_type", false, &s) == G_OK) {
        if (*s == '\0' || !valid_header_value(s))
            errp(pc, JP_K(path, "content_type"),
                 "must be a non-empty header value without CR or LF");
        else
            r->respond.content_type = c_strdup(pc, s);
    }
}

void (*cfg_pace_hook)(void);

/* Every 8th call of a loop (i its counter) the pace hook, if any. */
static inline void pace(size_t i)
{
    if ((i & 7) == 7 && cfg_pace_hook != NULL)
        cfg_pace_hook();
}

static void parse_route(struct pctx *pc, const cJSON *it, const struct jp *path, size_t i)
{
    struct sl_config *cfg = pc->cfg;
    struct cfg_route *r = cfg->routes[i];
    static const char *const keys[] = {
        "name", "match", "rewrite", "request_headers", "response_headers",
        "backends", "upstream", "redirect", "respond", NULL };
    enum { K_NAME, K_MATCH, K_REWRITE, K_REQH, K_RESPH,
           K_BACKENDS, K_UPSTREAM, K_REDIRECT, K_RESPOND };
    static const char *const actions[] = { "backends", "upstream", "redirect", "respond" };
    const char *found[4], *s;
    const cJSON *v, *f[9];
    int nact = 0;

    r->index = i;
    if (!check_object(pc, it, path, keys, NULL, f))
        return;

    if (get_name(pc, f[K_NAME], path, "name", false, &s) == G_OK) {
        r->name = c_strdup(pc, s);
        size_t j = nidx_add(&pc->route_names, r->name, i, &pc->nroute_names);
        if (j != NOT_FOUND_IDX)
            errp(pc, JP_K(path, "name"), "duplicate route name \"%s\" (also /routes/%zu)", s, j);
    }

    if ((v = f[K_MATCH]) != NULL)
        parse_match(pc, v, JP_K(path, "match"), r);

    for (int a = 0; a < 4; a++)
        if (f[K_BACKENDS + a])
            found[nact++] = actions[a];
    if (nact == 0)
        errp(pc, path, "needs an action: one of backends, upstream, redirect, respond");
    else if (nact > 1)
        errp(pc, path, "has more than one action (%s and %s); keep exactly one",
             found[0], found[1]);

    if ((v = f[K_BACKENDS]) != NULL) {
        r->action = CFG_ACT_BACKENDS;
        parse_backends(pc, v, JP_K(path, "backends"), r);
    }
    if ((v = f[K_UPSTREAM]) != NULL) {
        r->action = CFG_ACT_BACKENDS;
        if (get_name(pc, v, path, "upstream", true, &s) == G_OK && r->backends == NULL) {
            r->backends = c_calloc(pc, 1, sizeof(*r->backends));
            r->nbackends = 1;
            r->backends[0].upstream = c_strdup(pc, s);
            r->backends[0].weight = 1;
            r->backends[0].upstream_idx = find_upstream(pc, s);
            if (r->backends[0].upstream_idx == NOT_FOUND)
                errp(pc, JP_K(path, "upstream"), "unknown upstream \"%s\"", s);
        }
    }
    if ((v = f[K_REDIRECT]) != NULL) {
        r->action = CFG_ACT_REDIRECT;
        parse_redirect(pc, v, JP_K(path, "redirect"), r);
    }
    if ((v = f[K_RESPOND]) != NULL) {
        r->action = CFG_ACT_RESPOND;
        parse_respond(pc, v, JP_K(path, "respond"), r);
    }

    if ((v = f[K_REWRITE]) != NULL) {
        parse_rewrite(pc, v, JP_K(path, "rewrite"), r);
        if (nact == 1 && r->action != CFG_ACT_BACKENDS)
            errp(pc, JP_K(path, "rewrite"), "is only allowed on a route with backends or upstream");
    }
    if ((v = f[K_REQH]) != NULL)
        parse_header_edits(pc, v, JP_K(path, "request_headers"), &r->req_headers);
    if ((v = f[K_RESPH]) != NULL)
        parse_header_edits(pc, v, JP_K(path, "response_headers"), &r->resp_headers);
}

static void parse_routes(struct pctx *pc, const cJSON *root)
{
    struct sl_config *cfg = pc->cfg;
    const struct jp *rp = JP_K(NULL, "routes");
    bool bad;
    const cJSON *arr = get_array(pc, member(root, "routes"), NULL, "routes", true, &bad);
    size_t i = 0;

    if (arr == NULL)
        return;
    /* An empty list is allowed: every request then gets a 404. */
    cfg->nroutes = nchildren(arr);
    /* the structs in the arena, which becomes a store: a reload may share them */
    cfg->routes = xmalloc((cfg->nroutes ? cfg->nroutes : 1) * sizeof(*cfg->routes));
    struct cfg_route *block = c_calloc(pc, cfg->nroutes, sizeof(*block));
    for (size_t k = 0; k < cfg->nroutes; k++)
        cfg->routes[k] = &block[k];
    nidx_grow(&pc->route_names, cfg->nroutes);
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        pace(i);
        parse_route(pc, it, JP_I(rp, i), i);
    }
}

/* ---- reusing unchanged routes (cfg_parse_update)
 *
 * A reload usually changes a few routes of many: a Kubernetes controller
 * PUTs the whole document for every change.  So each config remembers where
 * each route's text sits in its source, and the next parse copies the
 * routes whose text is unchanged instead of parsing them again.  Finding
 * the routes needs only JSON's structure (strings, brackets, commas), not
 * its values; a route that is not copied is parsed by cJSON on its own, and
 * anything unexpected means a full parse.
 */

struct shape_span {
    size_t off, len;
    uint64_t hash;                  /* of the text */
    uint64_t name_hash;             /* name_hash(route name), 0 without a name */
};

struct cfg_shape {
    size_t doc_len;
    size_t arr_off, arr_end;        /* the routes array: '[' .. one past ']' */
    size_t n;                       /* == nroutes */
    struct shape_span *el;
};

struct shape_scan {
    size_t arr_off, arr_end, n, cap;
    struct shape_span *el;          /* malloc'd */
    uint32_t *base_idx;             /* per element: 1 + the base route with its text, 0 =
                                       not known (see shape_scan); malloc'd with el */
};

static uint64_t span_hash(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;

    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static size_t js_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is '"': the index after the closing quote, or n. */
static size_t js_str(const char *s, size_t n, size_t i)
{
    size_t start = ++i;

    while (i < n) {
        const char *q = memchr(s + i, '"', n - i);
        if (q == NULL)
            return n;
        size_t k = (size_t)(q - s), bs = 0;
        while (k - bs > start && s[k - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return k + 1;
        i = k + 1;
    }
    return n;
}

/* The index after the value at s[i] (not checked beyond its extent), or n. */
static size_t js_value(const char *s, size_t n, size_t i)
{
    size_t depth = 0;

    if (i >= n)
        return n;
    if (s[i] == '"')
        return js_str(s, n, i);
    if (s[i] != '{' && s[i] != '[') {
        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
               s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            i++;
        return i;
    }
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            i = js_str(s, n, i);
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return i + 1;
        }
        i++;
    }
    return n;
}

/* If the text at s[i] is that of base's route j (an object, as every
 * route of a valid config is), its length, else 0.  Equal bytes make the
 * same value, and an object's extent depends only on its own bytes, so
 * this stands in for js_value() on routes that did not change, at the
 * speed of memcmp instead of a byte-wise scan. */
static size_t same_route_at(const char *s, size_t n, size_t i, const char *bsrc,
                            const struct cfg_shape *bs, size_t j)
{
    if (bs == NULL || j >= bs->n)
        return 0;
    const struct shape_span *b = &bs->el[j];
    if (b->len == 0 || bsrc[b->off] != '{' || b->len > n - i ||
        memcmp(s + i, bsrc + b->off, b->len) != 0)
        return 0;
    return b->len;
}

/* Finds the top-level "routes" array and each element's text.  False for
 * anything else: no such key (or a second one), or a structure that is
 * not a JSON object.  With a base (bsrc and bs, its source and shape),
 * each element is first compared with the base route at the position it
 * would have if the routes before it were changed in place (or the one
 * after it: a route deleted; or the one before: one inserted), and when
 * equal it is neither scanned nor hashed, and base_idx[] names it. */
static bool shape_scan(const char *s, size_t n, struct shape_scan *sc, const char *bsrc,
                       const struct cfg_shape *bs)
{
    size_t i = js_ws(s, n, 0), next = 0;
    bool found = false;

    memset(sc, 0, sizeof(*sc));
    if (i >= n || s[i] != '{')
        return false;
    i = js_ws(s, n, i + 1);
    for (;;) {
        if (i >= n || s[i] != '"')
            goto bad;
        size_t k = i;
        i = js_str(s, n, i);
        bool routes = i - k == 8 && memcmp(s + k, "\"routes\"", 8) == 0;
        i = js_ws(s, n, i);
        if (i >= n || s[i] != ':')
            goto bad;
        i = js_ws(s, n, i + 1);
        if (routes) {
            if (found || i >= n || s[i] != '[')
                goto bad;
            found = true;
            sc->arr_off = i;
            i = js_ws(s, n, i + 1);
            if (i < n && s[i] == ']') {
                i++;
            } else {
                for (;;) {
                    if (sc->n == sc->cap) {
                        sc->cap = sc->cap ? sc->cap * 2 : 256;
                        sc->el = xrealloc(sc->el, sc->cap * sizeof(*sc->el));
                        sc->base_idx = xrealloc(sc->base_idx, sc->cap * sizeof(*sc->base_idx));
                    }
                    size_t e, len = 0, j = next;
                    pace(sc->n);
                    if (bs) {
                        len = same_route_at(s, n, i, bsrc, bs, j);
                        if (len == 0 && (len = same_route_at(s, n, i, bsrc, bs, j + 1)) != 0)
                            j++;        /* base route j was deleted */
                        else if (len == 0 && j > 0 &&
                                 (len = same_route_at(s, n, i, bsrc, bs, j - 1)) != 0)
                            j--;        /* the element before was inserted */
                    }
                    if (len) {
                        e = i + len;
                        sc->el[sc->n] = (struct shape_span){ i, len, bs->el[j].hash, 0 };
                        sc->base_idx[sc->n++] = (uint32_t)j + 1;
                        next = j + 1;
                    } else {
                        e = js_value(s, n, i);
                        if (e >= n || e == i)
                            goto bad;
                        sc->el[sc->n] = (struct shape_span){ i, e - i, span_hash(s + i, e - i), 0 };
                        sc->base_idx[sc->n++] = 0;
                        next++;         /* most likely changed in place */
                    }
                    if (e >= n)
                        goto bad;
                    i = js_ws(s, n, e);
                    if (i < n && s[i] == ',') {
                        i = js_ws(s, n, i + 1);
                        continue;
                    }
                    if (i < n && s[i] == ']') {
                        i++;
                        break;
                    }
                    goto bad;
                }
            }
            sc->arr_end = i;
        } else {
            i = js_value(s, n, i);
            if (i >= n)
                goto bad;
        }
        i = js_ws(s, n, i);
        if (i < n && s[i] == ',') {
            i = js_ws(s, n, i + 1);
            continue;
        }
        if (i < n && s[i] == '}')
            break;
        goto bad;
    }
    if (found && js_ws(s, n, i + 1) == n)
        return true;
bad:
    free(sc->el);
    free(sc->base_idx);
    memset(sc, 0, sizeof(*sc));
    return false;
}

/* The shape of cfg, from sc; the routes' name hashes are computed unless
 * sc has them already (names_hashed). */
static struct cfg_shape *shape_store(struct sl_config *cfg, const struct shape_scan *sc, size_t len,
                                     bool names_hashed)
{
    struct cfg_shape *sh;

    if (sc->n != cfg->nroutes)
        return NULL;        /* cannot be for a valid document; stay safe */
    sh = xcalloc(1, sizeof(*sh));
    sh->doc_len = len;
    sh->arr_off = sc->arr_off;
    sh->arr_end = sc->arr_end;
    sh->n = sc->n;
    if (sc->n) {
        sh->el = xmalloc(sc->n * sizeof(*sh->el));
        memcpy(sh->el, sc->el, sc->n * sizeof(*sh->el));
        for (size_t i = 0; i < sc->n && !names_hashed; i++)
            sh->el[i].name_hash = cfg->routes[i]->name ? name_hash(cfg->routes[i]->name) : 0;
    }
    return sh;
}

static struct cfg_shape *shape_keep(struct sl_config *cfg, const char *json, size_t len)
{
    struct shape_scan sc;
    struct cfg_shape *sh = NULL;

    if (shape_scan(json, len, &sc, NULL, NULL))
        sh = shape_store(cfg, &sc, len, false);
    free(sc.el);
    free(sc.base_idx);
    return sh;
}

static char *dup_or_null(struct pctx *pc, const char *s)
{
    return s ? c_strdup(pc, s) : NULL;
}

static char *dupn_or_null(struct pctx *pc, const char *s, size_t n)
{
    return s ? c_strndup(pc, s, n) : NULL;
}

static char **dup_strv(struct pctx *pc, char *const *v, size_t n)
{
    if (v == NULL)
        return NULL;
    char **o = c_calloc(pc, n ? n : 1, sizeof(*o));
    for (size_t i = 0; i < n; i++)
        o[i] = dup_or_null(pc, v[i]);
    return o;
}

static struct cfg_kv *dup_kv(struct pctx *pc, const struct cfg_kv *v, size_t n)
{
    if (v == NULL)
        return NULL;
    struct cfg_kv *o = c_calloc(pc, n ? n : 1, sizeof(*o));
    for (size_t i = 0; i < n; i++) {
        o[i] = v[i];
        o[i].name = dupn_or_null(pc, v[i].name, v[i].name_len);
        o[i].value = dupn_or_null(pc, v[i].value, v[i].value_len);
    }
    return o;
}

static void dup_edits(struct pctx *pc, struct cfg_header_edits *d, const struct cfg_header_edits *s)
{
    *d = *s;
    d->set = dup_kv(pc, s->set, s->nset);
    d->add = dup_kv(pc, s->add, s->nadd);
    d->remove = dup_kv(pc, s->remove, s->nremove);
}

/* Every member of struct cfg_route is copied below: a new member must be
 * added there too, which this reminds whoever changes the struct. */
_Static_assert(sizeof(struct cfg_route) == 360 || sizeof(void *) != 8,
               "struct cfg_route changed: update copy_route()");

/* A deep copy of base's route s as route i of the config being built. */
static void copy_route(struct pctx *pc, struct cfg_route *d, const struct cfg_route *s, size_t i)
{
    *d = *s;
    d->index = i;
    d->name = dup_or_null(pc, s->name);
    d->listeners = dup_strv(pc, s->listeners, s->nlisteners);
    if (s->listener_idx) {
        d->listener_idx = c_calloc(pc, s->nlisteners ? s->nlisteners : 1, sizeof(*d->listener_idx));
        memcpy(d->listener_idx, s->listener_idx, s->nlisteners * sizeof(*d->listener_idx));
    }
    d->hosts = dup_strv(pc, s->hosts, s->nhosts);
    d->path = dupn_or_null(pc, s->path, s->path_len);
    d->methods = dup_strv(pc, s->methods, s->nmethods);
    d->match_headers = dup_kv(pc, s->match_headers, s->nmatch_headers);
    d->match_query = dup_kv(pc, s->match_query, s->nmatch_query);
    d->rewrite_path = dupn_or_null(pc, s->rewrite_path, s->rewrite_path_len);
    d->rewrite_host = dup_or_null(pc, s->rewrite_host);
    dup_edits(pc, &d->req_headers, &s->req_headers);
    dup_edits(pc, &d->resp_headers, &s->resp_headers);
    if (s->backends) {
        d->backends = c_calloc(pc, s->nbackends ? s->nbackends : 1, sizeof(*d->backends));
        for (size_t k = 0; k < s->nbackends; k++) {
            d->backends[k] = s->backends[k];
            d->backends[k].upstream = dup_or_null(pc, s->backends[k].upstream);
        }
    }
    d->redirect.scheme = dup_or_null(pc, s->redirect.scheme);
    d->redirect.host = dup_or_null(pc, s->redirect.host);
    d->redirect.path = dup_or_null(pc, s->redirect.path);
    d->redirect.replace_prefix = dup_or_null(pc, s->redirect.replace_prefix);
    d->respond.body = dupn_or_null(pc, s->respond.body, s->respond.body_len);
    d->respond.content_type = dup_or_null(pc, s->respond.content_type);
}

/* Whether the new route at span e has the text of base's route j. */
static bool same_text(const char *json, const struct shape_span *e,
                      const struct sl_config *base, size_t j)
{
    const struct shape_span *b = &base->shape->el[j];
    return b->hash == e->hash && b->len == e->len &&
           memcmp(base->source + b->off, json + e->off, e->len) == 0;
}

/* The base route whose text is e's, or NOT_FOUND_IDX.  A route usually
 * sits where it sat, so that position is tried first; the hash table of
 * base's routes (by text hash) is built on the first route that moved. */
static size_t find_base_route(const char *json, const struct shape_span *e, size_t i,
                              const struct sl_config *base, size_t **slot, size_t *cap)
{
    const struct cfg_shape *bs = base->shape;

    if (i < bs->n && same_text(json, e, base, i))
        return i;
    if (*slot == NULL) {
        *cap = 16;
        while (*cap < bs->n * 2)
            *cap *= 2;
        *slot = xcalloc(*cap, sizeof(**slot));     /* base route index + 1 */
        for (size_t j = 0; j < bs->n; j++) {
            size_t h = bs->el[j].hash & (*cap - 1);
            while ((*slot)[h])
                h = (h + 1) & (*cap - 1);
            (*slot)[h] = j + 1;
        }
    }
    for (size_t h = e->hash & (*cap - 1); (*slot)[h]; h = (h + 1) & (*cap - 1))
        if (same_text(json, e, base, (*slot)[h] - 1))
            return (*slot)[h] - 1;
    return NOT_FOUND_IDX;
}

/* Which of base's stores cfg's copies will share: slot_of[k] is the slot
 * in cfg->share->foreign (1-based) for base's store k (0 its own, k
 * foreign[k - 1]), or 0 where the routes are deep-copied instead; the
 * stores holding the most copies are shared.  Needs cfg->copied_from. */
static void share_plan(struct sl_config *cfg, const struct sl_config *base,
                       uint8_t slot_of[CFG_MAX_FOREIGN + 1])
{
    const struct cfg_share *bsh = base->share;
    size_t cnt[CFG_MAX_FOREIGN + 1] = { 0 };

    memset(slot_of, 0, CFG_MAX_FOREIGN + 1);
    cfg->share = xcalloc(1, sizeof(*cfg->share));
    cfg->share->route_store = xcalloc(cfg->nroutes ? cfg->nroutes : 1, 1);
    cfg->share->struct_store = xcalloc(cfg->nroutes ? cfg->nroutes : 1, 1);
    if (bsh == NULL || bsh->own == NULL)
        return;                 /* a base not sealed: copy everything */
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->copied_from[i]) {
            size_t j = cfg->copied_from[i] - 1;
            uint8_t k = bsh->route_store ? bsh->route_store[j] : 0;
            uint8_t ks = bsh->struct_store ? bsh->struct_store[j] : 0;
            cnt[k]++;
            if (ks != k)
                cnt[ks]++;
        }
    while (cfg->share->nforeign < CFG_MAX_FOREIGN) {
        size_t best = 0, most = 0;
        for (size_t k = 0; k <= CFG_MAX_FOREIGN; k++)
            if (!slot_of[k] && cnt[k] > most) {
                most = cnt[k];
                best = k;
            }
        if (most == 0)
            break;
        struct cfg_store *st = best == 0 ? bsh->own : bsh->foreign[best - 1];
        atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
        cfg->share->foreign[cfg->share->nforeign++] = st;
        slot_of[best] = (uint8_t)cfg->share->nforeign;
    }
}

/* parse_routes() for parse_reusing(): the document's routes are the
 * elements sc found in json, each copied from base or parsed alone.
 * Three passes, each over memory in order: find each route's base route,
 * parse the routes that have none, copy the others. */
static void parse_routes_reusing(struct pctx *pc, const char *json, struct shape_scan *sc,
                                 const struct sl_config *base)
{
    struct sl_config *cfg = pc->cfg;
    const struct jp *rp = JP_K(NULL, "routes");
    size_t cap = 0, *slot = NULL;

    cfg->nroutes = sc->n;
    cfg->routes = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*cfg->routes));
    cfg->copied_from = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*cfg->copied_from));
    cfg->base_id = base->id;
    for (size_t i = 0; i < sc->n; i++) {
        if (sc->base_idx[i]) {          /* found while scanning */
            cfg->copied_from[i] = sc->base_idx[i];
            continue;
        }
        size_t j = find_base_route(json, &sc->el[i], i, base, &slot, &cap);
        if (j != NOT_FOUND_IDX)
            cfg->copied_from[i] = (uint32_t)j + 1;
    }
    free(slot);

    for (size_t i = 0; i < sc->n; i++) {
        const struct shape_span *e = &sc->el[i];
        if (cfg->copied_from[i])
            continue;
        pace(i);
        const char *end = NULL;
        cJSON *it = cJSON_ParseWithLengthOpts(json + e->off, e->len, &end, false);
        if (it == NULL || end != json + e->off + e->len) {
            ERR(pc, "", "invalid JSON");       /* the full parse says where */
            return;
        }
        cfg->routes[i] = c_calloc(pc, 1, sizeof(*cfg->routes[i]));
        parse_route(pc, it, JP_I(rp, i), i);
        sc->el[i].name_hash = cfg->routes[i]->name ? name_hash(cfg->routes[i]->name) : 0;
    }

    /* Names: base's are unique, so two copies clash only when they copy
     * the same base route (used[]), and a copy clashes with a parsed route
     * when route_names (the parsed routes' names) holds its name.  A copy's
     * name is never added: indexing 10,000 of them cost more than parsing
     * the changed routes. */
    unsigned char *used = xcalloc(base->nroutes ? base->nroutes : 1, 1);
    uint8_t slot_of[CFG_MAX_FOREIGN + 1];
    share_plan(cfg, base, slot_of);
    for (size_t i = 0; i < sc->n; i++) {
        if (!cfg->copied_from[i])
            continue;
        size_t j = cfg->copied_from[i] - 1;
        const struct cfg_route *b = base->routes[j];
        const struct cfg_share *bsh = base->share;
        uint8_t k = bsh && bsh->route_store ? bsh->route_store[j] : 0;
        uint8_t ks = bsh && bsh->struct_store ? bsh->struct_store[j] : 0;
        struct cfg_route *r;
        /* base->routes[j]->index == j: the struct is not read here */
        if (bsh && bsh->own && slot_of[k] && slot_of[ks] && j == i) {
            r = cfg->routes[i] = base->routes[j];   /* the same struct, read-only */
            cfg->share->struct_store[i] = slot_of[ks];
            cfg->share->route_store[i] = slot_of[k];
        } else if (bsh && bsh->own && slot_of[k]) {
            /* moved: a struct of its own, what it points to stays where it is */
            r = cfg->routes[i] = cm_alloc(&cfg->mem, sizeof(*r), _Alignof(struct cfg_route), false);
            *r = *b;
            r->index = i;
            cfg->share->route_store[i] = slot_of[k];
        } else {
            r = cfg->routes[i] = cm_alloc(&cfg->mem, sizeof(*r), _Alignof(struct cfg_route), false);
            copy_route(pc, r, b, i);
        }
        cfg->routes_reused++;
        /* nor here, unless a parsed route's name has the same hash: a
         * shared struct is a cold cache line, 8,570 of them per reload */
        uint64_t nh = base->shape->el[j].name_hash;
        sc->el[i].name_hash = nh;
        if (nh != 0 && (used[j] || (nidx_may_have(&pc->route_names, nh) &&
                                    nidx_find_h(&pc->route_names, b->name, nh) != NOT_FOUND_IDX))) {
            ERR(pc, "", "duplicate route name");
            break;
        }
        used[j] = 1;
    }
    free(used);
}

/* ---- public entry points */

static _Atomic uint64_t config_ids;

static struct sl_config *config_new(void)
{
    struct sl_config *cfg = xcalloc(1, sizeof(*cfg));

    cfg->id = atomic_fetch_add(&config_ids, 1) + 1;
    cfg->workers = 0;
    cfg->max_header_bytes = 16384;
    cfg->max_body_bytes = 0;
    cfg->max_connections = 0;
    cfg->client_header_ms = 10000;
    cfg->client_idle_ms = 60000;
    cfg->drain_ms = 10000;
    cfg->splice = true;
    cfg->splice_min_bytes = 65536;
    cfg->access_log = cm_strdup(&cfg->mem, "stdout");
    return cfg;
}

/* cJSON reports where it stopped; turn that into something an editor finds. */
static void json_syntax_error(struct cfg_errors *errs, const char *json, size_t len,
                              const char *at, const char *what)
{
    size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
    size_t line = 1, col = 1;

    for (size_t i = 0; i < off; i++) {
        if (json[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    cfg_errors_add(errs, "", "%s at line %zu, column %zu (byte offset %zu)",
                   what, line, col, off);
}

/*
 * The parse tree of a document lives only while cfg_parse() reads it, and a
 * 10,000-route document is some 300,000 cJSON allocations.  So the tree is
 * allocated from a per-thread arena and dropped whole: no per-node malloc
 * or free.  cJSON's hooks are process-wide, so they fall through to malloc
 * on threads (and at times) with no arena.
 */
#define ARENA_CHUNK (1u << 20)

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

static __thread struct arena_chunk *parse_arena;
static __thread bool parse_arena_on;

static void *arena_malloc(size_t n)
{
    if (!parse_arena_on)
        return malloc(n);
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct arena_chunk *c = parse_arena;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = parse_arena;
        parse_arena = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

static bool arena_owns(const void *p)
{
    for (const struct arena_chunk *c = parse_arena; c; c = c->next)
        if ((const char *)p >= (const char *)c->data && (const char *)p < (const char *)c->data + c->cap)
            return true;
    return false;
}

static void arena_free(void *p)
{
    if (p == NULL || (parse_arena_on && arena_owns(p)))
        return;     /* released with the arena */
    free(p);
}

static void arena_release(void)
{
    parse_arena_on = false;
    while (parse_arena) {
        struct arena_chunk *n = parse_arena->next;
        free(parse_arena);
        parse_arena = n;
    }
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void hooks_init(void)
{
    cJSON_Hooks h = { arena_malloc, arena_free };
    cJSON_InitHooks(&h);
}

/* The document's top-level keys (cfg_parse and parse_reusing). */
static const char *const doc_keys[] = {
    "workers", "listeners", "limits", "timeouts", "access_log", "access_log_format",
    "admin", "splice", "upstreams", "routes", NULL };

struct sl_config *cfg_parse(const char *json, size_t len, struct cfg_errors *errs)
{
    static const char *const unsupported[] = { NULL };
    const char *end = NULL;
    size_t nerr0 = errs->n;
    struct pctx pc;
    cJSON *root;

    pthread_once(&hooks_once, hooks_init);
    parse_arena_on = true;
    root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (root == NULL) {
        arena_release();
        json_syntax_error(errs, json, len, end, "invalid JSON");
        return NULL;
    }
    /* cJSON stops after the first value; anything but blanks after it is a
     * mistake (two documents pasted together, a stray brace). */
    while (end && end < json + len && strchr(" \t\r\n", *end) && *end)
        end++;
    if (end && end < json + len) {
        json_syntax_error(errs, json, len, end, "invalid JSON: unexpected text after the document");
        arena_release();
        return NULL;
    }

    memset(&pc, 0, sizeof(pc));
    pc.errs = errs;
    pc.cfg = config_new();
    pc.cfg->source = xmalloc(len + 1);
    memcpy(pc.cfg->source, json, len);
    pc.cfg->source[len] = '\0';
    if (check_object(&pc, root, NULL, doc_keys, unsupported, NULL)) {
        parse_globals(&pc, root);
        parse_listeners(&pc, root);
        parse_upstreams(&pc, root);
        parse_routes(&pc, root);
    }
    arena_release();    /* the whole parse tree at once */
    nidx_free(&pc.route_names);
    nidx_free(&pc.up_names);
    if (errs->n > nerr0) {
        cfg_free(pc.cfg);
        return NULL;
    }
    pc.cfg->shape = shape_keep(pc.cfg, json, len);
    share_seal(pc.cfg);
    return pc.cfg;
}

/* Drops the errors added since there were n (a failed attempt to reuse). */
static void errors_truncate(struct cfg_errors *errs, size_t n)
{
    while (errs->n > n) {
        errs->n--;
        free(errs->v[errs->n].path);
        free(errs->v[errs->n].message);
    }
}

/* cfg_parse_update() when base's shape is known; NULL (and errs as they
 * were) when the routes cannot be reused, or on any error at all. */
static struct sl_config *parse_reusing(const char *json, size_t len, struct cfg_errors *errs,
                                       const struct sl_config *base)
{
    const struct cfg_shape *bs = base->shape;
    const char *bsrc = base->source;
    size_t nerr0 = errs->n, pre, post;
    struct shape_scan sc;
    struct sl_config *cfg = NULL;
    char *skel = NULL;
    const char *end = NULL;
    struct pctx pc;
    cJSON *root;

    if (!shape_scan(json, len, &sc, bsrc, bs))
        return NULL;
    /* everything but the routes array must be what base was parsed from */
    pre = sc.arr_off;
    post = len - sc.arr_end;
    if (pre != bs->arr_off || post != bs->doc_len - bs->arr_end ||
        memcmp(json, bsrc, pre) != 0 || memcmp(json + sc.arr_end, bsrc + bs->arr_end, post) != 0)
        goto out;

    /* the document without its routes: small, and parsed as ever */
    skel = xmalloc(pre + 2 + post);
    memcpy(skel, json, pre);
    memcpy(skel + pre, "[]", 2);
    memcpy(skel + pre + 2, json + sc.arr_end, post);
    pthread_once(&hooks_once, hooks_init);
    parse_arena_on = true;
    root = cJSON_ParseWithLengthOpts(skel, pre + 2 + post, &end, false);
    if (root == NULL) {
        arena_release();
        goto out;
    }
    memset(&pc, 0, sizeof(pc));
    pc.errs = errs;
    pc.cfg = cfg = config_new();
    cfg->source = xmalloc(len + 1);
    memcpy(cfg->source, json, len);
    cfg->source[len] = '\0';
    if (check_object(&pc, root, NULL, doc_keys, NULL, NULL)) {
        parse_globals(&pc, root);
        parse_listeners(&pc, root);
        parse_upstreams(&pc, root);
        parse_routes_reusing(&pc, json, &sc, base);
    }
    arena_release();
    nidx_free(&pc.route_names);
    nidx_free(&pc.up_names);
    if (errs->n > nerr0) {
        errors_truncate(errs, nerr0);
        cfg_free(cfg);
        cfg = NULL;
        goto out;
    }
    cfg->shape = shape_store(cfg, &sc, len, true);
    share_seal(cfg);
out:
    free(skel);
    free(sc.el);
    free(sc.base_idx);
    return cfg;
}

struct sl_config *cfg_parse_update(const char *json, size_t len, struct cfg_errors *errs,
                                   const struct sl_config *base)
{
    if (base && base->shape && base->source) {
        struct sl_config *cfg = parse_reusing(json, len, errs, base);
        if (cfg)
            return cfg;
    }
    return cfg_parse(json, len, errs);
}

struct sl_config *cfg_quick(const char *listen, const char *const *backends,
                            size_t nbackends, int workers, const char *admin,
                            const char *tls_cert, const char *tls_key,
                            struct cfg_errors *errs)
{
    size_t nerr0 = errs->n;
    struct cfg_addr a;
    char err[160];
    cJSON *doc, *arr, *o, *targets;
    char *text;
    struct sl_config *cfg;

    /* Check the command-line values first so errors name the option, then
     * let cfg_parse build the config from an equivalent document: quick
     * mode cannot drift from the file format, and GET /config can show it. */
    if (listen == NULL || !listener_addr(listen, &a, err, sizeof(err), NULL))
        cfg_errors_add(errs, "--listen", "bad address \"%s\": %s",
                       listen ? listen : "", listen ? err : "missing");
    else
        cfg_addr_free(&a);
    if (nbackends == 0)
        cfg_errors_add(errs, "--backend", "at least one --backend is required");
    for (size_t i = 0; i < nbackends; i++) {
        if (backends[i] == NULL || !cfg_parse_addr(backends[i], &a, err, sizeof(err)))
            cfg_errors_add(errs, "--backend", "bad address \"%s\": %s",
                           backends[i] ? backends[i] : "", backends[i] ? err : "missing");
        else
            cfg_addr_free(&a);
    }
    if (workers < 0 || workers > 1024)
        cfg_errors_add(errs, "--workers", "must be an integer from 0 to 1024");
    if ((tls_cert != NULL) != (tls_key != NULL))
        cfg_errors_add(errs, tls_cert ? "--tls-key" : "--tls-cert",
                       "--tls-cert and --tls-key go together");
    if (admin && !listener_addr(admin, &a, err, sizeof(err), NULL))
        cfg_errors_add(errs, "--admin", "bad address \"%s\": %s", admin, err);
    else if (admin)
        cfg_addr_free(&a);
    if (errs->n > nerr0)
        return NULL;

    doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "workers", workers);
    if (admin) {
        o = cJSON_AddObjectToObject(doc, "admin");
        cJSON_AddStringToObject(o, "address", admin);
    }
    arr = cJSON_AddArrayToObject(doc, "listeners");
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "quick");
    cJSON_AddStringToObject(o, "address", listen);
    if (tls_cert && tls_key) {
        cJSON *tls = cJSON_AddObjectToObject(o, "tls");
        cJSON *certs = cJSON_AddArrayToObject(tls, "certificates");
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "cert_file", tls_cert);
        cJSON_AddStringToObject(c, "key_file", tls_key);
        cJSON_AddItemToArray(certs, c);
    }
    cJSON_AddItemToArray(arr, o);
    arr = cJSON_AddArrayToObject(doc, "upstreams");
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "quick");
    targets = cJSON_AddArrayToObject(o, "targets");
    for (size_t i = 0; i < nbackends; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "address", backends[i]);
        cJSON_AddItemToArray(targets, t);
    }
    cJSON_AddItemToArray(arr, o);
    arr = cJSON_AddArrayToObject(doc, "routes");
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "upstream", "quick");
    cJSON_AddItemToArray(arr, o);
    text = cJSON_Print(doc);
    cJSON_Delete(doc);
    if (text == NULL) {
        fputs("sluice: out of memory\n", stderr);
        abort();
    }
    cfg = cfg_parse(text, strlen(text), errs);
    cJSON_free(text);
    return cfg;
}

void cfg_free(struct sl_config *cfg)
{
    if (cfg == NULL)
        return;
    struct cfg_share *sh = cfg->share;
    if (sh != NULL) {
        for (size_t k = 0; k < sh->nforeign; k++)
            store_unref(sh->foreign[k]);
        store_unref(sh->own);   /* the arena, unless a later config shares it */
        free(sh->route_store);
        free(sh->struct_store);
        free(sh);
    }
    cm_free_all(cfg->mem);      /* the arena of a config not sealed (see cfg_mem) */
    free(cfg->routes);
    free(cfg->copied_from);
    free(cfg->source);
    if (cfg->shape != NULL)
        free(cfg->shape->el);
    free(cfg->shape);
    free(cfg);
}
