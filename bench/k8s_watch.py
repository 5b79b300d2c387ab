#!/usr/bin/env python3
"""sluice-k8s watch at scale (issue 17): the test API server
(tests/integration/kube_api.py) holds 1,000 HTTPRoutes over 5,000 Services
with their EndpointSlices (bench/k8s_translate.py's set); sluice-k8s watch
feeds a real sluice.  Measures the start (first PUT applied), then, N times,
an HTTPRoute created on the API until the gateway routes it (polled every
5 ms: debounce + translate + PUT + apply), and the status PATCHes it makes.

    python3 bench/k8s_watch.py [--routes 1000] [--backends-per-route 5] [--probes 10]
"""
import argparse
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import certs  # noqa: E402
import harness  # noqa: E402
from harness import free_port, get, wait_for, wait_port  # noqa: E402
from k8s_translate import manifests  # noqa: E402
from kube_api import GW, KubeAPI  # noqa: E402

K8S = os.path.join(harness.BUILD, "sluice-k8s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=1000)
    ap.add_argument("--backends-per-route", type=int, default=5)
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--log", help="write the watcher's log there")
    a = ap.parse_args()
    env = harness.Env()
    api = KubeAPI(certs.make(env), bookmark_interval=30.0).start()
    try:
        gwport, aport = free_port(), free_port()
        t0 = time.monotonic()
        docs = manifests(a.routes, a.backends_per_route)
        for d in docs:
            if d["kind"] == "Gateway":
                for l in d["spec"]["listeners"]:
                    l["port"] = gwport
            d.get("metadata", {}).pop("creationTimestamp", None)
            api.create(d)
        for ns in sorted({d["metadata"]["namespace"] for d in docs}):
            api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        echo = env.echo("probe")
        api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe", "namespace": "infra"},
                    "spec": {"ports": [{"name": "http", "port": 80}]}})
        api.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "probe-x", "namespace": "infra",
                                 "labels": {"kubernetes.io/service-name": "probe"}},
                    "addressType": "IPv4", "ports": [{"name": "http", "port": echo.port}],
                    "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
        print("# %d objects on the API server (%.1f s to load)" % (len(api.store), time.monotonic() - t0))
        cfg = env.config([], listeners=[{"name": "http-%d" % gwport, "address": "127.0.0.1:%d" % gwport}],
                         admin={"address": "127.0.0.1:%d" % aport, "token": "t"})
        s = env.sluice(cfg)
        wait_port(aport, 5.0, s.proc)
        kc = api.kubeconfig(os.path.join(env.tmp, "kubeconfig"))
        t0 = time.monotonic()
        w = env.start([K8S, "watch", "--kubeconfig", kc, "--admin", "http://127.0.0.1:%d" % aport,
                       "--admin-token", "t", "--listen-host", "127.0.0.1"], "watch")
        if not wait_for(lambda: "PUT /config: version" in w.stderr(), 60.0):
            print("not ok - no PUT: %s" % w.stderr()[-2000:])
            return 1
        start = time.monotonic() - t0
        put_ms = re.findall(r"PUT /config: version \d+ \((\d+) ms", w.stderr())
        print("# start: lists + first translation + PUT applied in %.2f s (the PUT itself %s ms)"
              % (start, put_ms[0]))
        # wait for the start's status PATCHes to settle
        t0 = time.monotonic()
        last = -1
        while time.monotonic() - t0 < 120:
            n = api.count("PATCH", "/status")
            if n == last:
                break
            last = n
            time.sleep(1.0)
        print("# status after the start: %d PATCHes, settled in %.1f s" % (last, time.monotonic() - t0))
        times = []
        for i in range(a.probes):
            host = "probe-%d.example.com" % i
            route = {"apiVersion": GW + "/v1", "kind": "HTTPRoute",
                     "metadata": {"name": "probe-%d" % i, "namespace": "infra"},
                     "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                              "rules": [{"backendRefs": [{"name": "probe", "port": 80}]}]}}
            t0 = time.monotonic()
            api.create(route)
            ok = wait_for(lambda: get(gwport, "/", host=host, timeout=2.0).status == 200, 10.0, interval=0.005)
            dt = time.monotonic() - t0
            if not ok:
                print("not ok - probe %d not routed: %s" % (i, w.stderr()[-1500:]))
                return 1
            times.append(dt)
            time.sleep(0.3)
        put_ms = [int(x) for x in re.findall(r"PUT /config: version \d+ \((\d+) ms", w.stderr())][1:]
        times.sort()
        print("# event -> routed: median %.0f ms, min %.0f ms, max %.0f ms over %d probes"
              % (times[len(times) // 2] * 1000, times[0] * 1000, times[-1] * 1000, len(times)))
        print("# of which PUT /config (the gateway parsing and applying the document): median %d ms"
              % sorted(put_ms)[len(put_ms) // 2])
        return 0
    finally:
        if a.log and "w" in locals():
            with open(a.log, "w") as f:
                f.write(w.stderr())
        api.stop()
        for p in env.procs:
            p.stop()


if __name__ == "__main__":
    sys.exit(main())
