"""Test certificates, made at test time with the openssl command line tool.

make(env) writes into env.tmp/certs/ a test CA and leaf certificates signed
by it (plus one self-signed certificate) and returns a Pki whose entries
know their file names, their DER bytes and how to appear in a config.  Keys
are generated once per test process (RSA key generation is the slow part)
and the files are written again into each test's temp dir, so a test never
depends on another test's files.

Leaves (serials are distinct, so every certificate is told apart by its DER):
  default     RSA    DNS:default.example.test, DNS:localhost, IP:127.0.0.1
  default2    RSA    the same names as default (a replacement for reloads)
  multi_rsa   RSA    DNS:a.example.test, DNS:*.wild.example.test
  multi_ec    ECDSA  P-256, the same names as multi_rsa
  exact       RSA    DNS:x.wild.example.test (an exact name under the wildcard)
  self        RSA    self-signed, DNS:localhost, IP:127.0.0.1
  chained     ECDSA  DNS:chain.example.test, signed by an intermediate CA (signed
                     by the test CA); chained.pem holds the leaf then the
                     intermediate, chained_leaf.pem the leaf alone
  client      RSA    CN=sluice-k8s, extendedKeyUsage clientAuth (a client certificate)
"""
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile

LEAVES = [
    # name, key type, serial, subjectAltName
    ("default", "rsa", 1001, "DNS:default.example.test,DNS:localhost,IP:127.0.0.1"),
    ("default2", "rsa", 1002, "DNS:default.example.test,DNS:localhost,IP:127.0.0.1"),
    ("multi_rsa", "rsa", 1003, "DNS:a.example.test,DNS:*.wild.example.test"),
    ("multi_ec", "ec", 1004, "DNS:a.example.test,DNS:*.wild.example.test"),
    ("exact", "rsa", 1005, "DNS:x.wild.example.test"),
]

_files = None  # file name -> bytes, made by the first make() of the process


class Cert:
    def __init__(self, name, cert_file, key_file, leaf_file=None):
        self.name = name
        self.cert_file = cert_file
        self.key_file = key_file
        with open(cert_file) as f:
            self.pem = f.read()
        with open(key_file) as f:
            self.key_pem = f.read()
        with open(leaf_file or cert_file) as f:
            self.der = ssl.PEM_cert_to_DER_cert(f.read())
        self.fp = hashlib.sha256(self.der).hexdigest()

    def cfg(self):
        """This certificate as a listener's tls.certificates[] entry."""
        return {"cert_file": self.cert_file, "key_file": self.key_file}

    def cfg_pem(self):
        return {"cert_pem": self.pem, "key_pem": self.key_pem}

    def __repr__(self):
        return "<Cert %s>" % self.name


class Pki:
    def __init__(self, d):
        self.dir = d
        self.ca_file = os.path.join(d, "ca.pem")
        self.certs = {}
        for name, _, _, _ in LEAVES + [("self", None, None, None)]:
            self.certs[name] = Cert(name, os.path.join(d, name + ".pem"),
                                    os.path.join(d, name + ".key"))
        self.certs["client"] = Cert("client", os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
        self.certs["chained"] = Cert("chained", os.path.join(d, "chained.pem"),
                                     os.path.join(d, "chained.key"),
                                     os.path.join(d, "chained_leaf.pem"))

    def __getitem__(self, name):
        return self.certs[name]

    def name_of(self, der):
        """The name of the certificate whose DER is der (for messages)."""
        for c in self.certs.values():
            if c.der == der:
                return c.name
        return "unknown certificate (sha256 %s)" % hashlib.sha256(der or b"").hexdigest()[:16]


def _openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), p.stderr.decode()[-500:]))


def _genkey(kind, out, cwd):
    if kind == "ec":
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", out], cwd)
    else:
        _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                  "-out", out], cwd)


def _generate(d):
    _genkey("rsa", "ca.key", d)
    _openssl(["req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "3650",
              "-subj", "/CN=sluice test CA", "-set_serial", "1",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    for name, kind, serial, san in LEAVES:
        _genkey(kind, name + ".key", d)
        _openssl(["req", "-new", "-key", name + ".key", "-out", name + ".csr",
                  "-subj", "/CN=" + name], d)
        usage = "digitalSignature" if kind == "ec" else "digitalSignature,keyEncipherment"
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,%s\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n"
                    "subjectAltName=%s\n" % (usage, san))
        _openssl(["x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-set_serial", str(serial), "-days", "3650", "-sha256",
                  "-extfile", name + ".ext", "-out", name + ".pem"], d)
    # an intermediate CA and a leaf under it, served with its chain
    _genkey("ec", "inter.key", d)
    _openssl(["req", "-new", "-key", "inter.key", "-out", "inter.csr",
              "-subj", "/CN=sluice test intermediate"], d)
    with open(os.path.join(d, "inter.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                "keyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl(["x509", "-req", "-in", "inter.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-set_serial", "2", "-days", "3650", "-sha256", "-extfile", "inter.ext",
              "-out", "inter.pem"], d)
    _genkey("ec", "chained.key", d)
    _openssl(["req", "-new", "-key", "chained.key", "-out", "chained.csr",
              "-subj", "/CN=chained"], d)
    with open(os.path.join(d, "chained.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid\nsubjectAltName=DNS:chain.example.test\n")
    _openssl(["x509", "-req", "-in", "chained.csr", "-CA", "inter.pem", "-CAkey", "inter.key",
              "-set_serial", "1007", "-days", "3650", "-sha256", "-extfile", "chained.ext",
              "-out", "chained_leaf.pem"], d)
    with open(os.path.join(d, "chained.pem"), "w") as out:
        for fn in ("chained_leaf.pem", "inter.pem"):
            with open(os.path.join(d, fn)) as f:
                out.write(f.read())
    _genkey("rsa", "client.key", d)
    _openssl(["req", "-new", "-key", "client.key", "-out", "client.csr", "-subj", "/CN=sluice-k8s"], d)
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    _openssl(["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-set_serial", "1008", "-days", "3650", "-sha256", "-extfile", "client.ext",
              "-out", "client.pem"], d)
    _genkey("rsa", "self.key", d)
    _openssl(["req", "-x509", "-new", "-key", "self.key", "-out", "self.pem", "-days", "3650",
              "-subj", "/CN=self", "-set_serial", "1006",
              "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], d)


def make(env):
    """The test PKI, written into env.tmp/certs/."""
    global _files
    if _files is None:
        work = tempfile.mkdtemp(prefix="sluice-certs-")
        try:
            _generate(work)
            files = {}
            for fn in os.listdir(work):
                if fn.endswith((".pem", ".key")):
                    with open(os.path.join(work, fn), "rb") as f:
                        files[fn] = f.read()
            _files = files
        finally:
            shutil.rmtree(work, ignore_errors=True)
    d = os.path.join(env.tmp, "certs")
    os.makedirs(d, exist_ok=True)
    for fn, data in _files.items():
        with open(os.path.join(d, fn), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(d, fn), 0o600 if fn.endswith(".key") else 0o644)
    return Pki(d)
