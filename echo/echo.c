/*
 * sluice-echo - the demo/test backend.
 *
 * It has its own small HTTP/1.1 parser on purpose: sharing the proxy's would
 * let a parser bug on one side hide the same bug on the other, and the
 * integration tests exist to catch exactly those.
 *
 * One thread, one event loop.  Request bodies are never held whole: they are
 * hashed as they arrive and only the first KEEP_BODY bytes are kept for the
 * JSON echo; /raw and /bytes stream with output watermarks so a slow reader
 * (the proxy) holds us back instead of making us buffer.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/evp.h>

#include "../core/reason.h"
#include "llm.h"

#define MAX_HEAD     65536          /* request line + headers */
#define MAX_HEADERS  1000
#define MAX_LINE     4096           /* chunk-size and trailer lines */
#define KEEP_BODY    65536          /* echoed back as "body" up to this */
#define OUT_HIGH     (1024 * 1024)  /* stop producing / reading above this */
#define OUT_LOW      (256 * 1024)   /* resume at or below this */
#define IN_CAP       (1024 * 1024)  /* pipelined bytes held while busy */

enum conn_st { ST_HEAD, ST_BODY, ST_RESP, ST_CLOSING, ST_WS };
enum body_mode { BODY_NONE, BODY_CL, BODY_CHUNKED };
enum chunk_st { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };
enum framing { FR_CL, FR_CHUNKED, FR_CLOSE };
enum endpoint {
    EP_ECHO, EP_RAW, EP_SSE, EP_DELAY, EP_STATUS, EP_BYTES, EP_HEALTH,
    EP_HEALTH_DOWN, EP_HEALTH_UP, EP_STATS, EP_CLOSE, EP_RESET, EP_GARBAGE, EP_WS, EP_LLM,
};

struct hdr {
    char *name, *value;
    size_t value_len;
};

struct conn {
    struct conn *prev, *next;
    struct bufferevent *bev;
    struct event *timer;
    uint64_t id;
    unsigned nreq;
    enum conn_st st;
    bool paused;

    /* the request being read or answered */
    size_t head_bytes;
    char *method, *target;
    int minor;
    struct hdr *hdrs;
    size_t nhdrs, caphdrs;
    bool keepalive, head_req;
    enum body_mode bmode;
    enum chunk_st cst;
    uint64_t remaining, body_len;
    EVP_MD_CTX *sha;
    struct evbuffer *keep;
    enum endpoint ep;

    /* the response being produced */
    enum framing fr;
    uint64_t out_total, out_pos;
    size_t chunk;
    int sse_n, sse_i;
    unsigned sse_ms;
    unsigned sse_gap_after, sse_gap_ms;     /* after event gap_after, wait gap_ms */
    unsigned sse_split_ms;                  /* each event in two writes this far apart */
    bool sse_head_sent, sse_half, sse_ts;
    struct llm_req *llm;                    /* POST /v1/chat/completions, streamed */
    int llm_i;
    unsigned llm_ms;
    long llm_created;
};

static const char *g_id = "echo";
/* the Gateway API conformance echo reports which pod of which namespace
 * answered: a runner starts one sluice-echo per pod */
static const char *g_ns, *g_pod;
static unsigned g_token_ms = 30;    /* --token-ms: between two streamed tokens */
static uint64_t g_accepted, g_requests, g_aborted, g_open;
static bool g_healthy = true;
static struct event_base *g_base;
static struct conn *g_conns;
static unsigned char g_pattern[65536 + 256];

static int conn_process(struct conn *c);

/* sluice's table (core/reason.c); a code it has no phrase for still gets
 * one here, as /status/NNN may ask for any code */
static const char *reason(int status)
{
    const char *r = http_reason(status);
    return *r ? r : "Status";
}

static void req_reset(struct conn *c)
{
    free(c->method);
    free(c->target);
    c->method = c->target = NULL;
    for (size_t i = 0; i < c->nhdrs; i++) {
        free(c->hdrs[i].name);
        free(c->hdrs[i].value);
    }
    c->nhdrs = 0;
    c->head_bytes = 0;
    c->body_len = 0;
    c->remaining = 0;
    c->bmode = BODY_NONE;
    c->cst = CH_SIZE;
    c->ep = EP_ECHO;
    evbuffer_drain(c->keep, evbuffer_get_length(c->keep));
}

static void conn_free(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        g_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    req_reset(c);
    free(c->hdrs);
    if (c->timer)
        event_free(c->timer);
    bufferevent_free(c->bev);
    EVP_MD_CTX_free(c->sha);
    evbuffer_free(c->keep);
    free(c->llm);
    free(c);
    g_open--;
}

/* Stop reading and close once everything written has gone out.
 * Returns -1 when c was freed here, 0 when the close is pending. */
static int conn_close_flush(struct conn *c)
{
    c->st = ST_CLOSING;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

static void conn_pause(struct conn *c)
{
    if (!c->paused) {
        c->paused = true;
        bufferevent_disable(c->bev, EV_READ);
    }
}

static void conn_resume(struct conn *c)
{
    if (c->paused) {
        c->paused = false;
        bufferevent_enable(c->bev, EV_READ);
    }
}

/* ---- request helpers ---- */

static const struct hdr *hdr_find(const struct conn *c, const char *name)
{
    for (size_t i = 0; i < c->nhdrs; i++)
        if (strcasecmp(c->hdrs[i].name, name) == 0)
            return &c->hdrs[i];
    return NULL;
}

/* Does a comma-separated header (every instance) list token tok? */
static bool hdr_has_token(const struct conn *c, const char *name, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i < c->nhdrs; i++) {
        if (strcasecmp(c->hdrs[i].name, name) != 0)
            continue;
        const char *p = c->hdrs[i].value;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *s = p;
            while (*p && *p != ',')
                p++;
            const char *e = p;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0)
                return true;
        }
    }
    return false;
}

/* The path part of the target (absolute-form reduced to its path). */
static void target_path(const char *target, const char **p, size_t *len)
{
    const char *t = target;
    const char *scheme = strstr(t, "://");
    if (t[0] != '/' && scheme) {
        t = strchr(scheme + 3, '/');
        if (!t)
            t = "/";
    }
    *p = t;
    *len = strcspn(t, "?");
}

static bool path_is(const struct conn *c, const char *want)
{
    const char *p;
    size_t n;
    target_path(c->target, &p, &n);
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

/* If the path starts with prefix, the rest of the path (NUL-terminated copy). */
static bool path_suffix(const struct conn *c, const char *prefix, char *out, size_t outlen)
{
    const char *p;
    size_t n, pl = strlen(prefix);
    target_path(c->target, &p, &n);
    if (n < pl || memcmp(p, prefix, pl) != 0 || n - pl >= outlen)
        return false;
    memcpy(out, p + pl, n - pl);
    out[n - pl] = '\0';
    return true;
}

static bool qparam(const struct conn *c, const char *name, char *out, size_t outlen)
{
    const char *q = strchr(c->target, '?');
    size_t nl = strlen(name);
    if (!q)
        return false;
    q++;
    while (*q) {
        size_t len = strcspn(q, "&");
        if (len > nl && q[nl] == '=' && strncmp(q, name, nl) == 0) {
            size_t vl = len - nl - 1;
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, q + nl + 1, vl);
            out[vl] = '\0';
            return true;
        }
        if (len == nl && strncmp(q, name, nl) == 0) {
            out[0] = '\0';
            return true;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return false;
}

static uint64_t qparam_u64(const struct conn *c, const char *name, uint64_t dflt)
{
    char buf[32];
    if (!qparam(c, name, buf, sizeof buf) || !buf[0])
        return dflt;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    return (*end || errno) ? dflt : (uint64_t)v;
}

static bool parse_u64(const char *s, uint64_t *v)
{
    if (!*s)
        return false;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *v = x;
    return true;
}

/* ---- response writing ---- */

/* Status line and the headers every response carries; the caller adds
 * framing headers and the blank line. */
static void write_head(struct conn *c, int status)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nX-Upstream: %s\r\nX-Conn-Id: %" PRIu64
                        "\r\nX-Request-Count: %u\r\n",
                        status, reason(status), g_id, c->id, c->nreq);
    const struct hdr *set = hdr_find(c, "x-echo-set-header");
    if (set) {
        /* "Name: value, Other: v2" (the Gateway API conformance echo convention) */
        const char *p = set->value;
        while (*p) {
            while (*p == ' ' || *p == ',')
                p++;
            size_t len = strcspn(p, ",");
            const char *colon = memchr(p, ':', len);
            if (colon && colon > p) {
                const char *v = colon + 1;
                while (v < p + len && *v == ' ')
                    v++;
                const char *e = p + len;
                while (e > v && e[-1] == ' ')
                    e--;
                evbuffer_add_printf(out, "%.*s: %.*s\r\n", (int)(colon - p), p,
                                    (int)(e - v), v);
            }
            p += len;
        }
    }
    if (!c->keepalive)
        evbuffer_add_printf(out, "Connection: close\r\n");
    else if (c->minor == 0)
        evbuffer_add_printf(out, "Connection: keep-alive\r\n");
}

/* The response is complete: close, or get ready for the next request.
 * Returns -1 when c was freed. */
static int finish(struct conn *c)
{
    if (!c->keepalive)
        return conn_close_flush(c);
    req_reset(c);
    c->st = ST_HEAD;
    conn_resume(c);
    return 0;
}

static int send_simple(struct conn *c, int status, const char *ctype, const void *body,
                       size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    write_head(c, status);
    evbuffer_add_printf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n", ctype, len);
    if (!c->head_req)
        evbuffer_add(out, body, len);
    return finish(c);
}

/* An error found in the request itself: answer and close. */
static int reject(struct conn *c, int status, const char *why)
{
    c->keepalive = false;
    if (c->st == ST_BODY && c->ep == EP_RAW) {
        /* headers already sent: the only honest signal left is a cut */
        conn_free(c);
        return -1;
    }
    c->head_req = false;
    char body[256];
    int n = snprintf(body, sizeof body, "%d %s: %s\n", status, reason(status), why);
    return send_simple(c, status, "text/plain", body, (size_t)n);
}

static void json_str(struct evbuffer *out, const char *s, size_t n)
{
    char buf[1024];
    size_t k = 0;
    buf[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (k > sizeof buf - 8) {
            evbuffer_add(out, buf, k);
            k = 0;
        }
        if (ch == '"' || ch == '\\') {
            buf[k++] = '\\';
            buf[k++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            /* bytes map to U+0000..U+00FF: the JSON stays ASCII and a client
             * gets the exact bytes back with .encode("latin-1") */
            k += (size_t)snprintf(buf + k, 8, "\\u%04x", ch);
        } else {
            buf[k++] = (char)ch;
        }
    }
    buf[k++] = '"';
    evbuffer_add(out, buf, k);
}

static int send_echo(struct conn *c, int status)
{
    struct evbuffer *j = evbuffer_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    EVP_DigestFinal_ex(c->sha, md, &mdlen);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[2 * mdlen] = '\0';

    evbuffer_add_printf(j, "{\"id\":");
    json_str(j, g_id, strlen(g_id));
    evbuffer_add_printf(j, ",\"method\":");
    json_str(j, c->method, strlen(c->method));
    evbuffer_add_printf(j, ",\"path\":");
    json_str(j, c->target, strlen(c->target));
    evbuffer_add_printf(j, ",\"version\":\"HTTP/1.%d\",\"headers\":[", c->minor);
    for (size_t i = 0; i < c->nhdrs; i++) {
        evbuffer_add_printf(j, "%s[", i ? "," : "");
        json_str(j, c->hdrs[i].name, strlen(c->hdrs[i].name));
        evbuffer_add(j, ",", 1);
        json_str(j, c->hdrs[i].value, c->hdrs[i].value_len);
        evbuffer_add(j, "]", 1);
    }
    evbuffer_add_printf(j, "],\"body_len\":%" PRIu64 ",\"body_sha256\":\"%s\"", c->body_len, hex);
    if (c->body_len <= KEEP_BODY) {
        size_t n = evbuffer_get_length(c->keep);
        evbuffer_add_printf(j, ",\"body\":");
        json_str(j, (const char *)evbuffer_pullup(c->keep, -1), n);
    }
    if (g_ns) {
        evbuffer_add_printf(j, ",\"namespace\":");
        json_str(j, g_ns, strlen(g_ns));
    }
    if (g_pod) {
        evbuffer_add_printf(j, ",\"pod\":");
        json_str(j, g_pod, strlen(g_pod));
    }
    evbuffer_add_printf(j, ",\"conn\":%" PRIu64 ",\"request_on_conn\":%u}\n", c->id, c->nreq);

    size_t len = evbuffer_get_length(j);
    int r = send_simple(c, status, "application/json", evbuffer_pullup(j, -1), len);
    evbuffer_free(j);
    return r;
}

static void add_pattern(struct evbuffer *out, uint64_t pos, size_t n)
{
    while (n > 0) {
        size_t off = (size_t)(pos & 255);
        size_t take = sizeof g_pattern - off;
        if (take > n)
            take = n;
        evbuffer_add(out, g_pattern + off, take);
        pos += take;
        n -= take;
    }
}

/* Produce /bytes output up to the high watermark.  Returns -1 when c was freed. */
static int fill_bytes(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (c->out_pos < c->out_total && evbuffer_get_length(out) < OUT_HIGH) {
        uint64_t left = c->out_total - c->out_pos;
        size_t n = c->fr == FR_CHUNKED ? c->chunk : 65536;
        if (n > left)
            n = (size_t)left;
        if (c->fr == FR_CHUNKED)
            evbuffer_add_printf(out, "%zx\r\n", n);
        add_pattern(out, c->out_pos, n);
        if (c->fr == FR_CHUNKED)
            evbuffer_add(out, "\r\n", 2);
        c->out_pos += n;
    }
    if (c->out_pos < c->out_total)
        return 0;
    if (c->fr == FR_CHUNKED)
        evbuffer_add(out, "0\r\n\r\n", 5);
    return finish(c);
}

static void choose_streaming_framing(struct conn *c, bool want_close)
{
    if (want_close || c->minor == 0) {
        c->fr = FR_CLOSE;
        c->keepalive = false;
    } else {
        c->fr = FR_CHUNKED;
    }
}

static int start_bytes(struct conn *c, uint64_t n)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    c->out_total = n;
    c->out_pos = 0;
    c->chunk = (size_t)qparam_u64(c, "chunk", 16384);
    if (c->chunk == 0 || c->chunk > OUT_HIGH)
        c->chunk = 16384;
    if (qparam_u64(c, "close", 0))
        choose_streaming_framing(c, true);
    else if (qparam_u64(c, "chunked", 0))
        choose_streaming_framing(c, false);
    else
        c->fr = FR_CL;
    write_head(c, 200);
    evbuffer_add_printf(out, "Content-Type: application/octet-stream\r\n");
    if (c->fr == FR_CL)
        evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", n);
    else if (c->fr == FR_CHUNKED)
        evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
    evbuffer_add(out, "\r\n", 2);
    if (c->head_req) {
        if (c->fr == FR_CHUNKED)
            c->fr = FR_CL; /* nothing follows a HEAD response, not even a last chunk */
        return finish(c);
    }
    c->st = ST_RESP;
    return fill_bytes(c);
}

static void sse_write(struct conn *c, const char *p, int n)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->fr == FR_CHUNKED)
        evbuffer_add_printf(out, "%x\r\n%.*s\r\n", n, n, p);
    else
        evbuffer_add(out, p, (size_t)n);
}

/* One event ("id: N\ndata: event N\n\n"), or its first part (up to the
 * blank line) when events are split; true when the event is complete. */
static bool sse_write_event(struct conn *c)
{
    char ev[128];
    if (c->sse_half) {          /* the rest of a split event: its blank line */
        sse_write(c, "\n", 1);
        c->sse_half = false;
        c->sse_i++;
        return true;
    }
    int n;
    if (c->sse_ts) {    /* the send time, for a client measuring each event's delay */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        n = snprintf(ev, sizeof ev, "id: %d\ndata: event %d t=%llu\n\n", c->sse_i, c->sse_i,
                     (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
    } else {
        n = snprintf(ev, sizeof ev, "id: %d\ndata: event %d\n\n", c->sse_i, c->sse_i);
    }
    if (c->sse_split_ms) {
        sse_write(c, ev, n - 1);
        c->sse_half = true;
        return false;
    }
    sse_write(c, ev, n);
    c->sse_i++;
    return true;
}

static void arm_ms(struct conn *c, unsigned ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(c->timer, &tv);
}

/* The head of an event stream (/sse, a streamed chat completion). */
static void write_sse_head(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    write_head(c, 200);
    evbuffer_add_printf(out, "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n");
    if (c->fr == FR_CHUNKED)
        evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
    evbuffer_add(out, "\r\n", 2);
}

/* Returns -1 when c was freed. */
static int sse_step(struct conn *c)
{
    if (!c->sse_head_sent) {
        write_sse_head(c);
        c->sse_head_sent = true;
        if (c->head_req) {
            c->fr = FR_CL;
            return finish(c);
        }
    }
    if (c->sse_i < c->sse_n && !sse_write_event(c)) {
        arm_ms(c, c->sse_split_ms);
        return 0;
    }
    if (c->sse_i >= c->sse_n) {
        if (c->fr == FR_CHUNKED)
            evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
        return finish(c);
    }
    arm_ms(c, c->sse_gap_after && c->sse_i == (int)c->sse_gap_after + 1 ? c->sse_gap_ms : c->sse_ms);
    return 0;
}

/* One event of a streamed chat completion per token_ms.  Returns -1 when c was freed. */
static int llm_step(struct conn *c)
{
    char ev[1024], id[64];

    snprintf(id, sizeof id, "chatcmpl-%s-%" PRIu64 "-%u", g_id, c->id, c->nreq);
    int n = llm_event(ev, sizeof ev, c->llm, id, c->llm_created, c->llm_i++);
    if (n > 0)
        sse_write(c, ev, n);
    if (n == 0 || llm_event(ev, sizeof ev, c->llm, id, c->llm_created, c->llm_i) == 0) {
        if (c->fr == FR_CHUNKED)
            evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
        return finish(c);
    }
    arm_ms(c, c->llm_ms);
    return 0;
}

static int start_llm(struct conn *c)
{
    char buf[8192], id[64];
    const char *why = NULL;

    if (c->body_len > KEEP_BODY)
        return reject(c, 413, "request too large");
    if (c->llm == NULL && (c->llm = malloc(sizeof(*c->llm))) == NULL)
        abort();
    size_t n = evbuffer_get_length(c->keep);
    if (!llm_parse((const char *)evbuffer_pullup(c->keep, -1), n, c->llm, &why))
        return reject(c, 400, why);
    c->llm_created = (long)time(NULL);
    if (!c->llm->stream) {
        snprintf(id, sizeof id, "chatcmpl-%s-%" PRIu64 "-%u", g_id, c->id, c->nreq);
        int k = llm_completion(buf, sizeof buf, c->llm, id, c->llm_created);
        return send_simple(c, 200, "application/json", buf, (size_t)k);
    }
    c->llm_i = 0;
    c->llm_ms = (unsigned)qparam_u64(c, "token_ms", g_token_ms);
    choose_streaming_framing(c, false);
    write_sse_head(c);
    return llm_step(c);
}

static int start_sse(struct conn *c)
{
    c->sse_n = (int)qparam_u64(c, "n", 5);
    c->sse_ms = (unsigned)qparam_u64(c, "ms", 100);
    c->sse_gap_after = (unsigned)qparam_u64(c, "gap_after", 0);
    c->sse_gap_ms = (unsigned)qparam_u64(c, "gap_ms", 0);
    c->sse_split_ms = (unsigned)qparam_u64(c, "split_ms", 0);
    c->sse_ts = qparam_u64(c, "ts", 0) != 0;
    c->sse_head_sent = c->sse_half = false;
    c->sse_i = 1;
    c->sse_n += 1; /* events are numbered 1..n */
    choose_streaming_framing(c, qparam_u64(c, "close", 0) != 0);
    c->st = ST_RESP;
    unsigned head_ms = (unsigned)qparam_u64(c, "head_ms", 0);
    if (head_ms) {              /* the head itself comes late (time to first byte) */
        arm_ms(c, head_ms);
        return 0;
    }
    return sse_step(c);
}

static int send_stats(struct conn *c)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"id\":\"%s\",\"open_connections\":%" PRIu64 ",\"accepted\":%" PRIu64
                     ",\"requests\":%" PRIu64 ",\"aborted\":%" PRIu64 "}\n",
                     g_id, g_open, g_accepted, g_requests, g_aborted);
    return send_simple(c, 200, "application/json", body, (size_t)n);
}

static int send_status(struct conn *c)
{
    char buf[32];
    uint64_t st;
    if (!path_suffix(c, "/status/", buf, sizeof buf) || !parse_u64(buf, &st) || st < 100 ||
        st > 999)
        return reject(c, 400, "bad status");
    if (st < 200 && st != 101) {
        /* an interim response, then a real one: exercises 1xx forwarding */
        write_head(c, (int)st);
        evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
        return send_echo(c, 200);
    }
    if (st == 204 || st == 304 || st == 101) {
        write_head(c, (int)st);
        evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
        return finish(c);
    }
    char body[64];
    int n = snprintf(body, sizeof body, "status %" PRIu64 "\n", st);
    return send_simple(c, (int)st, "text/plain", body, (size_t)n);
}

static long g_delay_ms;     /* --delay */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int r = c->ep == EP_SSE ? sse_step(c) : c->ep == EP_LLM ? llm_step(c) : send_echo(c, 200);
    if (r == 0 && c->st == ST_HEAD)
        conn_process(c);
}

/* ---- WebSocket echo (GET /ws with Upgrade: websocket, RFC 6455) ---- */

static int start_ws(struct conn *c)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    const struct hdr *key = hdr_find(c, "sec-websocket-key");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned char acc[64];
    char buf[128];

    if (!key || key->value_len > 64)
        return reject(c, 400, "bad websocket handshake");
    int n = snprintf(buf, sizeof buf, "%s%s", key->value, guid);
    EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock(acc, md, (int)mdlen);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Upstream: %s\r\n\r\n",
                        acc, g_id);
    c->st = ST_WS;
    return 0;
}

/* Echoes each complete frame (unmasked, same opcode); a close frame is
 * answered and the connection closed.  Returns -1 when c was freed. */
static int ws_process(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        unsigned char h[14];
        if (avail < 2)
            return 0;
        evbuffer_copyout(in, h, avail < sizeof h ? avail : sizeof h);
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            hl = 4;
            len = avail >= 4 ? ((uint64_t)h[2] << 8) | h[3] : 0;
        } else if (len == 127) {
            hl = 10;
            len = 0;
            for (int i = 0; i < 8 && avail >= 10; i++)
                len = (len << 8) | h[2 + i];
        }
        bool masked = h[1] & 0x80;
        if (masked)
            hl += 4;
        if (avail < hl)
            return 0;
        if (len > KEEP_BODY)
            return conn_close_flush(c);
        if (avail < hl + len)
            return 0;
        unsigned char mask[4] = { 0 };
        if (masked)
            memcpy(mask, h + hl - 4, 4);
        evbuffer_drain(in, hl);
        unsigned char *pl = malloc(len ? len : 1);
        if (!pl)
            abort();
        evbuffer_remove(in, pl, len);
        for (uint64_t i = 0; i < len; i++)
            pl[i] ^= mask[i & 3];
        unsigned char oh[4] = { (unsigned char)(h[0] & 0x8f) };  /* FIN and opcode kept: fragments echo as fragments */
        size_t ohl = 2;
        if (len < 126) {
            oh[1] = (unsigned char)len;
        } else {
            oh[1] = 126;
            oh[2] = (unsigned char)(len >> 8);
            oh[3] = (unsigned char)len;
            ohl = 4;
        }
        evbuffer_add(out, oh, ohl);
        evbuffer_add(out, pl, len);
        free(pl);
        if ((h[0] & 0x0f) == 8)
            return conn_close_flush(c);
    }
}

/* The whole request body has been read: answer.  Returns -1 when c was freed. */
static int dispatch(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char buf[32];
    uint64_t v;

    c->st = ST_RESP;
    switch (c->ep) {
    case EP_RAW:
        if (c->fr == FR_CHUNKED)
            evbuffer_add(out, "0\r\n\r\n", 5);
        return finish(c);
    case EP_ECHO:
        if (g_delay_ms > 0) {   /* --delay: a slow backend (balancer tests, bench) */
            struct timeval tv = { (time_t)(g_delay_ms / 1000), (suseconds_t)((g_delay_ms % 1000) * 1000) };
            evtimer_add(c->timer, &tv);
            return 0;
        }
        return send_echo(c, 200);
    case EP_CLOSE:
        c->keepalive = false;
        return send_echo(c, 200);
    case EP_DELAY: {
        if (!path_suffix(c, "/delay/", buf, sizeof buf) || !parse_u64(buf, &v) || v > 3600000)
            return reject(c, 400, "bad delay");
        struct timeval tv = { (time_t)(v / 1000), (suseconds_t)((v % 1000) * 1000) };
        evtimer_add(c->timer, &tv);
        return 0;
    }
    case EP_STATUS:
        return send_status(c);
    case EP_BYTES:
        if (!path_suffix(c, "/bytes/", buf, sizeof buf) || !parse_u64(buf, &v))
            return reject(c, 400, "bad size");
        return start_bytes(c, v);
    case EP_SSE:
        return start_sse(c);
    case EP_LLM:
        return start_llm(c);
    case EP_HEALTH:
        return g_healthy ? send_simple(c, 200, "text/plain", "ok", 2)
                         : send_simple(c, 503, "text/plain", "down", 4);
    case EP_HEALTH_DOWN:
        g_healthy = false;
        return send_simple(c, 200, "text/plain", "down", 4);
    case EP_HEALTH_UP:
        g_healthy = true;
        return send_simple(c, 200, "text/plain", "up", 2);
    case EP_STATS:
        g_requests--; /* "requests" counts what tests sent, not their probes */
        return send_stats(c);
    case EP_RESET: {
        struct linger lg = { 1, 0 };
        setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        conn_free(c);
        return -1;
    }
    case EP_GARBAGE:
        evbuffer_add_printf(out, "HTTP/1.1 OK200 garbage\r\nthis is not a header\r\n\r\n");
        return conn_close_flush(c);
    case EP_WS:
        return start_ws(c);
    }
    return reject(c, 500, "unreachable");
}

static enum endpoint classify(const struct conn *c)
{
    const char *p;
    size_t n;
    bool post = strcmp(c->method, "POST") == 0;
    target_path(c->target, &p, &n);
    if (path_is(c, "/raw"))
        return EP_RAW;
    if (path_is(c, "/ws") && !strcmp(c->method, "GET") && hdr_has_token(c, "upgrade", "websocket"))
        return EP_WS;
    if (post && path_is(c, "/v1/chat/completions"))
        return EP_LLM;
    if (path_is(c, "/sse"))
        return EP_SSE;
    if (path_is(c, "/health"))
        return EP_HEALTH;
    if (post && path_is(c, "/health/down"))
        return EP_HEALTH_DOWN;
    if (post && path_is(c, "/health/up"))
        return EP_HEALTH_UP;
    if (path_is(c, "/stats"))
        return EP_STATS;
    if (path_is(c, "/close"))
        return EP_CLOSE;
    if (path_is(c, "/reset"))
        return EP_RESET;
    if (path_is(c, "/garbage"))
        return EP_GARBAGE;
    if (n > 7 && memcmp(p, "/delay/", 7) == 0)
        return EP_DELAY;
    if (n > 8 && memcmp(p, "/status/", 8) == 0)
        return EP_STATUS;
    if (n > 7 && memcmp(p, "/bytes/", 7) == 0)
        return EP_BYTES;
    return EP_ECHO;
}

/* The header section is complete: decide framing and endpoint.
 * Returns -1 when c was freed. */
static int start_request(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    g_requests++;
    c->nreq++;
    c->keepalive = c->minor == 1 ? !hdr_has_token(c, "connection", "close")
                                 : hdr_has_token(c, "connection", "keep-alive");
    c->head_req = strcmp(c->method, "HEAD") == 0;
    c->fr = FR_CL;
    EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL);

    const struct hdr *te = hdr_find(c, "transfer-encoding");
    bool have_cl = false;
    uint64_t cl = 0;
    for (size_t i = 0; i < c->nhdrs; i++) {
        if (strcasecmp(c->hdrs[i].name, "content-length") != 0)
            continue;
        uint64_t v;
        if (!parse_u64(c->hdrs[i].value, &v) || (have_cl && v != cl))
            return reject(c, 400, "bad Content-Length");
        have_cl = true;
        cl = v;
    }
    if (te) {
        if (have_cl)
            return reject(c, 400, "both Content-Length and Transfer-Encoding");
        if (strcasecmp(te->value, "chunked") != 0 || hdr_find(c, "transfer-encoding") != te)
            return reject(c, 501, "only chunked is supported");
        for (size_t i = 0; i < c->nhdrs; i++)
            if (&c->hdrs[i] != te && strcasecmp(c->hdrs[i].name, "transfer-encoding") == 0)
                return reject(c, 501, "only one chunked is supported");
        c->bmode = BODY_CHUNKED;
        c->cst = CH_SIZE;
    } else if (have_cl && cl > 0) {
        c->bmode = BODY_CL;
        c->remaining = cl;
    } else {
        c->bmode = BODY_NONE;
    }
    c->ep = classify(c);

    if (c->bmode != BODY_NONE && c->minor == 1 && hdr_has_token(c, "expect", "100-continue"))
        evbuffer_add_printf(out, "HTTP/1.1 100 Continue\r\n\r\n");

    if (c->ep == EP_RAW) {
        write_head(c, 200);
        evbuffer_add_printf(out, "Content-Type: application/octet-stream\r\n");
        if (c->bmode == BODY_CHUNKED) {
            choose_streaming_framing(c, false);
            if (c->fr == FR_CLOSE) {
                /* keepalive changed after the head was written: rewrite it */
                evbuffer_drain(out, evbuffer_get_length(out));
                write_head(c, 200);
                evbuffer_add_printf(out, "Content-Type: application/octet-stream\r\n");
            } else {
                evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
            }
        } else {
            evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", cl);
        }
        evbuffer_add(out, "\r\n", 2);
        if (c->head_req)
            c->fr = FR_CL;
    }
    c->st = ST_BODY;
    return 0;
}

static int parse_request_line(struct conn *c, char *line, size_t n)
{
    char *sp1 = memchr(line, ' ', n);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1)
        return -1;
    if (memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - line)))
        return -1;
    for (char *p = line; p < sp1; p++)
        if (*p < '!' || *p > '~' || strchr("()<>@,;:\\\"/[]?={}", *p))
            return -1;
    for (char *p = sp1 + 1; p < sp2; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -1;
    size_t vl = n - (size_t)(sp2 + 1 - line);
    if (vl == 8 && memcmp(sp2 + 1, "HTTP/1.1", 8) == 0)
        c->minor = 1;
    else if (vl == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)
        c->minor = 0;
    else
        return -1;
    c->method = strndup(line, (size_t)(sp1 - line));
    c->target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    return 0;
}

static int parse_header_line(struct conn *c, char *line, size_t n)
{
    char *colon = memchr(line, ':', n);
    if (!colon || colon == line)
        return -1;
    for (char *p = line; p < colon; p++)
        if (*p <= ' ' || *p > '~' || strchr("()<>@,;\\\"/[]?={}", *p))
            return -1;
    char *v = colon + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    for (const unsigned char *p = (const unsigned char *)v; p < (const unsigned char *)e; p++)
        if ((*p < ' ' && *p != '\t') || *p == 0x7f)
            return -1;
    if (c->nhdrs == c->caphdrs) {
        size_t cap = c->caphdrs ? c->caphdrs * 2 : 16;
        struct hdr *nh = realloc(c->hdrs, cap * sizeof *nh);
        if (!nh)
            abort();
        c->hdrs = nh;
        c->caphdrs = cap;
    }
    struct hdr *h = &c->hdrs[c->nhdrs++];
    h->name = strndup(line, (size_t)(colon - line));
    h->value_len = (size_t)(e - v);
    h->value = malloc(h->value_len + 1);
    if (!h->name || !h->value)
        abort();
    memcpy(h->value, v, h->value_len);
    h->value[h->value_len] = '\0';
    return 0;
}

/* Returns 1 when the header section is complete, 0 for more input or a
 * pending close, -1 when c was freed. */
static int read_head(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (c->head_bytes + evbuffer_get_length(in) > MAX_HEAD)
                return reject(c, 431, "header section too large");
            return 0;
        }
        c->head_bytes += n + 2;
        int bad = c->head_bytes > MAX_HEAD ? 431 : 0;
        if (!bad && (memchr(line, '\r', n) || memchr(line, '\0', n)))
            bad = 400;
        if (!bad && !c->method) {
            if (n == 0) {
                /* RFC 9112 2.2: ignore empty lines before the request line */
                c->head_bytes = 0;
                free(line);
                continue;
            }
            if (parse_request_line(c, line, n) < 0)
                bad = 400;
        } else if (!bad && n == 0) {
            free(line);
            return 1;
        } else if (!bad) {
            if (line[0] == ' ' || line[0] == '\t')
                bad = 400; /* obs-fold */
            else if (c->nhdrs >= MAX_HEADERS)
                bad = 431;
            else if (parse_header_line(c, line, n) < 0)
                bad = 400;
        }
        free(line);
        if (bad) {
            if (!c->method) {
                c->method = strdup("GET");
                c->target = strdup("/");
                c->minor = 1;
            }
            return reject(c, bad, bad == 431 ? "header section too large" : "malformed request");
        }
    }
}

/* Take n body bytes from the input: hash and keep them, or for /raw pass
 * them to the output. */
static void body_take(struct conn *c, size_t n)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    c->body_len += n;
    if (c->ep == EP_RAW) {
        if (c->head_req) {
            evbuffer_drain(in, n);
            return;
        }
        if (c->fr == FR_CHUNKED)
            evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_remove_buffer(in, out, n);
        if (c->fr == FR_CHUNKED)
            evbuffer_add(out, "\r\n", 2);
        return;
    }
    while (n > 0) {
        struct evbuffer_iovec v[16];
        int k = evbuffer_peek(in, (ev_ssize_t)n, NULL, v, 16);
        size_t done = 0;
        for (int i = 0; i < k && i < 16 && done < n; i++) {
            size_t len = v[i].iov_len;
            if (len > n - done)
                len = n - done;
            EVP_DigestUpdate(c->sha, v[i].iov_base, len);
            size_t kept = evbuffer_get_length(c->keep);
            if (kept < KEEP_BODY)
                evbuffer_add(c->keep, v[i].iov_base, len < KEEP_BODY - kept ? len : KEEP_BODY - kept);
            done += len;
        }
        evbuffer_drain(in, done);
        n -= done;
    }
}

/* Returns 1 when the body is complete, 0 for more input (or paused),
 * -1 when c was freed. */
static int read_body(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (;;) {
        if (c->ep == EP_RAW && evbuffer_get_length(out) > OUT_HIGH) {
            conn_pause(c);
            return 0;
        }
        size_t avail = evbuffer_get_length(in);
        if (c->bmode == BODY_NONE)
            return 1;
        if (c->bmode == BODY_CL || c->cst == CH_DATA) {
            if (avail == 0)
                return 0;
            size_t take = avail < c->remaining ? avail : (size_t)c->remaining;
            body_take(c, take);
            c->remaining -= take;
            if (c->remaining > 0)
                continue;
            if (c->bmode == BODY_CL)
                return 1;
            c->cst = CH_DATA_END;
            continue;
        }
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (avail > MAX_LINE)
                return reject(c, 400, "chunk line too long");
            return 0;
        }
        int bad = 0;
        if (c->cst == CH_DATA_END) {
            bad = n != 0;
            c->cst = CH_SIZE;
        } else if (c->cst == CH_SIZE) {
            uint64_t sz = 0;
            size_t i = 0;
            for (; i < n && isxdigit((unsigned char)line[i]); i++) {
                if (sz >> 59)
                    break;
                char ch = line[i];
                sz = sz * 16 + (uint64_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
            }
            if (i == 0 || (i < n && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
                bad = 1;
            else if (sz == 0)
                c->cst = CH_TRAILER;
            else {
                c->remaining = sz;
                c->cst = CH_DATA;
            }
        } else { /* CH_TRAILER */
            if (n == 0) {
                free(line);
                return 1;
            }
        }
        free(line);
        if (bad)
            return reject(c, 400, "bad chunk framing");
    }
}

static int conn_process(struct conn *c)
{
    for (;;) {
        int r;
        switch (c->st) {
        case ST_HEAD:
            r = read_head(c);
            if (r <= 0)
                return r;
            if (start_request(c) < 0)
                return -1;
            break;
        case ST_BODY:
            r = read_body(c);
            if (r <= 0)
                return r;
            if (dispatch(c) < 0)
                return -1;
            break;
        case ST_RESP:
            /* pipelined requests wait; bound what they may pile up */
            if (evbuffer_get_length(bufferevent_get_input(c->bev)) > IN_CAP)
                conn_pause(c);
            return 0;
        case ST_CLOSING:
            return 0;
        case ST_WS:
            return ws_process(c);
        }
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn_process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->st == ST_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_free(c);
        return;
    }
    if (c->st == ST_RESP && c->ep == EP_BYTES) {
        if (fill_bytes(c) < 0)
            return;
        if (c->st == ST_HEAD)
            conn_process(c);
        return;
    }
    if (c->st == ST_BODY && c->paused) {
        conn_resume(c);
        conn_process(c);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    if (c->st == ST_BODY || c->st == ST_RESP)
        g_aborted++;
    conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->bev = bufferevent_socket_new(g_base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(g_base, on_timer, c);
    c->sha = EVP_MD_CTX_new();
    c->keep = evbuffer_new();
    if (!c->bev || !c->timer || !c->sha || !c->keep)
        abort();
    c->id = ++g_accepted;
    g_open++;
    c->next = g_conns;
    if (g_conns)
        g_conns->prev = c;
    g_conns = c;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    fprintf(stderr, "sluice-echo: accept: %s\n", evutil_socket_error_to_string(err));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopexit(g_base, NULL);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice-echo [--port N] [--id NAME] [--host ADDR] [--namespace NS] [--pod NAME]\n"
               "                   [--token-ms N] [--delay MS]\n"
               "  --port N     port to listen on (0 = ephemeral, default 0)\n"
               "  --id NAME    value of the X-Upstream header (default \"echo\")\n"
               "  --host ADDR  address to bind (default 127.0.0.1)\n"
               "  --namespace NS, --pod NAME\n"
               "               add \"namespace\" and \"pod\" to the JSON echo (a Kubernetes pod\n"
               "               stand-in for the Gateway API conformance cases)\n"
               "  --token-ms N POST /v1/chat/completions with \"stream\": true sends a\n"
               "               token every N ms (default 30; ?token_ms= per request)\n"
               "  --delay MS   answer every echo request MS milliseconds late (default 0)\n"
               "GET /ws with Upgrade: websocket is a WebSocket echo.\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc || (strcmp(a, "--port") && strcmp(a, "--id") && strcmp(a, "--host") &&
                              strcmp(a, "--namespace") && strcmp(a, "--pod") &&
                              strcmp(a, "--token-ms") && strcmp(a, "--delay"))) {
            usage(stderr);
            return 1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--port")) {
            char *end;
            port = strtol(v, &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "sluice-echo: bad port %s\n", v);
                return 1;
            }
        } else if (!strcmp(a, "--id")) {
            g_id = v;
        } else if (!strcmp(a, "--namespace")) {
            g_ns = v;
        } else if (!strcmp(a, "--pod")) {
            g_pod = v;
        } else if (!strcmp(a, "--token-ms")) {
            char *end;
            long ms = strtol(v, &end, 10);
            if (*end || ms < 0 || ms > 60000) {
                fprintf(stderr, "sluice-echo: bad --token-ms %s\n", v);
                return 1;
            }
            g_token_ms = (unsigned)ms;
        } else if (!strcmp(a, "--delay")) {
            char *end;
            long d = strtol(v, &end, 10);
            if (*end || d < 0 || d > 3600000) {
                fprintf(stderr, "sluice-echo: bad delay %s\n", v);
                return 1;
            }
            g_delay_ms = d;
        } else {
            host = v;
        }
    }

    for (size_t i = 0; i < sizeof g_pattern; i++)
        g_pattern[i] = (unsigned char)((i * 31 + 7) & 0xff);

    /* thousands of test connections must not hit the soft fd limit */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    char spec[300];
    snprintf(spec, sizeof spec, strchr(host, ':') ? "[%s]:%ld" : "%s:%ld", host, port);
    struct sockaddr_storage ss;
    int sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sslen = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *s6;
    } else {
        fprintf(stderr, "sluice-echo: bad address %s\n", host);
        return 1;
    }

    g_base = event_base_new();
    if (!g_base)
        return 2;
    struct evconnlistener *l = evconnlistener_new_bind(
        g_base, on_accept, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        4096, (struct sockaddr *)&ss, sslen);
    if (!l) {
        fprintf(stderr, "sluice-echo: cannot listen on %s: %s\n", spec, strerror(errno));
        event_base_free(g_base);
        return 2;
    }
    evconnlistener_set_error_cb(l, on_accept_error);

    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen);
    int bport = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    printf(strchr(host, ':') ? "listening on [%s]:%d\n" : "listening on %s:%d\n", host, bport);
    fflush(stdout);

    struct event *sterm = evsignal_new(g_base, SIGTERM, on_signal, NULL);
    struct event *sint = evsignal_new(g_base, SIGINT, on_signal, NULL);
    evsignal_add(sterm, NULL);
    evsignal_add(sint, NULL);

    event_base_dispatch(g_base);

    while (g_conns)
        conn_free(g_conns);
    evconnlistener_free(l);
    event_free(sterm);
    event_free(sint);
    event_base_free(g_base);
    libevent_global_shutdown();
    return 0;
}
