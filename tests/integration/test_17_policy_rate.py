"""Traffic policy, the counting half (SPEC "Traffic policy (route fields)"):
rate_limit in process (shared by 2 workers, per client_ip / auth_id / route /
header:NAME, kept across reloads), rate_limit_store.redis with a real
redis-server shared by two sluice processes (one limit, not two; Redis killed
or frozen mid-test: on_error allow / deny, no hung request, recovery), and
token_budget against sluice-echo's OpenAI-style JSON and SSE answers (the
debit equals the usage, seen in /metrics; the next request over budget is a
429 with Retry-After)."""
import hashlib
import json
import os
import shutil
import signal
import socket
import threading
import time

from harness import (ECHO, SLUICE, TestFailure, build_request, check, eq, free_port, get, request,
                     wait_for, wait_port)
from test_8_admin import admin_cfg, start
from test_16_policy_auth import check_fails, ups

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def route(name, prefix, upstream="e", **policy):
    r = {"name": name, "match": {"path": {"prefix": prefix}}, "upstream": upstream}
    r.update(policy)
    return r


def one(port, path, headers=(), source=None, method="GET", body=None):
    """One request on a new connection (so SO_REUSEPORT spreads them over the
    workers): (status, headers dict, body)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5.0)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    hs = list(headers) + [("Connection", "close")]
    s.sendall(build_request(method, path, host="t", headers=hs, body=body))
    data = b""
    while True:
        try:
            got = s.recv(65536)
        except socket.timeout:
            raise TestFailure("no answer within 5 s for %s" % path)
        if not got:
            break
        data += got
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    h = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        h[k.strip().lower()] = v.strip()
    return status, h, rest


def statuses(port, path, n, **kw):
    return [one(port, path, **kw)[0] for _ in range(n)]


def keys_file(env, **keys):
    """An api_key keys file: id -> key in clear (stored as SHA-256)."""
    return env.write("keys.json", [{"id": i, "sha256": hashlib.sha256(k.encode()).hexdigest()}
                                   for i, k in keys.items()])


class Redis:
    """A redis-server of our own on 127.0.0.1 (no persistence), stopped by PID."""

    def __init__(self, env, port=None):
        self.env = env
        self.port = port or free_port()
        self.start()

    def start(self):
        self.proc = self.env.start([REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--protected-mode", "no"], "redis")
        if not wait_port(self.port, 5.0, self.proc):
            raise TestFailure("redis-server did not start: %s" % self.proc.stdout()[-400:])

    def kill(self):
        self.proc.signal(signal.SIGKILL)
        self.proc.wait(5)


def count_window(port, path, seconds, threads=2, **kw):
    """Requests as fast as `threads` clients can send them for `seconds`:
    (allowed, denied, span) with span from the first send to the last."""
    stop = time.monotonic() + seconds
    res = []
    lock = threading.Lock()
    t_first = [None]
    t_last = [0.0]

    def run():
        while time.monotonic() < stop:
            t = time.monotonic()
            st = one(port, path, **kw)[0]
            with lock:
                if t_first[0] is None or t < t_first[0]:
                    t_first[0] = t
                t_last[0] = max(t_last[0], t)
                res.append(st)

    ths = [threading.Thread(target=run) for _ in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    bad = [s for s in res if s not in (200, 429)]
    check(not bad, "only 200 and 429 answers: %r" % bad[:5])
    return res.count(200), res.count(429), t_last[0] - t_first[0]


# ---------------------------------------------------------------- in process

def test_rate_window_two_workers(env):
    """requests_per_s x t + burst (within one) pass, across 2 workers."""
    e = env.echo("e")
    cfg = env.config(upstreams=ups(e), workers=2, routes=[
        route("rl", "/rl", rate_limit={"per": "route", "requests_per_s": 20, "burst": 5})])
    s = env.sluice(cfg)
    allowed, denied, span = count_window(s.port, "/rl", 1.5)
    want = 20 * span + 5
    check(denied > allowed, "the clients outran the limit (%d allowed, %d denied)" % (allowed, denied))
    check(want - 1 <= allowed <= want + 1.5,
          "%d allowed in %.3f s, want 20 * t + 5 = %.1f (within one)" % (allowed, span, want))
    # a 429 says when to come back
    st, h, body = one(s.port, "/rl")
    while st == 200:
        st, h, body = one(s.port, "/rl")
    eq(st, 429, "over the limit")
    eq(h.get("retry-after"), "1", "Retry-After: whole seconds, rounded up (1/20 s -> 1)")


def test_rate_burst_and_retry_after(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        route("slow", "/slow", rate_limit={"per": "route", "requests_per_s": 0.2, "burst": 2}),
        route("dflt", "/dflt", rate_limit={"per": "route", "requests_per_s": 3})]))
    eq(statuses(s.port, "/slow", 4), [200, 200, 429, 429], "burst 2, then denied")
    st, h, _ = one(s.port, "/slow")
    eq(st, 429, "still denied")
    ra = int(h.get("retry-after", "0"))
    check(4 <= ra <= 5, "Retry-After %d: the next token in 5 s at 0.2/s, rounded up" % ra)
    # default burst: one second's worth (3)
    eq(statuses(s.port, "/dflt", 4), [200, 200, 200, 429], "default burst = ceil(requests_per_s)")


def test_rate_per_variants(env):
    e = env.echo("e")
    kf = keys_file(env, a="key-a", b="key-b")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        route("ip", "/ip", rate_limit={"per": "client_ip", "requests_per_s": 0.01, "burst": 2}),
        route("hdr", "/hdr", rate_limit={"per": "header:X-User", "requests_per_s": 0.01, "burst": 1}),
        route("r1", "/r1", rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1}),
        route("r2", "/r2", rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1}),
        route("who", "/who", auth={"api_key": {"keys_file": kf}},
              rate_limit={"per": "auth_id", "requests_per_s": 0.01, "burst": 1}),
    ]))
    # client_ip: 127.0.0.1 and 127.0.0.2 are two keys
    eq(statuses(s.port, "/ip", 3), [200, 200, 429], "127.0.0.1: burst 2")
    eq(statuses(s.port, "/ip", 3, source="127.0.0.2"), [200, 200, 429], "127.0.0.2 has its own bucket")
    # header:NAME: one bucket per value, one for requests without it
    eq(statuses(s.port, "/hdr", 2, headers=[("X-User", "ann")]), [200, 429], "ann")
    eq(statuses(s.port, "/hdr", 2, headers=[("x-user", "bob")]), [200, 429], "bob: own bucket (name case-insensitive)")
    eq(statuses(s.port, "/hdr", 2), [200, 429], "no header: one shared bucket")
    # route: each route its own
    eq(statuses(s.port, "/r1", 2), [200, 429], "route r1")
    eq(statuses(s.port, "/r2", 2), [200, 429], "route r2 does not share r1's bucket")
    # unnamed routes with the same limits: each its own too (named by position)
    s2 = env.sluice(env.config(upstreams=ups(e), routes=[
        {"match": {"path": {"prefix": "/u1"}}, "upstream": "e",
         "rate_limit": {"per": "route", "requests_per_s": 0.01, "burst": 1}},
        {"match": {"path": {"prefix": "/u2"}}, "upstream": "e",
         "rate_limit": {"per": "route", "requests_per_s": 0.01, "burst": 1}}]))
    eq(statuses(s2.port, "/u1", 2), [200, 429], "unnamed route 0")
    eq(statuses(s2.port, "/u2", 2), [200, 429], "unnamed route 1 has its own bucket")
    # auth_id: per key id, checked after auth (a bad key is a 401, not counted)
    eq(statuses(s.port, "/who", 2, headers=[("Authorization", "Bearer key-a")]), [200, 429], "team a")
    eq(statuses(s.port, "/who", 2, headers=[("Authorization", "Bearer key-b")]), [200, 429], "team b")
    eq(one(s.port, "/who", headers=[("Authorization", "Bearer nope")])[0], 401, "auth runs first")


def test_rate_reload_keeps_state(env):
    e = env.echo("e")
    e_, cfg = admin_cfg(env, routes=[route("rl", "/rl", "u", rate_limit={"per": "route", "requests_per_s": 0.01,
                                                                         "burst": 2})])
    s, a = start(env, cfg)
    eq(statuses(s.port, "/rl", 3), [200, 200, 429], "spent")
    dec = lambda res: a.metrics()["sluice_policy_decisions_total"].total(route="rl", check="rate_limit", result=res)
    check(wait_for(lambda: dec("allowed") == 2 and dec("denied") == 1, 3.0),
          "decisions counted: allowed %r, denied %r" % (dec("allowed"), dec("denied")))
    c2 = json.loads(json.dumps(cfg))
    c2["routes"].append(route("other", "/other", "u"))
    a.put_ok(c2, "a reload that keeps the route")
    eq(one(s.port, "/rl")[0], 429, "the route kept its name and limits: still spent")
    c3 = json.loads(json.dumps(c2))
    c3["routes"][0]["rate_limit"]["burst"] = 3
    a.put_ok(c3, "a reload that changes the limits")
    eq(statuses(s.port, "/rl", 4), [200, 200, 200, 429], "new limits: a fresh bucket")
    # a smaller table: a new table, the limit still holds
    c4 = json.loads(json.dumps(c3))
    c4["limits"] = {"max_rate_limit_keys": 64}
    a.put_ok(c4, "max_rate_limit_keys changed")
    eq(statuses(s.port, "/rl", 4), [200, 200, 200, 429], "a new table starts afresh")


def test_rate_eviction_bound(env):
    """More keys than limits.max_rate_limit_keys: old keys are evicted (their
    buckets forgotten), and the process keeps answering."""
    e = env.echo("e")
    e_, cfg = admin_cfg(env, routes=[route("h", "/h", "u", rate_limit={"per": "header:x-k", "requests_per_s": 0.01,
                                                                       "burst": 1})])
    cfg["limits"] = {"max_rate_limit_keys": 16}
    s, a = start(env, cfg)
    eq(one(s.port, "/h", headers=[("x-k", "first")])[0], 200, "first key")
    eq(one(s.port, "/h", headers=[("x-k", "first")])[0], 429, "first key spent")
    for i in range(200):
        eq(one(s.port, "/h", headers=[("x-k", "k%d" % i)])[0], 200, "new key %d" % i)
    eq(one(s.port, "/h", headers=[("x-k", "first")])[0], 200,
       "after 200 newer keys in a 16-key table, the first was evicted: a fresh bucket")


def test_rate_config_errors(env):
    e = env.echo("e")

    def cfg(**kw):
        r = route("r", "/", **kw.pop("r", {}))
        return env.config(upstreams=ups(e), routes=[r], **kw)

    check_fails(env, cfg(r={"rate_limit": {"per": "nope", "requests_per_s": 1}}), "/routes/0/rate_limit/per",
                "client_ip, auth_id, route, header:NAME")
    check_fails(env, cfg(r={"rate_limit": {"per": "header:", "requests_per_s": 1}}), "/routes/0/rate_limit/per")
    check_fails(env, cfg(r={"rate_limit": {"per": "header:a b", "requests_per_s": 1}}), "/routes/0/rate_limit/per")
    check_fails(env, cfg(r={"rate_limit": {"per": "route", "requests_per_s": 0}}),
                "/routes/0/rate_limit/requests_per_s")
    check_fails(env, cfg(r={"rate_limit": {"per": "route"}}), "/routes/0/rate_limit/requests_per_s", "is required")
    check_fails(env, cfg(r={"rate_limit": {"per": "route", "requests_per_s": 1, "burst": 0}}),
                "/routes/0/rate_limit/burst")
    check_fails(env, cfg(r={"rate_limit": {"per": "route", "requests_per_s": 1, "brust": 3}}),
                "/routes/0/rate_limit/brust", "unknown field")
    check_fails(env, cfg(r={"rate_limit": {"per": "auth_id", "requests_per_s": 1}}),
                "/routes/0/rate_limit/per", "auth")
    check_fails(env, cfg(r={"token_budget": {"per": "route", "tokens_per_min": -1}}),
                "/routes/0/token_budget/tokens_per_min")
    check_fails(env, cfg(r={"token_budget": {"per": "route", "requests_per_s": 1}}),
                "/routes/0/token_budget/requests_per_s", "unknown field")
    check_fails(env, cfg(rate_limit_store={"redis": "localhost"}), "/rate_limit_store/redis", "HOST:PORT")
    check_fails(env, cfg(rate_limit_store={"redis": "127.0.0.1:6379", "on_error": "maybe"}),
                "/rate_limit_store/on_error")
    check_fails(env, cfg(rate_limit_store={"on_error": "deny"}), "/rate_limit_store/redis", "is required")
    check_fails(env, cfg(limits={"max_rate_limit_keys": 1}), "/limits/max_rate_limit_keys")
    check_fails(env, cfg(limits={"max_rate_limit_keys": 20000000}), "/limits/max_rate_limit_keys")
    # a good one passes
    p = env.write("good.json", cfg(r={"rate_limit": {"per": "header:x-a", "requests_per_s": 2.5, "burst": 10},
                                      "token_budget": {"per": "client_ip", "tokens_per_min": 1000}},
                                   rate_limit_store={"redis": "127.0.0.1:6379", "on_error": "deny"},
                                   limits={"max_rate_limit_keys": 1000}))
    rc, out, err = env.run([SLUICE, "--check", "--config", p])
    eq(rc, 0, "a valid document passes --check: %s" % err.strip()[:300])


# ---------------------------------------------------------------- Redis

def redis_cfg(env, e, rport, on_error="allow", workers=2, limit=None, budget=None, admin=False):
    r = route("rl", "/rl", **({"rate_limit": limit or {"per": "route", "requests_per_s": 10, "burst": 5}}))
    routes = [r]
    if budget:
        routes.append(route("llm", "/v1", token_budget=budget))
    kw = {}
    if admin:
        kw["admin"] = {"address": "127.0.0.1:%d" % free_port()}
    return env.config(upstreams=ups(e), workers=workers, routes=routes,
                      rate_limit_store={"redis": "127.0.0.1:%d" % rport, "on_error": on_error}, **kw)


def wait_redis_ready(port, path, want=200):
    """The workers connect on their first decision; a few requests open them."""
    return wait_for(lambda: one(port, path)[0] == want, 5.0)


def test_redis_two_processes_one_limit(env):
    e = env.echo("e")
    rd = Redis(env)
    s1 = env.sluice(redis_cfg(env, e, rd.port, limit={"per": "route", "requests_per_s": 10, "burst": 10}))
    s2 = env.sluice(redis_cfg(env, e, rd.port, limit={"per": "route", "requests_per_s": 10, "burst": 10}))
    # both processes together, as fast as they answer
    stop = time.monotonic() + 1.5
    res = []
    lock = threading.Lock()
    first = [None]
    last = [0.0]

    def run(port):
        while time.monotonic() < stop:
            t = time.monotonic()
            st = one(port, "/rl")[0]
            with lock:
                first[0] = t if first[0] is None else min(first[0], t)
                last[0] = max(last[0], t)
                res.append(st)

    ths = [threading.Thread(target=run, args=(p,)) for p in (s1.port, s1.port, s2.port, s2.port)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    span = last[0] - first[0]
    allowed = res.count(200)
    want = 10 * span + 10
    check(set(res) <= {200, 429}, "only 200 and 429: %r" % sorted(set(res)))
    check(want - 1 <= allowed <= want + 1.5,
          "two processes sharing one Redis allowed %d in %.2f s: one limit (%.1f), not two" % (allowed, span, want))


def test_redis_down_allow_and_recovery(env):
    e = env.echo("e")
    rd = Redis(env)
    s = env.sluice(redis_cfg(env, e, rd.port, workers=1, admin=True,
                             limit={"per": "route", "requests_per_s": 0.01, "burst": 2}))
    eq(statuses(s.port, "/rl", 3), [200, 200, 429], "Redis counts: burst 2")
    rd.kill()
    t0 = time.monotonic()
    st = statuses(s.port, "/rl", 5)
    took = time.monotonic() - t0
    eq(st, [200] * 5, "Redis down, on_error allow: requests go through")
    check(took < 3.0, "no request hung (5 took %.2f s)" % took)
    m = json.loads(json.dumps(None))
    aport = int(s.cfg["admin"]["address"].rsplit(":", 1)[1])
    r = request(aport, "GET", "/metrics")
    errs = [l for l in r.body.decode().splitlines() if l.startswith("sluice_policy_store_errors_total ")]
    check(errs and int(errs[0].split()[1]) >= 5, "store errors counted: %r" % errs)
    dec = [l for l in r.body.decode().splitlines() if l.startswith("sluice_policy_decisions_total{")
           and 'check="rate_limit"' in l and 'result="error"' in l]
    check(dec and int(dec[0].rsplit(" ", 1)[1]) == 5, "the 5 decisions without Redis count as errors: %r" % dec)
    check(wait_for(lambda: "rate_limit_store: redis" in s.proc.stderr(), 3.0), "the error is logged")
    logged = s.proc.stderr().count("rate_limit_store: redis:")
    check(logged <= 3, "logged at most once a second (%d lines)" % logged)
    # Redis back (empty: the script is loaded again, the limit enforced again)
    rd.start()
    check(wait_for(lambda: statuses(s.port, "/rl", 3) == [200, 200, 429], 8.0, 0.3),
          "after Redis returns, the limit holds again")
    del m


def test_redis_down_deny(env):
    e = env.echo("e")
    rd = Redis(env)
    s = env.sluice(redis_cfg(env, e, rd.port, on_error="deny", workers=1,
                             limit={"per": "route", "requests_per_s": 100, "burst": 100}))
    eq(statuses(s.port, "/rl", 2), [200, 200], "Redis up")
    rd.kill()
    t0 = time.monotonic()
    eq(statuses(s.port, "/rl", 3), [503, 503, 503], "Redis down, on_error deny: 503")
    check(time.monotonic() - t0 < 3.0, "answered at once")


def test_redis_frozen_times_out(env):
    """A Redis that accepts but never answers (SIGSTOP): each decision waits
    its deadline (100 ms), then on_error; nothing hangs."""
    e = env.echo("e")
    rd = Redis(env)
    s = env.sluice(redis_cfg(env, e, rd.port, on_error="deny", workers=1,
                             limit={"per": "route", "requests_per_s": 100, "burst": 100}))
    eq(statuses(s.port, "/rl", 2), [200, 200], "Redis up")
    rd.proc.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        st = statuses(s.port, "/rl", 3)
        took = time.monotonic() - t0
        eq(st, [503, 503, 503], "frozen Redis, on_error deny: 503 after the deadline")
        check(took < 3.0, "3 requests took %.2f s (a 100 ms deadline each)" % took)
        # a client that leaves while its decision is pending
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(build_request("GET", "/rl", host="t"))
        c.close()
        time.sleep(0.3)
    finally:
        rd.proc.signal(signal.SIGCONT)
    check(wait_for(lambda: one(s.port, "/rl")[0] == 200, 5.0), "answers again once Redis thaws")


# ---------------------------------------------------------------- token budgets

def chat(port, stream=False, max_tokens=16, words="hello there", key=None, path="/v1/chat/completions"):
    body = json.dumps({"model": "m", "stream": stream, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": words}]}).encode()
    hs = [("Content-Type", "application/json")]
    if key:
        hs.append(("Authorization", "Bearer " + key))
    return one(port, path, headers=hs, method="POST", body=body)


def tokens(aport, **labels):
    r = request(aport, "GET", "/metrics")
    tot = 0
    for l in r.body.decode().splitlines():
        if not l.startswith("sluice_tokens_total{"):
            continue
        lab = l[l.index("{") + 1:l.index("}")]
        d = dict(kv.split("=", 1) for kv in lab.split(","))
        d = {k: v.strip('"') for k, v in d.items()}
        if all(d.get(k) == v for k, v in labels.items()):
            tot += int(l.rsplit(" ", 1)[1])
    return tot


def usage_of(body, sse):
    if not sse:
        return json.loads(body)["usage"]
    # de-chunk, then the last data event with a usage
    raw, out = body, b""
    while raw:
        n, _, rest = raw.partition(b"\r\n")
        k = int(n, 16)
        if k == 0:
            break
        out += rest[:k]
        raw = rest[k + 2:]
    u = None
    for ev in out.split(b"\n\n"):
        if ev.startswith(b"data: {"):
            j = json.loads(ev[6:])
            if j.get("usage"):
                u = j["usage"]
    return u


def budget_setup(env, tpm, store=None, workers=1):
    e = env.start([ECHO, "--port", "0", "--id", "llm", "--token-ms", "2"], "echo")
    import re
    line = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", e.stdout()), 5.0)
    addr = "127.0.0.1:%s" % line.group(1)
    kf = keys_file(env, a="key-a", b="key-b")
    cfg = env.config(upstreams=[{"name": "llm", "targets": [{"address": addr}]}], workers=workers,
                     admin={"address": "127.0.0.1:%d" % free_port()}, routes=[
                         route("chat", "/v1/chat", "llm", auth={"api_key": {"keys_file": kf}},
                               token_budget={"per": "auth_id", "tokens_per_min": tpm}),
                         route("free", "/free", "llm")])
    if store:
        cfg["rate_limit_store"] = store
    s = env.sluice(cfg)
    aport = int(cfg["admin"]["address"].rsplit(":", 1)[1])
    wait_port(aport, 5.0, s.proc)
    return s, aport, cfg


def test_token_budget_json_and_sse(env):
    s, aport, _ = budget_setup(env, tpm=300)
    st, h, body = chat(s.port, max_tokens=40, key="key-a")
    eq(st, 200, "a JSON completion")
    u1 = usage_of(body, False)
    check(wait_for(lambda: tokens(aport, route="chat", auth_id="a", kind="total") == u1["total_tokens"], 3.0),
          "debit = the JSON usage (%d): %d" % (u1["total_tokens"], tokens(aport, route="chat", auth_id="a",
                                                                          kind="total")))
    eq(tokens(aport, route="chat", auth_id="a", kind="prompt"), u1["prompt_tokens"], "prompt tokens")
    eq(tokens(aport, route="chat", auth_id="a", kind="completion"), u1["completion_tokens"], "completion tokens")
    st, h, body = chat(s.port, stream=True, max_tokens=200, key="key-a")
    eq(st, 200, "an SSE stream")
    eq(h.get("transfer-encoding"), "chunked", "streamed chunked")
    u2 = usage_of(body, True)
    check(u2 is not None, "the stream carries a final usage event")
    want = u1["total_tokens"] + u2["total_tokens"]
    check(wait_for(lambda: tokens(aport, route="chat", auth_id="a", kind="total") == want, 3.0),
          "debit = JSON + SSE usage (%d): %d" % (want, tokens(aport, route="chat", auth_id="a", kind="total")))
    # 42 + 202 > 300? no: 244 of 300 spent; one more large answer overdraws
    st, _, _ = chat(s.port, stream=True, max_tokens=100, key="key-a")
    eq(st, 200, "still budget left: allowed (and overdrawn by its answer)")
    check(wait_for(lambda: tokens(aport, route="chat", auth_id="a", kind="total") > 300, 3.0), "overdrawn")
    st, h, body = chat(s.port, key="key-a")
    eq(st, 429, "budget spent: the next request is refused")
    r = request(aport, "GET", "/metrics")
    dec = [l for l in r.body.decode().splitlines() if l.startswith("sluice_policy_decisions_total{")
           and 'check="token_budget"' in l and 'result="denied"' in l]
    check(dec and int(dec[0].rsplit(" ", 1)[1]) == 1, "the budget's denial is counted: %r" % dec)
    ra = int(h.get("retry-after", "0"))
    check(1 <= ra <= 60, "Retry-After %d s: until the balance is positive again (refill 5 tokens/s)" % ra)
    # another key has its own budget; a route without a budget is not counted
    eq(chat(s.port, key="key-b")[0], 200, "key b's budget is its own")
    eq(chat(s.port, path="/free/v1/chat/completions")[0], 200, "an unbudgeted route")
    check(wait_for(lambda: tokens(aport, route="free") == 0 and tokens(aport, auth_id="b", kind="total") > 0, 3.0),
          "only budgeted routes are counted")


def test_token_budget_refills(env):
    s, aport, _ = budget_setup(env, tpm=600)     # 10 tokens/s
    eq(chat(s.port, max_tokens=600, key="key-a")[0], 200, "one answer spends it all")
    st, h, _ = chat(s.port, key="key-a")
    eq(st, 429, "spent")
    ra = int(h["retry-after"])
    check(1 <= ra <= 2, "Retry-After %d: a few tokens of debt at 10/s" % ra)
    time.sleep(ra + 0.1)
    eq(chat(s.port, max_tokens=1, key="key-a")[0], 200, "refilled after Retry-After")


def test_token_budget_redis_shared(env):
    rd = Redis(env)
    store = {"redis": "127.0.0.1:%d" % rd.port}
    s1, a1, cfg = budget_setup(env, tpm=100, store=store, workers=2)
    c2 = json.loads(json.dumps(cfg))
    c2["listeners"] = [{"name": "h", "address": "127.0.0.1:%d" % free_port()}]
    c2["admin"] = {"address": "127.0.0.1:%d" % free_port()}
    s2 = env.sluice(c2)
    eq(chat(s1.port, max_tokens=120, key="key-a")[0], 200, "process 1 spends the shared budget")
    time.sleep(0.3)     # the debit is sent when the response ends
    st, h, _ = chat(s2.port, key="key-a")
    eq(st, 429, "process 2 sees it spent (one budget in Redis)")
    check(int(h.get("retry-after", "0")) >= 1, "with Retry-After")
    eq(chat(s2.port, key="key-b")[0], 200, "another key is not")


def test_redis_reload_moves_store(env):
    """A reload that points rate_limit_store at another Redis: new decisions
    go there (a fresh limit); one that removes it: back in process."""
    e = env.echo("e")
    r1, r2 = Redis(env), Redis(env)
    lim = {"per": "route", "requests_per_s": 0.01, "burst": 2}
    e_, cfg = admin_cfg(env, routes=[route("rl", "/rl", "u", rate_limit=lim)])
    cfg["rate_limit_store"] = {"redis": "127.0.0.1:%d" % r1.port}
    s, a = start(env, cfg)
    eq(statuses(s.port, "/rl", 3), [200, 200, 429], "Redis 1 counts")
    c2 = json.loads(json.dumps(cfg))
    c2["rate_limit_store"] = {"redis": "127.0.0.1:%d" % r2.port, "on_error": "deny"}
    a.put_ok(c2, "store moved to Redis 2")
    eq(statuses(s.port, "/rl", 3), [200, 200, 429], "Redis 2 starts empty")
    c3 = json.loads(json.dumps(c2))
    del c3["rate_limit_store"]
    a.put_ok(c3, "store removed")
    eq(statuses(s.port, "/rl", 3), [200, 200, 429], "in process again, with a table of its own")
    r1.kill()
    r2.kill()
    time.sleep(0.3)
    eq(one(s.port, "/rl")[0], 429, "the retired connections are not used: still in process")
    check("rate_limit_store: redis:" not in s.proc.stderr(),
          "no errors logged for Redis connections no config uses: %s" % s.proc.stderr()[-300:])


def redis_cmd(port, *args):
    """One command in RESP to our redis-server; the raw reply."""
    msg = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args))
    c = socket.create_connection(("127.0.0.1", port), 2.0)
    c.sendall(msg)
    got = c.recv(4096)
    c.close()
    return got


def test_redis_script_flushed(env):
    """Redis forgot the script (SCRIPT FLUSH, as after a restart without the
    connection dropping): NOSCRIPT -> the call goes again as EVAL, the
    script is loaded again, the limit holds and nothing counts as an error."""
    e = env.echo("e")
    rd = Redis(env)
    s = env.sluice(redis_cfg(env, e, rd.port, on_error="deny", workers=1, admin=True,
                             limit={"per": "header:x-k", "requests_per_s": 0.01, "burst": 2}))
    eq(statuses(s.port, "/rl", 3, headers=[("x-k", "a")]), [200, 200, 429], "before the flush")
    eq(redis_cmd(rd.port, "SCRIPT", "FLUSH"), b"+OK\r\n", "SCRIPT FLUSH")
    eq(statuses(s.port, "/rl", 3, headers=[("x-k", "b")]), [200, 200, 429], "after it: EVAL, same limit")
    eq(one(s.port, "/rl", headers=[("x-k", "a")])[0], 429, "the state in Redis was kept")
    aport = int(s.cfg["admin"]["address"].rsplit(":", 1)[1])
    body = request(aport, "GET", "/metrics").body.decode()
    errs = [l for l in body.splitlines() if l.startswith("sluice_policy_store_errors_total ")]
    eq(errs, ["sluice_policy_store_errors_total 0"], "no store error")
    stats = redis_cmd(rd.port, "INFO", "commandstats").decode()
    check("cmdstat_eval:calls=1," in stats, "one call went as EVAL after NOSCRIPT: %s"
          % [l for l in stats.splitlines() if "eval" in l])
