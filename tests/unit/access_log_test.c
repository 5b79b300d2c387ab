/*
 * access_log_test.c - the access log line (gateway/access_log.c), text and
 * JSON: exact shape, absent fields, budgets and cut markers, escaping of
 * hostile bytes, and that a line holds this request's bytes only.
 */
#include "tap.h"
#include "../../gateway/access_log.c"
#include "../../core/log.c"
#include "../../core/esc.c"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TIME_LEN 24

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    memcpy(p, s, n);
    return p;
}

static bool has_bytes(const char *p, size_t n, const char *needle)
{
    return memmem(p, n, needle, strlen(needle)) != NULL;
}

/* The line after its timestamp is exactly tail. */
static bool sl_eq_tail(const char *p, size_t n, const char *tail)
{
    size_t tl = strlen(tail);
    return n == TIME_LEN + tl && memcmp(p + TIME_LEN, tail, tl) == 0;
}

/* 2026-11-22T15:04:05.123Z */
static bool time_ok(const char *t)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < TIME_LEN; i++) {
        if (shape[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != shape[i])
            return false;
    }
    return true;
}

/* One whole line: no NUL, exactly one '\n' and it is the last byte. */
static bool one_line(const char *p, size_t n)
{
    return n > 0 && n <= ALOG_LINE_MAX && p[n - 1] == '\n' && memchr(p, '\0', n) == NULL &&
           memchr(p, '\n', n - 1) == NULL;
}

static struct alog_rec base_rec(void)
{
    struct alog_rec r;
    memset(&r, 0, sizeof(r));
    r.client_ip = "127.0.0.1";
    r.client_ip_len = 9;
    r.client_port = 54321;
    r.method = "GET";
    r.method_len = 3;
    r.target = "/api/users?id=7";
    r.target_len = 15;
    r.host = "example.com";
    r.host_len = 11;
    r.status = 200;
    r.bytes_in = 92;
    r.bytes_out = 585;
    r.upstream = "127.0.0.1:8081";
    r.upstream_ns = 1858000;
    r.total_ns = 1898000;
    r.route = "api";
    return r;
}

/* The text line after its timestamp is exactly tail. */
static bool text_is(const struct alog_rec *r, const char *tail)
{
    char out[ALOG_LINE_MAX];
    size_t n = alog_format(out, r, false), tl = strlen(tail);
    bool okk = n == TIME_LEN + tl && time_ok(out) && memcmp(out + TIME_LEN, tail, tl) == 0;
    if (!okk)
        printf("# got (%zu) '%.*s'\n# want      '%s'\n", n, (int)(n > TIME_LEN ? n - TIME_LEN : 0),
               out + TIME_LEN, tail);
    return okk;
}

/* Format as JSON, check one line, parse it (the caller deletes). */
static cJSON *json_of(const struct alog_rec *r, char *out, size_t *n)
{
    *n = alog_format(out, r, true);
    if (!one_line(out, *n))
        return NULL;
    return cJSON_ParseWithLength(out, *n - 1);
}

static bool jstr(const cJSON *j, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (want == NULL)
        return cJSON_IsNull(v);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

static bool jnum(const cJSON *j, const char *key, double want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) && fabs(v->valuedouble - want) < 1e-9;
}

static bool jnull(const cJSON *j, const char *key)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, key));
}

static void test_text(void)
{
    struct alog_rec r = base_rec();
    char out[ALOG_LINE_MAX];

    ok(text_is(&r, " 127.0.0.1:54321 \"GET /api/users?id=7 HTTP/1.1\" host=example.com status=200 "
                   "in=92 out=585 upstream=127.0.0.1:8081 upstream_ms=1.858 total_ms=1.898 route=api ttfb_ms=- auth_id=-\n"),
       "text line: exact shape");
    size_t n = alog_format(out, &r, false);
    ok(one_line(out, n) && time_ok(out), "text line: one line, ISO time first");

    r.http10 = true;
    ok(text_is(&r, " 127.0.0.1:54321 \"GET /api/users?id=7 HTTP/1.0\" host=example.com status=200 "
                   "in=92 out=585 upstream=127.0.0.1:8081 upstream_ms=1.858 total_ms=1.898 route=api ttfb_ms=- auth_id=-\n"),
       "text line: HTTP/1.0");
    r.http10 = false;

    struct alog_rec m = base_rec();
    m.method = NULL;
    m.method_len = 0;
    m.status = 400;
    m.upstream = NULL;
    m.upstream_ns = 0;
    m.route = NULL;
    m.bytes_out = 0;
    ok(text_is(&m, " 127.0.0.1:54321 \"- - -\" host=- status=400 in=92 out=0 upstream=- "
                   "upstream_ms=- total_ms=1.898 route=- ttfb_ms=- auth_id=-\n"),
       "method NULL: \"- - -\" host=-, and target/host not shown even if set");

    struct alog_rec a = base_rec();
    a.upstream = NULL;
    a.upstream_ns = 0;
    a.route = NULL;
    a.status = 404;
    ok(text_is(&a, " 127.0.0.1:54321 \"GET /api/users?id=7 HTTP/1.1\" host=example.com status=404 "
                   "in=92 out=585 upstream=- upstream_ms=- total_ms=1.898 route=- ttfb_ms=- auth_id=-\n"),
       "absent upstream, upstream_ns, route: -");
    a.host = NULL;
    a.host_len = 0;
    ok(text_is(&a, " 127.0.0.1:54321 \"GET /api/users?id=7 HTTP/1.1\" host=- status=404 "
                   "in=92 out=585 upstream=- upstream_ms=- total_ms=1.898 route=- ttfb_ms=- auth_id=-\n"),
       "absent host: host=-");

    struct alog_rec t = base_rec();
    t.upstream_ns = 1858999;        /* truncated, not rounded */
    t.total_ns = 0;
    t.bytes_in = UINT64_MAX;
    t.client_ip = "::1";
    t.client_ip_len = 3;
    t.client_port = 0;
    ok(text_is(&t, " ::1:0 \"GET /api/users?id=7 HTTP/1.1\" host=example.com status=200 "
                   "in=18446744073709551615 out=585 upstream=127.0.0.1:8081 upstream_ms=1.858 "
                   "total_ms=0.000 route=api ttfb_ms=- auth_id=-\n"),
       "ms truncated to microseconds, 0 ns -> 0.000, u64 max bytes");
    t.total_ns = UINT64_C(12345678901);
    t.upstream_ns = 999;            /* under a microsecond but not absent */
    ok(text_is(&t, " ::1:0 \"GET /api/users?id=7 HTTP/1.1\" host=example.com status=200 "
                   "in=18446744073709551615 out=585 upstream=127.0.0.1:8081 upstream_ms=0.000 "
                   "total_ms=12345.678 route=api ttfb_ms=- auth_id=-\n"),
       "12345.678 ms; a sub-microsecond upstream time is 0.000, not -");
    t.ttfb_ns = UINT64_C(250500000);
    ok(text_is(&t, " ::1:0 \"GET /api/users?id=7 HTTP/1.1\" host=example.com status=200 "
                   "in=18446744073709551615 out=585 upstream=127.0.0.1:8081 upstream_ms=0.000 "
                   "total_ms=12345.678 route=api ttfb_ms=250.500 auth_id=-\n"),
       "ttfb_ms: time to the first body byte");
    t.auth_id = "team a\"x";
    t.auth_id_len = 8;
    ok(text_is(&t, " ::1:0 \"GET /api/users?id=7 HTTP/1.1\" host=example.com status=200 "
                   "in=18446744073709551615 out=585 upstream=127.0.0.1:8081 upstream_ms=0.000 "
                   "total_ms=12345.678 route=api ttfb_ms=250.500 auth_id=team a\\x22x\n"),
       "auth_id: the policy's auth id, escaped, last on the line");
}

static void test_json(void)
{
    struct alog_rec r = base_rec();
    char out[ALOG_LINE_MAX];
    size_t n;

    cJSON *j = json_of(&r, out, &n);
    ok(j != NULL, "JSON line parses with cJSON (%.*s)", (int)(n ? n - 1 : 0), out);
    ok(cJSON_IsObject(j), "JSON line is an object");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "time");
    ok(cJSON_IsString(tm) && strlen(tm->valuestring) == TIME_LEN && time_ok(tm->valuestring),
       "time: ISO string");
    ok(jstr(j, "client", "127.0.0.1:54321"), "client");
    ok(jstr(j, "method", "GET"), "method");
    ok(jstr(j, "target", "/api/users?id=7"), "target");
    ok(jstr(j, "version", "HTTP/1.1"), "version");
    ok(jstr(j, "host", "example.com"), "host");
    ok(jnum(j, "status", 200), "status number");
    ok(jnum(j, "bytes_in", 92) && jnum(j, "bytes_out", 585), "bytes_in, bytes_out");
    ok(jstr(j, "upstream", "127.0.0.1:8081"), "upstream");
    ok(jnum(j, "upstream_ms", 1.858) && jnum(j, "total_ms", 1.898), "upstream_ms, total_ms");
    ok(jstr(j, "route", "api"), "route");
    ok(jnull(j, "ttfb_ms"), "ttfb_ms null when no body byte came");
    ok(jnull(j, "auth_id"), "auth_id null without an authenticated request");
    ok(cJSON_GetArraySize(j) == 15, "15 keys");
    ok(has_bytes(out, n, "\"status\":200,") && has_bytes(out, n, "\"upstream_ms\":1.858,") &&
       has_bytes(out, n, "\"total_ms\":1.898,"), "numbers unquoted, three decimals");
    ok(out[0] == '{' && out[n - 2] == '}', "object from the first byte to the newline");
    cJSON_Delete(j);

    struct alog_rec m = base_rec();
    m.method = NULL;
    m.upstream = NULL;
    m.upstream_ns = 0;
    m.route = NULL;
    j = json_of(&m, out, &n);
    ok(j != NULL, "method NULL: JSON parses");
    ok(jnull(j, "method") && jnull(j, "target") && jnull(j, "version") && jnull(j, "host"),
       "method NULL: method, target, version, host null");
    ok(jnull(j, "upstream") && jnull(j, "upstream_ms") && jnull(j, "route"),
       "absent upstream, upstream_ms, route: null");
    ok(jnum(j, "total_ms", 1.898) && jstr(j, "client", "127.0.0.1:54321"), "other fields still there");
    cJSON_Delete(j);
}

static void test_budgets(void)
{
    char out[ALOG_LINE_MAX];
    char *meth = malloc(4095);
    memset(meth, 'M', 4095);
    struct alog_rec r = base_rec();
    r.method = meth;
    r.method_len = 4095;

    size_t n = alog_format(out, &r, false);
    ok(n > 0 && memchr(out, '\0', n) == NULL, "4095-byte method: a line, no NUL");
    ok(n > 0 && out[n - 1] == '\n' && memchr(out, '\n', n - 1) == NULL,
       "4095-byte method: exactly one '\\n', at the end");
    ok(n <= ALOG_LINE_MAX, "4095-byte method: <= ALOG_LINE_MAX (%zu)", n);
    const char *q = memchr(out, '"', n), *sp = q ? memchr(q, ' ', n - (size_t)(q - out)) : NULL;
    size_t fl = q && sp ? (size_t)(sp - q - 1) : 0;
    char mark[32];
    size_t written = 0;
    if (fl)
        for (const char *p = q + 1; p < sp && *p == 'M'; p++)
            written++;
    int ml = snprintf(mark, sizeof(mark), "...[+%zu]", 4095 - written);
    ok(fl > (size_t)ml && fl <= 64 && memcmp(sp - ml, mark, (size_t)ml) == 0 &&
       written + (size_t)ml == fl,
       "text: method field is M*k + ...[+4095-k], within 64 bytes ('%.*s')", (int)fl, q + 1);
    ok(has_bytes(out, n, " /api/users?id=7 HTTP/1.1\" host=example.com status=200"),
       "the fields after the cut method are whole");

    cJSON *j = json_of(&r, out, &n);
    ok(j != NULL && n <= ALOG_LINE_MAX, "4095-byte method: JSON parses");
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(j, "method");
    size_t sl = cJSON_IsString(mv) ? strlen(mv->valuestring) : 0;
    ok(sl > 0 && sl <= 64 && sl > (size_t)ml && strcmp(mv->valuestring + sl - (size_t)ml, mark) == 0,
       "JSON: method ends with the marker %s", mark);
    ok(jstr(j, "target", "/api/users?id=7"), "JSON: the next field is whole");
    cJSON_Delete(j);

    /* every peer string at its worst: the line stays whole and bounded */
    size_t big = 100000;
    char *hostile = malloc(big);
    for (size_t i = 0; i < big; i++)
        hostile[i] = (char)(i % 3 == 0 ? 0x01 : i % 3 == 1 ? '"' : 0xff);
    char *ip = malloc(200);
    memset(ip, '1', 200);
    char *up = malloc(5001), *rt = malloc(5001);
    memset(up, '\\', 5000);
    up[5000] = '\0';
    memset(rt, '\x7f', 5000);
    rt[5000] = '\0';
    struct alog_rec w = base_rec();
    w.method = hostile;
    w.method_len = 4095;
    w.target = hostile;
    w.target_len = big;
    w.host = hostile;
    w.host_len = big;
    w.upstream = up;
    w.route = rt;
    w.client_ip = ip;
    w.client_ip_len = 200;
    w.bytes_in = w.bytes_out = w.upstream_ns = w.total_ns = UINT64_MAX;
    w.status = 599;
    for (int js = 0; js < 2; js++) {
        n = alog_format(out, &w, js);
        ok(one_line(out, n), "%s: all fields over budget and escaping: one whole line (%zu)",
           js ? "JSON" : "text", n);
        size_t ctl = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f)
                ctl++;
        ok(ctl == 0, "%s: no raw control or high byte (%zu)", js ? "JSON" : "text", ctl);
        if (js) {
            j = n ? cJSON_ParseWithLength(out, n - 1) : NULL;
            ok(j != NULL, "JSON: the worst line parses");
            cJSON_Delete(j);
        } else {
            size_t quotes = 0;
            for (size_t i = 0; i < n; i++)
                quotes += out[i] == '"';
            ok(quotes == 2, "text: exactly the two quotes of the request field (%zu)", quotes);
        }
    }
    free(meth);
    free(hostile);
    free(ip);
    free(up);
    free(rt);
}

static void test_escaping(void)
{
    char out[ALOG_LINE_MAX];
    static const char tgt[] = "/a\"b\r\nc\0d\xff" "e";
    char *t = dupn(tgt, sizeof(tgt) - 1);
    struct alog_rec r = base_rec();
    r.target = t;
    r.target_len = sizeof(tgt) - 1;

    size_t n = alog_format(out, &r, false);
    ok(one_line(out, n), "hostile target: one text line");
    ok(has_bytes(out, n, "\"GET /a\\x22b\\x0D\\x0Ac\\x00d\\xFFe HTTP/1.1\" host=example.com"),
       "text: target escaped exactly (%.*s)", (int)(n ? n - 1 : 0), out);
    const char *q1 = memchr(out, '"', n);
    const char *q2 = q1 ? memchr(q1 + 1, '"', n - (size_t)(q1 + 1 - out)) : NULL;
    bool clean = q1 && q2 && has_bytes(q2, n - (size_t)(q2 - out), "\" host=");
    for (const char *p = q1 ? q1 + 1 : out; clean && p < q2; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            clean = false;
    ok(clean, "text: no raw control byte or quote inside the quoted field");

    cJSON *j = NULL;
    n = alog_format(out, &r, true);
    ok(one_line(out, n), "hostile target: one JSON line");
    ok(has_bytes(out, n, "\"target\":\"/a\\\"b\\u000d\\u000ac\\u0000d\\u00ffe\""),
       "JSON: target escaped exactly");
    j = cJSON_ParseWithLength(out, n - 1);
    ok(j != NULL, "JSON: parses");
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(j, "target");
    /* cJSON stores \u0000 as a NUL, so its C string stops there */
    ok(cJSON_IsString(tv) && strcmp(tv->valuestring, "/a\"b\r\nc") == 0,
       "JSON: target decodes to the bytes sent (up to the NUL)");
    cJSON_Delete(j);
    free(t);

    static const char tgt2[] = "/x\"y\\z\t\x7f\xff";
    t = dupn(tgt2, sizeof(tgt2) - 1);
    r.target = t;
    r.target_len = sizeof(tgt2) - 1;
    static const char hst[] = "h\"o\ns\\t";
    char *h = dupn(hst, sizeof(hst) - 1);
    r.host = h;
    r.host_len = sizeof(hst) - 1;
    r.route = "ro\"ute\n";
    r.upstream = "up\rstream";
    n = alog_format(out, &r, true);
    j = one_line(out, n) ? cJSON_ParseWithLength(out, n - 1) : NULL;
    ok(j != NULL, "JSON with hostile target, host, route, upstream parses");
    ok(jstr(j, "target", "/x\"y\\z\t\x7f\xc3\xbf"), "JSON: target round-trips (0xff as U+00FF)");
    ok(jstr(j, "host", "h\"o\ns\\t") && jstr(j, "route", "ro\"ute\n") &&
       jstr(j, "upstream", "up\rstream"), "JSON: host, route, upstream round-trip");
    cJSON_Delete(j);
    n = alog_format(out, &r, false);
    ok(one_line(out, n) && has_bytes(out, n, " host=h\\x22o\\x0As\\x5Ct status=") &&
       has_bytes(out, n, " upstream=up\\x0Dstream ") && has_bytes(out, n, " route=ro\\x22ute\\x0A ttfb_ms=- auth_id=-\n"),
       "text: host, upstream, route escaped (%.*s)", (int)(n ? n - 1 : 0), out);
    free(t);
    free(h);
}

/* Two records into the same buffer: the second line holds nothing of the first. */
static void test_reuse(void)
{
    char out[ALOG_LINE_MAX];
    char longt[2001];
    memset(longt, 'A', 2000);
    memcpy(longt, "/first-target-", 14);
    longt[2000] = '\0';

    struct alog_rec a = base_rec();
    a.target = longt;
    a.target_len = 2000;
    a.host = "first.example";
    a.host_len = 13;
    a.route = "first-route-with-a-long-name";
    a.upstream = "10.9.8.7:9999";

    struct alog_rec b = base_rec();
    b.target = "/s";
    b.target_len = 2;
    b.host = NULL;
    b.host_len = 0;
    b.route = NULL;
    b.upstream = NULL;
    b.upstream_ns = 0;
    b.status = 404;

    static const char *const first[] = { "AAAA", "first", "10.9.8.7", "9999" };
    for (int js = 0; js < 2; js++) {
        memset(out, 'Z', sizeof(out));
        size_t n1 = alog_format(out, &a, js);
        ok(one_line(out, n1) && n1 > 2000, "%s: first (long) line", js ? "JSON" : "text");
        size_t n2 = alog_format(out, &b, js);
        ok(one_line(out, n2) && n2 < 300, "%s: second (short) line is short (%zu)",
           js ? "JSON" : "text", n2);
        size_t leak = 0;
        for (size_t i = 0; i < sizeof(first) / sizeof(*first); i++)
            leak += has_bytes(out, n2, first[i]);
        ok(leak == 0, "%s: the second line holds nothing of the first (%.*s)", js ? "JSON" : "text",
           (int)(n2 ? n2 - 1 : 0), out);
        if (js) {
            cJSON *j = cJSON_ParseWithLength(out, n2 - 1);
            ok(j && jstr(j, "target", "/s") && jnull(j, "host") && jnull(j, "route") &&
               jnull(j, "upstream") && jnum(j, "status", 404), "JSON: second line's own values");
            cJSON_Delete(j);
        } else {
            ok(n2 > TIME_LEN &&
               sl_eq_tail(out, n2, " 127.0.0.1:54321 \"GET /s HTTP/1.1\" host=- status=404 in=92 "
                                   "out=585 upstream=- upstream_ms=- total_ms=1.898 route=- ttfb_ms=- auth_id=-\n"),
               "text: second line exact");
        }
        /* and the other order: short after long after short */
        size_t n3 = alog_format(out, &a, !js);
        size_t n4 = alog_format(out, &b, js);
        ok(n3 > 2000 && n4 == n2 && !has_bytes(out, n4, "AAAA") && !has_bytes(out, n4, "first"),
           "%s after %s in one buffer: still only its own bytes", js ? "JSON" : "text",
           js ? "text" : "JSON");
    }
}

int main(void)
{
    test_text();
    test_json();
    test_budgets();
    test_escaping();
    test_reuse();
    return tap_done();
}
