/*
 * http1.c - HTTP/1.x codec (see http1.h for the contract).
 *
 * The header parsers work in two passes over bytes that are already in
 * cache: first memchr() finds the end of the header section (the only part
 * that is resumable through *scanned), then one strict pass over exactly that
 * section splits and validates lines.  Because nothing is parsed before the
 * whole section is there, a result never depends on how the bytes were
 * split across reads, which is what makes the parser safe to call on every
 * read of a slow client.
 */
#include "http1.h"

#include <string.h>

#define CHUNK_LINE_MAX    4096u   /* size line incl. extensions */
#define CHUNK_TRAILER_MAX 4096u   /* all trailer lines together */
#define CL_MAX            (UINT64_C(1) << 62)

/* Byte classes (RFC 9110 5.6.2 / 5.5 / RFC 3986 loosely for targets). */
enum { C_TCHAR = 1, C_VALUE = 2, C_TARGET = 4 };

static const uint8_t cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
};

#define IS(c, k) (cls[(uint8_t)(c)] & (k))

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

bool h1_casecmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i] && lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

/* n must be a literal's length: compares a slice against a lowercase name. */
#define EQ_LIT(p, n, lit) ((n) == sizeof(lit) - 1 && h1_casecmp((p), (lit), (n)))

const struct h1_header *h1_find_header(const struct h1_header *h, size_t n,
                                       const char *name, size_t name_len)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == name_len && h1_casecmp(h[i].name, name, name_len))
            return &h[i];
    return NULL;
}

/* Next non-empty, OWS-trimmed element of a comma list at *pp, or NULL. */
static inline const char *list_next(const char **pp, const char *e, size_t *n)
{
    const char *p = *pp;
    while (p < e && (is_ows(*p) || *p == ','))
        p++;
    if (p == e) {
        *pp = p;
        return NULL;
    }
    const char *s = p;
    while (p < e && *p != ',')
        p++;
    const char *t = p;
    while (t > s && is_ows(t[-1]))
        t--;
    *pp = p;
    *n = (size_t)(t - s);
    return s;
}

bool h1_list_has_token(const char *list, size_t len, const char *tok, size_t toklen)
{
    const char *p = list, *e = list + len, *s;
    size_t n;
    while ((s = list_next(&p, e, &n)) != NULL)
        if (n == toklen && h1_casecmp(s, tok, n))
            return true;
    return false;
}

/* ---- header section ---- */

/*
 * Finds the end of the header section: the first LF that is followed by an
 * empty line (LF or CRLF).  Returns its offset past that line, or 0 with
 * *resume set to where the next search must start (an LF whose follower is
 * not here yet has to be looked at again).
 */
static size_t find_end(const char *buf, size_t from, size_t len, size_t *resume)
{
    const char *p = buf + from, *e = buf + len;
    while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
        size_t rem = (size_t)(e - p);
        if (rem < 2)
            break;
        if (p[1] == '\n')
            return (size_t)(p - buf) + 2;
        if (p[1] == '\r') {
            if (rem < 3)
                break;
            if (p[2] == '\n')
                return (size_t)(p - buf) + 3;
        }
        p++;
    }
    *resume = p ? (size_t)(p - buf) : len;
    if (*resume > len)
        *resume = len;
    return 0;
}

/* What the header lines say about framing, gathered during the one pass. */
struct hsum {
    uint32_t flags;
    unsigned hosts;
    const char *host;
    uint32_t host_len;
    uint64_t cl;
    uint32_t te_codings;    /* transfer codings over all TE lines */
    bool te_chunked_only;   /* ... and they are exactly one bare "chunked" */
};

/* Content-Length = 1*DIGIT, or a list of identical ones (RFC 9110 8.6). */
static int parse_cl(const char *p, const char *e, struct hsum *s)
{
    for (;;) {
        const char *d = p;
        uint64_t v = 0;
        while (p < e && *p >= '0' && *p <= '9') {
            if (v > CL_MAX / 10)
                return H1_ERR_BAD;
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > CL_MAX)
                return H1_ERR_BAD;
            p++;
        }
        if (p == d)
            return H1_ERR_BAD;
        if ((s->flags & H1_F_HAS_CL) && v != s->cl)
            return H1_ERR_BAD;
        s->cl = v;
        s->flags |= H1_F_HAS_CL;
        while (p < e && is_ows(*p))
            p++;
        if (p == e)
            return 0;
        if (*p != ',')
            return H1_ERR_BAD;
        p++;
        while (p < e && is_ows(*p))
            p++;
    }
}

/*
 * Transfer-Encoding codings accumulate over all TE field lines.  The only
 * framing sluice forwards is chunked alone: any other list (gzip, chunked;
 * identity; chunked twice; chunked with a parameter) is refused by the
 * caller, never passed on in the sender's spelling, because recipients
 * disagree about such lists and that disagreement is what desync attacks
 * use.  Here only the syntax is checked (a broken list is H1_ERR_BAD) and
 * whether the whole list is exactly one bare "chunked" (any case).
 */
static int parse_te(const char *p, const char *e, struct hsum *s)
{
    s->flags |= H1_F_HAS_TE;
    for (;;) {
        const char *t = p;
        while (p < e && IS(*p, C_TCHAR))
            p++;
        if (p == t)
            return H1_ERR_BAD;              /* empty element or junk */
        bool chunked = EQ_LIT(t, (size_t)(p - t), "chunked");
        while (p < e && is_ows(*p))
            p++;
        bool param = p < e && *p == ';';
        if (param) {
            p++;
            while (p < e && is_ows(*p))
                p++;
            const char *pn = p;
            while (p < e && IS(*p, C_TCHAR))
                p++;
            if (p == pn)
                return H1_ERR_BAD;          /* ";" without a parameter name */
            while (p < e && *p != ',')      /* the value: refused either way */
                p++;
        }
        s->te_codings++;
        s->te_chunked_only = s->te_codings == 1 && chunked && !param;
        if (p == e)
            return 0;
        if (*p != ',')
            return H1_ERR_BAD;
        p++;
        while (p < e && is_ows(*p))
            p++;
        if (p == e)
            return H1_ERR_BAD;              /* trailing comma: an empty element */
    }
}

static void parse_connection(const char *v, size_t n, struct hsum *s)
{
    const char *p = v, *e = v + n, *t;
    size_t tl;
    while ((t = list_next(&p, e, &tl)) != NULL) {
        if (EQ_LIT(t, tl, "close"))
            s->flags |= H1_F_CONN_CLOSE;
        else if (EQ_LIT(t, tl, "keep-alive"))
            s->flags |= H1_F_CONN_KEEPALIVE;
        else if (EQ_LIT(t, tl, "upgrade"))
            s->flags |= H1_F_CONN_UPGRADE;
    }
}

/* Acts on the few fields that decide framing and connection handling. */
static int note_header(const struct h1_header *h, struct hsum *s)
{
    const char *n = h->name, *v = h->value;
    uint32_t vl = h->value_len;
    switch (h->name_len) {
    case 4:
        if (h1_casecmp(n, "host", 4)) {
            s->hosts++;
            s->host = v;
            s->host_len = vl;
        }
        break;
    case 6:
        if (h1_casecmp(n, "expect", 6) && EQ_LIT(v, vl, "100-continue"))
            s->flags |= H1_F_EXPECT_CONTINUE;
        break;
    case 7:
        if (h1_casecmp(n, "upgrade", 7)) {
            s->flags |= H1_F_HAS_UPGRADE;
            if (h1_list_has_token(v, vl, "websocket", 9))
                s->flags |= H1_F_UPGRADE_WS;
        }
        break;
    case 10:
        if (h1_casecmp(n, "connection", 10))
            parse_connection(v, vl, s);
        break;
    case 14:
        if (h1_casecmp(n, "content-length", 14))
            return parse_cl(v, v + vl, s);
        break;
    case 17:
        if (h1_casecmp(n, "transfer-encoding", 17))
            return parse_te(v, v + vl, s);
        break;
    }
    return 0;
}

/* True when any of the 8 bytes is a CTL (< 0x20, so HTAB too, or DEL). */
static inline bool swar_has_ctl(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    const uint64_t high = UINT64_C(0x8080808080808080);
    uint64_t lt = (x - ones * 0x20) & ~x & high;
    uint64_t y = x ^ (ones * 0x7f);
    uint64_t del = (y - ones) & ~y & high;
    return (lt | del) != 0;
}

/*
 * Splits and validates the field lines in [p, end).  end is just past the
 * empty line that find_end located, so every line here ends in LF before
 * end and the scans below cannot run past it.
 */
static int parse_fields(const char *p, const char *end, struct h1_header *hs,
                        size_t *nh, struct hsum *s)
{
    size_t n = 0;
    for (;;) {
        if (*p == '\r' || *p == '\n') {
            /* Only the final empty line can start with CR or LF here. */
            if (*p == '\r' && p[1] != '\n')
                return H1_ERR_BAD;
            *nh = n;
            return 0;
        }
        const char *name = p;
        while (IS(*p, C_TCHAR))
            p++;
        /* Rejects obs-fold (line starting with SP/HTAB), an empty name,
         * whitespace before the colon and any non-token name byte. */
        if (*p != ':' || p == name)
            return H1_ERR_BAD;
        const char *name_end = p++;
        while (is_ows(*p))
            p++;
        const char *val = p;
        while ((size_t)(end - p) >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            if (swar_has_ctl(x))
                break;
            p += 8;
        }
        while (IS(*p, C_VALUE))
            p++;
        const char *val_end = p;
        if (*p == '\r') {
            if (p[1] != '\n')
                return H1_ERR_BAD;      /* bare CR */
            p++;
        } else if (*p != '\n') {
            return H1_ERR_BAD;          /* NUL or another CTL */
        }
        p++;
        while (val_end > val && is_ows(val_end[-1]))
            val_end--;
        if (n == H1_MAX_HEADERS)
            return H1_ERR_TOO_LARGE;
        struct h1_header *h = &hs[n++];
        h->name = name;
        h->name_len = (uint32_t)(name_end - name);
        h->value = val;
        h->value_len = (uint32_t)(val_end - val);
        int rc = note_header(h, s);
        if (rc)
            return rc;
    }
}

/* Parses "HTTP/1.x"; 0 minor/1 minor, H1_ERR_VERSION or H1_ERR_BAD. */
static int parse_version(const char *p, const char *e, int *minor)
{
    if (e - p < 8 || memcmp(p, "HTTP/", 5) != 0)
        return H1_ERR_BAD;
    char maj = p[5], dot = p[6], min = p[7];
    if (maj < '0' || maj > '9' || dot != '.' || min < '0' || min > '9')
        return H1_ERR_BAD;
    if (maj != '1' || min > '1')
        return H1_ERR_VERSION;
    *minor = min - '0';
    return 0;
}

/* Line end at p: CRLF or LF.  Returns the next line or NULL. */
static inline const char *eol(const char *p)
{
    if (*p == '\r')
        return p[1] == '\n' ? p + 2 : NULL;
    return *p == '\n' ? p + 1 : NULL;
}

static enum h1_method method_of(const char *m, size_t n)
{
#define M(lit, v) if (n == sizeof(lit) - 1 && memcmp(m, lit, n) == 0) return v
    switch (n) {
    case 3: M("GET", H1_M_GET); M("PUT", H1_M_PUT); break;
    case 4: M("HEAD", H1_M_HEAD); M("POST", H1_M_POST); break;
    case 5: M("TRACE", H1_M_TRACE); M("PATCH", H1_M_PATCH); break;
    case 6: M("DELETE", H1_M_DELETE); break;
    case 7: M("CONNECT", H1_M_CONNECT); M("OPTIONS", H1_M_OPTIONS); break;
    }
#undef M
    return H1_M_OTHER;
}

/*
 * Up to two empty lines may precede a request line (RFC 9112 2.2).  Also
 * checks the method bytes already here, so garbage (a TLS hello on a plain
 * port) is refused at once instead of after max_bytes or a timeout.  Runs
 * identically on every call, so it cannot make results depend on splits.
 */
static int request_prelude(const char *buf, size_t len, size_t *start)
{
    size_t p = 0;
    for (int i = 0; i < 3; i++) {
        if (p == len)
            return H1_INCOMPLETE;
        if (buf[p] == '\n') {
            p++;
        } else if (buf[p] == '\r') {
            if (p + 1 == len)
                return H1_INCOMPLETE;
            if (buf[p + 1] != '\n')
                return H1_ERR_BAD;
            p += 2;
        } else {
            break;
        }
        if (i == 2)
            return H1_ERR_BAD;
    }
    *start = p;
    size_t lim = len - p > 32 ? p + 32 : len;
    for (size_t i = p; i < lim; i++) {
        if (buf[i] == ' ')
            return i == p ? H1_ERR_BAD : 0;
        if (!IS(buf[i], C_TCHAR))
            return H1_ERR_BAD;
    }
    return 0;
}

/* Shared first step: the prelude is done, find the end of the section. */
static int section_end(const char *buf, size_t len, size_t start, size_t max_bytes,
                       size_t *scanned, size_t *end)
{
    /* The result is an int and slice lengths are uint32_t. */
    if (max_bytes == 0 || max_bytes > INT32_MAX)
        max_bytes = INT32_MAX;
    size_t from = *scanned;
    if (from < start || from > len)
        from = start;
    size_t e = find_end(buf, from, len, scanned);
    if (e == 0)
        return len >= max_bytes ? H1_ERR_TOO_LARGE : H1_INCOMPLETE;
    if (e > max_bytes)
        return H1_ERR_TOO_LARGE;
    *end = e;
    return 0;
}

/* A Host value the router can trust: no whitespace or URI delimiters. */
static bool host_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' ||
            c == '@' || c == '\\')
            return false;
    }
    return true;
}

static int parse_target(struct h1_request *r)
{
    const char *t = r->target, *e = t + r->target_len;
    const char *pq = NULL;
    if (*t == '/') {
        pq = t;
    } else if (r->target_len == 1 && *t == '*') {
        if (r->m != H1_M_OPTIONS)
            return H1_ERR_BAD;
        r->path = t;
        r->path_len = 1;
        return 0;
    } else if (r->m == H1_M_CONNECT) {
        /* authority-form: host:port, nothing else */
        const char *colon = NULL;
        for (const char *p = t; p < e; p++) {
            if (*p == '/' || *p == '?' || *p == '#' || *p == '@')
                return H1_ERR_BAD;
            if (*p == ':')
                colon = p;
        }
        if (!colon || colon == t || colon + 1 == e || !host_ok(t, r->target_len))
            return H1_ERR_BAD;
        r->host = t;
        r->host_len = r->target_len;
        r->path = e;
        r->path_len = 0;
        return 0;
    } else {
        /* absolute-form: http[s]://authority[/path][?query] */
        size_t skip;
        if (r->target_len > 7 && h1_casecmp(t, "http://", 7))
            skip = 7;
        else if (r->target_len > 8 && h1_casecmp(t, "https://", 8))
            skip = 8;
        else
            return H1_ERR_BAD;
        const char *a = t + skip, *p = a;
        while (p < e && *p != '/' && *p != '?') {
            if (*p == '@' || *p == '#')
                return H1_ERR_BAD;      /* userinfo: never guess whose host */
            p++;
        }
        if (p == a || !host_ok(a, (size_t)(p - a)))
            return H1_ERR_BAD;
        r->host = a;
        r->host_len = (uint32_t)(p - a);
        pq = p;
    }
    if (r->m == H1_M_CONNECT)
        return H1_ERR_BAD;
    const char *q = memchr(pq, '?', (size_t)(e - pq));
    r->path = pq;
    r->path_len = (uint32_t)((q ? q : e) - pq);
    if (q) {
        r->query = q + 1;
        r->query_len = (uint32_t)(e - q - 1);
    }
    return 0;
}

int h1_parse_request(const char *buf, size_t len, size_t max_bytes,
                     size_t *scanned, struct h1_request *r)
{
    size_t start = 0, end = 0;
    if (len == 0)
        return H1_INCOMPLETE;
    int rc = request_prelude(buf, len, &start);
    if (rc)
        return rc;
    rc = section_end(buf, len, start, max_bytes, scanned, &end);
    if (rc)
        return rc;

    const char *p = buf + start, *e = buf + end;
    r->method = p;
    while (IS(*p, C_TCHAR))
        p++;
    if (*p != ' ' || p == r->method)
        return H1_ERR_BAD;
    r->method_len = (uint32_t)(p - r->method);
    r->m = method_of(r->method, r->method_len);
    r->target = ++p;
    while (IS(*p, C_TARGET))
        p++;
    if (*p != ' ' || p == r->target)
        return H1_ERR_BAD;
    r->target_len = (uint32_t)(p - r->target);
    p++;
    /* The line ends at the first LF, so the version must fit before it. */
    const char *lf = memchr(p, '\n', (size_t)(e - p));
    if ((rc = parse_version(p, lf, &r->minor)) != 0)
        return rc;
    if ((p = eol(p + 8)) == NULL)
        return H1_ERR_BAD;

    r->query = NULL;
    r->query_len = 0;
    r->host = NULL;
    r->host_len = 0;
    if ((rc = parse_target(r)) != 0)
        return rc;

    struct hsum s = {0};
    if ((rc = parse_fields(p, e, r->headers, &r->nheaders, &s)) != 0)
        return rc;

    if (s.flags & H1_F_HAS_TE) {
        if (s.flags & H1_F_HAS_CL)
            return H1_ERR_BAD;
        if (r->minor == 0)
            return H1_ERR_BAD;          /* 1.0 has no TE: a smuggling vector */
        if (!s.te_chunked_only)
            return H1_ERR_TE;
        r->body = H1_BODY_CHUNKED;
    } else if ((s.flags & H1_F_HAS_CL) && s.cl > 0) {
        r->body = H1_BODY_LENGTH;
    } else {
        r->body = H1_BODY_NONE;
    }
    r->content_length = s.cl;

    if (s.hosts > 1 || (s.hosts == 0 && r->minor == 1))
        return H1_ERR_BAD;
    if (s.hosts == 1 && !host_ok(s.host, s.host_len))
        return H1_ERR_BAD;
    if (r->host == NULL && s.hosts == 1) {
        r->host = s.host;
        r->host_len = s.host_len;
    }

    /* RFC 9110 10.1.1: a 1.0 client cannot expect 100 Continue. */
    if (r->minor == 0)
        s.flags &= ~(uint32_t)H1_F_EXPECT_CONTINUE;
    r->flags = s.flags;
    r->keep_alive = !(s.flags & H1_F_CONN_CLOSE) &&
                    (r->minor == 1 || (s.flags & H1_F_CONN_KEEPALIVE));
    return (int)end;
}

int h1_parse_response(const char *buf, size_t len, size_t max_bytes,
                      size_t *scanned, enum h1_method req_method,
                      struct h1_response *r)
{
    size_t end = 0;
    if (len == 0)
        return H1_INCOMPLETE;
    /* Refuse a non-HTTP peer without waiting for max_bytes. */
    size_t k = len < 5 ? len : 5;
    if (memcmp(buf, "HTTP/", k) != 0)
        return H1_ERR_BAD;
    int rc = section_end(buf, len, 0, max_bytes, scanned, &end);
    if (rc)
        return rc;

    const char *p = buf, *e = buf + end;
    const char *lf = memchr(p, '\n', (size_t)(e - p));
    if ((rc = parse_version(p, lf, &r->minor)) != 0)
        return rc;
    p += 8;
    if (lf - p < 4 || *p != ' ')
        return H1_ERR_BAD;
    int st = 0;
    for (int i = 1; i <= 3; i++) {
        if (p[i] < '0' || p[i] > '9')
            return H1_ERR_BAD;
        st = st * 10 + (p[i] - '0');
    }
    if (st < 100 || st > 599)
        return H1_ERR_BAD;
    r->status = st;
    p += 4;
    if (*p == ' ') {
        r->reason = ++p;
        while (IS(*p, C_VALUE))
            p++;
        r->reason_len = (uint32_t)(p - r->reason);
    } else {
        r->reason = p;
        r->reason_len = 0;
    }
    if ((p = eol(p)) == NULL)
        return H1_ERR_BAD;

    struct hsum s = {0};
    if ((rc = parse_fields(p, e, r->headers, &r->nheaders, &s)) != 0)
        return rc;
    /* A proxy must not pass on a message two parties could frame
     * differently, even where this response's framing ignores both. */
    if ((s.flags & H1_F_HAS_TE) && (s.flags & H1_F_HAS_CL))
        return H1_ERR_BAD;
    /* RFC 9112 6.1: TE in a 1.0 message means the framing is faulty. */
    if ((s.flags & H1_F_HAS_TE) && r->minor == 0)
        return H1_ERR_BAD;
    /* Chunked alone or nothing: what a client would make of "gzip,
     * chunked" or "identity" after sluice re-frames it cannot be known,
     * so such a response is not forwarded at all (502). */
    if ((s.flags & H1_F_HAS_TE) && !s.te_chunked_only)
        return H1_ERR_TE;

    r->content_length = s.cl;
    if (st < 200 || st == 204 || st == 304 || req_method == H1_M_HEAD ||
        (req_method == H1_M_CONNECT && st < 300))
        r->body = H1_BODY_NONE;
    else if (s.flags & H1_F_HAS_TE)
        r->body = H1_BODY_CHUNKED;
    else if (s.flags & H1_F_HAS_CL)
        r->body = s.cl ? H1_BODY_LENGTH : H1_BODY_NONE;
    else
        r->body = H1_BODY_CLOSE;

    r->flags = s.flags;
    r->keep_alive = r->body != H1_BODY_CLOSE && !(s.flags & H1_F_CONN_CLOSE) &&
                    (r->minor == 1 || (s.flags & H1_F_CONN_KEEPALIVE));
    return (int)end;
}

/* ---- chunked ---- */

enum {
    CS_SIZE0,       /* first hex digit of a size line */
    CS_SIZE,        /* more hex digits */
    CS_SIZE_WS,     /* BWS after the size: only ';' may follow */
    CS_EXT,         /* chunk extensions up to CR */
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER0,    /* start of a trailer line (or the final CRLF) */
    CS_TRAILER,
    CS_TRAILER_LF,
    CS_FINAL_LF,
    CS_DONE,
    CS_ERROR,
};

void h1_chunked_init(struct h1_chunked *c)
{
    c->state = CS_SIZE0;
    c->remaining = 0;
    c->line_bytes = 0;
    c->trailer_bytes = 0;
}

static inline int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = lower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* What one framing byte did (chunk_byte). */
enum { CB_MORE, CB_FAIL, CB_DATA, CB_DONE };

/* A byte that must be `want` (a line's CR or LF): on to state next. */
static inline int chunk_expect(struct h1_chunked *c, char ch, char want, int next, int res)
{
    if (ch != want)
        return CB_FAIL;
    c->state = next;
    return res;
}

/* A byte of a chunk-size line: the hex size, then white space, an
 * extension, or its CR. */
static inline int chunk_size_byte(struct h1_chunked *c, char ch)
{
    int v = hexval(ch);

    if (v >= 0 && c->state != CS_SIZE_WS) {
        if (c->remaining >> 59)
            return CB_FAIL;         /* next digit would pass 2^63 */
        c->remaining = (c->remaining << 4) | (uint64_t)v;
        c->state = CS_SIZE;
    } else if (c->state == CS_SIZE0) {
        return CB_FAIL;
    } else if (ch == ';') {
        c->state = CS_EXT;
    } else if (ch == '\r' && c->state == CS_SIZE) {
        c->state = CS_SIZE_LF;
    } else if (!is_ows(ch)) {
        return CB_FAIL;
    } else {
        c->state = CS_SIZE_WS;
    }
    return CB_MORE;
}

/* A byte of the trailer section (after the last chunk). */
static inline int chunk_trailer_byte(struct h1_chunked *c, char ch)
{
    switch (c->state) {
    case CS_TRAILER0:
        if (ch == '\r') {
            c->state = CS_FINAL_LF;
            return CB_MORE;
        }
        if (is_ows(ch))
            return CB_FAIL;         /* obs-fold */
        c->state = CS_TRAILER;
        __attribute__((fallthrough));
    case CS_TRAILER:
        if (++c->trailer_bytes > CHUNK_TRAILER_MAX)
            return CB_FAIL;
        if (ch == '\r')
            c->state = CS_TRAILER_LF;
        else if (!IS(ch, C_VALUE))
            return CB_FAIL;
        return CB_MORE;
    case CS_TRAILER_LF:
        return chunk_expect(c, ch, '\n', CS_TRAILER0, CB_MORE);
    case CS_FINAL_LF:
        return chunk_expect(c, ch, '\n', CS_DONE, CB_DONE);
    default:
        return CB_FAIL;
    }
}

/* One framing byte: size lines, the CRLF after data, trailers. */
static inline int chunk_byte(struct h1_chunked *c, char ch)
{
    switch (c->state) {
    case CS_SIZE0:
    case CS_SIZE:
    case CS_SIZE_WS:
        return chunk_size_byte(c, ch);
    case CS_EXT:
        if (ch == '\r')
            c->state = CS_SIZE_LF;
        else if (!IS(ch, C_VALUE))
            return CB_FAIL;
        return CB_MORE;
    case CS_SIZE_LF:
        if (ch != '\n')
            return CB_FAIL;
        c->line_bytes = 0;
        if (c->remaining == 0) {
            c->state = CS_TRAILER0;
            return CB_MORE;
        }
        c->state = CS_DATA;
        return CB_DATA;
    case CS_DATA_CR:
        return chunk_expect(c, ch, '\r', CS_DATA_LF, CB_MORE);
    case CS_DATA_LF:
        return chunk_expect(c, ch, '\n', CS_SIZE0, CB_MORE);
    default:
        return chunk_trailer_byte(c, ch);
    }
}

int h1_chunked_next(struct h1_chunked *c, const char *p, size_t len,
                    size_t *consumed)
{
    if (c->state == CS_DATA && len > 0) {
        size_t n = c->remaining < len ? (size_t)c->remaining : len;
        c->remaining -= n;
        if (c->remaining == 0)
            c->state = CS_DATA_CR;
        *consumed = n;
        return H1C_DATA;
    }
    if (c->state == CS_DONE || c->state == CS_ERROR) {
        *consumed = 0;
        return c->state == CS_DONE ? H1C_DONE : H1C_ERROR;
    }
    for (size_t i = 0; i < len; i++) {
        int k = chunk_byte(c, p[i]);
        if (k == CB_FAIL || (c->state <= CS_EXT && ++c->line_bytes > CHUNK_LINE_MAX)) {
            c->state = CS_ERROR;
            *consumed = i;
            return H1C_ERROR;
        }
        if (k == CB_DATA) {
            *consumed = i + 1;
            return i + 1 == len ? H1C_AGAIN : H1C_META;
        }
        if (k == CB_DONE) {
            *consumed = i + 1;
            return H1C_DONE;
        }
    }
    *consumed = len;
    return H1C_AGAIN;
}
