"""kws serve as a gateway (docs/SECURITY.md): JWT verification with tokens
minted by an independent library (Debian's python3-jwt), the three places a
token comes from, per-topic ACLs from a claim at every door a topic enters
by, expiry and refresh, the demo page and /metrics behind the token, a
metrics listener without it, the refusal to serve a non-loopback address
unprotected, client certificates (mTLS), and SIGHUP reloading certificates
and keys under load without dropping a session."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import kwstest
import test_serve as serve_tests

try:
    import websockets
except ImportError:  # reported by main() as a loud skip
    websockets = None
try:
    import jwt
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm
except ImportError:  # reported by main() as a loud skip
    jwt = None

STEP = serve_tests.STEP
run = serve_tests.run
recv_until = serve_tests.recv_until
is_type = serve_tests.is_type

SECRET = b"kws test secret: at least 32 bytes long for HS256"
FAR = 4102444800  # 2100-01-01


def claims(read=(), write=(), groups=None, **extra):
    acl = {"read": list(read), "write": list(write)}
    if groups is not None:
        acl["groups"] = list(groups)
    doc = {"sub": "alice", "exp": FAR, "kws": acl}
    doc.update(extra)
    return {k: v for k, v in doc.items() if v is not None}


def hs(payload, secret=SECRET, algorithm="HS256", headers=None):
    return jwt.encode(payload, secret, algorithm=algorithm, headers=headers)


def forged_hs256(payload, secret):
    """An HS256 token signed with any bytes as the secret: what an attacker
    makes of a server's public key (python3-jwt refuses to)."""
    def part(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(json.dumps(payload).encode())
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + part(signature)).decode()


def openssl(directory, *args):
    subprocess.run(["openssl"] + list(args), check=True, cwd=directory,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class AuthTestCase(serve_tests.ServeTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = kwstest.scratch_dir()
        cls.secret_file = os.path.join(cls.dir, "secret")
        with open(cls.secret_file, "wb") as f:
            f.write(SECRET + b"\n")  # one trailing newline is trimmed, as `echo` leaves it

    def serve_hs(self, *args, **kwargs):
        return self.serve("--jwt-secret-file", self.secret_file, *args, **kwargs)

    def get(self, bg, path, token=None, address=None, context=None):
        """GET over http(s); returns (status, headers, body)."""
        scheme = "https" if bg.url.startswith("wss:") else "http"
        request = urllib.request.Request("%s://%s%s" % (scheme, address or bg.address, path))
        if token:
            request.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(request, timeout=STEP,
                                        context=context or getattr(bg, "client_tls", None)) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def refused(self, bg, query, token=None, subprotocols=("kws.v1",), headers=None):
        """The HTTP status and body an upgrade is refused with (fails if it is accepted)."""
        c = serve_tests.RawClient(bg.address, "/v2/broker/" + ("?" + query if query else ""),
                                  subprotocol=",".join(subprotocols), headers=dict(
                                      headers or {}, **({"Authorization": "Bearer " + token} if token else {})))
        body = c.buf
        try:
            while True:
                chunk = c.sock.recv(4096)
                if not chunk:
                    break
                body += chunk
        except OSError:
            pass
        c.close()
        self.assertNotEqual(c.status, 101, "the upgrade was accepted: " + query)
        return c.status, c.head.decode(), body.decode()

    def connect(self, bg, query="", token=None, **kwargs):
        headers = {"Authorization": "Bearer " + token} if token else None
        return serve_tests.kws_connect(self.ws_url(bg, query), extra_headers=headers, **kwargs)


class Authentication(AuthTestCase):
    def test_a_missing_or_invalid_token_is_401_before_the_upgrade(self):
        bg = self.serve_hs("--jwt-issuer", "https://issuer.example", "--jwt-audience", "kws")
        now = int(time.time())
        good = claims(read=["*"], iss="https://issuer.example", aud="kws")
        cases = {
            None: "a token is required",
            "not-a-token": "token refused",
            hs(good, secret=b"another secret of at least 32 bytes!!"): "signature",
            hs(dict(good, exp=now - 120)): "expired",
            hs(dict(good, nbf=now + 3600)): "not yet valid",
            hs(dict(good, iss="https://evil.example")): "issuer",
            hs(dict(good, aud="someone-else")): "audience",
            # alg=none: an unsigned token naming no algorithm.
            jwt.encode(good, None, algorithm="none"): "none",
        }
        for token, reason in cases.items():
            status, head, body = self.refused(bg, "topics=x", token=token)
            self.assertEqual(status, 401, (token, body))
            self.assertTrue(head.startswith("HTTP/1.1 401 Unauthorized"), head)
            self.assertIn(reason, body.lower(), token)
            self.assertIn("WWW-Authenticate: Bearer", head)
            if token:
                self.assertIn('error="invalid_token"', head)
                self.assertNotIn(token, body, "a refusal never echoes the token")
        # The right token, within the 30 s leeway of an exp just passed.
        status = self.refused_or_accepted(bg, hs(dict(good, exp=now - 5)))
        self.assertEqual(status, 101)
        self.assertGreaterEqual(self.metrics_with(bg, hs(good))["kws_serve_unauthenticated_total"], len(cases))
        self.assertNotIn(hs(good), bg.err.decode(), "tokens are never logged")

    def refused_or_accepted(self, bg, token):
        c = serve_tests.RawClient(bg.address, "/v2/broker/", headers={"Authorization": "Bearer " + token})
        c.close()
        return c.status

    def metrics_with(self, bg, token):
        status, _, text = self.get(bg, "/metrics", token=token)
        self.assertEqual(status, 200, text)
        values = {}
        for family in serve_tests.text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.labels:
                    values[sample.name] = sample.value
        return values

    def test_the_token_from_a_header_the_query_or_a_subprotocol(self):
        bg = self.serve_hs()
        t = self.create(self.topic())
        token = hs(claims(read=[t], write=[t]))

        async def go():
            # A header (non-browser clients).
            async with self.connect(bg, "topics=" + t, token=token) as ws:
                await recv_until(ws, is_type("subscribed"), what="subscribed (header)")
            # The query (a browser cannot set headers on a WebSocket).
            async with self.connect(bg, "topics=%s&access_token=%s" % (t, token)) as ws:
                await recv_until(ws, is_type("subscribed"), what="subscribed (query)")
            # A subprotocol beside the real one, never echoed back.
            async with websockets.connect(self.ws_url(bg, "topics=" + t),
                                          subprotocols=["kws.v1", "bearer." + token]) as ws:
                self.assertEqual(ws.subprotocol, "kws.v1")
                await recv_until(ws, is_type("subscribed"), what="subscribed (subprotocol)")
        run(go())
        # The query string holding a token is never logged, even with -v.
        self.assertNotIn(token, bg.err.decode())

    def test_rs256_ps256_and_es256_with_a_pem_key(self):
        for kind, algorithms in (("rsa", ("RS256", "RS384", "RS512", "PS256")), ("ec", ("ES256",))):
            key = os.path.join(self.dir, kind + ".key")
            pub = os.path.join(self.dir, kind + ".pub")
            if kind == "rsa":
                openssl(self.dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
            else:
                openssl(self.dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
            openssl(self.dir, "pkey", "-in", key, "-pubout", "-out", pub)
            with open(key, "rb") as f:
                private = f.read()
            bg = self.serve("--jwt-key", pub)
            for algorithm in algorithms:
                token = jwt.encode(claims(read=["*"]), private, algorithm=algorithm)
                self.assertEqual(self.refused_or_accepted(bg, token), 101, algorithm)
            # The classic confusion: an HS256 token whose secret is the public key.
            with open(pub, "rb") as f:
                forged = forged_hs256(claims(read=["*"]), f.read())
            status, _, body = self.refused(bg, "", token=forged)
            self.assertEqual(status, 401, body)
            self.assertIn("hs256", body.lower())
            bg.signal(signal.SIGTERM)
            bg.wait()

    def test_a_jwks_file_picks_the_key_by_kid(self):
        keys, private = [], {}
        for kid in ("one", "two"):
            key = os.path.join(self.dir, "jwks-%s.key" % kid)
            openssl(self.dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
            with open(key, "rb") as f:
                private[kid] = f.read()
            from cryptography.hazmat.primitives.serialization import load_pem_private_key
            public = load_pem_private_key(private[kid], None).public_key()
            jwk = json.loads(RSAAlgorithm.to_jwk(public))
            jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
            keys.append(jwk)
        jwks = os.path.join(self.dir, "jwks.json")
        with open(jwks, "w") as f:
            json.dump({"keys": keys}, f)
        bg = self.serve("--jwks", jwks)
        for kid in ("one", "two"):
            token = jwt.encode(claims(read=["*"]), private[kid], algorithm="RS256", headers={"kid": kid})
            self.assertEqual(self.refused_or_accepted(bg, token), 101, kid)
        # Signed by "one" but naming "two": the key the kid picks does not verify it.
        wrong = jwt.encode(claims(read=["*"]), private["one"], algorithm="RS256", headers={"kid": "two"})
        self.assertEqual(self.refused(bg, "", token=wrong)[0], 401)
        unknown = jwt.encode(claims(read=["*"]), private["one"], algorithm="RS256", headers={"kid": "three"})
        status, _, body = self.refused(bg, "", token=unknown)
        self.assertEqual(status, 401)
        self.assertIn("three", body)

    def test_the_page_and_metrics_need_the_token_health_checks_do_not(self):
        bg = self.serve_hs("--metrics-listen", "127.0.0.1:0")
        token = hs(claims(read=["*"]))
        for path in ("/", "/metrics"):
            status, headers, body = self.get(bg, path)
            self.assertEqual(status, 401, path)
            self.assertIn("Bearer", headers.get("WWW-Authenticate", ""))
            self.assertEqual(self.get(bg, path, token=token)[0], 200, path)
        # A browser opening the page with ?access_token= gets it.
        self.assertEqual(self.get(bg, "/?access_token=" + token)[0], 200)
        for path in ("/healthz", "/readyz"):
            kwstest.wait_until(lambda: self.get(bg, path)[0] == 200, what=path + " without a token")
        # The metrics listener: no token, nothing but metrics and health.
        kwstest.wait_until(lambda: b"without a token" in bg.err, what="the metrics listener's line")
        line = [l for l in bg.err.decode().splitlines() if "/metrics, /healthz and /readyz at http://" in l][0]
        metrics_address = line.split("http://", 1)[1].split("/", 1)[0]
        status, _, text = self.get(bg, "/metrics", address=metrics_address)
        self.assertEqual(status, 200)
        self.assertIn("kws_serve_unauthenticated_total", text)
        self.assertEqual(self.get(bg, "/", address=metrics_address)[0], 404)

    def test_public_page_serves_the_page_but_not_the_websocket(self):
        bg = self.serve_hs("--public-page")
        self.assertEqual(self.get(bg, "/")[0], 200)
        self.assertEqual(self.get(bg, "/metrics")[0], 401)
        self.assertEqual(self.refused(bg, "")[0], 401)

    def test_a_non_loopback_address_needs_authentication_or_auth_none(self):
        r = self.kws("serve", "-l", "0.0.0.0:0", rc=2)
        self.assertStderrMentions(r, "no authentication is configured", "--auth none")
        r = self.kws("serve", "-l", "0.0.0.0:0", "--auth", "none", "--jwt-secret-file", self.secret_file, rc=2)
        self.assertStderrMentions(r, "contradicts")
        r = self.kws("serve", "--tls-client-ca", self.secret_file, rc=2)
        self.assertStderrMentions(r, "--tls-cert")
        bad = os.path.join(self.dir, "bad.pem")
        with open(bad, "w") as f:
            f.write("not a key\n")
        r = self.kws("serve", "--jwt-key", bad, rc=2)
        self.assertStderrMentions(r, "--jwt-key", bad)


class Acl(AuthTestCase):
    def test_every_door_a_topic_enters_by_checks_the_claim(self):
        bg = self.serve_hs()
        prices, orders, secret, clicks = (self.create(self.topic(n)) for n in ("prices", "orders", "secret", "clicks"))
        token = hs(claims(read=[prices[:-3] + "*", orders], write=[clicks], groups=["dash-*"]))
        # The query: 403 naming the topic.
        status, _, body = self.refused(bg, "topics=%s,%s" % (prices, secret), token=token)
        self.assertEqual(status, 403)
        self.assertIn(secret, body)
        status, _, body = self.refused(bg, "topics=%s&group.id=other" % prices, token=token)
        self.assertEqual(status, 403)
        self.assertIn("group.id", body)

        async def go():
            async with self.connect(bg, "topics=" + prices, token=token) as ws:
                await recv_until(ws, is_type("subscribed"), what="subscribed")
                await ws.send(json.dumps({"type": "subscribe", "topics": [secret, orders], "id": 1}))
                await ws.send(json.dumps({"topic": secret, "message": "m", "id": 2}))
                await ws.send(bytes([len(orders)]) + orders.encode() + b"binary")
                await ws.send(json.dumps({"topic": clicks, "message": "allowed", "id": 3}))
                # Hub answers (subscribed) and Kafka's (ack) come in either order.
                seen = []
                while not ({"ack", "subscribed"} <= {d.get("type") for d in seen if d.get("id") in (1, 3)}
                           and sum(1 for d in seen if d.get("code") == "not_allowed") == 3):
                    seen.append(await serve_tests.recv_json(ws))
                codes = [(d.get("topic"), d.get("code") or d.get("type")) for d in seen if d.get("type")]
                self.assertIn((secret, "not_allowed"), codes)
                self.assertIn((orders, "subscribed"), codes)
                self.assertIn((clicks, "ack"), codes)
                self.assertEqual(sum(1 for c in codes if c[1] == "not_allowed"), 3, codes)
            # A group the claim grants.
            async with self.connect(bg, "topics=%s&group.id=dash-1" % prices, token=token) as ws:
                await recv_until(ws, lambda d: d.get("type") == "subscribed", timeout=30, what="group subscribed")
        run(go())
        self.assertEqual([e["message"] for e in self.tail_json(clicks)], ["seed", "allowed"])
        self.assertEqual([e["message"] for e in self.tail_json(secret)], ["seed"])

    def test_the_topics_frame_lists_only_what_the_token_may_read(self):
        bg = self.serve_hs()
        prices, orders, secret = (self.create(self.topic(n)) for n in ("prices", "orders", "secret"))
        token = hs(claims(read=[prices[:-3] + "*", orders]))

        async def go():
            async with self.connect(bg, token=token) as ws:
                await ws.send(json.dumps({"type": "topics", "id": "t1"}))
                doc = await serve_tests.recv_json(ws)
                self.assertEqual(doc["type"], "topics", doc)
                self.assertEqual(doc["id"], "t1")
                self.assertIn(prices, doc["topics"])
                self.assertIn(orders, doc["topics"])
                self.assertNotIn(secret, doc["topics"])
                self.assertEqual(doc["topics"], sorted(doc["topics"]))
                self.assertFalse([t for t in doc["topics"] if t.startswith("__")], doc)

        run(go())

    def test_metrics_on_the_main_port_name_only_the_topics_the_token_may_read(self):
        bg = self.serve_hs("--metrics-listen", "127.0.0.1:0")
        shown, hidden = (self.create(self.topic(n)) for n in ("shown", "hidden"))
        everything = hs(claims(read=["*"]))

        async def go():
            # Both topics have subscribers, so the hub has figures for both.
            async with self.connect(bg, "topics=%s,%s" % (shown, hidden), token=everything) as ws:
                await recv_until(ws, lambda d: d.get("type") == "subscribed" and d.get("topic") == shown)
                await recv_until(ws, lambda d: d.get("type") == "subscribed" and d.get("topic") == hidden)
                # The hub's figures refresh twice a second.
                deadline = time.monotonic() + STEP
                while 'topic="%s"' % hidden not in self.get(bg, "/metrics", token=everything)[2]:
                    self.assertLess(time.monotonic(), deadline, "the hub's figures name the topics read")
                    await asyncio.sleep(0.1)
                texts = {}
                for name, token in (("all", everything), ("one", hs(claims(read=[shown]))),
                                    ("none", hs(claims(write=[shown])))):
                    status, _, texts[name] = self.get(bg, "/metrics", token=token)
                    self.assertEqual(status, 200, name)
                return texts

        texts = run(go())
        self.assertIn('topic="%s"' % shown, texts["all"])
        self.assertIn('topic="%s"' % hidden, texts["all"])
        self.assertIn('kws_serve_topic_subscribers{topic="%s"}' % shown, texts["one"])
        self.assertNotIn(hidden, texts["one"], "a topic the token may not read is not named")
        self.assertNotIn(shown, texts["none"], "writing a topic is not reading its figures")
        # The bridge-wide figures are the same for every token.
        for text in texts.values():
            self.assertIn("kws_serve_connections_opened_total", text)
        # The metrics listener (internal, no token) names them all.
        line = [l for l in bg.err.decode().splitlines() if "/metrics, /healthz and /readyz at http://" in l][0]
        metrics_address = line.split("http://", 1)[1].split("/", 1)[0]
        text = self.get(bg, "/metrics", address=metrics_address)[2]
        self.assertIn('topic="%s"' % hidden, text)

    def test_no_claim_no_access(self):
        bg = self.serve_hs()
        t = self.create(self.topic())
        token = hs({"sub": "bob", "exp": FAR})
        status, _, body = self.refused(bg, "topics=" + t, token=token)
        self.assertEqual(status, 403, body)

        async def go():
            async with self.connect(bg, token=token) as ws:
                await ws.send(json.dumps({"topic": t, "message": "m", "id": 1}))
                doc = await serve_tests.recv_json(ws)
                self.assertEqual(doc.get("code"), "not_allowed", doc)
        run(go())

    def test_a_custom_claim_name(self):
        bg = self.serve_hs("--acl-claim", "https://kws.example/acl")
        t = self.create(self.topic())
        token = hs({"sub": "c", "exp": FAR, "https://kws.example/acl": {"read": [t]}})
        self.assertEqual(self.refused_or_accepted(bg, token, "topics=" + t), 101)
        self.assertEqual(self.refused(bg, "topics=" + t, token=hs(claims(read=[t])))[0], 403)

    def refused_or_accepted(self, bg, token, query=""):
        c = serve_tests.RawClient(bg.address, "/v2/broker/?" + query, headers={"Authorization": "Bearer " + token})
        c.close()
        return c.status


class Expiry(AuthTestCase):
    def test_an_expired_token_closes_the_session_with_1008(self):
        bg = self.serve_hs("--jwt-leeway", "0")
        t = self.create(self.topic())
        token = hs(claims(read=[t], exp=int(time.time()) + 2))

        async def go():
            async with self.connect(bg, "topics=" + t, token=token) as ws:
                await recv_until(ws, is_type("subscribed"), what="subscribed")
                with self.assertRaises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 8)
                self.assertEqual(closed.exception.rcvd.code, 1008)
                self.assertEqual(closed.exception.rcvd.reason, "token expired")
        run(go())

    def test_a_fresh_token_in_time_keeps_the_session_and_replaces_the_acl(self):
        bg = self.serve_hs("--jwt-leeway", "0")
        a, b = self.create(self.topic("a")), self.create(self.topic("b"))
        short = hs(claims(read=[a, b], exp=int(time.time()) + 2))
        fresh = hs(claims(read=[a], exp=int(time.time()) + 3600))

        async def go():
            async with self.connect(bg, "topics=%s,%s" % (a, b), token=short) as ws:
                await recv_until(ws, lambda d: d.get("type") == "subscribed" and d.get("topic") == b, what="both")
                await ws.send(json.dumps({"type": "auth", "token": "garbage", "id": 1}))
                doc = await recv_until(ws, lambda d: d.get("id") == 1, what="bad_token")
                self.assertEqual(doc[-1]["code"], "bad_token")
                await ws.send(json.dumps({"type": "auth", "token": fresh, "id": 2}))
                seen = await recv_until(ws, lambda d: d.get("type") == "unsubscribed", what="b ended")
                self.assertEqual(seen[-1]["topic"], b)
                self.assertIn("authenticated", [d.get("type") for d in seen])
                await asyncio.sleep(3.5)  # past the first token's exp
                self.send(a, "-p", "0", "still here")
                doc = await recv_until(ws, lambda d: d.get("message") == "still here", what="a message after exp")
        run(go())


class GroupRefresh(AuthTestCase):
    def test_a_refresh_that_no_longer_grants_a_group_session_ends_it(self):
        bg = self.serve_hs()
        t = self.create(self.topic())
        token = hs(claims(read=[t], groups=["dash"]))
        narrower = hs(claims(read=[t], groups=[]))

        async def go():
            async with self.connect(bg, "topics=%s&group.id=dash" % t, token=token) as ws:
                await ws.send(json.dumps({"type": "auth", "token": narrower, "id": 1}))
                with self.assertRaises(websockets.ConnectionClosed) as closed:
                    while True:
                        doc = json.loads(await asyncio.wait_for(ws.recv(), STEP))
                        if doc.get("id") == 1:
                            self.assertEqual(doc.get("code"), "not_allowed", doc)
                self.assertEqual(closed.exception.rcvd.code, 1008)
        run(go())

    def test_a_malformed_auth_frame_never_puts_its_token_in_the_log(self):
        bg = self.serve_hs()
        secret_part = "eyJzZWNyZXQiOiJ0b2tlbi1ib2R5In0"

        async def go():
            # No subprotocol: a kafka-websocket client, whose refusals are logged.
            async with websockets.connect(self.ws_url(bg, "access_token=" + hs(claims(read=["x"])))) as ws:
                await ws.send('{"type":"auth","token":"%s\n' % secret_part)
                await asyncio.sleep(0.5)
        run(go())
        kwstest.wait_until(lambda: b"not valid JSON" in bg.err, what="the refusal logged")
        self.assertNotIn(secret_part, bg.err.decode())


class ClientCertificates(AuthTestCase):
    def test_mtls_requires_a_certificate_the_ca_issued(self):
        server = kwstest.make_ca(self.dir, "mtls-server")
        clients = kwstest.make_ca(self.dir, "mtls-client", san="DNS:client.example")
        stranger = kwstest.make_ca(self.dir, "mtls-stranger", san="DNS:stranger.example")
        bg = self.serve("--tls-cert", server["cert"], "--tls-key", server["key"], "--tls-client-ca", clients["ca"])
        t = self.create(self.topic())

        def context(files=None):
            ctx = ssl.create_default_context(cafile=server["ca"])
            if files:
                ctx.load_cert_chain(files["cert"], files["key"])
            return ctx

        async def go():
            async with serve_tests.kws_connect(self.ws_url(bg, "topics=" + t), ssl=context(clients)) as ws:
                await recv_until(ws, is_type("subscribed"), what="subscribed with a client certificate")
            # A browser presents the certificate to any site's page: without
            # tokens and --allow-origin, an upgrade with an Origin is refused.
            with self.assertRaises(websockets.InvalidStatusCode) as refused:
                async with serve_tests.kws_connect(self.ws_url(bg), ssl=context(clients),
                                                   origin="https://evil.example"):
                    pass
            self.assertEqual(refused.exception.status_code, 403)
            for files in (None, stranger):
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError, websockets.InvalidHandshake)):
                    async with serve_tests.kws_connect(self.ws_url(bg), ssl=context(files)) as ws:
                        await ws.recv()
        run(go())


class Reload(AuthTestCase):
    def test_sighup_reloads_certificate_and_keys_under_load_without_dropping_a_session(self):
        d = kwstest.scratch_dir()
        old = kwstest.make_ca(d, "old")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        secret = os.path.join(d, "secret")

        def install(files, secret_bytes):
            for src, dst in ((files["cert"], cert), (files["key"], key)):
                with open(src, "rb") as f, open(dst + ".new", "wb") as out:
                    out.write(f.read())
                os.replace(dst + ".new", dst)
            with open(secret + ".new", "wb") as f:
                f.write(secret_bytes)
            os.replace(secret + ".new", secret)

        new_secret = b"the renewed secret, also 32 bytes or more"
        install(old, SECRET)
        bg = self.serve("--tls-cert", cert, "--tls-key", key, "--jwt-secret-file", secret)
        t = self.create(self.topic())
        old_ctx = ssl.create_default_context(cafile=old["ca"])
        token = hs(claims(read=[t], write=[t]))
        sessions = 20
        sent = 200

        async def go():
            clients = []
            for _ in range(sessions):
                ws = await self.connect(bg, "topics=" + t, token=token, ssl=old_ctx)
                await recv_until(ws, is_type("subscribed"), what="subscribed")
                clients.append(ws)
            async with self.connect(bg, token=token, ssl=old_ctx) as pub:
                for i in range(sent):
                    await pub.send(json.dumps({"topic": t, "partition": 0, "message": "m%d" % i}))
                    if i == sent // 4:
                        # A bad new certificate first: the old stays.
                        with open(cert, "w") as f:
                            f.write("garbage\n")
                        bg.signal(signal.SIGHUP)
                        await asyncio.sleep(0)
                    if i == sent // 2:
                        kwstest.wait_until(lambda: b"keeping the certificate" in bg.err, what="the bad reload refused")
                        new = kwstest.make_ca(d, "new")
                        install(new, new_secret)
                        bg.signal(signal.SIGHUP)
                    await asyncio.sleep(0.005)
            kwstest.wait_until(lambda: b"SIGHUP: reloaded" in bg.err, what="the reload")
            for ws in clients:
                got = []
                while len(got) < sent:
                    doc = json.loads(await asyncio.wait_for(ws.recv(), STEP))
                    if "type" not in doc:
                        got.append(doc["message"])
                self.assertEqual(got, ["m%d" % i for i in range(sent)])
                self.assertIsNone(ws.close_code, "no session was dropped")
            for ws in clients:
                await ws.close()
            return new

        new = run(go(), timeout=120)
        # New connections: the new certificate and the new secret only.
        new_ctx = ssl.create_default_context(cafile=new["ca"])
        new_token = hs(claims(read=[t]), secret=new_secret)

        async def after():
            async with self.connect(bg, "topics=" + t, token=new_token, ssl=new_ctx) as ws:
                await recv_until(ws, is_type("subscribed"), what="subscribed after the reload")
            with self.assertRaises(websockets.InvalidStatusCode) as refused:
                async with self.connect(bg, "topics=" + t, token=token, ssl=new_ctx):
                    pass
            self.assertEqual(refused.exception.status_code, 401)
            with self.assertRaises(ssl.SSLError):
                async with self.connect(bg, token=new_token, ssl=old_ctx):
                    pass
        run(after())
        # The bad reload kept everything; the good one took effect once.
        status, _, text = self.get(bg, "/metrics", token=new_token, context=new_ctx)
        self.assertEqual(status, 200, text)
        self.assertIn("kws_serve_reloads_total 1\n", text)


if __name__ == "__main__":
    kwstest.main(requires_modules={"websockets": websockets, "jwt": jwt})
