/*
 * core_test.c - core/: the bounded appender (sbuf.h), log-field escaping
 * (esc.c), header name classes (hdr.c) and reason phrases (reason.c).
 *
 * esc_put is checked against a reference escaper written here with
 * snprintf, for every budget from 1 to past the field's escaped length.
 */
#include "tap.h"
#include "../../core/esc.c"
#include "../../core/hdr.c"
#include "../../core/reason.c"

#include <ctype.h>
#include <limits.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static bool sl_eq(const char *p, size_t n, const char *z)
{
    return n == strlen(z) && memcmp(p, z, n) == 0;
}

/* ---- sbuf ---- */

static void test_sbuf(void)
{
    char b[16];
    struct sbuf s;

    memset(b, '#', sizeof(b));
    s = sb_init(b, 8);
    ok(s.len == 0 && s.cap == 8 && !s.overflow && sb_room(&s) == 8, "sb_init");
    SB_LIT(&s, "abcd");
    ok(s.len == 4 && !s.overflow && memcmp(b, "abcd", 4) == 0 && sb_room(&s) == 4, "SB_LIT fits");
    sb_put(&s, "12345", 5);
    ok(s.overflow, "an append over cap sets overflow");
    ok(s.len == 4 && memcmp(b, "abcd####", 8) == 0, "... and writes nothing");
    sb_put(&s, "1234", 4);
    ok(s.len == 8 && memcmp(b, "abcd1234", 8) == 0 && s.overflow,
       "a later append that fits is written; overflow stays set");
    sb_put(&s, "", 0);
    ok(s.len == 8 && b[8] == '#', "empty append at full cap: nothing, no overrun");
    sb_put(&s, "x", 1);
    ok(s.len == 8 && b[8] == '#', "one byte over a full buffer: nothing written");

    memset(b, '#', sizeof(b));
    s = sb_init(b, 5);
    sb_str(&s, "hello");
    ok(!s.overflow && sl_eq(b, s.len, "hello"), "sb_str exactly cap");
    s = sb_init(b, 4);
    memset(b, '#', sizeof(b));
    sb_str(&s, "hello");
    ok(s.overflow && s.len == 0 && b[0] == '#', "sb_str over cap writes nothing");

    /* sb_u64 */
    static const struct { uint64_t v; const char *z; } dec[] = {
        { 0, "0" }, { 1, "1" }, { 9, "9" }, { 10, "10" }, { 1234567890, "1234567890" },
        { UINT64_C(4611686018427387904), "4611686018427387904" },
        { UINT64_MAX, "18446744073709551615" },
    };
    for (size_t i = 0; i < sizeof(dec) / sizeof(*dec); i++) {
        char big[32];
        s = sb_init(big, sizeof(big));
        sb_u64(&s, dec[i].v);
        ok(!s.overflow && sl_eq(big, s.len, dec[i].z), "sb_u64 %s", dec[i].z);
    }
    memset(b, '#', sizeof(b));
    s = sb_init(b, 4);
    SB_LIT(&s, "ab");
    sb_u64(&s, 123);
    ok(s.overflow && s.len == 2 && b[2] == '#' && b[3] == '#', "sb_u64 over cap writes nothing");
    sb_u64(&s, 12);
    ok(s.len == 4 && memcmp(b, "ab12", 4) == 0, "sb_u64 exactly the room");

    /* sb_hex */
    static const struct { uint64_t v; const char *z; } hx[] = {
        { 0, "0" }, { 1, "1" }, { 0xf, "f" }, { 0x10, "10" }, { 0xabc, "abc" }, { 255, "ff" },
        { UINT64_C(0xdeadbeef), "deadbeef" }, { (UINT64_C(1) << 63) - 1, "7fffffffffffffff" },
        { UINT64_MAX, "ffffffffffffffff" },
    };
    for (size_t i = 0; i < sizeof(hx) / sizeof(*hx); i++) {
        char big[32];
        s = sb_init(big, sizeof(big));
        sb_hex(&s, hx[i].v);
        ok(!s.overflow && sl_eq(big, s.len, hx[i].z), "sb_hex %s", hx[i].z);
    }
    memset(b, '#', sizeof(b));
    s = sb_init(b, 2);
    sb_hex(&s, 0x123);
    ok(s.overflow && s.len == 0 && b[0] == '#', "sb_hex over cap writes nothing");

    /* sb_hex64 */
    static const struct { uint64_t v; const char *z; } h64[] = {
        { 0, "0000000000000000" }, { 1, "0000000000000001" }, { 0xabc, "0000000000000abc" },
        { UINT64_C(0x0123456789abcdef), "0123456789abcdef" },
        { UINT64_MAX, "ffffffffffffffff" },
    };
    for (size_t i = 0; i < sizeof(h64) / sizeof(*h64); i++) {
        char big[32];
        s = sb_init(big, sizeof(big));
        sb_hex64(&s, h64[i].v);
        ok(!s.overflow && sl_eq(big, s.len, h64[i].z), "sb_hex64 %s", h64[i].z);
    }
    memset(b, '#', sizeof(b));
    s = sb_init(b, 15);
    sb_hex64(&s, 1);
    ok(s.overflow && s.len == 0 && b[0] == '#', "sb_hex64 into 15 bytes writes nothing");

    /* sb_fmt: the count is not advanced on overflow */
    s = sb_init(b, 8);
    sb_fmt(&s, "%d-%s", 12, "ab");
    ok(!s.overflow && sl_eq(b, s.len, "12-ab"), "sb_fmt fits");
    sb_fmt(&s, "%s", "xyz");
    ok(s.overflow && s.len == 5, "sb_fmt needing the NUL's byte past cap: overflow, len kept");
}

/* ---- esc ---- */

/* Reference escaping of one byte, written independently of esc.c. */
static size_t ref_one(char *o, unsigned char c, enum esc_style st)
{
    if (st == ESC_JSON) {
        if (c == '"' || c == '\\')
            return (size_t)sprintf(o, "\\%c", c);
        if (c < 0x20 || c >= 0x7f)
            return (size_t)sprintf(o, "\\u%04x", c);
        o[0] = (char)c;
        return 1;
    }
    if (c == '\\' || (c == '"' && st == ESC_TEXT) || c < 0x20 || c >= 0x7f)
        return (size_t)sprintf(o, "\\x%02X", c);
    o[0] = (char)c;
    return 1;
}

static size_t ref_esc(char *o, const char *p, size_t n, enum esc_style st)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ref_one(o + w, (unsigned char)p[i], st);
    return w;
}

/* esc_put into a fresh buffer of cap bytes with budget max; *out holds it. */
static size_t esc_into(char *buf, size_t cap, const char *p, size_t n, enum esc_style st,
                       size_t max, bool *ovf)
{
    struct sbuf s = sb_init(buf, cap);
    esc_put(&s, p, n, st, max);
    if (ovf)
        *ovf = s.overflow;
    return s.len;
}

static bool esc_is(const char *p, size_t n, enum esc_style st, const char *want)
{
    char buf[1024];
    bool ovf;
    size_t l = esc_into(buf, sizeof(buf), p, n, st, 0, &ovf);
    if (!sl_eq(buf, l, want)) {
        printf("# got '");
        for (size_t i = 0; i < l; i++)     /* the output may hold any byte */
            putchar(buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?');
        printf("' want '%s'\n", want);
    }
    return !ovf && sl_eq(buf, l, want);
}

#define L(s) s, sizeof(s) - 1

static void test_esc_styles(void)
{
    ok(esc_is(L("plain /path?q=1 ~"), ESC_TEXT, "plain /path?q=1 ~"), "TEXT: printable kept");
    ok(esc_is(L("\""), ESC_TEXT, "\\x22"), "TEXT: \" -> \\x22");
    ok(esc_is(L("\\"), ESC_TEXT, "\\x5C"), "TEXT: \\ -> \\x5C");
    ok(esc_is(L("\0"), ESC_TEXT, "\\x00"), "TEXT: NUL -> \\x00");
    ok(esc_is(L("\r\n"), ESC_TEXT, "\\x0D\\x0A"), "TEXT: CR LF -> \\x0D\\x0A (upper-case)");
    ok(esc_is(L("\x7f"), ESC_TEXT, "\\x7F"), "TEXT: DEL -> \\x7F");
    ok(esc_is(L("\xff"), ESC_TEXT, "\\xFF"), "TEXT: 0xff -> \\xFF");
    ok(esc_is(L("\x80\x1b\t"), ESC_TEXT, "\\x80\\x1B\\x09"), "TEXT: 0x80, ESC, TAB");
    ok(esc_is(L("a\"b\\c\0\r\n\x7f\xff z"), ESC_TEXT,
              "a\\x22b\\x5Cc\\x00\\x0D\\x0A\\x7F\\xFF z"), "TEXT: mixed, exact");

    ok(esc_is(L("plain ~"), ESC_JSON, "plain ~"), "JSON: printable kept");
    ok(esc_is(L("\""), ESC_JSON, "\\\""), "JSON: \" -> \\\"");
    ok(esc_is(L("\\"), ESC_JSON, "\\\\"), "JSON: \\ -> \\\\");
    ok(esc_is(L("\0"), ESC_JSON, "\\u0000"), "JSON: NUL -> \\u0000");
    ok(esc_is(L("\r\n"), ESC_JSON, "\\u000d\\u000a"), "JSON: CR LF -> \\u000d\\u000a");
    ok(esc_is(L("\x7f\xff\x80"), ESC_JSON, "\\u007f\\u00ff\\u0080"), "JSON: DEL, 0xff, 0x80");
    ok(esc_is(L("a\"b\\c\0\r\n\x7f\xff z"), ESC_JSON,
              "a\\\"b\\\\c\\u0000\\u000d\\u000a\\u007f\\u00ff z"), "JSON: mixed, exact");

    ok(esc_is(L("say \"hi\""), ESC_LOG, "say \"hi\""), "LOG: quotes kept");
    ok(esc_is(L("a\r\nb\0\x7f\xff"), ESC_LOG, "a\\x0D\\x0Ab\\x00\\x7F\\xFF"), "LOG: controls escaped");
    ok(esc_is(L("C:\\dir"), ESC_LOG, "C:\\x5Cdir"),
       "LOG: backslash escaped (esc.h: like TEXT but quotes left as they are)");

    /* every byte value, against the reference */
    char all[256], want[2048], got[2048];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    static const enum esc_style sts[] = { ESC_TEXT, ESC_JSON, ESC_LOG };
    static const char *const stn[] = { "TEXT", "JSON", "LOG" };
    for (size_t k = 0; k < 3; k++) {
        size_t wl = ref_esc(want, all, 256, sts[k]);
        size_t gl = esc_into(got, sizeof(got), all, 256, sts[k], 0, NULL);
        ok(gl == wl && memcmp(got, want, wl) == 0, "%s: all 256 byte values as the reference",
           stn[k]);
    }
    ok(esc_is("", 0, ESC_TEXT, "") && esc_is("", 0, ESC_JSON, ""), "empty field: nothing");
}

/* Check one esc_put result against the reference: either the whole field
 * escaped, or the escaped prefix of k input bytes + "...[+" n-k "]". */
static bool cut_ok(const char *got, size_t gl, const char *p, size_t n, enum esc_style st,
                   size_t *written_in, bool *was_cut)
{
    char want[8192], mark[40];
    size_t w = 0;

    *was_cut = false;
    /* a budget too small for any marker: only dots */
    if (n && gl <= 3 && memcmp(got, "...", gl) == 0 && gl < n) {
        *written_in = 0;
        *was_cut = true;
        return true;
    }
    for (size_t k = 0; k <= n; k++) {
        /* w is the escaped length of p[0, k) */
        if (k == n && gl == w && memcmp(got, want, w) == 0) {
            *written_in = n;
            return true;
        }
        int ml = snprintf(mark, sizeof(mark), "...[+%zu]", n - k);
        if (k < n && gl == w + (size_t)ml && memcmp(got, want, w) == 0 &&
            memcmp(got + w, mark, (size_t)ml) == 0) {
            *written_in = k;
            *was_cut = true;
            return true;
        }
        if (k < n)
            w += ref_one(want + w, (unsigned char)p[k], st);
    }
    return false;
}

static void test_esc_budget(void)
{
    char buf[8192];
    bool ovf, cut;
    size_t in;

    /* a long plain field: cut with the marker */
    char a100[100];
    memset(a100, 'a', sizeof(a100));
    size_t l = esc_into(buf, sizeof(buf), a100, 100, ESC_TEXT, 40, &ovf);
    ok(l <= 40 && !ovf, "100 bytes, budget 40: within the budget (%zu)", l);
    ok(cut_ok(buf, l, a100, 100, ESC_TEXT, &in, &cut) && cut,
       "100 bytes, budget 40: prefix + ...[+N] ('%.*s')", (int)l, buf);
    /* the marker for 100 bytes is at most "...[+100]" (9): 31 bytes fit before it */
    ok(sl_eq(buf, l, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...[+69]"), "exact: 31 bytes then ...[+69] ('%.*s')",
       (int)l, buf);

    /* fits exactly: not cut */
    l = esc_into(buf, sizeof(buf), L("abc\""), ESC_TEXT, 7, &ovf);
    ok(sl_eq(buf, l, "abc\\x22") && !ovf, "escaped length == budget: not cut");
    l = esc_into(buf, sizeof(buf), L("abc\""), ESC_JSON, 5, &ovf);
    ok(sl_eq(buf, l, "abc\\\"") && !ovf, "JSON escaped length == budget: not cut");
    memset(a100, 'b', sizeof(a100));
    l = esc_into(buf, sizeof(buf), a100, 100, ESC_TEXT, 100, &ovf);
    ok(l == 100 && memcmp(buf, a100, 100) == 0, "100 plain bytes, budget 100: all, no marker");
    l = esc_into(buf, sizeof(buf), a100, 100, ESC_TEXT, 99, &ovf);
    ok(l <= 99 && cut_ok(buf, l, a100, 100, ESC_TEXT, &in, &cut) && cut,
       "100 plain bytes, budget 99: cut");
    /* the sbuf's room is the budget when it is smaller */
    l = esc_into(buf, 50, a100, 100, ESC_TEXT, 0, &ovf);
    ok(l <= 50 && !ovf && cut_ok(buf, l, a100, 100, ESC_TEXT, &in, &cut) && cut,
       "no budget, room 50: cut within the room");
    l = esc_into(buf, 50, a100, 100, ESC_TEXT, 4000, &ovf);
    ok(l <= 50 && !ovf && cut_ok(buf, l, a100, 100, ESC_TEXT, &in, &cut) && cut,
       "budget 4000 over room 50: cut within the room");

    /* every budget, several inputs, each style: reference shape, within budget */
    static char esc1[64], mixed[300];
    memset(esc1, 0x01, sizeof(esc1));       /* every byte an escape */
    for (size_t i = 0; i < sizeof(mixed); i++)
        mixed[i] = "ab\"\\\r\n\0\xff xyz"[i % 13];
    struct { const char *p; size_t n; const char *name; } ins[] = {
        { a100, 100, "plain" }, { esc1, sizeof(esc1), "all escapes" },
        { mixed, sizeof(mixed), "mixed" },
    };
    static const enum esc_style sts[] = { ESC_TEXT, ESC_JSON, ESC_LOG };
    static const char *const stn[] = { "TEXT", "JSON", "LOG" };
    for (size_t k = 0; k < 3; k++) {
        for (size_t j = 0; j < sizeof(ins) / sizeof(*ins); j++) {
            char full[8192];
            size_t fl = ref_esc(full, ins[j].p, ins[j].n, sts[k]);
            size_t shape_bad = 0, over_big = 0, over_small = 0, cut_wrong = 0, first_over = 0;
            for (size_t max = 1; max <= fl + 10; max++) {
                l = esc_into(buf, sizeof(buf), ins[j].p, ins[j].n, sts[k], max, &ovf);
                if (!cut_ok(buf, l, ins[j].p, ins[j].n, sts[k], &in, &cut) || ovf)
                    shape_bad++;
                if (l > max) {
                    if (max >= ESC_MARK_MAX)
                        over_big++;
                    else if (!over_small++)
                        first_over = max;
                }
                if (cut != (max < fl))
                    cut_wrong++;
            }
            ok(shape_bad == 0, "%s %s: every budget gives whole escapes + exact ...[+N] (%zu bad)",
               stn[k], ins[j].name, shape_bad);
            ok(cut_wrong == 0, "%s %s: cut exactly when the escaped field is over budget (%zu bad)",
               stn[k], ins[j].name, cut_wrong);
            ok(over_big == 0, "%s %s: budgets >= ESC_MARK_MAX never exceeded (%zu over)", stn[k],
               ins[j].name, over_big);
            ok(over_small == 0,
               "%s %s: budgets 1..%d never exceeded either (%zu over, first at budget %zu)",
               stn[k], ins[j].name, ESC_MARK_MAX - 1, over_small, first_over);
        }
    }

    /* an escape is never split: the budget lands inside one escape (the
     * marker for 64 bytes reserves 8) */
    l = esc_into(buf, sizeof(buf), esc1, sizeof(esc1), ESC_TEXT, 8 + 4 + 3, &ovf);
    ok(sl_eq(buf, l, "\\x01...[+63]"), "TEXT: 7 bytes left before the marker: one whole \\x01 ('%.*s')",
       (int)l, buf);
    l = esc_into(buf, sizeof(buf), esc1, sizeof(esc1), ESC_JSON, 8 + 6 + 5, &ovf);
    ok(sl_eq(buf, l, "\\u0001...[+63]"), "JSON: 11 bytes left before the marker: one whole \\u0001 ('%.*s')",
       (int)l, buf);
    /* budgets too small for any marker: dots only, never over */
    l = esc_into(buf, sizeof(buf), a100, 100, ESC_TEXT, 2, &ovf);
    ok(sl_eq(buf, l, ".."), "budget 2: '..' ('%.*s')", (int)l, buf);
    l = esc_into(buf, sizeof(buf), a100, 100, ESC_TEXT, 8, &ovf);
    ok(sl_eq(buf, l, "..."), "budget 8 < '...[+100]': '...' ('%.*s')", (int)l, buf);

    /* a huge N: the longest marker fits ESC_MARK_MAX */
    ok(strlen("...[+18446744073709551615]") == ESC_MARK_MAX, "ESC_MARK_MAX is the longest marker");
}

/* ---- hdr ---- */

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    memcpy(p, s, n);
    return p;
}

static void casevariants(const char *name, char out[3][64])
{
    size_t n = strlen(name);
    for (size_t i = 0; i <= n; i++) {
        char c = name[i];
        out[0][i] = (char)((c >= 'A' && c <= 'Z') ? c | 0x20 : c);
        out[1][i] = (char)((c >= 'a' && c <= 'z') ? c & ~0x20 : c);
        out[2][i] = (char)((i & 1) ? out[1][i] : out[0][i]);
    }
}

static void test_hdr(void)
{
    static const struct { const char *name; enum hdr_class c; bool managed; } tab[] = {
        { "te", HDR_HOP, true },
        { "host", HDR_HOST, true },
        { "expect", HDR_EXPECT, true },
        { "upgrade", HDR_UPGRADE, true },
        { "trailer", HDR_HOP, true },
        { "connection", HDR_CONNECTION, true },
        { "keep-alive", HDR_HOP, true },
        { "x-request-id", HDR_XRID, false },
        { "x-auth-id", HDR_XAUTHID, false },
        { "content-length", HDR_FRAMING, true },
        { "http2-settings", HDR_HOP, true },
        { "x-forwarded-for", HDR_XFF, false },
        { "proxy-connection", HDR_HOP, true },
        { "x-forwarded-host", HDR_XFHOST, false },
        { "x-forwarded-proto", HDR_XFPROTO, false },
        { "transfer-encoding", HDR_FRAMING, true },
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(*tab); i++) {
        char v[3][64];
        casevariants(tab[i].name, v);
        size_t bad_c = 0, bad_m = 0, n = strlen(tab[i].name);
        for (int k = 0; k < 3; k++) {
            char *p = dupn(v[k], n);        /* no NUL: an over-read trips ASan */
            if (hdr_class(p, n) != tab[i].c)
                bad_c++;
            if (hdr_managed(p, n) != tab[i].managed)
                bad_m++;
            free(p);
        }
        ok(bad_c == 0, "hdr_class(%s) in lower, UPPER, MiXeD case", tab[i].name);
        ok(bad_m == 0, "hdr_managed(%s) == %s in any case", tab[i].name,
           tab[i].managed ? "true" : "false");
    }

    static const char *const near[] = {
        "content-lengthx", "hos", "hostt", "ost", "t", "tes", "e", "content-lengt",
        "content_length", "content-lengtz", "transfer-encodin", "transfer-encodingg",
        "x-forwarded-fo", "x-forwarded-fox", "x-forwarded-protocol", "x-request-i", "x-request-idd",
        "x-request_id", "x-auth-i", "x-auth-idd", "x_auth-id", "connectio", "connections", "keep-aliv", "keepalive", "upgrad", "upgrades",
        "expec", "expects", "trailers", "proxy-connectio", "http2-setting", "http2_settings",
        "content-type", "cache-control", "x-real-ip", "forwarded", "",
        "content\rlength",      /* '\r' | 0x20 == '-': only letters fold */
        "content\x8dlength", "hos\x14", "\x14\x0f\x13\x14",
    };
    size_t bad = 0;
    for (size_t i = 0; i < sizeof(near) / sizeof(*near); i++) {
        size_t n = strlen(near[i]);
        char *p = dupn(near[i], n);
        bool okk = hdr_class(p, n) == HDR_OTHER && !hdr_managed(p, n);
        if (!okk) {
            bad++;
            printf("# near-miss '%s' classed %d\n", near[i], hdr_class(p, n));
        }
        free(p);
        ok(okk, "near-miss \"%s\" is HDR_OTHER, not managed", near[i]);
    }
    /* a prefix of a real name at a shorter length is not that name */
    ok(hdr_class("content-length", 4) == HDR_OTHER && hdr_class("hostname", 4) == HDR_HOST,
       "only len bytes are read: \"cont\" is other, \"host\" of hostname is host");
}

/* ---- reason phrases ---- */

static void test_reason(void)
{
    /* what the gateway answers with itself (proxy.c, admin.c: errors,
     * redirects, 101/100) and what sluice-echo's /status/NNN used to name */
    static const struct { int code; const char *phrase; } known[] = {
        { 100, "Continue" }, { 101, "Switching Protocols" },
        { 200, "OK" }, { 201, "Created" }, { 202, "Accepted" }, { 204, "No Content" },
        { 206, "Partial Content" },
        { 301, "Moved Permanently" }, { 302, "Found" }, { 303, "See Other" },
        { 304, "Not Modified" }, { 307, "Temporary Redirect" }, { 308, "Permanent Redirect" },
        { 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
        { 404, "Not Found" }, { 405, "Method Not Allowed" }, { 408, "Request Timeout" },
        { 411, "Length Required" }, { 413, "Content Too Large" }, { 414, "URI Too Long" },
        { 417, "Expectation Failed" }, { 421, "Misdirected Request" },
        { 426, "Upgrade Required" }, { 429, "Too Many Requests" },
        { 431, "Request Header Fields Too Large" },
        { 500, "Internal Server Error" }, { 501, "Not Implemented" }, { 502, "Bad Gateway" },
        { 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
        { 505, "HTTP Version Not Supported" },
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
        ok(strcmp(http_reason(known[i].code), known[i].phrase) == 0, "http_reason(%d) = %s (have \"%s\")",
           known[i].code, known[i].phrase, http_reason(known[i].code));

    /* codes without a phrase: "", never NULL */
    static const int unknown[] = { INT_MIN, -200, -1, 0, 1, 99, 102, 103, 199, 299, 418, 451, 499,
                                   599, 600, 2000, 20000, INT_MAX };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(*unknown); i++)
        ok(http_reason(unknown[i]) != NULL && http_reason(unknown[i])[0] == '\0', "http_reason(%d) = \"\"",
           unknown[i]);

    /* every phrase fits a status line: reason-phrase = *( HTAB / SP /
     * VCHAR / obs-text ), and ours are words: a capital first, letters,
     * single spaces and hyphens, no space at either end */
    int named = 0, bad = 0, dup = 0;
    for (int code = 100; code < 600; code++) {
        const char *r = http_reason(code);
        size_t n = strlen(r);
        if (n == 0)
            continue;
        named++;
        bool good = n < 64 && isupper((unsigned char)r[0]) && r[n - 1] != ' ';
        for (size_t j = 0; j < n; j++)
            good &= isalpha((unsigned char)r[j]) || r[j] == '-' ||
                    (r[j] == ' ' && r[j + 1] != ' ');
        if (!good) {
            bad++;
            ok(0, "http_reason(%d) is a clean phrase: \"%s\"", code, r);
        }
        for (int k = 100; k < code; k++)
            dup += strcmp(http_reason(k), r) == 0;
    }
    ok(bad == 0, "every phrase is clean words");
    ok(dup == 0, "no two codes share a phrase");
    ok(named == (int)(sizeof(known) / sizeof(*known)), "the table names exactly the codes above (%d)", named);
}

int main(void)
{
    test_sbuf();
    test_esc_styles();
    test_esc_budget();
    test_hdr();
    test_reason();
    return tap_done();
}
