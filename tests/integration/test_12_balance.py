"""The balancers on the wire (upstreams[].balance, hash_on): weights, least
requests and two random choices against a slow target, hash stickiness for
each hash_on and ~1/N movement when a target is removed by PUT /config; the
in-flight counts after aborts and timeouts; retries counted in /metrics and
never a second copy of a body."""
import socket
import threading
import time

from harness import (Conn, build_request, check, eq, free_port, get, request)
from test_8_admin import Admin, TOKEN, start


def ups(name, echoes, balance=None, weights=None, **kw):
    u = {"name": name, "targets": [{"address": e.addr} for e in echoes]}
    if weights:
        for t, w in zip(u["targets"], weights):
            t["weight"] = w
    if balance:
        u["balance"] = balance
    u.update(kw)
    return u


def catch_all(upstream):
    return [{"name": "r", "match": {}, "upstream": upstream}]


def who(port, path="/", headers=()):
    r = request(port, "GET", path, headers=headers)
    return r.h("x-upstream") if r.status == 200 else r.status


def count(seen):
    out = {}
    for k in seen:
        out[k] = out.get(k, 0) + 1
    return out


def who_from(port, src, path="/"):
    """One GET from source address src (any 127/8 address is local)."""
    s = socket.socket()
    s.settimeout(5)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(build_request("GET", path, headers=[("Connection", "close")]))
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "x-upstream":
            return v.strip()
    return head.split("\r\n", 1)[0]


def load(port, seconds, clients, path="/"):
    """clients keep-alive connections sending GETs back to back for seconds;
    returns the X-Upstream of every answer (and the non-200 statuses)."""
    seen, lock = [], threading.Lock()
    stop = time.monotonic() + seconds

    def run():
        mine = []
        try:
            with Conn(port, 5.0) as c:
                while time.monotonic() < stop:
                    c.send(build_request("GET", path))
                    r = c.read_response()
                    mine.append(r.h("x-upstream") if r.status == 200 else r.status)
        except Exception as e:  # recorded, not raised in a thread
            mine.append("error: %s" % e)
        with lock:
            seen.extend(mine)

    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 10)
    return seen


# ---------------------------------------------------------------- weights

def test_weights_3_to_1_each_balancer(env):
    a, b = env.echo("a"), env.echo("b")
    upstreams = [ups(bal, [a, b], bal, [3, 1]) for bal in ("round_robin", "least_request", "random_two")]
    upstreams.append(ups("hash", [a, b], "hash", [3, 1], hash_on="header:x-user"))
    routes = [{"name": u["name"], "match": {"path": {"prefix": "/" + u["name"]}}, "upstream": u["name"]}
              for u in upstreams]
    s = env.sluice(env.config(upstreams=upstreams, routes=routes))
    for bal in ("round_robin", "least_request"):
        c = count(who(s.port, "/" + bal) for _ in range(200))
        eq((c.get("a"), c.get("b")), (150, 50), "%s 3:1 over 200 sequential requests" % bal)
    c = count(who(s.port, "/random_two") for _ in range(400))
    check(260 <= c.get("a", 0) <= 340 and c.get("a", 0) + c.get("b", 0) == 400,
          "random_two 3:1 over 400 requests: %r" % c)
    c = count(who(s.port, "/hash") for _ in range(200))
    eq((c.get("a"), c.get("b")), (150, 50), "hash without its header: round robin 3:1")
    c = count(who(s.port, "/hash", [("X-User", "user%d" % i)]) for i in range(400))
    check(260 <= c.get("a", 0) <= 340, "hash 3:1 over 400 keys: %r" % c)


# ---------------------------------------------------------------- a slow target

def _slow_share(env, balance, n_fast):
    fast = [env.echo("f%d" % i) for i in range(n_fast)]
    slow = env.echo("slow", delay_ms=100)
    cfg = env.config(upstreams=[ups("u", fast + [slow], balance)], routes=catch_all("u"), workers=2)
    s = env.sluice(cfg)
    seen = load(s.port, 2.0, 8)
    errors = [x for x in seen if x not in ["f%d" % i for i in range(n_fast)] + ["slow"]]
    eq(errors, [], "every answer a 200 from a target")
    return seen.count("slow") / max(1, len(seen)), len(seen), count(seen)


def test_least_request_avoids_slow_target(env):
    share, n, c = _slow_share(env, "least_request", 2)
    check(n >= 100, "only %d requests in 2 s" % n)
    # round robin gives it a third (the control below); least_request about 1 % here
    # (it holds as many in flight as each fast target: ~2.5 of 8, for 100 ms each):
    # a tenth leaves room for a slow host
    check(share < 0.10, "least_request: %.1f %% of %d requests on the slow target: %r" % (share * 100, n, c))


def test_random_two_avoids_slow_target(env):
    share, n, c = _slow_share(env, "random_two", 3)
    check(n >= 100, "only %d requests in 2 s" % n)
    check(share < 0.10, "random_two: %.1f %% of %d requests on the slow target: %r" % (share * 100, n, c))
    fast = [v for k, v in c.items() if k != "slow"]
    check(min(fast) * 1.5 >= max(fast), "random_two spreads over the fast targets: %r" % c)


def test_round_robin_control_slow_target(env):
    """The control: round robin gives the slow target its full share."""
    share, n, c = _slow_share(env, "round_robin", 2)
    check(share > 0.2, "round robin: %.1f %% of %d requests on the slow target: %r" % (share * 100, n, c))


def test_inflight_counts_survive_aborts_and_timeouts(env):
    """Requests that end without an answer (client gone, response timeout)
    give their in-flight count back: an idle least_request upstream then
    alternates again (a leaked count would keep the slow target out)."""
    slow, fast = env.echo("slow", delay_ms=300), env.echo("fast")
    u = ups("u", [slow, fast], "least_request")
    u2 = ups("t", [slow], "least_request", timeouts={"response_header_ms": 50})
    cfg = env.config(upstreams=[u, u2], routes=[
        {"name": "t", "match": {"path": {"prefix": "/timeout"}}, "upstream": "t"},
        {"name": "r", "match": {}, "upstream": "u"}])
    s = env.sluice(cfg)
    # clients that leave while the slow target works
    conns = []
    for i in range(6):
        c = Conn(s.port, 5.0)
        c.send(build_request("GET", "/abort%d" % i))
        conns.append(c)
    time.sleep(0.1)
    for c in conns:
        c.close()
    # a response that times out on the same address (a second upstream shares its
    # count); one only: consecutive timeouts may eject the target (passive health)
    eq(get(s.port, "/timeout/0").status, 504, "response_header_ms 50 against a 300 ms target")
    time.sleep(0.5)
    seen = [who(s.port, "/after%d" % i) for i in range(10)]
    eq(count(seen), {"slow": 5, "fast": 5}, "idle least_request alternates after aborts and timeouts: %r" % seen)


# ---------------------------------------------------------------- hash

def _hash_env(env, hash_on, n=3):
    es = [env.echo("h%d" % i) for i in range(n)]
    s = env.sluice(env.config(upstreams=[ups("u", es, "hash", hash_on=hash_on)], routes=catch_all("u")))
    return s


def _sticky(first, again, what):
    eq(again, first, "%s: every key on the same target again" % what)
    check(len(set(first.values())) >= 2, "%s: keys spread over targets: %r" % (what, count(first.values())))


def test_hash_client_ip_sticky(env):
    s = _hash_env(env, "client_ip")
    srcs = ["127.0.%d.%d" % (i // 7, 2 + i % 7) for i in range(24)]
    first = {ip: who_from(s.port, ip) for ip in srcs}
    again = {ip: who_from(s.port, ip, "/again") for ip in srcs}
    _sticky(first, again, "hash_on client_ip")


def test_hash_header_sticky(env):
    s = _hash_env(env, "header:X-User")
    keys = ["user-%d" % i for i in range(40)]
    first = {k: who(s.port, "/", [("X-User", k)]) for k in keys}
    again = {k: who(s.port, "/b", [("x-user", k), ("Cookie", "x=1")]) for k in keys}
    _sticky(first, again, "hash_on header:X-User")
    seen = [who(s.port, "/nokey") for _ in range(30)]
    eq(count(seen), {"h0": 10, "h1": 10, "h2": 10}, "no X-User header: round robin")


def test_hash_cookie_sticky(env):
    s = _hash_env(env, "cookie:sid")
    keys = ["s%d" % i for i in range(40)]
    first = {k: who(s.port, "/", [("Cookie", "theme=dark; sid=%s" % k)]) for k in keys}
    again = {k: who(s.port, "/b", [("Cookie", "sid=%s" % k), ("X-User", "zz")]) for k in keys}
    _sticky(first, again, "hash_on cookie:sid")
    seen = [who(s.port, "/nokey", [("Cookie", "other=1")]) for _ in range(30)]
    eq(count(seen), {"h0": 10, "h1": 10, "h2": 10}, "no sid cookie: round robin")


def test_hash_target_removed_by_put_config_moves_about_1_over_n(env):
    es = [env.echo("h%d" % i) for i in range(5)]
    cfg = env.config(upstreams=[ups("u", es, "hash", hash_on="header:x-k")], routes=catch_all("u"),
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})
    s, adm = start(env, cfg)
    keys = ["k%d" % i for i in range(300)]
    before = {k: who(s.port, "/", [("X-K", k)]) for k in keys}
    cfg2 = dict(cfg)
    cfg2["upstreams"] = [ups("u", es[:2] + es[3:], "hash", hash_on="header:x-k")]   # h2 removed
    adm.put_ok(cfg2)
    after = {k: who(s.port, "/", [("X-K", k)]) for k in keys}
    on_removed = [k for k in keys if before[k] == "h2"]
    moved_others = [k for k in keys if before[k] != "h2" and after[k] != before[k]]
    check(30 <= len(on_removed) <= 95, "h2 held %d of 300 keys (about 60)" % len(on_removed))
    check(all(after[k] != "h2" for k in keys), "no key on the removed target")
    # the ring: the others keep every key
    check(len(moved_others) == 0,
          "one of 5 targets removed: %d keys of the other targets moved (%d were on the removed one)"
          % (len(moved_others), len(on_removed)))
    # and it comes back: the keys return
    adm.put_ok(cfg)
    back = {k: who(s.port, "/", [("X-K", k)]) for k in keys}
    diff = [k for k in keys if back[k] != before[k]]
    eq(diff, [], "the target added back takes its keys back")


def test_hash_config_errors(env):
    a = env.echo("a")
    bad = env.config(upstreams=[ups("u", [a], "hash")], routes=catch_all("u"))
    rc, out, err = env.run([__import__("harness").SLUICE, "--check", "--config", env.write("bad.json", bad)])
    check(rc != 0 and "/upstreams/0/hash_on" in out + err and "is required" in out + err,
          "balance hash without hash_on refused with its path: rc=%d %r" % (rc, (out + err)[-300:]))
    bad["upstreams"][0]["hash_on"] = "header:bad name"
    rc, out, err = env.run([__import__("harness").SLUICE, "--check", "--config", env.write("bad2.json", bad)])
    check(rc != 0 and "/upstreams/0/hash_on" in out + err, "a bad header name refused: %r" % (out + err)[-300:])


# ---------------------------------------------------------------- retries

def _retries(adm, upstream):
    r = adm.call("GET", "/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith('sluice_retries_total{upstream="%s"}' % upstream):
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def test_retries_counted_and_go_to_another_target(env):
    live = env.echo("live")
    dead, dead2 = "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": dead}, {"address": live.addr}],
                                 "retries": 1},
                                {"name": "z", "targets": [{"address": dead2}], "retries": 0}],
                     routes=[{"name": "z", "match": {"path": {"prefix": "/z"}}, "upstream": "z"}] +
                     catch_all("u"),
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})
    s, adm = start(env, cfg)
    eq(_retries(adm, "u"), 0, "sluice_retries_total before any request")
    statuses = [get(s.port, "/r%d" % i).status for i in range(6)]
    eq(statuses, [200] * 6, "a refused target and retries 1: every request answered")
    n = _retries(adm, "u")
    check(n is not None and n >= 1, "sluice_retries_total{upstream=\"u\"} counts the retry: %r" % n)
    eq(get(s.port, "/z").status, 502, "retries 0: the refused connect is a 502")
    eq(_retries(adm, "z"), 0, "retries 0: nothing counted")


def test_retry_never_resends_a_body(env):
    """A target that resets after reading the request: a GET (no body) goes to
    the other target; a PUT whose body was sent does not (SPEC), so each
    backend sees it at most once in total.  Two upstreams, so what passive
    health makes of the first reset cannot decide the second."""
    a, b, c, d = env.echo("a"), env.echo("b"), env.echo("c"), env.echo("d")
    cfg = env.config(upstreams=[dict(ups("p", [a, b]), retries=1), dict(ups("g", [c, d]), retries=1)],
                     routes=[{"name": "p", "match": {"path": {"prefix": "/p"}},
                              "rewrite": {"strip_prefix": True}, "upstream": "p"},
                             {"name": "g", "match": {"path": {"prefix": "/g"}},
                              "rewrite": {"strip_prefix": True}, "upstream": "g"}],
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})
    s, adm = start(env, cfg)
    r = request(s.port, "PUT", "/p/reset", body=b"x" * 1000)
    eq(r.status, 502, "PUT with a body reset by its target")
    got = a.stats()["requests"] + b.stats()["requests"]
    eq(got, 1, "the PUT's body reached one target once (requests seen: %d)" % got)
    eq(_retries(adm, "p"), 0, "no retry counted for the PUT")
    r = get(s.port, "/g/reset")
    got2 = c.stats()["requests"] + d.stats()["requests"]
    eq((r.status, got2), (502, 2), "a GET reset by its target is retried once on the other target")
    eq(_retries(adm, "g"), 1, "the GET's retry counted")


def test_retries_backend_killed_mid_load(env):
    """retries 1 and one of two backends killed (SIGKILL) mid-load, with each
    balancer: no client request fails (those in flight on it, and those sent
    to it before it is marked down, go to the other); bounded: 4 clients,
    1.2 s per balancer."""
    for bal in ("round_robin", "least_request", "random_two"):
        a, b = env.echo("a-" + bal), env.echo("b-" + bal, delay_ms=5)
        cfg = env.config(upstreams=[dict(ups("u", [a, b], bal), retries=1)], routes=catch_all("u"),
                         workers=2)
        s = env.sluice(cfg)
        killer = threading.Timer(0.4, lambda: b.proc.signal(__import__("signal").SIGKILL))
        killer.start()
        seen = load(s.port, 1.2, 4)
        killer.join()
        b.proc.wait(5)
        bad = [x for x in seen if x not in ("a-" + bal, "b-" + bal)]
        eq(bad, [], "%s: answers other than 200 while a backend was killed (%d requests)" % (bal, len(seen)))
        check(seen.count("b-" + bal) > 0 and seen.count("a-" + bal) > 0,
              "%s: both backends served before the kill: %r" % (bal, count(seen)))
        s.proc.stop()


def test_inflight_counts_across_a_reload(env):
    """Requests in flight on the old config end after a PUT /config (a target
    that stays keeps its count, which they give back): an idle least_request
    upstream then alternates again.  They go through a second upstream of the
    slow address alone, so a count they failed to give back would keep the
    slow target out of the first."""
    slow, fast = env.echo("slow", delay_ms=400), env.echo("fast")
    cfg = env.config(upstreams=[ups("u", [slow, fast], "least_request"), ups("t", [slow])],
                     routes=[{"name": "t", "match": {"path": {"prefix": "/t"}}, "upstream": "t"}] +
                     catch_all("u"),
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})
    s, adm = start(env, cfg)
    got, lock = [], threading.Lock()

    def one(i):
        w = who(s.port, "/t/inflight%d" % i)
        with lock:
            got.append(w)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    time.sleep(0.1)
    cfg2 = dict(cfg, routes=[dict(r, response_headers={"set": {"x-v": "2"}}) for r in cfg["routes"]])
    adm.put_ok(cfg2, "PUT /config while requests are in flight")
    for t in ts:
        t.join(5)
    eq(got, ["slow"] * 4, "the 4 requests in flight across the reload")
    adm.put_ok(cfg, "PUT /config back")
    seen = [who(s.port, "/after%d" % i) for i in range(6)]
    eq(count(seen), {"slow": 3, "fast": 3}, "idle least_request alternates after reloads: %r" % seen)
