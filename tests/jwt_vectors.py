#!/usr/bin/python3
"""JWT test vectors for auth.jwt, made by an implementation independent of
sluice: Debian's python3-jwt (PyJWT) and python3-cryptography (tests/deps.sh).

    jwt_vectors.py OUTDIR [--now SECONDS]

writes into OUTDIR:
  jwks.json        RSA-2048 "rsa1", P-256 "ec1", Ed25519 "ed1", oct "hs1"
  jwks_ec.json     "ec1" and "ed1" only
  tokens.tsv       name, expected result, expected sub, expected claim
                   headers ("|" between lines, "*" = not checked), token
  jwks_cases.tsv   name, algorithms (comma-separated), file, a part of the
                   error expected when the file is loaded ("" = loads)

Times are relative to --now (default: the clock), so tests/unit/jwt_test.c
passes the same now to the verifier.  tests/integration/test_16_policy_jwt.py
imports this module to mint tokens on the fly.  Fresh keys every run.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

import jwt  # PyJWT
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISSUER = "https://issuer.test"
AUDIENCES = ["api", "other"]
SKEW = 60
CLAIMS_TO_HEADERS = {"sub": "x-user", "email": "x-email", "tier": "x-tier"}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """A fresh key of each kind, and the JWKS that publishes them."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # an x with a leading zero byte, which PyJWT 2.6 writes 31 bytes
        # long (1 key in 256 otherwise): every run checks the widening
        self.ec = ec.generate_private_key(ec.SECP256R1())
        while self.ec.public_key().public_numbers().x >> 248:
            self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.hs = os.urandom(32)
        self.other_ec = ec.generate_private_key(ec.SECP256R1())

    @staticmethod
    def jwk(alg_cls, key, kid, **extra):
        d = json.loads(alg_cls.to_jwk(key))
        d["kid"] = kid
        d.update(extra)
        return d

    def jwks(self, which=("rsa1", "ec1", "ed1", "hs1")):
        all_ = {
            "rsa1": lambda: self.jwk(RSAAlgorithm, self.rsa.public_key(), "rsa1", use="sig"),
            "ec1": lambda: self.jwk(ECAlgorithm, self.ec.public_key(), "ec1", alg="ES256"),
            "ed1": lambda: self.jwk(OKPAlgorithm, self.ed.public_key(), "ed1"),
            "hs1": lambda: self.jwk(HMACAlgorithm, self.hs, "hs1"),
        }
        return {"keys": [all_[k]() for k in which]}

    def signer(self, kid):
        return {"rsa1": (self.rsa, "RS256"), "ec1": (self.ec, "ES256"),
                "ed1": (self.ed, "EdDSA"), "hs1": (self.hs, "HS256")}[kid]

    def token(self, claims, kid="rsa1", alg=None, key=None, headers=None):
        k, a = self.signer(kid) if kid in ("rsa1", "ec1", "ed1", "hs1") else (None, None)
        h = {"kid": kid} if kid is not None else {}
        h.update(headers or {})
        return jwt.encode(claims, key if key is not None else k, algorithm=alg or a, headers=h)

    def rsa_pem(self):
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(now, **over):
    c = {"sub": "alice", "iss": ISSUER, "aud": "api", "exp": now + 3600, "nbf": now - 10,
         "iat": now - 10, "email": "alice@example.test", "tier": 3}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def hs_raw(header_json, payload_json, secret):
    """A token from exact JSON texts, HMAC-SHA256 by hand (for what PyJWT
    will not write: repeated members, an RSA key as an HMAC secret)."""
    si = b64(header_json.encode()) + "." + b64(payload_json.encode())
    return si + "." + b64(hmac.new(secret, si.encode(), hashlib.sha256).digest())


def flip(tok, part, pos=None):
    """tok with one character of part (0..2) changed (mid-part: keeps the
    base64url canonical)."""
    parts = tok.split(".")
    s = parts[part]
    i = len(s) // 2 if pos is None else pos
    parts[part] = s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    return ".".join(parts)


def token_cases(k, now):
    """(name, expected, sub, headers, token): expected is an enum jwt_err
    name without JWT_E_ ("OK" for JWT_OK)."""
    good_hdrs = "x-user: alice|x-email: alice@example.test|x-tier: 3"
    c = claims(now)
    t = []
    for kid in ("rsa1", "ec1", "ed1", "hs1"):
        t.append((f"good_{k.signer(kid)[1]}", "OK", "alice", good_hdrs, k.token(c, kid)))
    rs = k.token(c, "rsa1")
    t += [
        ("aud_array", "OK", "alice", "*", k.token(claims(now, aud=["x", "other"]), "ec1")),
        ("no_exp", "OK", "alice", "*", k.token(claims(now, exp=None), "ed1")),
        ("no_nbf", "OK", "alice", "*", k.token(claims(now, nbf=None), "ed1")),
        ("float_times", "OK", "alice", "*", k.token(claims(now, exp=now + 0.5, nbf=now - 0.5), "ed1")),
        ("bad_sig_rs256", "SIGNATURE", "-", "*", flip(rs, 2)),
        ("bad_sig_es256_other_key", "SIGNATURE", "-", "*",
         k.token(c, "ec1", key=k.other_ec)),
        ("bad_sig_eddsa", "SIGNATURE", "-", "*", flip(k.token(c, "ed1"), 2)),
        ("bad_sig_hs256", "SIGNATURE", "-", "*", k.token(c, "hs1", key=os.urandom(32))),
        ("payload_swapped", "SIGNATURE", "-", "*",
         ".".join([rs.split(".")[0], k.token(claims(now, sub="mallory"), "rsa1").split(".")[1],
                   rs.split(".")[2]])),
        ("expired", "EXPIRED", "-", "*", k.token(claims(now, exp=now - SKEW - 1), "ec1")),
        ("exp_at_skew_edge", "EXPIRED", "-", "*", k.token(claims(now, exp=now - SKEW), "ec1")),
        ("exp_within_skew", "OK", "alice", "*", k.token(claims(now, exp=now - SKEW + 1), "ec1")),
        ("nbf_future", "NOT_YET", "-", "*", k.token(claims(now, nbf=now + SKEW + 1), "ec1")),
        ("nbf_within_skew", "OK", "alice", "*", k.token(claims(now, nbf=now + SKEW), "ec1")),
        ("wrong_iss", "ISSUER", "-", "*", k.token(claims(now, iss="https://evil.test"), "rsa1")),
        ("no_iss", "ISSUER", "-", "*", k.token(claims(now, iss=None), "rsa1")),
        ("wrong_aud", "AUDIENCE", "-", "*", k.token(claims(now, aud="billing"), "rsa1")),
        ("wrong_aud_array", "AUDIENCE", "-", "*", k.token(claims(now, aud=["a", "b"]), "rsa1")),
        ("no_aud", "AUDIENCE", "-", "*", k.token(claims(now, aud=None), "rsa1")),
        ("unknown_kid", "KID", "-", "*", k.token(c, "rsa9", alg="RS256", key=k.rsa)),
        ("no_kid", "KID", "-", "*", k.token(c, None, alg="RS256", key=k.rsa)),
        ("alg_none", "ALG", "-", "*",
         b64(b'{"alg":"none","kid":"rsa1"}') + "." + rs.split(".")[1] + "."),
        ("alg_none_with_sig", "ALG", "-", "*",
         b64(b'{"alg":"none","kid":"rsa1"}') + "." + rs.split(".")[1] + "." + rs.split(".")[2]),
        ("alg_NONE", "ALG", "-", "*",
         b64(b'{"alg":"NONE","kid":"rsa1"}') + "." + rs.split(".")[1] + "."),
        ("alg_rs384", "ALG", "-", "*", k.token(c, "rsa1", alg="RS384")),
        # the key confusion attack: the RSA public key's bytes as an HMAC secret
        ("hs256_rsa_pem_secret", "ALG", "-", "*",
         hs_raw('{"alg":"HS256","kid":"rsa1","typ":"JWT"}', json.dumps(c), k.rsa_pem())),
        ("hs256_rsa_der_secret", "ALG", "-", "*",
         hs_raw('{"alg":"HS256","kid":"rsa1"}', json.dumps(c),
                k.rsa.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))),
        ("es256_token_rsa_kid", "ALG", "-", "*", k.token(c, "rsa1", alg="ES256", key=k.ec)),
        ("rs256_token_hs_kid", "ALG", "-", "*", k.token(c, "hs1", alg="RS256", key=k.rsa)),
        ("no_sub", "SUBJECT", "-", "*", k.token(claims(now, sub=None), "ec1")),
        ("sub_not_string", "SUBJECT", "-", "*", k.token(claims(now, sub=42), "ec1")),
        ("sub_newline", "SUBJECT", "-", "*", k.token(claims(now, sub="al\nice"), "ec1")),
        ("sub_129", "SUBJECT", "-", "*", k.token(claims(now, sub="s" * 129), "ec1")),
        ("sub_128", "OK", "s" * 128, "*", k.token(claims(now, sub="s" * 128), "ec1")),
        ("claim_crlf_dropped", "OK", "alice", "x-user: alice|x-tier: 3",
         k.token(claims(now, email="a@b\r\nx-evil: 1"), "ec1")),
        ("claim_long_dropped", "OK", "alice", "x-user: alice|x-email: " + "e" * 256,
         k.token(claims(now, email="e" * 256, tier={"no": 1}), "ec1")),
        ("claim_257_dropped", "OK", "alice", "x-user: alice|x-tier: 2.5",
         k.token(claims(now, email="e" * 257, tier=2.5), "ec1")),
        ("dup_sub", "FORMAT", "-", "*",
         hs_raw('{"alg":"HS256","kid":"hs1"}',
                '{"sub":"alice","iss":"%s","aud":"api","sub":"root"}' % ISSUER, k.hs)),
        ("dup_alg", "FORMAT", "-", "*",
         hs_raw('{"alg":"HS256","kid":"hs1","alg":"none"}', json.dumps(c), k.hs)),
        ("crit", "FORMAT", "-", "*", k.token(c, "hs1", headers={"crit": ["exp"]})),
        ("header_trailing_garbage", "FORMAT", "-", "*",
         hs_raw('{"alg":"HS256","kid":"hs1"}x', json.dumps(c), k.hs)),
        ("claims_trailing_object", "FORMAT", "-", "*",
         hs_raw('{"alg":"HS256","kid":"hs1"}', json.dumps(c) + '{"sub":"root"}', k.hs)),
        ("claims_trailing_space", "OK", "alice", "*",
         hs_raw('{"alg":"HS256","kid":"hs1"} ', json.dumps(c) + " \n", k.hs)),
        ("sub_nul_escape", "FORMAT", "-", "*",
         hs_raw('{"alg":"HS256","kid":"hs1"}', json.dumps(dict(c, sub="alice\u0000admin")), k.hs)),
        ("claims_raw_control", "FORMAT", "-", "*",
         hs_raw('{"alg":"HS256","kid":"hs1"}', json.dumps(c)[:-1] + ',"x":"a\x01b"}', k.hs)),
        ("exp_string", "FORMAT", "-", "*", k.token(claims(now, exp=str(now + 60)), "hs1")),
        ("claims_array", "FORMAT", "-", "*", hs_raw('{"alg":"HS256","kid":"hs1"}', "[1,2]", k.hs)),
        ("claims_not_json", "FORMAT", "-", "*", hs_raw('{"alg":"HS256","kid":"hs1"}', "{sub", k.hs)),
        ("header_not_json", "FORMAT", "-", "*", b64(b"nope") + "." + rs.split(".", 1)[1]),
        ("header_padded", "FORMAT", "-", "*",
         base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"rsa1"}').decode() + "=." + rs.split(".", 1)[1]),
        ("std_alphabet_sig", "FORMAT", "-", "*",
         rs.rsplit(".", 1)[0] + "." + base64.b64encode(
             base64.urlsafe_b64decode(rs.rsplit(".", 1)[1] + "==")).decode().rstrip("=") + "+/"),
        ("two_parts", "FORMAT", "-", "*", rs.rsplit(".", 1)[0]),
        ("four_parts", "FORMAT", "-", "*", rs + ".x"),
        ("empty_sig", "FORMAT", "-", "*", rs.rsplit(".", 1)[0] + "."),
        ("empty", "FORMAT", "-", "*", ""),
        ("whitespace", "FORMAT", "-", "*", rs[:20] + " " + rs[20:]),
        ("too_long", "TOO_LONG", "-", "*", k.token(claims(now, pad="x" * 9000), "hs1")),
    ]
    # a token just under the limit is fine
    pad = 5800
    while True:
        big = k.token(claims(now, pad="x" * pad), "hs1")
        if len(big) <= 8192:
            break
        pad -= 50
    t.append(("near_limit", "OK", "alice", "*", big))
    # one bad trailing-bit spelling of a good signature: same bytes, other text
    es = k.token(c, "ec1")
    last = es[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    i = alphabet.index(last)
    # a 64-byte signature is 86 characters: the last holds 2 bits, 4 unused
    t.append(("sig_noncanonical", "FORMAT", "-", "*", es[:-1] + alphabet[i | 1 if not i & 1 else i & ~1]))
    return t


def jwks_cases(k, outdir):
    """(name, algorithms, file, expected error part)."""
    cases = []

    def put(name, doc, algs, expect):
        p = os.path.join(outdir, f"jwks_{name}.json")
        with open(p, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        cases.append((name, algs, p, expect))

    good = k.jwks()
    rsa_j = good["keys"][0]
    ec_j = good["keys"][1]
    ed_j = good["keys"][2]
    hs_j = good["keys"][3]
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    priv = json.loads(RSAAlgorithm.to_jwk(k.rsa))
    priv["kid"] = "p"
    p384 = k.jwk(ECAlgorithm, ec.generate_private_key(ec.SECP384R1()).public_key(), "p384")
    off_curve = dict(ec_j, y=b64(bytes(31) + b"\x05"))

    put("good", good, "RS256,ES256,EdDSA,HS256", "")
    put("rsa_1024", {"keys": [k.jwk(RSAAlgorithm, weak.public_key(), "w")]}, "RS256",
        "/keys/0/n: an RSA modulus of 1024 bits")
    put("private", {"keys": [priv]}, "RS256", "/keys/0/d: a private key part")
    put("hs_short", {"keys": [dict(hs_j, k=b64(b"0123456789abcdef"))]}, "HS256",
        "/keys/0/k: an HS256 key must be at least 32 bytes")
    put("hs_key_rs_only", {"keys": [rsa_j, hs_j]}, "RS256",
        "/keys/1: kty oct verifies HS256, which is not in algorithms")
    put("rsa_alg_hs256", {"keys": [dict(rsa_j, alg="HS256")]}, "RS256,HS256",
        "/keys/0/alg: kty RSA verifies RS256 only")
    put("dup_kid", {"keys": [ec_j, dict(ed_j, kid="ec1")]}, "ES256,EdDSA",
        "/keys/1/kid: \"ec1\" names an earlier key too")
    put("no_kid", {"keys": [{x: v for x, v in ed_j.items() if x != "kid"}]}, "EdDSA",
        "/keys/0/kid: is required")
    put("off_curve", {"keys": [off_curve]}, "ES256", "/keys/0: x, y is not a point of P-256")
    put("p384", {"keys": [p384]}, "ES256", "/keys/0/crv: \"P-384\" is not supported")
    put("padded", {"keys": [dict(rsa_j, e="AQAB=")]}, "RS256",
        "/keys/0/e: must be non-empty base64url without padding")
    put("use_enc", {"keys": [dict(ec_j, use="enc")]}, "ES256", "/keys/0/use: must be \"sig\"")
    put("third_bad", {"keys": [rsa_j, ec_j, dict(ed_j, x=b64(b"short"))]}, "RS256,ES256,EdDSA",
        "/keys/2/x: must be 32 bytes")
    full = ec.generate_private_key(ec.SECP256R1())
    while not full.public_key().public_numbers().x >> 248:
        full = ec.generate_private_key(ec.SECP256R1())
    put("ec_full_width", {"keys": [k.jwk(ECAlgorithm, full.public_key(), "f")]}, "ES256", "")
    put("ec_y_33", {"keys": [dict(ec_j, y=b64(bytes(1) + base64.urlsafe_b64decode(ec_j["y"] + "==")))]},
        "ES256", "/keys/0/y: longer than 32 bytes")
    put("kty_unknown", {"keys": [dict(ec_j, kty="XYZ")]}, "ES256", "/keys/0/kty: \"XYZ\" is not supported")
    put("not_json", "{\"keys\": [", "RS256", "not a JSON object")
    put("no_keys", {"other": []}, "RS256", "/keys: is required")
    put("empty_keys", {"keys": []}, "RS256", "/keys: must be a non-empty array")
    cases.append(("missing", "RS256", os.path.join(outdir, "no-such-file.json"), "cannot open"))
    return cases


def main():
    outdir = sys.argv[1]
    now = int(time.time())
    if "--now" in sys.argv:
        now = int(sys.argv[sys.argv.index("--now") + 1])
    os.makedirs(outdir, exist_ok=True)
    k = Keys()
    with open(os.path.join(outdir, "jwks.json"), "w") as f:
        json.dump(k.jwks(), f)
    with open(os.path.join(outdir, "jwks_ec.json"), "w") as f:
        json.dump(k.jwks(("ec1", "ed1")), f)
    with open(os.path.join(outdir, "tokens.tsv"), "w") as f:
        for row in token_cases(k, now):
            assert all("\t" not in x and "\n" not in x for x in row), row[0]
            f.write("\t".join(row) + "\n")
    with open(os.path.join(outdir, "jwks_cases.tsv"), "w") as f:
        for row in jwks_cases(k, outdir):
            f.write("\t".join(row) + "\n")


if __name__ == "__main__":
    main()
