/* h1_fwd.c - forwarded heads and chunk framing (see h1_fwd.h). */
#include "h1_fwd.h"
#include "../core/hdr.h"
#include "../core/reason.h"
#include "../router/router.h"

static bool in_kv(const struct cfg_kv *kv, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (kv[i].name_len == len && h1_casecmp(kv[i].name, name, len))
            return true;
    return false;
}

/* Does some Connection header name a header to drop (a token other than
 * close / keep-alive / upgrade)?  Usually not, and then no header needs
 * checking against it. */
static bool conn_names_headers(const struct h1_header *hs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (hs[i].name_len != 10 || !h1_casecmp(hs[i].name, "connection", 10))
            continue;
        const char *p = hs[i].value, *end = p + hs[i].value_len;
        while (p < end) {
            while (p < end && (*p == ',' || *p == ' ' || *p == '\t'))
                p++;
            const char *q = p;
            while (q < end && *q != ',' && *q != ' ' && *q != '\t')
                q++;
            size_t l = (size_t)(q - p);
            if (l && !(l == 5 && h1_casecmp(p, "close", 5)) &&
                !(l == 10 && h1_casecmp(p, "keep-alive", 10)) &&
                !(l == 7 && h1_casecmp(p, "upgrade", 7)))
                return true;
            p = q;
        }
    }
    return false;
}

/* Is this header named by a Connection header (RFC 9110 7.6.1)?  Only
 * asked for headers that may be copied at all: framing and Host never
 * reach here, so naming them has no effect. */
static bool conn_named(const struct h1_header *hs, size_t n, const char *name, size_t len)
{
    /* connection options, not names of headers (as conn_names_headers) */
    if ((len == 5 && h1_casecmp(name, "close", 5)) || (len == 10 && h1_casecmp(name, "keep-alive", 10)) ||
        (len == 7 && h1_casecmp(name, "upgrade", 7)))
        return false;
    for (size_t i = 0; i < n; i++)
        if (hs[i].name_len == 10 && h1_casecmp(hs[i].name, "connection", 10) &&
            h1_list_has_token(hs[i].value, hs[i].value_len, name, len))
            return true;
    return false;
}

static void put_header(struct sbuf *s, const char *name, size_t nl, const char *value, size_t vl)
{
    sb_put(s, name, nl);
    SB_LIT(s, ": ");
    sb_put(s, value, vl);
    SB_LIT(s, "\r\n");
}

void h1_fwd_put_edits(struct sbuf *s, const struct cfg_header_edits *e)
{
    for (size_t i = 0; i < e->nset; i++)
        put_header(s, e->set[i].name, e->set[i].name_len, e->set[i].value, e->set[i].value_len);
    for (size_t i = 0; i < e->nadd; i++)
        put_header(s, e->add[i].name, e->add[i].name_len, e->add[i].value, e->add[i].value_len);
}

/* A header copied as received unless an edit or a Connection token drops it. */
static bool keep_header(const struct h1_header *h, const struct cfg_header_edits *e,
                        const struct h1_header *all, size_t n, bool has_conn)
{
    if (e && e->nremove && in_kv(e->remove, e->nremove, h->name, h->name_len))
        return false;
    if (e && e->nset && in_kv(e->set, e->nset, h->name, h->name_len))
        return false;
    return !(has_conn && conn_named(all, n, h->name, h->name_len));
}

/* The request's framing, from the parse: written where the first framing
 * header of the client stood (a request without one has no body). */
static void put_request_framing(struct sbuf *s, const struct h1_request *r)
{
    if (r->body == H1_BODY_CHUNKED) {
        SB_LIT(s, "Transfer-Encoding: chunked\r\n");
    } else {
        SB_LIT(s, "Content-Length: ");
        sb_u64(s, r->body == H1_BODY_LENGTH ? r->content_length : 0);
        SB_LIT(s, "\r\n");
    }
}

/* The response's framing, from the parse, where the upstream's first
 * framing header stood: none for 1xx and 204 (RFC 9110 8.6); what a
 * bodiless 304 or HEAD answer says of the length is kept, in sluice's own
 * spelling; an HTTP/1.0 client gets no chunked (the caller de-chunks). */
static void put_response_framing(struct sbuf *s, const struct h1_response *r, bool client10)
{
    if (r->status < 200 || r->status == 204)
        return;
    if (r->body == H1_BODY_LENGTH || (r->body == H1_BODY_NONE && (r->flags & H1_F_HAS_CL))) {
        SB_LIT(s, "Content-Length: ");
        sb_u64(s, r->content_length);
        SB_LIT(s, "\r\n");
    } else if (!client10 && (r->body == H1_BODY_CHUNKED || (r->flags & H1_F_HAS_TE))) {
        SB_LIT(s, "Transfer-Encoding: chunked\r\n");
    }
}

static void request_line(struct sbuf *s, const struct h1_request *r, const struct cfg_route *rt,
                         bool *bad)
{
    /* an absolute-form target without a path means "/" (RFC 9112 3.2.2) */
    const char *path = r->path_len ? r->path : "/";
    size_t path_len = r->path_len ? r->path_len : 1;

    sb_put(s, r->method, r->method_len);
    SB_LIT(s, " ");
    if (rt == NULL || rt->rewrite == CFG_RW_NONE) {
        sb_put(s, path, path_len);
    } else {
        int n = rt_rewrite_path(rt, path, path_len, s->p + s->len, sb_room(s));
        if (n < 0)
            *bad = true;
        else
            s->len += (size_t)n;
    }
    if (r->query) {
        SB_LIT(s, "?");
        sb_put(s, r->query, r->query_len);
    }
    SB_LIT(s, " HTTP/1.1\r\nHost: ");
}

/* Is h one of the headers the policy writes itself? */
static bool stripped(const struct h1_fwd_req *f, const struct h1_header *h)
{
    for (size_t i = 0; i < f->nstrip; i++)
        if (h->name_len == f->strip_lens[i] && h1_casecmp(h->name, f->strip[i], h->name_len))
            return true;
    return false;
}

int h1_fwd_request_head(char *out, size_t cap, const struct h1_request *r,
                        const struct h1_fwd_req *f)
{
    struct sbuf s = sb_init(out, cap);
    const struct cfg_route *rt = f->route;
    const struct cfg_header_edits *e = rt ? &rt->req_headers : NULL;
    size_t nxff = 0;
    bool bad = false, has_rid = e && in_kv(e->set, e->nset, "x-request-id", 12);
    bool has_conn = conn_names_headers(r->headers, r->nheaders), framed = false;

    request_line(&s, r, rt, &bad);
    if (rt && rt->rewrite_host)
        sb_str(&s, rt->rewrite_host);
    else if (r->host && r->host_len)
        sb_put(&s, r->host, r->host_len);
    else if (f->default_host)
        sb_str(&s, f->default_host);
    SB_LIT(&s, "\r\n");

    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        enum hdr_class c = hdr_class(h->name, h->name_len);
        switch (c) {
        case HDR_OTHER:
        case HDR_XRID:
            if (!keep_header(h, e, r->headers, r->nheaders, has_conn))
                continue;
            if (f->drop && h->name_len == f->drop_len && h1_casecmp(h->name, f->drop, f->drop_len))
                continue;
            if (f->nstrip && stripped(f, h))
                continue;
            has_rid |= c == HDR_XRID;
            put_header(&s, h->name, h->name_len, h->value, h->value_len);
            continue;
        case HDR_FRAMING:    /* sluice's own, where the first one stood */
            if (!framed)
                put_request_framing(&s, r);
            framed = true;
            continue;
        case HDR_XFF:    /* several: folded into one list, in order, below */
            nxff++;
            continue;
        default:        /* hop-by-hop, framing, Host, Expect, X-Forwarded-Proto/Host */
            continue;
        }
    }
    SB_LIT(&s, "X-Forwarded-For: ");
    for (size_t i = 0; nxff && i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        if (h->value_len && hdr_class(h->name, h->name_len) == HDR_XFF) {
            sb_put(&s, h->value, h->value_len);
            SB_LIT(&s, ", ");
        }
    }
    sb_put(&s, f->client_ip, f->client_ip_len);
    if (f->https)
        SB_LIT(&s, "\r\nX-Forwarded-Proto: https\r\n");
    else
        SB_LIT(&s, "\r\nX-Forwarded-Proto: http\r\n");
    if (r->host && r->host_len)
        put_header(&s, "X-Forwarded-Host", 16, r->host, r->host_len);
    if (!has_rid) {
        SB_LIT(&s, "X-Request-Id: ");
        sb_hex64(&s, f->rid_hi);
        sb_hex64(&s, f->rid_lo);
        SB_LIT(&s, "\r\n");
    }
    if (e)
        h1_fwd_put_edits(&s, e);
    if (f->auth_id) {
        SB_LIT(&s, "X-Auth-Id: ");
        sb_put(&s, f->auth_id, f->auth_id_len);
        SB_LIT(&s, "\r\n");
    }
    if (f->extra_len)
        sb_put(&s, f->extra, f->extra_len);
    if (f->websocket)
        SB_LIT(&s, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    SB_LIT(&s, "\r\n");
    return s.overflow || bad ? -1 : (int)s.len;
}

int h1_fwd_response_head(char *out, size_t cap, const struct h1_response *r,
                         const struct h1_fwd_resp *f)
{
    struct sbuf s = sb_init(out, cap);
    const struct cfg_header_edits *e = f->edits;
    bool has_conn = conn_names_headers(r->headers, r->nheaders), framed = false;

    SB_LIT(&s, "HTTP/1.1 ");
    sb_u64(&s, (uint64_t)r->status);
    SB_LIT(&s, " ");
    if (r->reason_len)
        sb_put(&s, r->reason, r->reason_len);
    else
        sb_str(&s, http_reason(r->status));
    SB_LIT(&s, "\r\n");
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        int hc = hdr_class(h->name, h->name_len);
        if (hc == HDR_FRAMING && !framed)
            put_response_framing(&s, r, f->client10);
        framed |= hc == HDR_FRAMING;
        if (hc == HDR_CONNECTION || hc == HDR_HOP || hc == HDR_UPGRADE || hc == HDR_FRAMING)
            continue;
        if (keep_header(h, e, r->headers, r->nheaders, has_conn))
            put_header(&s, h->name, h->name_len, h->value, h->value_len);
    }
    if (e)
        h1_fwd_put_edits(&s, e);
    if (r->status == 101)
        SB_LIT(&s, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    else if (r->status < 200)
        ;   /* an interim response says nothing of the connection */
    else if (!f->keepalive)
        SB_LIT(&s, "Connection: close\r\n");
    else if (f->client10)
        SB_LIT(&s, "Connection: keep-alive\r\n");
    SB_LIT(&s, "\r\n");
    return s.overflow ? -1 : (int)s.len;
}

size_t h1_fwd_chunk_head(char *out, uint64_t n)
{
    struct sbuf s = sb_init(out, H1_FWD_CHUNK_MAX);

    sb_hex(&s, n);
    SB_LIT(&s, "\r\n");
    return s.len;
}

size_t h1_fwd_chunk_last(char *out)
{
    memcpy(out, "0\r\n\r\n", 5);
    return 5;
}
