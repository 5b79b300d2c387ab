"""The upstream pool follows demand: a steady load of 256 concurrent
keep-alive requests through one target opens no new upstream connection
after warm-up (the backend's accept count says so, and /metrics agrees), and
once the load stops the idle surplus drains gradually, not at once and not
never; an explicit max_idle_per_target still caps what is kept."""
import socket
import subprocess
import time

from harness import check, eq, wait_for
from test_8_admin import admin_cfg, start

CONNS = 256


def _wrk(port, secs):
    return subprocess.Popen(["wrk", "-t", "2", "-c", str(CONNS), "-d", "%ds" % secs, "--timeout", "5s",
                             "http://127.0.0.1:%d/" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p, what):
    out, err = p.communicate(timeout=30)
    eq(p.returncode, 0, "%s: wrk exit status (%s)" % (what, err.strip()[-300:]))
    check("Non-2xx" not in out and "Socket errors" not in out,
          "%s: every request answered 2xx over live sockets:\n%s" % (what, out))
    return out


def _burst(port, n):
    """n requests at once, each on its own keep-alive connection, every
    response read whole: the upstream connections they used are all clean."""
    socks = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(c)
    for c in socks:
        c.sendall(b"GET /burst HTTP/1.1\r\nHost: t\r\n\r\n")
    for c in socks:
        buf = b""
        while b"\r\n\r\n" not in buf:
            got = c.recv(65536)
            check(got, "a burst response arrived")
            buf += got
        head, _, body = buf.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200"), "burst answer: %r" % head[:80])
        clen = int([l.split(b":", 1)[1] for l in head.split(b"\r\n")
                    if l.lower().startswith(b"content-length:")][0])
        while len(body) < clen:
            got = c.recv(65536)
            check(got, "a burst body arrived whole")
            body += got
    for c in socks:
        c.close()


def _pool(a):
    m = a.metrics()
    closed = {s.labels["reason"]: s.value for s in m["sluice_pool_closed_total"].samples}
    return {"idle": m["sluice_pool_idle"].total(), "in_use": m["sluice_pool_in_use"].total(),
            "opened": m["sluice_pool_opened_total"].total(), "closed": closed}


def test_pool_follows_demand(env):
    # idle_timeout_ms 12000: demand periods of 2 s, so a fall in demand shows
    # within 4 s, well before the surplus would reach its idle timeout
    e, cfg = admin_cfg(env)
    cfg["upstreams"][0]["pool"] = {"idle_timeout_ms": 12000}
    s, a = start(env, cfg)

    _finish(_wrk(s.port, 2), "warm-up")
    # the steady run: accepts counted a second into it and at its end
    p = _wrk(s.port, 4)
    time.sleep(1.0)
    acc1 = e.stats()["accepted"]
    time.sleep(2.0)
    acc2 = e.stats()["accepted"]
    out = _finish(p, "steady load")
    # each /stats call is one accepted connection of its own
    check(acc2 - acc1 <= 1 + 2,
          "no new upstream connections under a steady load of %d: %d accepted in 2 s (%s)"
          % (CONNS, acc2 - acc1 - 1, out.strip().splitlines()[-2:]))
    st = _pool(a)
    check(st["opened"] <= CONNS * 2 + 8,
          "connections opened over both runs stay about one per concurrent request: %d" % st["opened"])
    eq(st["closed"].get("over_cap", 0), 0, "nothing evicted at check-in while following demand")

    # the load stops (what was in flight when wrk stopped closed with its
    # client); a last burst ends cleanly, then nothing: the idle surplus over
    # the new demand drains gradually
    _burst(s.port, CONNS)
    st = _pool(a)
    peak_idle = st["idle"]
    check(peak_idle >= 48, "after the load the pool holds what the load used: %d idle" % peak_idle)
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < 9.0:
        st = _pool(a)
        seen.append((round(time.monotonic() - t0, 1), st["idle"], st["closed"].get("surplus", 0)))
        if st["closed"].get("surplus", 0) >= 20:
            break
        time.sleep(0.25)
    check(st["closed"].get("surplus", 0) >= 20,
          "the surplus drains once demand falls: %r" % seen[-5:])
    # gradually: when the drain is under way most of the surplus is still there
    check(st["idle"] >= peak_idle // 3,
          "not all at once: %d of %d idle left when %d were drained (%r)"
          % (st["idle"], peak_idle, st["closed"].get("surplus", 0), seen[-5:]))
    check(st["closed"].get("idle_timeout", 0) == 0,
          "drained as surplus before any reached its idle timeout (%r)" % st["closed"])
    # and not never: within the idle timeout everything surplus is gone
    got = wait_for(lambda: _pool(a)["idle"] <= 1, 14.0, 0.5)
    check(got, "the idle pool empties after the load: %r" % _pool(a))


def test_pool_explicit_cap(env):
    e, cfg = admin_cfg(env)
    cfg["upstreams"][0]["pool"] = {"max_idle_per_target": 16}
    s, a = start(env, cfg)
    _finish(_wrk(s.port, 2), "load")
    st = wait_for(lambda: (lambda x: x if x["in_use"] == 0 else None)(_pool(a)), 5.0, 0.1)
    check(st is not None, "requests finished")
    check(st["idle"] <= 16, "max_idle_per_target 16 caps the idle pool: %d idle" % st["idle"])
    check(st["closed"].get("over_cap", 0) > 0,
          "connections beyond the cap were closed at check-in and counted: %r" % st["closed"])
