/*
 * stats.h - counters kept per worker, summed by the admin thread on scrape.
 *
 * Each counter is written by exactly one worker, so an increment is a
 * relaxed load and store (a plain add on x86; no lock prefix, no shared
 * cache line); the admin thread reads them with relaxed loads.  Per-route and
 * per-upstream entries are keyed by name, live as long as the worker, and
 * are published on append-only lists, so a reload keeps their counts and a
 * reader never sees a half-built entry.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/counter.h"
#include "../policy/policy.h"

struct gw_route_stats {
    struct gw_route_stats *_Atomic next;
    _Atomic uint64_t code[5];           /* 1xx .. 5xx */
    struct gw_hist ttfb;                /* request start to the response's first body byte */
    struct gw_hist stream_duration;     /* of streams (SSE, NDJSON): head to end */
    _Atomic uint64_t streams_open;      /* gauge (the owning worker adds and subtracts) */
    _Atomic uint64_t stream_bytes;      /* body bytes of streams that ended */
    _Atomic uint64_t policy[POL_NCHECKS][POL_NRESULTS];    /* decisions by check and result */
    char name[];
};

struct gw_ups_stats {
    struct gw_ups_stats *_Atomic next;
    struct gw_hist resp;                /* request start to response header */
    _Atomic uint64_t retries;           /* attempts on another target after a failure */
    char name[];
};

/*
 * How a transaction ended, or a client connection between transactions
 * (gw_txn_end): counted once each in sluice_closes_total{reason}.  A
 * transaction that failed before it answered (a 502 of a connect failure)
 * is counted under the failure, not under done.
 */
enum gw_end {
    GW_END_DONE = 0,            /* the response went out whole (local answers too) */
    GW_END_CLIENT_CLOSED,       /* the client left (EOF, reset, write error) mid-request */
    GW_END_CLIENT_TIMEOUT,      /* header section or request body too slow */
    GW_END_CLIENT_PARSE,        /* malformed request head or chunked body */
    GW_END_CLIENT_TLS,          /* TLS handshake failed, or plain HTTP on a TLS port */
    GW_END_IDLE_CLOSED,         /* the client closed between requests */
    GW_END_IDLE_TIMEOUT,        /* keep-alive idle (or first request) timeout */
    GW_END_UP_CONNECT,          /* no connection to any target (refused, unreachable) */
    GW_END_UP_CONNECT_TIMEOUT,  /* connect or upstream TLS handshake timed out */
    GW_END_UP_TLS,              /* upstream TLS handshake refused */
    GW_END_UP_HEADER_TIMEOUT,   /* no response header within response_header_ms */
    GW_END_UP_IDLE_TIMEOUT,     /* silence mid-response longer than idle_ms */
    GW_END_UP_TOTAL_TIMEOUT,    /* the response outlasted its route's timeouts.total_ms */
    GW_END_UP_RESET,            /* the upstream closed or reset before the response ended */
    GW_END_UP_PARSE,            /* malformed or unforwardable response */
    GW_END_TUNNEL,              /* an upgraded connection (WebSocket) ended */
    GW_END_DRAIN,               /* closed idle by a drain */
    GW_END_SHUTDOWN,            /* closed by the worker stopping */
    GW_END_INTERNAL,            /* out of descriptors, TLS setup failure */
    GW_END_QUEUE_FULL,          /* the target was at max_connections and its queue full */
    GW_END_QUEUE_TIMEOUT,       /* waited for a connection longer than queue_timeout_ms */
    GW_END__N
};

/* The reason's label in /metrics and the logs ("done", "client_closed" ...). */
extern const char *const gw_end_names[GW_END__N];

/* A client that left while its request was with an upstream, by when
 * (sluice_cancellations_total{phase}); the upstream connection is closed. */
enum gw_cancel {
    GW_CANCEL_REQUEST_BODY = 0,     /* while its request body was still arriving */
    GW_CANCEL_WAITING,              /* before the response head */
    GW_CANCEL_STREAMING,            /* while the response body was flowing */
    GW_CANCEL__N
};
extern const char *const gw_cancel_names[GW_CANCEL__N];

struct gw_stats {
    _Atomic uint64_t bytes_in, bytes_out, pool_hits, pool_misses;
    _Atomic uint64_t client_conns, upstream_conns;     /* gauges */
    /* body bytes moved between sockets by splice(2), and through a buffer */
    _Atomic uint64_t body_splice, body_copy;
    /* TLS handshakes: [0] client side (listeners), [1] upstream side;
     * by result full / resumed / failed */
    _Atomic uint64_t tls_hs[2][3];
    _Atomic uint64_t ktls_on, ktls_fallback;   /* listener conns with ktls requested */
    struct gw_hist req_duration, connect_time;
    _Atomic uint64_t closes[GW_END__N];        /* by enum gw_end */
    _Atomic uint64_t cancels[GW_CANCEL__N];    /* by enum gw_cancel */
    _Atomic uint64_t sse_heartbeats;
    struct gw_route_stats *_Atomic routes;
    struct gw_ups_stats *_Atomic ups;
    /* worker-private name indexes over the two lists: a reload with 10,000
     * routes maps them in linear time on the worker thread */
    struct gw_route_stats **ridx;
    size_t rcap, rn;
    struct gw_ups_stats **uidx;
    size_t ucap, un;
};

/* Find or create (worker thread only). */
struct gw_route_stats *gw_stats_route(struct gw_stats *st, const char *name);
struct gw_ups_stats *gw_stats_ups(struct gw_stats *st, const char *name);
void gw_stats_free(struct gw_stats *st);

#endif
