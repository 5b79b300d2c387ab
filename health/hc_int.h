/*
 * hc_int.h - (health, private) what prober.c asks of health.c.
 */
#ifndef SLUICE_HC_INT_H
#define SLUICE_HC_INT_H

#include "health.h"

/* One probe to send: a copy, so the prober needs no lock while it runs. */
struct hc_probe_req {
    struct hc_target *t;
    struct sockaddr_storage sa;
    socklen_t salen;
    struct hc_check check;
    char host[280];
    char sni[256];
    SSL_CTX *tls;               /* a reference the prober drops; NULL = plain */
    bool verify;
};

/* Up to max probes due at now_ms (marked in flight, next one scheduled with
 * rnd() as jitter).  Returns how many were written to out. */
size_t hc_due(uint64_t now_ms, struct hc_probe_req *out, size_t max, uint32_t (*rnd)(void));

#endif
