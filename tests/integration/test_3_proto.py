"""HTTP/1.x on the wire through sluice: keep-alive, pipelining, framing,
streaming, forwarding headers."""
import hashlib
import os
import threading
import time

from harness import (Conn, build_request, check, eq, get, pattern, request, sha256, uh,
                     wait_for)


def simple(env, **kw):
    e = env.echo("e")
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": e.addr}]}],
                     routes=[{"name": "r", "match": {}, "upstream": "u"}], **kw)
    return e, env.sluice(cfg)


def test_upstream_keepalive_reuse(env):
    e, s = simple(env)
    ids = [get(s.port, "/k").h("x-conn-id") for _ in range(5)]
    eq(len(set(ids)), 1, "X-Conn-Id across 5 sequential requests from new clients %r" % ids)
    with Conn(s.port) as c:
        for i in range(5):
            c.send(build_request("GET", "/k%d" % i))
            r = c.read_response()
            eq(r.status, 200, "keep-alive request %d" % i)
            ids.append(r.h("x-conn-id"))
    eq(len(set(ids)), 1, "same upstream connection on a keep-alive client %r" % ids)
    accepted = e.stats()["accepted"]  # includes this /stats connection
    check(accepted <= 2, "echo accepted %d connections" % accepted)


def test_pipelining(env):
    e, s = simple(env)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/a") + build_request("POST", "/b", body=b"xyz")
               + build_request("GET", "/c"))
        paths = []
        for _ in range(3):
            r = c.read_response()
            eq(r.status, 200, "pipelined status")
            paths.append(r.json()["path"])
        eq(paths, ["/a", "/b", "/c"], "pipelined responses in order")
        c.send(build_request("GET", "/d"))
        eq(c.read_response().json()["path"], "/d", "connection usable afterwards")


def test_http10_client(env):
    e, s = simple(env)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/one", version="HTTP/1.0"))
        r = c.read_response()
        eq(r.status, 200, "HTTP/1.0 status")
        check(c.wait_closed(2.0), "HTTP/1.0 without keep-alive: connection closed")
    with Conn(s.port) as c:
        c.send(build_request("GET", "/one", version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
        r = c.read_response()
        eq(r.status, 200, "HTTP/1.0 keep-alive status")
        check(r.h("content-length") is not None, "HTTP/1.0 keep-alive response has Content-Length")
        c.send(build_request("GET", "/two", version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
        eq(c.read_response().json()["path"], "/two", "second HTTP/1.0 keep-alive request")
    with Conn(s.port) as c:
        c.send(build_request("GET", "/bytes/100000?chunked=1&chunk=1000", version="HTTP/1.0"))
        r = c.read_response()
        eq(r.status, 200, "status")
        check("chunked" not in (r.h("transfer-encoding") or ""), "no chunked to an HTTP/1.0 client")
        check(r.body == pattern(100000), "body delivered un-chunked and exact (%d bytes)" % len(r.body))


def test_expect_100_continue(env):
    e, s = simple(env)
    with Conn(s.port) as c:
        c.send(build_request("POST", "/upload", headers=[("Expect", "100-continue"),
                                                          ("Content-Length", "11")]))
        first = c.read_response(keep_interim=True, timeout=3.0)
        eq(first.status, 100, "interim 100 Continue before the body")
        c.send(b"hello world")
        r = c.read_response()
        eq(r.status, 200, "final status")
        eq(r.json()["body"], "hello world", "body delivered")


def test_head_204_304_no_body(env):
    e, s = simple(env)
    with Conn(s.port) as c:
        c.send(build_request("HEAD", "/bytes/1000"))
        r = c.read_response(head=True)
        eq(r.status, 200, "HEAD status")
        eq(r.h("content-length"), "1000", "HEAD keeps Content-Length")
        c.send(build_request("GET", "/status/204"))
        r = c.read_response()
        eq(r.status, 204, "204")
        check(r.h("transfer-encoding") is None, "204 has no Transfer-Encoding")
        c.send(build_request("GET", "/status/304"))
        eq(c.read_response().status, 304, "304")
        c.send(build_request("GET", "/after"))
        r = c.read_response()
        eq(r.json()["path"], "/after", "no stray body bytes after HEAD/204/304")
        eq(c.read_some(0.2), b"", "nothing else on the wire")


def _chunked(body, sizes):
    out, i, k = b"", 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        k += 1
        piece = body[i:i + n]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        i += n
    return out + b"0\r\n\r\n"


def test_chunked_request_byte_exact(env):
    e, s = simple(env)
    body = os.urandom(70000) + bytes(range(256))
    wire = _chunked(body, [1, 7, 4096, 65536, 3])
    with Conn(s.port) as c:
        c.send(build_request("POST", "/raw", headers=[("Transfer-Encoding", "chunked")]) + wire)
        r = c.read_response()
        eq(r.status, 200, "status")
        check(r.body == body, "raw echo of a chunked body: %d vs %d bytes" % (len(r.body), len(body)))
        small = b"a\x00b\xffc\r\n"
        c.send(build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
               + b"3;ext=1\r\n" + small[:3] + b"\r\n" + b"4\r\n" + small[3:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        j = r.json()
        eq(j["body"].encode("latin-1"), small, "chunk extension + trailer body")
        eq(j["body_sha256"], sha256(small), "sha256")
        eq(uh(r, "transfer-encoding") + uh(r, "content-length") != [], True, "upstream framed")


def test_chunked_response_byte_exact(env):
    e, s = simple(env)
    with Conn(s.port) as c:
        for chunk in (1, 777, 16384):
            c.send(build_request("GET", "/bytes/50000?chunked=1&chunk=%d" % chunk))
            r = c.read_response(timeout=10)
            eq(r.status, 200, "status")
            check(r.body == pattern(50000), "chunked response (chunk=%d) exact" % chunk)


def test_close_delimited_upstream(env):
    e, s = simple(env)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/bytes/300000?close=1"))
        r = c.read_response(timeout=10)
        eq(r.status, 200, "status")
        check(r.body == pattern(300000), "close-delimited body exact (%d bytes)" % len(r.body))
        if r.chunked or r.h("content-length"):
            c.send(build_request("GET", "/after"))
            eq(c.read_response().json()["path"], "/after", "framed response keeps the client connection")


def test_large_upload_raw_64mib(env):
    e, s = simple(env)
    n = 64 << 20
    block = os.urandom(1 << 20)
    want = hashlib.sha256()
    for _ in range(64):
        want.update(block)
    with Conn(s.port, timeout=60) as c:
        c.send(build_request("POST", "/raw", headers=[("Content-Length", str(n))]))
        err = []

        def sender():
            try:
                for _ in range(64):
                    c.sock.sendall(block)
            except OSError as ex:
                err.append(ex)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        r = c.read_response(timeout=60)
        t.join(10)
        check(not err, "upload failed: %r" % err)
        eq(r.status, 200, "status")
        eq(len(r.body), n, "body length")
        eq(sha256(r.body), want.hexdigest(), "sha256 of 64 MiB echoed back")


def test_large_download_64mib(env):
    e, s = simple(env)
    n = 64 << 20
    with Conn(s.port, timeout=60) as c:
        c.send(build_request("GET", "/bytes/%d" % n))
        r = c.read_response(timeout=60)
        eq(r.status, 200, "status")
        eq(len(r.body), n, "length")
        check(r.body == pattern(n), "64 MiB download byte-exact")


def test_large_upload_json_sha(env):
    e, s = simple(env)
    body = os.urandom(5 << 20)
    r = request(s.port, "PUT", "/up", body=body, timeout=30)
    j = r.json()
    eq((j["body_len"], j["body_sha256"]), (len(body), sha256(body)), "upstream saw the exact body")
    check("body" not in j, "large body not echoed")


def test_sse_streams_immediately(env):
    e, s = simple(env)
    with Conn(s.port) as c:
        t0 = time.monotonic()
        c.send(build_request("GET", "/sse?n=5&ms=300"))
        r = c.read_head(3)
        eq(r.status, 200, "status")
        c.body_until(r, b"data: event 1\n\n", 3)
        t_first = time.monotonic() - t0
        c.body_until(r, b"data: event 5\n\n", 5)
        t_last = time.monotonic() - t0
        check(t_first < 0.5, "first event after %.3fs (must stream, not buffer)" % t_first)
        check(t_last > 1.1, "last event after %.3fs" % t_last)
        body = c.body_until(r, None, 3)
        eq(body.count(b"data: event"), 5, "5 events")


def test_sse_client_abort_closes_upstream(env):
    e, s = simple(env)
    before = e.stats()["aborted"]
    c = Conn(s.port)
    c.send(build_request("GET", "/sse?n=1000&ms=20"))
    r = c.read_head(3)
    c.body_until(r, b"data: event 2\n\n", 3)
    c.close()
    t0 = time.monotonic()
    ok = wait_for(lambda: e.stats()["aborted"] > before, 1.0, 0.05)
    check(ok, "backend saw the stream aborted within 1 s of the client leaving (%.2fs)"
          % (time.monotonic() - t0))


def test_forwarded_headers(env):
    e, s = simple(env)
    r = get(s.port, "/f", host="Front.example:8080", headers=[("X-Forwarded-For", "10.1.2.3")])
    eq(uh(r, "x-forwarded-for"), ["10.1.2.3, 127.0.0.1"], "X-Forwarded-For appended")
    eq(uh(r, "x-forwarded-proto"), ["http"], "X-Forwarded-Proto")
    eq(len(uh(r, "x-forwarded-host")), 1, "one X-Forwarded-Host")
    check(uh(r, "x-forwarded-host")[0].lower().startswith("front.example"),
          "X-Forwarded-Host %r" % uh(r, "x-forwarded-host"))
    r = get(s.port, "/f")
    eq(uh(r, "x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For created")
    eq(uh(r, "host"), ["example.com"], "Host passed through")


def test_request_id(env):
    e, s = simple(env)
    ids = [uh(get(s.port, "/"), "x-request-id") for _ in range(2)]
    check(all(len(i) == 1 and len(i[0]) >= 8 for i in ids), "generated X-Request-Id %r" % ids)
    check(ids[0] != ids[1], "X-Request-Ids differ %r" % ids)
    r = get(s.port, "/", headers=[("X-Request-Id", "my-id-123")])
    eq(uh(r, "x-request-id"), ["my-id-123"], "X-Request-Id kept")


def test_hop_by_hop_removed(env):
    e, s = simple(env)
    r = get(s.port, "/", headers=[("Connection", "keep-alive, X-Private"), ("X-Private", "secret"),
                                  ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                                  ("TE", "trailers"), ("Trailer", "X-T"), ("X-End", "kept")])
    names = [k.lower() for k, v in r.json()["headers"]]
    for h in ("x-private", "keep-alive", "proxy-connection", "te", "trailer"):
        check(h not in names, "%s forwarded upstream: %r" % (h, names))
    check("connection" not in names or uh(r, "connection") in (["keep-alive"], ["close"]),
          "client Connection header forwarded: %r" % uh(r, "connection"))
    eq(uh(r, "x-end"), ["kept"], "end-to-end header kept")
    r = get(s.port, "/", headers=[("X-Echo-Set-Header", "Keep-Alive: timeout=1, X-Keep: y")])
    eq(r.hall("keep-alive"), [], "upstream Keep-Alive not forwarded to the client")
    eq(r.hall("x-keep"), ["y"], "upstream end-to-end header forwarded")


def test_many_concurrent_clients(env):
    e, s = simple(env)
    conns = [Conn(s.port) for _ in range(200)]
    try:
        for i, c in enumerate(conns):
            c.send(build_request("GET", "/c%d" % i))
        for i, c in enumerate(conns):
            r = c.read_response(timeout=10)
            eq(r.json()["path"], "/c%d" % i, "response %d" % i)
    finally:
        for c in conns:
            c.close()
