/*
 * upstream_config.c - parse and check the upstreams of a config
 * (upstream_config.h).
 */
#include "upstream_config.h"
#include "../pool/pool.h"
#include "../core/cfgparse.h"

#include <stdio.h>
#include <string.h>

static void target_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                        void *elem, void *arg)
{
    static const char *const keys[] = { "address", "weight", NULL };
    struct cfg_target *t = elem;
    const cJSON *f[2];
    char err[160];
    const char *s;

    t->weight = 1;
    if (!cfg_check_object(cx, it, path, keys, NULL, f))
        return;
    if (cfg_get_str(cx, f[0], path, "address", true, &s) == CFG_OK &&
        !cfg_parse_addr_in(s, &t->addr, err, sizeof(err), cx->mem))
        cfg_errp(cx, JP_K(path, "address"), "bad address \"%s\": %s", s, err);
    cfg_get_u32(cx, f[1], path, "weight", 1, 1000000, &t->weight);
}

/* A header or cookie name: an RFC 9110 token. */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

/* balance, and hash_on which goes with balance "hash" and only with it */
static void parse_balance(struct cfg_ctx *cx, const cJSON *v, const cJSON *hv,
                          const struct jp *path, struct cfg_upstream *u)
{
    static const char *const names[] = { "round_robin", "least_request", "random_two", "hash" };
    const struct jp *hp = JP_K(path, "hash_on");
    const char *s;
    bool bal_ok = true;

    if (cfg_get_str(cx, v, path, "balance", false, &s) == CFG_OK) {
        size_t i = 0;
        while (i < 4 && strcmp(s, names[i]) != 0)
            i++;
        if (i < 4)
            u->balance = (enum cfg_balance)i;
        else {
            bal_ok = false;
            cfg_errp(cx, JP_K(path, "balance"),
                     "must be one of round_robin, least_request, random_two, hash");
        }
    } else if (v != NULL) {
        bal_ok = false;
    }
    if (cfg_get_str(cx, hv, path, "hash_on", false, &s) == CFG_OK) {
        const char *name = NULL;
        if (strcmp(s, "client_ip") == 0) {
            u->hash_on = CFG_HASH_CLIENT_IP;
        } else if (strncmp(s, "header:", 7) == 0) {
            u->hash_on = CFG_HASH_HEADER;
            name = s + 7;
        } else if (strncmp(s, "cookie:", 7) == 0) {
            u->hash_on = CFG_HASH_COOKIE;
            name = s + 7;
        } else {
            cfg_errp(cx, hp, "must be client_ip, header:NAME or cookie:NAME");
            return;
        }
        if (name && !is_token(name)) {
            cfg_errp(cx, hp, "\"%s\": NAME must be a header or cookie name (a token)", s);
            u->hash_on = CFG_HASH_NONE;
            return;
        }
        if (name) {
            u->hash_name = cfg_strdup(cx, name);
            u->hash_name_len = (uint32_t)strlen(name);
        }
        if (bal_ok && u->balance != CFG_BAL_HASH)
            cfg_errp(cx, hp, "only goes with balance \"hash\"");
    } else if (hv == NULL && bal_ok && u->balance == CFG_BAL_HASH) {
        cfg_errp(cx, hp, "is required with balance \"hash\" (client_ip, header:NAME or cookie:NAME)");
    }
}

static void parse_upstream_tls(struct cfg_ctx *cx, const cJSON *v, const struct jp *p,
                               struct cfg_upstream *u)
{
    static const char *const tls_keys[] = { "sni", "verify", "ca_file", NULL };
    const cJSON *g[3];
    const char *s;

    if (!cfg_check_object(cx, v, p, tls_keys, NULL, g))
        return;
    u->tls = cfg_calloc(cx, 1, sizeof(*u->tls));
    u->tls->verify = true;
    cfg_get_bool(cx, g[1], p, "verify", &u->tls->verify);
    if (cfg_get_name(cx, g[0], p, "sni", false, &s) == CFG_OK)
        u->tls->sni = cfg_strdup(cx, s);
    if (cfg_get_name(cx, g[2], p, "ca_file", false, &s) == CFG_OK)
        u->tls->ca_file = cfg_strdup(cx, s);
}

/* pool and timeouts: plain numbers */
static void parse_upstream_limits(struct cfg_ctx *cx, const cJSON *pool, const cJSON *timeouts,
                                  const struct jp *path, struct cfg_upstream *u)
{
    static const char *const pool_keys[] = { "max_idle_per_target", "idle_timeout_ms",
                                             "max_connections", "max_queue", "queue_timeout_ms",
                                             NULL };
    static const char *const to_keys[] = {
        "connect_ms", "response_header_ms", "idle_ms", NULL };
    const struct jp *pp = JP_K(path, "pool"), *tp = JP_K(path, "timeouts");
    const cJSON *g[5];

    if (pool != NULL && cfg_check_object(cx, pool, pp, pool_keys, NULL, g)) {
        cfg_get_u32(cx, g[0], pp, "max_idle_per_target", 0, 1000000, &u->max_idle_per_target);
        cfg_get_u32(cx, g[1], pp, "idle_timeout_ms", 1, UINT32_MAX, &u->pool_idle_timeout_ms);
        cfg_get_u32(cx, g[2], pp, "max_connections", 0, 1000000, &u->max_connections);
        cfg_get_u32(cx, g[3], pp, "max_queue", 0, 1000000, &u->max_queue);
        cfg_get_u32(cx, g[4], pp, "queue_timeout_ms", 1, 3600000, &u->queue_timeout_ms);
    }
    if (timeouts != NULL && cfg_check_object(cx, timeouts, tp, to_keys, NULL, g)) {
        cfg_get_u32(cx, g[0], tp, "connect_ms", 1, UINT32_MAX, &u->connect_ms);
        cfg_get_u32(cx, g[1], tp, "response_header_ms", 1, UINT32_MAX, &u->response_header_ms);
        cfg_get_u32(cx, g[2], tp, "idle_ms", 1, UINT32_MAX, &u->idle_ms);
    }
}

/* health: the SPEC's fields, each checked; an active check of every target */
static void parse_health(struct cfg_ctx *cx, const cJSON *v, const struct jp *p,
                         struct hc_check *c)
{
    static const char *const keys[] = {
        "path", "interval_ms", "timeout_ms", "rise", "fall", "expect_status", NULL };
    enum { K_PATH, K_INTERVAL, K_TIMEOUT, K_RISE, K_FALL, K_EXPECT };
    const cJSON *g[6];
    const char *s;

    if (!cfg_check_object(cx, v, p, keys, NULL, g))
        return;
    c->on = true;
    if (cfg_get_name(cx, g[K_PATH], p, "path", false, &s) == CFG_OK) {
        if (s[0] != '/')
            cfg_errp(cx, JP_K(p, "path"), "must start with /");
        else if (strlen(s) >= sizeof(c->path))
            cfg_errp(cx, JP_K(p, "path"), "longer than %zu bytes", sizeof(c->path) - 1);
        else if (strpbrk(s, " \t\r\n") != NULL)
            cfg_errp(cx, JP_K(p, "path"), "must not contain spaces or control characters");
        else
            snprintf(c->path, sizeof(c->path), "%s", s);
    }
    cfg_get_u32(cx, g[K_INTERVAL], p, "interval_ms", 10, 86400000, &c->interval_ms);
    cfg_get_u32(cx, g[K_TIMEOUT], p, "timeout_ms", 1, 3600000, &c->timeout_ms);
    cfg_get_u32(cx, g[K_RISE], p, "rise", 1, 1000, &c->rise);
    cfg_get_u32(cx, g[K_FALL], p, "fall", 1, 1000, &c->fall);
    const cJSON *e = g[K_EXPECT];
    if (e != NULL) {
        const struct jp *ep = JP_K(p, "expect_status");
        uint32_t st[2] = { 0, 0 };
        const cJSON *x = e->child;
        bool good = cJSON_IsArray(e) && cfg_nchildren(e) == 2;
        if (!good)
            cfg_errp(cx, ep, "must be an array [lowest, highest] of two statuses");
        for (int i = 0; good && i < 2; i++, x = x->next) {
            if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int)x->valuedouble ||
                x->valuedouble < 100 || x->valuedouble > 599) {
                cfg_errp(cx, JP_I(ep, (size_t)i), "must be an HTTP status from 100 to 599");
                good = false;
            } else {
                st[i] = (uint32_t)x->valuedouble;
            }
        }
        if (good && st[0] > st[1])
            cfg_errp(cx, ep, "the lowest status %u is above the highest %u", st[0], st[1]);
        else if (good) {
            c->status_lo = (uint16_t)st[0];
            c->status_hi = (uint16_t)st[1];
        }
    }
    if (c->timeout_ms > c->interval_ms)
        cfg_errp(cx, JP_K(p, "timeout_ms"), "must not be longer than interval_ms (%u)",
                 c->interval_ms);
}

/* outlier: passive health (README "Health") */
static void parse_outlier(struct cfg_ctx *cx, const cJSON *v, const struct jp *p,
                          struct hc_outlier *o)
{
    static const char *const keys[] = {
        "consecutive_failures", "consecutive_5xx", "base_ejection_ms", "max_ejection_ms",
        "max_ejection_percent", NULL };
    const cJSON *g[5];

    if (!cfg_check_object(cx, v, p, keys, NULL, g))
        return;
    cfg_get_u32(cx, g[0], p, "consecutive_failures", 0, 1000, &o->failures);
    cfg_get_u32(cx, g[1], p, "consecutive_5xx", 0, 1000, &o->consecutive_5xx);
    cfg_get_u32(cx, g[2], p, "base_ejection_ms", 1, 3600000, &o->base_ms);
    cfg_get_u32(cx, g[3], p, "max_ejection_ms", 1, 86400000, &o->max_ms);
    cfg_get_u32(cx, g[4], p, "max_ejection_percent", 0, 100, &o->max_percent);
    if (o->max_ms < o->base_ms)
        cfg_errp(cx, JP_K(p, "max_ejection_ms"), "must not be below base_ejection_ms (%u)",
                 o->base_ms);
}

/* What an upstream has unless its document says otherwise. */
static const struct cfg_upstream up_defaults = {
    .balance = CFG_BAL_ROUND_ROBIN,
    .max_idle_per_target = POOL_FOLLOW_DEMAND,  /* pool.max_idle_per_target absent: follow demand */
    .pool_idle_timeout_ms = 60000,      /* pool.idle_timeout_ms */
    .max_connections = 0,               /* pool.max_connections: no limit */
    .max_queue = 1024,                  /* pool.max_queue */
    .queue_timeout_ms = 5000,           /* pool.queue_timeout_ms */
    .connect_ms = 1000,
    .response_header_ms = 30000,
    .idle_ms = 300000,
    .retries = 1,
};

static void upstream_elem(struct cfg_ctx *cx, const cJSON *it, const struct jp *path, size_t i,
                          void *elem, void *arg)
{
    static const char *const keys[] = {
        "name", "targets", "balance", "pool", "timeouts", "retries", "tls", "hash_on", "health",
        "outlier", NULL };
    enum { K_NAME, K_TARGETS, K_BALANCE, K_POOL, K_TIMEOUTS, K_RETRIES, K_TLS, K_HASH_ON, K_HEALTH,
           K_OUTLIER };
    static const struct cfg_list targets = {
        .key = "targets", .required = true, .if_empty = "must contain at least one target",
        .elem_size = sizeof(struct cfg_target), .each = target_elem };
    struct nidx *names = arg;
    struct cfg_upstream *u = elem;
    const cJSON *f[10];
    const char *s;

    *u = up_defaults;
    u->health = hc_policy_default;
    if (!cfg_check_object(cx, it, path, keys, NULL, f))
        return;
    if (cfg_get_name(cx, f[K_NAME], path, "name", true, &s) == CFG_OK) {
        u->name = cfg_strdup(cx, s);
        size_t j = nidx_add(names, u->name, i);
        if (j != NOT_FOUND_IDX)
            cfg_errp(cx, JP_K(path, "name"),
                     "duplicate upstream name \"%s\" (also /upstreams/%zu)", s, j);
    }
    u->targets = cfg_list(cx, f[K_TARGETS], path, &targets, &u->ntargets, NULL);
    parse_balance(cx, f[K_BALANCE], f[K_HASH_ON], path, u);
    if (f[K_TLS] != NULL)
        parse_upstream_tls(cx, f[K_TLS], JP_K(path, "tls"), u);
    parse_upstream_limits(cx, f[K_POOL], f[K_TIMEOUTS], path, u);
    cfg_get_u32(cx, f[K_RETRIES], path, "retries", 0, 10, &u->retries);
    if (f[K_HEALTH] != NULL)
        parse_health(cx, f[K_HEALTH], JP_K(path, "health"), &u->health.check);
    if (f[K_OUTLIER] != NULL)
        parse_outlier(cx, f[K_OUTLIER], JP_K(path, "outlier"), &u->health.outlier);
}

static void upstreams_start(struct cfg_ctx *cx, size_t n, void *elems, void *arg)
{
    nidx_grow(arg, n);
}

void up_conf_parse_upstreams(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                             struct cfg_upstream **ups, size_t *nups, struct nidx *names)
{
    static const struct cfg_list spec = {
        .key = "upstreams", .elem_size = sizeof(struct cfg_upstream),
        .start = upstreams_start, .each = upstream_elem };

    *ups = cfg_list(cx, v, path, &spec, nups, names);
}
