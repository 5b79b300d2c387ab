"""Client timeouts, signals (drain, reload) and the access log."""
import re
import signal
import threading
import time

from harness import Conn, build_request, check, eq, get, wait_for, TestFailure


def setup(env, **kw):
    e = env.echo("e")
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": e.addr}]}],
                     routes=[{"name": "api", "match": {"path": {"prefix": "/"}}, "upstream": "u"}],
                     **kw)
    return e, env.sluice(cfg)


def test_client_header_timeout_slowloris(env):
    e, s = setup(env, timeouts={"client_header_ms": 500})
    with Conn(s.port) as c:
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: example.com\r\n")
        closed_at = None
        for i in range(30):  # trickle a header byte every 100 ms for up to 3 s
            try:
                c.send(b"X-Slow-%d: y\r\n" % i)
            except OSError:
                closed_at = time.monotonic() - t0
                break
            data = c.read_some(0.1)
            if c.eof:
                closed_at = time.monotonic() - t0
                break
            if data:
                check(data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 400"),
                      "only a 408 may be sent to a slow client: %r" % data[:100])
        check(closed_at is not None, "slow header section not closed within 3 s")
        check(0.4 <= closed_at <= 1.6, "closed after %.2fs (client_header_ms=500)" % closed_at)
    eq(e.stats()["requests"], 0, "slow request never reached the backend")


def test_client_idle_timeout(env):
    e, s = setup(env, timeouts={"client_idle_ms": 500})
    with Conn(s.port) as c:
        c.send(build_request("GET", "/a"))
        eq(c.read_response().status, 200, "first request")
        t0 = time.monotonic()
        check(c.wait_closed(3.0), "idle keep-alive connection not closed within 3 s")
        dt = time.monotonic() - t0
        check(0.35 <= dt <= 1.6, "idle close after %.2fs (client_idle_ms=500)" % dt)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/delay/1200"))
        r = c.read_response(timeout=4)
        eq(r.status, 200, "a request waiting on its upstream is not cut by client_idle_ms")
        c.send(build_request("GET", "/sse?n=3&ms=700"))
        r = c.read_response(timeout=4)
        eq(r.body.count(b"data: event"), 3,
           "a streaming response silent longer than client_idle_ms is not cut")


def test_sigterm_drains_in_flight(env):
    e, s = setup(env)
    eq(get(s.port, "/warm").status, 200, "warm-up")
    result = {}

    def client():
        try:
            result["r"] = get(s.port, "/delay/1000", timeout=5)
        except Exception as ex:  # reported below
            result["err"] = ex
    t = threading.Thread(target=client, daemon=True)
    t.start()
    time.sleep(0.3)
    t_sig = time.monotonic()
    s.proc.signal(signal.SIGTERM)
    # a new connection after the signal must not be served for long
    rc = s.proc.wait(6.0)
    t.join(5)
    check("err" not in result, "in-flight request failed: %r" % result.get("err"))
    eq(result["r"].status, 200, "in-flight request finished")
    eq(rc, 0, "exit code after drain")
    dt = time.monotonic() - t_sig
    check(dt >= 0.5, "exited after %.2fs, before the in-flight request could finish" % dt)


def test_sigterm_idle_exits_fast(env):
    e, s = setup(env)
    with Conn(s.port) as c:  # an idle keep-alive client must not hold the drain
        c.send(build_request("GET", "/"))
        c.read_response()
        t0 = time.monotonic()
        s.proc.signal(signal.SIGTERM)
        rc = s.proc.wait(5.0)
        eq(rc, 0, "exit code")
        check(time.monotonic() - t0 < 2.0, "idle keep-alive connection delayed exit %.2fs"
              % (time.monotonic() - t0))


def test_sighup_reload(env):
    e, s = setup(env)
    cfg = dict(s.cfg)
    eq(get(s.port, "/new").h("x-upstream"), "e", "before reload")
    cfg["routes"] = [{"name": "new", "match": {"path": {"exact": "/new"}},
                      "respond": {"status": 200, "body": "new route\n"}}] + s.cfg["routes"]
    s.write_config(cfg)
    s.proc.signal(signal.SIGHUP)
    ok = wait_for(lambda: get(s.port, "/new").body == b"new route\n", 3.0, 0.05)
    check(ok, "new route not served within 3 s of SIGHUP")
    eq(get(s.port, "/other").h("x-upstream"), "e", "old route still there")
    # a broken file keeps the running config
    s.write_config('{"listeners": [], "routes": [ {')
    s.proc.signal(signal.SIGHUP)
    time.sleep(0.5)
    check(s.proc.alive(), "sluice died on a bad reload: %s" % s.proc.stderr()[-300:])
    eq(get(s.port, "/new").body, b"new route\n", "config kept after a bad reload")
    bad = dict(cfg, bogus=1)
    s.write_config(bad)
    s.proc.signal(signal.SIGHUP)
    time.sleep(0.5)
    check(s.proc.alive(), "sluice died on an invalid reload")
    eq(get(s.port, "/new").body, b"new route\n", "config kept after an invalid reload")


def test_reload_keeps_connections(env):
    e, s = setup(env)
    with Conn(s.port) as c:
        c.send(build_request("GET", "/delay/600"))
        time.sleep(0.1)
        s.write_config(s.cfg)
        s.proc.signal(signal.SIGHUP)
        eq(c.read_response(timeout=4).status, 200, "in-flight request across a reload")
        c.send(build_request("GET", "/again"))
        eq(c.read_response().status, 200, "keep-alive connection survives a reload")


LOG_RE = re.compile(
    r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (127\.0\.0\.1:\d+) "([^"]*)" host=(\S+) '
    r'status=(\d{3}) in=(\d+) out=(\d+) upstream=(\S+) upstream_ms=(\S+) total_ms=(\S+) route=(\S+) ttfb_ms=(\S+) auth_id=(\S+)$')


def test_access_log(env):
    e = env.echo("e")
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": e.addr}]}],
                     routes=[{"name": "api", "match": {"hosts": ["example.com"]}, "upstream": "u"}])
    s = env.sluice(cfg)
    eq(get(s.port, "/path?x=1").status, 200, "routed request")
    eq(get(s.port, "/nope", host="other.test").status, 404, "unrouted request")
    lines = wait_for(lambda: len(s.log_lines()) >= 2 and s.log_lines(), 3.0)
    check(lines and len(lines) >= 2, "access log has %d lines: %r" % (len(lines or []), lines))
    m = LOG_RE.match(lines[0])
    check(m, "log line format: %r" % lines[0])
    eq(m.group(3), "GET /path?x=1 HTTP/1.1", "request line")
    eq(m.group(4), "example.com", "host")
    eq(m.group(5), "200", "status")
    check(int(m.group(6)) > 0 and int(m.group(7)) > 0, "bytes in/out %s/%s" % (m.group(6), m.group(7)))
    eq(m.group(8), e.addr, "upstream address")
    check(float(m.group(9)) <= float(m.group(10)), "upstream_ms <= total_ms")
    eq(m.group(11), "api", "route name")
    m = LOG_RE.match(lines[1])
    check(m, "404 log line format: %r" % lines[1])
    eq((m.group(5), m.group(8), m.group(9), m.group(11)), ("404", "-", "-", "-"),
       "404 line: status, upstream, upstream_ms, route")
