/*
 * reason.h - the reason phrase of an HTTP status code (RFC 9110 15).
 *
 * One table for every program that writes a status line: the gateway's own
 * responses and the forwarded heads that came without a phrase (gateway/),
 * the admin API, and the test backend (echo/).
 */
#ifndef SLUICE_CORE_REASON_H
#define SLUICE_CORE_REASON_H

/* "OK", "Not Found", ...; "" for a code the table does not know (an empty
 * phrase is a valid status line: "HTTP/1.1 299 "). */
const char *http_reason(int status);

#endif
