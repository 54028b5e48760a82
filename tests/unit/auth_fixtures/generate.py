#!/usr/bin/python3
"""Fixtures for tests/unit/test_auth_jwt.cpp and tests/fuzz/fuzz_token.cpp:
tokens minted by an independent implementation (Debian's python3-jwt), so
kws's verifier is checked against someone else's reading of RFC 7515/7518,
not against itself.

    tests/unit/auth_fixtures/generate.py             # new tokens, same keys
    tests/unit/auth_fixtures/generate.py --new-keys  # new keys (openssl) too

Writes, next to this script: the keys (*.pem, made by `openssl`; the private
halves are test keys, used for nothing else), secret.txt, jwks.json,
jwks_single.json and tokens.json ({name: token}). Tokens expire in 2100 (or
at fixed dates for the expiry tests): the tests pass `now` explicitly, so
nothing here goes stale. ES and PS signatures are randomised, so a rerun
changes tokens.json even with the same keys.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

HERE = os.path.dirname(os.path.abspath(__file__))
ISSUER = "https://issuer.example"
AUDIENCE = "kws-gateway"
ACL = {"read": ["orders", "prices.*"], "write": ["clicks"], "groups": ["dash-*"]}
YEAR_2100 = 4102444800


def path(name):
    return os.path.join(HERE, name)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def new_keys():
    for name, args in [
        ("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        ("rsa2", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        ("rsa1024", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]),
        ("ec256", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        ("ec384", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        ("ec521", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]),
    ]:
        openssl("genpkey", *args, "-out", path(name + ".pem"))
        openssl("pkey", "-in", path(name + ".pem"), "-pubout", "-out", path(name + ".pub.pem"))
    # 64 random bytes as hex, with the trailing newline an editor or `echo`
    # leaves, which the verifier trims.
    with open(path("secret.txt"), "w") as f:
        f.write(os.urandom(64).hex() + "\n")
    with open(path("short_secret.txt"), "w") as f:
        f.write("too-short\n")


def read(name):
    with open(path(name), "rb") as f:
        return f.read()


def private(name):
    return serialization.load_pem_private_key(read(name + ".pem"), password=None)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_int(value, size=None):
    size = size or (value.bit_length() + 7) // 8
    return b64(value.to_bytes(size, "big"))


def jwk(name, **extra):
    numbers = private(name).public_key().public_numbers()
    if hasattr(numbers, "n"):
        key = {"kty": "RSA", "n": b64_int(numbers.n), "e": b64_int(numbers.e)}
    else:
        size = (numbers.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384"}[numbers.curve.key_size]
        key = {"kty": "EC", "crv": crv, "x": b64_int(numbers.x, size), "y": b64_int(numbers.y, size)}
    key.update(extra)
    return key


def manual(header, payload, key=None):
    """A token put together by hand, for what PyJWT will not make: alg none
    spelled otherwise, an HMAC keyed with a public key, payloads that are not
    JSON objects."""
    signing_input = b64(header.encode()) + "." + b64(payload.encode())
    signature = b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()) if key else ""
    return signing_input + "." + signature


def main():
    if "--new-keys" in sys.argv:
        new_keys()
    secret = read("secret.txt").rstrip(b"\n")
    rsa, rsa2, ec256, ec384 = (private(n) for n in ("rsa", "rsa2", "ec256", "ec384"))

    jwks = {"keys": [
        jwk("rsa", kid="rsa-1", alg="RS256", use="sig"),
        jwk("rsa2", kid="rsa-2"),
        jwk("ec256", kid="ec-1", alg="ES256"),
        jwk("ec384", kid="ec-2"),
        jwk("rsa", kid="enc-1", use="enc"),
        {"kty": "OKP", "crv": "Ed25519", "kid": "okp-1", "x": b64(bytes(32))},
    ]}
    with open(path("jwks.json"), "w") as f:
        json.dump(jwks, f, indent=1)
    with open(path("jwks_single.json"), "w") as f:
        json.dump({"keys": [jwk("rsa2")]}, f, indent=1)

    def claims(**changes):
        c = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": YEAR_2100, "kws": ACL}
        c.update(changes)
        return {k: v for k, v in c.items() if v is not None}

    def sign(key, alg, kid=None, headers=None, **changes):
        h = dict(headers or {})
        if kid is not None:
            h["kid"] = kid
        return jwt.encode(claims(**changes), key, algorithm=alg, headers=h or None)

    def tampered(token):
        header, _, signature = token.split(".")
        return header + "." + b64(json.dumps(claims(sub="mallory")).encode()) + "." + signature

    t = {}
    for alg in ("HS256", "HS384", "HS512"):
        t[alg.lower()] = sign(secret, alg)
    for alg in ("RS256", "RS384", "RS512", "PS256"):
        t[alg.lower()] = sign(rsa, alg)
    t["es256"] = sign(ec256, "ES256")
    t["es384"] = sign(ec384, "ES384")

    t["jwks_rs256_rsa1"] = sign(rsa, "RS256", kid="rsa-1")
    t["jwks_ps256_rsa1"] = sign(rsa, "PS256", kid="rsa-1")  # the JWK says RS256
    t["jwks_ps256_rsa2"] = sign(rsa2, "PS256", kid="rsa-2")
    t["jwks_es256"] = sign(ec256, "ES256", kid="ec-1")
    t["jwks_es384"] = sign(ec384, "ES384", kid="ec-2")
    t["jwks_unknown_kid"] = sign(rsa, "RS256", kid="who\nare-you")
    t["jwks_enc_kid"] = sign(rsa, "RS256", kid="enc-1")
    t["jwks_okp_kid"] = sign(rsa, "RS256", kid="okp-1")
    t["jwks_no_kid"] = sign(rsa2, "RS256")
    t["jwks_wrong_key"] = sign(rsa, "RS256", kid="rsa-2")

    # Key confusion: HS256 keyed with the RSA public key's PEM, what a
    # verifier that trusts the header's alg would accept.
    t["hs256_keyed_with_rsa_pub"] = manual('{"alg":"HS256","typ":"JWT"}', json.dumps(claims()), read("rsa.pub.pem"))
    t["none_empty_signature"] = manual('{"alg":"none"}', json.dumps(claims()))
    t["none_with_signature"] = manual('{"alg":"none"}', json.dumps(claims()), secret)
    t["none_capitalised"] = manual('{"alg":"None"}', json.dumps(claims()))
    t["alg_unknown"] = manual('{"alg":"HS1"}', json.dumps(claims()), secret)
    t["alg_missing"] = manual('{"typ":"JWT"}', json.dumps(claims()), secret)
    t["header_not_json"] = manual('{"alg":"HS256"', json.dumps(claims()), secret)
    t["payload_not_json"] = manual('{"alg":"HS256"}', "not json", secret)
    t["payload_array"] = manual('{"alg":"HS256"}', "[1,2]", secret)
    t["crit_header"] = sign(secret, "HS256", headers={"crit": ["exp"]})
    t["typ_at_jwt"] = sign(secret, "HS256", headers={"typ": "at+jwt"})
    t["rs256_typ_at_jwt"] = sign(rsa, "RS256", headers={"typ": "at+jwt"})

    # Signatures of the right key in a form JWS does not allow: ECDSA as DER
    # (JWS wants R and S side by side), PSS with the longest salt (JWS wants
    # the hash's length).
    def signed_by(alg, sign_bytes):
        signing_input = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims()).encode())
        return signing_input + "." + b64(sign_bytes(signing_input.encode()))
    t["es256_der_signature"] = signed_by("ES256", lambda m: ec256.sign(m, ec.ECDSA(hashes.SHA256())))
    t["ps256_max_salt"] = signed_by("PS256", lambda m: rsa.sign(
        m, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256()))
    t["ps256_digest_salt"] = signed_by("PS256", lambda m: rsa.sign(
        m, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()))

    t["rs256_tampered"] = tampered(t["rs256"])
    t["es256_tampered"] = tampered(t["es256"])
    t["ps256_tampered"] = tampered(t["ps256"])
    t["hs256_other_secret"] = sign(b"another secret of at least thirty-two bytes", "HS256")

    t["exp_2033"] = sign(secret, "HS256", exp=2000000000)
    t["nbf_2030"] = sign(secret, "HS256", nbf=1900000000)
    t["no_exp"] = sign(secret, "HS256", exp=None)
    t["exp_string"] = manual('{"alg":"HS256"}', json.dumps(claims(exp="soon")), secret)
    t["wrong_issuer"] = sign(secret, "HS256", iss="https://evil.example")
    t["no_issuer"] = sign(secret, "HS256", iss=None)
    t["wrong_audience"] = sign(secret, "HS256", aud="someone-else")
    t["no_audience"] = sign(secret, "HS256", aud=None)
    t["audience_list_with"] = sign(secret, "HS256", aud=["other", AUDIENCE])
    t["audience_list_without"] = sign(secret, "HS256", aud=["other", "more"])
    t["no_claim"] = sign(secret, "HS256", kws=None)
    t["claim_not_lists"] = sign(secret, "HS256", kws={"read": "orders"})
    t["claim_unknown_key"] = sign(secret, "HS256", kws={"raed": ["orders"]})
    t["claim_named_acl"] = sign(secret, "HS256", kws=None, acl={"read": ["audit"]})
    t["no_sub"] = sign(secret, "HS256", sub=None)
    t["sub_number"] = manual('{"alg":"HS256"}', json.dumps(claims(sub=7)), secret)

    with open(path("tokens.json"), "w") as f:
        json.dump(t, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
