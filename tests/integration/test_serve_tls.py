"""kws serve over TLS (--tls-cert, --tls-key): wss:// with python3-websockets
and https:// with urllib, both trusting a CA this test makes with openssl;
the certificate chain in the cert file; TLS versions and suites; a plain
HTTP client on the TLS port; bad files; a slow wss:// client, whose bytes
wait as shared plaintext (encrypted only as its socket takes them), closed
by the same budget as a ws:// one."""

import asyncio
import json
import os
import socket
import ssl

import kwstest
import test_serve as serve_tests

try:
    import websockets
except ImportError:  # reported by main() as a loud skip
    websockets = None

STEP = serve_tests.STEP
run = serve_tests.run


class TlsServeTestCase(serve_tests.ServeTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = kwstest.scratch_dir()
        cls.files = kwstest.make_ca(d, "serve")
        # The server's certificate first, then the chain: what a CA hands out.
        cls.fullchain = os.path.join(d, "serve-fullchain.pem")
        with open(cls.fullchain, "w") as out:
            for name in (cls.files["cert"], cls.files["ca"]):
                with open(name) as f:
                    out.write(f.read())

    def client_context(self, **options):
        ctx = ssl.create_default_context(cafile=self.files["ca"])
        for name, value in options.items():
            setattr(ctx, name, value)
        return ctx

    def serve_tls(self, *args, cert=None):
        bg = self.serve("--tls-cert", cert or self.fullchain, "--tls-key", self.files["key"], *args)
        bg.client_tls = self.client_context()
        return bg


class Wss(TlsServeTestCase):
    def test_url_is_wss_and_the_log_says_https(self):
        bg = self.serve_tls()
        self.assertTrue(bg.url.startswith("wss://127.0.0.1:"), bg.describe())
        kwstest.wait_until(lambda: b"https://" in bg.err, what="the serving line on stderr")
        self.assertIn("serving wss://%s/v2/broker/" % bg.address, bg.err.decode())

    def test_produce_and_subscribe_over_wss(self):
        bg = self.serve_tls()
        t = self.create(self.topic())

        async def go():
            ctx = bg.client_tls
            async with serve_tests.kws_connect(self.ws_url(bg, "topics=" + t), ssl=ctx) as sub, \
                    serve_tests.kws_connect(self.ws_url(bg), ssl=ctx) as pub:
                await serve_tests.recv_until(sub, serve_tests.is_type("subscribed"), what="subscribed")
                # A multi-record message: 100 KB is several TLS records each way.
                big = "y" * 100_000
                for i, value in enumerate(["small", big, "after"]):
                    await pub.send(json.dumps({"topic": t, "partition": 0, "message": value, "id": str(i)}))
                acks = await serve_tests.recv_until(pub, lambda d: d.get("id") == "2" and d.get("type") == "ack",
                                                    what="the third ack")
                self.assertEqual([d["id"] for d in acks if d.get("type") == "ack"], ["0", "1", "2"])
                got = []
                while len(got) < 3:
                    doc = await serve_tests.recv_json(sub)
                    if doc.get("type") is None:
                        got.append(doc["message"])
                self.assertEqual(got, ["small", big, "after"])
        run(go())
        # Kafka has them too, through an independent reader.
        self.assertEqual([len(e["message"]) for e in self.tail_json(t)], [len("seed"), 5, 100_000, 5])

    def test_kafka_websocket_client_over_wss(self):
        # A kafka-websocket client gets messages only, from the newest on:
        # produce until it sees one, then one more, in order.
        bg = self.serve_tls()
        t = self.create(self.topic())

        async def go():
            async with websockets.connect(self.ws_url(bg, "topics=" + t), subprotocols=["kafka-text"],
                                          ssl=bg.client_tls) as ws:
                for i in range(50):
                    self.send(t, "-p", "0", "probe-%d" % i)
                    try:
                        doc = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                        break
                    except asyncio.TimeoutError:
                        continue
                else:
                    self.fail("the kafka-websocket client saw no message")
                self.assertTrue(doc["message"].startswith("probe-"), doc)
                self.send(t, "-p", "0", "after")
                while doc["message"] != "after":
                    doc = await serve_tests.recv_json(ws)
                    self.assertNotIn("type", doc, "a kafka-websocket client gets messages only")
        run(go())

    def test_demo_page_and_endpoints_over_https(self):
        bg = self.serve_tls()
        status, page = self.http(bg, "/")
        self.assertEqual(status, 200)
        self.assertIn("<html", page.lower())
        self.assertEqual(self.http(bg, "/healthz")[0], 200)
        kwstest.wait_until(lambda: self.http(bg, "/readyz")[0] == 200, what="/readyz")
        self.assertGreaterEqual(self.metrics(bg)["kws_serve_connections_opened_total"], 0)

    def test_client_close_is_answered(self):
        bg = self.serve_tls()

        async def go():
            async with serve_tests.kws_connect(self.ws_url(bg), ssl=bg.client_tls) as ws:
                await ws.close(1000, "bye")
                self.assertEqual(ws.close_code, 1000)
        run(go())
        kwstest.wait_until(lambda: self.metrics(bg)["kws_serve_connections"] == 0,
                           what="the connection gone from the server")


class Versions(TlsServeTestCase):
    def send_raw(self, bg, data):
        """Sends `data` on a plain socket; returns what came back until the server closed."""
        host, port = bg.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=STEP) as s:
            s.sendall(data)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            return answer

    def handshake(self, bg, ctx):
        host, port = bg.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=STEP) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version(), tls.cipher()[0]

    def test_tls_1_2_and_1_3_with_forward_secret_suites(self):
        bg = self.serve_tls()
        self.assertEqual(self.handshake(bg, self.client_context())[0], "TLSv1.3")
        v12 = self.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        version, cipher = self.handshake(bg, v12)
        self.assertEqual(version, "TLSv1.2")
        self.assertTrue(cipher.startswith("ECDHE-"), cipher)

    def test_suites_without_forward_secrecy_are_refused(self):
        bg = self.serve_tls()
        ctx = self.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("AES128-GCM-SHA256")  # RSA key exchange
        with self.assertRaises(ssl.SSLError):
            self.handshake(bg, ctx)
        # The server goes on for everyone else.
        self.assertEqual(self.http(bg, "/healthz")[0], 200)

    def test_plain_http_on_the_tls_port_is_told_why(self):
        bg = self.serve_tls()
        answer = self.send_raw(bg, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer)
        self.assertIn(b"this port speaks TLS", answer)

    def test_a_client_that_never_finishes_the_handshake_is_cut(self):
        bg = self.serve_tls()
        host, port = bg.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=STEP) as s:
            s.sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello, then nothing
            s.settimeout(15)
            self.assertEqual(s.recv(4096), b"", "the server must close after its handshake timeout (10 s)")

    def test_garbage_after_the_record_header_fails_only_that_client(self):
        bg = self.serve_tls()
        data = self.send_raw(bg, b"\x16\x03\x01\x00\x10" + b"\xff" * 16)
        # An alert record (type 21), or nothing: never a hang.
        self.assertTrue(data == b"" or data[0] == 21, data)
        self.assertEqual(self.http(bg, "/healthz")[0], 200)


class Files(TlsServeTestCase):
    def test_missing_and_mismatched_files_are_usage_errors(self):
        other = kwstest.make_ca(kwstest.scratch_dir(), "other")
        cases = [
            (["--tls-cert", self.fullchain], "needs both --tls-cert and --tls-key"),
            (["--tls-key", self.files["key"]], "needs both --tls-cert and --tls-key"),
            (["--tls-cert", self.files["key"], "--tls-key", self.files["key"]], "not a readable PEM certificate"),
            (["--tls-cert", self.fullchain, "--tls-key", self.fullchain], "not a readable PEM private key"),
            (["--tls-cert", self.fullchain, "--tls-key", other["key"]], "does not belong to the certificate"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                r = self.kws("serve", "-l", "127.0.0.1:0", *args, rc=2)
                self.assertIn(needle, r.stderr, str(r))
                self.assertEqual(r.stdout, "", "no URL= line when it cannot serve")

    def test_files_from_the_environment(self):
        bg = self.serve(env={"KWS_SERVE_TLS_CERT": self.fullchain, "KWS_SERVE_TLS_KEY": self.files["key"]})
        self.assertTrue(bg.url.startswith("wss://"), bg.describe())


class SlowClient(TlsServeTestCase):
    broker_args = ["--partitions", "4"]

    def test_a_slow_wss_client_is_closed_by_its_budget(self):
        # What waits for a TLS client is plaintext not yet encrypted and
        # records not yet sent: the budget must count both, or one slow
        # wss:// client grows without bound.
        bg = self.serve_tls("--client-buffer", "256k", "--ring-bytes", "64k")
        t = self.topic()
        self.send(t, "seed")
        client = serve_tests.RawClient(bg.address, "/v2/broker/?topics=" + t, rcvbuf=4096, tls=bg.client_tls)
        self.assertEqual(client.status, 101)
        kwstest.wait_until(lambda: self.metrics(bg).get("kws_serve_topic_subscribers{topic=%s}" % t) == 1,
                           what="the subscription")
        line = "x" * 8000
        self.send(t, input="".join("%06d-%s\n" % (i, line) for i in range(400)))  # 3.2 MB
        kwstest.wait_until(lambda: self.metrics(bg)["kws_serve_slow_client_closes_total"] == 1, timeout=30,
                           what="the slow client to be closed")
        frames = list(client.frames(timeout=5))
        client.close()
        self.assertEqual(client.closed_with and client.closed_with[0], 1008, frames[-1:])


class FanOut(TlsServeTestCase):
    broker_args = ["--partitions", "1"]  # one partition: one order to check

    def test_many_wss_clients_get_every_message_in_order(self):
        bg = self.serve_tls()
        t = self.create(self.topic())
        clients, count = 20, 300

        async def go():
            socks = [await serve_tests.kws_connect(self.ws_url(bg, "topics=" + t), ssl=bg.client_tls)
                     for _ in range(clients)]
            try:
                for ws in socks:
                    await serve_tests.recv_until(ws, serve_tests.is_type("subscribed"), what="subscribed")
                self.send(t, input="".join("m%04d\n" % i for i in range(count)))
                for ws in socks:
                    got = []
                    while len(got) < count:
                        doc = await serve_tests.recv_json(ws)
                        if doc.get("type") is None:
                            got.append(doc["message"])
                    self.assertEqual(got, ["m%04d" % i for i in range(count)])
            finally:
                for ws in socks:
                    await ws.close()
        run(go(), timeout=120)


if __name__ == "__main__":
    kwstest.main(requires=["openssl"], requires_modules={"websockets": websockets})
