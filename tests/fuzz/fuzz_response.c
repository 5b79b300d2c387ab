/* fuzz_response.c - libFuzzer target for h1_parse_response.  The first
 * input byte picks both the split point and the request method. */
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

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = size * data[0] / 256;
    enum h1_method m = (enum h1_method)(data[0] % 10);
    const char *buf = (const char *)data;
    static struct h1_response r, r2;

    size_t sc = 0;
    int rc = h1_parse_response(buf, size, MAXB, &sc, m, &r);
    CHECK(rc == H1_INCOMPLETE || rc == H1_ERR_BAD || rc == H1_ERR_TOO_LARGE ||
          rc == H1_ERR_VERSION || rc == H1_ERR_TE || (rc > 0 && (size_t)rc <= size));
    CHECK(rc != H1_INCOMPLETE || size < MAXB);
    CHECK(rc <= MAXB);

    char *pre = malloc(split ? split : 1);
    memcpy(pre, buf, split);
    size_t sc2 = 0;
    int rc1 = h1_parse_response(pre, split, MAXB, &sc2, m, &r2);
    free(pre);
    CHECK(rc1 == H1_INCOMPLETE || rc1 == rc);
    CHECK(h1_parse_response(buf, size, MAXB, &sc2, m, &r2) == rc);

    if (rc > 0) {
        CHECK(r.status >= 100 && r.status <= 599 && (r.minor == 0 || r.minor == 1));
        slice(r.reason, r.reason_len, buf, (size_t)rc);
        CHECK(r.nheaders <= H1_MAX_HEADERS);
        CHECK(!((r.flags & H1_F_HAS_TE) && (r.flags & H1_F_HAS_CL)));
        if (r.status < 200 || r.status == 204 || r.status == 304 || m == H1_M_HEAD)
            CHECK(r.body == H1_BODY_NONE);
        if (r.body == H1_BODY_CLOSE)
            CHECK(!r.keep_alive);
        if (r.body == H1_BODY_LENGTH)
            CHECK(r.content_length > 0 && (r.flags & H1_F_HAS_CL));
        if (r.body == H1_BODY_CHUNKED)
            CHECK(r.flags & H1_F_HAS_TE);
        for (size_t i = 0; i < r.nheaders; i++) {
            slice(r.headers[i].name, r.headers[i].name_len, buf, (size_t)rc);
            slice(r.headers[i].value, r.headers[i].value_len, buf, (size_t)rc);
            CHECK(r.headers[i].name_len > 0);
        }
        CHECK(r2.status == r.status && r2.body == r.body && r2.nheaders == r.nheaders &&
              r2.keep_alive == r.keep_alive);
    }
    return 0;
}
