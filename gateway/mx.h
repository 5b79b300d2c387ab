/*
 * mx.h - the metric model's emitter and its two renderers (metrics.h says
 * how families are produced; this is what a family is handed to).
 *
 * A producer starts a family with mx_family(), then writes its samples
 * (mx_value() per label set, or mx_hist() per series of a histogram) before
 * the next family starts.  The Prometheus renderer writes text format
 * 0.0.4; the JSON renderer one document (below).  Both only append to an
 * evbuffer: no state outside the renderer, nothing shared between threads.
 *
 * Owns: mx.c.  May call: libevent's evbuffer, core/counter.h.
 * Called by: metrics.c and every producer of families, admin.c.
 */
#ifndef SLUICE_MX_H
#define SLUICE_MX_H

#include <stddef.h>
#include <stdint.h>

#include "../core/counter.h"

struct evbuffer;

struct mx_label {
    const char *name;           /* [a-zA-Z_][a-zA-Z0-9_]* */
    const char *value;          /* any bytes but NUL; escaped by the renderer */
};

/* A histogram's counts, summed over workers: per bucket (not cumulative,
 * the last one counts +Inf), and the sum of observations in ns. */
struct mx_hist {
    uint64_t b[GW_HIST_N + 1];
    uint64_t sum_ns;
};

/* An emitter: what a renderer does with each call.  Producers call the
 * mx_*() wrappers below, never these directly. */
struct mx_emit {
    void (*family)(struct mx_emit *e, const char *name, const char *type, const char *help);
    void (*value)(struct mx_emit *e, const struct mx_label *l, size_t nl, uint64_t v);
    void (*hist)(struct mx_emit *e, const struct mx_label *l, size_t nl, const struct mx_hist *h);
};

/* A family starts: type is "counter", "gauge" or "histogram". */
static inline void mx_family(struct mx_emit *e, const char *name, const char *type, const char *help)
{
    e->family(e, name, type, help);
}

/* One sample of a counter or gauge family (nl == 0: no labels). */
static inline void mx_value(struct mx_emit *e, const struct mx_label *l, size_t nl, uint64_t v)
{
    e->value(e, l, nl, v);
}

/* One series of a histogram family. */
static inline void mx_hist(struct mx_emit *e, const struct mx_label *l, size_t nl, const struct mx_hist *h)
{
    e->hist(e, l, nl, h);
}

/* A family of one unlabelled sample. */
void mx_scalar(struct mx_emit *e, const char *name, const char *type, const char *help, uint64_t v);

/* Add a worker's histogram into a sum (relaxed loads). */
void mx_hist_add(struct mx_hist *dst, const struct gw_hist *src);
uint64_t mx_hist_count(const struct mx_hist *h);

/* The Prometheus text renderer: appends to out. */
struct mx_prom {
    struct mx_emit e;
    struct evbuffer *out;
    const char *name;           /* the family being written */
};
void mx_prom_init(struct mx_prom *p, struct evbuffer *out);

/* The JSON renderer: one object
 *   {"families":[{"name":..,"type":..,"help":..,["le":[bounds..],]
 *                 "samples":[{"labels":{..},"value":N} |
 *                            {"labels":{..},"buckets":[cumulative..,+Inf],"sum":S,"count":N}]}..]}
 * appended to out: mx_json_init opens it, mx_json_end closes it (extra,
 * when not NULL, is written as more members of the object after families,
 * e.g. "\"version\":3"). */
struct mx_json {
    struct mx_emit e;
    struct evbuffer *out;
    int nfamilies;
    int nsamples;
};
void mx_json_init(struct mx_json *j, struct evbuffer *out);
void mx_json_end(struct mx_json *j, const char *extra);
/* s as the inside of a JSON string: ", \ and controls escaped, valid UTF-8
 * kept, any other byte as \ufffd. */
void mx_json_str(struct evbuffer *out, const char *s);

#endif
