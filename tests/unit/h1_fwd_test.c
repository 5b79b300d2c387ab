/*
 * h1_fwd_test.c - forwarded heads (gateway/h1_fwd.c): what sluice writes is
 * parsed again by its own strict parser and checked field by field, and the
 * framing it writes is sluice's own spelling, never the sender's.
 *
 * Client and upstream bytes are copied into exact-size heap buffers (no
 * NUL), so a read past the message trips ASan.
 */
#include "tap.h"
/* hdr.c first: it defines and undefines IS(), which http1.c defines for good */
#include "../../core/hdr.c"
#include "../../core/reason.c"
#include "../../gateway/h1_fwd.c"
#include "../../gateway/http1.c"
#include "../../router/router.c"
#include "../../router/jsonmatch.c"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define RID_HI UINT64_C(0x0123456789abcdef)
#define RID_LO UINT64_C(0xfedcba9876543210)
#define RID_HEX "0123456789abcdeffedcba9876543210"
#define OUT_CAP 16384

/* ---- helpers ---- */

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    memcpy(p, s, n);
    return p;
}

static bool sl_eq(const char *p, size_t n, const char *z)
{
    size_t zl = strlen(z);
    return p != NULL && n == zl && memcmp(p, z, n) == 0;
}

static bool has_bytes(const char *p, size_t n, const char *needle)
{
    return memmem(p, n, needle, strlen(needle)) != NULL;
}

/* Case-insensitive search, for "no spelling of the client survives". */
static bool has_bytes_ci(const char *p, size_t n, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= n; i++)
        if (h1_casecmp(p + i, needle, nl))
            return true;
    return false;
}

static size_t hcount(const struct h1_header *h, size_t n, const char *name)
{
    size_t c = 0, nl = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == nl && h1_casecmp(h[i].name, name, nl))
            c++;
    return c;
}

static int hidx(const struct h1_header *h, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == nl && h1_casecmp(h[i].name, name, nl))
            return (int)i;
    return -1;
}

/* Exactly one header of that name, with exactly that value. */
static bool hone(const struct h1_header *h, size_t n, const char *name, const char *val)
{
    int i = hidx(h, n, name);
    return hcount(h, n, name) == 1 && sl_eq(h[i].value, h[i].value_len, val);
}

/* All values of that name joined with ", " (the list they make). */
static const char *hjoin(const struct h1_header *h, size_t n, const char *name)
{
    static char buf[4096];
    size_t len = 0, nl = strlen(name);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len != nl || !h1_casecmp(h[i].name, name, nl))
            continue;
        if (len)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, ", ");
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%.*s", (int)h[i].value_len,
                                h[i].value);
    }
    return buf;
}

/* ---- one forwarded request ---- */

struct fx {
    char *in;
    size_t inlen;
    struct h1_request req;      /* the client's, parsed */
    char out[OUT_CAP];
    int n;                      /* h1_fwd_request_head */
    struct h1_request o;        /* the output, parsed again */
    int orc;
};

static struct fx X;

static struct h1_fwd_req defreq(void)
{
    struct h1_fwd_req f;
    memset(&f, 0, sizeof(f));
    f.client_ip = "10.0.0.1";
    f.client_ip_len = 8;
    f.rid_hi = RID_HI;
    f.rid_lo = RID_LO;
    return f;
}

/* Parse client, forward, parse the output: true when all three worked. */
static bool fwd(const char *client, const struct h1_fwd_req *f)
{
    struct fx *x = &X;
    size_t sc = 0;

    free(x->in);
    x->inlen = strlen(client);
    x->in = dupn(client, x->inlen);
    x->n = -2;
    x->orc = -2;
    int rc = h1_parse_request(x->in, x->inlen, 0, &sc, &x->req);
    if (rc != (int)x->inlen) {
        printf("# client parse: %d\n", rc);
        return false;
    }
    x->n = h1_fwd_request_head(x->out, sizeof(x->out), &x->req, f);
    if (x->n < 0) {
        printf("# h1_fwd_request_head: %d\n", x->n);
        return false;
    }
    sc = 0;
    x->orc = h1_parse_request(x->out, (size_t)x->n, 0, &sc, &x->o);
    if (x->orc != x->n)
        printf("# output parse: %d of %d: %.*s\n", x->orc, x->n, x->n, x->out);
    return x->orc == x->n;
}

#define OH X.o.headers, X.o.nheaders

static bool out_is(const char *z)
{
    return X.n >= 0 && sl_eq(X.out, (size_t)X.n, z);
}

static bool target_is(const char *z)
{
    return sl_eq(X.o.target, X.o.target_len, z);
}

/* ---- request head ---- */

static void test_request_basic(void)
{
    struct h1_fwd_req f = defreq();

    ok(fwd("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n"
           "Accept: */*\r\n\r\n", &f), "basic GET forwarded and re-parsed");
    ok(out_is("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n"
              "Accept: */*\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
              "X-Forwarded-Host: example.com\r\nX-Request-Id: " RID_HEX "\r\n\r\n"),
       "basic GET: exact bytes");
    ok(sl_eq(X.o.method, X.o.method_len, "GET") && X.o.m == H1_M_GET, "method GET");
    ok(target_is("/a/b?x=1&y=2"), "target path?query");
    ok(sl_eq(X.o.path, X.o.path_len, "/a/b") && sl_eq(X.o.query, X.o.query_len, "x=1&y=2"),
       "path and query");
    ok(X.o.minor == 1, "HTTP/1.1 upstream");
    ok(sl_eq(X.o.host, X.o.host_len, "example.com") && hone(OH, "Host", "example.com"),
       "Host");
    ok(hone(OH, "User-Agent", "t/1") && hone(OH, "Accept", "*/*"), "headers copied");
    ok(hcount(OH, "Content-Length") == 0 && hcount(OH, "Transfer-Encoding") == 0 &&
       X.o.body == H1_BODY_NONE, "no framing in, no framing out");

    /* POST */
    ok(fwd("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n", &f) &&
       out_is("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Forwarded-For: 10.0.0.1\r\n"
              "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nX-Request-Id: " RID_HEX
              "\r\n\r\n"), "POST with CL: exact bytes");

    /* An HTTP/1.0 request without Host gets default_host, no X-Forwarded-Host. */
    f.default_host = "dflt.internal";
    ok(fwd("GET /ten HTTP/1.0\r\nAccept: a\r\n\r\n", &f), "1.0 without Host forwarded");
    ok(hone(OH, "Host", "dflt.internal"), "1.0: default_host used");
    ok(hcount(OH, "X-Forwarded-Host") == 0, "1.0 without Host: no X-Forwarded-Host");
    ok(X.o.minor == 1, "1.0 request goes upstream as HTTP/1.1");
}

static void test_request_framing(void)
{
    struct h1_fwd_req f = defreq();

    ok(fwd("POST /u HTTP/1.1\r\nHost: h\r\nA: 1\r\nContent-Length: 00005\r\nB: 2\r\n\r\n", &f),
       "CL 00005 forwarded");
    ok(hone(OH, "Content-Length", "5") && X.o.body == H1_BODY_LENGTH &&
       X.o.content_length == 5, "CL 00005 -> exactly one Content-Length: 5");
    ok(has_bytes(X.out, (size_t)X.n, "\r\nContent-Length: 5\r\n"), "CL line spelled canonically");
    ok(!has_bytes(X.out, (size_t)X.n, "00005"), "no 00005 in the output");
    ok(hidx(OH, "Content-Length") == hidx(OH, "A") + 1 &&
       hidx(OH, "B") == hidx(OH, "Content-Length") + 1, "CL where the client's stood (A, CL, B)");

    ok(fwd("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", &f), "CL 5, 5 forwarded");
    ok(hone(OH, "Content-Length", "5") && X.o.content_length == 5,
       "CL 5, 5 -> exactly one Content-Length: 5");
    ok(!has_bytes(X.out, (size_t)X.n, "5, 5") && !has_bytes(X.out, (size_t)X.n, "5,5"),
       "no list spelling in the output");

    ok(fwd("POST /u HTTP/1.1\r\nHost: h\r\nA: 1\r\nContent-Length: 5\r\nB: 2\r\n"
           "content-length: 005\r\nC: 3\r\n\r\n", &f), "two CL lines forwarded");
    ok(hone(OH, "Content-Length", "5"), "two CL lines -> one Content-Length: 5");
    ok(hidx(OH, "Content-Length") == hidx(OH, "A") + 1 && hidx(OH, "B") == hidx(OH, "A") + 2 &&
       hidx(OH, "C") == hidx(OH, "A") + 3, "at the first CL line's place; A, CL, B, C");
    ok(!has_bytes(X.out, (size_t)X.n, "content-length") && !has_bytes(X.out, (size_t)X.n, "005"),
       "second CL spelling gone");

    ok(fwd("POST /c HTTP/1.1\r\nHost: h\r\nA: 1\r\nTransfer-Encoding:  CHUNKED \r\nB: 2\r\n\r\n",
           &f), "TE CHUNKED forwarded");
    ok(hone(OH, "Transfer-Encoding", "chunked") && X.o.body == H1_BODY_CHUNKED,
       "TE ' CHUNKED ' -> Transfer-Encoding: chunked");
    ok(has_bytes(X.out, (size_t)X.n, "\r\nTransfer-Encoding: chunked\r\n"),
       "TE line spelled canonically");
    ok(!has_bytes(X.out, (size_t)X.n, "CHUNKED") && !has_bytes(X.out, (size_t)X.n, ":  "),
       "no CHUNKED, no double space in the output");
    ok(hcount(OH, "Content-Length") == 0, "chunked: no Content-Length");
    ok(hidx(OH, "Transfer-Encoding") == hidx(OH, "A") + 1 &&
       hidx(OH, "B") == hidx(OH, "Transfer-Encoding") + 1, "TE where the client's stood");

    ok(fwd("POST /z HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &f), "CL 0 forwarded");
    ok(hone(OH, "Content-Length", "0") && X.o.body == H1_BODY_NONE, "Content-Length: 0 stays");
    ok(hcount(OH, "Transfer-Encoding") == 0, "CL 0: no TE");

    ok(fwd("POST /z HTTP/1.1\r\nHost: h\r\nContent-Length: 000\r\n\r\n", &f) &&
       hone(OH, "Content-Length", "0") && !has_bytes(X.out, (size_t)X.n, "000"),
       "CL 000 -> Content-Length: 0");

    ok(fwd("DELETE /n HTTP/1.1\r\nHost: h\r\n\r\n", &f) && hcount(OH, "Content-Length") == 0 &&
       hcount(OH, "Transfer-Encoding") == 0, "neither CL nor TE: neither forwarded");

    uint64_t big = UINT64_C(1) << 62;
    char msg[256];
    snprintf(msg, sizeof(msg), "PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0%" PRIu64 "\r\n\r\n",
             big);
    ok(fwd(msg, &f) && X.o.content_length == big && X.o.body == H1_BODY_LENGTH,
       "CL 2^62 with a leading zero forwarded as 2^62");
}

static void test_request_connection(void)
{
    struct h1_fwd_req f = defreq();

    ok(fwd("POST / HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\n",
           &f), "Connection: Content-Length forwarded");
    ok(hone(OH, "Content-Length", "3") && X.o.body == H1_BODY_LENGTH,
       "Connection: Content-Length does not remove the framing");
    ok(hcount(OH, "Connection") == 0, "client Connection not copied");

    ok(fwd("POST / HTTP/1.1\r\nHost: h\r\nConnection: Transfer-Encoding, close\r\n"
           "Transfer-Encoding: chunked\r\n\r\n", &f), "Connection: Transfer-Encoding forwarded");
    ok(hone(OH, "Transfer-Encoding", "chunked") && X.o.body == H1_BODY_CHUNKED,
       "Connection: Transfer-Encoding does not remove the framing");

    ok(fwd("GET / HTTP/1.1\r\nConnection: Host\r\nHost: h.example\r\n\r\n", &f),
       "Connection: Host forwarded");
    ok(hone(OH, "Host", "h.example") && hone(OH, "X-Forwarded-Host", "h.example"),
       "Connection: Host does not remove Host");

    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: 1\r\nConnection: X-Foo, close\r\nX-Bar: 2\r\n"
           "x-foo: again\r\n\r\n", &f), "Connection: X-Foo, close forwarded");
    ok(hcount(OH, "X-Foo") == 0 && !has_bytes_ci(X.out, (size_t)X.n, "x-foo"),
       "Connection: X-Foo removes X-Foo (every line, any case)");
    ok(hone(OH, "X-Bar", "2"), "other headers kept");
    ok(hcount(OH, "Connection") == 0 && !has_bytes_ci(X.out, (size_t)X.n, "close"),
       "Connection itself not copied");

    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nkEEp-aLIVE: timeout=5\r\n"
           "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\n"
           "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nExpect: 100-continue\r\n"
           "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Keep: yes\r\n\r\n", &f),
       "hop-by-hop request forwarded");
    static const char *const never[] = {
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
        "HTTP2-Settings", "Expect",
    };
    for (size_t i = 0; i < sizeof(never) / sizeof(*never); i++)
        ok(hcount(OH, never[i]) == 0, "%s not copied", never[i]);
    ok(hone(OH, "X-Forwarded-Proto", "http"), "client X-Forwarded-Proto replaced by sluice's");
    ok(hone(OH, "X-Forwarded-Host", "h"), "client X-Forwarded-Host replaced by sluice's");
    static const char *const gone[] = {
        "timeout=5", "trailers", "X-T", "h2c", "AAMAAAB", "100-continue", "https", "evil",
    };
    for (size_t i = 0; i < sizeof(gone) / sizeof(*gone); i++)
        ok(!has_bytes(X.out, (size_t)X.n, gone[i]), "no '%s' in the output", gone[i]);
    ok(hone(OH, "X-Keep", "yes"), "end-to-end header kept");
    ok(!(X.o.flags & (H1_F_EXPECT_CONTINUE | H1_F_HAS_UPGRADE)), "no Expect/Upgrade flags upstream");

    /* An h2c upgrade with its settings: gone; the request stays HTTP/1.1. */
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n", &f), "h2c upgrade forwarded");
    ok(hcount(OH, "Upgrade") == 0 && hcount(OH, "HTTP2-Settings") == 0 &&
       hcount(OH, "Connection") == 0 && X.o.minor == 1, "h2c: Upgrade, HTTP2-Settings gone");

    /* A WebSocket upgrade passed on. */
    f.websocket = true;
    ok(fwd("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", &f),
       "websocket upgrade forwarded");
    ok(hone(OH, "Connection", "upgrade") && hone(OH, "Upgrade", "websocket"),
       "websocket: Connection: upgrade + Upgrade: websocket");
    ok(has_bytes(X.out, (size_t)X.n, "Connection: upgrade\r\nUpgrade: websocket\r\n"),
       "websocket: exact lines");
    ok(!has_bytes(X.out, (size_t)X.n, "WebSocket\r\n") && !has_bytes(X.out, (size_t)X.n, "keep-alive"),
       "websocket: client's spelling gone");
    ok(hone(OH, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") &&
       hone(OH, "Sec-WebSocket-Version", "13"), "websocket: Sec-WebSocket-* kept");
    ok((X.o.flags & H1_F_CONN_UPGRADE) && (X.o.flags & H1_F_UPGRADE_WS),
       "websocket: upstream parse sees the upgrade");
}

/* The route's policy: a client's X-Auth-Id never passes, sluice's own is
 * added after auth, the credential's header removed, extra lines added. */
static void test_request_policy(void)
{
    struct h1_fwd_req f = defreq();

    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nX-Auth-Id: admin\r\nx-AUTH-id: root\r\nA: 1\r\n\r\n", &f) &&
       hcount(OH, "X-Auth-Id") == 0 && hone(OH, "A", "1"), "a client's X-Auth-Id lines are dropped, always");
    f.auth_id = "team-a";
    f.auth_id_len = 6;
    f.drop = "authorization";
    f.drop_len = 13;
    f.extra = "X-User: alice\r\n";
    f.extra_len = 15;
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\nX-Auth-Id: forged\r\n"
           "Authorization-X: 2\r\nX-User: mallory\r\n\r\n", &f), "forwarded with an auth id");
    ok(hone(OH, "X-Auth-Id", "team-a"), "sluice's X-Auth-Id, once");
    ok(hcount(OH, "Authorization") == 0 && hone(OH, "Authorization-X", "2"),
       "the credential's header dropped, a longer name kept");
    ok(hcount(OH, "X-User") == 2 && !strcmp(hjoin(OH, "X-User"), "mallory, alice"), "extra lines added after");
    f.drop = "x-api-key";
    f.drop_len = 9;
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nX-API-KEY: k\r\nAuthorization: Basic x\r\n\r\n", &f) &&
       hcount(OH, "X-Api-Key") == 0 && hone(OH, "Authorization", "Basic x"), "another credential header");
}

static void test_request_forwarded(void)
{
    struct h1_fwd_req f = defreq();

    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n", &f) &&
       hone(OH, "X-Forwarded-For", "1.1.1.1, 10.0.0.1"), "XFF appended to the client's");

    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nA: 1\r\n"
           "x-forwarded-for: 2.2.2.2, 3.3.3.3\r\nX-FORWARDED-FOR: 4.4.4.4\r\n\r\n", &f),
       "three client XFF lines forwarded");
    ok(!strcmp(hjoin(OH, "X-Forwarded-For"), "1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4, 10.0.0.1"),
       "XFF lines: the list in order, client ip last (got '%s')", hjoin(OH, "X-Forwarded-For"));
    ok(hone(OH, "X-Forwarded-For", "1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4, 10.0.0.1"),
       "XFF lines folded into ONE line (got %zu lines)", hcount(OH, "X-Forwarded-For"));

    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f) && hone(OH, "X-Forwarded-For", "10.0.0.1") &&
       hone(OH, "X-Forwarded-Proto", "http"), "no client XFF: the client ip; proto http");
    f.https = true;
    ok(fwd("GET / HTTP/1.1\r\nHost: h:8443\r\n\r\n", &f) && hone(OH, "X-Forwarded-Proto", "https") &&
       hone(OH, "X-Forwarded-Host", "h:8443"), "https: X-Forwarded-Proto https, XFH the Host");
    f.https = false;
    f.client_ip = "2001:db8::1";
    f.client_ip_len = 11;
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f) && hone(OH, "X-Forwarded-For", "2001:db8::1"),
       "IPv6 client ip");
    f = defreq();

    /* X-Request-Id */
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-123\r\n\r\n", &f) &&
       hone(OH, "X-Request-Id", "abc-123") && !has_bytes(X.out, (size_t)X.n, RID_HEX),
       "client X-Request-Id kept, none generated");
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nx-request-ID: lower\r\n\r\n", &f) &&
       hcount(OH, "X-Request-Id") == 1, "client x-request-ID (any case) kept, none generated");
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f) && hone(OH, "X-Request-Id", RID_HEX),
       "no client X-Request-Id: generated from rid_hi/rid_lo");
    f.rid_hi = 0;
    f.rid_lo = 1;
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f) &&
       hone(OH, "X-Request-Id", "00000000000000000000000000000001"), "generated id: 32 hex digits");
    f = defreq();
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nConnection: x-request-id\r\nX-Request-Id: client\r\n\r\n",
           &f), "Connection: x-request-id forwarded");
    ok(hone(OH, "X-Request-Id", RID_HEX) && !has_bytes(X.out, (size_t)X.n, "client"),
       "X-Request-Id removed by Connection: generated instead");

    /* A header of another name but the same length (12) as x-request-id. */
    ok(fwd("POST / HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n",
           &f) && hone(OH, "Content-Type", "text/plain"), "Content-Type request forwarded");
    ok(hone(OH, "X-Request-Id", RID_HEX),
       "Content-Type (12 bytes, not x-request-id) still gets an X-Request-Id generated");

    static char n_xrid[] = "x-request-id", v_fixed[] = "route-fixed";
    struct cfg_kv setkv[] = { { n_xrid, v_fixed, 12, 11 } };
    struct cfg_route rt;
    memset(&rt, 0, sizeof(rt));
    rt.req_headers.set = setkv;
    rt.req_headers.nset = 1;
    f.route = &rt;
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f) && hone(OH, "X-Request-Id", "route-fixed") &&
       !has_bytes(X.out, (size_t)X.n, RID_HEX), "route sets x-request-id: not generated too");
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: client\r\n\r\n", &f) &&
       hone(OH, "X-Request-Id", "route-fixed"), "route set replaces the client's X-Request-Id");
}

static void test_request_route(void)
{
    struct h1_fwd_req f = defreq();
    static char n_env[] = "x-env", v_prod[] = "prod", n_add[] = "x-added", v_one[] = "1",
                n_keep[] = "x-keep", v_two[] = "2", n_secret[] = "x-secret";
    struct cfg_kv setkv[] = { { n_env, v_prod, 5, 4 } };
    struct cfg_kv addkv[] = { { n_add, v_one, 7, 1 }, { n_keep, v_two, 6, 1 } };
    struct cfg_kv rmkv[] = { { n_secret, NULL, 8, 0 } };
    struct cfg_route rt;

    memset(&rt, 0, sizeof(rt));
    rt.req_headers.set = setkv;
    rt.req_headers.nset = 1;
    rt.req_headers.add = addkv;
    rt.req_headers.nadd = 2;
    rt.req_headers.remove = rmkv;
    rt.req_headers.nremove = 1;
    f.route = &rt;

    ok(fwd("GET /e HTTP/1.1\r\nHost: h\r\nX-ENV: dev\r\nX-Secret: s3cr3t\r\nX-Keep: k\r\n\r\n", &f),
       "route edits forwarded");
    ok(hone(OH, "X-Env", "prod") && !has_bytes(X.out, (size_t)X.n, "dev"),
       "set replaces the client's header (any case)");
    ok(hone(OH, "X-Added", "1"), "add appends a new header");
    ok(hcount(OH, "X-Keep") == 2 && !strcmp(hjoin(OH, "X-Keep"), "k, 2"),
       "add keeps the client's and appends (got '%s')", hjoin(OH, "X-Keep"));
    ok(hcount(OH, "X-Secret") == 0 && !has_bytes(X.out, (size_t)X.n, "s3cr3t"), "remove drops");
    ok(fwd("GET /e HTTP/1.1\r\nHost: h\r\n\r\n", &f) && hone(OH, "X-Env", "prod"),
       "set writes the header when the client had none");

    /* rewrites */
    static char api[] = "/api", v2[] = "/v2", fixed[] = "/fixed", bh[] = "backend.internal";
    memset(&rt, 0, sizeof(rt));
    rt.path_kind = CFG_PATH_PREFIX;
    rt.path = api;
    rt.path_len = 4;
    rt.rewrite = CFG_RW_STRIP_PREFIX;
    ok(fwd("GET /api/users?id=7 HTTP/1.1\r\nHost: h\r\n\r\n", &f) && target_is("/users?id=7"),
       "strip_prefix /api: /api/users?id=7 -> /users?id=7");
    ok(fwd("GET /api HTTP/1.1\r\nHost: h\r\n\r\n", &f) && target_is("/"),
       "strip_prefix /api: /api -> /");
    ok(fwd("GET /api/ HTTP/1.1\r\nHost: h\r\n\r\n", &f) && target_is("/"),
       "strip_prefix /api: /api/ -> /");
    rt.rewrite = CFG_RW_REPLACE_PREFIX;
    rt.rewrite_path = v2;
    rt.rewrite_path_len = 3;
    ok(fwd("GET /api/users HTTP/1.1\r\nHost: h\r\n\r\n", &f) && target_is("/v2/users"),
       "replace_prefix /v2: /api/users -> /v2/users");
    rt.rewrite = CFG_RW_REPLACE_PATH;
    rt.rewrite_path = fixed;
    rt.rewrite_path_len = 6;
    ok(fwd("GET /api/anything?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", &f) && target_is("/fixed?q=1"),
       "replace_path /fixed: query kept");
    rt.rewrite = CFG_RW_NONE;
    rt.rewrite_host = bh;
    ok(fwd("GET /api/x HTTP/1.1\r\nHost: Public.Example\r\n\r\n", &f), "rewrite_host forwarded");
    ok(hone(OH, "Host", "backend.internal") && target_is("/api/x"), "rewrite_host: Host replaced");
    ok(hone(OH, "X-Forwarded-Host", "Public.Example"), "rewrite_host: X-Forwarded-Host the client's");

    /* absolute-form without a path */
    f.route = NULL;
    ok(fwd("GET http://a HTTP/1.1\r\nHost: a\r\n\r\n", &f) && target_is("/") &&
       hone(OH, "Host", "a"), "GET http://a -> path /");
    ok(out_is("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
              "X-Forwarded-Host: a\r\nX-Request-Id: " RID_HEX "\r\n\r\n"),
       "GET http://a: exact bytes");
    ok(fwd("GET http://a?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", &f) && target_is("/?q=1"),
       "GET http://a?q=1 -> /?q=1");
    ok(fwd("GET http://a.example:8080/x/y?z HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", &f) &&
       target_is("/x/y?z") && hone(OH, "Host", "a.example:8080"), "absolute-form with a path");
    memset(&rt, 0, sizeof(rt));
    rt.path_kind = CFG_PATH_PREFIX;
    rt.path = api;
    rt.path_len = 4;
    rt.rewrite = CFG_RW_STRIP_PREFIX;
    f.route = &rt;
    ok(fwd("GET http://a/api/q HTTP/1.1\r\nHost: a\r\n\r\n", &f) && target_is("/q"),
       "absolute-form with strip_prefix");
}

/* the headers an auth check writes itself (jwt's claims_to_headers: the
 * strip list) are removed from what the client sent, in any case */
static void test_request_policy_strip(void)
{
    struct h1_fwd_req f = defreq();
    static char s_user[] = "x-user", s_email[] = "x-email";
    char *strip[] = { s_user, s_email };
    uint32_t lens[] = { 6, 7 };
    static const char extra[] = "x-user: alice\r\n";

    f.drop = "authorization";
    f.drop_len = 13;
    f.auth_id = "alice";
    f.auth_id_len = 5;
    f.extra = extra;
    f.extra_len = sizeof(extra) - 1;
    f.strip = strip;
    f.strip_lens = lens;
    f.nstrip = 2;
    ok(fwd("GET /p HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0k\r\nX-User: mallory\r\n"
           "x-EMAIL: m@evil\r\nX-Auth-Id: root\r\nX-Userx: kept\r\n\r\n", &f),
       "policy: forwarded");
    ok(hcount(OH, "Authorization") == 0 && !has_bytes(X.out, (size_t)X.n, "t0k"),
       "policy: the credential dropped");
    ok(hone(OH, "X-User", "alice") && !has_bytes(X.out, (size_t)X.n, "mallory"),
       "policy: a stripped header is the check's, not the client's (any case)");
    ok(hcount(OH, "X-Email") == 0 && !has_bytes(X.out, (size_t)X.n, "evil"),
       "policy: a stripped header the check did not write is gone");
    ok(hone(OH, "X-Auth-Id", "alice"), "policy: x-auth-id is sluice's");
    ok(hone(OH, "X-Userx", "kept"), "policy: a longer name is another header: kept");
}

/* Every cap below the head's length gives -1 and writes only within cap. */
static void cap_sweep(const char *client, const struct h1_fwd_req *f, const char *what)
{
    if (!fwd(client, f)) {
        ok(0, "%s: forwarded at all", what);
        return;
    }
    size_t n = (size_t)X.n, bad = 0;
    for (size_t cap = 0; cap <= n + 1; cap++) {
        char *b = malloc(cap ? cap : 1);
        int rc = h1_fwd_request_head(b, cap, &X.req, f);
        if (cap < n ? rc != -1 : (rc != (int)n || memcmp(b, X.out, n) != 0))
            bad++;
        free(b);
    }
    ok(bad == 0, "%s: every cap < %zu gives -1, cap >= length the same head (%zu bad)", what, n,
       bad);
}

static void test_request_cap(void)
{
    struct h1_fwd_req f = defreq();
    static char api[] = "/api", n_env[] = "x-env", v_prod[] = "prod";
    struct cfg_kv setkv[] = { { n_env, v_prod, 5, 4 } };
    struct cfg_route rt;

    cap_sweep("GET /a?b HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nA: 1\r\n\r\n", &f,
              "plain");
    memset(&rt, 0, sizeof(rt));
    rt.path_kind = CFG_PATH_PREFIX;
    rt.path = api;
    rt.path_len = 4;
    rt.rewrite = CFG_RW_STRIP_PREFIX;
    rt.req_headers.set = setkv;
    rt.req_headers.nset = 1;
    f.route = &rt;
    f.websocket = true;
    cap_sweep("POST /api/long/path?q HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n", &f,
              "strip_prefix + edits + websocket");

    char small[16];
    f = defreq();
    ok(fwd("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &f) &&
       h1_fwd_request_head(small, sizeof(small), &X.req, &f) == -1, "a head over cap returns -1");
}

/* ---- response head ---- */

struct rx {
    char *in;
    size_t inlen;
    struct h1_response resp;
    char out[OUT_CAP];
    int n;
    struct h1_response o;
    int orc;
};

static struct rx Y;

#define RH Y.o.headers, Y.o.nheaders

static bool rfwd(const char *up, enum h1_method m, const struct h1_fwd_resp *f)
{
    struct rx *x = &Y;
    size_t sc = 0;

    free(x->in);
    x->inlen = strlen(up);
    x->in = dupn(up, x->inlen);
    x->n = -2;
    x->orc = -2;
    int rc = h1_parse_response(x->in, x->inlen, 0, &sc, m, &x->resp);
    if (rc != (int)x->inlen) {
        printf("# upstream parse: %d\n", rc);
        return false;
    }
    x->n = h1_fwd_response_head(x->out, sizeof(x->out), &x->resp, f);
    if (x->n < 0)
        return false;
    sc = 0;
    x->orc = h1_parse_response(x->out, (size_t)x->n, 0, &sc, m, &x->o);
    if (x->orc != x->n)
        printf("# output parse: %d of %d: %.*s\n", x->orc, x->n, x->n, x->out);
    return x->orc == x->n;
}

static bool rout_is(const char *z)
{
    return Y.n >= 0 && sl_eq(Y.out, (size_t)Y.n, z);
}

static void test_response(void)
{
    struct h1_fwd_resp f = { NULL, true, false };

    ok(rfwd("HTTP/1.1 200 OK\r\nContent-Length: 005\r\nX-A: 1\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n"),
       "CL 005 -> Content-Length: 5, exact bytes");
    ok(Y.o.body == H1_BODY_LENGTH && Y.o.content_length == 5 && hone(RH, "Content-Length", "5"),
       "CL response re-parsed");
    ok(rfwd("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n", H1_M_GET, &f) &&
       hone(RH, "Content-Length", "7") && !has_bytes(Y.out, (size_t)Y.n, "7, 7"),
       "CL 7, 7 -> one Content-Length: 7");

    ok(rfwd("HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: Chunked\r\nX-B: 2\r\n\r\n", H1_M_GET,
            &f) && rout_is("HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\n"),
       "chunked, HTTP/1.1 client: Transfer-Encoding: chunked in place");
    ok(Y.o.body == H1_BODY_CHUNKED, "chunked re-parsed as chunked");
    f.client10 = true;
    f.keepalive = false;
    ok(rfwd("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 200 OK\r\nX-B: 2\r\nConnection: close\r\n\r\n"),
       "chunked, HTTP/1.0 client: no TE (caller de-chunks and closes)");
    ok(hcount(RH, "Transfer-Encoding") == 0 && hcount(RH, "Content-Length") == 0,
       "HTTP/1.0 client: no framing header");

    f.client10 = false;
    f.keepalive = false;
    ok(rfwd("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 200 OK\r\nX: y\r\nConnection: close\r\n\r\n"),
       "close-delimited: no framing, Connection: close");
    ok(Y.o.body == H1_BODY_CLOSE, "close-delimited re-parsed as close-delimited");
    ok(rfwd("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", H1_M_GET, &f) &&
       hone(RH, "Connection", "close") && !has_bytes(Y.out, (size_t)Y.n, "keep-alive") &&
       Y.o.minor == 1, "HTTP/1.0 upstream: answered as HTTP/1.1, its Connection dropped");

    f.keepalive = true;
    ok(rfwd("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\nX: y\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 204 No Content\r\nX: y\r\n\r\n"), "204 with CL: no framing");
    ok(rfwd("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 204 No Content\r\n\r\n"), "204 with TE: no framing");
    ok(rfwd("HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\n", H1_M_POST, &f) &&
       rout_is("HTTP/1.1 100 Continue\r\n\r\n"), "100 with CL: no framing");

    ok(rfwd("HTTP/1.1 200 OK\r\nContent-Length: 0123\r\n\r\n", H1_M_HEAD, &f) &&
       rout_is("HTTP/1.1 200 OK\r\nContent-Length: 123\r\n\r\n"),
       "HEAD answer keeps its Content-Length (canonical)");
    ok(Y.resp.body == H1_BODY_NONE && Y.o.body == H1_BODY_NONE, "HEAD answer has no body");
    ok(rfwd("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 042\r\n\r\n", H1_M_GET,
            &f) && rout_is("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 42\r\n\r\n"),
       "304 keeps its Content-Length (canonical)");
    ok(rfwd("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", H1_M_GET, &f) &&
       hone(RH, "Content-Length", "0"), "CL 0 response keeps Content-Length: 0");

    f.keepalive = false;
    ok(rfwd("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"),
       "103 interim: no Connection header (even when the connection closes)");
    f.client10 = true;
    f.keepalive = true;
    ok(rfwd("HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\n", H1_M_GET, &f) &&
       hcount(RH, "Connection") == 0, "103 for a 1.0 keep-alive client: no Connection header");
    f.client10 = false;

    ok(rfwd("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 101 Switching Protocols\r\n"
               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
               "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
       "101: Connection: upgrade + Upgrade: websocket, exact bytes");

    ok(rfwd("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n", H1_M_GET,
            &f) && hone(RH, "Content-Length", "5") && Y.o.body == H1_BODY_LENGTH,
       "Connection: Content-Length does not remove the response framing");
    ok(rfwd("HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
            H1_M_GET, &f) && hone(RH, "Transfer-Encoding", "chunked"),
       "Connection: Transfer-Encoding does not remove the response framing");
    f.keepalive = false;
    ok(rfwd("HTTP/1.1 200 OK\r\nConnection: X-Drop\r\nX-Drop: 1\r\nX-Stay: 2\r\nKeep-Alive: t=1\r\n"
            "Proxy-Connection: k\r\nTrailer: X-T\r\nUpgrade: h2c\r\nContent-Length: 1\r\n\r\n",
            H1_M_GET, &f), "hop-by-hop response forwarded");
    ok(hcount(RH, "X-Drop") == 0 && hone(RH, "X-Stay", "2"), "Connection: X-Drop removes X-Drop");
    ok(hcount(RH, "Keep-Alive") == 0 && hcount(RH, "Proxy-Connection") == 0 &&
       hcount(RH, "Trailer") == 0 && hcount(RH, "Upgrade") == 0,
       "hop-by-hop response headers dropped");
    ok(hone(RH, "Connection", "close"), "keepalive false: exactly Connection: close");

    static char n_server[] = "server", v_sluice[] = "sluice", n_xfo[] = "x-frame-options",
                v_deny[] = "DENY", n_pb[] = "x-powered-by";
    struct cfg_kv setkv[] = { { n_server, v_sluice, 6, 6 } };
    struct cfg_kv addkv[] = { { n_xfo, v_deny, 15, 4 } };
    struct cfg_kv rmkv[] = { { n_pb, NULL, 12, 0 } };
    struct cfg_header_edits e = { setkv, 1, addkv, 1, rmkv, 1 };
    f.edits = &e;
    f.keepalive = true;
    ok(rfwd("HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Powered-By: php\r\nContent-Length: 2\r\n\r\n",
            H1_M_GET, &f), "response with edits forwarded");
    ok(hone(RH, "Server", "sluice") && !has_bytes(Y.out, (size_t)Y.n, "nginx"),
       "response set replaces");
    ok(hone(RH, "X-Frame-Options", "DENY"), "response add appends");
    ok(hcount(RH, "X-Powered-By") == 0 && !has_bytes(Y.out, (size_t)Y.n, "php"),
       "response remove drops");
    f.edits = NULL;

    f.client10 = true;
    f.keepalive = true;
    ok(rfwd("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"),
       "HTTP/1.0 client + keepalive: Connection: keep-alive");
    f.client10 = false;
    ok(rfwd("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
       "HTTP/1.1 client + keepalive: no Connection header");
    ok(rfwd("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"), "empty reason: http_reason()");
    ok(rfwd("HTTP/1.1 404 Nope Nope\r\nContent-Length: 2\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 404 Nope Nope\r\nContent-Length: 2\r\n\r\n"), "upstream's reason kept");

    /* cap */
    ok(rfwd("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n", H1_M_GET, &f), "cap base");
    size_t n = (size_t)Y.n, bad = 0;
    for (size_t cap = 0; cap <= n; cap++) {
        char *b = malloc(cap ? cap : 1);
        int rc = h1_fwd_response_head(b, cap, &Y.resp, &f);
        if (cap < n ? rc != -1 : rc != (int)n)
            bad++;
        free(b);
    }
    ok(bad == 0, "response: every cap below the length gives -1 (%zu bad)", bad);
}

/* Response edits, exact bytes: set and add lines follow the copied headers,
 * names as configured (lower-case). */
static void test_response_edit_order(void)
{
    static char n_server[] = "server", v_sluice[] = "sluice", n_xfo[] = "x-frame-options",
                v_deny[] = "DENY";
    struct cfg_kv setkv[] = { { n_server, v_sluice, 6, 6 } };
    struct cfg_kv addkv[] = { { n_xfo, v_deny, 15, 4 } };
    struct cfg_header_edits e = { setkv, 1, addkv, 1, NULL, 0 };
    struct h1_fwd_resp f = { &e, true, false };

    ok(rfwd("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\n", H1_M_GET, &f) &&
       rout_is("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nserver: sluice\r\nx-frame-options: DENY\r\n\r\n"),
       "response edits: exact bytes (set, then add, after the copied headers)");
}

/* ---- chunk framing ---- */

static bool chunk_is(uint64_t n, const char *z)
{
    char b[H1_FWD_CHUNK_MAX];
    size_t l = h1_fwd_chunk_head(b, n);
    return sl_eq(b, l, z);
}

/* Re-frame pieces with h1_fwd_chunk_*, walk with h1_chunked_next in reads
 * of `step` bytes (0: all at once), collect the data. */
static bool reframe_roundtrip(const char *const *pieces, const size_t *lens, size_t np, size_t step,
                              size_t *bad_at)
{
    char *wire = malloc(1 << 16), *data = malloc(1 << 16), *got = malloc(1 << 16);
    size_t wl = 0, dl = 0, gl = 0;
    bool okk = true;

    for (size_t i = 0; i < np; i++) {
        wl += h1_fwd_chunk_head(wire + wl, lens[i]);
        memcpy(wire + wl, pieces[i], lens[i]);
        wl += lens[i];
        memcpy(wire + wl, "\r\n", 2);
        wl += 2;
        memcpy(data + dl, pieces[i], lens[i]);
        dl += lens[i];
    }
    wl += h1_fwd_chunk_last(wire + wl);
    memcpy(wire + wl, "NEXT", 4);   /* the next message: must not be consumed */

    struct h1_chunked c;
    h1_chunked_init(&c);
    size_t off = 0, avail = step ? 0 : wl + 4;
    int k = H1C_AGAIN;
    while (off < wl + 4) {
        if (step && avail <= off)
            avail = off + step < wl + 4 ? off + step : wl + 4;
        size_t used = 0;
        k = h1_chunked_next(&c, wire + off, avail - off, &used);
        if (k == H1C_ERROR) {
            okk = false;
            break;
        }
        if (k == H1C_DATA) {
            memcpy(got + gl, wire + off, used);
            gl += used;
        }
        off += used;
        if (k == H1C_DONE)
            break;
    }
    if (k != H1C_DONE || off != wl || gl != dl || memcmp(got, data, dl) != 0) {
        okk = false;
        *bad_at = off;
    }
    free(wire);
    free(data);
    free(got);
    return okk;
}

static void test_chunks(void)
{
    char b[H1_FWD_CHUNK_MAX];

    ok(chunk_is(0x1, "1\r\n"), "chunk head 1");
    ok(chunk_is(9, "9\r\n") && chunk_is(10, "a\r\n") && chunk_is(15, "f\r\n"), "chunk head 9, a, f");
    ok(chunk_is(16, "10\r\n"), "chunk head 16 -> 10");
    ok(chunk_is(255, "ff\r\n"), "chunk head 255 -> ff");
    ok(chunk_is(4096, "1000\r\n"), "chunk head 4096 -> 1000");
    ok(chunk_is(UINT64_C(0xdeadbeef), "deadbeef\r\n"), "chunk head lower-case hex");
    ok(chunk_is((UINT64_C(1) << 63) - 1, "7fffffffffffffff\r\n"), "chunk head 2^63-1");
    ok(chunk_is(UINT64_MAX, "ffffffffffffffff\r\n"), "chunk head 2^64-1 fits H1_FWD_CHUNK_MAX");
    size_t l = h1_fwd_chunk_last(b);
    ok(sl_eq(b, l, "0\r\n\r\n"), "chunk last -> 0 CRLF CRLF");

    static char big[3000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + 3);     /* every byte value, CR and LF included */
    const char *pieces[] = { "hello", " ", "world\r\n", "0\r\n\r\n", big, "x" };
    size_t lens[] = { 5, 1, 7, 5, sizeof(big), 1 };
    size_t np = sizeof(lens) / sizeof(*lens), at = 0;
    ok(reframe_roundtrip(pieces, lens, np, 0, &at), "re-framed body walked in one read (at %zu)", at);
    size_t bad = 0;
    for (size_t step = 1; step <= 40; step++)
        if (!reframe_roundtrip(pieces, lens, np, step, &at))
            bad++;
    ok(bad == 0, "re-framed body walked in reads of 1..40 bytes gives the data exactly (%zu bad)",
       bad);
    const char *one[] = { big };
    size_t onel[] = { 1 };
    ok(reframe_roundtrip(one, onel, 1, 1, &at), "one-byte chunk, one byte per read");
    ok(reframe_roundtrip(NULL, NULL, 0, 0, &at), "empty body: just the last chunk");
}

int main(void)
{
    test_request_basic();
    test_request_framing();
    test_request_connection();
    test_request_forwarded();
    test_request_policy();
    test_request_route();
    test_request_policy_strip();
    test_request_cap();
    test_response();
    test_response_edit_order();
    test_chunks();
    free(X.in);
    free(Y.in);
    return tap_done();
}
