"""A/B of two sluice builds, paired (bench.py's method): both on the proxy
core at once, each loaded by its own wrk (small GET, 64 connections) on the
load core, the nginx backend of `make bench`; the figure is new/base CPU per
request within each cell, its median over the cells.

  python3 bench/ab.py BASE_SLUICE NEW_SLUICE CELLS SECONDS [BALANCE]

BALANCE (optional) sets upstreams[0].balance in both configs.  Build the base
from a commit with: git archive COMMIT | tar -x -C /tmp/base && make -C /tmp/base build/sluice
"""
import os, sys, tempfile, threading, statistics, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B

A = sys.argv[1]; Bn = sys.argv[2]; rounds = int(sys.argv[3]); dur = int(sys.argv[4])
bal = sys.argv[5] if len(sys.argv) > 5 else None
tmp = tempfile.mkdtemp(prefix="bal-ab-")
ports = iter(B.free_ports(8))
bport, tport = next(ports), next(ports)
tls = B.make_cert(tmp)
backend = B.Server("backend", ["nginx", "-p", tmp, "-c", B.write_backend_conf(tmp, bport, tport, tls),
                               "-e", f"{tmp}/backend.error.log", "-g", "daemon off;"], B.LOAD_CORE, tmp)
srv = {}
port = {}
for name, binp in (("base", A), ("new", Bn)):
    port[name] = next(ports)
    conf = B.write_sluice_conf(tmp, name, port[name], bport, next(ports), balance=bal)
    srv[name] = B.Server(name, [binp, "--config", conf], B.PROXY_CORE, tmp)
try:
    backend.start(); B.wait_ready(backend, bport)
    for n in srv:
        srv[n].start(); assert B.wait_ready(srv[n], port[n]), srv[n].log_tail()
    res = []
    for r in range(rounds):
        for n in srv:
            B.run_wrk(port[n], "/", 64, 1)
        pids = {n: srv[n].pids() for n in srv}
        outs = {}
        def load(n):
            outs[n] = B.run_wrk(port[n], "/", 64, dur)
        c0 = {n: B.tree_cpu(pids[n]) for n in srv}
        ts = [threading.Thread(target=load, args=(n,)) for n in srv]
        [t.start() for t in ts]; [t.join() for t in ts]
        c1 = {n: B.tree_cpu(pids[n]) for n in srv}
        v = {}
        for n in srv:
            w = B.parse_wrk(outs[n][0])
            v[n] = (c1[n] - c0[n]) / w["requests"] * 1e6
        res.append(v["new"] / v["base"])
        print(f"round {r+1}: base {v['base']:.2f} new {v['new']:.2f} µs/req ratio {res[-1]:.3f}", flush=True)
    print(f"median new/base {statistics.median(res):.3f} over {len(res)} (min {min(res):.3f} max {max(res):.3f})")
finally:
    B.cleanup()
