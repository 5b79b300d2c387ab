/*
 * http1.h - incremental, zero-copy HTTP/1.x message codec (RFC 9112).
 *
 * The header section parsers are stateless: they are handed the bytes read so
 * far and either find the end of the header section or say they need more.
 * Every string they return (method, target, header names and values) is a
 * slice of the caller's buffer; nothing is copied or allocated.  A caller that
 * moves its buffer must parse again.
 *
 * Body framing is decided by the parser (h1_request.body / h1_response.body)
 * and walked with the chunked decoder below, which tells data from framing:
 * a proxy re-frames what it forwards (h1_fwd.h) and never passes on the
 * sender's framing bytes.
 *
 * Anything ambiguous is rejected, never guessed at: that is what keeps a
 * proxy and the server behind it from disagreeing about message boundaries
 * (request smuggling).
 */
#ifndef SLUICE_HTTP1_H
#define SLUICE_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "../core/httpmsg.h"   /* struct h1_header */

#include "../core/reason.h"

#define H1_MAX_HEADERS 100

/* Results of the header-section parsers.  A positive value is the length of
 * the header section including its final empty line. */
enum h1_result {
    H1_INCOMPLETE     = -2,   /* need more bytes */
    H1_ERR_BAD        = -400, /* malformed: 400 */
    H1_ERR_TOO_LARGE  = -431, /* header section over the limit: 431 */
    H1_ERR_TE         = -501, /* Transfer-Encoding we do not implement: 501 */
    H1_ERR_VERSION    = -505, /* not HTTP/1.x: 505 */
};

enum h1_method {
    H1_M_OTHER = 0, H1_M_GET, H1_M_HEAD, H1_M_POST, H1_M_PUT, H1_M_DELETE,
    H1_M_CONNECT, H1_M_OPTIONS, H1_M_TRACE, H1_M_PATCH,
};

enum h1_body {
    H1_BODY_NONE = 0,   /* no body at all */
    H1_BODY_LENGTH,     /* exactly content_length bytes */
    H1_BODY_CHUNKED,    /* chunked transfer coding */
    H1_BODY_CLOSE,      /* response only: until the connection closes */
};

/* Flags computed while parsing, so callers never re-scan headers for them. */
enum {
    H1_F_CONN_CLOSE      = 1u << 0,  /* Connection: close */
    H1_F_CONN_KEEPALIVE  = 1u << 1,  /* Connection: keep-alive */
    H1_F_CONN_UPGRADE    = 1u << 2,  /* Connection: upgrade (token present) */
    H1_F_EXPECT_CONTINUE = 1u << 3,  /* Expect: 100-continue */
    H1_F_HAS_UPGRADE     = 1u << 4,  /* an Upgrade header is present */
    H1_F_HAS_TE          = 1u << 5,  /* a Transfer-Encoding header is present */
    H1_F_HAS_CL          = 1u << 6,  /* a Content-Length header is present */
    H1_F_UPGRADE_WS      = 1u << 7,  /* an Upgrade header lists "websocket" */
};

struct h1_request {
    const char *method;
    const char *target;     /* request-target as sent: path[?query] (or absolute-form) */
    const char *path;       /* origin-form path (slice of target, up to '?'), for absolute-form the path part;
                             * path_len 0 for CONNECT and for an absolute-form target
                             * without a path (which means "/"); "*" for OPTIONS * */
    const char *query;      /* after '?', NULL if none */
    const char *host;       /* Host header value (or authority of absolute-form), NULL if none */
    uint32_t method_len, target_len, path_len, query_len, host_len;
    enum h1_method m;
    int minor;              /* 0 or 1: HTTP/1.minor */
    uint32_t flags;         /* H1_F_* */
    enum h1_body body;      /* H1_BODY_NONE (also for Content-Length: 0), _LENGTH or _CHUNKED */
    uint64_t content_length;
    bool keep_alive;        /* after this request, per version and Connection */
    size_t nheaders;
    struct h1_header headers[H1_MAX_HEADERS];
};

struct h1_response {
    int status;
    int minor;
    const char *reason;
    uint32_t reason_len;
    uint32_t flags;
    enum h1_body body;      /* decided with the request method (see h1_parse_response) */
    uint64_t content_length;
    bool keep_alive;
    size_t nheaders;
    struct h1_header headers[H1_MAX_HEADERS];
};

/*
 * Parse a request header section from buf[0..len).
 * max_bytes bounds the header section (request line included); if no end is
 * found within max_bytes, H1_ERR_TOO_LARGE.  *scanned carries the offset up to
 * which a previous call found no end of headers (start it at 0) so a slow
 * client costs O(n) in total, not O(n^2).
 * Returns the header section length (> 0), H1_INCOMPLETE or an H1_ERR_*.
 * Reset *scanned to 0 for every new message or when buf moves relative to the
 * message start (it is an offset into the message).  max_bytes 0 means no
 * limit other than INT32_MAX.  Up to two empty lines before the request line
 * are skipped (and counted in the returned length).  A result never depends on
 * how the bytes were split across calls: a prefix of an input gives either
 * H1_INCOMPLETE or the same result as the whole (an obviously non-HTTP start,
 * like a TLS hello, fails at once).  On error *req is unspecified.
 * Targets: origin-form, absolute-form (http/https, no userinfo; its authority
 * becomes req->host), authority-form for CONNECT only, "*" for OPTIONS only.
 * Host (and an absolute-form authority) must not hold whitespace, '/', '?',
 * '#', '@', '\\' or non-ASCII.  Expect: 100-continue is ignored on HTTP/1.0.
 * Rejected: bare CR, NUL or other CTLs in fields; obs-fold; whitespace
 * between field name and colon; empty or invalid-token names; CL with TE;
 * several differing CLs; non-numeric (sign, hex) or overflowing CL;
 * Transfer-Encoding other than exactly one bare "chunked" (any case, OWS
 * around it): H1_ERR_TE (501) when the list is well-formed, H1_ERR_BAD when
 * it is not; HTTP/1.0 with TE; missing Host on HTTP/1.1, or more than one
 * Host; more than H1_MAX_HEADERS headers (431).  A list of equal CLs or
 * one with leading zeros is accepted: content_length is what the caller
 * forwards, as one plain decimal (the received spelling never is).
 */
int h1_parse_request(const char *buf, size_t len, size_t max_bytes,
                     size_t *scanned, struct h1_request *req);

/*
 * Parse a response header section.  req_method is the method of the request
 * it answers (HEAD and CONNECT change the framing).  1xx, 204 and 304 and
 * responses to HEAD have H1_BODY_NONE whatever their headers say.  With
 * neither CL nor TE the body is H1_BODY_CLOSE.
 * Like h1_parse_request for scanned/max_bytes/splits.  Besides the header
 * rules of h1_parse_request, it rejects (H1_ERR_BAD) a status outside
 * 100..599, CL together with TE (even where the framing ignores both: a proxy
 * must not forward ambiguity) and TE in an HTTP/1.0 response, and
 * (H1_ERR_TE) any Transfer-Encoding but exactly "chunked", whatever the
 * status: sluice re-frames what it forwards and cannot re-frame a coding it
 * does not implement.  A 2xx answer to CONNECT has H1_BODY_NONE (the tunnel
 * follows); Content-Length: 0 is H1_BODY_NONE.  keep_alive is false
 * whenever body is H1_BODY_CLOSE.
 */
int h1_parse_response(const char *buf, size_t len, size_t max_bytes,
                      size_t *scanned, enum h1_method req_method,
                      struct h1_response *resp);

/* Case-insensitive lookup; returns the first match or NULL. */
const struct h1_header *h1_find_header(const struct h1_header *h, size_t n,
                                       const char *name, size_t name_len);

/* True when the comma-separated token list (a Connection or Transfer-Encoding
 * value) holds tok, compared case-insensitively, OWS around items ignored. */
bool h1_list_has_token(const char *list, size_t len, const char *tok, size_t toklen);

/* Case-insensitive ASCII compare of two byte strings of equal length. */
bool h1_casecmp(const char *a, const char *b, size_t n);

/* ---- chunked transfer coding, incremental ---- */

struct h1_chunked {
    int state;              /* private */
    uint64_t remaining;     /* bytes left in the current chunk's data */
    uint32_t line_bytes;    /* private: bytes in the current size/trailer line */
    uint32_t trailer_bytes; /* private: total trailer bytes, bounded */
};

enum h1_chunk_kind {
    H1C_AGAIN = 0,          /* consumed everything given, need more */
    H1C_META,               /* consumed framing bytes (size line, CRLF, trailers) */
    H1C_DATA,               /* consumed body data bytes */
    H1C_DONE,               /* consumed the last framing bytes: the message ended */
    H1C_ERROR = -1,         /* bad framing: 400 */
};

void h1_chunked_init(struct h1_chunked *c);

/*
 * Walk at most len bytes from p.  *consumed is set to how many bytes the
 * returned piece spans (possibly 0 only with H1C_AGAIN on len == 0).  Each
 * call returns one piece: a run of framing (H1C_META), a run of data
 * (H1C_DATA), the end (H1C_DONE, after which bytes belong to the next
 * message), or H1C_AGAIN when every byte given was framing and more is needed
 * (consumed == len then).  Chunk sizes overflowing 2^63, missing CRLFs, bad
 * hex, chunk extensions or trailers over 4 KiB are H1C_ERROR.
 * CRLF is required everywhere in the chunked framing (a bare LF is an error:
 * that is where parsers disagree).  After H1C_DONE further calls return
 * H1C_DONE consuming nothing; after H1C_ERROR they return H1C_ERROR.  Works on
 * any split of the input, down to one byte per call.
 */
int h1_chunked_next(struct h1_chunked *c, const char *p, size_t len,
                    size_t *consumed);

/* Reason phrase for a status code ("OK", "Not Found", ...), "" if unknown:
 * core/reason.c's table, under the name proxy.c calls it by. */
static inline const char *h1_reason(int status)
{
    return http_reason(status);
}

#endif
