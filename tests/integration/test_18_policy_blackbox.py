"""Traffic policy checked black-box against SPEC "Traffic policy (route
fields)" sentence by sentence: the check order (each check answers at once),
access lists (IPv4 sources on 127/8 and IPv6 ::1), api_key defaults, the 401
challenges, x-auth-id and credential handling, forward auth against a tiny
authorisation server written here, rate_limit keys and Retry-After, a
token_budget spent by sluice-echo's usage, a Redis store that is not running,
config errors naming JSON paths, metric names, and the SPEC's own example
route.  Each case asserts what the SPEC says, not what the code does."""
import hashlib
import json
import os
import socket
import subprocess
import threading

from harness import (ROOT, SLUICE, TestFailure, build_request, check, eq, free_port, request,
                     wait_for)

KEY_A = "sk-bb-team-a-0123456789"
KEY_B = "sk-bb-team-b-9876543210"


def ups(*echoes, extra=()):
    return [{"name": e.id, "targets": [{"address": e.addr}]} for e in echoes] + list(extra)


def rt(name, prefix, upstream="e", **policy):
    r = {"name": name, "match": {"path": {"prefix": prefix}}, "upstream": upstream}
    r.update(policy)
    return r


def keys_file(env):
    return env.write("keys.json", [{"id": "team-a", "sha256": hashlib.sha256(KEY_A.encode()).hexdigest()},
                                   {"id": "team-b", "sha256": hashlib.sha256(KEY_B.encode()).hexdigest()}])


class R:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def h(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def up(self, name):
        """Values of name as the echo backend received them."""
        name = name.lower()
        return [v for k, v in json.loads(self.body)["headers"] if k.lower() == name]

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:200])


def req(port, path, headers=(), source=None, method="GET", body=None, host="127.0.0.1"):
    """One request on its own connection (from source, when given)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(5.0)
    try:
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        s.sendall(build_request(method, path, host="t", headers=list(headers) + [("Connection", "close")],
                                body=body))
        data = b""
        while True:
            try:
                got = s.recv(65536)
            except socket.timeout:
                raise TestFailure("no answer within 5 s for %s %s" % (method, path))
            except ConnectionResetError:
                break
            if not got:
                break
            data += got
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    check(lines[0].startswith("HTTP/1."), "a response to %s: %r" % (path, data[:200]))
    h = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        h.setdefault(k.strip().lower(), []).append(v.strip())
    if "content-length" in h:
        rest = rest[:int(h["content-length"][0])]
    return R(int(lines[0].split()[1]), h, rest)


def st(port, path, headers=(), **kw):
    return req(port, path, headers, **kw).status


def check_fails(env, cfg, path_want):
    p = env.write("bad.json", cfg)
    rc, out, err = env.run([SLUICE, "--check", "--config", p])
    eq(rc, 1, "exit status of --check for %s (%s)" % (path_want, err.strip()[:300]))
    check(path_want in err, "the error names %s: %s" % (path_want, err.strip()[:400]))


def check_ok(env, cfg):
    p = env.write("good.json", cfg)
    rc, out, err = env.run([SLUICE, "--check", "--config", p])
    eq(rc, 0, "exit status of --check (%s)" % err.strip()[:400])


# ------------------------------------------------------------------ order

def test_bb_order_each_check_answers_at_once(env):
    """SPEC: checks run access, auth, rate_limit, token_budget, each answering at once."""
    e = env.echo("e")
    kf = keys_file(env)
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("deny", "/deny", access={"allow": ["10.0.0.0/8"]}, auth={"api_key": {"keys_file": kf}}),
        rt("rl", "/rl", auth={"api_key": {"keys_file": kf}},
           rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1}),
        rt("tb", "/tb", rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1},
           token_budget={"per": "route", "tokens_per_min": 1}),
    ]))
    # a denied address with no credentials: 403, not 401
    r = req(s.port, "/deny/x")
    eq(r.status, 403, "denied address without credentials")
    check(r.h("www-authenticate") is None, "a 403 from access has no challenge: %r" % r)
    eq(st(s.port, "/deny/x", [("Authorization", "Bearer " + KEY_A)]), 403, "denied address, valid key")
    # the route's one request spent; then a bad credential is 401, not 429
    eq(st(s.port, "/rl/x", [("Authorization", "Bearer " + KEY_A)]), 200, "first request within the limit")
    eq(st(s.port, "/rl/x", [("Authorization", "Bearer " + KEY_A)]), 429, "second request over the limit")
    r = req(s.port, "/rl/x", [("Authorization", "Bearer wrong")])
    eq(r.status, 401, "bad credential over the rate limit")
    eq(st(s.port, "/rl/x"), 401, "no credential over the rate limit")
    # rate_limit before token_budget: the budget is never reached for a rate-limited request
    eq(st(s.port, "/tb/x"), 200, "first request on a route with both")
    r = req(s.port, "/tb/x")
    eq(r.status, 429, "second request on a route with both")
    check(r.h("retry-after") is not None, "429 carries Retry-After: %r" % r)


# ------------------------------------------------------------------ access

def test_bb_access_deny_wins_and_allow_list(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("both", "/both", access={"allow": ["127.0.0.0/8"], "deny": ["127.0.0.2/32"]}),
        rt("same", "/same", access={"allow": ["127.0.0.3/32"], "deny": ["127.0.0.3/32"]}),
        rt("only", "/only", access={"allow": ["127.0.0.4/32", "10.0.0.0/8"]}),
        rt("deny", "/deny", access={"deny": ["127.0.0.5/32"]}),
    ]))
    eq(st(s.port, "/both", source="127.0.0.1"), 200, "allowed by the /8")
    eq(st(s.port, "/both", source="127.0.0.2"), 403, "deny wins over a wider allow")
    eq(st(s.port, "/same", source="127.0.0.3"), 403, "deny wins over the same allow")
    eq(st(s.port, "/only", source="127.0.0.4"), 200, "on the allow list")
    eq(st(s.port, "/only", source="127.0.0.1"), 403, "an allow list denies any other address")
    eq(st(s.port, "/deny", source="127.0.0.1"), 200, "deny only: others pass")
    eq(st(s.port, "/deny", source="127.0.0.5"), 403, "deny only: the denied one")


def test_bb_access_ipv6_loopback(env):
    e = env.echo("e")
    p6 = sluice_v6(env, e, [
        rt("none", "/none"),
        rt("v4only", "/v4only", access={"allow": ["127.0.0.1/32"]}),
        rt("v6", "/v6", access={"allow": ["::1/128"]}),
        rt("v6deny", "/v6deny", access={"allow": ["::/0"], "deny": ["::1/128"]}),
        rt("v6net", "/v6net", access={"allow": ["2001:db8::/32"]}),
    ])
    eq(st(p6, "/none", host="::1"), 200, "::1 on a route without rules")
    eq(st(p6, "/v4only", host="::1"), 403, "::1 against an IPv4-only allow list")
    eq(st(p6, "/v6", host="::1"), 200, "::1 allowed by ::1/128")
    eq(st(p6, "/v6deny", host="::1"), 403, "::1 denied by ::1/128 over ::/0")
    eq(st(p6, "/v6net", host="::1"), 403, "::1 outside 2001:db8::/32")


def sluice_v6(env, e, routes):
    """sluice listening on [::1] only: its port."""
    p6 = free_port()
    s = env.sluice(env.config(upstreams=ups(e), listeners=[{"name": "v6", "address": "[::1]:%d" % p6}],
                              routes=routes), wait=False)
    if not wait_for(lambda: _v6_up(p6), 5.0):
        raise TestFailure("sluice did not listen on [::1]:%d: %s" % (p6, s.proc.stderr()[-500:]))
    return p6


def _v6_up(port):
    s = socket.socket(socket.AF_INET6)
    s.settimeout(0.5)
    try:
        s.connect(("::1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ------------------------------------------------------------------ auth

def test_bb_api_key_defaults(env):
    e = env.echo("e")
    kf = keys_file(env)
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("dflt", "/dflt", auth={"api_key": {"keys_file": kf}}),
        rt("auth", "/auth", auth={"api_key": {"header": "authorization", "keys_file": kf}}),
        rt("xk", "/xk", auth={"api_key": {"header": "x-api-key", "keys_file": kf}}),
        rt("fwd", "/fwd", auth={"api_key": {"header": "x-api-key", "keys_file": kf}, "forward_credential": True}),
        rt("fwda", "/fwda", auth={"api_key": {"keys_file": kf}, "forward_credential": True}),
    ]))
    for path in ("/dflt", "/auth"):
        r = req(s.port, path, [("Authorization", "Bearer " + KEY_A), ("X-Auth-Id", "admin")])
        eq(r.status, 200, "%s: Authorization: Bearer <key>" % path)
        eq(r.up("x-auth-id"), ["team-a"], "%s: the auth id upstream (the client's removed)" % path)
        eq(r.up("authorization"), [], "%s: the credential is removed upstream" % path)
        r = req(s.port, path, [("Authorization", KEY_A)])
        eq(r.status, 401, "%s: the key without the default prefix" % path)
        check((r.h("www-authenticate") or "").startswith("Bearer"),
              "%s: 401 carries WWW-Authenticate: Bearer: %r" % (path, r))
        r = req(s.port, path)
        eq(r.status, 401, "%s: no credential" % path)
        check((r.h("www-authenticate") or "").startswith("Bearer"), "%s: challenge without credential: %r" % (path, r))
        eq(st(s.port, path, [("X-Api-Key", KEY_A)]), 401, "%s: the key in another header" % path)
    r = req(s.port, "/xk", [("X-Api-Key", KEY_B), ("Authorization", "Bearer other")])
    eq(r.status, 200, "x-api-key with the default empty prefix")
    eq(r.up("x-auth-id"), ["team-b"], "auth id of x-api-key")
    eq(r.up("x-api-key"), [], "the api_key header is removed upstream")
    r = req(s.port, "/xk", [("X-Api-Key", "Bearer " + KEY_B)])
    eq(r.status, 401, "x-api-key with a Bearer prefix (the default prefix there is empty)")
    check((r.h("www-authenticate") or "").startswith("Bearer"), "api_key 401 challenge: %r" % r)
    eq(st(s.port, "/xk", [("Authorization", "Bearer " + KEY_B)]), 401, "x-api-key route, key in Authorization")
    r = req(s.port, "/fwd", [("X-Api-Key", KEY_A)])
    eq(r.status, 200, "forward_credential route")
    eq(r.up("x-api-key"), [KEY_A], "forward_credential keeps the credential")
    eq(r.up("x-auth-id"), ["team-a"], "auth id with forward_credential")
    r = req(s.port, "/fwda", [("Authorization", "Bearer " + KEY_A)])
    eq(r.up("authorization"), ["Bearer " + KEY_A], "forward_credential keeps Authorization")


def test_bb_x_auth_id_removed_without_auth(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("acc", "/acc", access={"allow": ["127.0.0.0/8"]}),
        rt("plain", "/")]))
    for path in ("/plain", "/acc"):
        r = req(s.port, path, [("X-Auth-Id", "root"), ("x-auth-id", "root2")])
        eq(r.status, 200, path)
        eq(r.up("x-auth-id"), [], "%s: a client's x-auth-id never reaches upstream" % path)


def test_bb_basic_and_jwt_challenges(env):
    e = env.echo("e")
    hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "bbsalt", "s3cret"], capture_output=True,
                            check=True).stdout.decode().strip()
    uf = env.write("htpasswd", "carol:%s\n" % hashed)
    jwks = os.path.join(ROOT, "examples", "jwt.jwks")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("basic", "/basic", auth={"basic": {"users_file": uf}}),
        rt("jwt", "/jwt", auth={"jwt": {"jwks_file": jwks, "algorithms": ["ES256", "RS256"]}}),
    ]))
    import base64
    good = "Basic " + base64.b64encode(b"carol:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"carol:nope").decode()
    for creds, what in (((), "no credential"), ((("Authorization", bad),), "wrong password")):
        r = req(s.port, "/basic", creds)
        eq(r.status, 401, "basic, %s" % what)
        eq(r.h("www-authenticate"), 'Basic realm="sluice"', "basic challenge, %s" % what)
    r = req(s.port, "/basic", [("Authorization", good), ("X-Auth-Id", "mallory")])
    eq(r.status, 200, "basic, right password")
    eq(r.up("x-auth-id"), ["carol"], "basic: the auth id is the user name")
    eq(r.up("authorization"), [], "basic: the credential is removed")
    for creds, what in (((), "no token"), ((("Authorization", "Bearer a.b.c"),), "a bad token")):
        r = req(s.port, "/jwt", creds)
        eq(r.status, 401, "jwt, %s" % what)
        check((r.h("www-authenticate") or "").startswith("Bearer"), "jwt challenge, %s: %r" % (what, r))


# ------------------------------------------------------------------ forward auth

class Authz:
    """A small authorisation server: the answer is picked by the x-want
    header sluice passes on from the client."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.seen = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        """Keep-alive: each request's head is read (its body skipped) and
        answer(c, request line, headers) writes the answer; False closes."""
        c.settimeout(5.0)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                hs = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    hs[k.strip().lower()] = v.strip()
                n = int(hs.get("content-length", "0"))
                while len(buf) < n:
                    buf += c.recv(65536)
                buf = buf[n:]
                self.seen.append((lines[0], hs))
                if not self.answer(c, lines[0], hs):
                    return
        except OSError:
            pass
        finally:
            c.close()

    def answer(self, c, line, hs):
        want = hs.get("x-want", "ok")
        if want == "ok":
            out = ("HTTP/1.1 200 OK\r\nx-user: bob\r\nx-auth-id: bob-id\r\nx-other: no\r\n"
                   "Content-Length: 0\r\n\r\n")
        elif want in ("401", "403"):
            body = "authz says %s\n" % want
            out = ("HTTP/1.1 %s No\r\nWWW-Authenticate: Bearer realm=\"authz\"\r\n"
                   "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                   % (want, len(body), body))
        else:
            out = "HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\noops\n"
        c.sendall(out.encode())
        return True

    def close(self):
        self.stop = True
        self.ls.close()


def test_bb_forward_auth(env):
    e = env.echo("e")
    a = Authz()
    dead = free_port()
    try:
        extra = [{"name": "authz", "targets": [{"address": "127.0.0.1:%d" % a.port}]},
                 {"name": "gone", "targets": [{"address": "127.0.0.1:%d" % dead}]}]
        s = env.sluice(env.config(upstreams=ups(e, extra=extra), routes=[
            rt("f", "/f", auth={"forward": {"upstream": "authz", "path": "/check", "copy_headers": ["x-user"]}}),
            rt("g", "/g", auth={"forward": {"upstream": "gone", "path": "/check"}}),
        ]))
        r = req(s.port, "/f/x?q=1", [("X-Want", "ok"), ("Authorization", "Bearer abc"), ("X-Auth-Id", "evil")])
        eq(r.status, 200, "2xx from the auth server allows")
        eq(r.up("x-user"), ["bob"], "copy_headers added upstream")
        eq(r.up("x-other"), [], "an unlisted header of the answer is not copied")
        eq(r.up("x-auth-id"), ["bob-id"], "the auth server's x-auth-id is the auth id")
        eq(r.up("authorization"), [], "the credential is removed upstream")
        check(any(h.get("x-want") == "ok" and h.get("authorization") == "Bearer abc" for _, h in a.seen),
              "the auth server saw the client's headers: %r" % a.seen)
        check(all(l.split()[0] == "GET" for l, _ in a.seen), "the request's method: %r" % a.seen)
        for code in ("401", "403"):
            r = req(s.port, "/f/x", [("X-Want", code)])
            eq(r.status, int(code), "%s passed back" % code)
            eq(r.body, ("authz says %s\n" % code).encode(), "%s body passed back" % code)
        r = req(s.port, "/f/x", [("X-Want", "500")])
        eq(r.status, 503, "500 from the auth server")
        eq(st(s.port, "/g/x"), 503, "auth server down")
    finally:
        a.close()


def test_bb_forward_post_sends_no_body(env):
    e = env.echo("e")
    a = Authz()
    try:
        extra = [{"name": "authz", "targets": [{"address": "127.0.0.1:%d" % a.port}]}]
        s = env.sluice(env.config(upstreams=ups(e, extra=extra), routes=[
            rt("f", "/f", auth={"forward": {"upstream": "authz", "path": "/check"}})]))
        body = b"x" * 3000
        r = req(s.port, "/f/p", [("X-Want", "ok")], method="POST", body=body)
        eq(r.status, 200, "POST allowed")
        check(all(l.split()[0] == "POST" for l, _ in a.seen), "the auth server saw POST: %r" % a.seen)
        check(all(h.get("content-length", "0") == "0" and "transfer-encoding" not in h for _, h in a.seen),
              "no body to the auth server: %r" % a.seen)
    finally:
        a.close()


# ------------------------------------------------------------------ rate limits

def test_bb_rate_limit_keys_and_retry_after(env):
    e = env.echo("e")
    lim = {"requests_per_s": 0.4, "burst": 1}     # one per 2.5 s: Retry-After 3
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("ip", "/ip", rate_limit=dict(lim, per="client_ip")),
        rt("route", "/route", rate_limit=dict(lim, per="route")),
        rt("hdr", "/hdr", rate_limit=dict(lim, per="header:x-tenant")),
    ]))
    eq(st(s.port, "/ip", source="127.0.0.2"), 200, "client_ip: first from .2")
    r = req(s.port, "/ip", source="127.0.0.2")
    eq(r.status, 429, "client_ip: second from .2")
    ra = r.h("retry-after") or ""
    check(ra.isdigit(), "Retry-After is whole seconds: %r" % ra)
    eq(int(ra), 3, "Retry-After of 2.5 s rounded up")
    eq(st(s.port, "/ip", source="127.0.0.3"), 200, "client_ip: another address has its own bucket")
    eq(st(s.port, "/route", source="127.0.0.2"), 200, "route: first")
    eq(st(s.port, "/route", source="127.0.0.3"), 429, "route: one bucket for every client")
    eq(st(s.port, "/hdr", [("X-Tenant", "a")]), 200, "header: tenant a")
    eq(st(s.port, "/hdr", [("X-Tenant", "b")]), 200, "header: tenant b has its own bucket")
    r = req(s.port, "/hdr", [("x-tenant", "a")])
    eq(r.status, 429, "header: tenant a again (header name any case)")
    eq(int(r.h("retry-after") or "0"), 3, "Retry-After on the header key")


def test_bb_retry_after_rounds_up_small(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("r", "/", rate_limit={"per": "route", "requests_per_s": 3, "burst": 1})]))
    eq(st(s.port, "/"), 200, "first")
    r = req(s.port, "/")
    eq(r.status, 429, "second within 1/3 s")
    eq(r.h("retry-after"), "1", "a third of a second rounds up to 1")


def test_bb_token_budget(env):
    e = env.echo("e")
    kf = keys_file(env)
    aport = free_port()
    s = env.sluice(env.config(upstreams=ups(e), admin={"address": "127.0.0.1:%d" % aport}, routes=[
        rt("chat", "/v1", auth={"api_key": {"keys_file": kf}},
           token_budget={"per": "auth_id", "tokens_per_min": 60})]))
    body = json.dumps({"model": "m", "max_tokens": 100,
                       "messages": [{"role": "user", "content": "one two three"}]})
    ha = [("Authorization", "Bearer " + KEY_A), ("Content-Type", "application/json")]
    r = req(s.port, "/v1/chat/completions", ha, method="POST", body=body)
    eq(r.status, 200, "first completion within the budget")
    usage = json.loads(r.body)["usage"]
    eq(usage["total_tokens"], 103, "sluice-echo's usage")
    r = wait_for(lambda: (lambda x: x if x.status == 429 else None)(
        req(s.port, "/v1/chat/completions", ha, method="POST", body=body)), 2.0)
    check(r is not None, "the spent budget answers 429")
    ra = r.h("retry-after") or ""
    check(ra.isdigit() and int(ra) >= 1, "Retry-After whole seconds: %r" % ra)
    # 103 tokens against 60/min: about 43 s of debt
    check(30 <= int(ra) <= 61, "Retry-After near the time the refill pays the debt: %s" % ra)
    hb = [("Authorization", "Bearer " + KEY_B), ("Content-Type", "application/json")]
    eq(st(s.port, "/v1/chat/completions", hb, method="POST", body=body), 200, "another auth id has its own budget")
    m = request(aport, "GET", "/metrics").body.decode()
    check(any(l.startswith("sluice_tokens_total") and 'auth_id="team-a"' in l and 'route="chat"' in l
              for l in m.splitlines()), "tokens counted by route and auth id in /metrics")


# ------------------------------------------------------------------ redis store

def test_bb_redis_not_running(env):
    e = env.echo("e")
    dead = free_port()
    lim = {"per": "route", "requests_per_s": 100, "burst": 100}
    for on_error, want in (("allow", 200), ("deny", 503), (None, 200)):
        store = {"redis": "127.0.0.1:%d" % dead}
        if on_error:
            store["on_error"] = on_error
        s = env.sluice(env.config(upstreams=ups(e), rate_limit_store=store,
                                  routes=[rt("r", "/", rate_limit=lim), ]))
        got = [st(s.port, "/") for _ in range(3)]
        eq(got, [want] * 3, "Redis not running, on_error %s" % on_error)
        s.proc.stop()


# ------------------------------------------------------------------ config errors

def test_bb_config_errors_name_paths(env):
    e = env.echo("e")
    kf = keys_file(env)
    jwks = os.path.join(ROOT, "examples", "jwt.jwks")

    def cfg(**policy):
        return env.config(upstreams=ups(e), routes=[rt("ok", "/ok"), rt("p", "/", **policy)])
    check_fails(env, cfg(access={"allow": ["10.0.0.0/8", "10.0.0.300/8"]}), "/routes/1/access/allow/1")
    check_fails(env, cfg(access={"deny": ["::1/129"]}), "/routes/1/access/deny/0")
    check_fails(env, cfg(access={"allow": ["banana"]}), "/routes/1/access/allow/0")
    check_fails(env, cfg(auth={"kerberos": {}}), "/routes/1/auth/kerberos")
    check_fails(env, cfg(auth={}), "/routes/1/auth")
    check_fails(env, cfg(auth={"api_key": {"keys_file": kf}, "basic": {"users_file": kf}}), "/routes/1/auth")
    check_fails(env, cfg(auth={"jwt": {"jwks_file": jwks, "algorithms": ["ES256", "none"]}}),
                "/routes/1/auth/jwt/algorithms/1")
    check_fails(env, cfg(rate_limit={"per": "user", "requests_per_s": 1}), "/routes/1/rate_limit/per")
    check_fails(env, cfg(rate_limit={"per": "header:", "requests_per_s": 1}), "/routes/1/rate_limit/per")
    check_fails(env, cfg(rate_limit={"per": "auth_id", "requests_per_s": 1}), "/routes/1/rate_limit/per")
    check_fails(env, cfg(token_budget={"per": "nobody", "tokens_per_min": 10}), "/routes/1/token_budget/per")
    check_fails(env, cfg(rate_limit={"per": "route", "requests_per_s": 1}, colour="red"), "/routes/1/colour")
    check_fails(env, env.config(upstreams=ups(e), routes=[rt("p", "/")],
                                rate_limit_store={"redis": "127.0.0.1:6379", "on_error": "maybe"}),
                "/rate_limit_store/on_error")


def test_bb_spec_example_route_loads(env):
    e = env.echo("e")
    kf = keys_file(env)
    route = json.loads("""
{ "name": "api",
  "match": { "path": { "prefix": "/v1" } },
  "access": { "allow": ["10.0.0.0/8", "127.0.0.1/32", "::1/128"], "deny": ["10.9.0.0/16"] },
  "auth": { "api_key": { "header": "authorization", "prefix": "Bearer ", "keys_file": "keys.json" } },
  "rate_limit": { "per": "auth_id", "requests_per_s": 50, "burst": 100 },
  "token_budget": { "per": "auth_id", "tokens_per_min": 200000 },
  "upstream": "llm" }""")
    route["auth"]["api_key"]["keys_file"] = kf
    aport = free_port()
    cfg = env.config(upstreams=[{"name": "llm", "targets": [{"address": e.addr}]}], routes=[route],
                     admin={"address": "127.0.0.1:%d" % aport})
    check_ok(env, cfg)
    s = env.sluice(cfg)
    body = json.dumps({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
    r = req(s.port, "/v1/chat/completions", [("Authorization", "Bearer " + KEY_A)], method="POST", body=body)
    eq(r.status, 200, "the SPEC example admits a known key from 127.0.0.1")
    eq(st(s.port, "/v1/chat/completions", source="127.0.0.2", method="POST", body=body,
          headers=[("Authorization", "Bearer " + KEY_A)]), 403, "127.0.0.2 is not on the example's allow list")
    eq(st(s.port, "/v1/models"), 401, "no key")
    m = request(aport, "GET", "/metrics").body.decode()
    names = {l.split("{")[0].split(" ")[0] for l in m.splitlines() if l and not l.startswith("#")}
    for n in ("sluice_policy_decisions_total", "sluice_tokens_total"):
        check(n in names, "%s in /metrics (have %s)" % (n, sorted(x for x in names if "polic" in x or "tok" in x)))
    dec = [l for l in m.splitlines() if l.startswith("sluice_policy_decisions_total")]
    for check_name in ("access", "auth", "rate_limit", "token_budget"):
        check(any('check="%s"' % check_name in l for l in dec), "a decision of %s counted: %r" % (check_name, dec))
    check(any('check="access"' in l and 'result="denied"' in l for l in dec), "access denial counted: %r" % dec)
    check(any('check="auth"' in l and 'result="denied"' in l for l in dec), "auth denial counted: %r" % dec)


# ------------------------------------------------------------------ more edges

def test_bb_denials_keep_the_connection_in_step(env):
    """A 401/403/429 is an answer like another: a keep-alive client's next
    request on the same connection is read as a request (a body the denied
    request carried is not taken for one), or the connection is closed."""
    from harness import Conn
    e = env.echo("e")
    kf = keys_file(env)
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("a", "/a", auth={"api_key": {"keys_file": kf}}),
        rt("d", "/d", access={"deny": ["127.0.0.0/8"]}),
        rt("r", "/r", rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1}),
        rt("ok", "/")]))
    smuggle = b"GET /ok/smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    for path, hs in (("/a", []), ("/d", []), ("/r", [])):
        for framing in ("cl", "chunked"):
            with Conn(s.port) as c:
                if framing == "cl":
                    c.send(build_request("POST", path, "t", hs, smuggle))
                else:
                    c.send(build_request("POST", path, "t", hs + [("Transfer-Encoding", "chunked")],
                                         b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggle), smuggle)))
                first = c.read_response()
                if path == "/r" and first.status == 200:
                    c.close()
                    continue
                check(first.status in (401, 403, 429), "%s %s: a denial: %r" % (path, framing, first))
                closes = (first.h("connection") or "").lower() == "close"
                try:
                    c.send(build_request("GET", "/ok/next", "t"))
                    nxt = c.read_response(timeout=3.0)
                except Exception:
                    check(closes, "%s %s: the connection died without Connection: close" % (path, framing))
                    continue
                eq(nxt.status, 200, "%s %s: the next request on the connection" % (path, framing))
                eq(json.loads(nxt.body)["path"], "/ok/next", "%s %s: the next request is the client's, not the denied body" % (path, framing))
                check(not c.read_some(0.2), "%s %s: nothing more on the connection" % (path, framing))


def test_bb_forward_more_statuses(env):
    e = env.echo("e")
    a = Authz2()
    try:
        extra = [{"name": "authz", "targets": [{"address": "127.0.0.1:%d" % a.port}]}]
        s = env.sluice(env.config(upstreams=ups(e, extra=extra), routes=[
            rt("f", "/f", auth={"forward": {"upstream": "authz", "path": "/check"}})]))
        eq(st(s.port, "/f", [("X-Want", "204")]), 200, "204 from the auth server allows")
        for code in ("302", "404", "429", "502"):
            eq(st(s.port, "/f", [("X-Want", code)]), 503, "%s from the auth server" % code)
        r = req(s.port, "/f", [("X-Want", "401")])
        eq(r.status, 401, "401 passed back")
        check(r.h("www-authenticate") is not None, "a 401 passed back still carries WWW-Authenticate: %r" % r)
    finally:
        a.close()


class Authz2(Authz):
    def answer(self, c, line, hs):
        code = int(hs.get("x-want", "200"))
        extra = "Location: /login\r\n" if code == 302 else ""
        extra += 'WWW-Authenticate: Basic realm="authz"\r\n' if code == 401 else ""
        if code == 204:
            out = "HTTP/1.1 204 No Content\r\n\r\n"
        else:
            out = "HTTP/1.1 %d X\r\n%sContent-Length: 3\r\nConnection: close\r\n\r\nno\n" % (code, extra)
        c.sendall(out.encode())
        return False


class Llm(Authz):
    """An LLM backend whose usage has no total_tokens."""

    def answer(self, c, line, hs):
        body = b'{"id":"x","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":50}}'
        # chunked, the usage split over two chunks
        out = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n")
        half = len(body) // 2 + 7
        for part in (body[:half], body[half:]):
            out += b"%x\r\n%s\r\n" % (len(part), part)
        c.sendall(out + b"0\r\n\r\n")
        return False


def test_bb_token_budget_prompt_plus_completion(env):
    llm = Llm()
    try:
        s = env.sluice(env.config(upstreams=[{"name": "llm", "targets": [{"address": "127.0.0.1:%d" % llm.port}]}],
                                  routes=[rt("c", "/", "llm", token_budget={"per": "client_ip", "tokens_per_min": 60})]))
        eq(st(s.port, "/v1/chat/completions", method="POST", body="{}"), 200, "first")
        r = wait_for(lambda: (lambda x: x if x.status == 429 else None)(
            req(s.port, "/v1/chat/completions", method="POST", body="{}")), 2.0)
        check(r is not None, "90 tokens (prompt + completion) spend a 60/min budget")
        ra = int(r.h("retry-after") or "0")
        # 90 debited from 60: 30 tokens of debt at 1/s
        check(25 <= ra <= 31, "Retry-After for a debt of 30 tokens at 1 a second: %d" % ra)
        eq(st(s.port, "/v1/chat/completions", method="POST", body="{}", source="127.0.0.2"), 200,
           "another client_ip has its own budget")
    finally:
        llm.close()


def test_bb_more_config_cases(env):
    e = env.echo("e")
    kf = keys_file(env)

    def cfg(**policy):
        return env.config(upstreams=ups(e), routes=[rt("p", "/", **policy)])
    check_fails(env, cfg(auth={"api_key": {"keys_file": kf}, "forward_credential": "yes"}),
                "/routes/0/auth/forward_credential")
    check_fails(env, cfg(auth={"api_key": {}}), "/routes/0/auth/api_key")
    check_fails(env, cfg(auth={"api_key": {"keys_file": kf, "colour": 1}}), "/routes/0/auth/api_key/colour")
    check_fails(env, cfg(auth={"forward": {"upstream": "nope", "path": "/c"}}), "/routes/0/auth/forward/upstream")
    check_fails(env, cfg(rate_limit={"per": "route", "requests_per_s": 0}), "/routes/0/rate_limit/requests_per_s")
    check_fails(env, cfg(rate_limit={"per": "route", "requests_per_s": -1}), "/routes/0/rate_limit/requests_per_s")
    check_fails(env, cfg(token_budget={"per": "route", "tokens_per_min": 0}), "/routes/0/token_budget/tokens_per_min")
    check_fails(env, cfg(access={"allow": "127.0.0.1/32"}), "/routes/0/access/allow")
    check_fails(env, cfg(access={"allow": ["127.0.0.1/33"]}), "/routes/0/access/allow/0")
    check_fails(env, cfg(access={"permit": ["127.0.0.1/32"]}), "/routes/0/access/permit")
    check_fails(env, env.config(upstreams=ups(e), routes=[rt("p", "/")], rate_limit_store={"redis": "nonsense"}),
                "/rate_limit_store/redis")


def test_bb_put_config_policy_error(env):
    e = env.echo("e")
    aport = free_port()
    cfg = env.config(upstreams=ups(e), admin={"address": "127.0.0.1:%d" % aport}, routes=[rt("p", "/")])
    s = env.sluice(cfg)
    bad = json.loads(json.dumps(cfg))
    bad["routes"][0]["access"] = {"allow": ["not-an-address"]}
    r = request(aport, "PUT", "/config", headers=[("Content-Type", "application/json")], body=json.dumps(bad))
    eq(r.status, 400, "PUT /config with a bad CIDR")
    eq(r.json().get("path"), "/routes/0/access/allow/0", "the error's path")
    eq(st(s.port, "/"), 200, "the running config stays")
    good = json.loads(json.dumps(cfg))
    good["routes"][0]["access"] = {"deny": ["127.0.0.1/32"]}
    r = request(aport, "PUT", "/config", headers=[("Content-Type", "application/json")], body=json.dumps(good))
    eq(r.status, 200, "PUT /config with an access list")
    eq(st(s.port, "/"), 403, "the new access list applies")


def test_bb_header_key_and_empty_allow(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("h", "/h", rate_limit={"per": "header:X-Tenant", "requests_per_s": 0.01, "burst": 1}),
        rt("none", "/none", access={"allow": []}),
        rt("bare", "/bare", access={"allow": ["127.0.0.1", "::1"]}),
    ]))
    eq(st(s.port, "/h", [("x-tenant", "a")]), 200, "header:X-Tenant, a")
    eq(st(s.port, "/h", [("X-TENANT", "a")]), 429, "header:X-Tenant names the header in any case")
    eq(st(s.port, "/h"), 200, "without the header: its own key")
    eq(st(s.port, "/h"), 429, "requests without the header share one key")
    eq(st(s.port, "/none"), 403, "an empty allow list lets nobody in")
    eq(st(s.port, "/bare"), 200, "a bare address in the list")
    eq(st(s.port, "/bare", source="127.0.0.2"), 403, "a bare address is /32")


def test_bb_denied_requests_never_reach_upstream(env):
    e = env.echo("e")
    kf = keys_file(env)
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("d", "/d", access={"deny": ["127.0.0.0/8"]}),
        rt("a", "/a", auth={"api_key": {"keys_file": kf}}),
        rt("r", "/r", rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1})]))
    before = e.stats()["requests"]
    self_count = e.stats()["requests"] - before     # what one /stats call adds
    before = e.stats()["requests"]
    got = [st(s.port, "/d"), st(s.port, "/a"), st(s.port, "/a", [("Authorization", "Bearer x")]),
           st(s.port, "/r"), st(s.port, "/r"), st(s.port, "/r")]
    eq(got, [403, 401, 401, 200, 429, 429], "statuses")
    eq(e.stats()["requests"] - before - self_count, 1, "only the allowed request reached the backend")


def test_bb_redis_errors_logged_at_most_once_a_second(env):
    e = env.echo("e")
    dead = free_port()
    s = env.sluice(env.config(upstreams=ups(e), rate_limit_store={"redis": "127.0.0.1:%d" % dead},
                              routes=[rt("r", "/", rate_limit={"per": "route", "requests_per_s": 100})]))
    import time
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 1.2:
        eq(st(s.port, "/"), 200, "on_error allow (default)")
        n += 1
    time.sleep(0.1)
    lines = [l for l in s.proc.stderr().splitlines() + s.proc.stdout().splitlines() if "redis" in l.lower()]
    check(lines, "the Redis error is logged (%d requests)" % n)
    check(len(lines) <= 3, "logged at most once a second: %d lines for %d requests in 1.2 s: %r"
          % (len(lines), n, lines[:5]))


def test_bb_keys_and_per_auth_id_config(env):
    e = env.echo("e")
    clear = env.write("clear.json", [{"id": "a", "key": "sk-in-clear"}])
    short = env.write("short.json", [{"id": "a", "sha256": "abcd"}])
    for f in (clear, short):
        check_fails(env, env.config(upstreams=ups(e), routes=[rt("p", "/", auth={"api_key": {"keys_file": f}})]),
                    "/routes/0/auth/api_key/keys_file")
    check_fails(env, env.config(upstreams=ups(e), routes=[
        rt("p", "/", token_budget={"per": "auth_id", "tokens_per_min": 100})]), "/routes/0/token_budget/per")
    check_fails(env, env.config(upstreams=ups(e), routes=[
        rt("p", "/", auth={"api_key": {"keys_file": "/nonexistent/keys.json"}})]), "/routes/0/auth/api_key/keys_file")


def test_bb_earlier_denials_spend_no_later_bucket(env):
    """Each check answers at once: a request refused by access or auth never
    reaches rate_limit or token_budget, so it spends none of their budget."""
    e = env.echo("e")
    kf = keys_file(env)
    ha = [("Authorization", "Bearer " + KEY_A)]
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("a", "/a", auth={"api_key": {"keys_file": kf}},
           rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1}),
        rt("d", "/d", access={"allow": ["127.0.0.1/32"]},
           rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1}),
        rt("t", "/v1", auth={"api_key": {"keys_file": kf}}, token_budget={"per": "route", "tokens_per_min": 1}),
        rt("u", "/u", auth={"api_key": {"keys_file": kf}},
           rate_limit={"per": "auth_id", "requests_per_s": 0.01, "burst": 1}),
    ]))
    eq([st(s.port, "/a", [("Authorization", "Bearer bad")]) for _ in range(3)], [401] * 3, "bad keys")
    eq(st(s.port, "/a", ha), 200, "the bucket is untouched by 401s")
    eq(st(s.port, "/a", [("Authorization", "Bearer bad")]), 401, "bad key on a spent bucket")
    eq([st(s.port, "/d", source="127.0.0.2") for _ in range(3)], [403] * 3, "denied addresses")
    eq(st(s.port, "/d"), 200, "the bucket is untouched by 403s")
    eq(st(s.port, "/d", source="127.0.0.2"), 403, "denied address on a spent bucket")
    body = json.dumps({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    eq(st(s.port, "/v1/chat/completions", ha, method="POST", body=body), 200, "budget: first")
    eq(st(s.port, "/v1/chat/completions", ha, method="POST", body=body), 429, "budget: spent")
    eq(st(s.port, "/v1/chat/completions", method="POST", body=body), 401, "no key on a spent budget: 401")
    eq(st(s.port, "/u", ha), 200, "per auth_id: team-a")
    eq(st(s.port, "/u", ha), 429, "per auth_id: team-a again")
    eq(st(s.port, "/u", [("Authorization", "Bearer " + KEY_B)]), 200, "per auth_id: team-b has its own bucket")


def test_bb_api_key_header_spellings(env):
    e = env.echo("e")
    kf = keys_file(env)
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("cap", "/cap", auth={"api_key": {"header": "Authorization", "keys_file": kf}}),
        rt("raw", "/raw", auth={"api_key": {"header": "authorization", "prefix": "", "keys_file": kf}}),
        rt("tok", "/tok", auth={"api_key": {"header": "x-api-key", "prefix": "Token ", "keys_file": kf}}),
    ]))
    eq(st(s.port, "/cap", [("Authorization", "Bearer " + KEY_A)]), 200, "header Authorization: default prefix Bearer")
    eq(st(s.port, "/raw", [("Authorization", KEY_A)]), 200, "explicit empty prefix on authorization")
    eq(st(s.port, "/raw", [("Authorization", "Bearer " + KEY_A)]), 401, "explicit empty prefix: Bearer is part of the key")
    r = req(s.port, "/tok", [("X-Api-Key", "Token " + KEY_A), ("Authorization", "Basic Zm9vOmJhcg==")])
    eq(r.status, 200, "custom prefix")
    eq(r.up("x-api-key"), [], "the credential header removed")
    eq(r.up("authorization"), ["Basic Zm9vOmJhcg=="], "another route's credential header is not the credential: kept")
    eq(st(s.port, "/tok", [("X-Api-Key", KEY_A)]), 401, "custom prefix missing")


def test_bb_forward_without_auth_id(env):
    e = env.echo("e")
    a = Authz2()
    try:
        extra = [{"name": "authz", "targets": [{"address": "127.0.0.1:%d" % a.port}]}]
        s = env.sluice(env.config(upstreams=ups(e, extra=extra), routes=[
            rt("f", "/f", auth={"forward": {"upstream": "authz", "path": "/check"}})]))
        r = req(s.port, "/f", [("X-Want", "200"), ("X-Auth-Id", "forged")])
        eq(r.status, 200, "allowed")
        eq(r.up("x-auth-id"), [], "no x-auth-id from the auth server: the client's is still removed")
    finally:
        a.close()


def test_bb_ipv6_rate_limit_client_ip(env):
    e = env.echo("e")
    p6 = sluice_v6(env, e, [rt("r", "/", rate_limit={"per": "client_ip", "requests_per_s": 0.01, "burst": 2})])
    eq([st(p6, "/", host="::1") for _ in range(3)], [200, 200, 429], "::1 has a bucket of 2")


def test_bb_client_address_is_the_socket_peer(env):
    """access and per client_ip use the client's address: a client-sent
    X-Forwarded-For / X-Real-IP neither admits it nor gives it a new bucket."""
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("acc", "/acc", access={"allow": ["10.0.0.0/8"]}),
        rt("rl", "/rl", rate_limit={"per": "client_ip", "requests_per_s": 0.01, "burst": 1})]))
    spoof = [("X-Forwarded-For", "10.1.2.3"), ("X-Real-IP", "10.1.2.3"), ("Forwarded", "for=10.1.2.3")]
    eq(st(s.port, "/acc", spoof), 403, "a forged X-Forwarded-For is not the client address")
    eq(st(s.port, "/rl", [("X-Forwarded-For", "10.0.0.1")]), 200, "first")
    eq(st(s.port, "/rl", [("X-Forwarded-For", "10.0.0.2")]), 429, "another X-Forwarded-For, same client")


def test_bb_access_before_forward_auth(env):
    e = env.echo("e")
    a = Authz()
    try:
        extra = [{"name": "authz", "targets": [{"address": "127.0.0.1:%d" % a.port}]}]
        s = env.sluice(env.config(upstreams=ups(e, extra=extra), routes=[
            rt("f", "/f", access={"deny": ["127.0.0.2/32"]},
               auth={"forward": {"upstream": "authz", "path": "/check"}})]))
        r = req(s.port, "/f/x", [("X-Want", "401")], source="127.0.0.2")
        eq(r.status, 403, "a denied address is answered before the auth server is asked")
        eq(a.seen, [], "the auth server was not asked")
        r = req(s.port, "/f/x?q=1", [("X-Want", "ok")])
        eq(r.status, 200, "an allowed address")
        eq(len(a.seen), 1, "one subrequest")
        line, hs = a.seen[0]
        eq(line.split()[1], "/check", "the subrequest's target is the configured path")
        check("/f/x?q=1" in [hs.get("x-forwarded-uri"), hs.get("x-original-uri")],
              "the original target reaches the auth server: %r" % (hs,))
    finally:
        a.close()


def test_bb_denials_have_short_bodies(env):
    e = env.echo("e")
    kf = keys_file(env)
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("d", "/d", access={"deny": ["127.0.0.0/8"]}),
        rt("a", "/a", auth={"api_key": {"keys_file": kf}}),
        rt("r", "/r", rate_limit={"per": "route", "requests_per_s": 0.01, "burst": 1})]))
    req(s.port, "/r")
    for path, want in (("/d", 403), ("/a", 401), ("/r", 429)):
        r = req(s.port, path)
        eq(r.status, want, path)
        check(r.h("content-length") is not None and 0 < len(r.body) < 1024,
              "%s: a short body of known length: %r" % (path, r))


def test_bb_basic_bcrypt_and_sha512(env):
    import base64
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import crypt
    e = env.echo("e")
    bc = crypt.crypt("b-pass", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))    # cost 4
    check(bc.startswith("$2"), "a bcrypt hash: %r" % bc)
    sha = crypt.crypt("s-pass", crypt.mksalt(crypt.METHOD_SHA512))
    uf = env.write("htpasswd", "# users\nbea:%s\nsam:%s\n" % (bc, sha))
    s = env.sluice(env.config(upstreams=ups(e), routes=[rt("b", "/", auth={"basic": {"users_file": uf}})]))

    def basic(u, p):
        return [("Authorization", "Basic " + base64.b64encode(("%s:%s" % (u, p)).encode()).decode())]
    for u, p in (("bea", "b-pass"), ("sam", "s-pass")):
        r = req(s.port, "/", basic(u, p))
        eq(r.status, 200, "%s with the right password" % u)
        eq(r.up("x-auth-id"), [u], "auth id of %s" % u)
    for u, p in (("bea", "s-pass"), ("sam", "b-pass"), ("nobody", "x"), ("bea", "")):
        r = req(s.port, "/", basic(u, p))
        eq(r.status, 401, "%s:%s" % (u, p))
        eq(r.h("www-authenticate"), 'Basic realm="sluice"', "challenge for %s" % u)
    r = req(s.port, "/", [("Authorization", "Bearer b-pass")])
    eq(r.status, 401, "another scheme on a basic route")
    eq(r.h("www-authenticate"), 'Basic realm="sluice"', "challenge for another scheme")


def test_bb_jwt_rules(env):
    import time
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    e = env.echo("e")
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "ES256", "use": "sig"})
    jf = env.write("jwks.json", {"keys": [jwk]})
    s = env.sluice(env.config(upstreams=ups(e), routes=[rt("j", "/", auth={"jwt": {
        "jwks_file": jf, "issuer": "https://iss", "audiences": ["api"], "algorithms": ["ES256"],
        "clock_skew_s": 60, "claims_to_headers": {"email": "x-email"}}})]))
    now = int(time.time())
    base = {"sub": "user-7", "iss": "https://iss", "aud": "api", "exp": now + 300, "email": "u@x"}

    def tok(claims=None, kid="k1", alg="ES256", k=key):
        return jwt.encode(dict(base, **(claims or {})), k, algorithm=alg, headers={"kid": kid})

    def call(t):
        return req(s.port, "/", [("Authorization", "Bearer " + t), ("X-Email", "forged"), ("X-Auth-Id", "forged")])
    r = call(tok())
    eq(r.status, 200, "a good token")
    eq(r.up("x-auth-id"), ["user-7"], "the auth id is sub")
    eq(r.up("x-email"), ["u@x"], "claims_to_headers (the client's own removed)")
    eq(r.up("authorization"), [], "the token is removed")
    other = ec.generate_private_key(ec.SECP256R1())
    none_tok = jwt.encode(base, None, algorithm="none", headers={"kid": "k1"})
    bad = {
        "expired beyond skew": tok({"exp": now - 120}),
        "nbf in the future beyond skew": tok({"nbf": now + 600}),
        "another issuer": tok({"iss": "https://other"}),
        "another audience": tok({"aud": "web"}),
        "unknown kid": tok(kid="k2"),
        "signed by another key": tok(k=other),
        "alg none": none_tok,
        "alg none, signature dropped": none_tok.rstrip("."),
        "HS256 not listed": jwt.encode(base, "a-secret-of-at-least-32-bytes-long!!", algorithm="HS256",
                                       headers={"kid": "k1"}),
    }
    for what, t in bad.items():
        r = call(t)
        eq(r.status, 401, what)
        check((r.h("www-authenticate") or "").startswith("Bearer"), "%s: challenge %r" % (what, r))
    eq(call(tok({"exp": now - 30})).status, 200, "expired within the 60 s skew")
    eq(call(tok({"aud": ["web", "api"]})).status, 200, "aud as an array naming api")


def test_bb_pipelined_requests_through_async_checks(env):
    """Checks that wait (forward auth, a password hash) keep a pipelined
    connection's answers in order, one per request."""
    import base64
    from harness import Conn
    e = env.echo("e")
    a = Authz()
    hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "pipe", "pw"], capture_output=True,
                            check=True).stdout.decode().strip()
    uf = env.write("htpasswd", "pat:%s\n" % hashed)
    try:
        extra = [{"name": "authz", "targets": [{"address": "127.0.0.1:%d" % a.port}]}]
        s = env.sluice(env.config(upstreams=ups(e, extra=extra), routes=[
            rt("f", "/f", auth={"forward": {"upstream": "authz", "path": "/check"}}),
            rt("b", "/b", auth={"basic": {"users_file": uf}})]))
        good = ("Authorization", "Basic " + base64.b64encode(b"pat:pw").decode())
        bad = ("Authorization", "Basic " + base64.b64encode(b"pat:no").decode())
        seq = [("/f/1", [("X-Want", "ok")], 200), ("/f/2", [("X-Want", "403")], 403),
               ("/b/3", [good], 200), ("/b/4", [bad], 401), ("/f/5", [("X-Want", "ok")], 200),
               ("/b/6", [good], 200)]
        with Conn(s.port) as c:
            c.send(b"".join(build_request("GET", p, "t", h) for p, h, _ in seq))
            for p, h, want in seq:
                r = c.read_response(timeout=5.0)
                eq(r.status, want, "pipelined %s" % p)
                if want == 200:
                    eq(json.loads(r.body)["path"], p, "the answer to %s in order" % p)
    finally:
        a.close()


def test_bb_store_errors_counted(env):
    e = env.echo("e")
    dead = free_port()
    aport = free_port()
    s = env.sluice(env.config(upstreams=ups(e), admin={"address": "127.0.0.1:%d" % aport},
                              rate_limit_store={"redis": "127.0.0.1:%d" % dead, "on_error": "deny"},
                              routes=[rt("r", "/", rate_limit={"per": "route", "requests_per_s": 100})]))
    eq([st(s.port, "/") for _ in range(3)], [503] * 3, "on_error deny")
    m = request(aport, "GET", "/metrics").body.decode()
    errs = [l for l in m.splitlines() if l.startswith("sluice_policy_store_errors_total")]
    check(errs and float(errs[0].split()[-1]) >= 3, "store errors counted: %r" % errs)
    dec = [l for l in m.splitlines() if l.startswith("sluice_policy_decisions_total") and 'check="rate_limit"' in l]
    check(any('result="error"' in l for l in dec), "the decisions counted as errors: %r" % dec)
    check_fails(env, env.config(upstreams=ups(e), routes=[rt("p", "/")], limits={"max_rate_limit_keys": 0}),
                "/limits/max_rate_limit_keys")
    check_fails(env, env.config(upstreams=ups(e), routes=[rt("p", "/", rate_limit={"per": "route",
                "requests_per_s": "ten"})]), "/routes/0/rate_limit/requests_per_s")


class Authz3(Authz):
    """Keep-alive auth server whose answers carry bodies in several framings."""

    def answer(self, c, line, hs):
        want = hs.get("x-want", "")
        if want == "ok-cl":
            out = b"HTTP/1.1 200 OK\r\nx-user: cl\r\nContent-Length: 6\r\n\r\nhello\n"
        elif want == "ok-chunked":
            out = (b"HTTP/1.1 200 OK\r\nx-user: ch\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nhel\r\n3\r\nlo\n\r\n0\r\n\r\n")
        elif want == "401-chunked":
            out = (b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer\r\nContent-Type: text/plain\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n7\r\ndenied \r\n8\r\nchunked\n\r\n0\r\n\r\n")
        elif want == "403-slow":
            c.sendall(b"HTTP/1.1 403 No\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nslow ")
            threading.Event().wait(0.2)
            out = b"\r\n5\r\nbody\n\r\n0\r\n\r\n"
        elif want == "401-big":
            chunk = b"x" * 1000
            out = b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer\r\nTransfer-Encoding: chunked\r\n\r\n"
            out += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
        else:
            out = b"HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n"
        c.sendall(out)
        return True


def test_bb_forward_answer_bodies(env):
    e = env.echo("e")
    a = Authz3()
    try:
        extra = [{"name": "authz", "targets": [{"address": "127.0.0.1:%d" % a.port}]}]
        s = env.sluice(env.config(upstreams=ups(e, extra=extra), routes=[
            rt("f", "/f", auth={"forward": {"upstream": "authz", "path": "/check", "copy_headers": ["x-user"]}})]))
        for i in range(3):
            for want, user in (("ok-cl", "cl"), ("ok-chunked", "ch")):
                r = req(s.port, "/f", [("X-Want", want)])
                eq(r.status, 200, "round %d: 2xx with a %s body" % (i, want))
                eq(r.up("x-user"), [user], "round %d: copy_headers after a %s body" % (i, want))
        r = req(s.port, "/f", [("X-Want", "401-chunked")])
        eq(r.status, 401, "401 with a chunked body")
        eq(r.body if r.h("content-length") is not None else _dechunk(r.body), b"denied chunked\n",
           "SPEC: 401 passed back with its body (a chunked one too)")
        r = req(s.port, "/f", [("X-Want", "403-slow")])
        eq(r.status, 403, "403 with a chunked body in two writes")
        eq(r.body if r.h("content-length") is not None else _dechunk(r.body), b"slow body\n",
           "a chunked 403 body that arrives in pieces")
        r = req(s.port, "/f", [("X-Want", "401-big")])
        eq(r.status, 401, "401 with a 5000-byte chunked body")
        check(b"x" * 100 not in r.body and len(r.body) < 1000, "a long body is replaced by sluice's own: %r" % r)
        check((r.h("www-authenticate") or "").startswith("Bearer"), "its challenge still passed: %r" % r)
        eq(st(s.port, "/f", [("X-Want", "ok-cl")]), 200, "the auth upstream still usable")
    finally:
        a.close()


def _dechunk(b):
    out = b""
    while True:
        line, _, b = b.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            return out
        out += b[:n]
        b = b[n + 2:]


def test_bb_keys_file_uppercase_hex_and_alg_spellings(env):
    e = env.echo("e")
    kf = env.write("keys.json", [{"id": "up", "sha256": hashlib.sha256(KEY_A.encode()).hexdigest().upper()}])
    s = env.sluice(env.config(upstreams=ups(e), routes=[rt("p", "/", auth={"api_key": {"keys_file": kf}})]))
    r = req(s.port, "/", [("Authorization", "Bearer " + KEY_A)])
    eq(r.status, 200, "a digest in upper-case hex is hex of the key")
    eq(r.up("x-auth-id"), ["up"], "its id")
    jwks = os.path.join(ROOT, "examples", "jwt.jwks")
    for alg in ("NONE", "None"):
        check_fails(env, env.config(upstreams=ups(e), routes=[rt("p", "/", auth={"jwt": {
            "jwks_file": jwks, "algorithms": ["ES256", alg]}})]), "/routes/0/auth/jwt/algorithms/1")



def test_bb_get_config_shows_policy_and_puts_back(env):
    e = env.echo("e")
    kf = keys_file(env)
    aport = free_port()
    pol = {"access": {"allow": ["127.0.0.0/8", "::1/128"], "deny": ["127.0.0.9/32"]},
           "auth": {"api_key": {"keys_file": kf}},
           "rate_limit": {"per": "auth_id", "requests_per_s": 50, "burst": 100},
           "token_budget": {"per": "auth_id", "tokens_per_min": 200000}}
    cfg = env.config(upstreams=ups(e), admin={"address": "127.0.0.1:%d" % aport},
                     rate_limit_store={"redis": "127.0.0.1:%d" % free_port(), "on_error": "allow"},
                     routes=[rt("p", "/", **pol)])
    s = env.sluice(cfg)
    r = request(aport, "GET", "/config")
    eq(r.status, 200, "GET /config")
    doc = r.json()
    doc = doc.get("config", doc)
    route = doc["routes"][0]
    for k, v in pol.items():
        eq(route.get(k), v, "GET /config shows the route's %s" % k)
    eq(doc.get("rate_limit_store"), cfg["rate_limit_store"], "GET /config shows rate_limit_store")
    doc.pop("version", None)
    r = request(aport, "PUT", "/config", headers=[("Content-Type", "application/json")], body=json.dumps(doc))
    eq(r.status, 200, "the shown document PUT back: %r" % r.body[:300])
    eq(st(s.port, "/", [("Authorization", "Bearer " + KEY_A)]), 200, "still serving with the policy")
    eq(st(s.port, "/"), 401, "the auth still applies")


def test_bb_malformed_credentials_are_401(env):
    e = env.echo("e")
    kf = keys_file(env)
    hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "mal", "pw"], capture_output=True,
                            check=True).stdout.decode().strip()
    uf = env.write("htpasswd", "m:%s\n" % hashed)
    jwks = os.path.join(ROOT, "examples", "jwt.jwks")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("k", "/k", auth={"api_key": {"keys_file": kf}}),
        rt("x", "/x", auth={"api_key": {"header": "x-api-key", "keys_file": kf}}),
        rt("b", "/b", auth={"basic": {"users_file": uf}}),
        rt("j", "/j", auth={"jwt": {"jwks_file": jwks, "algorithms": ["ES256", "RS256"]}})]))
    import base64
    values = ["", "Bearer", "Bearer ", "Bearer  ", "Basic", "Basic !!!notbase64", "Basic " + "A" * 3,
              "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + base64.b64encode(b":").decode(),
              "Bearer " + "x" * 6000, "Bearer a.b", "Bearer ..", "Bearer " + "a." * 2000 + "a",
              "bearer" + KEY_A, KEY_A + " Bearer"]
    for path, hdr in (("/k", "Authorization"), ("/x", "X-Api-Key"), ("/b", "Authorization"),
                      ("/j", "Authorization")):
        for v in values:
            r = req(s.port, path, [(hdr, v)])
            eq(r.status, 401, "%s with %s: %r" % (path, hdr, v[:40]))
            check(r.h("www-authenticate") is not None, "%s %r: a challenge" % (path, v[:40]))
        r = req(s.port, path, [(hdr, "Bearer " + KEY_A), (hdr, "Bearer " + KEY_A)])
        eq(r.status, 401, "%s: the credential header twice is no credential" % path)


def test_bb_redis_store_keys_and_retry_after(env):
    """With a real Redis: the same per-key rules and Retry-After as in process."""
    from test_17_policy_rate import Redis
    e = env.echo("e")
    rd = Redis(env)
    lim = {"requests_per_s": 0.4, "burst": 1}
    s = env.sluice(env.config(upstreams=ups(e), rate_limit_store={"redis": "127.0.0.1:%d" % rd.port,
                                                                   "on_error": "deny"}, routes=[
        rt("ip", "/ip", rate_limit=dict(lim, per="client_ip")),
        rt("hdr", "/hdr", rate_limit=dict(lim, per="header:x-tenant"))]))
    first = wait_for(lambda: st(s.port, "/ip", source="127.0.0.2") != 503, 5.0)
    check(first, "Redis reachable")
    r = req(s.port, "/ip", source="127.0.0.2")
    eq(r.status, 429, "client_ip over the limit in Redis")
    eq(r.h("retry-after"), "3", "Retry-After of 2.5 s rounded up, from Redis")
    eq(st(s.port, "/ip", source="127.0.0.3"), 200, "another address")
    eq(st(s.port, "/hdr", [("X-Tenant", "a")]), 200, "tenant a")
    eq(st(s.port, "/hdr", [("X-Tenant", "b")]), 200, "tenant b")
    eq(st(s.port, "/hdr", [("X-Tenant", "a")]), 429, "tenant a again")


def test_bb_token_budget_streamed_per_header(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        rt("chat", "/v1", token_budget={"per": "header:x-team", "tokens_per_min": 10})]))
    body = json.dumps({"model": "m", "max_tokens": 12, "stream": True,
                       "messages": [{"role": "user", "content": "a b"}]})
    r = req(s.port, "/v1/chat/completions", [("X-Team", "red")], method="POST", body=body)
    eq(r.status, 200, "a streamed completion")
    check(b"usage" in r.body, "the stream carries usage: %r" % r.body[-300:])
    r = wait_for(lambda: (lambda x: x if x.status == 429 else None)(
        req(s.port, "/v1/chat/completions", [("X-Team", "red")], method="POST", body=body)), 2.0)
    check(r is not None, "14 streamed tokens spend a 10/min budget")
    check((r.h("retry-after") or "").isdigit(), "Retry-After: %r" % r)
    eq(st(s.port, "/v1/chat/completions", [("X-Team", "blue")], method="POST", body=body), 200,
       "another header value has its own budget")
