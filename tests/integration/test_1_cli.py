"""Command line: --version, --help, --check, exit codes, quick mode."""
import json
import re
import socket

import certs
from harness import SLUICE, check, eq, free_port, get, wait_port, TestFailure


def test_version_and_help(env):
    rc, out, err = env.run([SLUICE, "--version"])
    eq(rc, 0, "--version exit code")
    check("sluice" in (out + err).lower(), "--version names the program: %r" % (out + err))
    rc, out, err = env.run([SLUICE, "--help"])
    eq(rc, 0, "--help exit code")
    check("--config" in out + err, "--help mentions --config")
    rc, out, err = env.run([SLUICE, "--no-such-flag"])
    eq(rc, 1, "unknown flag exit code")
    check(err.strip(), "unknown flag: message on stderr")


def _valid(env):
    return env.config(
        routes=[{"name": "r", "match": {"path": {"prefix": "/"}}, "upstream": "u"}],
        upstreams=[{"name": "u", "targets": [{"address": "127.0.0.1:1"}]}])


def test_check_valid_config(env):
    path = env.write("ok.json", _valid(env))
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 0, "exit code for a valid config (stderr %r)" % err)


def test_check_reports_paths(env):
    cfg = _valid(env)
    cfg["routes"][0]["match"]["path"] = {"prefix": 5}
    cfg["routes"].append({"name": "r2", "upstream": "nope"})
    path = env.write("bad.json", cfg)
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 1, "exit code for a bad config")
    check("/routes/0/match/path" in err, "error names /routes/0/match/path: %r" % err)
    check("/routes/1" in err, "every error reported (also /routes/1 unknown upstream): %r" % err)
    check(re.search(r"^/routes/0/match/path(/prefix)?: \S", err, re.M),
          "errors are printed as 'PATH: MESSAGE' lines: %r" % err)


def test_check_unknown_field(env):
    cfg = _valid(env)
    cfg["bogus"] = 1
    cfg["routes"][0]["match"]["pth"] = "/x"
    path = env.write("bad.json", cfg)
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 1, "exit code")
    check("/bogus" in err and "unknown field" in err, "unknown /bogus reported: %r" % err)
    check("/routes/0/match/pth" in err, "unknown nested field reported: %r" % err)


def test_check_invalid_json_and_missing_file(env):
    path = env.write("bad.json", '{"listeners": [')
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 1, "exit code for invalid JSON")
    check(err.strip(), "message for invalid JSON")
    rc, out, err = env.run([SLUICE, "--check", "--config", env.tmp + "/missing.json"])
    eq(rc, 1, "exit code for a missing file")
    check(err.strip(), "message for a missing file")


def test_check_tls_missing_cert(env):
    cfg = _valid(env)
    cfg["listeners"][0]["tls"] = {"certificates": [
        {"cert_file": env.tmp + "/missing.pem", "key_file": env.tmp + "/missing.key"}]}
    path = env.write("tls.json", cfg)
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 1, "exit code")
    check(re.search(r"^/listeners/0/tls/certificates/0/cert_file: \S", err, re.M),
          "missing cert_file named: %r" % err)


def test_check_tls_valid(env):
    pki = certs.make(env)
    cfg = _valid(env)
    cfg["listeners"][0]["tls"] = {"certificates": [pki["default"].cfg(), pki["multi_ec"].cfg()],
                                  "min_version": "1.3", "ktls": True, "handshake_timeout_ms": 500}
    cfg["upstreams"][0]["tls"] = {"ca_file": pki.ca_file, "sni": "localhost"}
    path = env.write("tls.json", cfg)
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 0, "exit code for a valid TLS config (stderr %r)" % err)


def test_check_route_actions(env):
    cfg = _valid(env)
    cfg["routes"][0]["respond"] = {"status": 200}       # two actions
    cfg["routes"].append({"name": "x", "match": {"path": {"exact": "/x"}},
                          "redirect": {"status": 200}})  # bad redirect status
    path = env.write("bad.json", cfg)
    rc, out, err = env.run([SLUICE, "--check", "--config", path])
    eq(rc, 1, "exit code")
    check("/routes/0" in err, "two actions reported: %r" % err)
    check("/routes/1/redirect" in err, "bad redirect status reported: %r" % err)


def test_port_in_use_exits_2(env):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    try:
        cfg = _valid(env)
        cfg["listeners"][0]["address"] = "127.0.0.1:%d" % s.getsockname()[1]
        p = env.sluice(cfg, wait=False).proc
        rc = p.wait(5.0)
        eq(rc, 2, "exit code when the port is taken (stderr %r)" % p.stderr()[-300:])
    finally:
        s.close()


def test_quick_mode_round_robin(env):
    a, b = env.echo("a"), env.echo("b")
    port = free_port()
    p = env.start([SLUICE, "--listen", "127.0.0.1:%d" % port, "--backend", a.addr,
                   "--backend", b.addr, "--workers", "1"], "sluice")
    check(wait_port(port, 5.0, p.p), "quick mode listens (stderr %r)" % p.stderr()[-300:])
    seen = [get(port, "/q").h("x-upstream") for _ in range(10)]
    eq(sorted(set(seen)), ["a", "b"], "both backends used")
    eq(seen.count("a"), 5, "round robin share of a in %r" % seen)


def test_quick_mode_bad_backend(env):
    rc, out, err = env.run([SLUICE, "--listen", "127.0.0.1:%d" % free_port(),
                            "--backend", "nonsense"], timeout=5)
    eq(rc, 1, "exit code for a bad --backend")
    check(err.strip(), "message on stderr")


def test_ready_message(env):
    e = env.echo("a")
    cfg = _valid(env)
    cfg["upstreams"][0]["targets"] = [{"address": e.addr}]
    s = env.sluice(cfg)
    eq(get(s.port, "/").status, 200, "request through sluice")
    check("listening on" in s.proc.stderr(), "stderr says 'listening on': %r" % s.proc.stderr()[-300:])
