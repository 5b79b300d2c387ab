"""Streaming (SPEC "Streaming and model routing"): per-route timeouts
(first_byte_ms, idle_ms, total_ms), the SSE heartbeat (only on silent SSE
routes, only between events), cancellation in every phase (the backend sees
its connection closed, /metrics counts it by phase), and the stream metrics
and the access log's ttfb_ms."""
import json
import os
import re
import socket
import time

from harness import SLUICE, Conn, browser, build_request, check, eq, get, request, sha256, wait_for
from test_8_admin import admin_cfg, start

ASAN = "asan" in os.path.basename(os.path.normpath(os.environ.get("SLUICE_BUILD", "build")))
SLACK = 0.060 if ASAN else 0.025       # seconds of jitter allowed per event


def _setup(env, routes, access_log_format=None):
    e, cfg = admin_cfg(env, routes=routes)
    if access_log_format:
        cfg["access_log_format"] = access_log_format
    s, a = start(env, cfg)
    return e, s, a


def _route(name, prefix="/", **kw):
    r = {"name": name, "match": {"path": {"prefix": prefix}}, "upstream": "u"}
    r.update(kw)
    return r


class Stream:
    """A raw HTTP/1.1 client reading a streamed response as it arrives:
    the head, then body bytes with their arrival times (de-chunked)."""

    def __init__(self, port, path, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.sendall(build_request("GET", path, host="t"))
        self.buf = b""
        self.head = None
        self.chunked = False
        self.closed = False
        self.pieces = []        # (time, bytes) of body data

    def _recv(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not got:
            self.closed = True
            return False
        self.buf += got
        return True

    def read_head(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf and not self.closed and time.monotonic() < deadline:
            self._recv(deadline)
        if b"\r\n\r\n" not in self.buf:
            return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split(" ", 2)[1])
        self.chunked = re.search(r"(?im)^transfer-encoding:\s*chunked", self.head) is not None
        return self.status

    def _take(self, now):
        """Body data out of self.buf (de-chunked); True at the last chunk."""
        if not self.chunked:
            if self.buf:
                self.pieces.append((now, self.buf))
                self.buf = b""
            return False
        while True:
            line, sep, rest = self.buf.partition(b"\r\n")
            if not sep:
                return False
            size = int(line.split(b";")[0], 16)
            if size == 0:
                return True
            if len(rest) < size + 2:
                return False
            self.pieces.append((now, rest[:size]))
            self.buf = rest[size + 2:]

    def read_until(self, pred, timeout):
        """Read until pred(body) holds, the stream ends or the time is up;
        returns 'match', 'end', 'closed' or 'timeout'."""
        deadline = time.monotonic() + timeout
        while True:
            if self._take(time.monotonic()):
                return "end"
            if pred(self.body()):
                return "match"
            if self.closed:
                return "closed"
            if time.monotonic() >= deadline:
                return "timeout"
            self._recv(deadline)

    def body(self):
        return b"".join(p for _, p in self.pieces)

    def close(self):
        self.sock.close()


def _events(body):
    return re.findall(rb"data: event (\d+)\n", body)


def _eventually(get, want, what, timeout=2.0):
    """A counter sluice bumps when a transaction ends, which may be just
    after the client has read the last byte: wait for it."""
    wait_for(lambda: get() == want, timeout)
    eq(get(), want, what)


def _closes(a, reason):
    return a.metrics()["sluice_closes_total"].total(reason=reason)


def test_event_timing(env):
    e, s, a = _setup(env, [_route("sse")])
    st = Stream(s.port, "/sse?n=10&ms=100")
    eq(st.read_head(), 200, "SSE status")
    eq(st.read_until(lambda b: False, 5.0), "end", "the stream ends with its last chunk")
    times = []
    seen = set()
    for t, p in st.pieces:
        for m in re.findall(rb"data: event (\d+)\n", p):
            if m not in seen:
                seen.add(m)
                times.append(t)
    eq(len(times), 10, "ten events")
    gaps = [b - a_ for a_, b in zip(times, times[1:])]
    bad = [round(g * 1000, 1) for g in gaps if abs(g - 0.100) > SLACK]
    check(not bad, "each event arrives when the backend sent it (100 ms apart, +-%d ms): %r"
          % (SLACK * 1000, [round(g * 1000, 1) for g in gaps]))
    st.close()


def test_first_byte_timeout(env):
    routes = [_route("slow-ok", "/ok", timeouts={"first_byte_ms": 5000}, rewrite={"replace_prefix": "/sse"}),
              _route("slow-cut", "/cut", timeouts={"first_byte_ms": 1000}, rewrite={"replace_prefix": "/sse"})]
    e, s, a = _setup(env, routes)
    # the upstream's response_header_ms (30 s default) is replaced by the route's
    t0 = time.monotonic()
    st = Stream(s.port, "/ok?head_ms=3000&n=2&ms=10")
    eq(st.read_head(timeout=8), 200, "a first byte after 3 s is in time for 5 s")
    check(time.monotonic() - t0 >= 2.9, "the head waited for the backend")
    eq(st.read_until(lambda b: False, 5.0), "end", "and the stream completes")
    eq(len(_events(st.body())), 2, "both events")
    st.close()
    t0 = time.monotonic()
    st = Stream(s.port, "/cut?head_ms=3000&n=2&ms=10")
    eq(st.read_head(timeout=8), 504, "no first byte within 1 s: 504")
    took = time.monotonic() - t0
    check(0.9 <= took <= 2.0, "the 504 came at the route's 1 s (%.2f s)" % took)
    st.close()
    _eventually(lambda: _closes(a, "upstream_header_timeout"), 1, "counted as a header timeout")


def test_idle_timeout_mid_stream(env):
    routes = [_route("sse", timeouts={"idle_ms": 500})]
    e, s, a = _setup(env, routes)
    before = e.stats()["aborted"]
    st = Stream(s.port, "/sse?n=5&ms=50&gap_after=2&gap_ms=2000")
    eq(st.read_head(), 200, "status")
    t0 = time.monotonic()
    r = st.read_until(lambda b: False, 5.0)
    took = time.monotonic() - t0
    eq(r, "closed", "a stall longer than idle_ms closes the client connection, no last chunk")
    eq([int(x) for x in _events(st.body())], [1, 2], "the events before the stall arrived whole")
    check(0.5 <= took <= 1.5, "cut about 500 ms after the last event (%.2f s)" % took)
    check(wait_for(lambda: e.stats()["aborted"] > before, 2.0), "the backend saw its connection closed")
    _eventually(lambda: _closes(a, "upstream_idle_timeout"), 1, "counted")
    st.close()
    # events that keep coming are never cut by idle_ms, however long the stream
    st = Stream(s.port, "/sse?n=30&ms=100")
    eq(st.read_head(), 200, "status")
    eq(st.read_until(lambda b: False, 10.0), "end", "a 3 s stream with 100 ms gaps is not cut")
    eq(len(_events(st.body())), 30, "all 30 events")
    st.close()


def test_total_timeout(env):
    routes = [_route("sse", timeouts={"total_ms": 700}),
              _route("late", "/late", timeouts={"total_ms": 700}, rewrite={"replace_prefix": "/sse"})]
    e, s, a = _setup(env, routes)
    st = Stream(s.port, "/sse?n=100&ms=100")
    eq(st.read_head(), 200, "status")
    eq(st.read_until(lambda b: False, 5.0), "closed", "cut at total_ms")
    n = len(_events(st.body()))
    check(4 <= n <= 9, "about 7 events in 700 ms: %d" % n)
    st.close()
    _eventually(lambda: _closes(a, "response_total_timeout"), 1, "counted as a total timeout")
    st = Stream(s.port, "/late?head_ms=3000")
    eq(st.read_head(timeout=5), 504, "no head within total_ms: 504")
    st.close()
    _eventually(lambda: _closes(a, "response_total_timeout"), 2, "counted too")


def _split_events(body):
    """The stream as a list of blocks separated by blank lines."""
    return [b for b in body.replace(b"\r\n", b"\n").split(b"\n\n") if b]


def test_sse_heartbeat(env):
    routes = [_route("hb", "/sse", sse_heartbeat_ms=200),
              _route("plain", "/nohb", rewrite={"replace_prefix": "/sse"}),
              _route("hbclose", "/close", sse_heartbeat_ms=200, rewrite={"replace_prefix": "/sse"})]
    e, s, a = _setup(env, routes)
    # silent for 700 ms between events: heartbeats in between
    st = Stream(s.port, "/sse?n=3&ms=700")
    eq(st.read_head(), 200, "status")
    eq(st.read_until(lambda b: False, 5.0), "end", "stream ends")
    blocks = _split_events(st.body())
    hbs = [b for b in blocks if b == b":"]
    check(len(hbs) >= 4, "heartbeat comments while silent (%d): %r" % (len(hbs), st.body()[:300]))
    eq([int(x) for x in _events(st.body())], [1, 2, 3], "events unchanged")
    check(all(b == b":" or b.startswith(b"id: ") for b in blocks), "only events and comments: %r" % blocks)
    st.close()
    # an event that is itself slow (its halves 700 ms apart): no heartbeat inside it
    st = Stream(s.port, "/sse?n=3&ms=30&split_ms=700")
    eq(st.read_head(), 200, "status")
    eq(st.read_until(lambda b: False, 8.0), "end", "stream ends")
    for b in _split_events(st.body()):
        check(b == b":" or re.fullmatch(rb"id: \d+\ndata: event \d+", b),
              "a heartbeat never lands inside an event: %r" % st.body())
    st.close()
    # close-delimited SSE: bare comment lines, never spliced past
    st = Stream(s.port, "/close?n=2&ms=600&close=1")
    eq(st.read_head(), 200, "status")
    st.read_until(lambda b: False, 4.0)
    check(b":\n\n" in st.body() and len(_events(st.body())) == 2,
          "heartbeats on a close-delimited stream too: %r" % st.body())
    st.close()
    # a route without sse_heartbeat_ms sends none
    st = Stream(s.port, "/nohb?n=2&ms=700")
    eq(st.read_head(), 200, "status")
    eq(st.read_until(lambda b: False, 4.0), "end", "stream ends")
    check(b":" not in st.body().replace(b"data: ", b"").replace(b"id: ", b""),
          "no heartbeat without sse_heartbeat_ms: %r" % st.body())
    st.close()
    check(a.metrics()["sluice_sse_heartbeats_total"].total() >= 4, "heartbeats counted")


def _cancels(a, phase):
    return a.metrics()["sluice_cancellations_total"].total(phase=phase)


def test_cancellation(env):
    e, s, a = _setup(env, [_route("all")])
    # before the head: the backend is still thinking
    base = e.stats()["aborted"]
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(build_request("GET", "/sse?head_ms=5000", host="t"))
    time.sleep(0.3)
    t0 = time.monotonic()
    c.close()
    check(wait_for(lambda: e.stats()["aborted"] > base, 2.0),
          "a client that leaves before the head closes the upstream connection")
    check(time.monotonic() - t0 < 0.5, "at once (%.3f s)" % (time.monotonic() - t0))
    _eventually(lambda: _cancels(a, "waiting"), 1, "counted as waiting")
    # mid-stream
    base = e.stats()["aborted"]
    st = Stream(s.port, "/sse?n=1000&ms=20")
    eq(st.read_head(), 200, "status")
    eq(st.read_until(lambda b: len(_events(b)) >= 3, 3.0), "match", "three events")
    st.close()
    check(wait_for(lambda: e.stats()["aborted"] > base, 2.0), "a client gone mid-stream closes the upstream")
    _eventually(lambda: _cancels(a, "streaming"), 1, "counted as streaming")
    # while the request body is still arriving
    base = e.stats()["aborted"]
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    time.sleep(0.3)
    c.close()
    check(wait_for(lambda: e.stats()["aborted"] > base, 2.0), "a client gone mid-body closes the upstream")
    _eventually(lambda: _cancels(a, "request_body"), 1, "counted as request_body")
    # none of those connections went back to the pool
    check(wait_for(lambda: e.stats()["open_connections"] <= 1, 2.0),
          "no cancelled upstream connection is pooled: %r" % e.stats())
    m = a.metrics()
    check(m["sluice_pool_idle"].total() == 0, "nothing idle in the pool")


def test_stream_metrics_and_ttfb(env):
    e, s, a = _setup(env, [_route("llm")], access_log_format="json")
    st = Stream(s.port, "/sse?n=3&ms=200&head_ms=100")
    eq(st.read_head(), 200, "status")
    eq(st.read_until(lambda b: len(_events(b)) >= 1, 3.0), "match", "first event")
    m = a.metrics()
    eq(m["sluice_streams_open"].total(route="llm"), 1, "one stream open")
    eq(st.read_until(lambda b: False, 3.0), "end", "stream ends")
    st.close()
    m = wait_for(lambda: (lambda x: x if x["sluice_streams_open"].total(route="llm") == 0 else None)(a.metrics()),
                 2.0)
    check(m is not None, "the stream closed in the gauge")
    eq(m["sluice_stream_duration_seconds"].total("_count", route="llm"), 1, "one stream duration observed")
    check(m["sluice_stream_duration_seconds"].total("_sum", route="llm") >= 0.35, "duration covers the events")
    check(m["sluice_stream_bytes_total"].total(route="llm") == len(st.body()),
          "stream bytes %r == body %d" % (m["sluice_stream_bytes_total"].total(route="llm"), len(st.body())))
    eq(m["sluice_ttfb_seconds"].total("_count", route="llm"), 1, "ttfb observed")
    ttfb = m["sluice_ttfb_seconds"].total("_sum", route="llm")
    check(0.09 <= ttfb <= 0.5, "ttfb is the time to the first event (%.3f s)" % ttfb)
    lines = wait_for(lambda: s.log_lines(), 2.0)
    j = json.loads(lines[-1])
    check(j["ttfb_ms"] is not None and 90 <= j["ttfb_ms"] <= 500 and j["ttfb_ms"] <= j["total_ms"],
          "access log ttfb_ms: %r" % j)


def test_stream_config_errors(env):
    e, cfg = admin_cfg(env)
    bad = [
        ({"name": "x", "match": {}, "respond": {"status": 200}, "timeouts": {"idle_ms": 5}},
         "/routes/0/timeouts: is only allowed on a route with backends or upstream"),
        ({"name": "x", "match": {}, "upstream": "u", "timeouts": {"idle": 5}},
         "/routes/0/timeouts/idle"),
        ({"name": "x", "match": {}, "upstream": "u", "timeouts": {"total_ms": -1}},
         "/routes/0/timeouts/total_ms"),
        ({"name": "x", "match": {}, "upstream": "u", "sse_heartbeat_ms": "5"},
         "/routes/0/sse_heartbeat_ms"),
    ]
    for route, want in bad:
        c = dict(cfg, routes=[route])
        path = env.write(env._name("bad") + ".json", c)
        rc, out, err = env.run([SLUICE, "--check", "--config", path])
        eq(rc, 1, "--check refuses %r" % route)
        check(want in err, "error names %s: %r" % (want, err))


# ---------------------------------------------------------------- model routing

def _model_setup(env, limits=None):
    ea, eb, ec = env.echo("llama"), env.echo("gpt"), env.echo("default")
    ups = [{"name": n, "targets": [{"address": e.addr}]} for n, e in (("a", ea), ("b", eb), ("c", ec))]
    routes = [
        {"name": "llama", "match": {"path": {"prefix": "/v1/chat"},
                                    "json_body": [{"field": "model", "value": "llama-3*"}]}, "upstream": "a"},
        {"name": "gpt", "match": {"path": {"prefix": "/v1/chat"},
                                  "json_body": [{"field": "model", "value": "gpt-4o"}]}, "upstream": "b"},
        {"name": "rest", "match": {"path": {"prefix": "/v1/chat"}}, "upstream": "c"},
    ]
    kw = {"upstreams": ups, "routes": routes}
    if limits:
        kw["limits"] = limits
    e, cfg = admin_cfg(env, **kw)
    s, a = start(env, cfg)
    return s, a


def _who(r):
    return r.h("x-upstream")


def test_model_routing(env):
    s, a = _model_setup(env)
    body = json.dumps({"model": "llama-3-70b", "messages": [{"role": "user", "content": "hi"}]}).encode()
    r = request(s.port, "POST", "/v1/chat/echo", body=body,
                headers=[("Content-Type", "application/json")])
    eq((r.status, _who(r)), (200, "llama"), "model llama-3-70b goes to the llama backend")
    j = r.json()
    eq((j["body_len"], j["body"]), (len(body), body.decode()), "the body arrives byte-exact")
    r = request(s.port, "POST", "/v1/chat/echo", body=b'{"stream":true,"model":"gpt-4o"}')
    eq(_who(r), "gpt", "model gpt-4o goes to the gpt backend")
    r = request(s.port, "POST", "/v1/chat/echo", body=b'{"model":"gpt-4o-mini"}')
    eq(_who(r), "default", "an exact value does not match a longer one: the next route")
    r = request(s.port, "POST", "/v1/chat/echo", body=b"model=llama-3")
    eq(_who(r), "default", "a body that is not JSON falls to the next route")
    r = request(s.port, "POST", "/v1/chat/echo", body=b'{"model":"llama-3","model":"gpt-4o"}')
    eq(_who(r), "default", "a field given twice matches nothing")
    r = request(s.port, "POST", "/v1/chat/echo", body=b'{"mod\\u0065l":"ll\\u0061ma-3"}')
    eq(_who(r), "llama", "escapes are decoded as the backend decodes them")
    r = get(s.port, "/v1/chat/echo")
    eq(_who(r), "default", "no body: the next route")
    # chunked, in pieces: decoded for the match, forwarded byte-exact
    with Conn(s.port) as c:
        c.send(b"POST /v1/chat/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\n{\"mod\r\n")
        time.sleep(0.1)
        c.send(b"9;ext=1\r\nel\":\"gpt-\r\n4\r\n4o\"}\r\n0\r\n\r\n")
        r = c.read_response()
    eq(_who(r), "gpt", "a chunked body sent in pieces is routed by its decoded JSON")
    eq(r.json()["body"], '{"model":"gpt-4o"}', "and arrives whole (re-framed)")
    # a 1 MiB body is over the limit: next route, every byte delivered
    big = b'{"model":"llama-3","pad":"' + b"x" * (1 << 20) + b'"}'
    r = request(s.port, "POST", "/v1/chat/echo", body=big, timeout=10)
    j = r.json()
    eq(_who(r), "default", "a body over max_json_match_bytes falls through")
    eq((j["body_len"], j["body_sha256"]), (len(big), sha256(big)), "1 MiB body byte-exact")
    # keep-alive and pipelining still work around a routed body
    with Conn(s.port) as c:
        b1, b2 = b'{"model":"gpt-4o"}', b'{"model":"llama-3"}'
        c.send(build_request("POST", "/v1/chat/a", "t", (), b1) + build_request("POST", "/v1/chat/b", "t", (), b2))
        r1, r2 = c.read_response(), c.read_response()
    eq((_who(r1), _who(r2)), ("gpt", "llama"), "two pipelined requests, each routed by its own body")


def test_model_routing_limits(env):
    s, a = _model_setup(env, limits={"max_json_match_bytes": 100})
    body = b'{"model":"gpt-4o","pad":"' + b"y" * 200 + b'"}'
    r = request(s.port, "POST", "/v1/chat/echo", body=body)
    eq(_who(r), "default", "over max_json_match_bytes (100): not read, the next route")
    eq(r.json()["body_len"], len(body), "and delivered whole")
    with Conn(s.port) as c:     # chunked over the limit: decoded bytes counted
        c.send(b"POST /v1/chat/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"10\r\n" + b"z" * 16 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n")
        r = c.read_response()
    eq((_who(r), r.json()["body_len"]), ("default", 128), "chunked over the limit falls through, whole")
    # Expect: 100-continue: sluice asks for the body it needs to route
    with Conn(s.port) as c:
        b = b'{"model":"gpt-4o"}'
        c.send(b"POST /v1/chat/x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(b))
        r = c.read_response(keep_interim=True)
        eq(r.status, 100, "100 Continue before the body")
        c.send(b)
        r = c.read_response()
    eq(_who(r), "gpt", "then routed by it")
    # a client that never sends the body it announced: closed at client_idle_ms, nothing upstream
    a.put_ok(dict(s.cfg, timeouts={"client_idle_ms": 300, "drain_ms": 3000}))
    with Conn(s.port) as c:
        c.send(b"POST /v1/chat/x HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{\"model\"")
        check(c.wait_closed(3.0), "a stalled body is cut at client_idle_ms")


# ---------------------------------------------------------------- an LLM behind sluice

def test_llm_stream_by_model(env):
    """sluice-echo's OpenAI-compatible endpoint behind sluice, two backends
    chosen by the body's model: tokens arrive one by one, then the usage
    chunk and [DONE]."""
    ea, eb = env.echo("llama"), env.echo("gpt")
    ups = [{"name": "a", "targets": [{"address": ea.addr}]}, {"name": "b", "targets": [{"address": eb.addr}]}]
    routes = [{"name": "llama", "match": {"path": {"exact": "/v1/chat/completions"},
                                          "json_body": [{"field": "model", "value": "llama-*"}]},
               "timeouts": {"first_byte_ms": 2000, "idle_ms": 1000}, "upstream": "a"},
              {"name": "gpt", "match": {"path": {"exact": "/v1/chat/completions"},
                                        "json_body": [{"field": "model", "value": "gpt-*"}]}, "upstream": "b"}]
    e, cfg = admin_cfg(env, upstreams=ups, routes=routes)
    s, a = start(env, cfg)
    for model, who in (("llama-3-8b", "llama"), ("gpt-4o", "gpt")):
        body = json.dumps({"model": model, "stream": True, "max_tokens": 5,
                           "messages": [{"role": "user", "content": "one two three"}]}).encode()
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"POST /v1/chat/completions?token_ms=60 HTTP/1.1\r\nHost: t\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        st = Stream.__new__(Stream)
        st.sock, st.buf, st.head, st.chunked, st.closed, st.pieces = c, b"", None, False, False, []
        eq(st.read_head(), 200, "%s: status" % model)
        check(re.search(r"(?im)^x-upstream:\s*%s\s*$" % who, st.head), "%s went to %s" % (model, who))
        eq(st.read_until(lambda b: False, 5.0), "end", "%s: the stream ends" % model)
        events = [x for x in st.body().split(b"\n\n") if x]
        check(events[-1] == b"data: [DONE]", "ends with [DONE]: %r" % events[-3:])
        chunks = [json.loads(x[6:]) for x in events[:-1]]
        tokens = [c_["choices"][0]["delta"].get("content") for c_ in chunks if c_["choices"]]
        eq("".join(t for t in tokens if t), "one two three one two", "%s: the tokens" % model)
        eq(chunks[-1]["usage"]["completion_tokens"], 5, "the usage chunk last")
        eq({c_["model"] for c_ in chunks}, {model}, "the model echoed")
        # the five tokens came 60 ms apart, not in one piece at the end
        times = [t for t, p in st.pieces if b'"content":"' in p and b'"content":""' not in p]
        check(len(times) >= 4 and times[-1] - times[0] >= 0.18,
              "%s: tokens streamed as generated (%r)" % (model, [round(t - times[0], 3) for t in times]))
        c.close()


# ---------------------------------------------------------------- a real browser

def test_browser_eventsource(env):
    """Headless Chromium opens an EventSource through sluice and receives
    every event; closing it makes sluice close the upstream connection."""
    page = ("<!doctype html><title>sse</title><script>"
            "window.got = []; window.done = false;"
            "const es = new EventSource('/sse?n=20&ms=50');"
            "es.onmessage = (e) => { window.got.push(e.data); if (window.got.length == 20) { es.close(); window.done = true; } };"
            "window.openLong = () => { window.es2 = new EventSource('/sse?n=100000&ms=50');"
            "  window.es2.onmessage = (e) => { window.long = (window.long || 0) + 1; }; };"
            "window.closeLong = () => window.es2.close();"
            "</script>")
    routes = [{"name": "page", "match": {"path": {"exact": "/page"}},
               "respond": {"status": 200, "body": page, "content_type": "text/html"}},
              {"name": "sse", "match": {"path": {"prefix": "/sse"}}, "upstream": "u",
               "sse_heartbeat_ms": 10000}]
    e, cfg = admin_cfg(env, routes=routes)
    s, a = start(env, cfg)
    drv = browser(env)
    try:
        drv.set_script_timeout(20)
        drv.get("http://127.0.0.1:%d/page" % s.port)
        done = wait_for(lambda: drv.execute_script("return window.done"), 15.0, 0.1)
        got = drv.execute_script("return window.got")
        check(done, "the browser got every event: %r" % got)
        eq(got, ["event %d" % i for i in range(1, 21)], "all 20 events, in order")
        base = e.stats()["aborted"]
        drv.execute_script("window.openLong()")
        check(wait_for(lambda: (drv.execute_script("return window.long") or 0) >= 5, 10.0, 0.1),
              "a long stream flows")
        check(a.metrics()["sluice_streams_open"].total(route="sse") >= 1, "counted open")
        drv.execute_script("window.closeLong()")
        check(wait_for(lambda: e.stats()["aborted"] > base, 5.0),
              "closing the EventSource makes sluice close the upstream connection")
        check(wait_for(lambda: a.metrics()["sluice_streams_open"].total(route="sse") == 0, 3.0),
              "and the stream is no longer open")
    finally:
        drv.quit()
