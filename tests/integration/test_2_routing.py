"""Routing, rewrites, header edits, redirect, respond, balancing."""
import re

from harness import check, eq, free_port, get, request, uh


def ups(*echoes):
    """One upstream per echo backend, named after its id."""
    return [{"name": e.id, "targets": [{"address": e.addr}]} for e in echoes]


def route(name, upstream, **match):
    return {"name": name, "match": match, "upstream": upstream}


def who(port, path="/", host="example.com", **kw):
    r = request(port, kw.pop("method", "GET"), path, host, **kw)
    return r.h("x-upstream") if r.status == 200 else r.status


def test_host_matching(env):
    ex, wild, anyh = env.echo("exact"), env.echo("wild"), env.echo("any")
    cfg = env.config(upstreams=ups(ex, wild, anyh), routes=[
        route("any", "any"),
        route("wild", "wild", hosts=["*.example.com"]),
        route("exact", "exact", hosts=["a.example.com", "other.test"]),
    ])
    s = env.sluice(cfg)
    p = s.port
    eq(who(p, host="a.example.com"), "exact", "exact host")
    eq(who(p, host="A.Example.COM:8080"), "exact", "exact host, upper case with port")
    eq(who(p, host="other.test"), "exact", "second exact host")
    eq(who(p, host="b.example.com"), "wild", "wildcard one label")
    eq(who(p, host="x.y.example.com"), "wild", "wildcard two labels")
    eq(who(p, host="B.EXAMPLE.com:80"), "wild", "wildcard upper case with port")
    eq(who(p, host="example.com"), "any", "wildcard does not match the bare domain")
    eq(who(p, host="notexample.com"), "any", "suffix without dot is not the wildcard")
    eq(who(p, host="unknown.test"), "any", "any host")


def test_host_no_match_404(env):
    e = env.echo("e")
    s = env.sluice(env.config(upstreams=ups(e), routes=[route("r", "e", hosts=["a.test"])]))
    r = get(s.port, "/", host="b.test")
    eq(r.status, 404, "status for an unrouted host")
    eq(get(s.port, "/", host="a.test").status, 200, "routed host")


def test_path_matching(env):
    a, b, c, d = env.echo("api"), env.echo("apiv2"), env.echo("exact"), env.echo("root")
    cfg = env.config(upstreams=ups(a, b, c, d), routes=[
        route("root", "root", path={"prefix": "/"}),
        route("api", "api", path={"prefix": "/api"}),
        route("apiv2", "apiv2", path={"prefix": "/api/v2/"}),
        route("exact", "exact", path={"exact": "/api/exact"}),
    ])
    s = env.sluice(cfg)
    p = s.port
    eq(who(p, "/api"), "api", "/api")
    eq(who(p, "/api/"), "api", "/api/")
    eq(who(p, "/api/x"), "api", "/api/x")
    eq(who(p, "/api?x=1"), "api", "/api?x=1")
    eq(who(p, "/apix"), "root", "/apix is not below /api")
    eq(who(p, "/api/v2"), "apiv2", "/api/v2 matches prefix /api/v2/")
    eq(who(p, "/api/v2/x"), "apiv2", "longest prefix wins")
    eq(who(p, "/api/v2x"), "api", "/api/v2x is not below /api/v2/")
    eq(who(p, "/api/exact"), "exact", "exact beats prefix")
    eq(who(p, "/api/exact?q=1"), "exact", "exact ignores the query")
    eq(who(p, "/api/exact/"), "api", "exact does not match a longer path")
    eq(who(p, "/"), "root", "/")


def test_method_header_query_matching(env):
    base, m, h, q, hq = (env.echo(x) for x in ("base", "post", "hdr", "qry", "both"))
    cfg = env.config(upstreams=ups(base, m, h, q, hq), routes=[
        route("base", "base", path={"prefix": "/"}),
        route("post", "post", path={"prefix": "/"}, methods=["POST", "PUT"]),
        route("hdr", "hdr", path={"prefix": "/"}, headers=[{"name": "X-Env", "value": "canary"}]),
        route("qry", "qry", path={"prefix": "/"}, query=[{"name": "v", "value": "2"}]),
        route("both", "both", path={"prefix": "/"},
              headers=[{"name": "x-env", "value": "canary"}, {"name": "x-b", "value": "1"}]),
    ])
    s = env.sluice(cfg)
    p = s.port
    eq(who(p, "/x"), "base", "plain GET")
    eq(who(p, "/x", method="POST", body=b"hi"), "post", "POST")
    eq(who(p, "/x", method="PUT", body=b""), "post", "PUT")
    eq(who(p, "/x", headers=[("x-env", "canary")]), "hdr", "header match (name case)")
    eq(who(p, "/x", headers=[("X-ENV", "Canary")]), "base", "header values are exact")
    eq(who(p, "/x", headers=[("x-env", "canary"), ("x-b", "1")]), "both", "most header matches")
    eq(who(p, "/x?v=2"), "qry", "query match")
    eq(who(p, "/x?a=1&v=2&b=3"), "qry", "query match among others")
    eq(who(p, "/x?v=22"), "base", "query value exact")
    eq(who(p, "/x?V=2"), "base", "query name case-sensitive")


def test_listeners(env):
    a, b = env.echo("a"), env.echo("b")
    p1, p2 = free_port(), free_port()
    cfg = env.config(
        listeners=[{"name": "one", "address": "127.0.0.1:%d" % p1},
                   {"name": "two", "address": "127.0.0.1:%d" % p2}],
        upstreams=ups(a, b),
        routes=[route("a", "a", listeners=["one"]), route("b", "b", listeners=["two"]),
                route("both", "a", listeners=["one", "two"], path={"exact": "/shared"})])
    env.sluice(cfg)
    eq(who(p1, "/x"), "a", "listener one")
    eq(who(p2, "/x"), "b", "listener two")
    eq(who(p2, "/shared"), "a", "route on both listeners, via two")


def test_rewrites(env):
    e = env.echo("e")
    cfg = env.config(upstreams=ups(e), routes=[
        dict(route("strip", "e", path={"prefix": "/strip"}), rewrite={"strip_prefix": True}),
        dict(route("repl", "e", path={"prefix": "/repl"}), rewrite={"replace_prefix": "/v2"}),
        dict(route("full", "e", path={"prefix": "/full"}), rewrite={"replace_path": "/x/y"}),
        dict(route("host", "e", path={"prefix": "/host"}), rewrite={"host": "new.internal"}),
    ])
    s = env.sluice(cfg)
    p = s.port

    def path(target):
        r = get(p, target)
        eq(r.status, 200, "status for %s" % target)
        return r.json()["path"]

    eq(path("/strip/a/b?q=1&r=2"), "/a/b?q=1&r=2", "strip_prefix keeps the query")
    eq(path("/strip"), "/", "strip_prefix to empty becomes /")
    eq(path("/strip/"), "/", "strip_prefix of /strip/")
    eq(path("/strip?q=1"), "/?q=1", "strip_prefix to empty with query")
    eq(path("/repl/a?q=1"), "/v2/a?q=1", "replace_prefix")
    eq(path("/repl"), "/v2", "replace_prefix of the bare prefix")
    eq(path("/full/anything?q=1"), "/x/y?q=1", "replace_path keeps the query")
    r = get(p, "/host/z", host="outer.example")
    eq(uh(r, "host"), ["new.internal"], "Host rewritten upstream")
    eq(r.json()["path"], "/host/z", "path untouched by a host rewrite")


def test_request_header_edits(env):
    e = env.echo("e")
    cfg = env.config(upstreams=ups(e), routes=[
        dict(route("r", "e"), request_headers={"set": {"x-a": "1"}, "add": {"x-b": "2"},
                                               "remove": ["x-c", "X-D"]})])
    s = env.sluice(cfg)
    r = get(s.port, "/", headers=[("X-A", "0"), ("X-B", "1"), ("X-C", "gone"), ("x-d", "gone"),
                                  ("X-E", "kept")])
    eq(uh(r, "x-a"), ["1"], "set replaces")
    eq(sorted(uh(r, "x-b")), ["1", "2"], "add appends")
    eq(uh(r, "x-c") + uh(r, "x-d"), [], "remove")
    eq(uh(r, "x-e"), ["kept"], "others kept")
    r = get(s.port, "/")
    eq(uh(r, "x-a"), ["1"], "set when absent")
    eq(uh(r, "x-b"), ["2"], "add when absent")


def test_response_header_edits(env):
    e = env.echo("e")
    cfg = env.config(upstreams=ups(e), routes=[
        dict(route("r", "e"), response_headers={"set": {"x-over": "new", "x-s": "1"},
                                                "add": {"x-multi": "b"},
                                                "remove": ["x-request-count"]})])
    s = env.sluice(cfg)
    r = get(s.port, "/", headers=[("X-Echo-Set-Header", "X-Over: old, X-Multi: a")])
    eq(r.status, 200, "status")
    eq(r.hall("x-over"), ["new"], "set replaces the upstream's header")
    eq(r.hall("x-s"), ["1"], "set adds when absent")
    eq(sorted(r.hall("x-multi")), ["a", "b"], "add appends")
    eq(r.hall("x-request-count"), [], "remove")
    eq(r.h("x-upstream"), "e", "other headers kept")


def _redirect_cfg(env):
    return env.config(routes=[
        {"name": "https", "match": {"path": {"prefix": "/to-https"}}, "redirect": {"scheme": "https"}},
        {"name": "host", "match": {"path": {"prefix": "/to-host"}},
         "redirect": {"host": "new.example.com"}},
        {"name": "full", "match": {"path": {"exact": "/old"}},
         "redirect": {"scheme": "https", "host": "new.example.com", "port": 8443, "path": "/new",
                      "status": 301}},
        {"name": "wk", "match": {"path": {"exact": "/wk"}},
         "redirect": {"scheme": "http", "host": "h.test", "port": 80, "status": 308}},
        {"name": "pfx", "match": {"path": {"prefix": "/pfx"}},
         "redirect": {"path": {"replace_prefix": "/newpfx"}, "status": 307}},
    ])


def test_redirects(env):
    s = env.sluice(_redirect_cfg(env))
    p = s.port
    r = get(p, "/to-https/a", host="example.com:%d" % p)
    eq(r.status, 302, "default redirect status")
    eq(r.h("location"), "https://example.com/to-https/a", "scheme change: well-known port omitted")
    r = get(p, "/to-host/a", host="example.com:%d" % p)
    eq(r.h("location"), "http://new.example.com:%d/to-host/a" % p,
       "same scheme: listener port kept")
    r = get(p, "/old", host="example.com")
    eq(r.status, 301, "explicit status")
    eq(r.h("location"), "https://new.example.com:8443/new", "all fields")
    r = get(p, "/wk", host="example.com")
    eq(r.status, 308, "308")
    eq(r.h("location"), "http://h.test/wk", "explicit well-known port not written")
    r = get(p, "/pfx/a/b", host="h.test:%d" % p)
    eq(r.status, 307, "307")
    eq(r.h("location"), "http://h.test:%d/newpfx/a/b" % p, "replace_prefix")


def test_respond(env):
    cfg = env.config(routes=[
        {"name": "ping", "match": {"path": {"exact": "/ping"}},
         "respond": {"status": 200, "body": "pong\n", "content_type": "text/plain"}},
        {"name": "err", "match": {"path": {"exact": "/err"}}, "respond": {"status": 500}},
    ])
    s = env.sluice(cfg)
    r = get(s.port, "/ping")
    eq((r.status, r.body), (200, b"pong\n"), "respond body")
    check((r.h("content-type") or "").startswith("text/plain"), "content type %r" % r.h("content-type"))
    r = get(s.port, "/err")
    eq(r.status, 500, "respond with only a status")
    r = request(s.port, "HEAD", "/ping")
    eq((r.status, r.body), (200, b""), "HEAD of a respond route")


def test_round_robin_targets(env):
    a, b, c = env.echo("a"), env.echo("b"), env.echo("c")
    cfg = env.config(
        upstreams=[{"name": "u", "targets": [{"address": a.addr}, {"address": b.addr},
                                             {"address": c.addr, "weight": 2}]}],
        routes=[route("r", "u")])
    s = env.sluice(cfg)
    seen = [who(s.port, "/") for _ in range(40)]
    counts = {k: seen.count(k) for k in "abc"}
    check(8 <= counts["a"] <= 12 and 8 <= counts["b"] <= 12 and 17 <= counts["c"] <= 23,
          "weighted round robin 1:1:2 over 40 requests: %r" % counts)
    # smooth: the weight-2 target never gets three in a row
    check("c,c,c" not in ",".join(seen), "smooth weighted order: %r" % seen)


def test_weighted_backends_split(env):
    a, b = env.echo("a"), env.echo("b")
    cfg = env.config(upstreams=ups(a, b), routes=[
        {"name": "r", "match": {}, "backends": [{"upstream": "a", "weight": 3},
                                                {"upstream": "b", "weight": 1}]}])
    s = env.sluice(cfg)
    seen = [who(s.port, "/") for _ in range(200)]
    na = seen.count("a")
    check(120 <= na <= 180 and na + seen.count("b") == 200,
          "3:1 split over 200 requests: a=%d b=%d" % (na, seen.count("b")))


def test_route_order_and_any(env):
    a, b = env.echo("first"), env.echo("second")
    cfg = env.config(upstreams=ups(a, b), routes=[route("1", "first", path={"prefix": "/x"}),
                                                  route("2", "second", path={"prefix": "/x"})])
    s = env.sluice(cfg)
    eq(who(s.port, "/x/y"), "first", "document order breaks ties")
    check(re.match(r"^\d+$", get(s.port, "/x").h("x-conn-id") or ""), "X-Conn-Id passes through")
