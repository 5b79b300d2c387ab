/*
 * proxy.c - client connections and the request/response pump.
 *
 * Every socket has ONE libevent event, registered once, edge-triggered for
 * both directions (EV_ET|EV_PERSIST): the kernel's epoll set is never
 * touched on the request path.  Callbacks only record readiness
 * (r_ready/w_ready) and call conn_pump(), which makes all the progress it
 * can in every direction and returns when nothing more can move.
 *
 * Bytes are never copied between sockets: a request or response head is
 * rebuilt into the connection's scratch buffer (it has to be: hop-by-hop
 * headers go, X-Forwarded-* come), bodies are written straight from the
 * buffer they were read into.  Back-pressure is structural: a buffer is read
 * into only when everything queued from it has been written, so memory per
 * connection is bounded by three buffers whatever the body size.  Large
 * bodies and tunnels between splice-capable sockets skip user space: they
 * move socket -> pipe -> socket with splice(2), the pipe (borrowed from the
 * worker's pool) standing in for the buffer (see "splice" below).
 *
 * This file holds the events (client, timers; the upstream connection's
 * through gw_up_ops), the pump and a request's start; the rest of a connection's life is in the files conn.h
 * lists, each called from above only.
 *
 * Lifetime: objects are never freed inside the call stack that closes them;
 * conn_teardown()/up_conn_close() mark them, unlink them from libevent and queue
 * them on the worker's gc lists, and gw_gc() frees them once the top-level
 * callback is done (tmux/Redis style).
 */
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

static void conn_pump(struct gw_conn *c);

/* ---- the upstream connection's events (upstream/upconn.c calls these) ---- */

/* An upstream connection's owner is a client connection, or an auth
 * subrequest (authreq.c): both start with their magic. */
static bool areq_owner(const void *owner)
{
    return *(const uint32_t *)owner == AREQ_MAGIC;
}

static void up_on_io(void *owner, struct up_conn *u)
{
    struct gw_conn *c = owner;

    if (areq_owner(owner)) {
        areq_on_io(owner, u);
        return;
    }

    CHECK_MAGIC(c, CONN_MAGIC);
    struct gw_worker *w = c->w;
    conn_pump(c);
    gw_gc(w);
}

static void up_on_connect_error(void *owner, struct up_conn *u, int err)
{
    struct gw_conn *c = owner;

    if (areq_owner(owner)) {
        areq_on_connect_error(owner, u, err);
        return;
    }

    CHECK_MAGIC(c, CONN_MAGIC);
    struct gw_worker *w = c->w;
    char why[128];
    snprintf(why, sizeof(why), "connect: %s", strerror(err));
    fwd_failed(c, 502, false, GW_END_UP_CONNECT, why);
    conn_pump(c);
    gw_gc(w);
}

/* The upstream was silent too long: before the head 504, after it the
 * client connection closes (the response is visibly cut). */
static void resp_timeout(struct gw_conn *c, struct up_conn *u)
{
    struct gw_txn *t = c->t;
    enum stream_to k = stream_timeout_kind(t);
    bool total = k == STREAM_TO_TOTAL;

    if (t->rstate == RS_WAIT && !t->resp_started) {
        if (total)
            gw_log(GW_LOG_WARN, "upstream %s: no response header within the route's total %u ms",
                   t->target->text, t->route->timeouts.total_ms);
        else
            gw_log(GW_LOG_WARN, "upstream %s: no response header within %u ms", t->target->text,
                   t->route->timeouts.first_byte_ms ? t->route->timeouts.first_byte_ms
                                                    : t->ups->cfg->response_header_ms);
        if (total) {
            up_conn_close(u);       /* the route's bound: says nothing of the target */
        } else {
            up_conn_fail(u, false); /* a timeout counts against the target */
            txn_target_failed(c);
        }
        txn_why(c, total ? GW_END_UP_TOTAL_TIMEOUT : GW_END_UP_HEADER_TIMEOUT);
        t->keepalive = t->keepalive && t->req_done;
        local_response(c, 504, NULL, NULL, 0, NULL);
    } else if (total) {
        gw_log(GW_LOG_WARN, "upstream %s: response cut at the route's total %u ms", t->target->text,
               t->route->timeouts.total_ms);
        up_conn_close(u);
        txn_end(c, GW_END_UP_TOTAL_TIMEOUT);
    } else {
        gw_log(GW_LOG_WARN, "upstream %s: idle for %u ms mid-response", t->target->text,
               t->route->timeouts.idle_ms ? t->route->timeouts.idle_ms : t->ups->cfg->idle_ms);
        up_conn_close(u);
        txn_end(c, GW_END_UP_IDLE_TIMEOUT);
    }
}

static void up_on_timeout(void *owner, struct up_conn *u)
{
    struct gw_conn *c = owner;

    if (areq_owner(owner)) {
        areq_on_timeout(owner, u);
        return;
    }

    CHECK_MAGIC(c, CONN_MAGIC);
    struct gw_worker *w = c->w;
    if (!u->connected) {
        fwd_failed(c, 504, false, GW_END_UP_CONNECT_TIMEOUT, "connect timed out");
    } else if (u->hs) {
        fwd_failed(c, 504, false, GW_END_UP_CONNECT_TIMEOUT, "TLS handshake timed out");
    } else {
        resp_timeout(c, u);
    }
    conn_pump(c);
    gw_gc(w);
}

const struct up_conn_ops gw_up_ops = {
    .on_io = up_on_io,
    .on_connect_error = up_on_connect_error,
    .on_timeout = up_on_timeout,
};

/* ---- the request ---- */

/* The best route wants the body (match.json_body): read it first, with
 * nothing sent upstream; route_wait_step() routes again once it is whole,
 * too long, or not there. */
static void route_wait(struct gw_conn *c)
{
    struct gw_txn *t = c->t;

    c->state = C_ROUTE;
    if ((c->w->req.flags & H1_F_EXPECT_CONTINUE) && !t->client10 && !t->expect_sent) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        iovq_push(&t->cq, cont, sizeof(cont) - 1);
        t->cq_head += sizeof(cont) - 1;
        t->expect_sent = true;
    }
    conn_timer_arm(c, t->ws->s->cfg->client_idle_ms);  /* a body that never comes */
}

static void route_act(struct gw_conn *c, const struct h1_request *r);
static void request_routed(struct gw_conn *c, const struct h1_request *r);
static void guard_done(void *owner);

static void route_request(struct gw_conn *c, const struct h1_request *r)
{
    struct gw_wsnap *ws = c->t->ws;
    const struct sl_config *cfg = ws->s->cfg;
    struct rt_request q;
    size_t li = cfg->nlisteners;

    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (ws->s->listeners[i] == c->l) {
            li = i;
            break;
        }
    if (li == cfg->nlisteners) {
        /* the listener was removed by a reload: it has no routes any more */
        c->t->keepalive = false;
        local_response(c, 404, NULL, NULL, 0, NULL);
        return;
    }
    q.listener = li;
    q.method = r->method;
    q.method_len = r->method_len;
    q.host = r->host;
    q.host_len = r->host_len;
    q.path = r->path;
    q.path_len = r->path_len;
    q.query = r->query;
    q.query_len = r->query_len;
    q.headers = r->headers;
    q.nheaders = r->nheaders;
    bool need_body = false;
    q.body_state = (enum rt_body)c->t->jstate;
    q.body = c->t->jbody;
    q.body_len = c->t->jbody_len;
    q.need_body = &need_body;
    c->t->route = rt_match(ws->s->rt, &q);
    if (need_body) {
        route_wait(c);
        return;
    }
    if (c->t->route == NULL) {
        local_response(c, 404, NULL, NULL, 0, NULL);
        return;
    }
    if (c->t->route->policy && guard_start(c, r, guard_done) != POL_ALLOW)
        return;     /* denied (answered), or pending (C_GUARD) */
    route_act(c, r);
}

/* The route's action, its policy passed. */
static void route_act(struct gw_conn *c, const struct h1_request *r)
{
    struct gw_wsnap *ws = c->t->ws;
    const struct cfg_route *rt = c->t->route;
    if (rt->action == CFG_ACT_RESPOND) {
        local_response(c, rt->respond.status, rt->respond.content_type,
                       rt->respond.body ? rt->respond.body : "", rt->respond.body_len, NULL);
        return;
    }
    if (rt->action == CFG_ACT_REDIRECT) {
        local_redirect(c, r, rt);
        return;
    }
    /* backends: weighted split, then a target of that upstream */
    c->t->rs = ws->rstats[rt->index] ? ws->rstats[rt->index] : gw_wsnap_route_stats(c->w, ws, rt);
    stream_start(c);
    size_t bi = 0;
    if (rt->nbackends > 1) {
        uint32_t wts[64];
        size_t nb = rt->nbackends < 64 ? rt->nbackends : 64;
        for (size_t i = 0; i < nb; i++)
            wts[i] = rt->backends[i].weight;
        int k = up_swrr(ws->route_rr + ws->s->route_rr_off[rt->index], wts, nb, NULL, NULL);
        bi = k < 0 ? 0 : (size_t)k;
    }
    c->t->ups = &ws->s->ups.v[rt->backends[bi].upstream_idx];
    if (c->t->ups->cfg->balance == CFG_BAL_HASH) {
        bool v6 = c->peer.sa.sa_family == AF_INET6;
        const void *ip = v6 ? (const void *)&c->peer.in6.sin6_addr : (const void *)&c->peer.in4.sin_addr;
        c->t->has_hkey = up_hash_key(c->t->ups->cfg, r->headers, r->nheaders, ip, v6 ? 16 : 4,
                                     &c->t->hkey);
    }
    int ti = fwd_pick(c, 0);
    if (ti < 0) {
        local_response(c, 503, NULL, NULL, 0, NULL);
        return;
    }
    txn_target(c, &c->t->ups->targets[ti]);
    c->t->tried = 1ull << (ti & 63);
    if (!fwd_build_head(c, r)) {
        local_response(c, 431, NULL, NULL, 0, NULL);
        return;
    }
    /* queue the head and whatever body bytes came with it */
    iovq_reset(&c->t->uq);
    iovq_push(&c->t->uq, c->t->scratch->data, c->t->uhead_len);
    c->t->uq_head = c->t->uhead_len;
    c->t->uhead_pending = true;
    c->state = C_ACTIVE;
    c->t->rstate = RS_WAIT;
    c->t->up_clean = true;
    fwd_connect(c);
}

static void start_request(struct gw_conn *c, uint32_t hlen)
{
    struct gw_worker *w = c->w;
    const struct h1_request *r = &w->req;
    const char *base = c->in->data;

    c->t = txn_get(w);
    c->t->ws = w->cur;
    c->t->ws->pins++;
    c->t->t_start = gw_turn_ns(c->w);
    c->t->t_up = 0;
    c->t->hlen = hlen;
    c->t->m_off = (uint32_t)(r->method - base);
    c->t->m_len = r->method_len;
    c->t->t_off = (uint32_t)(r->target - base);
    c->t->t_len = r->target_len;
    c->t->h_off = r->host ? (uint32_t)(r->host - base) : 0;
    c->t->h_len = r->host ? r->host_len : 0;
    c->t->method = (uint8_t)r->m;
    c->t->client10 = r->minor == 0;
    c->t->keepalive = r->keep_alive && !w->draining;
    c->t->head_req = r->m == H1_M_HEAD;
    c->t->req_kind = (uint8_t)r->body;
    c->t->req_remaining = c->t->req_cl = r->content_length;
    c->t->req_body_bytes = 0;
    c->t->req_done = r->body == H1_BODY_NONE || (r->body == H1_BODY_LENGTH && r->content_length == 0);
    c->t->body_pos = c->t->body_end = hlen;
    c->t->body_lost = c->t->resp_started = c->t->dechunk = c->t->up_clean = false;
    /* only a WebSocket upgrade is passed on (h2c would tunnel past the routes) */
    c->t->upgrade = (r->flags & H1_F_UPGRADE_WS) && (r->flags & H1_F_CONN_UPGRADE) && r->minor == 1;
    c->t->attempts = 0;
    c->t->status = 0;
    c->t->bytes_in = hlen;
    c->t->bytes_out = 0;
    c->t->target = NULL;
    c->t->route = NULL;
    c->t->uscanned = 0;
    if (r->body == H1_BODY_CHUNKED)
        h1_chunked_init(&c->t->req_ck);
    conn_timer_off(c);
    iovq_reset(&c->t->cq);
    iovq_reset(&c->t->uq);
    c->t->cq_head = c->t->uq_head = 0;

    const struct sl_config *cfg = c->t->ws->s->cfg;
    if (r->m == H1_M_CONNECT) {     /* a reverse proxy opens no tunnels to arbitrary hosts */
        c->t->keepalive = false;
        local_response(c, 405, NULL, NULL, 0, "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n");
        return;
    }
    if (cfg->max_body_bytes && r->body == H1_BODY_LENGTH && r->content_length > cfg->max_body_bytes) {
        local_response(c, 413, NULL, NULL, 0, NULL);
        return;
    }
    c->t->jstate = r->body == H1_BODY_NONE || c->t->req_done ? RT_BODY_NONE : RT_BODY_UNREAD;
    c->t->jbody = NULL;
    c->t->jbody_len = 0;
    route_request(c, r);
    request_routed(c, r);
}

/* After routing: a proxied request starts sending its body. */
static void request_routed(struct gw_conn *c, const struct h1_request *r)
{
    if (c->state == C_ACTIVE) {
        if ((r->flags & H1_F_EXPECT_CONTINUE) && !c->t->req_done && !c->t->client10 &&
            !c->t->expect_sent) {
            /* answer it ourselves (as nginx does) so the client sends the body
             * while we connect; Expect is not forwarded */
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            iovq_push(&c->t->cq, cont, sizeof(cont) - 1);
            c->t->cq_head += sizeof(cont) - 1;
        }
        take_body(c);
        if (c->state == C_ACTIVE && !c->t->req_done)
            conn_timer_arm(c, c->t->ws->s->cfg->client_idle_ms);   /* a body that never comes */
    }
}

static bool head_step(struct gw_conn *c)
{
    struct gw_worker *w = c->w;

    gw_wsnap_refresh(w);
    if (c->hs)
        return conn_handshake(c);
    const struct sl_config *cfg = w->cur->s->cfg;
    if (!c->parse_pending) {
        if (!c->r_ready)
            return false;
        if (c->in == NULL)
            c->in = gw_buf_get(w, cfg->max_header_bytes + 1024);
        if (c->in->end == c->in->cap)
            return false;
        bool was_empty = c->in->end == 0;
        ssize_t n = buf_read(&c->io, c->in, &c->r_ready, c->rdhup);
        if (n == 0 || n == -1) {
            txn_end(c, c->in->end ? GW_END_CLIENT_CLOSED : GW_END_IDLE_CLOSED);
            return false;
        }
        if (n == -2) {
            if (c->in->end == 0) {  /* idle: hold no buffer */
                gw_buf_put(w, c->in);
                c->in = NULL;
            }
            return false;
        }
        c->header_clock |= was_empty;
    }
    c->parse_pending = false;
    int rc = h1_parse_request(c->in->data, c->in->end, cfg->max_header_bytes, &c->scanned, &w->req);
    if (rc == H1_INCOMPLETE) {
        /* start client_header_ms at a request's first byte, and only when
         * the head did not come whole (the common case costs nothing) */
        if (c->header_clock) {
            conn_timer_arm(c, cfg->client_header_ms);
            c->header_clock = false;
        }
        return c->r_ready;
    }
    c->header_clock = false;
    c->scanned = 0;
    if (rc < 0) {
        answer_parse_error(c, rc);
        return true;
    }
    start_request(c, (uint32_t)rc);
    return true;
}

/* C_ROUTE: read the body until body_for_route() can tell, then route the
 * request again (its head parsed anew from `in`: the worker's parse
 * scratch served other connections meanwhile). */
static bool route_wait_step(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;
    const char *p = NULL;
    size_t n = 0;

    if (!iovq_empty(&t->cq) && c->w_ready) {    /* our 100 Continue */
        client_send(c);
        if (c->state != C_ROUTE)
            return false;
    }
    int st = body_for_route(c, t->ws->s->cfg->max_json_match_bytes, &p, &n);
    if (st == RT_BODY_UNREAD) {
        if (!c->r_ready)
            return false;
        if (c->in->end == c->in->cap && c->in->cap < GW_BUF_LARGE) {
            struct gw_buf *big = gw_buf_get(w, GW_BUF_LARGE);
            memcpy(big->data, c->in->data, c->in->end);
            big->end = c->in->end;
            gw_buf_put(w, c->in);
            c->in = big;
        }
        ssize_t k = buf_read(&c->io, c->in, &c->r_ready, c->rdhup);
        if (k == 0 || k == -1) {
            txn_end(c, GW_END_CLIENT_CLOSED);
            return false;
        }
        if (k == -2)
            return false;
        conn_timer_arm(c, t->ws->s->cfg->client_idle_ms);
        return true;
    }
    t->jstate = (uint8_t)st;
    t->jbody = p;
    t->jbody_len = n;
    struct h1_request *r = &w->req;
    size_t scanned = 0;
    int rc = h1_parse_request(c->in->data, t->hlen, t->ws->s->cfg->max_header_bytes, &scanned, r);
    BUG_ON(rc != (int)t->hlen);     /* the same bytes parsed the same way before */
    c->state = C_ACTIVE;
    conn_timer_off(c);
    route_request(c, r);
    body_route_done(c);
    t->jbody = NULL;
    request_routed(c, r);
    return true;
}

/* A pending policy check finished (on this worker's loop): parse the head
 * again, as route_wait_step does, and go on with the checks after it. */
static void guard_done(void *owner)
{
    struct gw_conn *c = owner;

    CHECK_MAGIC(c, CONN_MAGIC);
    struct gw_worker *w = c->w;
    struct gw_txn *t = c->t;
    BUG_ON(c->state != C_GUARD || t == NULL);
    struct h1_request *r = &w->req;
    size_t scanned = 0;
    int rc = h1_parse_request(c->in->data, t->hlen, t->ws->s->cfg->max_header_bytes, &scanned, r);
    BUG_ON(rc != (int)t->hlen);     /* the same bytes parsed the same way before */
    if (guard_resume(c, r) == POL_ALLOW) {
        route_act(c, r);
        request_routed(c, r);
    }
    w->turn.ok = false;     /* (called from an event of our loop, maybe mid-turn) */
    conn_pump(c);
    gw_gc(w);
}

/* ---- the pump ---- */

static void conn_pump(struct gw_conn *c)
{
    for (int guard = 0; guard < 10000; guard++) {
        bool p = false;
        switch (c->state) {
        case C_HEAD:
            p = head_step(c);
            break;
        case C_ACTIVE:
            p |= fwd_send(c);
            if (c->state != C_ACTIVE)
                break;
            p |= req_splice(c);
            if (c->state != C_ACTIVE)
                break;
            p |= client_body_recv(c);
            if (c->state != C_ACTIVE)
                break;
            p |= client_send(c);
            if (c->state != C_ACTIVE)
                break;
            p |= resp_splice(c);
            if (c->state != C_ACTIVE)
                break;
            p |= fwd_recv(c);
            if (c->state != C_ACTIVE)
                break;
            client_watch(c);
            if (c->state != C_ACTIVE)
                break;
            if (c->t->rstate == RS_DONE && iovq_empty(&c->t->cq) &&
                ((c->t->req_done && iovq_empty(&c->t->uq) && c->t->pu == NULL) || !c->t->keepalive)) {
                txn_end(c, GW_END_DONE);
                p = true;
            }
            break;
        case C_LOCAL:
            p = client_send(c);
            if (c->state == C_LOCAL && iovq_empty(&c->t->cq)) {
                txn_end(c, GW_END_DONE);
                p = true;
            }
            break;
        case C_TUNNEL:
            p = tunnel_step(c);
            break;
        case C_ROUTE:
            p = route_wait_step(c);
            break;
        case C_GUARD:           /* guard_done moves it on; a client leaving ends it */
            p = guard_watch(c);
            break;
        case C_LINGER:
            linger_step(c);
            return;
        case C_CLOSED:
            return;
        }
        if (!p)
            return;
    }
}


static void conn_event(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;

    CHECK_MAGIC(c, CONN_MAGIC);
    struct gw_worker *w = c->w;

    if (what & (EV_READ | EV_CLOSED))
        c->r_ready = true;
    if (what & EV_CLOSED)
        c->rdhup = true;
    if (what & EV_WRITE)
        c->w_ready = true;
    conn_pump(c);
    gw_gc(w);
}

/* c's deadline passed */
static void conn_timer_fire(struct gw_conn *c)
{
    CHECK_MAGIC(c, CONN_MAGIC);
    if (c->state == C_HEAD) {
        if (c->in && c->in->end > 0) {
            /* slow header section: say why, best effort, then close */
            static const char msg[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
                                      "Content-Length: 20\r\nConnection: close\r\n\r\n408 Request Timeout\n";
            struct iovec v = { (void *)msg, sizeof(msg) - 1 };
            ssize_t r = gw_io_writev(&c->io, &v, 1);    /* through TLS when it is on */
            (void)r;
            txn_end(c, GW_END_CLIENT_TIMEOUT);
        } else {
            txn_end(c, c->hs ? GW_END_CLIENT_TIMEOUT : GW_END_IDLE_TIMEOUT);
        }
    } else if ((c->state == C_ACTIVE && !c->t->req_done) || c->state == C_ROUTE) {
        gw_log(GW_LOG_INFO, "client stopped sending its request body");
        txn_end(c, GW_END_CLIENT_TIMEOUT);
    } else if (c->state == C_ACTIVE) {
        if (stream_heartbeat(c))
            conn_pump(c);
    } else if (c->state == C_LINGER) {
        conn_teardown(c);
    }
}

void gw_conn_timers(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    struct lt_hnode *n;
    uint64_t now = lt_now_ms();

    (void)fd;
    (void)what;
    w->ctimer_at = 0;
    while ((n = lt_heap_min(&w->ctimers)) != NULL && n->at <= now + 2) {
        struct gw_conn *c = (struct gw_conn *)(void *)((char *)n - offsetof(struct gw_conn, tn));
        lt_heap_remove(&w->ctimers, n);
        if (c->deadline_ms == 0)
            continue;                   /* turned off since */
        if (now + 2 < c->deadline_ms) { /* moved later since (lazy): back in for the rest */
            n->at = c->deadline_ms;
            lt_heap_push(&w->ctimers, n);
            continue;
        }
        c->deadline_ms = 0;
        conn_timer_fire(c);
    }
    if ((n = lt_heap_min(&w->ctimers)) != NULL) {
        uint64_t left = n->at > now ? n->at - now : 1;
        struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
        event_add(w->ctimer, &tv);
        w->ctimer_at = n->at;
    }
    gw_gc(w);
}

void gw_conn_accept(struct gw_worker *w, struct gw_listener *l, int fd,
                    const struct sockaddr *sa, socklen_t salen)
{
    struct gw_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL)
        abort();
    c->magic = CONN_MAGIC;
    c->io.fd = fd;
    c->io.ops = &gw_io_plain;
    c->w = w;
    c->l = l;
    gw_wsnap_refresh(w);
    const struct gw_snapshot *s = w->cur->s;
    uint32_t first_ms = s->cfg->client_header_ms;
    for (size_t i = 0; i < s->cfg->nlisteners; i++) {
        SSL_CTX *ctx;
        if (s->listeners[i] != l || (ctx = gw_tls_listener_ctx(s->tls, i)) == NULL)
            continue;
        SSL *ssl = gw_tls_server_new(ctx, fd);
        if (ssl == NULL || !gw_tls_attach(&c->io, ssl)) {
            gw_log(GW_LOG_ERROR, "cannot set up TLS for a new connection");
            SSL_free(ssl);
            close(fd);
            free(c);
            return;
        }
        c->hs = c->https = true;
        c->ktls_want = s->cfg->listeners[i].tls->ktls;
        first_ms = s->cfg->listeners[i].tls->handshake_timeout_ms;
        break;
    }
    if (salen <= sizeof(c->peer))
        memcpy(&c->peer, sa, salen);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&c->ev, w->base, fd, EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST, conn_event, c);
    event_add(&c->ev, NULL);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    gw_cnt_add(&w->stats.client_conns, 1);
    atomic_fetch_add_explicit(&g_nconns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);  /* c->l outlives reloads */
    conn_timer_arm(c, first_ms);
}

void gw_queue_run(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    struct gw_conn *c, *next;

    (void)fd;
    (void)what;
    w->turn.ok = false;         /* it may be made active within a turn (txn.c) */
    uint64_t now = gw_now_ms(w);
    for (c = w->qhead; c; c = next) {
        struct gw_txn *t = c->t;
        next = t->qnext;
        if (now >= t->q_deadline_ms) {
            gw_q_unlink(c);
            atomic_fetch_add_explicit(&t->target->health->q_timeouts, 1, memory_order_relaxed);
            gw_log(GW_LOG_INFO, "upstream %s: no connection within %u ms: 503", t->target->text,
                   t->ups->cfg->queue_timeout_ms);
            fwd_queue_refuse(c, GW_END_QUEUE_TIMEOUT);
            conn_pump(c);
            continue;
        }
        /* a pooled connection here, or a slot free anywhere; else it (and
         * those behind it for the same target) keeps waiting */
        struct pool_bucket *b = t->ws->buckets[t->target->gidx];
        if ((b == NULL || atomic_load_explicit(&b->count, memory_order_relaxed) == 0) &&
            up_slots_used(t->target) >= t->ups->cfg->max_connections)
            continue;
        gw_q_unlink(c);
        t->q_again = true;
        fwd_connect(c);
        if (c->t == t)
            t->q_again = false;
        conn_pump(c);       /* (only c moved: next is still queued) */
    }
    if (w->nqueued && !evtimer_pending(w->qev, NULL))
        evtimer_add(w->qev, gw_common_timeout(w, GW_QUEUE_RECHECK_MS));
    gw_gc(w);
}

void gw_queue_tick(struct gw_worker *w)
{
    const struct gw_wsnap *ws = w->cur;

    for (size_t i = 0; i < ws->s->ups.n; i++) {
        const struct up_upstream *u = &ws->s->ups.v[i];
        if (u->cfg->max_connections == 0)
            continue;
        for (size_t j = 0; j < u->ntargets; j++) {
            const struct hc_target *h = u->targets[j].health;
            struct pool_bucket *b = ws->buckets[u->targets[j].gidx];
            if (h && b && b->count && atomic_load_explicit(&h->waiting, memory_order_relaxed) &&
                !gw_q_has(w, h))
                up_bucket_close_idle(b, POOL_CLOSE_SURPLUS);
        }
    }
    gw_gc(w);
}

void gw_conns_drain(struct gw_worker *w)
{
    struct gw_conn *c = w->conns, *next;

    for (; c; c = next) {
        next = c->next;
        if (c->state == C_HEAD && (c->in == NULL || c->in->end == 0))
            txn_end(c, GW_END_DRAIN);
        else if (c->t)
            c->t->keepalive = false;
    }
}

void gw_conns_close_all(struct gw_worker *w)
{
    while (w->conns) {
        if (w->conns->state == C_LINGER)
            conn_teardown(w->conns);
        else
            txn_end(w->conns, GW_END_SHUTDOWN);
    }
}

