/*
 * limit.c - rate_limit and token_budget: config, keys, the checks, the
 * debit, and the token counters (limit.h).
 */
#include "pol_int.h"
#include "limit.h"
#include "rate.h"
#include "redis.h"
#include "usage.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- config ---- */

#define MAX_RATE 1e9

static bool parse_per(struct cfg_ctx *cx, const cJSON *v, const struct jp *path, bool has_auth,
                      struct pol_limit *l)
{
    const char *s = NULL;

    if (cfg_get_name(cx, v, path, "per", true, &s) != CFG_OK)
        return false;
    if (strcmp(s, "client_ip") == 0) {
        l->per = POL_PER_CLIENT_IP;
    } else if (strcmp(s, "auth_id") == 0) {
        l->per = POL_PER_AUTH_ID;
        if (!has_auth) {
            cfg_errp(cx, JP_K(path, "per"), "auth_id needs the route's auth section");
            return false;
        }
    } else if (strcmp(s, "route") == 0) {
        l->per = POL_PER_ROUTE;
    } else if (strncmp(s, "header:", 7) == 0 && s[7]) {
        char *h = cfg_strdup(cx, s + 7);
        for (char *p = h; *p; p++) {
            if (*p <= ' ' || *p >= 127 || *p == ':') {
                cfg_errp(cx, JP_K(path, "per"), "header name holds a character not allowed in a header name");
                return false;
            }
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        }
        l->per = POL_PER_HEADER;
        l->hname = h;
        l->hlen = (uint32_t)strlen(h);
    } else {
        cfg_errp(cx, JP_K(path, "per"), "must be one of client_ip, auth_id, route, header:NAME");
        return false;
    }
    return true;
}

static bool get_pos_number(struct cfg_ctx *cx, const cJSON *v, const struct jp *path, const char *key,
                           double max, double *out)
{
    if (!v) {
        cfg_errp(cx, JP_K(path, key), "is required");
        return false;
    }
    if (!J_IS_NUMBER(v) || !(v->valuedouble > 0) || v->valuedouble > max) {
        cfg_errp(cx, JP_K(path, key), "must be a number greater than 0 and at most %.0f", max);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

struct pol_limit *pol_limit_parse(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                  bool budget, const char *route, bool has_auth)
{
    static const char *const rkeys[] = { "per", "requests_per_s", "burst", NULL };
    static const char *const bkeys[] = { "per", "tokens_per_min", NULL };
    const cJSON *f[3];
    struct pol_limit *l;
    char ident[512];
    int n;

    if (!cfg_check_object(cx, v, path, budget ? bkeys : rkeys, NULL, f))
        return NULL;
    l = cfg_calloc(cx, 1, sizeof(*l));
    l->budget = budget;
    l->route = cfg_strdup(cx, route);  /* the caller's may be a temporary (an unnamed route's "_N") */
    if (!parse_per(cx, f[0], path, has_auth, l))
        return NULL;
    if (budget) {
        double tpm;
        if (!get_pos_number(cx, f[1], path, "tokens_per_min", 6e10, &tpm))
            return NULL;
        l->per_token_ns = (uint64_t)llround(60e9 / tpm);
        if (l->per_token_ns == 0)
            l->per_token_ns = 1;
        l->cap_ns = 60000000000ull;
        n = snprintf(ident, sizeof(ident), "tb|%s|%.17g|%s", route, tpm, f[0]->valuestring);
    } else {
        double rps;
        uint32_t burst = 0;
        if (!get_pos_number(cx, f[1], path, "requests_per_s", MAX_RATE, &rps))
            return NULL;
        /* default burst: one second's worth (at least 1) */
        if (cfg_get_u32(cx, f[2], path, "burst", 1, 1000000000u, &burst) == CFG_BAD)
            return NULL;
        if (!f[2])
            burst = (uint32_t)ceil(rps);
        l->t_ns = (uint64_t)llround(1e9 / rps);
        if (l->t_ns == 0)
            l->t_ns = 1;
        if ((double)l->t_ns * (double)burst > 4e18) {
            cfg_errp(cx, JP_K(path, "burst"), "burst / requests_per_s must be at most 4e9 seconds");
            return NULL;
        }
        l->tau_ns = (uint64_t)(burst - 1) * l->t_ns;
        n = snprintf(ident, sizeof(ident), "rl|%s|%.17g|%u|%s", route, rps, burst, f[0]->valuestring);
    }
    if (n < 0 || (size_t)n >= sizeof(ident))
        n = (int)sizeof(ident) - 1;
    l->ident = cfg_strndup(cx, ident, (size_t)n);
    l->ident_len = (size_t)n;
    return l;
}

static bool parse_hostport(const char *s, char **host, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    unsigned long p;
    size_t hl;

    if (!colon || colon == s)
        return false;
    p = strtoul(colon + 1, &end, 10);
    if (*end || p == 0 || p > 65535 || colon[1] == '\0')
        return false;
    hl = (size_t)(colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {      /* [::1]:6379 */
        s++;
        hl -= 2;
    }
    *host = strndup(s, hl);
    *port = (uint16_t)p;
    return *host != NULL;
}

struct pol_store *pol_store_new(struct cfg_ctx *cx, const cJSON *v, const struct jp *path,
                                uint32_t max_keys, bool need_table)
{
    static const char *const keys[] = { "redis", "on_error", NULL };
    const cJSON *f[2] = { NULL, NULL };
    const char *addr = NULL, *oe = NULL;
    struct pol_store *s;

    if (v) {
        if (!cfg_check_object(cx, v, path, keys, NULL, f))
            return NULL;
        if (cfg_get_name(cx, f[0], path, "redis", true, &addr) != CFG_OK)
            return NULL;
        if (cfg_get_name(cx, f[1], path, "on_error", false, &oe) == CFG_BAD)
            return NULL;
        if (oe && strcmp(oe, "allow") != 0 && strcmp(oe, "deny") != 0) {
            cfg_errp(cx, JP_K(path, "on_error"), "must be \"allow\" or \"deny\"");
            return NULL;
        }
    }
    if (!v && !need_table)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (addr && !parse_hostport(addr, &s->redis_host, &s->redis_port)) {
        cfg_errp(cx, JP_K(path, "redis"), "must be HOST:PORT");
        free(s);
        return NULL;
    }
    s->deny_on_error = oe && strcmp(oe, "deny") == 0;
    if (need_table && !addr) {
        s->tab = pol_ktab_get(max_keys);
        if (!s->tab) {
            cfg_errp(cx, JP_K(NULL, "limits"), "out of memory for max_rate_limit_keys");
            free(s->redis_host);
            free(s);
            return NULL;
        }
    }
    return s;
}

void pol_store_free(struct pol_store *s)
{
    if (!s)
        return;
    pol_ktab_unref(&s->tab);
    free(s->redis_host);
    free(s);
}

/* ---- keys ---- */

/* The bytes of r's key (pointing into r or t), and their length. */
static const void *key_bytes(const struct pol_limit *l, const struct pol_txn *t, const struct pol_req *r,
                             size_t *n)
{
    const struct h1_header *h;

    switch (l->per) {
    case POL_PER_CLIENT_IP:
        if (r->peer->sa_family == AF_INET6) {
            *n = 16;
            return &((const struct sockaddr_in6 *)(const void *)r->peer)->sin6_addr;
        }
        *n = 4;
        return &((const struct sockaddr_in *)(const void *)r->peer)->sin_addr;
    case POL_PER_AUTH_ID:
        *n = t->has_auth_id ? t->auth_id_len : 0;
        return t->auth_id;
    case POL_PER_HEADER:
        h = pol_header(r, l->hname, l->hlen);
        *n = h ? h->value_len : 0;
        return h ? h->value : "";
    default:
        *n = 0;
        return "";
    }
}

/* ---- Redis: the worker's connection to the request's store ---- */

/* A reload moved the store (or removed it): the old connection finishes
 * its calls from the loop (freeing it here would complete them under us). */
static void retire_current(struct pol_worker *pw)
{
    pol_redis_retire(pw->rd);
    *pol_redis_next(pw->rd) = pw->retired;
    pw->retired = pw->rd;
    pw->rd = NULL;
}

static struct pol_redis *worker_redis(struct pol_worker *pw, const struct pol_store *s)
{
    if (pw->rd && !pol_redis_is(pw->rd, s->redis_host, s->redis_port))
        retire_current(pw);
    for (struct pol_redis **pp = &pw->retired; *pp;) {
        struct pol_redis *o = *pp;
        if (pol_redis_idle(o)) {
            *pp = *pol_redis_next(o);
            pol_redis_free(&o);
        } else {
            pp = pol_redis_next(o);
        }
    }
    if (!pw->rd)
        pw->rd = pol_redis_new(pw->base, s->redis_host, s->redis_port);
    return pw->rd;
}

void pol_limit_worker_free(struct pol_worker *pw)
{
    pol_redis_free(&pw->rd);
    while (pw->retired) {
        struct pol_redis *o = pw->retired;
        pw->retired = *pol_redis_next(o);
        pol_redis_free(&o);
    }
}

static void redis_cancel(struct pol_txn *t)
{
    uint64_t h = (uint64_t)(uintptr_t)t->op;

    if (t->pw->rd && pol_redis_cancel(t->pw->rd, h, t))
        return;
    for (struct pol_redis *o = t->pw->retired; o; o = *pol_redis_next(o))
        if (pol_redis_cancel(o, h, t))
            return;
}

static enum pol_verdict store_error(struct pol_txn *t, const struct pol_store *s)
{
    if (s->deny_on_error) {
        pol_txn_deny(t, 503, NULL);
        return POL_DENY;
    }
    t->result = POL_RES_ERROR;      /* let through, counted as an error */
    return POL_ALLOW;
}

static void redis_done(void *arg, enum pol_store_res res, uint64_t wait_us)
{
    struct pol_txn *t = arg;
    const struct pol_store *s = t->store;
    enum pol_verdict v;

    if (res == POL_STORE_OK) {
        t->result = POL_RES_ALLOWED;
        v = POL_ALLOW;
    } else if (res == POL_STORE_DENY) {
        pol_txn_deny(t, 429, NULL);
        t->retry_after_s = pol_retry_after_s(wait_us * 1000);
        v = POL_DENY;
    } else {
        v = store_error(t, s);
    }
    if (v == POL_ALLOW && t->next == POL_CHECK_BUDGET + 1)
        t->budgeted = true;
    pol_txn_complete(t, v);
}

/* ---- the checks ---- */

int pol_limit_check(const struct pol_limit *l, struct pol_txn *t, const struct pol_req *r)
{
    const struct pol_store *s = r->store;
    size_t kn;
    const void *kb = key_bytes(l, t, r, &kn);
    uint64_t wait = 0;

    if (s == NULL)
        return pol_txn_deny(t, 503, NULL);      /* a config always has one with limits */
    t->store = s;
    if (s->redis_host) {
        struct pol_redis *rd = worker_redis(t->pw, s);
        uint64_t h = 0;

        if (rd) {
            pol_redis_key(rd, l->ident, l->ident_len, kb, kn, t->bkey);
            h = l->budget ? pol_redis_budget_check(rd, t->bkey, redis_done, t)
                          : pol_redis_rate(rd, t->bkey, (double)l->t_ns / 1000.0, (double)l->tau_ns / 1000.0,
                                           redis_done, t);
        }
        if (h == 0) {
            enum pol_verdict v = store_error(t, s);
            /* let through without Redis: its usage is still read and counted */
            t->budgeted = v == POL_ALLOW && l->budget;
            return v;
        }
        t->op = (void *)(uintptr_t)h;
        t->cancel = redis_cancel;
        return POL_PENDING;
    }
    if (t->pw->rd)
        retire_current(t->pw);          /* the store went back in process */
    uint64_t key = pol_ktab_hash(s->tab, l->ident, l->ident_len, kb, kn), now = pol_now_ns();
    if (l->budget) {
        if (!pol_budget_ok(s->tab, key, now, &wait)) {
            pol_txn_deny(t, 429, NULL);
            t->retry_after_s = pol_retry_after_s(wait);
            return POL_DENY;
        }
        memcpy(t->bkey, &key, sizeof(key));
        t->budgeted = true;
        return POL_ALLOW;
    }
    if (pol_rate_take(s->tab, key, l->t_ns, l->tau_ns, now, &wait))
        return POL_ALLOW;
    pol_txn_deny(t, 429, NULL);
    t->retry_after_s = pol_retry_after_s(wait);
    return POL_DENY;
}

/* ---- sluice_tokens_total: a bounded table of (route, auth id) shared by
 * the workers; an entry is claimed once by compare-and-swap and never
 * freed, its counters are atomic adds (once per budgeted response). */

#define TOK_SLOTS 2048          /* power of two */
#define TOK_MAX 1024            /* entries; more auth ids go to "_other" */

struct tok_entry {
    _Atomic uint64_t v[POL_U__N];
    char route[128];
    char auth_id[POL_AUTH_ID_MAX + 1];
};

static struct tok_entry tok_entries[TOK_MAX + 1];  /* the last: "_other" */
static _Atomic uint32_t tok_n;
static struct tok_entry *_Atomic tok_slots[TOK_SLOTS];
static _Atomic(struct tok_entry *) tok_list[TOK_MAX + 1];   /* published, in order */
static _Atomic uint32_t tok_published;

static uint64_t fnv(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;

    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ull;
    return h;
}

static struct tok_entry *tok_find(const char *route, const char *auth_id)
{
    uint64_t h = fnv(route, auth_id);

    for (uint32_t i = 0; i < TOK_SLOTS; i++) {
        _Atomic(struct tok_entry *) *slot = &tok_slots[(h + i) & (TOK_SLOTS - 1)];
        struct tok_entry *e = atomic_load_explicit(slot, memory_order_acquire);
        if (e == NULL) {
            uint32_t k = atomic_fetch_add(&tok_n, 1);
            if (k >= TOK_MAX)
                break;
            struct tok_entry *ne = &tok_entries[k];
            snprintf(ne->route, sizeof(ne->route), "%s", route);
            snprintf(ne->auth_id, sizeof(ne->auth_id), "%s", auth_id);
            struct tok_entry *expect = NULL;
            if (atomic_compare_exchange_strong(slot, &expect, ne)) {
                atomic_store(&tok_list[atomic_fetch_add(&tok_published, 1)], ne);
                return ne;
            }
            /* another thread took the slot: this entry is wasted (bounded) */
            e = expect;
        }
        if (strcmp(e->route, route) == 0 && strcmp(e->auth_id, auth_id) == 0)
            return e;
    }
    struct tok_entry *o = &tok_entries[TOK_MAX];
    if (o->route[0] == '\0') {
        snprintf(o->route, sizeof(o->route), "_other");
        snprintf(o->auth_id, sizeof(o->auth_id), "_other");
        struct tok_entry *expect = NULL;
        if (atomic_compare_exchange_strong(&tok_list[TOK_MAX], &expect, o))
            (void)0;
    }
    return o;
}

static const char *const tok_kinds[POL_U__N] = { "prompt", "completion", "total" };

void pol_tokens_each(pol_tokens_fn fn, void *arg)
{
    uint32_t n = atomic_load(&tok_published);

    if (n > TOK_MAX)
        n = TOK_MAX;
    for (uint32_t i = 0; i <= TOK_MAX; i++) {
        struct tok_entry *e = atomic_load(&tok_list[i]);
        if (!e || (i >= n && i != TOK_MAX))
            continue;
        for (int k = 0; k < POL_U__N; k++)
            fn(arg, e->route, e->auth_id, tok_kinds[k], atomic_load_explicit(&e->v[k], memory_order_relaxed));
    }
}

void pol_budget_end(struct pol_txn *t, const struct pol_store *s)
{
    const struct pol_limit *l = t->budget;
    uint64_t tokens;
    char id[POL_AUTH_ID_MAX + 1];

    if (!t->budgeted || !l || !s)
        return;
    t->budgeted = false;
    tokens = pol_usage_tokens(&t->usage);
    if (!t->usage.found)
        return;
    memcpy(id, t->auth_id, t->has_auth_id ? t->auth_id_len : 0);
    id[t->has_auth_id ? t->auth_id_len : 0] = '\0';
    struct tok_entry *e = tok_find(l->route, t->has_auth_id ? id : "");
    uint64_t p = t->usage.has[POL_U_PROMPT] ? t->usage.v[POL_U_PROMPT] : 0;
    uint64_t c = t->usage.has[POL_U_COMPLETION] ? t->usage.v[POL_U_COMPLETION] : 0;
    atomic_fetch_add_explicit(&e->v[POL_U_PROMPT], p, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->v[POL_U_COMPLETION], c, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->v[POL_U_TOTAL], tokens, memory_order_relaxed);
    if (tokens == 0)
        return;
    if (s->redis_host) {
        if (t->pw->rd && pol_redis_is(t->pw->rd, s->redis_host, s->redis_port))
            pol_redis_budget_debit(t->pw->rd, t->bkey, (double)l->per_token_ns / 1000.0,
                                   (double)l->cap_ns / 1000.0, tokens);
        return;
    }
    uint64_t key;
    memcpy(&key, t->bkey, sizeof(key));
    pol_budget_debit(s->tab, key, l->per_token_ns, l->cap_ns, tokens, pol_now_ns());
}
