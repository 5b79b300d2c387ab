/*
 * metrics.h - the metric model behind GET /metrics and GET /stats.
 *
 * Every metric family is written once, by a producer that sums what the
 * workers publish (stats.h counters, pool buckets, health states) and hands
 * each family to an emitter: its name, type and help, then its samples (a
 * label set and a value, or a histogram's buckets).  Two emitters render
 * what they are handed: Prometheus text (version 0.0.4) and one JSON
 * document.  Both read the same counters through the same producers, so
 * the two answers cannot disagree on what is counted, only on the moment.
 *
 * Adding a family: write a producer (static void x_metrics(struct mx_emit *e,
 * const struct gw_snapshot *s)) in the module that owns the counters or here,
 * and call it from gw_metrics_emit().  Within a family, call mx_value() or
 * mx_hist() once per label set; a family's samples must follow its
 * mx_family() call, before the next family starts.
 *
 * Owns: metrics.c.  May call: stats.h, worker.h (each worker's counters
 * and pool, atomics only), snapshot.h, reload.h, tls.h.
 * Called by: admin.c.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/counter.h"
#include "../pool/pool.h"

struct evbuffer;
struct gw_snapshot;
struct up_target;

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

/* The process started (wall clock): main, once, early. */
void gw_metrics_started(void);
/* Wall clock ms of that start. */
uint64_t gw_metrics_start_ms(void);

/* Every family of sluice's own, in /metrics order. */
void gw_metrics_emit(struct mx_emit *e, const struct gw_snapshot *s);

/* A target's counters summed over the workers (also /status). */
struct gw_target_sum {
    uint64_t idle, inflight, requests, failures, opened, in_use;
    uint64_t closed[POOL_CLOSE_N];
    uint64_t code[5];           /* response heads by status class */
    struct mx_hist resp;        /* request start to response head */
};
void gw_target_sum(const struct up_target *t, struct gw_target_sum *out);

#endif
