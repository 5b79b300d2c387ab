"""Live DNS (issue 16 part C): upstream targets given by name resolve to all
their A/AAAA records through c-ares, asked of a small DNS server in this
file (UDP on 127.0.0.1, pointed at with the top-level "dns": {"servers"}),
whose answers the tests change while traffic flows: the TTL's end moves
traffic to the new address without a reload, SERVFAIL keeps the last good
addresses, several A records are all used, /etc/hosts names (localhost)
never reach the server, and bad "dns" members name their JSON path.

Backends are sluice-echo processes on one port and different 127/8
addresses, so only the DNS answer decides which one a request reaches."""
import re
import socket
import struct
import threading
import time

from harness import ECHO, SLUICE, Conn, build_request, check, eq, free_port, get, wait_for
from test_8_admin import TOKEN, sample, start


class DnsServer:
    """Answers A and AAAA questions with what answers[name] says: a list of
    addresses, IPv4 and IPv6 (and a TTL), or the string "SERVFAIL"; unknown
    names get NXDOMAIN.  Counts questions per name."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.answers = {}
        self.asked = {}
        self.answered_at = {}   # name -> monotonic time of the last A answer with addresses
        self.lock = threading.Lock()
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def set(self, name, ips, ttl=1):
        with self.lock:
            self.answers[name] = (ips, ttl)

    def count(self, name):
        with self.lock:
            return self.asked.get(name, 0)

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()

    def run(self):
        while not self.stop:
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                r = self.answer(q)
            except (IndexError, struct.error):
                continue
            if r:
                self.sock.sendto(r, peer)

    def answer(self, q):
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        if qd != 1:
            return None
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace").lower())
            i += 1 + q[i]
        i += 1
        qtype, qclass = struct.unpack("!HH", q[i:i + 4])
        question = q[12:i + 4]
        name = ".".join(labels)
        with self.lock:
            self.asked[name] = self.asked.get(name, 0) + 1
            ans = self.answers.get(name)
        rd = flags & 0x0100
        rcode, records = 0, []
        if ans is None:
            rcode = 3                                   # NXDOMAIN
        elif ans[0] == "SERVFAIL":
            rcode = 2
        elif qtype == 1:
            with self.lock:
                self.answered_at[name] = time.monotonic()
            for ip in ans[0]:
                if ":" not in ip:
                    records.append(struct.pack("!HHHIH", 0xC00C, 1, 1, ans[1], 4) + socket.inet_aton(ip))
        elif qtype == 28:
            for ip in ans[0]:
                if ":" in ip:
                    records.append(struct.pack("!HHHIH", 0xC00C, 28, 1, ans[1], 16)
                                   + socket.inet_pton(socket.AF_INET6, ip))
        head = struct.pack("!HHHHHH", qid, 0x8000 | rd | 0x0080 | rcode, 1, len(records), 0, 0)
        return head + question + b"".join(records)


def echo_at(env, host, port, ident):
    p = env.start([ECHO, "--host", host, "--port", str(port), "--id", ident], "echo")
    spec = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
    check(wait_for(lambda: ("listening on %s" % spec) in p.stdout(), 5.0),
          "sluice-echo %s on %s:%d did not start: %s" % (ident, host, port, p.stderr()[-300:]))
    return p


def dns_cfg(env, dns, targets, admin=False, **kw):
    up = {"name": "u", "targets": [{"address": a} for a in targets]}
    up.update(kw)
    extra = {"dns": {"servers": [dns.addr], "timeout_ms": 1000}}
    if admin:
        extra["admin"] = {"address": "127.0.0.1:%d" % free_port(), "token": TOKEN}
    return env.config(upstreams=[up], routes=[{"name": "r", "match": {}, "upstream": "u"}], **extra)


def who(port):
    r = get(port, "/x")
    return r.json()["id"] if r.status == 200 else r.status


def until_who(port, want, timeout):
    """Seconds until a GET reaches want (None if not within timeout); every
    answer on the way must be a 200."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        w = who(port)
        check(not isinstance(w, int), "a request failed while DNS changed: status %s" % w)
        if w == want:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def test_dns_ttl_end_moves_traffic(env):
    """The name's answer changes: when its TTL (1 s) ends traffic moves to the
    new address, no reload asked for, no request failed, and /status lists
    the new target and not the old one."""
    dns = DnsServer()
    try:
        port = free_port()
        echo_at(env, "127.0.0.2", port, "old")
        echo_at(env, "127.0.0.3", port, "new")
        dns.set("backend.test", ["127.0.0.2"], ttl=1)
        cfg = dns_cfg(env, dns, ["backend.test:%d" % port], admin=True)
        s, a = start(env, cfg)
        for _ in range(5):
            eq(who(s.port), "old", "before the change")
        v0 = a.version()
        dns.set("backend.test", ["127.0.0.3"], ttl=1)
        t_set = time.monotonic()
        t = until_who(s.port, "new", 5.0)
        t_moved = time.monotonic()
        with dns.lock:
            t_ans = dns.answered_at["backend.test"]
        check(t is not None, "traffic did not move to the new address within 5 s")
        # TTL 1 s, then one lookup and one build: well under 2.5 s
        check(t < 2.5, "the move took %.2f s (TTL 1 s)" % t)
        for _ in range(10):
            eq(who(s.port), "new", "after the change")
        # the answer that carried the new address, to the first request it
        # served (the client polls every 20 ms), and the rebuild's own time
        m = re.findall(r"dns: config version \d+ applied in ([\d.]+) ms", s.proc.stdout() + s.proc.stderr())
        print("# rebuild after the DNS change: %s ms" % (m[-1] if m else "?"))
        print("# DNS change to traffic: %.0f ms (TTL 1 s); new answer to traffic: %.1f ms"
              % (t * 1000, (t_moved - t_ans) * 1000 if t_ans >= t_set else -1))
        st = a.json_ok("GET", "/status")
        addrs = [x["address"] for x in st["upstreams"][0]["targets"]]
        eq(addrs, ["backend.test:%d (127.0.0.3)" % port], "/status targets")
        check(a.version() > v0, "the running config was rebuilt (version %d -> %d)" % (v0, a.version()))
        check("DNS: backend.test now has 1 address (127.0.0.3)" in s.proc.stdout() + s.proc.stderr(),
              "the change is logged")
    finally:
        dns.close()


def test_dns_servfail_keeps_addresses(env):
    """SERVFAIL (and later no server at all) keeps the last good address:
    lookups keep being made, traffic keeps flowing; a good answer later is
    picked up."""
    dns = DnsServer()
    try:
        port = free_port()
        echo_at(env, "127.0.0.2", port, "a")
        echo_at(env, "127.0.0.3", port, "b")
        dns.set("svc.test", ["127.0.0.2"], ttl=1)
        s, a = start(env, dns_cfg(env, dns, ["svc.test:%d" % port], admin=True))
        eq(who(s.port), "a", "first answer")
        dns.set("svc.test", "SERVFAIL")
        n0 = dns.count("svc.test")

        def failed():
            return sample(a.metrics(), "sluice_dns_lookups_total", result="failed")
        # at least two failed lookups (1 s TTL, then a 1 s back-off), serving all along
        t0 = time.monotonic()
        while failed() < 2 and time.monotonic() - t0 < 6:
            eq(who(s.port), "a", "during SERVFAIL")
            time.sleep(0.05)
        check(failed() >= 2, "sluice_dns_lookups_total{result=\"failed\"} is %r" % failed())
        check(dns.count("svc.test") >= n0 + 2, "the server was asked (%d)" % (dns.count("svc.test") - n0))
        for _ in range(5):
            eq(who(s.port), "a", "after SERVFAIL answers")
        check("keeping its 1 address" in s.proc.stdout() + s.proc.stderr(), "the failure is logged")
        check(sample(a.metrics(), "sluice_dns_lookups_total", result="ok") >= 1, "a good lookup counted")
        dns.set("svc.test", ["127.0.0.3"], ttl=1)
        t = until_who(s.port, "b", 8.0)     # the back-off may be at 4 s by now
        check(t is not None, "a good answer after SERVFAIL was not picked up")
    finally:
        dns.close()


def test_dns_several_a_records(env):
    """Three A records: three targets, round robin over all of them; one
    record removed: its target stops getting traffic."""
    dns = DnsServer()
    try:
        port = free_port()
        for i, ident in enumerate(("x", "y", "z")):
            echo_at(env, "127.0.0.%d" % (2 + i), port, ident)
        dns.set("many.test", ["127.0.0.4", "127.0.0.2", "127.0.0.3"], ttl=1)
        s = env.sluice(dns_cfg(env, dns, ["many.test:%d" % port]))
        seen = {}
        for _ in range(30):
            w = who(s.port)
            seen[w] = seen.get(w, 0) + 1
        eq(seen, {"x": 10, "y": 10, "z": 10}, "30 requests over three addresses")
        dns.set("many.test", ["127.0.0.2", "127.0.0.3"], ttl=1)

        def moved():
            got = set(who(s.port) for _ in range(6))
            return got == {"x", "y"}
        check(wait_for(moved, 5.0, 0.05), "the removed address still gets traffic")
        seen = {}
        for _ in range(20):
            w = who(s.port)
            seen[w] = seen.get(w, 0) + 1
        eq(seen, {"x": 10, "y": 10}, "20 requests over the two left")
    finally:
        dns.close()


def test_dns_a_and_aaaa(env):
    """A and AAAA records of one name: a target each (IPv4 and IPv6), both
    used."""
    dns = DnsServer()
    try:
        port = free_port()
        echo_at(env, "127.0.0.2", port, "v4")
        echo_at(env, "::1", port, "v6")
        dns.set("dual.test", ["127.0.0.2", "::1"], ttl=1)
        s, a = start(env, dns_cfg(env, dns, ["dual.test:%d" % port], admin=True))
        seen = {}
        for _ in range(10):
            w = who(s.port)
            seen[w] = seen.get(w, 0) + 1
        eq(seen, {"v4": 5, "v6": 5}, "10 requests over an A and an AAAA record")
        st = a.json_ok("GET", "/status")
        eq(sorted(t["address"] for t in st["upstreams"][0]["targets"]),
           sorted(["dual.test:%d (127.0.0.2)" % port, "dual.test:%d (::1)" % port]), "/status targets")
    finally:
        dns.close()


def test_dns_etc_hosts_localhost(env):
    """localhost comes from /etc/hosts: it works with the configured server
    answering nothing, and that server is never asked about it."""
    dns = DnsServer()
    try:
        e = env.echo("local")
        s = env.sluice(dns_cfg(env, dns, ["localhost:%d" % e.port]))
        for _ in range(3):
            eq(who(s.port), "local", "via localhost")
        time.sleep(1.3)            # past a re-resolution (the TTL floor is 1 s)
        eq(who(s.port), "local", "after a re-resolution")
        eq(dns.count("localhost"), 0, "questions about localhost sent to the server")
    finally:
        dns.close()


def test_dns_unknown_name_then_known(env):
    """A name the server does not know (NXDOMAIN) starts unresolved (503, the
    warning says so); once the server knows it, traffic flows without a
    reload."""
    dns = DnsServer()
    try:
        port = free_port()
        echo_at(env, "127.0.0.2", port, "late")
        s = env.sluice(dns_cfg(env, dns, ["late.test:%d" % port]))
        r = get(s.port, "/x")
        eq(r.status, 503, "an unresolved name's upstream")
        check("cannot resolve late.test:%d" % port in s.proc.stdout() + s.proc.stderr(),
              "the warning names the target")
        dns.set("late.test", ["127.0.0.2"], ttl=1)
        t = until_who_any(s.port, "late", 5.0)
        check(t is not None, "the name resolving later was not picked up")
    finally:
        dns.close()


def until_who_any(port, want, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if who(port) == want:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def test_dns_config_errors(env):
    """The "dns" member: bad values name their path; a good one passes."""
    good = env.config(routes=[], dns={"servers": ["127.0.0.1:5353", "[::1]:53", "10.0.0.1", "::1"],
                                      "timeout_ms": 500})
    rc, out, err = env.run([SLUICE, "--check", "--config", env.write("good.json", good)])
    eq(rc, 0, "--check of a good dns member (%s)" % (out + err)[-300:])
    cases = [
        ({"servers": ["dns.example:53"]}, "/dns/servers/0"),
        ({"servers": ["127.0.0.1:0"]}, "/dns/servers/0"),
        ({"servers": ["127.0.0.1", 5]}, "/dns/servers/1"),
        ({"servers": []}, "/dns/servers"),
        ({"servers": "127.0.0.1"}, "/dns/servers"),
        ({"timeout_ms": 0}, "/dns/timeout_ms"),
        ({"ttl": 5}, "/dns/ttl"),
        ("127.0.0.1", "/dns"),
    ]
    for i, (dns, path) in enumerate(cases):
        cfg = env.config(routes=[], dns=dns)
        rc, out, err = env.run([SLUICE, "--check", "--config", env.write("bad%d.json" % i, cfg)])
        check(rc != 0 and path in out + err, "dns %r: want an error at %s, got rc %d: %s"
              % (dns, path, rc, (out + err)[-300:]))


def accepted(ip, port):
    """Connections the sluice-echo at ip:port has accepted (probes included)."""
    with Conn(port, host=ip) as c:
        c.send(build_request("GET", "/stats", headers=[("Connection", "close")]))
        return c.read_response().json()["accepted"]


def test_dns_change_with_active_checks(env):
    """With active checks, a new address is probed at once and serves once
    up; the address gone from the answer is not probed any more."""
    dns = DnsServer()
    try:
        port = free_port()
        echo_at(env, "127.0.0.2", port, "old")
        echo_at(env, "127.0.0.3", port, "new")
        dns.set("hc.test", ["127.0.0.2"], ttl=1)
        cfg = dns_cfg(env, dns, ["hc.test:%d" % port], admin=True,
                      health={"path": "/", "interval_ms": 200, "timeout_ms": 150, "rise": 1, "fall": 1})
        s, a = start(env, cfg)

        def healthy(addr):
            st = a.json_ok("GET", "/status")
            return any(t["address"] == addr and t["healthy"] for t in st["upstreams"][0]["targets"])
        check(wait_for(lambda: healthy("hc.test:%d (127.0.0.2)" % port), 3.0, 0.05), "the first address up")
        eq(who(s.port), "old", "before the change")
        n_new = accepted("127.0.0.3", port)
        dns.set("hc.test", ["127.0.0.3"], ttl=1)
        check(until_who_any(s.port, "new", 5.0) is not None, "traffic did not move to the new address")
        check(healthy("hc.test:%d (127.0.0.3)" % port), "the new address is up by its probe")
        check(accepted("127.0.0.3", port) - n_new >= 2, "the new address is probed")
        for _ in range(10):
            eq(who(s.port), "new", "after the change")
        n0 = accepted("127.0.0.2", port)
        time.sleep(0.8)                     # four probe intervals
        n1 = accepted("127.0.0.2", port)
        eq(n1 - n0, 1, "connections to the gone address in 0.8 s (only this test's /stats)")
    finally:
        dns.close()


def test_dns_change_applied_after_a_failed_rebuild(env):
    """The running document cannot be rebuilt for a while (its access log's
    directory is gone): the change waits, traffic stays on the old address,
    the refusal is logged; once the rebuild can succeed the change lands
    without anyone asking."""
    import os
    dns = DnsServer()
    try:
        port = free_port()
        echo_at(env, "127.0.0.2", port, "old")
        echo_at(env, "127.0.0.3", port, "new")
        dns.set("rb.test", ["127.0.0.2"], ttl=1)
        logdir = os.path.join(env.tmp, "logs")
        os.mkdir(logdir)
        cfg = dns_cfg(env, dns, ["rb.test:%d" % port])
        cfg["access_log"] = os.path.join(logdir, "access.log")
        s = env.sluice(cfg)
        eq(who(s.port), "old", "before the change")
        os.rename(logdir, logdir + ".away")
        dns.set("rb.test", ["127.0.0.3"], ttl=1)
        check(wait_for(lambda: "dns refused" in s.proc.stdout() + s.proc.stderr(), 4.0, 0.05),
              "the failed rebuild is not logged")
        for _ in range(5):
            eq(who(s.port), "old", "while the rebuild fails")
        os.rename(logdir + ".away", logdir)
        check(until_who(s.port, "new", 4.0) is not None, "the change did not land once it could")
    finally:
        dns.close()
