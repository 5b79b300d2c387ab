#!/usr/bin/env python3
"""splice(2) vs copy: sluice's CPU per MiB by body size, and one-stream throughput.

  python3 bench/splice_bench.py [SLUICE_BINARY]

nginx (one worker, sendfile) serves random files on core 0 with wrk; sluice
(one worker) runs alone on core 1, once with "splice": {"min_bytes": 0} and
once with "splice": {"enabled": false}.  For each body size, wrk (-c 4)
loads sluice for DURATION s; sluice's CPU is utime+stime from /proc over the
run, divided by the MiB of bodies it moved.  Then one connection downloads a
64 MiB file for DURATION s through sluice (splice / copy) and straight from
nginx.  Env: DURATION (3), SIZES (KiB, comma list), ROUNDS (1).
Short on purpose: the machine is shared.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "sluice")
DURATION = int(os.environ.get("DURATION", "3"))
ROUNDS = int(os.environ.get("ROUNDS", "1"))
SIZES = [int(x) for x in os.environ.get("SIZES", "16,32,64,128,256,1024,4096").split(",")]
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, t=5.0):
    end = time.monotonic() + t
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        f = f.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def wrk(port, path, conns, core):
    out = subprocess.run(["taskset", "-c", str(core), "wrk", "-t1", "-c%d" % conns, "-d%ds" % DURATION,
                          "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True, timeout=DURATION + 30).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m.group(2)]
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, float(m.group(1)) * scale, int(errs.group(1)) if errs else 0


def main():
    tmp = tempfile.mkdtemp(prefix="splice-bench-")
    procs = []
    try:
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        for kib in SIZES + [65536]:
            with open(os.path.join(www, "%dk" % kib), "wb") as f:
                f.write(os.urandom(kib << 10))
        bport = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""user root; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000000;
  client_body_temp_path {tmp}/t1; proxy_temp_path {tmp}/t2; fastcgi_temp_path {tmp}/t3;
  uwsgi_temp_path {tmp}/t4; scgi_temp_path {tmp}/t5;
  server {{ listen 127.0.0.1:{bport}; root {www}; }} }}
""")
        procs.append(subprocess.Popen(["taskset", "-c", "0", "nginx", "-p", tmp, "-c", conf, "-g", "daemon off;"]))
        if not wait_port(bport):
            sys.exit("nginx did not start")

        def sluice(splice):
            port = free_port()
            cfg = {"workers": 1, "listeners": [{"name": "h", "address": "127.0.0.1:%d" % port}],
                   "splice": splice,
                   "upstreams": [{"name": "u", "targets": [{"address": "127.0.0.1:%d" % bport}]}],
                   "routes": [{"name": "r", "match": {}, "upstream": "u"}]}
            path = os.path.join(tmp, "sluice-%d.json" % port)
            with open(path, "w") as f:
                json.dump(cfg, f)
            p = subprocess.Popen(["taskset", "-c", "1", SLUICE, "--config", path],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            if not wait_port(port):
                sys.exit("sluice did not start")
            return p, port

        modes = {"splice": {"enabled": True, "min_bytes": 0}, "copy": {"enabled": False}}
        servers = {m: sluice(v) for m, v in modes.items()}
        print("| body | splice CPU ms/MiB | copy CPU ms/MiB | splice/copy | splice MiB/s | copy MiB/s |")
        print("|---|---|---|---|---|---|")
        for kib in SIZES:
            res = {}
            for r in range(ROUNDS):
                for m, (p, port) in servers.items():
                    wrk(port, "/%dk" % kib, 4, 0) if r == 0 and kib == SIZES[0] else None  # warm
                    c0 = cpu_s(p.pid)
                    reqs, bps, errs = wrk(port, "/%dk" % kib, 4, 0)
                    cpu = cpu_s(p.pid) - c0
                    mib = reqs * kib / 1024.0
                    res.setdefault(m, []).append((1000.0 * cpu / mib if mib else float("nan"), bps / (1 << 20), errs))
            row = {m: sorted(v)[len(v) // 2] for m, v in res.items()}
            print("| %s | %.2f | %.2f | %.2f | %.0f | %.0f |" % (
                "%d KiB" % kib if kib < 1024 else "%d MiB" % (kib // 1024),
                row["splice"][0], row["copy"][0], row["splice"][0] / row["copy"][0],
                row["splice"][1], row["copy"][1]))
            if row["splice"][2] or row["copy"][2]:
                print("  (non-2xx responses: %r)" % {m: row[m][2] for m in row})
        print()
        print("| 64 MiB, one connection | MiB/s | sluice CPU ms/MiB |")
        print("|---|---|---|")
        for name, port, p in [("direct (nginx)", bport, None)] + [
                ("sluice " + m, servers[m][1], servers[m][0]) for m in modes]:
            c0 = cpu_s(p.pid) if p else 0
            reqs, bps, _ = wrk(port, "/65536k", 1, 0)
            cpu = cpu_s(p.pid) - c0 if p else 0
            mib = reqs * 64.0
            print("| %s | %.0f | %s |" % (name, bps / (1 << 20), "%.2f" % (1000 * cpu / mib) if p else "-"))
    finally:
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(5)
            except Exception:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
