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
  * reload (sluice only): a sluice with a 10,000-route document (generated
    here: exact and wildcard hosts, prefixes, exact paths, header matches, all
    to the backend) and an admin token takes the small64 load on one of those
    routes in four cells of RELOAD_DURATION s (1) per repeat, RELOAD_REPEAT
    repeats per round (16) after one warm-up: two cells alone ("none",
    "again"); one while a client (bench/put_client.c on the load core, one
    process per round) PUTs the whole document to /config every
    RELOAD_INTERVAL s over the whole cell ("put"), alternating two variants
    (a response header value of the loaded route and the header-match
    values), and checks each change shows on the wire (GETs over one
    kept-alive connection); and a control ("upload") where the same client
    sends the same bytes with a wrong token, so they cross loopback and are
    refused (401) without being parsed or applied, and asks the route once
    after each, as a PUT's first check does: it separates the client's cost
    on the shared load core from what applying a config costs.  The order
    of the four changes every repeat, after a Williams design: each cell as
    often in each position and after each other cell, so what one cell
    leaves behind weighs on all alike.  Reported: PUT round-trip times,
    req/s and p99 of the cells, PUT answers other than 200 and wrk errors.
    A p99 is set by the worst percent of requests, and a host that stalls a
    core for a few milliseconds moves a cell's p99 by a third or more: each
    ratio is taken within one repeat (seconds apart), "without" being the
    geometric mean of the repeat's two cells alone; the median over all
    repeats is the figure, and a bootstrap interval says how far that median
    moves.  The two cells alone against each other show the method's own
    resolution.  Short cells and many repeats, because such a stall spoils
    only the cell it falls in and the median passes over it, where with
    five-second cells one stall spoilt a whole pair: nine repeats of those
    gave intervals 0.09-0.31 wide for the headline ratio, 48 one-second
    repeats 0.13-0.15 in five runs.
  * stats (sluice only): a sluice with an admin token takes the small64
    load in four cells of STATS_DURATION s (2) per repeat, STATS_REPEAT (8)
    repeats per round in Williams orders: two alone ("none", "again"), one
    while STATS_POLLERS (1,000) kept-alive admin connections each ask GET
    /stats once a second, starts spread over the second, as that many open
    dashboards (GET /ui) would ("pollers"), and one while they ask back to
    back ("flood"); bench/stats_poll.c on the load core.  Reported: p99 and
    req/s of each against the cells alone (ratios within a repeat, median,
    bootstrap interval), /stats answers per second and their round trip.
  * paired: the small64 load on sluice and on nginx (then HAProxy) at the
    same time, both proxies on the proxy core, each loaded by a wrk of its
    own on the load core.  Whatever the host does to the core during the
    cell (its speed swings by a quarter from minute to minute here) it does
    to both, so their CPU per request compare within one measurement:
    repeated builds of one binary measure 1.000 +- 0.003 against each
    other this way, where consecutive cells spread by +-15 %.  The CPU per
    request of each proxy is the deciding figure as in small64, taken at
    the same moment; the absolute values are higher than alone (two
    processes take turns on one core).
  * huge: 64 MiB responses (a static file the backend sends with sendfile),
    4 connections; MiB/s from every byte wrk read, proxy CPU per MiB, ratios
    against direct and HAProxy. sluice runs twice: as configured (splice on
    by default) and as sluice-nosplice ("splice": {"enabled": false}), shown
    in rows of their own; sluice's /metrics (sluice_body_bytes_total) around
    each cell shows whether the bytes really moved by splice(2).
  * TLS: an ECDSA P-256 certificate is generated at start (openssl CLI).
    Separate TLS-terminating processes of each proxy (sluice-tls, nginx-tls,
    haproxy-tls) and a TLS port on the backend (direct) use it, TLS 1.2 and
    1.3 on, sessions as each server defaults them, plain HTTP to the backend
    over kept-alive connections like the plain proxies.
    tls_small: the small64 load over https (wrk's OpenSSL, TLS 1.3, one
    handshake per connection). tls_handshake: bench/tls_hs (built by
    run.sh) on the load core keeps 32 connections in flight, each a full
    TLS 1.3 handshake (no session ever offered), one GET, close; reported:
    proxy CPU per completed handshake (the figure that decides), handshakes/s,
    proxy CPU ÷ client CPU and the session tickets each server sends per
    handshake (part of its cost). Cells with failed exchanges, resumed or
    non-1.3 handshakes are dropped; sluice's listener handshake counters
    are checked against the client's count.

  * skewed: four backends (build/sluice-echo on the load core), one of them
    answering SKEW_DELAY_MS (20) ms late; small GETs over 64 connections
    through each proxy balancing over the four: sluice least_request,
    nginx least_conn, HAProxy leastconn, and sluice round_robin as the
    control (shown as sluice-rr; it runs with ONLY=sluice).  Reported: the
    share of the requests the slow backend served (from the backends' own
    counts, /stats), p50 and p99 from wrk, req/s.  The balance micro-
    benchmark (bench/balance_bench.c, built by run.sh: ns per pick among
    1,000 targets for each balancer) runs after the rounds like router_bench.

Environment: ROUNDS (3), DURATION (5), WARMUP (1), ONLY (comma list of
direct,sluice,sluice-nosplice,nginx,haproxy), SCENARIOS (comma list of
small64,small256,paired,large,huge,tls_small,tls_handshake,idle,reload,stats,skewed), IDLE_CONNS
(10000), RELOAD_DURATION (measured seconds of each reload cell, 1),
RELOAD_INTERVAL (0.5), RELOAD_REPEAT (16), STATS_POLLERS (1000), STATS_DURATION (2),
STATS_REPEAT (8), TIME_LIMIT (seconds, 1200; a full default run took
793 s in the ninth session), KEEP_TMP (set: keep the work directory with the
servers' logs, e.g. sluice-reload.out with each reload's apply time). Results: markdown on stdout and in build/bench/results.md;
progress on stderr.
"""

import json
import math
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "build", "bench")
SLUICE_BIN = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, "build", "sluice")
# run.sh builds the router micro-benchmark into build/bench; the Makefile may
# build it as build/router_bench.
ROUTER_BENCH_BINS = [os.path.join(OUT_DIR, "router_bench"), os.path.join(ROOT, "build", "router_bench")]
BALANCE_BENCH_BIN = os.path.join(OUT_DIR, "balance_bench")
ECHO_BIN = os.environ.get("ECHO_BIN") or os.path.join(ROOT, "build", "sluice-echo")
IDLE_BIN = os.path.join(OUT_DIR, "idle_conns")
TLS_HS_BIN = os.path.join(OUT_DIR, "tls_hs")
PUT_CLIENT_BIN = os.path.join(OUT_DIR, "put_client")

ROUNDS = int(os.environ.get("ROUNDS", "3"))
# wrk takes whole seconds only.
DURATION = max(1, int(float(os.environ.get("DURATION", "5"))))
WARMUP = max(1, int(float(os.environ.get("WARMUP", "1"))))
IDLE_CONNS = int(os.environ.get("IDLE_CONNS", "10000"))
TIME_LIMIT = float(os.environ.get("TIME_LIMIT", "1200"))
# sluice-nosplice (sluice with "splice": {"enabled": false}) runs in the
# huge scenario only and shows in rows of its own.
ALL_TARGETS = ["direct", "sluice", "sluice-nosplice", "nginx", "haproxy"]
COLUMNS = ["direct", "sluice", "nginx", "haproxy"]
PROXIES = ["sluice", "nginx", "haproxy"]
ALL_SCENARIOS = ["small64", "small256", "paired", "large", "huge", "tls_small",
                 "tls_handshake", "idle", "reload", "stats", "streams", "skewed", "policy", "jwt"]
# streams: STREAMS concurrent SSE streams (sluice-echo /sse, one event a
# second each) for STREAM_SECONDS through each proxy (one worker, pinned to
# the proxy core), and direct to the backend as the baseline
STREAMS = int(os.environ.get("STREAMS", "10000"))
STREAM_SECONDS = int(os.environ.get("STREAM_SECONDS", "30"))
SSE_BIN = os.path.join(OUT_DIR, "sse_streams")
ECHO_BIN = os.path.join(ROOT, "build", "sluice-echo")
SKEW_DELAY_MS = int(os.environ.get("SKEW_DELAY_MS", "20"))
SKEW_CONNS = 64
# skewed: the proxies and how each balances; sluice-rr runs when sluice does
SKEW_TARGETS = ["sluice", "sluice-rr", "nginx", "haproxy"]
SKEW_HOW = {"sluice": "least_request", "sluice-rr": "round_robin (control)",
            "nginx": "least_conn", "haproxy": "leastconn"}
RELOAD_DURATION = max(1, int(float(os.environ.get("RELOAD_DURATION", "1"))))
RELOAD_INTERVAL = float(os.environ.get("RELOAD_INTERVAL", "0.5"))
RELOAD_REPEAT = max(1, int(os.environ.get("RELOAD_REPEAT", "16")))
# the cells of one repeat: "again" is a second cell without reloads, so the
# table shows how far two cells of the same load differ (the method's own
# resolution) beside what reloads and the control do
RELOAD_MODES = ("none", "again", "upload", "put")
RELOAD_ROUTES = int(os.environ.get("RELOAD_ROUTES", "10000"))
# stats: the small64 load on sluice with and without STATS_POLLERS kept-alive
# admin connections polling GET /stats (bench/stats_poll.c on the load core):
# "pollers" once a second each (as many dashboards, GET /ui, would),
# "flood" each again as soon as its answer is in; cells of STATS_DURATION s,
# STATS_REPEAT repeats per round in Williams orders
STATS_POLLERS = int(os.environ.get("STATS_POLLERS", "1000"))
STATS_DURATION = max(1, int(float(os.environ.get("STATS_DURATION", "2"))))
STATS_REPEAT = max(1, int(os.environ.get("STATS_REPEAT", "8")))
STATS_MODES = ("none", "again", "pollers", "flood")
STATS_POLL_BIN = os.path.join(OUT_DIR, "stats_poll")
LOAD_CORE, PROXY_CORE = "0", "1"
LARGE_BYTES = 1 << 20
HUGE_BYTES = 64 << 20
# The name in the benchmark certificate; tls_hs sends it as SNI and Host.
CERT_NAME = "bench.sluice.test"
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


def client_tls():
    """A TLS 1.3 client context that accepts the benchmark's self-signed
    certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def http_status(port, path="/", timeout=1.0, tls=False):
    """Status code of one GET (over TLS 1.3 when tls), or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            s = client_tls().wrap_socket(raw, server_hostname=CERT_NAME) if tls else raw
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(64)
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else None
    except (OSError, ssl.SSLError):
        return None


def wait_ready(server, port, path="/", limit=6.0, tls=False):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        if http_status(port, path, tls=tls) == 200:
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


def make_cert(tmp):
    """A self-signed ECDSA P-256 certificate for CERT_NAME and 127.0.0.1,
    made with the openssl CLI. Returns (cert, key, cert+key) paths; HAProxy
    wants both in one file."""
    cert, key, both = (os.path.join(tmp, n) for n in ("cert.pem", "key.pem", "cert-key.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "7", "-subj", f"/CN={CERT_NAME}",
                    "-addext", f"subjectAltName=DNS:{CERT_NAME},IP:127.0.0.1"],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=30)
    with open(both, "w") as f:
        for p in (cert, key):
            with open(p) as src:
                f.write(src.read())
    return cert, key, both


def nginx_tls(tls):
    """Server-block lines for nginx terminating TLS with the benchmark
    certificate.  Session tickets and caches off everywhere, as
    BENCHMARKING.md asks for full-handshake figures (keep-alive TLS is
    unaffected: wrk handshakes once per connection)."""
    return f"""    ssl_certificate {tls[0]};
    ssl_certificate_key {tls[1]};
    # nginx 1.22 leaves TLS 1.3 off unless it is listed.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;
"""


def write_backend_conf(tmp, port, tls_port, tls):
    www = os.path.join(tmp, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "1m"), "wb") as f:
        f.write(os.urandom(LARGE_BYTES))
    if "huge" in SCENARIOS:
        with open(os.path.join(www, "64m"), "wb") as f:
            for _ in range(HUGE_BYTES // LARGE_BYTES):
                f.write(os.urandom(LARGE_BYTES))
    # The same locations over TLS on a second port: the direct ceiling of
    # the TLS scenarios.
    locations = f"""    location = /1m {{ root {www}; }}
    location = /64m {{ root {www}; }}
    location / {{ return 200 "hello world\\n"; }}
"""
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
{locations}  }}
  server {{
    listen 127.0.0.1:{tls_port} ssl backlog=4096;
{nginx_tls(tls)}{locations}  }}
}}
"""
    path = os.path.join(tmp, "backend.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def write_nginx_proxy_conf(tmp, name, port, bport, tls=None, bports=None, balance=""):
    """nginx as the proxy; tls = (cert, key, cert+key) to terminate TLS.
    bports (a list) replaces the one backend; balance is a directive of the
    upstream block (least_conn;)."""
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in (bports or [bport]))
    # The upstream keepalive pool is larger than the largest client count:
    # a smaller pool makes nginx reconnect thousands of times a second.
    conf = nginx_common(tmp, name, max(4096, IDLE_CONNS * 2 + 1024)) + f"""http {{
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
{nginx_temp_paths(tmp, name)}
  upstream b {{
    {balance}
{servers}    keepalive 1024;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
  }}
  server {{
    listen 127.0.0.1:{port}{" ssl" if tls else ""} backlog=4096;
{nginx_tls(tls) if tls else ""}    location / {{
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
    path = os.path.join(tmp, f"{name}.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def write_haproxy_conf(tmp, name, port, bport, tls=None, bports=None, balance=None):
    """HAProxy as the proxy; tls = (cert, key, cert+key) to terminate TLS
    (session tickets and the session cache off, as for nginx).  bports (a
    list) replaces the one backend; balance: the backend's algorithm."""
    servers = "".join(f"  server s{i} 127.0.0.1:{p}\n" for i, p in enumerate(bports or [bport]))
    maxconn = IDLE_CONNS + 2048
    conf = f"""global
  nbthread 1
  maxconn {maxconn}
  # HAProxy wants 2 descriptors per connection up front; where the hard
  # RLIMIT_NOFILE is lower it would refuse to start, though the idle test
  # needs only about one per connection.
  no strict-limits
{"  tune.ssl.cachesize 0" + chr(10) if tls else ""}
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  http-reuse always

frontend fe
  bind 127.0.0.1:{port}{f" ssl crt {tls[2]} ssl-min-ver TLSv1.2 no-tls-tickets" if tls else ""}
  maxconn {maxconn}
  default_backend be

backend be
{"  balance " + balance + chr(10) if balance else ""}{servers}"""
    path = os.path.join(tmp, f"{name}.cfg")
    with open(path, "w") as f:
        f.write(conf)
    return path


def write_sluice_conf(tmp, name, port, bport, admin_port, tls=None, splice=True, bports=None,
                      balance=None, policy=None, token=None):
    """sluice as the proxy; tls = (cert, key, cert+key) to terminate TLS.
    The admin listener (loopback, no token) serves /metrics, read around
    some cells to check that splice(2) and full handshakes really happened."""
    listener = {"address": f"127.0.0.1:{port}"}
    if tls:
        listener["tls"] = {"certificates": [{"cert_file": tls[0], "key_file": tls[1]}],
                           "session_tickets": False}
    doc = {"workers": 1, "access_log": None,
           "admin": {"address": f"127.0.0.1:{admin_port}"},
           "listeners": [listener],
           "upstreams": [{"name": "b", "targets": [{"address": f"127.0.0.1:{p}"}
                                                   for p in (bports or [bport])]}],
           "routes": [{"upstream": "b"}]}
    if balance:
        doc["upstreams"][0]["balance"] = balance
    if policy is not None:
        # the policy scenario: GET / answers for readiness, /v1 carries the
        # load, with the policy's fields or (sluice-nopolicy) without
        doc["routes"] = [{"match": {"path": {"exact": "/"}}, "upstream": "b"},
                         dict({"match": {"path": {"prefix": "/v1"}}, "upstream": "b"}, **policy)]
    if token:
        doc["admin"]["token"] = token
    if not splice:
        doc["splice"] = {"enabled": False}
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    return path


def write_stream_confs(tmp, ports, eport):
    """The streams scenario's proxies, in front of sluice-echo on eport:
    nginx with proxy_buffering off (as its docs say for SSE), HAProxy, and
    sluice with its defaults."""
    conns = STREAMS * 2 + 1024
    nginx = nginx_common(tmp, "nginx-sse", conns) + f"""http {{
  access_log off;
  keepalive_timeout 300s;
{nginx_temp_paths(tmp, "nginx-sse")}
  upstream e {{ server 127.0.0.1:{eport}; keepalive 1024; }}
  server {{
    listen 127.0.0.1:{ports['nginx-sse']} backlog=4096;
    location / {{
      proxy_pass http://e;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""
    haproxy = f"""global
  nbthread 1
  maxconn {conns}
  no strict-limits
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:{ports['haproxy-sse']}
  maxconn {conns}
  # small events go out at once (HAProxy's advice for interactive streams)
  option http-no-delay
  default_backend be
backend be
  server e 127.0.0.1:{eport} maxconn {conns}
"""
    sluice = {"workers": 1, "access_log": None,
              "listeners": [{"address": f"127.0.0.1:{ports['sluice-sse']}"}],
              "upstreams": [{"name": "e", "targets": [{"address": f"127.0.0.1:{eport}"}]}],
              "routes": [{"upstream": "e"}]}
    paths = {}
    for name, text in (("nginx-sse", nginx), ("haproxy-sse", haproxy),
                       ("sluice-sse", json.dumps(sluice))):
        paths[name] = os.path.join(tmp, name + (".json" if name.startswith("sluice") else ".conf"))
        with open(paths[name], "w") as f:
            f.write(text + "\n")
    return paths


def metric_values(port, token=None):
    """{(name, sorted label string): value} from sluice's admin /metrics,
    or {} when it cannot be read."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    try:
        st, _, body = http_exchange(
            port, (f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
                   "Connection: close\r\n\r\n").encode(), 5.0)
    except OSError:
        return {}
    if st != 200:
        return {}
    vals = {}
    for line in body.decode(errors="replace").splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+\d.eE]+|NaN)$", line.strip())
        if m:
            labels = ",".join(sorted(re.findall(r'\w+="[^"]*"', m.group(2) or "")))
            try:
                vals[(m.group(1), labels)] = float(m.group(3))
            except ValueError:
                pass
    return vals


def metric_delta(before, after, name, labels):
    key = (name, labels)
    if key not in after:
        return None
    return after[key] - before.get(key, 0.0)


# ---------------------------------------------------------------- reload

# The route wrk loads in the reload scenario; it sits in the middle of the
# document so the router cannot win by finding it first.
RELOAD_HOST = "shop.bench.example.com"
RELOAD_PATH = "/api/v2/orders/17"
RELOAD_HEADER = "x-bench-variant"
RESOURCES = ["users", "orders", "cart", "search", "images", "auth", "billing",
             "reports", "events", "feed", "media", "checkout", "inventory"]


def reload_routes(variant):
    """RELOAD_ROUTES routes, all to upstream "b", shaped like a cluster's
    worth of services. `variant` changes the loaded route's response header
    and every header-match value, so a PUT of the other variant touches
    about one route in seven plus the one on the wire."""
    routes = []
    for i in range(RELOAD_ROUTES - 2):
        ns = f"ns{i % 113}"
        kind = i % 20
        res = RESOURCES[i % len(RESOURCES)]
        m = {}
        if kind < 11:
            m["hosts"] = [f"{res}-{i}.{ns}.example.com"]
        elif kind < 15:
            m["hosts"] = [f"*.t{i}.example.net"]
        elif kind < 18:
            m["hosts"] = [f"www{i}.example.org", f"m{i}.example.org"]
        # kind 18, 19: any host, so an exact path of their own
        if kind >= 18:
            m["path"] = {"exact": f"/internal/{res}/{i}"}
        elif i % 5 < 3:
            m["path"] = {"prefix": f"/api/v{1 + i % 3}/{res}"}
        elif i % 5 == 3:
            m["path"] = {"exact": f"/{res}/{i}"}
        if i % 7 == 0:
            m["headers"] = [{"name": "x-tenant", "value": f"tenant-{i}-{variant}"}]
        if i % 11 == 0:
            m["methods"] = ["GET", "HEAD"]
        r = {"name": f"{ns}/{res}-{i}", "match": m, "upstream": "b"}
        if i % 9 == 0:
            r["request_headers"] = {"set": {"x-route": str(i)}}
        routes.append(r)
    routes.insert(len(routes) // 2, {
        "name": "bench/target",
        "match": {"hosts": [RELOAD_HOST], "path": {"prefix": "/api/v2/orders"}},
        "response_headers": {"set": {RELOAD_HEADER: variant}},
        "upstream": "b"})
    # A default route, as most configs have; readiness checks use it.
    routes.append({"name": "default", "upstream": "b"})
    return routes


def write_reload_docs(tmp, port, bport, admin_port, token):
    """Writes variants "a" (the start-up config) and "b"; returns both paths
    and the document size in bytes."""
    paths = []
    for variant in ("a", "b"):
        doc = {"workers": 1, "access_log": None,
               "admin": {"address": f"127.0.0.1:{admin_port}", "token": token},
               "listeners": [{"address": f"127.0.0.1:{port}"}],
               "upstreams": [{"name": "b", "targets": [{"address": f"127.0.0.1:{bport}"}]}],
               "routes": reload_routes(variant)}
        path = os.path.join(tmp, f"reload-{variant}.json")
        with open(path, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        paths.append(path)
    return paths, os.path.getsize(paths[0])


def parse_head(head):
    """(status, lower-cased headers) of a response head without its blank line."""
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise OSError(f"bad status line {lines[0]!r}")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(m.group(1)), hdrs


def http_exchange(port, req, timeout=10.0):
    """Sends one raw request with Connection: close; returns (status,
    lower-cased headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise OSError("connection closed before the response head")
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        status, hdrs = parse_head(head)
        want = int(hdrs["content-length"]) if "content-length" in hdrs else -1
        while want < 0 or len(body) < want:
            d = s.recv(65536)
            if not d:
                break
            body += d
        return status, hdrs, body


# ---------------------------------------------------------------- wrk

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def run_wrk(port, path, conns, duration, headers=(), scheme="http"):
    """Runs wrk on the load core; returns (stdout, wrk CPU seconds, exit code)."""
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{conns}", f"-d{duration}s",
            "--latency", "--timeout", "5s"]
    for h in headers:
        argv += ["-H", h]
    argv.append(f"{scheme}://127.0.0.1:{port}{path}")
    out, _, cpu, rc = run_client(argv, duration + 15)
    return out, cpu, rc


def run_client(argv, limit, stderr_apart=False):
    """Runs a load client (its own output is small) for at most `limit` s;
    returns (stdout, stderr or "", its CPU seconds, exit code)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE if stderr_apart else subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    STARTED.append(proc)
    deadline = time.monotonic() + limit
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
    err = ""
    if stderr_apart:
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    return out, err, cpu, proc.returncode


def run_tls_hs(port, conns, duration):
    """Runs bench/tls_hs on the load core; returns (its parsed result line or
    None, its stderr, its CPU seconds, exit code)."""
    argv = ["taskset", "-c", LOAD_CORE, TLS_HS_BIN, "127.0.0.1", str(port), str(conns),
            str(duration), "/", CERT_NAME]
    out, err, cpu, rc = run_client(argv, duration + 15, stderr_apart=True)
    m = re.search(r"handshakes (\d+) errors (\d+) secs ([\d.]+) tickets (\d+) "
                  r"resumed (\d+) not_tls13 (\d+)", out)
    r = None
    if m:
        r = dict(zip(("handshakes", "errors", "secs", "tickets", "resumed", "not_tls13"),
                     (int(m.group(1)), int(m.group(2)), float(m.group(3)), int(m.group(4)),
                      int(m.group(5)), int(m.group(6)))))
    return r, err, cpu, rc


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
    m = re.search(r"requests in [\d.]+\w+, ([\d.]+)([KMGT]?B) read", out)
    if m:
        r["bytes"] = float(m.group(1)) * 1024 ** " KMGT".index(m.group(2)[:-1] or " ")
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
    "huge": dict(title="64 MiB responses, 4 conns", path="/64m", conns=4,
                 targets=COLUMNS + ["sluice-nosplice"]),
    "tls_small": dict(title="TLS 1.3 small GET keep-alive, 64 conns", path="/", conns=64,
                      tls=True),
    "tls_handshake": dict(title="TLS 1.3 full handshake (ECDSA P-256, no resumption), "
                          "GET + close, 32 conns", conns=32, tls=True),
    "idle": dict(title=f"{IDLE_CONNS:,} idle keep-alive conns"),
    "streams": dict(title=f"{STREAMS:,} concurrent SSE streams, 1 event/s each, {STREAM_SECONDS} s"),
    "policy": dict(title="small GET keep-alive, 64 conns, paired: a route with policy and the "
                   "same route without, both sluice", path="/v1/chat", conns=64),
    "paired": dict(title="small GET keep-alive, {conns} conns, paired: sluice and the other "
                   "proxy loaded at once on the proxy core", path="/", conns=(64, 256),
                   targets=["sluice", "nginx", "haproxy"]),
}

METRICS = {
    "small64": [("rps", "req/s"), ("p50", "p50 ms"), ("p99", "p99 ms"),
                ("cpu_req", "proxy CPU µs/req"), ("cpu_wrk", "proxy CPU ÷ wrk CPU")],
    "large": [("mibs", "MiB/s"), ("cpu_mib", "proxy CPU µs/MiB"),
              ("cpu_wrk", "proxy CPU ÷ wrk CPU")],
    "huge": [("mibs", "MiB/s (targets: sluice ≥ 0.8× direct, ≥ 2× HAProxy)"),
             ("cpu_mib", "proxy CPU µs/MiB"), ("cpu_wrk", "proxy CPU ÷ wrk CPU")],
    "tls_handshake": [("cpu_hs", "proxy CPU µs/handshake (target: sluice ≤ nginx, HAProxy)"),
                      ("hs_rate", "handshakes/s"), ("cpu_client", "proxy CPU ÷ client CPU"),
                      ("tickets", "session tickets sent per handshake")],
    "idle": [("kib_conn", "RSS KiB per idle conn")],
    "streams": [("kib_stream", "RSS KiB per stream (target: sluice ≤ 4)"),
                ("cpu_event", "proxy CPU µs per event"),
                ("lat_p50", "event delay p50 ms (backend send to client read)"),
                ("lat_p99", "event delay p99 ms (target: sluice ≤ direct + 2)"),
                ("events", "events received (of streams × seconds)")],
}
METRICS["tls_small"] = METRICS["small64"]
METRICS["small256"] = METRICS["small64"] = METRICS["small64"] + [
    ("upconn", "new upstream conns per 100 req (sluice /metrics)")]

# results[scenario][metric][target] = list of per-round values (None = failed)
RESULTS = {s: {m: {t: [] for t in ALL_TARGETS} for m, _ in METRICS[s]} for s in METRICS}
# reload: per repeat (RELOAD_REPEAT per round) {mode: cell} for every mode in
# RELOAD_MODES (None = failed); cells as Bench.measure_reload makes them
RELOAD = {"doc_bytes": 0, "rounds": []}
# stats: per repeat {mode: cell} for every mode in STATS_MODES (None = failed)
STATS = []
# paired: PAIRED[(other, conns)] = list per round of {"sluice": µs/req,
# other: µs/req} (None = failed)
PAIRED = {(o, n): [] for o in ("nginx", "haproxy") for n in SCEN["paired"]["conns"]}


# policy: per round {"sluice-nopolicy": µs/req, "sluice-policy": µs/req} (None = failed)
POLICY = []


def policy_fields(tmp):
    """The route policy the policy scenario measures (SPEC "Traffic policy"),
    and the request headers its load sends: an API key checked against a
    keys file of 1,000 keys, and an in-process rate_limit per auth id with a
    limit the load never reaches (every request still takes its decision:
    all 64 connections share the one key, so both workers' compare-and-swaps
    land on one slot, the rate limiter's worst case)."""
    import hashlib
    keys = [{"id": f"team-{i}", "sha256": hashlib.sha256(f"sk-bench-{i}".encode()).hexdigest()}
            for i in range(1000)]
    path = os.path.join(tmp, "bench-keys.json")
    with open(path, "w") as f:
        json.dump(keys, f)
    fields = {"auth": {"api_key": {"keys_file": path}},
              "rate_limit": {"per": "auth_id", "requests_per_s": 1e9, "burst": 1000000000}}
    headers = ["Authorization: Bearer sk-bench-517"]
    return fields, headers


# jwt: the table bench/jwt_cost.py measures (sluice alone, its own cells)
JWT_ROWS = []


def jwt_rows():
    try:
        import jwt_cost
    except ImportError as e:    # PyJWT mints the tokens
        return [f"jwt: not run ({e}; make deps installs python3-jwt and python3-cryptography)"]
    return jwt_cost.measure(sys.modules[__name__], ROUNDS, DURATION)


# skewed: SKEW[target] = list per round of measure_skew's dicts (None = failed)
SKEW = {}


def skew_rows():
    """The skewed scenario's own table: one row per proxy."""
    rows = ["", f"skewed: 4 backends, one {SKEW_DELAY_MS} ms slower, small GETs, "
            f"{SKEW_CONNS} conns; medians (min–max over rounds)", "",
            "| proxy | balancer | share on the slow backend % | p50 ms | p99 ms | req/s | proxy CPU µs/req |",
            "|---|---|---|---|---|---|---|"]
    for t in SKEW_TARGETS:
        got = SKEW.get(t)
        if not got:
            continue
        col = lambda k, fmt: summarize([g[k] if g else None for g in got], fmt)  # noqa: E731
        rows.append(f"| {t} | {SKEW_HOW[t]} | {col('share', '{:.1f}')} | {col('p50', '{:.2f}')} | "
                    f"{col('p99', '{:.2f}')} | {col('rps', '{:,.0f}')} | {col('cpu_req', '{:.2f}')} |")
    return rows


def balance_bench():
    if not os.access(BALANCE_BENCH_BIN, os.X_OK):
        return None
    log(f"running {os.path.relpath(BALANCE_BENCH_BIN, ROOT)}")
    try:
        p = subprocess.run(["taskset", "-c", PROXY_CORE, BALANCE_BENCH_BIN],
                           capture_output=True, text=True, timeout=120)
        return p.stdout.strip().splitlines() or [f"(no output, exit {p.returncode})"]
    except subprocess.TimeoutExpired:
        return ["(timed out after 120 s)"]


def record(scen, target, values):
    for m, _ in METRICS[scen]:
        RESULTS[scen][m][target].append(None if values is None else values.get(m))


def record_reload(got):
    RELOAD["rounds"].append(got)


def set_affinity(pids, core):
    for p in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", core, str(p)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)


def instance(scen, target):
    """The server process a target runs as in a scenario: the plain proxies,
    their TLS-terminating twins ("-tls", separate processes so that a proxy
    without TLS support still runs the plain scenarios), and the backend's
    plain or TLS port for direct."""
    if target == "sluice-nosplice":
        return target
    return f"{target}-tls" if SCEN.get(scen, {}).get("tls") else target


def scen_targets(scen):
    return [t for t in TARGETS if t in SCEN.get(scen, {}).get("targets", COLUMNS)]


class Bench:
    def __init__(self, tmp):
        self.tmp = tmp
        ports = iter(free_ports(21 + 2 * len(SKEW_TARGETS) + 4))
        self.port = {n: next(ports) for n in (
            "direct", "direct-tls", "sluice", "sluice-tls", "sluice-nosplice",
            "nginx", "nginx-tls", "haproxy", "haproxy-tls", "sluice-policy", "sluice-nopolicy")}
        self.admin = {n: next(ports) for n in ("sluice", "sluice-tls", "sluice-nosplice",
                                                "sluice-policy", "sluice-nopolicy")}
        rport, aport = next(ports), next(ports)
        sport, saport = next(ports), next(ports)
        bport = self.port["direct"]
        tls = self.tls = make_cert(tmp)
        self.backend = Server("backend", [
            "nginx", "-p", tmp, "-c", write_backend_conf(tmp, bport, self.port["direct-tls"], tls),
            "-e", f"{tmp}/backend.error.log", "-g", "daemon off;"], LOAD_CORE, tmp)
        self.servers = {}
        for name in ("nginx", "nginx-tls"):
            conf = write_nginx_proxy_conf(tmp, name, self.port[name], bport,
                                          tls if name.endswith("-tls") else None)
            self.servers[name] = Server(name, [
                "nginx", "-p", tmp, "-c", conf, "-e", f"{tmp}/{name}.error.log",
                "-g", "daemon off;"], PROXY_CORE, tmp)
        for name in ("haproxy", "haproxy-tls"):
            conf = write_haproxy_conf(tmp, name, self.port[name], bport,
                                      tls if name.endswith("-tls") else None)
            self.servers[name] = Server(name, ["haproxy", "-db", "-f", conf], PROXY_CORE, tmp)
        for name in ("sluice", "sluice-tls", "sluice-nosplice"):
            conf = write_sluice_conf(tmp, name, self.port[name], bport, self.admin[name],
                                     tls if name.endswith("-tls") else None,
                                     splice=name != "sluice-nosplice")
            self.servers[name] = Server(name, [SLUICE_BIN, "--config", conf], PROXY_CORE, tmp)
        fields, self.policy_headers = policy_fields(tmp)
        for name in ("sluice-policy", "sluice-nopolicy"):
            conf = write_sluice_conf(tmp, name, self.port[name], bport, self.admin[name],
                                     policy=fields if name == "sluice-policy" else {})
            self.servers[name] = Server(name, [SLUICE_BIN, "--config", conf], PROXY_CORE, tmp)
        self.echo = None
        if "streams" in SCENARIOS:
            sp = iter(free_ports(4))
            self.port["echo"] = next(sp)
            for n in ("sluice-sse", "nginx-sse", "haproxy-sse"):
                self.port[n] = next(sp)
            self.echo = Server("echo", [ECHO_BIN, "--port", str(self.port["echo"])], LOAD_CORE, tmp)
            confs = write_stream_confs(tmp, self.port, self.port["echo"])
            self.servers["sluice-sse"] = Server("sluice-sse", [SLUICE_BIN, "--config", confs["sluice-sse"]],
                                                PROXY_CORE, tmp)
            self.servers["nginx-sse"] = Server("nginx-sse", [
                "nginx", "-p", tmp, "-c", confs["nginx-sse"], "-e", f"{tmp}/nginx-sse.error.log",
                "-g", "daemon off;"], PROXY_CORE, tmp)
            self.servers["haproxy-sse"] = Server("haproxy-sse", ["haproxy", "-db", "-f", confs["haproxy-sse"]],
                                                 PROXY_CORE, tmp)
        self.broken = {}  # instance -> reason it cannot be measured this run
        self.tls_params = {}  # instance -> what tls_hs saw of its first handshake
        # sluice's own counters over the measured cells, summed over rounds
        self.sluice_counts = {}
        self.reload_srv = self.put_client = None
        self.skew_backends = []     # (port, Server) of the skewed scenario, the slow one last
        if "skewed" in SCENARIOS:
            self.setup_skewed(tmp, ports)
        self.stats_srv = None
        if "stats" in SCENARIOS and "sluice" in TARGETS:
            self.stats_port, self.stats_admin = sport, saport
            self.stats_token = secrets.token_hex(16)
            conf = write_sluice_conf(tmp, "sluice-stats", sport, bport, saport, token=self.stats_token)
            self.stats_srv = Server("sluice-stats", [SLUICE_BIN, "--config", conf], PROXY_CORE, tmp)
        if "reload" in SCENARIOS and "sluice" in TARGETS:
            self.reload_port, self.admin_port = rport, aport
            self.token = secrets.token_hex(16)
            self.reload_docs, size = write_reload_docs(tmp, rport, bport, aport, self.token)
            RELOAD["doc_bytes"] = size
            self.reload_srv = Server("sluice-reload", [
                SLUICE_BIN, "--config", self.reload_docs[0]], PROXY_CORE, tmp)

    def setup_skewed(self, tmp, ports):
        """Four sluice-echo backends on the load core (the last one SKEW_DELAY_MS
        late) and a proxy of each kind balancing over them."""
        bports = [next(ports) for _ in range(4)]
        for i, p in enumerate(bports):
            argv = [ECHO_BIN, "--port", str(p), "--id", f"b{i}"]
            if i == 3:
                argv += ["--delay", str(SKEW_DELAY_MS)]
            self.skew_backends.append((p, Server(f"skew-backend{i}", argv, LOAD_CORE, tmp)))
        for t in SKEW_TARGETS:
            name = f"skew-{t}"
            self.port[name] = next(ports)
            if t.startswith("sluice"):
                self.admin[name] = next(ports)
                conf = write_sluice_conf(tmp, name, self.port[name], None, self.admin[name],
                                         bports=bports,
                                         balance="round_robin" if t == "sluice-rr" else "least_request")
                self.servers[name] = Server(name, [SLUICE_BIN, "--config", conf], PROXY_CORE, tmp)
            elif t == "nginx":
                conf = write_nginx_proxy_conf(tmp, name, self.port[name], None, bports=bports,
                                              balance="least_conn;")
                self.servers[name] = Server(name, [
                    "nginx", "-p", tmp, "-c", conf, "-e", f"{tmp}/{name}.error.log",
                    "-g", "daemon off;"], PROXY_CORE, tmp)
            else:
                conf = write_haproxy_conf(tmp, name, self.port[name], None, bports=bports,
                                          balance="leastconn")
                self.servers[name] = Server(name, ["haproxy", "-db", "-f", conf], PROXY_CORE, tmp)

    def skew_counts(self):
        """Requests each skewed backend has served (its /stats), or None."""
        got = []
        for p, _ in self.skew_backends:
            try:
                st, _, body = http_exchange(p, b"GET /stats HTTP/1.1\r\nHost: x\r\n"
                                               b"Connection: close\r\n\r\n", 5.0)
                got.append(json.loads(body)["requests"] if st == 200 else None)
            except (OSError, ValueError, KeyError):
                got.append(None)
        return None if None in got else got

    def measure_skew(self, target):
        """One skewed cell: {share, p50, p99, rps, cpu_req} or None."""
        name = f"skew-{target}"
        for p, srv in self.skew_backends:
            if not srv.alive():
                srv.start()
                if not wait_ready(srv, p):
                    note(f"skewed: backend {srv.name} did not start: {srv.log_tail()}")
                    return None
        if not self.ensure(name):
            return None
        port = self.port[name]
        run_wrk(port, "/", SKEW_CONNS, WARMUP)
        pids = self.servers[name].pids()
        c0, cpu0 = self.skew_counts(), tree_cpu(pids)
        out, _, rc = run_wrk(port, "/", SKEW_CONNS, DURATION)
        c1, cpu1 = self.skew_counts(), tree_cpu(pids)
        r = parse_wrk(out)
        if rc != 0 or not r.get("requests") or c0 is None or c1 is None:
            note(f"skewed/{target}: wrk failed (exit {rc}) or a backend's /stats did not answer")
            return None
        if r["bad"] + r["sockerr"] > r["requests"] * 0.001:
            note(f"skewed/{target}: {r['bad']} non-2xx responses and {r['sockerr']} socket "
                 f"errors out of {r['requests']}; cell dropped")
            return None
        d = [b - a for a, b in zip(c0, c1)]
        v = {"share": 100.0 * d[3] / max(1, sum(d)), "p50": r.get("p50"), "p99": r.get("p99"),
             "rps": r["rps"], "cpu_req": (cpu1 - cpu0) / r["requests"] * 1e6}
        log(f"  skewed   {target:9s} {v['rps']:8.0f} req/s  slow share {v['share']:.1f} %  "
            f"p50 {v['p50']:.2f} ms  p99 {v['p99']:.2f} ms  per backend {d}")
        return v

    # A proxy that fails to come up is marked broken for the rest of the run
    # rather than retried in every cell, which would eat the time budget.
    def ensure(self, name):
        """Starts instance `name` (see instance()) unless it is up; False when
        it cannot serve. TLS instances must answer over TLS 1.3."""
        if name.startswith("direct"):
            return self.backend.alive()
        if name in self.broken:
            return False
        srv, tls = self.servers[name], name.endswith("-tls")
        if srv.alive() and http_status(self.port[name], tls=tls) == 200:
            return True
        srv.stop()
        if name.startswith("sluice") and not os.access(SLUICE_BIN, os.X_OK):
            self.broken[name] = "build/sluice not built"
            note(f"{name} skipped: {SLUICE_BIN} does not exist")
            return False
        srv.start()
        if wait_ready(srv, self.port[name], tls=tls):
            return True
        why = srv.log_tail()
        srv.stop()
        self.broken[name] = why
        note(f"{name} did not answer 200 on GET /{' over TLS 1.3' if tls else ''} within 6 s; "
             "skipped for the rest of the run" + (f" (its output: {why})" if why else ""))
        try:
            shutil.copy(srv.logpath, os.path.join(OUT_DIR, f"{name}.log"))
        except OSError:
            pass
        return False

    def count(self, key, v):
        if v is not None:
            self.sluice_counts[key] = self.sluice_counts.get(key, 0.0) + v

    def measure_load(self, scen, target):
        sc = SCEN[scen]
        name = instance(scen, target)
        if not self.ensure(name):
            return None
        backend_pids = self.backend.pids()
        direct = target == "direct"
        scheme = "https" if sc.get("tls") else "http"
        admin = self.admin.get(name) if scen in ("huge", "small64", "small256") else None
        if direct:
            set_affinity(backend_pids, PROXY_CORE)
        try:
            port = self.port[name]
            run_wrk(port, sc["path"], sc["conns"], WARMUP, scheme=scheme)
            pids = backend_pids if direct else self.servers[name].pids()
            m0 = metric_values(admin) if admin else {}
            cpu0, b0, (h0, w0) = tree_cpu(pids), tree_cpu(backend_pids), host_busy()
            out, wrk_cpu, rc = run_wrk(port, sc["path"], sc["conns"], DURATION, scheme=scheme)
            cpu1, b1, (h1, w1) = tree_cpu(pids), tree_cpu(backend_pids), host_busy()
            m1 = metric_values(admin) if admin else {}
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
        if scen in ("small64", "small256") and m0 and m1:
            # issue 19: upstream connections opened during the run, per 100
            # requests (sluice's /metrics; the pool follows demand)
            opened = sum(m1.get(k, 0) - m0.get(k, 0) for k in m1
                         if k[0] == "sluice_pool_opened_total")
            v["upconn"] = 100.0 * opened / r["requests"]
        if scen == "large":
            mib = r["requests"] * LARGE_BYTES / float(1 << 20)
            v["mibs"] = mib / r["secs"]
            v["cpu_mib"] = proxy_cpu / mib * 1e6
        elif scen == "huge":
            # Few responses finish in a run, so count every byte wrk read,
            # including the responses still in flight at the end.
            mib = r.get("bytes", r["requests"] * HUGE_BYTES) / float(1 << 20)
            v["mibs"] = mib / r["secs"]
            v["cpu_mib"] = proxy_cpu / mib * 1e6
            for path in ("splice", "copy"):
                self.count((name, path), metric_delta(
                    m0, m1, "sluice_body_bytes_total", f'path="{path}"'))
        log(f"  {scen:8s} {target:7s} {r['rps']:10.0f} req/s  proxy CPU {v['cpu_req']:.2f} µs/req"
            + (f"  {v['mibs']:.0f} MiB/s" if "mibs" in v else "") + f"  other {other_pct:.0f} %")
        return v

    def measure_pair(self, other, conns, first="sluice", scen="paired", headers=None):
        """One paired cell: `first` (sluice) and `other` loaded at once (see
        the module's docstring); {target: CPU µs per request}, or None.
        headers: {target: request headers its load sends}."""
        sc = SCEN[scen]
        headers = headers or {}
        if not (self.ensure(first) and self.ensure(other)):
            return None
        names = (first, other)
        for n in names:
            run_wrk(self.port[n], sc["path"], conns, WARMUP, headers=headers.get(n, ()))
        pids = {n: self.servers[n].pids() for n in names}
        outs = {}

        def load(n):
            outs[n] = run_wrk(self.port[n], sc["path"], conns, DURATION, headers=headers.get(n, ()))

        cpu0 = {n: tree_cpu(pids[n]) for n in names}
        threads = [threading.Thread(target=load, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu1 = {n: tree_cpu(pids[n]) for n in names}
        v = {}
        for n in names:
            out, _, rc = outs.get(n, ("", 0.0, -1))
            r = parse_wrk(out)
            if rc != 0 or not r.get("requests"):
                note(f"paired/{n} with {other}: wrk failed (exit {rc}): {out.strip()[-200:]}")
                return None
            if r["bad"] + r["sockerr"] > r["requests"] * 0.001:
                note(f"paired/{n} with {other}: {r['bad']} non-2xx responses and "
                     f"{r['sockerr']} socket errors out of {r['requests']}; cell dropped")
                return None
            v[n] = (cpu1[n] - cpu0[n]) / r["requests"] * 1e6
            v[n + "_rps"] = r["rps"]
        log(f"  {scen}{conns:<3d} {first} {v[first]:.2f} µs/req ({v[first + '_rps']:.0f} req/s), "
            f"{other} {v[other]:.2f} µs/req ({v[other + '_rps']:.0f} req/s): "
            f"{v[first] / v[other]:.3f}")
        return v

    def measure_policy(self):
        """The policy scenario: a route with policy_fields() and the same
        route without, in two sluice processes loaded at once (the paired
        method); the ratio of their CPU per request is the cost of the
        policy (issue 23: at most 1.10)."""
        return self.measure_pair("sluice-policy", SCEN["policy"]["conns"], first="sluice-nopolicy",
                                 scen="policy", headers={"sluice-policy": self.policy_headers})

    def measure_handshake(self, scen, target):
        """Full TLS 1.3 handshakes from bench/tls_hs (never resumed): the
        proxy's CPU per completed handshake (each with one small GET), the
        rate, and the tickets the server sent."""
        sc = SCEN[scen]
        name = instance(scen, target)
        if not os.access(TLS_HS_BIN, os.X_OK):
            note(f"{scen}: {TLS_HS_BIN} not built (bench/run.sh builds it)")
            return None
        if not self.ensure(name):
            return None
        backend_pids = self.backend.pids()
        direct = target == "direct"
        admin = self.admin.get(name)
        if direct:
            set_affinity(backend_pids, PROXY_CORE)
        try:
            port = self.port[name]
            run_tls_hs(port, sc["conns"], WARMUP)
            pids = backend_pids if direct else self.servers[name].pids()
            m0 = metric_values(admin) if admin else {}
            cpu0, b0, (h0, w0) = tree_cpu(pids), tree_cpu(backend_pids), host_busy()
            r, err, client_cpu, rc = run_tls_hs(port, sc["conns"], DURATION)
            cpu1, b1, (h1, w1) = tree_cpu(pids), tree_cpu(backend_pids), host_busy()
            m1 = metric_values(admin) if admin else {}
        finally:
            if direct:
                set_affinity(backend_pids, LOAD_CORE)
        if rc != 0 or r is None or not r["handshakes"]:
            note(f"{scen}/{target}: tls_hs failed (exit {rc}): {err.strip()[-300:]}")
            return None
        pm = re.search(r"tls_hs: (TLSv\S+ .*)", err)
        if pm and name not in self.tls_params:
            self.tls_params[name] = pm.group(1).strip()
        if r["errors"] > r["handshakes"] * 0.001 or r["resumed"] or r["not_tls13"]:
            note(f"{scen}/{target}: {r['errors']} failed exchanges, {r['resumed']} resumed and "
                 f"{r['not_tls13']} not TLS 1.3 out of {r['handshakes']}; cell dropped"
                 + (f" ({err.strip().splitlines()[0][:200]})" if err.strip() else ""))
            return None
        proxy_cpu = cpu1 - cpu0
        other = (h1 - h0) - proxy_cpu - client_cpu - (0 if direct else b1 - b0)
        other_pct = 100.0 * other / ((w1 - w0) * NCPU)
        OTHER.append(other_pct)
        n = r["handshakes"]
        v = {"cpu_hs": proxy_cpu / n * 1e6, "hs_rate": n / r["secs"] if r["secs"] else None,
             "cpu_client": proxy_cpu / client_cpu if client_cpu > 0 else None,
             "tickets": r["tickets"] / n}
        if admin:
            self.count((name, "client"), n)
            for res in ("full", "resumed", "failed"):
                self.count((name, res), metric_delta(
                    m0, m1, "sluice_tls_handshakes_total", f'result="{res}",side="listener"'))
        log(f"  {scen[:8]:8s} {target:7s} {v['hs_rate']:10.0f} hs/s   proxy CPU {v['cpu_hs']:.0f} µs/hs"
            f"  client CPU {client_cpu / n * 1e6:.0f} µs/hs  tickets {v['tickets']:.1f}"
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

    def measure_streams(self, target):
        """STREAMS SSE streams through target (direct: to the backend): RSS
        per stream once all are open, proxy CPU per event, and each event's
        delay from the backend's send to the client's read."""
        if not os.access(SSE_BIN, os.X_OK) or not os.access(ECHO_BIN, os.X_OK):
            note("streams: bench/sse_streams or build/sluice-echo not built")
            return None
        if self.echo is None:
            return None
        if not self.echo.alive():
            self.echo.start()
            if not wait_ready(self.echo, self.port["echo"]):
                note(f"streams: sluice-echo did not start: {self.echo.log_tail()}")
                return None
        name = None if target == "direct" else f"{target}-sse"
        if name:
            srv = self.servers[name]
            srv.stop()      # a fresh process: its memory is the streams' alone
            srv.start()
            if not wait_ready(srv, self.port[name]):
                note(f"streams/{target}: did not start: {srv.log_tail()}")
                srv.stop()
                return None
            time.sleep(0.3)
        port = self.port[name or "echo"]
        pids = self.servers[name].pids() if name else self.echo.pids()
        rss0 = tree_rss_kib(pids)
        path = f"/sse?n={STREAM_SECONDS}&ms=1000&ts=1"
        proc = subprocess.Popen(["taskset", "-c", LOAD_CORE, SSE_BIN, "127.0.0.1", str(port), str(STREAMS),
                                 path, str(STREAM_SECONDS + 30)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        STARTED.append(proc)
        try:
            ready = read_line(proc.stdout, 60) or ""
            m = re.match(r"ready (\d+) (\d+)", ready)
            if not m or int(m.group(2)) > 0:
                note(f"streams/{target}: streams did not all open ({ready.strip()!r})")
                return None
            t0, cpu0 = time.monotonic(), tree_cpu(pids)
            time.sleep(min(5.0, STREAM_SECONDS / 3))
            rss1 = tree_rss_kib(pids)
            done = read_line(proc.stdout, STREAM_SECONDS + 40) or ""
            cpu1, t1 = tree_cpu(pids), time.monotonic()
        finally:
            stop_proc(proc, grace=5)
        m = re.match(r"done (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", done)
        if not m:
            note(f"streams/{target}: no result ({done.strip()!r})")
            return None
        events, ended, p50, p90, p99, mx, broken = (int(x) for x in m.groups())
        if broken:
            note(f"streams/{target}: {broken} streams broke before their end")
        v = {"kib_stream": (rss1 - rss0) / STREAMS, "lat_p50": p50 / 1000.0, "lat_p99": p99 / 1000.0,
             "events": events, "cpu_event": (cpu1 - cpu0) / events * 1e6 if events and name else None}
        log(f"  streams  {target:7s} {events} events in {t1 - t0:.0f} s, RSS {rss0} -> {rss1} KiB "
            f"({v['kib_stream']:.2f} KiB/stream), delay p50 {p50 / 1000:.2f} ms p90 {p90 / 1000:.2f} "
            f"p99 {p99 / 1000:.2f} max {mx / 1000:.1f} ms"
            + (f", CPU {v['cpu_event']:.2f} µs/event" if v["cpu_event"] is not None else ""))
        if name:
            self.servers[name].stop()
        return v

    def ensure_reload(self):
        srv = self.reload_srv
        if "reload" in self.broken:
            return False
        if srv.alive() and http_status(self.admin_port, "/healthz") == 200:
            return True
        srv.stop()
        for binary in (SLUICE_BIN, PUT_CLIENT_BIN):
            if not os.access(binary, os.X_OK):
                self.broken["reload"] = f"{binary} not built"
                note(f"reload skipped: {binary} does not exist")
                return False
        srv.start()
        if wait_ready(srv, self.reload_port, limit=20.0) and \
                http_status(self.admin_port, "/healthz") == 200:
            return True
        why = srv.log_tail()
        srv.stop()
        self.broken["reload"] = why
        note("reload: sluice with the 10,000-route document and an admin listener did not "
             "answer 200 on GET / and on the admin GET /healthz within 20 s; skipped"
             + (f" (its output: {why})" if why else ""))
        try:
            shutil.copy(srv.logpath, os.path.join(OUT_DIR, "sluice-reload.log"))
        except OSError:
            pass
        return False

    def reload_client(self):
        """The round's PUT client (started on first use, kept until
        stop_reload_client), or None with a note if it would not start."""
        if self.put_client is not None and self.put_client.poll() is None:
            return self.put_client
        self.stop_reload_client()
        client = subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, PUT_CLIENT_BIN, str(self.admin_port),
             str(self.reload_port), self.token, str(RELOAD_INTERVAL), RELOAD_HOST, RELOAD_PATH,
             RELOAD_HEADER] + list(self.reload_docs),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        STARTED.append(client)
        ready = read_line(client.stdout, 20.0)
        if not ready or "ready" not in ready:
            stop_proc(client)
            note("reload: the PUT client did not start: "
                 f"{client.stderr.read().decode(errors='replace').strip()[-300:]}")
            return None
        self.put_client = client
        return client

    def stop_reload_client(self):
        client, self.put_client = self.put_client, None
        if client is None:
            return
        try:
            client.stdin.close()
            client.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            stop_proc(client)
        if client.returncode not in (0, None):
            note(f"reload: PUT client exited {client.returncode}: "
                 f"{client.stderr.read().decode(errors='replace').strip()[-300:]}")

    def measure_reload(self, rnd, warm):
        """One repeat of the reload scenario: the same process, the same load,
        without PUTs, again without (the method's own resolution), with
        refused uploads and with PUTs, in the order of row `rnd` (the
        repeat's number over the whole run) of a Williams design; a warm-up
        first if `warm`."""
        if not self.ensure_reload():
            return None
        port, conns = self.reload_port, SCEN["small64"]["conns"]
        hdr = [f"Host: {RELOAD_HOST}"]
        if warm:
            run_wrk(port, RELOAD_PATH, conns, WARMUP, hdr)
        pids = self.reload_srv.pids()
        got = {}
        for mode in (RELOAD_MODES[i] for i in williams_order(len(RELOAD_MODES), rnd)):
            client = None
            if mode in ("put", "upload"):
                client = self.reload_client()
                if client is None:
                    return None
                # the first PUT just after wrk has started, the last early
                # enough to be applied inside wrk's window: a PUT every
                # interval over the whole window
                try:
                    client.stdin.write(
                        f"{mode} {max(0.0, RELOAD_DURATION - 0.45):.3f} 0.05\n".encode())
                    client.stdin.flush()
                except OSError as e:
                    note(f"reload/{mode}: the PUT client is gone ({e})")
                    self.stop_reload_client()
                    return None
            m0 = metric_values(self.admin_port, self.token) if mode == "put" else {}
            cpu0 = tree_cpu(pids)
            out, wrk_cpu, rc = run_wrk(port, RELOAD_PATH, conns, RELOAD_DURATION, hdr)
            cpu1 = tree_cpu(pids)
            puts = []
            while client is not None:
                line = read_line(client.stdout, 20.0)
                if not line:
                    note(f"reload/{mode}: the PUT client stopped answering")
                    self.stop_reload_client()
                    return None
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("done"):
                    break
                puts.append(rec)
            r = parse_wrk(out)
            if rc != 0 or not r.get("requests"):
                note(f"reload/{mode}: wrk failed (exit {rc}): {out.strip()[-200:]}")
                return None
            got[mode] = {"rps": r["rps"], "p99": r.get("p99"), "errors": r["bad"] + r["sockerr"],
                         "cpu_req": (cpu1 - cpu0) / r["requests"] * 1e6, "puts": puts}
            if mode == "put":
                # after the client has finished: every PUT of the cell is counted
                m1 = metric_values(self.admin_port, self.token)
                got[mode]["metrics"] = {
                    k: metric_delta(m0, m1, name, labels) for k, name, labels in (
                        ("applied", "sluice_reloads_total", 'result="ok"'),
                        ("reused", "sluice_reload_routes_reused_total", ""),
                        ("raised", "sluice_reload_builds_escalated_total", ""))}
            ms = [p["ms"] for p in puts if p.get("status") in (200, 401)]
            log(f"  reload   {mode:6s}    {r['rps']:10.0f} req/s  p99 {r.get('p99', 0):.2f} ms  "
                f"errors {r['bad'] + r['sockerr']}"
                + (f"  {len(puts)} PUTs, max {max(ms):.1f} ms" if ms else ""))
        if not self.reload_srv.alive():
            note(f"reload: sluice exited during the cell: {self.reload_srv.log_tail()}")
        return got

    def measure_stats(self, rnd, warm):
        """One repeat of the stats scenario: the same sluice, the same load,
        alone twice (the method's own resolution), with STATS_POLLERS
        dashboards polling /stats once a second, and with as many asking
        back to back, in the order of row `rnd` of a Williams design."""
        srv = self.stats_srv
        if "stats" in self.broken:
            return None
        if not srv.alive():
            if not os.access(STATS_POLL_BIN, os.X_OK):
                self.broken["stats"] = f"{STATS_POLL_BIN} not built"
                note(f"stats skipped: {STATS_POLL_BIN} does not exist")
                return None
            srv.start()
            if not wait_ready(srv, self.stats_port, limit=20.0):
                self.broken["stats"] = srv.log_tail()
                note(f"stats: sluice did not start; skipped ({srv.log_tail()})")
                return None
        port, conns = self.stats_port, SCEN["small64"]["conns"]
        if warm:
            run_wrk(port, "/", conns, WARMUP)
        got = {}
        for mode in (STATS_MODES[i] for i in williams_order(len(STATS_MODES), rnd)):
            poller = None
            if mode in ("pollers", "flood"):
                poller = subprocess.Popen(
                    ["taskset", "-c", LOAD_CORE, STATS_POLL_BIN, str(self.stats_admin), self.stats_token,
                     str(STATS_POLLERS), "1000" if mode == "pollers" else "0", str(STATS_DURATION + 1.0)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                STARTED.append(poller)
                ready = read_line(poller.stdout, 20.0)
                if not ready or "ready" not in ready:
                    stop_proc(poller)
                    note(f"stats/{mode}: the poller did not start: "
                         f"{poller.stderr.read().decode(errors='replace').strip()[-300:]}")
                    return None
                time.sleep(0.5)         # the first polls in, a second's worth spread out
            out, _, rc = run_wrk(port, "/", conns, STATS_DURATION)
            polled = None
            if poller is not None:
                line = read_line(poller.stdout, 20.0)
                try:
                    polled = json.loads(line) if line else None
                except ValueError:
                    polled = None
                stop_proc(poller)
                if polled is None:
                    note(f"stats/{mode}: the poller gave no result")
                    return None
            r = parse_wrk(out)
            if rc != 0 or not r.get("requests"):
                note(f"stats/{mode}: wrk failed (exit {rc}): {out.strip()[-200:]}")
                return None
            got[mode] = {"rps": r["rps"], "p99": r.get("p99"), "errors": r["bad"] + r["sockerr"],
                         "polled": polled}
            log(f"  stats    {mode:7s}   {r['rps']:10.0f} req/s  p99 {r.get('p99', 0):.2f} ms"
                + (f"  {polled['polls'] / polled['seconds']:.0f} polls/s answered, "
                   f"{polled['errors']} poll errors, poll p99 {polled['ms_p99']:.1f} ms" if polled else ""))
        if not srv.alive():
            note(f"stats: sluice exited during the cells: {srv.log_tail()}")
        return got

    def run(self):
        self.backend.start()
        if not wait_ready(self.backend, self.port["direct"]) or \
                http_status(self.port["direct"], "/1m") != 200:
            raise SystemExit(f"bench: backend nginx did not start: {self.backend.log_tail()}")
        for rnd in range(ROUNDS):
            log(f"round {rnd + 1}/{ROUNDS}")
            for scen in SCENARIOS:
                targets = scen_targets(scen)
                k = rnd % max(1, len(targets))
                order = targets[k:] + targets[:k]
                wait_quiet()
                if scen == "paired":
                    cells = list(PAIRED)
                    k = rnd % len(cells)
                    for other, conns in cells[k:] + cells[:k]:
                        if other not in TARGETS or "sluice" not in TARGETS:
                            continue
                        if out_of_time():
                            note("TIME_LIMIT reached: remaining cells skipped")
                            PAIRED[(other, conns)].append(None)
                            continue
                        PAIRED[(other, conns)].append(self.measure_pair(other, conns))
                    continue
                if scen == "policy":
                    if "sluice" in TARGETS:
                        POLICY.append(None if out_of_time() else self.measure_policy())
                    continue
                if scen == "jwt":
                    # auth.jwt's cost: its own rounds, run once (bench/jwt_cost.py)
                    if rnd == 0 and "sluice" in TARGETS and not out_of_time():
                        JWT_ROWS.extend(jwt_rows())
                    continue
                if scen == "skewed":
                    ts = [t for t in SKEW_TARGETS if t in TARGETS or
                          (t == "sluice-rr" and "sluice" in TARGETS)]
                    k = rnd % max(1, len(ts))
                    for t in ts[k:] + ts[:k]:
                        if out_of_time():
                            note("TIME_LIMIT reached: remaining cells skipped")
                            SKEW.setdefault(t, []).append(None)
                            continue
                        SKEW.setdefault(t, []).append(self.measure_skew(t))
                    for _, srv in self.skew_backends:
                        srv.stop()
                    continue
                if scen == "stats":
                    if self.stats_srv is None:
                        continue
                    for rep in range(STATS_REPEAT):
                        if out_of_time():
                            note("TIME_LIMIT reached: remaining cells skipped")
                            break
                        STATS.append(self.measure_stats(rnd * STATS_REPEAT + rep, rep == 0))
                    self.stats_srv.stop()
                    continue
                if scen == "reload":
                    if self.reload_srv is None:
                        continue
                    if out_of_time():
                        note("TIME_LIMIT reached: remaining cells skipped")
                        continue
                    for rep in range(RELOAD_REPEAT):
                        if out_of_time():
                            note("TIME_LIMIT reached: remaining cells skipped")
                            break
                        record_reload(self.measure_reload(rnd * RELOAD_REPEAT + rep, rep == 0))
                    self.stop_reload_client()
                    continue
                for t in order:
                    if out_of_time():
                        note("TIME_LIMIT reached: remaining cells skipped")
                        record(scen, t, None)
                        continue
                    if scen == "idle":
                        v = self.measure_idle(t)
                    elif scen == "streams":
                        v = self.measure_streams(t)
                    elif scen == "tls_handshake":
                        v = self.measure_handshake(scen, t)
                    else:
                        v = self.measure_load(scen, t)
                    record(scen, t, v)
            for srv in self.servers.values():
                srv.stop()
            if self.echo is not None:
                self.echo.stop()
            if self.reload_srv is not None:
                self.reload_srv.stop()


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
    """The next line from a child's stdout pipe within timeout s ("" at its
    end, None on a timeout). Reads the descriptor itself, a byte at a time
    past what select saw, so no line waits unseen in a buffer."""
    fd, line = stream.fileno(), b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            return None
        b = os.read(fd, 1)
        if not b:
            break
        line += b
    return line.decode(errors="replace")


# ---------------------------------------------------------------- report

FMT = {"rps": "{:,.0f}", "mibs": "{:,.0f}", "p50": "{:.2f}", "p99": "{:.2f}",
       "cpu_req": "{:.2f}", "cpu_mib": "{:.0f}", "cpu_wrk": "{:.2f}", "kib_conn": "{:.2f}",
       "cpu_hs": "{:.0f}", "hs_rate": "{:,.0f}", "cpu_client": "{:.2f}", "tickets": "{:.1f}", "upconn": "{:.3f}"}


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


def williams_order(n, r):
    """Row r of a Williams design for n cells: over n rows (2n if n is odd)
    every cell comes in every position equally often and after every other
    cell exactly once, so what a cell leaves behind (a reload's aftermath,
    say) weighs on all cells alike, where a plain rotation always puts the
    same cell after it."""
    first, lo, hi = [0], 1, n - 1
    while lo <= hi:
        first.append(lo)
        lo += 1
        if lo <= hi:
            first.append(hi)
            hi -= 1
    row = [(x + r) % n for x in first]
    return row[::-1] if n % 2 and (r // n) % 2 else row


def median_interval(vals, level=0.90, draws=4000):
    """A bootstrap interval for the median of vals (None if fewer than 4):
    how far the median of this many repeats moves on this host's noise.
    Seeded, so one run's figures always give one interval."""
    v = [x for x in vals if x is not None]
    if len(v) < 4:
        return None
    rng = random.Random(1)
    meds = sorted(statistics.median(rng.choices(v, k=len(v))) for _ in range(draws))
    tail = (1 - level) / 2
    return meds[int(tail * draws)], meds[min(draws - 1, int((1 - tail) * draws))]


def interval(vals):
    """median_interval(vals) as a table cell."""
    ci = median_interval(vals)
    return "{:.2f}–{:.2f}".format(*ci) if ci else "—"


def percentile(v, q):
    """Nearest-rank percentile: with few samples p99 is the maximum."""
    v = sorted(v)
    return v[min(len(v) - 1, max(0, math.ceil(q / 100.0 * len(v)) - 1))]


def stats_rows():
    """The stats scenario's rows (sluice column only)."""
    title = f"small GET keep-alive, 64 conns, {STATS_POLLERS:,} admin /stats pollers"
    reps = [g for g in STATS if g]

    def row(label, cell):
        return f"| {title} | {label} | — | {cell} | — | — | — | — |"

    if not reps:
        return [row("all", "—")]

    def per(mode, k):
        if mode == "without":
            return [math.sqrt(g["none"][k] * g["again"][k])
                    if g["none"][k] is not None and g["again"][k] is not None else None for g in reps]
        return [g[mode][k] for g in reps]

    def polls(mode, k):
        v = [g[mode]["polled"] for g in reps]
        if k == "rate":
            return [p["polls"] / p["seconds"] for p in v]
        return [p[k] for p in v]

    rows = [row("p99 ms without pollers (two cells per repeat, their geometric mean)",
                summarize(per("without", "p99"), FMT["p99"]))]
    r = ratios(per("again", "p99"), per("none", "p99"))
    rows += [row("p99 without ÷ without: the two cells without pollers, the method's own resolution",
                 summarize(r, "{:.2f}")),
             row("p99 without ÷ without: 90 % bootstrap interval of that median", interval(r))]
    for mode, what in (("pollers", "each once a second"), ("flood", "each back to back")):
        r = ratios(per(mode, "p99"), per("without", "p99"))
        rows += [
            row(f"p99 ms, {STATS_POLLERS:,} pollers {what}", summarize(per(mode, "p99"), FMT["p99"])),
            row(f"p99 with {mode} ÷ without", summarize(r, "{:.2f}")),
            row(f"p99 with {mode} ÷ without: 90 % bootstrap interval of that median", interval(r)),
            row(f"req/s with {mode} ÷ without",
                summarize(ratios(per(mode, "rps"), per("without", "rps")), "{:.2f}")),
            row(f"/stats answered per s ({mode}), poll round trip p99 ms",
                f"{statistics.median(polls(mode, 'rate')):,.0f}, "
                f"{statistics.median(polls(mode, 'ms_p99')):.1f}"),
            row(f"poll errors / wrk errors ({mode})",
                f"{sum(polls(mode, 'errors'))} / {sum(per(mode, 'errors'))}"),
        ]
    return rows


def reload_rows():
    """The reload scenario's rows (sluice column only), and notes for every
    target it misses: PUT < 100 ms, p99 within 10 %, no errors."""
    title = (f"small GET keep-alive, 64 conns, {RELOAD_ROUTES:,} routes, "
             f"PUT /config every {RELOAD_INTERVAL * 1000:.0f} ms")
    rounds = [g for g in RELOAD["rounds"] if g]

    def row(label, cell):
        return f"| {title} | {label} | — | {cell} | — | — | — | — |"

    if not rounds:
        return [row("all", "—")]

    def per(mode, k):
        if mode == "without":
            # the two cells without reloads of each repeat, as one: the
            # geometric mean, so neither is the one the others are held to
            return [math.sqrt(g["none"][k] * g["again"][k])
                    if g["none"][k] is not None and g["again"][k] is not None else None
                    for g in rounds]
        return [g[mode][k] for g in rounds]

    puts = [p for g in rounds for p in g["put"]["puts"]]
    ok = [p for p in puts if p.get("status") == 200 and "version" in p]
    bad = [p for p in puts if p not in ok]
    unseen = [p for p in ok if "seen_ms" not in p]
    ms = [p["ms"] for p in ok]
    seen = [p["seen_ms"] for p in ok if "seen_ms" in p]
    err_put = sum(per("put", "errors"))
    err_none = sum(per("none", "errors")) + sum(per("again", "errors"))
    p99_ratio = ratios(per("put", "p99"), per("without", "p99"))

    def pair(label, a, b):
        r = ratios(per(a, "p99"), per(b, "p99"))
        return [row(label, summarize(r, "{:.2f}")),
                row(f"{label.split(':')[0]}: 90 % bootstrap interval of that median", interval(r))]

    rows = [
        row("req/s without reloads (two cells per repeat, their geometric mean)",
            summarize(per("without", "rps"), FMT["rps"])),
        row("req/s with reloads", summarize(per("put", "rps"), FMT["rps"])),
        row("req/s with ÷ without reloads",
            summarize(ratios(per("put", "rps"), per("without", "rps")), "{:.2f}")),
        row("p99 ms without reloads (two cells per repeat, their geometric mean)",
            summarize(per("without", "p99"), FMT["p99"])),
        row("p99 ms with reloads", summarize(per("put", "p99"), FMT["p99"])),
        row("p99 with ÷ without reloads (target ≤ 1.10)", summarize(p99_ratio, "{:.2f}")),
        row("p99 with ÷ without reloads: 90 % bootstrap interval of that median",
            interval(p99_ratio)),
    ] + pair("p99 without ÷ without: the two cells without reloads against each other, "
             "the method's own resolution", "again", "none") + [
        row("p99 ms, control: the same documents uploaded, refused (401), not applied",
            summarize(per("upload", "p99"), FMT["p99"])),
    ] + pair("p99 control ÷ without: the upload's own cost on the load core",
             "upload", "without") + pair(
        "p99 with reloads ÷ control: what applying adds", "put", "upload") + [
        row("proxy CPU µs/req with ÷ without reloads",
            summarize(ratios(per("put", "cpu_req"), per("without", "cpu_req")), "{:.2f}")),
        row("PUT round trip ms, p50", f"{statistics.median(ms):.1f}" if ms else "—"),
        row("PUT round trip ms, p99 / max (target < 100)",
            f"{percentile(ms, 99):.1f} / {max(ms):.1f}" if ms else "—"),
        row("PUTs done / not 200 / change not on the wire within 1 s",
            f"{len(puts)} / {len(bad)} / {len(unseen)}"),
        row("change on the wire after the 200, ms p50 / max",
            f"{statistics.median(seen):.1f} / {max(seen):.1f}" if seen else "—"),
        row("wrk errors (non-2xx + socket), with / without reloads (target 0)",
            f"{err_put} / {err_none}"),
    ]
    mt = [g["put"].get("metrics") or {} for g in rounds]
    applied = sum(m.get("applied") or 0 for m in mt)
    if applied:
        reused = sum(m.get("reused") or 0 for m in mt)
        raised = sum(m.get("raised") or 0 for m in mt)
        rows.append(row("routes copied unchanged per PUT (sluice /metrics)",
                        f"{reused / applied:,.0f} of {RELOAD_ROUTES:,}"))
        rows.append(row("builds raised from SCHED_IDLE by the watchdog (40 ms)",
                        f"{raised:.0f} of {applied:.0f}"))
    if ms and percentile(ms, 99) >= 100:
        note(f"reload: PUT round trip p99 {percentile(ms, 99):.1f} ms misses the 100 ms target")
    r = [x for x in p99_ratio if x is not None]
    if r and statistics.median(r) > 1.10:
        ci = median_interval(r)
        note(f"reload: p99 with reloads is {statistics.median(r):.2f}× the p99 without "
             "(target within 10 %" + (f"; 90 % interval {ci[0]:.2f}–{ci[1]:.2f})" if ci else ")"))
    if err_put or err_none:
        note(f"reload: wrk saw {err_put} errors with reloads and {err_none} without")
    if bad:
        note(f"reload: {len(bad)} PUT(s) not answered 200 with a version; first: "
             f"{bad[0].get('status')} {bad[0].get('err', '')[:150]}")
    if unseen:
        note(f"reload: {len(unseen)} applied PUT(s) whose new header value did not show "
             "on the loaded route within 1 s")
    for g in rounds:  # every PUT of a round should bump the version by one
        v = [p["version"] for p in g["put"]["puts"] if p in ok]
        if any(b - a != 1 for a, b in zip(v, v[1:])):
            note(f"reload: config versions within a round not consecutive: {v}")
            break
    return rows


def table():
    rows = ["| scenario | metric | direct | sluice | nginx | HAProxy | sluice/nginx | sluice/HAProxy |",
            "|---|---|---|---|---|---|---|---|"]
    for scen in SCENARIOS:
        if scen == "reload":
            if "sluice" in TARGETS:
                rows += reload_rows()
            continue
        if scen == "stats":
            if "sluice" in TARGETS:
                rows += stats_rows()
            continue
        if scen in ("skewed", "jwt"):
            continue        # tables of their own (skew_rows, JWT_ROWS)
        if scen == "policy":
            if POLICY:
                wo = [g["sluice-nopolicy"] if g else None for g in POLICY]
                wi = [g["sluice-policy"] if g else None for g in POLICY]
                cells = ["—"] * 4
                cells[1] = summarize(wi, "{:.2f}")
                rows.append(f"| {SCEN[scen]['title']} | proxy CPU µs/req with policy "
                            f"(without: {summarize(wo, '{:.2f}')}); ratio with ÷ without "
                            f"{summarize(ratios(wi, wo), '{:.3f}')} (target ≤ 1.10) | "
                            + " | ".join(cells) + " | — | — |")
            continue
        title = SCEN[scen]["title"]
        if scen == "paired":
            for (other, conns), got in PAIRED.items():
                col = 2 if other == "nginx" else 3
                if not got:
                    continue
                sl = [g["sluice"] if g else None for g in got]
                ot = [g[other] if g else None for g in got]
                cells = ["—"] * 4
                cells[1] = summarize(sl, "{:.2f}")
                cells[col] = summarize(ot, "{:.2f}")
                rat = summarize(ratios(sl, ot), "{:.2f}")
                rows.append(f"| {title.format(conns=conns)} | proxy CPU µs/req, "
                            f"sluice with {SCEN_NAMES[other]} | "
                            + " | ".join(cells) + " | "
                            + (f"{rat} | — |" if other == "nginx" else f"— | {rat} |"))
            continue
        for m, label in METRICS[scen]:
            rows.append(metric_row(title, label, RESULTS[scen][m], FMT[m]))
        if scen == "huge":
            r = RESULTS[scen]["mibs"]
            rows.append(f"| {title} | MiB/s ÷ direct (target: sluice ≥ 0.80) | "
                        + ("1.00" if any(x is not None for x in r["direct"]) else "—") + " | "
                        + " | ".join(summarize(ratios(r[t], r["direct"]), "{:.2f}")
                                     for t in ("sluice", "nginx", "haproxy")) + " | — | — |")
            if "sluice-nosplice" in TARGETS:
                # sluice with splice off: its figures in the sluice column,
                # its ratios against the same rounds' other targets.
                t2 = f"{title}, sluice with splice off (sluice-nosplice)"
                for m, label in METRICS[scen]:
                    rows.append(metric_row(t2, label.split(" (")[0], RESULTS[scen][m], FMT[m],
                                           "sluice-nosplice", others=False))
                rows.append(f"| {t2} | MiB/s ÷ direct | — | "
                            + summarize(ratios(r["sluice-nosplice"], r["direct"]), "{:.2f}")
                            + " | — | — | — | — |")
    return "\n".join(rows)


SCEN_NAMES = {"nginx": "nginx", "haproxy": "HAProxy"}


def metric_row(title, label, r, fmt, sluice="sluice", others=True):
    """One table row: every column's median (spread) and sluice's same-round
    ratios. `sluice` names the target shown in the sluice column; others =
    False leaves the other targets' cells empty (they have rows of their own)."""
    cells = [summarize(r[sluice], fmt) if t == "sluice" else
             summarize(r[t], fmt) if others else "—" for t in COLUMNS]
    cells += [summarize(ratios(r[sluice], r[o]), "{:.2f}") for o in ("nginx", "haproxy")]
    return f"| {title} | {label} | " + " | ".join(cells) + " |"


def median_ratio(scen, m, a, b):
    r = [x for x in ratios(RESULTS[scen][m][a], RESULTS[scen][m][b]) if x is not None]
    return statistics.median(r) if r else None


def check_targets(bench):
    """Notes for issue 4's targets that the run missed, and what sluice's own
    counters and the TLS client saw, so the figures can be trusted."""
    if "huge" in SCENARIOS:
        d = median_ratio("huge", "mibs", "sluice", "direct")
        h = median_ratio("huge", "mibs", "sluice", "haproxy")
        if d is not None and d < 0.8:
            note(f"huge: sluice moves {d:.2f}× direct's MiB/s (target ≥ 0.80)")
        if h is not None and h < 2.0:
            note(f"huge: sluice moves {h:.2f}× HAProxy's MiB/s (target ≥ 2)")
        for name in ("sluice", "sluice-nosplice"):
            sp = bench.sluice_counts.get((name, "splice"))
            cp = bench.sluice_counts.get((name, "copy"))
            if sp is None and cp is None:
                continue
            sp, cp = sp or 0.0, cp or 0.0
            if sp + cp == 0:
                note(f"huge: {name}'s sluice_body_bytes_total did not move, so whether it "
                     "used splice(2) is not verified")
                continue
            share = 100.0 * sp / (sp + cp) if sp + cp else 0.0
            msg = (f"huge: {name}'s /metrics counted {sp / (1 << 20):,.0f} MiB of body bytes "
                   f"moved by splice(2) and {cp / (1 << 20):,.0f} MiB copied ({share:.0f} % splice)")
            if (name == "sluice" and share < 90) or (name == "sluice-nosplice" and sp > 0):
                msg += ": NOT what this row is meant to measure"
            note(msg)
    if "tls_handshake" in SCENARIOS:
        for o in ("nginx", "haproxy"):
            r = median_ratio("tls_handshake", "cpu_hs", "sluice", o)
            if r is not None and r > 1.0:
                note(f"tls_handshake: sluice spends {r:.2f}× {o}'s CPU per full handshake "
                     "(target ≤ 1)")
        n = bench.sluice_counts.get(("sluice-tls", "client"))
        if n:
            got = {k: bench.sluice_counts.get(("sluice-tls", k)) for k in ("full", "resumed", "failed")}
            if all(v is None for v in got.values()):
                note("tls_handshake: sluice's /metrics has no sluice_tls_handshakes_total "
                     "listener counts")
            else:
                note(f"tls_handshake: sluice's /metrics counted {got['full'] or 0:,.0f} full, "
                     f"{got['resumed'] or 0:,.0f} resumed and {got['failed'] or 0:,.0f} failed "
                     f"listener handshakes for {n:,.0f} completed by the client")
    if bench.tls_params:
        seen = sorted(set(bench.tls_params.values()))
        note("TLS as tls_hs negotiated it: " + "; ".join(
            f"{k}: {v}" for k, v in sorted(bench.tls_params.items()))
            + ("" if len(seen) == 1 else " (NOT the same for every target)"))


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
    for tool in ("wrk", "nginx", "haproxy", "taskset", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (apt-get install wrk nginx-light haproxy openssl)")
    if "idle" in SCENARIOS and nofile_limit() < IDLE_CONNS * 1.2 + 256:
        note(f"RLIMIT_NOFILE is {nofile_limit()}, tight for {IDLE_CONNS} idle connections")
    load1, busy = idle_check()
    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    os.chmod(tmp, 0o755)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(f"bench: stopped by signal {s}"))
    b = Bench(tmp)
    rb = bb = None
    try:
        b.run()
        rb = router_bench()
        bb = balance_bench()
    finally:
        cleanup()
        (None if os.environ.get("KEEP_TMP") else shutil.rmtree(tmp, ignore_errors=True))
    check_targets(b)
    elapsed = time.monotonic() - T0
    md = [f"# sluice benchmark ({time.strftime('%Y-%m-%d %H:%M:%S')})", "",
          f"{ROUNDS} round(s), {WARMUP:g} s warm-up + {DURATION:g} s measured per cell; "
          f"medians (min–max over rounds); ratios per round, then median "
          f"(> 1 is better for req/s and MiB/s, < 1 for latency, CPU and memory). "
          f"wrk + backend nginx on core 0, proxy alone on core 1, one worker each; "
          f"direct = wrk straight to the backend moved to core 1 (its CPU columns are the backend's).",
          "", f"Machine: {NCPU} CPUs, loadavg {load1:.2f} and {busy:.0f} % busy at start. {versions()}.",
          ] + ([
          "", "TLS scenarios: every server (sluice, nginx, HAProxy, and the backend for direct) "
          "terminates TLS with the same self-signed ECDSA P-256 certificate, TLS 1.2 and 1.3 "
          "enabled, sessions as each defaults them, and proxies plain HTTP to the backend over "
          "kept-alive connections. tls_small: wrk over https (OpenSSL; handshakes once per "
          "connection). tls_handshake: bench/tls_hs on core 0 with wrk's place, each connection a "
          "full TLS 1.3 handshake (never resumed), one GET, close_notify, close; the proxy's CPU "
          "÷ completed handshakes decides.",
          ] if "tls_small" in SCENARIOS or "tls_handshake" in SCENARIOS else []) + ([
          "", "huge: a 64 MiB static file from the backend (sendfile); MiB/s counts every byte wrk "
          "read; sluice-nosplice is sluice with \"splice\": {\"enabled\": false}.",
          ] if "huge" in SCENARIOS else []) + ([
          "", "paired: sluice and nginx (then sluice and HAProxy) both on core 1 at the same "
          "time, each loaded by its own wrk (64, then 256 connections) on core 0: whatever the host does to "
          "the core during the cell it does to both, so the ratio of their CPU per request holds "
          "where consecutive cells drift; absolute figures are higher than alone (two processes "
          "take turns on one core).",
          ] if "paired" in SCENARIOS else []) + ([
          "", f"reload: the proxy alone on core 1 with a {RELOAD_ROUTES:,}-route document "
          f"({RELOAD['doc_bytes'] / 1e6:.1f} MB); in each repeat four cells of {RELOAD_DURATION:g} s: "
          f"two without reloads, one with a PUT of the whole document every "
          f"{RELOAD_INTERVAL * 1000:.0f} ms (two variants in turn; bench/put_client on core 0 with "
          f"wrk, one process per round), and a control with the same bytes refused (401), in the "
          f"orders of a Williams design (each cell equally often in each position and after each "
          f"other); {RELOAD_REPEAT} repeats per round after a {WARMUP:g} s warm-up; ratios taken "
          f"within each repeat (\"without\": the geometric mean of its two cells without "
          f"reloads), their median over all repeats with a 90 % bootstrap interval; PUT figures "
          f"pooled.",
          ] if "reload" in SCENARIOS and "sluice" in TARGETS else []) + ([
          "", f"stats: sluice alone on core 1 (one worker; the admin thread shares the core) under "
          f"the small64 load; in each repeat four cells of {STATS_DURATION:g} s: two without "
          f"pollers, one with {STATS_POLLERS:,} kept-alive admin connections each asking GET /stats "
          f"once a second (as many dashboards would; starts spread over the second), one with as "
          f"many asking back to back (bench/stats_poll on core 0 with wrk), Williams orders, "
          f"{STATS_REPEAT} repeats per round; ratios within each repeat, their median with a 90 % "
          f"bootstrap interval.",
          ] if "stats" in SCENARIOS and "sluice" in TARGETS else []) + [
          "", table(), ""]
    if SKEW:
        md += skew_rows() + [""]
    if JWT_ROWS:
        md += ["jwt: auth.jwt (ES256) on a keep-alive load, sluice alone on core 1: no policy, "
               "one token every request repeats (cached), and more tokens than a worker caches "
               "(each verified); bench/jwt_cost.py", ""] + JWT_ROWS + [""]
    if rb is not None:
        md += [f"router_bench: {rb}", ""]
    if bb is not None:
        md += ["balance_bench (ns per pick among 1,000 targets, best of 7 rounds):", "", "```"] + bb + ["```", ""]
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
