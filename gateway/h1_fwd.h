/*
 * h1_fwd.h - what sluice forwards: message heads and chunk framing that
 * sluice writes itself from its own parse (http1.h).
 *
 * Framing is sluice's, never the sender's.  A forwarded head never copies a
 * Content-Length or Transfer-Encoding line: it carries exactly one framing
 * header written here from the parse (`Content-Length: <decimal>` or
 * `Transfer-Encoding: chunked`), or none for a message without a body (or
 * one a close ends).  A chunked body is re-framed by the caller with
 * h1_fwd_chunk_head()/h1_fwd_chunk_last(): sizes in plain hex, no chunk
 * extensions, no trailers.  Hop-by-hop headers (RFC 9110 7.6.1) are
 * dropped, and a Connection token naming Content-Length,
 * Transfer-Encoding or Host is ignored: such a token can never leave a body
 * unframed or a request without its host.  Only a WebSocket upgrade is
 * passed on; any other Upgrade (h2c) goes with its HTTP2-Settings, and the
 * request stays HTTP/1.1.
 *
 * Everything here is a pure function of its arguments: the fuzzer
 * (tests/fuzz/fuzz_roundtrip.c) re-parses what these write.
 */
#ifndef SLUICE_H1_FWD_H
#define SLUICE_H1_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h"
#include "config.h"
#include "../core/sbuf.h"

/* What the upstream request head is made of besides the client's parse. */
struct h1_fwd_req {
    const struct cfg_route *route;  /* rewrite and request_headers; NULL = none */
    const char *client_ip;          /* appended to X-Forwarded-For */
    size_t client_ip_len;
    const char *default_host;       /* Host when the request has none (HTTP/1.0) */
    bool https;                     /* X-Forwarded-Proto */
    bool websocket;                 /* a WebSocket upgrade is passed on */
    uint64_t rid_hi, rid_lo;        /* X-Request-Id to add when the request has none */
    /* the route's policy (SPEC "Traffic policy"): the header carrying the
     * credential, removed (NULL: none); the auth id (NULL: none) sent as
     * X-Auth-Id; header lines (CRLF-ended) the checks add.  A client's
     * X-Auth-Id is always removed. */
    const char *drop;
    size_t drop_len;
    const char *auth_id;
    size_t auth_id_len;
    const char *extra;
    size_t extra_len;
    /* more header names (lower-case) removed: those the checks write
     * themselves from what they verified (jwt's claims_to_headers) */
    char *const *strip;
    const uint32_t *strip_lens;
    size_t nstrip;
};

/* What the client response head is made of besides the upstream's parse. */
struct h1_fwd_resp {
    const struct cfg_header_edits *edits;   /* response_headers; NULL = none */
    bool keepalive;                 /* the client connection stays: else Connection: close */
    bool client10;                  /* an HTTP/1.0 client: no chunked (the caller
                                       de-chunks and closes), keep-alive said aloud */
};

/* Write the request head for the upstream into out[0, cap).  Returns its
 * length, or -1 when it does not fit or the rewrite fails (the caller
 * answers 431). */
int h1_fwd_request_head(char *out, size_t cap, const struct h1_request *r,
                        const struct h1_fwd_req *f);

/* Write the response head for the client (a 1xx, a 101 switching to a
 * WebSocket, or a final response).  Returns its length or -1. */
int h1_fwd_response_head(char *out, size_t cap, const struct h1_response *r,
                         const struct h1_fwd_resp *f);

/* Append a route's set and add edits, one line each. */
void h1_fwd_put_edits(struct sbuf *s, const struct cfg_header_edits *e);

/* Chunk framing of a re-framed body: every piece of data sluice forwards
 * is a whole chunk of its own, so a streaming client gets each piece
 * complete as it arrives.  Head: hex size CRLF (n > 0); then the data and
 * CRLF; last: "0" CRLF CRLF (no trailers).  out holds at least
 * H1_FWD_CHUNK_MAX bytes; the length written is returned. */
#define H1_FWD_CHUNK_MAX 24
size_t h1_fwd_chunk_head(char *out, uint64_t n);
size_t h1_fwd_chunk_last(char *out);

#endif
