#!/usr/bin/env python3
"""sluice-k8s translate at scale (issue 17): 1,000 HTTPRoutes over 5,000
backends (Services, each with an EndpointSlice of 3 ready endpoints), one
Gateway with 4 listeners on one port.  Times `translate` (best of N runs,
goal < 1 s) and checks the output with `sluice --check`.

    python3 bench/k8s_translate.py [--routes 1000] [--backends-per-route 5] [--runs 3]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("SLUICE_BUILD", "build"))


def manifests(nroutes, per):
    docs = [{
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "infra"},
        "spec": {"gatewayClassName": "sluice", "listeners": [
            {"name": "l%d" % i, "port": 8080, "protocol": "HTTP", "hostname": h,
             "allowedRoutes": {"namespaces": {"from": "All"}}}
            for i, h in enumerate(["*.example.com", "api.example.com", "*.internal", "www.example.org"])]}}]
    for r in range(nroutes):
        ns = "team-%d" % (r % 50)
        refs = []
        for b in range(per):
            svc = "svc-%d-%d" % (r, b)
            refs.append({"name": svc, "port": 80, "weight": b + 1})
            docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc, "namespace": ns},
                         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
            docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"name": svc + "-abcde", "namespace": ns,
                                      "labels": {"kubernetes.io/service-name": svc}},
                         "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                         "endpoints": [{"addresses": ["10.%d.%d.%d" % (r % 250, b, k)],
                                        "conditions": {"ready": True}} for k in range(3)]})
        docs.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                     "metadata": {"name": "route-%d" % r, "namespace": ns,
                                  "creationTimestamp": "2026-01-01T00:%02d:%02dZ" % (r // 60 % 60, r % 60)},
                     "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                              "hostnames": ["r%d.example.com" % r, "api.example.com"],
                              "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/r%d" % r}},
                                                     {"path": {"type": "Exact", "value": "/x/%d" % r},
                                                      "headers": [{"name": "x-v", "value": "2"}]}],
                                         "filters": [{"type": "RequestHeaderModifier",
                                                      "requestHeaderModifier": {"set": [{"name": "x-r", "value": str(r)}]}}],
                                         "backendRefs": refs}]}})
    return docs


def to_yaml(docs):
    # JSON is YAML; one document per "---" keeps the YAML reader on the path
    return "".join("---\n" + json.dumps(d, indent=1) + "\n" for d in docs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=1000)
    ap.add_argument("--backends-per-route", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    docs = manifests(a.routes, a.backends_per_route)
    with tempfile.TemporaryDirectory(prefix="k8s-bench-") as tmp:
        path = os.path.join(tmp, "all.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(docs))
        size = os.path.getsize(path)
        best, out, cpu = None, None, None
        for _ in range(a.runs):
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            p = subprocess.run([os.path.join(BUILD, "sluice-k8s"), "translate", "-f", path],
                               capture_output=True, timeout=120)
            dt = time.monotonic() - t0
            ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
            c = ru2.ru_utime - ru.ru_utime + ru2.ru_stime - ru.ru_stime
            cpu = c if cpu is None or c < cpu else cpu
            if p.returncode != 0:
                sys.exit("translate failed: %s" % p.stderr.decode()[-500:])
            best = dt if best is None or dt < best else best
            out = p.stdout
        cfg = json.loads(out)
        cpath = os.path.join(tmp, "out.json")
        with open(cpath, "wb") as f:
            f.write(out)
        t0 = time.monotonic()
        c = subprocess.run([os.path.join(BUILD, "sluice"), "--check", "--config", cpath],
                           capture_output=True, timeout=120)
        dcheck = time.monotonic() - t0
        print("k8s translate: %d HTTPRoutes, %d Services + %d EndpointSlices (%d objects, %.1f MB YAML)"
              % (a.routes, a.routes * a.backends_per_route, a.routes * a.backends_per_route, len(docs), size / 1e6))
        print("  translate: best of %d = %.3f s wall, %.3f s CPU  -> %d routes, %d upstreams (%s)"
              % (a.runs, best, cpu, len(cfg["routes"]), len(cfg["upstreams"]),
                 "goal < 1 s: ok" if best < 1 else "GOAL MISSED"))
        print("  sluice --check of the output: %.3f s, rc=%d" % (dcheck, c.returncode))
        if c.returncode != 0:
            sys.exit("sluice --check failed: %s" % c.stderr.decode()[-500:])
        return 0 if best < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
