"""Health (issue 16 part A): active probes (fall and rise within their
intervals, a probe timeout, HTTPS probes with the upstream's TLS settings,
every target down -> 503 and /status says so), health kept across a reload,
passive health (a backend killed under load with retries: no client
request fails; the ejection back-off doubles and is bounded; no more than
half of an upstream's targets are ejected), and the config fields (the
SPEC's health member passes --check; bad values name their JSON path).

Probe intervals are short (200 ms) so each test takes a second or two;
timing checks allow for a loaded 2-core machine but still fail when a
transition takes a whole interval more than it should."""
import json
import re
import signal
import socket
import threading
import time

from harness import SLUICE, check, eq, free_port, get, request, wait_for
from test_6_edge import Mini
from test_8_admin import TOKEN, alive, sample, start

IV = 200            # probe interval (ms) in these tests
SLACK = 0.35        # s: the prober's 50 ms tick, jitter, a busy machine


def health_cfg(env, targets, health=None, outlier=None, retries=None, extra=None):
    up = {"name": "u", "targets": [{"address": a} for a in targets]}
    if health is not None:
        up["health"] = health
    if outlier is not None:
        up["outlier"] = outlier
    if retries is not None:
        up["retries"] = retries
    up.update(extra or {})
    return env.config(upstreams=[up], routes=[{"name": "r", "match": {}, "upstream": "u"}],
                      admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})


def targets_of(a, name="u"):
    st = a.json_ok("GET", "/status")
    for u in st["upstreams"]:
        if u["name"] == name:
            return {t["address"]: t for t in u["targets"]}
    raise AssertionError("no upstream %s in /status: %r" % (name, st))


def wait_health(a, addr, want, timeout, name="u"):
    """Seconds until /status says target addr's healthy is want (None on timeout)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if targets_of(a, name)[addr]["healthy"] == want:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def echo_id(port, path="/x"):
    r = get(port, path)
    return r.status, (r.json()["id"] if r.status == 200 else None)


def log_count(s, pattern):
    return len(re.findall(pattern, s.proc.stderr()))


# ---------------------------------------------------------------- active

def test_active_fall_and_rise(env):
    e1, e2 = env.echo("e1"), env.echo("e2")
    cfg = health_cfg(env, [e1.addr, e2.addr], health={
        "path": "/health", "interval_ms": IV, "timeout_ms": 150, "rise": 2, "fall": 2})
    t_start = time.monotonic()
    s, a = start(env, cfg)
    # new targets of an upstream with checks start down; the first probe decides
    for e in (e1, e2):
        dt = wait_health(a, e.addr, True, 3.0)
        check(dt is not None, "%s not up after its first probe" % e.addr)
    check(time.monotonic() - t_start < 1.5, "both up within an interval of the start (%.2fs)"
          % (time.monotonic() - t_start))
    t = targets_of(a)[e1.addr]
    eq((t["check"], t["last_check"], t["ejected"]), ("up", "status 200", False), "e1 in /status")

    # e1's health endpoint fails: down after `fall` (2) probes, not after one
    eq(request(e1.port, "POST", "/health/down").status, 200, "switch e1's /health to 503")
    t0 = time.monotonic()
    dt = wait_health(a, e1.addr, False, 3.0)
    check(dt is not None, "e1 never went down")
    check(dt <= 2 * IV / 1000 + SLACK, "down within fall * interval (%.2fs)" % dt)
    eq(log_count(s, r"target %s of u down: status 503 \(2 of 2\)" % re.escape(e1.addr)), 1,
       "one log line for the transition, with the count (log: %r)" % s.proc.stderr()[-600:])
    check(log_count(s, r"target %s of u down: status 503 \(1 of 2\)" % re.escape(e1.addr)) == 0,
          "no transition after the first bad probe")
    t = targets_of(a)[e1.addr]
    eq((t["healthy"], t["check"], t["last_check"]), (False, "down", "status 503"), "e1 in /status while down")
    check(time.time() * 1000 - 5000 < t["since_ms"] <= time.time() * 1000,
          "since_ms is the wall-clock time of the change (%r)" % t["since_ms"])
    ids = [echo_id(s.port) for _ in range(20)]
    eq(set(ids), {(200, "e2")}, "while e1 is down every request goes to e2")

    # back: up after `rise` (2) good probes
    eq(request(e1.port, "POST", "/health/up").status, 200, "switch e1's /health back")
    dt = wait_health(a, e1.addr, True, 3.0)
    check(dt is not None and dt <= 2 * IV / 1000 + SLACK, "up within rise * interval (%s)" % dt)
    eq(log_count(s, r"target %s of u up: status 200 \(2 of 2\)" % re.escape(e1.addr)), 1,
       "one log line for coming back")
    ids = {echo_id(s.port)[1] for _ in range(10)}
    eq(ids, {"e1", "e2"}, "both targets serve again")

    m = a.metrics()
    eq(sample(m, "sluice_health_transitions_total", upstream="u", target=e1.addr, to="down"), 1,
       "transitions down counted")
    eq(sample(m, "sluice_health_transitions_total", upstream="u", target=e1.addr, to="up"), 2,
       "transitions up counted (the first probe's and the recovery)")
    check(sample(m, "sluice_health_probes_total", upstream="u", target=e1.addr, result="failed") >= 2,
          "failed probes counted")
    check(sample(m, "sluice_health_probes_total", upstream="u", target=e2.addr, result="ok") >= 4,
          "good probes counted")
    eq(sample(m, "sluice_target_healthy", upstream="u", target=e1.addr), 1, "sluice_target_healthy")
    alive(s)


def _slow_health(m, sock):
    """/health answers 200 at once, or after 1 s when m.state['slow'];
    anything else gets 200 "fine"."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = sock.recv(4096)
            if not d:
                return
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        path = head.split(b" ")[1]
        m.record(path)
        if path == b"/health" and m.state.get("slow"):
            time.sleep(1.0)
        body = b"fine"
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_probe_timeout_all_down_503(env):
    with Mini(_slow_health) as m1, Mini(_slow_health) as m2:
        cfg = health_cfg(env, [m1.addr, m2.addr], health={
            "path": "/health", "interval_ms": IV, "timeout_ms": 150, "rise": 1, "fall": 2})
        s, a = start(env, cfg)
        for m in (m1, m2):
            check(wait_health(a, m.addr, True, 3.0) is not None, "%s up" % m.addr)
        eq(get(s.port, "/a").status, 200, "served while up")
        m1.state["slow"] = m2.state["slow"] = True
        for m in (m1, m2):
            dt = wait_health(a, m.addr, False, 3.0)
            check(dt is not None and dt <= 2 * IV / 1000 + 0.15 + SLACK,
                  "%s down after two probe timeouts (%s)" % (m.addr, dt))
            eq(log_count(s, r"target %s of u down: timeout after 150 ms \(2 of 2\)" % re.escape(m.addr)),
               1, "the log says why (%r)" % s.proc.stderr()[-400:])
        # every target down: 503 without trying one; /status says so
        before = (m1.accepted, m2.accepted)
        r = get(s.port, "/b")
        eq(r.status, 503, "no healthy target: 503")
        ts = targets_of(a)
        eq([(t["healthy"], t["check"], t["last_check"]) for t in ts.values()],
           [(False, "down", "timeout after 150 ms")] * 2, "/status: both down, timed out")
        paths = [p for p in m1.log + m2.log if p == b"/b"]
        eq(paths, [], "the 503 request reached no backend (%r -> %r)" % (before, (m1.accepted, m2.accepted)))
        m1.state["slow"] = m2.state["slow"] = False
        r = wait_for(lambda: get(s.port, "/c").status == 200, 3.0, 0.05)
        check(r, "served again once the probes pass")
        alive(s)


def test_https_probes(env):
    import certs
    from test_9_tls import tls_cfg, tls_listener, plain_listener
    pki = certs.make(env)
    e = env.echo("e")
    e, bcfg = tls_cfg(env, pki, [tls_listener(pki, ("default",), name="ca"),
                                 tls_listener(pki, ("self",), name="self")], e=e)
    b, ba = start(env, bcfg)
    b0, b1 = ("127.0.0.1:%d" % p for p in b.ports)
    hc = {"path": "/health", "interval_ms": IV, "timeout_ms": 150, "rise": 1, "fall": 1}
    ups = [{"name": "good", "targets": [{"address": b0}], "tls": {"ca_file": pki.ca_file}, "health": hc},
           {"name": "goodsni", "targets": [{"address": b0}],
            "tls": {"ca_file": pki.ca_file, "sni": "localhost"}, "health": hc},
           {"name": "badsni", "targets": [{"address": b0}],
            "tls": {"ca_file": pki.ca_file, "sni": "wrong.example.test"}, "health": hc},
           {"name": "selfca", "targets": [{"address": b1}], "tls": {"ca_file": pki.ca_file}, "health": hc},
           {"name": "noverify", "targets": [{"address": b1}], "tls": {"verify": False}, "health": hc},
           {"name": "plain", "targets": [{"address": b0}], "health": hc}]
    routes = [{"name": u["name"], "match": {"path": {"prefix": "/%s/" % u["name"]}}, "upstream": u["name"]}
              for u in ups]
    _, fcfg = tls_cfg(env, pki, [plain_listener()], e=e, upstreams=ups, routes=routes)
    f, fa = start(env, fcfg)
    want = {"good": True, "goodsni": True, "noverify": True, "badsni": False, "selfca": False,
            "plain": False}
    for name, up in want.items():
        addr = b1 if name in ("selfca", "noverify") else b0
        dt = wait_health(fa, addr, up, 3.0, name=name)
        check(dt is not None, "upstream %s: healthy should be %s (%r)" % (name, up, targets_of(fa, name)))
    # the first probe decided, and stays decided
    time.sleep(3 * IV / 1000)
    for name, up in want.items():
        t = list(targets_of(fa, name).values())[0]
        eq(t["healthy"], up, "upstream %s healthy (last check %r)" % (name, t["last_check"]))
        if up:
            eq(t["last_check"], "status 200", "upstream %s: the HTTPS probe got the echo's 200" % name)
    check(re.search(r"verify", list(targets_of(fa, "selfca").values())[0]["last_check"]),
          "a self-signed target fails verification: %r" % targets_of(fa, "selfca"))
    check(re.search(r"mismatch|verify", list(targets_of(fa, "badsni").values())[0]["last_check"]),
          "a wrong SNI fails the name check: %r" % targets_of(fa, "badsni"))
    eq(get(f.port, "/good/x").status, 200, "a request through the healthy TLS upstream")
    eq(get(f.port, "/selfca/x").status, 503, "the unhealthy one: 503")
    alive(f)
    alive(b)


# ---------------------------------------------------------------- reload

def test_reload_keeps_health(env):
    e1, e2, e3 = env.echo("e1"), env.echo("e2"), env.echo("e3")
    hc = {"path": "/health", "interval_ms": IV, "timeout_ms": 150, "rise": 2, "fall": 1}
    cfg = health_cfg(env, [e1.addr, e2.addr], health=hc)
    s, a = start(env, cfg)
    for e in (e1, e2):
        check(wait_health(a, e.addr, True, 3.0) is not None, "%s up" % e.addr)
    request(e1.port, "POST", "/health/down")
    check(wait_health(a, e1.addr, False, 3.0) is not None, "e1 down")
    request(e1.port, "POST", "/health/up")      # it needs 2 good probes (400 ms) to be back
    # a reload that keeps e1 and e2 and adds e3
    cfg2 = json.loads(json.dumps(cfg))
    cfg2["upstreams"][0]["targets"].append({"address": e3.addr})
    cfg2["routes"][0]["name"] = "r2"
    a.put_ok(cfg2)
    ts = targets_of(a)
    eq(ts[e1.addr]["healthy"], False, "e1 is still down right after the reload")
    eq(ts[e2.addr]["healthy"], True, "e2 is still up right after the reload")
    eq(ts[e3.addr]["check"] in ("down", "up"), True, "e3 has checks")
    # e3 is new: its first probe decides, within one interval
    dt = wait_health(a, e3.addr, True, 3.0)
    check(dt is not None and dt <= IV / 1000 + SLACK, "the new target up within one interval (%s)" % dt)
    check(wait_health(a, e1.addr, True, 3.0) is not None, "e1 back after its rise")
    eq(log_count(s, r"target %s of u up" % re.escape(e2.addr)), 1,
       "e2 went up once, at the start: the reload did not reset it")

    # passive state survives a reload too
    cfg3 = health_cfg(env, [e1.addr, "127.0.0.1:%d" % free_port()], retries=1)
    cfg3["listeners"] = cfg["listeners"]
    cfg3["admin"] = cfg["admin"]
    a.put_ok(cfg3)
    dead = cfg3["upstreams"][0]["targets"][1]["address"]
    for _ in range(4):
        eq(get(s.port, "/y").status, 200, "retried to the live target")
    check(targets_of(a)[dead]["ejected"], "the dead target is ejected")
    cfg3["routes"][0]["name"] = "r3"
    a.put_ok(cfg3)
    t = targets_of(a)[dead]
    check(t["ejected"] and not t["healthy"], "still ejected after a reload: %r" % t)
    alive(s)


# ---------------------------------------------------------------- passive

def test_passive_backend_killed_under_load(env):
    e1, e2 = env.echo("e1"), env.echo("e2")
    cfg = health_cfg(env, [e1.addr, e2.addr], retries=1)
    s, a = start(env, cfg)
    results = []
    lock = threading.Lock()
    done = threading.Event()

    def client(n):
        for i in range(n):
            try:
                r = get(s.port, "/load/%d" % i, timeout=5.0)
                st = r.status
            except Exception as ex:     # a failed client request is what this test counts
                st = repr(ex)
            with lock:
                results.append(st)
        done.set()

    threads = [threading.Thread(target=client, args=(150,)) for _ in range(4)]
    for t in threads:
        t.start()
    check(wait_for(lambda: len(results) >= 150, 20.0, 0.005), "load started")
    e2.proc.signal(signal.SIGKILL)
    for t in threads:
        t.join(30)
    eq(len(results), 600, "every request done")
    bad = [r for r in results if r != 200]
    eq(bad, [], "no client request failed when e2 was killed mid-load")
    m = a.metrics()
    check(sample(m, "sluice_outlier_ejections_total", upstream="u", target=e2.addr) >= 1,
          "the killed backend was ejected")
    t = targets_of(a)[e2.addr]
    check(t["ejected"] or t["ejected_for_ms"] == 0, "/status shows the ejection: %r" % t)
    alive(s)


def test_ejection_backoff_doubles_bounded(env):
    e1 = env.echo("e1")
    dead = "127.0.0.1:%d" % free_port()
    cfg = health_cfg(env, [e1.addr, dead], retries=1,
                     outlier={"base_ejection_ms": 150, "max_ejection_ms": 600})
    s, a = start(env, cfg)
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        eq(get(s.port, "/z").status, 200, "the retry goes to the live target")
        time.sleep(0.01)
    got = [int(x) for x in re.findall(r"target %s of u ejected for (\d+) ms" % re.escape(dead),
                                      s.proc.stderr())]
    check(len(got) >= 5, "the dead target was ejected again after each back-off (%r)" % got)
    eq(got[:5], [150, 300, 600, 600, 600], "the back-off doubles from base_ejection_ms to max_ejection_ms")
    check(log_count(s, r"target %s of u back after its ejection" % re.escape(dead)) >= 4,
          "each ejection ended on time")
    alive(s)


def test_ejection_cap_half(env):
    e1 = env.echo("e1")
    deads = ["127.0.0.1:%d" % free_port() for _ in range(3)]
    cfg = health_cfg(env, [e1.addr] + deads, retries=0,
                     outlier={"base_ejection_ms": 5000})
    s, a = start(env, cfg)
    codes = [get(s.port, "/c%d" % i).status for i in range(12)]
    ts = targets_of(a)
    ejected = [d for d in deads if ts[d]["ejected"]]
    eq(len(ejected), 2, "of 4 targets no more than 2 ejected (%r)" % ts)
    check(ts[e1.addr]["healthy"], "the live target stays")
    check(502 in codes and 200 in codes,
          "the dead target left in (cap reached) still gets requests, 502 without retries (%r)" % codes)
    check(log_count(s, r"not ejected \(1 failure in a row\): 2 of 4 targets are out already") >= 1,
          "the log says why a target was not ejected")
    alive(s)


# ---------------------------------------------------------------- config

SPEC_HEALTH = ('{ "path": "/healthz", "interval_ms": 1000, "timeout_ms": 500,\n'
               '                  "rise": 2, "fall": 2, "expect_status": [200, 399] }')


def test_config_fields_check(env):
    doc = ('{"listeners": [{"address": "127.0.0.1:%d"}], "routes": [], "upstreams": [\n'
           '  {"name": "api", "targets": [{"address": "127.0.0.1:8001"}],\n'
           '   "health": %s,\n'
           '   "outlier": {"consecutive_failures": 3, "consecutive_5xx": 5, "base_ejection_ms": 500,\n'
           '               "max_ejection_ms": 10000, "max_ejection_percent": 50}}]}') % (free_port(), SPEC_HEALTH)
    path = env.write("spec-health.json", doc)
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 0, "the SPEC's health member (and outlier) pass --check: %r" % (out + err))
    bad = json.loads(doc)
    bad["upstreams"][0]["health"]["expect_status"] = [500, 200]
    bad["upstreams"][0]["outlier"]["max_ejection_percent"] = 120
    path = env.write("bad-health.json", json.dumps(bad))
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 1, "bad health fields are refused")
    check("/upstreams/0/health/expect_status" in err and "/upstreams/0/outlier/max_ejection_percent" in err,
          "each error names its JSON path: %r" % err)


def test_5xx_ejection_optional(env):
    e1, e2 = env.echo("e1"), env.echo("e2")
    cfg = health_cfg(env, [e1.addr, e2.addr])
    s, a = start(env, cfg)
    for i in range(10):
        eq(get(s.port, "/status/503").status, 503, "the backend's own 503 passes through")
    m = a.metrics()
    eq(sum(sample(m, "sluice_outlier_ejections_total", upstream="u", target=e.addr) for e in (e1, e2)), 0,
       "5xx answers eject nothing by default")
    cfg2 = json.loads(json.dumps(cfg))
    cfg2["upstreams"][0]["outlier"] = {"consecutive_5xx": 3}
    a.put_ok(cfg2)
    for i in range(6):
        eq(get(s.port, "/status/502").status, 502, "5xx answer %d" % i)
    m = a.metrics()
    ej = {e.id: sample(m, "sluice_outlier_ejections_total", upstream="u", target=e.addr) for e in (e1, e2)}
    eq(sorted(ej.values()), [0, 1], "consecutive_5xx 3: one target ejected, the cap spares the other (%r)" % ej)
    eq(log_count(s, r"ejected for 1000 ms: 3 5xx answers in a row"), 1, "the log says why")
    out = [e for e in (e1, e2) if ej[e.id]][0]
    ids = {echo_id(s.port)[1] for _ in range(6)}
    eq(ids, {({"e1", "e2"} - {out.id}).pop()}, "requests avoid the ejected target")
    alive(s)
