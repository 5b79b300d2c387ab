/*
 * admin.c - the admin API (SPEC "Admin API") on its own thread and event
 * loop, never on a worker's: /healthz, /config (GET, PUT), /status, /metrics.
 *
 * It only reads what workers publish (snapshots under g_snap_lock, per-worker
 * counters with relaxed loads, pool buckets on append-only lists) and
 * changes the proxy through gw_config_apply(), the same path as SIGHUP.
 */
#include "gateway.h"
#include "hash.h"
#include "tls.h"

#include <cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define ADMIN_MAX_BODY (32u * 1024 * 1024)  /* a 10,000-route document fits */

static struct {
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev;
    int stop_fd;
    bool running;
} A;

/* ---- replies ---- */

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add(b, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, code, NULL, b);
    evbuffer_free(b);
}

static void reply_json(struct evhttp_request *req, int code, cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);

    if (text == NULL)
        abort();
    size_t n = strlen(text);
    char *nl = realloc(text, n + 2);
    if (nl == NULL)
        abort();
    nl[n] = '\n';
    nl[n + 1] = '\0';
    reply(req, code, "application/json", nl, n + 1);
    free(nl);
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "error", msg);
    if (code == 401)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
    reply_json(req, code, d);
    cJSON_Delete(d);
}

/* ---- auth ---- */

/* Compare digests, not the strings: the time taken says nothing about how
 * much of the token matched, nor its length. */
static bool token_ok(struct evhttp_request *req, const char *token)
{
    unsigned char a[32], b[32];
    unsigned int al = 0, bl = 0;

    if (token == NULL)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    if (!EVP_Digest(h, strlen(h), a, &al, EVP_sha256(), NULL) ||
        !EVP_Digest(token, strlen(token), b, &bl, EVP_sha256(), NULL) || al != 32 || bl != 32)
        return false;
    return CRYPTO_memcmp(a, b, 32) == 0;
}

/* ---- /config ---- */

static void redact(cJSON *node, bool in_admin)
{
    for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
        if (c->string && cJSON_IsString(c) &&
            (strcmp(c->string, "key_pem") == 0 || (in_admin && strcmp(c->string, "token") == 0)))
            cJSON_SetValuestring(c, "REDACTED");
        else if (cJSON_IsObject(c) || cJSON_IsArray(c))
            redact(c, c->string && strcmp(c->string, "admin") == 0 && node->string == NULL);
    }
}

static void get_config(struct evhttp_request *req, const struct gw_snapshot *s)
{
    cJSON *doc = cJSON_Parse(s->cfg->source);

    if (doc == NULL) {
        reply_error(req, 500, "the running document cannot be re-read");
        return;
    }
    redact(doc, false);
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "version");
    cJSON_AddNumberToObject(doc, "version", (double)s->version);
    reply_json(req, 200, doc);
    cJSON_Delete(doc);
}

/* Free what workers released, once the answer is on its way: a 10,000-route
 * snapshot takes milliseconds to free, and the PUT need not wait for it. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_snapshot_reap();
}

static void put_config(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    struct cfg_errors errs = { 0 };
    uint64_t version = 0;

    if (gw_config_apply(body, len, "PUT /config", &errs, &version) == 0) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "version", (double)version);
        reply_json(req, 200, d);
        cJSON_Delete(d);
        struct timeval soon = { 0, 1000 };
        event_base_once(A.base, -1, EV_TIMEOUT, reap_cb, NULL, &soon);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "error", errs.n ? errs.v[0].message : "refused");
    cJSON_AddStringToObject(d, "path", errs.n ? errs.v[0].path : "");
    cJSON *all = cJSON_AddArrayToObject(d, "errors");
    for (size_t i = 0; i < errs.n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", errs.v[i].path);
        cJSON_AddStringToObject(e, "error", errs.v[i].message);
        cJSON_AddItemToArray(all, e);
    }
    reply_json(req, 400, d);
    cJSON_Delete(d);
    cfg_errors_clear(&errs);
}

/* ---- /status ---- */

struct target_sum {
    uint64_t idle, inflight, requests, failures;
};

/* Sum a target's counters over the workers: each worker keeps one bucket
 * per address, found on its append-only list. */
static void sum_target(const struct up_target *t, struct target_sum *out)
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
            break;
        }
    }
}

static void get_status(struct evhttp_request *req, const struct gw_snapshot *s)
{
    cJSON *d = cJSON_CreateObject();
    uint64_t now = gw_now_ms(NULL);

    cJSON_AddNumberToObject(d, "version", (double)s->version);
    cJSON *ups = cJSON_AddArrayToObject(d, "upstreams");
    for (size_t i = 0; i < s->ups.n; i++) {
        const struct up_upstream *u = &s->ups.v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", u->cfg->name);
        cJSON *ts = cJSON_AddArrayToObject(o, "targets");
        for (size_t j = 0; j < u->ntargets; j++) {
            const struct up_target *t = &u->targets[j];
            struct target_sum sum;
            sum_target(t, &sum);
            cJSON *to = cJSON_CreateObject();
            cJSON_AddStringToObject(to, "address", t->text);
            cJSON_AddBoolToObject(to, "healthy", t->health && hc_is_up(t->health, now));
            cJSON_AddNumberToObject(to, "in_flight", (double)sum.inflight);
            cJSON_AddNumberToObject(to, "idle", (double)sum.idle);
            cJSON_AddNumberToObject(to, "requests", (double)sum.requests);
            cJSON_AddNumberToObject(to, "failures", (double)sum.failures);
            cJSON_AddItemToArray(ts, to);
        }
        cJSON_AddItemToArray(ups, o);
    }
    reply_json(req, 200, d);
    cJSON_Delete(d);
}

/* ---- /metrics ---- */

static void label_value(struct evbuffer *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(b, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, v, 1);
    }
}

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one unlabelled sample: the name is written once. */
static void scalar(struct evbuffer *b, const char *name, const char *type, const char *help, uint64_t v)
{
    family(b, name, type, help);
    evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void hist_sum(struct gw_hist *dst, const struct gw_hist *src)
{
    for (int i = 0; i <= GW_HIST_N; i++)
        dst->b[i] += gw_cnt_get(&src->b[i]);
    dst->sum_ns += gw_cnt_get(&src->sum_ns);
}

static void hist_print(struct evbuffer *b, const char *name, const char *labels, const struct gw_hist *h)
{
    uint64_t cum = 0;

    for (int i = 0; i < GW_HIST_N; i++) {
        cum += h->b[i];
        evbuffer_add_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "",
                            gw_hist_le[i], (unsigned long long)cum);
    }
    cum += h->b[GW_HIST_N];
    evbuffer_add_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "",
                        (unsigned long long)cum);
    if (*labels) {
        evbuffer_add_printf(b, "%s_sum{%s} %.9f\n%s_count{%s} %llu\n", name, labels,
                            (double)h->sum_ns / 1e9, name, labels, (unsigned long long)cum);
    } else {
        evbuffer_add_printf(b, "%s_sum %.9f\n%s_count %llu\n", name, (double)h->sum_ns / 1e9,
                            name, (unsigned long long)cum);
    }
}

struct name_sum {       /* per name, summed over workers */
    const char *name;
    uint64_t code[5];
    struct gw_hist h;
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

static void get_metrics(struct evhttp_request *req, const struct gw_snapshot *s)
{
    struct evbuffer *b = evbuffer_new();
    struct gw_hist dur = { 0 }, conn = { 0 };
    uint64_t bin = 0, bout = 0, hits = 0, misses = 0, cconns = 0, uconns = 0;
    uint64_t bsplice = 0, bcopy = 0, hs[2][3] = { { 0 } }, kon = 0, koff = 0;
    struct name_tab rt = { 0 }, ut = { 0 };
    uint64_t now = gw_now_ms(NULL);

    for (int i = 0; i < g_nworkers; i++) {
        struct gw_stats *st = &g_workers[i].stats;
        bin += gw_cnt_get(&st->bytes_in);
        bout += gw_cnt_get(&st->bytes_out);
        hits += gw_cnt_get(&st->pool_hits);
        misses += gw_cnt_get(&st->pool_misses);
        cconns += gw_cnt_get(&st->client_conns);
        uconns += gw_cnt_get(&st->upstream_conns);
        bsplice += gw_cnt_get(&st->body_splice);
        bcopy += gw_cnt_get(&st->body_copy);
        for (int x = 0; x < 2; x++)
            for (int y = 0; y < 3; y++)
                hs[x][y] += gw_cnt_get(&st->tls_hs[x][y]);
        kon += gw_cnt_get(&st->ktls_on);
        koff += gw_cnt_get(&st->ktls_fallback);
        hist_sum(&dur, &st->req_duration);
        hist_sum(&conn, &st->connect_time);
        for (struct gw_route_stats *r = atomic_load_explicit(&st->routes, memory_order_acquire); r;
             r = atomic_load_explicit(&r->next, memory_order_acquire)) {
            struct name_sum *ns = find_name(&rt, r->name);
            for (int k = 0; k < 5; k++)
                ns->code[k] += gw_cnt_get(&r->code[k]);
        }
        for (struct gw_ups_stats *u = atomic_load_explicit(&st->ups, memory_order_acquire); u;
             u = atomic_load_explicit(&u->next, memory_order_acquire))
            hist_sum(&find_name(&ut, u->name)->h, &u->resp);
    }

    family(b, "sluice_requests_total", "counter", "Requests answered, by route and status class.");
    for (size_t i = 0; i < rt.n; i++)
        for (int k = 0; k < 5; k++) {
            if (rt.v[i].code[k] == 0)
                continue;
            evbuffer_add(b, "sluice_requests_total{route=\"", 29);
            label_value(b, rt.v[i].name);
            evbuffer_add_printf(b, "\",code=\"%dxx\"} %llu\n", k + 1, (unsigned long long)rt.v[i].code[k]);
        }
    family(b, "sluice_request_duration_seconds", "histogram", "Time from a request's head to its last response byte handed to the client.");
    hist_print(b, "sluice_request_duration_seconds", "", &dur);
    family(b, "sluice_upstream_response_seconds", "histogram", "Time from a request's head to its upstream response header.");
    for (size_t i = 0; i < ut.n; i++) {
        struct evbuffer *lb = evbuffer_new();
        evbuffer_add(lb, "upstream=\"", 10);
        label_value(lb, ut.v[i].name);
        evbuffer_add(lb, "\"", 1);
        evbuffer_add(lb, "", 1);
        hist_print(b, "sluice_upstream_response_seconds", (const char *)evbuffer_pullup(lb, -1), &ut.v[i].h);
        evbuffer_free(lb);
    }
    family(b, "sluice_upstream_connect_seconds", "histogram", "Time to establish upstream connections.");
    hist_print(b, "sluice_upstream_connect_seconds", "", &conn);
    scalar(b, "sluice_received_bytes_total", "counter", "Bytes received from clients.", bin);
    scalar(b, "sluice_sent_bytes_total", "counter", "Bytes sent to clients.", bout);
    scalar(b, "sluice_client_connections", "gauge", "Open client connections.", cconns);
    scalar(b, "sluice_upstream_connections", "gauge", "Open upstream connections, pooled ones included.", uconns);
    scalar(b, "sluice_pool_hits_total", "counter", "Requests sent over a pooled upstream connection.", hits);
    scalar(b, "sluice_pool_misses_total", "counter", "Upstream connections opened because none was pooled.", misses);
    family(b, "sluice_body_bytes_total", "counter", "Body bytes moved between sockets, by splice(2) or copied through user space.");
    evbuffer_add_printf(b, "sluice_body_bytes_total{path=\"splice\"} %llu\n", (unsigned long long)bsplice);
    evbuffer_add_printf(b, "sluice_body_bytes_total{path=\"copy\"} %llu\n", (unsigned long long)bcopy);
    family(b, "sluice_tls_handshakes_total", "counter", "TLS handshakes with clients (side=listener) and targets (side=upstream), by result.");
    static const char *const hs_side[2] = { "listener", "upstream" };
    static const char *const hs_res[3] = { "full", "resumed", "failed" };
    for (int x = 0; x < 2; x++)
        for (int y = 0; y < 3; y++)
            evbuffer_add_printf(b, "sluice_tls_handshakes_total{side=\"%s\",result=\"%s\"} %llu\n",
                                hs_side[x], hs_res[y], (unsigned long long)hs[x][y]);
    family(b, "sluice_ktls_connections_total", "counter", "TLS client connections on listeners with ktls on: offloaded to the kernel, or served by user-space TLS (fallback).");
    evbuffer_add_printf(b, "sluice_ktls_connections_total{result=\"offloaded\"} %llu\n", (unsigned long long)kon);
    evbuffer_add_printf(b, "sluice_ktls_connections_total{result=\"fallback\"} %llu\n", (unsigned long long)koff);
    scalar(b, "sluice_ktls_available", "gauge", "1 when the kernel has the TLS ULP (kernel TLS can be used).", gw_tls_ktls_available());

    family(b, "sluice_target_healthy", "gauge", "1 when a target may be picked, 0 while marked down.");
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            family(b, "sluice_target_requests_total", "counter", "Requests sent to a target.");
        if (pass == 2)
            family(b, "sluice_target_failures_total", "counter", "Connections to a target that failed before a response.");
        for (size_t i = 0; i < s->ups.n; i++)
            for (size_t j = 0; j < s->ups.v[i].ntargets; j++) {
                const struct up_target *t = &s->ups.v[i].targets[j];
                struct target_sum sum;
                uint64_t v;
                if (pass == 0) {
                    v = t->health && hc_is_up(t->health, now);
                } else {
                    sum_target(t, &sum);
                    v = pass == 1 ? sum.requests : sum.failures;
                }
                evbuffer_add_printf(b, "%s{upstream=\"", pass == 0 ? "sluice_target_healthy" :
                                    pass == 1 ? "sluice_target_requests_total" : "sluice_target_failures_total");
                label_value(b, s->ups.v[i].cfg->name);
                evbuffer_add(b, "\",target=\"", 10);
                label_value(b, t->text);
                evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)v);
            }
    }
    scalar(b, "sluice_config_version", "gauge", "Version of the running config (1 at start, +1 per reload).",
           s->version);
    family(b, "sluice_reloads_total", "counter", "Config reloads (PUT /config, SIGHUP) by result.");
    evbuffer_add_printf(b, "sluice_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)atomic_load(&g_reloads_ok));
    evbuffer_add_printf(b, "sluice_reloads_total{result=\"error\"} %llu\n", (unsigned long long)atomic_load(&g_reloads_err));
    scalar(b, "sluice_reload_routes_reused_total", "counter",
           "Routes a reload copied from the running config because their text was unchanged.",
           gw_reload_routes_reused());
    scalar(b, "sluice_reload_route_index_kept_total", "counter",
           "Reloads that kept the running route index: no route moved in it.",
           gw_reload_index_kept());
    scalar(b, "sluice_reload_builds_escalated_total", "counter",
           "Reload builds that got too little idle CPU and finished at normal priority.",
           gw_builds_escalated());
    free(rt.v);
    free(rt.slots);
    free(ut.v);
    free(ut.slots);

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, NULL, b);
    evbuffer_free(b);
}

/* ---- dispatch ---- */

static void admin_cb(struct evhttp_request *req, void *arg)
{
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    char path[256];
    size_t n = strcspn(uri, "?#");

    if (n >= sizeof(path))
        n = sizeof(path) - 1;
    memcpy(path, uri, n);
    path[n] = '\0';

    if (strcmp(path, "/healthz") == 0) {
        if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
            reply(req, 200, "text/plain", "ok\n", 3);
        else
            reply_error(req, 405, "method not allowed");
        return;
    }
    struct gw_snapshot *s = gw_snapshot_current();
    if (!token_ok(req, s->cfg->admin_token)) {
        reply_error(req, 401, "unauthorized");
    } else if (strcmp(path, "/config") == 0) {
        if (m == EVHTTP_REQ_GET)
            get_config(req, s);
        else if (m == EVHTTP_REQ_PUT)
            put_config(req);
        else
            reply_error(req, 405, "method not allowed");
    } else if (strcmp(path, "/status") == 0 || strcmp(path, "/metrics") == 0) {
        if (m != EVHTTP_REQ_GET)
            reply_error(req, 405, "method not allowed");
        else if (path[1] == 's')
            get_status(req, s);
        else
            get_metrics(req, s);
    } else {
        reply_error(req, 404, "not found");
    }
    gw_snapshot_unref(s);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(A.base);
}

static void *admin_main(void *arg)
{
    event_base_dispatch(A.base);
    return NULL;
}

int gw_admin_start(const struct cfg_addr *addr, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, (const struct sockaddr *)&addr->sa, addr->salen) == -1 || listen(fd, 128) == -1) {
        snprintf(err, errlen, "cannot listen on the admin address %s: %s", addr->text, strerror(errno));
        if (fd != -1)
            close(fd);
        return -1;
    }
    A.base = event_base_new();
    A.http = evhttp_new(A.base);
    A.stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (A.base == NULL || A.http == NULL || A.stop_fd == -1 ||
        evhttp_accept_socket(A.http, fd) != 0) {
        snprintf(err, errlen, "cannot start the admin API");
        close(fd);
        return -1;
    }
    evhttp_set_max_body_size(A.http, ADMIN_MAX_BODY);
    evhttp_set_max_headers_size(A.http, 64 * 1024);
    evhttp_set_timeout(A.http, 60);
    evhttp_set_allowed_methods(A.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                               EVHTTP_REQ_POST | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(A.http, admin_cb, NULL);
    A.stop_ev = event_new(A.base, A.stop_fd, EV_READ, stop_cb, NULL);
    event_add(A.stop_ev, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&A.thread, NULL, admin_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the admin thread");
        return -1;
    }
    A.running = true;
    gw_log(GW_LOG_INFO, "admin API on %s", addr->text);
    return 0;
}

void gw_admin_stop(void)
{
    uint64_t one = 1;

    if (!A.running)
        return;
    if (write(A.stop_fd, &one, sizeof(one)) == -1)
        gw_log(GW_LOG_ERROR, "admin: cannot signal the thread: %s", strerror(errno));
    pthread_join(A.thread, NULL);
    event_free(A.stop_ev);
    evhttp_free(A.http);
    event_base_free(A.base);
    close(A.stop_fd);
    A.running = false;
}
