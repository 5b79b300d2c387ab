/*
 * fuzz_fwd_request.c - the round trip of a forwarded request.
 *
 * Property: whatever request sluice accepts, the bytes it forwards (the
 * head from h1_fwd_request_head, the body re-framed with h1_fwd_chunk_*
 * as the proxy does), parsed again by sluice's own strict parser, give the
 * same method, target, Host, header values and body bytes, and the message
 * ends exactly where the forwarded framing says: not a byte early, not a
 * byte late (a byte late would be a request of its own on the backend).
 *
 * Input: byte 0 picks the route variant and the read size the body is
 * walked in (the proxy walks what each read brought); the rest is what a
 * client sent.  Bytes after the first message are the next request and
 * are not part of this one.
 */
#include "../../gateway/h1_fwd.h"
#include "fwd_check.h"
#include "../../core/hdr.h"
#include "../../router/router.h"

#include <stdlib.h>
#include <string.h>

#define OUT_CAP (1u << 20)

static struct cfg_kv set_kv[] = { { "x-set", "s", 5, 1 } };
static struct cfg_kv add_kv[] = { { "x-add", "a", 5, 1 } };
static struct cfg_kv rm_kv[] = { { "x-rm", NULL, 4, 0 } };
static char api[] = "/api";

/* 0: no route; 1: edits; 2: edits and strip_prefix /api */
static void route_for(int v, struct cfg_route *rt)
{
    memset(rt, 0, sizeof(*rt));
    if (v == 0)
        return;
    rt->req_headers.set = set_kv;
    rt->req_headers.nset = 1;
    rt->req_headers.add = add_kv;
    rt->req_headers.nadd = 1;
    rt->req_headers.remove = rm_kv;
    rt->req_headers.nremove = 1;
    if (v == 2) {
        rt->path_kind = CFG_PATH_PREFIX;
        rt->path = api;
        rt->path_len = 4;
        rt->rewrite = CFG_RW_STRIP_PREFIX;
    }
}

static bool in_list(const struct cfg_kv *kv, size_t n, const struct h1_header *h)
{
    for (size_t i = 0; i < n; i++)
        if (kv[i].name_len == h->name_len && h1_casecmp(kv[i].name, h->name, h->name_len))
            return true;
    return false;
}

/* Named by a Connection header of the request (not a connection option)? */
static bool named(const struct h1_request *r, const struct h1_header *h)
{
    static const char *const opts[] = { "close", "keep-alive", "upgrade" };
    for (size_t i = 0; i < 3; i++)
        if (strlen(opts[i]) == h->name_len && h1_casecmp(opts[i], h->name, h->name_len))
            return false;
    for (size_t i = 0; i < r->nheaders; i++)
        if (r->headers[i].name_len == 10 && h1_casecmp(r->headers[i].name, "connection", 10) &&
            h1_list_has_token(r->headers[i].value, r->headers[i].value_len, h->name, h->name_len))
            return true;
    return false;
}

/* The headers a backend must see copied, in order: the class says they
 * may be copied, no edit and no Connection token drops them. */
static size_t expected(const struct h1_request *r, const struct cfg_route *rt,
                       const struct h1_header **out)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        enum hdr_class c = hdr_class(h->name, h->name_len);
        if (c != HDR_OTHER && c != HDR_XRID)
            continue;
        if (in_list(rt->req_headers.remove, rt->req_headers.nremove, h) ||
            in_list(rt->req_headers.set, rt->req_headers.nset, h) || named(r, h))
            continue;
        out[n++] = h;
    }
    return n;
}

/* Walk the chunked body at in[0, len) in reads of `step` bytes, appending
 * its data to data and its re-framing (as proxy.c does: every piece a
 * chunk of its own, the last chunk without trailers) to out.  Returns the
 * bytes of in the message took, or 0 when it is incomplete or refused. */
static size_t reframe(const char *in, size_t len, size_t step, char *out, size_t *olen,
                      char *data, size_t *dlen)
{
    struct h1_chunked ck;
    size_t off = 0, end = 0;

    h1_chunked_init(&ck);
    while (end < len) {
        end = end + step < len ? end + step : len;      /* one more read arrived */
        while (off < end) {
            size_t used = 0;
            int k = h1_chunked_next(&ck, in + off, end - off, &used);
            if (k == H1C_ERROR)
                return 0;
            if (k == H1C_DATA) {
                memcpy(data + *dlen, in + off, used);
                *dlen += used;
                *olen += h1_fwd_chunk_head(out + *olen, used);
                memcpy(out + *olen, in + off, used);
                *olen += used;
                memcpy(out + *olen, "\r\n", 2);
                *olen += 2;
            }
            off += used;
            if (k == H1C_DONE) {
                *olen += h1_fwd_chunk_last(out + *olen);
                return off;
            }
            if (k == H1C_AGAIN)
                break;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static struct h1_request r, r2;
    static char out[OUT_CAP], body[OUT_CAP], body2[OUT_CAP];
    static const struct h1_header *want[H1_MAX_HEADERS];
    struct cfg_route rt;

    if (size < 2 || size > 65536)
        return 0;
    route_for(data[0] % 3, &rt);
    size_t step = 1 + (data[0] >> 2) * 7;
    const char *in = (const char *)data + 1;
    size_t len = size - 1, sc = 0;

    int hl = h1_parse_request(in, len, 16384, &sc, &r);
    if (hl <= 0 || r.m == H1_M_CONNECT)
        return 0;   /* refused, or not complete yet: nothing is forwarded */
    /* the head gains four headers (X-Forwarded-*, X-Request-Id): one the
     * parser's header limit still holds */
    if (r.nheaders + 6 > H1_MAX_HEADERS)
        return 0;
    struct h1_fwd_req f = {
        .route = data[0] % 3 ? &rt : NULL, .client_ip = "192.0.2.7", .client_ip_len = 9,
        .default_host = "backend.internal", .https = data[0] & 1,
        .websocket = (r.flags & H1_F_UPGRADE_WS) && (r.flags & H1_F_CONN_UPGRADE) && r.minor == 1,
        .rid_hi = 1, .rid_lo = 2,
    };
    int oh = h1_fwd_request_head(out, OUT_CAP, &r, &f);
    CHECK(oh > 0);      /* a megabyte holds any head of a 64 KiB input */

    /* the body, as the proxy forwards it */
    size_t olen = (size_t)oh, blen = 0, mlen = (size_t)hl;
    if (r.body == H1_BODY_LENGTH) {
        if (r.content_length > len - (size_t)hl)
            return 0;
        memcpy(body, in + hl, r.content_length);
        memcpy(out + olen, in + hl, r.content_length);
        blen = r.content_length;
        olen += blen;
        mlen += blen;
    } else if (r.body == H1_BODY_CHUNKED) {
        size_t took = reframe(in + hl, len - (size_t)hl, step, out, &olen, body, &blen);
        if (took == 0)
            return 0;   /* incomplete, or 400 */
        mlen += took;
    }

    /* parsed again by sluice's own parser */
    sc = 0;
    int hl2 = h1_parse_request(out, olen, 0, &sc, &r2);
    CHECK(hl2 == oh);
    CHECK(same(r2.method, r2.method_len, r.method, r.method_len));
    CHECK(r2.minor == 1 && r2.m == r.m);
    if (rt.rewrite == CFG_RW_NONE) {
        const char *p = r.path_len ? r.path : "/";
        CHECK(same(r2.path, r2.path_len, p, r.path_len ? r.path_len : 1));
    }
    CHECK((r2.query == NULL) == (r.query == NULL));
    if (r.query)
        CHECK(same(r2.query, r2.query_len, r.query, r.query_len));
    if (r.host && r.host_len)
        CHECK(same(r2.host, r2.host_len, r.host, r.host_len));
    else    /* none, or empty: the upstream's own name */
        CHECK(same(r2.host, r2.host_len, "backend.internal", 16));
    CHECK(!!(r2.flags & H1_F_UPGRADE_WS) == f.websocket);
    CHECK(!(r2.flags & H1_F_HAS_UPGRADE) || f.websocket);
    CHECK(!(r2.flags & H1_F_EXPECT_CONTINUE));

    /* every header that may be copied came through, in order, same value;
     * the others of its classes are the route's own lines and the id
     * sluice generated */
    size_t nw = expected(&r, &rt, want), k = 0;
    for (size_t i = 0; i < r2.nheaders; i++) {
        const struct h1_header *h = &r2.headers[i];
        enum hdr_class c = hdr_class(h->name, h->name_len);
        if (c != HDR_OTHER && c != HDR_XRID)
            continue;
        if (k < nw && same(h->name, h->name_len, want[k]->name, want[k]->name_len) &&
            same(h->value, h->value_len, want[k]->value, want[k]->value_len)) {
            k++;
            continue;
        }
        bool own = (f.route && (same(h->name, h->name_len, "x-set", 5) || same(h->name, h->name_len, "x-add", 5))) ||
                   (c == HDR_XRID && same(h->value, h->value_len, "00000000000000010000000000000002", 32));
        CHECK(own);
    }
    CHECK(k == nw);

    /* the body: same bytes, and the message ends exactly at the end */
    if (r2.body == H1_BODY_LENGTH) {
        CHECK(r.body == H1_BODY_LENGTH && r2.content_length == blen);
        CHECK(olen - (size_t)hl2 == blen);
        CHECK(memcmp(out + hl2, body, blen) == 0);
    } else if (r2.body == H1_BODY_CHUNKED) {
        CHECK(r.body == H1_BODY_CHUNKED);
        check_chunked(out, (size_t)hl2, olen, body, blen, body2);
    } else {
        CHECK(r2.body == H1_BODY_NONE && r.body == H1_BODY_NONE && olen == (size_t)hl2);
        CHECK(!!(r2.flags & H1_F_HAS_CL) == !!(r.flags & H1_F_HAS_CL));
    }
    CHECK(mlen <= len);
    return 0;
}
