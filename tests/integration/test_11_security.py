"""Request smuggling and framing regressions: the RUNNER of security_corpus.

Real sluice in front of a raw recording backend (class Backend, in this
process): it keeps every byte it receives per connection, parses what it got
with a STRICT HTTP/1.1 parser (parse_message: CRLF line ends only, exactly one
of Content-Length (plain decimal) or Transfer-Encoding: chunked, chunk sizes
plain lower-case hex, no chunk extensions, no trailers, exactly one Host),
and answers each request with 200 and the request's path as its body, unless
a test's responder answers with crafted bytes.  Anything the strict parser
refuses is a failure reported with the bytes.

What the client gets is parsed with the same strict parser: sluice writes
every head and chunk line the client sees.

Each test runs one sluice and loops over its vectors, collecting problems,
and fails once with all of them.
"""
import json
import re
import socket
import threading
import time

import security_corpus as corpus
from harness import Closed, Conn, TestFailure, check, wait_for
from test_6_edge import one_upstream

UPSTREAM = {"timeouts": {"connect_ms": 1000, "response_header_ms": 3000}}
IO_TIMEOUT = 3.0

HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "http2-settings", "expect"}
FRAMING = {"content-length", "transfer-encoding"}
ADDED = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"}
NEVER_NAMED = {"content-length", "transfer-encoding", "host"}


# ---------------------------------------------------------------- the strict parser

class ParseError(Exception):
    pass


class Need(Exception):
    """More bytes are needed."""


_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQ_LINE = re.compile(rb"^(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.1$")
_STATUS_LINE = re.compile(rb"^HTTP/1\.1 ([1-5][0-9][0-9]) ([\t\x20-\x7e\x80-\xff]*)$")
_HEADER = re.compile(rb"^(" + _TOKEN + rb"):[ \t]*(.*?)[ \t]*$", re.S)
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")
_HEX = re.compile(rb"^(0|[1-9a-f][0-9a-f]*)$")


class Msg:
    """One parsed message."""

    def __init__(self):
        self.method = self.target = None
        self.status = 0
        self.reason = ""
        self.headers = []       # (name, value) as received, value OWS-trimmed
        self.head = b""
        self.body = b""
        self.chunks = []        # sizes of the chunks, for chunked bodies
        self.framing = None     # ("length", n), ("chunked",), ("close",) or None
        self.conn = None        # the backend connection id
        self.start = self.end = 0

    def hall(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def h(self, name):
        v = self.hall(name)
        return v[0] if v else None

    def framing_lines(self):
        return ["%s: %s" % (k, v) for k, v in self.headers if k.lower() in FRAMING]

    def __repr__(self):
        return "<Msg %s %s %r>" % (self.method or self.status, self.target or "", self.head[:200])


def _line(buf, pos):
    """One CRLF-ended line at pos: (line, next pos).  A bare LF or CR is an error."""
    i = buf.find(b"\n", pos)
    if i < 0:
        j = buf.find(b"\r", pos)
        if 0 <= j < len(buf) - 1:
            raise ParseError("bare CR at offset %d" % j)
        raise Need()
    if i == pos or buf[i - 1] != 0x0D:
        raise ParseError("bare LF at offset %d (line %r)" % (i, bytes(buf[pos:i])[:80]))
    line = bytes(buf[pos:i - 1])
    if b"\r" in line:
        raise ParseError("bare CR in line %r" % line[:80])
    return line, i + 1


def parse_message(buf, pos, kind, eof=False, head_request=False):
    """Parse one request (kind "request") or response at buf[pos:].
    Returns (Msg, end); raises Need when incomplete, ParseError when not
    strictly valid.  A response without framing ends at eof."""
    m = Msg()
    start = pos
    line, pos = _line(buf, pos)
    if kind == "request":
        g = _REQ_LINE.match(line)
        if not g:
            raise ParseError("bad request line %r" % line[:200])
        m.method, m.target = g.group(1).decode("latin-1"), g.group(2).decode("latin-1")
    else:
        g = _STATUS_LINE.match(line)
        if not g:
            raise ParseError("bad status line %r" % line[:200])
        m.status, m.reason = int(g.group(1)), g.group(2).decode("latin-1")
    while True:
        line, pos = _line(buf, pos)
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            raise ParseError("obs-fold line %r" % line[:80])
        g = _HEADER.match(line)
        if not g:
            raise ParseError("bad header line %r" % line[:120])
        if _CTL.search(g.group(2)):
            raise ParseError("control byte in header value %r" % line[:120])
        m.headers.append((g.group(1).decode("latin-1"), g.group(2).decode("latin-1")))
    m.head = bytes(buf[start:pos])
    cls, tes = m.hall("content-length"), m.hall("transfer-encoding")
    if len(cls) > 1:
        raise ParseError("%d Content-Length headers %r" % (len(cls), cls))
    if len(tes) > 1:
        raise ParseError("%d Transfer-Encoding headers %r" % (len(tes), tes))
    if cls and tes:
        raise ParseError("both Content-Length and Transfer-Encoding")
    if tes and tes[0] != "chunked":
        raise ParseError("Transfer-Encoding %r is not exactly 'chunked'" % tes[0])
    if cls and not _DECIMAL.match(cls[0]):
        raise ParseError("Content-Length %r is not plain decimal" % cls[0])
    if kind == "request" and len(m.hall("host")) != 1:
        raise ParseError("%d Host headers" % len(m.hall("host")))
    bodiless = kind == "response" and (m.status < 200 or m.status in (204, 304) or head_request)
    if bodiless:
        if tes and m.status < 200:
            raise ParseError("Transfer-Encoding on a %d" % m.status)
        return m, pos
    if tes:
        m.framing = ("chunked",)
        body = bytearray()
        while True:
            line, pos = _line(buf, pos)
            if not _HEX.match(line):
                raise ParseError("chunk size line %r is not plain lower-case hex" % line[:80])
            n = int(line, 16)
            if n == 0:
                line, pos = _line(buf, pos)
                if line:
                    raise ParseError("trailer after the last chunk: %r" % line[:80])
                break
            if len(buf) < pos + n + 2:
                raise Need()
            body += buf[pos:pos + n]
            if buf[pos + n:pos + n + 2] != b"\r\n":
                raise ParseError("chunk data not followed by CRLF: %r" % bytes(buf[pos + n:pos + n + 10]))
            pos += n + 2
            m.chunks.append(n)
        m.body = bytes(body)
    elif cls:
        n = int(cls[0])
        m.framing = ("length", n)
        if len(buf) < pos + n:
            raise Need()
        m.body = bytes(buf[pos:pos + n])
        pos += n
    elif kind == "response":
        m.framing = ("close",)
        if not eof:
            raise Need()
        m.body = bytes(buf[pos:])
        pos = len(buf)
    return m, pos


def read_strict(c, timeout=IO_TIMEOUT, head_request=False):
    """The next final response on harness Conn c, parsed strictly (a
    ParseError is a TestFailure, with the bytes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            m, end = parse_message(c.buf, 0, "response", eof=c.eof, head_request=head_request)
        except Need:
            if c.eof:
                raise Closed("connection closed mid-response (have %r)" % bytes(c.buf[:300]))
            c._fill(deadline)
            continue
        except ParseError as e:
            raise TestFailure("sluice sent a response the strict parser refuses: %s: %r"
                              % (e, bytes(c.buf[:400])))
        del c.buf[:end]
        if 100 <= m.status < 200 and m.status != 101:
            continue
        return m


# ---------------------------------------------------------------- the recording backend

class BConn:
    def __init__(self, ident, sock):
        self.id = ident
        self.sock = sock
        self.data = bytearray()     # every byte received
        self.pos = 0                # parsed up to here
        self.msgs = []
        self.error = None
        self.eof = False            # the peer (sluice) closed, or we did
        self.we_closed = False
        self.mode = "http"          # "http", "raw" (after a 101: bytes only), "error"


class Backend:
    """A threaded socket server on 127.0.0.1 that records every byte per
    connection and answers each strictly parsed request.  responder(backend,
    msg) returns None (the default answer: 200, the path as the body) or
    (bytes, action), action None, "close" (close after sending) or "raw"
    (stop parsing: the connection switched protocols)."""

    def __init__(self, responder=None):
        self.responder = responder
        self.lock = threading.Lock()
        self.conns = []
        self.msgs = []
        self.errors = []
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()

    def stop(self):
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        with self.lock:
            conns = list(self.conns)
        for bc in conns:
            try:
                bc.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                bc = BConn(len(self.conns), s)
                self.conns.append(bc)
            threading.Thread(target=self._serve, args=(bc,), daemon=True).start()

    def _serve(self, bc):
        try:
            while True:
                d = bc.sock.recv(65536)
                if not d:
                    break
                with self.lock:
                    bc.data += d
                if bc.mode == "http" and not self._parse(bc):
                    break
        except OSError:
            pass
        finally:
            with self.lock:
                bc.eof = True
            try:
                bc.sock.close()
            except OSError:
                pass

    def _parse(self, bc):
        """Parse and answer what is complete; False to end the connection."""
        while True:
            try:
                m, end = parse_message(bc.data, bc.pos, "request")
            except Need:
                return True
            except ParseError as e:
                with self.lock:
                    bc.error = str(e)
                    bc.mode = "error"
                    self.errors.append("backend connection %d: strict parse: %s; bytes from offset %d: %r"
                                       % (bc.id, e, bc.pos, bytes(bc.data[bc.pos:bc.pos + 400])))
                bc.we_closed = True
                return False
            m.conn, m.start, m.end = bc.id, bc.pos, end
            with self.lock:
                bc.pos = end
                bc.msgs.append(m)
                self.msgs.append(m)
            ans = self.responder(self, m) if self.responder else None
            if ans is None:
                body = m.target.encode("latin-1")
                ans = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, None)
            bc.sock.sendall(ans[0])
            if ans[1] == "close":
                bc.we_closed = True
                return False
            if ans[1] == "raw":
                bc.mode = "raw"
                return True

    def by_path(self, path):
        with self.lock:
            return [m for m in self.msgs if m.target == path]

    def unexpected(self, known):
        """Problems for every request the backend got whose path is not in known."""
        with self.lock:
            msgs = list(self.msgs)
        return ["backend got a request no client sent as such: connection %d: %r" % (m.conn, m.head[:300])
                for m in msgs if m.target not in known]

    def conn(self, ident):
        with self.lock:
            return self.conns[ident]

    def sweep(self, allowed_partial=()):
        """Problems over all connections: strict-parse errors, and bytes left
        after the last complete message (allowed only when they start a
        request whose path is in allowed_partial)."""
        problems = list(self.errors)
        with self.lock:
            conns = list(self.conns)
        for bc in conns:
            if bc.mode != "http":
                continue
            rest = bytes(bc.data[bc.pos:])
            if not rest:
                continue
            g = re.match(rb"^[^ ]+ ([^ ]+) HTTP/1\.1\r\n", rest)
            if g and g.group(1).decode("latin-1") in allowed_partial:
                continue
            problems.append("backend connection %d: %d bytes after its last complete message%s: %r"
                            % (bc.id, len(rest), " (still open)" if not bc.eof else "", rest[:300]))
        return problems


def start(env, backend, **kw):
    return one_upstream(env, [backend.addr], upstream_extra=UPSTREAM, **kw)


def get_req(path):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: example.com\r\n\r\n"


def exchange(port, data, timeout=IO_TIMEOUT):
    with Conn(port, timeout) as c:
        c.send(data)
        return read_strict(c, timeout)


def victim(s, b, path, problems, name):
    """A request on a new client connection gets its own response, and the
    backend sees it once, complete."""
    try:
        r = exchange(s.port, get_req(path))
    except (Closed, TestFailure, OSError) as e:
        problems.append("%s: victim %s: %s" % (name, path, e))
        return None
    if (r.status, r.body) != (200, path.encode()):
        problems.append("%s: victim %s got %d %r" % (name, path, r.status, r.head + r.body))
    seen = b.by_path(path)
    if len(seen) != 1:
        problems.append("%s: backend saw victim %s %d times" % (name, path, len(seen)))
        return None
    return seen[0]


# ---------------------------------------------------------------- what the client sent (lenient)

def client_requests(data):
    """The requests in an accepted vector as RFC 9112 reads them (LF line
    ends, CL lists, chunk extensions and trailers allowed): a list of
    dicts (method, target, headers [(lower name, value)], body)."""
    out, pos = [], 0
    while pos < len(data):
        lines = []
        while True:
            i = data.index(b"\n", pos)
            line, pos = data[pos:i], i + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                break
            lines.append(line)
        method, target, _ = lines[0].decode("latin-1").split(" ")
        headers = []
        for line in lines[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.lower(), v.strip(" \t")))
        te = [v for k, v in headers if k == "transfer-encoding"]
        cl = [v for k, v in headers if k == "content-length"]
        body = b""
        if te:
            parts = []
            while True:
                i = data.index(b"\n", pos)
                n = int(data[pos:i].split(b";")[0].strip(), 16)
                pos = i + 1
                if n == 0:
                    while True:
                        i = data.index(b"\n", pos)
                        t, pos = data[pos:i], i + 1
                        if t in (b"", b"\r"):
                            break
                    break
                parts.append(data[pos:pos + n])
                pos += n + 2
            body = b"".join(parts)
        elif cl:
            n = int(cl[0].split(",")[0])
            body, pos = data[pos:pos + n], pos + n
        out.append({"method": method, "target": target, "headers": headers, "body": body})
    return out


def forwarded_view(headers):
    """(host values, the other end-to-end headers sorted by name, stable)."""
    named = set()
    for k, v in headers:
        if k == "connection":
            named |= {t.strip(" \t").lower() for t in v.split(",")}
    named -= NEVER_NAMED
    hosts = [v for k, v in headers if k == "host"]
    rest = [(k, v) for k, v in headers if k not in HOP | FRAMING | named | {"host"}]
    return hosts, sorted(rest, key=lambda kv: kv[0])


# ---------------------------------------------------------------- accepted requests

def _check_accepted(s, b, v, problems):
    name = v["name"]
    paths = [p for _, p, _, _ in v["fwd"]]
    with Conn(s.port, IO_TIMEOUT) as c:
        c.send(v["data"])
        for p in paths:
            r = read_strict(c)
            if (r.status, r.body) != (200, p.encode()):
                problems.append("%s: response for %s: %d %r" % (name, p, r.status, r.head + r.body[:200]))
        if v["keepalive"]:
            nxt = paths[-1] + "-next"
            c.send(get_req(nxt))
            r = read_strict(c)
            if (r.status, r.body) != (200, nxt.encode()):
                problems.append("%s: next request on the same connection got %d %r"
                                % (name, r.status, r.head + r.body))
        elif not c.wait_closed(2.0):
            problems.append("%s: connection not closed" % name)
    sent = client_requests(v["data"])
    if len(sent) != len(v["fwd"]):
        problems.append("%s: corpus: %d requests in the bytes, %d in fwd" % (name, len(sent), len(v["fwd"])))
        return
    for (method, path, framing, body), cr in zip(v["fwd"], sent):
        if (cr["method"], cr["target"], cr["body"]) != (method, path, body):
            problems.append("%s: corpus: fwd %r disagrees with the bytes %r" % (name, (method, path, body), cr))
        seen = b.by_path(path)
        if len(seen) != 1:
            problems.append("%s: backend saw %s %d times" % (name, path, len(seen)))
            continue
        m = seen[0]
        what = "%s: backend %s" % (name, path)
        if m.method != method:
            problems.append("%s: method %r, want %r" % (what, m.method, method))
        if m.body != body:
            problems.append("%s: body %r, want %r" % (what, m.body[:200], body[:200]))
        fl = m.framing_lines()
        if framing is None:
            if fl:
                problems.append("%s: framing %r, want none" % (what, fl))
        elif len(fl) != 1 or fl[0].split(":")[0].lower() != framing.split(":")[0].lower() \
                or fl[0].split(":", 1)[1] != framing.split(":", 1)[1]:
            problems.append("%s: framing %r, want [%r] (head %r)" % (what, fl, framing, m.head))
        got = [(k.lower(), val) for k, val in m.headers]
        for k, val in got:
            if k in HOP or k in v["absent"]:
                problems.append("%s: forwarded %s: %s" % (what, k, val))
        for k, val in v["present"]:
            if (k, val) not in got:
                problems.append("%s: missing %s: %r (head %r)" % (what, k, val, m.head))
        want_hosts, want_rest = forwarded_view(cr["headers"])
        got_hosts = [val for k, val in got if k == "host"]
        got_rest = sorted([(k, val) for k, val in got if k not in ADDED | FRAMING | {"host"}],
                          key=lambda kv: kv[0])
        if got_hosts != want_hosts:
            problems.append("%s: Host %r, want %r" % (what, got_hosts, want_hosts))
        if got_rest != want_rest:
            problems.append("%s: headers %r, want %r" % (what, got_rest, want_rest))
    with b.lock:
        msgs = list(b.msgs)
    for m in msgs:
        if m.target.endswith("-smug") and any(m.target.startswith(p) for p in paths):
            problems.append("%s: a request hidden in a body reached the backend: %r" % (name, m.head))


def test_request_vectors_accepted(env):
    with Backend() as b:
        s = start(env, b)
        problems = []
        for v in corpus.ACCEPTED:
            try:
                _check_accepted(s, b, v, problems)
            except (Closed, TestFailure, OSError) as e:
                problems.append("%s: %s" % (v["name"], e))
            victim(s, b, v["fwd"][-1][1] + "-victim", problems, v["name"])
            if not s.proc.alive():
                problems.append("%s: sluice died: %s" % (v["name"], s.proc.stderr()[-500:]))
                break
        time.sleep(0.1)
        known = set()
        for v in corpus.ACCEPTED:
            paths = [p for _, p, _, _ in v["fwd"]]
            known |= set(paths) | {paths[-1] + "-next", paths[-1] + "-victim"}
        problems += b.unexpected(known)
        problems += b.sweep()
        check(not problems, "\n".join(problems))


# ---------------------------------------------------------------- refused requests

def _path_of(data):
    return data.split(b" ", 2)[1].decode("latin-1")


def _check_refused(s, v, problems):
    name, path = v["name"], _path_of(v["data"])
    with Conn(s.port, IO_TIMEOUT) as c:
        try:
            c.send(v["data"])
        except OSError:
            pass
        r = read_strict(c)
        if r.status != v["status"]:
            problems.append("%s: status %d, want %d (%r)" % (name, r.status, v["status"], r.head[:200]))
        if (r.h("connection") or "").lower() != "close":
            problems.append("%s: no Connection: close (%r)" % (name, r.head[:200]))
        if not c.wait_closed(2.0):
            problems.append("%s: connection left open after the %d" % (name, r.status))


def test_request_vectors_refused(env):
    with Backend() as b:
        s = start(env, b)
        problems = []
        paths = []
        for v in corpus.REFUSED:
            path = _path_of(v["data"])
            paths.append((v, path))
            try:
                _check_refused(s, v, problems)
            except (Closed, TestFailure, OSError) as e:
                problems.append("%s: %s" % (v["name"], e))
            victim(s, b, path + "-victim", problems, v["name"])
            if not s.proc.alive():
                problems.append("%s: sluice died: %s" % (v["name"], s.proc.stderr()[-500:]))
                break
        time.sleep(0.1)
        # nothing the client sent reached the backend as a request of its own
        with b.lock:
            conns = [(bc.id, bytes(bc.data)) for bc in b.conns]
        for v, path in paths:
            for p in ([path + "-smug"] if v["body_error"] else [path, path + "-smug"]):
                for m in b.by_path(p):
                    problems.append("%s: backend got %s: %r" % (v["name"], p, m.head + m.body[:100]))
                line = (" %s HTTP/1" % p).encode()
                for ident, data in conns:
                    if line in data:
                        i = data.index(line)
                        problems.append("%s: backend connection %d got the bytes of %s: %r"
                                        % (v["name"], ident, p, data[max(0, i - 60):i + 100]))
            if v["body_error"]:
                for m in b.by_path(path):
                    problems.append("%s: backend got a complete request for a body refused mid-way: %r"
                                    % (v["name"], m.head + m.body[:100]))
        problems += b.unexpected({p + "-victim" for v, p in paths})
        problems += b.sweep(allowed_partial={p for v, p in paths if v["body_error"]})
        check(not problems, "\n".join(problems))


# ---------------------------------------------------------------- upstream responses

def test_response_vectors(env):
    crafted = {v["path"]: v for v in corpus.RESPONSES}

    def responder(backend, m):
        v = crafted.get(m.target)
        if v is None:
            return None
        return v["data"], ("close" if v["close"] else None)

    with Backend(responder) as b:
        s = start(env, b)
        problems = []
        for v in corpus.RESPONSES:
            name, path = v["name"], v["path"]
            try:
                with Conn(s.port, IO_TIMEOUT) as c:
                    c.send(get_req(path))
                    r = read_strict(c)
                    if r.status != v["status"]:
                        problems.append("%s: status %d, want %d (%r)" % (name, r.status, v["status"], r.head))
                    fl = r.framing_lines()
                    if v["status"] == 200:
                        want = [v["framing"]] if v["framing"] else []
                        if fl != want:
                            problems.append("%s: client framing %r, want %r (head %r)" % (name, fl, want, r.head))
                    if v["body"] is not None and r.body != v["body"]:
                        problems.append("%s: body %r, want %r" % (name, r.body, v["body"]))
                    if r.status == 200 and (r.h("x-trailer") or r.h("x-other")):
                        problems.append("%s: trailer moved into the head %r" % (name, r.head))
                    if v["client_keepalive"] is True:
                        if (r.h("connection") or "").lower() == "close":
                            problems.append("%s: Connection: close on a keep-alive response" % name)
                        c.send(get_req(path + "-next"))
                        r2 = read_strict(c)
                        if (r2.status, r2.body) != (200, (path + "-next").encode()):
                            problems.append("%s: next request on the connection got %d %r"
                                            % (name, r2.status, r2.head + r2.body))
                    elif v["client_keepalive"] is False:
                        if (r.h("connection") or "").lower() != "close":
                            problems.append("%s: no Connection: close (%r)" % (name, r.head))
                        if not c.wait_closed(2.0):
                            problems.append("%s: client connection not closed after the body" % name)
            except (Closed, TestFailure, OSError) as e:
                problems.append("%s: %s" % (name, e))
            seen = b.by_path(path)
            if len(seen) != 1:
                problems.append("%s: backend saw %s %d times" % (name, path, len(seen)))
            elif not v["upstream_reuse"]:
                bc = b.conn(seen[0].conn)
                if not wait_for(lambda: bc.eof, 2.0):
                    problems.append("%s: sluice kept the upstream connection after the bad response" % name)
            vm = victim(s, b, path + "-victim", problems, name)
            if vm is not None and seen and not v["upstream_reuse"] and vm.conn == seen[0].conn:
                problems.append("%s: next request reused the upstream connection of the bad response" % name)
            if not s.proc.alive():
                problems.append("%s: sluice died: %s" % (name, s.proc.stderr()[-500:]))
                break
        problems += b.unexpected({v["path"] + x for v in corpus.RESPONSES for x in ("", "-next", "-victim")})
        problems += b.sweep()
        check(not problems, "\n".join(problems))


# ---------------------------------------------------------------- Upgrade: h2c never tunnels

def test_h2c_never_tunnels(env):
    forced = {_path_of(data): answer for _, data, answer in corpus.FORCE_101}
    switched = []

    def responder(backend, m):
        if m.target in forced:
            switched.append(m.target)
            return forced[m.target] + corpus.H2_SETTINGS_FRAME, "raw"
        if "h2c" in (m.h("upgrade") or "").lower():
            switched.append(m.target)
            return corpus.H2C_101 + corpus.H2_SETTINGS_FRAME, "raw"
        return None

    with Backend(responder) as b:
        s = start(env, b)
        problems = []
        with Conn(s.port, IO_TIMEOUT) as c:
            for data in (corpus.H2C_REQUEST, corpus.H2C_SECOND, corpus.H2C_REQUEST.replace(b"/h2c-1", b"/h2c-3")):
                path = _path_of(data)
                try:
                    c.send(data)
                    r = read_strict(c)
                except (Closed, TestFailure, OSError) as e:
                    problems.append("%s: %s" % (path, e))
                    break
                if (r.status, r.body) != (200, path.encode()):
                    problems.append("%s: got %d %r" % (path, r.status, r.head + r.body[:100]))
                if r.h("upgrade") is not None:
                    problems.append("%s: Upgrade in the response %r" % (path, r.head))
                seen = b.by_path(path)
                if len(seen) != 1:
                    problems.append("%s: backend saw it %d times" % (path, len(seen)))
                    continue
                for hn in ("upgrade", "http2-settings", "connection"):
                    if seen[0].h(hn) is not None:
                        problems.append("%s: backend got %s: %s" % (path, hn, seen[0].h(hn)))
            extra = c.read_some(0.1)
            if extra:
                problems.append("bytes after the h2c responses: %r" % extra)
        if switched:
            problems.append("the backend switched to h2c for %r" % switched)
        for name, data, _ in corpus.FORCE_101:
            path = _path_of(data)
            try:
                with Conn(s.port, IO_TIMEOUT) as c:
                    c.send(data)
                    r = read_strict(c)
                    if r.status != 502:
                        problems.append("%s: got %d %r, want 502" % (name, r.status, r.head + r.body[:100]))
                    extra = c.read_some(0.1)
                    if extra:
                        problems.append("%s: bytes after the 502: %r" % (name, extra))
            except (Closed, TestFailure, OSError) as e:
                problems.append("%s: %s" % (name, e))
            seen = b.by_path(path)
            if len(seen) == 1:
                bc = b.conn(seen[0].conn)
                if not wait_for(lambda: bc.eof, 2.0):
                    problems.append("%s: sluice kept the upstream connection that answered 101" % name)
                elif len(bc.data) != seen[0].end:
                    problems.append("%s: bytes sent on the switched upstream connection: %r"
                                    % (name, bytes(bc.data[seen[0].end:])[:200]))
            else:
                problems.append("%s: backend saw it %d times" % (name, len(seen)))
            victim(s, b, path + "-victim", problems, name)
        problems += b.unexpected({"/h2c-1", "/h2c-2", "/h2c-3"} | set(forced) | {p + "-victim" for p in forced})
        problems += b.sweep()
        check(not problems, "\n".join(problems))


# ---------------------------------------------------------------- TLS listeners

def test_tls_listener_same_rules(env):
    """The framing rules hold on a TLS listener as on a plain one: the
    issue's smuggling vector, a coding list, and an h2c upgrade."""
    import ssl
    import certs
    from harness import free_port
    pki = certs.make(env)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca_file)
    listener = {"name": "https", "address": "127.0.0.1:%d" % free_port(),
                "tls": {"certificates": [pki["default"].cfg()]}}
    with Backend() as b:
        s = start(env, b, listeners=[listener])
        problems = []

        def tls_exchange(data):
            with Conn(s.port, IO_TIMEOUT, tls=ctx, sni="localhost") as c:
                c.send(data)
                r = read_strict(c)
                return r, c.read_some(0.2)

        # Connection: Content-Length keeps the framing; the body is the body
        body = b"GET /tls-hop-smug HTTP/1.1\r\nHost: x\r\nX-Ignore: "
        data = (b"POST /tls-hop HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n"
                b"Connection: Content-Length\r\n\r\n" % len(body)) + body
        r, _ = tls_exchange(data)
        if (r.status, r.body) != (200, b"/tls-hop"):
            problems.append("hop-by-hop CL over TLS: got %d %r" % (r.status, r.head + r.body[:100]))
        seen = b.by_path("/tls-hop")
        if len(seen) != 1 or seen[0].framing_lines() != ["Content-Length: %d" % len(body)] or seen[0].body != body:
            problems.append("hop-by-hop CL over TLS: backend saw %r" % [(m.head, m.body) for m in seen])
        r, _ = tls_exchange(get_req("/tls-victim"))
        if (r.status, r.body) != (200, b"/tls-victim"):
            problems.append("victim over TLS got %d %r" % (r.status, r.head + r.body[:100]))

        # a coding list is refused with 501, never forwarded
        data = (b"POST /tls-te HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\n")
        r, _ = tls_exchange(data)
        if r.status != 501:
            problems.append("TE 'gzip, chunked' over TLS: got %d, want 501" % r.status)

        # h2c: the upgrade is dropped, the request goes on as HTTP/1.1
        data = (b"GET /tls-h2c HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        r, extra = tls_exchange(data)
        if (r.status, r.body) != (200, b"/tls-h2c") or r.h("upgrade") is not None or extra:
            problems.append("h2c over TLS: got %d %r then %r" % (r.status, r.head + r.body[:100], extra))
        for m in b.by_path("/tls-h2c"):
            for hn in ("upgrade", "http2-settings", "connection"):
                if m.h(hn) is not None:
                    problems.append("h2c over TLS: backend got %s: %s" % (hn, m.h(hn)))
        problems += b.unexpected({"/tls-hop", "/tls-victim", "/tls-h2c"})
        problems += b.sweep()
        check(not problems, "\n".join(problems))


# ---------------------------------------------------------------- access log

def _marked(logged, full):
    """logged is full, or a prefix of it then the marker ...[+N] with N the rest."""
    if logged == full:
        return True
    g = re.match(r"^(.*)\.\.\.\[\+(\d+)\]$", logged, re.S)
    return bool(g) and full.startswith(g.group(1)) and len(g.group(1)) + int(g.group(2)) == len(full)


def _log_clients(s):
    """Send the three access-log requests; returns {label: (port, status)}."""
    out = {}
    for label, data in (("first", corpus.LOG_FIRST), ("long", corpus.LOG_SECOND), ("quote", corpus.LOG_QUOTE)):
        with Conn(s.port, IO_TIMEOUT) as c:
            port = c.sock.getsockname()[1]
            c.send(data)
            r = read_strict(c)
            out[label] = (port, r.status)
    return out


def _log_bytes(s):
    try:
        with open(s.log_path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def _log_line_for(s, port, key):
    pat = key % port

    def find():
        lines = [ln for ln in _log_bytes(s).split(b"\n") if pat in ln]
        return lines or None
    return wait_for(find, 3.0) or []


def test_access_log_text(env):
    with Backend() as b:
        s = start(env, b)
        clients = _log_clients(s)
        problems = []
        key = b" 127.0.0.1:%d "
        lines = {lb: _log_line_for(s, port, key) for lb, (port, _) in clients.items()}
        for lb, ls in lines.items():
            if len(ls) != 1:
                problems.append("%s: %d log lines for its client: %r" % (lb, len(ls), [ln[:200] for ln in ls]))
        if len(lines["long"]) == 1:
            ln = lines["long"][0]
            if b"\x00" in ln:
                problems.append("long method: NUL in its log line: %r" % ln[:300])
            for secret in ("QSTR-", "UAGENT-"):
                if secret.encode() in ln:
                    i = ln.index(secret.encode())
                    problems.append("long method: the earlier client's %r in its log line: ...%r..."
                                    % (secret, ln[max(0, i - 80):i + 80]))
            g = re.search(rb'"(A+\.\.\.\[\+\d+\])', ln)
            if not g or not _marked(g.group(1).decode(), corpus.LOG_LONG_METHOD):
                problems.append("long method: no correct ...[+N] marker for the 4095-byte method: %r"
                                % (ln[:120] + b" ... " + ln[-300:]))
            if b" status=%d " % clients["long"][1] not in ln:
                problems.append("long method: no status=%d in its line: %r" % (clients["long"][1], ln[-300:]))
        if len(lines["first"]) == 1:
            ln = lines["first"][0].decode("latin-1")
            g = re.search(r'"GET (\S+) HTTP/1\.1" host=', ln)
            full = "/log-first?" + corpus.LOG_SECRET_QUERY
            if not g or not _marked(g.group(1), full):
                problems.append("first: target not logged whole nor cut with a correct marker: %r" % ln[:300])
        if len(lines["quote"]) == 1:
            ln = lines["quote"][0]
            if ln.count(b'"') != 2:
                problems.append("quote: raw '\"' inside the quoted request field: %r" % ln)
            if b'"GET /a\\x22b HTTP/1.1"' not in ln:
                problems.append('quote: want "GET /a\\x22b HTTP/1.1" (status %d): %r' % (clients["quote"][1], ln))
        if b"\x00" in _log_bytes(s):
            problems.append("NUL byte in the access log")
        problems += b.sweep()
        check(not problems, "\n".join(problems))


def test_access_log_json(env):
    with Backend() as b:
        s = start(env, b, access_log_format="json")
        clients = _log_clients(s)
        problems = []
        key = b'"client":"127.0.0.1:%d"'
        lines = {lb: _log_line_for(s, port, key) for lb, (port, _) in clients.items()}
        raw = _log_bytes(s)
        if b"\x00" in raw:
            problems.append("NUL byte in the access log")
        for i, ln in enumerate(raw.split(b"\n")[:-1]):
            try:
                json.loads(ln.decode("utf-8"))
            except ValueError as e:
                problems.append("line %d is not JSON (%s): %r" % (i + 1, e, ln[:300]))
        objs = {}
        for lb, ls in lines.items():
            if len(ls) != 1:
                problems.append("%s: %d log lines for its client" % (lb, len(ls)))
                continue
            try:
                objs[lb] = json.loads(ls[0].decode("utf-8"))
            except ValueError:
                continue
            if objs[lb].get("status") != clients[lb][1]:
                problems.append("%s: status %r, client got %d" % (lb, objs[lb].get("status"), clients[lb][1]))
        if "long" in objs:
            ln = lines["long"][0]
            for secret in ("QSTR-", "UAGENT-"):
                if secret.encode() in ln:
                    problems.append("long method: the earlier client's %r in its log line" % secret)
            meth = objs["long"].get("method")
            if not isinstance(meth, str) or not _marked(meth, corpus.LOG_LONG_METHOD):
                problems.append("long method: method field %r is neither whole nor cut with a correct marker"
                                % (meth if not isinstance(meth, str) else meth[:40] + "..." + meth[-40:]))
        if "first" in objs:
            tgt = objs["first"].get("target")
            if not isinstance(tgt, str) or not _marked(tgt, "/log-first?" + corpus.LOG_SECRET_QUERY):
                problems.append("first: target %r neither whole nor cut with a correct marker"
                                % (tgt if not isinstance(tgt, str) else tgt[-60:]))
        if "quote" in objs and objs["quote"].get("target") not in ('/a"b', "/a\\x22b"):
            problems.append("quote: target %r" % objs["quote"].get("target"))
        problems += b.sweep()
        check(not problems, "\n".join(problems))
