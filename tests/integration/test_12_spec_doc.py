"""The SPEC's own example configuration document (SPEC "The configuration
document") passes `sluice --check` and starts, and its first route works end
to end: TLS listeners (a certificate from files and one inline), the admin
API with its token, an upstream reached over TLS with SNI, verification
against a CA file and HTTPS health probes, one target given by IP and one
by DNS name, weighted backends, header matches, rewrite and header edits,
a redirect and a fixed response.

The document is copied here verbatim (SPEC_DOC); when ../shared/SPEC.md is
beside the repository the copy must equal it, so the test follows the SPEC.
What the test changes to run it: ports (free ones), file names (absolute,
in the temp dir, files made with the openssl command line tool), the inline
PEM placeholders (real PEM), a top-level "dns" pointing at a test DNS
server that answers api.internal, and the upstream "api-canary" the example
routes to but does not define (an unknown upstream is an error)."""
import http.server
import json
import os
import re
import ssl
import subprocess
import threading

from harness import SLUICE, build_request, check, eq, free_port, request, wait_for, Conn
from test_12_dns import DnsServer
from test_8_admin import start

SPEC_DOC = r"""{
  "workers": 0,
  "listeners": [
    { "name": "http", "address": "127.0.0.1:8080" },
    { "name": "https", "address": "127.0.0.1:8443",
      "tls": { "certificates": [ { "cert_file": "site.pem", "key_file": "site.key" },
                                 { "cert_pem": "-----BEGIN...", "key_pem": "-----BEGIN..." } ],
               "ktls": true } }
  ],
  "admin": { "address": "127.0.0.1:9901", "token": "change-me" },
  "limits": { "max_header_bytes": 16384, "max_body_bytes": 0, "max_connections": 0 },
  "timeouts": { "client_header_ms": 10000, "client_idle_ms": 60000, "drain_ms": 10000 },
  "access_log": "stdout",
  "upstreams": [
    { "name": "api",
      "targets": [ { "address": "127.0.0.1:8001", "weight": 1 },
                   { "address": "api.internal:8002" } ],
      "balance": "round_robin",
      "tls": { "sni": "api.internal", "verify": true, "ca_file": "ca.pem" },
      "pool": { "max_idle_per_target": 64, "idle_timeout_ms": 60000 },
      "health": { "path": "/healthz", "interval_ms": 1000, "timeout_ms": 500,
                  "rise": 2, "fall": 2, "expect_status": [200, 399] },
      "timeouts": { "connect_ms": 1000, "response_header_ms": 30000, "idle_ms": 300000 },
      "retries": 1 }
  ],
  "routes": [
    { "name": "api",
      "match": { "listeners": ["http", "https"],
                 "hosts": ["api.example.com", "*.example.com"],
                 "path": { "prefix": "/api" },
                 "methods": ["GET", "POST"],
                 "headers": [ { "name": "x-env", "value": "canary" } ],
                 "query": [ { "name": "v", "value": "2" } ] },
      "rewrite": { "strip_prefix": true },
      "request_headers":  { "set": { "x-a": "1" }, "add": { "x-b": "2" }, "remove": ["x-c"] },
      "response_headers": { "set": {}, "add": {}, "remove": [] },
      "backends": [ { "upstream": "api", "weight": 90 }, { "upstream": "api-canary", "weight": 10 } ] },
    { "name": "legacy", "match": { "path": { "exact": "/old" } },
      "redirect": { "scheme": "https", "host": "new.example.com", "port": 8443,
                    "path": "/new", "status": 301 } },
    { "name": "ping", "match": { "path": { "exact": "/ping" } },
      "respond": { "status": 200, "body": "pong\n", "content_type": "text/plain" } }
  ]
}"""

SPEC_MD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "SPEC.md")


def spec_block():
    """The first JSON block of the SPEC's configuration section, or None."""
    try:
        with open(SPEC_MD) as f:
            text = f.read()
    except OSError:
        return None
    sec = text.split("## The configuration document", 1)
    if len(sec) < 2:
        return None
    m = re.search(r"```json\n(.*?)\n```", sec[1], re.S)
    return m.group(1) if m else None


def openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    check(p.returncode == 0, "openssl %s: %s" % (args[0], p.stderr.decode()[-300:]))


def make_pki(d):
    """ca.pem, and site.pem/site.key signed by it for api.internal,
    *.example.com and 127.0.0.1 (ECDSA: quick to make)."""
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl(["genpkey"] + ec + ["-out", "ca.key"], d)
    openssl(["req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "30",
             "-subj", "/CN=spec example CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    openssl(["genpkey"] + ec + ["-out", "site.key"], d)
    openssl(["req", "-new", "-key", "site.key", "-out", "site.csr", "-subj", "/CN=api.internal"], d)
    with open(os.path.join(d, "site.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:api.internal,DNS:api.example.com,DNS:*.example.com,IP:127.0.0.1\n")
    openssl(["x509", "-req", "-in", "site.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-set_serial", "7", "-days", "30", "-sha256", "-extfile", "site.ext",
             "-out", "site.pem"], d)


class TlsBackend:
    """An HTTPS server answering every request with 200 and a JSON body: its
    id, the method, the path and the request headers."""

    def __init__(self, ident, d):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "site.pem"), os.path.join(d, "site.key"))
        self.sni = []
        ctx.sni_callback = lambda s, name, c: self.sni.append(name)
        me = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                me.paths.append(self.path)
                body = json.dumps({"id": ident, "method": self.command, "path": self.path,
                                   "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.paths = []
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_spec_example_document(env):
    block = spec_block()
    if block is not None:
        eq(block, SPEC_DOC, "the SPEC's example document and this test's copy")
    d = env.tmp
    make_pki(d)
    dns = DnsServer()
    backends = [TlsBackend(i, d) for i in ("api-1", "api-2", "canary")]
    try:
        doc = json.loads(SPEC_DOC)
        ports = {"http": free_port(), "https": free_port(), "admin": free_port()}
        doc["listeners"][0]["address"] = "127.0.0.1:%d" % ports["http"]
        doc["listeners"][1]["address"] = "127.0.0.1:%d" % ports["https"]
        certs = doc["listeners"][1]["tls"]["certificates"]
        certs[0] = {"cert_file": os.path.join(d, "site.pem"), "key_file": os.path.join(d, "site.key")}
        with open(os.path.join(d, "site.pem")) as f:
            pem = f.read()
        with open(os.path.join(d, "site.key")) as f:
            key = f.read()
        certs[1] = {"cert_pem": pem, "key_pem": key}
        doc["admin"]["address"] = "127.0.0.1:%d" % ports["admin"]
        doc["access_log"] = os.path.join(d, "access.log")
        api = doc["upstreams"][0]
        api["targets"][0]["address"] = "127.0.0.1:%d" % backends[0].port
        api["targets"][1]["address"] = "api.internal:%d" % backends[1].port
        api["tls"]["ca_file"] = os.path.join(d, "ca.pem")
        canary = json.loads(json.dumps(api))
        canary["name"] = "api-canary"
        canary["targets"] = [{"address": "127.0.0.1:%d" % backends[2].port}]
        doc["upstreams"].append(canary)
        doc["dns"] = {"servers": [dns.addr]}
        dns.set("api.internal", ["127.0.0.1"], ttl=60)

        path = env.write("spec.json", doc)
        rc, out, err = env.run([SLUICE, "--check", "--config", path])
        eq(rc, 0, "sluice --check of the SPEC's example (%s)" % (out + err)[-400:])

        s, a = start(env, doc)
        eq(a.token, "change-me", "the admin token")
        eq(request(ports["http"], "GET", "/ping").body, b"pong\n", "/ping on http")
        cctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        with Conn(ports["https"], tls=cctx, sni="api.example.com") as c:
            c.send(build_request("GET", "/ping"))
            eq(c.read_response().body, b"pong\n", "/ping on https")
        r = request(ports["http"], "GET", "/old")
        eq(r.status, 301, "/old redirects")
        eq(r.h("location"), "https://new.example.com:8443/new", "the redirect's Location")

        # every target up by its HTTPS probe (the first probe decides)
        def all_up():
            st = a.json_ok("GET", "/status")
            return all(t["healthy"] for u in st["upstreams"] for t in u["targets"])
        check(wait_for(all_up, 5.0, 0.05), "targets not healthy: %r" % a.json_ok("GET", "/status"))
        st = a.json_ok("GET", "/status")
        names = [t["address"] for t in st["upstreams"][0]["targets"]]
        eq(names, ["127.0.0.1:%d" % backends[0].port, "api.internal:%d (127.0.0.1)" % backends[1].port],
           "the api targets: an IP and a name with its address")
        check(any(p == "/healthz" for b in backends for p in b.paths), "HTTPS probes of /healthz")

        seen = {}
        for _ in range(30):
            r = request(ports["http"], "GET", "/api/items?v=2", host="api.example.com",
                        headers=[("x-env", "canary"), ("x-c", "gone")])
            eq(r.status, 200, "the api route (body %r)" % r.body[:200])
            j = r.json()
            seen[j["id"]] = seen.get(j["id"], 0) + 1
            eq(j["path"], "/items?v=2", "strip_prefix keeps the query")
            eq((j["headers"].get("x-a"), j["headers"].get("x-b"), j["headers"].get("x-c")),
               ("1", "2", None), "request header edits")
        check(seen.get("api-1", 0) > 0 and seen.get("api-2", 0) > 0,
              "both api targets (IP and DNS name) get traffic: %r" % seen)
        check(seen.get("api-1", 0) + seen.get("api-2", 0) >= 20, "api gets about 90%%: %r" % seen)
        check(all(b.sni for b in backends) and all(n == "api.internal" for b in backends for n in b.sni),
              "SNI is the configured api.internal: %r" % [b.sni for b in backends])
        r = request(ports["http"], "GET", "/api/items?v=2", host="api.example.com")
        eq(r.status, 404, "without the x-env header the route does not match")
    finally:
        for b in backends:
            b.close()
        dns.close()
