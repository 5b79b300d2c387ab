"""pool.max_connections: a target never has more than N connections open,
over every worker; requests beyond it wait in a bounded queue, in order,
holding no upstream connection, and get a 503 when the queue is full or
their wait passes queue_timeout_ms.  A client that leaves while queued is
taken off the queue at once."""
import threading
import time

from harness import Conn, build_request, check, eq, get, wait_for
from test_8_admin import admin_cfg, start


def _setup(env, pool, workers=1):
    e, cfg = admin_cfg(env)
    cfg["upstreams"][0]["pool"] = pool
    cfg["workers"] = workers
    s, a = start(env, cfg)
    return e, s, a


def _tm(a, name):
    return a.metrics()[name].total()


def _closes(a, reason):
    for smp in a.metrics()["sluice_closes_total"].samples:
        if smp.labels.get("reason") == reason:
            return smp.value
    return 0


def _send(port, path):
    c = Conn(port, 10.0)
    c.send(build_request("GET", path, "t"))
    return c


def test_queue_order(env):
    e, s, a = _setup(env, {"max_connections": 2, "max_queue": 10, "queue_timeout_ms": 5000})
    t0 = time.monotonic()
    conns = []
    for i in range(6):
        conns.append(_send(s.port, "/delay/400?i=%d" % i))
        time.sleep(0.03)
    # four wait, holding no upstream connection: the backend sees two
    got = wait_for(lambda: _tm(a, "sluice_queue_waiting") == 4, 2.0)
    check(got, "four requests queued: %r" % _tm(a, "sluice_queue_waiting"))
    st = e.stats()
    check(st["open_connections"] <= 2 + 1, "the backend sees at most 2 (+ this /stats): %r" % st)
    eq(_tm(a, "sluice_target_connections"), 2, "sluice_target_connections")
    done = []
    for i, c in enumerate(conns):
        r = c.read_response(timeout=8.0)
        done.append(time.monotonic() - t0)
        eq(r.status, 200, "request %d answered after waiting" % i)
        check(("i=%d" % i).encode() in r.body, "request %d got its own answer" % i)
        c.close()
    # in order, two at a time: ~0.4, ~0.8, ~1.2 s
    check(done[1] < 0.75 and done[2] >= 0.75 and done[3] < 1.15 and done[4] >= 1.15,
          "served two at a time in arrival order: %r" % [round(x, 2) for x in done])
    eq(_tm(a, "sluice_queue_waiting"), 0, "nothing left queued")
    eq(_tm(a, "sluice_queue_timeouts_total") + _tm(a, "sluice_queue_overflows_total"), 0,
       "no 503 from the queue")
    check(_tm(a, "sluice_pool_opened_total") <= 2,
          "the queued requests reused the two connections: %r opened" % _tm(a, "sluice_pool_opened_total"))


def test_queue_timeout(env):
    e, s, a = _setup(env, {"max_connections": 1, "queue_timeout_ms": 300})
    c1 = _send(s.port, "/delay/1500")
    time.sleep(0.1)
    t0 = time.monotonic()
    r = get(s.port, "/x", timeout=5.0)
    waited = time.monotonic() - t0
    eq(r.status, 503, "the wait ran out")
    check(0.25 <= waited < 1.0, "after about queue_timeout_ms: %.2f s" % waited)
    eq(_tm(a, "sluice_queue_timeouts_total"), 1, "sluice_queue_timeouts_total")
    eq(_closes(a, "queue_timeout"), 1, "sluice_closes_total{reason=queue_timeout}")
    eq(c1.read_response(timeout=5.0).status, 200, "the request holding the slot finishes")
    c1.close()
    eq(get(s.port, "/after").status, 200, "the slot is free again")


def test_queue_full(env):
    e, s, a = _setup(env, {"max_connections": 1, "max_queue": 1, "queue_timeout_ms": 5000})
    c1 = _send(s.port, "/delay/700")
    time.sleep(0.1)
    c2 = _send(s.port, "/delay/10")
    check(wait_for(lambda: _tm(a, "sluice_queue_waiting") == 1, 2.0), "the second request waits")
    t0 = time.monotonic()
    r = get(s.port, "/third", timeout=5.0)
    eq(r.status, 503, "the queue is full: 503 at once")
    check(time.monotonic() - t0 < 0.3, "without waiting")
    eq(_tm(a, "sluice_queue_overflows_total"), 1, "sluice_queue_overflows_total")
    eq(_closes(a, "queue_full"), 1, "sluice_closes_total{reason=queue_full}")
    eq(c1.read_response(timeout=5.0).status, 200, "the first is served")
    eq(c2.read_response(timeout=5.0).status, 200, "the queued one is served after it")
    c1.close()
    c2.close()


def test_queue_client_abort(env):
    e, s, a = _setup(env, {"max_connections": 1, "queue_timeout_ms": 5000})
    c1 = _send(s.port, "/delay/1000")
    time.sleep(0.1)
    c2 = _send(s.port, "/gone")
    check(wait_for(lambda: _tm(a, "sluice_queue_waiting") == 1, 2.0), "the second request waits")
    before = e.stats()["requests"]
    c2.close()
    check(wait_for(lambda: _tm(a, "sluice_queue_waiting") == 0, 0.5),
          "a client that left is off the queue at once")
    eq(_closes(a, "client_closed"), 1, "counted as client_closed")
    eq(c1.read_response(timeout=5.0).status, 200, "the first is served")
    c1.close()
    time.sleep(0.1)
    # the backend counts a request when it arrives (the first was in before)
    eq(e.stats()["requests"] - before, 0, "the request that left never reached the backend")
    eq(_tm(a, "sluice_target_connections"), 1, "one connection, pooled")


def test_limit_two_workers(env):
    n = 4
    e, s, a = _setup(env, {"max_connections": n, "max_queue": 1000, "queue_timeout_ms": 10000},
                     workers=2)
    stop = threading.Event()
    peak = [0]
    results = []
    lock = threading.Lock()

    def watch():
        while not stop.is_set():
            st = e.stats()
            peak[0] = max(peak[0], st["open_connections"] - 1)   # minus this /stats
            time.sleep(0.01)

    def client(k):
        got = []
        try:
            c = Conn(s.port, 10.0)
            for j in range(6):
                c.send(build_request("GET", "/delay/30?c=%d&j=%d" % (k, j), "t"))
                got.append(c.read_response(timeout=10.0).status)
            c.close()
        except Exception as ex:     # reported below
            got.append(repr(ex))
        with lock:
            results.extend(got)

    w = threading.Thread(target=watch)
    w.start()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(24)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    stop.set()
    w.join(5)
    eq(len(results), 24 * 6, "every request answered")
    check(all(x == 200 for x in results), "all 200: %r" % [x for x in results if x != 200][:5])
    check(peak[0] <= n, "the backend never saw more than %d connections at once: %d" % (n, peak[0]))
    check(peak[0] >= 2, "the load did reach the backend on several connections: %d" % peak[0])
    check(_tm(a, "sluice_target_connections") <= n, "sluice_target_connections <= %d" % n)
    eq(_tm(a, "sluice_queue_waiting"), 0, "nothing left queued")
