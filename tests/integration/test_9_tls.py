"""TLS (issue 4): certificate choice by SNI and by the client's signature
algorithms, ALPN, versions, requests and bodies through TLS, plain HTTP and
garbage on a TLS port, the handshake timeout, session resumption (also across
a reload), upstream TLS (verification, SNI, pooling, resumption), kernel TLS
fallback, certificate reloads under load, quick mode and certificate errors.

Clients are Python's ssl module (and openssl s_client where Python cannot
choose the signature algorithms); certificates come from certs.py."""
import hashlib
import json
import os
import re
import select
import signal
import socket
import ssl
import threading
import time

import certs
from harness import (BUILD, SLUICE, Closed, Conn, TestFailure, build_request, check, eq, free_port, get, pattern, request,
                     uh, wait_for, wait_port)
from test_6_edge import WS_REQ, Mini, _check_pipeline, _pipeline_items, _ws_backend, vmrss_kib
from test_8_admin import TOKEN, alive, sample, start


# ---------------------------------------------------------------- helpers

def cctx(maxv=None, minv=None, ciphers=None, alpn=None, ca=None):
    """A client context; without ca it accepts any certificate (the tests
    compare the certificate's bytes instead)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if maxv:
        ctx.maximum_version = maxv
    if minv:
        ctx.minimum_version = minv
    if ciphers:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3
RSA12 = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
ECDSA12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"


def tls_listener(pki, names=("default",), name="https", **opts):
    t = {"certificates": [pki[n].cfg() for n in names]}
    t.update(opts)
    return {"name": name, "address": "127.0.0.1:%d" % free_port(), "tls": t}


def plain_listener():
    return {"name": "http", "address": "127.0.0.1:%d" % free_port()}


def tls_cfg(env, pki, listeners, e=None, **kw):
    """A config: the given listeners, echo upstream "u" behind a catch-all
    route, an admin listener."""
    e = e or env.echo("e")
    kw.setdefault("upstreams", [{"name": "u", "targets": [{"address": e.addr}]}])
    kw.setdefault("routes", [{"name": "api", "match": {"path": {"prefix": "/"}}, "upstream": "u"}])
    cfg = env.config(listeners=listeners,
                     admin={"address": "127.0.0.1:%d" % free_port(), "token": TOKEN}, **kw)
    return e, cfg


def setup(env, names=("default",), **tlsopts):
    """pki, echo, sluice, admin: one TLS listener with certificates names."""
    pki = certs.make(env)
    e, cfg = tls_cfg(env, pki, [tls_listener(pki, names, **tlsopts)])
    s, a = start(env, cfg)
    return pki, e, s, a


def peer(c):
    """DER of the certificate the server presented on Conn c."""
    return c.sock.getpeercert(binary_form=True)


def served(pki, port, ctx=None, sni=None):
    """The name of the certificate a new handshake gets (and the TLS version)."""
    with Conn(port, 5.0, tls=ctx or cctx(), sni=sni) as c:
        return pki.name_of(peer(c)), c.sock.version()


def hs(a, side, result):
    return sample(a.metrics(), "sluice_tls_handshakes_total", side=side, result=result)


def get_ok(c, path, what):
    """A GET on the open Conn c; the echo's JSON."""
    c.send(build_request("GET", path))
    r = c.read_response()
    eq(r.status, 200, "%s: status (%r)" % (what, r.raw[:200]))
    j = r.json()
    eq(j["path"], path, "%s: path seen by the backend" % what)
    return r


def s_client(env, port, sni, extra, timeout=10):
    """openssl s_client: one handshake, stdin at EOF; (rc, stdout+stderr)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    if sni:
        argv += ["-servername", sni]
    rc, out, err = env.run(argv + list(extra), timeout=timeout)
    return rc, out + err


def pump(c, data, timeout=30.0):
    """Send data on Conn c while reading what arrives into c.buf, in this one
    thread: an SSL object must not be read and written by two threads at
    once, and the peer may answer (and stop reading) before the data is all
    sent.  Returns when everything is sent; read the rest with c.read_*."""
    sock = c.sock
    view = memoryview(data)
    off = 0
    deadline = time.monotonic() + timeout
    busy = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)
    sock.setblocking(False)
    try:
        while off < len(data):
            if time.monotonic() > deadline:
                raise AssertionError("sent %d of %d bytes in %.0f s" % (off, len(data), timeout))
            select.select([sock], [sock], [], 0.2)
            while not c.eof:
                try:
                    d = sock.recv(1 << 20)
                except busy:
                    break
                except ConnectionResetError:
                    d = b""
                if not d:
                    c.eof = True
                    break
                c.buf += d
            try:
                off += sock.send(view[off:off + 262144])
            except busy:
                pass
    finally:
        sock.setblocking(True)
        sock.settimeout(c.timeout)


def stderr_since(proc, mark):
    return proc.stderr()[mark:]


# ---------------------------------------------------------------- SNI / key types

def test_sni_certificate_choice(env):
    pki, e, s, a = setup(env, ("default", "multi_rsa", "multi_ec", "exact"))
    p = s.port
    ec12 = cctx(maxv=TLS12, ciphers=ECDSA12)
    rsa12 = cctx(maxv=TLS12, ciphers=RSA12)
    cases = [
        # (what, context, sni, wanted certificate)
        ("no SNI", cctx(), None, "default"),
        ("no SNI, TLS 1.2 RSA", rsa12, None, "default"),
        ("unknown name", cctx(), "unknown.example.test", "default"),
        ("exact name, ECDSA-capable TLS 1.3 client", cctx(), "a.example.test", "multi_ec"),
        ("exact name, TLS 1.2 ECDHE-ECDSA only", ec12, "a.example.test", "multi_ec"),
        ("exact name, TLS 1.2 ECDHE-RSA only", rsa12, "a.example.test", "multi_rsa"),
        ("wildcard name, TLS 1.3", cctx(), "y.wild.example.test", "multi_ec"),
        ("wildcard name, TLS 1.2 ECDHE-RSA only", rsa12, "y.wild.example.test", "multi_rsa"),
        ("wildcard name, TLS 1.2 ECDHE-ECDSA only", ec12, "y.wild.example.test", "multi_ec"),
        ("exact name before a wildcard listed earlier", cctx(), "x.wild.example.test", "exact"),
        ("two labels under a wildcard", cctx(), "a.b.wild.example.test", "default"),
        ("the wildcard's own parent", cctx(), "wild.example.test", "default"),
        ("the first certificate's own name", cctx(), "default.example.test", "default"),
        ("name in upper case", cctx(), "A.EXAMPLE.TEST", "multi_ec"),
    ]
    wrong = []
    for what, ctx, sni, want in cases:
        got, _ = served(pki, p, ctx, sni)
        if got != want:
            wrong.append("%s (sni %r): got %s, want %s" % (what, sni, got, want))
    check(not wrong, "certificate choice: " + "; ".join(wrong))

    # a verifying client accepts the chain for each kind of name
    for sni, want in (("a.example.test", "multi_ec"), ("y.wild.example.test", "multi_ec"),
                      ("default.example.test", "default")):
        with Conn(p, 5.0, tls=cctx(ca=pki.ca_file), sni=sni) as c:
            eq(pki.name_of(peer(c)), want, "verified handshake for %s" % sni)
            r = get_ok(c, "/v", "request on a verified %s connection" % sni)
            eq(uh(r, "x-forwarded-proto"), ["https"], "X-Forwarded-Proto")

    # TLS 1.3 restricted to RSA-PSS signatures: the RSA certificate
    rc, out = s_client(env, p, "a.example.test", ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"])
    eq(rc, 0, "s_client TLS 1.3 RSA-PSS handshake (output %r)" % out[-600:])
    check(re.search(r"subject=\s*CN\s*=\s*multi_rsa", out),
          "TLS 1.3 RSA-PSS-only client got the RSA certificate: %r"
          % re.findall(r"subject=.*", out))
    rc, out = s_client(env, p, "a.example.test", ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"])
    eq(rc, 0, "s_client TLS 1.3 ECDSA handshake (output %r)" % out[-600:])
    check(re.search(r"subject=\s*CN\s*=\s*multi_ec", out),
          "TLS 1.3 ECDSA-only client got the ECDSA certificate: %r" % re.findall(r"subject=.*", out))
    alive(s)


# ---------------------------------------------------------------- ALPN and versions

def test_alpn(env):
    pki, e, s, a = setup(env)
    for offer, want in ((["h2", "http/1.1"], "http/1.1"), (["http/1.1"], "http/1.1"),
                        (["h2"], None), (None, None)):
        for maxv in (TLS12, None):
            what = "ALPN offer %r%s" % (offer, " (TLS 1.2)" if maxv else "")
            with Conn(s.port, 5.0, tls=cctx(maxv=maxv, alpn=offer)) as c:
                eq(c.sock.selected_alpn_protocol(), want, what + ": selected protocol")
                get_ok(c, "/alpn", what)
                get_ok(c, "/alpn2", what + ", second request")


def test_versions_and_min_version(env):
    pki = certs.make(env)
    l12 = tls_listener(pki, name="any")
    l13 = tls_listener(pki, name="only13", min_version="1.3")
    e, cfg = tls_cfg(env, pki, [l12, l13])
    s, a = start(env, cfg)
    p12, p13 = s.ports
    for port, maxv, want in ((p12, TLS12, "TLSv1.2"), (p12, None, "TLSv1.3"), (p13, None, "TLSv1.3")):
        with Conn(port, 5.0, tls=cctx(maxv=maxv)) as c:
            eq(c.sock.version(), want, "negotiated version on %d" % port)
            get_ok(c, "/v", "request over %s" % want)
    f0 = hs(a, "listener", "failed")
    try:
        with Conn(p13, 5.0, tls=cctx(maxv=TLS12)) as c:
            refused = "no: %s" % c.sock.version()
    except (ssl.SSLError, ConnectionError) as ex:
        refused = "yes: %s" % ex
    check(refused.startswith("yes"), "a TLS 1.2-only client refused by min_version 1.3 (%s)" % refused)
    check(wait_for(lambda: hs(a, "listener", "failed") >= f0 + 1, 3.0, 0.05),
          "handshakes_total{side=listener,result=failed} did not grow for the refused 1.2 client")
    with Conn(p13, 5.0, tls=cctx()) as c:
        get_ok(c, "/after", "TLS 1.3 client after a refused 1.2 one")
    alive(s)


# ---------------------------------------------------------------- requests through TLS

def test_request_through_tls(env):
    pki = certs.make(env)
    e = env.echo("e")
    routes = [{"name": "fixed", "match": {"path": {"exact": "/fixed"}},
               "respond": {"status": 200, "body": "fixed body\n", "content_type": "text/plain"}},
              {"name": "api", "match": {"path": {"prefix": "/"}}, "upstream": "u"}]
    e, cfg = tls_cfg(env, pki, [tls_listener(pki), plain_listener()], e=e, routes=routes)
    s, a = start(env, cfg)
    tp, pp = s.ports
    ctx = cctx(ca=pki.ca_file)

    def norm(raw):
        # the echo numbers its connections and requests; sluice may add a Date
        return re.sub(rb"\r\n(Date|X-Conn-Id|X-Request-Count): [^\r]*", rb"\r\n\1: X", raw)

    # the same bytes as on the plain listener (Date aside)
    for path in ("/fixed", "/bytes/1000", "/status/404"):
        rt = get(tp, path, tls=ctx, sni="localhost")
        rp = get(pp, path)
        eq(rt.status, rp.status, "%s status over TLS" % path)
        eq(norm(rt.raw), norm(rp.raw), "%s response bytes over TLS vs plain" % path)
    eq(get(tp, "/fixed", tls=ctx, sni="localhost").raw.split(b"\r\n\r\n", 1)[1], b"fixed body\n",
       "/fixed body over TLS")

    r = get(tp, "/h", tls=ctx, sni="localhost", headers=[("X-Forwarded-Proto", "http")])
    eq(uh(r, "x-forwarded-proto"), ["https"], "X-Forwarded-Proto on the TLS listener")
    eq(uh(get(pp, "/h"), "x-forwarded-proto"), ["http"], "X-Forwarded-Proto on the plain listener")

    # keep-alive: several requests, one TLS connection, one handshake
    full0, res0 = hs(a, "listener", "full"), hs(a, "listener", "resumed")
    with Conn(tp, 5.0, tls=ctx, sni="localhost") as c:
        conns = set()
        for i in range(6):
            r = get_ok(c, "/ka/%d" % i, "keep-alive request %d" % i)
            check((r.h("connection") or "").lower() != "close", "Connection: close on request %d" % i)
            conns.add(r.json()["conn"])
        eq(len(conns), 1, "backend connections used by 6 keep-alive requests")
    eq((hs(a, "listener", "full") - full0, hs(a, "listener", "resumed") - res0), (1, 0),
       "listener handshakes (full, resumed) for one keep-alive connection")

    # 5 MiB up (echoed back by /raw) and down (/bytes/N), byte-exact
    n = 5 << 20
    body = os.urandom(n)
    with Conn(tp, 30.0, tls=ctx, sni="localhost") as c:
        # the echo answers /raw as it reads: read while sending
        pump(c, build_request("POST", "/raw", headers=[("Content-Length", str(n))]) + body)
        r = c.read_response(timeout=30)
        eq(r.status, 200, "POST /raw 5 MiB status")
        eq(len(r.body), n, "POST /raw 5 MiB: bytes back")
        eq(sha(r.body), sha(body), "POST /raw 5 MiB: body back byte-exact")
        m = n + 7
        c.send(build_request("GET", "/bytes/%d" % m))
        r = c.read_response(timeout=30)
        eq(r.status, 200, "GET /bytes/%d status" % m)
        eq(len(r.body), m, "GET /bytes/%d length" % m)
        check(r.body == pattern(m), "GET /bytes/%d: body differs from the pattern" % m)
        # a chunked request body, odd chunk sizes
        parts = [os.urandom(k) for k in (1, 100, 16384, 70000, 3)]
        wire = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in parts) + b"0\r\n\r\n"
        c.send(build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]) + wire)
        r = c.read_response(timeout=10)
        eq(r.status, 200, "chunked POST status")
        j = r.json()
        whole = b"".join(parts)
        eq((j["body_len"], j["body_sha256"]), (len(whole), sha(whole)),
           "chunked body as the backend got it")
        c.send(build_request("POST", "/raw", headers=[("Transfer-Encoding", "chunked")]) + wire)
        r = c.read_response(timeout=10)
        eq(r.status, 200, "chunked POST /raw status")
        eq(sha(r.body), sha(whole), "chunked POST /raw: body back")
        get_ok(c, "/last", "request after the bodies on the same connection")
    alive(s)


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- not TLS on a TLS port

def test_plain_http_and_garbage_on_tls_port(env):
    pki, e, s, a = setup(env)
    with Conn(s.port, 5.0) as c:
        c.send(build_request("GET", "/plain"))
        r = c.read_response()
        eq(r.status, 400, "plain HTTP on the TLS port (got %r)" % r.raw[:200])
        eq(r.raw.split(b"\r\n", 1)[0], b"HTTP/1.1 400 Bad Request", "status line")
        check(b"plain HTTP request was sent to HTTPS port" in r.body,
              "400 body explains: %r" % r.body[:200])
        check(c.wait_closed(3.0), "connection closed after the 400")
    with Conn(s.port, 5.0) as c:   # the first byte alone, then the rest
        c.send(b"G")
        time.sleep(0.2)
        c.send(build_request("GET", "/plain2")[1:])
        r = c.read_response()
        eq(r.status, 400, "plain HTTP on the TLS port, first byte alone (got %r)" % r.raw[:200])
        check(c.wait_closed(3.0), "connection closed after the 400 (split request)")
    eq(e.stats()["requests"], 0, "the plain requests did not reach the backend")
    with Conn(s.port, 5.0, tls=cctx()) as c:
        get_ok(c, "/after-plain", "TLS request after the plain one")

    f0 = hs(a, "listener", "failed")
    junk = [bytes(range(256)) * 4,                      # neither TLS nor HTTP
            b"\x16\x03\x01\x00\x20" + b"\xff" * 32,     # a TLS record with a bad handshake
            b"\x00" * 10]
    for k, data in enumerate(junk):
        with Conn(s.port, 5.0) as c:
            try:
                c.send(data)
            except OSError:
                pass
            check(c.wait_closed(3.0), "garbage %d: connection not closed within 3 s" % k)
            check(not c.buf.startswith(b"HTTP/1.1 200"), "garbage %d answered 200" % k)
    # the one that starts like a TLS record is a failed handshake for sure
    check(wait_for(lambda: hs(a, "listener", "failed") >= f0 + 1, 3.0, 0.05),
          "handshakes_total{result=failed} grew by %d for 3 garbage connections"
          % (hs(a, "listener", "failed") - f0))
    with Conn(s.port, 5.0, tls=cctx()) as c:
        get_ok(c, "/after-garbage", "TLS request after garbage")
    alive(s)


def client_hello(sni="a.example.test"):
    """The bytes of a ClientHello (made by Python's ssl over memory BIOs)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = cctx().wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def test_handshake_timeout(env):
    pki, e, s, a = setup(env, handshake_timeout_ms=300)
    for what, data in (("nothing sent", b""), ("half a ClientHello", client_hello()[:40])):
        with Conn(s.port, 5.0) as c:
            if data:
                c.send(data)
            t0 = time.monotonic()
            check(c.wait_closed(4.0), "%s: not closed within 4 s (handshake_timeout_ms 300)" % what)
            dt = time.monotonic() - t0
            check(0.2 <= dt <= 1.5, "%s: closed after %.2fs (handshake_timeout_ms 300)" % (what, dt))
    # a finished handshake is not cut by the handshake timer
    with Conn(s.port, 5.0, tls=cctx()) as c:
        time.sleep(0.8)
        get_ok(c, "/late", "request 0.8 s after a handshake (handshake_timeout_ms 300)")
    alive(s)


# ---------------------------------------------------------------- resumption

def fresh_session(port, ctx, what):
    """A session from a new connection that served one request."""
    with Conn(port, 5.0, tls=ctx) as c:
        get_ok(c, "/s", what)  # TLS 1.3 tickets arrive after the handshake
        sess = c.sock.session
        check(sess is not None, "%s: no session" % what)
        return sess


def resumes(port, ctx, sess, what):
    with Conn(port, 5.0, tls=ctx, session=sess) as c:
        check(c.sock.session_reused, "%s: session not resumed (%s)" % (what, c.sock.version()))
        get_ok(c, "/r", what)


def test_session_resumption(env):
    pki, e, s, a = setup(env)
    ctxs = {"TLS 1.2": cctx(maxv=TLS12), "TLS 1.3": cctx(minv=TLS13)}
    r0 = hs(a, "listener", "resumed")
    for v, ctx in ctxs.items():
        sess = fresh_session(s.port, ctx, v)
        resumes(s.port, ctx, sess, v)
        with Conn(s.port, 5.0, tls=ctx) as c:
            check(not c.sock.session_reused, "%s: a connection without a session resumed" % v)
    eq(hs(a, "listener", "resumed") - r0, 2, "handshakes_total{side=listener,result=resumed} growth")

    # tickets issued before a reload resume after it
    saved = {v: fresh_session(s.port, ctx, v + " (before reload)") for v, ctx in ctxs.items()}
    v0 = a.version()
    cfg = json.loads(json.dumps(s.cfg))
    cfg["routes"].insert(0, {"name": "new", "match": {"path": {"exact": "/new"}},
                             "respond": {"status": 200, "body": "new"}})
    eq(a.put_ok(cfg), v0 + 1, "PUT /config version")
    with Conn(s.port, 5.0, tls=cctx()) as c:
        c.send(build_request("GET", "/new"))
        eq(c.read_response().body, b"new", "the reloaded config serves")
    r1 = hs(a, "listener", "resumed")
    for v, ctx in ctxs.items():
        resumes(s.port, ctx, saved[v], v + " after PUT /config")
    eq(hs(a, "listener", "resumed") - r1, 2, "resumed handshakes after the reload")
    alive(s)


# ---------------------------------------------------------------- upstream TLS

def upstream_setup(env, front_upstreams, front_routes):
    """echo <- backend sluice B (TLS listeners: default cert, self-signed
    cert) <- front sluice F (plain listener).  front_upstreams(b0, b1) gives F's
    upstreams for B's two listener addresses."""
    pki = certs.make(env)
    e = env.echo("e")
    e, bcfg = tls_cfg(env, pki, [tls_listener(pki, ("default",), name="ca"),
                                 tls_listener(pki, ("self",), name="self")], e=e)
    b, ba = start(env, bcfg)
    b0, b1 = ("127.0.0.1:%d" % p for p in b.ports)
    _, fcfg = tls_cfg(env, pki, [plain_listener()], e=e,
                      upstreams=front_upstreams(pki, b0, b1), routes=front_routes)
    f, fa = start(env, fcfg)
    return pki, e, b, ba, f, fa


def prefix_routes(names):
    return [{"name": n, "match": {"path": {"prefix": "/%s/" % n}}, "upstream": n} for n in names]


def test_upstream_tls_verify(env):
    def ups(pki, b0, b1):
        ca = pki.ca_file
        return [{"name": "ok", "targets": [{"address": b0}], "tls": {"ca_file": ca}},
                {"name": "store", "targets": [{"address": b0}], "tls": {"verify": True}},
                {"name": "noverify", "targets": [{"address": b0}], "tls": {"verify": False}},
                {"name": "badsni", "targets": [{"address": b0}],
                 "tls": {"ca_file": ca, "sni": "wrong.example.test"}},
                {"name": "goodsni", "targets": [{"address": b0}],
                 "tls": {"ca_file": ca, "sni": "localhost"}},
                {"name": "selfca", "targets": [{"address": b1}], "tls": {"ca_file": ca}},
                {"name": "selfnoverify", "targets": [{"address": b1}], "tls": {"verify": False}},
                {"name": "plain", "targets": [{"address": b0}]}]
    names = ["ok", "store", "noverify", "badsni", "goodsni", "selfca", "selfnoverify", "plain"]
    pki, e, b, ba, f, fa = upstream_setup(env, ups, prefix_routes(names))
    fp = f.port
    cases = (("ok", 200, None), ("store", 502, r"verify"), ("noverify", 200, None),
             ("badsni", 502, r"verify.*hostname mismatch"), ("goodsni", 200, None),
             ("selfca", 502, r"verify.*self.signed"), ("selfnoverify", 200, None))
    # twice: the second time the unverified connections are pooled for the
    # same targets, and a verifying upstream must still not get them
    for k, (n, want, why) in enumerate(cases + cases):
        mark = len(f.proc.stderr())
        r = get(fp, "/%s/x?q=1" % n)
        eq(r.status, want, "upstream %s, pass %d%s: status (body %r)"
           % (n, k // len(cases) + 1, ", after the unverified upstreams' connections were pooled"
              if k >= len(cases) else "", r.body[:200]))
        if want == 200:
            j = r.json()
            eq((j["id"], j["path"]), ("e", "/%s/x?q=1" % n), "upstream %s: the echo's answer" % n)
            # B terminated TLS: its own X-Forwarded-Proto for that hop is https
            check("https" in ",".join(uh(r, "x-forwarded-proto")),
                  "upstream %s: the backend sluice saw TLS (X-Forwarded-Proto %r)"
                  % (n, uh(r, "x-forwarded-proto")))
        else:
            got = wait_for(lambda: re.search(why, stderr_since(f.proc, mark), re.I), 3.0, 0.05)
            check(got, "upstream %s: the error log says why (/%s/): %r"
                  % (n, why, stderr_since(f.proc, mark)[-600:]))
    # a plain upstream pointed at a TLS port gets B's 400 or a 502, never a hang
    r = get(fp, "/plain/x", timeout=10)
    check(r.status in (400, 502), "plain upstream to a TLS port: status %d" % r.status)
    alive(f)
    alive(b)


def test_upstream_tls_pooling_and_resumption(env):
    def ups(pki, b0, b1):
        return [{"name": "pooled", "targets": [{"address": b0}], "tls": {"ca_file": pki.ca_file}},
                # other TLS settings (sni): its connections are never pooled "pooled"'s
                {"name": "nopool", "targets": [{"address": b0}],
                 "tls": {"ca_file": pki.ca_file, "sni": "localhost"},
                 "pool": {"max_idle_per_target": 0}}]
    routes = prefix_routes(["pooled", "nopool"]) + [
        {"name": "bytes", "match": {"path": {"prefix": "/bytes/"}}, "upstream": "pooled"}]
    pki, e, b, ba, f, fa = upstream_setup(env, ups, routes)

    def counts():
        fm, bm = fa.metrics(), ba.metrics()
        return {
            "f_full": sample(fm, "sluice_tls_handshakes_total", side="upstream", result="full"),
            "f_res": sample(fm, "sluice_tls_handshakes_total", side="upstream", result="resumed"),
            "f_fail": sample(fm, "sluice_tls_handshakes_total", side="upstream", result="failed"),
            "hits": sample(fm, "sluice_pool_hits_total"),
            "misses": sample(fm, "sluice_pool_misses_total"),
            "b_full": sample(bm, "sluice_tls_handshakes_total", side="listener", result="full"),
            "b_res": sample(bm, "sluice_tls_handshakes_total", side="listener", result="resumed"),
        }

    def delta(c0, c1):
        return {k: c1[k] - c0[k] for k in c0}

    c0 = counts()
    for i in range(6):  # sequential, each on a new client connection
        r = get(f.port, "/pooled/%d" % i)
        eq(r.status, 200, "pooled request %d (body %r)" % (i, r.body[:200]))
    d = delta(c0, counts())
    eq((d["f_full"] + d["f_res"], d["misses"], d["hits"]), (1, 1, 5),
       "6 sequential requests: (upstream handshakes, pool misses, pool hits) %r" % d)
    eq(d["b_full"] + d["b_res"], 1, "handshakes the backend sluice saw for 6 pooled requests")

    # 3 MiB up and down through the TLS upstream (plain client side)
    n = 3 << 20
    body = os.urandom(n)
    with Conn(f.port, 30.0) as c:
        pump(c, build_request("POST", "/pooled/raw", headers=[("Content-Length", str(n))]) + body)
        r = c.read_response(timeout=30)
        eq(r.status, 200, "POST 3 MiB through the TLS upstream (the echo answers /pooled/raw)")
        c.send(build_request("GET", "/bytes/%d" % (n + 3)))
        r2 = c.read_response(timeout=30)
    j = None
    if r.h("content-type") == "application/json":
        j = r.json()
    check(j is not None and (j["body_len"], j["body_sha256"]) == (n, sha(body)),
          "3 MiB body as the backend got it through the TLS upstream: %r"
          % ((j or {}).get("body_len"),))
    eq(r2.status, 200, "GET /bytes through the TLS upstream")
    check(r2.body == pattern(n + 3), "GET /bytes/%d body through the TLS upstream" % (n + 3))

    c1 = counts()
    for i in range(4):
        r = get(f.port, "/nopool/%d" % i)
        eq(r.status, 200, "unpooled request %d" % i)
    d = delta(c1, counts())
    eq(d["f_full"] + d["f_res"], 4, "4 unpooled requests: 4 upstream handshakes %r" % d)
    eq(d["f_fail"], 0, "no failed upstream handshake")
    check(d["f_res"] >= 1, "upstream sessions resumed: %r" % d)
    eq(d["b_res"], d["f_res"], "the backend counts the same resumptions %r" % d)
    alive(f)
    alive(b)


# ---------------------------------------------------------------- kernel TLS

def kernel_has_tls_ulp():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as fh:
            return "tls" in fh.read().split()
    except OSError:
        return False


def test_ktls_requested(env):
    pki, e, s, a = setup(env, ktls=True)
    for i in range(3):
        with Conn(s.port, 10.0, tls=cctx()) as c:
            get_ok(c, "/k%d" % i, "kTLS listener request %d" % i)
            get_ok(c, "/k%d/b" % i, "kTLS listener request %d, second" % i)
            n = (1 << 20) + 5
            c.send(build_request("GET", "/bytes/%d" % n))
            r = c.read_response(timeout=10)
            check(r.body == pattern(n), "GET /bytes/%d over the kTLS listener" % n)
            body = os.urandom(n)
            pump(c, build_request("POST", "/raw", headers=[("Content-Length", str(n))]) + body)
            r = c.read_response(timeout=10)
            check(r.body == body, "POST /raw of %d bytes over the kTLS listener" % n)
    m = a.metrics()
    ulp = kernel_has_tls_ulp()  # read after start: the probe may load the module
    off = sample(m, "sluice_ktls_connections_total", result="offloaded")
    fb = sample(m, "sluice_ktls_connections_total", result="fallback")
    avail = sample(m, "sluice_ktls_available")
    lines = [ln for ln in s.proc.stderr().splitlines() if "kernel TLS" in ln]
    if ulp:
        eq((avail, off, fb), (1, 3, 0), "kernel has tls ULP: (available, offloaded, fallback)")
        eq(lines, [], "no 'kernel TLS unavailable' line when the kernel has it")
    else:
        eq((avail, off, fb), (0, 0, 3), "no tls ULP: (available, offloaded, fallback)")
        eq(len(lines), 1, "stderr lines mentioning 'kernel TLS': %r" % lines)
    # reloads do not repeat it
    v = a.version()
    eq(a.put_ok(s.cfg), v + 1, "PUT of the same document")
    s.proc.signal(signal.SIGHUP)
    check(wait_for(lambda: a.version() == v + 2, 5.0, 0.05), "SIGHUP reload")
    with Conn(s.port, 10.0, tls=cctx()) as c:
        get_ok(c, "/after-reloads", "kTLS listener after reloads")
    eq(len([ln for ln in s.proc.stderr().splitlines() if "kernel TLS" in ln]), len(lines),
       "'kernel TLS' lines after two reloads")
    alive(s)


# ---------------------------------------------------------------- reloads

def test_certificate_reload_under_load(env):
    pki, e, s, a = setup(env)
    stop = threading.Event()
    lock = threading.Lock()
    st = {"ok": 0, "conns": 0, "certs": set()}
    errors = []

    def worker(k):
        c = None
        i = 0
        while not stop.is_set():
            try:
                if c is None:
                    c = Conn(s.port, 5.0, tls=cctx())
                    with lock:
                        st["conns"] += 1
                        st["certs"].add(pki.name_of(peer(c)))
                path = "/w%d/%d" % (k, i)
                c.send(build_request("GET", path))
                r = c.read_response(timeout=5)
                if r.status != 200 or r.json()["path"] != path:
                    raise AssertionError("bad response %d %r" % (r.status, r.raw[:200]))
                if (r.h("connection") or "").lower() == "close":
                    raise AssertionError("Connection: close")
                with lock:
                    st["ok"] += 1
            except Exception as ex:  # collected, reported below
                with lock:
                    errors.append("worker %d req %d: %s: %s" % (k, i, type(ex).__name__, str(ex)[:200]))
                if c:
                    c.close()
                c = None
            i += 1
        if c:
            c.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(3)]
    for t in threads:
        t.start()
    v = a.version()
    seen = []
    try:
        for n, (name, how) in enumerate((("default2", "put"), ("default", "put"),
                                          ("default2", "sighup"), ("default", "put"),
                                          ("default2", "put"))):
            time.sleep(0.4)
            cfg = json.loads(json.dumps(s.cfg))
            cfg["listeners"][0]["tls"]["certificates"] = [pki[name].cfg()]
            if how == "put":
                eq(a.put_ok(cfg), v + 1, "PUT %d version" % n)
            else:
                s.write_config(cfg)
                s.proc.signal(signal.SIGHUP)
                check(wait_for(lambda: a.version() == v + 1, 5.0, 0.05),
                      "SIGHUP %d: version not %d within 5 s" % (n, v + 1))
            v += 1
            got, _ = served(pki, s.port)
            seen.append(got)
            eq(got, name, "certificate of a new connection after reload %d (%s)" % (n, how))
        time.sleep(0.4)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    alive(s)
    check(not errors, "%d failed requests of %d, first: %s" % (len(errors), st["ok"] + len(errors), errors[:3]))
    eq(st["conns"], 3, "client connections opened (none dropped by a certificate reload)")
    eq(st["certs"], {"default"}, "certificate of the long-lived connections")
    check(st["ok"] > 50, "only %d requests during the reloads" % st["ok"])


# ---------------------------------------------------------------- quick mode, errors

def test_quick_mode_tls(env):
    pki = certs.make(env)
    e = env.echo("e")
    port = free_port()
    p = env.start([SLUICE, "--listen", "127.0.0.1:%d" % port, "--backend", e.addr, "--workers", "1",
                   "--tls-cert", pki["default"].cert_file, "--tls-key", pki["default"].key_file],
                  "sluice")
    check(wait_port(port, 5.0, p.p), "quick mode with TLS listens (stderr %r)" % p.stderr()[-300:])
    with Conn(port, 5.0, tls=cctx(ca=pki.ca_file), sni="localhost") as c:
        eq(pki.name_of(peer(c)), "default", "quick mode certificate")
        r = get_ok(c, "/quick", "quick mode request over TLS")
        eq(r.h("x-upstream"), "e", "quick mode backend")
        eq(uh(r, "x-forwarded-proto"), ["https"], "quick mode X-Forwarded-Proto")
    with Conn(port, 5.0) as c:  # the listener is TLS only
        c.send(build_request("GET", "/plain"))
        eq(c.read_response().status, 400, "plain HTTP to the quick mode TLS listener")
    for args, missing in ((["--tls-cert", pki["default"].cert_file], "--tls-key"),
                          (["--tls-key", pki["default"].key_file], "--tls-cert")):
        rc, out, err = env.run([SLUICE, "--listen", "127.0.0.1:%d" % free_port(),
                                "--backend", e.addr] + args, timeout=5)
        eq(rc, 1, "exit code with %s alone (stderr %r)" % (args[0], err))
        check(missing in err, "message names %s: %r" % (missing, err))
    rc, out, err = env.run([SLUICE, "--listen", "127.0.0.1:%d" % free_port(), "--backend", e.addr,
                            "--tls-cert", os.path.join(env.tmp, "nope.pem"),
                            "--tls-key", pki["default"].key_file], timeout=5)
    eq(rc, 1, "exit code with a missing --tls-cert file (stderr %r)" % err)
    check("nope.pem" in err or "--tls-cert" in err or "cert_file" in err,
          "message for a missing --tls-cert file: %r" % err)


def test_certificate_errors(env):
    pki = certs.make(env)
    garbage = env.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64 !!\n"
                                       "-----END CERTIFICATE-----\n")

    def check_cfg(certs_list, what, want_path, upstream_tls=None):
        e_addr = "127.0.0.1:1"
        cfg = env.config(
            listeners=[{"name": "https", "address": "127.0.0.1:%d" % free_port(),
                        "tls": {"certificates": certs_list}}],
            upstreams=[dict({"name": "u", "targets": [{"address": e_addr}]},
                            **({"tls": upstream_tls} if upstream_tls else {}))],
            routes=[{"name": "r", "match": {"path": {"prefix": "/"}}, "upstream": "u"}])
        path = env.write(env._name("check") + ".json", cfg)
        rc, out, err = env.run([SLUICE, "--check", "--config", path])
        if want_path is None:
            eq(rc, 0, "--check with %s (stderr %r)" % (what, err))
        else:
            eq(rc, 1, "--check exit code with %s (stderr %r)" % (what, err))
            check(re.search(r"^%s: \S" % re.escape(want_path), err, re.M),
                  "--check with %s names %s: %r" % (what, want_path, err))

    d, m = pki["default"], pki["multi_rsa"]
    check_cfg([d.cfg(), m.cfg_pem(), pki["multi_ec"].cfg()], "good files and inline PEM", None)
    check_cfg([d.cfg(), {"cert_file": d.cert_file, "key_file": m.key_file}],
              "a key that does not match its certificate", "/listeners/0/tls/certificates/1/key_file")
    check_cfg([{"cert_file": garbage, "key_file": d.key_file}], "a certificate that is not PEM",
              "/listeners/0/tls/certificates/0/cert_file")
    check_cfg([{"cert_file": d.cert_file, "key_file": os.path.join(env.tmp, "missing.key")}],
              "a missing key file", "/listeners/0/tls/certificates/0/key_file")
    check_cfg([{"cert_file": d.cert_file, "key_file": d.cert_file}], "a certificate as the key",
              "/listeners/0/tls/certificates/0/key_file")
    check_cfg([d.cfg()], "a missing upstream CA file", "/upstreams/0/tls/ca_file",
              upstream_tls={"ca_file": os.path.join(env.tmp, "missing-ca.pem")})

    # PUT /config with a bad certificate: 400 naming the path, old certificate kept
    e, cfg = tls_cfg(env, pki, [tls_listener(pki)])
    s, a = start(env, cfg)
    v0 = a.version()
    bad = json.loads(json.dumps(cfg))
    bad["listeners"][0]["tls"]["certificates"] = [pki["default2"].cfg(),
                                                  {"cert_file": garbage, "key_file": d.key_file}]
    r = a.put(bad)
    eq(r.status, 400, "PUT with a bad certificate (body %r)" % r.body[:300])
    j = r.json()
    eq(j.get("path"), "/listeners/0/tls/certificates/1/cert_file", "PUT 400 path (%r)" % j)
    bad["listeners"][0]["tls"]["certificates"] = [{"cert_file": d.cert_file, "key_file": m.key_file}]
    r = a.put(bad)
    eq(r.status, 400, "PUT with a mismatched key (body %r)" % r.body[:300])
    eq(r.json().get("path"), "/listeners/0/tls/certificates/0/key_file", "PUT 400 path")
    eq(a.version(), v0, "version after the refused PUTs")
    eq(served(pki, s.port)[0], "default", "certificate after the refused PUTs")
    with Conn(s.port, 5.0, tls=cctx()) as c:
        get_ok(c, "/still", "request after the refused PUTs")
    good = json.loads(json.dumps(cfg))
    good["listeners"][0]["tls"]["certificates"] = [pki["default2"].cfg_pem()]
    eq(a.put_ok(good), v0 + 1, "PUT with an inline PEM certificate")
    eq(served(pki, s.port)[0], "default2", "certificate after the PUT")
    r = a.call("GET", "/config")
    eq(r.status, 200, "GET /config")
    check(b"PRIVATE KEY" not in r.body, "GET /config shows a private key: %r"
          % r.body[r.body.find(b"PRIVATE KEY") - 100:][:200])
    eq(r.json()["listeners"][0]["tls"]["certificates"][0].get("key_pem"), "REDACTED",
       "GET /config key_pem")
    alive(s)


# ---------------------------------------------------------------- tunnels over TLS

def ws_tunnel(c, what):
    """Upgrade on Conn c (to the Mini _ws_backend) and check the tunnel both ways."""
    c.send(WS_REQ)
    r = c.read_response()
    eq(r.status, 101, "%s: 101 (%r)" % (what, r.raw[:200]))
    eq(c.read_exact(12, time.monotonic() + 3), b"server-first", "%s: server bytes after the 101" % what)
    c.send(b"ping-1")
    eq(c.read_exact(6, time.monotonic() + 3), b"ping-1", "%s: small frame echoed" % what)
    blob = os.urandom(512 * 1024)
    pump(c, blob)
    got = c.read_exact(len(blob), time.monotonic() + 15)
    check(got == blob, "%s: 512 KiB echoed through the tunnel byte-exact" % what)
    c.send(b"quit")
    eq(c.read_exact(7, time.monotonic() + 3), b"goodbye", "%s: backend's last bytes" % what)
    check(c.wait_closed(3.0), "%s: tunnel not closed after the backend closed" % what)


def test_upgrade_tunnel_over_tls(env):
    pki = certs.make(env)
    with Mini(_ws_backend) as m:
        # B: TLS listener -> the Mini; F: plain listener -> B over TLS
        bcfg = env.config(listeners=[tls_listener(pki)],
                          upstreams=[{"name": "u", "targets": [{"address": m.addr}]}],
                          routes=[{"name": "r", "match": {}, "upstream": "u"}])
        b = env.sluice(bcfg)
        fcfg = env.config(upstreams=[{"name": "u", "targets": [{"address": "127.0.0.1:%d" % b.port}],
                                      "tls": {"ca_file": pki.ca_file}}],
                          routes=[{"name": "r", "match": {}, "upstream": "u"}])
        f = env.sluice(fcfg)
        with Conn(b.port, 5.0, tls=cctx()) as c:
            ws_tunnel(c, "TLS client -> plain upstream")
        with Conn(f.port, 5.0) as c:
            ws_tunnel(c, "plain client -> TLS upstream")
        with Conn(b.port, 5.0, tls=cctx(maxv=TLS12)) as c:
            ws_tunnel(c, "TLS 1.2 client -> plain upstream")
        check(wait_for(lambda: m.open == 0, 3.0), "backend connections left open: %d" % m.open)
    alive(b)
    alive(f)


# ---------------------------------------------------------------- more wire cases

def test_pipelined_over_tls(env):
    pki, e, s, a = setup(env)
    items = _pipeline_items(20000)
    data = b"".join(d for d, _, _ in items)
    with Conn(s.port, 10.0, tls=cctx()) as c:
        pump(c, data)   # one write: many requests per TLS record
        _check_pipeline(c, items, "TLS, one write")
        get_ok(c, "/again", "request after the pipeline")
    small = [it for it in _pipeline_items(300) if it[1] != "raw"]
    data = b"".join(d for d, _, _ in small)
    with Conn(s.port, 10.0, tls=cctx(maxv=TLS12)) as c:
        for i in range(len(data)):   # one TLS record per byte
            c.sock.sendall(data[i:i + 1])
        _check_pipeline(c, small, "TLS 1.2, one byte per record")
    # 300 pipelined requests written before anything is read
    n = 300
    with Conn(s.port, 20.0, tls=cctx()) as c:
        pump(c, b"".join(build_request("GET", "/bytes/%d" % (1000 + i % 7)) for i in range(n)))
        for i in range(n):
            r = c.read_response(timeout=20)
            if r.status != 200 or r.body != pattern(1000 + i % 7):
                check(False, "pipelined TLS response %d: %d len %d" % (i, r.status, len(r.body)))
        eq(c.read_some(0.3), b"", "bytes after the last response")
    alive(s)


def test_slow_tls_reader_memory_bounded(env):
    pki = certs.make(env)
    e, cfg = tls_cfg(env, pki, [tls_listener(pki)])
    extra = {}
    if "asan" in os.path.basename(os.path.normpath(BUILD)):
        # ASan's quarantine holds freed memory back: keep it small so RSS means something
        extra = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
                                  ":thread_local_quarantine_size_kb=64").lstrip(":")}
    s, a = start(env, cfg, extra)
    for _ in range(3):
        with Conn(s.port, 5.0, tls=cctx()) as c:
            get_ok(c, "/warm", "warm-up")
    base = vmrss_kib(s.proc.pid)
    n = 64 << 20
    peak = base
    with Conn(s.port, 30.0, tls=cctx()) as c:
        c.send(build_request("GET", "/bytes/%d" % n))
        r = c.read_head(timeout=5)
        eq((r.status, r.h("content-length")), (200, str(n)), "GET /bytes/%d head" % n)
        # read nothing for a while: sluice must stop reading its upstream
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            peak = max(peak, vmrss_kib(s.proc.pid))
            time.sleep(0.05)
        got = len(c.buf)
        h = hashlib.sha256(bytes(c.buf))
        c.buf.clear()
        t_end = time.monotonic() + 40
        while got < n and time.monotonic() < t_end:
            c.sock.settimeout(5)
            d = c.sock.recv(min(1 << 20, n - got))
            if not d:
                break
            h.update(d)
            got += len(d)
            if got % (4 << 20) < len(d):
                peak = max(peak, vmrss_kib(s.proc.pid))
        eq(got, n, "bytes received")
        eq(h.hexdigest(), sha(pattern(n)), "body sha256")
    growth = (peak - base) / 1024.0
    check(growth < 40, "sluice RSS grew %.1f MiB (base %d KiB, peak %d KiB) for a slow TLS reader"
          % (growth, base, peak))
    alive(s)


def test_certificate_chain_served(env):
    pki, e, s, a = setup(env, ("default", "chained"))
    with Conn(s.port, 5.0, tls=cctx(ca=pki.ca_file), sni="chain.example.test") as c:
        eq(pki.name_of(peer(c)), "chained", "certificate for chain.example.test")
        get_ok(c, "/chain", "request on a connection verified through the intermediate")
    with Conn(s.port, 5.0, tls=cctx(ca=pki.ca_file, maxv=TLS12), sni="chain.example.test") as c:
        eq(pki.name_of(peer(c)), "chained", "certificate for chain.example.test (TLS 1.2)")
    alive(s)


def test_resumption_across_workers(env):
    pki = certs.make(env)
    e, cfg = tls_cfg(env, pki, [tls_listener(pki)], workers=4)
    s, a = start(env, cfg)
    for v, ctx in (("TLS 1.2", cctx(maxv=TLS12)), ("TLS 1.3", cctx(minv=TLS13))):
        sess = fresh_session(s.port, ctx, v)
        for i in range(12):   # accepted by whichever worker: the ticket keys are shared
            resumes(s.port, ctx, sess, "%s, connection %d" % (v, i))
    alive(s)


def _silent(m, sock):
    """Accepts and reads, never answers (a TLS handshake never completes)."""
    m.record(("conn",))
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def test_upstream_tls_failures_bounded(env):
    pki = certs.make(env)
    e = env.echo("e")
    with Mini(_silent) as m:
        # B closes idle client connections after 300 ms: F's pooled TLS
        # connections go stale under it
        _, bcfg = tls_cfg(env, pki, [tls_listener(pki)], e=e, timeouts={"client_idle_ms": 300})
        b, ba = start(env, bcfg)
        b0 = "127.0.0.1:%d" % b.port
        ups = [{"name": "stale", "targets": [{"address": b0}], "tls": {"ca_file": pki.ca_file}},
               {"name": "silent", "targets": [{"address": m.addr}], "tls": {"verify": False},
                "timeouts": {"connect_ms": 500, "response_header_ms": 1500}, "retries": 0},
               {"name": "nottls", "targets": [{"address": e.addr}], "tls": {"verify": False}}]
        _, fcfg = tls_cfg(env, pki, [plain_listener()], e=e, upstreams=ups,
                          routes=prefix_routes(["stale", "silent", "nottls"]))
        f, fa = start(env, fcfg)
        with Conn(f.port, 5.0) as c:
            for i in range(4):
                if i:
                    time.sleep(0.6)
                c.send(build_request("POST" if i % 2 else "GET", "/stale/%d" % i,
                                     body=b"x" * 10 if i % 2 else None))
                r = c.read_response()
                eq(r.status, 200, "request %d after B closed the pooled TLS connection (%r)"
                   % (i, r.raw[:200]))
                eq(r.json()["path"], "/stale/%d" % i, "request %d path" % i)
        f0 = sample(fa.metrics(), "sluice_tls_handshakes_total", side="upstream", result="failed")
        mark = len(f.proc.stderr())
        r = get(f.port, "/nottls/x", timeout=10)
        eq(r.status, 502, "TLS to a plain HTTP target (body %r)" % r.body[:200])
        check(wait_for(lambda: re.search(r"TLS|SSL|handshake", stderr_since(f.proc, mark)), 3.0, 0.05),
              "the error log says why a TLS upstream to a plain target failed: %r"
              % stderr_since(f.proc, mark)[-400:])
        check(wait_for(lambda: sample(fa.metrics(), "sluice_tls_handshakes_total", side="upstream",
                                      result="failed") >= f0 + 1, 3.0, 0.1),
              "upstream handshakes_total{result=failed} did not grow")
        # a target that accepts and never answers the ClientHello (it holds
        # the connection 10 s): the handshake is bounded by the upstream timers
        t0 = time.monotonic()
        try:
            r = get(f.port, "/silent/x", timeout=6)
            got = "%d after %.2fs" % (r.status, time.monotonic() - t0)
            ok = r.status in (502, 504) and time.monotonic() - t0 < 3.0
        except (TestFailure, Closed) as ex:
            got, ok = "no answer within 6 s (%s)" % ex, False
        check(ok, "TLS upstream that never answers the handshake (connect_ms 500, "
              "response_header_ms 1500): want 502/504 within 3 s, got %s" % got)
        eq(get(f.port, "/stale/after").status, 200, "front sluice still serves")
    alive(f)
    alive(b)


def test_tls_settings_and_files_reload(env):
    pki, e, s, a = setup(env)
    v = a.version()
    # min_version and handshake_timeout_ms change with a PUT
    cfg = json.loads(json.dumps(s.cfg))
    cfg["listeners"][0]["tls"].update({"min_version": "1.3", "handshake_timeout_ms": 300})
    eq(a.put_ok(cfg), v + 1, "PUT min_version 1.3")
    v += 1
    try:
        with Conn(s.port, 5.0, tls=cctx(maxv=TLS12)) as c:
            refused = "no: %s" % c.sock.version()
    except (ssl.SSLError, ConnectionError) as ex:
        refused = "yes: %s" % ex
    check(refused.startswith("yes"), "a TLS 1.2 client after the PUT of min_version 1.3 (%s)" % refused)
    with Conn(s.port, 5.0) as c:
        t0 = time.monotonic()
        check(c.wait_closed(4.0), "silent client not closed within 4 s (handshake_timeout_ms 300 by PUT)")
        dt = time.monotonic() - t0
        check(dt <= 1.5, "silent client closed after %.2fs (handshake_timeout_ms 300 by PUT)" % dt)

    # the certificate files are replaced in place (same paths, same config text):
    # a reload reads them again
    d = pki["default"]
    for src, dst in ((pki["default2"].cert_file, d.cert_file), (pki["default2"].key_file, d.key_file)):
        with open(src, "rb") as f:
            data = f.read()
        with open(dst + ".new", "wb") as f:
            f.write(data)
        os.replace(dst + ".new", dst)
    eq(served(pki, s.port)[0], "default", "certificate before the reload (files replaced)")
    eq(a.put_ok(cfg), v + 1, "PUT of the same document")
    v += 1
    eq(served(pki, s.port)[0], "default2", "certificate after a PUT of the same document "
       "(the files were replaced)")

    # SIGHUP with a broken certificate file: an error, the old certificate kept
    bad = json.loads(json.dumps(cfg))
    bad["listeners"][0]["tls"]["certificates"] = [{"cert_file": d.cert_file,
                                                   "key_file": pki["multi_ec"].key_file}]
    mark = len(s.proc.stderr())
    s.write_config(bad)
    s.proc.signal(signal.SIGHUP)
    check(wait_for(lambda: "/listeners/0/tls/certificates/0/key_file" in stderr_since(s.proc, mark),
                   5.0, 0.05),
          "a bad SIGHUP reload names the key_file path in the log: %r" % stderr_since(s.proc, mark)[-400:])
    eq(a.version(), v, "version after a bad SIGHUP")
    eq(served(pki, s.port)[0], "default2", "certificate after a bad SIGHUP")
    with Conn(s.port, 5.0, tls=cctx()) as c:
        get_ok(c, "/after", "request after a bad SIGHUP")
    alive(s)


def test_concurrent_handshakes(env):
    pki = certs.make(env)
    e, cfg = tls_cfg(env, pki, [tls_listener(pki, ("default", "multi_rsa", "multi_ec"))], workers=2)
    s, a = start(env, cfg)
    errors = []
    lock = threading.Lock()
    ctxs = [cctx(), cctx(maxv=TLS12), cctx(maxv=TLS12, ciphers=RSA12)]
    snis = [None, "a.example.test", "y.wild.example.test"]

    def client(k):
        try:
            for j in range(3):
                with Conn(s.port, 10.0, tls=ctxs[(k + j) % 3], sni=snis[k % 3]) as c:
                    for i in range(3):
                        path = "/c%d/%d/%d" % (k, j, i)
                        c.send(build_request("GET", path))
                        r = c.read_response(timeout=10)
                        if r.status != 200 or r.json()["path"] != path:
                            raise AssertionError("%s: %d %r" % (path, r.status, r.raw[:100]))
        except Exception as ex:  # collected below
            with lock:
                errors.append("client %d: %s: %s" % (k, type(ex).__name__, str(ex)[:200]))

    h0 = hs(a, "listener", "full") + hs(a, "listener", "resumed")
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    check(not errors, "%d of 40 clients failed, first: %s" % (len(errors), errors[:3]))
    eq(hs(a, "listener", "full") + hs(a, "listener", "resumed") - h0, 120, "handshakes counted")
    alive(s)


def test_close_delimited_over_tls(env):
    pki, e, s, a = setup(env)
    n = (3 << 20) + 11
    for what, req in (("HTTP/1.0", build_request("GET", "/bytes/%d" % n, version="HTTP/1.0")),
                      ("Connection: close", build_request("GET", "/bytes/%d" % n,
                                                          headers=[("Connection", "close")])),
                      ("HTTP/1.1 chunked, Connection: close",
                       build_request("GET", "/bytes/%d?chunked=1" % n, headers=[("Connection", "close")]))):
        with Conn(s.port, 20.0, tls=cctx()) as c:
            c.send(req)
            r = c.read_response(timeout=20)
            eq(r.status, 200, what + ": status")
            eq(len(r.body), n, what + ": body length")
            check(r.body == pattern(n), what + ": body differs from the pattern")
            check(c.wait_closed(3.0), what + ": connection not closed after the response")
    alive(s)


def test_close_notify_and_streaming(env):
    pki, e, s, a = setup(env)
    # a client's close_notify ends the connection promptly
    for v, ctx in (("TLS 1.2", cctx(maxv=TLS12)), ("TLS 1.3", cctx())):
        c = Conn(s.port, 5.0, tls=ctx)
        try:
            get_ok(c, "/cn", v)
            t0 = time.monotonic()
            c.sock.settimeout(3.0)
            try:
                raw = c.sock.unwrap()   # sends close_notify, waits for the peer's (or its FIN)
            except (ssl.SSLError, OSError):
                raw = None
            if raw is not None:
                c.sock = raw
                raw.settimeout(3.0)
                try:
                    tail = raw.recv(100)
                except socket.timeout:
                    tail = None
                except ConnectionResetError:
                    tail = b""
                eq(tail, b"", "%s: the TCP connection after close_notify" % v)
            dt = time.monotonic() - t0
            check(dt < 2.0, "%s: connection ended %.2fs after the client's close_notify" % (v, dt))
        finally:
            c.close()
    # events are passed on as they come, through TLS on either side
    b = s
    _, fcfg = tls_cfg(env, pki, [plain_listener()], e=e,
                      upstreams=[{"name": "u", "targets": [{"address": "127.0.0.1:%d" % b.port}],
                                  "tls": {"ca_file": pki.ca_file}}])
    f, fa = start(env, fcfg)
    for what, port, ctx in (("TLS client", b.port, cctx()), ("TLS upstream", f.port, None)):
        with Conn(port, 5.0, tls=ctx) as c:
            t0 = time.monotonic()
            c.send(build_request("GET", "/sse?n=5&ms=300"))
            r = c.read_head(timeout=5)
            eq(r.status, 200, what + ": /sse status")
            c.body_until(r, b"data: event 1\n\n", 3)
            t1 = time.monotonic() - t0
            c.body_until(r, b"data: event 2\n\n", 3)
            t2 = time.monotonic() - t0
            body = c.body_until(r, None, 5)
            t5 = time.monotonic() - t0
            eq(body.count(b"data: event"), 5, what + ": events")
            check(t1 < 0.8 and t2 < 1.0 and t5 > 1.0,
                  "%s: events not passed on as they came (event 1 at %.2fs, event 2 at %.2fs, "
                  "end at %.2fs; one every 300 ms)" % (what, t1, t2, t5))
    alive(f)
    alive(b)


def test_resumption_bound_to_server_name(env):
    # RFC 6066 section 3: a server MUST NOT resume a (TLS 1.2) session when the
    # client asks for a different server name; else the client would get the
    # old name's certificate for a name it does not cover
    pki, e, s, a = setup(env, ("default", "multi_rsa", "multi_ec"))
    ctx = cctx(maxv=TLS12)
    with Conn(s.port, 5.0, tls=ctx, sni="a.example.test") as c:
        get_ok(c, "/first", "first connection")
        sess = c.sock.session
    with Conn(s.port, 5.0, tls=ctx, sni="a.example.test", session=sess) as c:
        check(c.sock.session_reused, "same name: session resumed")
    with Conn(s.port, 5.0, tls=ctx, sni="default.example.test", session=sess) as c:
        got = (c.sock.session_reused, pki.name_of(peer(c)))
        eq(got, (False, "default"), "TLS 1.2 session of a.example.test offered for "
           "default.example.test: (resumed, certificate)")
        get_ok(c, "/other", "request for the other name")
    alive(s)


def test_upstream_tls_names(env):
    # B's first (default) certificate is for a.example.test; "default"
    # (localhost, 127.0.0.1) is chosen only by SNI "localhost"
    pki = certs.make(env)
    e = env.echo("e")
    _, bcfg = tls_cfg(env, pki, [tls_listener(pki, ("multi_rsa", "default"))], e=e)
    b, ba = start(env, bcfg)
    ca = pki.ca_file
    ups = [
        # a DNS name target: SNI and verification use it -> B's "default" certificate
        {"name": "byname", "targets": [{"address": "localhost:%d" % b.port}], "tls": {"ca_file": ca}},
        # an IP target, no sni: no SNI sent -> B's first certificate, which has no
        # IP:127.0.0.1 -> verification of the IP fails
        {"name": "byip", "targets": [{"address": "127.0.0.1:%d" % b.port}], "tls": {"ca_file": ca}},
        # an explicit sni matching the first certificate
        {"name": "bysni", "targets": [{"address": "127.0.0.1:%d" % b.port}],
         "tls": {"ca_file": ca, "sni": "a.example.test"}},
        # the name target with another sni: verified against that sni
        {"name": "nameandsni", "targets": [{"address": "localhost:%d" % b.port}],
         "tls": {"ca_file": ca, "sni": "x.wild.example.test"}},
    ]
    _, fcfg = tls_cfg(env, pki, [plain_listener()], e=e, upstreams=ups,
                      routes=prefix_routes(["byname", "byip", "bysni", "nameandsni"]))
    f, fa = start(env, fcfg)
    for n, want, why in (("byname", 200, None), ("byip", 502, r"verify.*(mismatch|IP address)"),
                         ("bysni", 200, None), ("nameandsni", 200, None)):
        mark = len(f.proc.stderr())
        r = get(f.port, "/%s/x" % n, timeout=8)
        eq(r.status, want, "upstream %s (body %r, log %r)" % (n, r.body[:200],
                                                               stderr_since(f.proc, mark)[-300:]))
        if why:
            check(wait_for(lambda: re.search(why, stderr_since(f.proc, mark), re.I), 3.0, 0.05),
                  "upstream %s: log says why (/%s/): %r" % (n, why, stderr_since(f.proc, mark)[-400:]))
    alive(f)
    alive(b)


def test_session_tickets_off(env):
    # "session_tickets": false: no ticket is issued, so nothing resumes
    pki = certs.make(env)
    lst = tls_listener(pki)
    lst["tls"]["session_tickets"] = False
    e, cfg = tls_cfg(env, pki, [lst])
    s, a = start(env, cfg)
    for v, ctx in (("TLS 1.2", cctx(maxv=TLS12)), ("TLS 1.3", cctx(minv=TLS13))):
        with Conn(s.port, 5.0, tls=ctx) as c:
            get_ok(c, "/first", v + " first connection")
            sess = c.sock.session
        with Conn(s.port, 5.0, tls=ctx, session=sess) as c:
            check(not c.sock.session_reused, v + ": not resumed without tickets")
            get_ok(c, "/second", v + " second connection")
    eq(hs(a, "listener", "resumed"), 0, "resumed handshakes counted")
    alive(s)


def test_client_leaves_while_upstream_thinks(env):
    """A TLS client that hangs up (FIN, or a reset: closing with records
    unread) while the backend has not answered yet: sluice closes the
    upstream connection at once (an LLM stops generating), as on a plain
    listener, not at response_header_ms."""
    import struct
    from test_16_policy_auth import SilentAuth
    pki = certs.make(env)
    be = SilentAuth()       # a backend that reads the request and never answers
    try:
        e, cfg = tls_cfg(env, pki, [tls_listener(pki)],
                         upstreams=[{"name": "u", "targets": [{"address": be.addr}],
                                     "timeouts": {"response_header_ms": 30000}}])
        s, a = start(env, cfg)
        for i, how in enumerate(("FIN", "reset")):
            c = Conn(s.port, 5.0, tls=cctx())
            c.send(build_request("GET", "/think", "x"))
            check(wait_for(lambda: len(be.got) > i, 10.0), "%s: the request reached the backend" % how)
            if how == "reset":
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            check(wait_for(lambda: len(be.closed) > i, 15.0), "%s: the upstream connection closed" % how)
            check(be.closed[i] - be.got[i] < 10.0, "%s: long before response_header_ms (30 s)" % how)
        alive(s)
    finally:
        be.stop()
