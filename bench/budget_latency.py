#!/usr/bin/env python3
"""Per-event latency of SSE through a token_budget route against the same
route without one (issue 23: the usage scanner must add no latency per
event).

One sluice (one worker) with two routes to one sluice-echo: /b/ with a
token_budget (a limit the load never reaches: every event is scanned), /n/
without policy.  bench/sse_streams opens STREAMS streams of EVENTS events
EVERY_MS apart (sluice-echo's /sse with ts=1: each event carries its send
time) through each route in turn, ROUNDS times, and prints the delay
percentiles (backend send -> client read) and sluice's CPU per event.

usage: python3 bench/budget_latency.py   (after make all; builds sse_streams)
env: STREAMS (200), EVENTS (50), EVERY_MS (20), ROUNDS (5)
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, "build", "sluice")
ECHO = os.path.join(ROOT, "build", "sluice-echo")
SSE = os.path.join(ROOT, "build", "bench", "sse_streams")
STREAMS = int(os.environ.get("STREAMS", "200"))
EVENTS = int(os.environ.get("EVENTS", "50"))
EVERY_MS = int(os.environ.get("EVERY_MS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splice_bench import cpu_s, free_port, wait_port  # noqa: E402


def main():
    if not os.access(SSE, os.X_OK):
        os.makedirs(os.path.dirname(SSE), exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", SSE, os.path.join(ROOT, "bench", "sse_streams.c")], check=True)
    tmp = tempfile.mkdtemp(prefix="sluice-budget-")
    procs = []
    try:
        echo = subprocess.Popen([ECHO, "--port", "0"], stdout=subprocess.PIPE, text=True)
        procs.append(echo)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", echo.stdout.readline())
        eport = int(m.group(1))
        port = free_port()
        cfg = {"workers": 1, "access_log": None,
               "listeners": [{"name": "h", "address": f"127.0.0.1:{port}"}],
               "upstreams": [{"name": "e", "targets": [{"address": f"127.0.0.1:{eport}"}]}],
               "routes": [
                   {"name": "budget", "match": {"path": {"prefix": "/b"}}, "rewrite": {"strip_prefix": True},
                    "upstream": "e", "token_budget": {"per": "route", "tokens_per_min": 1e10}},
                   {"name": "plain", "match": {"path": {"prefix": "/n"}}, "rewrite": {"strip_prefix": True},
                    "upstream": "e"}]}
        path = os.path.join(tmp, "c.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        sl = subprocess.Popen([SLUICE, "--config", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(sl)
        if not wait_port(port):
            sys.exit("sluice did not start: " + sl.stderr.read().decode()[-500:])
        hold = EVENTS * EVERY_MS / 1000 + 10
        rows = {"budget": [], "plain": []}
        for r in range(ROUNDS):
            for name, prefix in (("plain", "/n"), ("budget", "/b")) if r % 2 else (("budget", "/b"), ("plain", "/n")):
                c0 = cpu_s(sl.pid)
                out = subprocess.run([SSE, "127.0.0.1", str(port), str(STREAMS),
                                      f"{prefix}/sse?n={EVENTS}&ms={EVERY_MS}&ts=1", str(int(hold))],
                                     capture_output=True, text=True, timeout=hold + 30).stdout
                c1 = cpu_s(sl.pid)
                d = [l for l in out.splitlines() if l.startswith("done ")]
                if not d:
                    print(f"round {r + 1} {name}: no result: {out[-300:]}")
                    continue
                f = d[0].split()
                events, p50, p90, p99, mx = int(f[1]), int(f[3]), int(f[4]), int(f[5]), int(f[6])
                cpu_ev = (c1 - c0) * 1e6 / events if events else 0
                rows[name].append((p50, p90, p99, mx, cpu_ev))
                print(f"round {r + 1} {name:6}: {events} events, delay p50 {p50} µs p90 {p90} µs "
                      f"p99 {p99} µs max {mx} µs, sluice CPU {cpu_ev:.2f} µs/event")
        for name, v in rows.items():
            if not v:
                continue
            med = lambda i: sorted(x[i] for x in v)[len(v) // 2]
            print(f"median {name:6}: delay p50 {med(0)} µs p90 {med(1)} µs p99 {med(2)} µs, "
                  f"CPU {med(4):.2f} µs/event over {len(v)} rounds")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
