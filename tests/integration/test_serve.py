"""kws serve against a real `kws broker`, with python3-websockets as the
independent WebSocket client: both kafka-websocket subprotocols, the
envelope, acks and error frames, control frames, every start position,
malformed handshakes, group sessions, slow clients under both policies,
pings and idle timeouts, graceful shutdown and /metrics."""

import asyncio
import base64
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request

import kwstest

try:
    import websockets
except ImportError:  # reported by main() as a loud skip
    websockets = None
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    text_string_to_metric_families = None

STEP = 10  # seconds any single wait may take


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def recv_json(ws, timeout=STEP):
    frame = await asyncio.wait_for(ws.recv(), timeout)
    return json.loads(frame)


async def recv_until(ws, predicate, timeout=STEP, what="frame"):
    """Frames (decoded) until one satisfies predicate; returns all of them."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no %s within %s s; got %r" % (what, timeout, seen[-10:]))
        frame = await asyncio.wait_for(ws.recv(), remaining)
        doc = json.loads(frame) if isinstance(frame, str) else frame
        seen.append(doc)
        if predicate(doc):
            return seen


async def drain(ws, seconds, into):
    """Appends to `into` every JSON frame ws receives within `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            into.append(await recv_json(ws, timeout=max(0.05, end - time.monotonic())))
        except asyncio.TimeoutError:
            return


def is_type(kind):
    return lambda d: isinstance(d, dict) and d.get("type") == kind


def process_state(pid):
    """The state letter of /proc/PID/stat (R, S, T for stopped, ...)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def kws_connect(url, **kwargs):
    """A client of the kws protocol (subprotocol kws.v1): it gets replies
    and notices besides messages. A kafka-websocket client gets messages only."""
    kwargs.setdefault("subprotocols", ["kws.v1"])
    return websockets.connect(url, **kwargs)


class RawClient:
    """A WebSocket client on a plain socket that can stop reading (and keep
    its receive buffer small), which no library client lets a test do."""

    def __init__(self, address, path, rcvbuf=None, subprotocol="kws.v1", tls=None, headers=None):
        """tls: an ssl.SSLContext to speak wss:// with; headers: more request headers."""
        host, port = address.rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(STEP)
        self.sock.connect((host, int(port)))
        if tls:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        offer = "Sec-WebSocket-Protocol: %s\r\n" % subprotocol if subprotocol else ""
        offer += "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
                           % (path, address, key, offer)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("connection closed during the handshake: %r" % self.buf)
            self.buf += chunk
        self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(self.head.split(b" ")[1])
        self.closed_with = None

    def frames(self, timeout=STEP):
        """Yields (opcode, payload) until the server closes or `timeout`
        passes without data."""
        self.sock.settimeout(timeout)
        while True:
            while True:
                frame = self._parse()
                if frame is None:
                    break
                yield frame
                if frame[0] == 8:
                    return
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return
            if not chunk:
                return
            self.buf += chunk

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        opcode, n, at = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, at = int.from_bytes(b[2:4], "big"), 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, at = int.from_bytes(b[2:10], "big"), 10
        if len(b) < at + n:
            return None
        payload, self.buf = b[at:at + n], b[at + n:]
        if opcode == 8:
            self.closed_with = (int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None, payload[2:])
        return opcode, payload

    def close(self):
        self.sock.close()


class ServeTestCase(kwstest.KwsTestCase):
    """One `kws broker` per class (for kws send/tail) and one `kws serve`
    per test, with the arguments the test needs."""

    broker_args = ["--partitions", "2"]

    def serve(self, *args, brokers=True, env=None, listen="127.0.0.1:0", nofile=None):
        """kws serve ARGS, by default with -l 127.0.0.1:0 (listen=None: none),
        once it printed URL=. nofile: its (soft, hard) open-file limit."""
        listen_args = ["-l", listen] if listen else []
        bg = self.background("serve", *listen_args, *args, brokers=brokers, env=env, nofile=nofile)
        bg.wait_for_output(lambda out: b"URL=" in out and out.endswith(b"\n"), timeout=30, what="URL= line")
        first = bg.lines()[0]
        self.assertTrue(first.startswith(("URL=ws://", "URL=wss://")),
                        "the first stdout line must be URL=\n" + bg.describe())
        url = first[len("URL="):]
        bg.url = url
        bg.address = url.split("://", 1)[1].rstrip("/")
        return bg

    def ws_url(self, bg, query=""):
        return bg.url + "v2/broker/" + (("?" + query) if query else "")

    def http(self, bg, path):
        """GET over http://, or https:// trusting bg.client_tls when serve speaks TLS."""
        scheme = "https" if bg.url.startswith("wss:") else "http"
        try:
            with urllib.request.urlopen("%s://%s%s" % (scheme, bg.address, path), timeout=STEP,
                                        context=getattr(bg, "client_tls", None)) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self, bg):
        status, text = self.http(bg, "/metrics")
        self.assertEqual(status, 200, text)
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = sample.name
                if sample.labels:
                    key += "{" + ",".join("%s=%s" % kv for kv in sorted(sample.labels.items())) + "}"
                values[key] = sample.value
        return values

    def create(self, topic, partitions=1):
        # A producer auto-creates topics on kws broker; one message per
        # partition would shift offsets, so create with an empty send...
        # kws send creates with --partitions of the broker: 2 here.
        self.send(topic, "-p", "0", "seed")
        return topic


class Handshake(ServeTestCase):
    def test_url_first_then_human_line(self):
        bg = self.serve()
        self.assertRegex(bg.lines()[0], r"^URL=ws://127\.0\.0\.1:\d+/$")
        kwstest.wait_until(lambda: "serving" in bg.err.decode(), what="the human line on stderr")

    def test_malformed_queries_get_400_with_a_reason(self):
        bg = self.serve()
        t = self.create(self.topic())
        cases = {
            "topics=%s&bogus=1" % t: "unknown query parameter 'bogus'",
            "topics=%zz": "bad %-escape",
            "topics=%s&topics=%s" % (t, t): "given twice",
            "topics=%s&offset=sideways" % t: "offset:",
            "topics=bad%20name": "bad topic name",
            "topics=%s&offset=stored" % t: "needs a group.id",
            "group.id=": "must not be empty",
            "topics=%s,,%s" % (t, t): "empty topic name",
            "topics=" + ",".join("%s-%d" % (t, i) for i in range(101)): "more than 100 (serve.max_topics)",
            "topics=%s&group.id=x%%00y" % t: "control characters",
        }
        for query, reason in cases.items():
            c = RawClient(bg.address, "/v2/broker/?" + query)
            body = c.buf + c.sock.recv(4096)
            c.close()
            self.assertEqual(c.status, 400, query)
            self.assertIn(reason, body.decode(), query)
        c = RawClient(bg.address, "/elsewhere")
        self.assertEqual(c.status, 404)
        c.close()

    def test_url_decoded_topics_and_subprotocol_choice(self):
        bg = self.serve()
        t = self.create(self.topic())

        async def go():
            # %2C is a comma; the second topic does not exist.
            async with kws_connect(self.ws_url(bg, "topics=%s%%2Cnosuch-%s" % (t, t))) as ws:
                self.assertEqual(ws.subprotocol, "kws.v1")
                replies = [await recv_json(ws), await recv_json(ws)]
                kinds = sorted((r["type"], r.get("topic")) for r in replies)
                self.assertEqual(kinds, sorted([("subscribed", t), ("error", "nosuch-" + t)]), replies)
                err = [r for r in replies if r["type"] == "error"][0]
                self.assertEqual(err["code"], "unknown_topic")
            async with websockets.connect(self.ws_url(bg), subprotocols=["other", "kafka-binary"]) as ws:
                self.assertEqual(ws.subprotocol, "kafka-binary")
            async with websockets.connect(self.ws_url(bg)) as ws:
                self.assertIsNone(ws.subprotocol)  # none offered: kafka-text, nothing selected
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as caught:
                async with websockets.connect(self.ws_url(bg), subprotocols=["mqtt"]):
                    pass
            self.assertEqual(caught.exception.status_code, 400)

        run(go())

    def test_http_endpoints(self):
        bg = self.serve()
        self.assertEqual(self.http(bg, "/healthz"), (200, "ok\n"))
        kwstest.wait_until(lambda: self.http(bg, "/readyz")[0] == 200, what="/readyz 200")
        status, page = self.http(bg, "/")
        self.assertEqual(status, 200)
        self.assertIn("<!doctype html>", page.lower())
        self.assertIn("kws", page)
        self.assertEqual(self.http(bg, "/nosuch")[0], 404)

    def test_embedded_broker_without_b(self):
        # No -b, KWS_BROKERS or config file: the broker runs in-process.
        env = kwstest.clean_env(XDG_CONFIG_HOME=kwstest.scratch_dir(), HOME=kwstest.scratch_dir())
        bg = kwstest.Background(["serve", "-l", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0", "-t", "embedded:2"],
                                env=env)
        self.addCleanup(bg.__exit__, None, None, None)
        bg.wait_for_output(lambda out: b"BROKERS=" in out and out.endswith(b"\n"), timeout=30, what="BROKERS=")
        lines = bg.lines()
        self.assertTrue(lines[0].startswith("URL=ws://"), lines)
        self.assertTrue(lines[1].startswith("BROKERS=127.0.0.1:"), lines)
        brokers = lines[1][len("BROKERS="):]
        self.assertIn("in-memory", bg.err.decode().lower())
        url = lines[0][len("URL="):] + "v2/broker/?topics=embedded"

        async def go():
            async with kws_connect(url) as ws:
                self.assertEqual((await recv_json(ws))["type"], "subscribed")
                self.kws("send", "embedded", "from-kws-send", brokers=brokers)
                got = await recv_until(ws, lambda d: d.get("message") == "from-kws-send")
                self.assertEqual(got[-1]["topic"], "embedded")

        run(go())
        bg.signal(signal.SIGTERM)
        self.assertEqual(bg.wait(), 143, bg.describe())


class Frames(ServeTestCase):
    async def until_live(self, ws, t, send_probe):
        """A kafka-websocket client is told nothing when its subscription is
        live: probe until a message comes back. Returns the frames seen."""
        seen = []
        deadline = time.monotonic() + 30
        n = 0
        while True:
            self.assertLess(time.monotonic(), deadline, "the subscription never went live: %r" % seen[-5:])
            n += 1
            await send_probe(n)
            try:
                while True:
                    frame = await asyncio.wait_for(ws.recv(), 0.3)
                    seen.append(frame)
            except asyncio.TimeoutError:
                pass
            if seen:
                return seen

    def test_kafka_text_envelope_and_kafka_websocket_produce(self):
        bg = self.serve()
        t = self.create(self.topic())

        async def go():
            async with websockets.connect(self.ws_url(bg, "topics=" + t), subprotocols=["kafka-text"]) as ws:
                self.assertEqual(ws.subprotocol, "kafka-text")
                # kafka-websocket's own produce frame: no id, silent success;
                # the client reads `.message`, so every frame must be a message.
                probes = await self.until_live(
                    ws, t, lambda n: ws.send(json.dumps({"topic": t, "message": "probe-%d" % n})))
                for frame in probes:
                    self.assertIsInstance(frame, str)
                    self.assertNotIn("type", json.loads(frame), frame)
                await ws.send(json.dumps({"topic": t, "message": "plain", "key": "k"}))
                await ws.send(json.dumps({"topic": "bad topic!", "message": "refused, silently"}))
                await ws.send("{not json")
                frames = await recv_until(ws, lambda d: d.get("message") == "plain")
                self.assertFalse([f for f in frames if "type" in f], frames)
                env = frames[-1]
                for field in ("partition", "offset", "timestamp", "timestamp_type", "key", "headers"):
                    self.assertIn(field, env)
                self.assertEqual(env["key"], "k")
                # An id asks for the kws protocol: from here on, acks and errors.
                await ws.send(json.dumps({"id": "e1", "topic": t, "partition": 1, "message": base64.b64encode(b"\xff\x00").decode(),
                                          "message_encoding": "base64", "headers": [{"name": "h", "value": "v"}]}))
                frames = await recv_until(ws, lambda d: d.get("message_encoding") == "base64")
                ack = [f for f in frames if f.get("type") == "ack"]
                env = frames[-1]
                self.assertEqual(base64.b64decode(env["message"]), b"\xff\x00")
                self.assertEqual(env["headers"], [{"name": "h", "value": "v"}])
                self.assertEqual(env["partition"], 1)
                if not ack:
                    ack = await recv_until(ws, is_type("ack"))
                    ack = ack[-1:]
                self.assertEqual(ack[0], {"type": "ack", "id": "e1", "topic": t, "partition": 1, "offset": env["offset"]})

        run(go())
        # Both messages are in Kafka, read by an independent path.
        values = [kwstest.envelope_bytes(e, "message") for e in self.tail_json(t)]
        self.assertIn(b"plain", values)
        self.assertIn(b"\xff\x00", values)
        # What the kafka-websocket client was not told is counted.
        self.assertGreaterEqual(self.metrics(bg)["kws_serve_unsent_notices_total"], 3)

    def test_kafka_binary_both_ways(self):
        bg = self.serve()
        t = self.create(self.topic())

        async def go():
            async with websockets.connect(self.ws_url(bg, "topics=" + t), subprotocols=["kafka-binary"]) as ws:
                payload = bytes([len(t)]) + t.encode() + b"\x00\x01binary"
                frames = await self.until_live(ws, t, lambda n: ws.send(payload))
                # Only binary messages: a kafka-binary client cannot parse anything else.
                self.assertTrue(all(f == payload for f in frames), frames)
                await ws.send(b"\x05ab")  # length says 5, 2 bytes follow: logged and counted, not sent
                await ws.send(payload)
                frame = await asyncio.wait_for(ws.recv(), STEP)
                self.assertEqual(frame, payload)
            # A kws client may have binary messages and JSON replies: it says so with a kws parameter.
            async with websockets.connect(self.ws_url(bg, "topics=%s&offset=latest" % t),
                                          subprotocols=["kafka-binary"]) as ws:
                self.assertEqual((await recv_json(ws))["type"], "subscribed")  # replies stay JSON text
                await ws.send(b"\x05ab")
                err = await recv_json(ws)
                self.assertEqual((err["type"], err["code"]), ("error", "bad_frame"))

        run(go())

    def test_acks_numbers_and_errors_keep_the_session(self):
        bg = self.serve("--max-frame", "64k")
        t = self.create(self.topic())

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"id": 7, "topic": t, "message": "x"}))
                ack = await recv_json(ws)
                self.assertEqual((ack["type"], ack["id"], ack["topic"]), ("ack", 7, t))
                bad = [
                    ("{not json", "bad_json"),
                    ("[1,2]", "bad_json"),
                    (json.dumps({"id": 1, "message": "no topic"}), "bad_frame"),
                    (json.dumps({"id": 2, "topic": 5, "message": "x"}), "bad_frame"),
                    (json.dumps({"id": 3, "topic": t, "message": 5}), "bad_frame"),
                    (json.dumps({"id": 4, "topic": "bad name", "message": "x"}), "bad_topic"),
                    (json.dumps({"id": 5, "type": "explode"}), "unknown_type"),
                    (json.dumps({"id": 6, "topic": t, "partition": 99, "message": "x"}), "bad_partition"),
                    (json.dumps({"id": 8, "topic": t, "message": "y" * 70000}), "too_large"),
                    (json.dumps({"id": [1], "topic": t}), "bad_frame"),
                ]
                for text, code in bad:
                    await ws.send(text)
                    err = (await recv_until(ws, is_type("error"), what="error for " + text[:40]))[-1]
                    self.assertEqual(err["code"], code, (text[:60], err))
                    self.assertTrue(err["message"], err)
                    doc = None
                    try:
                        doc = json.loads(text)
                    except ValueError:
                        pass
                    # An oversize frame is refused unread, so its error names no id.
                    if isinstance(doc, dict) and isinstance(doc.get("id"), int) and code != "too_large":
                        self.assertEqual(err.get("id"), doc["id"], err)
                # Still working after all that.
                await ws.send(json.dumps({"id": "after", "topic": t, "message": "ok"}))
                self.assertEqual((await recv_until(ws, is_type("ack")))[-1]["id"], "after")

        run(go())
        values = [kwstest.envelope_bytes(e, "message") for e in self.tail_json(t)]
        self.assertEqual(values.count(b"ok"), 1)
        self.assertNotIn(b"y" * 70000, values)

    def test_a_message_as_large_as_the_default_frame_limit_is_produced(self):
        # --max-frame is 1 MiB by default; librdkafka's own message.max.bytes
        # (1,000,000) used to refuse what the transport had accepted.
        bg = self.serve()
        t = self.create(self.topic())
        value = "z" * ((1 << 20) - 200)
        frame = json.dumps({"id": "big", "topic": t, "partition": 0, "message": value})
        self.assertLessEqual(len(frame), 1 << 20)

        async def go():
            async with kws_connect(self.ws_url(bg), max_size=None) as ws:
                await ws.send(frame)
                reply = (await recv_until(ws, lambda d: d.get("id") == "big", what="the reply"))[-1]
                self.assertEqual(reply["type"], "ack", reply)
        run(go())
        self.assertIn(value.encode(), [kwstest.envelope_bytes(e, "message") for e in self.tail_json(t)])

    def test_produce_frame_without_message_is_refused_not_a_tombstone(self):
        # {"value": ...} (another bridge's name) was acked and stored as a
        # null value. The frame's own "id" and "type" are not unknown fields.
        bg = self.serve()
        t = self.create(self.topic())

        async def go():
            async with websockets.connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"type": "produce", "id": 1, "topic": t, "key": "k", "value": "hi"}))
                err = (await recv_until(ws, is_type("error")))[-1]
                self.assertEqual((err["code"], err["id"], err["message"]),
                                 ("bad_frame", 1, 'no "message" field (use "message": null for a tombstone); '
                                                  'unknown fields: "value"'), err)
                await ws.send(json.dumps({"id": 2, "topic": t, "key": "k", "message": None}))
                self.assertEqual((await recv_until(ws, is_type("ack")))[-1]["id"], 2)

        run(go())
        self.assertEqual([(e["key"], e["message"]) for e in self.tail_json(t) if e["key"] == "k"], [("k", None)])

    def test_the_producer_is_idempotent_unless_told_otherwise(self):
        """enable.idempotence=true is a kws default: a request retried after a
        timeout carries the producer id and sequence numbers a Kafka broker
        drops the copies by (the embedded broker does not check them:
        docs/PROTOCOL.md, "Delivery"). librdkafka's eos debug log says when
        the producer got its id; -X enable.idempotence=false still turns it off."""
        for extra, idempotent in (((), True), (("-X", "enable.idempotence=false"), False)):
            bg = self.serve("-v", "-X", "debug=eos", *extra)
            t = self.topic()

            async def go():
                async with kws_connect(self.ws_url(bg)) as ws:
                    await ws.send(json.dumps({"id": 1, "topic": t, "message": "m"}))
                    return (await recv_until(ws, lambda d: d.get("type") in ("ack", "error"), timeout=15))[-1]

            self.assertEqual(run(go()).get("type"), "ack", bg.describe())
            self.assertEqual("Acquired PID" in bg.err.decode(), idempotent, bg.describe())

    def test_subscribe_and_unsubscribe_at_run_time(self):
        bg = self.serve()
        a = self.create(self.topic("a"))
        b = self.create(self.topic("b"))

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topics": [a, b], "id": 1}))
                replies = [await recv_json(ws), await recv_json(ws)]
                self.assertEqual(sorted(r["topic"] for r in replies), sorted([a, b]))
                self.assertTrue(all(r["type"] == "subscribed" and r["id"] == 1 for r in replies), replies)
                self.send(a, "to-a")
                self.send(b, "to-b")
                got = await recv_until(ws, lambda d: d.get("message") == "to-b")
                if not any(d.get("message") == "to-a" for d in got):
                    await recv_until(ws, lambda d: d.get("message") == "to-a")
                await ws.send(json.dumps({"type": "unsubscribe", "topics": [a], "id": 2}))
                self.assertEqual((await recv_until(ws, is_type("unsubscribed")))[-1]["topic"], a)
                self.send(a, "after-unsubscribe")
                self.send(b, "still-subscribed")
                got = await recv_until(ws, lambda d: d.get("message") == "still-subscribed")
                self.assertFalse(any(d.get("message") == "after-unsubscribe" for d in got), got)

        run(go())


class StartPositions(ServeTestCase):
    def setUp(self):
        super().setUp()
        self.t = self.topic()
        # 10 messages in partition 0 with known times, 4 in partition 1.
        self.before = int(time.time() * 1000) - 60000
        envs = [{"partition": 0, "message": "p0-%d" % i, "timestamp": self.before + i * 1000} for i in range(10)]
        envs += [{"partition": 1, "message": "p1-%d" % i, "timestamp": self.before + i * 1000} for i in range(4)]
        self.send_json(self.t, envs)

    def read(self, bg, offset, expect):
        async def go():
            async with kws_connect(self.ws_url(bg, "topics=%s&offset=%s" % (self.t, offset))) as ws:
                self.assertEqual((await recv_json(ws))["type"], "subscribed")
                got = []
                while len(got) < expect:
                    got.append(await recv_json(ws))
                # Nothing more arrives for a moment: no duplicates after the history.
                with self.assertRaises(asyncio.TimeoutError):
                    extra = await recv_json(ws, timeout=0.7)
                    got.append(extra)
                return sorted((d["partition"], d["offset"]) for d in got)

        return run(go())

    def test_every_start_position(self):
        bg = self.serve()
        everything = [(0, i) for i in range(10)] + [(1, i) for i in range(4)]
        self.assertEqual(self.read(bg, "earliest", 14), everything)
        self.assertEqual(self.read(bg, "beginning", 14), everything)
        self.assertEqual(self.read(bg, "-3", 6), [(0, 7), (0, 8), (0, 9), (1, 1), (1, 2), (1, 3)])
        self.assertEqual(self.read(bg, "8", 2), [(0, 8), (0, 9)])  # partition 1 has no offset 8: starts at its end
        self.assertEqual(self.read(bg, "@%d" % (self.before + 7000), 3), [(0, 7), (0, 8), (0, 9)])
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((self.before + 2000) / 1000.0))
        iso += ".%03dZ" % ((self.before + 2000) % 1000)
        self.assertEqual(self.read(bg, iso, 10), [(0, i) for i in range(2, 10)] + [(1, 2), (1, 3)])

        async def latest():
            async with kws_connect(self.ws_url(bg, "topics=%s&offset=latest" % self.t)) as ws:
                self.assertEqual((await recv_json(ws))["type"], "subscribed")
                self.send(self.t, "-p", "0", "new")
                d = await recv_json(ws)
                self.assertEqual((d["message"], d["offset"]), ("new", 10))

        run(latest())

    def test_history_older_than_the_ring_then_live_without_gap(self):
        # A tiny ring forces the catch-up reader; live messages keep coming.
        bg = self.serve("--ring-bytes", "1k")

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + self.t)) as first:
                await recv_json(first)
                self.send(self.t, "-p", "0", input="".join("live-%d\n" % i for i in range(30)))
                async with kws_connect(self.ws_url(bg, "topics=%s&offset=earliest" % self.t)) as late:
                    await recv_json(late)
                    self.send(self.t, "-p", "0", input="".join("more-%d\n" % i for i in range(30)))
                    got = []
                    while len(got) < 74:
                        got.append(await recv_json(late))
                    p0 = [d["offset"] for d in got if d["partition"] == 0]
                    self.assertEqual(p0, list(range(70)))
                    self.assertEqual(got[-1]["message"], "more-29")

        run(go())


class Groups(ServeTestCase):
    def test_two_sessions_sharing_a_group_get_each_message_once(self):
        bg = self.serve()
        t = self.create(self.topic())
        group = "g-" + t

        async def go():
            url = self.ws_url(bg, "topics=%s&group.id=%s" % (t, group))
            async with kws_connect(url) as a, kws_connect(url) as b:
                self.assertEqual((await recv_json(a))["type"], "subscribed")
                self.assertEqual((await recv_json(b))["type"], "subscribed")
                seen = {a: [], b: []}

                # Probe both partitions until both members are assigned one each.
                deadline = time.monotonic() + 40
                n = 0
                while not (any(d.get("message", "").startswith("probe") for d in seen[a]) and
                           any(d.get("message", "").startswith("probe") for d in seen[b])):
                    self.assertLess(time.monotonic(), deadline, "the group never split the partitions: %r" % seen)
                    n += 1
                    self.send(t, "-p", str(n % 2), "probe-%d" % n)
                    await asyncio.gather(drain(a, 0.3, seen[a]), drain(b, 0.3, seen[b]))
                for ws in (a, b):
                    seen[ws].clear()
                self.send(t, "-K", ":", input="".join("k%d:m-%d\n" % (i, i) for i in range(40)))
                await asyncio.gather(drain(a, 3, seen[a]), drain(b, 3, seen[b]))
                got_a = [d["message"] for d in seen[a] if d.get("message", "").startswith("m-")]
                got_b = [d["message"] for d in seen[b] if d.get("message", "").startswith("m-")]
                self.assertTrue(got_a and got_b, (got_a, got_b))
                self.assertEqual(sorted(got_a + got_b), sorted("m-%d" % i for i in range(40)))

        run(go(), timeout=90)

    def test_subscribed_comes_after_the_group_join_so_nothing_sent_after_it_is_missed(self):
        # A new group waits about 3 s for its first assignment and then starts
        # at the end: a `subscribed` sent before that would let a client
        # produce into the gap and never see its own message.
        bg = self.serve()
        t = self.create(self.topic())

        async def go():
            url = self.ws_url(bg, "topics=%s&group.id=g-%s&offset=latest" % (t, t))
            async with kws_connect(url) as ws:
                started = time.monotonic()
                self.assertEqual((await recv_json(ws, timeout=30))["type"], "subscribed")
                self.assertGreater(time.monotonic() - started, 0.5, "subscribed came before the group could join")
                self.send(t, "-p", "0", "right-after")
                self.send(t, "-p", "1", "right-after")
                got = await recv_until(ws, lambda d: d.get("message") == "right-after", timeout=15)
                self.assertEqual(got[-1]["message"], "right-after")

        run(go(), timeout=60)

    def test_group_sessions_cannot_change_topics(self):
        bg = self.serve()
        t = self.create(self.topic())

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=%s&group.id=g-%s" % (t, t))) as ws:
                await recv_json(ws)
                await ws.send(json.dumps({"type": "subscribe", "topics": [t], "id": 1}))
                err = (await recv_until(ws, is_type("error")))[-1]
                self.assertEqual(err["code"], "bad_frame")

        run(go())


class FlowControl(ServeTestCase):
    broker_args = ["--partitions", "4"]

    def rss_kb(self, bg):
        with open("/proc/%d/status" % bg.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def flood(self, t, count=1200, size=8000):
        line = "x" * size
        self.send(t, input="".join("%06d-%s\n" % (i, line) for i in range(count)))
        return count

    def test_slow_client_is_closed_and_memory_stays_bounded(self):
        bg = self.serve("--client-buffer", "256k", "--ring-bytes", "64k")
        t = self.topic()
        self.send(t, "seed")
        client = RawClient(bg.address, "/v2/broker/?topics=" + t, rcvbuf=4096)
        self.assertEqual(client.status, 101)
        kwstest.wait_until(lambda: self.metrics(bg).get("kws_serve_topic_subscribers{topic=%s}" % t) == 1,
                           what="the subscription")
        before = self.rss_kb(bg)
        self.flood(t)  # ~10 MB while the client reads nothing
        kwstest.wait_until(lambda: self.metrics(bg)["kws_serve_slow_client_closes_total"] == 1, timeout=30,
                           what="the slow client to be closed")
        growth = self.rss_kb(bg) - before
        # In the sanitizer builds RSS is mostly shadow memory and allocator
        # quarantine (TSan: +200 MB here), so the bound means something only
        # in the plain build, which runs this same test.
        if not os.environ.get("KWS_SANITIZER_REPORTS"):
            self.assertLess(growth, 48 * 1024, "kws serve grew by %d kB for one slow client" % growth)
        # Reading now, the client finds the close frame after what fit in the buffers.
        frames = list(client.frames(timeout=5))
        client.close()
        self.assertEqual(client.closed_with and client.closed_with[0], 1008, frames[-1:])
        self.assertIn(b"slow client", client.closed_with[1])

    def test_drop_oldest_counts_every_dropped_message(self):
        bg = self.serve("--client-buffer", "256k", "--slow-client", "drop-oldest", "--ring-bytes", "64k")
        t = self.topic()
        self.send(t, "seed")
        client = RawClient(bg.address, "/v2/broker/?topics=" + t, rcvbuf=4096)
        kwstest.wait_until(lambda: self.metrics(bg).get("kws_serve_topic_subscribers{topic=%s}" % t) == 1,
                           what="the subscription")
        # 3.2 MB: well under what the embedded broker keeps per partition
        # (about 5 MB, docs/BENCHMARKS.md; more and the oldest are gone before the hub reads them, and
        # could be neither delivered nor counted as dropped by kws).
        sent = self.flood(t, count=400)
        kwstest.wait_until(lambda: self.metrics(bg).get("kws_serve_topic_messages_total{topic=%s}" % t, 0) >= sent,
                           timeout=60, what="the hub to read everything")
        received, dropped = 0, 0
        for opcode, payload in client.frames(timeout=3):
            doc = json.loads(payload)
            if doc.get("type") == "dropped":
                dropped += doc["count"]
            elif doc.get("type") is None:
                received += 1
        client.close()
        self.assertGreater(dropped, 0)
        self.assertEqual(received + dropped, sent, "every message is either delivered or counted as dropped")
        self.assertEqual(self.metrics(bg)["kws_serve_dropped_total"], dropped)


class Loss(ServeTestCase):
    """Messages Kafka deletes before the bridge read them are never skipped
    silently: the embedded broker keeps about 5 MiB per partition, so a
    bridge stopped while 12 MB arrive finds most of them gone."""

    def test_messages_deleted_before_the_hub_read_them_are_reported(self):
        bg = self.serve()
        t = self.create(self.topic())

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + t)) as ws:
                start = (await recv_json(ws))["start_offsets"][0]
                bg.signal(signal.SIGSTOP)
                try:
                    count = 4000
                    self.send(t, "-p", "0", input="".join("%04d:%s\n" % (i, "x" * 3000) for i in range(count)))
                finally:
                    bg.signal(signal.SIGCONT)
                lost, offsets = None, []
                while not offsets or offsets[-1] < start + count - 1:
                    d = await recv_json(ws, timeout=30)
                    if d.get("type") == "lost":
                        self.assertIsNone(lost, "one lost notice for one gap")
                        self.assertFalse(offsets, "the notice comes before the next message")
                        lost = d
                    elif "offset" in d and d["partition"] == 0:
                        offsets.append(d["offset"])
                self.assertIsNotNone(lost, "no lost notice; got offsets from %r" % offsets[:3])
                self.assertEqual((lost["topic"], lost["partition"], lost["from"]), (t, 0, start))
                self.assertEqual(offsets, list(range(lost["to"] + 1, start + count)), "no other gap")
                return lost

        lost = run(go(), timeout=90)
        missing = lost["to"] - lost["from"] + 1
        self.assertGreater(missing, 1000)
        kwstest.wait_until(lambda: self.metrics(bg).get(
            "kws_serve_lost_messages_total{partition=0,topic=%s}" % t) == missing, what="the lost counter")
        self.assertIn("no longer exist", bg.err.decode())  # a warning, without -v


class Hostile(ServeTestCase):
    """What a hostile probe did to kws serve, each now refused or bounded."""

    def test_a_burst_of_history_requests_does_not_wedge_other_clients(self):
        bg = self.serve()
        t = self.create(self.topic())
        other = self.create(self.topic("other"))

        async def go():
            async with kws_connect(self.ws_url(bg)) as hostile, kws_connect(self.ws_url(bg, "topics=" + other)) as reader:
                await recv_json(reader)
                for i in range(300):
                    await hostile.send(json.dumps({"type": "subscribe", "topics": [t], "offset": "-5", "id": i}))
                    await hostile.send(json.dumps({"type": "unsubscribe", "topics": [t]}))
                # Meanwhile another client subscribes at once, and live messages flow.
                started = time.monotonic()
                async with kws_connect(self.ws_url(bg, "topics=%s&offset=-1" % other)) as newcomer:
                    self.assertEqual((await recv_json(newcomer, timeout=3))["type"], "subscribed")
                self.send(other, "live")
                await recv_until(reader, lambda d: d.get("message") == "live", timeout=3)
                return time.monotonic() - started

        self.assertLess(run(go()), 5)
        started = time.monotonic()
        bg.signal(signal.SIGTERM)
        bg.wait(timeout=15)
        self.assertLess(time.monotonic() - started, 10, "SIGTERM must stop it promptly")

    def test_a_ping_flood_from_a_client_that_never_reads_stays_bounded(self):
        bg = self.serve()
        client = RawClient(bg.address, "/v2/broker/", rcvbuf=4096)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        before = FlowControl.rss_kb(None, bg)
        ping = bytes([0x89, 0x80 | 125]) + b"\x00\x00\x00\x00" + b"p" * 125
        deadline = time.monotonic() + 5
        sent = 0
        client.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                client.sock.sendall(ping * 256)
                sent += 256
            except (socket.timeout, BrokenPipeError, ConnectionResetError):
                break
        growth = FlowControl.rss_kb(None, bg) - before
        client.close()
        self.assertGreater(sent, 10000, "the flood reached the server")
        if not os.environ.get("KWS_SANITIZER_REPORTS"):
            self.assertLess(growth, 16 * 1024, "kws serve grew by %d kB answering %d pings" % (growth, sent))
        self.assertEqual(self.http(bg, "/healthz"), (200, "ok\n"))

    def test_a_client_that_reads_nothing_under_drop_oldest_is_closed_after_write_timeout(self):
        bg = self.serve("--client-buffer", "64k", "--slow-client", "drop-oldest", "--write-timeout", "2s")
        t = self.create(self.topic())
        client = RawClient(bg.address, "/v2/broker/?topics=" + t, rcvbuf=4096)
        kwstest.wait_until(lambda: self.metrics(bg).get("kws_serve_topic_subscribers{topic=%s}" % t) == 1,
                           what="the subscription")
        before = FlowControl.rss_kb(None, bg)
        # Until the kernel's buffers on both sides are full and the bridge's
        # writes stop: then 2 s without progress closes the client.
        deadline = time.monotonic() + 60
        while self.metrics(bg)["kws_serve_stalled_closes_total"] == 0:
            self.assertLess(time.monotonic(), deadline, "the stalled client was never closed")
            self.send(t, "-p", "0", input="".join("%s\n" % ("y" * 4000) for _ in range(200)))
            time.sleep(0.5)
        growth = FlowControl.rss_kb(None, bg) - before
        if not os.environ.get("KWS_SANITIZER_REPORTS"):
            self.assertLess(growth, 24 * 1024, "kws serve grew by %d kB for one stalled client" % growth)
        client.close()

    def test_topic_floods_are_capped_per_session_and_readiness_stays_cheap(self):
        bg = self.serve("--max-topics", "20")
        prefix = self.topic("flood")

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                codes = []
                for i in range(25):
                    await ws.send(json.dumps({"id": i, "topic": "%s-%d" % (prefix, i), "message": "m"}))
                    d = (await recv_until(ws, lambda d: d.get("type") in ("ack", "error")))[-1]
                    codes.append(d.get("code", d["type"]))
                return codes

        codes = run(go())
        self.assertEqual(codes, ["ack"] * 20 + ["topic_limit"] * 5)
        started = time.monotonic()
        self.assertEqual(self.http(bg, "/readyz")[0], 200)
        self.assertLess(time.monotonic() - started, 1)

    def test_producing_to_a_missing_topic_can_be_refused(self):
        bg = self.serve("--create-topics", "false")
        missing = self.topic("missing")

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"id": 1, "topic": missing, "message": "m"}))
                return (await recv_until(ws, lambda d: d.get("type") in ("ack", "error"), timeout=15))[-1]

        reply = run(go())
        self.assertEqual((reply["type"], reply.get("code")), ("error", "unknown_topic"), reply)
        self.kws("topics", missing, rc=1)  # it was not created

    def test_a_frozen_broker_ends_every_produce_within_the_produce_timeout(self):
        broker = kwstest.Broker("--partitions", "1")
        self.addCleanup(broker.stop)
        bg = self.serve("--produce-timeout", "2s", brokers=broker.brokers)
        t = self.topic()
        self.kws("send", t, "seed", brokers=broker.brokers)

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                broker.proc.send_signal(signal.SIGSTOP)
                try:
                    # SIGSTOP takes effect asynchronously: the produce must
                    # reach a broker that is really stopped.
                    kwstest.wait_until(lambda: process_state(broker.proc.pid) == "T", what="the broker to stop")
                    started = time.monotonic()
                    await ws.send(json.dumps({"id": 1, "topic": t, "message": "frozen"}))
                    reply = (await recv_until(ws, lambda d: d.get("type") in ("ack", "error"), timeout=20))[-1]
                    return reply, time.monotonic() - started
                finally:
                    broker.proc.send_signal(signal.SIGCONT)

        reply, took = run(go())
        self.assertEqual(reply.get("code"), "timed_out", reply)
        self.assertLess(took, 10)

    def test_connections_beyond_the_descriptor_limit_get_503_and_health_checks_still_answer(self):
        bg = self.serve(nofile=(400, 400))
        self.assertIn("open-file limit", bg.err.decode())
        cap = int(self.metrics(bg)["kws_serve_max_connections"])
        self.assertLess(cap, 400)
        clients, refused = [], 0
        for _ in range(cap + 20):
            c = RawClient(bg.address, "/v2/broker/")
            if c.status == 503:
                refused += 1
                c.close()
            else:
                clients.append(c)
        self.assertEqual(len(clients), cap)
        self.assertEqual(refused, 20)
        started = time.monotonic()
        self.assertEqual(self.http(bg, "/healthz"), (200, "ok\n"))
        self.assertLess(time.monotonic() - started, 2)
        for c in clients:
            c.close()

    def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(self):
        bg = self.serve(nofile=(64, 1000))
        with open("/proc/%d/limits" % bg.proc.pid) as f:
            line = next(l for l in f if l.startswith("Max open files"))
        self.assertEqual(line.split()[3:5], ["1000", "1000"], line)
        cap = int(self.metrics(bg)["kws_serve_max_connections"])
        self.assertGreater(cap, 64)
        self.assertLess(cap, 1000)

    def test_kafka_coming_back_makes_the_bridge_ready_again(self):
        broker = kwstest.Broker("--partitions", "1")
        self.addCleanup(broker.stop)
        bg = self.serve("--timeout", "2", brokers=broker.brokers)
        kwstest.wait_until(lambda: self.http(bg, "/readyz")[0] == 200, what="ready")

        async def go():
            # A kws client is told when Kafka stops answering and when it
            # is back; one that connects in between is told at once.
            async with kws_connect(self.ws_url(bg)) as ws:
                broker.proc.send_signal(signal.SIGSTOP)
                try:
                    gone = (await recv_until(ws, is_type("kafka"), timeout=15))[-1]
                    self.assertFalse(gone["reachable"], gone)
                    self.assertTrue(gone.get("message"), gone)
                    self.assertEqual(self.http(bg, "/readyz")[0], 503)
                    async with kws_connect(self.ws_url(bg)) as late:
                        self.assertFalse((await recv_until(late, is_type("kafka")))[-1]["reachable"])
                finally:
                    broker.proc.send_signal(signal.SIGCONT)
                back = (await recv_until(ws, is_type("kafka"), timeout=15))[-1]
                self.assertEqual(back, {"type": "kafka", "reachable": True})

        run(go(), timeout=60)
        kwstest.wait_until(lambda: self.http(bg, "/readyz")[0] == 200, timeout=15, what="ready again")
        self.assertEqual(self.metrics(bg)["kws_serve_kafka_ready"], 1)
        err = bg.err.decode()
        self.assertIn("not ready", err)
        self.assertIn("Kafka answers again", err)


class Liveness(ServeTestCase):
    def test_quiet_client_answering_pings_stays_and_silent_one_is_closed(self):
        bg = self.serve("--ping-interval", "0.2", "--idle-timeout", "1")
        t = self.create(self.topic())

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + t)) as ws:  # answers pings by itself
                await recv_json(ws)
                silent = RawClient(bg.address, "/v2/broker/?topics=" + t)  # never answers
                await asyncio.sleep(2.5)
                frames = list(silent.frames(timeout=1))
                self.assertIn(9, [op for op, _ in frames], "the server pings")
                self.assertEqual(silent.closed_with and silent.closed_with[0], 1000, frames)
                self.assertIn(b"idle timeout", silent.closed_with[1])
                silent.close()
                self.send(t, "still-here")
                self.assertEqual((await recv_until(ws, lambda d: d.get("message") == "still-here"))[-1]["topic"], t)

        run(go())
        self.assertEqual(self.metrics(bg)["kws_serve_idle_closes_total"], 1)

    def test_graceful_shutdown_acks_then_1001_then_exit_143(self):
        bg = self.serve()
        t = self.create(self.topic())

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + t)) as ws:
                await recv_json(ws)
                for i in range(50):
                    await ws.send(json.dumps({"id": i, "topic": t, "message": "m%d" % i}))
                bg.signal(signal.SIGTERM)
                acks = set()
                try:
                    while True:
                        d = await recv_json(ws)
                        if d.get("type") == "ack":
                            acks.add(d["id"])
                except websockets.exceptions.ConnectionClosed as e:
                    self.assertEqual(e.code, 1001)
                self.assertEqual(acks, set(range(50)))

        run(go())
        self.assertEqual(bg.wait(timeout=15), 143, bg.describe())
        self.assertEqual(len([e for e in self.tail_json(t) if e["message"].startswith("m")]), 50)


class Settings(ServeTestCase):
    """kws serve's serve.* settings: flag > KWS_SERVE_* > config file >
    default, as `kws config` shows them (test_config.py), here by what the
    server does."""

    def conf(self, text):
        path = os.path.join(kwstest.scratch_dir(), "kws.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def port_of(self, bg):
        return int(bg.address.rsplit(":", 1)[1])

    def test_listen_from_environment_file_and_flag(self):
        # Without them kws serve would take 127.0.0.1:8080; port 0 means any free port.
        bg = self.serve(listen=None, env=kwstest.clean_env(KWS_SERVE_LISTEN="127.0.0.1:0"))
        self.assertNotEqual(self.port_of(bg), 8080, bg.describe())
        f = self.conf("kws.serve.listen=127.0.0.1:0\n")
        bg = self.serve("-F", f, listen=None)
        self.assertNotEqual(self.port_of(bg), 8080, bg.describe())
        # The flag wins, so a bad environment value is never looked at; localhost means 127.0.0.1.
        bg = self.serve("-F", f, listen="localhost:0", env=kwstest.clean_env(KWS_SERVE_LISTEN="nonsense"))
        self.assertRegex(bg.url, r"^ws://127\.0\.0\.1:\d+/$")

    def test_port_alone_means_loopback(self):
        # websocat's forms: -l PORT and -l :PORT bind 127.0.0.1, never every interface.
        for listen in ("0", ":0"):
            bg = self.serve(listen=listen)
            self.assertRegex(bg.url, r"^ws://127\.0\.0\.1:\d+/$", bg.describe())
        bg = self.serve(listen=None, env=kwstest.clean_env(KWS_SERVE_LISTEN=":0"))
        self.assertRegex(bg.url, r"^ws://127\.0\.0\.1:\d+/$", bg.describe())

    def test_max_frame_flag_beats_environment_beats_file(self):
        t = self.create(self.topic())
        frame = json.dumps({"id": 1, "topic": t, "message": "y" * 2000})

        def reply_to_2k_frame(bg):
            async def go():
                async with kws_connect(self.ws_url(bg)) as ws:
                    await ws.send(frame)
                    return (await recv_until(ws, lambda d: d.get("type") in ("ack", "error")))[-1]

            return run(go())

        small, large = self.conf("kws.serve.max_frame=1k\n"), self.conf("kws.serve.max_frame=64k\n")
        self.assertEqual(reply_to_2k_frame(self.serve("-F", small)).get("code"), "too_large")
        self.assertEqual(reply_to_2k_frame(self.serve("-F", large))["type"], "ack")
        env_small = kwstest.clean_env(KWS_SERVE_MAX_FRAME="1k")
        self.assertEqual(reply_to_2k_frame(self.serve("-F", large, env=env_small)).get("code"), "too_large")
        self.assertEqual(reply_to_2k_frame(self.serve("-F", small, "--max-frame", "64k", env=env_small))["type"],
                         "ack")

    def test_bad_value_is_a_usage_error_naming_its_origin_before_anything_starts(self):
        # A dead broker address: the error must come before any attempt to reach Kafka.
        holder = kwstest.free_port_holder()
        self.addCleanup(holder.close)
        dead = "127.0.0.1:%d" % holder.getsockname()[1]
        bad_file = self.conf("kws.serve.client_buffer=lots\n")
        cases = [
            ({"KWS_SERVE_CLIENT_BUFFER": "lots"}, [],
             "kws: error: KWS_SERVE_CLIENT_BUFFER: 'lots' is not a size in bytes"),
            ({}, ["--client-buffer", "1Mb"], "kws: error: --client-buffer: '1Mb' is not a size in bytes"),
            ({}, ["-F", bad_file], "kws: error: %s:1: kws.serve.client_buffer: 'lots' is not a size" % bad_file),
            ({}, ["--slow-client", "sometimes"],
             "kws: error: --slow-client: 'sometimes' is not one of: close, drop-oldest, latest-per-key"),
            ({}, ["--ping-interval", "0"], "kws: error: --ping-interval: '0': the duration must be above 0"),
            ({}, ["--max-connections", "1000001"],
             "kws: error: --max-connections: '1000001' must be a whole number from 1 to 1000000"),
            ({"KWS_SERVE_TLS_CERT": bad_file}, [],
             "kws: error: KWS_SERVE_TLS_CERT: TLS needs both --tls-cert and --tls-key"),
            ({"KWS_SERVE_TLS_CERT": bad_file, "KWS_SERVE_TLS_KEY": bad_file}, [],
             "kws: error: KWS_SERVE_TLS_CERT: TLS certificate %s: not a readable PEM certificate chain" % bad_file),
        ]
        for env, args, message in cases:
            r = self.kws("serve", "-l", "127.0.0.1:0", *args, brokers=dead, rc=2, timeout=10,
                         env=kwstest.clean_env(**env))
            self.assertIn(message, r.stderr, str(r))
            self.assertEqual(r.stdout, "", str(r))
        # A flag hides the bad environment value and the bad file line.
        bg = self.serve("-F", bad_file, "--client-buffer", "1M", env=kwstest.clean_env(KWS_SERVE_CLIENT_BUFFER="lots"))
        self.assertEqual(self.http(bg, "/healthz"), (200, "ok\n"))


class Metrics(ServeTestCase):
    def test_counters_move_and_parse_with_an_independent_parser(self):
        bg = self.serve()
        t = self.create(self.topic())
        m0 = self.metrics(bg)
        self.assertEqual(m0["kws_serve_connections"], 0)

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + t)) as ws:
                await recv_json(ws)
                await ws.send(json.dumps({"id": 1, "topic": t, "message": "metered"}))
                await recv_until(ws, lambda d: d.get("message") == "metered")
                await ws.send("oops")
                await recv_until(ws, is_type("error"))
                m = self.metrics(bg)
                self.assertEqual(m["kws_serve_connections"], 1)
                kwstest.wait_until(lambda: self.metrics(bg).get("kws_serve_topic_subscribers{topic=%s}" % t) == 1,
                                   what="the subscriber gauge")
                return m

        m1 = run(go())
        self.assertGreaterEqual(m1["kws_serve_frames_in_total"], 2)
        self.assertGreaterEqual(m1["kws_serve_frames_out_total"], 3)
        self.assertGreater(m1["kws_serve_bytes_out_total"], m0["kws_serve_bytes_out_total"])
        self.assertEqual(m1["kws_serve_client_errors_total"], 1)
        # Hub figures refresh twice a second.
        kwstest.wait_until(lambda: self.metrics(bg)["kws_serve_kafka_messages_total"] >= 1, what="kafka_messages_total")
        kwstest.wait_until(lambda: self.metrics(bg)["kws_serve_produced_total"] == 1, what="produced_total")
        self.assertEqual(self.metrics(bg)["kws_serve_connections_opened_total"], 1)


if __name__ == "__main__":
    kwstest.main(requires_modules={"websockets": websockets, "prometheus_client": text_string_to_metric_families})
