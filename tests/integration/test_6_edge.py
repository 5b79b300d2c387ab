"""Edge cases end to end: request smuggling, awkward pipelining, upstream
connect timeouts and retries, stale and dirty pooled connections, passive
health, Upgrade tunnels, aborted uploads, back-pressure, concurrency, reload
under load, limits.

Some tests run a tiny backend inside the test process (class Mini) where
sluice-echo cannot misbehave in the way needed.
"""
import hashlib
import json
import os
import random
import signal
import socket
import threading
import time

from harness import (BUILD, SLUICE, Closed, Conn, Sluice, TestFailure, build_request, check, eq,
                     free_port, get, pattern, request, sha256, uh, wait_for, wait_port)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"


# ---------------------------------------------------------------- helpers

def simple(env, upstream_extra=None, **kw):
    e = env.echo("e")
    up = {"name": "u", "targets": [{"address": e.addr}]}
    up.update(upstream_extra or {})
    cfg = env.config(upstreams=[up], routes=[{"name": "r", "match": {}, "upstream": "u"}], **kw)
    return e, env.sluice(cfg)


def one_upstream(env, addrs, upstream_extra=None, **kw):
    up = {"name": "u", "targets": [{"address": a} for a in addrs]}
    up.update(upstream_extra or {})
    cfg = env.config(upstreams=[up], routes=[{"name": "r", "match": {}, "upstream": "u"}], **kw)
    return env.sluice(cfg)


def healthy(s, what="follow-up request on a new connection"):
    """The proxy still serves: a fresh connection gets a 200."""
    check(s.proc.alive(), "sluice died: %s" % s.proc.stderr()[-500:])
    r = get(s.port, "/after-check")
    eq(r.status, 200, what)


def stderr_tail(s, n=600):
    return s.proc.stderr()[-n:].strip()


class Reader:
    """Buffered reads of HTTP requests for the in-test backends."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self):
        d = self.sock.recv(65536)
        if not d:
            return False
        self.buf += d
        return True

    def request(self):
        """(method, path, headers{lower: value}, body) or None at EOF."""
        while b"\r\n\r\n" not in self.buf:
            if not self.fill():
                return None
        i = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:i]).decode("latin-1").split("\r\n")
        del self.buf[:i + 4]
        method, path, _ = head[0].split(" ", 2)
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        body = b""
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                if not self.fill():
                    return None
            body = bytes(self.buf[:n])
            del self.buf[:n]
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                while b"\r\n" not in self.buf:
                    if not self.fill():
                        return None
                j = self.buf.index(b"\r\n")
                size = int(bytes(self.buf[:j]).split(b";")[0], 16)
                del self.buf[:j + 2]
                if size == 0:
                    while b"\r\n\r\n" not in b"\r\n" + self.buf:
                        if not self.fill():
                            return None
                    k = (b"\r\n" + self.buf).index(b"\r\n\r\n")
                    del self.buf[:max(0, k + 2)]
                    break
                while len(self.buf) < size + 2:
                    if not self.fill():
                        return None
                parts.append(bytes(self.buf[:size]))
                del self.buf[:size + 2]
            body = b"".join(parts)
        return method, path, hdrs, body


def response_bytes(body, status=200, extra=""):
    if isinstance(body, str):
        body = body.encode()
    return (("HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)).encode()
            + body)


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


class Mini:
    """A tiny threaded backend inside the test: handler(mini, sock) per
    accepted connection.  Counts connections and records request lines."""

    def __init__(self, handler):
        self.handler = handler
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(256)
        self.port = self.ls.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.accepted = 0
        self.open = 0
        self.eofs = 0
        self.log = []
        self.socks = []
        self.state = {}
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.open += 1
                self.socks.append(s)
            threading.Thread(target=self._run, args=(s,), daemon=True).start()

    def _run(self, s):
        try:
            self.handler(self, s)
        except OSError:
            pass
        finally:
            with self.lock:
                self.open -= 1
            try:
                s.close()
            except OSError:
                pass

    def record(self, what):
        with self.lock:
            self.log.append(what)

    def stop(self):
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def raw_exchange(port, data, timeout=3.0):
    """Send bytes, read one response, and report whether the connection closed."""
    with Conn(port, timeout) as c:
        c.send(data)
        r = c.read_response(timeout=timeout)
        closed = c.wait_closed(2.0)
        return r, closed


def start_sluice_env(env, cfg, extra_env):
    """Like env.sluice() but with extra environment variables."""
    path = env.write(env._name("sluice") + ".json", cfg)
    e = dict(os.environ)
    e.update(extra_env)
    p = env.start([SLUICE, "--config", path], "sluice", env=e)
    s = Sluice(p, cfg, path, cfg.get("access_log"))
    env.sluices.append(s)
    for port in s.ports:
        if not wait_port(port, 5.0, p):
            raise TestFailure("sluice did not listen on %d: %s" % (port, p.stderr()[-800:]))
    return s


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- smuggling

def _post(headers, body):
    return (b"POST / HTTP/1.1\r\nHost: example.com\r\n" + headers + b"\r\n") + body


SMUGGLE_CASES = [
    # (what, bytes, allowed statuses, body-framing error: the POST head may reach the backend)
    ("CL+TE", _post(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % (5 + len(SMUGGLED)),
                    b"0\r\n\r\n" + SMUGGLED), (400,), False),
    ("TE+CL (TE first)", _post(b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                               b"0\r\n\r\n" + SMUGGLED), (400,), False),
    ("TE 'chunked, identity'", _post(b"Transfer-Encoding: chunked, identity\r\n",
                                     b"0\r\n\r\n" + SMUGGLED), (400, 501), False),
    ("TE chunked twice", _post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                               b"0\r\n\r\n" + SMUGGLED), (400, 501), False),
    ("TE space before colon", _post(b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n"
                                    % (5 + len(SMUGGLED)), b"0\r\n\r\n" + SMUGGLED), (400,), False),
    ("two differing CLs", _post(b"Content-Length: 5\r\nContent-Length: %d\r\n" % (5 + len(SMUGGLED)),
                                b"hello" + SMUGGLED), (400,), False),
    ("CL list '5, 50'", _post(b"Content-Length: 5, %d\r\n" % (5 + len(SMUGGLED)),
                              b"hello" + SMUGGLED), (400,), False),
    ("CL '+5'", _post(b"Content-Length: +5\r\n", b"hello" + SMUGGLED), (400,), False),
    ("obs-fold", _post(b"X-Folded: a\r\n b\r\nContent-Length: %d\r\n" % (5 + len(SMUGGLED)),
                       b"hello" + SMUGGLED), (400,), False),
    ("obs-fold continuing TE", _post(b"X-Folded: a\r\n Transfer-Encoding: chunked\r\n",
                                     b"0\r\n\r\n" + SMUGGLED), (400,), False),
    ("NUL in header value", _post(b"X-Nul: a\x00b\r\nContent-Length: 0\r\n", b""), (400,), False),
    ("CR in header value", _post(b"X-Cr: a\rb\r\nContent-Length: 0\r\n", b""), (400,), False),
    ("bare LF chunk lines", _post(b"Transfer-Encoding: chunked\r\n",
                                  b"5\nhello\n0\n\n" + SMUGGLED), (400,), True),
    ("bare LF after chunk data", _post(b"Transfer-Encoding: chunked\r\n",
                                       b"5\r\nhello\n0\r\n\r\n" + SMUGGLED), (400,), True),
    ("chunk size overflow 2^64+5", _post(b"Transfer-Encoding: chunked\r\n",
                                         b"10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
     (400,), True),
    ("chunk size with 0x prefix", _post(b"Transfer-Encoding: chunked\r\n",
                                        b"0x5\r\nhello\r\n0\r\n\r\n" + SMUGGLED), (400,), True),
    ("negative chunk size", _post(b"Transfer-Encoding: chunked\r\n",
                                  b"-5\r\nhello\r\n0\r\n\r\n" + SMUGGLED), (400,), True),
]


def test_smuggling_rejected(env):
    e, s = simple(env)
    problems = []
    for what, data, statuses, body_err in SMUGGLE_CASES:
        before = e.stats()["requests"]
        try:
            r, closed = raw_exchange(s.port, data)
        except (Closed, TestFailure) as ex:
            problems.append("%s: no response (%s)" % (what, ex))
            continue
        if r.status not in statuses:
            problems.append("%s: status %d, want %s (raw %r)" % (what, r.status, statuses, r.raw[:120]))
        if (r.h("connection") or "").lower() != "close":
            problems.append("%s: no Connection: close (%r)" % (what, r.h("connection")))
        if not closed:
            problems.append("%s: connection left open" % what)
        time.sleep(0.05)
        seen = e.stats()["requests"] - before
        if seen > (1 if body_err else 0):
            problems.append("%s: backend saw %d requests (smuggled request forwarded?)" % (what, seen))
        if not s.proc.alive():
            problems.append("%s: sluice died: %s" % (what, stderr_tail(s)))
            break
    check(not problems, "; ".join(problems))
    healthy(s)


def test_smuggling_not_in_access_log(env):
    # the same attack pipelined after a good request on one connection
    e, s = simple(env)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/first") + SMUGGLE_CASES[0][1])
        r1 = c.read_response()
        eq((r1.status, r1.json()["path"]), (200, "/first"), "first pipelined request")
        r2 = c.read_response()
        eq(r2.status, 400, "CL+TE after a good request")
        check(c.wait_closed(2.0), "connection closed after the 400")
    time.sleep(0.1)
    eq(e.stats()["requests"], 1, "backend requests (only /first)")
    log = "\n".join(s.log_lines())
    check("/smuggled" not in log, "/smuggled in the access log: %s" % log[-300:])
    healthy(s)


# ---------------------------------------------------------------- pipelining

def _pipeline_items(raw_n):
    body_raw = os.urandom(raw_n)
    chunked_raw = os.urandom(raw_n // 2 + 7)
    items = [
        (build_request("GET", "/p1"), "echo", ("GET", "/p1", b"")),
        (build_request("POST", "/p2", body=b"hello world"), "echo", ("POST", "/p2", b"hello world")),
        (build_request("POST", "/p3", headers=[("Transfer-Encoding", "chunked")])
         + b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
         "echo", ("POST", "/p3", b"hello world")),
        (build_request("GET", "/bytes/3000"), "bytes", 3000),
        (build_request("GET", "/bytes/5000?chunked=1&chunk=999"), "bytes", 5000),
        (build_request("HEAD", "/bytes/100"), "head", 100),
        (build_request("POST", "/raw", body=body_raw), "raw", body_raw),
        (build_request("POST", "/raw", headers=[("Transfer-Encoding", "chunked")])
         + b"%x\r\n" % len(chunked_raw) + chunked_raw + b"\r\n0\r\n\r\n", "raw", chunked_raw),
        (build_request("DELETE", "/p9", body=b""), "echo", ("DELETE", "/p9", b"")),
        (build_request("GET", "/p10"), "echo", ("GET", "/p10", b"")),
    ]
    return items


def _check_pipeline(c, items, what):
    for i, (_, kind, want) in enumerate(items):
        r = c.read_response(head=(kind == "head"), timeout=10)
        eq(r.status, 200, "%s: response %d status" % (what, i))
        if kind == "echo":
            j = r.json()
            eq((j["method"], j["path"], j.get("body", "").encode("latin-1")), want,
               "%s: response %d" % (what, i))
        elif kind == "bytes":
            check(r.body == pattern(want), "%s: response %d /bytes/%d body differs (len %d)"
                  % (what, i, want, len(r.body)))
        elif kind == "head":
            eq(r.h("content-length"), str(want), "%s: HEAD Content-Length" % what)
        elif kind == "raw":
            check(r.body == want, "%s: response %d /raw echo differs (len %d vs %d)"
                  % (what, i, len(r.body), len(want)))
    extra = c.read_some(0.3)
    eq(extra, b"", "%s: bytes after the last response" % what)


def test_pipelined_mixed_one_write(env):
    e, s = simple(env)
    items = _pipeline_items(20000)
    with Conn(s.port, timeout=10) as c:
        c.send(b"".join(d for d, _, _ in items))
        _check_pipeline(c, items, "one write")
        c.send(build_request("GET", "/again"))
        eq(c.read_response().json()["path"], "/again", "connection usable afterwards")
    healthy(s)


def test_pipelined_one_byte_writes(env):
    e, s = simple(env)
    items = [it for it in _pipeline_items(300) if it[1] != "raw"]
    data = b"".join(d for d, _, _ in items)
    with Conn(s.port, timeout=10) as c:
        for i in range(len(data)):
            c.sock.send(data[i:i + 1])
            if i % 2 == 0:
                time.sleep(0.0005)
        _check_pipeline(c, items, "1-byte writes")
    healthy(s)


def test_pipelined_split_at_every_boundary(env):
    # one request split in two writes at each offset, with a pause between
    e, s = simple(env)
    req = (build_request("POST", "/split", headers=[("Transfer-Encoding", "chunked")])
           + b"3\r\nabc\r\n0\r\n\r\n" + build_request("GET", "/tail"))
    with Conn(s.port, timeout=5) as c:
        for k in range(1, len(req)):
            c.send(req[:k])
            time.sleep(0.002)
            c.send(req[k:])
            r1 = c.read_response()
            r2 = c.read_response()
            eq((r1.json()["path"], r1.json()["body"], r2.json()["path"]), ("/split", "abc", "/tail"),
               "split at byte %d" % k)
    healthy(s)


# ---------------------------------------------------------------- connect timeout, retries

def _blackhole():
    """A loopback listener whose accept queue is full and that never accepts:
    new connects hang in SYN_SENT.  Returns (listener, fillers, addr) or None."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    addr = ls.getsockname()
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(addr)
        fillers.append(f)
    time.sleep(0.1)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(addr)
        ok = False
    except (socket.timeout, OSError):
        ok = True
    probe.close()
    if not ok:
        ls.close()
        for f in fillers:
            f.close()
        return None
    return ls, fillers, "127.0.0.1:%d" % addr[1]


def test_connect_timeout_504(env):
    bh = _blackhole()
    check(bh is not None, "could not build a never-accepting listener (listen(0) + full queue)")
    ls, fillers, addr = bh
    try:
        e = env.echo("live")
        cfg = env.config(
            upstreams=[{"name": "bh", "targets": [{"address": addr}],
                        "timeouts": {"connect_ms": 300}},
                       {"name": "live", "targets": [{"address": e.addr}]}],
            routes=[{"name": "live", "match": {"path": {"prefix": "/live"}}, "upstream": "live"},
                    {"name": "bh", "match": {}, "upstream": "bh"}])
        s = env.sluice(cfg)
        t0 = time.monotonic()
        r = get(s.port, "/x", timeout=5)
        dt = time.monotonic() - t0
        eq(r.status, 504, "connect timeout status")
        check(0.25 <= dt <= 1.2, "504 after %.2fs (connect_ms=300)" % dt)
        eq(get(s.port, "/live").status, 200, "other upstream while one hangs")
        check(s.proc.alive(), "sluice alive")
    finally:
        ls.close()
        for f in fillers:
            f.close()


def test_connect_timeout_retried(env):
    bh = _blackhole()
    check(bh is not None, "could not build a never-accepting listener")
    ls, fillers, addr = bh
    try:
        e = env.echo("live")
        s = one_upstream(env, [addr, e.addr], {"retries": 1, "timeouts": {"connect_ms": 300}})
        for i in range(4):
            t0 = time.monotonic()
            r = get(s.port, "/r%d" % i, timeout=5)
            eq(r.status, 200, "request %d with a black-holed target and retries 1" % i)
            check(time.monotonic() - t0 < 1.5, "request %d took %.2fs" % (i, time.monotonic() - t0))
    finally:
        ls.close()
        for f in fillers:
            f.close()


def test_retry_refused_target(env):
    e = env.echo("live")
    dead = "127.0.0.1:%d" % free_port()
    s = one_upstream(env, [dead, e.addr], {"retries": 1})
    statuses = [get(s.port, "/r%d" % i).status for i in range(12)]
    eq(statuses, [200] * 12, "every request with a refused target and retries 1")
    with Conn(s.port) as c:
        for i in range(6):
            c.send(build_request("POST", "/p%d" % i, body=b"x" * 100))
            eq(c.read_response().status, 200, "keep-alive POST %d" % i)
    healthy(s)


# ---------------------------------------------------------------- stale / dirty pooled connections

def _idle_closer(m, sock):
    """Keep-alive backend that closes a connection idle for 100 ms."""
    rd = Reader(sock)
    served = False
    while True:
        sock.settimeout(0.1 if served else 5)
        try:
            req = rd.request()
        except socket.timeout:
            m.record("idle-close")
            return
        if req is None:
            return
        served = True
        m.record(req[1])
        sock.sendall(response_bytes(req[1] + ":" + str(len(req[3]))))


def test_stale_pooled_connection(env):
    with Mini(_idle_closer) as m:
        s = one_upstream(env, [m.addr])
        with Conn(s.port) as c:
            for i in range(6):
                if i:
                    time.sleep(0.3)
                if i % 2:
                    c.send(build_request("POST", "/s%d" % i, body=b"b" * 10))
                    want = "/s%d:10" % i
                else:
                    c.send(build_request("GET", "/s%d" % i))
                    want = "/s%d:0" % i
                r = c.read_response()
                eq((r.status, r.body.decode()), (200, want),
                   "request %d after the backend closed the idle pooled connection" % i)
        check(m.accepted >= 5, "backend accepted %d connections (expected fresh ones)" % m.accepted)
        healthy_mini(s)


def healthy_mini(s):
    check(s.proc.alive(), "sluice died: %s" % s.proc.stderr()[-500:])
    r = get(s.port, "/after-check")
    eq(r.status, 200, "follow-up request on a new connection")


def _one_per_conn(m, sock):
    """Answers the first request on a connection; reads the second fully and
    closes without answering (the classic keep-alive race)."""
    rd = Reader(sock)
    req = rd.request()
    if req is None:
        return
    m.record(("answered", req[0], req[1]))
    sock.sendall(response_bytes(req[1]))
    req = rd.request()
    if req is None:
        return
    m.record(("dropped", req[0], req[1]))


def test_stale_close_without_response_get_retried(env):
    with Mini(_one_per_conn) as m:
        s = one_upstream(env, [m.addr])
        with Conn(s.port) as c:
            for i in range(5):
                c.send(build_request("GET", "/g%d" % i))
                r = c.read_response()
                eq((r.status, r.body), (200, b"/g%d" % i),
                   "GET %d when the pooled connection closes without a response; backend log %r"
                   % (i, m.log))
        healthy_mini(s)


def test_post_not_replayed_after_reaching_target(env):
    # SPEC: a non-idempotent request is retried only if nothing reached the target
    with Mini(_one_per_conn) as m:
        s = one_upstream(env, [m.addr])
        eq(get(s.port, "/warm").status, 200, "warm-up (leaves a pooled connection)")
        time.sleep(0.05)
        r = request(s.port, "POST", "/charge", body=b"pay 100")
        time.sleep(0.2)
        posts = [x for x in m.log if x[1] == "POST"]
        check(len(posts) == 1 or r.status != 200,
              "POST delivered %d times to the backend (log %r), client got %d: a POST that reached "
              "the target was replayed" % (len(posts), m.log, r.status))
        check(r.status in (200, 502), "POST status %d" % r.status)
        healthy_mini(s)


def _dirty(m, sock):
    """CL responses with extra bytes after the body (that look like a response)."""
    rd = Reader(sock)
    while True:
        req = rd.request()
        if req is None:
            return
        path = req[1]
        m.record(path)
        inj = response_bytes("INJECTED")
        if path.startswith("/dirty-late"):
            sock.sendall(response_bytes("hello"))
            time.sleep(0.05)
            sock.sendall(inj)
        elif path.startswith("/dirty-chunked"):
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                         + inj)
        elif path.startswith("/dirty"):
            sock.sendall(response_bytes("hello") + inj)
        else:
            sock.sendall(response_bytes(path))


def test_upstream_sends_more_than_content_length(env):
    with Mini(_dirty) as m:
        s = one_upstream(env, [m.addr])
        with Conn(s.port) as c:
            for p in ("/dirty", "/dirty-late", "/dirty-chunked"):
                c.send(build_request("GET", p))
                r = c.read_response()
                eq((r.status, r.body), (200, b"hello"), "%s response" % p)
                time.sleep(0.1)
                extra = c.read_some(0.2)
                eq(extra, b"", "bytes after the %s response" % p)
                for q in ("/clean-a", "/clean-b"):
                    c.send(build_request("GET", q))
                    r = c.read_response()
                    eq((r.status, r.body), (200, q.encode()),
                       "next request on the same client connection after %s" % p)
                r = get(s.port, "/clean-new")
                eq((r.status, r.body), (200, b"/clean-new"), "new client after %s" % p)
        healthy_mini(s)


# ---------------------------------------------------------------- passive health

def _resetter(m, sock):
    rd = Reader(sock)
    while True:
        req = rd.request()
        if req is None:
            return
        if m.state.get("reset", True):
            m.record("reset")
            rst_close(sock)
            return
        m.record("ok")
        sock.sendall(response_bytes("fine"))


def test_passive_health_reset_503_then_back(env):
    with Mini(_resetter) as m:
        s = one_upstream(env, [m.addr])
        r = get(s.port, "/a")
        eq(r.status, 502, "reset before a response")
        acc = m.accepted
        t_down = time.monotonic()
        r = get(s.port, "/b")
        eq(r.status, 503, "target marked down after a reset")
        eq(m.accepted, acc, "no connection to a target while it is marked down")
        m.state["reset"] = False
        r = wait_for(lambda: get(s.port, "/c").status == 200, 6.0, 0.1)
        check(r, "target not back within 6 s")
        dt = time.monotonic() - t_down
        check(dt < 5.0, "back after %.2fs" % dt)
        for i in range(5):
            eq(get(s.port, "/d%d" % i).status, 200, "request %d after recovery" % i)
        healthy_mini(s)


# ---------------------------------------------------------------- Upgrade

def _ws_backend(m, sock):
    rd = Reader(sock)
    req = rd.request()
    if req is None:
        return
    m.record(("req", req[1], req[2].get("upgrade"), req[2].get("connection")))
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nserver-first")
    data = bytes(rd.buf)
    rd.buf.clear()
    if data:
        sock.sendall(data)
    while True:
        d = sock.recv(65536)
        if not d:
            m.record(("eof",))
            m.state["eof"] = True
            return
        m.record(("data", d))
        if d == b"quit":
            sock.sendall(b"goodbye")
            return
        sock.sendall(d)


WS_REQ = build_request("GET", "/ws", headers=[
    ("Upgrade", "websocket"), ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])


def _ws_open(s):
    c = Conn(s.port, timeout=5)
    c.send(WS_REQ)
    r = c.read_response()
    eq(r.status, 101, "101 through sluice")
    check((r.h("upgrade") or "").lower() == "websocket", "Upgrade header on the 101: %r" % r.headers)
    check("upgrade" in (r.h("connection") or "").lower(), "Connection: upgrade on the 101: %r" % r.headers)
    eq(c.read_exact(12, time.monotonic() + 3), b"server-first", "server bytes right after the 101")
    return c


def test_websocket_tunnel(env):
    with Mini(_ws_backend) as m:
        s = one_upstream(env, [m.addr])
        c = _ws_open(s)
        try:
            first = m.log[0]
            eq((first[1], (first[2] or "").lower()), ("/ws", "websocket"), "backend got Upgrade")
            check("upgrade" in (first[3] or "").lower(), "backend got Connection: upgrade (%r)" % (first,))
            c.send(b"ping-1")
            eq(c.read_exact(6, time.monotonic() + 3), b"ping-1", "small frame echoed")
            blob = os.urandom(512 * 1024)
            t = threading.Thread(target=c.sock.sendall, args=(blob,), daemon=True)
            t.start()
            got = c.read_exact(len(blob), time.monotonic() + 10)
            t.join(5)
            check(got == blob, "512 KiB echoed through the tunnel byte-exact")
        finally:
            c.close()
        check(wait_for(lambda: m.state.get("eof"), 3.0), "backend saw no EOF after the client closed")
        check(wait_for(lambda: m.open == 0, 3.0), "backend connection still open after client close")
        healthy_mini_ws(s, m)


def healthy_mini_ws(s, m):
    check(s.proc.alive(), "sluice died: %s" % s.proc.stderr()[-500:])
    c = _ws_open(s)
    c.send(b"again")
    eq(c.read_exact(5, time.monotonic() + 3), b"again", "a second tunnel works")
    c.close()


def test_websocket_close_either_side(env):
    # RFC 9110 9.3.6: a side's close ends the tunnel after its outstanding data is delivered
    with Mini(_ws_backend) as m:
        s = one_upstream(env, [m.addr])
        c = _ws_open(s)
        try:
            c.send(b"quit")
            eq(c.read_exact(7, time.monotonic() + 3), b"goodbye", "backend's last bytes before its close")
            check(c.wait_closed(3.0), "client connection not closed after the backend closed the tunnel")
        finally:
            c.close()
        c = _ws_open(s)
        try:
            c.send(b"last words")
            c.sock.shutdown(socket.SHUT_WR)
            check(wait_for(lambda: m.log.count(("eof",)) >= 1, 3.0), "client FIN not passed to the backend")
            got = b"".join(x[1] for x in m.log if x[0] == "data" and x[1] != b"quit")
            eq(got, b"last words", "client data sent just before its FIN reached the backend")
            check(c.wait_closed(3.0), "tunnel not closed after the client's FIN")
        finally:
            c.close()
        healthy_mini_ws(s, m)


def test_streamed_echo_keepalive(env):
    # echo /raw answers while the body is still arriving: once the body has
    # been sent whole, the client connection can stay open
    e, s = simple(env)
    with Conn(s.port) as c:
        c.send(build_request("POST", "/raw", headers=[("Content-Length", "10")]))
        r = c.read_head()
        for i in range(10):
            c.send(b"%d" % i)
            time.sleep(0.01)
        body = c.read_exact(10, time.monotonic() + 3)
        eq(body, b"0123456789", "streamed echo body")
        eq(r.h("connection"), None, "Connection header on a streamed echo whose body completed")
        c.send(build_request("GET", "/next"))
        eq(c.read_response().json()["path"], "/next", "next request on the same connection")
    healthy(s)


def test_upgrade_answered_200_stays_http(env):
    e, s = simple(env)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/u1", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")]))
        r = c.read_response()
        eq((r.status, r.json()["path"]), (200, "/u1"), "Upgrade request answered 200")
        c.send(build_request("POST", "/u2", body=b"after"))
        r = c.read_response()
        eq((r.status, r.json()["path"], r.json()["body"]), (200, "/u2", "after"),
           "next request on the same connection")
        c.send(build_request("GET", "/u3", headers=[("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"),
                                                    ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]))
        r = c.read_response()
        eq((r.status, r.json()["path"]), (200, "/u3"), "h2c upgrade attempt answered 200")
        c.send(build_request("GET", "/u4"))
        eq(c.read_response().json()["path"], "/u4", "connection still HTTP after that")
    healthy(s)


# ---------------------------------------------------------------- aborted upload

def test_client_disconnect_mid_upload(env):
    e, s = simple(env)
    base = e.stats()
    c = Conn(s.port, timeout=5)
    c.send(build_request("POST", "/raw", headers=[("Content-Length", str(8 << 20))]))
    c.send(b"z" * (1 << 20))
    ok = wait_for(lambda: e.stats()["open_connections"] > base["open_connections"], 3.0, 0.05)
    check(ok, "upload never reached the backend")
    c.close()
    ok = wait_for(lambda: e.stats()["open_connections"] <= base["open_connections"], 3.0, 0.05)
    st = e.stats()
    check(ok, "backend connection not closed after the client left mid-upload: %r" % st)
    for i in range(3):
        r = request(s.port, "POST", "/after%d" % i, body=b"q" * 1000)
        eq((r.status, r.json()["body_len"]), (200, 1000), "POST after the aborted upload")
    healthy(s)


def test_client_disconnect_mid_chunked_upload(env):
    e, s = simple(env)
    base = e.stats()
    c = Conn(s.port, timeout=5)
    c.send(build_request("POST", "/", headers=[("Transfer-Encoding", "chunked")])
           + b"100000\r\n" + b"y" * 50000)
    ok = wait_for(lambda: e.stats()["open_connections"] > base["open_connections"], 3.0, 0.05)
    check(ok, "chunked upload never reached the backend")
    c.close()
    ok = wait_for(lambda: e.stats()["open_connections"] <= base["open_connections"], 3.0, 0.05)
    check(ok, "backend connection not closed after the client left mid-chunk: %r" % e.stats())
    healthy(s)


# ---------------------------------------------------------------- back-pressure

def test_slow_reader_rss_bounded(env):
    e = env.echo("e")
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": e.addr}]}],
                     routes=[{"name": "r", "match": {}, "upstream": "u"}])
    asan = "asan" in os.path.basename(os.path.normpath(BUILD))
    # ASan's quarantine holds freed memory back: keep it small so RSS means something
    extra = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
                              ":thread_local_quarantine_size_kb=64").lstrip(":")} if asan else {}
    s = start_sluice_env(env, cfg, extra)
    for _ in range(3):
        get(s.port, "/bytes/100000")
    start = vmrss_kib(s.proc.pid)
    n = 64 << 20
    block = bytes(((i * 31 + 7) & 0xFF) for i in range(256)) * ((1 << 20) // 256 + 2)
    peak = start
    with Conn(s.port, timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        c.send(build_request("GET", "/bytes/%d" % n))
        r = c.read_head(timeout=5)
        eq(r.status, 200, "status")
        eq(r.h("content-length"), str(n), "Content-Length")
        got = len(c.buf)
        bad = bytes(c.buf) != block[:got]
        c.buf.clear()
        t_end = time.monotonic() + 30
        while got < n and time.monotonic() < t_end:
            tick = time.monotonic()
            want = min(1 << 20, n - got)
            have = 0
            while have < want:
                c.sock.settimeout(5)
                d = c.sock.recv(want - have)
                if not d:
                    raise TestFailure("closed after %d of %d bytes" % (got + have, n))
                off = (got + have) & 255
                if d != block[off:off + len(d)]:
                    bad = True
                have += len(d)
            got += have
            peak = max(peak, vmrss_kib(s.proc.pid))
            dt = time.monotonic() - tick
            if dt < 0.05:
                time.sleep(0.05 - dt)
        eq(got, n, "bytes received")
        check(not bad, "body differs from the /bytes pattern")
    growth = (peak - start) / 1024.0
    check(growth < 40, "sluice RSS grew %.1f MiB (start %d KiB, peak %d KiB) for a slow reader"
          % (growth, start, peak))
    healthy(s)


# ---------------------------------------------------------------- concurrency

def test_200_clients_x_50_requests(env):
    e, s = simple(env)
    nclients, nreq = 200, 50
    errors = []
    done = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(nclients, timeout=20)

    def client(k):
        rnd = random.Random(k)
        try:
            c = Conn(s.port, timeout=20)
        except OSError as ex:
            with lock:
                errors.append("client %d connect: %r" % (k, ex))
            return
        try:
            barrier.wait()
            for i in range(nreq):
                kind = (k + i) % 4
                if kind == 0:
                    nb = rnd.randrange(0, 6000)
                    c.send(build_request("GET", "/bytes/%d" % nb))
                    r = c.read_response(timeout=20)
                    if r.status != 200 or r.body != pattern(nb):
                        raise TestFailure("GET /bytes/%d: %d len %d" % (nb, r.status, len(r.body)))
                elif kind == 1:
                    body = rnd.randbytes(rnd.randrange(0, 9000))
                    c.send(build_request("POST", "/c%d/%d" % (k, i), body=body))
                    r = c.read_response(timeout=20)
                    j = r.json()
                    if (r.status, j["path"], j["body_len"], j["body_sha256"]) != \
                            (200, "/c%d/%d" % (k, i), len(body), sha256(body)):
                        raise TestFailure("POST %d/%d: %d %r" % (k, i, r.status, j.get("path")))
                elif kind == 2:
                    body = rnd.randbytes(rnd.randrange(1, 5000))
                    cut = rnd.randrange(0, len(body))
                    wire = b"%x\r\n%s\r\n" % (cut, body[:cut]) if cut else b""
                    wire += b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - cut, body[cut:])
                    c.send(build_request("POST", "/raw", headers=[("Transfer-Encoding", "chunked")]) + wire)
                    r = c.read_response(timeout=20)
                    if r.status != 200 or r.body != body:
                        raise TestFailure("chunked /raw %d/%d: %d len %d want %d"
                                          % (k, i, r.status, len(r.body), len(body)))
                else:
                    c.send(build_request("GET", "/g%d/%d?q=%d" % (k, i, i)))
                    r = c.read_response(timeout=20)
                    if r.status != 200 or r.json()["path"] != "/g%d/%d?q=%d" % (k, i, i):
                        raise TestFailure("GET %d/%d: %d" % (k, i, r.status))
                with lock:
                    done[0] += 1
        except Exception as ex:  # collected and reported below
            with lock:
                errors.append("client %d: %s: %s" % (k, type(ex).__name__, str(ex)[:200]))
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(nclients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, 50 - (time.monotonic() - t0)))
    alive = sum(t.is_alive() for t in threads)
    check(not errors, "%d errors, first: %s" % (len(errors), errors[:3]))
    check(alive == 0, "%d clients still running after 50 s (%d requests done)" % (alive, done[0]))
    eq(done[0], nclients * nreq, "requests completed")
    healthy(s)


# ---------------------------------------------------------------- reload under load

def test_reload_under_load(env):
    a = env.echo("a")
    b = env.echo("b")

    def cfg_for(tag, target):
        return {"upstreams": [{"name": "u", "targets": [{"address": target.addr}]}],
                "routes": [{"name": "r" + tag, "match": {}, "upstream": "u",
                            "response_headers": {"set": {"x-cfg": tag}}}]}
    base = env.config(**cfg_for("a", a))
    s = env.sluice(base)
    cfgs = [dict(base, **cfg_for("b", b)), base]
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"ok": 0, "graceful_close": 0, "tags": set()}
    errors = []

    def worker(k):
        c = None
        i = 0
        while not stop.is_set():
            try:
                if c is None:
                    c = Conn(s.port, timeout=5)
                body = b"w%d-%d" % (k, i)
                c.send(build_request("POST", "/w%d/%d" % (k, i), body=body))
                r = c.read_response(timeout=5)
                j = r.json()
                if r.status != 200 or j["path"] != "/w%d/%d" % (k, i) or j["body"] != body.decode():
                    raise TestFailure("bad response %d %r" % (r.status, r.raw[:200]))
                with lock:
                    stats["ok"] += 1
                    stats["tags"].add((r.h("x-cfg"), j["id"]))
                if (r.h("connection") or "").lower() == "close":
                    with lock:
                        stats["graceful_close"] += 1
                    c.close()
                    c = None
            except Exception as ex:  # collected and reported below
                with lock:
                    errors.append("worker %d req %d: %s: %s" % (k, i, type(ex).__name__, str(ex)[:200]))
                if c:
                    c.close()
                c = None
            i += 1
        if c:
            c.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    t_end = time.monotonic() + 5
    n = 0
    while time.monotonic() < t_end:
        s.write_config(cfgs[n % 2])
        s.proc.signal(signal.SIGHUP)
        n += 1
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(10)
    check(s.proc.alive(), "sluice died during reloads: %s" % stderr_tail(s))
    check(not errors, "%d failed requests of %d (%d reloads), first: %s"
          % (len(errors), stats["ok"] + len(errors), n, errors[:3]))
    check(stats["ok"] > 100, "only %d requests in 5 s" % stats["ok"])
    check(("a", "a") in stats["tags"] and ("b", "b") in stats["tags"],
          "both configs served (seen %r)" % stats["tags"])
    check(stats["tags"] <= {("a", "a"), ("b", "b")}, "header and backend from different configs: %r"
          % stats["tags"])
    eq(stats["graceful_close"], 0, "client connections closed by reloads")
    healthy(s)


# ---------------------------------------------------------------- limits, hosts, sizes

def test_max_connections(env):
    e, s = simple(env, limits={"max_connections": 3})
    time.sleep(0.3)  # let sluice reap the readiness probe's connection
    conns = [Conn(s.port) for _ in range(3)]
    try:
        for i, c in enumerate(conns):
            c.send(build_request("GET", "/m%d" % i))
            eq(c.read_response().status, 200, "connection %d within the limit" % i)
        extra = Conn(s.port, timeout=3)
        try:
            extra.send(build_request("GET", "/over"))
        except OSError:
            pass
        data = extra.read_some(1.0)
        check(not data.startswith(b"HTTP/1.1 200"), "4th connection served over max_connections 3")
        closed = extra.eof
        for i, c in enumerate(conns):
            c.send(build_request("GET", "/again%d" % i))
            eq(c.read_response().status, 200, "connection %d still served" % i)
        conns[0].close()
        if not closed:
            # left in the listen queue: it is served once a slot frees
            r = extra.read_response(timeout=3)
            eq(r.status, 200, "queued 4th connection served after one closed")
        extra.close()

        def fresh_ok():
            try:
                return get(s.port, "/fresh", timeout=2).status == 200
            except (Closed, TestFailure, OSError):
                return False
        check(wait_for(fresh_ok, 3.0, 0.1), "new connection not served after a slot freed")
    finally:
        for c in conns:
            c.close()


def test_host_case_and_port(env):
    e = env.echo("e")
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": e.addr}]}],
                     routes=[{"name": "r", "match": {"hosts": ["example.com"]}, "upstream": "u"},
                             {"name": "w", "match": {"hosts": ["*.wild.test"]},
                              "respond": {"status": 200, "body": "wild"}}])
    s = env.sluice(cfg)
    for host in ("example.com", "EXAMPLE.COM", "Example.Com:8080", "example.com:%d" % s.port):
        r = get(s.port, "/h", host=host)
        eq(r.status, 200, "Host %r" % host)
        eq(uh(r, "host"), [host], "Host forwarded as sent")
    for host in ("A.WILD.TEST", "x.y.Wild.Test:99"):
        r = get(s.port, "/h", host=host)
        eq((r.status, r.body), (200, b"wild"), "wildcard Host %r" % host)
    for host in ("example.co", "example.com.evil", "wild.test", "xexample.com"):
        eq(get(s.port, "/h", host=host).status, 404, "Host %r" % host)
    healthy_host(s)


def healthy_host(s):
    check(s.proc.alive(), "sluice died")
    eq(get(s.port, "/", host="example.com").status, 200, "follow-up request")


def test_absolute_form_uses_uri_host(env):
    # RFC 9112 3.2.2: with an absolute-form target the Host header is ignored
    e = env.echo("e")
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": e.addr}]}],
                     routes=[{"name": "r", "match": {"hosts": ["example.com"]}, "upstream": "u"}])
    s = env.sluice(cfg)
    with Conn(s.port) as c:
        c.send(b"GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "absolute-form routed by its own host")
        eq(r.json()["path"], "/abs?q=1", "origin-form path sent upstream")
    healthy_host(s)


def test_long_url_and_header_count(env):
    e, s = simple(env, limits={"max_header_bytes": 16384})
    path = "/" + "u" * 8191
    r = get(s.port, path)
    eq((r.status, r.json()["path"]), (200, path), "8 KiB URL")
    hdrs = [("X-H%03d" % i, "v%d" % i) for i in range(99)]  # + Host = 100
    r = get(s.port, "/h100", headers=hdrs)
    eq(r.status, 200, "100 header lines")
    got = [(k, v) for k, v in r.json()["headers"] if k.startswith("X-H")]
    eq(got, hdrs, "all 99 X-H headers forwarded in order")
    r, closed = raw_exchange(s.port, build_request("GET", "/h101", headers=hdrs + [("X-H999", "x")]))
    eq(r.status, 431, "101 header lines")
    check(closed, "connection closed after 431")
    # long URL and many headers on one keep-alive connection, then a normal request
    with Conn(s.port) as c:
        c.send(build_request("GET", path, headers=hdrs))
        eq(c.read_response().status, 200, "8 KiB URL + 100 headers")
        c.send(build_request("GET", "/small"))
        eq(c.read_response().json()["path"], "/small", "next request after the big head")
    healthy(s)


# ---------------------------------------------------------------- bad upstream framing

def _bad_framing(m, sock):
    rd = Reader(sock)
    while True:
        req = rd.request()
        if req is None:
            return
        method, path = req[0], req[1]
        m.record((method, path))
        if path == "/short":        # fewer bytes than Content-Length, then close
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"s" * 50)
            return
        if path == "/badchunk":     # broken chunk framing mid-body
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
            time.sleep(0.5)
            return
        if path == "/clte":         # both framings: chunked wins or 502
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\n\r\n")
            continue
        if path == "/twocl":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello")
            return
        if path == "/headbody":     # a HEAD answer followed by (illegal) body bytes
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"
                         + b"INJECTED")
            continue
        if path == "/204body":
            sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n" + response_bytes("INJECTED"))
            continue
        sock.sendall(response_bytes(path))


def test_bad_upstream_framing(env):
    with Mini(_bad_framing) as m:
        s = one_upstream(env, [m.addr])
        problems = []
        # truncated CL body: the client must see the connection end short, not a padded/complete body
        with Conn(s.port) as c:
            c.send(build_request("GET", "/short"))
            r = c.read_head()
            eq((r.status, r.h("content-length")), (200, "100"), "/short head")
            got = bytearray(c.buf)
            c.buf.clear()
            closed = c.wait_closed(3.0)
            got += c.buf
            if not closed:
                problems.append("/short: client connection not closed after a truncated upstream body")
            if len(got) >= 100:
                problems.append("/short: client got %d bytes for a 50-byte truncated body" % len(got))
        with Conn(s.port) as c:
            c.send(build_request("GET", "/badchunk"))
            try:
                r = c.read_response(timeout=3)
                problems.append("/badchunk: a complete response %d %r" % (r.status, r.raw[:120]))
            except (Closed, TestFailure) as ex:
                if "timed out" in str(ex):
                    problems.append("/badchunk: client left hanging (%s)" % ex)
        with Conn(s.port) as c:
            c.send(build_request("GET", "/clte"))
            r = c.read_response(timeout=3)
            if r.status == 200:
                if r.h("content-length") is not None and r.chunked:
                    problems.append("/clte: both framings forwarded %r" % r.raw[:200])
                if r.body != b"hello":
                    problems.append("/clte: body %r" % r.body)
                c.send(build_request("GET", "/after-clte"))
                r = c.read_response(timeout=3)
                if r.body != b"/after-clte":
                    problems.append("/clte: next response %r" % r.raw[:200])
            elif r.status != 502:
                problems.append("/clte: status %d" % r.status)
        r = get(s.port, "/twocl", timeout=3)
        if r.status != 502:
            problems.append("/twocl: differing upstream Content-Lengths gave %d %r" % (r.status, r.raw[:200]))
        with Conn(s.port) as c:
            c.send(build_request("HEAD", "/headbody"))
            r = c.read_response(head=True, timeout=3)
            if r.status != 200:
                problems.append("/headbody: status %d" % r.status)
            for p in ("/n1", "/n2"):
                c.send(build_request("GET", p))
                try:
                    r = c.read_response(timeout=3)
                    if r.body != p.encode():
                        problems.append("after HEAD with body bytes: %s got %r" % (p, r.raw[:200]))
                except (Closed, TestFailure) as ex:
                    problems.append("after HEAD with body bytes: %s: %s" % (p, ex))
                    break
        with Conn(s.port) as c:
            c.send(build_request("GET", "/204body"))
            r = c.read_response(timeout=3)
            if r.status != 204:
                problems.append("/204body: status %d" % r.status)
            for p in ("/m1", "/m2"):
                try:
                    c.send(build_request("GET", p))
                    r = c.read_response(timeout=3)
                    if r.body != p.encode():
                        problems.append("after 204 with body bytes: %s got %r" % (p, r.raw[:200]))
                except (Closed, TestFailure, OSError) as ex:
                    problems.append("after 204 with body bytes: %s: %s" % (p, ex))
                    break
        check(not problems, "; ".join(problems))
        healthy_mini(s)


# ---------------------------------------------------------------- more edges

def _early_401(m, sock):
    rd = Reader(sock)
    while b"\r\n\r\n" not in rd.buf:
        if not rd.fill():
            return
    m.record("head")
    if not rd.buf.startswith(b"POST /up "):
        sock.sendall(response_bytes("fine"))
        return
    sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\nConnection: close\r\n\r\nno way")
    time.sleep(0.2)


def test_early_error_during_upload(env):
    # the backend refuses before reading a large body: the client must still get that answer
    with Mini(_early_401) as m:
        s = one_upstream(env, [m.addr])
        for n in range(3):
            c = Conn(s.port, timeout=5)
            err = []

            def sender():
                try:
                    c.sock.sendall(b"\0" * (16 << 20))
                except OSError as ex:
                    err.append(ex)
            c.send(build_request("POST", "/up", headers=[("Content-Length", str(16 << 20))]))
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            try:
                r = c.read_response(timeout=5)
                eq((r.status, r.body), (401, b"no way"), "early 401 delivered (round %d)" % n)
            finally:
                c.close()
                t.join(5)
        healthy_mini(s)


def test_deep_pipeline_no_deadlock(env):
    # 1000 pipelined requests written before reading anything
    e, s = simple(env)
    n = 1000
    with Conn(s.port, timeout=20) as c:
        reqs = b"".join(build_request("GET", "/bytes/%d" % (1000 + i % 7)) for i in range(n))
        err = []

        def sender():
            try:
                c.sock.sendall(reqs)
            except OSError as ex:
                err.append(ex)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        for i in range(n):
            r = c.read_response(timeout=20)
            if r.status != 200 or r.body != pattern(1000 + i % 7):
                raise TestFailure("pipelined response %d: %d len %d" % (i, r.status, len(r.body)))
        t.join(5)
        check(not err, "send failed: %r" % err)
    healthy(s)


def test_connect_method_not_an_open_proxy(env):
    with Mini(lambda m, sock: m.record("connected")) as other:
        e, s = simple(env)
        for target in ("127.0.0.1:%d" % other.port, "example.com:443"):
            with Conn(s.port) as c:
                c.send(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), target.encode()))
                try:
                    r = c.read_response(timeout=3)
                    check(r.status != 200 or r.h("x-upstream") == "e",
                          "CONNECT %s answered %d by sluice itself" % (target, r.status))
                except Closed:
                    pass
        time.sleep(0.2)
        eq(other.accepted, 0, "connections sluice made to the CONNECT target")
        healthy(s)


def test_host_header_required_and_unique(env):
    e, s = simple(env)
    before = e.stats()["requests"]
    for data, what in [
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 without Host"),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", "two Host headers"),
        (b"GET / HTTP/1.1\r\nHost: a.test, b.test\r\n\r\n", "Host list"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "space in Host"),
    ]:
        r, closed = raw_exchange(s.port, data)
        eq(r.status, 400, what)
        check(closed, "%s: connection closed" % what)
    eq(e.stats()["requests"], before, "nothing reached the backend")
    r = request(s.port, "GET", "/", host=None, version="HTTP/1.0")
    eq(r.status, 200, "HTTP/1.0 without Host")
    healthy(s)


def test_slow_upload_not_cut_by_timers(env):
    # header/idle/response-header timers must not fire while a body trickles in
    e, s = simple(env, {"timeouts": {"response_header_ms": 300}},
                  timeouts={"client_header_ms": 300, "client_idle_ms": 300})
    with Conn(s.port) as c:
        c.send(build_request("POST", "/slow", headers=[("Content-Length", "12")]))
        for i in range(12):
            time.sleep(0.1)
            c.send(b"%x" % i)
        r = c.read_response()
        eq((r.status, r.json()["body"]), (200, "0123456789ab"), "body trickled over 1.2 s (CL)")
        c.send(build_request("POST", "/slow2", headers=[("Transfer-Encoding", "chunked")]))
        for i in range(8):
            time.sleep(0.1)
            c.send(b"1\r\n%x\r\n" % i)
        c.send(b"0\r\n\r\n")
        r = c.read_response()
        eq((r.status, r.json()["body"]), (200, "01234567"), "body trickled over 0.8 s (chunked)")
    healthy(s)


def test_upstream_idle_ms_mid_response(env):
    e, s = simple(env, {"timeouts": {"idle_ms": 400}})
    r = get(s.port, "/sse?n=4&ms=150", timeout=5)
    eq((r.status, r.body.count(b"data: event")), (200, 4), "events 150 ms apart under idle_ms 400")
    with Conn(s.port) as c:
        c.send(build_request("GET", "/sse?n=3&ms=1000"))
        r = c.read_head()
        t0 = time.monotonic()
        got = c.body_until(r, b"data: event 1", timeout=3)
        check(b"data: event 1" in got, "first event")
        closed = c.wait_closed(3.0)
        dt = time.monotonic() - t0
        check(closed and 0.3 <= dt <= 1.0, "client closed %.2fs after an upstream went silent "
              "mid-response (idle_ms 400; closed=%s)" % (dt, closed))
    time.sleep(0.2)
    healthy(s)
