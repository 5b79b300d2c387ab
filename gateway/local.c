/* local.c - answers sluice writes itself: errors, route responses, redirects. */
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

void local_response(struct gw_conn *c, int status, const char *ctype,
                           const char *body, size_t body_len, const char *extra)
{
    char dflt[96];

    if (c->state == C_CLOSED)
        return;
    if (c->t->up) {
        c->t->up_clean = false;
        up_conn_close(c->t->up);
    }
    if (body == NULL && status >= 200 && status != 204 && status != 304) {
        body_len = (size_t)snprintf(dflt, sizeof(dflt), "%d %s\n", status, h1_reason(status));
        body = dflt;
        ctype = "text/plain";
    }
    if (!c->t->req_done)
        c->t->keepalive = false;    /* the unread body must not be parsed as a request */
    if (c->t->scratch == NULL)
        c->t->scratch = gw_buf_get(c->w, body_len + 1024 + (extra ? strlen(extra) : 0));
    struct gw_buf *b = c->t->scratch;
    b->start = b->end = 0;
    iovq_reset(&c->t->cq);
    struct sbuf s = { b->data, 0, b->cap, false };
    sb_fmt(&s, "HTTP/1.1 %d %s\r\n", status, h1_reason(status));
    if (ctype)
        sb_fmt(&s, "Content-Type: %s\r\n", ctype);
    if (status >= 200 && status != 204 && status != 304) {
        SB_LIT(&s, "Content-Length: ");
        sb_u64(&s, body_len);
        SB_LIT(&s, "\r\n");
    }
    if (extra)
        sb_put(&s, extra, strlen(extra));
    if (c->t->route && status < 400)
        h1_fwd_put_edits(&s, &c->t->route->resp_headers);
    if (!c->t->keepalive)
        SB_LIT(&s, "Connection: close\r\n");
    else if (c->t->client10)
        SB_LIT(&s, "Connection: keep-alive\r\n");
    SB_LIT(&s, "\r\n");
    if (!c->t->head_req)
        sb_put(&s, body, body_len);
    if (s.overflow) {   /* cannot happen with the sizes above; never send half */
        txn_end(c, GW_END_INTERNAL);
        return;
    }
    b->end = (uint32_t)s.len;
    iovq_push(&c->t->cq, b->data, s.len);
    c->t->cq_head = (uint32_t)s.len;   /* our own answer: no body moved between sockets */
    c->t->status = status;
    c->t->resp_started = true;
    c->state = C_LOCAL;
}

void answer_parse_error(struct gw_conn *c, int err)
{
    int status = err == H1_ERR_TOO_LARGE ? 431 : err == H1_ERR_TE ? 501 :
                 err == H1_ERR_VERSION ? 505 : 400;
    c->t = txn_get(c->w);
    c->t->ws = c->w->cur;
    c->t->ws->pins++;
    c->t->t_start = gw_turn_ns(c->w);
    c->t->hlen = 0;
    c->t->route = NULL;
    c->t->target = NULL;
    c->t->keepalive = false;
    c->t->req_done = false;
    c->t->head_req = false;
    c->t->client10 = false;
    c->t->bytes_in = c->in ? c->in->end : 0;
    c->t->bytes_out = 0;
    c->t->why = GW_END_CLIENT_PARSE;
    conn_timer_off(c);
    local_response(c, status, NULL, NULL, 0, NULL);
}

/* A redirect route's answer: Location from the route's scheme, host, port
 * and path (or the request's, the path's prefix replaced), the query kept. */
void local_redirect(struct gw_conn *c, const struct h1_request *r, const struct cfg_route *rt)
{
    char loc[8192], tmp[4096];
    struct sbuf s = { loc, 0, sizeof(loc) - 1, false };
    const char *scheme = rt->redirect.scheme ? rt->redirect.scheme : c->https ? "https" : "http";
    SB_LIT(&s, "Location: ");
    sb_put(&s, scheme, strlen(scheme));
    SB_LIT(&s, "://");
    if (rt->redirect.host) {
        sb_put(&s, rt->redirect.host, strlen(rt->redirect.host));
    } else if (r->host) {   /* the request's host without its port */
        size_t hl = r->host_len;
        if (r->host[0] == '[') {
            const char *e = memchr(r->host, ']', hl);
            if (e)
                hl = (size_t)(e - r->host) + 1;
        } else {
            const char *e = memchr(r->host, ':', hl);
            if (e)
                hl = (size_t)(e - r->host);
        }
        sb_put(&s, r->host, hl);
    }
    int port = rt->redirect.port;
    if (port == 0)
        port = rt->redirect.scheme ? (strcmp(scheme, "https") == 0 ? 443 : 80) : c->l->port;
    if (!((port == 80 && strcmp(scheme, "http") == 0) || (port == 443 && strcmp(scheme, "https") == 0)))
        sb_fmt(&s, ":%d", port);
    if (rt->redirect.path) {
        sb_put(&s, rt->redirect.path, strlen(rt->redirect.path));
    } else if (rt->redirect.replace_prefix) {
        struct cfg_route tmp_rt = *rt;
        tmp_rt.rewrite = CFG_RW_REPLACE_PREFIX;
        tmp_rt.rewrite_path = rt->redirect.replace_prefix;
        tmp_rt.rewrite_path_len = (uint32_t)strlen(rt->redirect.replace_prefix);
        int n = rt_rewrite_path(&tmp_rt, r->path, r->path_len, tmp, sizeof(tmp));
        if (n > 0)
            sb_put(&s, tmp, (size_t)n);
    } else {
        sb_put(&s, r->path, r->path_len);
    }
    if (r->query) {
        SB_LIT(&s, "?");
        sb_put(&s, r->query, r->query_len);
    }
    SB_LIT(&s, "\r\n");
    loc[s.len] = '\0';
    if (s.overflow) {
        local_response(c, 400, NULL, NULL, 0, NULL);
        return;
    }
    local_response(c, rt->redirect.status, NULL, "", 0, loc);
}
