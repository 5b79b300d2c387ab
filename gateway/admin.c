/*
 * admin.c - the admin API (SPEC "Admin API") on its own thread and event
 * loop, never on a worker's: /healthz, /config (GET, PUT), /status, /metrics,
 * /stats (the same families as JSON, metrics.c) and /ui.
 *
 * HTTP/1.1 with the gateway's own codec (http1.h): keep-alive, pipelining,
 * Expect: 100-continue, chunked or sized bodies up to 32 MiB.  A request's
 * body goes into one buffer sized from its Content-Length and is read in
 * reads of up to 1 MiB; libevent 2.1's evhttp read 4 KiB per loop turn,
 * about 340 turns (and three syscalls each) for a 10,000-route document,
 * at normal priority on a core a worker may need.
 *
 * It only reads what workers publish (snapshots under g_snap_lock, per-worker
 * counters with relaxed loads, pool buckets on append-only lists) and
 * changes the proxy through gw_config_apply(), the same path as SIGHUP.
 */
#include "admin.h"
#include "metrics.h"
#include "../upstream/dns.h"
#include "reload.h"
#include "snapshot.h"
#include "version.h"
#include "worker.h"
#include "http1.h"
#include "tls.h"
#include "ui.h"
#include "../core/hash.h"
#include "../core/io.h"
#include "../core/reason.h"

#include <cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_MAX_BODY  (32u * 1024 * 1024)     /* a 10,000-route document fits */
#define ADMIN_MAX_HEAD  (64u * 1024)            /* request line and headers */
/* Bytes per read().  A read is one stretch in the kernel, and on a kernel
 * built without preemption (PREEMPT_NONE, as many servers are) a worker
 * woken meanwhile waits until it returns, even for a builder at SCHED_IDLE:
 * 1 MiB was a copy of about 300 µs, 64 KiB is about 20. */
#define ADMIN_READ_MAX  (64u * 1024)
#define ADMIN_IDLE_S    60                      /* a connection silent this long is closed */
/* Open admin connections: a dashboard (GET /ui) keeps one or two, and a
 * thousand of them polling /stats must not be turned away. */
#define ADMIN_MAX_CONNS 2048
#define ADMIN_OUT_MAX   (4u << 20)              /* unsent answers before reading stops */
#define ADMIN_LINGER_S  2                       /* reading to drop after a last answer */
#define ADMIN_IDLE_BODY (64u * 1024)            /* PUT bodies from here on are read at idle priority */

struct adm_conn {
    int fd;
    struct event *rev, *wev, *timer;
    char *in;                   /* bytes read and not yet consumed */
    size_t len, cap;
    size_t scanned;             /* h1_parse_request's resume point */
    /* the request being read */
    size_t head_len;            /* 0 until its head is parsed */
    enum h1_body body;
    uint64_t clen;
    struct h1_chunked ck;
    size_t raw;                 /* chunked: body bytes walked (after the head) */
    size_t dec;                 /* chunked: data bytes, moved to in + head_len */
    bool keep_alive;
    struct evbuffer *out;       /* answers not yet written */
    bool closing;               /* close once out is written */
    bool paused;                /* not reading until out is written */
    bool eof;                   /* the client has closed its side */
    bool lingering;             /* answered and half-closed: reading to drop */
    bool idle;                  /* gw_reload_idle_begin for this request's body */
    struct adm_conn *prev, *next;
};

/* A request as a handler sees it; the answer goes to c->out. */
struct adm_req {
    struct adm_conn *c;
    const struct h1_request *h; /* NULL for errors found before a head */
    enum h1_method m;
    const char *body;
    size_t body_len;
};

static struct {
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener *lis;
    struct event *stop_ev;
    int stop_fd;
    bool running;
    struct adm_conn *conns;
    int nconns;
} A;

/* ---- replies ---- */

static void reply_with(struct adm_req *req, int code, const char *ctype, const char *extra,
                       const void *body, size_t len, struct evbuffer *bodybuf)
{
    struct adm_conn *c = req->c;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;

    if (bodybuf)
        len = evbuffer_get_length(bodybuf);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
    evbuffer_add_printf(c->out, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                        "Cache-Control: no-store\r\nContent-Length: %zu\r\n%s%s\r\n",
                        code, http_reason(code), date, ctype, len, extra ? extra : "",
                        !c->keep_alive ? "Connection: close\r\n" :
                        req->h && req->h->minor == 0 ? "Connection: keep-alive\r\n" : "");
    if (req->m == H1_M_HEAD)
        return;
    if (bodybuf)
        evbuffer_add_buffer(c->out, bodybuf);
    else
        evbuffer_add(c->out, body, len);
}

static void reply(struct adm_req *req, int code, const char *ctype, const char *body, size_t len)
{
    reply_with(req, code, ctype, NULL, body, len, NULL);
}

static void reply_json(struct adm_req *req, int code, cJSON *doc)
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

static void reply_error(struct adm_req *req, int code, const char *msg)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "error", msg);
    char *text = cJSON_PrintUnformatted(d);
    if (text == NULL)
        abort();
    size_t n = strlen(text);
    text[n] = '\n';            /* over the NUL: the length is passed */
    reply_with(req, code, "application/json",
               code == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL, text, n + 1, NULL);
    free(text);
    cJSON_Delete(d);
}

/* ---- auth ---- */

/* Compare digests, not the strings: the time taken says nothing about how
 * much of the token matched, nor its length. */
static bool token_ok(const struct adm_req *req, const char *token)
{
    unsigned char a[32], b[32];
    unsigned int al = 0, bl = 0;

    if (token == NULL)
        return true;
    const struct h1_header *f = h1_find_header(req->h->headers, req->h->nheaders, "authorization", 13);
    if (f == NULL || f->value_len < 7 || !h1_casecmp(f->value, "Bearer ", 7))
        return false;
    const char *h = f->value + 7, *end = f->value + f->value_len;
    while (h < end && *h == ' ')
        h++;
    if (!EVP_Digest(h, (size_t)(end - h), a, &al, EVP_sha256(), NULL) ||
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

static void get_config(struct adm_req *req, const struct gw_snapshot *s)
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

static void put_config(struct adm_req *req)
{
    size_t len = req->body_len;
    const char *body = len ? req->body : "";
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

/* ---- idle priority for answers ---- */
/*
 * Answers built from the workers' counters (/metrics, /stats, /status) are
 * made at idle priority, as a build is (reload.h): a thousand dashboards
 * polling /stats, or one client asking as fast as it can, get what the
 * workers leave of the core, and a worker that wakes takes it back at once;
 * the build watchdog raises a starved answer as it does a build, so they
 * are still answered under full load.  The phase ends before the answer is
 * written: a client that has it sees the thread at its own priority.
 * Nothing to do while a PUT's upload holds the thread idle already.
 */
static bool admin_idle_begin(void)
{
    return !gw_reload_idle_now() && gw_admin_idle_begin();
}

static void admin_idle_end(bool began)
{
    if (began)
        gw_reload_idle_end();
}

/* ---- /status ---- */

/* A target's health: active checks (up, down, off), the last probe,
 * ejection, and since when (wall clock ms) it has been as it is. */
static void health_view(cJSON *to, const struct hc_target *h, uint64_t now)
{
    struct hc_view v;

    hc_view(h, now, &v);
    cJSON_AddStringToObject(to, "check", v.active < 0 ? "off" : v.active ? "up" : "down");
    if (v.last[0])
        cJSON_AddStringToObject(to, "last_check", v.last);
    else
        cJSON_AddNullToObject(to, "last_check");
    cJSON_AddBoolToObject(to, "ejected", v.ejected);
    cJSON_AddNumberToObject(to, "ejected_for_ms", (double)v.ejected_for_ms);
    cJSON_AddNumberToObject(to, "since_ms", (double)v.since_ms);
}

/* The process: what runs since when, its connections, the last reload. */
static void process_view(cJSON *d)
{
    struct gw_reload_last last;
    struct timespec ts;
    uint64_t conns = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t start = gw_metrics_start_ms();
    for (int i = 0; i < g_nworkers; i++)
        conns += gw_cnt_get(&g_workers[i].stats.client_conns);
    cJSON_AddStringToObject(d, "sluice_version", SLUICE_VERSION);
    cJSON_AddNumberToObject(d, "time_ms", (double)now);
    cJSON_AddNumberToObject(d, "started_ms", (double)start);
    cJSON_AddNumberToObject(d, "uptime_s", (double)((now > start ? now - start : 0) / 1000));
    cJSON_AddNumberToObject(d, "workers", g_nworkers);
    cJSON_AddNumberToObject(d, "client_connections", (double)conns);
    cJSON *r = cJSON_AddObjectToObject(d, "reloads");
    cJSON_AddNumberToObject(r, "ok", (double)atomic_load(&g_reloads_ok));
    cJSON_AddNumberToObject(r, "error", (double)atomic_load(&g_reloads_err));
    gw_reload_last(&last);
    if (last.time_ms == 0) {
        cJSON_AddNullToObject(r, "last");
        return;
    }
    cJSON *l = cJSON_AddObjectToObject(r, "last");
    cJSON_AddNumberToObject(l, "time_ms", (double)last.time_ms);
    cJSON_AddStringToObject(l, "result", last.ok ? "ok" : "error");
    cJSON_AddStringToObject(l, "origin", last.origin);
    cJSON_AddNumberToObject(l, "version", (double)last.version);
    cJSON_AddNumberToObject(l, "took_ms", last.took_ms);
    if (last.ok)
        cJSON_AddNullToObject(l, "error");
    else
        cJSON_AddStringToObject(l, "error", last.error);
}

static void get_status(struct adm_req *req, const struct gw_snapshot *s)
{
    bool idle = admin_idle_begin();
    cJSON *d = cJSON_CreateObject();
    uint64_t now = lt_now_ms();

    cJSON_AddNumberToObject(d, "version", (double)s->version);
    process_view(d);
    cJSON *ups = cJSON_AddArrayToObject(d, "upstreams");
    for (size_t i = 0; i < s->ups.n; i++) {
        const struct up_upstream *u = &s->ups.v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", u->cfg->name);
        cJSON *ts = cJSON_AddArrayToObject(o, "targets");
        for (size_t j = 0; j < u->ntargets; j++) {
            const struct up_target *t = &u->targets[j];
            struct gw_target_sum sum;
            gw_target_sum(t, &sum);
            cJSON *to = cJSON_CreateObject();
            cJSON_AddStringToObject(to, "address", t->text);
            cJSON_AddBoolToObject(to, "healthy", up_target_ok(u, j, now));
            if (t->health)
                health_view(to, t->health, now);
            cJSON_AddNumberToObject(to, "in_flight", (double)sum.inflight);
            cJSON_AddNumberToObject(to, "idle", (double)sum.idle);
            cJSON_AddNumberToObject(to, "requests", (double)sum.requests);
            cJSON_AddNumberToObject(to, "failures", (double)sum.failures);
            cJSON_AddItemToArray(ts, to);
        }
        cJSON_AddItemToArray(ups, o);
    }
    reply_json(req, 200, d);        /* printed at idle priority too; written after */
    cJSON_Delete(d);
    admin_idle_end(idle);
}

/* ---- /metrics, /stats ---- */

/* The same families through the same producers (metrics.c), rendered as
 * Prometheus text or as one JSON document. */
static void get_metrics(struct adm_req *req, const struct gw_snapshot *s)
{
    struct evbuffer *b = evbuffer_new();
    struct mx_prom p;

    if (b == NULL)
        abort();
    bool idle = admin_idle_begin();
    mx_prom_init(&p, b);
    gw_metrics_emit(&p.e, s);
    admin_idle_end(idle);
    reply_with(req, 200, "text/plain; version=0.0.4", NULL, NULL, 0, b);
    evbuffer_free(b);
}

static void get_stats(struct adm_req *req, const struct gw_snapshot *s)
{
    struct evbuffer *b = evbuffer_new();
    struct mx_json j;
    char extra[128];

    if (b == NULL)
        abort();
    bool idle = admin_idle_begin();
    mx_json_init(&j, b);
    gw_metrics_emit(&j.e, s);
    admin_idle_end(idle);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(extra, sizeof(extra), "\"version\":%llu,\"time_ms\":%llu", (unsigned long long)s->version,
             (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000);
    mx_json_end(&j, extra);
    reply_with(req, 200, "application/json", NULL, NULL, 0, b);
    evbuffer_free(b);
}

/* ---- dispatch ---- */

/* The page may talk to this listener only, and run only its own inline
 * script and style: nothing it shows can load from another host. */
#define UI_HEADERS "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; " \
                   "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; " \
                   "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n" \
                   "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"

static void admin_cb(struct adm_req *req)
{
    enum h1_method m = req->m;
    char path[256];
    size_t n = req->h->path_len;

    if (n >= sizeof(path))
        n = sizeof(path) - 1;
    memcpy(path, req->h->path, n);
    path[n] = '\0';

    if (m != H1_M_GET && m != H1_M_HEAD && m != H1_M_PUT && m != H1_M_POST &&
        m != H1_M_DELETE && m != H1_M_PATCH) {
        reply_error(req, 501, "method not implemented");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        if (m == H1_M_GET || m == H1_M_HEAD)
            reply(req, 200, "text/plain", "ok\n", 3);
        else
            reply_error(req, 405, "method not allowed");
        return;
    }
    if (strcmp(path, "/ui") == 0) {
        /* the page carries no data: it asks for the token and sends it
         * on its own requests, which the checks below guard */
        if (m == H1_M_GET || m == H1_M_HEAD)
            reply_with(req, 200, "text/html; charset=utf-8", UI_HEADERS, gw_ui_page, gw_ui_page_len, NULL);
        else
            reply_error(req, 405, "method not allowed");
        return;
    }
    struct gw_snapshot *s = gw_snapshot_current();
    if (!token_ok(req, s->cfg->admin_token)) {
        reply_error(req, 401, "unauthorized");
    } else if (strcmp(path, "/config") == 0) {
        if (m == H1_M_GET)
            get_config(req, s);
        else if (m == H1_M_PUT)
            put_config(req);
        else
            reply_error(req, 405, "method not allowed");
    } else if (strcmp(path, "/status") == 0 || strcmp(path, "/metrics") == 0 ||
               strcmp(path, "/stats") == 0) {
        if (m != H1_M_GET)
            reply_error(req, 405, "method not allowed");
        else if (path[1] == 'm')
            get_metrics(req, s);
        else if (strcmp(path, "/status") == 0)
            get_status(req, s);
        else
            get_stats(req, s);
    } else {
        reply_error(req, 404, "not found");
    }
    gw_snapshot_unref(s);
}


/* ---- connections ---- */

static void conn_free(struct adm_conn *c)
{
    if (c->idle)
        gw_reload_idle_end();   /* a PUT cut short: its priority back */
    if (c->prev)
        c->prev->next = c->next;
    else
        A.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    A.nconns--;
    /* NULL only when accept_cb ran out of memory half-way */
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->timer)
        event_free(c->timer);
    if (c->out)
        evbuffer_free(c->out);
    close(c->fd);
    free(c->in);
    free(c);
}

static void conn_process(struct adm_conn *c);

/* Whether a request with a body may send it: it carries the token (or
 * none is set).  Checked on the head, so a body is only read for a client
 * that may change something. */
static bool body_allowed(const struct h1_request *h)
{
    struct gw_snapshot *s = gw_snapshot_current();
    struct adm_req r = { .h = h };
    bool ok = token_ok(&r, s->cfg->admin_token);

    gw_snapshot_unref(s);
    return ok;
}

/* Writes what it can of c->out; false when c was closed or is closing
 * (done or failed): the caller leaves it alone then. */
static bool conn_flush(struct adm_conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            event_add(c->wev, NULL);
            return true;
        }
        conn_free(c);           /* the client went away */
        return false;
    }
    event_del(c->wev);
    if (c->paused && !c->closing) {
        /* the answers are out: answer what is buffered, and read again */
        c->paused = false;
        event_add(c->rev, NULL);
        conn_process(c);
        if (evbuffer_get_length(c->out) > 0 || c->closing)
            return conn_flush(c);
    }
    if (c->closing) {
        if (c->eof) {
            conn_free(c);
            return false;
        }
        /* The answer is out: half-close, then read and drop what the client
         * still sends (the rest of a refused body) until it closes, for up
         * to ADMIN_LINGER_S.  Closing with unread bytes would send a reset,
         * which can destroy the answer before the client has read it. */
        struct timeval linger = { ADMIN_LINGER_S, 0 };
        shutdown(c->fd, SHUT_WR);
        c->lingering = true;
        event_add(c->rev, NULL);
        event_add(c->timer, &linger);
        return false;
    }
    return true;
}

/* An answer without a request to hand to admin_cb (the head did not
 * parse, or the body is refused), then the connection closes. */
static void conn_fail(struct adm_conn *c, int code, const char *msg)
{
    struct adm_req req = { .c = c, .m = H1_M_OTHER };

    if (c->idle) {
        gw_reload_idle_end();
        c->idle = false;
    }
    c->keep_alive = false;
    reply_error(&req, code, msg);
    c->closing = true;
}

/* Room for at least want bytes in c->in; false if that is over the limit. */
static bool conn_room(struct adm_conn *c, size_t want, size_t limit)
{
    if (want <= c->cap)
        return true;
    if (want > limit)
        return false;
    size_t cap = c->cap ? c->cap * 2 : 16384;
    if (cap < want)
        cap = want;         /* a body's size is known: no more than it */
    if (cap > limit)
        cap = limit;
    char *p = realloc(c->in, cap);
    if (p == NULL)
        return false;
    c->in = p;
    c->cap = cap;
    return true;
}

/* Walks the chunked body read so far, moving its data down to
 * in + head_len + dec.  1: the body is complete, 0: more is needed,
 * -1: c is failing (bad framing, too large). */
static int conn_dechunk(struct adm_conn *c)
{
    char *b = c->in + c->head_len;
    size_t have = c->len - c->head_len;

    while (c->raw < have) {
        size_t used = 0;
        int k = h1_chunked_next(&c->ck, b + c->raw, have - c->raw, &used);
        if (k == H1C_ERROR) {
            conn_fail(c, 400, "bad chunked framing");
            return -1;
        }
        if (k == H1C_DATA) {
            if (c->dec + used > ADMIN_MAX_BODY) {
                conn_fail(c, 413, "request body over 32 MiB");
                return -1;
            }
            memmove(b + c->dec, b + c->raw, used);
            c->dec += used;
        }
        c->raw += used;
        if (k == H1C_DONE)
            return 1;
    }
    return 0;
}

/* Answers every complete request in c->in, in order. */
static void conn_process(struct adm_conn *c)
{
    struct h1_request h;

    while (!c->closing && evbuffer_get_length(c->out) < ADMIN_OUT_MAX) {
        if (c->head_len == 0) {
            if (c->len == 0)
                return;
            int r = h1_parse_request(c->in, c->len, ADMIN_MAX_HEAD, &c->scanned, &h);
            if (r == H1_INCOMPLETE)
                return;
            if (r < 0) {
                conn_fail(c, -r, r == H1_ERR_TOO_LARGE ? "request header section too large" :
                                 r == H1_ERR_TE ? "transfer coding not implemented" :
                                 r == H1_ERR_VERSION ? "HTTP version not supported" : "bad request");
                return;
            }
            c->head_len = (size_t)r;
            c->body = h.body;
            c->clen = h.body == H1_BODY_LENGTH ? h.content_length : 0;
            c->keep_alive = h.keep_alive;
            c->raw = c->dec = 0;
            if (c->body != H1_BODY_NONE && !body_allowed(&h)) {
                /* not read at all: up to 32 MiB is not kept for a client
                 * without the token */
                struct adm_req req = { .c = c, .h = &h, .m = h.m };
                c->keep_alive = false;
                reply_error(&req, 401, "unauthorized");
                c->closing = true;
                return;
            }
            if (c->body == H1_BODY_LENGTH && c->clen > ADMIN_MAX_BODY) {
                conn_fail(c, 413, "request body over 32 MiB");
                return;
            }
            /* a document of some size: received at idle priority, like the
             * build that follows, with the watchdog timing both (h's slices
             * are read before conn_room may move the buffer) */
            if (h.m == H1_M_PUT && (c->body == H1_BODY_CHUNKED || c->clen > ADMIN_IDLE_BODY) &&
                h.path_len == 7 && memcmp(h.path, "/config", 7) == 0) {
                gw_reload_idle_begin();
                c->idle = true;
            }
            if (c->body == H1_BODY_CHUNKED)
                h1_chunked_init(&c->ck);
            else if (!conn_room(c, c->head_len + c->clen, SIZE_MAX))
                abort();        /* 32 MiB and 64 KiB: out of memory */
            if ((h.flags & H1_F_EXPECT_CONTINUE) && c->body != H1_BODY_NONE &&
                c->len == c->head_len)
                evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        size_t used, body_len;
        if (c->body == H1_BODY_CHUNKED) {
            int k = conn_dechunk(c);
            if (k <= 0)
                return;
            used = c->head_len + c->raw;
            body_len = c->dec;
        } else {
            if (c->len - c->head_len < c->clen)
                return;
            used = c->head_len + c->clen;
            body_len = c->clen;
        }
        /* the head again, now that the buffer will not move under it */
        size_t scanned = 0;
        if (h1_parse_request(c->in, c->head_len, 0, &scanned, &h) != (int)c->head_len)
            abort();
        struct adm_req req = { .c = c, .h = &h, .m = h.m, .body = c->in + c->head_len,
                               .body_len = body_len };
        admin_cb(&req);
        if (c->idle) {
            gw_reload_idle_end();       /* if the request did not get as far as a build */
            c->idle = false;
        }
        memmove(c->in, c->in + used, c->len - used);
        c->len -= used;
        c->head_len = 0;
        c->scanned = 0;
        if (!c->keep_alive)
            c->closing = true;
    }
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct adm_conn *c = arg;

    if (what & EV_TIMEOUT) {
        conn_free(c);
        return;
    }
    if (c->lingering) {
        for (;;) {
            ssize_t n = gw_sock_discard(c->fd, 1u << 20);
            if (n > 0)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            conn_free(c);       /* the client closed (or failed): done */
            return;
        }
    }
    for (;;) {
        size_t limit = c->head_len == 0 ? ADMIN_MAX_HEAD + 4096 :
                       c->body == H1_BODY_CHUNKED ? c->head_len + ADMIN_MAX_BODY + 2 * ADMIN_READ_MAX :
                       c->head_len + c->clen + ADMIN_MAX_HEAD;
        if (c->len == c->cap && !conn_room(c, c->len + 1, limit))
            break;              /* full: the parser has said, or will say, why */
        size_t want = c->cap - c->len;
        ssize_t n = read(c->fd, c->in + c->len, want < ADMIN_READ_MAX ? want : ADMIN_READ_MAX);
        if (n > 0) {
            c->len += (size_t)n;
            gw_build_pace();        /* the builder's, while a PUT body comes in */
            conn_process(c);
            if (c->closing || evbuffer_get_length(c->out) >= ADMIN_OUT_MAX)
                break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            conn_free(c);       /* reset: nothing can be answered */
            return;
        }
        /* the client is done sending: what it sent in full is answered,
         * a request cut short is dropped */
        c->closing = true;
        c->eof = true;
        break;
    }
    if (c->closing || evbuffer_get_length(c->out) >= ADMIN_OUT_MAX) {
        event_del(c->rev);      /* until the answers are out */
        c->paused = !c->closing;
    } else if (c->len == c->cap && c->head_len == 0) {
        conn_fail(c, 431, "request header section too large");
    } else if (c->len == c->cap && c->body == H1_BODY_CHUNKED) {
        conn_fail(c, 413, "request body over 32 MiB");
    }
    if (c->len == 0) {
        free(c->in);            /* an idle client holds no read buffer (a thousand pollers) */
        c->in = NULL;
        c->cap = 0;
    }
    struct timeval idle = { ADMIN_IDLE_S, 0 };
    event_add(c->timer, &idle);
    conn_flush(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    conn_flush(arg);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    if (A.nconns >= ADMIN_MAX_CONNS) {
        close(fd);
        return;
    }
    struct adm_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->out = evbuffer_new();
    c->rev = event_new(A.base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    c->wev = event_new(A.base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
    c->timer = evtimer_new(A.base, conn_read_cb, c);
    c->keep_alive = true;
    c->next = A.conns;
    if (A.conns)
        A.conns->prev = c;
    A.conns = c;
    A.nconns++;
    if (c->out == NULL || c->rev == NULL || c->wev == NULL || c->timer == NULL) {
        conn_free(c);
        return;
    }
    struct timeval idle = { ADMIN_IDLE_S, 0 };
    event_add(c->rev, NULL);
    event_add(c->timer, &idle);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(A.base);
}

static void *admin_main(void *arg)
{
    pthread_setname_np(pthread_self(), "sluice-admin");   /* as ps -L and top -H show it */
    event_base_dispatch(A.base);
    return NULL;
}

int gw_admin_start(const struct cfg_addr *addr, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, (const struct sockaddr *)&addr->sa, addr->salen) == -1 || listen(fd, 1024) == -1) {
        snprintf(err, errlen, "cannot listen on the admin address %s: %s", addr->text, strerror(errno));
        if (fd != -1)
            close(fd);
        return -1;
    }
    A.base = event_base_new();
    A.stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (A.base != NULL)
        A.lis = evconnlistener_new(A.base, accept_cb, NULL,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (A.base == NULL || A.lis == NULL || A.stop_fd == -1) {
        snprintf(err, errlen, "cannot start the admin API");
        if (A.lis == NULL)
            close(fd);
        return -1;
    }
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
    while (A.conns)
        conn_free(A.conns);
    evconnlistener_free(A.lis);
    event_base_free(A.base);
    close(A.stop_fd);
    A.running = false;
}
