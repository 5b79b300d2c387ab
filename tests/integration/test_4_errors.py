"""The errors sluice itself generates (SPEC error table)."""
import time

from harness import Conn, build_request, check, eq, free_port, get, request, wait_for


def setup(env, upstream_extra=None, **kw):
    e = env.echo("e")
    up = {"name": "u", "targets": [{"address": e.addr}]}
    up.update(upstream_extra or {})
    cfg = env.config(upstreams=[up], routes=[{"name": "r", "match": {"hosts": ["example.com"]},
                                               "upstream": "u"}], **kw)
    return e, env.sluice(cfg)


def raw_exchange(port, data, timeout=3.0):
    """Send bytes, read one response, and report whether the connection closed."""
    with Conn(port, timeout) as c:
        c.send(data)
        r = c.read_response(timeout=timeout)
        closed = c.wait_closed(2.0)
        return r, closed


def expect_close(r, closed, what):
    check(closed, "%s: connection left open" % what)
    check((r.h("connection") or "").lower() == "close", "%s: no 'Connection: close' (%r)"
          % (what, r.h("connection")))


def test_400_malformed(env):
    e, s = setup(env)
    for data, what in [
        (b"GET / HTTP/1.1\r\nHost example.com\r\n\r\n", "header without colon"),
        (b"GET /  HTTP/1.1\r\nHost: example.com\r\n\r\n", "double space in request line"),
        (b"GET / HTTP/1.1\r\nHost: example.com\r\nBad Name: x\r\n\r\n", "space in header name"),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", "TLS hello bytes"),
    ]:
        r, closed = raw_exchange(s.port, data)
        eq(r.status, 400, what)
        expect_close(r, closed, what)
    eq(e.stats()["requests"], 0, "nothing malformed reached the backend")


def test_400_framing(env):
    e, s = setup(env)
    cases = [
        (build_request("POST", "/", headers=[("Content-Length", "3"),
                                             ("Transfer-Encoding", "chunked")]) + b"0\r\n\r\n",
         "CL and TE"),
        (build_request("POST", "/", headers=[("Content-Length", "3"), ("Content-Length", "4")])
         + b"abcd", "differing Content-Lengths"),
        (build_request("POST", "/", headers=[("Content-Length", "-1")]), "negative Content-Length"),
        (build_request("POST", "/", headers=[("Transfer-Encoding", "chunked")]) + b"zz\r\nab\r\n0\r\n\r\n",
         "bad chunk size"),
    ]
    for data, what in cases:
        r, closed = raw_exchange(s.port, data)
        eq(r.status, 400, what)
        expect_close(r, closed, what)


def test_404_no_route(env):
    e, s = setup(env)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/", host="other.test"))
        r = c.read_response()
        eq(r.status, 404, "unrouted host")
        check(len(r.body) > 0 and len(r.body) < 1000, "short body")
        c.send(build_request("GET", "/", host="example.com"))
        eq(c.read_response().status, 200, "connection continues after a 404")


def test_413_max_body(env):
    e, s = setup(env, limits={"max_body_bytes": 1000})
    r = request(s.port, "POST", "/", body=b"x" * 1000)
    eq(r.status, 200, "body at the limit")
    r, closed = raw_exchange(s.port, build_request("POST", "/", body=b"x" * 1001))
    eq(r.status, 413, "Content-Length over the limit")
    with Conn(s.port) as c:
        c.send(build_request("POST", "/", headers=[("Transfer-Encoding", "chunked")])
               + b"3e8\r\n" + b"y" * 1000 + b"\r\n" + b"10\r\n" + b"y" * 16 + b"\r\n0\r\n\r\n")
        r = c.read_response()
        eq(r.status, 413, "chunked body over the limit")


def test_431_header_too_large(env):
    e, s = setup(env, limits={"max_header_bytes": 1024})
    r = get(s.port, "/", headers=[("X-Small", "a" * 200)])
    eq(r.status, 200, "headers within the limit")
    r, closed = raw_exchange(s.port, build_request("GET", "/", headers=[("X-Big", "a" * 2000)]))
    eq(r.status, 431, "header section over the limit")
    expect_close(r, closed, "431")


def test_501_transfer_encoding(env):
    e, s = setup(env)
    r, closed = raw_exchange(s.port, build_request("POST", "/", headers=[("Transfer-Encoding", "gzip")])
                             + b"abc")
    eq(r.status, 501, "TE gzip")
    expect_close(r, closed, "501")


def test_502_refused(env):
    port = free_port()
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": "127.0.0.1:%d" % port}]}],
                     routes=[{"name": "r", "match": {}, "upstream": "u"}])
    s = env.sluice(cfg)
    t0 = time.monotonic()
    r = get(s.port, "/")
    eq(r.status, 502, "refused target")
    check(time.monotonic() - t0 < 2.0, "502 is quick")


def test_502_reset_and_garbage(env):
    # one backend per case: a reset may (passively) mark its target down
    ups, routes = [], []
    for name in ("reset", "garbage", "fine"):
        e = env.echo(name)
        ups.append({"name": name, "targets": [{"address": e.addr}]})
        routes.append({"name": name, "match": {"path": {"exact": "/" + name}}, "upstream": name})
    s = env.sluice(env.config(upstreams=ups, routes=routes))
    eq(get(s.port, "/reset").status, 502, "upstream reset before a response")
    eq(get(s.port, "/garbage").status, 502, "invalid upstream status line")
    eq(get(s.port, "/fine").status, 200, "request to a healthy upstream")


def test_504_response_header_timeout(env):
    e, s = setup(env, {"timeouts": {"response_header_ms": 300}})
    t0 = time.monotonic()
    r = get(s.port, "/delay/3000")
    dt = time.monotonic() - t0
    eq(r.status, 504, "slow upstream")
    check(0.25 <= dt < 1.5, "504 after %.2fs (response_header_ms=300)" % dt)
    # a timeout counts against the target like a reset: the lone target is
    # ejected for the first back-off (1 s), then serves again
    eq(get(s.port, "/delay/50").status, 503, "right after the timeout: the target is ejected")
    r = wait_for(lambda: get(s.port, "/delay/50").status == 200, 3.0, 0.05)
    check(r, "fast enough request served again after the back-off")
    check(time.monotonic() - t0 < 2.5, "back within the 1 s back-off (%.2fs)" % (time.monotonic() - t0))


def test_error_bodies_short_and_framed(env):
    e, s = setup(env)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/", host="nope.test") + build_request("GET", "/x"))
        r1 = c.read_response()
        r2 = c.read_response()
        eq((r1.status, r2.status), (404, 200), "pipelined 404 then 200")
        check(r1.h("content-length") is not None or r1.chunked, "404 framed")
