"""kws ingest against feeds the tests start themselves (python3-websockets,
over ws and wss with a CA made here by openssl) and the embedded broker;
what reached Kafka is read back with python3-kafka, an independent client.

Each feed is an asyncio server on its own thread whose behaviour per
connection is a coroutine; it records what it saw (handshake headers,
messages from kws, what it sent) so the tests compare both ends."""

import asyncio
import os
import re
import shlex
import signal
import ssl
import subprocess
import threading
import time

import kwstest

try:
    import websockets
except ImportError:
    websockets = None
try:
    import kafka
    from kafka import KafkaConsumer, TopicPartition
except ImportError:
    kafka = None

FAST = ["--backoff-initial", "100ms", "--backoff-max", "400ms", "--ping-interval", "200ms",
        "--pong-timeout", "2s"]


class Feed:
    """A WebSocket server on 127.0.0.1 whose per-connection behaviour is
    `script(feed, conn)`, a coroutine; `conn` is a Connection record."""

    class Connection:
        def __init__(self, ws, index):
            self.ws, self.index = ws, index
            self.headers = ws.request_headers  # case-insensitive get()
            self.path = ws.path
            self.received = []          # messages from kws, in order
            self.received_at = []
            self.sent = []              # messages whose send completed
            self.subprotocol = ws.subprotocol

    def __init__(self, script, tls=None, subprotocols=None):
        self.script = script
        self.connections = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop_event = None
        self.tls = tls
        self.subprotocols = subprotocols
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise AssertionError("the test feed did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self):
        self.stop_event = asyncio.Event()
        async with websockets.serve(self._handle, "127.0.0.1", 0, ssl=self.tls, max_size=None,
                                    subprotocols=self.subprotocols, ping_interval=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stop_event.wait()

    async def _handle(self, ws, path=None):
        conn = Feed.Connection(ws, len(self.connections) + 1)
        self.connections.append(conn)

        async def reader():
            try:
                async for m in ws:
                    conn.received.append(m)
                    conn.received_at.append(time.monotonic())
            except websockets.ConnectionClosed:
                pass

        reading = asyncio.ensure_future(reader())
        scripted = asyncio.ensure_future(self.script(self, conn))
        # The script ends with the connection: a closed server must not wait
        # for a script that sleeps.
        closed = asyncio.ensure_future(ws.wait_closed())
        await asyncio.wait([scripted, closed], return_when=asyncio.FIRST_COMPLETED)
        for task in (reading, scripted, closed):
            task.cancel()

    def url(self, path="/feed"):
        scheme = "wss" if self.tls else "ws"
        host = "localhost" if self.tls else "127.0.0.1"
        return "%s://%s:%d%s" % (scheme, host, self.port, path)

    def close(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)

    @staticmethod
    async def send(conn, message):
        await conn.ws.send(message)
        conn.sent.append(message)

    @staticmethod
    async def wait_for_messages(conn, n, timeout=10):
        deadline = time.monotonic() + timeout
        while len(conn.received) < n:
            if time.monotonic() > deadline:
                raise AssertionError("kws sent %r, expected %d message(s)" % (conn.received, n))
            await asyncio.sleep(0.01)


def server_tls(files):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["cert"], files["key"])
    return ctx


def summary(result_or_err):
    text = result_or_err if isinstance(result_or_err, str) else result_or_err.stderr
    m = re.search(r"summary: (.*?) \(", text)
    if not m:
        raise AssertionError("no summary line in stderr:\n" + text)
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def metrics_once(bg, needle, what):
    """The text of `kws ingest --metrics 127.0.0.1:0`'s page, once it contains
    `needle`: the port is read from the running process's stderr."""
    def port():
        m = re.search(rb"metrics at http://127.0.0.1:(\d+)/metrics", bg.err)
        return m and int(m.group(1))
    p = kwstest.wait_until(port, what="the metrics address on stderr")

    def scrape():
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % p, timeout=5) as r:
            text = r.read().decode()
        return text if needle in text else None
    return kwstest.wait_until(scrape, what=what)


class IngestCase(kwstest.KwsTestCase):
    broker_args = ["--partitions", "1"]

    def feed(self, script, **kwargs):
        f = Feed(script, **kwargs)
        self.addCleanup(f.close)
        return f

    def ingest(self, url, topic, *args, rc=0, timeout=30, input=None, env=None):
        return self.kws("ingest", url, topic, *args, rc=rc, timeout=timeout, input=input, env=env)

    def records(self, topic, brokers=None):
        """Every record of topic, read with python3-kafka: (key, value, headers dict) in offset order."""
        c = KafkaConsumer(bootstrap_servers=brokers or self.brokers, enable_auto_commit=False,
                          request_timeout_ms=15000)
        try:
            parts = kwstest.wait_until(lambda: c.partitions_for_topic(topic), what="topic metadata")
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            c.assign(tps)
            c.seek_to_beginning(*tps)
            ends = c.end_offsets(tps)
            out = []
            deadline = time.monotonic() + 20
            while any(c.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise AssertionError("could not read %s to its end" % topic)
                for tp, msgs in c.poll(timeout_ms=500).items():
                    for m in msgs:
                        out.append((m.key, m.value, {k: v for k, v in m.headers}, m.partition, m.offset))
            out.sort(key=lambda r: (r[3], r[4]))
            return [(k, v, h) for k, v, h, _, _ in out]
        finally:
            c.close()


def drop_after(per_connection, drops, prefix="m"):
    """A feed script: waits for the two open messages, sends `per_connection`
    messages, and closes the connection for the first `drops` connections."""
    async def script(feed, conn):
        await Feed.wait_for_messages(conn, 2)
        for i in range(per_connection):
            await Feed.send(conn, '{"c":%d,"i":%d,"p":"%s"}' % (conn.index, i, prefix))
        if conn.index <= drops:
            await conn.ws.close(1011, "test drop")
        else:
            await asyncio.sleep(30)
    return script


class Reconnect(IngestCase):
    def check_drops(self, tls_files=None):
        per, drops = 40, 3
        f = self.feed(drop_after(per, drops), tls=server_tls(tls_files) if tls_files else None)
        t = self.topic()
        extra = ["--ca", tls_files["ca"]] if tls_files else []
        r = self.ingest(f.url(), t, "--subscribe", "first", "--subscribe", '{"op":"second"}',
                        "--count", per * (drops + 1), *FAST, *extra)
        self.assertEqual(len(f.connections), drops + 1, str(r))
        for conn in f.connections:
            self.assertEqual(conn.received[:2], ["first", '{"op":"second"}'], "open messages, in order")
        sent = [m for conn in f.connections for m in conn.sent]
        recs = self.records(t)
        self.assertEqual([v.decode() for _, v, _ in recs], sent, "exactly once, in order")
        conns = [int(h["kws-connection"]) for _, _, h in recs]
        self.assertEqual(conns, [i for i in range(1, drops + 2) for _ in range(per)])
        downtimes = [(int(h["kws-connection"]), int(h["kws-downtime-ms"])) for _, _, h in recs
                     if "kws-downtime-ms" in h]
        self.assertEqual([c for c, _ in downtimes], [2, 3, 4], "downtime on each reconnection's first record")
        for _, d in downtimes:
            self.assertLess(d, 3000)
        self.assertEqual(recs[0][2]["kws-source"].decode(), f.url())
        s = summary(r)
        self.assertEqual((s["received"], s["produced"], s["connections"]), (160, 160, 4))

    def test_feed_drops_resubscribe_exactly_once_ws(self):
        self.check_drops()

    def test_feed_drops_resubscribe_exactly_once_wss(self):
        self.check_drops(kwstest.make_ca(kwstest.scratch_dir(), "good"))

    def test_marker_records(self):
        f = self.feed(drop_after(3, 1))
        t = self.topic()
        subs = os.path.join(kwstest.scratch_dir(), "subscribe")
        with open(subs, "w") as fh:
            fh.write("a\r\nb\n")
        self.ingest(f.url(), t, "--subscribe-file", subs, "--markers", "record", "--count", 6, *FAST)
        self.assertEqual([c.received[:2] for c in f.connections], [["a", "b"], ["a", "b"]])
        recs = self.records(t)
        markers = [(v, h) for _, v, h in recs if "kws-marker" in h]
        self.assertEqual([h["kws-marker"] for _, h in markers], [b"connected", b"reconnected"])
        self.assertRegex(markers[1][0].decode(), r'^\{"kws_marker":"connected","connection":2,"downtime_ms":\d+\}$')
        # The marker comes before the connection's data.
        self.assertEqual([h.get("kws-marker", b"data") for _, _, h in recs],
                         [b"connected", b"data", b"data", b"data", b"reconnected", b"data", b"data", b"data"])

    def test_exhausted_retries_exit_nonzero(self):
        holder = kwstest.free_port_holder()
        self.addCleanup(holder.close)
        url = "ws://127.0.0.1:%d/" % holder.getsockname()[1]
        start = time.monotonic()
        r = self.ingest(url, self.topic(), "--max-retries", 2, "--backoff-initial", "50ms", rc=1)
        self.assertLess(time.monotonic() - start, 10)
        self.assertStderrMentions(r, "giving up after 3 failed attempt(s)", "--max-retries 2", "refused")

    def test_silent_feed_reconnects(self):
        async def script(feed, conn):
            await Feed.send(conn, "hello %d" % conn.index)
            await asyncio.sleep(30)  # then silence
        f = self.feed(script)
        t = self.topic()
        r = self.kws("ingest", f.url(), t, "--stale-after", "300ms", "--count", 3, *FAST)
        self.assertEqual(len(f.connections), 3)
        self.assertStderrMentions(r, "no message for 300ms (--stale-after)")
        self.assertEqual([v for _, v, _ in self.records(t)], [b"hello 1", b"hello 2", b"hello 3"])

    def test_pong_timeout_reconnects(self):
        """A feed that completes the handshake, sends one message per
        connection and then never answers a ping (a raw socket, since
        python3-websockets always answers)."""
        import base64
        import hashlib
        import socket
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        self.addCleanup(srv.close)
        conns = []

        def serve():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                conns.append(c)
                req = b""
                while b"\r\n\r\n" not in req:
                    req += c.recv(4096)
                key = re.search(rb"(?i)sec-websocket-key: *(\S+)", req).group(1)
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                msg = ("conn %d" % len(conns)).encode()
                c.sendall(bytes([0x81, len(msg)]) + msg)  # then silence: pings go unanswered
        threading.Thread(target=serve, daemon=True).start()
        self.addCleanup(lambda: [c.close() for c in conns])
        t = self.topic()
        url = "ws://127.0.0.1:%d/" % srv.getsockname()[1]
        r = self.kws("ingest", url, t, "--ping-interval", "200ms", "--pong-timeout", "300ms",
                     "--backoff-initial", "50ms", "--count", 3)
        self.assertStderrMentions(r, "no pong within 300 ms")
        self.assertEqual([v for _, v, _ in self.records(t)], [b"conn 1", b"conn 2", b"conn 3"])

    def test_await_reply_timeout_reconnects(self):
        async def script(feed, conn):
            await Feed.wait_for_messages(conn, 1)
            if conn.index >= 2:
                await Feed.send(conn, '{"event":"subscribed"}')
                await Feed.send(conn, "data")
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        r = self.kws("ingest", f.url(), t, "--subscribe", "sub", "--await-reply", '"subscribed"',
                     "--await-timeout", "300ms", "--count", 2, *FAST)
        self.assertStderrMentions(r, "no reply containing")
        self.assertEqual(len(f.connections), 2)


def raw_server(test, answer, upgrade_first=False):
    """A TCP server on 127.0.0.1 that reads a request head and answers every
    connection with the bytes `answer` (after a 101 upgrade when
    `upgrade_first`), then holds the connection open a while."""
    import base64
    import hashlib
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    test.addCleanup(srv.close)
    conns = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = c.recv(4096)
                if not chunk:
                    break
                req += chunk
            if upgrade_first:
                key = re.search(rb"(?i)sec-websocket-key: *(\S+)", req).group(1)
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            c.sendall(answer)
    threading.Thread(target=serve, daemon=True).start()
    test.addCleanup(lambda: [c.close() for c in conns])
    return srv.getsockname()[1], conns


class FeedErrors(IngestCase):
    """Failures retrying cannot fix end the first connection at once, in
    words that say what is wrong (they used to retry forever, saying "Host
    not found (authoritative): uninitialized (SSL routines)", "TLS handshake
    failed: shutdown while in init", "Generic error", "connection ended:
    Success"). --dry-run, so no Kafka is needed."""
    broker_args = None

    def fails_fast(self, url, *needles, args=()):
        start = time.monotonic()
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", url, self.topic(), *FAST, *args, timeout=30)
        self.assertEqual(r.rc, 1, str(r))
        self.assertLess(time.monotonic() - start, 5, "it must not retry\n" + str(r))
        self.assertNotIn("; retrying in", r.stderr, str(r))
        self.assertIn("--retry-permanent", r.stderr, str(r))
        for needle in needles:
            self.assertIn(needle, r.stderr, str(r))
        return r

    def test_unknown_host(self):
        r = self.fails_fast("ws://no-such-host.invalid/", "cannot resolve the feed's host name 'no-such-host.invalid'")
        self.assertNotIn("SSL", r.stderr, str(r))

    def test_http_404(self):
        port, _ = raw_server(self, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        self.fails_fast("ws://127.0.0.1:%d/nope" % port, "the feed answered HTTP 404 Not Found")

    def test_http_429_is_retried(self):
        port, conns = raw_server(self, b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", "ws://127.0.0.1:%d/" % port, self.topic(),
                        "--max-retries", 2, *FAST, timeout=30)
        self.assertEqual(r.rc, 1, str(r))
        self.assertIn("giving up after 3 failed attempt(s)", r.stderr, str(r))
        self.assertIn("HTTP 429", r.stderr, str(r))

    def test_retry_permanent_retries(self):
        port, conns = raw_server(self, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", "ws://127.0.0.1:%d/" % port, self.topic(),
                        "--retry-permanent", "--max-retries", 2, *FAST, timeout=30)
        self.assertEqual(r.rc, 1, str(r))
        self.assertIn("giving up after 3 failed attempt(s)", r.stderr, str(r))
        self.assertEqual(len(conns), 3, str(r))

    def test_wss_to_a_plain_port(self):
        async def script(feed, conn):
            await asyncio.sleep(5)
        f = self.feed(script)
        url = f.url().replace("ws://", "wss://")
        self.fails_fast(url, "answered the TLS handshake in plain text", "try ws:// instead of wss://")

    def test_ws_to_a_tls_port(self):
        async def script(feed, conn):
            await asyncio.sleep(5)
        f = self.feed(script, tls=server_tls(kwstest.make_ca(kwstest.scratch_dir(), "tlsport")))
        url = f.url().replace("wss://", "ws://")
        self.fails_fast(url, "speaks TLS", "use wss:// instead of ws://")

    def test_garbage_answer(self):
        port, _ = raw_server(self, b"SSH-2.0-OpenSSH_9.2\r\n")
        self.fails_fast("ws://127.0.0.1:%d/" % port, "the feed's answer is not an HTTP response")

    def test_invalid_utf8_text_frame_is_named(self):
        port, _ = raw_server(self, bytes([0x81, 2, 0xff, 0xfe]), upgrade_first=True)
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", "ws://127.0.0.1:%d/" % port, self.topic(),
                        "--max-retries", 0, *FAST, timeout=30)
        self.assertEqual(r.rc, 1, str(r))
        self.assertIn("the feed sent a text frame that is not UTF-8 (close 1007)", r.stderr, str(r))
        self.assertNotIn("Success", r.stderr, str(r))

    def test_after_a_healthy_connection_they_are_retried(self):
        """A feed that worked (confirmed and up 5 s) and then answers 404 may
        come back: kws retries, as it always did."""
        from http import HTTPStatus
        seen = []

        async def handler(ws, path=None):
            await ws.send("hello")
            await asyncio.sleep(5.5)  # healthy after 5 s

        def process_request(path, headers):
            seen.append(path)
            if len(seen) > 1:
                return HTTPStatus.NOT_FOUND, [], b"gone\n"
            return None

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        state = {}

        async def serve():
            async with websockets.serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
                state["port"] = server.sockets[0].getsockname()[1]
                state["stop"] = asyncio.Event()
                ready.set()
                await state["stop"].wait()
        thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
        thread.start()
        self.assertTrue(ready.wait(10))
        self.addCleanup(lambda: (loop.call_soon_threadsafe(state["stop"].set), thread.join(10)))
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", "-c", 5, "ws://127.0.0.1:%d/" % state["port"],
                        self.topic(), "--max-retries", 2, *FAST, timeout=60)
        self.assertEqual(r.rc, 1, str(r))
        # The body ("gone") is shown when it came in the same read as the head.
        self.assertRegex(r.stderr, r"cannot connect: the feed answered HTTP 404 Not Found(: gone)?; retrying", str(r))
        self.assertIn("giving up after 3 failed attempt(s)", r.stderr, str(r))


class Handshake(IngestCase):
    def test_bearer_and_headers_seen_by_feed(self):
        async def script(feed, conn):
            await Feed.send(conn, "x")
            await asyncio.sleep(30)
        f = self.feed(script, subprotocols=["v2.feed", "other"])
        d = kwstest.scratch_dir()
        token = os.path.join(d, "token")
        with open(token, "w") as fh:
            fh.write("s3cret-token\n")
        self.ingest(f.url("/path?x=1"), self.topic(), "--bearer-file", token, "--ws-header", "X-Api-Key: a,b, c",
                    "--ws-header", "X-Second:2", "--origin", "https://example.test", "--protocol", "v2.feed",
                    "--count", 1, *FAST)
        h = f.connections[0].headers
        self.assertEqual(h.get("Authorization"), "Bearer s3cret-token")
        self.assertEqual(h.get("X-Api-Key"), "a,b, c")
        self.assertEqual(h.get("X-Second"), "2")
        self.assertEqual(h.get("Origin"), "https://example.test")
        self.assertEqual(f.connections[0].subprotocol, "v2.feed")
        self.assertEqual(f.connections[0].path, "/path?x=1")
        # From the environment, so it stays out of ps.
        self.ingest(f.url(), self.topic(), "--count", 1, *FAST,
                    env=kwstest.clean_env(KWS_INGEST_BEARER="from-env"))
        self.assertEqual(f.connections[1].headers.get("Authorization"), "Bearer from-env")

    def test_wrong_ca_rejected(self):
        d = kwstest.scratch_dir()
        good, other = kwstest.make_ca(d, "good"), kwstest.make_ca(d, "other")
        async def script(feed, conn):
            await asyncio.sleep(5)
        f = self.feed(script, tls=server_tls(good))
        r = self.ingest(f.url(), self.topic(), "--ca", other["ca"], "--max-retries", 0, *FAST, rc=1)
        self.assertStderrMentions(r, "certificate verify failed")
        # Not even the system store trusts a test CA.
        r = self.ingest(f.url(), self.topic(), "--max-retries", 0, *FAST, rc=1)
        self.assertStderrMentions(r, "certificate verify failed")
        # A trusted certificate for another name: the host name is checked.
        elsewhere = kwstest.make_ca(d, "elsewhere", san="DNS:elsewhere.test")
        f2 = self.feed(script, tls=server_tls(elsewhere))
        r = self.ingest(f2.url(), self.topic(), "--ca", elsewhere["ca"], "--max-retries", 0, *FAST, rc=1)
        self.assertStderrMentions(r, "certificate verify failed: hostname mismatch")
        # And the right CA and name connect.
        self.ingest(f.url(), self.topic(), "--ca", good["ca"], "--duration", "300ms", *FAST)


class Records(IngestCase):
    def test_binary_frames_key_filter(self):
        raw = bytes(range(256))
        async def script(feed, conn):
            await Feed.send(conn, raw)                                   # binary, not JSON
            await Feed.send(conn, b'{"type":"trade","s":"BTC"}')         # binary JSON
            await Feed.send(conn, '{"type":"book","s":"ETH"}')           # filtered out
            await Feed.send(conn, '{"type":"trade","s":"ETH","n":1}')
            await Feed.send(conn, '{"type":"trade"}')                    # no key field
            await Feed.send(conn, '{"type":"trade","s":7}')              # a number as key
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        r = self.kws("ingest", f.url(), t, "--key-field", "/s", "--count", 5, *FAST)
        recs = self.records(t)
        self.assertEqual(recs[0][1], raw)
        self.assertEqual(recs[0][2].get("kws-frame"), b"binary")
        self.assertIsNone(recs[0][0])
        self.assertEqual([k for k, _, _ in recs], [None, b"BTC", b"ETH", b"ETH", None])
        self.assertEqual(recs[1][2].get("kws-frame"), b"binary")
        self.assertNotIn("kws-frame", recs[2][2])
        self.assertEqual(summary(r)["key_missing"], 2)

        t2 = self.topic("filter")
        f2 = self.feed(script)
        r = self.kws("ingest", f2.url(), t2, "--key-field", "/s", "--filter", "/type=trade", "--count", 4,
                     *FAST)
        self.assertEqual([(k, v) for k, v, _ in self.records(t2)],
                         [(b"BTC", b'{"type":"trade","s":"BTC"}'), (b"ETH", b'{"type":"trade","s":"ETH","n":1}'),
                          (None, b'{"type":"trade"}'), (b"7", b'{"type":"trade","s":7}')])
        self.assertEqual(summary(r)["filtered"], 2)  # the non-JSON frame and the book

    def test_dry_run_shows_key_and_filter_verdict(self):
        async def script(feed, conn):
            for m in ['{"type":"trade","s":"BTC"}', '{"type":"book","s":"ETH"}', '{"type":"trade"}', "not json",
                      '{"type":"trade","s":"late"}']:
                await Feed.send(conn, m)
            await asyncio.sleep(30)
        f = self.feed(script)
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", "--key-field", "/s", "--filter", "/type=trade",
                        "-c", 4, f.url(), self.topic(), *FAST)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(r.lines(), ['pass key="BTC"\t{"type":"trade","s":"BTC"}',
                                     'filtered (/type is "book", not trade)\t{"type":"book","s":"ETH"}',
                                     'pass key=null\t{"type":"trade"}',
                                     'filtered (not JSON)\tnot json'], str(r))
        s = summary(r)
        self.assertEqual((s["received"], s["shown"], s["filtered"], s["key_missing"]), (4, 2, 2, 1), str(r))
        # Without --key-field or --filter, the messages alone, as before.
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", "-c", 2, f.url(), self.topic(), *FAST)
        self.assertEqual(r.lines(), ['{"type":"trade","s":"BTC"}', '{"type":"book","s":"ETH"}'], str(r))

    def test_sequence_gaps(self):
        seqs = [1, 2, 3, 5, 6, 9, 10]
        async def script(feed, conn):
            for s in seqs:
                await Feed.send(conn, '{"seq":%d}' % s)
            await asyncio.sleep(30)
        f = self.feed(script)
        r = self.kws("ingest", f.url(), self.topic(), "--seq-field", "/seq", "--count", len(seqs), *FAST)
        s = summary(r)
        self.assertEqual((s["seq_gaps"], s["seq_skipped"]), (2, 3), str(r))
        self.assertStderrMentions(r, "1 number(s) missing before 5", "2 number(s) missing before 9")

    def test_heartbeat_at_interval(self):
        async def script(feed, conn):
            while True:
                while len(conn.received) <= len(conn.sent):
                    await asyncio.sleep(0.005)
                msg = conn.received[len(conn.sent)]
                await Feed.send(conn, '{"pong":true}' if msg == "PING" else "echo " + msg)
        f = self.feed(script)
        t = self.topic()
        r = self.kws("ingest", f.url(), t, "--heartbeat", "PING", "--heartbeat-interval", "250ms",
                     "--heartbeat-reply", '"pong"', "--duration", "1.4s", *FAST)
        times = f.connections[0].received_at
        self.assertGreaterEqual(len(times), 4, str(r))
        self.assertEqual(set(f.connections[0].received), {"PING"})
        gaps = [b - a for a, b in zip(times, times[1:])]
        for g in gaps:
            self.assertGreater(g, 0.18)
            self.assertLess(g, 0.45)
        s = summary(r)
        self.assertEqual(s["heartbeat_replies"], len(times))
        self.assertEqual(self.records(t), [], "heartbeat replies are not data")

    def test_feed_pings_answered(self):
        async def script(feed, conn):
            await Feed.send(conn, '{"op":"ping","ts":1}')
            await Feed.wait_for_messages(conn, 1)
            await Feed.send(conn, "data")
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        r = self.kws("ingest", f.url(), t, "--answer-ping", '"ping"', "--answer-with", '{"op":"pong"}',
                     "--count", 1, *FAST)
        self.assertEqual(f.connections[0].received, ['{"op":"pong"}'])
        self.assertEqual([v for _, v, _ in self.records(t)], [b"data"])
        self.assertEqual(summary(r)["pings_answered"], 1)

    def test_oversize_message_counted(self):
        async def script(feed, conn):
            await Feed.send(conn, "small-%d" % conn.index)
            if conn.index == 1:
                await Feed.send(conn, "x" * 5000)
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        r = self.ingest(f.url(), t, "--max-message-size", "4K", "--count", 2, *FAST, rc=1)
        self.assertEqual(summary(r)["oversize"], 1)
        self.assertEqual([v for _, v, _ in self.records(t)], [b"small-1", b"small-2"])


class Summary(IngestCase):
    def test_numbers_add_up_and_count_stops_reading(self):
        # -c 3 printed 3 messages but said received=6, counting what the
        # feed sent while the connection closed; every feed message is now
        # counted once as received and once in what became of it.
        async def script(feed, conn):
            for m in ['{"t":"x","i":1}', "pong", '{"t":"y"}', '{"op":"ping"}', '{"t":"x","i":2}']:
                await Feed.send(conn, m)
            for i in range(3, 40):
                await Feed.send(conn, '{"t":"x","i":%d}' % i)
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        r = self.kws("ingest", f.url(), t, "--filter", "/t=x", "--heartbeat-reply", "pong",
                     "--answer-ping", '"ping"', "--answer-with", "PONG", "-c", 3, *FAST)
        s = summary(r)
        self.assertEqual((s["produced"], s["filtered"], s["heartbeat_replies"], s["pings_answered"]), (3, 1, 1, 1),
                         str(r))
        self.assertEqual(s["received"], 6, str(r))
        self.assertEqual(s["received"], s["produced"] + s["filtered"] + s["dropped"] + s["failed"] +
                         s["heartbeat_replies"] + s["pings_answered"], str(r))
        self.assertIn("(--count reached)", r.stderr)
        self.assertEqual(len(self.records(t)), 3)

    def test_dry_run_without_count_does_not_claim_one(self):
        async def script(feed, conn):
            for i in range(30):
                await Feed.send(conn, "m%d" % i)
            await asyncio.sleep(30)
        f = self.feed(script)
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", f.url(), self.topic(), *FAST)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(len(r.lines()), 10, str(r))
        self.assertNotIn("--count", r.stderr, str(r))
        self.assertIn("(--dry-run shows the first 10)", r.stderr, str(r))
        s = summary(r)
        self.assertEqual((s["received"], s["shown"]), (10, 10), str(r))
        self.assertNotIn("produced", s)


class Stdin(IngestCase):
    def test_stdin_pipeline(self):
        t = self.topic()
        data = "".join("line %d\n" % i for i in range(5000)) + "last without newline"
        r = self.ingest("-", t, "-H", "origin=pipe", input=data)
        self.assertEqual(r.out, b"")
        recs = self.records(t)
        self.assertEqual(len(recs), 5001)
        self.assertEqual(recs[-1][1], b"last without newline")
        self.assertEqual([v for _, v, _ in recs[:3]], [b"line 0", b"line 1", b"line 2"])
        self.assertEqual(recs[0][2]["origin"], b"pipe")
        self.assertEqual(recs[0][2]["kws-source"], b"-")
        # In a shell pipeline, with --tee passing the lines on.
        t2 = self.topic("tee")
        cmd = "seq 1 300 | %s ingest -b %s - %s --tee -q | wc -l" % (kwstest.KWS_BIN, self.brokers, t2)
        p = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=30, env=kwstest.clean_env())
        self.assertEqual(p.stdout.strip(), b"300", p.stderr)
        self.assertEqual(len(self.records(t2)), 300)


class Settings(IngestCase):
    """kws ingest reads its ingest.* settings as kws serve reads serve.*:
    flag > KWS_INGEST_* > kws.ingest.* in the config file > default, each bad
    value a usage error naming where it came from. Real runs on stdin, with
    ingest.max_message_size as the witness: a 5000-byte line passes the
    default (16M) and is skipped and counted under 4K."""

    LINES = "short-1\n" + "x" * 5000 + "\nshort-2\n"

    def setUp(self):
        self.dir = kwstest.scratch_dir()

    def conf(self, text, name="kws.conf", directory=None):
        path = os.path.join(directory or self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_lines(self, *args, **env):
        t = self.topic()
        r = self.ingest("-", t, *args, input=self.LINES, rc=None, env=kwstest.clean_env(**env))
        return t, r

    def assertLongLinePassed(self, topic, r):
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(summary(r)["oversize"], 0, str(r))
        self.assertEqual([v for _, v, _ in self.records(topic)], [b"short-1", b"x" * 5000, b"short-2"])

    def assertLongLineSkipped(self, topic, r):
        self.assertEqual(r.rc, 1, "a skipped line is a dropped message\n" + str(r))
        s = summary(r)
        # The long line was read too: received counts it, oversize says what became of it.
        self.assertEqual((s["received"], s["produced"], s["oversize"], s["dropped"]), (3, 2, 1, 1), str(r))
        self.assertStderrMentions(r, "over --max-message-size")
        self.assertEqual([v for _, v, _ in self.records(topic)], [b"short-1", b"short-2"])

    def test_default_takes_the_long_line(self):
        self.assertLongLinePassed(*self.run_lines())

    def test_environment_applies(self):
        self.assertLongLineSkipped(*self.run_lines(KWS_INGEST_MAX_MESSAGE_SIZE="4K"))

    def test_config_file_applies(self):
        f = self.conf("# ingest\nkws.ingest.max_message_size = 4KiB\n")
        self.assertLongLineSkipped(*self.run_lines("-F", f))
        # The default file too, with no -F.
        xdg = os.path.join(self.dir, "xdg")
        self.conf("kws.ingest.max_message_size=4K\n", os.path.join("kws", "kws.conf"), xdg)
        self.assertLongLineSkipped(*self.run_lines(XDG_CONFIG_HOME=xdg))

    def test_environment_beats_file(self):
        small, large = self.conf("kws.ingest.max_message_size=4K\n", "small.conf"), self.conf(
            "kws.ingest.max_message_size=1M\n", "large.conf")
        self.assertLongLinePassed(*self.run_lines("-F", small, KWS_INGEST_MAX_MESSAGE_SIZE="1M"))
        self.assertLongLineSkipped(*self.run_lines("-F", large, KWS_INGEST_MAX_MESSAGE_SIZE="4K"))

    def test_flag_beats_environment_and_file(self):
        small, large = self.conf("kws.ingest.max_message_size=4K\n", "small.conf"), self.conf(
            "kws.ingest.max_message_size=1M\n", "large.conf")
        self.assertLongLinePassed(*self.run_lines("-F", small, "--max-message-size", "1M",
                                                  KWS_INGEST_MAX_MESSAGE_SIZE="4K"))
        self.assertLongLineSkipped(*self.run_lines("-F", large, "--max-message-size", "4K",
                                                   KWS_INGEST_MAX_MESSAGE_SIZE="1M"))

    def test_bad_values_are_usage_errors_naming_their_origin(self):
        bad_size = self.conf("acks=all\nkws.ingest.max_message_size=lots\n", "bad-size.conf")
        bad_stale = self.conf("kws.ingest.stale_after=5 parsecs\n", "bad-stale.conf")
        for args, env, message in [
                ([], {"KWS_INGEST_MAX_MESSAGE_SIZE": "lots"},
                 "kws: error: KWS_INGEST_MAX_MESSAGE_SIZE: 'lots' is not a size in bytes"),
                ([], {"KWS_INGEST_BUFFER_BYTES": "lots"},
                 "kws: error: KWS_INGEST_BUFFER_BYTES: 'lots' is not a size in bytes"),
                (["-F", bad_size], {},
                 "kws: error: %s:2: kws.ingest.max_message_size: 'lots' is not a size in bytes" % bad_size),
                (["-F", bad_stale], {},
                 "kws: error: %s:1: kws.ingest.stale_after: '5 parsecs' is not a duration" % bad_stale),
                (["--max-message-size", "lots"], {},
                 "kws: error: --max-message-size: 'lots' is not a size in bytes"),
                (["--max-retries", "always"], {},
                 "kws: error: --max-retries: 'always' must be a whole number from 0 to 2147483647 or forever"),
                ([], {"KWS_INGEST_BACKOFF_MAX": "100ms"},
                 "kws: error: KWS_INGEST_BACKOFF_MAX: '100ms' is below ingest.backoff_initial, 500ms")]:
            t, r = self.run_lines(*args, **env)
            self.assertEqual(r.rc, 2, str(r))
            self.assertIn(message, r.stderr, str(r))
            self.assertNotIn("summary:", r.stderr, "nothing was read\n" + str(r))
            self.assertEqual(r.out, b"", str(r))

    def test_a_bad_value_hidden_by_a_higher_one_is_not_checked(self):
        bad = self.conf("kws.ingest.max_message_size=lots\n", "bad.conf")
        self.assertLongLineSkipped(*self.run_lines("-F", bad, KWS_INGEST_MAX_MESSAGE_SIZE="4K"))
        self.assertLongLinePassed(*self.run_lines("-F", bad, "--max-message-size", "1M",
                                                  KWS_INGEST_MAX_MESSAGE_SIZE="lots"))

    def test_buffer_messages_from_environment_over_file(self):
        """Another type of key (a count), seen where it lands: the buffer's
        capacity in the metrics."""
        f = self.conf("kws.ingest.buffer_messages=1234\nkws.ingest.when_full=drop-newest\n")
        # ":0" is websocat's form of 127.0.0.1:0, as for every listen address.
        bg = self.background("ingest", "-", self.topic(), "-F", f, "--metrics", ":0",
                             env=kwstest.clean_env(KWS_INGEST_BUFFER_MESSAGES="77"), stdin=subprocess.PIPE)
        text = metrics_once(bg, "kws_ingest_buffer_capacity_messages", "metrics")
        self.assertIn("kws_ingest_buffer_capacity_messages 77\n", text)
        bg.proc.stdin.close()
        self.assertEqual(bg.wait(timeout=30), 0, bg.describe())

    def test_max_retries_from_environment_and_file(self):
        """A key that had none before: the feed is refused, and the number of
        attempts is the one the environment (else the file) gives."""
        holder = kwstest.free_port_holder()
        self.addCleanup(holder.close)
        url = "ws://127.0.0.1:%d/" % holder.getsockname()[1]
        f = self.conf("kws.ingest.max_retries=2\nkws.ingest.backoff_initial=50ms\n")
        r = self.kws("ingest", url, self.topic(), "-F", f, rc=1, env=kwstest.clean_env())
        self.assertStderrMentions(r, "giving up after 3 failed attempt(s)")
        r = self.kws("ingest", url, self.topic(), "-F", f, rc=1, env=kwstest.clean_env(KWS_INGEST_MAX_RETRIES="0"))
        self.assertStderrMentions(r, "giving up after 1 failed attempt(s)")


class KafkaPaused(IngestCase):
    """The broker process is stopped (SIGSTOP) while the feed sends."""
    broker_args = None

    def setUp(self):
        # 20 MB pass through test_block_loses_nothing; a partition of the
        # embedded broker keeps about 5 MiB.
        self.broker = kwstest.Broker("--partitions", "8")
        self.addCleanup(self.broker.kill)
        self.addCleanup(lambda: self.broker.proc.poll() is None and os.kill(self.broker.proc.pid, signal.SIGCONT))

    def paused_run(self, n, args, resume_when, size=6):
        """kws ingest from a feed that sends n messages once Kafka is paused;
        returns (result, feed, connection)."""
        go = threading.Event()

        async def script(feed, conn):
            await Feed.send(conn, "ready")
            while not go.is_set():
                await asyncio.sleep(0.01)
            for i in range(n):
                await Feed.send(conn, ("m%05d" % i).ljust(size, "."))
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        bg = self.background("ingest", f.url(), t, "--count", n + 1, "-X", "queue.buffering.max.messages=200",
                             "-X", "linger.ms=5", *FAST, *args)
        kwstest.wait_until(lambda: f.connections and f.connections[0].sent, what="the feed's first message")
        kwstest.wait_until(lambda: len(self.records(t)) == 1, what="the first record in Kafka")
        os.kill(self.broker.proc.pid, signal.SIGSTOP)
        go.set()
        resume_when(f)
        os.kill(self.broker.proc.pid, signal.SIGCONT)
        rc = bg.wait(timeout=60)
        return rc, bg, f, t

    def test_block_loses_nothing(self):
        n, size = 5000, 4000  # 20 MB: more than the socket buffers hold
        seen = {}

        def resume_when(f):
            # TCP pushes back: the feed cannot finish while Kafka is away.
            time.sleep(2.0)
            seen["sent"] = len(f.connections[0].sent)
        # Spread over the partitions message by message (not sticky), so no
        # partition outgrows what the embedded broker keeps.
        rc, bg, f, t = self.paused_run(n, ["--buffer-messages", "500", "--when-full", "block",
                                           "-X", "sticky.partitioning.linger.ms=0"], resume_when, size)
        self.assertEqual(rc, 0, bg.describe())
        self.assertLess(seen["sent"], n, "the feed was not held back")
        values = sorted(v for _, v, _ in self.records(t))
        expected = sorted([b"ready"] + [("m%05d" % i).ljust(size, ".").encode() for i in range(n)])
        missing = sorted(set(expected) - set(values))
        self.assertTrue(values == expected, "%d records, %d distinct; %d sent; missing %s" % (
            len(values), len(set(values)), len(expected), [m[:6] for m in missing[:3] + missing[-3:]]))

    def check_drop(self, policy):
        n = 3000

        def resume_when(f):
            kwstest.wait_until(lambda: len(f.connections[0].sent) == n + 1, timeout=30, what="all sent")
            time.sleep(0.3)
        rc, bg, f, t = self.paused_run(n, ["--buffer-messages", "400", "--when-full", policy], resume_when)
        self.assertEqual(rc, 1, bg.describe())
        s = summary(bg.err.decode())
        values = [v for _, v, _ in self.records(t)]
        self.assertGreater(s["dropped"], 0)
        self.assertEqual(len(values) + s["dropped"], n + 1, bg.describe())
        self.assertEqual(s["produced"], len(values))
        key = "dropped_oldest" if policy == "drop-oldest" else "dropped_newest"
        self.assertEqual(s[key], s["dropped"])
        expected_last = ("m%05d" % (n - 1)).encode()
        if policy == "drop-oldest":
            # (The very first ones were already in librdkafka's queue.)
            self.assertTrue(expected_last in values, "the newest are kept")
        else:
            self.assertTrue(expected_last not in values, "the newest are dropped")
            self.assertTrue(b"m00000" in values, "the oldest are kept")
        self.assertEqual(len(set(values)), len(values), "no duplicates")

    def test_drop_oldest_counts_exactly(self):
        self.check_drop("drop-oldest")

    def test_drop_newest_counts_exactly(self):
        self.check_drop("drop-newest")

    def test_buffer_bound_includes_the_producer_queue(self):
        """--buffer-messages bounds what kws holds, librdkafka's queue
        included: it used to hold another 100,000 messages on top (237 MiB
        with --buffer-bytes 64M and a frozen broker, docs/BENCHMARKS.md)."""
        n, bound = 30000, 1000
        go = threading.Event()

        async def script(feed, conn):
            await Feed.send(conn, "ready")
            while not go.is_set():
                await asyncio.sleep(0.01)
            for i in range(n):
                # 6 MB in all: more than the socket buffers take.
                await Feed.send(conn, ("m%05d" % i).ljust(200, "."))
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        bg = self.background("ingest", f.url(), t, "--buffer-messages", bound, "--metrics", "127.0.0.1:0", *FAST)
        kwstest.wait_until(lambda: len(self.records(t)) == 1, what="the first record in Kafka")
        os.kill(self.broker.proc.pid, signal.SIGSTOP)
        go.set()

        def counts():
            text = metrics_once(bg, "kws_ingest_messages_received_total", "metrics")
            get = lambda name: int(re.search(r"^%s (\d+)$" % name, text, re.M).group(1))
            return get("kws_ingest_messages_received_total"), get("kws_ingest_records_produced_total")
        # Wait until kws stops taking more: the feed is held back.
        last, stable_since = None, time.monotonic()
        while time.monotonic() - stable_since < 1.5:
            now = counts()
            if now != last:
                last, stable_since = now, time.monotonic()
            time.sleep(0.1)
        received, produced = last
        held = received - produced
        # The bound, plus what is on its way to the producer (a quarter of
        # the buffer's share) and what the socket had read when it filled.
        self.assertLessEqual(held, bound + 600, "%d held with --buffer-messages %d; %d sent\n%s" % (
            held, bound, len(f.connections[0].sent), bg.describe()))
        self.assertLess(len(f.connections[0].sent), n + 1, "the feed must be held back")
        os.kill(self.broker.proc.pid, signal.SIGCONT)
        kwstest.wait_until(lambda: len(f.connections[0].sent) == n + 1, timeout=60, what="all sent")
        kwstest.wait_until(lambda: counts()[1] == n + 1, timeout=60, what="all produced")
        bg.signal(signal.SIGTERM)
        self.assertEqual(bg.wait(timeout=30), 143, bg.describe())
        self.assertEqual(len(self.records(t)), n + 1)

    def test_sigterm_with_full_buffer_flushes(self):
        n = 3000
        go = threading.Event()

        async def script(feed, conn):
            await Feed.send(conn, "ready")
            while not go.is_set():
                await asyncio.sleep(0.01)
            for i in range(n):
                await Feed.send(conn, "m%05d" % i)
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        bg = self.background("ingest", f.url(), t, "-X", "queue.buffering.max.messages=200", *FAST)
        kwstest.wait_until(lambda: f.connections and f.connections[0].sent, what="the feed's first message")
        kwstest.wait_until(lambda: len(self.records(t)) == 1, what="the first record in Kafka")
        os.kill(self.broker.proc.pid, signal.SIGSTOP)
        go.set()
        kwstest.wait_until(lambda: len(f.connections[0].sent) == n + 1, timeout=30, what="all sent")
        time.sleep(0.3)
        bg.signal(signal.SIGTERM)
        time.sleep(0.5)
        self.assertIsNone(bg.proc.poll(), "kws must wait for Kafka to take what it read")
        os.kill(self.broker.proc.pid, signal.SIGCONT)
        rc = bg.wait(timeout=30)
        self.assertEqual(rc, 143, bg.describe())
        self.assertEqual(len(self.records(t)), n + 1)
        s = summary(bg.err.decode())
        self.assertEqual((s["received"], s["produced"], s["dropped"]), (n + 1, n + 1, 0))
        self.assertTrue(any(c.ws.close_code == 1001 for c in f.connections), "closed with 1001 going away")


class Observability(IngestCase):
    def test_metrics_and_dry_run(self):
        async def script(feed, conn):
            for i in range(20):
                await Feed.send(conn, "msg %d" % i)
            await asyncio.sleep(30)
        f = self.feed(script)
        t = self.topic()
        bg = self.background("ingest", f.url(), t, "--metrics", "127.0.0.1:0", *FAST)
        text = metrics_once(bg, "kws_ingest_records_produced_total 20", "20 produced in the metrics")
        self.assertIn("kws_ingest_messages_received_total 20\n", text)
        self.assertIn("kws_ingest_connected 1\n", text)
        self.assertIn('kws_ingest_messages_dropped_total{reason="oldest"} 0\n', text)
        self.assertIn("# TYPE kws_ingest_buffer_messages gauge\n", text)
        bg.signal(signal.SIGTERM)
        self.assertEqual(bg.wait(), 143, bg.describe())

        # No status line into a pipe.
        self.assertNotIn(b"| received", bg.err)

        # --dry-run: the first 10 messages on stdout, nothing produced, no Kafka needed.
        t2 = self.topic("dry")
        r = kwstest.kws("ingest", "-b", "127.0.0.1:1", "--dry-run", f.url(), t2, *FAST)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(r.lines(), ["msg %d" % i for i in range(10)])


    def test_status_line_on_a_terminal(self):
        async def script(feed, conn):
            for i in range(1000):
                await Feed.send(conn, "tick %d" % i)
                await asyncio.sleep(0.05)
        f = self.feed(script)
        cmd = " ".join(shlex.quote(a) for a in [kwstest.KWS_BIN, "ingest", "-b", self.brokers, f.url(), self.topic(),
                                               "--duration", "1.5s"] + FAST)
        r = kwstest.run(["script", "-qec", cmd, "/dev/null"], timeout=30, env=kwstest.clean_env())
        self.assertEqual(r.rc, 0, str(r))
        self.assertRegex(r.out, rb"kws: connected \| received \d+ \| produced \d+ \| dropped 0 \| reconnects 0 "
                                rb"\| buffer \d+% \| last \d+ms ago", str(r))


class Usage(IngestCase):
    broker_args = None

    def test_bad_flags_are_usage_errors(self):
        for args, needle in [(["http://x/", "t"], "ws:// or wss://"),
                             (["ws://x/", "t", "--stale-after", "5 parsecs"], "duration"),
                             (["ws://x/", "t", "--buffer-bytes", "lots"], "size"),
                             (["ws://x/", "t", "--key-field", "s"], "JSON pointer"),
                             (["ws://x/", "t", "--filter", "/s"], "/pointer=value"),
                             # Used to match nothing, silently: the value was "=BTC".
                             (["ws://x/", "t", "--filter", "/symbol==BTC"], "for equality write /symbol=BTC"),
                             (["ws://x/", "t", "--filter", "/n>=5"], "accepted: /pointer=value"),
                             (["ws://x/", "t", "-k", "a", "--key-field", "/a"], "not both"),
                             (["ws://x/", "t", "--heartbeat", "p"], "--heartbeat-interval"),
                             (["wss://x/", "t", "--ca", "/nonexistent"], "--ca"),
                             (["ws://x/", "t", "--ca", "/nonexistent"], "wss:// URLs only"),
                             (["-", "t", "--subscribe", "x"], "need a ws://")]:
            r = kwstest.kws("ingest", "-b", "127.0.0.1:1", *args)
            self.assertIn(r.rc, (1, 2), str(r))
            self.assertIn(needle.lower(), r.stderr.lower(), str(r))


if __name__ == "__main__":
    kwstest.main(requires=["openssl", "script"], requires_modules={"websockets": websockets, "kafka": kafka})
