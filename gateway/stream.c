/*
 * stream.c - what a response that streams needs beyond forwarding its
 * bytes (SPEC "Streaming and model routing"): the route's timeouts (first
 * byte, silence between pieces, total), the SSE heartbeat, and the stream
 * counters (time to first byte, open streams, duration, bytes).
 *
 * A stream is a response whose Content-Type is text/event-stream (SSE) or
 * application/x-ndjson (newline-delimited JSON, as Ollama streams).  Time to
 * first byte is counted for every proxied response: from the request's
 * start to the first byte of the response body (the first token of an LLM
 * answer), or to the head when the response has no body.
 *
 * The heartbeat is an SSE comment (":\n\n") sent when a text/event-stream
 * response has been silent for the route's sse_heartbeat_ms, only where an
 * event ended (the last bytes forwarded were a blank line) and only when
 * nothing is queued for the client.  It is framed as the response is: a
 * chunk of its own when sluice re-frames a chunked body, bare bytes when the
 * body runs to the close; a response with a Content-Length gets none (its
 * length is the upstream's).
 *
 * Bottom of the connection files' call order (conn.h): it calls nothing of
 * theirs.
 */
#include "conn.h"
#include "../core/check.h"

#include <strings.h>

static const char hb_plain[] = ":\n\n";
static const char hb_chunk[] = "3\r\n:\n\n\r\n";

/* ---- timeouts ---- */

void stream_start(struct gw_conn *c)
{
    struct gw_txn *t = c->t;

    t->total_deadline_ms = t->route && t->route->timeouts.total_ms
                               ? lt_now_ms() + t->route->timeouts.total_ms : 0;
    t->t_first = 0;
    t->sse = t->stream = t->hb = false;
    t->sse_nl = 2;      /* nothing sent yet: between events */
    t->sse_cr = false;
    t->stream_bytes = t->stream_t0 = 0;
}

/* ms, cut to what is left of the route's total_ms (at least 1). */
static uint32_t within_total(const struct gw_txn *t, uint32_t ms)
{
    if (t->total_deadline_ms == 0)
        return ms;
    uint64_t now = lt_now_ms();
    uint64_t left = t->total_deadline_ms > now ? t->total_deadline_ms - now : 1;
    return left < ms ? (uint32_t)left : ms;
}

uint32_t stream_first_byte_ms(const struct gw_txn *t)
{
    uint32_t ms = t->route && t->route->timeouts.first_byte_ms ? t->route->timeouts.first_byte_ms
                                                                 : t->ups->cfg->response_header_ms;
    return within_total(t, ms);
}

uint32_t stream_idle_ms(const struct gw_txn *t)
{
    uint32_t ms = t->route && t->route->timeouts.idle_ms ? t->route->timeouts.idle_ms
                                                           : t->ups->cfg->idle_ms;
    return within_total(t, ms);
}

enum stream_to stream_timeout_kind(const struct gw_txn *t)
{
    if (t->total_deadline_ms && lt_now_ms() + 2 >= t->total_deadline_ms)
        return STREAM_TO_TOTAL;
    return t->rstate == RS_WAIT && !t->resp_started ? STREAM_TO_FIRST_BYTE : STREAM_TO_IDLE;
}

/* ---- the response ---- */

static bool ctype_is(const struct h1_header *h, const char *want, size_t len)
{
    /* the media type, before any parameter (";charset=..."), case-insensitive */
    return h->value_len >= len && strncasecmp(h->value, want, len) == 0 &&
           (h->value_len == len || h->value[len] == ';' || h->value[len] == ' ' || h->value[len] == '\t');
}

void stream_resp_classify(struct gw_conn *c, const struct h1_response *r)
{
    struct gw_txn *t = c->t;

    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        if (h->name_len != 12 || strncasecmp(h->name, "content-type", 12) != 0)
            continue;
        t->sse = ctype_is(h, "text/event-stream", 17);
        t->stream = t->sse || ctype_is(h, "application/x-ndjson", 20);
        break;
    }
    t->hb = t->sse && t->route && t->route->sse_heartbeat_ms && r->body != H1_BODY_NONE &&
            r->body != H1_BODY_LENGTH;
}

void stream_resp_head(struct gw_conn *c, const struct h1_response *r)
{
    struct gw_txn *t = c->t;

    if (r->body == H1_BODY_NONE)
        t->t_first = gw_turn_ns(c->w);
    if (t->stream && t->rs) {
        gw_cnt_add(&t->rs->streams_open, 1);
        t->stream_t0 = gw_turn_ns(c->w);
    }
    if (t->hb)
        conn_timer_arm(c, t->route->sse_heartbeat_ms);
}

/* Where the last forwarded bytes leave an SSE stream: after a blank line
 * (two line ends: "\n", "\r\n" or "\r" each) a comment may go in. */
static void sse_scan(struct gw_txn *t, const char *p, size_t n)
{
    /* only the tail matters: the last non-line-end byte resets */
    size_t i = n;
    while (i > 0 && (p[i - 1] == '\n' || p[i - 1] == '\r'))
        i--;
    if (i > 0) {
        t->sse_nl = 0;
        t->sse_cr = false;
    }
    for (; i < n; i++) {
        if (p[i] == '\n' && t->sse_cr) {    /* the \n of a \r\n: one line end */
            t->sse_cr = false;
            continue;
        }
        t->sse_cr = p[i] == '\r';
        if (t->sse_nl < 2)
            t->sse_nl++;
    }
}

void stream_body(struct gw_conn *c, const char *p, size_t n)
{
    struct gw_txn *t = c->t;

    if (n == 0)
        return;
    if (t->t_first == 0)
        t->t_first = gw_turn_ns(c->w);
    t->stream_bytes += n;
    if (t->pol.budgeted && p)
        pol_usage_feed(&t->pol.usage, p, n);
    if (t->hb) {
        if (p)
            sse_scan(t, p, n);
        else
            t->sse_nl = 0;      /* moved unseen (splice): not known to be between events */
        conn_timer_arm(c, t->route->sse_heartbeat_ms);
    }
}

bool stream_heartbeat(struct gw_conn *c)
{
    struct gw_txn *t = c->t;

    if (t == NULL || !t->hb || c->state != C_ACTIVE || t->rstate != RS_BODY)
        return false;
    conn_timer_arm(c, t->route->sse_heartbeat_ms);
    if (t->sse_nl < 2 || !iovq_empty(&t->cq))
        return false;       /* inside an event, or bytes still on their way */
    bool chunk = t->resp_kind == H1_BODY_CHUNKED && !t->dechunk;
    iovq_push(&t->cq, chunk ? hb_chunk : hb_plain, chunk ? sizeof(hb_chunk) - 1 : sizeof(hb_plain) - 1);
    gw_cnt_add(&c->w->stats.sse_heartbeats, 1);
    return true;
}

/* ---- the end ---- */

void stream_end(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_route_stats *rs = t->rs;

    if (rs == NULL)
        return;
    if (t->t_first && t->resp_started)
        gw_hist_observe(&rs->ttfb, t->t_first - t->t_start);
    if (t->stream_t0) {     /* counted open by stream_resp_head */
        gw_cnt_add(&rs->streams_open, (uint64_t)-1);
        gw_hist_observe(&rs->stream_duration, gw_turn_ns(c->w) - t->stream_t0);
        gw_cnt_add(&rs->stream_bytes, t->stream_bytes);
        t->stream_t0 = 0;
    }
}

enum gw_cancel stream_cancel_phase(const struct gw_txn *t)
{
    if (!t->req_done)
        return GW_CANCEL_REQUEST_BODY;
    return t->resp_started ? GW_CANCEL_STREAMING : GW_CANCEL_WAITING;
}

