/* fuzz_request.c - libFuzzer target for h1_parse_request.
 * Checks invariants, not just the absence of crashes: results are bounded,
 * slices stay inside the input, the result does not depend on where the
 * bytes were split (the first input byte picks the split), and a chunked
 * body that follows is walked without overrunning the input. */
#include "../../gateway/http1.h"

#include <stdlib.h>
#include <string.h>

#define MAXB 2048

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void slice(const char *p, size_t n, const char *b, size_t len)
{
    if (n)
        CHECK(p && p >= b && p + n <= b + len);
}

static bool tchar_only(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= ' ' || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c))
            return false;
    }
    return n > 0;
}

static void check_request(const struct h1_request *r, const char *b, size_t rc)
{
    slice(r->method, r->method_len, b, rc);
    slice(r->target, r->target_len, b, rc);
    slice(r->path, r->path_len, b, rc);
    slice(r->query, r->query_len, b, rc);
    slice(r->host, r->host_len, b, rc);
    CHECK(tchar_only(r->method, r->method_len));
    CHECK(r->target_len > 0 && (r->minor == 0 || r->minor == 1));
    CHECK(r->nheaders <= H1_MAX_HEADERS);
    CHECK(!((r->flags & 0x20u) && (r->flags & 0x40u)));    /* never CL with TE */
    CHECK((r->body == H1_BODY_CHUNKED) == !!(r->flags & H1_F_HAS_TE));
    CHECK(r->body != H1_BODY_LENGTH || r->content_length > 0);
    CHECK(r->body != H1_BODY_CLOSE);
    CHECK(r->minor == 0 || r->host != NULL);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *h = &r->headers[i];
        slice(h->name, h->name_len, b, rc);
        slice(h->value, h->value_len, b, rc);
        CHECK(tchar_only(h->name, h->name_len));
        for (size_t j = 0; j < h->value_len; j++) {
            unsigned char c = (unsigned char)h->value[j];
            CHECK(c != '\r' && c != '\n' && c != 0 && c != 0x7f);
        }
        if (h->value_len)
            CHECK(h->value[0] != ' ' && h->value[0] != '\t' &&
                  h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = size * data[0] / 256;
    const char *buf = (const char *)data;
    static struct h1_request r, r2;

    size_t sc = 0;
    int rc = h1_parse_request(buf, size, MAXB, &sc, &r);
    CHECK(rc == H1_INCOMPLETE || rc == H1_ERR_BAD || rc == H1_ERR_TOO_LARGE ||
          rc == H1_ERR_TE || rc == H1_ERR_VERSION || (rc > 0 && (size_t)rc <= size));
    CHECK(rc != H1_INCOMPLETE || size < MAXB);
    CHECK(rc <= MAXB);
    if (rc == H1_INCOMPLETE)
        CHECK(sc <= size);

    /* Exact-size copy of the prefix so ASan sees any read past it. */
    char *pre = malloc(split ? split : 1);
    memcpy(pre, buf, split);
    size_t sc2 = 0;
    int rc1 = h1_parse_request(pre, split, MAXB, &sc2, &r2);
    free(pre);
    CHECK(rc1 == H1_INCOMPLETE || rc1 == rc);
    int rc2 = h1_parse_request(buf, size, MAXB, &sc2, &r2);
    CHECK(rc2 == rc);

    if (rc > 0) {
        check_request(&r, buf, (size_t)rc);
        CHECK(r2.nheaders == r.nheaders && r2.body == r.body &&
              r2.content_length == r.content_length && r2.keep_alive == r.keep_alive);
        if (r.body == H1_BODY_CHUNKED) {
            struct h1_chunked c;
            h1_chunked_init(&c);
            size_t off = (size_t)rc;
            for (;;) {
                size_t used = 0;
                int k = h1_chunked_next(&c, buf + off, size - off, &used);
                CHECK(used <= size - off);
                off += used;
                if (k == H1C_AGAIN || k == H1C_DONE || k == H1C_ERROR)
                    break;
                CHECK(used > 0);
            }
        }
    }
    return 0;
}
