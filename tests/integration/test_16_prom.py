"""A real Prometheus against sluice (issue 24): Debian's prometheus, started
here on 127.0.0.1 with its own storage directory, scrapes sluice's
/metrics every second with the admin token.  promtool accepts
deploy/prometheus/alerts.yml and finds nothing wrong in the exposition;
every PromQL expression of deploy/grafana/sluice.json (panels, and the
variables' label_values queries), with its variables substituted as Grafana
would, returns data through Prometheus's HTTP API after a short load; and
killing a backend makes SluiceTargetDown fire (and, the upstream's only
target, SluiceUpstreamNoHealthyTarget), from a copy of alerts.yml with
shorter `for:`."""
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import ROOT, TestFailure, check, eq, free_port, get, wait_for, wait_port
from test_8_admin import TOKEN, start

ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "sluice.json")


def _bin(name):
    path = shutil.which(name)
    check(path, "%s is installed (make deps installs Debian's prometheus)" % name)
    return path


def api(port, path, **params):
    url = "http://127.0.0.1:%d%s?%s" % (port, path, urllib.parse.urlencode(params, doseq=True))
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            d = json.loads(r.read().decode())
    except urllib.error.HTTPError as ex:
        raise TestFailure("Prometheus %s %r: HTTP %d %s" % (path, params, ex.code, ex.read()[:400]))
    eq(d.get("status"), "success", "Prometheus %s %r" % (path, params))
    return d["data"]


def query(port, expr):
    return api(port, "/api/v1/query", query=expr)["result"]


def exprs_of(dash):
    """(where, expr) for every panel target, and the variables' queries."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append(("panel %r %s" % (p["title"], t["refId"]), t["expr"]))
            walk(p.get("panels", []))
    walk(dash["panels"])
    return out


def test_promtool_check_rules(env):
    promtool = _bin("promtool")
    r = subprocess.run([promtool, "check", "rules", ALERTS], capture_output=True, text=True, timeout=30)
    eq(r.returncode, 0, "promtool check rules alerts.yml: %s %s" % (r.stdout, r.stderr))
    check("SUCCESS: 6 rules found" in r.stdout, "six rules: %r" % r.stdout)
    with open(ALERTS) as f:
        text = f.read()
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    names = re.findall(r"alert: (\w+)", text)
    eq(len(names), 6, "six alerts")
    for name in names:
        # the heading GitHub anchors as #runbook-NAME, where each rule's runbook annotation points
        check(re.search(r"^#### Runbook: %s\n\S" % name, readme, re.M),
              "README has a runbook line for %s" % name)
        check('runbook: "README.md#runbook-%s"' % name.lower() in text, "%s points at it" % name)
        check(re.search(r"- alert: %s\n(?:.*\n){1,12}?\s+summary: " % name, text), "%s has a summary" % name)


def test_prometheus_scrapes_dashboard_and_alerts(env):
    prom_bin, promtool = _bin("prometheus"), _bin("promtool")
    e1, e2, e3 = env.echo("a1"), env.echo("a2"), env.echo("b1")
    hc = {"path": "/healthz", "interval_ms": 200, "timeout_ms": 150, "rise": 1, "fall": 1}
    ups = [{"name": "alpha", "targets": [{"address": e1.addr}, {"address": e2.addr}], "health": hc},
           {"name": "beta", "targets": [{"address": e3.addr}], "health": hc}]
    routes = [{"name": "ra", "match": {"path": {"prefix": "/a"}}, "rewrite": {"strip_prefix": True},
               "upstream": "alpha"},
              {"name": "rb", "match": {"path": {"prefix": "/b"}}, "rewrite": {"strip_prefix": True},
               "upstream": "beta"},
              {"name": "events", "match": {"path": {"prefix": "/sse"}}, "upstream": "alpha"},
              {"name": "cut", "match": {"path": {"prefix": "/cut"}}, "rewrite": {"strip_prefix": True},
               "upstream": "alpha", "timeouts": {"idle_ms": 300}}]
    cfg = env.config(upstreams=ups, routes=routes,
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN})
    s, a = start(env, cfg)

    # promtool on sluice's own exposition
    r = a.call("GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    pc = subprocess.run([promtool, "check", "metrics"], input=r.body, capture_output=True, timeout=30)
    eq((pc.returncode, pc.stdout + pc.stderr), (0, b""), "promtool check metrics on /metrics")

    # a copy of the rules with short for: (the expressions unchanged)
    with open(ALERTS) as f:
        rules = re.sub(r"for: \S+", "for: 1s", f.read())
    rules_path = env.write("alerts.yml", rules)
    port = free_port()
    aport = a.port
    prom_cfg = ("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "rule_files:\n  - %s\n"
                "scrape_configs:\n  - job_name: sluice\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
                "    authorization:\n      type: Bearer\n      credentials: %s\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % (rules_path, TOKEN, aport))
    cfg_path = env.write("prometheus.yml", prom_cfg)
    eq(subprocess.run([promtool, "check", "config", cfg_path], capture_output=True, timeout=30).returncode, 0,
       "promtool check config")
    prom = env.start([prom_bin, "--config.file=" + cfg_path, "--storage.tsdb.path=" + env.tmp + "/tsdb",
                      "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn",
                      "--storage.tsdb.retention.time=1h"], "prometheus")
    check(wait_port(port, 15.0, prom.p), "prometheus listens: %s" % prom.stderr()[-800:])

    def ready():
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False
    check(wait_for(ready, 15.0, 0.1), "prometheus is ready: %s" % prom.stderr()[-800:])
    instance = "127.0.0.1:%d" % aport

    def scraped():
        t = api(port, "/api/v1/targets")["activeTargets"]
        return t and t[0]["health"] == "up" and t
    got = wait_for(scraped, 10.0, 0.2)
    check(got, "prometheus scrapes sluice with the token: %r" % api(port, "/api/v1/targets"))

    # a short load, kept going while the expressions run (rates need it)
    stop = threading.Event()

    def traffic():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                get(s.port, "/a/x", timeout=2.0)
                get(s.port, "/b/x", timeout=2.0)
                if i % 5 == 0:
                    get(s.port, "/b/status/503", timeout=2.0)
                if i % 20 == 1:
                    get(s.port, "/sse?n=3&ms=10", timeout=2.0)
                    get(s.port, "/cut/x", timeout=2.0)
            except Exception:
                pass
            time.sleep(0.01)

    def streams():                  # one stream open throughout (sluice_streams_open > 0)
        try:
            get(s.port, "/sse?n=400&ms=100", timeout=60.0)
        except Exception:
            pass
    th = [threading.Thread(target=traffic, daemon=True), threading.Thread(target=streams, daemon=True)]
    for t in th:
        t.start()
    try:
        # the series the dashboard's rates need: a few scrapes with traffic
        check(wait_for(lambda: query(port, 'sum(rate(sluice_requests_total{code="5xx"}[15s])) > 0'), 15.0, 0.5),
              "prometheus sees the load")
        with open(DASHBOARD) as f:
            dash = json.load(f)
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        eq(sorted(variables), ["datasource", "instance", "route", "upstream"], "the dashboard's variables")
        eq(variables["datasource"]["type"], "datasource", "a data-source variable")
        eq(variables["datasource"]["query"], "prometheus", "of Prometheus")
        # the variables, resolved as Grafana does: label_values(SELECTOR, LABEL) -> /api/v1/series
        values, raw = {}, {}
        for name in ("instance", "route", "upstream"):
            q = variables[name]["query"]["query"] if isinstance(variables[name]["query"], dict) \
                else variables[name]["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
            check(m, "variable %s is a label_values query: %r" % (name, q))
            sel = m.group(1)
            for v, val in values.items():
                sel = sel.replace("$" + v, val)
            series = api(port, "/api/v1/series", **{"match[]": sel})
            vals = sorted({sr[m.group(2)] for sr in series if m.group(2) in sr})
            check(vals, "variable %s (%s) has values" % (name, sel))
            raw[name] = vals
            # "All": a regex of every value, its backslashes doubled inside a PromQL string
            values[name] = "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in vals) + ")"
        eq(raw["instance"], [instance], "the instance")
        eq(raw["route"], ["cut", "events", "ra", "rb"], "the routes")
        eq(raw["upstream"], ["alpha", "beta"], "the upstreams")
        empty = []
        for where, expr in exprs_of(dash):
            q = expr.replace("$__rate_interval", "15s")
            for v, val in values.items():
                q = q.replace("$" + v, val)
            check("$" not in q, "%s: every variable substituted: %s" % (where, q))
            res = query(port, q)
            if not res:
                empty.append((where, q))
        eq(empty, [], "dashboard expressions that returned no data")
        # one variable narrowed to one value, as a user picks it
        res = query(port, 'sum by (route) (rate(sluice_requests_total{instance=~"%s", route=~"rb"}[15s]))' % instance)
        eq([r["metric"].get("route") for r in res], ["rb"], "a single route selected")
        # every alert's expression is valid PromQL that Prometheus runs
        groups = api(port, "/api/v1/rules")["groups"]
        names = sorted(r["name"] for g in groups for r in g["rules"])
        eq(names, sorted(["SluiceTargetDown", "SluiceUpstreamNoHealthyTarget", "SluiceHigh5xxShare",
                          "SluiceHighP99Latency", "SluiceReloadFailed", "SluiceStreamsCutByTimeouts"]),
           "the rules prometheus loaded")
        bad = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r.get("health") == "err"]
        eq(bad, [], "rules that failed to evaluate")

        def firing(name, **labels):
            for al in api(port, "/api/v1/alerts")["alerts"]:
                if al["labels"]["alertname"] == name and al["state"] == "firing" and \
                        all(al["labels"].get(k) == v for k, v in labels.items()):
                    return al
            return None
        check(firing("SluiceTargetDown") is None, "no target is down yet")
        check(firing("SluiceStreamsCutByTimeouts") is None, "no stream cut yet")
        # a stream silent longer than its route's idle_ms is cut
        try:
            get(s.port, "/cut/sse?n=5&ms=10&gap_after=2&gap_ms=3000", timeout=5.0)
        except Exception:
            pass                # cut: the body ends early
        check(wait_for(lambda: firing("SluiceStreamsCutByTimeouts", reason="upstream_idle_timeout"), 10.0, 0.25),
              "SluiceStreamsCutByTimeouts fires for the cut stream")
        # kill beta's only backend: its target goes down, then the alerts fire
        e3.proc.signal(9)
        e3.proc.wait(5)
        al = wait_for(lambda: firing("SluiceTargetDown", upstream="beta", target=e3.addr), 15.0, 0.25)
        check(al, "SluiceTargetDown fires for the killed backend: %r" % api(port, "/api/v1/alerts"))
        check(al["annotations"]["summary"].startswith("sluice target %s of upstream beta is down" % e3.addr),
              "with its summary: %r" % al["annotations"])
        check(wait_for(lambda: firing("SluiceUpstreamNoHealthyTarget", upstream="beta"), 10.0, 0.25),
              "SluiceUpstreamNoHealthyTarget fires for beta")
        check(firing("SluiceTargetDown", upstream="alpha") is None, "alpha's targets are not reported")
        # a refused reload fires SluiceReloadFailed
        bad_cfg = json.loads(json.dumps(cfg))
        bad_cfg["routes"][0]["upstream"] = "nope"
        eq(a.put(bad_cfg).status, 400, "a refused PUT")
        check(wait_for(lambda: firing("SluiceReloadFailed", instance=instance), 10.0, 0.25),
              "SluiceReloadFailed fires")
        # 5xx share on rb: a fifth of its responses
        check(wait_for(lambda: firing("SluiceHigh5xxShare", route="rb"), 10.0, 0.25),
              "SluiceHigh5xxShare fires for rb")
    finally:
        stop.set()
        for t in th:
            t.join(10)
