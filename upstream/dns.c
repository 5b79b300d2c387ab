/* dns.c - the resolver cache and its thread (see dns.h). */
#include "dns.h"
#include "../core/log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct up_dns_name {
    struct up_dns_name *next;
    char name[256];
    unsigned refs;              /* sets using it */
    struct up_dns_answer ans;   /* the last good answer (ans.n == 0: none yet) */
    uint64_t due_ms;            /* next lookup (the thread) */
    uint32_t retry_ms;          /* back-off after failures, 0 after a success */
};

static pthread_mutex_t D_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t D_cond;
static struct up_dns_name *D_names;
static char D_servers[1024];
static pthread_t D_thread;
static bool D_running;
static _Atomic bool D_stop;
static int (*D_changed)(void);
static _Atomic uint64_t D_lookups, D_failures;
static pthread_once_t D_once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
    pthread_condattr_t ca;

    ares_library_init(ARES_LIB_INIT_ALL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&D_cond, &ca);
    pthread_condattr_destroy(&ca);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void up_dns_servers(const char *csv)
{
    pthread_once(&D_once, init_once);
    pthread_mutex_lock(&D_lock);
    snprintf(D_servers, sizeof(D_servers), "%s", csv ? csv : "");
    pthread_mutex_unlock(&D_lock);
}

uint64_t up_dns_lookups(void) { return atomic_load(&D_lookups); }
uint64_t up_dns_failures(void) { return atomic_load(&D_failures); }

/* ---- one batch of lookups, blocking, bounded in time ---- */

struct query {
    const char *name;
    struct up_dns_answer *out;
    uint32_t ttl_ms;
    int status;
    bool done;
};

static int addr_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct sockaddr_storage));
}

static void query_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct query *q = arg;
    struct up_dns_answer *o = q->out;
    int ttl = -1;

    (void)timeouts;
    /* ares_destroy() ends the queries still pending after the deadline
     * with ARES_EDESTRUCTION: those timed out and stay not done */
    q->done = status != ARES_EDESTRUCTION;
    q->status = status;
    o->n = 0;
    if (status == ARES_SUCCESS && res) {
        for (struct ares_addrinfo_node *n = res->nodes; n && o->n < UP_DNS_MAX_ADDRS; n = n->ai_next) {
            if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
                n->ai_addrlen > sizeof(o->a[0]))
                continue;
            struct sockaddr_storage ss;
            memset(&ss, 0, sizeof(ss));
            memcpy(&ss, n->ai_addr, n->ai_addrlen);
            if (n->ai_family == AF_INET)
                ((struct sockaddr_in *)&ss)->sin_port = 0;
            else
                ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
            bool dup = false;
            for (size_t i = 0; i < o->n && !dup; i++)
                dup = memcmp(&o->a[i], &ss, sizeof(ss)) == 0;
            if (dup)
                continue;
            o->a[o->n] = ss;
            o->n++;
            if (ttl < 0 || n->ai_ttl < ttl)
                ttl = n->ai_ttl;
        }
        /* sorted: the same answer in another order is the same set, and
         * targets keep their order */
        qsort(o->a, o->n, sizeof(o->a[0]), addr_cmp);
        for (size_t i = 0; i < o->n; i++)
            o->alen[i] = o->a[i].ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                      : sizeof(struct sockaddr_in6);
    }
    if (ttl < 0)
        ttl = 0;
    uint64_t t = (uint64_t)ttl * 1000;
    q->ttl_ms = t < UP_DNS_TTL_MIN_MS ? UP_DNS_TTL_MIN_MS : t > UP_DNS_TTL_MAX_MS ? UP_DNS_TTL_MAX_MS
                                                                                 : (uint32_t)t;
    if (q->done && o->n == 0)
        snprintf(o->err, sizeof(o->err), "%s",
                 status == ARES_SUCCESS ? "no address" : ares_strerror(status));
    else if (!q->done)
        snprintf(o->err, sizeof(o->err), "timed out");
    if (res)
        ares_freeaddrinfo(res);
}

/* Resolve every query at once; returns when all are answered, timeout_ms
 * passed, or the thread is asked to stop. */
static void resolve(struct query *qs, size_t nq, const char *servers, int timeout_ms)
{
    ares_channel ch;
    struct ares_options opt;

    if (nq == 0)
        return;
    for (size_t i = 0; i < nq; i++) {
        qs[i].done = false;
        qs[i].out->n = 0;
        snprintf(qs[i].out->err, sizeof(qs[i].out->err), "timed out");
        qs[i].ttl_ms = UP_DNS_TTL_MIN_MS;
    }
    memset(&opt, 0, sizeof(opt));
    opt.timeout = timeout_ms < 1000 ? (timeout_ms > 0 ? timeout_ms : 1) : 1000;
    opt.tries = 2;
    if (ares_init_options(&ch, &opt, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS) {
        for (size_t i = 0; i < nq; i++)
            snprintf(qs[i].out->err, sizeof(qs[i].out->err), "cannot initialise the resolver");
        return;
    }
    if (servers && servers[0] && ares_set_servers_ports_csv(ch, servers) != ARES_SUCCESS) {
        for (size_t i = 0; i < nq; i++)
            snprintf(qs[i].out->err, sizeof(qs[i].out->err), "bad resolver servers \"%s\"", servers);
        ares_destroy(ch);
        return;
    }
    for (size_t i = 0; i < nq; i++) {
        struct ares_addrinfo_hints h;
        memset(&h, 0, sizeof(h));
        h.ai_family = AF_UNSPEC;
        h.ai_socktype = SOCK_STREAM;
        ares_getaddrinfo(ch, qs[i].name, NULL, &h, query_cb, &qs[i]);
    }
    uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        size_t pending = 0;
        for (size_t i = 0; i < nq; i++)
            pending += !qs[i].done;
        if (pending == 0 || atomic_load(&D_stop))
            break;
        uint64_t now = mono_ms();
        if (now >= deadline)
            break;
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        int np = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = 0;
            /* ARES_GETSOCK_WRITABLE shifts an int by up to 31: UB */
            if ((unsigned)bits & (1u << i))
                ev |= POLLIN;
            if ((unsigned)bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
                ev |= POLLOUT;
            if (ev) {
                pfd[np].fd = socks[i];
                pfd[np].events = ev;
                pfd[np].revents = 0;
                np++;
            }
        }
        struct timeval tv, *tvp, maxtv = { 0, 100000 };   /* 100 ms: a stop is seen soon */
        tvp = ares_timeout(ch, &maxtv, &tv);
        int wait = (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000);
        if (wait > (int)(deadline - now))
            wait = (int)(deadline - now);
        poll(pfd, (nfds_t)np, wait);
        for (int i = 0; i < np; i++) {
            ares_socket_t r = (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_socket_t w = (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_process_fd(ch, r, w);
        }
        if (np == 0)
            ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    }
    ares_destroy(ch);   /* runs the callbacks of queries still pending */
}

/* ---- the cache ---- */

static struct up_dns_name *find(const char *name)
{
    for (struct up_dns_name *e = D_names; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static bool same_answer(const struct up_dns_answer *a, const struct up_dns_answer *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(&a->a[i], &b->a[i], sizeof(a->a[i])) != 0)
            return false;
    return true;
}

/* A lookup's result into e (lock held); true when e's addresses changed. */
static bool store(struct up_dns_name *e, const struct query *q, uint64_t now)
{
    const struct up_dns_answer *r = q->out;

    if (r->n == 0) {
        /* a failure keeps the last good answer */
        e->retry_ms = e->retry_ms ? e->retry_ms * 2 : UP_DNS_RETRY_MIN_MS;
        if (e->retry_ms > UP_DNS_RETRY_MAX_MS)
            e->retry_ms = UP_DNS_RETRY_MAX_MS;
        e->due_ms = now + e->retry_ms;
        snprintf(e->ans.err, sizeof(e->ans.err), "%s", r->err);
        return false;
    }
    e->retry_ms = 0;
    e->due_ms = now + q->ttl_ms;
    if (same_answer(&e->ans, r))
        return false;
    e->ans = *r;
    return true;
}

void up_dns_acquire(const char *const *names, size_t n, int timeout_ms,
                    struct up_dns_answer *out, struct up_dns_name **ref)
{
    struct query *qs = calloc(n ? n : 1, sizeof(*qs));
    size_t nq = 0;
    char servers[sizeof(D_servers)];

    pthread_once(&D_once, init_once);
    pthread_mutex_lock(&D_lock);
    for (size_t i = 0; i < n; i++) {
        struct up_dns_name *e = find(names[i]);
        if (e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
            snprintf(e->name, sizeof(e->name), "%s", names[i]);
            e->next = D_names;
            D_names = e;
        }
        ref[i] = e;
        out[i].n = 0;
        snprintf(out[i].err, sizeof(out[i].err), "out of memory");
        if (e == NULL)
            continue;
        e->refs++;
        if (e->ans.n)
            out[i] = e->ans;
        else if (qs) {
            qs[nq].name = e->name;      /* stays: we hold a reference */
            qs[nq].out = &out[i];
            nq++;
        }
    }
    memcpy(servers, D_servers, sizeof(servers));
    pthread_mutex_unlock(&D_lock);
    if (nq == 0) {
        free(qs);
        return;
    }
    resolve(qs, nq, servers, timeout_ms);
    uint64_t now = mono_ms();
    pthread_mutex_lock(&D_lock);
    for (size_t i = 0; i < nq; i++) {
        struct up_dns_name *e = find(qs[i].name);
        atomic_fetch_add(&D_lookups, 1);
        if (qs[i].out->n == 0)
            atomic_fetch_add(&D_failures, 1);
        if (e && e->ans.n == 0)
            store(e, &qs[i], now);
    }
    pthread_mutex_unlock(&D_lock);
    free(qs);
}

void up_dns_release(struct up_dns_name *ref)
{
    if (ref == NULL)
        return;
    pthread_mutex_lock(&D_lock);
    if (--ref->refs == 0) {
        struct up_dns_name **pp = &D_names;
        while (*pp && *pp != ref)
            pp = &(*pp)->next;
        if (*pp)
            *pp = ref->next;
        free(ref);
    }
    pthread_mutex_unlock(&D_lock);
}

/* ---- the thread ---- */

static void *dns_main(void *arg)
{
    pthread_setname_np(pthread_self(), "sluice-dns");   /* as ps -L and top -H show it */
    uint64_t retry_at = 0;      /* a change the callback failed to apply: again then */

    (void)arg;
    pthread_mutex_lock(&D_lock);
    while (!atomic_load(&D_stop)) {
        uint64_t now = mono_ms(), next = now + 1000;
        size_t ndue = 0;
        if (retry_at && now >= retry_at && D_changed) {
            pthread_mutex_unlock(&D_lock);
            retry_at = D_changed() == 0 ? 0 : mono_ms() + UP_DNS_RETRY_MIN_MS;
            pthread_mutex_lock(&D_lock);
            continue;
        }
        if (retry_at && retry_at < next)
            next = retry_at;
        for (struct up_dns_name *e = D_names; e; e = e->next) {
            if (e->due_ms <= now)
                ndue++;
            else if (e->due_ms < next)
                next = e->due_ms;
        }
        if (ndue == 0) {
            struct timespec ts = { (time_t)(next / 1000), (long)(next % 1000) * 1000000 };
            pthread_cond_timedwait(&D_cond, &D_lock, &ts);
            continue;
        }
        /* copies: the names may be released while we resolve */
        char (*nm)[256] = malloc(ndue * sizeof(*nm));
        struct query *qs = calloc(ndue, sizeof(*qs));
        struct up_dns_answer *ans = malloc(ndue * sizeof(*ans));
        char servers[sizeof(D_servers)];
        if (nm == NULL || qs == NULL || ans == NULL) {
            free(nm);
            free(qs);
            free(ans);
            struct timespec ts = { (time_t)((now + 1000) / 1000), (long)((now + 1000) % 1000) * 1000000 };
            pthread_cond_timedwait(&D_cond, &D_lock, &ts);
            continue;
        }
        size_t k = 0;
        for (struct up_dns_name *e = D_names; e && k < ndue; e = e->next)
            if (e->due_ms <= now) {
                memcpy(nm[k], e->name, sizeof(nm[k]));
                qs[k].name = nm[k];
                qs[k].out = &ans[k];
                k++;
            }
        memcpy(servers, D_servers, sizeof(servers));
        pthread_mutex_unlock(&D_lock);

        resolve(qs, k, servers, 2000);

        bool changed = false;
        now = mono_ms();
        pthread_mutex_lock(&D_lock);
        for (size_t i = 0; i < k; i++) {
            atomic_fetch_add(&D_lookups, 1);
            if (ans[i].n == 0)
                atomic_fetch_add(&D_failures, 1);
            struct up_dns_name *e = find(nm[i]);
            if (e == NULL)
                continue;
            bool had = e->ans.n != 0;
            if (ans[i].n == 0 && had && e->retry_ms == 0)
                gw_log(GW_LOG_WARN, "DNS: %s: %s; keeping its %zu address%s", e->name, ans[i].err,
                       e->ans.n, e->ans.n == 1 ? "" : "es");
            if (store(e, &qs[i], now)) {
                char a0[INET6_ADDRSTRLEN] = "";
                const struct sockaddr_storage *s = &e->ans.a[0];
                inet_ntop(s->ss_family, s->ss_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)s)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)s)->sin6_addr, a0, sizeof(a0));
                gw_log(GW_LOG_INFO, "DNS: %s now has %zu address%s (%s%s)", e->name, e->ans.n,
                       e->ans.n == 1 ? "" : "es", a0, e->ans.n > 1 ? ", ..." : "");
                changed = true;
            }
        }
        pthread_mutex_unlock(&D_lock);
        free(nm);
        free(qs);
        free(ans);
        if (changed && D_changed && !atomic_load(&D_stop))
            retry_at = D_changed() == 0 ? 0 : mono_ms() + UP_DNS_RETRY_MIN_MS;
        pthread_mutex_lock(&D_lock);
    }
    pthread_mutex_unlock(&D_lock);
    return NULL;
}

int up_dns_start(int (*changed)(void))
{
    pthread_once(&D_once, init_once);
    if (D_running)
        return 0;
    D_changed = changed;
    atomic_store(&D_stop, false);
    if (pthread_create(&D_thread, NULL, dns_main, NULL) != 0)
        return -1;
    D_running = true;
    return 0;
}

void up_dns_stop(void)
{
    if (!D_running)
        return;
    pthread_mutex_lock(&D_lock);
    atomic_store(&D_stop, true);
    pthread_cond_signal(&D_cond);
    pthread_mutex_unlock(&D_lock);
    pthread_join(D_thread, NULL);
    D_running = false;
}
