/* pass.c - body bytes that never enter user space: splice(2) of request and
 * response bodies, and the two-way tunnel after a 101. */
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

enum { SP_MOVED = 1, SP_EOF = 2, SP_RERR = 4, SP_WERR = 8 };

/* May body bytes move from src to dst by splice under this request's config? */
static bool splice_ok(const struct gw_conn *c, const struct gw_io *src, const struct gw_io *dst)
{
    /* a kernel-TLS source may still hold decrypted bytes inside OpenSSL,
     * which a splice from the socket would overtake */
    return conn_cfg(c)->splice && src->ops->splice_from && dst->ops->splice_to &&
           !(src->ctx && gw_tls_pending(src));
}

static int pass_drain(struct gw_pipe *p, int dfd, bool *w_ready, uint64_t *out)
{
    if (p->len == 0 || !*w_ready)
        return 0;
    ssize_t n = gw_pipe_drain(p, dfd);
    if (n > 0) {
        *out += (uint64_t)n;
        return SP_MOVED;
    }
    if (n == GW_IO_AGAIN) {
        *w_ready = false;
        return 0;
    }
    return SP_WERR;
}

static int pass_fill(struct gw_pipe *p, int sfd, bool *r_ready, uint64_t *left, uint64_t *in)
{
    if (*left == 0 || !*r_ready)
        return 0;
    bool was_empty = p->len == 0;
    ssize_t n = gw_pipe_fill(p, sfd, *left < GW_SPLICE_CHUNK ? (size_t)*left : GW_SPLICE_CHUNK);
    if (n > 0) {
        *in += (uint64_t)n;
        *left -= (uint64_t)n;
        return SP_MOVED;
    }
    if (n == 0) {
        *left = 0;
        return SP_EOF;
    }
    if (n == GW_IO_AGAIN) {
        if (was_empty)
            *r_ready = false;
        return 0;
    }
    return SP_RERR;
}

/* One pass of src -> pipe -> dst: drain (making room), fill at most *left
 * bytes, drain again.  Readiness is cleared only on EAGAIN, never on a
 * short transfer: a splice stops at the pipe's capacity, which says nothing
 * about what the socket still holds.  And a fill's EAGAIN clears r_ready
 * only when the pipe was empty: into a non-empty pipe it may mean the pipe
 * is full, so the fill after the next drain tells. */
static int splice_pass(struct gw_pipe *p, int sfd, bool *r_ready, int dfd, bool *w_ready,
                       uint64_t *left, uint64_t *in, uint64_t *out)
{
    int rc = pass_drain(p, dfd, w_ready, out);

    if (rc & SP_WERR)
        return rc;
    rc |= pass_fill(p, sfd, r_ready, left, in);
    if (rc & SP_RERR)
        return rc;
    return rc | pass_drain(p, dfd, w_ready, out);
}

/* Borrow a pipe when bytes are ready to move; false when none can be had
 * (out of descriptors): the caller copies instead. */
static bool pipe_borrow(struct gw_conn *c, struct gw_pipe **pp)
{
    if (*pp == NULL)
        *pp = gw_pipe_get(&c->w->pipes);
    return *pp != NULL;
}

/* Give an empty pipe back while its source has nothing more for now, so an
 * idle stream or tunnel holds no descriptors. */
static void pipe_idle(struct gw_conn *c, struct gw_pipe **pp, bool src_ready)
{
    if (*pp && (*pp)->len == 0 && !src_ready) {
        gw_pipe_put(&c->w->pipes, *pp);
        *pp = NULL;
    }
}

/*
 * The response body by splice, upstream -> pipe -> client.  It starts once
 * the head and the body bytes that came with it (copied) have gone out, for
 * a Content-Length body with at least splice.min_bytes left, or a
 * close-delimited one.  Chunked bodies are copied: their framing is parsed;
 * so are SSE bodies with heartbeats (they go in between events).
 */
bool resp_splice(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct up_conn *u = t->up;

    if (!t->resp_spliced) {
        /* a budgeted response is read for its usage: copied, never spliced */
        if (t->rstate != RS_BODY || t->dechunk || t->hb || t->pol.budgeted || !iovq_empty(&t->cq) || u == NULL ||
            !u->r_ready || (t->ubuf && t->ubuf->start != t->ubuf->end))
            return false;
        if (t->resp_kind == H1_BODY_LENGTH) {
            if (t->resp_remaining < conn_cfg(c)->splice_min_bytes)
                return false;
        } else if (t->resp_kind != H1_BODY_CLOSE) {
            return false;
        }
        if (!splice_ok(c, &u->io, &c->io))
            return false;
        t->resp_spliced = true;
        gw_splice_lowat(c->io.fd, true);
        t->lowat_c = true;
    }
    if (t->rstate != RS_BODY)
        return false;
    if (u == NULL && !t->pc_fin) {     /* the upstream was closed under us */
        t->pc_fin = true;
        t->keepalive = false;
    }
    if (t->pc == NULL) {
        if (t->pc_fin) {            /* the source ended and the pipe was drained */
            t->rstate = RS_DONE;
            return true;
        }
        if (u == NULL || !u->r_ready)
            return false;
        if (!pipe_borrow(c, &t->pc)) {
            t->resp_spliced = false;    /* no descriptor for a pipe: copy the rest */
            return true;
        }
    }
    uint64_t left = t->pc_fin || u == NULL ? 0 :
                    t->resp_kind == H1_BODY_LENGTH ? t->resp_remaining : UINT64_MAX;
    uint64_t in = 0, out = 0;
    bool no_src = false;
    int rc = splice_pass(t->pc, u ? u->io.fd : -1, u ? &u->r_ready : &no_src, c->io.fd, &c->w_ready,
                         &left, &in, &out);
    if (t->resp_kind == H1_BODY_LENGTH)
        t->resp_remaining -= in;
    t->bytes_out += out;
    gw_cnt_add(&c->w->stats.body_splice, out);
    if (rc & SP_WERR) {
        txn_end(c, GW_END_CLIENT_CLOSED);      /* drops the upstream too */
        return false;
    }
    if (u && (rc & (SP_EOF | SP_RERR))) {
        if (t->resp_kind != H1_BODY_CLOSE || (rc & SP_RERR)) {
            gw_log(GW_LOG_WARN, "upstream %s: connection lost mid-response", t->target->text);
            txn_why(c, GW_END_UP_RESET);
            t->keepalive = false;   /* the client sees the body cut: deliver what we have, close */
        }
        t->pc_fin = true;
        t->up_clean = false;
        up_conn_close(u);
        u = NULL;
    } else if (u && in) {
        up_conn_timer_arm(u, stream_idle_ms(t));        /* silence mid-response */
    }
    stream_body(c, NULL, in);
    if (u && t->resp_kind == H1_BODY_LENGTH && t->resp_remaining == 0 && !t->pc_fin) {
        /* the body is all in the pipe; the socket's readiness was not
         * consumed by a short read, so look: a clean connection has nothing
         * more to say (else up_conn_checkin closes it) */
        char b;
        ssize_t n = recv(u->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            u->r_ready = false;
        t->pc_fin = true;
    }
    if (t->pc_fin && t->pc->len == 0) {
        gw_pipe_put(&c->w->pipes, t->pc);
        t->pc = NULL;
        t->rstate = RS_DONE;
        return true;
    }
    pipe_idle(c, &t->pc, u && u->r_ready);
    return rc & SP_MOVED;
}

/*
 * The request body by splice, client -> pipe -> upstream: a Content-Length
 * body with at least splice.min_bytes left once what was buffered with the
 * head went up.  Bytes spliced out of the client socket cannot be sent
 * again: the request is no longer retryable (body_lost).
 */
bool req_splice(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct up_conn *u = t->up;

    if (u == NULL || !u->connected || !iovq_empty(&t->uq))
        return false;
    if (!t->req_spliced) {
        if (t->req_done || t->req_kind != H1_BODY_LENGTH || !c->r_ready ||
            t->req_remaining < conn_cfg(c)->splice_min_bytes || !splice_ok(c, &c->io, &u->io))
            return false;
        t->req_spliced = true;
        gw_splice_lowat(u->io.fd, true);
        u->lowat = true;
        if (c->in->end > t->hlen) {     /* everything buffered went up: drop it */
            c->in->end = t->hlen;
            t->body_pos = t->body_end = t->hlen;
            t->body_lost = true;
        }
    }
    if (t->pu == NULL) {
        if (t->req_done || !c->r_ready)
            return false;
        if (!pipe_borrow(c, &t->pu)) {
            t->req_spliced = false;     /* copy the rest */
            return true;
        }
    }
    uint64_t left = t->req_remaining, in = 0, out = 0;
    int rc = splice_pass(t->pu, c->io.fd, &c->r_ready, u->io.fd, &u->w_ready, &left, &in, &out);
    t->req_remaining -= in;
    t->req_body_bytes += in;
    t->bytes_in += in;
    t->up_sent += out;
    gw_cnt_add(&c->w->stats.body_splice, out);
    if (in) {
        t->body_lost = true;
        conn_timer_arm(c, t->ws->s->cfg->client_idle_ms);
    }
    if (rc & (SP_EOF | SP_RERR)) {      /* the client left mid-body */
        t->up_clean = false;
        up_conn_close(u);
        txn_end(c, GW_END_CLIENT_CLOSED);
        return false;
    }
    if (rc & SP_WERR) {
        if (t->rstate == RS_WAIT && !t->resp_started)
            fwd_failed(c, 502, false, GW_END_UP_RESET, "write failed");
        else {
            up_conn_close(u);
            txn_end(c, GW_END_UP_RESET);
        }
        return true;
    }
    if (t->req_remaining == 0)
        t->req_done = true;         /* all read from the client (the pipe may still hold some) */
    if (t->req_done && t->pu->len == 0) {
        gw_pipe_put(&c->w->pipes, t->pu);
        t->pu = NULL;
        if (t->rstate == RS_WAIT && c->state == C_ACTIVE) {
            u->nreq++;
            up_conn_timer_arm(u, stream_first_byte_ms(t));
        }
        return true;
    }
    pipe_idle(c, &t->pu, c->r_ready);
    return rc & SP_MOVED;
}

/* One tunnel direction by splice.  Returns SP_* bits; *fin is set once the
 * source's FIN was seen and the pipe drained: the caller passes it on. */
static int tunnel_splice(struct gw_conn *c, struct gw_pipe **pp, bool *src_eof, int sfd, bool *r_ready,
                         int dfd, bool *w_ready, uint64_t *in, uint64_t *out, bool *fin)
{
    uint64_t left = *src_eof ? 0 : UINT64_MAX;

    if (*pp == NULL) {
        if (!*r_ready || *src_eof)
            return 0;
        if (!pipe_borrow(c, pp))
            return -1;
    }
    uint64_t before = *out;
    int rc = splice_pass(*pp, sfd, r_ready, dfd, w_ready, &left, in, out);
    gw_cnt_add(&c->w->stats.body_splice, *out - before);
    if (rc & SP_EOF)
        *src_eof = true;
    if (*src_eof && (*pp)->len == 0)
        *fin = true;
    pipe_idle(c, pp, *r_ready && !*src_eof);
    return rc;
}

/* The tunnel's client -> upstream direction (splice, else copy); a FIN
 * is passed on.  On an error the txn ends (c->state == C_CLOSED). */
static bool tunnel_c2u(struct gw_conn *c, struct gw_txn *t, struct up_conn *u)
{
    bool p = false, spliced = false;

    if (!t->cli_eof && iovq_empty(&t->uq) && (t->pu || c->r_ready) && splice_ok(c, &c->io, &u->io)) {
        uint64_t in = 0, out = 0;
        bool fin = false;
        int rc = tunnel_splice(c, &t->pu, &t->pu_fin, c->io.fd, &c->r_ready, u->io.fd, &u->w_ready,
                               &in, &out, &fin);
        if (rc > 0 && (rc & (SP_RERR | SP_WERR))) {
            txn_end(c, GW_END_TUNNEL);
            return false;
        }
        spliced = rc >= 0;      /* < 0: no pipe to be had, copy */
        t->bytes_in += in;
        if (in)
            up_conn_timer_arm(u, t->ups->cfg->idle_ms);
        if (fin) {
            t->cli_eof = true;
            gw_io_shutdown_wr(&u->io);
            p = true;
        }
        p |= rc > 0 && (rc & SP_MOVED);
    }
    if (!spliced && !t->cli_eof && iovq_empty(&t->uq) && c->r_ready) {
        c->in->start = 0;
        c->in->end = t->hlen;       /* keep the request head for the access log */
        ssize_t n = buf_read(&c->io, c->in, &c->r_ready, c->rdhup);
        if (n == -1) {
            txn_end(c, GW_END_TUNNEL);
            return false;
        }
        if (n == 0) {
            t->cli_eof = true;
            gw_io_shutdown_wr(&u->io);
            p = true;
        } else if (n > 0) {
            t->bytes_in += (uint64_t)n;
            iovq_push(&t->uq, c->in->data + t->hlen, (size_t)n);
            up_conn_timer_arm(u, t->ups->cfg->idle_ms);
            p = true;
        }
    }
    return p;
}

/* The tunnel's upstream -> client direction, as tunnel_c2u. */
static bool tunnel_u2c(struct gw_conn *c, struct gw_txn *t, struct up_conn *u)
{
    bool p = false, spliced = false;

    if (!t->up_eof && iovq_empty(&t->cq) && (t->pc || u->r_ready) && splice_ok(c, &u->io, &c->io)) {
        uint64_t in = 0, out = 0;
        bool fin = false;
        int rc = tunnel_splice(c, &t->pc, &t->pc_fin, u->io.fd, &u->r_ready, c->io.fd, &c->w_ready,
                               &in, &out, &fin);
        if (rc > 0 && (rc & (SP_RERR | SP_WERR))) {
            txn_end(c, GW_END_TUNNEL);
            return false;
        }
        spliced = rc >= 0;
        t->bytes_out += out;
        if (in)
            up_conn_timer_arm(u, t->ups->cfg->idle_ms);
        if (fin) {
            t->up_eof = true;
            gw_io_shutdown_wr(&c->io);
            p = true;
        }
        p |= rc > 0 && (rc & SP_MOVED);
    }
    if (!spliced && !t->up_eof && iovq_empty(&t->cq) && u->r_ready) {
        t->ubuf->start = t->ubuf->end = 0;
        ssize_t n = buf_read(&u->io, t->ubuf, &u->r_ready, u->rdhup);
        if (n == -1) {
            txn_end(c, GW_END_TUNNEL);
            return false;
        }
        if (n == 0) {
            t->up_eof = true;
            gw_io_shutdown_wr(&c->io);
            p = true;
        } else if (n > 0) {
            iovq_push(&t->cq, t->ubuf->data, (size_t)n);
            up_conn_timer_arm(u, t->ups->cfg->idle_ms);
            p = true;
        }
    }
    return p;
}

/* A two-way byte pipe after a 101.  Each direction ends on its own: a FIN
 * from one side is passed on (shutdown SHUT_WR) once what it sent before is
 * written, and the tunnel closes when both directions have ended. */
bool tunnel_step(struct gw_conn *c)
{
    struct gw_txn *t = c->t;
    struct up_conn *u = t->up;
    bool p = false;

    if (u == NULL) {
        if (iovq_empty(&t->cq))
            txn_end(c, GW_END_TUNNEL);
        else
            p = client_send(c);
        return p;
    }
    p |= fwd_send(c);
    p |= client_send(c);
    if (c->state == C_CLOSED || t->up == NULL)
        return false;
    p |= tunnel_c2u(c, t, u);
    if (c->state == C_CLOSED)
        return false;
    p |= tunnel_u2c(c, t, u);
    if (c->state == C_CLOSED)
        return false;
    if (t->cli_eof && t->up_eof && iovq_empty(&t->cq) && iovq_empty(&t->uq) && !t->pu && !t->pc) {
        txn_end(c, GW_END_TUNNEL);
        return false;
    }
    return p;
}
