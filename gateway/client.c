/* client.c - the client connection's I/O: its TLS handshake, sending the
 * response, reading the request body, watching for the client leaving. */
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

/* Write what the queue holds.  Returns bytes written, 0 when the socket is
 * full (EAGAIN), -1 on error. */
ssize_t iovq_write(struct gw_io *io, struct iovq *q)
{
    ssize_t n = gw_io_writev(io, q->v + q->i, q->n - q->i);

    if (n == GW_IO_AGAIN)
        return 0;
    if (n < 0)
        return -1;
    size_t left = (size_t)n;
    while (q->i < q->n && left >= q->v[q->i].iov_len) {
        left -= q->v[q->i].iov_len;
        q->i++;
    }
    if (q->i < q->n) {
        q->v[q->i].iov_base = (char *)q->v[q->i].iov_base + left;
        q->v[q->i].iov_len -= left;
    } else {
        q->i = q->n = 0;
    }
    return n;
}

/* Read from fd into b's free tail.  >0 bytes, 0 EOF, -1 error, -2 no data.
 * rdhup: the peer's FIN is known to be pending (EPOLLRDHUP), so a short
 * read does not mean the edge was consumed: the EOF still has to be read. */
ssize_t buf_read(struct gw_io *io, struct gw_buf *b, bool *ready, bool rdhup)
{
    size_t room = b->cap - b->end;
    ssize_t n = gw_io_read(io, b->data + b->end, room);

    if (n > 0) {
        b->end += (uint32_t)n;
        if ((size_t)n < room && !rdhup)
            *ready = false;     /* a short read drained the socket (edge-triggered) */
        return n;
    }
    if (n == 0)
        return 0;
    if (n == GW_IO_AGAIN) {
        *ready = false;
        return -2;
    }
    return -1;
}

/* n bytes of a queue went out: the head bytes at its front first, the rest
 * is body copied through user space. */
void count_copied(struct gw_conn *c, uint32_t *head, size_t n)
{
    size_t h = n < *head ? n : *head;

    *head -= (uint32_t)h;
    if (n > h)
        gw_cnt_add(&c->w->stats.body_copy, n - h);
}

/* One step of a client's TLS handshake; true when it finished (the pump
 * goes on to read the request). */
bool conn_handshake(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    char why[256];

    if ((c->hs_want == GW_HS_WANT_READ && !c->r_ready) || (c->hs_want == GW_HS_WANT_WRITE && !c->w_ready))
        return false;
    int r = gw_tls_handshake(&c->io, why, sizeof(why));
    switch (r) {
    case GW_HS_DONE: {
        bool tx, rx;
        c->hs = false;
        c->hs_want = 0;
        gw_cnt_add(&w->stats.tls_hs[0][gw_tls_resumed(&c->io) ? 1 : 0], 1);
        gw_tls_pick_ops(&c->io, &tx, &rx);
        if (c->ktls_want)
            gw_cnt_add(tx ? &w->stats.ktls_on : &w->stats.ktls_fallback, 1);
        /* the request may have come with the client's Finished and already
         * sit decrypted-to-be in OpenSSL's buffer: no new edge would say so */
        c->r_ready = true;
        conn_timer_arm(c, w->cur->s->cfg->client_header_ms);
        return true;
    }
    case GW_HS_WANT_READ:
        c->hs_want = (uint8_t)r;
        c->r_ready = false;
        return false;
    case GW_HS_WANT_WRITE:
        c->hs_want = (uint8_t)r;
        c->w_ready = false;
        return false;
    case GW_HS_PLAINTEXT: {
        static const char msg[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 46\r\nConnection: close\r\n\r\n"
                                  "The plain HTTP request was sent to HTTPS port\n";
        gw_cnt_add(&w->stats.tls_hs[0][2], 1);
        ssize_t n = send(c->io.fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL);
        (void)n;
        c->hs_want = GW_HS_PLAINTEXT;   /* txn_end lingers: the rest is read and dropped */
        txn_end(c, GW_END_CLIENT_TLS);
        return false;
    }
    default:
        gw_cnt_add(&w->stats.tls_hs[0][2], 1);
        char ip[INET6_ADDRSTRLEN];
        size_t iplen = peer_ip(c, ip, sizeof(ip));
        gw_log(GW_LOG_INFO, "TLS handshake with %.*s failed: %s", (int)iplen, ip, why);
        txn_end(c, GW_END_CLIENT_TLS);
        return false;
    }
}

/* Everything queued for the client went out.  A response waiting for its
 * next piece (a stream between events) holds no buffer meanwhile: the
 * upstream read buffer, empty and with nothing ready to read, and the
 * scratch its heads were built in go back to the worker. */
static void release_idle(struct gw_conn *c, struct gw_txn *t)
{
    if (t->ubuf && t->ubuf->start == t->ubuf->end) {
        t->ubuf->start = t->ubuf->end = 0;
        if (t->rstate == RS_BODY && c->state == C_ACTIVE && t->up && !t->up->r_ready && !t->ub_filled) {
            gw_buf_put(c->w, t->ubuf);
            t->ubuf = NULL;
        }
    }
    if (t->scratch && t->resp_started && c->state == C_ACTIVE && t->rstate == RS_BODY &&
        !t->uhead_pending && iovq_empty(&t->uq)) {
        gw_buf_put(c->w, t->scratch);       /* no head is built after the response's */
        t->scratch = NULL;
    }
    /* the request's buffer, when it holds nothing but the head: what the
     * access log needs of it moves to a small block */
    if (t->rid == NULL && c->in && t->resp_started && t->req_done && c->state == C_ACTIVE &&
        t->rstate == RS_BODY && c->in->end == t->body_end && iovq_empty(&t->uq) &&
        (size_t)t->m_len + t->t_len + t->h_len <= GW_RID_CAP) {
        struct gw_rid *r = gw_rid_get(c->w);
        uint32_t k = 0;
        memcpy(r->data, c->in->data + t->m_off, t->m_len);
        t->m_off = 0;
        k = t->m_len;
        memcpy(r->data + k, c->in->data + t->t_off, t->t_len);
        t->t_off = k;
        k += t->t_len;
        memcpy(r->data + k, c->in->data + t->h_off, t->h_len);
        t->h_off = k;
        t->rid = r;
        t->body_end = t->body_pos = 0;     /* nothing of `in` is left to pass on */
        gw_buf_put(c->w, c->in);
        c->in = NULL;
    }
}

bool client_send(struct gw_conn *c)
{
    if (iovq_empty(&c->t->cq) || !c->w_ready)
        return false;
    ssize_t n = iovq_write(&c->io, &c->t->cq);
    if (n < 0) {
        txn_end(c, GW_END_CLIENT_CLOSED);      /* drops the upstream too */
        return false;
    }
    if (n == 0) {
        c->w_ready = false;
        return false;
    }
    c->t->bytes_out += (uint64_t)n;
    count_copied(c, &c->t->cq_head, (size_t)n);
    if (iovq_empty(&c->t->cq))
        release_idle(c, c->t);
    return true;
}

/* Read more of the request body (only when all queued bytes went up). */
bool client_body_recv(struct gw_conn *c)
{
    if (c->t->req_done || !iovq_empty(&c->t->uq) || c->t->up == NULL || c->t->req_spliced)
        return false;
    struct gw_buf *in = c->in;
    if (c->t->body_end < in->end) {
        /* read before, not walked yet: the queue was full (re-framing) */
        uint32_t before = c->t->body_end;
        take_body(c);
        return c->state != C_ACTIVE || c->t->body_end != before;
    }
    if (!c->r_ready)
        return false;
    if (in->end > c->t->hlen) {
        /* everything queued was written: the buffer can be reused */
        in->end = c->t->hlen;
        c->t->body_pos = c->t->body_end = c->t->hlen;
        c->t->body_lost = true;
    }
    ssize_t n = buf_read(&c->io, in, &c->r_ready, c->rdhup);
    if (n == -2)
        return false;
    if (n == 0 || n == -1) {
        c->t->up_clean = false;
        up_conn_close(c->t->up);
        txn_end(c, GW_END_CLIENT_CLOSED);
        return false;
    }
    conn_timer_arm(c, c->t->ws->s->cfg->client_idle_ms);
    take_body(c);
    return true;
}

/* The request is complete: a readable client now is either the next
 * pipelined request or the client leaving (EOF), which must stop the
 * upstream at once (an LLM stops generating). */
bool client_watch(struct gw_conn *c)
{
    if (!c->r_ready || !c->t->req_done || c->peeked)
        return false;
    int n = client_peek(c);
    if (n < 0) {
        if (c->t->up) {
            c->t->up_clean = false;
            up_conn_close(c->t->up);
        }
        txn_end(c, GW_END_CLIENT_CLOSED);
        return false;
    }
    if (n > 0)
        c->peeked = true;
    return false;
}

int client_peek(struct gw_conn *c)
{
    char b;

    /* (under TLS the socket's bytes are records: a reset shows here too,
     * which libevent reports as EV_READ without EV_CLOSED) */
    ssize_t n = recv(c->io.fd, &b, 1, MSG_PEEK);
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
        return -1;
    if (c->io.ctx) {
        /* a record is not a request to peek at, and some may wait inside
         * the TLS library: the FIN (seen as RDHUP, maybe behind a
         * close_notify) says the client left; anything else waits its turn */
        if (c->rdhup)
            return -1;
        n = 1;
    }
    c->r_ready = false;
    return n > 0;
}

