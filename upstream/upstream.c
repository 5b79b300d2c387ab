/* upstream.c - the runtime set: targets (names from the resolver, dns.h),
 * their health groups, and the balancers' shared state (balance.h). */
#include "upstream.h"
#include "dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Target t of an upstream from config target ct: address sa (port set
 * here), or none (salen 0). */
static void target_init(struct up_target *t, const struct cfg_target *ct, size_t gidx,
                        const struct sockaddr_storage *sa, socklen_t salen)
{
    t->weight = ct->weight;
    t->gidx = gidx;
    if (strchr(ct->addr.host, ':'))
        snprintf(t->host, sizeof(t->host), "[%s]:%u", ct->addr.host, ct->addr.port);
    else
        snprintf(t->host, sizeof(t->host), "%s:%u", ct->addr.host, ct->addr.port);
    if (ct->addr.is_ip) {
        snprintf(t->text, sizeof(t->text), "%s", ct->addr.text);
        memcpy(&t->sa, &ct->addr.sa, ct->addr.salen);
        t->salen = ct->addr.salen;
        return;
    }
    snprintf(t->name, sizeof(t->name), "%s", ct->addr.host);
    if (salen == 0) {
        snprintf(t->text, sizeof(t->text), "%s", ct->addr.text);
        return;
    }
    char ip[INET6_ADDRSTRLEN];
    memcpy(&t->sa, sa, salen);
    t->salen = salen;
    if (sa->ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&t->sa;
        s4->sin_port = htons(ct->addr.port);
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->sa;
        s6->sin6_port = htons(ct->addr.port);
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
    }
    /* one per address: logs, /status and the hash ring tell them apart */
    snprintf(t->text, sizeof(t->text), "%s (%s)", ct->addr.text, ip);
}

int up_set_build(const struct cfg_upstream *ups, size_t nups, struct up_set *set,
                 char *warn, size_t warnlen, int dns_timeout_ms)
{
    size_t nq = 0, g = 0, off = 0;
    const char **names = NULL;
    struct up_dns_answer *ans = NULL;

    memset(set, 0, sizeof(*set));
    if (warn && warnlen)
        warn[0] = '\0';
    set->v = calloc(nups ? nups : 1, sizeof(*set->v));
    if (set->v == NULL)
        return -1;
    set->n = nups;
    for (size_t i = 0; i < nups; i++)
        for (size_t j = 0; j < ups[i].ntargets; j++)
            nq += !ups[i].targets[j].addr.is_ip;
    names = calloc(nq ? nq : 1, sizeof(*names));
    ans = calloc(nq ? nq : 1, sizeof(*ans));
    set->dns = calloc(nq ? nq : 1, sizeof(*set->dns));
    if (names == NULL || ans == NULL || set->dns == NULL)
        goto fail;
    nq = 0;
    for (size_t i = 0; i < nups; i++)
        for (size_t j = 0; j < ups[i].ntargets; j++)
            if (!ups[i].targets[j].addr.is_ip)
                names[nq++] = ups[i].targets[j].addr.host;
    /* every name at once: from the resolver's cache, or looked up now */
    up_dns_acquire(names, nq, dns_timeout_ms, ans, set->dns);
    set->ndns = nq;
    nq = 0;
    for (size_t i = 0; i < nups; i++) {
        const struct cfg_upstream *cu = &ups[i];
        struct up_upstream *u = &set->v[i];
        size_t nt = 0, q = nq;
        u->cfg = cu;
        u->index = i;
        /* a name is one target per address (one, never picked, without any) */
        for (size_t j = 0; j < cu->ntargets; j++)
            if (cu->targets[j].addr.is_ip)
                nt++;
            else
                nt += ans[q].n ? ans[q++].n : (q++, 1);
        u->ntargets = nt;
        u->targets = calloc(nt ? nt : 1, sizeof(*u->targets));
        u->weights = calloc(nt ? nt : 1, sizeof(*u->weights));
        if (u->targets == NULL || u->weights == NULL)
            goto fail;
        nt = 0;
        for (size_t j = 0; j < cu->ntargets; j++) {
            const struct cfg_target *ct = &cu->targets[j];
            if (ct->addr.is_ip) {
                target_init(&u->targets[nt++], ct, g++, NULL, 0);
                continue;
            }
            const struct up_dns_answer *a = &ans[nq++];
            if (a->n == 0) {
                target_init(&u->targets[nt++], ct, g++, NULL, 0);
                if (warn && off < warnlen)
                    off += (size_t)snprintf(warn + off, warnlen - off, "%scannot resolve %s: %s",
                                            off ? "; " : "", ct->addr.text, a->err);
            }
            for (size_t k = 0; k < a->n; k++)
                target_init(&u->targets[nt++], ct, g++, &a->a[k], a->alen[k]);
        }
        for (size_t j = 0; j < nt; j++)
            u->weights[j] = u->targets[j].weight;
    }
    set->ntargets = g;
    free(names);
    free(ans);
    names = NULL;
    ans = NULL;
    for (size_t i = 0; i < nups; i++)
        if (up_bal_build(&set->v[i]) != 0)
            goto fail;
    for (size_t i = 0; i < set->n; i++)
        if (health_group(&set->v[i]) != 0)
            goto fail;
    return 0;
fail:
    free(names);
    free(ans);
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
    for (size_t i = 0; i < set->ndns; i++)
        up_dns_release(set->dns[i]);
    free(set->dns);
    memset(set, 0, sizeof(*set));
}
