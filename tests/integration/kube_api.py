"""A test Kubernetes API server that speaks the real protocol over HTTPS.

It serves, from an in-memory store, the resources sluice-k8s reads:
gateway.networking.k8s.io/v1 Gateway, HTTPRoute, GatewayClass and
ReferenceGrant (v1 and v1beta1, one storage), core v1 Service, Secret,
Namespace and discovery.k8s.io/v1 EndpointSlice.  What it does the way the
real API server does:

  - one cluster-wide resourceVersion counter; every write bumps it and is
    recorded as a watch event (ADDED, MODIFIED, DELETED);
  - LIST (namespaced or across namespaces) answers a *List with
    metadata.resourceVersion; resourceVersion + resourceVersionMatch=Exact
    older than the compacted revision is 410 Gone;
  - WATCH (?watch=true): a chunked stream of newline-separated JSON events
    after the given resourceVersion (none or "0": synthetic ADDED events for
    what exists, then changes); allowWatchBookmarks=true adds BOOKMARK events
    (every bookmark_interval seconds and on bookmark_now()); a
    resourceVersion older than the compacted revision answers an ERROR event
    whose object is a Status with code 410 (gone_mode="event", what a
    current API server does) or an HTTP 410 (gone_mode="http");
    timeoutSeconds ends the stream;
  - GET, POST (409 AlreadyExists), PUT (409 Conflict on a stale
    resourceVersion), DELETE, PATCH (merge patch; strategic merge patch is
    taken as a merge patch, which is the same for the fields used here);
  - the status subresource: PUT/PATCH .../status changes only .status, and
    writes to the main resource leave .status alone; metadata.generation
    goes up when anything outside metadata and status changes;
  - authentication: a bearer token, or (client_ca given) a client
    certificate signed by that CA; anything else is 401.

Tests drive it directly: create()/update()/delete() write like a client
would, compact() forgets history (older watches get 410), drop_watches()
cuts every open watch connection, stop()/start() take the server away and
bring it back on the same port, requests lists what was asked.
"""
import base64
import copy
import datetime
import json
import socket
import socketserver
import ssl
import threading
import time
import uuid
import urllib.parse
from http.server import BaseHTTPRequestHandler

GW = "gateway.networking.k8s.io"

# kind -> (group, versions, plural, namespaced, has status subresource)
RESOURCES = {
    "Gateway": (GW, ("v1",), "gateways", True, True),
    "HTTPRoute": (GW, ("v1",), "httproutes", True, True),
    "GatewayClass": (GW, ("v1",), "gatewayclasses", False, True),
    "ReferenceGrant": (GW, ("v1", "v1beta1"), "referencegrants", True, False),
    "Service": ("", ("v1",), "services", True, True),
    "Secret": ("", ("v1",), "secrets", True, False),
    "Namespace": ("", ("v1",), "namespaces", False, True),
    "EndpointSlice": ("discovery.k8s.io", ("v1",), "endpointslices", True, False),
}
BY_PATH = {(g, p): k for k, (g, _, p, _, _) in RESOURCES.items()}


def api_version(group, version):
    return "%s/%s" % (group, version) if group else version


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def qbool(v):
    """A boolean query parameter the way the API server parses it (Go's
    strconv.ParseBool: the official Python client sends "True")."""
    return v in ("1", "t", "T", "true", "TRUE", "True")


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Gone(Exception):
    pass


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    api = None

    def finish_request(self, request, client_address):
        # the TLS handshake runs in the connection's own thread
        try:
            # responses go out as head then body: without this, Nagle holds
            # the body for the client's delayed ACK (40 ms a request)
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request.settimeout(5.0)
            tls = self.api.ctx.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (OSError, ssl.SSLError) as e:
            self.api.handshake_failures.append(str(e))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # a client that went away is not an error here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    # ------------------------------------------------------------ plumbing
    @property
    def api(self):
        return self.server.api

    def _send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code, reason, message):
        self._send_json(code, status_obj(code, reason, message))

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return ValueError("request body is not JSON")

    def _authorized(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.api.tokens:
            return True
        if self.api.client_ca:
            try:
                if self.connection.getpeercert():
                    return True
            except (OSError, ValueError):
                pass
        return False

    def _route(self):
        """(kind, version, namespace, name, subresource, query) or None."""
        u = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        parts = [p for p in u.path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        ns = None
        # /namespaces/NS/PLURAL/..., but /namespaces[/NAME[/status]] is the Namespace itself
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest:
            return None
        kind = BY_PATH.get((group, rest[0]))
        if kind is None or version not in RESOURCES[kind][1]:
            return None
        namespaced = RESOURCES[kind][3]
        if ns is not None and not namespaced:
            return None
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) >= 3 else None
        if len(rest) > 3 or (sub is not None and sub != "status"):
            return None
        if name is not None and namespaced and ns is None:
            return None
        return kind, version, ns, name, sub, q

    # ------------------------------------------------------------ verbs
    def _dispatch(self, method):
        self.api._log(method, self.path)
        if not self._authorized():
            return self._error(401, "Unauthorized", "Unauthorized")
        if self.path.split("?")[0] == "/version":
            return self._send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-sluice-test"})
        r = self._route()
        if r is None:
            return self._error(404, "NotFound", "the server could not find the requested resource")
        kind, version, ns, name, sub, q = r
        api = self.api
        if method == "GET" and name is None:
            if qbool(q.get("watch")):
                return self._watch(kind, version, ns, q)
            try:
                items, rv = api._list(kind, version, ns, q)
            except Gone as e:
                return self._error(410, "Expired", str(e))
            group = RESOURCES[kind][0]
            return self._send_json(200, {"kind": kind + "List", "apiVersion": api_version(group, version),
                                         "metadata": {"resourceVersion": str(rv)}, "items": items})
        body = None
        if method in ("POST", "PUT", "PATCH"):
            body = self._body()
            if isinstance(body, ValueError) or not isinstance(body, dict):
                return self._error(400, "BadRequest", "the request body is not a JSON object")
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if method == "PATCH" and ctype not in ("application/merge-patch+json",
                                                   "application/strategic-merge-patch+json"):
                return self._error(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - "
                                   "accepted media types include: application/merge-patch+json, "
                                   "application/strategic-merge-patch+json")
        code, obj = api._write(method, kind, version, ns, name, sub, body)
        self._send_json(code, obj)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ------------------------------------------------------------ watch
    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, kind, version, ns, q):
        api = self.api
        try:
            start = api._watch_start(kind, version, ns, q.get("resourceVersion", ""))
        except Gone as e:
            if api.gone_mode == "http":
                return self._error(410, "Expired", str(e))
            start = None
            gone = str(e)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if start is None:
            self._chunk(json.dumps({"type": "ERROR", "object": status_obj(410, "Expired", gone)}).encode() + b"\n")
            self._chunk(b"")
            return
        initial, cursor = start
        bookmarks = qbool(q.get("allowWatchBookmarks"))
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        t_end = time.monotonic() + timeout if timeout else None
        group = RESOURCES[kind][0]
        av = api_version(group, version)
        me = {"sock": self.connection, "kind": kind, "dropped": False}
        with api.cond:
            api.watches.append(me)
            bm_seen = api.bookmark_gen
        try:
            for obj in initial:
                self._chunk(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            next_bm = time.monotonic() + api.bookmark_interval
            while True:
                with api.cond:
                    while True:
                        if me["dropped"] or api.stopping:
                            return
                        now = time.monotonic()
                        evs = []
                        for e in reversed(api.log):  # the log is in resourceVersion order
                            if e[0] <= cursor:
                                break
                            evs.append(e)
                        evs.reverse()
                        force_bm = bookmarks and api.bookmark_gen != bm_seen
                        if evs or force_bm or (bookmarks and now >= next_bm) or (t_end and now >= t_end):
                            break
                        wait = next_bm - now if bookmarks else 1.0
                        if t_end:
                            wait = min(wait, t_end - now)
                        api.cond.wait(max(0.005, min(wait, 1.0)))
                    bm_seen = api.bookmark_gen
                    rv_now = api.rv
                out = []
                for rv, typ, k, obj in evs:
                    cursor = rv
                    if k != kind or (ns is not None and obj["metadata"].get("namespace") != ns):
                        continue
                    o = copy.deepcopy(obj)
                    o["apiVersion"] = av
                    out.append({"type": typ, "object": o})
                if bookmarks and (force_bm or time.monotonic() >= next_bm):
                    cursor = max(cursor, rv_now)
                    out.append({"type": "BOOKMARK", "object": {
                        "kind": kind, "apiVersion": av,
                        "metadata": {"resourceVersion": str(cursor)}}})
                    next_bm = time.monotonic() + api.bookmark_interval
                    api.bookmarks_sent += 1
                for e in out:
                    self._chunk(json.dumps(e).encode() + b"\n")
                if t_end and time.monotonic() >= t_end:
                    self._chunk(b"")
                    return
        except OSError:
            self.close_connection = True
        finally:
            with api.cond:
                if me in api.watches:
                    api.watches.remove(me)
            if me["dropped"]:
                self.close_connection = True


class KubeAPI:
    """The server.  pki is a certs.Pki; cert names the serving certificate."""

    def __init__(self, pki, cert="default", token="test-token", client_ca=None,
                 bookmark_interval=1.0, gone_mode="event"):
        self.pki = pki
        self.cert = cert
        self.tokens = {token} if token else set()
        self.token = token
        self.client_ca = client_ca
        self.bookmark_interval = bookmark_interval
        self.gone_mode = gone_mode
        self.cond = threading.Condition()
        self.store = {}  # (kind, ns, name) -> object (apiVersion of its first version)
        self.log = []  # (rv, type, kind, object copy)
        self.rv = 100
        self.compacted = 0
        self.watches = []
        self.bookmark_gen = 0
        self.bookmarks_sent = 0
        self.requests = []  # (method, path)
        self.handshake_failures = []
        self.stopping = False
        self.port = None
        self.server = None
        self.thread = None
        self._make_ctx()

    def _make_ctx(self):
        c = self.pki[self.cert]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(c.cert_file, c.key_file)
        if self.client_ca:
            ctx.load_verify_locations(self.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        self.ctx = ctx

    # ------------------------------------------------------------ lifecycle
    def start(self):
        """Listen (again, on the same port after stop())."""
        self.stopping = False
        srv = _Server(("127.0.0.1", self.port or 0), _Handler, bind_and_activate=True)
        srv.api = self
        self.server = srv
        self.port = srv.server_address[1]
        self.thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stop listening and cut every connection (the store is kept)."""
        if not self.server:
            return
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.drop_watches()
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def kubeconfig(self, path, token=None, client_cert=None, ca_file=None):
        """Write a kubeconfig for this server (CA data inline, a token or a
        client certificate) and return its path."""
        with open(ca_file or self.pki.ca_file, "rb") as f:
            ca = base64.b64encode(f.read()).decode()
        user = {}
        if client_cert:
            with open(client_cert.cert_file, "rb") as f:
                user["client-certificate-data"] = base64.b64encode(f.read()).decode()
            with open(client_cert.key_file, "rb") as f:
                user["client-key-data"] = base64.b64encode(f.read()).decode()
        else:
            user["token"] = token or self.token
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
               "clusters": [{"name": "test", "cluster": {"server": self.url,
                                                         "certificate-authority-data": ca}}],
               "users": [{"name": "test", "user": user}],
               "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)  # JSON is YAML
        return path

    # ------------------------------------------------------------ test controls
    def compact(self):
        """Forget history: a watch or exact list from an older resourceVersion gets 410."""
        with self.cond:
            self.compacted = self.rv
            self.log = []

    def drop_watches(self):
        """Cut every open watch connection (as a restarting API server would)."""
        with self.cond:
            ws = list(self.watches)
            for w in ws:
                w["dropped"] = True
            self.cond.notify_all()
        for w in ws:
            try:
                w["sock"].shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(ws)

    def bookmark_now(self):
        with self.cond:
            self.bookmark_gen += 1
            self.cond.notify_all()

    def watch_count(self, kind=None):
        with self.cond:
            return sum(1 for w in self.watches if kind is None or w["kind"] == kind)

    def count(self, method, path_part):
        with self.cond:
            return sum(1 for m, p in self.requests if m == method and path_part in p)

    def create(self, obj):
        kind, ns, name = self._ident(obj)
        code, out = self._write("POST", kind, obj["apiVersion"].split("/")[-1], ns, None, None, obj)
        if code != 201:
            raise RuntimeError("create %s %s/%s: %s" % (kind, ns, name, out.get("message")))
        return out

    def update(self, obj):
        """Replace an object's spec (metadata.resourceVersion is ignored)."""
        kind, ns, name = self._ident(obj)
        o = copy.deepcopy(obj)
        o.get("metadata", {}).pop("resourceVersion", None)
        code, out = self._write("PUT", kind, obj["apiVersion"].split("/")[-1], ns, name, None, o)
        if code != 200:
            raise RuntimeError("update %s %s/%s: %s" % (kind, ns, name, out.get("message")))
        return out

    def delete(self, kind, ns, name):
        code, out = self._write("DELETE", kind, RESOURCES[kind][1][0], ns, name, None, None)
        if code != 200:
            raise RuntimeError("delete %s %s/%s: %s" % (kind, ns, name, out.get("message")))
        return out

    def get(self, kind, ns, name):
        with self.cond:
            o = self.store.get((kind, ns if RESOURCES[kind][3] else None, name))
            return copy.deepcopy(o) if o else None

    # ------------------------------------------------------------ store
    def _ident(self, obj):
        kind = obj.get("kind")
        if kind not in RESOURCES:
            raise ValueError("kind %r is not served" % kind)
        md = obj.get("metadata", {})
        ns = md.get("namespace", "default") if RESOURCES[kind][3] else None
        return kind, ns, md.get("name")

    def _log(self, method, path):
        with self.cond:
            self.requests.append((method, path))

    def _out(self, obj, version):
        o = copy.deepcopy(obj)
        o["apiVersion"] = api_version(RESOURCES[o["kind"]][0], version)
        return o

    def _list(self, kind, version, ns, q):
        with self.cond:
            rv = q.get("resourceVersion", "")
            if rv not in ("", "0") and q.get("resourceVersionMatch") == "Exact":
                if not rv.isdigit() or int(rv) < self.compacted:
                    raise Gone("too old resource version: %s (%d)" % (rv, self.compacted))
            items = [self._out(o, version) for (k, n, _), o in sorted(self.store.items(),
                                                                       key=lambda kv: str(kv[0]))
                     if k == kind and (ns is None or n == ns)]
            return items, self.rv

    def _watch_start(self, kind, version, ns, rv):
        """(synthetic ADDED objects, cursor) for a watch from rv."""
        with self.cond:
            if rv in ("", "0"):
                items = [self._out(o, version) for (k, n, _), o in self.store.items()
                         if k == kind and (ns is None or n == ns)]
                return items, self.rv
            if not rv.isdigit():
                raise Gone("invalid resource version %r" % rv)
            if int(rv) < self.compacted:
                raise Gone("too old resource version: %s (%d)" % (rv, self.compacted))
            return [], int(rv)

    def _record(self, typ, kind, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.log.append((self.rv, typ, kind, copy.deepcopy(obj)))
        self.cond.notify_all()

    def _write(self, method, kind, version, ns, name, sub, body):
        group, _, _, namespaced, has_status = RESOURCES[kind]
        with self.cond:
            if method == "POST":
                if name is not None or sub:
                    return 405, status_obj(405, "MethodNotAllowed", "POST goes to the collection")
                md = body.get("metadata") or {}
                name = md.get("name")
                if not name:
                    return 422, status_obj(422, "Invalid", "metadata.name: Required value")
                if namespaced:
                    ns = ns or md.get("namespace") or "default"
                    if md.get("namespace", ns) != ns:
                        return 400, status_obj(400, "BadRequest", "the namespace of the object does "
                                               "not match the namespace on the request")
                key = (kind, ns, name)
                if key in self.store:
                    return 409, status_obj(409, "AlreadyExists", '%s "%s" already exists' % (kind, name))
                obj = copy.deepcopy(body)
                obj["kind"] = kind
                obj["apiVersion"] = api_version(group, version)
                md = obj.setdefault("metadata", {})
                if namespaced:
                    md["namespace"] = ns
                else:
                    md.pop("namespace", None)
                md["uid"] = str(uuid.uuid4())
                md["generation"] = 1
                md["creationTimestamp"] = datetime.datetime.now(datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")
                if has_status and sub is None:
                    obj.pop("status", None)
                self.store[key] = obj
                self._record("ADDED", kind, obj)
                return 201, self._out(obj, version)
            key = (kind, ns, name)
            old = self.store.get(key)
            if old is None:
                return 404, status_obj(404, "NotFound", '%s "%s" not found' % (kind, name))
            if sub == "status" and not has_status:
                return 404, status_obj(404, "NotFound", "the server could not find the requested resource")
            if method == "GET":
                return 200, self._out(old, version)
            if method == "DELETE":
                del self.store[key]
                obj = copy.deepcopy(old)
                self._record("DELETED", kind, obj)
                return 200, self._out(obj, version)
            want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv is not None and want_rv != old["metadata"]["resourceVersion"]:
                return 409, status_obj(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the '
                                       'object has been modified; please apply your changes to the '
                                       'latest version and try again' % (kind, name))
            if method == "PATCH":
                new = merge_patch(old, body)
            else:  # PUT
                new = copy.deepcopy(body)
            new["kind"] = kind
            new["apiVersion"] = old["apiVersion"]
            md = new.setdefault("metadata", {})
            for f in ("uid", "creationTimestamp", "generation", "name", "resourceVersion"):
                md[f] = old["metadata"][f]
            if namespaced:
                md["namespace"] = ns
            if sub == "status":
                # only .status changes through the status subresource
                kept = copy.deepcopy(old)
                if "status" in new:
                    kept["status"] = new["status"]
                else:
                    kept.pop("status", None)
                new = kept
            elif has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            strip = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}  # noqa: E731
            if strip(new) != strip(old):
                md["generation"] = old["metadata"]["generation"] + 1
            if new == old:
                return 200, self._out(old, version)  # a no-op write is no event
            self.store[key] = new
            self._record("MODIFIED", kind, new)
            return 200, self._out(new, version)
