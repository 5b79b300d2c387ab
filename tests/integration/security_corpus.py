"""Request-smuggling / framing regression corpus: the DATA.

test_11_security.py runs it against real sluice in front of a raw recording
backend with a strict HTTP/1.1 parser.  Each vector is the exact bytes a
client (or, for RESPONSES, the backend) sends and what must come of them.

Paths are unique per vector: a vector's main request uses PATH, a request
hidden in its body uses PATH + "-smug" (it must never reach the backend), and
the runner sends PATH + "-victim" on a new client connection after each
vector (it must get its own response: the pooled upstream connection is in
sync).  No path is a prefix of another path followed by a space.

Run this file to print the corpus (name -> expected, and the bytes).
"""

HOST = b"Host: example.com\r\n"


def smug(path):
    """The request hidden after a body: it must never reach the backend."""
    return b"GET " + path + b"-smug HTTP/1.1\r\nHost: example.com\r\n\r\n"


def req(line, headers=b"", body=b""):
    """A request: line CRLF, Host, the headers (CRLF-ended), CRLF, body."""
    return line + b"\r\n" + HOST + headers + b"\r\n" + body


# ---------------------------------------------------------------- accepted requests
#
# Each: name, data (exact bytes), and fwd: what the backend must receive, in
# order, one (method, path, framing line or None, body) per request.  The
# framing line is the one framing header sluice must write (name compared
# case-insensitively, value exactly); None = no framing header at all.  The
# client must get a 200 whose body is the path, for each request in order.
# The runner also checks every other header against the client's (minus the
# hop-by-hop ones and sluice's additions), and that nothing follows a message
# on its backend connection but the next request.
#   absent:    header names the backend must not see (besides the always
#              absent Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
#              Upgrade, HTTP2-Settings, Expect)
#   present:   (name, value) the backend must see
#   keepalive: the client connection stays usable (a next request on it)

def accept(name, data, fwd, absent=(), present=(), keepalive=True):
    return {"name": name, "data": data, "fwd": list(fwd), "absent": list(absent),
            "present": list(present), "keepalive": keepalive}


CL50_BODY = b"GET /smuggled-prefix HTTP/1.1\r\nHost: x\r\nX-Ignore: "
assert len(CL50_BODY) == 50
CHUNKED_SMUG_DATA = smug(b"/hop-te")

BIG = bytes((i * 31 + 7) & 0xFF for i in range(130001))   # binary, holds CR and LF bytes
assert 0x11170 == 70000 and 0xEA60 == 60000

ACCEPTED = [
    accept("plain GET", req(b"GET /plain-get HTTP/1.1"),
           [("GET", "/plain-get", None, b"")]),
    accept("POST Content-Length: 5", req(b"POST /cl-5 HTTP/1.1", b"Content-Length: 5\r\n", b"hello"),
           [("POST", "/cl-5", "Content-Length: 5", b"hello")]),
    accept("POST Content-Length: 0", req(b"POST /cl-0 HTTP/1.1", b"Content-Length: 0\r\n"),
           [("POST", "/cl-0", "Content-Length: 0", b"")]),
    accept("CL leading zeros 00005 -> 5", req(b"POST /cl-zeros HTTP/1.1", b"Content-Length: 00005\r\n", b"hello"),
           [("POST", "/cl-zeros", "Content-Length: 5", b"hello")]),
    accept("CL list '5, 5' -> 5", req(b"POST /cl-list-same HTTP/1.1", b"Content-Length: 5, 5\r\n", b"hello"),
           [("POST", "/cl-list-same", "Content-Length: 5", b"hello")]),
    accept("CL two equal lines -> one 5",
           req(b"POST /cl-two-same HTTP/1.1", b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
           [("POST", "/cl-two-same", "Content-Length: 5", b"hello")]),
    accept("CL with OWS '  5  ' -> 5", req(b"POST /cl-ows HTTP/1.1", b"Content-Length:  5  \r\n", b"hello"),
           [("POST", "/cl-ows", "Content-Length: 5", b"hello")]),
    accept("TE 'CHUNKED' -> chunked",
           req(b"POST /te-upper HTTP/1.1", b"Transfer-Encoding: CHUNKED\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
           [("POST", "/te-upper", "Transfer-Encoding: chunked", b"hello")]),
    accept("TE '  chunked ' (OWS) -> chunked",
           req(b"POST /te-ows HTTP/1.1", b"Transfer-Encoding:   chunked \r\n", b"5\r\nhello\r\n0\r\n\r\n"),
           [("POST", "/te-ows", "Transfer-Encoding: chunked", b"hello")]),
    accept("TE ':\\tchunked' (tab OWS, valid)",
           req(b"POST /te-tab HTTP/1.1", b"Transfer-Encoding:\tchunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
           [("POST", "/te-tab", "Transfer-Encoding: chunked", b"hello")]),
    accept("chunk extension and trailer dropped (5;ext=1, X-T: 1)",
           req(b"POST /chunk-ext HTTP/1.1", b"Transfer-Encoding: chunked\r\n",
               b"5;ext=1\r\nhello\r\n6;a=b;c=\"d\"\r\n world\r\n0;last=1\r\nX-T: 1\r\nX-U: 2\r\n\r\n"),
           [("POST", "/chunk-ext", "Transfer-Encoding: chunked", b"hello world")],
           absent=("x-t", "x-u")),
    accept("chunk sizes upper-case hex and leading zeros (000A, 0B)",
           req(b"POST /chunk-hex HTTP/1.1", b"Transfer-Encoding: chunked\r\n",
               b"000A\r\n0123456789\r\n0B\r\nabcdefghijk\r\n000\r\n\r\n"),
           [("POST", "/chunk-hex", "Transfer-Encoding: chunked", b"0123456789abcdefghijk")]),
    accept("chunked data that looks like a request",
           req(b"POST /chunk-data-req HTTP/1.1", b"Transfer-Encoding: chunked\r\n",
               b"%x\r\n" % len(b"0\r\n\r\n" + smug(b"/chunk-data-req")) + b"0\r\n\r\n"
               + smug(b"/chunk-data-req") + b"\r\n0\r\n\r\n"),
           [("POST", "/chunk-data-req", "Transfer-Encoding: chunked", b"0\r\n\r\n" + smug(b"/chunk-data-req"))]),
    accept("LF-only header section (GET)",
           b"GET /lf-get HTTP/1.1\nHost: example.com\nX-A: 1\n\n",
           [("GET", "/lf-get", None, b"")], present=(("x-a", "1"),)),
    accept("LF-only header section with CL body",
           b"POST /lf-post HTTP/1.1\nHost: example.com\nContent-Length: 5\nX-B: two\n\nhello",
           [("POST", "/lf-post", "Content-Length: 5", b"hello")], present=(("x-b", "two"),)),
    accept("mixed CRLF and LF header lines",
           b"POST /lf-mixed HTTP/1.1\r\nHost: example.com\nTransfer-Encoding: chunked\r\nX-C: 3\n\r\n"
           b"3\r\nabc\r\n0\r\n\r\n",
           [("POST", "/lf-mixed", "Transfer-Encoding: chunked", b"abc")]),
    accept("Connection: Content-Length ignored (CL 50 body with a request prefix)",
           req(b"POST /hop-cl HTTP/1.1", b"Content-Length: 50\r\nConnection: Content-Length\r\n", CL50_BODY),
           [("POST", "/hop-cl", "Content-Length: 50", CL50_BODY)]),
    accept("Connection: Transfer-Encoding ignored (chunked body)",
           req(b"POST /hop-te HTTP/1.1", b"Transfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n",
               b"%x\r\n" % len(CHUNKED_SMUG_DATA) + CHUNKED_SMUG_DATA + b"\r\n0\r\n\r\n"),
           [("POST", "/hop-te", "Transfer-Encoding: chunked", CHUNKED_SMUG_DATA)]),
    accept("Connection: keep-alive, Content-Length ignored",
           req(b"POST /hop-cl-list HTTP/1.1", b"Connection: keep-alive, Content-Length\r\nContent-Length: 5\r\n",
               b"hello"),
           [("POST", "/hop-cl-list", "Content-Length: 5", b"hello")]),
    accept("Connection: Host ignored (Host still forwarded)",
           req(b"GET /hop-host HTTP/1.1", b"Connection: Host\r\n"),
           [("GET", "/hop-host", None, b"")], present=(("host", "example.com"),)),
    accept("Connection: X-Foo removes X-Foo",
           req(b"GET /hop-xfoo HTTP/1.1", b"X-Foo: bar\r\nConnection: X-Foo\r\nX-Keep: yes\r\n"),
           [("GET", "/hop-xfoo", None, b"")], absent=("x-foo",), present=(("x-keep", "yes"),)),
    accept("hop-by-hop headers removed (Keep-Alive, Proxy-Connection, TE, Trailer)",
           req(b"POST /hop-list HTTP/1.1",
               b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
               b"TE: trailers\r\nTrailer: X-T\r\nContent-Length: 2\r\n", b"ok"),
           [("POST", "/hop-list", "Content-Length: 2", b"ok")]),
    accept("Upgrade: h2c removed with HTTP2-Settings, stays HTTP/1.1",
           req(b"GET /h2c-upgrade HTTP/1.1", b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"),
           [("GET", "/h2c-upgrade", None, b"")]),
    accept("Upgrade: foo/1 without Connection: upgrade removed",
           req(b"GET /upgrade-foo HTTP/1.1", b"Upgrade: foo/1\r\n"),
           [("GET", "/upgrade-foo", None, b"")]),
    accept("Expect: 100-continue answered by sluice, not forwarded",
           req(b"POST /expect HTTP/1.1", b"Expect: 100-continue\r\nContent-Length: 5\r\n", b"hello"),
           [("POST", "/expect", "Content-Length: 5", b"hello")]),
    accept("header OWS trimmed, empty value, repeated names kept in order",
           req(b"GET /hdr-values HTTP/1.1", b"X-Ows: \t v a l \t \r\nX-Empty:\r\nX-Dup: 1\r\nX-Dup: 2\r\n"),
           [("GET", "/hdr-values", None, b"")], present=(("x-ows", "v a l"), ("x-empty", ""))),
    accept("HTTP/1.0 POST with Content-Length",
           b"POST /http10 HTTP/1.0\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello",
           [("POST", "/http10", "Content-Length: 5", b"hello")], keepalive=False),
    accept("large Content-Length body (100000 bytes, spliced)",
           req(b"POST /big-cl HTTP/1.1", b"Content-Length: 100000\r\n", BIG[:100000]),
           [("POST", "/big-cl", "Content-Length: 100000", BIG[:100000])]),
    accept("large chunked body re-framed (70000;x=1 + 1 + 60000, trailer)",
           req(b"POST /big-chunked HTTP/1.1", b"Transfer-Encoding: chunked\r\n",
               b"11170;x=1\r\n" + BIG[:70000] + b"\r\n1\r\n" + BIG[70000:70001] + b"\r\nEA60\r\n"
               + BIG[70001:130001] + b"\r\n0\r\nX-T: 1\r\n\r\n"),
           [("POST", "/big-chunked", "Transfer-Encoding: chunked", BIG[:130001])], absent=("x-t",)),
    accept("pipelined POST CL + chunked POST + GET in one write",
           req(b"POST /pipe-1 HTTP/1.1", b"Content-Length: 3\r\n", b"abc")
           + req(b"POST /pipe-2 HTTP/1.1", b"Transfer-Encoding: chunked\r\n", b"2;x\r\nde\r\n0\r\nT: 1\r\n\r\n")
           + req(b"GET /pipe-3 HTTP/1.1"),
           [("POST", "/pipe-1", "Content-Length: 3", b"abc"),
            ("POST", "/pipe-2", "Transfer-Encoding: chunked", b"de"),
            ("GET", "/pipe-3", None, b"")]),
]


# ---------------------------------------------------------------- refused requests
#
# Each: name, data, status (exact), body_error.  The refusal carries
# Connection: close and the client connection closes; no request the client
# sent reaches the backend: neither PATH nor PATH-smug.  With body_error (the
# framing error is in the body), the head of PATH may have been forwarded
# (never a complete request that the backend answers, never PATH-smug).

def refuse(name, data, status, body_error=False):
    return {"name": name, "data": data, "status": status, "body_error": body_error}


def _post(path, headers, body):
    return req(b"POST " + path + b" HTTP/1.1", headers, body)


def _chunked_smug(path, headers=b"Transfer-Encoding: chunked\r\n"):
    """A chunked-looking body ending, then the smuggled request."""
    return _post(path, headers, b"0\r\n\r\n" + smug(path))


def _cl_smug(path, cl_headers):
    return _post(path, cl_headers, b"hello" + smug(path))


def _chunked_body(path, body):
    """A chunked POST whose body is bad, then the smuggled request."""
    return _post(path, b"Transfer-Encoding: chunked\r\n", body + smug(path))


def _len(path, extra=5):
    """Content-Length that would swallow the smuggled request of path."""
    return extra + len(smug(path))


REFUSED = [
    # CL.TE / TE.CL: both framings
    refuse("CL.TE", _post(b"/clte", b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % _len(b"/clte"),
                          b"0\r\n\r\n" + smug(b"/clte")), 400),
    refuse("TE.CL", _post(b"/tecl", b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                          b"%x\r\n" % len(smug(b"/tecl")) + smug(b"/tecl") + b"\r\n0\r\n\r\n"), 400),
    refuse("CL.TE with CL 0",
           _chunked_smug(b"/clte-0", b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"), 400),
    # TE other than exactly one bare chunked: 501
    refuse("TE 'identity, chunked'",
           _chunked_smug(b"/te-identity-chunked", b"Transfer-Encoding: identity, chunked\r\n"), 501),
    refuse("TE 'gzip, chunked'",
           _chunked_smug(b"/te-gzip-chunked", b"Transfer-Encoding: gzip, chunked\r\n"), 501),
    refuse("TE 'chunked, chunked'",
           _chunked_smug(b"/te-chunked-chunked", b"Transfer-Encoding: chunked, chunked\r\n"), 501),
    refuse("TE 'chunked, identity'",
           _chunked_smug(b"/te-chunked-identity", b"Transfer-Encoding: chunked, identity\r\n"), 501),
    refuse("TE two lines chunked + chunked",
           _chunked_smug(b"/te-two-lines", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 501),
    refuse("TE.TE chunked + 'x'",
           _chunked_smug(b"/te-te-x", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"), 501),
    refuse("TE 'chunked;x=1'",
           _chunked_smug(b"/te-chunked-param", b"Transfer-Encoding: chunked;x=1\r\n"), 501),
    refuse("TE 'gzip'", _chunked_smug(b"/te-gzip", b"Transfer-Encoding: gzip\r\n"), 501),
    refuse("TE 'identity'", _chunked_smug(b"/te-identity", b"Transfer-Encoding: identity\r\n"), 501),
    refuse("TE.TE 'xchunked'", _chunked_smug(b"/te-xchunked", b"Transfer-Encoding: xchunked\r\n"), 501),
    refuse("TE.TE 'chunked-x'", _chunked_smug(b"/te-chunked-x", b"Transfer-Encoding: chunked-x\r\n"), 501),
    # malformed TE lists and TE obfuscation: 400
    refuse("TE empty value", _chunked_smug(b"/te-empty", b"Transfer-Encoding: \r\n"), 400),
    refuse("TE empty element 'gzip,,chunked'",
           _chunked_smug(b"/te-empty-elem", b"Transfer-Encoding: gzip,,chunked\r\n"), 400),
    refuse("TE trailing comma 'chunked,'",
           _chunked_smug(b"/te-trailing-comma", b"Transfer-Encoding: chunked,\r\n"), 400),
    refuse("TE vertical tab ':\\x0bchunked'",
           _chunked_smug(b"/te-vtab", b"Transfer-Encoding:\x0bchunked\r\n"), 400),
    refuse("TE.TE 'Transfer-Encoding : chunked' (space before colon)",
           _post(b"/te-space-colon",
                 b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n" % _len(b"/te-space-colon"),
                 b"0\r\n\r\n" + smug(b"/te-space-colon")), 400),
    refuse("TE with TE.CL obfuscation 'Transfer-Encoding\\t: chunked'",
           _chunked_smug(b"/te-tab-colon", b"Transfer-Encoding\t: chunked\r\n"), 400),
    # Content-Length: 400
    refuse("CL.CL two differing lines",
           _cl_smug(b"/clcl", b"Content-Length: 5\r\nContent-Length: %d\r\n" % _len(b"/clcl")), 400),
    refuse("CL list '5, 50' differing",
           _cl_smug(b"/cl-list-differ", b"Content-Length: 5, %d\r\n" % _len(b"/cl-list-differ")), 400),
    refuse("CL '+5'", _cl_smug(b"/cl-plus", b"Content-Length: +5\r\n"), 400),
    refuse("CL '-1'", _cl_smug(b"/cl-minus", b"Content-Length: -1\r\n"), 400),
    refuse("CL '0x5'", _cl_smug(b"/cl-hex", b"Content-Length: 0x5\r\n"), 400),
    refuse("CL empty", _cl_smug(b"/cl-empty", b"Content-Length: \r\n"), 400),
    refuse("CL '5 5' (space inside)", _cl_smug(b"/cl-space", b"Content-Length: 5 5\r\n"), 400),
    refuse("CL '5,' (trailing comma)", _cl_smug(b"/cl-comma", b"Content-Length: 5,\r\n"), 400),
    refuse("CL 2^64+5 overflow", _cl_smug(b"/cl-overflow", b"Content-Length: 18446744073709551621\r\n"), 400),
    refuse("HTTP/1.0 with TE chunked",
           b"POST /http10-te HTTP/1.0\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"0\r\n\r\n" + smug(b"/http10-te"), 400),
    # header syntax: 400
    refuse("obs-fold",
           _cl_smug(b"/obs-fold", b"X-Folded: a\r\n b\r\nContent-Length: %d\r\n" % _len(b"/obs-fold")), 400),
    refuse("obs-fold continuing TE",
           _chunked_smug(b"/obs-fold-te", b"X-Folded: a\r\n Transfer-Encoding: chunked\r\n"), 400),
    refuse("obs-fold of TE value",
           _chunked_smug(b"/obs-fold-te-value", b"Transfer-Encoding:\r\n chunked\r\n"), 400),
    refuse("NUL in header value",
           _post(b"/nul-value", b"X-Nul: a\x00b\r\nContent-Length: 0\r\n", smug(b"/nul-value")), 400),
    refuse("NUL in header name",
           _post(b"/nul-name", b"X-N\x00ul: a\r\nContent-Length: 0\r\n", smug(b"/nul-name")), 400),
    refuse("\\x01 in header value",
           _post(b"/ctl-01", b"X-Ctl: a\x01b\r\nContent-Length: 0\r\n", smug(b"/ctl-01")), 400),
    refuse("ESC in header value",
           _post(b"/ctl-esc", b"X-Ctl: a\x1bb\r\nContent-Length: 0\r\n", smug(b"/ctl-esc")), 400),
    refuse("DEL in header value",
           _post(b"/ctl-del", b"X-Ctl: a\x7fb\r\nContent-Length: 0\r\n", smug(b"/ctl-del")), 400),
    refuse("bare CR in header value",
           _post(b"/bare-cr", b"X-Cr: a\rb\r\nContent-Length: 0\r\n", smug(b"/bare-cr")), 400),
    refuse("bare CR line end",
           _post(b"/bare-cr-eol", b"X-Cr: a\rContent-Length: 0\r\n", smug(b"/bare-cr-eol")), 400),
    refuse("CR CR LF line end",
           _post(b"/cr-cr-lf", b"X-Cr: a\r\r\nContent-Length: 0\r\n", smug(b"/cr-cr-lf")), 400),
    refuse("space before colon",
           _post(b"/ws-colon", b"X-A : 1\r\nContent-Length: 0\r\n", smug(b"/ws-colon")), 400),
    refuse("CL with space before colon",
           _cl_smug(b"/cl-ws-colon", b"Content-Length : %d\r\n" % _len(b"/cl-ws-colon")), 400),
    refuse("header without colon",
           _post(b"/no-colon", b"X-A 1\r\nContent-Length: 0\r\n", smug(b"/no-colon")), 400),
    refuse("duplicate Host",
           b"GET /dup-host HTTP/1.1\r\nHost: example.com\r\nHost: evil.example\r\n\r\n"
           + smug(b"/dup-host"), 400),
    refuse("missing Host on HTTP/1.1", b"GET /no-host HTTP/1.1\r\nX-A: 1\r\n\r\n" + smug(b"/no-host"), 400),
    # chunk framing errors (found in the body: the POST head may have gone)
    refuse("bare LF chunk lines",
           _chunked_body(b"/chunk-bare-lf", b"5\nhello\n0\n\n"), 400, True),
    refuse("bare LF after chunk data",
           _chunked_body(b"/chunk-data-lf", b"5\r\nhello\n0\r\n\r\n"), 400, True),
    refuse("bare LF after last chunk",
           _chunked_body(b"/chunk-last-lf", b"5\r\nhello\r\n0\n\n"), 400, True),
    refuse("bare LF ending the trailer section",
           _chunked_body(b"/chunk-trailer-lf", b"5\r\nhello\r\n0\r\nX-T: 1\n\n"), 400, True),
    refuse("chunk data longer than its size",
           _chunked_body(b"/chunk-long", b"3\r\nhello\r\n0\r\n\r\n"), 400, True),
    refuse("chunk size 0x5", _chunked_body(b"/chunk-0x", b"0x5\r\nhello\r\n0\r\n\r\n"), 400, True),
    refuse("chunk size -5", _chunked_body(b"/chunk-neg", b"-5\r\nhello\r\n0\r\n\r\n"), 400, True),
    refuse("chunk size +5", _chunked_body(b"/chunk-plus", b"+5\r\nhello\r\n0\r\n\r\n"), 400, True),
    refuse("chunk size 2^64+5 overflow",
           _chunked_body(b"/chunk-overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n"), 400, True),
    refuse("chunk size empty", _chunked_body(b"/chunk-empty", b"\r\nhello\r\n0\r\n\r\n"), 400, True),
    refuse("chunk size with space '5 5'",
           _chunked_body(b"/chunk-space", b"5 5\r\nhello\r\n0\r\n\r\n"), 400, True),
    refuse("NUL in chunk extension",
           _chunked_body(b"/chunk-ext-nul", b"5;a=\x00\r\nhello\r\n0\r\n\r\n"), 400, True),
    refuse("bare CR in chunk extension",
           _chunked_body(b"/chunk-ext-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n"), 400, True),
]


# ---------------------------------------------------------------- upstream responses
#
# The backend answers a GET of PATH with these exact bytes.
#   status:   what the client gets
#   framing:  the framing line the client's head must carry (name
#             case-insensitive, value exact), None = no framing header
#   body:     the body the client gets (None: not checked, e.g. a 502)
#   close:    the backend closes after sending (close-delimited body)
#   client_keepalive: True = the client connection stays usable (its next
#             request gets its own response); False = the response says
#             Connection: close and the connection closes after the body;
#             None = not checked (a 502)
#   upstream_reuse: False = sluice must not reuse that upstream connection:
#             the backend sees it closed, and the next request comes on
#             another connection

def resp(name, path, data, status, framing=None, body=None, close=False, client_keepalive=None,
         upstream_reuse=True):
    return {"name": name, "path": path, "data": data, "status": status, "framing": framing, "body": body,
            "close": close, "client_keepalive": client_keepalive, "upstream_reuse": upstream_reuse}


RESPONSES = [
    resp("Connection: Content-Length keeps the framing", "/r-conn-cl",
         b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
         200, "Content-Length: 5", b"hello", client_keepalive=True),
    resp("Connection: Transfer-Encoding keeps the framing", "/r-conn-te",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n"
         b"5\r\nhello\r\n0\r\n\r\n",
         200, "Transfer-Encoding: chunked", b"hello", client_keepalive=True),
    resp("Content-Length: 005 -> 5", "/r-cl-zeros",
         b"HTTP/1.1 200 OK\r\nContent-Length: 005\r\n\r\nhello", 200, "Content-Length: 5", b"hello",
         client_keepalive=True),
    resp("chunked with extensions and trailers re-framed", "/r-chunk-ext",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5;ext=1\r\nhello\r\n6;a=\"b\"\r\n world\r\n0;z\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n",
         200, "Transfer-Encoding: chunked", b"hello world", client_keepalive=True),
    resp("chunk sizes upper-case hex, leading zeros", "/r-chunk-hex",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\n00\r\n\r\n",
         200, "Transfer-Encoding: chunked", b"0123456789", client_keepalive=True),
    resp("close-delimited body", "/r-close-delimited",
         b"HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\nuntil the close", 200, None, b"until the close",
         close=True, client_keepalive=False),
    resp("TE gzip -> 502", "/r-te-gzip",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello", 502, upstream_reuse=False),
    resp("TE 'gzip, chunked' -> 502", "/r-te-gzip-chunked",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 502,
         upstream_reuse=False),
    resp("TE identity -> 502", "/r-te-identity",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nhello", 502, upstream_reuse=False),
    resp("CL + TE -> 502", "/r-cl-te",
         b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5\r\nhello\r\n0\r\n\r\n", 502, upstream_reuse=False),
    resp("two differing Content-Lengths -> 502", "/r-two-cl",
         b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello", 502, upstream_reuse=False),
    resp("Content-Length list '3, 5' -> 502", "/r-cl-list",
         b"HTTP/1.1 200 OK\r\nContent-Length: 3, 5\r\n\r\nhello", 502, upstream_reuse=False),
]


# ---------------------------------------------------------------- Upgrade (test_h2c_never_tunnels)
#
# The backend WOULD accept h2c: it answers 101 + Upgrade: h2c (and an HTTP/2
# SETTINGS frame) to any request carrying Upgrade: h2c, else 200.  Paths in
# FORCE_101 get a 101 whatever the request said.

H2C_HEADERS = (b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")
H2C_REQUEST = req(b"GET /h2c-1 HTTP/1.1", H2C_HEADERS)
H2C_SECOND = req(b"GET /h2c-2 HTTP/1.1")
H2C_101 = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
H2_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
WS_101 = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
          b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")

FORCE_101 = [
    # (name, request bytes, the backend's 101) -> the client gets a 502
    ("101 h2c to a plain GET", req(b"GET /force-101-h2c HTTP/1.1"), H2C_101),
    ("101 websocket to a plain GET", req(b"GET /force-101-ws HTTP/1.1"), WS_101),
    ("101 h2c to a websocket upgrade",
     req(b"GET /ws-gets-h2c HTTP/1.1", b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"), H2C_101),
]


# ---------------------------------------------------------------- access log

LOG_SECRET_QUERY = "QSTR-5e1f" * 300          # the earlier client's distinctive strings
LOG_SECRET_AGENT = "UAGENT-c0d7" * 300
LOG_FIRST = req(b"GET /log-first?" + LOG_SECRET_QUERY.encode() + b" HTTP/1.1",
                b"User-Agent: " + LOG_SECRET_AGENT.encode() + b"\r\n")
LOG_LONG_METHOD = "A" * 4095
LOG_SECOND = req(LOG_LONG_METHOD.encode() + b" /log-long-method HTTP/1.1")
LOG_QUOTE = req(b'GET /a"b HTTP/1.1')


def _show():
    for v in ACCEPTED:
        print("accept  %-70s -> 200, backend %s" % (v["name"], [(m, p, f, b[:20]) for m, p, f, b in v["fwd"]]))
    for v in REFUSED:
        print("refuse  %-70s -> %d%s" % (v["name"], v["status"], " (body error)" if v["body_error"] else ""))
    for v in RESPONSES:
        print("resp    %-70s -> %d %s" % (v["name"], v["status"], v["framing"] or ""))
    for name, _, _ in FORCE_101:
        print("upgrade %-70s -> 502" % name)


if __name__ == "__main__":
    _show()
