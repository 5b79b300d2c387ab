/* health.c - the registry of (upstream, address) states, the bitmaps
 * derived from it, passive ejection and probe results (see health.h). */
#include "hc_int.h"
#include "../core/log.h"
#include "../core/ltimer.h"
#include "../core/nidx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An upstream name: its targets, its live groups, its running policy. */
struct hc_ups {
    struct hc_ups *next;
    char *name;
    struct hc_target *targets;
    struct hc_group *groups;
    struct hc_check check;              /* the running config's (lock) */
    /* passive policy, read by workers without the lock */
    _Atomic uint32_t o_failures, o_5xx, o_base, o_max, o_pct;
    size_t ntargets;                    /* in the running config (lock) */
    uint64_t pub;                       /* last publish it was in, 0 = never */
    SSL_CTX *tls;                       /* probes' client context (a reference) */
    bool verify;
};

/* Everything below is under hc_lock, but the fields health.h marks atomic
 * (workers' reports read and write those without it). */
static pthread_mutex_t hc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hc_ups *hc_list;
static struct nidx hc_names;            /* name -> struct hc_ups * (5,000 upstreams: no list walk) */
static uint64_t hc_pub;                 /* publish generation */
static _Atomic uint32_t hc_nejected;    /* targets ejected now: hc_tick skips at 0 */

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, len, "%s:%u", ip, ntohs(s4->sin_port));
    } else {
        snprintf(out, len, "?");
    }
}

static void set_outlier(struct hc_ups *u, const struct hc_outlier *o)
{
    atomic_store_explicit(&u->o_failures, o->failures, memory_order_relaxed);
    atomic_store_explicit(&u->o_5xx, o->consecutive_5xx, memory_order_relaxed);
    atomic_store_explicit(&u->o_base, o->base_ms, memory_order_relaxed);
    atomic_store_explicit(&u->o_max, o->max_ms, memory_order_relaxed);
    atomic_store_explicit(&u->o_pct, o->max_percent, memory_order_relaxed);
}

static struct hc_ups *ups_for(const char *name, const struct hc_policy *pol)
{
    size_t found = nidx_find(&hc_names, name);
    if (found != NOT_FOUND_IDX)
        return (struct hc_ups *)(uintptr_t)found;
    struct hc_ups *u = calloc(1, sizeof(*u));
    if (u == NULL || (u->name = strdup(name)) == NULL) {
        free(u);
        return NULL;
    }
    u->check = pol->check;
    set_outlier(u, &pol->outlier);
    u->next = hc_list;
    hc_list = u;
    nidx_add(&hc_names, u->name, (size_t)(uintptr_t)u);
    return u;
}

/* What the bit of t is: resolved, not ejected, not down by probes. */
static bool target_up(const struct hc_target *t)
{
    return atomic_load_explicit(&t->ejected_until, memory_order_relaxed) == 0 && t->active != 0;
}

/* Re-derive t's bit in every live group of its upstream (lock held). */
static void derive(struct hc_target *t)
{
    bool up = target_up(t);

    if (up == t->up)
        return;
    t->up = up;
    t->since_ms = wall_ms();
    for (struct hc_group *g = t->ups->groups; g; g = g->next)
        for (size_t i = 0; i < g->n; i++) {
            if (g->t[i] != t)
                continue;
            uint64_t bit = 1ull << (i & 63);
            if (up)
                atomic_fetch_or_explicit(&g->bits[i >> 6], bit, memory_order_relaxed);
            else
                atomic_fetch_and_explicit(&g->bits[i >> 6], ~bit, memory_order_relaxed);
        }
}

/* A target the upstream's checks (or their absence) now apply to. */
static void fit_policy(struct hc_target *t, const struct hc_check *c)
{
    if (!c->on && t->active >= 0) {
        t->active = -1;
        t->first = false;
    } else if (c->on && t->active < 0) {
        t->active = 1;          /* it was serving: the first probe decides */
        t->first = true;
        t->next_probe_ms = 0;
    }
}

static struct hc_target *target_for(struct hc_ups *u, const struct sockaddr *sa, socklen_t salen,
                                    const struct hc_check *c)
{
    struct hc_target *t;

    for (t = u->targets; t; t = t->next)
        if (t->salen == salen && memcmp(&t->sa, sa, salen) == 0)
            return t;
    if (salen > sizeof(t->sa) || (t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->ups = u;
    memcpy(&t->sa, sa, salen);
    t->salen = salen;
    addr_text(sa, t->text, sizeof(t->text));
    /* new: up, unless checks decide (then down until the first probe) */
    t->active = c->on ? 0 : -1;
    t->first = c->on;
    t->up = target_up(t);
    t->since_ms = wall_ms();
    t->next = u->targets;
    u->targets = t;
    return t;
}

struct hc_group *hc_group_new(const char *name, const struct hc_policy *pol,
                              const struct hc_member *m, size_t n)
{
    struct hc_group *g = calloc(1, sizeof(*g));

    if (g == NULL)
        return NULL;
    g->pol = *pol;
    g->n = n;
    g->t = calloc(n ? n : 1, sizeof(*g->t));
    g->bits = calloc(n ? (n + 63) / 64 : 1, sizeof(*g->bits));
    g->m = calloc(n ? n : 1, sizeof(*g->m));
    if (g->t == NULL || g->bits == NULL || g->m == NULL)
        goto fail;
    if (n)
        memcpy(g->m, m, n * sizeof(*m));
    pthread_mutex_lock(&hc_lock);
    g->ups = ups_for(name, pol);
    if (g->ups == NULL) {
        pthread_mutex_unlock(&hc_lock);
        goto fail;
    }
    if (g->ups->pub == 0) {             /* never running: this is its policy so far */
        g->ups->check = pol->check;
        set_outlier(g->ups, &pol->outlier);
        g->ups->ntargets = n;
    }
    for (size_t i = 0; i < n; i++) {
        if (m[i].sa == NULL)
            continue;
        g->t[i] = target_for(g->ups, m[i].sa, m[i].salen, &pol->check);
        if (g->t[i] && g->t[i]->up)
            atomic_fetch_or_explicit(&g->bits[i >> 6], 1ull << (i & 63), memory_order_relaxed);
    }
    g->next = g->ups->groups;
    if (g->next)
        g->next->prev = g;
    g->ups->groups = g;
    pthread_mutex_unlock(&hc_lock);
    return g;
fail:
    free(g->t);
    free(g->m);
    free((void *)g->bits);
    free(g);
    return NULL;
}

void hc_group_free(struct hc_group *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&hc_lock);
    if (g->prev)
        g->prev->next = g->next;
    else if (g->ups)
        g->ups->groups = g->next;
    if (g->next)
        g->next->prev = g->prev;
    pthread_mutex_unlock(&hc_lock);
    free(g->t);
    free(g->m);
    free((void *)g->bits);
    free(g);
}

void hc_publish(struct hc_group *const *g, SSL_CTX *const *tls, const bool *verify, size_t n)
{
    pthread_mutex_lock(&hc_lock);
    hc_pub++;
    for (size_t i = 0; i < n; i++) {
        struct hc_ups *u = g[i]->ups;
        u->check = g[i]->pol.check;
        set_outlier(u, &g[i]->pol.outlier);
        u->ntargets = g[i]->n;
        u->pub = hc_pub;
        if (tls[i])
            SSL_CTX_up_ref(tls[i]);
        SSL_CTX_free(u->tls);
        u->tls = tls[i];
        u->verify = verify[i];
        for (size_t j = 0; j < g[i]->n; j++) {
            struct hc_target *t = g[i]->t[j];
            if (t == NULL)
                continue;
            t->pub = hc_pub;
            snprintf(t->host, sizeof(t->host), "%s", g[i]->m[j].host ? g[i]->m[j].host : t->text);
            snprintf(t->sni, sizeof(t->sni), "%s", g[i]->m[j].sni ? g[i]->m[j].sni : "");
            fit_policy(t, &u->check);
            derive(t);
        }
    }
    pthread_mutex_unlock(&hc_lock);
}

/* ---- passive ---- */

/* Eject t for its next back-off, unless it is already out or the upstream
 * has its share of targets out.  Lock held. */
static void eject(struct hc_target *t, uint64_t now_ms, const char *why)
{
    struct hc_ups *u = t->ups;
    size_t out = 0;

    if (atomic_load_explicit(&t->ejected_until, memory_order_relaxed) != 0)
        return;
    for (struct hc_target *o = u->targets; o; o = o->next)
        if (o->pub == t->pub && atomic_load_explicit(&o->ejected_until, memory_order_relaxed))
            out++;
    uint32_t pct = atomic_load_explicit(&u->o_pct, memory_order_relaxed);
    size_t cap = u->ntargets * pct / 100;
    if (cap == 0 && pct > 0)
        cap = 1;
    if (out >= cap) {
        if (!t->capped)         /* once until it is ejected: no log per request */
            gw_log(GW_LOG_WARN, "target %s of %s not ejected (%s): %zu of %zu targets are out already",
                   t->text, u->name, why, out, u->ntargets);
        t->capped = true;
        atomic_store_explicit(&t->fails, 0, memory_order_relaxed);
        atomic_store_explicit(&t->fails_5xx, 0, memory_order_relaxed);
        return;
    }
    uint32_t step = atomic_load_explicit(&t->step, memory_order_relaxed);
    uint64_t base = atomic_load_explicit(&u->o_base, memory_order_relaxed);
    uint64_t max = atomic_load_explicit(&u->o_max, memory_order_relaxed);
    uint64_t ms = base << (step < 20 ? step : 20);
    if (ms > max)
        ms = max;
    if (ms == 0)
        ms = 1;
    atomic_store_explicit(&t->ejected_until, now_ms + ms, memory_order_relaxed);
    atomic_store_explicit(&t->step, step + 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->ejections, 1, memory_order_relaxed);
    atomic_store_explicit(&t->fails, 0, memory_order_relaxed);
    atomic_store_explicit(&t->fails_5xx, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&hc_nejected, 1, memory_order_relaxed);
    t->capped = false;
    gw_log(GW_LOG_WARN, "target %s of %s ejected for %llu ms: %s", t->text, u->name,
           (unsigned long long)ms, why);
    derive(t);
}

void hc_fail(struct hc_target *t, uint64_t now_ms)
{
    /* a request that was on its way to an ejected target says nothing new */
    if (atomic_load_explicit(&t->ejected_until, memory_order_relaxed) != 0)
        return;
    uint32_t need = atomic_load_explicit(&t->ups->o_failures, memory_order_relaxed);
    if (need == 0)
        return;
    uint32_t f = atomic_fetch_add_explicit(&t->fails, 1, memory_order_relaxed) + 1;
    if (f < need)
        return;
    char why[64];
    snprintf(why, sizeof(why), "%u failure%s in a row", f, f == 1 ? "" : "s");
    pthread_mutex_lock(&hc_lock);
    eject(t, now_ms, why);
    pthread_mutex_unlock(&hc_lock);
}

void hc_answered_slow(struct hc_target *t, int status)
{
    uint32_t need = atomic_load_explicit(&t->ups->o_5xx, memory_order_relaxed);

    /* stores only where something changes: a 5xx storm must not make every
     * worker write the target's line */
    if (atomic_load_explicit(&t->fails, memory_order_relaxed) != 0)
        atomic_store_explicit(&t->fails, 0, memory_order_relaxed);
    if (status >= 500 && need > 0) {
        if (atomic_load_explicit(&t->ejected_until, memory_order_relaxed) != 0)
            return;
        uint32_t f = atomic_fetch_add_explicit(&t->fails_5xx, 1, memory_order_relaxed) + 1;
        if (f < need)
            return;
        char why[64];
        snprintf(why, sizeof(why), "%u 5xx answers in a row", f);
        pthread_mutex_lock(&hc_lock);
        eject(t, lt_now_ms(), why);
        pthread_mutex_unlock(&hc_lock);
        return;
    }
    /* an answer: the connection-level failures and the back-off start over */
    if (atomic_load_explicit(&t->fails_5xx, memory_order_relaxed) != 0)
        atomic_store_explicit(&t->fails_5xx, 0, memory_order_relaxed);
    if (atomic_load_explicit(&t->step, memory_order_relaxed) != 0)
        atomic_store_explicit(&t->step, 0, memory_order_relaxed);
}

/* Lock held: t's ejection ends now. */
static void unject(struct hc_target *t)
{
    atomic_store_explicit(&t->ejected_until, 0, memory_order_relaxed);
    atomic_fetch_sub_explicit(&hc_nejected, 1, memory_order_relaxed);
    derive(t);
}

void hc_tick(uint64_t now_ms)
{
    if (atomic_load_explicit(&hc_nejected, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&hc_lock);
    for (struct hc_ups *u = hc_list; u; u = u->next)
        for (struct hc_target *t = u->targets; t; t = t->next) {
            uint64_t until = atomic_load_explicit(&t->ejected_until, memory_order_relaxed);
            if (until != 0 && until <= now_ms) {
                gw_log(GW_LOG_INFO, "target %s of %s back after its ejection", t->text, u->name);
                unject(t);
            }
        }
    pthread_mutex_unlock(&hc_lock);
}

/* ---- active ---- */

void hc_probe_result(struct hc_target *t, bool ok, const char *why, uint64_t now_ms)
{
    pthread_mutex_lock(&hc_lock);
    struct hc_ups *u = t->ups;
    t->in_flight = false;
    snprintf(t->last, sizeof(t->last), "%s", why);
    if (ok)
        t->probes_ok++;
    else
        t->probes_bad++;
    if (t->active < 0) {                /* checks went away meanwhile */
        pthread_mutex_unlock(&hc_lock);
        return;
    }
    if (ok == t->run_ok) {
        t->run++;
    } else {
        t->run_ok = ok;
        t->run = 1;
    }
    uint32_t need = ok ? u->check.rise : u->check.fall;
    char count[32];
    if (t->first)
        snprintf(count, sizeof(count), "first probe");
    else
        snprintf(count, sizeof(count), "%u of %u", t->run, need);
    if (ok && t->active == 0 && (t->first || t->run >= need)) {
        t->active = 1;
        t->went_up++;
        gw_log(GW_LOG_INFO, "target %s of %s up: %s (%s)", t->text, u->name, why, count);
    } else if (!ok && (t->active == 1 || t->first) && (t->first || t->run >= need)) {
        t->went_down += t->active == 1;
        t->active = 0;
        gw_log(GW_LOG_WARN, "target %s of %s down: %s (%s)", t->text, u->name, why, count);
    }
    t->first = false;
    /* the prober sees it healthy: an ejection ends at once */
    if (ok && t->active == 1 && atomic_load_explicit(&t->ejected_until, memory_order_relaxed)) {
        gw_log(GW_LOG_INFO, "target %s of %s back: healthy to its probe", t->text, u->name);
        atomic_store_explicit(&t->step, 0, memory_order_relaxed);
        unject(t);
    }
    derive(t);
    (void)now_ms;
    pthread_mutex_unlock(&hc_lock);
}

size_t hc_due(uint64_t now_ms, struct hc_probe_req *out, size_t max, uint32_t (*rnd)(void))
{
    size_t n = 0;

    pthread_mutex_lock(&hc_lock);
    for (struct hc_ups *u = hc_list; u && n < max; u = u->next) {
        if (u->pub == 0 || u->pub != hc_pub || !u->check.on)
            continue;
        for (struct hc_target *t = u->targets; t && n < max; t = t->next) {
            if (t->pub != hc_pub || t->in_flight || t->next_probe_ms > now_ms)
                continue;
            struct hc_probe_req *r = &out[n++];
            uint32_t iv = u->check.interval_ms, j = iv / 5;
            /* every interval, give or take a tenth: probes of many targets spread */
            t->next_probe_ms = now_ms + iv - iv / 10 + (j ? rnd() % j : 0);
            t->in_flight = true;
            r->t = t;
            memcpy(&r->sa, &t->sa, t->salen);
            r->salen = t->salen;
            r->check = u->check;
            snprintf(r->host, sizeof(r->host), "%s", t->host[0] ? t->host : t->text);
            snprintf(r->sni, sizeof(r->sni), "%s", t->sni);
            r->tls = u->tls;
            if (r->tls)
                SSL_CTX_up_ref(r->tls);
            r->verify = u->verify;
        }
    }
    pthread_mutex_unlock(&hc_lock);
    return n;
}

void hc_view(const struct hc_target *t, uint64_t now_ms, struct hc_view *v)
{
    pthread_mutex_lock(&hc_lock);
    uint64_t until = atomic_load_explicit(&t->ejected_until, memory_order_relaxed);
    v->up = t->up;
    v->active = t->active;
    v->ejected = until != 0;
    v->ejected_for_ms = until > now_ms ? until - now_ms : 0;
    v->since_ms = t->since_ms;
    memcpy(v->last, t->last, sizeof(v->last));
    v->probes_ok = t->probes_ok;
    v->probes_bad = t->probes_bad;
    v->went_up = t->went_up;
    v->went_down = t->went_down;
    v->ejections = atomic_load_explicit(&t->ejections, memory_order_relaxed);
    pthread_mutex_unlock(&hc_lock);
}

void hc_shutdown(void)
{
    pthread_mutex_lock(&hc_lock);
    while (hc_list) {
        struct hc_ups *u = hc_list;
        hc_list = u->next;
        while (u->targets) {
            struct hc_target *t = u->targets;
            u->targets = t->next;
            free(t);
        }
        SSL_CTX_free(u->tls);
        free(u->name);
        free(u);
    }
    nidx_free(&hc_names);
    hc_pub = 0;
    atomic_store(&hc_nejected, 0);
    pthread_mutex_unlock(&hc_lock);
}
