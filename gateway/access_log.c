/* access_log.c - the access log line (see access_log.h). */
#include "access_log.h"
#include "../core/log.h"
#include "../core/esc.h"
#include "../core/sbuf.h"

enum {
    AF_TIME, AF_CLIENT, AF_METHOD, AF_TARGET, AF_VERSION, AF_HOST, AF_STATUS,
    AF_IN, AF_OUT, AF_UPSTREAM, AF_UPSTREAM_MS, AF_TOTAL_MS, AF_ROUTE, AF_TTFB_MS, AF_AUTH_ID, AF_N,
};

static const struct alog_field {
    const char *json;       /* key in a JSON line */
    const char *text;       /* what precedes the value in a text line */
    uint16_t max;           /* budget of a string value, escaped (0: not a peer's string) */
} fields[AF_N] = {
    [AF_TIME]        = { "time", "", 0 },
    [AF_CLIENT]      = { "client", " ", 0 },
    [AF_METHOD]      = { "method", " \"", 64 },
    [AF_TARGET]      = { "target", " ", 2048 },
    [AF_VERSION]     = { "version", " ", 0 },
    [AF_HOST]        = { "host", "\" host=", 256 },
    [AF_STATUS]      = { "status", " status=", 0 },
    [AF_IN]          = { "bytes_in", " in=", 0 },
    [AF_OUT]         = { "bytes_out", " out=", 0 },
    [AF_UPSTREAM]    = { "upstream", " upstream=", 300 },
    [AF_UPSTREAM_MS] = { "upstream_ms", " upstream_ms=", 0 },
    [AF_TOTAL_MS]    = { "total_ms", " total_ms=", 0 },
    [AF_ROUTE]       = { "route", " route=", 300 },
    [AF_TTFB_MS]     = { "ttfb_ms", " ttfb_ms=", 0 },
    [AF_AUTH_ID]     = { "auth_id", " auth_id=", 128 },
};

/* The peers' strings above fill at most 64+2048+256+300+300+128 bytes;
 * the rest of a line (keys, numbers, time, address: some 400 bytes as
 * JSON) stays under 896. */
_Static_assert(64 + 2048 + 256 + 300 + 300 + 128 + 896 <= ALOG_LINE_MAX, "access log budgets");

enum vkind { V_NULL, V_STR, V_NUM, V_MS };

struct val {
    enum vkind k;
    const char *s;
    size_t n;
    uint64_t u;
};

static struct val field(const struct alog_rec *r, int id, char *tmp, size_t tmpcap)
{
    struct val v = { V_NULL, NULL, 0, 0 };
    struct sbuf t;

    switch (id) {
    case AF_TIME:
        v.n = gw_time_iso(tmp, tmpcap);
        v.s = tmp;
        break;
    case AF_CLIENT:
        t = sb_init(tmp, tmpcap);
        sb_put(&t, r->client_ip, r->client_ip_len);
        SB_LIT(&t, ":");
        sb_u64(&t, r->client_port);
        v.s = tmp;
        v.n = t.len;
        break;
    case AF_METHOD: v.s = r->method; v.n = r->method_len; break;
    case AF_TARGET: v.s = r->method ? r->target : NULL; v.n = r->target_len; break;
    case AF_VERSION:
        v.s = r->method == NULL ? NULL : r->http10 ? "HTTP/1.0" : "HTTP/1.1";
        v.n = 8;
        break;
    case AF_HOST: v.s = r->method ? r->host : NULL; v.n = r->host_len; break;
    case AF_STATUS: v.k = V_NUM; v.u = (uint64_t)r->status; return v;
    case AF_IN: v.k = V_NUM; v.u = r->bytes_in; return v;
    case AF_OUT: v.k = V_NUM; v.u = r->bytes_out; return v;
    case AF_UPSTREAM: v.s = r->upstream; v.n = r->upstream ? strlen(r->upstream) : 0; break;
    case AF_UPSTREAM_MS: v.k = r->upstream_ns ? V_MS : V_NULL; v.u = r->upstream_ns; return v;
    case AF_TOTAL_MS: v.k = V_MS; v.u = r->total_ns; return v;
    case AF_ROUTE: v.s = r->route; v.n = r->route ? strlen(r->route) : 0; break;
    case AF_TTFB_MS: v.k = r->ttfb_ns ? V_MS : V_NULL; v.u = r->ttfb_ns; return v;
    case AF_AUTH_ID: v.s = r->auth_id; v.n = r->auth_id_len; break;
    }
    v.k = v.s ? V_STR : V_NULL;
    return v;
}

/* Milliseconds with three decimals, from nanoseconds. */
static void put_ms(struct sbuf *s, uint64_t ns)
{
    uint64_t us = ns / 1000;
    char frac[4] = { '.', (char)('0' + us % 1000 / 100), (char)('0' + us % 100 / 10),
                     (char)('0' + us % 10) };

    sb_u64(s, us / 1000);
    sb_put(s, frac, 4);
}

size_t alog_format(char *out, const struct alog_rec *r, bool json)
{
    struct sbuf s = sb_init(out, ALOG_LINE_MAX - 1);
    char tmp[96];

    for (int id = 0; id < AF_N; id++) {
        const struct alog_field *f = &fields[id];
        struct val v = field(r, id, tmp, sizeof(tmp));
        if (json) {
            sb_put(&s, id == 0 ? "{\"" : ",\"", 2);
            sb_str(&s, f->json);
            SB_LIT(&s, "\":");
        } else {
            sb_str(&s, f->text);
        }
        switch (v.k) {
        case V_NULL:
            if (json)
                SB_LIT(&s, "null");
            else
                SB_LIT(&s, "-");
            break;
        case V_NUM:
            sb_u64(&s, v.u);
            break;
        case V_MS:
            put_ms(&s, v.u);
            break;
        case V_STR:
            if (json)
                SB_LIT(&s, "\"");
            esc_put(&s, v.s, v.n, json ? ESC_JSON : ESC_TEXT, f->max);
            if (json)
                SB_LIT(&s, "\"");
            break;
        }
    }
    if (json)
        SB_LIT(&s, "}");
    /* the budgets make this impossible; a line is whole or absent */
    if (s.overflow)
        return 0;
    out[s.len++] = '\n';
    return s.len;
}
