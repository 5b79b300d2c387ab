"""The dashboard (issue 24): GET /ui (one self-contained page, served
without the token) and GET /stats (the numbers of /metrics as JSON, from
the same counters: they agree sample for sample after a fixed load), the
token rules of both, and the page in a real headless Chromium: it asks for
the token, says so clearly when it is wrong, lists every target of two
upstreams, turns a stopped backend's target red, and its request-rate chart
rises with traffic (a screenshot is saved under the build directory)."""
import json
import os
import re
import socket
import threading
import time

import promparse
from harness import BUILD, browser, check, eq, free_port, get, request, wait_for
from test_8_admin import TOKEN, start, thread_names, thread_policies


def dash_cfg(env, health=True):
    """Two upstreams (a: two echo targets, b: one), one route each, an admin listener."""
    ea1, ea2, eb = env.echo("a1"), env.echo("a2"), env.echo("b1")
    hc = {"path": "/healthz", "interval_ms": 200, "timeout_ms": 150, "rise": 1, "fall": 1}
    ups = [{"name": "alpha", "targets": [{"address": ea1.addr}, {"address": ea2.addr}]},
           {"name": "beta", "targets": [{"address": eb.addr}]}]
    if health:
        for u in ups:
            u["health"] = hc
    routes = [{"name": "ra", "match": {"path": {"prefix": "/a"}}, "rewrite": {"strip_prefix": True},
               "upstream": "alpha"},
              {"name": "rb", "match": {"path": {"prefix": "/b"}}, "rewrite": {"strip_prefix": True},
               "upstream": "beta"},
              {"name": "ping", "match": {"path": {"exact": "/ping"}},
               "respond": {"status": 200, "body": "pong\n"}}]
    cfg = env.config(upstreams=ups, routes=routes,
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})
    return (ea1, ea2, eb), cfg


# ---------------------------------------------------------------- /ui, /stats: HTTP

def test_ui_page_and_token_rules(env):
    _, cfg = dash_cfg(env, health=False)
    s, a = start(env, cfg)
    r = request(a.port, "GET", "/ui", host="127.0.0.1")
    eq(r.status, 200, "GET /ui without a token")
    check(r.h("content-type").startswith("text/html"), "text/html: %r" % r.h("content-type"))
    csp = r.h("content-security-policy") or ""
    check("default-src 'none'" in csp and "connect-src 'self'" in csp,
          "a CSP that allows no other host: %r" % csp)
    body = r.body.decode("utf-8")
    check("<html" in body and "sessionStorage" in body and "/stats" in body, "the dashboard page")
    # nothing loaded from anywhere else: no URL with a scheme or a protocol-relative one
    for pat in (r"https?:", r"""(src|href)\s*=\s*["']?//""", r"@import", r"url\("):
        check(not re.search(pat, body, re.I), "the page refers to no other host (%s)" % pat)
    eq(int(r.h("content-length")), len(r.body), "Content-Length")
    eq(request(a.port, "HEAD", "/ui", host="127.0.0.1").status, 200, "HEAD /ui")
    eq(a.call("POST", "/ui", body="{}").status, 405, "POST /ui")
    # /stats: the token where /status needs it
    eq(a.call("GET", "/stats", token="wrong").status, 401, "GET /stats with a wrong token")
    eq(request(a.port, "GET", "/stats", host="127.0.0.1").status, 401, "GET /stats without a token")
    eq(a.call("GET", "/status", token="wrong").status, 401, "GET /status with a wrong token")
    r = a.call("GET", "/stats")
    eq(r.status, 200, "GET /stats with the token")
    eq(r.h("content-type"), "application/json", "/stats Content-Type")
    d = r.json()
    check(isinstance(d["families"], list) and d["version"] == a.version(), "/stats: families, version")
    check(abs(d["time_ms"] / 1000 - time.time()) < 60, "/stats time_ms is wall-clock ms: %r" % d["time_ms"])
    eq(a.call("PUT", "/stats", body="{}").status, 405, "PUT /stats")


def test_ui_without_token_config(env):
    """No admin.token (loopback only): /ui and /stats both answer without one."""
    _, cfg = dash_cfg(env, health=False)
    del cfg["admin"]["token"]
    s, a = start(env, cfg)
    a.token = None
    eq(request(a.port, "GET", "/ui", host="127.0.0.1").status, 200, "GET /ui")
    eq(request(a.port, "GET", "/stats", host="127.0.0.1").status, 200, "GET /stats without a token set")


def test_status_process_and_reload(env):
    """/status carries what the page's header shows: version, uptime, workers,
    open client connections, and the last reload (when, result, error)."""
    _, cfg = dash_cfg(env, health=False)
    s, a = start(env, cfg)
    st = a.json_ok("GET", "/status")
    for k in ("sluice_version", "time_ms", "started_ms", "uptime_s", "workers", "client_connections"):
        check(k in st, "/status has %s: %r" % (k, sorted(st)))
    eq(st["workers"], 1, "workers")
    check(st["started_ms"] <= st["time_ms"] and abs(st["time_ms"] / 1000 - time.time()) < 60,
          "start and now are wall-clock ms")
    eq(st["reloads"], {"ok": 0, "error": 0, "last": None}, "no reload yet")
    bad = json.loads(json.dumps(cfg))
    bad["routes"][0]["upstream"] = "nope"
    eq(a.put(bad).status, 400, "a bad PUT")
    last = a.json_ok("GET", "/status")["reloads"]["last"]
    eq((last["result"], last["origin"], last["version"]), ("error", "PUT /config", 1), "the refused reload")
    check(last["error"].startswith("/routes/0/upstream"), "its first error, with its path: %r" % last["error"])
    fams = a.metrics()
    eq(fams["sluice_reload_last_success"].samples[0].value, 0, "sluice_reload_last_success after it")
    v = a.put_ok(cfg)
    st = a.json_ok("GET", "/status")
    last = st["reloads"]["last"]
    eq((last["result"], last["version"], last["error"]), ("ok", v, None), "the good reload")
    check(abs(last["time_ms"] - st["time_ms"]) < 10000, "when it ended")
    eq((st["reloads"]["ok"], st["reloads"]["error"]), (1, 1), "reload counts")
    fams = a.metrics()
    eq(fams["sluice_reload_last_success"].samples[0].value, 1, "sluice_reload_last_success")
    eq(fams["sluice_reload_last_timestamp_seconds"].samples[0].value, last["time_ms"] // 1000,
       "sluice_reload_last_timestamp_seconds")
    eq(fams["sluice_workers"].samples[0].value, 1, "sluice_workers")
    eq(fams["sluice_build_info"].samples[0].labels, {"version": st["sluice_version"]}, "build info")


def load(port, n_ok=20, n_5xx=3):
    for i in range(n_ok):
        eq(get(port, "/a/x%d" % i).status, 200, "GET /a/x%d" % i)
    for i in range(n_5xx):
        eq(get(port, "/b/status/503").status, 503, "GET /b/status/503")
    eq(get(port, "/ping").status, 200, "GET /ping")


def stats_samples(doc):
    """/stats as {(sample name, labels): value} in /metrics' terms."""
    out, types = {}, {}
    for f in doc["families"]:
        types[f["name"]] = (f["type"], f["help"])
        for smp in f["samples"]:
            lab = tuple(sorted(smp["labels"].items()))
            if f["type"] == "histogram":
                check(len(smp["buckets"]) == len(f["le"]), "%s: a count per bound" % f["name"])
                for le, n in zip(f["le"], smp["buckets"]):
                    lv = "+Inf" if le == "+Inf" else repr(float(le))
                    out[(f["name"] + "_bucket", tuple(sorted(lab + (("le", lv),))))] = n
                out[(f["name"] + "_sum", lab)] = smp["sum"]
                out[(f["name"] + "_count", lab)] = smp["count"]
            else:
                out[(f["name"], lab)] = smp["value"]
    return out, types


def metrics_samples(fams):
    out, types = {}, {}
    for name, f in fams.items():
        types[name] = (f.type, f.help)
        for smp in f.samples:
            lab = dict(smp.labels)
            if "le" in lab and lab["le"] != "+Inf":
                lab["le"] = repr(float(lab["le"]))
            out[(smp.name, tuple(sorted(lab.items())))] = smp.value
    return out, types


def test_stats_agree_with_metrics(env):
    """After a fixed load, every sample of /metrics is in /stats with the
    same value, and nothing else is: counters, gauges, each histogram's
    buckets, sum and count."""
    (ea1, ea2, eb), cfg = dash_cfg(env, health=False)
    s, a = start(env, cfg)
    load(s.port)
    # the last request's counters are written just after its last byte
    def settled():
        m = a.metrics()
        return m if m["sluice_requests_total"].total() == 24 and \
            m["sluice_request_duration_seconds"].total("_count") == 24 else None
    check(wait_for(settled, 5.0, 0.02), "24 requests counted")
    r = a.call("GET", "/metrics")
    text = r.body.decode("utf-8")
    d = a.json_ok("GET", "/stats")
    m_samples, m_types = metrics_samples(promparse.parse(text))
    s_samples, s_types = stats_samples(d)
    eq(sorted(s_types), sorted(m_types), "the same families")
    for name in m_types:
        eq(s_types[name], m_types[name], "type and help of %s" % name)
    # the clock gauges may tick between the two answers; none is a counter
    moving = {"sluice_client_connections", "sluice_upstream_connections", "sluice_pool_idle",
              "sluice_pool_in_use", "sluice_target_connections"}
    only_m = sorted(k for k in m_samples if k not in s_samples)
    only_s = sorted(k for k in s_samples if k not in m_samples)
    eq((only_m[:5], only_s[:5]), ([], []), "samples in one and not the other")
    diff = [(k, m_samples[k], s_samples[k]) for k in m_samples
            if m_samples[k] != s_samples[k] and k[0] not in moving]
    eq(diff[:5], [], "samples that differ")
    # and the values are the load's, not zeros
    req = {k: v for k, v in s_samples.items() if k[0] == "sluice_requests_total"}
    eq(req[("sluice_requests_total", (("code", "2xx"), ("route", "ra")))], 20, "ra 2xx in /stats")
    eq(req[("sluice_requests_total", (("code", "5xx"), ("route", "rb")))], 3, "rb 5xx in /stats")
    t5 = s_samples[("sluice_target_responses_total", (("code", "5xx"), ("target", eb.addr), ("upstream", "beta")))]
    eq(t5, 3, "the beta target's 5xx responses")
    n = sum(v for k, v in s_samples.items() if k[0] == "sluice_target_response_seconds_count")
    eq(n, 23, "target response histograms count every proxied response")
    t2 = sum(v for k, v in s_samples.items() if k[0] == "sluice_target_requests_total"
             and dict(k[1])["upstream"] == "alpha")
    eq(t2, 20, "requests to alpha's two targets")


def test_stats_label_escaping(env):
    """Route and upstream names with quotes, backslashes, newlines and
    non-ASCII come out as valid JSON strings with the same value."""
    e = env.echo("e")
    weird_u = 'u"\\\u00e9\u6f22'
    weird_r = 'r\n"x\\y\u00e9'
    cfg = env.config(upstreams=[{"name": weird_u, "targets": [{"address": e.addr}]}],
                     routes=[{"name": weird_r, "match": {}, "upstream": weird_u}],
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})
    s, a = start(env, cfg)
    eq(get(s.port, "/x").status, 200, "GET /x")
    check(wait_for(lambda: a.metrics()["sluice_requests_total"].total() == 1, 5.0), "counted")
    raw = a.call("GET", "/stats").body
    d = json.loads(raw.decode("utf-8"))
    fam = {f["name"]: f for f in d["families"]}
    eq(fam["sluice_requests_total"]["samples"][0]["labels"], {"route": weird_r, "code": "2xx"}, "route label")
    eq(fam["sluice_retries_total"]["samples"][0]["labels"], {"upstream": weird_u}, "upstream label")
    m = a.metrics()
    eq(m["sluice_requests_total"].samples[0].labels["route"], weird_r, "the same in /metrics")


def test_many_stats_pollers(env):
    """600 admin connections open at once (more than the 256 the admin
    listener used to allow), each asking GET /stats twice on its kept-alive
    connection: every answer is a 200 with the whole document."""
    _, cfg = dash_cfg(env, health=False)
    s, a = start(env, cfg)
    req = ("GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % TOKEN).encode()
    socks = []
    try:
        for _ in range(600):
            c = socket.create_connection(("127.0.0.1", a.port), timeout=10)
            socks.append(c)
        for rnd in range(2):
            for c in socks:
                c.sendall(req)
            for i, c in enumerate(socks):
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(65536)
                    check(chunk, "connection %d closed before its answer (round %d)" % (i, rnd))
                    buf += chunk
                head, body = buf.split(b"\r\n\r\n", 1)
                check(head.startswith(b"HTTP/1.1 200 "), "connection %d: %r" % (i, head[:40]))
                n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(body) < n:
                    chunk = c.recv(65536)
                    check(chunk, "connection %d closed mid-answer" % i)
                    body += chunk
                eq(len(body), n, "connection %d: one whole answer" % i)
                json.loads(body)
    finally:
        for c in socks:
            c.close()
    eq(a.call("GET", "/healthz").status, 200, "the admin listener still answers")


def test_stats_rendered_at_idle_priority(env):
    """While clients poll /stats (1,000 routes with traffic: a document of
    some size), the admin thread is seen at SCHED_IDLE, and after every
    answer every thread is back at its own priority; no build was counted."""
    e = env.echo("e")
    routes = [{"name": "r%04d" % i, "match": {"path": {"prefix": "/r%04d/" % i}},
               "rewrite": {"strip_prefix": True}, "upstream": "u"} for i in range(1000)]
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": e.addr}]}], routes=routes,
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})
    s, a = start(env, cfg)
    for i in range(1000):
        eq(get(s.port, "/r%04d/x" % i).status, 200, "GET /r%04d/x" % i)
    admin_tid = [t for t, n in thread_names(s.proc.pid).items() if n == "sluice-admin"]
    eq(len(admin_tid), 1, "one admin thread")
    seen, done = set(), threading.Event()

    def poller():
        while not done.is_set():
            eq(a.call("GET", "/stats").status, 200, "GET /stats")
    ps = [threading.Thread(target=poller) for _ in range(3)]
    for p in ps:
        p.start()
    try:
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end and (5, 0) not in seen:
            seen.add(thread_policies(s.proc.pid).get(admin_tid[0]))
            time.sleep(0.0003)
    finally:
        done.set()
        for p in ps:
            p.join(10)
    if os.geteuid() == 0:
        check((5, 0) in seen, "the admin thread rendered /stats at SCHED_IDLE: %r" % sorted(seen))
    else:       # without the right to leave SCHED_IDLE, answers keep their priority
        check((5, 0) not in seen, "no idle phase without CAP_SYS_NICE: %r" % sorted(seen))
    a.call("GET", "/stats")
    after = thread_policies(s.proc.pid)
    check(all(v == (0, 0) for v in after.values()), "every thread at its own priority after: %r" % after)
    fams = a.metrics()
    eq(fams["sluice_reload_builds_escalated_total"].samples[0].value, 0, "no build counted as raised")


# ---------------------------------------------------------------- the page in a browser

def _rows(drv):
    """The targets table as {(upstream, target): health}."""
    return drv.execute_script(
        "var o = {}; document.querySelectorAll('#targets tbody tr').forEach(function (r) {"
        " o[r.dataset.upstream + ' ' + r.dataset.target] = r.dataset.health; }); return o;") or {}


def _visible(drv, el_id):
    return drv.execute_script("var e = document.getElementById(arguments[0]);"
                              "return !!e && e.offsetParent !== null;", el_id)


def test_ui_in_browser(env):
    (ea1, ea2, eb), cfg = dash_cfg(env)
    s, a = start(env, cfg)
    check(wait_for(lambda: all(t["healthy"] for u in a.json_ok("GET", "/status")["upstreams"]
                               for t in u["targets"]), 5.0, 0.05), "targets up before the page opens")
    drv = browser(env, "--window-size=1280,1000")
    try:
        drv.set_script_timeout(10)
        drv.get("http://127.0.0.1:%d/ui" % a.port)
        # a token is set: the page asks for it
        check(wait_for(lambda: _visible(drv, "token-form"), 10.0, 0.1), "the page asks for the token")
        # a wrong one: a clear message, not an empty page
        drv.find_element("id", "token-input").send_keys("not-the-token")
        drv.find_element("id", "token-submit").click()
        msg = wait_for(lambda: drv.find_element("id", "token-error").text, 10.0, 0.1)
        check(msg and "wrong token" in msg.lower() and "401" in msg, "a wrong token says so: %r" % msg)
        check(not _visible(drv, "dash"), "and shows no dashboard")
        check(drv.execute_script("return sessionStorage.getItem('sluice.admin-token')") is None,
              "a refused token is not kept")
        # the right one: every target of both upstreams, healthy
        drv.find_element("id", "token-input").send_keys(TOKEN)
        drv.find_element("id", "token-submit").click()
        want = {"alpha " + ea1.addr: "up", "alpha " + ea2.addr: "up", "beta " + eb.addr: "up"}
        got = wait_for(lambda: _rows(drv) == want and _rows(drv), 10.0, 0.1)
        eq(got or _rows(drv), want, "every target, healthy")
        eq(drv.execute_script("return sessionStorage.getItem('sluice.admin-token')"), TOKEN,
           "the token is kept for the tab")
        check(wait_for(lambda: drv.find_element("id", "p-workers").text == "1", 5.0, 0.1),
              "the header shows the workers")
        eq(drv.find_element("id", "p-config").text, "v1", "and the config version")
        # a reload (the page asks nothing again: the token stays)
        drv.refresh()
        check(wait_for(lambda: len(_rows(drv)) == 3, 10.0, 0.1), "a page reload keeps the token")
        # stop one backend: its target turns unhealthy on the page
        ea2.proc.stop()
        want_down = dict(want, **{"alpha " + ea2.addr: "down"})
        got = wait_for(lambda: _rows(drv) == want_down and _rows(drv), 10.0, 0.1)
        eq(got or _rows(drv), want_down, "the stopped backend's target is down on the page")
        cls = drv.execute_script("return document.querySelector('#targets tr[data-target=\"%s\"]').className"
                                 % ea2.addr)
        eq(cls, "down", "and drawn as down (red)")
        # no traffic yet: the rate chart is flat; traffic makes it rise
        eq(float(drv.find_element("id", "rps-chart").get_attribute("data-max")), 0.0,
           "no requests yet: the chart is flat")
        stop = threading.Event()

        def traffic():
            while not stop.is_set():
                try:
                    get(s.port, "/a/t", timeout=2.0)
                    get(s.port, "/b/t", timeout=2.0)
                except Exception:
                    pass
        th = threading.Thread(target=traffic, daemon=True)
        th.start()
        try:
            rose = wait_for(lambda: float(drv.find_element("id", "rps-chart").get_attribute("data-max")) >= 5,
                            15.0, 0.2)
            check(rose, "the request-rate chart rises with traffic (max %s)"
                  % drv.find_element("id", "rps-chart").get_attribute("data-max"))
            check(drv.execute_script("return document.querySelectorAll('#rps-chart polyline').length") >= 1,
                  "a line is drawn")
            routes = wait_for(lambda: drv.execute_script(
                "return Array.from(document.querySelectorAll('#routes tbody tr')).map(function (r) {"
                " return r.dataset.route; }).sort()"), 5.0, 0.1)
            check({"ra", "rb"} <= set(routes or []), "the routes with traffic are listed: %r" % routes)
            # the filter box narrows both tables
            drv.find_element("id", "filter").send_keys("beta")
            check(wait_for(lambda: list(_rows(drv)) == ["beta " + eb.addr], 5.0, 0.1),
                  "the filter keeps only matching targets: %r" % _rows(drv))
            time.sleep(1.5)         # p50/p99 columns filled for the screenshot
            drv.find_element("id", "filter").clear()
            drv.execute_script("var f = document.getElementById('filter');"
                               "f.dispatchEvent(new Event('input'));")
            time.sleep(1.0)
            path = os.path.join(BUILD, "ui-screenshot.png")
            check(drv.save_screenshot(path) and os.path.getsize(path) > 10000, "screenshot saved to %s" % path)
            # a phone-sized window: nothing wider than the screen but the tables' own scrollers
            drv.set_window_size(390, 844)
            time.sleep(0.5)
            over = drv.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            check(over <= 1, "at phone width the page does not scroll sideways (%r px over)" % over)
        finally:
            stop.set()
            th.join(5)
    finally:
        drv.quit()
