"""Regression tests for review findings: each one failed on the code before
the fix and must keep passing.

- a body left unread behind a locally answered request (respond, redirect,
  404) was parsed as the next request: request smuggling;
- an upstream connection went back to the pool with request-body bytes
  still unsent, so the next client's request became the old body;
- a request whose body never started held the connection for ever;
- a keep-alive connection of a listener removed by a reload borrowed
  listener 0's routes (and a freed listener);
- a 1xx head queued for the client was overwritten by the final head;
- stray bytes on an idle upstream connection reached the next request;
- CONNECT, access-log byte counts and request lines, lingering close after
  an early error, accept back-off when out of descriptors.

Backends that must misbehave are tiny threaded servers inside the test
(Mini, from test_6_edge).
"""
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import (SLUICE, Closed, Conn, Sluice, TestFailure, build_request, check, eq, get,
                     wait_for, wait_port)
from test_6_edge import Mini, Reader, one_upstream, response_bytes

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"


# ---------------------------------------------------------------- helpers

def alive(s):
    check(s.proc.alive(), "sluice died: %s" % s.proc.stderr()[-600:])


def drain_rest(c, timeout=3.0):
    """Wait for the peer's close; returns (closed, bytes that came before it)."""
    closed = c.wait_closed(timeout)
    rest = bytes(c.buf)
    c.buf.clear()
    return closed, rest


def log_settled(s, n, timeout=3.0):
    """The access log once it has at least n lines and stopped growing
    (the worker flushes it every 200 ms)."""
    wait_for(lambda: len(s.log_lines()) >= n, timeout)
    time.sleep(0.5)
    return s.log_lines()


def head_line(req_line):
    return lambda line: ('"%s"' % req_line) in line


def _parse_head(head):
    lines = head.split(b"\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs


def _read_head(rd):
    """(request line, headers) from a Reader, or None at EOF; the body stays buffered."""
    while b"\r\n\r\n" not in rd.buf:
        if not rd.fill():
            return None
    i = rd.buf.index(b"\r\n\r\n")
    head = bytes(rd.buf[:i])
    del rd.buf[:i + 4]
    return _parse_head(head)


def _answer_paths(m, sock):
    """A plain backend: 200 with the request path as the body."""
    rd = Reader(sock)
    while True:
        req = rd.request()
        if req is None:
            return
        m.record(req[1])
        sock.sendall(response_bytes(req[1]))


def healthy_path(s, path="/after-check"):
    """A fresh connection gets its own answer from a path-echoing Mini."""
    alive(s)
    r = get(s.port, path)
    eq((r.status, r.body), (200, path.encode()), "fresh request afterwards")


# ---------------------------------------------------------------- 1. local answers + unread body

def test_local_answer_unread_body_not_a_request(env):
    e = env.echo("e")
    cfg = env.config(
        upstreams=[{"name": "u", "targets": [{"address": e.addr}]}],
        routes=[{"name": "ping", "match": {"path": {"exact": "/ping"}},
                 "respond": {"status": 200, "body": "pong\n"}},
                {"name": "old", "match": {"path": {"exact": "/old"}}, "redirect": {"path": "/new"}},
                {"name": "app", "match": {"hosts": ["app.test"]}, "upstream": "u"}])
    s = env.sluice(cfg)
    eq(get(s.port, "/probe", host="app.test").json()["path"], "/probe", "echo route works")
    base = e.stats()["requests"]
    cases = [("/ping", 200, b"pong\n"), ("/old", 302, None), ("/nothing", 404, None)]
    for path, status, body in cases:
        with Conn(s.port) as c:
            c.send(b"POST %s HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n"
                   % (path.encode(), len(SMUGGLED)) + SMUGGLED)
            r = c.read_response()
            eq(r.status, status, "POST %s answered locally" % path)
            if body is not None:
                eq(r.body, body, "POST %s body" % path)
            eq((r.h("connection") or "").lower(), "close", "POST %s: Connection header" % path)
            closed, rest = drain_rest(c)
            eq(rest, b"", "bytes after the POST %s response (a second response?)" % path)
            check(closed, "POST %s: connection left open" % path)
    # the body arriving after the local answer went out
    with Conn(s.port) as c:
        c.send(b"POST /ping HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED))
        r = c.read_response()
        eq((r.status, (r.h("connection") or "").lower()), (200, "close"), "POST /ping, body not yet sent")
        try:
            c.send(SMUGGLED)
        except OSError:
            pass
        closed, rest = drain_rest(c)
        eq(rest, b"", "bytes after the late body")
        check(closed, "late-body connection left open")
    time.sleep(0.2)
    eq(e.stats()["requests"] - base, 0, "requests the backend saw (/smuggled forwarded?)")
    r = get(s.port, "/after", host="app.test")
    eq((r.status, r.json()["path"]), (200, "/after"), "fresh request afterwards")
    lines = log_settled(s, 6)
    check(not any("/smuggled" in l for l in lines), "/smuggled in the access log: %r" % lines)
    for req, n in (("POST /ping HTTP/1.1", 2), ("POST /old HTTP/1.1", 1), ("POST /nothing HTTP/1.1", 1)):
        eq(sum(1 for l in lines if head_line(req)(l)), n, "access log lines for %s" % req)
    eq(len(lines), 6, "access log lines in all: %r" % lines)


# ---------------------------------------------------------------- 2. early answer, body still arriving

def _early_401_drains(m, sock):
    """401 right after a head with a body, then read and discard that body
    and carry on; other requests get 200 'saw <request line>'."""
    rd = Reader(sock)
    while True:
        h = _read_head(rd)
        if h is None:
            return
        line, hdrs = h
        cl = int(hdrs.get(b"content-length", b"0"))
        m.record(line)
        if cl:
            sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 9\r\n\r\nearly no\n")
            while len(rd.buf) < cl:
                if not rd.fill():
                    m.record(("short body", len(rd.buf)))
                    return
            body = bytes(rd.buf[:cl])
            del rd.buf[:cl]
            m.record(("body", len(body), body.strip(b"xy") == b""))
        else:
            sock.sendall(response_bytes(b"saw " + line))


def _get_own(s, path, what):
    t0 = time.monotonic()
    r = get(s.port, path, timeout=4)
    eq((r.status, r.body), (200, b"saw GET %s HTTP/1.1" % path.encode()), what)
    check(time.monotonic() - t0 < 2.0, "%s took %.2fs" % (what, time.monotonic() - t0))


def test_early_answer_body_still_arriving(env):
    with Mini(_early_401_drains) as m:
        s = one_upstream(env, [m.addr], {"timeouts": {"response_header_ms": 2000}})
        for rnd in range(2):
            a = Conn(s.port, timeout=5)
            try:
                a.send(b"POST /a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 20000\r\n\r\n" + b"x" * 1000)
                r = a.read_response()
                eq((r.status, r.body), (401, b"early no\n"), "early 401 (round %d)" % rnd)
                if rnd == 0:
                    for i in range(19):        # trickle the rest
                        a.send(b"y" * 1000)
                        time.sleep(0.01)
                        if i == 9:
                            _get_own(s, "/b-mid", "other client mid-upload")
                else:
                    time.sleep(0.3)
                    a.send(b"y" * 19000)       # the rest in one write
                time.sleep(0.2)
                for k in range(3):
                    _get_own(s, "/b%d-%d" % (rnd, k), "other client after the upload (round %d)" % rnd)
                try:
                    a.send(build_request("GET", "/a-next"))
                    r = a.read_response(timeout=3)
                    eq((r.status, r.body), (200, b"saw GET /a-next HTTP/1.1"),
                       "next request on the uploading connection")
                except (Closed, OSError):
                    pass                       # closing it is allowed too
            finally:
                a.close()
        # sluice may forward the whole body or close the upstream connection,
        # but the body the backend reads must never hold another request
        bodies = [x for x in m.log if isinstance(x, tuple) and x[0] == "body"]
        check(all(b == ("body", 20000, True) for b in bodies), "bodies the backend read: %r" % bodies)
        healthy = get(s.port, "/fresh")
        eq(healthy.body, b"saw GET /fresh HTTP/1.1", "fresh request afterwards")


# ---------------------------------------------------------------- 3. body that never starts

def test_body_never_starts_closed_by_client_idle(env):
    with Mini(_answer_paths) as m:
        s = one_upstream(env, [m.addr], timeouts={"client_idle_ms": 1000, "client_header_ms": 1000})
        with Conn(s.port, timeout=5) as c:
            c.send(b"POST /nobody HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\n")
            t0 = time.monotonic()
            closed = c.wait_closed(4.0)
            dt = time.monotonic() - t0
            check(closed, "connection still open 4 s after a body that never started (client_idle_ms 1000)")
            check(0.8 <= dt <= 1.8, "closed after %.2fs, want about 1 s (client_idle_ms 1000)" % dt)
        check(wait_for(lambda: m.open == 0, 2.0), "backend connection still open (%d)" % m.open)
        healthy_path(s)


# ---------------------------------------------------------------- 4. listener removed by reload

def test_removed_listener_keepalive_gets_404(env):
    pa, pb = harness.free_port(), harness.free_port()

    def cfg(listeners, routes):
        return env.config(listeners=[{"name": n, "address": "127.0.0.1:%d" % p} for n, p in listeners],
                          routes=routes)
    ra = {"name": "ra", "match": {"listeners": ["a"]}, "respond": {"status": 200, "body": "A1\n"}}
    rb = {"name": "rb", "match": {"listeners": ["b"]}, "respond": {"status": 200, "body": "B\n"}}
    s = env.sluice(cfg([("a", pa), ("b", pb)], [ra, rb]))
    c = Conn(pb, timeout=5)
    try:
        c.send(build_request("GET", "/one"))
        r = c.read_response()
        eq((r.status, r.body), (200, b"B\n"), "listener b before the reload")
        ra2 = dict(ra, respond={"status": 200, "body": "A2\n"})
        s.write_config(cfg([("a", pa)], [ra2]))
        s.proc.signal(signal.SIGHUP)
        check(wait_for(lambda: get(pa, "/probe").body == b"A2\n", 5.0, 0.05),
              "reload not applied: %s" % s.proc.stderr()[-400:])
        c.send(build_request("GET", "/two"))
        r = c.read_response()
        eq((r.status, r.body == b"A2\n"), (404, False), "request on a removed listener's connection")
        eq((r.h("connection") or "").lower(), "close", "Connection header of that 404")
        closed, rest = drain_rest(c)
        check(closed and rest == b"", "connection not closed after the 404 (rest %r)" % rest)
    finally:
        c.close()
    time.sleep(0.2)
    alive(s)
    r = get(pa, "/fresh")
    eq((r.status, r.body), (200, b"A2\n"), "fresh request on the remaining listener")
    rc, killed = s.proc.stop(8.0)
    eq((rc, killed), (0, False), "exit after SIGTERM: %s" % s.proc.stderr()[-400:])


# ---------------------------------------------------------------- 5. 1xx heads

HINTS_103 = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
FINAL_200 = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Some-Longer-Header: " + b"a" * 200
             + b"\r\n\r\nabc")
CONT_100 = b"HTTP/1.1 100 Continue\r\n\r\n"


def _interim(m, sock):
    rd = Reader(sock)
    while True:
        req = rd.request()
        if req is None:
            return
        m.record(req[1])
        if req[1] == "/hints":
            sock.sendall(HINTS_103 + FINAL_200)                 # one write
        elif req[1] == "/continue":
            sock.sendall(CONT_100 + response_bytes(b"got " + req[3]))
        elif req[1] == "/continue-split":
            sock.sendall(CONT_100)
            time.sleep(0.05)
            sock.sendall(response_bytes(b"got " + req[3]))
        else:
            sock.sendall(response_bytes(req[1]))


def test_interim_heads_not_overwritten(env):
    with Mini(_interim) as m:
        s = one_upstream(env, [m.addr])
        cases = [(build_request("GET", "/hints"), HINTS_103 + FINAL_200, "103 + 200"),
                 (build_request("POST", "/continue", body=b"hello"),
                  CONT_100 + response_bytes(b"got hello"), "backend 100 + 200, one write"),
                 (build_request("POST", "/continue-split", body=b"hello"),
                  CONT_100 + response_bytes(b"got hello"), "backend 100 + 200, two writes")]
        with Conn(s.port) as c:
            for req, want, what in cases:
                for rnd in range(2):
                    c.send(req)
                    first = c.read_response(keep_interim=True)
                    final = c.read_response()
                    eq(first.raw + final.raw, want, "client bytes for %s (round %d)" % (what, rnd))
                    eq(c.read_some(0.1), b"", "bytes after %s" % what)
            c.send(build_request("GET", "/next"))
            eq(c.read_response().body, b"/next", "next request on the same connection")
        healthy_path(s)


# ---------------------------------------------------------------- 6. stray bytes on a pooled connection

def _junk_after_answer(m, sock):
    """HEAD /head/D and POST /early/D: answer, then D ms later write 5 junk
    bytes on the same connection (after the answer, before reading a POST's
    body); anything else: 200 with the path as the body."""
    rd = Reader(sock)
    while True:
        h = _read_head(rd)
        if h is None:
            return
        line, hdrs = h
        method, path = line.decode().split(" ")[:2]
        m.record(path)
        cl = int(hdrs.get(b"content-length", b"0"))
        if method == "HEAD" or path.startswith("/early/"):
            if method == "HEAD":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            else:
                sock.sendall(response_bytes("early"))
            delay = int(path.rsplit("/", 1)[1])
            if delay:
                time.sleep(delay / 1000.0)
            sock.sendall(b"JUNK!")
        else:
            sock.sendall(response_bytes(path))
        while len(rd.buf) < cl:
            if not rd.fill():
                return
        del rd.buf[:cl]


def _next_requests_clean(s, c, tag):
    for p in ("/same-%s" % tag, "/same-%s-b" % tag):
        c.send(build_request("GET", p))
        r = c.read_response()
        eq((r.status, r.body), (200, p.encode()), "next request on the same client connection (%s)" % tag)
    p = "/new-%s" % tag
    r = get(s.port, p)
    eq((r.status, r.body), (200, p.encode()), "request on a new client connection (%s)" % tag)


def test_stray_upstream_bytes_never_reach_next_request(env):
    with Mini(_junk_after_answer) as m:
        s = one_upstream(env, [m.addr])
        with Conn(s.port) as c:
            # the request body is still arriving when the junk comes, so
            # sluice still owns the upstream connection and sees that readiness
            for delay in (20, 0, 50):
                c.send(b"POST /early/%d HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3000\r\n\r\n"
                       % delay + b"a" * 1000)
                r = c.read_response()
                eq((r.status, r.body), (200, b"early"), "early answer (junk after %d ms)" % delay)
                time.sleep(0.1 + delay / 1000.0)
                c.send(b"b" * 2000)
                time.sleep(0.05)
                eq(c.read_some(0.05), b"", "bytes after the early answer")
                _next_requests_clean(s, c, "early-%d" % delay)
            # the junk arrives while the connection sits in the pool
            for delay in (20, 0, 5):
                c.send(build_request("HEAD", "/head/%d" % delay))
                r = c.read_response(head=True)
                eq((r.status, r.h("content-length")), (200, "5"), "HEAD answer (junk after %d ms)" % delay)
                time.sleep(0.1 + delay / 1000.0)
                eq(c.read_some(0.05), b"", "bytes after the HEAD answer")
                _next_requests_clean(s, c, "head-%d" % delay)
        healthy_path(s)


# ---------------------------------------------------------------- 7. CONNECT

def test_connect_405_no_upstream_connection(env):
    with Mini(_answer_paths) as up, Mini(_answer_paths) as target:
        s = one_upstream(env, [up.addr])
        for tgt in (b"example.com:443", b"127.0.0.1:%d" % target.port):
            with Conn(s.port) as c:
                c.send(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (tgt, tgt))
                r = c.read_response(timeout=3)
                eq(r.status, 405, "CONNECT %s" % tgt.decode())
                eq((r.h("connection") or "").lower(), "close", "Connection header of the 405")
                closed, rest = drain_rest(c)
                check(closed and rest == b"", "connection not closed after the 405 (rest %r)" % rest)
        time.sleep(0.2)
        eq((up.accepted, target.accepted), (0, 0), "connections opened to (upstream, CONNECT target)")
        healthy_path(s)


# ---------------------------------------------------------------- 8. access log counts

def _ws_or_path(m, sock):
    rd = Reader(sock)
    while True:
        req = rd.request()
        if req is None:
            return
        if (req[2].get("upgrade") or "").lower() != "websocket":
            sock.sendall(response_bytes(req[1]))
            continue
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        if rd.buf:
            sock.sendall(bytes(rd.buf))
        while True:
            d = sock.recv(65536)
            if not d:
                return
            sock.sendall(d)


LOG_RE = re.compile(r'^\S+ 127\.0\.0\.1:\d+ "([^"]*)" host=\S+ status=(\d{3}) in=(\d+) out=(\d+) ')


def test_access_log_body_bytes_and_tunnel_line(env):
    with Mini(_ws_or_path) as m:
        s = one_upstream(env, [m.addr])
        post = build_request("POST", "/upload", body=b"p" * 1000)
        with Conn(s.port) as c:
            c.send(post)
            eq(c.read_response().body, b"/upload", "POST answered")
        ws = build_request("GET", "/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                                  ("Sec-WebSocket-Version", "13")])
        with Conn(s.port) as c:
            c.send(ws)
            eq(c.read_response().status, 101, "tunnel opened")
            c.send(b"hello-tunnel")
            eq(c.read_exact(12, time.monotonic() + 3), b"hello-tunnel", "tunnel echo")
        healthy_path(s)
        lines = log_settled(s, 3)
        got = {}
        for l in lines:
            mm = LOG_RE.match(l)
            check(mm, "access log line format: %r" % l)
            got[mm.group(1)] = (int(mm.group(2)), int(mm.group(3)))
        problems = []
        if got.get("POST /upload HTTP/1.1") != (200, len(post)):
            problems.append("POST line (status, in) %r, want (200, %d = head + 1000)"
                            % (got.get("POST /upload HTTP/1.1"), len(post)))
        tl = got.get("GET /ws HTTP/1.1")
        if tl is None or tl[0] != 101 or tl[1] < len(ws):
            problems.append("tunnel line (status, in) %r, want (101, >= %d)" % (tl, len(ws)))
        if "- - -" in got:
            problems.append("a line without its request line")
        check(not problems, "; ".join(problems) + ": %r" % lines)


# ---------------------------------------------------------------- 9. lingering close

def test_413_survives_client_still_sending(env):
    cfg = env.config(routes=[{"name": "ping", "match": {}, "respond": {"status": 200, "body": "pong\n"}}],
                     limits={"max_body_bytes": 1000})
    s = env.sluice(cfg)
    for rnd in range(2):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        try:
            sock.sendall(b"POST /big HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n" % (50 << 20))
            errs = []
            sent = [0]

            def sender():
                chunk = b"z" * 65536
                t_end = time.monotonic() + 0.6
                try:
                    while time.monotonic() < t_end:
                        sock.sendall(chunk)
                        sent[0] += len(chunk)
                except OSError as ex:
                    errs.append(ex)
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            t.join(5)
            data = b""
            err = None
            sock.settimeout(3)
            try:
                while True:
                    d = sock.recv(65536)
                    if not d:
                        break
                    data += d
            except OSError as ex:
                err = ex
            check(data.startswith(b"HTTP/1.1 413 "), "413 not readable (round %d): got %r, error %r, "
                  "sender error %r after %d bytes" % (rnd, data[:80], err, errs, sent[0]))
            i = data.find(b"\r\n\r\n")
            check(i > 0, "incomplete 413 head: %r" % data[:200])
            _, hdrs = _parse_head(data[:i])
            eq(len(data) - i - 4, int(hdrs.get(b"content-length", b"-1")), "413 body length")
            eq(hdrs.get(b"connection", b"").lower(), b"close", "Connection header of the 413")
            check(err is None, "reading after the 413 ended with %r, want a clean EOF" % err)
            check(not errs, "client's upload reset after %d bytes: %r" % (sent[0], errs))
        finally:
            sock.close()
    alive(s)
    eq(get(s.port, "/fresh").body, b"pong\n", "fresh request afterwards")


# ---------------------------------------------------------------- 10. accept back-off

class LimitedProc(harness.Proc):
    """A harness.Proc whose RLIMIT_NOFILE (soft and hard) is set before exec."""

    def __init__(self, argv, tmpdir, name, nofile):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(tmpdir, name + ".out")
        self.err_path = os.path.join(tmpdir, name + ".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=tmpdir,
                                      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                            (nofile, nofile)))
        self.pid = self.p.pid
        self.stopped = False


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_accept_backoff_on_emfile(env):
    cfg = env.config(routes=[{"name": "ping", "match": {}, "respond": {"status": 200, "body": "pong\n"}}])
    path = env.write(env._name("sluice") + ".json", cfg)
    p = LimitedProc([SLUICE, "--config", path], env.tmp, env._name("sluice"), 64)
    env.procs.append(p)
    s = Sluice(p, cfg, path, cfg["access_log"])
    env.sluices.append(s)
    check(wait_port(s.port, 5.0, p), "sluice did not listen: %s" % p.stderr()[-600:])
    eq(get(s.port, "/first").body, b"pong\n", "request before the descriptors run out")
    conns = []
    try:
        for _ in range(80):
            conns.append(socket.create_connection(("127.0.0.1", s.port), timeout=3))
        check(wait_for(lambda: "pausing accepts" in p.stderr(), 3.0),
              "no 'pausing accepts' on stderr with 80 idle connections and 64 descriptors: %s"
              % p.stderr()[-400:])
        alive(s)
        c0 = cpu_seconds(p.pid)
        time.sleep(2.0)
        used = cpu_seconds(p.pid) - c0
        check(used < 0.5, "sluice used %.2fs CPU in 2 s while out of descriptors (spinning?)" % used)
    finally:
        for c in conns:
            c.close()
    ok = wait_for(lambda: _try_get(s.port), 5.0, 0.1)
    check(ok, "no answer within 5 s after the idle connections closed: %s" % p.stderr()[-300:])
    eq(get(s.port, "/again").body, b"pong\n", "another fresh request")


def _try_get(port):
    try:
        return get(port, "/after", timeout=1.0).body == b"pong\n"
    except (OSError, TestFailure, Closed):
        return False
