/*
 * access_log.h - one request's access log line, text or JSON.
 *
 * One table of fields drives both formats (README "Running it"): each
 * field has its JSON key and what precedes it in a text line.  Every
 * string a peer chose is escaped (core/esc.h) and cut at its own budget
 * with a visible marker, so a line is bounded, holds exactly this
 * request's bytes, and never breaks its quoting.
 */
#ifndef SLUICE_ACCESS_LOG_H
#define SLUICE_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a line says; a NULL string is absent (text "-", JSON null). */
struct alog_rec {
    const char *client_ip;
    size_t client_ip_len;
    uint16_t client_port;
    const char *method;         /* NULL: no request line was parsed */
    size_t method_len;
    const char *target;
    size_t target_len;
    bool http10;
    const char *host;
    size_t host_len;
    int status;
    uint64_t bytes_in, bytes_out;
    const char *upstream;       /* NUL-terminated, or NULL */
    uint64_t upstream_ns;       /* until the response head; 0 = none */
    uint64_t ttfb_ns;           /* until the response's first body byte (or bodiless head); 0 = none */
    uint64_t total_ns;
    const char *route;          /* NUL-terminated, or NULL */
    const char *auth_id;        /* the policy's auth id (auth_id_len bytes), or NULL */
    size_t auth_id_len;
};

/* The longest line alog_format() writes (the budgets of its fields). */
#define ALOG_LINE_MAX 4096

/* Format r as one line ending in '\n' into out (ALOG_LINE_MAX bytes);
 * returns its length. */
size_t alog_format(char *out, const struct alog_rec *r, bool json);

#endif
