/* http1_test.c - HTTP/1.x codec: smuggling table, byte splits, guard page. */
#include "tap.h"
#include "../../gateway/http1.c"
#include "../../core/reason.c"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEFAULT_MAX 8192
#define L(s) s, sizeof(s) - 1

/* ---- guard page: inputs end right before a PROT_NONE page ---- */

#define GUARD_AREA (256 * 1024)
static char *guard_base;

static void guard_init(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, GUARD_AREA + (size_t)pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m + GUARD_AREA, (size_t)pg, PROT_NONE) != 0) {
        perror("guard");
        exit(2);
    }
    guard_base = m;
}

/* Copies src so that its last byte is the last readable one. */
static const char *at_guard(const char *src, size_t n)
{
    if (n > GUARD_AREA)
        abort();
    char *d = guard_base + GUARD_AREA - n;
    memmove(d, src, n);
    return d;
}

/* ---- whole-message driver: header section, then body framing ---- */

static bool slice_in(const char *p, size_t n, const char *b, size_t len)
{
    return n == 0 ? (p == NULL || (p >= b && p <= b + len))
                  : (p >= b && p + n <= b + len);
}

/* 0 when buf holds a whole message; H1_INCOMPLETE or an H1_ERR_* else.
 * Bad chunk framing is H1_ERR_BAD, as the proxy answers it with 400. */
static int message(const char *b, size_t n, size_t max, size_t *scanned,
                   struct h1_request *r, size_t *msg_len)
{
    int rc = h1_parse_request(b, n, max, scanned, r);
    if (rc < 0)
        return rc;
    size_t off = (size_t)rc;
    if (r->body == H1_BODY_LENGTH) {
        if (n - off < r->content_length)
            return H1_INCOMPLETE;
        *msg_len = off + r->content_length;
        return 0;
    }
    if (r->body == H1_BODY_CHUNKED) {
        struct h1_chunked c;
        h1_chunked_init(&c);
        for (;;) {
            size_t used = 0;
            int k = h1_chunked_next(&c, b + off, n - off, &used);
            if (used > n - off)
                return -9999;
            off += used;
            if (k == H1C_ERROR)
                return H1_ERR_BAD;
            if (k == H1C_DONE) {
                *msg_len = off;
                return 0;
            }
            if (k == H1C_AGAIN)
                return H1_INCOMPLETE;
        }
    }
    *msg_len = off;
    return 0;
}

struct rcase {
    const char *name;
    const char *in;
    size_t len;
    int expect;
    size_t max;
};

/*
 * Feeds every prefix the way a proxy reading a slow client would (same
 * scanned hint across calls, buffer moved each time) and statelessly; a
 * prefix may only be incomplete or fail the same way, never succeed.
 */
static void check_case(const struct rcase *c)
{
    size_t max = c->max ? c->max : DEFAULT_MAX;
    struct h1_request r;
    size_t scanned = 0, mlen = 0, bad_k = 0;
    int bad_rc = 0;
    for (size_t k = 0; k < c->len && !bad_k; k++) {
        size_t fresh = 0;
        const char *b = at_guard(c->in, k);
        int rc = message(b, k, max, &scanned, &r, &mlen);
        int rc2 = message(b, k, max, &fresh, &r, &mlen);
        if ((rc != H1_INCOMPLETE && (rc != c->expect || c->expect == 0)) || rc2 != rc) {
            bad_k = k ? k : SIZE_MAX;
            bad_rc = rc != H1_INCOMPLETE ? rc : rc2;
        }
        if (scanned > k)
            bad_k = k ? k : SIZE_MAX, bad_rc = -7777;
    }
    ok(!bad_k, "%s: every prefix incomplete or %d (at %zu got %d)", c->name,
       c->expect, bad_k == SIZE_MAX ? 0 : bad_k, bad_rc);
    const char *b = at_guard(c->in, c->len);
    int rc = message(b, c->len, max, &scanned, &r, &mlen);
    size_t fresh = 0;
    int rc2 = message(b, c->len, max, &fresh, &r, &mlen);
    ok(rc == c->expect && rc2 == rc, "%s: whole input gives %d (got %d/%d)", c->name,
       c->expect, rc, rc2);
    if (c->expect == 0)
        ok(mlen == c->len, "%s: message spans the whole input (%zu of %zu)", c->name,
           mlen, c->len);
}

#define HOST "Host: a\r\n"
#define POST11 "POST / HTTP/1.1\r\n" HOST

static const struct rcase bad[] = {
    /* framing ambiguity */
    {"CL+TE", L(POST11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"TE+CL", L(POST11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"TE+CL 0", L(POST11 "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), H1_ERR_BAD, 0},
    {"two differing CL", L(POST11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), H1_ERR_BAD, 0},
    {"CL list 5, 6", L(POST11 "Content-Length: 5, 6\r\n\r\nhello!"), H1_ERR_BAD, 0},
    {"CL +5", L(POST11 "Content-Length: +5\r\n\r\nhello"), H1_ERR_BAD, 0},
    {"CL -1", L(POST11 "Content-Length: -1\r\n\r\n"), H1_ERR_BAD, 0},
    {"CL overflow", L(POST11 "Content-Length: 99999999999999999999999\r\n\r\n"), H1_ERR_BAD, 0},
    {"CL 2^62+1", L(POST11 "Content-Length: 4611686018427387905\r\n\r\n"), H1_ERR_BAD, 0},
    {"CL 2^64", L(POST11 "Content-Length: 18446744073709551616\r\n\r\n"), H1_ERR_BAD, 0},
    {"CL empty", L(POST11 "Content-Length:\r\n\r\n"), H1_ERR_BAD, 0},
    {"CL hex", L(POST11 "Content-Length: 0x5\r\n\r\nhello"), H1_ERR_BAD, 0},
    {"CL trailing comma", L(POST11 "Content-Length: 5,\r\n\r\nhello"), H1_ERR_BAD, 0},
    {"CL two numbers", L(POST11 "Content-Length: 5 5\r\n\r\nhello"), H1_ERR_BAD, 0},
    {"CL space before colon", L(POST11 "Content-Length : 5\r\n\r\nhello"), H1_ERR_BAD, 0},
    /* Transfer-Encoding: chunked alone, or 501 (400 when the list is broken) */
    {"TE chunked, gzip", L(POST11 "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"), H1_ERR_TE, 0},
    {"TE gzip, chunked", L(POST11 "Transfer-Encoding: gzip , chunked\r\n\r\n0\r\n\r\n"), H1_ERR_TE, 0},
    {"TE identity, chunked", L(POST11 "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"), H1_ERR_TE, 0},
    {"TE across lines", L(POST11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), H1_ERR_TE, 0},
    {"TE coding with param", L(POST11 "Transfer-Encoding: x;a=1, chunked\r\n\r\n0\r\n\r\n"), H1_ERR_TE, 0},
    {"TE param without name", L(POST11 "Transfer-Encoding: chunked;\r\n\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"TE trailing comma", L(POST11 "Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"TE gzip", L(POST11 "Transfer-Encoding: gzip\r\n\r\n"), H1_ERR_TE, 0},
    {"TE identity", L(POST11 "Transfer-Encoding: identity\r\n\r\n"), H1_ERR_TE, 0},
    {"TE chunked, chunked", L(POST11 "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), H1_ERR_TE, 0},
    {"TE chunked twice in two lines", L(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), H1_ERR_TE, 0},
    {"TE chunked then gzip line", L(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), H1_ERR_TE, 0},
    {"TE in HTTP/1.0", L("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"TE empty", L(POST11 "Transfer-Encoding:\r\n\r\n"), H1_ERR_BAD, 0},
    {"TE empty element", L(POST11 "Transfer-Encoding: gzip,,chunked\r\n\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"TE chunked with param", L(POST11 "Transfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n"), H1_ERR_TE, 0},
    {"TE xchunked", L(POST11 "Transfer-Encoding: xchunked\r\n\r\n"), H1_ERR_TE, 0},
    {"TE chunked with vtab", L(POST11 "Transfer-Encoding: \x0b" "chunked\r\n\r\n"), H1_ERR_BAD, 0},
    /* field syntax */
    {"obs-fold", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"), H1_ERR_BAD, 0},
    {"obs-fold tab", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n"), H1_ERR_BAD, 0},
    {"fold after request line", L("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"bare CR in value", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n"), H1_ERR_BAD, 0},
    {"bare CR ends value", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\r\n\r\n"), H1_ERR_BAD, 0},
    {"bare CR line", L("GET / HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n"), H1_ERR_BAD, 0},
    {"NUL in value", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\0c\r\n\r\n"), H1_ERR_BAD, 0},
    {"NUL in name", L("GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n"), H1_ERR_BAD, 0},
    {"NUL in target", L("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"DEL in value", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\x7f\r\n\r\n"), H1_ERR_BAD, 0},
    {"CTL in value", L("GET / HTTP/1.1\r\nHost: a\r\nX: b\x01\r\n\r\n"), H1_ERR_BAD, 0},
    {"CTL in long value", L("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdef\x1f" "0123456789\r\n\r\n"), H1_ERR_BAD, 0},
    {"DEL in target", L("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"Host space colon", L("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), H1_ERR_BAD, 0},
    {"Host tab colon", L("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"empty name", L("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), H1_ERR_BAD, 0},
    {"no colon", L("GET / HTTP/1.1\r\nHost: a\r\nXb\r\n\r\n"), H1_ERR_BAD, 0},
    {"bad name char", L("GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"), H1_ERR_BAD, 0},
    {"obs-text in name", L("GET / HTTP/1.1\r\nHost: a\r\nX\xe9: b\r\n\r\n"), H1_ERR_BAD, 0},
    /* Host */
    {"missing Host 1.1", L("GET / HTTP/1.1\r\nX: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"two Hosts", L("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"two Hosts 1.0", L("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), H1_ERR_BAD, 0},
    {"Host with space", L("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), H1_ERR_BAD, 0},
    {"Host with slash", L("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), H1_ERR_BAD, 0},
    {"Host with userinfo", L("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), H1_ERR_BAD, 0},
    /* request line */
    {"bad method char", L("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"CTL in method", L("G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"TLS hello", L("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), H1_ERR_BAD, 0},
    {"tab after method", L("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"leading space", L(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"lowercase version", L("GET / http/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"double space before target", L("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"double space before version", L("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"trailing space", L("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"no version", L("GET /\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"no target", L("GET HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"HTTP/1.10", L("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"HTTP/1.", L("GET / HTTP/1.\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"HTTP/2.0", L("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), H1_ERR_VERSION, 0},
    {"HTTP/1.2", L("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), H1_ERR_VERSION, 0},
    {"HTTP/0.9", L("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), H1_ERR_VERSION, 0},
    {"bare CR after request line", L("GET / HTTP/1.1\rHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"three leading empty lines", L("\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"leading bare CR", L("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"asterisk with GET", L("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"CONNECT origin-form", L("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"CONNECT no port", L("CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"authority-form with GET", L("GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"absolute-form userinfo", L("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"absolute-form empty authority", L("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    {"absolute-form ftp", L("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_BAD, 0},
    /* sizes */
    {"section over limit", L("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789\r\n\r\n"), H1_ERR_TOO_LARGE, 48},
    {"request line over limit", L("GET /0123456789012345678901234567890123456789 HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_TOO_LARGE, 32},
    {"just over limit", L("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_ERR_TOO_LARGE, 26},
    /* chunk framing (answered with 400 as well) */
    {"chunk size non-hex", L(POST11 "Transfer-Encoding: chunked\r\n\r\nzz\r\n"), H1_ERR_BAD, 0},
    {"chunk size overflow", L(POST11 "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"), H1_ERR_BAD, 0},
    {"chunk size 0x", L(POST11 "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"chunk size negative", L(POST11 "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"chunk size empty", L(POST11 "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"chunk size trailing space", L(POST11 "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"missing CRLF after data", L(POST11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"LF-only after data", L(POST11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"LF-only chunk line", L(POST11 "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"LF-only last chunk", L(POST11 "Transfer-Encoding: chunked\r\n\r\n0\n\r\n"), H1_ERR_BAD, 0},
    {"LF-only final line", L(POST11 "Transfer-Encoding: chunked\r\n\r\n0\r\n\n"), H1_ERR_BAD, 0},
    {"bare CR in extension", L(POST11 "Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n"), H1_ERR_BAD, 0},
    {"NUL in trailer", L(POST11 "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\0\r\n\r\n"), H1_ERR_BAD, 0},
    {"bare LF in trailer", L(POST11 "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\r\n"), H1_ERR_BAD, 0},
};

/* Valid, if unusual, inputs: they must parse, and whole messages complete. */
struct vcase {
    struct rcase c;
    enum h1_body body;
};

static const struct vcase good[] = {
    {{"TE extra spaces", L(POST11 "Transfer-Encoding:   chunked   \r\n\r\n0\r\n\r\n"), 0, 0}, H1_BODY_CHUNKED},
    {{"TE tab", L(POST11 "Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"), 0, 0}, H1_BODY_CHUNKED},
    {{"TE Chunked case", L(POST11 "transfer-encoding: ChUnKeD\r\n\r\n0\r\n\r\n"), 0, 0}, H1_BODY_CHUNKED},
    {{"CL leading zeros", L(POST11 "Content-Length: 00005\r\n\r\nhello"), 0, 0}, H1_BODY_LENGTH},
    {{"CL list of same", L(POST11 "Content-Length: 5, 5\r\n\r\nhello"), 0, 0}, H1_BODY_LENGTH},
    {{"CL repeated same", L(POST11 "Content-Length: 5\r\ncontent-length: 005\r\n\r\nhello"), 0, 0}, H1_BODY_LENGTH},
    {{"CL 0", L(POST11 "Content-Length: 0\r\n\r\n"), 0, 0}, H1_BODY_NONE},
    {{"two leading empty lines", L("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0}, H1_BODY_NONE},
    {{"LF line ends", L("GET / HTTP/1.1\nHost: a\nX: y\n\n"), 0, 0}, H1_BODY_NONE},
    {{"mixed line ends", L("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\n"), 0, 0}, H1_BODY_NONE},
    {{"obs-text value", L("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"), 0, 0}, H1_BODY_NONE},
    {{"empty value", L("GET / HTTP/1.1\r\nHost: a\r\nX:\r\nY:   \r\n\r\n"), 0, 0}, H1_BODY_NONE},
    {{"HTTP/1.0 no Host", L("GET / HTTP/1.0\r\n\r\n"), 0, 0}, H1_BODY_NONE},
    {{"OPTIONS *", L("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0}, H1_BODY_NONE},
    {{"CONNECT authority", L("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"), 0, 0}, H1_BODY_NONE},
    {{"unknown method", L("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0}, H1_BODY_NONE},
    {{"chunked with ext and trailer", L(POST11 "Transfer-Encoding: chunked\r\n\r\n5;a=b ; c=\"d\"\r\nhello\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n"), 0, 0}, H1_BODY_CHUNKED},
    {{"chunk size BWS before ext", L(POST11 "Transfer-Encoding: chunked\r\n\r\n5 ;a\r\nhello\r\n0\r\n\r\n"), 0, 0}, H1_BODY_CHUNKED},
    {{"exactly at limit", L("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 27}, H1_BODY_NONE},
};

static void test_tables(void)
{
    size_t nbad = sizeof(bad) / sizeof(bad[0]);
    ok(nbad >= 45, "malformed table has %zu cases", nbad);
    for (size_t i = 0; i < nbad; i++)
        check_case(&bad[i]);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        check_case(&good[i].c);
        struct h1_request r;
        size_t sc = 0;
        int rc = h1_parse_request(good[i].c.in, good[i].c.len,
                                  good[i].c.max ? good[i].c.max : DEFAULT_MAX, &sc, &r);
        ok(rc > 0 && r.body == good[i].body, "%s: body kind %d (got %d, rc %d)",
           good[i].c.name, good[i].body, rc > 0 ? (int)r.body : -1, rc);
    }
}

/* Generated inputs: too many headers, over-long chunk extensions/trailers. */
static void test_generated(void)
{
    char *b = malloc(65536);
    size_t n = 0;
    n += (size_t)sprintf(b + n, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < H1_MAX_HEADERS - 1; i++)
        n += (size_t)sprintf(b + n, "X-%d: v\r\n", i);
    memcpy(b + n, "\r\n", 2);
    struct rcase c = {"exactly H1_MAX_HEADERS headers", b, n + 2, 0, 65536};
    check_case(&c);
    n += (size_t)sprintf(b + n, "X-last: v\r\n\r\n");
    c = (struct rcase){"too many headers", b, n, H1_ERR_TOO_LARGE, 65536};
    check_case(&c);

    n = (size_t)sprintf(b, POST11 "Transfer-Encoding: chunked\r\n\r\n5;");
    memset(b + n, 'e', 4100);
    n += 4100;
    n += (size_t)sprintf(b + n, "\r\nhello\r\n0\r\n\r\n");
    c = (struct rcase){"chunk extension too long", b, n, H1_ERR_BAD, 0};
    check_case(&c);

    n = (size_t)sprintf(b, POST11 "Transfer-Encoding: chunked\r\n\r\n0\r\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)sprintf(b + n, "X-%03d: 0123456789\r\n", i);
    n += (size_t)sprintf(b + n, "\r\n");
    c = (struct rcase){"trailers too long", b, n, H1_ERR_BAD, 0};
    check_case(&c);

    /* A long header section arriving a byte at a time stays linear:
     * scanned must advance with the data. */
    n = (size_t)sprintf(b, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(b + n, 'x', 30000);
    n += 30000;
    size_t scanned = 0, last = 0;
    bool mono = true;
    struct h1_request r;
    for (size_t k = 1; k <= n; k++) {
        int rc = h1_parse_request(b, k, 65536, &scanned, &r);
        if (rc != H1_INCOMPLETE || scanned < last)
            mono = false;
        last = scanned;
    }
    ok(mono && scanned + 64 >= n, "scanned hint follows a slow client (%zu of %zu)",
       scanned, n);
    free(b);
}

static bool sl(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

static void test_request_fields(void)
{
    static const char in[] =
        "GET /a/b?x=1&y HTTP/1.1\r\n"
        "Host:  example.com:8080 \r\n"
        "User-Agent: t\t\r\n"
        "Accept:\t*/*\r\n"
        "Connection: Upgrade, keep-alive\r\n"
        "Upgrade: websocket\r\n"
        "\r\n";
    struct h1_request r;
    size_t sc = 0;
    const char *b = at_guard(in, sizeof(in) - 1);
    int rc = h1_parse_request(b, sizeof(in) - 1, DEFAULT_MAX, &sc, &r);
    ok(rc == (int)sizeof(in) - 1, "GET parses to its full length (%d)", rc);
    ok(r.m == H1_M_GET && sl(r.method, r.method_len, "GET"), "method GET");
    ok(sl(r.target, r.target_len, "/a/b?x=1&y"), "target");
    ok(sl(r.path, r.path_len, "/a/b") && sl(r.query, r.query_len, "x=1&y"), "path and query");
    ok(sl(r.host, r.host_len, "example.com:8080"), "host trimmed");
    ok(r.minor == 1 && r.keep_alive && r.body == H1_BODY_NONE, "1.1 keep-alive, no body");
    ok(r.nheaders == 5, "5 headers (%zu)", r.nheaders);
    const struct h1_header *h = h1_find_header(r.headers, r.nheaders, "user-agent", 10);
    ok(h && sl(h->value, h->value_len, "t"), "User-Agent value trimmed of trailing HTAB");
    h = h1_find_header(r.headers, r.nheaders, "ACCEPT", 6);
    ok(h && sl(h->value, h->value_len, "*/*"), "Accept found case-insensitively");
    ok(!h1_find_header(r.headers, r.nheaders, "Accep", 5), "no prefix match");
    ok((r.flags & H1_F_CONN_UPGRADE) && (r.flags & H1_F_CONN_KEEPALIVE) &&
       (r.flags & H1_F_HAS_UPGRADE) && !(r.flags & H1_F_CONN_CLOSE), "connection flags");
    bool inside = true;
    for (size_t i = 0; i < r.nheaders; i++)
        inside &= slice_in(r.headers[i].name, r.headers[i].name_len, b, sizeof(in) - 1) &&
                  slice_in(r.headers[i].value, r.headers[i].value_len, b, sizeof(in) - 1);
    ok(inside, "header slices point into the input");

    static const char ab[] = "POST http://Up.example:81?q HTTP/1.1\r\nHost: other\r\n"
                             "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc";
    sc = 0;
    rc = h1_parse_request(ab, sizeof(ab) - 1, DEFAULT_MAX, &sc, &r);
    ok(rc == (int)sizeof(ab) - 4, "absolute-form parses (%d)", rc);
    ok(sl(r.host, r.host_len, "Up.example:81"), "absolute-form authority wins over Host");
    ok(r.path_len == 0 && sl(r.query, r.query_len, "q"), "absolute-form without path");
    ok(r.flags & H1_F_EXPECT_CONTINUE, "Expect: 100-continue flag");
    ok(r.body == H1_BODY_LENGTH && r.content_length == 3, "CL body");

    static const char ab2[] = "GET https://h/p/q?z HTTP/1.1\r\nHost: h\r\n\r\n";
    sc = 0;
    rc = h1_parse_request(ab2, sizeof(ab2) - 1, DEFAULT_MAX, &sc, &r);
    ok(rc > 0 && sl(r.host, r.host_len, "h") && sl(r.path, r.path_len, "/p/q") &&
       sl(r.query, r.query_len, "z"), "https absolute-form split");

    static const char h10[] = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    sc = 0;
    rc = h1_parse_request(h10, sizeof(h10) - 1, DEFAULT_MAX, &sc, &r);
    ok(rc > 0 && r.minor == 0 && r.keep_alive && r.host == NULL, "HTTP/1.0 keep-alive");
    static const char h10e[] = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    sc = 0;
    rc = h1_parse_request(h10e, sizeof(h10e) - 1, DEFAULT_MAX, &sc, &r);
    ok(rc > 0 && !(r.flags & H1_F_EXPECT_CONTINUE), "Expect ignored in HTTP/1.0");
    static const char h10c[] = "GET / HTTP/1.0\r\n\r\n";
    sc = 0;
    rc = h1_parse_request(h10c, sizeof(h10c) - 1, DEFAULT_MAX, &sc, &r);
    ok(rc > 0 && !r.keep_alive, "HTTP/1.0 closes by default");
    static const char h11c[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n";
    sc = 0;
    rc = h1_parse_request(h11c, sizeof(h11c) - 1, DEFAULT_MAX, &sc, &r);
    ok(rc > 0 && !r.keep_alive && (r.flags & H1_F_CONN_CLOSE), "Connection: close wins");
    static const char ex[] = "PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n"
                             "Content-Length: 1\r\n\r\n";
    sc = 0;
    rc = h1_parse_request(ex, sizeof(ex) - 1, DEFAULT_MAX, &sc, &r);
    ok(rc > 0 && r.m == H1_M_PUT && !(r.flags & H1_F_EXPECT_CONTINUE), "other Expect: no flag");
}

static void test_pipelined(void)
{
    static const char in[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                             "POST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nhi"
                             "GET /3 HTTP/1.1\r\nHost: c\r\n\r\n";
    size_t n = sizeof(in) - 1, off = 0;
    const char *b = at_guard(in, n);
    const char *paths[] = {"/1", "/2", "/3"};
    bool good_all = true;
    for (int i = 0; i < 3; i++) {
        struct h1_request r;
        size_t sc = 0;
        int rc = h1_parse_request(b + off, n - off, DEFAULT_MAX, &sc, &r);
        if (rc <= 0 || !sl(r.path, r.path_len, paths[i])) {
            good_all = false;
            break;
        }
        off += (size_t)rc + (r.body == H1_BODY_LENGTH ? r.content_length : 0);
    }
    ok(good_all && off == n, "three pipelined requests, each returns its own length");
    struct h1_request r;
    size_t sc = 0;
    int rc = h1_parse_request(b, n, DEFAULT_MAX, &sc, &r);
    ok(rc == 28, "first of a pipeline returns only its own length (%d)", rc);
}

/* ---- chunked walker ---- */

struct walk {
    int last;
    size_t used;
    size_t ndata;
    char data[8192];
};

/* Walks [0,split) then [split,n) like two reads, gathering data. */
static void walk2(const char *b, size_t n, size_t split, struct walk *w, bool *contract)
{
    struct h1_chunked c;
    h1_chunked_init(&c);
    w->used = w->ndata = 0;
    w->last = H1C_AGAIN;
    size_t bounds[2] = {split, n};
    for (int part = 0; part < 2; part++) {
        while (w->used < bounds[part]) {
            size_t avail = bounds[part] - w->used, k = 0;
            int kind = h1_chunked_next(&c, b + w->used, avail, &k);
            if (k > avail || (k == 0 && kind != H1C_ERROR && kind != H1C_DONE) ||
                (kind == H1C_AGAIN && k != avail)) {
                *contract = false;
                w->last = H1C_ERROR;
                return;
            }
            if (kind == H1C_DATA) {
                if (w->ndata + k <= sizeof(w->data))
                    memcpy(w->data + w->ndata, b + w->used, k);
                w->ndata += k;
            }
            w->used += k;
            w->last = kind;
            if (kind == H1C_DONE || kind == H1C_ERROR)
                return;
        }
    }
}

static void check_chunked(const char *name, const char *body, size_t n,
                          int want, size_t want_used, const char *payload, size_t plen)
{
    bool contract = true, same = true;
    for (size_t split = 0; split <= n; split++) {
        struct walk w;
        const char *b = at_guard(body, n);
        walk2(b, n, split, &w, &contract);
        if (w.last != want || (want == H1C_DONE && (w.used != want_used || w.ndata != plen ||
                                                    memcmp(w.data, payload, plen) != 0)))
            same = false;
        /* a strict prefix must never look finished */
        struct walk wp;
        walk2(at_guard(body, split), split, split, &wp, &contract);
        if (split < want_used && wp.last == H1C_DONE)
            same = false;
        if (want == H1C_DONE && split < want_used && wp.last == H1C_ERROR)
            same = false;
    }
    ok(contract, "%s: walker contract holds at every split", name);
    ok(same, "%s: same outcome and data at every split", name);

    /* one byte per call */
    struct h1_chunked c;
    h1_chunked_init(&c);
    size_t used = 0, nd = 0;
    int kind = H1C_AGAIN;
    char out[8192];
    while (used < n) {
        size_t k = 0;
        kind = h1_chunked_next(&c, body + used, 1, &k);
        if (kind == H1C_DATA && nd < sizeof(out))
            out[nd++] = body[used];
        used += k;
        if (kind == H1C_DONE || kind == H1C_ERROR)
            break;
    }
    ok(kind == want && (want != H1C_DONE || (used == want_used && nd == plen &&
                                              memcmp(out, payload, plen) == 0)),
       "%s: byte-at-a-time gives the same", name);
}

static void test_chunked(void)
{
    static const char body[] = "5\r\nhello\r\n1A;ext=\"v\"\r\n"
                               "abcdefghijklmnopqrstuvwxyz\r\n"
                               "000\r\n\r\nGET / HTTP/1.1\r\n";
    check_chunked("two chunks", L(body), H1C_DONE, sizeof(body) - 1 - 16,
                  L("helloabcdefghijklmnopqrstuvwxyz"));
    static const char tr[] = "3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: z\r\n\r\nrest";
    check_chunked("trailers", L(tr), H1C_DONE, sizeof(tr) - 1 - 4, L("abc"));
    static const char hex[] = "a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n";
    check_chunked("upper and lower hex", L(hex), H1C_DONE, sizeof(hex) - 1,
                  L("01234567890123456789"));

    static const struct { const char *name, *in; size_t len; } badc[] = {
        {"non-hex size", L("g\r\n")},
        {"size overflow", L("ffffffffffffffffff\r\n")},
        {"size 2^63", L("8000000000000000\r\n")},
        {"bare LF after size", L("3\nabc\r\n0\r\n\r\n")},
        {"missing CRLF after data", L("3\r\nabcd\r\n")},
        {"LF only after data", L("3\r\nabc\n0\r\n\r\n")},
        {"CR without LF after data", L("3\r\nabc\rX")},
        {"empty size line", L("\r\n")},
        {"ws then CR", L("3\t\r\nabc\r\n")},
        {"CTL in ext", L("3;\x01\r\nabc\r\n")},
        {"folded trailer", L("0\r\n X: y\r\n\r\n")},
        {"bare CR in trailer", L("0\r\nX: \ry\r\n\r\n")},
        {"final LF only", L("0\r\n\n")},
        {"final CR then junk", L("0\r\n\rx")},
    };
    for (size_t i = 0; i < sizeof(badc) / sizeof(badc[0]); i++)
        check_chunked(badc[i].name, badc[i].in, badc[i].len, H1C_ERROR, 0, NULL, 0);

    static const char big[] = "7fffffffffffffff\r\n";
    struct h1_chunked c;
    h1_chunked_init(&c);
    size_t k = 0;
    int kind = h1_chunked_next(&c, L(big), &k);
    ok(kind == H1C_AGAIN && k == sizeof(big) - 1 && c.remaining == UINT64_C(0x7fffffffffffffff),
       "largest chunk size accepted");
    kind = h1_chunked_next(&c, "x", 0, &k);
    ok(kind == H1C_AGAIN && k == 0, "empty input is AGAIN with nothing consumed");

    h1_chunked_init(&c);
    kind = h1_chunked_next(&c, L("0\r\n\r\n"), &k);
    ok(kind == H1C_DONE && k == 5, "empty body ends");
    kind = h1_chunked_next(&c, L("5\r\n"), &k);
    ok(kind == H1C_DONE && k == 0, "after DONE nothing more is consumed");
    h1_chunked_init(&c);
    kind = h1_chunked_next(&c, L("z"), &k);
    int again = h1_chunked_next(&c, L("0\r\n\r\n"), &k);
    ok(kind == H1C_ERROR && again == H1C_ERROR, "errors are sticky");

    /* A request body walked at every split of the whole message. */
    static const char msg[] = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
    struct h1_request r;
    size_t sc = 0;
    int hl = h1_parse_request(msg, sizeof(msg) - 1, DEFAULT_MAX, &sc, &r);
    ok(hl > 0 && r.body == H1_BODY_CHUNKED && (r.flags & H1_F_HAS_TE), "chunked request head");
    if (hl > 0)
        check_chunked("request body", msg + hl, sizeof(msg) - 1 - (size_t)hl, H1C_DONE,
                      sizeof(msg) - 1 - (size_t)hl, L("Wikipedia in \r\n\r\nchunks."));
}

/* ---- responses ---- */

struct resp_case {
    const char *name;
    const char *in;
    size_t len;
    enum h1_method m;
    int rc;             /* 0: expect the whole input back */
    int status;
    enum h1_body body;
    bool keep_alive;
};

static const struct resp_case resps[] = {
    {"200 CL", L("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), H1_M_GET, 0, 200, H1_BODY_LENGTH, true},
    {"200 chunked", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), H1_M_GET, 0, 200, H1_BODY_CHUNKED, true},
    {"200 close-delimited", L("HTTP/1.1 200 OK\r\n\r\n"), H1_M_GET, 0, 200, H1_BODY_CLOSE, false},
    {"200 TE gzip", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), H1_M_GET, H1_ERR_TE, 0, 0, false},
    {"200 TE gzip, chunked", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), H1_M_GET, H1_ERR_TE, 0, 0, false},
    {"HEAD TE identity", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n"), H1_M_HEAD, H1_ERR_TE, 0, 0, false},
    {"200 TE CHUNKED", L("HTTP/1.1 200 OK\r\nTransfer-Encoding:  CHUNKED \r\n\r\n"), H1_M_GET, 0, 200, H1_BODY_CHUNKED, true},
    {"HEAD with CL", L("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"), H1_M_HEAD, 0, 200, H1_BODY_NONE, true},
    {"HEAD with chunked", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), H1_M_HEAD, 0, 200, H1_BODY_NONE, true},
    {"204", L("HTTP/1.1 204 No Content\r\n\r\n"), H1_M_GET, 0, 204, H1_BODY_NONE, true},
    {"304 with CL", L("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"), H1_M_GET, 0, 304, H1_BODY_NONE, true},
    {"100 continue", L("HTTP/1.1 100 Continue\r\n\r\n"), H1_M_POST, 0, 100, H1_BODY_NONE, true},
    {"101 upgrade", L("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), H1_M_GET, 0, 101, H1_BODY_NONE, true},
    {"CONNECT 200", L("HTTP/1.1 200 Connection established\r\n\r\n"), H1_M_CONNECT, 0, 200, H1_BODY_NONE, true},
    {"CONNECT 407", L("HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n"), H1_M_CONNECT, 0, 407, H1_BODY_NONE, true},
    {"no reason", L("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n"), H1_M_GET, 0, 200, H1_BODY_LENGTH, true},
    {"empty reason", L("HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n"), H1_M_GET, 0, 404, H1_BODY_LENGTH, true},
    {"1.0 keep-alive", L("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n"), H1_M_GET, 0, 200, H1_BODY_LENGTH, true},
    {"1.0 default close", L("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"), H1_M_GET, 0, 200, H1_BODY_LENGTH, false},
    {"Connection close", L("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"), H1_M_GET, 0, 200, H1_BODY_LENGTH, false},
    {"LF only", L("HTTP/1.1 200 OK\nContent-Length: 1\n\n"), H1_M_GET, 0, 200, H1_BODY_LENGTH, true},
    {"CL+TE", L("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"CL+TE on HEAD", L("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), H1_M_HEAD, H1_ERR_BAD, 0, 0, false},
    {"differing CL", L("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"TE chunked, gzip", L("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), H1_M_GET, H1_ERR_TE, 0, 0, false},
    {"status 600", L("HTTP/1.1 600 X\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"status 099", L("HTTP/1.1 099 X\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"status 2 digits", L("HTTP/1.1 20 OK\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"status 4 digits", L("HTTP/1.1 2000 OK\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"status letters", L("HTTP/1.1 2x0 OK\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"HTTP/2.0", L("HTTP/2.0 200 OK\r\n\r\n"), H1_M_GET, H1_ERR_VERSION, 0, 0, false},
    {"not HTTP", L("SSH-2.0-OpenSSH\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"CTL in reason", L("HTTP/1.1 200 O\x01K\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"TE in HTTP/1.0", L("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"TE gzip in HTTP/1.0", L("HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"obs-fold", L("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"bare CR", L("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
    {"space before colon", L("HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n"), H1_M_GET, H1_ERR_BAD, 0, 0, false},
};

static void test_responses(void)
{
    for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++) {
        const struct resp_case *c = &resps[i];
        struct h1_response r;
        size_t scanned = 0, bad_k = 0;
        int want = c->rc ? c->rc : (int)c->len;
        for (size_t k = 0; k < c->len; k++) {
            size_t fresh = 0;
            const char *b = at_guard(c->in, k);
            int rc = h1_parse_response(b, k, DEFAULT_MAX, &scanned, c->m, &r);
            int rc2 = h1_parse_response(b, k, DEFAULT_MAX, &fresh, c->m, &r);
            if ((rc != H1_INCOMPLETE && (rc != c->rc || c->rc == 0)) || rc2 != rc)
                bad_k = k + 1;
        }
        ok(!bad_k, "response %s: prefixes incomplete or the same error", c->name);
        const char *b = at_guard(c->in, c->len);
        int rc = h1_parse_response(b, c->len, DEFAULT_MAX, &scanned, c->m, &r);
        ok(rc == want, "response %s: result %d (got %d)", c->name, want, rc);
        if (c->rc == 0 && rc == want)
            ok(r.status == c->status && r.body == c->body && r.keep_alive == c->keep_alive &&
               slice_in(r.reason, r.reason_len, b, c->len),
               "response %s: status %d body %d keep-alive %d (got %d %d %d)", c->name,
               c->status, c->body, c->keep_alive, r.status, r.body, r.keep_alive);
    }
    struct h1_response r;
    size_t sc = 0;
    static const char in[] = "HTTP/1.1 503 Service Down\r\nContent-Length: 12\r\n\r\n";
    int rc = h1_parse_response(L(in), DEFAULT_MAX, &sc, H1_M_GET, &r);
    ok(rc > 0 && sl(r.reason, r.reason_len, "Service Down") && r.content_length == 12 &&
       r.nheaders == 1, "response reason and CL");
}

static void test_helpers(void)
{
    ok(h1_list_has_token(L(" a , Keep-Alive,,b"), L("keep-alive")), "list token found");
    ok(!h1_list_has_token(L("keep-alivex, close2"), L("close")), "no partial token match");
    ok(!h1_list_has_token(L(""), L("a")), "empty list");
    ok(h1_list_has_token(L("close\t"), L("close")), "trailing OWS ignored");
    ok(h1_casecmp("Content-TYPE", "content-type", 12), "casecmp equal");
    ok(!h1_casecmp("a[", "A{", 2), "casecmp does not fold non-letters");
    ok(strcmp(h1_reason(404), "Not Found") == 0 && strcmp(h1_reason(431),
       "Request Header Fields Too Large") == 0 && h1_reason(299)[0] == 0, "reason phrases");
}

int main(void)
{
    guard_init();
    test_tables();
    test_generated();
    test_request_fields();
    test_pipelined();
    test_chunked();
    test_responses();
    test_helpers();
    return tap_done();
}
