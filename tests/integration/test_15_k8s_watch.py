"""sluice-k8s watch (issue 17 part 2) against the test Kubernetes API server
(kube_api.py, which the official Python client accepts: test_14_kubeapi.py)
and a real sluice: an HTTPRoute created, changed and deleted on the API
reaches the gateway's routing within 1 s; a 410 Gone re-lists; a dropped
watch reconnects from its resourceVersion; the API server going away keeps
the gateway's config; a gateway restart gets the document again; a server
certificate the kubeconfig's CA did not sign is refused."""
import http.client
import os
import re
import signal
import ssl
import time

import certs
from harness import BUILD, TestFailure, check, eq, free_port, get, wait_for, wait_port
from kube_api import GW, KubeAPI

K8S = os.path.join(BUILD, "sluice-k8s")
TOKEN = "adm-secret"


class Rig:
    """An API server seeded with a Gateway and two Services (over two
    echo backends), a sluice with an admin API, and the watcher."""

    def __init__(self, env, cert="default", bookmark_interval=1.0, gone_mode="event", client_cert=False):
        self.env = env
        self.pki = certs.make(env)
        self.api = KubeAPI(self.pki, cert=cert, bookmark_interval=bookmark_interval, gone_mode=gone_mode,
                           token=None if client_cert else "test-token",
                           client_ca=self.pki.ca_file if client_cert else None).start()
        self.e1, self.e2 = env.echo("e1"), env.echo("e2")
        self.gwport, self.aport = free_port(), free_port()
        api = self.api
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        api.create({"apiVersion": GW + "/v1", "kind": "Gateway",
                    "metadata": {"name": "gw", "namespace": "default"},
                    "spec": {"gatewayClassName": "sluice",
                             "listeners": [{"name": "http", "port": self.gwport, "protocol": "HTTP"}]}})
        for name, e in (("web1", self.e1), ("web2", self.e2)):
            api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": e.port}]}})
            api.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": name + "-x", "namespace": "default",
                                     "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
                        "ports": [{"name": "http", "port": e.port, "protocol": "TCP"}]})
        self.cfg = env.config([], listeners=[{"name": "http-%d" % self.gwport,
                                              "address": "127.0.0.1:%d" % self.gwport}],
                              admin={"address": "127.0.0.1:%d" % self.aport, "token": TOKEN})
        self.sluice = self.start_sluice()
        self.kubeconfig = api.kubeconfig(os.path.join(env.tmp, "kubeconfig"),
                                         client_cert=self.pki["client"] if client_cert else None)
        self.watch = None

    def start_sluice(self):
        s = self.env.sluice(self.cfg)
        check(wait_port(self.aport, 5.0, s.proc), "admin port of sluice not up")
        return s

    def start_watch(self, extra=(), env=None, argv=None):
        self.watch = self.env.start(argv or [K8S, "watch", "--kubeconfig", self.kubeconfig,
                                             "--admin", "http://127.0.0.1:%d" % self.aport,
                                             "--admin-token", TOKEN, "--listen-host", "127.0.0.1"]
                                    + list(extra), "watch", env=env)
        return self.watch

    def puts(self):
        return len(re.findall(r"PUT /config: version", self.watch.stderr()))

    def wait_puts(self, n, timeout=5.0):
        ok = wait_for(lambda: self.puts() >= n, timeout)
        check(ok, "the watcher made %d PUTs, want %d: %s" % (self.puts(), n, self.watch.stderr()[-1500:]))

    def route(self, name, host, svc):
        return {"apiVersion": GW + "/v1", "kind": "HTTPRoute", "metadata": {"name": name, "namespace": "default"},
                "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                         "rules": [{"backendRefs": [{"name": svc, "port": 80}]}]}}

    def served(self, host):
        """The echo behind host on the gateway, or the status."""
        try:
            r = get(self.gwport, "/", host=host, timeout=2.0)
        except (OSError, TestFailure):
            return None
        return r.h("x-upstream") if r.status == 200 else r.status

    def until(self, host, want, limit, what):
        """Waits (up to limit + 2 s) for host to serve want: the seconds it took,
        failing when more than limit."""
        t0 = time.monotonic()
        ok = wait_for(lambda: self.served(host) == want, limit + 2.0, interval=0.01)
        dt = time.monotonic() - t0
        check(ok, "%s: %s serves %r, want %r; watcher: %s" % (what, host, self.served(host), want,
                                                              self.watch.stderr()[-1500:]))
        check(dt <= limit, "%s took %.3f s (limit %.1f s)" % (what, dt, limit))
        return dt

    def close(self):
        self.api.stop()


def lists(api, plural):
    return sum(1 for m, p in api.requests if m == "GET" and p.split("?")[0].endswith("/" + plural)
               and "watch=" not in p)


def test_k8s_watch_route_lifecycle(env):
    """Create, change and delete an HTTPRoute: each reaches routing in 1 s;
    a change translation ignores is not PUT; bookmarks are asked for."""
    rig = Rig(env)
    try:
        rig.start_watch()
        rig.wait_puts(1)
        eq(rig.served("a.example.test"), 404, "no route yet")
        times = []
        rig.api.create(rig.route("r1", "a.example.test", "web1"))
        times.append(rig.until("a.example.test", "e1", 1.0, "create"))
        rig.api.update(rig.route("r1", "a.example.test", "web2"))
        times.append(rig.until("a.example.test", "e2", 1.0, "change"))
        rig.api.delete("HTTPRoute", "default", "r1")
        times.append(rig.until("a.example.test", 404, 1.0, "delete"))
        n = rig.puts()
        eq(n, 4, "PUTs for start, create, change, delete")
        # an object translation does not use (a Secret nobody refers to): no PUT
        rig.api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}})
        time.sleep(0.4)
        eq(rig.puts(), n, "PUTs after an unrelated change")
        # a thread's WATCH follows its LIST at once, but a loaded host may not
        # have logged the last one yet: wait for it, then count exactly
        nwatch = lambda: sum(1 for m, p in list(rig.api.requests) if "watch=true" in p)
        wait_for(lambda: nwatch() >= 7, 3.0)
        watches = [p for m, p in rig.api.requests if "watch=true" in p]
        eq(len(watches), 7, "one watch per resource")
        check(all("allowWatchBookmarks=true" in p and re.search(r"resourceVersion=\d+", p) for p in watches),
              "watches ask for bookmarks from the listed resourceVersion: %s" % watches)
        check(rig.api.bookmarks_sent > 0 or wait_for(lambda: rig.api.bookmarks_sent > 0, 2.0),
              "no bookmark was sent")
        env.watch_times = times
        print("# watch: create %.0f ms, change %.0f ms, delete %.0f ms" % tuple(t * 1000 for t in times))
    finally:
        rig.close()


def test_k8s_watch_410_relists(env):
    """A watch from a compacted resourceVersion (ERROR event 410, then HTTP
    410) lists again and goes on."""
    for mode in ("event", "http"):
        rig = Rig(env, bookmark_interval=60.0, gone_mode=mode)
        try:
            rig.start_watch()
            rig.wait_puts(1)
            # the first PUT can go before every thread has its WATCH open
            check(wait_for(lambda: rig.api.watch_count() == 7, 3.0),
                  "watches open: %d of 7" % rig.api.watch_count())
            before = lists(rig.api, "httproutes")
            eq(before, 1, "LISTs of httproutes at the start")
            # history moves on and is compacted while the watches are down
            rig.api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}})
            rig.api.compact()
            check(rig.api.drop_watches() >= 6, "watches to drop")
            ok = wait_for(lambda: lists(rig.api, "httproutes") > before, 3.0)
            check(ok, "%s: no re-LIST after 410: %s" % (mode, rig.watch.stderr()[-1500:]))
            check("410 Gone" in rig.watch.stderr(), "the 410 is logged")
            rig.api.create(rig.route("r1", "a.example.test", "web1"))
            rig.until("a.example.test", "e1", 1.0, "create after a re-list (%s)" % mode)
        finally:
            rig.close()
        rig.watch.signal(signal.SIGTERM)
        eq(rig.watch.wait(5.0), 0, "watch exit status on SIGTERM")


def test_k8s_watch_reconnects(env):
    """A dropped watch resumes from its resourceVersion (no re-LIST); the API
    server going away keeps the gateway's last config; back again, changes flow."""
    rig = Rig(env, bookmark_interval=0.3)
    try:
        rig.api.create(rig.route("r1", "a.example.test", "web1"))
        rig.start_watch()
        rig.until("a.example.test", "e1", 5.0, "start")
        before = lists(rig.api, "httproutes")
        rig.api.drop_watches()
        ok = wait_for(lambda: rig.api.watch_count() == 7, 3.0)
        check(ok, "watches back: %d of 7: %s" % (rig.api.watch_count(), rig.watch.stderr()[-1000:]))
        eq(lists(rig.api, "httproutes"), before, "LISTs after a dropped watch")
        rig.api.create(rig.route("r2", "b.example.test", "web2"))
        rig.until("b.example.test", "e2", 1.0, "create after a reconnect")
        # the API server goes away: the gateway keeps routing, nothing is PUT
        n = rig.puts()
        rig.api.stop()
        time.sleep(1.0)
        eq(rig.served("a.example.test"), "e1", "routing while the API server is away")
        eq(rig.served("b.example.test"), "e2", "routing while the API server is away")
        eq(rig.puts(), n, "PUTs while the API server is away")
        check(rig.watch.alive(), "the watcher died: %s" % rig.watch.stderr()[-800:])
        # it comes back (history kept, so the watches resume) and changes flow
        rig.api.start()
        rig.api.delete("HTTPRoute", "default", "r1")
        rig.until("a.example.test", 404, 6.0, "delete once the API server is back")
    finally:
        rig.close()


def test_k8s_watch_gateway_restart(env):
    """A gateway that restarts (config version back to 1) gets the document again."""
    rig = Rig(env)
    try:
        rig.api.create(rig.route("r1", "a.example.test", "web1"))
        rig.start_watch()
        rig.until("a.example.test", "e1", 5.0, "start")
        n = rig.puts()
        rig.sluice.proc.signal(signal.SIGTERM)
        eq(rig.sluice.proc.wait(8.0), 0, "sluice exit on SIGTERM")
        # the restarted gateway runs its own file (no route) until the re-PUT
        rig.sluice = rig.start_sluice()
        rig.until("a.example.test", "e1", 2.5, "re-PUT after a gateway restart")
        rig.wait_puts(n + 1)
        check("went back" in rig.watch.stderr(), "the restart is logged")
        time.sleep(1.2)
        eq(rig.puts(), n + 1, "PUTs once the restarted gateway has the document")
    finally:
        rig.close()


def test_k8s_watch_wrong_server_certificate(env):
    """A server certificate not signed by the kubeconfig's CA is refused:
    no request reaches the server and nothing is PUT."""
    rig = Rig(env, cert="self")
    try:
        w = rig.start_watch()
        ok = wait_for(lambda: "certificate is refused" in w.stderr(), 5.0)
        check(ok, "no refusal logged: %s" % w.stderr()[-800:])
        time.sleep(0.3)
        eq(rig.api.requests, [], "requests that reached the API server")
        check(rig.api.handshake_failures, "the server saw no failed handshake")
        eq(rig.puts(), 0, "PUTs")
        check(w.alive(), "the watcher gave up instead of retrying")
    finally:
        rig.close()


def test_k8s_watch_in_cluster(env):
    """--in-cluster: the service-account token and CA files, the
    KUBERNETES_SERVICE_HOST/PORT environment."""
    rig = Rig(env)
    try:
        sa = os.path.join(env.tmp, "sa")
        os.makedirs(sa)
        with open(os.path.join(sa, "token"), "w") as f:
            f.write(rig.api.token + "\n")
        with open(rig.pki.ca_file) as src, open(os.path.join(sa, "ca.crt"), "w") as f:
            f.write(src.read())
        e = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(rig.api.port),
                 SLUICE_K8S_SERVICEACCOUNT_DIR=sa)
        rig.api.create(rig.route("r1", "a.example.test", "web2"))
        rig.start_watch(env=e, argv=[K8S, "watch", "--in-cluster", "--admin", "http://127.0.0.1:%d" % rig.aport,
                                     "--admin-token", TOKEN, "--listen-host", "127.0.0.1"])
        rig.until("a.example.test", "e2", 5.0, "in-cluster start")
    finally:
        rig.close()


def test_k8s_watch_client_certificate(env):
    """A kubeconfig user with a client certificate (and no token): the API
    server that takes only certificates serves the watcher."""
    rig = Rig(env, client_cert=True)
    try:
        rig.api.create(rig.route("r1", "a.example.test", "web1"))
        rig.start_watch()
        rig.until("a.example.test", "e1", 5.0, "start with a client certificate")
        check(not any("Unauthorized" in l for l in rig.watch.stderr().splitlines()), "a 401 was logged")
        # the same server refuses a client with neither a certificate nor a token
        ctx = ssl.create_default_context(cafile=rig.pki.ca_file)
        c = http.client.HTTPSConnection("127.0.0.1", rig.api.port, context=ctx, timeout=5)
        c.request("GET", "/api/v1/services")
        eq(c.getresponse().status, 401, "a request without credentials")
        c.close()
    finally:
        rig.close()


def test_k8s_watch_bad_command_lines(env):
    """Bad arguments and kubeconfigs: exit 1 with a clear message."""
    pki = certs.make(env)
    api = KubeAPI(pki)  # not started: only its kubeconfig writer is used
    api.port = 1
    good = api.kubeconfig(os.path.join(env.tmp, "kc"))
    insecure = env.write("insecure.yaml", "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                         "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1', "
                         "insecure-skip-tls-verify: true}}]\n"
                         "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {}}]\n")
    noca = env.write("noca.yaml", "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                     "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                     "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {}}]\n")
    plain = env.write("plain.yaml", "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                      "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
                      "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {}}]\n")
    cases = [
        ([], "usage"),
        (["--kubeconfig", good], "usage"),
        (["--kubeconfig", good, "--in-cluster", "--admin", "http://127.0.0.1:1"], "usage"),
        (["--kubeconfig", good, "--admin", "https://127.0.0.1:1"], "https to the admin API is not supported"),
        (["--kubeconfig", good, "--admin", "127.0.0.1:1"], "expected http://HOST:PORT"),
        (["--kubeconfig", good, "--admin", "http://127.0.0.1:1", "--bogus"], "--bogus: unknown"),
        (["--kubeconfig", os.path.join(env.tmp, "missing"), "--admin", "http://127.0.0.1:1"], "cannot be read"),
        (["--kubeconfig", insecure, "--admin", "http://127.0.0.1:1"], "insecure-skip-tls-verify is refused"),
        (["--kubeconfig", noca, "--admin", "http://127.0.0.1:1"], "no certificate-authority"),
        (["--kubeconfig", plain, "--admin", "http://127.0.0.1:1"], "only https://"),
        (["--in-cluster", "--admin", "http://127.0.0.1:1"], "KUBERNETES_SERVICE_HOST"),
    ]
    e = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    for argv, want in cases:
        rc, out, err = env.run([K8S, "watch"] + argv, env=e)
        eq(rc, 1, "exit status of watch %s" % argv)
        check(want in err, "watch %s: stderr %r lacks %r" % (argv, err[-400:], want))


def _parent(api, name):
    o = api.get("HTTPRoute", "default", name) or {}
    ps = [p for p in o.get("status", {}).get("parents", []) if p.get("controllerName") == "sluice.dev/gateway-controller"]
    return ps, o


def _conds(entry):
    return {c["type"]: (c["status"], c["reason"], c["observedGeneration"]) for c in entry["conditions"]}


def test_k8s_watch_status_written_back(env):
    """HTTPRoute parents (Accepted, ResolvedRefs) and Gateway status
    (Accepted, Programmed, addresses, listeners) are PATCHed through the
    status subresource, follow a spec change, and settle (no PATCH loop)."""
    rig = Rig(env)
    api = rig.api
    try:
        api.create(rig.route("r1", "a.example.test", "web1"))
        api.create(rig.route("r2", "b.example.test", "nope"))
        other = rig.route("r3", "c.example.test", "web1")
        other["spec"]["parentRefs"] = [{"name": "someone-elses"}]
        api.create(other)
        # another controller's entry on r1 is kept
        api._write("PATCH", "HTTPRoute", "v1", "default", "r1", "status",
                   {"status": {"parents": [{"parentRef": {"name": "x"}, "controllerName": "example.com/other",
                                            "conditions": []}]}})
        rig.start_watch(["--gateway-address", "192.0.2.7"])
        ok = wait_for(lambda: _parent(api, "r1")[0] and _parent(api, "r2")[0], 5.0)
        check(ok, "no route status written: %s" % rig.watch.stderr()[-1500:])
        p1, o1 = _parent(api, "r1")
        eq(len(p1), 1, "our parents on r1")
        eq(p1[0]["parentRef"], {"name": "gw"}, "parentRef")
        eq(_conds(p1[0]), {"Accepted": ("True", "Accepted", 1), "ResolvedRefs": ("True", "ResolvedRefs", 1)},
           "r1 conditions")
        eq([p["controllerName"] for p in o1["status"]["parents"]],
           ["example.com/other", "sluice.dev/gateway-controller"], "another controller's parent kept")
        p2, _ = _parent(api, "r2")
        eq(_conds(p2[0])["ResolvedRefs"][:2], ("False", "BackendNotFound"), "r2 ResolvedRefs")
        eq(_parent(api, "r3")[1].get("status"), None, "a route of another Gateway gets no status")
        ok = wait_for(lambda: "status" in api.get("Gateway", "default", "gw"), 2.0)
        gs = api.get("Gateway", "default", "gw").get("status", {})
        eq(gs.get("addresses"), [{"type": "IPAddress", "value": "192.0.2.7"}], "Gateway addresses")
        eq({c["type"]: c["status"] for c in gs.get("conditions", [])}, {"Accepted": "True", "Programmed": "True"},
           "Gateway conditions")
        ls = gs.get("listeners", [])
        eq([(l["name"], l["attachedRoutes"]) for l in ls], [("http", 2)], "listener attachedRoutes")
        eq({c["type"]: c["status"] for c in ls[0]["conditions"]},
           {"Accepted": "True", "ResolvedRefs": "True", "Programmed": "True"}, "listener conditions")
        # settled: the PATCHes' own events write nothing more
        time.sleep(0.5)
        n = api.count("PATCH", "/status")
        time.sleep(1.0)
        eq(api.count("PATCH", "/status"), n, "status PATCHes once settled")
        eq(n, 3, "status PATCHes (r1, r2, gw)")
        # a spec change: observedGeneration follows
        t0 = time.monotonic()
        api.update(rig.route("r2", "b.example.test", "web2"))
        ok = wait_for(lambda: _conds(_parent(api, "r2")[0][0]) ==
                      {"Accepted": ("True", "Accepted", 2), "ResolvedRefs": ("True", "ResolvedRefs", 2)}, 3.0)
        check(ok, "r2 status after the fix: %s" % _parent(api, "r2")[0])
        check(time.monotonic() - t0 < 1.0, "status followed in %.2f s" % (time.monotonic() - t0))
        rig.until("b.example.test", "e2", 1.0, "fixed route")
    finally:
        rig.close()


def _rules():
    import yaml  # python3-yaml, a dependency of python3-kubernetes
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "deploy", "k8s", "rbac.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    role = [d for d in docs if d["kind"] == "ClusterRole"][0]
    return role["rules"]


def test_k8s_watch_deploy_rbac_covers_it(env):
    """deploy/k8s/rbac.yaml allows every request the watcher makes (list,
    watch, status patch) and nothing that writes an object itself."""
    rules = _rules()
    allowed = set()
    for r in rules:
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for v in r["verbs"]:
                    allowed.add((g, res, v))
    writes = {(g, res, v) for g, res, v in allowed if v not in ("get", "list", "watch")}
    eq(writes, {("gateway.networking.k8s.io", "gateways/status", "patch"),
                ("gateway.networking.k8s.io", "httproutes/status", "patch")}, "write permissions")
    rig = Rig(env)
    try:
        rig.api.create(rig.route("r1", "a.example.test", "web1"))
        rig.start_watch(["--gateway-address", "192.0.2.7"])
        rig.until("a.example.test", "e1", 5.0, "start")
        wait_for(lambda: rig.api.count("PATCH", "/gateways/gw/status") > 0 and
                 rig.api.count("PATCH", "/httproutes/r1/status") > 0, 3.0)
        seen = set()
        for m, p in rig.api.requests:
            parts = [x for x in p.split("?")[0].split("/") if x]
            group = "" if parts[0] == "api" else parts[1]
            rest = parts[2:] if parts[0] == "api" else parts[3:]
            if rest[:1] == ["namespaces"] and len(rest) >= 3:
                rest = rest[2:]
            res = rest[0] + ("/" + rest[2] if len(rest) > 2 else "")
            verb = {"GET": "watch" if "watch=true" in p else ("get" if len(rest) > 1 else "list"),
                    "PATCH": "patch"}.get(m, m.lower())
            seen.add((group, res, verb))
        missing = seen - allowed
        eq(missing, set(), "requests rbac.yaml does not allow")
        check(("gateway.networking.k8s.io", "httproutes/status", "patch") in seen and
              ("", "services", "watch") in seen, "the requests seen: %s" % sorted(seen))
    finally:
        rig.close()
