#!/usr/bin/env python3
"""auth.basic off the event loop, measured: p99 of other clients' small GETs
while basic-auth logins (bcrypt cost 10, each a new credential so the cache
never serves it) run against the same sluice worker.

sluice (one worker) in front of sluice-echo; wrk loads GET /open (no auth)
with 16 connections for DURATION s, once alone and once while LOGINS
threads send logins to /login on new connections, each with a wrong
password (so every one is a full bcrypt hash on the verifier threads).
Prints the p50/p99 of /open both ways and the logins/s achieved.

Usage: python3 bench/basic_auth_p99.py  (after make; needs wrk)
Environment: DURATION (10), LOGINS (4), ROUNDS (3).
"""
import base64
import crypt
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from splice_bench import free_port, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, "build", "sluice")
ECHO = os.path.join(ROOT, "build", "sluice-echo")
DURATION = int(os.environ.get("DURATION", "10"))
LOGINS = int(os.environ.get("LOGINS", "4"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def wrk(port, path):
    out = subprocess.run(["wrk", "-t1", "-c16", "-d%ds" % DURATION, "--latency",
                          "http://127.0.0.1:%d%s" % (port, path)], capture_output=True, text=True).stdout
    lat = {}
    for q in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+([\d.]+)(us|ms|s)" % q, out, re.M)
        lat[q] = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else None
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return lat, float(m.group(1)) if m else None


def login_loop(port, stop, count, i):
    n = 0
    while not stop.is_set():
        n += 1
        cred = base64.b64encode(("alice:wrong-%d-%d" % (i, n)).encode()).decode()
        try:
            c = socket.create_connection(("127.0.0.1", port), 10)
            c.sendall(("GET /login HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"
                       "Connection: close\r\n\r\n" % cred).encode())
            data = b""
            while True:
                d = c.recv(4096)
                if not d:
                    break
                data += d
            c.close()
            if data.startswith(b"HTTP/1.1 401"):
                count[i] += 1
        except OSError:
            pass


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-basic-p99-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = crypt.crypt("secret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
    users = os.path.join(tmp, "users")
    with open(users, "w") as f:
        f.write("alice:$2y$" + h[4:] + "\n")
    echo = subprocess.Popen([ECHO, "--port", "0", "--id", "e"], stdout=subprocess.PIPE, text=True)
    line = echo.stdout.readline()
    eport = int(re.search(r":(\d+)", line).group(1))
    port = free_port()
    cfg = {"workers": 1, "access_log": None,
           "listeners": [{"address": "127.0.0.1:%d" % port}],
           "upstreams": [{"name": "e", "targets": [{"address": "127.0.0.1:%d" % eport}]}],
           "routes": [{"match": {"path": {"prefix": "/login"}}, "upstream": "e",
                       "auth": {"basic": {"users_file": users}}},
                      {"match": {"path": {"prefix": "/open"}}, "upstream": "e"}]}
    path = os.path.join(tmp, "sluice.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    sl = subprocess.Popen([SLUICE, "--config", path], stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            sys.exit("sluice did not start")
        rows = []
        for r in range(ROUNDS):
            alone, rps0 = wrk(port, "/open")
            stop = threading.Event()
            count = [0] * LOGINS
            ts = [threading.Thread(target=login_loop, args=(port, stop, count, i)) for i in range(LOGINS)]
            for t in ts:
                t.start()
            time.sleep(0.5)
            t0 = time.monotonic()
            c0 = sum(count)
            busy, rps1 = wrk(port, "/open")
            logins = (sum(count) - c0) / (time.monotonic() - t0)
            stop.set()
            for t in ts:
                t.join()
            rows.append((alone, rps0, busy, rps1, logins))
            print("round %d: /open alone p50 %.2f ms p99 %.2f ms (%.0f req/s); with %d login threads "
                  "p50 %.2f ms p99 %.2f ms (%.0f req/s); %.1f bcrypt-10 logins/s"
                  % (r + 1, alone["50"], alone["99"], rps0, LOGINS, busy["50"], busy["99"], rps1, logins))
    finally:
        sl.terminate()
        echo.terminate()
        sl.wait()
        echo.wait()


if __name__ == "__main__":
    main()
