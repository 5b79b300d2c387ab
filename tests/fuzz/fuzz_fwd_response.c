/*
 * fuzz_fwd_response.c - the round trip of a forwarded response.
 *
 * Property: whatever response sluice accepts from a backend, the bytes it
 * sends the client (the head from h1_fwd_response_head, the body as the
 * proxy moves it: as it came for Content-Length and close-delimited
 * bodies, re-framed or de-chunked for chunked ones), parsed again by
 * sluice's own strict parser, give the same status, header values and
 * body bytes, and the message ends exactly where the forwarded framing
 * says, so the client's next response starts where it should.
 *
 * Input: byte 0 picks the request method (GET, HEAD, POST), whether the
 * client speaks HTTP/1.0, and the read size; the rest is what the backend
 * sent.
 */
#include "../../gateway/h1_fwd.h"
#include "fwd_check.h"
#include "../../core/hdr.h"

#include <stdlib.h>
#include <string.h>

#define OUT_CAP (1u << 20)

static bool named(const struct h1_response *r, const struct h1_header *h)
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

/* Walk a chunked body in reads of `step`, re-framing it (or keeping only
 * the data for an HTTP/1.0 client).  Returns the bytes it took, 0 when it
 * is incomplete or broken. */
static size_t reframe(const char *in, size_t len, size_t step, bool plain, char *out,
                      size_t *olen, char *data, size_t *dlen)
{
    struct h1_chunked ck;
    size_t off = 0, end = 0;

    h1_chunked_init(&ck);
    while (end < len) {
        end = end + step < len ? end + step : len;
        while (off < end) {
            size_t used = 0;
            int k = h1_chunked_next(&ck, in + off, end - off, &used);
            if (k == H1C_ERROR)
                return 0;
            if (k == H1C_DATA) {
                memcpy(data + *dlen, in + off, used);
                *dlen += used;
                if (!plain)
                    *olen += h1_fwd_chunk_head(out + *olen, used);
                memcpy(out + *olen, in + off, used);
                *olen += used;
                if (!plain) {
                    memcpy(out + *olen, "\r\n", 2);
                    *olen += 2;
                }
            }
            off += used;
            if (k == H1C_DONE) {
                if (!plain)
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
    static const enum h1_method methods[] = { H1_M_GET, H1_M_HEAD, H1_M_POST, H1_M_GET };
    static struct h1_response r, r2;
    static char out[OUT_CAP], body[OUT_CAP], body2[OUT_CAP];

    if (size < 2 || size > 65536)
        return 0;
    enum h1_method m = methods[data[0] & 3];
    bool client10 = data[0] & 4;
    size_t step = 1 + (data[0] >> 3) * 9;
    const char *in = (const char *)data + 1;
    size_t len = size - 1, sc = 0;

    int hl = h1_parse_response(in, len, 16384, &sc, m, &r);
    if (hl <= 0 || r.status == 101)
        return 0;   /* refused (502), incomplete, or a tunnel */
    /* the head may gain a Connection line: one the parser's header limit
     * still holds (a client with a lower limit than the backend's is not
     * what this checks) */
    if (r.nheaders + 1 > H1_MAX_HEADERS)
        return 0;
    /* what the proxy decides before writing the head (proxy.c resp_head) */
    bool dechunk = r.body == H1_BODY_CHUNKED && client10;
    bool keepalive = r.keep_alive && !dechunk && r.body != H1_BODY_CLOSE;
    struct h1_fwd_resp f = { .edits = NULL, .keepalive = keepalive, .client10 = client10 };
    int oh = h1_fwd_response_head(out, OUT_CAP, &r, &f);
    CHECK(oh > 0);

    size_t olen = (size_t)oh, blen = 0;
    if (r.body == H1_BODY_LENGTH) {
        if (r.content_length > len - (size_t)hl)
            return 0;
        blen = r.content_length;
        memcpy(body, in + hl, blen);
        memcpy(out + olen, in + hl, blen);
        olen += blen;
    } else if (r.body == H1_BODY_CLOSE) {
        blen = len - (size_t)hl;    /* until the backend closed: all of it */
        memcpy(body, in + hl, blen);
        memcpy(out + olen, in + hl, blen);
        olen += blen;
    } else if (r.body == H1_BODY_CHUNKED) {
        if (reframe(in + hl, len - (size_t)hl, step, dechunk, out, &olen, body, &blen) == 0)
            return 0;
    }

    sc = 0;
    int hl2 = h1_parse_response(out, olen, 0, &sc, m, &r2);
    CHECK(hl2 == oh);
    CHECK(r2.status == r.status && r2.minor == 1);
    if (r.reason_len)
        CHECK(same(r2.reason, r2.reason_len, r.reason, r.reason_len));
    CHECK(r2.keep_alive == keepalive || r2.status < 200);

    /* the headers that may be copied, in order, same values */
    size_t k = 0;
    for (size_t i = 0; i < r.nheaders; i++) {
        const struct h1_header *h = &r.headers[i];
        enum hdr_class c = hdr_class(h->name, h->name_len);
        if (c == HDR_CONNECTION || c == HDR_HOP || c == HDR_UPGRADE || c == HDR_FRAMING || named(&r, h))
            continue;
        while (k < r2.nheaders) {
            enum hdr_class c2 = hdr_class(r2.headers[k].name, r2.headers[k].name_len);
            if (c2 != HDR_CONNECTION && c2 != HDR_FRAMING)
                break;
            k++;
        }
        CHECK(k < r2.nheaders);
        CHECK(same(r2.headers[k].name, r2.headers[k].name_len, h->name, h->name_len));
        CHECK(same(r2.headers[k].value, r2.headers[k].value_len, h->value, h->value_len));
        k++;
    }
    for (; k < r2.nheaders; k++) {
        enum hdr_class c2 = hdr_class(r2.headers[k].name, r2.headers[k].name_len);
        CHECK(c2 == HDR_CONNECTION || c2 == HDR_FRAMING);
    }
    /* no framing for 1xx and 204 */
    if (r.status < 200 || r.status == 204)
        CHECK(!(r2.flags & (H1_F_HAS_CL | H1_F_HAS_TE)));

    /* the body, ending exactly where the framing says */
    if (r2.body == H1_BODY_LENGTH) {
        CHECK(r2.content_length == blen && olen - (size_t)hl2 == blen);
        CHECK(memcmp(out + hl2, body, blen) == 0);
    } else if (r2.body == H1_BODY_CHUNKED) {
        CHECK(r.body == H1_BODY_CHUNKED && !client10);
        check_chunked(out, (size_t)hl2, olen, body, blen, body2);
    } else if (r2.body == H1_BODY_CLOSE) {
        /* close-delimited: the client reads until sluice closes */
        CHECK(!keepalive && (r.body == H1_BODY_CLOSE || dechunk));
        CHECK(olen - (size_t)hl2 == blen && memcmp(out + hl2, body, blen) == 0);
    } else {
        CHECK(r.body == H1_BODY_NONE && olen == (size_t)hl2);
        /* what a HEAD or 304 answer says of the length is kept */
        if (r.status >= 200 && r.status != 204 && (r.flags & H1_F_HAS_CL))
            CHECK((r2.flags & H1_F_HAS_CL) && r2.content_length == r.content_length);
    }
    return 0;
}
