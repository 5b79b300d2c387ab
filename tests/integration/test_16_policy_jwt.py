"""auth.jwt on the wire (SPEC "Traffic policy (route fields)"): bearer
tokens made by PyJWT (tests/jwt_vectors.py, Debian's python3-jwt and
python3-cryptography) sent through sluice to an echo backend that shows
what it received: 401 with WWW-Authenticate: Bearer for every bad token,
x-auth-id = sub and the claims_to_headers upstream for a good one, the
credential removed unless forward_credential, keys swapped by a reload."""
import json
import os
import signal
import sys
import time

from harness import check, eq, get, uh, Conn, build_request, wait_for, SLUICE
from test_8_admin import start, TOKEN
from test_16_policy_auth import ups, proute, check_fails, with_admin

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import jwt_vectors as jv  # noqa: E402  (tests/jwt_vectors.py)

ALL_ALGS = ["RS256", "ES256", "EdDSA", "HS256"]
# outcomes that depend on the very second the token is checked (the unit
# test pins them with a fixed clock): minted here with a margin instead
CLOCK_EXACT = {"exp_within_skew", "exp_at_skew_edge", "nbf_within_skew"}


def jwt_conf(jwks_path, **over):
    c = {"jwks_file": jwks_path, "issuer": jv.ISSUER, "audiences": jv.AUDIENCES,
         "algorithms": ALL_ALGS, "clock_skew_s": jv.SKEW,
         "claims_to_headers": jv.CLAIMS_TO_HEADERS}
    c.update(over)
    return c


def keys(env, name="jwks.json"):
    k = jv.Keys()
    path = env.write(name, k.jwks())
    return k, path


def bearer(tok):
    return [("Authorization", "Bearer " + tok)]


def verifications(a):
    return a.metrics()["sluice_policy_jwt_verifications_total"].total()


def test_jwt_every_case(env):
    """Each vector of tests/jwt_vectors.py: good ones reach the backend
    with x-auth-id and the claim headers, bad ones get a 401 challenge."""
    e = env.echo("e")
    k, jp = keys(env)
    cfg = env.config(upstreams=ups(e), routes=[proute("jwt", "e", auth={"jwt": jwt_conf(jp)})])
    s, a = with_admin(env, cfg)
    now = int(time.time())
    cases = [c for c in jv.token_cases(k, now) if c[0] not in CLOCK_EXACT]
    cases += [
        ("exp_in_skew_margin", "OK", "alice", "*", k.token(jv.claims(now, exp=now - jv.SKEW + 20), "ec1")),
        ("exp_past_skew_margin", "EXPIRED", "-", "*", k.token(jv.claims(now, exp=now - jv.SKEW - 20), "ec1")),
        ("nbf_in_skew_margin", "OK", "alice", "*", k.token(jv.claims(now, nbf=now + jv.SKEW - 20), "ec1")),
        ("nbf_past_skew_margin", "NOT_YET", "-", "*", k.token(jv.claims(now, nbf=now + jv.SKEW + 20), "ec1")),
    ]
    good = bad = 0
    for name, want, sub, hdrs, tok in cases:
        r = get(s.port, "/x", headers=bearer(tok) + [("X-Auth-Id", "forged"), ("x-user", "forged")])
        if want == "OK":
            good += 1
            eq(r.status, 200, name + ": status")
            eq(uh(r, "x-auth-id"), [sub], name + ": x-auth-id is sub (the client's one removed)")
            eq(uh(r, "x-user"), [sub], name + ": x-user from the sub claim (the client's one removed)")
            eq(uh(r, "authorization"), [], name + ": the token does not reach the backend")
            if hdrs != "*":
                want_h = dict(l.split(": ", 1) for l in hdrs.split("|"))
                for h in ("x-email", "x-tier"):
                    eq(uh(r, h), [want_h[h]] if h in want_h else [], name + ": " + h)
        else:
            bad += 1
            eq(r.status, 401, name + ": status")
            check((r.h("www-authenticate") or "").startswith("Bearer"),
                  name + ": WWW-Authenticate: Bearer, got %r" % r.h("www-authenticate"))
    check(good >= 15 and bad >= 40, "%d good and %d bad tokens tried" % (good, bad))
    eq(a.metrics()["sluice_policy_decisions_total"].total(route="jwt", check="auth", result="allowed"),
       good, "allowed decisions counted")
    eq(a.metrics()["sluice_policy_decisions_total"].total(route="jwt", check="auth", result="denied"),
       bad, "denied decisions counted")


def test_jwt_challenge_and_headers(env):
    e = env.echo("e")
    k, jp = keys(env)
    now = int(time.time())
    cfg = env.config(upstreams=ups(e), routes=[
        proute("fwd", "e", "/fwd", auth={"jwt": jwt_conf(jp), "forward_credential": True}),
        proute("jwt", "e", "/", auth={"jwt": jwt_conf(jp)}),
    ])
    s = env.sluice(cfg)
    r = get(s.port, "/x")
    eq((r.status, r.h("www-authenticate")), (401, "Bearer"), "no token: 401, Bearer with no error")
    r = get(s.port, "/x", headers=[("Authorization", "Basic YTpi")])
    eq((r.status, r.h("www-authenticate")), (401, "Bearer"), "another scheme: as no token")
    r = get(s.port, "/x", headers=[("Authorization", "Bearer ")])
    eq(r.status, 401, "an empty token")
    r = get(s.port, "/x", headers=bearer("not.a.token"))
    eq((r.status, r.h("www-authenticate")), (401, 'Bearer error="invalid_token"'),
       "a bad token: error=invalid_token (RFC 6750)")
    tok = k.token(jv.claims(now, email=None), "ed1")
    r = get(s.port, "/x", headers=[("authorization", "bearer " + tok), ("X-Email", "forged@x"),
                                   ("X-Tier", "99"), ("X-Other", "kept")])
    eq(r.status, 200, "the scheme is case-insensitive")
    eq(uh(r, "x-email"), [], "a claim the token lacks: the client's header of that name removed")
    eq(uh(r, "x-tier"), ["3"], "a number claim as a header, the client's one replaced")
    eq(uh(r, "x-other"), ["kept"], "other client headers pass")
    r = get(s.port, "/fwd/x", headers=bearer(tok))
    eq((r.status, uh(r, "authorization"), uh(r, "x-auth-id")), (200, ["Bearer " + tok], ["alice"]),
       "forward_credential: the token goes upstream too")
    odd = k.token(jv.claims(now, sub="bob smith"), "ed1")
    r = get(s.port, "/x", headers=bearer(odd))
    eq(r.status, 200, "a sub with a space is a good token")
    eq(uh(r, "x-user"), ["bob smith"], "x-user carries the claim as it is")
    eq(uh(r, "x-auth-id"), ["bob_smith"], "x-auth-id is the sub made safe for headers and logs")
    check(wait_for(lambda: any(l.endswith(" auth_id=alice") for l in s.log_lines()), 3.0),
          "the access log carries the auth id")


def test_jwt_keepalive_verifies_once(env):
    """A keep-alive client pays the signature once: the verification
    counter moves by one for 20 requests with the same token."""
    e = env.echo("e")
    k, jp = keys(env)
    cfg = env.config(upstreams=ups(e), routes=[proute("jwt", "e", auth={"jwt": jwt_conf(jp)})])
    s, a = with_admin(env, cfg)
    tok = k.token(jv.claims(int(time.time())), "ec1")
    v0 = verifications(a)
    with Conn(s.port) as c:
        for i in range(20):
            c.send(build_request("GET", "/k%d" % i, "x", bearer(tok)))
            r = c.read_response()
            eq((r.status, uh(r, "x-auth-id")), (200, ["alice"]), "request %d" % i)
    eq(verifications(a) - v0, 1, "one verification for 20 requests")
    bad = jv.flip(tok, 2)
    for i in range(3):
        eq(get(s.port, "/", headers=bearer(bad)).status, 401, "bad token %d" % i)
    eq(verifications(a) - v0, 4, "a failed token is checked every time (never cached as good)")
    other = k.token(jv.claims(int(time.time()), sub="carol"), "ec1")
    r = get(s.port, "/", headers=bearer(other))
    eq((r.status, uh(r, "x-auth-id")), (200, ["carol"]), "another token: its own identity")


def test_jwt_reload_swaps_keys(env):
    e = env.echo("e")
    k1, jp = keys(env)
    cfg = env.config(upstreams=ups(e), routes=[proute("jwt", "e", auth={"jwt": jwt_conf(jp)})])
    s, a = with_admin(env, cfg)
    now = int(time.time())
    t1 = k1.token(jv.claims(now), "rsa1")
    eq(get(s.port, "/", headers=bearer(t1)).status, 200, "key set 1 before")
    k2 = jv.Keys()
    env.write("jwks.json", k2.jwks())
    t2 = k2.token(jv.claims(now, sub="bob"), "rsa1")     # same kid, new key
    eq(get(s.port, "/", headers=bearer(t2)).status, 401, "the file is read at reload, not before")
    eq(get(s.port, "/", headers=bearer(t1)).status, 200, "(the cached token still good before the reload)")
    a.put_ok(cfg, "PUT /config with the same text")
    r = get(s.port, "/", headers=bearer(t2))
    eq((r.status, uh(r, "x-auth-id")), (200, ["bob"]), "new key after PUT /config")
    eq(get(s.port, "/", headers=bearer(t1)).status, 401,
       "a token of the old key refused after the reload (not served from the cache)")
    k3 = jv.Keys()
    env.write("jwks.json", k3.jwks(("ec1",)))
    s.proc.signal(signal.SIGHUP)
    t3 = k3.token(jv.claims(now, sub="carol"), "ec1")
    check(wait_for(lambda: get(s.port, "/", headers=bearer(t3)).status == 200, 5.0),
          "SIGHUP reads the JWKS again")
    eq(get(s.port, "/", headers=bearer(t2)).status, 401, "key set 2 gone after SIGHUP")
    env.write("jwks.json", "{\"keys\": [{\"kty\": \"RSA\", \"kid\": \"x\", \"n\": \"AQAB\", \"e\": \"AQAB\"}]}")
    r = a.put(cfg)
    eq(r.status, 400, "a bad JWKS refuses the reload")
    eq(r.json().get("path"), "/routes/0/auth/jwt/jwks_file", "error path")
    check("/keys/0/n" in r.json().get("error", ""), "the error names the key: %r" % r.json())
    eq(get(s.port, "/", headers=bearer(t3)).status, 200, "the running keys stay")
    # a good JWKS in a document refused for another reason: its keys are
    # freed with the refused config (the ASan build checks for leaks at exit)
    env.write("jwks.json", k3.jwks())
    bad_doc = dict(cfg, routes=cfg["routes"] + [proute("x", "nope", "/x")])
    r = a.put(bad_doc)
    eq(r.status, 400, "a document with an unknown upstream is refused")
    eq(get(s.port, "/", headers=bearer(t3)).status, 200, "the running keys stay")


def test_jwt_config_errors(env):
    e = env.echo("e")
    k, jp = keys(env)
    base = lambda j: env.config(upstreams=ups(e), routes=[proute("r", "e", auth={"jwt": j})])
    check_fails(env, base(jwt_conf(jp, algorithms=["RS256", "none"])),
                "/routes/0/auth/jwt/algorithms/1", "never allowed")
    check_fails(env, base(jwt_conf(jp, algorithms=["RS512"])), "/routes/0/auth/jwt/algorithms/0", "unknown algorithm")
    check_fails(env, base(jwt_conf(jp, algorithms=[])), "/routes/0/auth/jwt/algorithms", "at least one")
    check_fails(env, base(jwt_conf(jp, algorithms=["RS256", "ES256", "EdDSA"])),
                "/routes/0/auth/jwt/jwks_file", "/keys/3: kty oct verifies HS256, which is not in algorithms")
    check_fails(env, base(jwt_conf(os.path.join(env.tmp, "nope.json"))), "/routes/0/auth/jwt/jwks_file", "cannot open")
    check_fails(env, base(jwt_conf(jp, clock_skew_s=100000)), "/routes/0/auth/jwt/clock_skew_s")
    check_fails(env, base(jwt_conf(jp, claims_to_headers={"sub": "Host"})),
                "/routes/0/auth/jwt/claims_to_headers/sub", "writes itself")
    check_fails(env, base(jwt_conf(jp, audiences=[])), "/routes/0/auth/jwt/audiences", "must not be empty")
    check_fails(env, base(dict(jwt_conf(jp), extra=1)), "/routes/0/auth/jwt/extra", "unknown field")
    bad = env.write("bad_jwks.json", {"keys": [dict(k.jwks()["keys"][0], alg="HS256")]})
    check_fails(env, base(jwt_conf(bad)), "/routes/0/auth/jwt/jwks_file", "/keys/0/alg: kty RSA verifies RS256 only")
    p = env.write("good.json", base(jwt_conf(jp)))
    rc, out, err = env.run([SLUICE, "--check", "--config", p])
    eq(rc, 0, "a good jwt config passes --check: " + err[-300:])
