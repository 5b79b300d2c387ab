/* upstream.c - the runtime set: targets, their resolution (c-ares), and
 * the balancers' shared state (balance.h). */
#include "upstream.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- DNS ---- */

struct dns_query {
    struct up_target *t;
    uint16_t port;
    int done;
    int status;
};

static void dns_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct dns_query *q = arg;

    /* ares_destroy() ends the queries still pending after the deadline
     * with ARES_EDESTRUCTION: those timed out, and stay not done */
    q->done = status != ARES_EDESTRUCTION;
    q->status = status;
    if (status == ARES_SUCCESS && res) {
        /* Prefer the first address returned: c-ares sorts them (RFC 6724). */
        struct ares_addrinfo_node *n = res->nodes;
        if (n && n->ai_addrlen <= sizeof(q->t->sa)) {
            memcpy(&q->t->sa, n->ai_addr, n->ai_addrlen);
            q->t->salen = n->ai_addrlen;
            if (n->ai_family == AF_INET)
                ((struct sockaddr_in *)&q->t->sa)->sin_port = htons(q->port);
            else
                ((struct sockaddr_in6 *)&q->t->sa)->sin6_port = htons(q->port);
        }
    }
    if (res)
        ares_freeaddrinfo(res);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void resolve_all(struct dns_query *qs, size_t nq, int timeout_ms,
                        char *warn, size_t warnlen)
{
    static int lib_init;
    ares_channel ch;
    struct ares_options opt;

    if (nq == 0)
        return;
    if (!lib_init) {
        ares_library_init(ARES_LIB_INIT_ALL);
        lib_init = 1;
    }
    memset(&opt, 0, sizeof(opt));
    opt.timeout = timeout_ms < 1000 ? timeout_ms : 1000;
    opt.tries = 2;
    if (ares_init_options(&ch, &opt, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS) {
        if (warn)
            snprintf(warn, warnlen, "DNS: cannot initialise the resolver");
        return;
    }
    for (size_t i = 0; i < nq; i++) {
        struct ares_addrinfo_hints h;
        memset(&h, 0, sizeof(h));
        h.ai_family = AF_UNSPEC;
        h.ai_socktype = SOCK_STREAM;
        ares_getaddrinfo(ch, qs[i].t->name, NULL, &h, dns_cb, &qs[i]);
    }
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        size_t pending = 0;
        for (size_t i = 0; i < nq; i++)
            pending += !qs[i].done;
        if (pending == 0)
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
            if (ARES_GETSOCK_READABLE(bits, i))
                ev |= POLLIN;
            if (ARES_GETSOCK_WRITABLE(bits, i))
                ev |= POLLOUT;
            if (ev) {
                pfd[np].fd = socks[i];
                pfd[np].events = ev;
                pfd[np].revents = 0;
                np++;
            }
        }
        struct timeval tv, *tvp, maxtv = { 0, 100000 };
        tvp = ares_timeout(ch, &maxtv, &tv);
        int wait = (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000);
        if (wait > (int)(deadline - now))
            wait = (int)(deadline - now);
        poll(pfd, np, wait);
        for (int i = 0; i < np; i++) {
            ares_socket_t r = (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_socket_t w = (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_process_fd(ch, r, w);
        }
        if (np == 0)
            ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    }
    ares_destroy(ch);   /* runs the callbacks of queries still pending */
    size_t off = 0;
    for (size_t i = 0; i < nq; i++) {
        if (qs[i].t->salen == 0 && warn && off < warnlen)
            off += snprintf(warn + off, warnlen - off, "%scannot resolve %s: %s",
                            off ? "; " : "", qs[i].t->text,
                            qs[i].done ? ares_strerror(qs[i].status) : "timed out");
    }
}

/* u's health group: its targets in the registry, its bitmap. */
static int health_group(struct up_upstream *u)
{
    struct hc_member *m = calloc(u->ntargets ? u->ntargets : 1, sizeof(*m));
    const struct cfg_upstream_tls *tc = u->cfg->tls;

    if (m == NULL)
        return -1;
    for (size_t j = 0; j < u->ntargets; j++) {
        struct up_target *t = &u->targets[j];
        m[j].sa = t->salen ? (const struct sockaddr *)&t->sa : NULL;
        m[j].salen = t->salen;
        /* as a request: the configured SNI names the site, else host:port */
        m[j].host = tc && tc->sni ? tc->sni : t->host;
        m[j].sni = tc ? (tc->sni ? tc->sni : t->name[0] ? t->name : NULL) : NULL;
    }
    u->hg = hc_group_new(u->cfg->name, &u->cfg->health, m, u->ntargets);
    free(m);
    if (u->hg == NULL)
        return -1;
    u->hbits = u->hg->bits;
    for (size_t j = 0; j < u->ntargets; j++)
        u->targets[j].health = u->hg->t[j];
    return 0;
}

void up_set_publish(const struct up_set *set, SSL_CTX *const *tls)
{
    struct hc_group **g = calloc(set->n ? set->n : 1, sizeof(*g));
    bool *verify = calloc(set->n ? set->n : 1, sizeof(*verify));

    if (g && verify) {
        for (size_t i = 0; i < set->n; i++) {
            g[i] = set->v[i].hg;
            verify[i] = set->v[i].cfg->tls ? set->v[i].cfg->tls->verify : false;
        }
        hc_publish(g, tls, verify, set->n);
    }
    free(g);
    free(verify);
}

int up_set_build(const struct cfg_upstream *ups, size_t nups, struct up_set *set,
                 char *warn, size_t warnlen, int dns_timeout_ms)
{
    size_t nq = 0, g = 0;
    struct dns_query *qs = NULL;

    memset(set, 0, sizeof(*set));
    if (warn && warnlen)
        warn[0] = '\0';
    set->v = calloc(nups ? nups : 1, sizeof(*set->v));
    if (set->v == NULL)
        return -1;
    set->n = nups;
    for (size_t i = 0; i < nups; i++)
        nq += ups[i].ntargets;
    qs = calloc(nq ? nq : 1, sizeof(*qs));
    if (qs == NULL)
        goto fail;
    nq = 0;
    for (size_t i = 0; i < nups; i++) {
        const struct cfg_upstream *cu = &ups[i];
        struct up_upstream *u = &set->v[i];
        u->cfg = cu;
        u->index = i;
        u->ntargets = cu->ntargets;
        u->targets = calloc(cu->ntargets ? cu->ntargets : 1, sizeof(*u->targets));
        u->weights = calloc(cu->ntargets ? cu->ntargets : 1, sizeof(*u->weights));
        if (u->targets == NULL || u->weights == NULL)
            goto fail;
        for (size_t j = 0; j < cu->ntargets; j++) {
            const struct cfg_target *ct = &cu->targets[j];
            struct up_target *t = &u->targets[j];
            t->weight = u->weights[j] = ct->weight;
            t->gidx = g++;
            snprintf(t->text, sizeof(t->text), "%s", ct->addr.text);
            if (strchr(ct->addr.host, ':'))
                snprintf(t->host, sizeof(t->host), "[%s]:%u", ct->addr.host, ct->addr.port);
            else
                snprintf(t->host, sizeof(t->host), "%s:%u", ct->addr.host, ct->addr.port);
            if (ct->addr.is_ip) {
                memcpy(&t->sa, &ct->addr.sa, ct->addr.salen);
                t->salen = ct->addr.salen;
            } else {
                qs[nq].t = t;
                qs[nq].port = ct->addr.port;
                snprintf(t->name, sizeof(t->name), "%s", ct->addr.host);
                nq++;
            }
        }
    }
    set->ntargets = g;
    for (size_t i = 0; i < nups; i++)
        if (up_bal_build(&set->v[i]) != 0)
            goto fail;
    resolve_all(qs, nq, dns_timeout_ms, warn, warnlen);
    free(qs);
    qs = NULL;
    for (size_t i = 0; i < set->n; i++)
        if (health_group(&set->v[i]) != 0)
            goto fail;
    return 0;
fail:
    free(qs);
    up_set_free(set);
    return -1;
}

void up_set_free(struct up_set *set)
{
    if (set->v) {
        for (size_t i = 0; i < set->n; i++) {
            hc_group_free(set->v[i].hg);
            up_bal_free(&set->v[i]);
            free(set->v[i].targets);
            free(set->v[i].weights);
        }
        free(set->v);
    }
    memset(set, 0, sizeof(*set));
}
