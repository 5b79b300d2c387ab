"""How long a DNS change takes to reach traffic: a 10,001-route config whose
one upstream is a name (TTL 1 s) answered by the tests' DNS server; the
answer flips between two backends five times.  Prints, per change, the time
from the change and from the answer carrying it to the first request the new
backend served (polled every 5 ms), and sluice's own rebuild times.
Run: SLUICE_BUILD=build python3 bench/dns_change.py"""
import os
import re
import sys
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness
from harness import free_port
from test_12_dns import DnsServer, echo_at, who
env = harness.Env()
dns = DnsServer()
try:
    port = free_port()
    echo_at(env, "127.0.0.2", port, "old"); echo_at(env, "127.0.0.3", port, "new")
    dns.set("big.test", ["127.0.0.2"], ttl=1)
    routes = [{"name": "r%d" % i, "match": {"path": {"exact": "/p%d" % i}}, "respond": {"status": 200}} for i in range(10000)]
    routes.append({"name": "x", "match": {}, "upstream": "u"})
    cfg = env.config(upstreams=[{"name": "u", "targets": [{"address": "big.test:%d" % port}]}], routes=routes,
                     dns={"servers": [dns.addr]}, workers=2)
    s = env.sluice(cfg)
    for k in range(5):
        want = "new" if k % 2 == 0 else "old"
        dns.set("big.test", ["127.0.0.3" if want == "new" else "127.0.0.2"], ttl=1)
        t0 = time.monotonic()
        while who(s.port) != want:
            time.sleep(0.005)
        with dns.lock:
            ta = dns.answered_at["big.test"]
        print("change %d: %.0f ms after the change, %.1f ms after the answer" % (k, (time.monotonic() - t0) * 1000, (time.monotonic() - ta) * 1000))
    print(re.findall(r"dns: config version \d+ applied in [\d.]+ ms[^\n]*", s.proc.stdout() + s.proc.stderr()))
finally:
    dns.close(); env.cleanup()
