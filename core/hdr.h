/*
 * hdr.h - what a header name means to a proxy (RFC 9110 7.6.1, 8.6).
 *
 * The gateway's head builders copy a header only when its class says so,
 * and the route config refuses to edit one that sluice writes itself, so
 * both read one table.
 */
#ifndef SLUICE_CORE_HDR_H
#define SLUICE_CORE_HDR_H

#include <stdbool.h>
#include <stddef.h>

enum hdr_class {
    HDR_OTHER = 0,
    HDR_HOST,
    HDR_CONNECTION,
    HDR_HOP,            /* Keep-Alive, Proxy-Connection, TE, Trailer, HTTP2-Settings */
    HDR_UPGRADE,
    HDR_EXPECT,
    HDR_XFF,            /* X-Forwarded-For */
    HDR_XFPROTO,        /* X-Forwarded-Proto */
    HDR_XFHOST,         /* X-Forwarded-Host */
    HDR_XRID,           /* X-Request-Id */
    HDR_FRAMING,        /* Content-Length, Transfer-Encoding */
    HDR_XAUTHID,        /* X-Auth-Id: sluice's own (the policy's auth id), never a client's */
};

/* The class of a header name, compared case-insensitively. */
enum hdr_class hdr_class(const char *name, size_t len);

/* True when sluice writes this header itself and never copies it from a
 * message it forwards (framing, hop-by-hop, Host, Upgrade, Expect). */
bool hdr_managed(const char *name, size_t len);

#endif
