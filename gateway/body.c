/* body.c - the request body: which bytes belong to the request, queued
 * upstream as they came (Content-Length) or re-framed (chunked). */
#include "conn.h"
#include "access_log.h"
#include "h1_fwd.h"
#include "../core/io.h"
#include "tls.h"
#include "../core/check.h"
#include "../core/sbuf.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for one more piece of any size, or the last chunk: three iovecs
 * (size line, data, CRLF; the CRLF and the next size line share one) and
 * the framing plus a small piece's copy.  Checked before the chunked
 * decoder is asked for a piece, whose size it alone decides. */
bool rf_room(struct iovq *q, struct reframe *f)
{
    if (iovq_empty(q))
        f->len = 0;     /* nothing points into the area any more */
    return iovq_free(q) >= 3 && f->len + H1_FWD_CHUNK_MAX + RF_SMALL + 2 <= RF_CAP;
}

/* Queue n data bytes at p as a whole chunk (or, plain, as bare data for
 * an HTTP/1.0 client).  rf_room() said yes. */
void rf_data(struct iovq *q, struct reframe *f, const char *p, size_t n, bool plain)
{
    char *at = f->b + f->len;
    size_t k = plain ? 0 : h1_fwd_chunk_head(at, n);

    if (n <= RF_SMALL) {    /* size line, data and CRLF in one run */
        memcpy(at + k, p, n);
        k += n;
        n = 0;
    } else {
        iovq_push(q, at, k);
        iovq_push(q, p, n);
        at += k;
        f->len += (uint16_t)k;
        k = 0;
    }
    if (!plain) {
        memcpy(at + k, "\r\n", 2);
        k += 2;
    }
    iovq_push(q, at, k);
    f->len += (uint16_t)k;
}

/* Queue the last chunk (no trailers: sluice forwards none). */
void rf_last(struct iovq *q, struct reframe *f)
{
    char *at = f->b + f->len;
    size_t k = h1_fwd_chunk_last(at);

    iovq_push(q, at, k);
    f->len += (uint16_t)k;
}

/*
 * Walk the body bytes in in[body_end, in->end): decide which belong to this
 * request and queue them upstream.  A Content-Length body goes as it came;
 * a chunked one is re-framed (sizes, extensions and trailers are sluice's,
 * not the client's).  It stops early when the queue is full; the rest is
 * walked once the queue has drained (client_body_recv).  Returns false
 * after answering an error.
 */
bool take_body(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct gw_buf *in = c->in;
    uint64_t max = conn_cfg(c)->max_body_bytes;

    while (!t->req_done && t->body_end < in->end && c->state == C_ACTIVE) {
        const char *p = in->data + t->body_end;
        size_t avail = in->end - t->body_end, used = 0;
        int k = H1C_DATA;
        if (t->req_kind == H1_BODY_LENGTH) {
            used = avail < t->req_remaining ? avail : (size_t)t->req_remaining;
            t->req_remaining -= used;
            if (t->req_remaining == 0)
                k = H1C_DONE;
        } else {
            if (!rf_room(&t->uq, &t->urf))
                break;
            k = h1_chunked_next(&t->req_ck, p, avail, &used);
            if (k == H1C_ERROR) {
                txn_why(c, GW_END_CLIENT_PARSE);
                local_response(c, 400, NULL, NULL, 0, NULL);
                return false;
            }
        }
        if (t->req_kind == H1_BODY_LENGTH || k == H1C_DATA)
            t->req_body_bytes += used;
        if (max && t->req_body_bytes > max) {
            local_response(c, 413, NULL, NULL, 0, NULL);
            return false;
        }
        if (t->req_kind == H1_BODY_LENGTH)
            iovq_push(&t->uq, p, used);     /* one run after the head: always fits */
        else if (k == H1C_DATA)
            rf_data(&t->uq, &t->urf, p, used, false);
        else if (k == H1C_DONE)
            rf_last(&t->uq, &t->urf);
        t->body_end += (uint32_t)used;
        t->bytes_in += used;
        if (k == H1C_DONE)
            t->req_done = true;
        if (k == H1C_AGAIN)
            break;
    }
    t->body_pos = t->body_end;
    return true;
}

/* A chunked body, decoded into t->jbuf as it arrives (the raw bytes stay
 * in `in` untouched for take_body). */
static int chunked_for_route(struct gw_conn *c, uint32_t limit)
{
    struct gw_txn *t = c->t;
    struct gw_buf *in = c->in;

    if (t->jbuf == NULL) {
        t->jbuf = gw_buf_get(c->w, limit);
        h1_chunked_init(&t->jck);
        t->jraw = t->hlen;
    }
    while (t->jraw < in->end) {
        size_t used = 0;
        int k = h1_chunked_next(&t->jck, in->data + t->jraw, in->end - t->jraw, &used);
        if (k == H1C_ERROR)
            return RT_BODY_NONE;    /* take_body answers it (400) */
        if (k == H1C_DATA) {
            if (t->jbuf->end + used > limit)
                return RT_BODY_OVER;
            memcpy(t->jbuf->data + t->jbuf->end, in->data + t->jraw, used);
            t->jbuf->end += (uint32_t)used;
        }
        t->jraw += (uint32_t)used;
        if (k == H1C_DONE)
            return RT_BODY_READY;
        if (k == H1C_AGAIN)
            break;
    }
    return RT_BODY_UNREAD;
}

int body_for_route(struct gw_conn *c, uint32_t limit, const char **p, size_t *n)
{
    struct gw_txn *t = c->t;
    struct gw_buf *in = c->in;

    if (t->req_kind == H1_BODY_LENGTH) {
        if (t->req_cl > limit)
            return RT_BODY_OVER;
        if (in->end - t->hlen < t->req_cl)
            return in->end == in->cap ? RT_BODY_OVER : RT_BODY_UNREAD;
        *p = in->data + t->hlen;
        *n = (size_t)t->req_cl;
        return RT_BODY_READY;
    }
    if (t->req_kind != H1_BODY_CHUNKED)
        return RT_BODY_NONE;
    int st = chunked_for_route(c, limit);
    if (st == RT_BODY_UNREAD && in->end == in->cap)
        return RT_BODY_OVER;        /* framing so dense the buffer filled first */
    *p = t->jbuf->data;
    *n = t->jbuf->end;
    return st;
}

void body_route_done(struct gw_conn *c)
{
    gw_buf_put(c->w, c->t->jbuf);
    c->t->jbuf = NULL;
}

/* The body walked so far goes again, to another target (a retry): walk it
 * anew from the start, all of it still in the buffer (!body_lost). */
void rewalk_body(struct gw_conn *c)
{
    struct gw_txn *t = c->t;

    t->bytes_in -= t->body_end - t->hlen;
    t->body_pos = t->body_end = t->hlen;
    t->req_body_bytes = 0;
    t->req_remaining = t->req_cl;
    t->req_done = t->req_kind == H1_BODY_NONE;
    if (t->req_kind == H1_BODY_CHUNKED)
        h1_chunked_init(&t->req_ck);
    t->urf.len = 0;     /* the queue was emptied: nothing points into it */
    take_body(c);
}
