/*
 * metrics.c - the families sluice exposes (metrics.h), each written once
 * through an emitter (mx.h: Prometheus text for GET /metrics, JSON for
 * GET /stats).
 *
 * Runs on the admin thread.  It only reads what workers publish: per-worker
 * counters with relaxed loads, per-route and per-upstream entries on
 * append-only lists, pool buckets on append-only lists, health states.
 */
#include "../policy/limit.h"
#include "../policy/redis.h"
#include "metrics.h"
#include "../upstream/dns.h"
#include "reload.h"
#include "snapshot.h"
#include "tls.h"
#include "version.h"
#include "worker.h"
#include "../core/hash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t start_ms;

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void gw_metrics_started(void)
{
    start_ms = wall_ms();
}

uint64_t gw_metrics_start_ms(void)
{
    return start_ms;
}

static const char *const status_classes[5] = { "1xx", "2xx", "3xx", "4xx", "5xx" };

/* ---- summing the workers ---- */

void gw_target_sum(const struct up_target *t, struct gw_target_sum *out)
{
    memset(out, 0, sizeof(*out));
    if (t->salen == 0)
        return;
    for (int i = 0; i < g_nworkers; i++) {
        struct pool_bucket *b = atomic_load_explicit(&g_workers[i].pool.all, memory_order_acquire);
        for (; b; b = atomic_load_explicit(&b->all_next, memory_order_acquire)) {
            if (b->salen != t->salen || memcmp(&b->sa, &t->sa, t->salen) != 0)
                continue;
            out->idle += atomic_load_explicit(&b->count, memory_order_relaxed);
            out->inflight += gw_cnt_get(&b->inflight);
            out->requests += gw_cnt_get(&b->requests);
            out->failures += gw_cnt_get(&b->failures);
            uint64_t opened = gw_cnt_get(&b->opened), closed = 0;
            for (int r = 0; r < POOL_CLOSE_N; r++) {
                uint64_t n = gw_cnt_get(&b->closed[r]);
                out->closed[r] += n;
                closed += n;
            }
            uint64_t open = opened > closed ? opened - closed : 0;
            uint64_t idle = atomic_load_explicit(&b->count, memory_order_relaxed);
            out->opened += opened;
            out->in_use += open > idle ? open - idle : 0;
            for (int k = 0; k < 5; k++)
                out->code[k] += gw_cnt_get(&b->code[k]);
            mx_hist_add(&out->resp, &b->resp);
            break;
        }
    }
}

struct name_sum {       /* per name, summed over workers */
    const char *name;
    uint64_t code[5];
    struct mx_hist h;       /* upstreams: response time; routes: time to first byte */
    struct mx_hist h2;      /* routes: stream duration */
    uint64_t open, bytes;   /* routes: streams open, stream bytes */
    uint64_t retries;       /* upstreams */
    uint64_t policy[POL_NCHECKS][POL_NRESULTS];     /* routes: decisions */
};

struct name_tab {       /* name -> name_sum, open addressing over indexes */
    struct name_sum *v;
    size_t n, cap;
    size_t *slots;      /* index + 1; 0 = empty */
    size_t scap;
};

static struct name_sum *find_name(struct name_tab *t, const char *name)
{
    if ((t->n + 1) * 2 > t->scap) {
        size_t ncap = t->scap ? t->scap * 2 : 128;
        size_t *ns = calloc(ncap, sizeof(*ns));
        if (ns == NULL)
            abort();
        for (size_t i = 0; i < t->n; i++) {
            size_t j = gw_hash_str(t->v[i].name) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = i + 1;
        }
        free(t->slots);
        t->slots = ns;
        t->scap = ncap;
    }
    size_t j = gw_hash_str(name) & (t->scap - 1);
    for (; t->slots[j]; j = (j + 1) & (t->scap - 1))
        if (strcmp(t->v[t->slots[j] - 1].name, name) == 0)
            return &t->v[t->slots[j] - 1];
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        struct name_sum *nv = realloc(t->v, t->cap * sizeof(*nv));
        if (nv == NULL)
            abort();
        t->v = nv;
    }
    memset(&t->v[t->n], 0, sizeof(t->v[0]));
    t->v[t->n].name = name;
    t->slots[j] = ++t->n;
    return &t->v[t->n - 1];
}

/* Every worker's counters, summed at scrape time. */
struct metric_sums {
    struct mx_hist dur, conn;
    uint64_t bin, bout, hits, misses, cconns, uconns, bsplice, bcopy, kon, koff;
    uint64_t hs[2][3];
    uint64_t closes[GW_END__N];
    uint64_t cancels[GW_CANCEL__N], heartbeats;
    struct name_tab rt, ut;
};

static void sum_worker(struct metric_sums *m, struct gw_stats *st)
{
    m->bin += gw_cnt_get(&st->bytes_in);
    m->bout += gw_cnt_get(&st->bytes_out);
    m->hits += gw_cnt_get(&st->pool_hits);
    m->misses += gw_cnt_get(&st->pool_misses);
    m->cconns += gw_cnt_get(&st->client_conns);
    m->uconns += gw_cnt_get(&st->upstream_conns);
    m->bsplice += gw_cnt_get(&st->body_splice);
    m->bcopy += gw_cnt_get(&st->body_copy);
    for (int x = 0; x < 2; x++)
        for (int y = 0; y < 3; y++)
            m->hs[x][y] += gw_cnt_get(&st->tls_hs[x][y]);
    for (int k = 0; k < GW_END__N; k++)
        m->closes[k] += gw_cnt_get(&st->closes[k]);
    m->kon += gw_cnt_get(&st->ktls_on);
    m->koff += gw_cnt_get(&st->ktls_fallback);
    mx_hist_add(&m->dur, &st->req_duration);
    mx_hist_add(&m->conn, &st->connect_time);
    for (struct gw_route_stats *r = atomic_load_explicit(&st->routes, memory_order_acquire); r;
         r = atomic_load_explicit(&r->next, memory_order_acquire)) {
        struct name_sum *ns = find_name(&m->rt, r->name);
        for (int k = 0; k < 5; k++)
            ns->code[k] += gw_cnt_get(&r->code[k]);
        mx_hist_add(&ns->h, &r->ttfb);
        mx_hist_add(&ns->h2, &r->stream_duration);
        ns->open += gw_cnt_get(&r->streams_open);
        ns->bytes += gw_cnt_get(&r->stream_bytes);
        for (int k = 0; k < POL_NCHECKS; k++)
            for (int x = 0; x < POL_NRESULTS; x++)
                ns->policy[k][x] += gw_cnt_get(&r->policy[k][x]);
    }
    for (int k = 0; k < GW_CANCEL__N; k++)
        m->cancels[k] += gw_cnt_get(&st->cancels[k]);
    m->heartbeats += gw_cnt_get(&st->sse_heartbeats);
    for (struct gw_ups_stats *u = atomic_load_explicit(&st->ups, memory_order_acquire); u;
         u = atomic_load_explicit(&u->next, memory_order_acquire)) {
        struct name_sum *ns = find_name(&m->ut, u->name);
        mx_hist_add(&ns->h, &u->resp);
        ns->retries += gw_cnt_get(&u->retries);
    }
}

/* ---- the families ---- */

/* The config's version and the reload counters. */
static void reload_metrics(struct mx_emit *e, const struct gw_snapshot *s)
{
    mx_scalar(e, "sluice_config_version", "gauge",
              "Version of the running config (1 at start, +1 per reload).", s->version);
    mx_family(e, "sluice_reloads_total", "counter", "Config reloads (PUT /config, SIGHUP) by result.");
    mx_value(e, &(struct mx_label){ "result", "ok" }, 1, atomic_load(&g_reloads_ok));
    mx_value(e, &(struct mx_label){ "result", "error" }, 1, atomic_load(&g_reloads_err));
    mx_scalar(e, "sluice_reload_routes_reused_total", "counter",
              "Routes a reload copied from the running config because their text was unchanged.",
              gw_reload_routes_reused());
    mx_scalar(e, "sluice_reload_route_index_kept_total", "counter",
              "Reloads that kept the running route index: no route moved in it.",
              gw_reload_index_kept());
    mx_scalar(e, "sluice_reload_builds_escalated_total", "counter",
              "Reloads (a PUT's upload and build) not done within the idle phase, raised by the watchdog.",
              gw_builds_escalated());
    mx_scalar(e, "sluice_reload_build_yields_total", "counter",
              "Times a build (or a PUT's upload) gave its core back between two turns.",
              gw_build_yields());
    struct gw_reload_last last;
    gw_reload_last(&last);
    mx_scalar(e, "sluice_reload_last_success", "gauge",
              "0 when the last reload was refused (the running config stayed), else 1 (also before any).",
              last.time_ms == 0 || last.ok);
    mx_scalar(e, "sluice_reload_last_timestamp_seconds", "gauge",
              "Wall-clock time the last reload ended, in seconds since the epoch (0: none since the start).",
              last.time_ms / 1000);
    mx_family(e, "sluice_dns_lookups_total", "counter",
              "Lookups of upstream target names (at a build, at the end of their TTL), by result.");
    uint64_t dns_failed = up_dns_failures();     /* first: a lookup is counted before its failure */
    mx_value(e, &(struct mx_label){ "result", "ok" }, 1, up_dns_lookups() - dns_failed);
    mx_value(e, &(struct mx_label){ "result", "failed" }, 1, dns_failed);
}

/* A histogram per route, for the routes that observed something. */
static void route_hists(struct mx_emit *e, const struct metric_sums *m, bool second)
{
    for (size_t i = 0; i < m->rt.n; i++) {
        const struct mx_hist *h = second ? &m->rt.v[i].h2 : &m->rt.v[i].h;
        if (mx_hist_count(h) == 0)
            continue;
        mx_hist(e, &(struct mx_label){ "route", m->rt.v[i].name }, 1, h);
    }
}

/* Time to first byte, streams, cancellations, heartbeats. */
static void stream_metrics(struct mx_emit *e, const struct metric_sums *m)
{
    mx_family(e, "sluice_ttfb_seconds", "histogram",
              "Time from a request's head to the first byte of its response body (the head, when it has none).");
    route_hists(e, m, false);
    mx_family(e, "sluice_streams_open", "gauge", "Streamed responses (SSE, NDJSON) in progress, by route.");
    for (size_t i = 0; i < m->rt.n; i++) {
        if (m->rt.v[i].open == 0 && mx_hist_count(&m->rt.v[i].h2) == 0)
            continue;
        mx_value(e, &(struct mx_label){ "route", m->rt.v[i].name }, 1, m->rt.v[i].open);
    }
    mx_family(e, "sluice_stream_duration_seconds", "histogram",
              "Duration of streamed responses, head to end, by route.");
    route_hists(e, m, true);
    mx_family(e, "sluice_stream_bytes_total", "counter", "Body bytes of streamed responses that ended, by route.");
    for (size_t i = 0; i < m->rt.n; i++) {
        if (mx_hist_count(&m->rt.v[i].h2) == 0)
            continue;
        mx_value(e, &(struct mx_label){ "route", m->rt.v[i].name }, 1, m->rt.v[i].bytes);
    }
    mx_family(e, "sluice_cancellations_total", "counter",
              "Clients that left while their request was with an upstream (its connection closed), by phase.");
    for (int k = 0; k < GW_CANCEL__N; k++)
        mx_value(e, &(struct mx_label){ "phase", gw_cancel_names[k] }, 1, m->cancels[k]);
    mx_scalar(e, "sluice_sse_heartbeats_total", "counter", "SSE comment lines sent to silent event streams.",
              m->heartbeats);
}

/* Requests, latencies, bytes, connections, closes, the pool. */
static void traffic_metrics(struct mx_emit *e, const struct metric_sums *m)
{
    mx_family(e, "sluice_requests_total", "counter", "Requests answered, by route and status class.");
    for (size_t i = 0; i < m->rt.n; i++)
        for (int k = 0; k < 5; k++) {
            if (m->rt.v[i].code[k] == 0)
                continue;
            struct mx_label l[2] = { { "route", m->rt.v[i].name }, { "code", status_classes[k] } };
            mx_value(e, l, 2, m->rt.v[i].code[k]);
        }
    mx_family(e, "sluice_request_duration_seconds", "histogram",
              "Time from a request's head to its last response byte handed to the client.");
    mx_hist(e, NULL, 0, &m->dur);
    mx_family(e, "sluice_upstream_response_seconds", "histogram",
              "Time from a request's head to its upstream response header.");
    for (size_t i = 0; i < m->ut.n; i++)
        mx_hist(e, &(struct mx_label){ "upstream", m->ut.v[i].name }, 1, &m->ut.v[i].h);
    mx_family(e, "sluice_retries_total", "counter",
              "Requests sent again to another target of the upstream after an attempt failed before any "
              "response byte (upstreams[].retries).");
    for (size_t i = 0; i < m->ut.n; i++)
        mx_value(e, &(struct mx_label){ "upstream", m->ut.v[i].name }, 1, m->ut.v[i].retries);
    mx_family(e, "sluice_upstream_connect_seconds", "histogram", "Time to establish upstream connections.");
    mx_hist(e, NULL, 0, &m->conn);
    mx_scalar(e, "sluice_received_bytes_total", "counter", "Bytes received from clients.", m->bin);
    mx_scalar(e, "sluice_sent_bytes_total", "counter", "Bytes sent to clients.", m->bout);
    mx_scalar(e, "sluice_client_connections", "gauge", "Open client connections.", m->cconns);
    mx_scalar(e, "sluice_upstream_connections", "gauge", "Open upstream connections, pooled ones included.",
              m->uconns);
    mx_family(e, "sluice_closes_total", "counter",
              "Ends of transactions, and of client connections between them, by reason.");
    for (int k = 0; k < GW_END__N; k++)
        mx_value(e, &(struct mx_label){ "reason", gw_end_names[k] }, 1, m->closes[k]);
    mx_scalar(e, "sluice_pool_hits_total", "counter", "Requests sent over a pooled upstream connection.", m->hits);
    mx_scalar(e, "sluice_pool_misses_total", "counter", "Upstream connections opened because none was pooled.",
              m->misses);
    mx_family(e, "sluice_body_bytes_total", "counter",
              "Body bytes moved between sockets, by splice(2) or copied through user space.");
    mx_value(e, &(struct mx_label){ "path", "splice" }, 1, m->bsplice);
    mx_value(e, &(struct mx_label){ "path", "copy" }, 1, m->bcopy);
}

/* The routes' policy checks (SPEC "Traffic policy"): a route's series
 * appear once it decided something. */
static void policy_metrics(struct mx_emit *e, const struct metric_sums *m)
{
    mx_family(e, "sluice_policy_decisions_total", "counter",
              "Policy checks decided, by route, check (access, auth, rate_limit, token_budget) and result "
              "(allowed, denied, error).");
    for (size_t i = 0; i < m->rt.n; i++)
        for (int k = 0; k < POL_NCHECKS; k++) {
            const uint64_t *v = m->rt.v[i].policy[k];
            if (v[0] == 0 && v[1] == 0 && v[2] == 0)
                continue;
            for (int x = 0; x < POL_NRESULTS; x++) {
                struct mx_label l[3] = { { "route", m->rt.v[i].name }, { "check", pol_check_names[k] },
                                         { "result", pol_result_names[x] } };
                mx_value(e, l, 3, v[x]);
            }
        }
    mx_scalar(e, "sluice_policy_password_hashes_total", "counter",
              "Password hashes computed by the verifier threads (auth.basic; a cached credential costs none).",
              pol_hashes_total());
    mx_scalar(e, "sluice_policy_jwt_verifications_total", "counter",
              "Bearer tokens checked in full (auth.jwt; one a worker has verified before is not).",
              pol_jwt_verifications_total());
}

static void tls_metrics(struct mx_emit *e, const struct metric_sums *m)
{
    static const char *const hs_side[2] = { "listener", "upstream" };
    static const char *const hs_res[3] = { "full", "resumed", "failed" };

    mx_family(e, "sluice_tls_handshakes_total", "counter",
              "TLS handshakes with clients (side=listener) and targets (side=upstream), by result.");
    for (int x = 0; x < 2; x++)
        for (int y = 0; y < 3; y++) {
            struct mx_label l[2] = { { "side", hs_side[x] }, { "result", hs_res[y] } };
            mx_value(e, l, 2, m->hs[x][y]);
        }
    mx_family(e, "sluice_ktls_connections_total", "counter",
              "TLS client connections on listeners with ktls on: offloaded to the kernel, or served by "
              "user-space TLS (fallback).");
    mx_value(e, &(struct mx_label){ "result", "offloaded" }, 1, m->kon);
    mx_value(e, &(struct mx_label){ "result", "fallback" }, 1, m->koff);
    mx_scalar(e, "sluice_ktls_available", "gauge", "1 when the kernel has the TLS ULP (kernel TLS can be used).",
              gw_tls_ktls_available());
}

/* Per target: health, traffic and its upstream connections, one family
 * per pass (a family's samples go together). */
enum { TM_HEALTHY, TM_REQUESTS, TM_FAILURES, TM_IDLE, TM_IN_USE, TM_OPENED, TM_CLOSED,
       TM_CONNS, TM_QUEUED, TM_Q_FULL, TM_Q_TIMEOUT, TM_RESPONSES, TM_RESP_SECONDS, TM_N };

static const struct {
    const char *name, *type, *help;
} target_families[TM_N] = {
    [TM_HEALTHY] = { "sluice_target_healthy", "gauge", "1 when a target may be picked, 0 while marked down." },
    [TM_REQUESTS] = { "sluice_target_requests_total", "counter", "Requests sent to a target." },
    [TM_FAILURES] = { "sluice_target_failures_total", "counter",
                      "Connections to a target that failed before a response." },
    [TM_IDLE] = { "sluice_pool_idle", "gauge", "Idle pooled connections to a target (all workers)." },
    [TM_IN_USE] = { "sluice_pool_in_use", "gauge", "Connections to a target carrying a request now." },
    [TM_OPENED] = { "sluice_pool_opened_total", "counter", "Connections opened to a target." },
    [TM_CLOSED] = { "sluice_pool_closed_total", "counter", "Connections to a target closed, by reason." },
    [TM_CONNS] = { "sluice_target_connections", "gauge",
                   "Open connections to a target, idle ones too (what pool.max_connections bounds)." },
    [TM_QUEUED] = { "sluice_queue_waiting", "gauge",
                    "Requests waiting for a connection to a target at pool.max_connections." },
    [TM_Q_FULL] = { "sluice_queue_overflows_total", "counter",
                    "Requests answered 503 because a target's queue was full (pool.max_queue)." },
    [TM_Q_TIMEOUT] = { "sluice_queue_timeouts_total", "counter",
                       "Requests answered 503 after waiting pool.queue_timeout_ms for a connection." },
    [TM_RESPONSES] = { "sluice_target_responses_total", "counter",
                       "Response heads from a target, by status class (classes seen so far)." },
    [TM_RESP_SECONDS] = { "sluice_target_response_seconds", "histogram",
                          "Time from a request's head to a target's response header (targets that answered)." },
};

static void target_metrics(struct mx_emit *e, const struct gw_snapshot *s)
{
    uint64_t now = lt_now_ms();

    for (int pass = 0; pass < TM_N; pass++) {
        mx_family(e, target_families[pass].name, target_families[pass].type, target_families[pass].help);
        for (size_t i = 0; i < s->ups.n; i++)
            for (size_t j = 0; j < s->ups.v[i].ntargets; j++) {
                const struct up_upstream *u = &s->ups.v[i];
                const struct up_target *t = &u->targets[j];
                struct mx_label l[3] = { { "upstream", u->cfg->name }, { "target", t->text }, { "reason", "" } };
                struct gw_target_sum sum;
                gw_target_sum(t, &sum);
                if (pass == TM_CLOSED) {
                    for (int r = 0; r < POOL_CLOSE_N; r++) {
                        l[2].value = pool_close_names[r];
                        mx_value(e, l, 3, sum.closed[r]);
                    }
                    continue;
                }
                if (pass == TM_RESPONSES) {
                    l[2].name = "code";
                    for (int k = 0; k < 5; k++) {
                        l[2].value = status_classes[k];
                        if (sum.code[k])
                            mx_value(e, l, 3, sum.code[k]);
                    }
                    continue;
                }
                if (pass == TM_RESP_SECONDS) {
                    if (mx_hist_count(&sum.resp))
                        mx_hist(e, l, 2, &sum.resp);
                    continue;
                }
                const struct hc_target *h = t->health;
                uint64_t v;
                if (pass >= TM_CONNS)
                    v = h == NULL ? 0
                      : pass == TM_CONNS ? atomic_load_explicit(&h->conns, memory_order_relaxed)
                      : pass == TM_QUEUED ? atomic_load_explicit(&h->waiting, memory_order_relaxed)
                      : pass == TM_Q_FULL ? atomic_load_explicit(&h->q_overflows, memory_order_relaxed)
                      : atomic_load_explicit(&h->q_timeouts, memory_order_relaxed);
                else
                    v = pass == TM_HEALTHY ? up_target_ok(u, j, now)
                      : pass == TM_REQUESTS ? sum.requests
                      : pass == TM_FAILURES ? sum.failures
                      : pass == TM_IDLE ? sum.idle
                      : pass == TM_IN_USE ? sum.in_use : sum.opened;
                mx_value(e, l, 2, v);
            }
    }
}

/* Active checks and ejections per target. */
static void health_metrics(struct mx_emit *e, const struct gw_snapshot *s)
{
    static const char *const names[3] = { "sluice_health_probes_total",
                                          "sluice_health_transitions_total",
                                          "sluice_outlier_ejections_total" };
    static const char *const help[3] = {
        "Active health probes of a target, by result (ok: the expected status in time).",
        "Times active checks took a target up or down.",
        "Times passive health ejected a target." };
    static const struct mx_label extra[2][2] = { { { "result", "ok" }, { "result", "failed" } },
                                                 { { "to", "up" }, { "to", "down" } } };
    uint64_t now = lt_now_ms();

    for (int pass = 0; pass < 3; pass++) {
        mx_family(e, names[pass], "counter", help[pass]);
        for (size_t i = 0; i < s->ups.n; i++)
            for (size_t j = 0; j < s->ups.v[i].ntargets; j++) {
                const struct up_target *t = &s->ups.v[i].targets[j];
                struct hc_view v;
                if (t->health == NULL)
                    continue;
                hc_view(t->health, now, &v);
                uint64_t val[3][2] = { { v.probes_ok, v.probes_bad }, { v.went_up, v.went_down },
                                       { v.ejections, 0 } };
                struct mx_label l[3] = { { "upstream", s->ups.v[i].cfg->name }, { "target", t->text } };
                for (int k = 0; k < (pass == 2 ? 1 : 2); k++) {
                    if (pass < 2)
                        l[2] = extra[pass][k];
                    mx_value(e, l, pass < 2 ? 3 : 2, val[pass][k]);
                }
            }
    }
}

/* rate_limit_store errors and the tokens token_budget routes counted
 * (policy/limit.h: shared tables of atomics, not per worker). */
static void tokens_one(void *arg, const char *route, const char *auth_id, const char *kind, uint64_t v)
{
    struct mx_label l[3] = { { "route", route }, { "auth_id", auth_id }, { "kind", kind } };

    mx_value(arg, l, 3, v);
}

static void limit_metrics(struct mx_emit *e)
{
    mx_scalar(e, "sluice_policy_store_errors_total", "counter",
              "rate_limit_store calls that failed (Redis down, slow, or refusing), for rate_limit and token_budget.",
              pol_store_errors());
    mx_family(e, "sluice_tokens_total", "counter",
              "LLM tokens read from the usage of token_budget routes' responses, by route, auth id and kind.");
    pol_tokens_each(tokens_one, e);
}

/* What runs: the build, since when, how many workers. */
static void process_metrics(struct mx_emit *e)
{
    mx_family(e, "sluice_build_info", "gauge", "Always 1; the version label says which sluice runs.");
    mx_value(e, &(struct mx_label){ "version", SLUICE_VERSION }, 1, 1);
    mx_scalar(e, "sluice_start_time_seconds", "gauge", "Wall-clock start of the process, in seconds since the epoch.",
              start_ms / 1000);
    mx_scalar(e, "sluice_workers", "gauge", "Worker threads (each with its own event loop).", (uint64_t)g_nworkers);
}

void gw_metrics_emit(struct mx_emit *e, const struct gw_snapshot *s)
{
    struct metric_sums m;

    memset(&m, 0, sizeof(m));
    for (int i = 0; i < g_nworkers; i++)
        sum_worker(&m, &g_workers[i].stats);
    traffic_metrics(e, &m);
    stream_metrics(e, &m);
    policy_metrics(e, &m);
    tls_metrics(e, &m);
    target_metrics(e, s);
    health_metrics(e, s);
    reload_metrics(e, s);
    limit_metrics(e);
    process_metrics(e);
    free(m.rt.v);
    free(m.rt.slots);
    free(m.ut.v);
    free(m.ut.slots);
}
