"""splice(2) body forwarding: large bodies byte-exact in both directions,
Content-Length, close-delimited and tunnels; which path moved the bytes
(sluice_body_bytes_total{path="splice"|"copy"}); the threshold; a client or
an upstream leaving mid-splice; keep-alive and pooling after a spliced
message; no descriptor leak from the pipe pool.

The bytes that arrive in the same read as a head are copied (they are in a
buffer already), so a spliced body of N bytes moves at most one first read
by copy: 16 KiB for a response (the head buffer), 256 KiB for a request.
Every check below is exact: splice + copy deltas equal the body bytes.
"""
import hashlib
import os
import re
import socket
import threading
import time

from harness import (Conn, TestFailure, build_request, check, eq, free_port, get, pattern, request,
                     wait_for, wait_port)
from test_6_edge import Mini, Reader

RESP_FIRST_READ = 20 * 1024      # GW_BUF_SMALL: the upstream head buffer
REQ_FIRST_READ = 20 * 1024       # GW_BUF_SMALL too: the client head buffer (max_header_bytes + 1 KiB)


# ---------------------------------------------------------------- helpers

def start(env, upstream_addr, splice=None, **kw):
    """sluice with one catch-all route to upstream_addr and an admin listener;
    returns (sluice, admin port)."""
    aport = free_port()
    extra = {"admin": {"address": "127.0.0.1:%d" % aport}}
    if splice is not None:
        extra["splice"] = splice
    extra.update(kw)
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": upstream_addr}]}],
                     routes=[{"name": "r", "match": {}, "upstream": "u"}], **extra)
    s = env.sluice(cfg)
    check(wait_port(aport, 5.0, s.proc), "admin listener not up: %s" % s.proc.stderr()[-500:])
    return s, aport


def body_bytes(aport):
    """(splice, copy) from /metrics."""
    r = request(aport, "GET", "/metrics", host="127.0.0.1:%d" % aport)
    eq(r.status, 200, "GET /metrics")
    m = dict(re.findall(r'^sluice_body_bytes_total\{path="(\w+)"\} (\d+)$', r.body.decode(), re.M))
    check("splice" in m and "copy" in m, "sluice_body_bytes_total samples missing: %r" % r.body[-600:])
    return int(m["splice"]), int(m["copy"])


def deltas(aport, base, total, timeout=3.0):
    """Counter deltas since base, waiting (bounded) until they add up to
    total: the worker counts a move right after the syscall the client saw."""
    got = [None]

    def settled():
        sp, cp = body_bytes(aport)
        got[0] = (sp - base[0], cp - base[1])
        return sum(got[0]) >= total

    wait_for(settled, timeout, 0.05)
    eq(sum(got[0]), total, "splice + copy body bytes (splice, copy = %r)" % (got[0],))
    return got[0]


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def blob_server(blob, close_delimited=False, cut_after=None, rst=False):
    """A Mini handler answering every request with blob: Content-Length
    framing (keep-alive) or close-delimited; cut_after=n sends the head
    and n body bytes, then closes (RST when rst)."""
    def handler(m, sock):
        rd = Reader(sock)
        while True:
            req = rd.request()
            if req is None:
                return
            m.record(("req", req[1]))
            if close_delimited:
                sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + blob)
                return
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(blob)
            if cut_after is not None:
                sock.sendall(head + blob[:cut_after])
                m.state["cut"] = True
                if rst:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
                return
            sock.sendall(head + blob)
    return handler


def read_body(c, r, n, timeout=20.0):
    """Exactly n body bytes after head r was read."""
    return c.read_exact(n, time.monotonic() + timeout)


def tunnel_backend(m, sock):
    """101, then echo every byte back; the client's FIN is answered with ours."""
    rd = Reader(sock)
    req = rd.request()
    if req is None:
        return
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"\r\nserver-first")
    if rd.buf:
        sock.sendall(bytes(rd.buf))
    while True:
        d = sock.recv(1 << 20)
        if not d:
            m.state["eof"] = True
            sock.shutdown(socket.SHUT_WR)
            return
        sock.sendall(d)


# ---------------------------------------------------------------- byte-exact, both directions

def test_splice_download_content_length(env):
    n = 6 << 20
    blob = os.urandom(n)
    with Mini(blob_server(blob)) as m:
        s, aport = start(env, m.addr)
        base = body_bytes(aport)
        with Conn(s.port, timeout=20) as c:
            c.send(build_request("GET", "/big"))
            r = c.read_head()
            eq((r.status, r.h("content-length")), (200, str(n)), "status, Content-Length")
            got = read_body(c, r, n)
        check(hashlib.sha256(got).digest() == hashlib.sha256(blob).digest(), "6 MiB body differs")
        sp, cp = deltas(aport, base, n)
        check(sp >= n - RESP_FIRST_READ, "splice moved only %d of %d bytes (copy %d)" % (sp, n, cp))
        # the access log counts spliced bytes too
        line = wait_for(lambda: [l for l in s.log_lines() if "/big" in l], 3.0)
        check(line, "no access log line for /big")
        out = int(re.search(r" out=(\d+)", line[0]).group(1))
        check(n < out < n + 1024, "access log out=%d for a %d-byte body" % (out, n))


def test_splice_upload_and_streamed_echo(env):
    # echo's /raw answers with the body while it arrives: the upload and the
    # download splice at the same time, through two pipes
    e = env.echo("e")
    s, aport = start(env, e.addr)
    n = 5 << 20
    blob = os.urandom(n)
    base = body_bytes(aport)
    with Conn(s.port, timeout=20) as c:
        c.send(build_request("POST", "/raw", headers=[("Content-Length", str(n))]))
        t = threading.Thread(target=c.sock.sendall, args=(blob,), daemon=True)
        t.start()
        r = c.read_head(timeout=10)
        eq((r.status, r.h("content-length")), (200, str(n)), "/raw status, Content-Length")
        got = read_body(c, r, n)
        t.join(10)
        check(hashlib.sha256(got).digest() == hashlib.sha256(blob).digest(), "5 MiB echoed body differs")
    sp, cp = deltas(aport, base, 2 * n)
    check(sp >= 2 * n - REQ_FIRST_READ - RESP_FIRST_READ,
          "splice moved only %d of %d bytes (copy %d)" % (sp, 2 * n, cp))
    check(sp >= n, "splice grew by less than the body size: %d < %d" % (sp, n))


def test_splice_upload_hashed_then_keepalive(env):
    # a spliced upload leaves both connections clean: the next request on the
    # same client connection goes over the same (pooled) upstream connection
    e = env.echo("e")
    s, aport = start(env, e.addr)
    n = (4 << 20) + 12345
    blob = os.urandom(n)
    base = body_bytes(aport)
    with Conn(s.port, timeout=20) as c:
        c.send(build_request("POST", "/up", body=blob))
        r = c.read_response(timeout=20)
        eq(r.status, 200, "POST status")
        j = r.json()
        eq((j["body_len"], j["body_sha256"]), (n, hashlib.sha256(blob).hexdigest()), "body the backend hashed")
        conn1 = r.h("x-conn-id")
        sp, cp = deltas(aport, base, n + len(r.body))
        check(sp >= n - REQ_FIRST_READ, "upload spliced only %d of %d bytes" % (sp, n))
        c.send(build_request("GET", "/next"))
        r2 = c.read_response()
        eq((r2.status, r2.json()["path"]), (200, "/next"), "request after the spliced upload")
        eq(r2.h("x-conn-id"), conn1, "upstream connection reused after a spliced upload")


def test_splice_close_delimited(env):
    n = (3 << 20) + 7
    blob = os.urandom(n)
    with Mini(blob_server(blob, close_delimited=True)) as m:
        s, aport = start(env, m.addr)
        base = body_bytes(aport)
        with Conn(s.port, timeout=20) as c:
            c.send(build_request("GET", "/close"))
            r = c.read_head()
            eq(r.status, 200, "status")
            eq(r.h("content-length"), None, "no Content-Length on a close-delimited response")
            got = c.body_until(r, None, timeout=20)
            check(c.eof, "client connection closed at the end of the body")
        check(len(got) == n and hashlib.sha256(got).digest() == hashlib.sha256(blob).digest(),
              "close-delimited body differs (%d of %d bytes)" % (len(got), n))
        sp, cp = deltas(aport, base, n)
        check(sp >= n - RESP_FIRST_READ, "splice moved only %d of %d bytes" % (sp, n))
        eq(get(s.port, "/again").status, 200, "the next request")


def test_splice_tunnel(env):
    with Mini(tunnel_backend) as m:
        s, aport = start(env, m.addr)
        base = body_bytes(aport)
        c = Conn(s.port, timeout=20)
        try:
            c.send(build_request("GET", "/ws", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")]))
            r = c.read_response()
            eq(r.status, 101, "101 through sluice")
            eq(c.read_exact(12, time.monotonic() + 5), b"server-first", "server bytes after the 101")
            n = 4 << 20
            blob = os.urandom(n)
            t = threading.Thread(target=c.sock.sendall, args=(blob,), daemon=True)
            t.start()
            got = c.read_exact(n, time.monotonic() + 20)
            t.join(10)
            check(got == blob, "4 MiB through the tunnel and back differs")
            # half-close: our FIN reaches the backend, its FIN comes back
            c.sock.shutdown(socket.SHUT_WR)
            check(wait_for(lambda: m.state.get("eof"), 5.0), "client FIN not passed to the backend")
            check(c.wait_closed(5.0), "tunnel not closed after both FINs")
        finally:
            c.close()
        sp, cp = deltas(aport, base, 2 * n + 12)
        check(sp >= 2 * n - 64 * 1024, "tunnel spliced only %d of %d bytes (copy %d)" % (sp, 2 * n, cp))
        check(wait_for(lambda: m.open == 0, 3.0), "backend connection still open")


# ---------------------------------------------------------------- which path

def test_splice_disabled_copies(env):
    n = 3 << 20
    blob = os.urandom(n)
    with Mini(blob_server(blob)) as m:
        s, aport = start(env, m.addr, splice={"enabled": False})
        base = body_bytes(aport)
        with Conn(s.port, timeout=20) as c:
            c.send(build_request("GET", "/big"))
            r = c.read_head()
            got = read_body(c, r, n)
            check(got == blob, "body differs")
            c.send(build_request("POST", "/big", body=blob))
            r = c.read_head()
            got = read_body(c, r, n)
            check(got == blob, "body differs")
        eq(deltas(aport, base, 3 * n), (0, 3 * n), "(splice, copy) with splice disabled")


def test_splice_below_min_bytes_copies(env):
    e = env.echo("e")
    s, aport = start(env, e.addr)
    base = body_bytes(aport)
    n = 60000       # below the default min_bytes (65536)
    r = get(s.port, "/bytes/%d" % n)
    eq((r.status, r.body), (200, pattern(n)), "small body")
    eq(deltas(aport, base, n), (0, n), "(splice, copy) for a body below min_bytes")
    # and a body above it is spliced
    base = body_bytes(aport)
    n2 = 2 << 20
    r = get(s.port, "/bytes/%d" % n2, timeout=20)
    eq(r.body, pattern(n2), "2 MiB pattern body")
    sp, cp = deltas(aport, base, n2)
    check(sp >= n2 - RESP_FIRST_READ, "body above min_bytes: splice %d, copy %d" % (sp, cp))


def test_splice_min_bytes_configurable(env):
    e = env.echo("e")
    s, aport = start(env, e.addr, splice={"min_bytes": 4 << 20})
    base = body_bytes(aport)
    n = 2 << 20
    r = get(s.port, "/bytes/%d" % n, timeout=20)
    eq(r.body, pattern(n), "body")
    eq(deltas(aport, base, n), (0, n), "(splice, copy) for 2 MiB under min_bytes 4 MiB")


# ---------------------------------------------------------------- peers leaving

def test_splice_client_leaves_mid_download(env):
    e = env.echo("e")
    s, aport = start(env, e.addr)
    base_open = e.stats()["open_connections"]
    base = body_bytes(aport)
    c = Conn(s.port, timeout=10)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    c.send(build_request("GET", "/bytes/%d" % (256 << 20)))
    r = c.read_head()
    eq(r.status, 200, "status")
    eq(c.read_exact(2 << 20, time.monotonic() + 10), pattern(2 << 20), "first 2 MiB")
    check(wait_for(lambda: body_bytes(aport)[0] > base[0], 3.0), "nothing was spliced")
    check(e.stats()["open_connections"] > base_open, "backend connection not open mid-download")
    c.close()
    ok = wait_for(lambda: e.stats()["open_connections"] <= base_open, 5.0, 0.05)
    check(ok, "backend connection not closed after the client left mid-splice: %r" % e.stats())
    eq(get(s.port, "/after").status, 200, "sluice still serves")


def _cut_check(env, rst):
    n = 8 << 20
    cut = 3 << 20
    blob = os.urandom(n)
    with Mini(blob_server(blob, cut_after=cut, rst=rst)) as m:
        s, aport = start(env, m.addr)
        with Conn(s.port, timeout=10) as c:
            c.send(build_request("GET", "/cut"))
            r = c.read_head()
            eq((r.status, r.h("content-length")), (200, str(n)), "status, Content-Length")
            t0 = time.monotonic()
            closed = c.wait_closed(8.0)
            check(closed, "client connection not ended within 8 s after the upstream died mid-body")
            got = bytes(c.buf)
            check(len(got) <= cut and got == blob[:len(got)],
                  "bytes before the cut: %d (want a prefix of at most %d)" % (len(got), cut))
            if not rst:
                eq(len(got), cut, "every byte the upstream sent before its FIN was delivered")
            check(time.monotonic() - t0 < 8.0, "took too long")
        check(s.proc.alive(), "sluice died")


def test_splice_upstream_dies_mid_body(env):
    _cut_check(env, rst=False)


def test_splice_upstream_reset_mid_body(env):
    _cut_check(env, rst=True)


# ---------------------------------------------------------------- keep-alive, pooling, descriptors

def test_splice_keepalive_pipelined_and_pooled(env):
    e = env.echo("e")
    s, aport = start(env, e.addr)
    n = (3 << 20) + 5
    base = body_bytes(aport)
    with Conn(s.port, timeout=20) as c:
        # two spliced responses and a small one, pipelined in one write
        c.send(build_request("GET", "/bytes/%d" % n) + build_request("GET", "/bytes/%d" % n)
               + build_request("GET", "/small"))
        r1 = c.read_response(timeout=20)
        r2 = c.read_response(timeout=20)
        r3 = c.read_response()
        eq((r1.status, r2.status, r3.status), (200, 200, 200), "statuses")
        check(r1.body == pattern(n) and r2.body == pattern(n), "spliced bodies differ from the pattern")
        eq(r3.json()["path"], "/small", "third response")
        ids = {r1.h("x-conn-id"), r2.h("x-conn-id"), r3.h("x-conn-id")}
        eq(len(ids), 1, "one upstream connection for the pipelined requests (%r)" % ids)
    sp, cp = deltas(aport, base, 2 * n + len(r3.body))
    check(sp >= 2 * (n - RESP_FIRST_READ), "splice %d for two %d-byte bodies" % (sp, n))
    # a new client gets the pooled connection
    r4 = get(s.port, "/after")
    eq(r4.h("x-conn-id"), r1.h("x-conn-id"), "pooled upstream connection reused after spliced responses")


def test_splice_no_descriptor_leak(env):
    e = env.echo("e")
    s, aport = start(env, e.addr)
    n = 1 << 20

    def batch():
        for i in range(8):
            r = get(s.port, "/bytes/%d" % n, timeout=20)
            eq(r.body, pattern(n), "body %d" % i)
        with Conn(s.port, timeout=10) as c:      # and one left mid-body
            c.send(build_request("GET", "/bytes/%d" % (64 << 20)))
            c.read_head()
            c.read_exact(1 << 20, time.monotonic() + 10)
        eq(get(s.port, "/settle").status, 200, "request after the batch")

    def settle():
        check(wait_for(lambda: e.stats()["open_connections"] <= 2, 5.0), "backend connections did not settle")

    # Idle pooled upstream connections and idle pipes are kept on purpose
    # and their number moves by a descriptor or two with timing (under ASan
    # too); a leak grows with every batch, so five more batches after the
    # pools warmed up must stay within that slack.
    batch()
    batch()
    settle()
    first = nfds(s.proc.pid)
    for k in range(5):
        batch()
        settle()
        ok = wait_for(lambda: nfds(s.proc.pid) <= first + 2, 5.0)
        check(ok, "descriptors grew over batch %d: %d -> %d" % (k + 3, first, nfds(s.proc.pid)))
