#!/usr/bin/python3
"""What auth.jwt costs per request: sluice's CPU per request on a keep-alive
load with no policy, with an ES256 JWT that every request repeats (the
per-worker cache of verified tokens answers), and with a different ES256
token on every request (more tokens than the cache holds: each one is
verified).

    python3 bench/jwt_cost.py        (ROUNDS=3 DURATION=5 CONNS=64 TOKENS=4096)

or as `make bench`'s "jwt" scenario (SCENARIOS=jwt bash bench/run.sh), which
runs it once with bench.py's ROUNDS and DURATION.

Method as bench/bench.py: wrk (one thread) and the backend (sluice-echo) on
core 0, sluice (one worker) alone on core 1; CPU is utime+stime of the
sluice process over the measured run, divided by the requests wrk counted.
Cells rotate within a round; each cell's excess over no policy is taken
within its round, medians over ROUNDS.  Needs Debian's
python3-jwt (PyJWT) and python3-cryptography to mint the tokens
(tests/jwt_vectors.py).  Prints a table; nothing here is a pass/fail test.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from splice_bench import free_port, wait_port  # noqa: E402
import jwt_vectors as jv  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "5"))
CONNS = int(os.environ.get("CONNS", "64"))
TOKENS = int(os.environ.get("TOKENS", "4096"))     # > the worker's cache (512)
SLUICE = os.path.join(ROOT, "build", "sluice")
ECHO = os.path.join(ROOT, "build", "sluice-echo")

LUA_ROTATE = """
local toks = {}
for line in io.lines(os.getenv("JWT_TOKENS")) do toks[#toks + 1] = line end
local i = 0
request = function()
  i = i % #toks + 1
  return wrk.format("GET", "/jwt", {["Authorization"] = "Bearer " .. toks[i]})
end
"""


def cpu_s(b, pid):
    st = b.read_stat(pid)
    return st[1] / b.CLK_TCK if st else 0.0


def wrk(b, duration, port, path, headers=(), script=None, env=None):
    argv = ["taskset", "-c", b.LOAD_CORE, "wrk", "-t1", f"-c{CONNS}", f"-d{duration}s",
            "--timeout", "5s"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", script]
    argv.append(f"http://127.0.0.1:{port}{path}")
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration + 30)
    return b.parse_wrk(p.stdout + p.stderr)


def measure(b, rounds, duration):
    """The table's lines; b is bench/bench.py's module (its wrk parser,
    /proc reader and cores), whether it runs this or this runs alone."""
    tmp = tempfile.mkdtemp(prefix="sluice-jwt-bench-")
    k = jv.Keys()
    jwks = os.path.join(tmp, "jwks.json")
    with open(jwks, "w") as f:
        json.dump(k.jwks(("ec1",)), f)
    now = int(time.time())
    one = k.token(jv.claims(now), "ec1")
    toks = os.path.join(tmp, "tokens.txt")
    with open(toks, "w") as f:
        for i in range(TOKENS):
            f.write(k.token(jv.claims(now, sub="user-%d" % i), "ec1") + "\n")
    lua = os.path.join(tmp, "rotate.lua")
    with open(lua, "w") as f:
        f.write(LUA_ROTATE)

    echo = subprocess.Popen(["taskset", "-c", b.LOAD_CORE, ECHO, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.search(r":(\d+)", echo.stdout.readline())
    eport = int(m.group(1))
    port = free_port()
    jwt = {"jwks_file": jwks, "issuer": jv.ISSUER, "audiences": ["api"], "algorithms": ["ES256"],
           "claims_to_headers": {"sub": "x-user"}}
    doc = {"workers": 1, "access_log": None,
           "listeners": [{"address": f"127.0.0.1:{port}"}],
           "upstreams": [{"name": "b", "targets": [{"address": f"127.0.0.1:{eport}"}]}],
           "routes": [{"name": "jwt", "match": {"path": {"prefix": "/jwt"}}, "upstream": "b",
                       "auth": {"jwt": jwt}},
                      {"name": "plain", "upstream": "b"}]}
    cfgp = os.path.join(tmp, "sluice.json")
    with open(cfgp, "w") as f:
        json.dump(doc, f)
    sl = subprocess.Popen(["taskset", "-c", b.PROXY_CORE, SLUICE, "--config", cfgp],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            return ["jwt: sluice did not start"]
        auth = "Authorization: Bearer " + one
        env = dict(os.environ, JWT_TOKENS=toks)
        cells = {
            # the same header bytes on the plain route: only the check differs
            "no policy": lambda: wrk(b, duration, port, "/", [auth]),
            "jwt ES256, token cached": lambda: wrk(b, duration, port, "/jwt", [auth]),
            f"jwt ES256, {TOKENS} tokens (each verified)":
                lambda: wrk(b, duration, port, "/jwt", script=lua, env=env),
        }
        res = {c: [] for c in cells}
        names = list(cells)
        rows = []
        wrk(b, 1, port, "/", [auth])        # warm-up
        for rnd in range(rounds):
            for c in names[rnd % len(names):] + names[:rnd % len(names)]:
                c0 = cpu_s(b, sl.pid)
                r = cells[c]()
                c1 = cpu_s(b, sl.pid)
                if r.get("bad") or r.get("sockerr") or not r.get("requests"):
                    rows.append(f"jwt: {c}: wrk reported {r}")
                res[c].append((c1 - c0) * 1e6 / max(1, r.get("requests", 0)))
        # the host drifts between rounds more than within one: each cell's
        # excess over no policy is taken within its round, then the median
        base = res["no policy"]
        rows += [f"| cell ({CONNS} keep-alive conns, {duration} s x {rounds}) | sluice CPU µs/req "
                 "(median, min-max) | over no policy, same round (median, min-max) | ratio |",
                 "|---|---|---|---|"]
        for c in names:
            v = res[c]
            d = [x - b for x, b in zip(v, base)]
            q = [x / b for x, b in zip(v, base)]
            rows.append(f"| {c} | {statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f}) | "
                        f"{statistics.median(d):+.1f} µs ({min(d):+.1f} to {max(d):+.1f}) | "
                        f"{statistics.median(q):.3f} |")
        return rows
    finally:
        for p in (sl, echo):
            p.terminate()
            p.wait()


def main():
    import bench
    print("\n".join(measure(bench, ROUNDS, DURATION)))


if __name__ == "__main__":
    main()
