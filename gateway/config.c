/*
 * config.c - parse and validate the configuration document (config.h).
 *
 * The parser fills a struct sl_config directly while walking the cJSON tree
 * and records every problem it meets instead of stopping at the first, so a
 * user fixing a config sees all of its mistakes in one `sluice --check`.
 * A partly filled config is freed when any error was recorded.  This file
 * parses the document's own sections and hands "upstreams" and "routes" to
 * their modules (upstream_config.h, route_config.h).
 */
#include "config.h"
#include "../core/arena.h"
#include "../core/cfgparse.h"
#include "../core/jscan.h"
#include "../core/nidx.h"
#include "../policy/limit.h"
#include "../policy/policy.h"
#include "../policy/rate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

/* Largest integer a double (cJSON's only number type) holds exactly. */
#define MAX_EXACT_INT 9007199254740991ULL

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

/* What parsing a document keeps besides the config it fills. */
struct pctx {
    struct cfg_ctx cx;              /* errors, and the arena: &cfg->mem */
    struct sl_config *cfg;
    struct nidx listener_names, up_names, route_names;
    struct rt_conf_ctx rc;          /* what the routes are parsed against */
};

#define ERR(pc, path, ...) cfg_errors_add((pc)->cx.errs, (path), __VA_ARGS__)

static void pctx_init(struct pctx *pc, struct cfg_errors *errs, struct sl_config *cfg)
{
    memset(pc, 0, sizeof(*pc));
    pc->cfg = cfg;
    pc->cx.errs = errs;
    pc->cx.mem = &cfg->mem;
    pc->rc.cx = &pc->cx;
    pc->rc.listeners = &pc->listener_names;
    pc->rc.upstreams = &pc->up_names;
    pc->rc.route_names = &pc->route_names;
}

static void pctx_done(struct pctx *pc)
{
    nidx_free(&pc->listener_names);
    nidx_free(&pc->up_names);
    nidx_free(&pc->route_names);
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

    if (!cfg_check_object(&pc->cx, v, path, keys, NULL, f))
        return;
    if (cfg_get_str(&pc->cx, f[K_TOKEN], path, "token", false, &token) == CFG_OK) {
        if (token[0] == '\0')
            ERR(pc, "/admin/token", "must not be empty");
        else
            cfg->admin_token = cfg_strdup(&pc->cx, token);
    }
    if (cfg_get_str(&pc->cx, f[K_ADDRESS], path, "address", true, &addr) != CFG_OK)
        return;
    if (!cfg_parse_listen_addr(addr, &cfg->admin_addr, err, sizeof(err), &cfg->mem)) {
        ERR(pc, "/admin/address", "%s", err);
        return;
    }
    cfg->has_admin = true;
    if (cfg->admin_token == NULL && token == NULL && !is_loopback(&cfg->admin_addr))
        ERR(pc, "/admin/address",
            "a non-loopback admin address needs admin.token (anyone could change the config)");
}

static void parse_limits(struct pctx *pc, const cJSON *root)
{
    struct sl_config *cfg = pc->cfg;
    struct cfg_ctx *cx = &pc->cx;
    const cJSON *v, *f[5];
    static const char *const limit_keys[] = {
        "max_header_bytes", "max_body_bytes", "max_connections", "max_json_match_bytes",
        "max_rate_limit_keys", NULL };
    static const char *const timeout_keys[] = {
        "client_header_ms", "client_idle_ms", "drain_ms", NULL };
    const struct jp *lp = JP_K(NULL, "limits"), *tp = JP_K(NULL, "timeouts");

    if ((v = cfg_member(root, "limits")) != NULL &&
        cfg_check_object(cx, v, lp, limit_keys, NULL, f)) {
        cfg_get_u32(cx, f[0], lp, "max_header_bytes", 1024, 65536, &cfg->max_header_bytes);
        cfg_get_uint(cx, f[1], lp, "max_body_bytes", 0, MAX_EXACT_INT, &cfg->max_body_bytes);
        cfg_get_u32(cx, f[2], lp, "max_connections", 0, UINT32_MAX, &cfg->max_connections);
        /* with the head it fits the large buffer the body is read into */
        cfg_get_u32(cx, f[3], lp, "max_json_match_bytes", 1, 131072, &cfg->max_json_match_bytes);
        cfg_get_u32(cx, f[4], lp, "max_rate_limit_keys", 8, 10000000, &cfg->max_rate_limit_keys);
    }
    if ((v = cfg_member(root, "timeouts")) != NULL &&
        cfg_check_object(cx, v, tp, timeout_keys, NULL, f)) {
        cfg_get_u32(cx, f[0], tp, "client_header_ms", 1, UINT32_MAX, &cfg->client_header_ms);
        cfg_get_u32(cx, f[1], tp, "client_idle_ms", 1, UINT32_MAX, &cfg->client_idle_ms);
        cfg_get_u32(cx, f[2], tp, "drain_ms", 1, UINT32_MAX, &cfg->drain_ms);
    }
}

/* "dns": the resolver's servers ("IP" or "IP:port", "[IPv6]:port"), kept
 * as the CSV list c-ares takes, and the build's lookup bound. */
static void parse_dns(struct pctx *pc, const cJSON *v)
{
    static const char *const keys[] = { "servers", "timeout_ms", NULL };
    const struct jp *path = JP_K(NULL, "dns");
    const cJSON *f[2];
    struct sl_config *cfg = pc->cfg;
    char csv[1024];
    size_t off = 0;

    if (!cfg_check_object(&pc->cx, v, path, keys, NULL, f))
        return;
    cfg_get_u32(&pc->cx, f[1], path, "timeout_ms", 1, 60000, &cfg->dns_timeout_ms);
    if (f[0] == NULL)
        return;
    if (!J_IS_ARRAY(f[0]) || cfg_nchildren(f[0]) == 0) {
        ERR(pc, "/dns/servers", "must be a non-empty array of \"IP\" or \"IP:port\" strings");
        return;
    }
    size_t i = 0;
    for (const cJSON *it = f[0]->child; it; it = it->next, i++) {
        char p[32], host[64];
        const char *s = J_IS_STRING(it) ? it->valuestring : NULL, *port = NULL;
        unsigned char buf[16];
        snprintf(p, sizeof(p), "/dns/servers/%zu", i);
        if (s == NULL || strlen(s) >= sizeof(host)) {
            ERR(pc, p, "must be a string \"IP\" or \"IP:port\"");
            continue;
        }
        snprintf(host, sizeof(host), "%s", s);
        bool v6 = false;
        if (host[0] == '[') {
            char *e = strchr(host, ']');
            if (e == NULL || (e[1] != '\0' && e[1] != ':')) {
                ERR(pc, p, "\"%s\": an IPv6 address with a port is \"[IP]:port\"", s);
                continue;
            }
            *e = '\0';
            port = e[1] == ':' ? e + 2 : NULL;
            memmove(host, host + 1, strlen(host));
            v6 = true;
        } else if (strchr(host, ':') && strchr(host, ':') == strrchr(host, ':')) {
            char *c = strchr(host, ':');
            *c = '\0';
            port = c + 1;
        } else if (strchr(host, ':')) {
            v6 = true;
        }
        if (inet_pton(v6 ? AF_INET6 : AF_INET, host, buf) != 1) {
            ERR(pc, p, "\"%s\" is not an IP address (a resolver is given by address)", s);
            continue;
        }
        if (port) {
            char *end;
            unsigned long n = strtoul(port, &end, 10);
            if (!port[0] || *end || n < 1 || n > 65535) {
                ERR(pc, p, "\"%s\": the port must be 1..65535", s);
                continue;
            }
        }
        if (off < sizeof(csv))
            off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%s%s", off ? "," : "", s);
    }
    if (off >= sizeof(csv))
        ERR(pc, "/dns/servers", "too long (at most %zu characters in all)", sizeof(csv) - 1);
    else if (off)
        cfg->dns_servers = cfg_strdup(&pc->cx, csv);
}

static void parse_globals(struct pctx *pc, const cJSON *root)
{
    static const char *const splice_keys[] = { "enabled", "min_bytes", NULL };
    const struct jp *sp = JP_K(NULL, "splice");
    struct sl_config *cfg = pc->cfg;
    const cJSON *v, *f[2];

    cfg_get_int(&pc->cx, cfg_member(root, "workers"), NULL, "workers", 0, 1024, &cfg->workers);
    parse_limits(pc, root);
    if ((v = cfg_member(root, "access_log_format")) != NULL) {
        if (!J_IS_STRING(v) || (strcmp(v->valuestring, "text") && strcmp(v->valuestring, "json")))
            ERR(pc, "/access_log_format", "must be \"text\" or \"json\"");
        else
            cfg->access_log_json = strcmp(v->valuestring, "json") == 0;
    }
    if ((v = cfg_member(root, "admin")) != NULL)
        parse_admin(pc, v);
    if ((v = cfg_member(root, "dns")) != NULL)
        parse_dns(pc, v);
    if ((v = cfg_member(root, "splice")) != NULL &&
        cfg_check_object(&pc->cx, v, sp, splice_keys, NULL, f)) {
        cfg_get_bool(&pc->cx, f[0], sp, "enabled", &cfg->splice);
        cfg_get_u32(&pc->cx, f[1], sp, "min_bytes", 0, UINT32_MAX, &cfg->splice_min_bytes);
    }
    if ((v = cfg_member(root, "access_log")) != NULL) {
        cfg->access_log = NULL;
        if (J_IS_NULL(v))
            ;
        else if (!J_IS_STRING(v))
            ERR(pc, "/access_log", "must be a string or null");
        else if (v->valuestring[0] == '\0')
            ERR(pc, "/access_log", "must not be empty (use null for no access log)");
        else
            cfg->access_log = cfg_strdup(&pc->cx, v->valuestring);
    }
}

/* ---- listeners */

/* listeners[].tls.certificates[i]: files or inline PEM, a pair of either. */
static void cert_elem(struct cfg_ctx *cx, const cJSON *c, const struct jp *cp, size_t i,
                      void *elem, void *arg)
{
    static const char *const cert_keys[] = { "cert_file", "key_file", "cert_pem", "key_pem", NULL };
    struct cfg_cert *ce = elem;
    const cJSON *f[4];
    const char *cf = NULL, *kf = NULL, *cpem = NULL, *kpem = NULL;

    if (!cfg_check_object(cx, c, cp, cert_keys, NULL, f))
        return;
    cfg_get_name(cx, f[0], cp, "cert_file", false, &cf);
    cfg_get_name(cx, f[1], cp, "key_file", false, &kf);
    cfg_get_name(cx, f[2], cp, "cert_pem", false, &cpem);
    cfg_get_name(cx, f[3], cp, "key_pem", false, &kpem);
    if ((cf || kf) && (cpem || kpem)) {
        cfg_errp(cx, cp, "give cert_file and key_file, or cert_pem and key_pem, not both");
        return;
    }
    if (!(cf || kf || cpem || kpem)) {
        cfg_errp(cx, cp, "needs cert_file and key_file, or cert_pem and key_pem");
        return;
    }
    if ((cf || kf) && !(cf && kf)) {
        cfg_errp(cx, JP_K(cp, cf ? "key_file" : "cert_file"), "is required");
        return;
    }
    if ((cpem || kpem) && !(cpem && kpem)) {
        cfg_errp(cx, JP_K(cp, cpem ? "key_pem" : "cert_pem"), "is required");
        return;
    }
    ce->cert_file = cf ? cfg_strdup(cx, cf) : NULL;
    ce->key_file = kf ? cfg_strdup(cx, kf) : NULL;
    ce->cert_pem = cpem ? cfg_strdup(cx, cpem) : NULL;
    ce->key_pem = kpem ? cfg_strdup(cx, kpem) : NULL;
}

/* listeners[].tls: the certificates are only checked for shape here; the
 * TLS layer loads them (tls.c) and reports with the same paths. */
static struct cfg_listener_tls *parse_listener_tls(struct cfg_ctx *cx, const cJSON *v,
                                                   const struct jp *path)
{
    static const char *const keys[] = {
        "certificates", "ktls", "min_version", "handshake_timeout_ms", "session_tickets", NULL };
    enum { K_CERTS, K_KTLS, K_MINV, K_HS, K_TICKETS };
    static const struct cfg_list certs = {
        .key = "certificates", .required = true,
        .if_empty = "must contain at least one certificate",
        .elem_size = sizeof(struct cfg_cert), .each = cert_elem };
    const cJSON *f[5];
    const char *s;

    if (!cfg_check_object(cx, v, path, keys, NULL, f))
        return NULL;
    struct cfg_listener_tls *t = cfg_calloc(cx, 1, sizeof(*t));
    t->handshake_timeout_ms = 10000;
    t->session_tickets = true;
    cfg_get_bool(cx, f[K_KTLS], path, "ktls", &t->ktls);
    cfg_get_bool(cx, f[K_TICKETS], path, "session_tickets", &t->session_tickets);
    cfg_get_u32(cx, f[K_HS], path, "handshake_timeout_ms", 1, UINT32_MAX, &t->handshake_timeout_ms);
    if (cfg_get_str(cx, f[K_MINV], path, "min_version", false, &s) == CFG_OK) {
        if (strcmp(s, "1.2") == 0)
            t->min_version = CFG_TLS_1_2;
        else if (strcmp(s, "1.3") == 0)
            t->min_version = CFG_TLS_1_3;
        else
            cfg_errp(cx, JP_K(path, "min_version"), "must be \"1.2\" or \"1.3\"");
    }
    t->certs = cfg_list(cx, f[K_CERTS], path, &certs, &t->ncerts, NULL);
    return t;
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

static void listener_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                          void *elem, void *arg)
{
    static const char *const keys[] = { "name", "address", "tls", NULL };
    enum { K_NAME, K_ADDRESS, K_TLS };
    struct pctx *pc = arg;
    struct cfg_listener *l = elem, *all = l - i;
    const cJSON *f[3];
    char err[160];
    const char *s;

    if (!cfg_check_object(cx, it, path, keys, NULL, f))
        return;
    if (f[K_TLS])
        l->tls = parse_listener_tls(cx, f[K_TLS], JP_K(path, "tls"));
    if (cfg_get_name(cx, f[K_NAME], path, "name", false, &s) == CFG_OK) {
        l->name = cfg_strdup(cx, s);
        size_t j = nidx_add(&pc->listener_names, l->name, i);
        if (j != NOT_FOUND_IDX)
            cfg_errp(cx, JP_K(path, "name"),
                     "duplicate listener name \"%s\" (also /listeners/%zu)", s, j);
    }
    if (cfg_get_str(cx, f[K_ADDRESS], path, "address", true, &s) != CFG_OK)
        return;
    if (!cfg_parse_listen_addr(s, &l->addr, err, sizeof(err), cx->mem)) {
        cfg_errp(cx, JP_K(path, "address"), "bad address \"%s\": %s", s, err);
        return;
    }
    for (size_t j = 0; j < i; j++)
        if (all[j].addr.text && same_sockaddr(&all[j].addr, &l->addr)) {
            cfg_errp(cx, JP_K(path, "address"), "same address as /listeners/%zu", j);
            break;
        }
}

static void parse_listeners(struct pctx *pc, const cJSON *root)
{
    static const struct cfg_list spec = {
        .key = "listeners", .required = true, .if_empty = "must contain at least one listener",
        .elem_size = sizeof(struct cfg_listener), .each = listener_elem };
    struct sl_config *cfg = pc->cfg;

    cfg->listeners = cfg_list(&pc->cx, cfg_member(root, "listeners"), NULL, &spec,
                              &cfg->nlisteners, pc);
}

/* The document's top-level keys (cfg_parse and parse_reusing). */
static const char *const doc_keys[] = {
    "workers", "listeners", "limits", "timeouts", "access_log", "access_log_format",
    "admin", "splice", "upstreams", "routes", "dns", "rate_limit_store", NULL };

/* Every section of root but the routes. */
static bool parse_sections(struct pctx *pc, const cJSON *root)
{
    static const char *const unsupported[] = { NULL };

    if (!cfg_check_object(&pc->cx, root, NULL, doc_keys, unsupported, NULL))
        return false;
    parse_globals(pc, root);
    parse_listeners(pc, root);
    up_conf_parse_upstreams(&pc->cx, cfg_member(root, "upstreams"), NULL,
                            &pc->cfg->upstreams, &pc->cfg->nupstreams, &pc->up_names);
    return true;
}

/* rate_limit_store and the in-process table the routes' limits share
 * (policy/limit.h), once the routes are known. */
static void parse_policy_store(struct pctx *pc, const cJSON *root)
{
    struct sl_config *cfg = pc->cfg;
    bool need = false;

    for (size_t i = 0; i < cfg->nroutes && !need; i++) {
        const struct pol_route *p = cfg->routes[i] ? cfg->routes[i]->policy : NULL;
        need = p && (p->rate || p->budget);
    }
    cfg->pstore = pol_store_new(&pc->cx, cfg_member(root, "rate_limit_store"), JP_K(NULL, "rate_limit_store"),
                                cfg->max_rate_limit_keys, need);
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
    uint64_t name_hash;             /* nidx_hash(route name), 0 without a name */
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

/* Room in sc for one more element. */
static void scan_reserve(struct shape_scan *sc)
{
    if (sc->n < sc->cap)
        return;
    sc->cap = sc->cap ? sc->cap * 2 : 256;
    sc->el = xrealloc(sc->el, sc->cap * sizeof(*sc->el));
    sc->base_idx = xrealloc(sc->base_idx, sc->cap * sizeof(*sc->base_idx));
}

/* The element at s[i] into sc.  With a base, it is first compared with
 * base's route *next, the position it has if the routes before it were
 * changed in place (or the one after it: a route deleted; or the one
 * before: one inserted), and when equal it is neither scanned nor hashed.
 * Returns the index after it, or 0 when there is no value there. */
static size_t scan_route(const char *s, size_t n, size_t i, struct shape_scan *sc,
                         const char *bsrc, const struct cfg_shape *bs, size_t *next)
{
    size_t e, len = 0, j = *next;

    scan_reserve(sc);
    cfg_pace(sc->n);
    if (bs) {
        len = same_route_at(s, n, i, bsrc, bs, j);
        if (len == 0 && (len = same_route_at(s, n, i, bsrc, bs, j + 1)) != 0)
            j++;        /* base route j was deleted */
        else if (len == 0 && j > 0 && (len = same_route_at(s, n, i, bsrc, bs, j - 1)) != 0)
            j--;        /* the element before was inserted */
    }
    if (len) {
        sc->el[sc->n] = (struct shape_span){ i, len, bs->el[j].hash, 0 };
        sc->base_idx[sc->n++] = (uint32_t)j + 1;
        *next = j + 1;
        return i + len;
    }
    e = js_value(s, n, i);
    if (e >= n || e == i)
        return 0;
    sc->el[sc->n] = (struct shape_span){ i, e - i, js_hash(s + i, e - i), 0 };
    sc->base_idx[sc->n++] = 0;
    (*next)++;          /* most likely changed in place */
    return e;
}

/* The routes array at s[*pi] == '[' into sc; *pi gets the index after its
 * ']'.  False for anything but an array of values. */
static bool scan_routes(const char *s, size_t n, size_t *pi, struct shape_scan *sc,
                        const char *bsrc, const struct cfg_shape *bs)
{
    size_t i = *pi, next = 0;

    sc->arr_off = i;
    i = js_ws(s, n, i + 1);
    if (i < n && s[i] == ']') {
        sc->arr_end = *pi = i + 1;
        return true;
    }
    for (;;) {
        size_t e = scan_route(s, n, i, sc, bsrc, bs, &next);
        if (e == 0 || e >= n)
            return false;
        i = e;
        int sep = js_sep(s, n, &i, ']');
        if (sep < 0)
            return false;
        if (sep == 0)
            break;
    }
    sc->arr_end = *pi = i + 1;
    return true;
}

/* Finds the top-level "routes" array and each element's text.  False for
 * anything else: no such key (or a second one), or a structure that is
 * not a JSON object.  With a base (bsrc and bs, its source and shape),
 * elements equal to a base route are found by comparison (scan_route),
 * and base_idx[] names that route. */
static bool shape_scan(const char *s, size_t n, struct shape_scan *sc, const char *bsrc,
                       const struct cfg_shape *bs)
{
    size_t i = js_ws(s, n, 0);
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
            if (found || i >= n || s[i] != '[' || !scan_routes(s, n, &i, sc, bsrc, bs))
                goto bad;
            found = true;
        } else if ((i = js_value(s, n, i)) >= n) {
            goto bad;
        }
        int sep = js_sep(s, n, &i, '}');
        if (sep < 0)
            goto bad;
        if (sep == 0)
            break;
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
            sh->el[i].name_hash = cfg->routes[i]->name ? nidx_hash(cfg->routes[i]->name) : 0;
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

/* parse_routes_reusing(), first pass: which base route each route is a
 * copy of (cfg->copied_from), from the scan or by its text. */
static void reuse_find(struct sl_config *cfg, const char *json, const struct shape_scan *sc,
                       const struct sl_config *base)
{
    size_t cap = 0, *slot = NULL;

    cfg->nroutes = sc->n;
    cfg->routes = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*cfg->routes));
    cfg->copied_from = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*cfg->copied_from));
    cfg->base_id = base->id;
    for (size_t i = 0; i < sc->n; i++) {
        if (sc->base_idx[i]) {          /* found while scanning */
            cfg->copied_from[i] = sc->base_idx[i];
        } else {
            size_t j = find_base_route(json, &sc->el[i], i, base, &slot, &cap);
            if (j != NOT_FOUND_IDX)
                cfg->copied_from[i] = (uint32_t)j + 1;
        }
        /* a route with a policy is parsed again: its keys and users files
         * may have changed under the same text, and a reload reads them */
        if (cfg->copied_from[i] && base->routes[cfg->copied_from[i] - 1]->policy)
            cfg->copied_from[i] = 0;
    }
    free(slot);
}

/* Second pass: parse each route that is no copy on its own.  False when
 * one is not JSON (an error; the full parse says where). */
static bool reuse_parse(struct pctx *pc, const char *json, struct shape_scan *sc)
{
    struct sl_config *cfg = pc->cfg;
    const struct jp *rp = JP_K(NULL, "routes");

    for (size_t i = 0; i < sc->n; i++) {
        const struct shape_span *e = &sc->el[i];
        if (cfg->copied_from[i])
            continue;
        cfg_pace(i);
        const char *end = NULL;
        cJSON *it = cJSON_ParseWithLengthOpts(json + e->off, e->len, &end, false);
        if (it == NULL || end != json + e->off + e->len) {
            ERR(pc, "", "invalid JSON");
            return false;
        }
        cfg->routes[i] = cfg_calloc(&pc->cx, 1, sizeof(*cfg->routes[i]));
        rt_conf_parse_route(&pc->rc, it, JP_I(rp, i), i, cfg->routes[i]);
        sc->el[i].name_hash = cfg->routes[i]->name ? nidx_hash(cfg->routes[i]->name) : 0;
    }
    return true;
}

/* The struct of route i, a copy of base's route j: base's own struct when
 * it sits where it sat and its stores are shared, else a struct of its own
 * pointing into the shared store, else a deep copy. */
static struct cfg_route *reuse_struct(struct sl_config *cfg, const struct sl_config *base,
                                      size_t i, size_t j, const uint8_t *slot_of)
{
    const struct cfg_route *b = base->routes[j];
    const struct cfg_share *bsh = base->share;
    uint8_t k = bsh && bsh->route_store ? bsh->route_store[j] : 0;
    uint8_t ks = bsh && bsh->struct_store ? bsh->struct_store[j] : 0;
    struct cfg_route *r;

    /* base->routes[j]->index == j: the struct is not read here */
    if (bsh && bsh->own && slot_of[k] && slot_of[ks] && j == i) {
        cfg->share->struct_store[i] = slot_of[ks];
        cfg->share->route_store[i] = slot_of[k];
        return base->routes[j];         /* the same struct, read-only */
    }
    r = cm_alloc(&cfg->mem, sizeof(*r), _Alignof(struct cfg_route), false);
    if (bsh && bsh->own && slot_of[k]) {
        /* moved: a struct of its own, what it points to stays where it is */
        *r = *b;
        r->index = i;
        cfg->share->route_store[i] = slot_of[k];
    } else {
        rt_conf_copy_route(&cfg->mem, r, b, i);
    }
    return r;
}

/* Third pass: the copies.  Names: base's are unique, so two copies clash
 * only when they copy the same base route (used[]), and a copy clashes
 * with a parsed route when route_names (the parsed routes' names) holds
 * its name.  A copy's name is never added: indexing 10,000 of them cost
 * more than parsing the changed routes. */
static void reuse_copy(struct pctx *pc, struct shape_scan *sc, const struct sl_config *base)
{
    struct sl_config *cfg = pc->cfg;
    unsigned char *used = xcalloc(base->nroutes ? base->nroutes : 1, 1);
    uint8_t slot_of[CFG_MAX_FOREIGN + 1];

    share_plan(cfg, base, slot_of);
    for (size_t i = 0; i < sc->n; i++) {
        if (!cfg->copied_from[i])
            continue;
        size_t j = cfg->copied_from[i] - 1;
        cfg->routes[i] = reuse_struct(cfg, base, i, j, slot_of);
        cfg->routes_reused++;
        /* nor here, unless a parsed route's name has the same hash: a
         * shared struct is a cold cache line, 8,570 of them per reload */
        uint64_t nh = base->shape->el[j].name_hash;
        sc->el[i].name_hash = nh;
        if (nh != 0 && (used[j] || (nidx_may_have(&pc->route_names, nh) &&
                                    nidx_find_h(&pc->route_names, base->routes[j]->name, nh) !=
                                        NOT_FOUND_IDX))) {
            ERR(pc, "", "duplicate route name");
            break;
        }
        used[j] = 1;
    }
    free(used);
}

/* The routes of parse_reusing(): the elements sc found in json, each
 * copied from base or parsed alone.  Three passes, each over memory in
 * order: find each route's base route, parse the routes that have none,
 * copy the others. */
static void parse_routes_reusing(struct pctx *pc, const char *json, struct shape_scan *sc,
                                 const struct sl_config *base)
{
    reuse_find(pc->cfg, json, sc, base);
    if (reuse_parse(pc, json, sc))
        reuse_copy(pc, sc, base);
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
    cfg->max_json_match_bytes = 65536;
    cfg->max_rate_limit_keys = POL_KTAB_DEFAULT_KEYS;
    cfg->client_header_ms = 10000;
    cfg->client_idle_ms = 60000;
    cfg->drain_ms = 10000;
    cfg->dns_timeout_ms = 2000;
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

/* The parse tree of json[0..len) in the parse arena (the caller releases
 * it), or NULL with the syntax error added. */
static cJSON *parse_tree(const char *json, size_t len, struct cfg_errors *errs)
{
    const char *end = NULL;
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
    return root;
}

struct sl_config *cfg_parse(const char *json, size_t len, struct cfg_errors *errs)
{
    size_t nerr0 = errs->n;
    struct pctx pc;
    cJSON *root = parse_tree(json, len, errs);

    if (root == NULL)
        return NULL;
    pctx_init(&pc, errs, config_new());
    pc.cfg->source = xstrndup(json, len);
    if (parse_sections(&pc, root)) {
        rt_conf_parse_routes(&pc.rc, cfg_member(root, "routes"), NULL,
                             &pc.cfg->routes, &pc.cfg->nroutes);
        parse_policy_store(&pc, root);
    }
    arena_release();    /* the whole parse tree at once */
    pctx_done(&pc);
    if (errs->n > nerr0) {
        cfg_free(pc.cfg);
        return NULL;
    }
    pc.cfg->shape = shape_keep(pc.cfg, json, len);
    share_seal(pc.cfg);
    return pc.cfg;
}

/* json without its routes array (at [pre, len - post)), parsed as ever:
 * the parse tree in the parse arena (the caller releases it), or NULL. */
static cJSON *parse_skeleton(const char *json, size_t len, size_t pre, size_t post)
{
    char *skel = xmalloc(pre + 2 + post);
    const char *end = NULL;
    cJSON *root;

    memcpy(skel, json, pre);
    memcpy(skel + pre, "[]", 2);
    memcpy(skel + pre + 2, json + len - post, post);
    pthread_once(&hooks_once, hooks_init);
    parse_arena_on = true;
    root = cJSON_ParseWithLengthOpts(skel, pre + 2 + post, &end, false);
    if (root == NULL)
        arena_release();
    free(skel);
    return root;
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
    struct pctx pc;
    cJSON *root;

    if (!shape_scan(json, len, &sc, bsrc, bs))
        return NULL;
    /* everything but the routes array must be what base was parsed from */
    pre = sc.arr_off;
    post = len - sc.arr_end;
    if (pre != bs->arr_off || post != bs->doc_len - bs->arr_end ||
        memcmp(json, bsrc, pre) != 0 || memcmp(json + sc.arr_end, bsrc + bs->arr_end, post) != 0 ||
        (root = parse_skeleton(json, len, pre, post)) == NULL)
        goto out;
    pctx_init(&pc, errs, cfg = config_new());
    cfg->source = xstrndup(json, len);
    if (parse_sections(&pc, root)) {
        parse_routes_reusing(&pc, json, &sc, base);
        parse_policy_store(&pc, root);
    }
    arena_release();
    pctx_done(&pc);
    if (errs->n > nerr0) {
        cfg_errors_truncate(errs, nerr0);
        cfg_free(cfg);
        cfg = NULL;
        goto out;
    }
    cfg->shape = shape_store(cfg, &sc, len, true);
    share_seal(cfg);
out:
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

/* cfg_quick()'s values, each checked so that its error names the option. */
static void quick_check(const char *listen, const char *const *backends, size_t nbackends,
                        int workers, const char *admin, const char *tls_cert,
                        const char *tls_key, struct cfg_errors *errs)
{
    struct cfg_addr a;
    char err[160];

    if (listen == NULL || !cfg_parse_listen_addr(listen, &a, err, sizeof(err), NULL))
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
    if (admin && !cfg_parse_listen_addr(admin, &a, err, sizeof(err), NULL))
        cfg_errors_add(errs, "--admin", "bad address \"%s\": %s", admin, err);
    else if (admin)
        cfg_addr_free(&a);
}

/* The one listener of quick mode, named "quick". */
static void quick_listener(cJSON *doc, const char *listen, const char *tls_cert,
                           const char *tls_key)
{
    cJSON *arr = cJSON_AddArrayToObject(doc, "listeners");
    cJSON *o = cJSON_CreateObject();

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
}

/* The document quick mode stands for, as text (free with cJSON_free). */
static char *quick_doc(const char *listen, const char *const *backends, size_t nbackends,
                       int workers, const char *admin, const char *tls_cert, const char *tls_key)
{
    cJSON *doc = cJSON_CreateObject(), *arr, *o, *targets;
    char *text;

    cJSON_AddNumberToObject(doc, "workers", workers);
    if (admin) {
        o = cJSON_AddObjectToObject(doc, "admin");
        cJSON_AddStringToObject(o, "address", admin);
    }
    quick_listener(doc, listen, tls_cert, tls_key);
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
    if (text == NULL)
        x_oom();
    return text;
}

struct sl_config *cfg_quick(const char *listen, const char *const *backends,
                            size_t nbackends, int workers, const char *admin,
                            const char *tls_cert, const char *tls_key,
                            struct cfg_errors *errs)
{
    size_t nerr0 = errs->n;
    struct sl_config *cfg;
    char *text;

    /* Check the command-line values first so errors name the option, then
     * let cfg_parse build the config from an equivalent document: quick
     * mode cannot drift from the file format, and GET /config can show it. */
    quick_check(listen, backends, nbackends, workers, admin, tls_cert, tls_key, errs);
    if (errs->n > nerr0)
        return NULL;
    text = quick_doc(listen, backends, nbackends, workers, admin, tls_cert, tls_key);
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
    pol_store_free(cfg->pstore);
    free(cfg->routes);
    free(cfg->copied_from);
    free(cfg->source);
    if (cfg->shape != NULL)
        free(cfg->shape->el);
    free(cfg->shape);
    free(cfg);
}
