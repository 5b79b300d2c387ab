"""Integration test harness: real processes, real sockets, exact bytes.

Every wait here is bounded by a deadline; every process a test starts is
registered in its Env and stopped (by PID) when the test ends.
"""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("SLUICE_BUILD", "build"))
SLUICE = os.path.join(BUILD, "sluice")
ECHO = os.path.join(BUILD, "sluice-echo")


class TestFailure(Exception):
    pass


def check(cond, why):
    if not cond:
        raise TestFailure(why)


def eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, _short(got), _short(want)))


def _short(v):
    if isinstance(v, (bytes, bytearray, str)) and len(v) > 300:
        return v[:300] + (b"..." if isinstance(v, (bytes, bytearray)) else "...")
    return v


# A port for a server a test starts (sluice's listeners, admin).  With
# SLUICE_PORT_BASE set (tests/run.sh sets one per suite, below the kernel's
# ephemeral range), ports come in turn from [base, base + SLUICE_PORT_SPAN):
# two suites running at once never hand out the same port, and no
# connection's ephemeral port is taken.  Else the kernel picks one.
_PORT_BASE = int(os.environ.get("SLUICE_PORT_BASE", "0") or 0)
_PORT_SPAN = int(os.environ.get("SLUICE_PORT_SPAN", "10000") or 10000)
_port_next = [0]


def _bindable(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    if _PORT_BASE:
        for _ in range(_PORT_SPAN):
            p = _PORT_BASE + _port_next[0] % _PORT_SPAN
            _port_next[0] += 1
            if _bindable(p):
                return p
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=5.0, proc=None):
    """Wait until 127.0.0.1:port accepts a connection; False on deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
            s.close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def wait_for(pred, timeout, interval=0.02):
    """Poll pred() until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def pattern(n):
    """The /bytes/N pattern: byte i = (i*31+7) & 0xff (period 256)."""
    block = bytes(((i * 31 + 7) & 0xFF) for i in range(256))
    return (block * (n // 256 + 1))[:n]


def sha256(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- processes

class Proc:
    def __init__(self, argv, tmpdir, name, env=None):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(tmpdir, name + ".out")
        self.err_path = os.path.join(tmpdir, name + ".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                      env=env, cwd=tmpdir)
        self.pid = self.p.pid
        self.stopped = False

    def poll(self):
        return self.p.poll()

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Wait for exit; a test that saw the exit owns judging its code."""
        try:
            rc = self.p.wait(timeout=timeout)
            self.stopped = True
            return rc
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=5.0):
        """SIGTERM, wait up to timeout, then SIGKILL.  Returns (rc, killed)."""
        self.stopped = True
        if self.p.poll() is not None:
            return self.p.returncode, False
        os.kill(self.pid, signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is not None:
            return rc, False
        os.kill(self.pid, signal.SIGKILL)
        return self.p.wait(timeout=5), True

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Echo:
    def __init__(self, proc, port, ident):
        self.proc = proc
        self.port = port
        self.id = ident
        self.addr = "127.0.0.1:%d" % port

    def stats(self):
        r = request(self.port, "GET", "/stats")
        return json.loads(r.body)


class Sluice:
    def __init__(self, proc, cfg, cfg_path, log_path):
        self.proc = proc
        self.cfg = cfg
        self.cfg_path = cfg_path
        self.log_path = log_path
        self.ports = [int(l["address"].rsplit(":", 1)[1]) for l in cfg.get("listeners", [])]
        self.port = self.ports[0] if self.ports else None

    def write_config(self, cfg_or_text):
        text = cfg_or_text if isinstance(cfg_or_text, str) else json.dumps(cfg_or_text, indent=1)
        tmp = self.cfg_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.cfg_path)

    def log_lines(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []


class Env:
    """Per-test sandbox: temp dir, the processes started, cleanup."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-it-")
        self.procs = []
        self.sluices = []
        self.n = 0

    def _name(self, base):
        self.n += 1
        return "%s%d" % (base, self.n)

    def start(self, argv, name="proc", env=None):
        p = Proc(argv, self.tmp, self._name(name), env=env)
        self.procs.append(p)
        return p

    def echo(self, ident="echo", delay_ms=0):
        """A sluice-echo backend; delay_ms > 0 answers every echo that late."""
        argv = [ECHO, "--port", "0", "--id", ident]
        if delay_ms:
            argv += ["--delay", str(delay_ms)]
        p = self.start(argv, "echo")
        line = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", p.stdout()), 5.0)
        if not line:
            raise TestFailure("sluice-echo %s did not start: %s" % (ident, p.stderr()[-500:]))
        return Echo(p, int(line.group(1)), ident)

    def config(self, routes, upstreams=(), listeners=None, **kw):
        """A config document with test defaults: one worker, one listener on a
        free port, an access log file in the temp dir, a short drain."""
        cfg = {
            "workers": 1,
            "listeners": listeners or [{"name": "http", "address": "127.0.0.1:%d" % free_port()}],
            "access_log": os.path.join(self.tmp, "access.log"),
            "timeouts": {"drain_ms": 3000},
            "upstreams": list(upstreams),
            "routes": list(routes),
        }
        for k, v in kw.items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k] = dict(cfg[k], **v)
            else:
                cfg[k] = v
        return cfg

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text if isinstance(text, str) else json.dumps(text, indent=1))
        return path

    def sluice(self, cfg, wait=True):
        path = self.write(self._name("sluice") + ".json", cfg)
        p = self.start([SLUICE, "--config", path], "sluice")
        s = Sluice(p, cfg, path, cfg.get("access_log"))
        self.sluices.append(s)
        if wait:
            # the admin listener opens on its own thread: a test that asks it
            # at once must not race it (seen once under ASan in CI)
            adm = (cfg.get("admin") or {}).get("address", "")
            wait_ports = list(s.ports)
            if adm.startswith("127.0.0.1:"):
                wait_ports.append(int(adm.rsplit(":", 1)[1]))
            for port in wait_ports:
                if not wait_port(port, 5.0, p):
                    raise TestFailure("sluice did not listen on %d (rc=%s): %s"
                                      % (port, p.poll(), p.stderr()[-800:]))
        return s

    def run(self, argv, timeout=10.0, env=None):
        """Run a short command to completion: (rc, stdout, stderr)."""
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd=self.tmp, env=env)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def cleanup(self):
        """Stop everything; return problems worth failing the test for."""
        problems = []
        for p in reversed(self.procs):
            if p.stopped:
                continue
            was_running = p.alive()
            rc, killed = p.stop(8.0)
            is_sluice = p.argv[0] == SLUICE
            if killed:
                problems.append("%s did not exit within 8 s of SIGTERM" % p.name)
            elif not was_running and is_sluice and rc not in (0,):
                problems.append("%s exited by itself with rc=%s: %s"
                                % (p.name, rc, p.stderr()[-300:].strip()))
            elif was_running and rc != 0:
                problems.append("%s exit code %s after SIGTERM: %s"
                                % (p.name, rc, p.stderr()[-300:].strip()))
        return problems


# ---------------------------------------------------------------- HTTP client

class Response:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []
        self.body = b""
        self.raw = b""
        self.interim = []
        self.chunked = False

    def h(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def hall(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body.decode("latin-1"))

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.raw[:200])


class Closed(Exception):
    pass


class Conn:
    """A raw client connection with a read buffer, for exact-bytes checks.
    With tls (an ssl.SSLContext) the connection is TLS: the handshake is done
    here (within timeout), sni is the server_hostname sent (None = no SNI)
    and session an ssl.SSLSession to resume; self.sock is then the SSLSocket
    (version(), selected_alpn_protocol(), getpeercert(True), session_reused)."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1", tls=None, sni=None, session=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            raw = self.sock
            try:
                self.sock = tls.wrap_socket(raw, server_hostname=sni, session=session)
            except BaseException:
                raw.close()
                raise
        self.buf = bytearray()
        self.timeout = timeout
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self, deadline):
        """Read more into buf; False at EOF (or reset); TestFailure at the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure("timed out reading (have %r)" % bytes(self.buf[:200]))
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TestFailure("timed out reading (have %r)" % bytes(self.buf[:200]))
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_some(self, timeout=1.0):
        """Whatever arrives within timeout (b"" at EOF)."""
        deadline = time.monotonic() + timeout
        if not self.buf:
            try:
                self._fill(deadline)
            except TestFailure:
                pass
        d = bytes(self.buf)
        self.buf.clear()
        return d

    def wait_closed(self, timeout):
        """True if the peer closes within timeout (data read meanwhile is dropped)."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
            return True
        except TestFailure:
            return False

    def read_until(self, token, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(token)
            if i >= 0:
                out = bytes(self.buf[:i + len(token)])
                del self.buf[:i + len(token)]
                return out
            if not self._fill(deadline):
                raise Closed("connection closed before %r (have %r)" % (token, bytes(self.buf[:200])))

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed("connection closed after %d of %d bytes" % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_response(self, head=False, timeout=None, keep_interim=False):
        """One response; interim 1xx responses are collected in .interim
        (or returned themselves when keep_interim)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        interim = []
        while True:
            r = self._read_one(head, deadline)
            if 100 <= r.status < 200 and r.status != 101 and not keep_interim:
                interim.append(r)
                continue
            r.interim = interim
            return r

    def read_head(self, timeout=None):
        """A final response's head only; read its body with body_until()."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            r = self._read_one(True, deadline)
            if not (100 <= r.status < 200 and r.status != 101):
                r.chunked = (r.h("transfer-encoding") or "").lower().endswith("chunked")
                r.decoded = bytearray()
                r.done = False
                return r

    def body_until(self, r, token, timeout=None):
        """Decode r's body as it arrives until the decoded bytes contain
        token (or the body ends, when token is None); returns them all."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if token is not None and r.decoded.find(token) >= 0:
                return bytes(r.decoded)
            if r.done:
                if token is None:
                    return bytes(r.decoded)
                raise TestFailure("body ended without %r (got %r)" % (token, bytes(r.decoded[-200:])))
            progressed = False
            if r.chunked:
                i = self.buf.find(b"\r\n")
                if i >= 0:
                    size = int(bytes(self.buf[:i]).split(b";")[0].strip(), 16)
                    if size == 0:
                        j = self.buf.find(b"\r\n\r\n", i)
                        if j >= 0 or self.buf[i:i + 4] == b"\r\n\r\n":
                            del self.buf[:(j + 4 if j >= 0 else i + 4)]
                            r.done = True
                            progressed = True
                    elif len(self.buf) >= i + 2 + size + 2:
                        r.decoded += self.buf[i + 2:i + 2 + size]
                        del self.buf[:i + 2 + size + 2]
                        progressed = True
            elif self.buf:
                r.decoded += self.buf
                self.buf.clear()
                progressed = True
            if not progressed and not self._fill(deadline):
                if r.chunked or r.h("content-length") is not None:
                    raise Closed("connection closed mid-body (have %r)" % bytes(r.decoded[-200:]))
                r.done = True

    def _read_one(self, head, deadline):
        r = Response()
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if not self._fill(deadline):
                raise Closed("connection closed before a response head (have %r)" % bytes(self.buf[:200]))
        head_bytes = bytes(self.buf[:i + 4])
        del self.buf[:i + 4]
        lines = head_bytes[:-4].decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise TestFailure("bad status line %r" % lines[0])
        r.version, r.status, r.reason = m.group(1), int(m.group(2)), m.group(3) or ""
        for line in lines[1:]:
            k, _, v = line.partition(":")
            r.headers.append((k, v.strip(" \t")))
        raw = [head_bytes]
        if head or r.status in (204, 304) or 100 <= r.status < 200:
            r.body = b""
        elif (r.h("transfer-encoding") or "").lower().endswith("chunked"):
            r.chunked = True
            parts = []
            while True:
                line = self.read_until(b"\r\n", max(0.01, deadline - time.monotonic()))
                raw.append(line)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.read_until(b"\r\n", max(0.01, deadline - time.monotonic()))
                        raw.append(t)
                        if t == b"\r\n":
                            break
                    break
                data = self.read_exact(size + 2, deadline)
                if data[-2:] != b"\r\n":
                    raise TestFailure("bad chunk framing: %r" % data[-10:])
                raw.append(data)
                parts.append(data[:-2])
            r.body = b"".join(parts)
        elif r.h("content-length") is not None:
            r.body = self.read_exact(int(r.h("content-length")), deadline)
            raw.append(r.body)
        else:
            while self._fill(deadline):
                pass
            r.body = bytes(self.buf)
            self.buf.clear()
            raw.append(r.body)
        r.raw = b"".join(raw)
        return r


def build_request(method="GET", path="/", host="example.com", headers=(), body=None,
                  version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    names = set()
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
        names.add(k.lower())
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode("latin-1")
    return data


def request(port, method="GET", path="/", host="example.com", headers=(), body=None,
            version="HTTP/1.1", timeout=5.0, tls=None, sni=None):
    """One request on a new connection (TLS with tls, see Conn); returns the Response."""
    with Conn(port, timeout, tls=tls, sni=sni) as c:
        c.send(build_request(method, path, host, headers, body, version))
        return c.read_response(head=(method == "HEAD"), timeout=timeout)


def get(port, path="/", host="example.com", headers=(), timeout=5.0, tls=None, sni=None):
    return request(port, "GET", path, host, headers, None, timeout=timeout, tls=tls, sni=sni)


def upstream_headers(resp):
    """The headers the echo backend received, as a list of (name, value)."""
    return [(k, v) for k, v in resp.json()["headers"]]


def uh(resp, name):
    """All values of header name as the echo backend received them."""
    name = name.lower()
    return [v for k, v in upstream_headers(resp) if k.lower() == name]


# ---------------------------------------------------------------- a real browser

def browser(env, *extra_args):
    """Headless Debian Chromium driven by Selenium (python3-selenium,
    chromium-driver), its profile and driver log in env's temp dir; the
    caller quits it."""
    import shutil
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise TestFailure("python3-selenium is not installed (make deps installs it)")
    chrome = shutil.which("chromium")
    driver_bin = shutil.which("chromedriver")
    check(chrome and driver_bin, "chromium and chromedriver are installed (make deps)")
    opts = Options()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--user-data-dir=" + env.tmp + "/chrome") + extra_args:
        opts.add_argument(arg)
    service = Service(driver_bin, log_output=os.path.join(env.tmp, "chromedriver.log"))
    return webdriver.Chrome(service=service, options=opts)
