#!/usr/bin/env python3
"""sluice vs nginx vs HAProxy, side by side in one run (`make bench`).

Method (see shared/BENCHMARKING.md for why):
  * wrk and the backend (nginx, one worker) on core 0, the proxy under test
    alone on core 1 with one worker; the "direct" ceiling moves the backend to
    core 1 and points wrk straight at it.
  * each cell: WARMUP s of load, then DURATION s measured; the proxy's CPU is
    utime+stime of its process tree from /proc/PID/stat over the measured run.
  * ROUNDS rounds, the order of targets rotated every round; medians with the
    min-max spread, ratios taken within a round and then their median, because
    the host drifts by 25 % over a minute but little within one.

Environment: ROUNDS (3), DURATION (5), WARMUP (1), ONLY (comma list of
direct,sluice,nginx,haproxy), SCENARIOS (comma list of small64,small256,
large,idle), IDLE_CONNS (10000), TIME_LIMIT (seconds, 600).
Results: markdown on stdout and in build/bench/results.md; progress on stderr.
"""

import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "bench")
SLUICE_BIN = os.path.join(ROOT, "build", "sluice")
# run.sh builds the router micro-benchmark into build/bench; the Makefile may
# build it as build/router_bench.
ROUTER_BENCH_BINS = [os.path.join(OUT_DIR, "router_bench"), os.path.join(ROOT, "build", "router_bench")]
IDLE_BIN = os.path.join(OUT_DIR, "idle_conns")

ROUNDS = int(os.environ.get("ROUNDS", "3"))
# wrk takes whole seconds only.
DURATION = max(1, int(float(os.environ.get("DURATION", "5"))))
WARMUP = max(1, int(float(os.environ.get("WARMUP", "1"))))
IDLE_CONNS = int(os.environ.get("IDLE_CONNS", "10000"))
TIME_LIMIT = float(os.environ.get("TIME_LIMIT", "600"))
ALL_TARGETS = ["direct", "sluice", "nginx", "haproxy"]
PROXIES = ["sluice", "nginx", "haproxy"]
ALL_SCENARIOS = ["small64", "small256", "large", "idle"]
LOAD_CORE, PROXY_CORE = "0", "1"
LARGE_BYTES = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def env_list(name, allowed):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return list(allowed)
    picked = [x.strip().lower() for x in raw.split(",") if x.strip()]
    bad = [x for x in picked if x not in allowed]
    if bad:
        sys.exit(f"bench: {name} has unknown names {bad}; known: {','.join(allowed)}")
    return [x for x in allowed if x in picked]


TARGETS = env_list("ONLY", ALL_TARGETS)
SCENARIOS = env_list("SCENARIOS", ALL_SCENARIOS)
T0 = time.monotonic()
NOTES = []
OTHER = []  # per measured cell: % of host CPU used by processes not in the test
QUIET_TIMEOUTS = []  # host busy % each time wait_quiet gave up


def log(msg):
    print(f"[bench {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def note(msg):
    if msg not in NOTES:
        NOTES.append(msg)
    log("note: " + msg)


def out_of_time():
    return time.monotonic() - T0 > TIME_LIMIT


# ---------------------------------------------------------------- /proc

def read_stat(pid):
    """(ppid, utime+stime ticks) of one process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: fields start after the last ')'.
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[1]), int(rest[11]) + int(rest[12])


def tree_pids(root):
    """root and all its descendants, found by scanning every process's ppid."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = read_stat(int(name))
        if st:
            children.setdefault(st[0], []).append(int(name))
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        if read_stat(p) is None:
            continue
        pids.append(p)
        todo.extend(children.get(p, []))
    return pids


def tree_cpu(pids):
    """CPU seconds used so far by the given processes."""
    total = 0
    for p in pids:
        st = read_stat(p)
        if st:
            total += st[1]
    return total / CLK_TCK


def tree_rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def host_busy():
    """(busy seconds summed over CPUs, wall seconds) for the whole host. busy
    includes irq and softirq time because the kernel charges those ticks to
    the interrupted process's stime too, and we subtract process times."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK, time.monotonic()


# ---------------------------------------------------------------- processes

STARTED = []  # every Popen we started, so cleanup can stop exactly those


class Server:
    """One server process we started (nginx master, haproxy, sluice)."""

    def __init__(self, name, argv, core, workdir):
        self.name, self.argv, self.core, self.workdir = name, argv, core, workdir
        self.proc = None
        self.logpath = os.path.join(workdir, f"{name}.out")

    def start(self):
        logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            ["taskset", "-c", self.core] + self.argv, cwd=self.workdir,
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True)
        logf.close()
        STARTED.append(self.proc)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return tree_pids(self.proc.pid) if self.alive() else []

    def stop(self):
        if self.proc is None:
            return
        stop_proc(self.proc)
        self.proc = None

    def log_tail(self, n=5):
        try:
            with open(self.logpath, errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-n:])
        except OSError:
            return ""


def stop_proc(proc, grace=3.0):
    """TERM the process, KILL it and its remaining descendants (by PID) if it
    has not exited within `grace` seconds."""
    if proc.poll() is not None:
        return
    kids = tree_pids(proc.pid)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        pass
    for p in kids:
        if read_stat(p) is not None:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


def cleanup():
    for proc in reversed(STARTED):
        try:
            stop_proc(proc, grace=2.0)
        except Exception as e:  # keep stopping the others
            log(f"cleanup of pid {proc.pid}: {e}")


def http_status(port, path="/", timeout=1.0):
    """Status code of one GET, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(64)
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def wait_ready(server, port, path="/", limit=6.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        if http_status(port, path) == 200:
            return True
        time.sleep(0.1)
    return False


def free_ports(n):
    """n distinct free loopback ports below the ephemeral range (so no
    outgoing connection of the benchmark can be holding them)."""
    ports = []
    rng = random.Random()
    while len(ports) < n:
        p = rng.randrange(20000, 32000)
        if p in ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            ports.append(p)
        except OSError:
            pass
        finally:
            s.close()
    return ports


def nofile_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- configs

def nginx_common(tmp, name, conns):
    return f"""user root;
worker_processes 1;
worker_rlimit_nofile {nofile_limit()};
pid {tmp}/{name}.pid;
events {{ worker_connections {conns}; }}
"""


def nginx_temp_paths(tmp, name):
    d = f"{tmp}/{name}-temp"
    os.makedirs(d, exist_ok=True)
    return "\n".join(f"  {k} {d}/{k.split('_')[0]};" for k in (
        "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
        "uwsgi_temp_path", "scgi_temp_path"))


def write_backend_conf(tmp, port):
    www = os.path.join(tmp, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "1m"), "wb") as f:
        f.write(os.urandom(LARGE_BYTES))
    conf = nginx_common(tmp, "backend", 16384) + f"""http {{
  access_log off;
  default_type text/plain;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
{nginx_temp_paths(tmp, "backend")}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /1m {{ root {www}; }}
    location / {{ return 200 "hello world\\n"; }}
  }}
}}
"""
    path = os.path.join(tmp, "backend.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def write_nginx_proxy_conf(tmp, port, bport):
    # The upstream keepalive pool is larger than the largest client count:
    # a smaller pool makes nginx reconnect thousands of times a second.
    conf = nginx_common(tmp, "nginx", max(4096, IDLE_CONNS * 2 + 1024)) + f"""http {{
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
{nginx_temp_paths(tmp, "nginx")}
  upstream b {{
    server 127.0.0.1:{bport};
    keepalive 1024;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://b;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Keep 1 MiB responses in memory buffers like the other proxies do
      # instead of spilling them to a temp file on disk.
      proxy_max_temp_file_size 0;
    }}
  }}
}}
"""
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def write_haproxy_conf(tmp, port, bport):
    maxconn = IDLE_CONNS + 2048
    conf = f"""global
  nbthread 1
  maxconn {maxconn}
  # HAProxy wants 2 descriptors per connection up front; where the hard
  # RLIMIT_NOFILE is lower it would refuse to start, though the idle test
  # needs only about one per connection.
  no strict-limits

defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  http-reuse always

frontend fe
  bind 127.0.0.1:{port}
  maxconn {maxconn}
  default_backend be

backend be
  server s1 127.0.0.1:{bport}
"""
    path = os.path.join(tmp, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    return path


def write_sluice_conf(tmp, port, bport):
    conf = ('{"workers":1,"access_log":null,'
            f'"listeners":[{{"address":"127.0.0.1:{port}"}}],'
            f'"upstreams":[{{"name":"b","targets":[{{"address":"127.0.0.1:{bport}"}}],'
            '"pool":{"max_idle_per_target":1024}}],'
            '"routes":[{"upstream":"b"}]}\n')
    path = os.path.join(tmp, "sluice.json")
    with open(path, "w") as f:
        f.write(conf)
    return path


# ---------------------------------------------------------------- wrk

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def run_wrk(port, path, conns, duration):
    """Runs wrk on the load core; returns (stdout, wrk CPU seconds)."""
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{conns}", f"-d{duration}s",
            "--latency", "--timeout", "5s", f"http://127.0.0.1:{port}{path}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    STARTED.append(proc)
    deadline = time.monotonic() + duration + 15
    cpu = 0.0
    while True:
        # wait4 gives this child's own rusage, untouched by other children.
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = ru.ru_utime + ru.ru_stime
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = -9
            break
        time.sleep(0.02)
    out = proc.stdout.read().decode(errors="replace")
    proc.stdout.close()
    return out, cpu, proc.returncode


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
        r["secs"] = float(m.group(2)) * UNITS.get(m.group(3), 1.0) / 1e3
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
        if m:
            r[f"p{pct}"] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["bad"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["sockerr"] = sum(int(x) for x in m.groups()) if m else 0
    return r


# ---------------------------------------------------------------- bench

SCEN = {
    "small64": dict(title="small GET keep-alive, 64 conns", path="/", conns=64),
    "small256": dict(title="small GET keep-alive, 256 conns", path="/", conns=256),
    "large": dict(title="1 MiB responses, 8 conns", path="/1m", conns=8),
    "idle": dict(title=f"{IDLE_CONNS:,} idle keep-alive conns"),
}

METRICS = {
    "small64": [("rps", "req/s"), ("p50", "p50 ms"), ("p99", "p99 ms"),
                ("cpu_req", "proxy CPU µs/req"), ("cpu_wrk", "proxy CPU ÷ wrk CPU")],
    "large": [("mibs", "MiB/s"), ("cpu_mib", "proxy CPU µs/MiB"),
              ("cpu_wrk", "proxy CPU ÷ wrk CPU")],
    "idle": [("kib_conn", "RSS KiB per idle conn")],
}
METRICS["small256"] = METRICS["small64"]

# results[scenario][metric][target] = list of per-round values (None = failed)
RESULTS = {s: {m: {t: [] for t in ALL_TARGETS} for m, _ in METRICS[s]} for s in ALL_SCENARIOS}


def record(scen, target, values):
    for m, _ in METRICS[scen]:
        RESULTS[scen][m][target].append(None if values is None else values.get(m))


def set_affinity(pids, core):
    for p in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", core, str(p)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)


class Bench:
    def __init__(self, tmp):
        self.tmp = tmp
        bport, sport, nport, hport = free_ports(4)
        self.port = {"direct": bport, "sluice": sport, "nginx": nport, "haproxy": hport}
        self.backend = Server("backend", [
            "nginx", "-p", tmp, "-c", write_backend_conf(tmp, bport),
            "-e", f"{tmp}/backend.error.log", "-g", "daemon off;"], LOAD_CORE, tmp)
        self.servers = {
            "nginx": Server("nginx", [
                "nginx", "-p", tmp, "-c", write_nginx_proxy_conf(tmp, nport, bport),
                "-e", f"{tmp}/nginx.error.log", "-g", "daemon off;"], PROXY_CORE, tmp),
            "haproxy": Server("haproxy", [
                "haproxy", "-db", "-f", write_haproxy_conf(tmp, hport, bport)], PROXY_CORE, tmp),
            "sluice": Server("sluice", [
                SLUICE_BIN, "--config", write_sluice_conf(tmp, sport, bport)], PROXY_CORE, tmp),
        }
        self.broken = {}  # target -> reason it cannot be measured this run

    # A proxy that fails to come up is marked broken for the rest of the run
    # rather than retried in every cell, which would eat the time budget.
    def ensure(self, target):
        if target == "direct":
            return self.backend.alive()
        if target in self.broken:
            return False
        srv = self.servers[target]
        if srv.alive() and http_status(self.port[target]) == 200:
            return True
        srv.stop()
        if target == "sluice" and not os.access(SLUICE_BIN, os.X_OK):
            self.broken[target] = "build/sluice not built"
            note(f"sluice skipped: {SLUICE_BIN} does not exist")
            return False
        srv.start()
        if wait_ready(srv, self.port[target]):
            return True
        why = srv.log_tail()
        srv.stop()
        self.broken[target] = why
        note(f"{target} did not answer 200 on GET / within 6 s; skipped for the rest of the run"
             + (f" (its output: {why})" if why else ""))
        try:
            shutil.copy(srv.logpath, os.path.join(OUT_DIR, f"{target}.log"))
        except OSError:
            pass
        return False

    def measure_load(self, scen, target):
        sc = SCEN[scen]
        if not self.ensure(target):
            return None
        backend_pids = self.backend.pids()
        direct = target == "direct"
        if direct:
            set_affinity(backend_pids, PROXY_CORE)
        try:
            port = self.port[target]
            run_wrk(port, sc["path"], sc["conns"], WARMUP)
            pids = backend_pids if direct else self.servers[target].pids()
            cpu0, b0, (h0, w0) = tree_cpu(pids), tree_cpu(backend_pids), host_busy()
            out, wrk_cpu, rc = run_wrk(port, sc["path"], sc["conns"], DURATION)
            cpu1, b1, (h1, w1) = tree_cpu(pids), tree_cpu(backend_pids), host_busy()
        finally:
            if direct:
                set_affinity(backend_pids, LOAD_CORE)
        r = parse_wrk(out)
        if rc != 0 or not r.get("requests"):
            note(f"{scen}/{target}: wrk failed (exit {rc}): {out.strip()[-200:]}")
            return None
        bad = r["bad"] + r["sockerr"]
        if bad > r["requests"] * 0.001:
            note(f"{scen}/{target}: {r['bad']} non-2xx responses and {r['sockerr']} socket "
                 f"errors out of {r['requests']} requests; cell dropped")
            return None
        proxy_cpu = cpu1 - cpu0
        other = (h1 - h0) - proxy_cpu - wrk_cpu - (0 if direct else b1 - b0)
        other_pct = 100.0 * other / ((w1 - w0) * NCPU)
        OTHER.append(other_pct)
        v = {"rps": r["rps"], "p50": r.get("p50"), "p99": r.get("p99"),
             "cpu_req": proxy_cpu / r["requests"] * 1e6,
             "cpu_wrk": proxy_cpu / wrk_cpu if wrk_cpu > 0 else None}
        if scen == "large":
            mib = r["requests"] * LARGE_BYTES / float(1 << 20)
            v["mibs"] = mib / r["secs"]
            v["cpu_mib"] = proxy_cpu / mib * 1e6
        log(f"  {scen:8s} {target:7s} {r['rps']:10.0f} req/s  proxy CPU {v['cpu_req']:.2f} µs/req"
            f"  other {other_pct:.0f} %")
        return v

    def measure_idle(self, target):
        if target == "direct" or target in self.broken:
            return None
        # A fresh process, so every proxy starts from the same state rather
        # than with whatever the load scenarios left in its allocator.
        self.servers[target].stop()
        if not self.ensure(target):
            return None
        srv = self.servers[target]
        time.sleep(0.5)
        rss0 = tree_rss_kib(srv.pids())
        proc = subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, IDLE_BIN, "127.0.0.1", str(self.port[target]),
             str(IDLE_CONNS), "/", "60"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        STARTED.append(proc)
        try:
            ready = read_line(proc.stdout, 70)
            m = re.match(r"ready (\d+) (\d+)", ready or "")
            if not m:
                note(f"idle/{target}: client did not finish opening connections "
                     f"({(ready or '').strip()!r})")
                return None
            opened, failed = int(m.group(1)), int(m.group(2))
            time.sleep(2.0)
            rss1 = tree_rss_kib(srv.pids())
            proc.stdin.close()
            closed_line = read_line(proc.stdout, 15) or ""
        finally:
            stop_proc(proc, grace=10)
        m = re.match(r"closed_by_peer (\d+)", closed_line)
        closed = int(m.group(1)) if m else -1
        if failed or closed != 0 or opened == 0:
            note(f"idle/{target}: {opened} opened, {failed} failed, {closed} closed by the proxy "
                 "while idle; cell dropped")
            return None
        kib = (rss1 - rss0) / opened
        log(f"  idle     {target:7s} RSS {rss0} -> {rss1} KiB: {kib:.2f} KiB/conn")
        return {"kib_conn": kib}

    def run(self):
        self.backend.start()
        if not wait_ready(self.backend, self.port["direct"]) or \
                http_status(self.port["direct"], "/1m") != 200:
            raise SystemExit(f"bench: backend nginx did not start: {self.backend.log_tail()}")
        for rnd in range(ROUNDS):
            k = rnd % len(TARGETS)
            order = TARGETS[k:] + TARGETS[:k]
            log(f"round {rnd + 1}/{ROUNDS}, order {', '.join(order)}")
            for scen in SCENARIOS:
                wait_quiet()
                for t in order:
                    if out_of_time():
                        note("TIME_LIMIT reached: remaining cells skipped")
                        record(scen, t, None)
                        continue
                    v = self.measure_idle(t) if scen == "idle" else self.measure_load(scen, t)
                    record(scen, t, v)
            for srv in self.servers.values():
                srv.stop()


def wait_quiet(max_busy=10.0):
    """Waits for the host to be quiet, since other work on this shared
    machine skews every figure; our own servers are idle here. Up to 15 s,
    but only 3 s once the host has proved to be busy for good."""
    limit = 3.0 if QUIET_TIMEOUTS else 15.0
    deadline = time.monotonic() + limit
    while True:
        h0, w0 = host_busy()
        time.sleep(0.5)
        h1, w1 = host_busy()
        busy = 100.0 * (h1 - h0) / ((w1 - w0) * NCPU)
        if busy <= max_busy:
            return
        if time.monotonic() > deadline or out_of_time():
            log(f"host still {busy:.0f} % busy with other work after waiting {limit:g} s")
            QUIET_TIMEOUTS.append(busy)
            return


def read_line(stream, timeout):
    r, _, _ = select.select([stream], [], [], timeout)
    if not r:
        return None
    return stream.readline().decode(errors="replace")


# ---------------------------------------------------------------- report

FMT = {"rps": "{:,.0f}", "mibs": "{:,.0f}", "p50": "{:.2f}", "p99": "{:.2f}",
       "cpu_req": "{:.2f}", "cpu_mib": "{:.0f}", "cpu_wrk": "{:.2f}", "kib_conn": "{:.2f}"}


def summarize(vals, fmt):
    v = [x for x in vals if x is not None]
    if not v:
        return "—"
    med = fmt.format(statistics.median(v))
    if len(v) == 1:
        return med
    lo, hi = fmt.format(min(v)), fmt.format(max(v))
    return med if lo == hi else f"{med} ({lo}–{hi})"


def ratios(a, b):
    return [x / y if x is not None and y else None for x, y in zip(a, b)]


def table():
    rows = ["| scenario | metric | direct | sluice | nginx | HAProxy | sluice/nginx | sluice/HAProxy |",
            "|---|---|---|---|---|---|---|---|"]
    for scen in SCENARIOS:
        for m, label in METRICS[scen]:
            r = RESULTS[scen][m]
            cells = [summarize(r[t], FMT[m]) for t in ALL_TARGETS]
            cells += [summarize(ratios(r["sluice"], r[o]), "{:.2f}") for o in ("nginx", "haproxy")]
            rows.append(f"| {SCEN[scen]['title']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def versions():
    def first(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return f"{first(['nginx', '-v'])}; {first(['haproxy', '-v'])}; {first(['wrk', '-v'])}"


def router_bench():
    bins = [b for b in ROUTER_BENCH_BINS if os.access(b, os.X_OK)]
    if not bins:
        return None
    log(f"running {os.path.relpath(bins[0], ROOT)}")
    try:
        p = subprocess.run(["taskset", "-c", PROXY_CORE, bins[0]],
                           capture_output=True, text=True, timeout=120)
        lines = p.stdout.strip().splitlines()
        return lines[-1] if lines else f"(no output, exit {p.returncode})"
    except subprocess.TimeoutExpired:
        return "(timed out after 120 s)"


def all_cpu():
    cpu = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st:
                cpu[int(name)] = st[1]
    return cpu


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def idle_check():
    """Warns when the host is busy before we start, naming the busiest
    processes so the person running the benchmark knows what to stop."""
    with open("/proc/loadavg") as f:
        load1 = float(f.read().split()[0])
    c0, (h0, w0) = all_cpu(), host_busy()
    time.sleep(2.0)
    c1, (h1, w1) = all_cpu(), host_busy()
    busy = 100.0 * (h1 - h0) / ((w1 - w0) * NCPU)
    log(f"machine: {NCPU} CPUs, loadavg {load1:.2f}, busy {busy:.0f} % over 2 s")
    if load1 > 0.5 or busy > 10:
        top = sorted(((c1[p] - c0.get(p, 0), p) for p in c1), reverse=True)[:3]
        who = ", ".join(f"{comm(p)}[{p}] {100.0 * t / CLK_TCK / (w1 - w0):.0f} %"
                        for t, p in top if t > 0)
        note(f"machine not idle at start (loadavg {load1:.2f}, {busy:.0f} % busy"
             + (f"; busiest: {who}" if who else "") + "): figures are less trustworthy")
    return load1, busy


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for t in PROXIES:  # a failing proxy's output is copied here; drop stale ones
        try:
            os.remove(os.path.join(OUT_DIR, f"{t}.log"))
        except FileNotFoundError:
            pass
    if os.cpu_count() < 2:
        sys.exit("bench: needs 2 CPUs (load on core 0, proxy on core 1)")
    for tool in ("wrk", "nginx", "haproxy", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (apt-get install wrk nginx-light haproxy)")
    if "idle" in SCENARIOS and nofile_limit() < IDLE_CONNS * 1.2 + 256:
        note(f"RLIMIT_NOFILE is {nofile_limit()}, tight for {IDLE_CONNS} idle connections")
    load1, busy = idle_check()
    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    os.chmod(tmp, 0o755)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(f"bench: stopped by signal {s}"))
    b = Bench(tmp)
    rb = None
    try:
        b.run()
        rb = router_bench()
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - T0
    md = [f"# sluice benchmark ({time.strftime('%Y-%m-%d %H:%M:%S')})", "",
          f"{ROUNDS} round(s), {WARMUP:g} s warm-up + {DURATION:g} s measured per cell; "
          f"medians (min–max over rounds); ratios per round, then median "
          f"(> 1 is better for req/s and MiB/s, < 1 for latency, CPU and memory). "
          f"wrk + backend nginx on core 0, proxy alone on core 1, one worker each; "
          f"direct = wrk straight to the backend moved to core 1 (its CPU columns are the backend's).",
          "", f"Machine: {NCPU} CPUs, loadavg {load1:.2f} and {busy:.0f} % busy at start. {versions()}.",
          "", table(), ""]
    if rb is not None:
        md += [f"router_bench: {rb}", ""]
    if OTHER:
        noisy = [x for x in OTHER if x > 5]
        msg = (f"other processes used {statistics.median(OTHER):.0f} % of the host's CPU "
               f"(median over {len(OTHER)} measured cells; max {max(OTHER):.0f} %)")
        if noisy:
            msg += (f"; {len(noisy)} cells had more than 5 %: absolute figures are skewed, "
                    "trust the CPU-per-request and same-round ratios more")
        NOTES.append(msg)
    if QUIET_TIMEOUTS:
        NOTES.append(f"{len(QUIET_TIMEOUTS)} time(s) the host stayed busy with other work "
                     f"(up to {max(QUIET_TIMEOUTS):.0f} %) after waiting for it to quieten")
    if NOTES:
        md += ["Notes:"] + [f"- {n}" for n in NOTES] + [""]
    md.append(f"Total time: {elapsed:.0f} s.")
    text = "\n".join(md) + "\n"
    with open(os.path.join(OUT_DIR, "results.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
