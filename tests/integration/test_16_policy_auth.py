"""Traffic policy (SPEC "Traffic policy (route fields)"): access lists and
authentication (api_key, basic, forward), checked on the wire through
sluice to an echo backend that shows what it received."""
import json
import os

from harness import check, eq, get, request, uh, Conn, build_request, wait_for


def ups(*echoes):
    return [{"name": e.id, "targets": [{"address": e.addr}]} for e in echoes]


def proute(name, upstream, prefix="/", **policy):
    r = {"name": name, "match": {"path": {"prefix": prefix}}, "upstream": upstream}
    r.update(policy)
    return r


def check_fails(env, cfg, path_want, msg_part=None):
    """sluice --check refuses cfg, naming path_want."""
    p = env.write("bad.json", cfg)
    rc, out, err = env.run([__import__("harness").SLUICE, "--check", "--config", p])
    eq(rc, 1, "exit status of --check (%s)" % err.strip()[:300])
    check(path_want in err, "error names %s: %s" % (path_want, err.strip()[:400]))
    if msg_part:
        check(msg_part in err, "error says %r: %s" % (msg_part, err.strip()[:400]))


# ---------------------------------------------------------------- access

def test_access_allow_deny(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        proute("in", "e", "/in", access={"allow": ["127.0.0.0/8"]}),
        proute("out", "e", "/out", access={"allow": ["10.0.0.0/8", "::1/128"]}),
        proute("deny", "e", "/deny", access={"allow": ["127.0.0.0/8"], "deny": ["127.0.0.1/32"]}),
        proute("denyonly", "e", "/denyonly", access={"deny": ["192.168.0.0/16"]}),
        proute("all", "e", "/all", access={"allow": ["0.0.0.0/0"]}),
        proute("v6only", "e", "/v6", access={"allow": ["::/0"]}),
        proute("mapped", "e", "/mapped", access={"allow": ["::ffff:127.0.0.1/128"]}),
    ]))
    eq(get(s.port, "/in").status, 200, "allowed by 127.0.0.0/8")
    r = get(s.port, "/out")
    eq(r.status, 403, "not in the allow list")
    eq(r.h("www-authenticate"), None, "a 403 carries no challenge")
    eq(get(s.port, "/deny").status, 403, "deny wins over allow")
    eq(get(s.port, "/denyonly").status, 200, "deny list only: others pass")
    eq(get(s.port, "/all").status, 200, "0.0.0.0/0 allows every IPv4 address")
    eq(get(s.port, "/v6").status, 200, "::/0 covers IPv4 too (as mapped addresses)")
    eq(get(s.port, "/mapped").status, 200, "an IPv4 peer meets an IPv4-mapped IPv6 rule")
    check(wait_for(lambda: any(" status=403 " in l and l.endswith(" auth_id=-") for l in s.log_lines()), 3.0),
          "the 403 is in the access log, with no auth id")


def test_access_ipv6_listener(env):
    e = env.echo("e")
    from harness import free_port
    port = free_port()
    cfg = env.config(upstreams=ups(e), listeners=[{"name": "v6", "address": "[::1]:%d" % port}], routes=[
        proute("a", "e", "/a", access={"allow": ["::1/128"]}),
        proute("b", "e", "/b", access={"allow": ["127.0.0.0/8"]}),
        proute("c", "e", "/c", access={"deny": ["::/0"]}),
    ])
    s = env.sluice(cfg, wait=False)
    import socket, time
    def up():
        try:
            c = socket.create_connection(("::1", port), 0.2)
            c.close()
            return True
        except OSError:
            return False
    check(wait_for(up, 5.0), "sluice listens on [::1]")
    eq(get(port, "/a", host="[::1]").status if False else _get6(port, "/a"), 200, "::1 allowed by ::1/128")
    eq(_get6(port, "/b"), 403, "::1 is not in 127.0.0.0/8")
    eq(_get6(port, "/c"), 403, "::/0 denies ::1")


def _get6(port, path):
    import socket
    c = socket.create_connection(("::1", port), 5)
    try:
        c.sendall(build_request("GET", path, "x"))
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                break
            data += d
        return int(data.split(b" ", 2)[1])
    finally:
        c.close()


def test_access_config_errors(env):
    e = env.echo("e")
    base = lambda acc: env.config(upstreams=ups(e), routes=[proute("r", "e", access=acc)])
    check_fails(env, base({"allow": ["10.0.0.0/8", "10.0.0.1/8"]}), "/routes/0/access/allow/1", "bits set")
    check_fails(env, base({"deny": ["nonsense"]}), "/routes/0/access/deny/0", "not an address")
    check_fails(env, base({"allow": ["10.0.0.0/33"]}), "/routes/0/access/allow/0", "prefix length")
    check_fails(env, base({"allow": ["::/129"]}), "/routes/0/access/allow/0", "prefix length")
    check_fails(env, base({"allow": ["10.0.0.0/"]}), "/routes/0/access/allow/0", "prefix length")
    check_fails(env, base({"allow": [5]}), "/routes/0/access/allow/0", "must be a string")
    check_fails(env, base({}), "/routes/0/access", "needs allow or deny")
    check_fails(env, base({"allow": ["10.0.0.0/8"], "alow": []}), "/routes/0/access/alow")


def test_policy_parts_not_built_are_refused(env):
    e = env.echo("e")
    base = lambda **kw: env.config(upstreams=ups(e), routes=[proute("r", "e", **kw)])
    check_fails(env, base(rate_limit={"per": "route", "requests_per_s": 1, "burst": 1}),
                "/routes/0/rate_limit", "not supported")
    check_fails(env, base(token_budget={"per": "route", "tokens_per_min": 1}),
                "/routes/0/token_budget", "not supported")
    check_fails(env, base(auth={"jwt": {"jwks_file": "x"}}), "/routes/0/auth/jwt", "not supported")
    check_fails(env, base(auth={}), "/routes/0/auth", "needs one of")
    check_fails(env, base(auth={"basic": {"users_file": "u"}, "forward": {"upstream": "e", "path": "/"}}),
                "/routes/0/auth", "more than one")


def test_client_x_auth_id_is_removed(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[
        proute("pol", "e", "/pol", access={"allow": ["127.0.0.0/8"]}),
        proute("plain", "e", "/plain")]))
    for path in ("/pol", "/plain"):
        r = get(s.port, path, headers=[("X-Auth-Id", "admin"), ("x-auth-id", "root")])
        eq(r.status, 200, "status " + path)
        eq(uh(r, "x-auth-id"), [], "a client's x-auth-id never reaches the backend " + path)
