"""sluice-k8s translate (issue 17): the Gateway API conformance cases of
tests/k8s/conformance/ (the HTTPRoute tests of kubernetes-sigs/gateway-api
v1.6.1 as data, see its README) and the translator's command line.

Per case: the manifests with their port placeholders filled in are
translated, `sluice` serves the output on ${GATEWAY_PORT} in front of one
sluice-echo per pod (--namespace/--pod make it answer like the conformance
echo server), and every request of expect.json is sent on a new connection
and compared the way the upstream CompareRoundTrip does.  The conditions the
case lists must be among what translate printed on stderr."""
import base64
import collections
import json
import os
import re
import ssl
import threading

from harness import BUILD, ECHO, Conn, TestFailure, check, eq, free_port, wait_for

K8S = os.path.join(BUILD, "sluice-k8s")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(ROOT, "k8s", "conformance", "cases")
PLACEHOLDER = re.compile(r"\$\{(PORT_[A-Za-z0-9_.-]+|GATEWAY_PORT)\}")


# ---------------------------------------------------------------- a case

class Case:
    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.dir = os.path.join(CASES, name)
        with open(os.path.join(self.dir, "expect.json")) as f:
            self.expect_text = f.read()
        self.gw_port = free_port()
        self.ports = {"GATEWAY_PORT": self.gw_port}
        self.expect = json.loads(self.expect_text.replace("${GATEWAY_PORT}", str(self.gw_port)))

    def start_echoes(self, texts):
        """One sluice-echo per pod placeholder; the h2c ports get a free port
        with nothing behind it (h2c is not served)."""
        names = sorted({m.group(1) for t in texts for m in PLACEHOLDER.finditer(t)} - {"GATEWAY_PORT"})
        backends = self.expect.get("backends", {})
        procs = []
        for ph in names:
            dep = ph[len("PORT_"):]
            if dep.endswith("__h2c"):
                self.ports[ph] = free_port()
                continue
            b = backends.get(dep, {"namespace": "unknown", "pod": dep + "-0-0"})
            p = self.env.start([ECHO, "--port", "0", "--id", b["pod"], "--namespace", b["namespace"],
                                "--pod", b["pod"]], "echo")
            procs.append((ph, p))
        for ph, p in procs:
            line = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", p.stdout()), 5.0)
            check(line, "sluice-echo for %s did not start: %s" % (ph, p.stderr()[-300:]))
            self.ports[ph] = int(line.group(1))

    def translate(self):
        texts = {}
        for fn in sorted(os.listdir(self.dir)):
            if fn.endswith(".yaml"):
                with open(os.path.join(self.dir, fn)) as f:
                    texts[fn] = f.read()
        self.start_echoes(texts.values())
        mdir = os.path.join(self.env.tmp, "manifests")
        os.makedirs(mdir, exist_ok=True)
        for fn, t in texts.items():
            with open(os.path.join(mdir, fn), "w") as f:
                f.write(PLACEHOLDER.sub(lambda m: str(self.ports[m.group(1)]), t))
        rc, out, err = self.env.run([K8S, "translate", "-f", mdir], timeout=20)
        self.stderr = err
        check(rc == 0, "translate rc=%d: %s" % (rc, err[-600:]))
        try:
            cfg = json.loads(out)
        except ValueError as e:
            raise TestFailure("translate printed no JSON (%s): %r" % (e, out[:300]))
        check(isinstance(cfg, dict), "translate output is not an object")
        self.conds = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
        return cfg

    def serve(self):
        cfg = self.translate()
        cfg["workers"] = 1
        cfg["access_log"] = os.path.join(self.env.tmp, "access.log")
        self.sluice = self.env.sluice(cfg)
        if not self.sluice.ports:      # a case with no listener cannot be served
            raise TestFailure("translate produced no listener: %s" % self.stderr[-600:])

    # ---- requests

    def tls_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def send(self, req):
        method = req.get("method", "GET")
        host = req.get("host") or "127.0.0.1:%d" % self.gw_port
        lines = ["%s %s HTTP/1.1" % (method, req.get("path", "/")), "Host: %s" % host]
        for k, v in (req.get("headers") or {}).items():
            lines.append("%s: %s" % (k, v))
        bs = req.get("backend_set_response_headers")
        if bs:
            lines.append("X-Echo-Set-Header: %s" % ",".join("%s:%s" % kv for kv in bs.items()))
        if method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        https = self.expect.get("scheme") == "https"
        tls = self.tls_ctx() if https else None
        with Conn(self.gw_port, 5.0, tls=tls, sni=(req.get("sni") or req.get("host")) if https else None) as c:
            if https:
                self.check_cert(c.sock.getpeercert(True))
            c.send(data)
            return c.read_response(head=(method == "HEAD"), timeout=5.0)

    def check_cert(self, der):
        pem = self.expect["tls"]["server_cert_pem"]
        b64 = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
        check(der == base64.b64decode(b64), "the served certificate is not the Secret's")

    def compare(self, i, item):
        req, exp = item["request"], item["expect"]
        what = "request %d (%s %s host=%s)" % (i, req.get("method", "GET"), req.get("path"), req.get("host"))
        r = self.send(req)
        check(r.status in exp["status"], "%s: status %d, want %s; body %r" % (what, r.status, exp["status"], r.body[:200]))
        if r.status in (200, 204) and exp.get("backend") is not None:
            try:
                echo = r.json()
            except ValueError:
                raise TestFailure("%s: the body is not echo JSON: %r" % (what, r.body[:200]))
            eq(echo.get("namespace"), exp.get("namespace"), "%s: namespace" % what)
            check(echo.get("pod", "").startswith(exp["backend"]),
                  "%s: pod %s, want %s*" % (what, echo.get("pod"), exp["backend"]))
            self.compare_backend(what, echo, exp.get("backend_request") or {})
        self.compare_headers(what, r, exp)
        if exp.get("redirect"):
            self.compare_redirect(what, r, exp["redirect"])

    def compare_backend(self, what, echo, br):
        seen = collections.defaultdict(list)
        for k, v in echo["headers"]:
            seen[k.lower()].append(v)
        if "path" in br:
            eq(echo["path"], br["path"], "%s: path the backend saw" % what)
        if "method" in br:
            eq(echo["method"], br["method"], "%s: method the backend saw" % what)
        if br.get("host"):
            eq(",".join(seen["host"]), br["host"], "%s: Host the backend saw" % what)
        for k, v in (br.get("headers") or {}).items():
            got = seen.get(k.lower())
            check(got, "%s: the backend did not get header %s (got %s)" % (what, k, dict(seen)))
            eq(norm(",".join(got)), norm(v), "%s: backend header %s" % (what, k))
        for k in br.get("absent_headers") or []:
            check(k.lower() not in seen, "%s: the backend got header %s: %s" % (what, k, seen.get(k.lower())))

    def compare_headers(self, what, r, exp):
        for k, v in (exp.get("response_headers") or {}).items():
            got = r.hall(k)
            check(got, "%s: no response header %s (got %s)" % (what, k, r.headers))
            eq(norm(",".join(got)), norm(v), "%s: response header %s" % (what, k))
        for k in exp.get("response_absent_headers") or []:
            check(not r.hall(k), "%s: response has header %s" % (what, k))

    def compare_redirect(self, what, r, rd):
        loc = r.h("location")
        check(loc, "%s: no Location" % what)
        m = re.match(r"^(https?)://([^/:]+)(?::(\d+))?(/[^?#]*)?", loc)
        check(m, "%s: Location %r is not absolute" % (what, loc))
        scheme, host, port, path = m.group(1), m.group(2), m.group(3) or "", m.group(4) or "/"
        if rd.get("scheme"):
            eq(scheme, rd["scheme"], "%s: redirect scheme (%s)" % (what, loc))
        if rd.get("host"):
            eq(host, rd["host"], "%s: redirect host (%s)" % (what, loc))
        if "port" in rd:
            check(port in rd["port"], "%s: redirect port %r not in %s (%s)" % (what, port, rd["port"], loc))
        if rd.get("path"):
            eq(path, rd["path"], "%s: redirect path (%s)" % (what, loc))

    def distribution(self, d):
        """Weighted backends: the share of each pod within the tolerance."""
        last = None
        for _ in range(d.get("attempts", 1)):
            counts = collections.Counter()
            errors = []
            lock = threading.Lock()
            n = d["total"]
            per = [n // d["concurrency"] + (1 if k < n % d["concurrency"] else 0) for k in range(d["concurrency"])]

            def worker(k):
                for _ in range(k):
                    try:
                        r = self.send(d["request"])
                        pod = r.json().get("pod", "") if r.status == 200 else "status %d" % r.status
                    except Exception as e:  # counted, the check below fails on it
                        pod = "error %s" % e
                    with lock:
                        counts[pod] += 1

            ts = [threading.Thread(target=worker, args=(k,)) for k in per]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            ok = True
            for dep, w in d["weights"].items():
                got = sum(c for pod, c in counts.items() if pod.startswith(dep)) / float(n)
                if abs(got - w) > d["tolerance"] or (w == 0 and got > 0):
                    ok = False
            errors = [p for p in counts if not any(p.startswith(dep) for dep in d["weights"])]
            if ok and not errors:
                return
            last = dict(counts)
        raise TestFailure("distribution %s, want %s" % (last, d["weights"]))

    def websocket(self, w):
        import hashlib
        import os as _os
        key = base64.b64encode(_os.urandom(16)).decode()
        with Conn(self.gw_port, 5.0) as c:
            c.send("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n"
                   % (w["path"], self.gw_port, key, w.get("origin", "")))
            r = c.read_response(timeout=5.0)
            eq(r.status, 101, "websocket handshake status")
            acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            eq(r.h("sec-websocket-accept"), acc, "Sec-WebSocket-Accept")
            for m in w["messages"]:
                text = m["type"] == "text"
                payload = m["data"].encode() if text else bytes.fromhex(m["hex"])
                mask = _os.urandom(4)
                c.send(bytes([0x81 if text else 0x82, 0x80 | len(payload)]) + mask +
                       bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
                import time
                deadline = time.monotonic() + 5
                hdr = c.read_exact(2, deadline)
                eq(hdr[0], 0x81 if text else 0x82, "websocket frame opcode")
                body = c.read_exact(hdr[1] & 0x7f, deadline)
                eq(bytes(body), payload, "websocket echo")

    def check_conditions(self):
        for want in self.expect.get("conditions") or []:
            found = any(all(c.get(k) == v for k, v in want.items()) for c in self.conds)
            check(found, "condition %s not printed; stderr: %s" % (want, self.stderr[-800:]))

    def run(self):
        self.serve()
        self.check_conditions()
        for i, item in enumerate(self.expect.get("requests") or []):
            self.compare(i, item)
        if self.expect.get("distribution"):
            self.distribution(self.expect["distribution"])
        if self.expect.get("websocket"):
            self.websocket(self.expect["websocket"])


# ---------------------------------------------------------------- the command line

GW_YAML = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: %d, protocol: HTTP}
"""

ROUTE_YAML = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: %s, namespace: %s, port: 8080}]
"""


# Service a (port 8080, extra fields %s) with one ready endpoint 127.0.0.1:%d
SVC_A_YAML = """apiVersion: v1
kind: Service
metadata: {name: a, namespace: infra}
spec: {ports: [{name: web, port: 8080%s}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: a-x, namespace: infra, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
ports: [{name: web, port: %d}]
endpoints:
- addresses: [127.0.0.1]
"""


def translate(env, *args):
    rc, out, err = env.run([K8S, "translate"] + list(args), timeout=20)
    conds = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    return rc, out, err, conds


def test_translate_bad_input(env):
    """Malformed YAML, an unknown kind, a missing Service and a reference
    without a grant each give a clear condition on stderr, never a crash;
    the output still passes sluice --check."""
    bad = env.write("bad.yaml", "kind: Gateway\nmetadata: [\n")
    rc, out, err, conds = translate(env, "-f", bad)
    eq(rc, 1, "malformed YAML exit status")
    eq(out, "", "malformed YAML prints no document")
    check(any(c["reason"] == "ParseError" and "bad.yaml:" in c["message"] for c in conds),
          "ParseError naming the file and line: %s" % err)

    port = free_port()
    d = os.path.join(env.tmp, "m")
    os.makedirs(d)
    with open(os.path.join(d, "a.yaml"), "w") as f:
        f.write(GW_YAML % port + "---\n" + ROUTE_YAML % ("missing", "infra") +
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: dep, namespace: infra}\n")
    with open(os.path.join(d, "b.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "other"},
             "spec": {"ports": [{"port": 8080}]}},
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "x", "namespace": "infra"},
             "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"matches": [{"path": {"value": "/x"}}],
                      "backendRefs": [{"name": "web", "namespace": "other", "port": 8080}]}]}}]}, f)
    rc, out, err, conds = translate(env, "-f", d)
    eq(rc, 0, "translate exit status")
    reasons = {(c["name"], c["reason"]) for c in conds}
    for want in (("dep", "UnknownKind"), ("r", "BackendNotFound"), ("x", "RefNotPermitted")):
        check(want in reasons, "condition %s missing: %s" % (want, sorted(reasons)))
    for c in conds:
        check(set(c) == {"kind", "namespace", "name", "type", "status", "reason", "message"} and c["message"],
              "a condition has kind, namespace, name, type, status, reason, message: %s" % c)
    cfg = json.loads(out)
    path = env.write("out.json", out)
    rc, _, cerr = env.run([os.path.join(BUILD, "sluice"), "--check", "--config", path])
    eq(rc, 0, "sluice --check of the output (%s)" % cerr)
    # both routes answer 500 (invalid backends are served, not dropped)
    statuses = sorted(r.get("respond", {}).get("status") for r in cfg["routes"])
    eq(statuses, [500, 500], "invalid backends answer 500")

    rc, out, err, conds = translate(env, "-f", os.path.join(env.tmp, "nope.yaml"))
    check(rc == 1 and any(c["reason"] == "ReadError" for c in conds), "a missing file: %s" % err)
    rc, out, err, _ = translate(env)
    check(rc == 1 and "usage" in err, "no -f: usage (%s)" % err)
    rc, out, err, _ = translate(env, "-f", d, "--bogus")
    check(rc == 1 and "--bogus" in err, "an unknown option is named: %s" % err)


def test_translate_gateway_class_and_serve(env):
    """--gateway-class picks the Gateways served; the output runs in sluice
    and routes to the EndpointSlice's ready endpoint."""
    echo = env.echo("pod-a")
    port = free_port()
    path = env.write("m.yaml", (GW_YAML % port).replace("sluice", "other") + "---\n" +
                     ROUTE_YAML % ("a", "infra") + "---\n" +
                     SVC_A_YAML % (", targetPort: 9", echo.port) +
                     "- addresses: [127.0.0.2]\n  conditions: {ready: false}\n")
    rc, out, err, conds = translate(env, "-f", path)
    eq(json.loads(out)["listeners"], [], "class sluice: the Gateway of class other is not served")
    rc, out, err, conds = translate(env, "-f", path, "--gateway-class", "other", "--listen-host", "127.0.0.1")
    eq(rc, 0, "translate rc (%s)" % err)
    cfg = json.loads(out)
    eq([t["address"] for t in cfg["upstreams"][0]["targets"]], ["127.0.0.1:%d" % echo.port],
       "targets: the ready endpoint only")
    cfg["workers"] = 1
    env.sluice(cfg)
    from harness import get
    r = get(port, "/hello", host="any.example")
    eq(r.status, 200, "status through the translated config")
    eq(r.json()["id"], "pod-a", "answered by the endpoint")


def test_translate_rule_timeouts_on_the_wire(env):
    """An HTTPRoute rule's timeouts (the stricter of request and
    backendRequest) bound the response: a backend slower than that gets a
    504, a faster one answers; a rule without timeouts waits."""
    echo = env.echo("pod-a")
    port = free_port()
    path = env.write("m.yaml", GW_YAML % port + """---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /delay}}]
    timeouts: {request: 10s, backendRequest: 300ms}
    backendRefs: [{name: a, port: 8080}]
  - backendRefs: [{name: a, port: 8080}]
---
""" + SVC_A_YAML % ("", echo.port))
    rc, out, err, conds = translate(env, "-f", path, "--listen-host", "127.0.0.1")
    eq(rc, 0, "translate rc (%s)" % err)
    cfg = json.loads(out)
    timed = [r for r in cfg["routes"] if r.get("timeouts")]
    eq([r["timeouts"] for r in timed], [{"total_ms": 300}], "one route with the stricter timeout")
    cfg["workers"] = 1
    env.sluice(cfg)
    from harness import get
    eq(get(port, "/delay/20").status, 200, "a backend inside the timeout answers")
    eq(get(port, "/delay/1500").status, 504, "a backend slower than backendRequest: 504")
    eq(get(port, "/other").status, 200, "the rule without timeouts still answers")


def test_translate_listener_ports(env):
    """Routes attached (sectionName, port) to listeners on different ports
    answer only on their port: match.listeners scopes them."""
    echo = env.echo("pod-p")
    p1, p2 = free_port(), free_port()
    path = env.write("m.yaml", """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: one, port: %d, protocol: HTTP}
  - {name: two, port: %d, protocol: HTTP, hostname: two.example}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r1, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: one}]
  rules: [{matches: [{path: {value: /one}}], backendRefs: [{name: a, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r2, namespace: infra}
spec:
  parentRefs: [{name: gw, port: %d}]
  rules: [{matches: [{path: {value: /two}}], backendRefs: [{name: a, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: infra}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: a-1, namespace: infra, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
ports: [{name: "", port: %d}]
endpoints: [{addresses: [127.0.0.1]}]
""" % (p1, p2, p2, echo.port))
    rc, out, err, conds = translate(env, "-f", path, "--listen-host", "127.0.0.1")
    eq(rc, 0, "translate rc (%s)" % err)
    cfg = json.loads(out)
    cfg["workers"] = 1
    env.sluice(cfg)
    from harness import get
    eq(get(p1, "/one", host="x.example").status, 200, "/one on its port")
    eq(get(p1, "/two", host="two.example").status, 404, "/two is not on the first port")
    eq(get(p2, "/two", host="two.example").status, 200, "/two on its port, its listener's hostname")
    eq(get(p2, "/two", host="other.example").status, 404, "/two under another hostname")
    eq(get(p2, "/one", host="two.example").status, 404, "/one is not on the second port")


def test_translate_listener_isolation(env):
    """The shape of the conformance test GatewayHTTPListenerIsolation (not in
    the data set): four listeners on one port, from no hostname to
    abc.foo.example.com; a request is answered only by the routes of the most
    specific listener its host matches, never by a wider listener's."""
    echo = env.echo("pod-i")
    port = free_port()
    names = [("empty-hostname", None), ("wildcard-example-com", "*.example.com"),
             ("wildcard-foo-example-com", "*.foo.example.com"), ("abc-foo-example-com", "abc.foo.example.com")]
    listeners = "".join("  - {name: %s, port: %d, protocol: HTTP%s}\n" % (n, port, ", hostname: '%s'" % h if h else "")
                        for n, h in names)
    routes = "".join("""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: %s}]
  rules: [{matches: [{path: {value: /%s}}], backendRefs: [{name: a, port: 80}]}]
""" % (n, n, n) for n, _ in names)
    path = env.write("m.yaml", """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: sluice
  listeners:
""" + listeners + routes + """---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: infra}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: a-1, namespace: infra, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
ports: [{name: "", port: %d}]
endpoints: [{addresses: [127.0.0.1]}]
""" % echo.port)
    rc, out, err, conds = translate(env, "-f", path, "--listen-host", "127.0.0.1")
    eq(rc, 0, "translate rc (%s)" % err)
    cfg = json.loads(out)
    cfg["workers"] = 1
    env.sluice(cfg)
    from harness import get
    for host, owner in (("bar.com", "empty-hostname"), ("bar.example.com", "wildcard-example-com"),
                        ("bar.foo.example.com", "wildcard-foo-example-com"),
                        ("abc.foo.example.com", "abc-foo-example-com")):
        for n, _ in names:
            want = 200 if n == owner else 404
            eq(get(port, "/" + n, host=host).status, want, "Host %s, path /%s" % (host, n))


def norm(v):
    return ",".join(p.strip() for p in v.split(","))


def test_conformance_skipped(env):
    """The conformance tests not taken (skipped.json) are printed as SKIP
    lines, and none of them has a case here."""
    with open(os.path.join(os.path.dirname(CASES), "skipped.json")) as f:
        skipped = json.load(f)["skipped"]
    check(skipped, "skipped.json lists the tests not taken")
    for s in skipped:
        check(s["test"] and s["reason"], "a skipped test has a name and a reason: %s" % s)
        check(not os.path.isdir(os.path.join(CASES, s["test"])), "%s is both skipped and a case" % s["test"])
        print("# SKIP %s: %s" % (s["test"], s["reason"]), flush=True)


def _make(name):
    def t(env):
        Case(env, name).run()
    t.__name__ = "test_conformance_" + name
    return t


for _n in sorted(os.listdir(CASES)) if os.path.isdir(CASES) else []:
    globals()["test_conformance_" + _n] = _make(_n)
