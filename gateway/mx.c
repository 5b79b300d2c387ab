/*
 * mx.c - the metric model's renderers (mx.h): Prometheus text and JSON.
 */
#include "mx.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- the model's helpers ---- */

void mx_scalar(struct mx_emit *e, const char *name, const char *type, const char *help, uint64_t v)
{
    mx_family(e, name, type, help);
    mx_value(e, NULL, 0, v);
}

void mx_hist_add(struct mx_hist *dst, const struct gw_hist *src)
{
    for (int i = 0; i <= GW_HIST_N; i++)
        dst->b[i] += gw_cnt_get(&src->b[i]);
    dst->sum_ns += gw_cnt_get(&src->sum_ns);
}

uint64_t mx_hist_count(const struct mx_hist *h)
{
    uint64_t n = 0;

    for (int i = 0; i <= GW_HIST_N; i++)
        n += h->b[i];
    return n;
}

/* ---- Prometheus text ---- */

static void prom_label_value(struct evbuffer *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(b, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, v, 1);
    }
}

/* name{a="x",b="y"[,le="..."]: the closing brace is the caller's. */
static void prom_series(struct evbuffer *b, const char *name, const char *suffix,
                        const struct mx_label *l, size_t nl, const char *le)
{
    evbuffer_add_printf(b, "%s%s", name, suffix);
    if (nl == 0 && le == NULL)
        return;
    evbuffer_add(b, "{", 1);
    for (size_t i = 0; i < nl; i++) {
        evbuffer_add_printf(b, "%s%s=\"", i ? "," : "", l[i].name);
        prom_label_value(b, l[i].value);
        evbuffer_add(b, "\"", 1);
    }
    if (le)
        evbuffer_add_printf(b, "%sle=\"%s\"", nl ? "," : "", le);
    evbuffer_add(b, "}", 1);
}

static void prom_family(struct mx_emit *e, const char *name, const char *type, const char *help)
{
    struct mx_prom *p = (struct mx_prom *)e;

    p->name = name;
    evbuffer_add_printf(p->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_value(struct mx_emit *e, const struct mx_label *l, size_t nl, uint64_t v)
{
    struct mx_prom *p = (struct mx_prom *)e;

    prom_series(p->out, p->name, "", l, nl, NULL);
    evbuffer_add_printf(p->out, " %llu\n", (unsigned long long)v);
}

static void prom_hist(struct mx_emit *e, const struct mx_label *l, size_t nl, const struct mx_hist *h)
{
    struct mx_prom *p = (struct mx_prom *)e;
    uint64_t cum = 0;
    char le[32];

    for (int i = 0; i <= GW_HIST_N; i++) {
        cum += h->b[i];
        if (i < GW_HIST_N)
            snprintf(le, sizeof(le), "%g", gw_hist_le[i]);
        prom_series(p->out, p->name, "_bucket", l, nl, i < GW_HIST_N ? le : "+Inf");
        evbuffer_add_printf(p->out, " %llu\n", (unsigned long long)cum);
    }
    prom_series(p->out, p->name, "_sum", l, nl, NULL);
    evbuffer_add_printf(p->out, " %.9f\n", (double)h->sum_ns / 1e9);
    prom_series(p->out, p->name, "_count", l, nl, NULL);
    evbuffer_add_printf(p->out, " %llu\n", (unsigned long long)cum);
}

void mx_prom_init(struct mx_prom *p, struct evbuffer *out)
{
    memset(p, 0, sizeof(*p));
    p->e.family = prom_family;
    p->e.value = prom_value;
    p->e.hist = prom_hist;
    p->out = out;
}

/* ---- JSON ---- */

/* The length of the valid UTF-8 sequence at s (1..4), or 0 when s does
 * not start one (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];

    if (c >= 0xC2 && c <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

void mx_json_str(struct evbuffer *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            evbuffer_add(out, run, (size_t)(p - run));
        if (*p == '\0')
            break;
        if (*p == '"' || *p == '\\') {
            evbuffer_add_printf(out, "\\%c", *p);
            p++;
        } else if (*p < 0x20) {
            evbuffer_add_printf(out, "\\u%04x", *p);
            p++;
        } else {
            size_t n = utf8_len(p);     /* a NUL stops the checks on the bytes it needs */
            if (n) {
                evbuffer_add(out, p, n);
                p += n;
            } else {
                evbuffer_add(out, "\\ufffd", 6);
                p++;
            }
        }
    }
}

/* Close the family being written, if any. */
static void json_close_family(struct mx_json *j)
{
    if (j->nfamilies)
        evbuffer_add(j->out, "]}", 2);
}

static void json_family(struct mx_emit *e, const char *name, const char *type, const char *help)
{
    struct mx_json *j = (struct mx_json *)e;

    json_close_family(j);
    evbuffer_add_printf(j->out, "%s{\"name\":\"", j->nfamilies ? "," : "");
    mx_json_str(j->out, name);
    evbuffer_add_printf(j->out, "\",\"type\":\"%s\",\"help\":\"", type);
    mx_json_str(j->out, help);
    evbuffer_add(j->out, "\",", 2);
    if (strcmp(type, "histogram") == 0) {
        evbuffer_add(j->out, "\"le\":[", 6);
        for (int i = 0; i < GW_HIST_N; i++)
            evbuffer_add_printf(j->out, "%s%g", i ? "," : "", gw_hist_le[i]);
        evbuffer_add(j->out, ",\"+Inf\"],", 9);
    }
    evbuffer_add(j->out, "\"samples\":[", 11);
    j->nfamilies++;
    j->nsamples = 0;
}

static void json_labels(struct mx_json *j, const struct mx_label *l, size_t nl)
{
    evbuffer_add_printf(j->out, "%s{\"labels\":{", j->nsamples++ ? "," : "");
    for (size_t i = 0; i < nl; i++) {
        evbuffer_add_printf(j->out, "%s\"%s\":\"", i ? "," : "", l[i].name);
        mx_json_str(j->out, l[i].value);
        evbuffer_add(j->out, "\"", 1);
    }
    evbuffer_add(j->out, "},", 2);
}

static void json_value(struct mx_emit *e, const struct mx_label *l, size_t nl, uint64_t v)
{
    struct mx_json *j = (struct mx_json *)e;

    json_labels(j, l, nl);
    evbuffer_add_printf(j->out, "\"value\":%llu}", (unsigned long long)v);
}

static void json_hist(struct mx_emit *e, const struct mx_label *l, size_t nl, const struct mx_hist *h)
{
    struct mx_json *j = (struct mx_json *)e;
    uint64_t cum = 0;

    json_labels(j, l, nl);
    evbuffer_add(j->out, "\"buckets\":[", 11);
    for (int i = 0; i <= GW_HIST_N; i++) {
        cum += h->b[i];
        evbuffer_add_printf(j->out, "%s%llu", i ? "," : "", (unsigned long long)cum);
    }
    evbuffer_add_printf(j->out, "],\"sum\":%.9f,\"count\":%llu}", (double)h->sum_ns / 1e9,
                        (unsigned long long)cum);
}

void mx_json_init(struct mx_json *j, struct evbuffer *out)
{
    memset(j, 0, sizeof(*j));
    j->e.family = json_family;
    j->e.value = json_value;
    j->e.hist = json_hist;
    j->out = out;
    evbuffer_add(out, "{\"families\":[", 13);
}

void mx_json_end(struct mx_json *j, const char *extra)
{
    json_close_family(j);
    evbuffer_add_printf(j->out, "]%s%s}\n", extra ? "," : "", extra ? extra : "");
}

