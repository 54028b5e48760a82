"""kws serve's streams past kafka-websocket: resume after a reconnect with no
gap and no duplicate on either of two bridges (cut by clean closes and TCP
resets), what a resume says when positions are gone or ahead of the log, and
server-side filters (keys, key prefixes, headers, JSON fields) from the query
and from subscribe frames, alone and together with resume and with group.id."""

import asyncio
import json
import random
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

import kwstest
from test_serve import (STEP, RawClient, ServeTestCase, drain, is_type, kws_connect, recv_json, recv_until, run,
                        text_string_to_metric_families, websockets)


def masked_close(code=1000):
    """A client's close frame (clients must mask)."""
    mask = bytes(random.getrandbits(8) for _ in range(4))
    payload = struct.pack("!H", code)
    return bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_for(client, seconds):
    """Frames (opcode, payload) a RawClient receives within `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while True:
        while True:
            frame = client._parse()
            if frame is None:
                break
            out.append(frame)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return out
        client.sock.settimeout(remaining)
        try:
            chunk = client.sock.recv(1 << 16)
        except socket.timeout:
            return out
        if not chunk:
            return out
        client.buf += chunk


def cut(client, reset):
    """Ends a connection as a client that goes away does: a clean close
    frame, or a TCP reset (SO_LINGER 0) with no goodbye."""
    if reset:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        try:
            client.sock.sendall(masked_close())
        except OSError:
            pass
    client.sock.close()


class Resume(ServeTestCase):
    broker_args = ["--partitions", "2"]

    def produce_steadily(self, topic, count, per_second):
        """kws send -J in the background, `count` keyed envelopes at about
        `per_second`, alternating partitions. Returns (thread, sent) where
        sent[p] lists the values sent to partition p in order."""
        # The topic exists before any client subscribes (subscribing never creates one).
        sent = {0: ["first-0"], 1: ["first-1"]}
        self.send_json(topic, [{"message": sent[p][0], "partition": p} for p in (0, 1)])
        proc = subprocess.Popen([kwstest.KWS_BIN, "send", "-b", self.brokers, "-J", topic],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=kwstest.clean_env())
        self.addCleanup(proc.stderr.close)
        self.addCleanup(proc.kill)

        def feed():
            for i in range(count):
                p = i % 2
                value = "m-%d" % i
                sent[p].append(value)
                proc.stdin.write((json.dumps({"key": "k%d" % (i % 7), "message": value, "partition": p}) + "\n").encode())
                proc.stdin.flush()
                time.sleep(1.0 / per_second)
            proc.stdin.close()
            proc.wait(30)

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        return thread, proc, sent

    def test_cut_at_random_and_resumed_on_either_bridge_is_exactly_what_kafka_holds(self):
        topic = self.topic("resume")
        bridges = [self.serve(), self.serve()]
        total = 2400 + 2  # and the two that create the topic
        thread, producer, sent = self.produce_steadily(topic, total - 2, per_second=400)
        rng = random.Random(7)
        received = {0: [], 1: []}
        last = {0: -1, 1: -1}
        cuts = {"clean": 0, "reset": 0}
        connection = 0

        def connect():
            bridge = bridges[connection % 2]
            query = "topics=%s&offset=earliest" % topic
            if connection > 0:
                query += "&resume=" + ",".join("%s:%d:%d" % (topic, p, last[p]) for p in (0, 1))
            client = RawClient(bridge.address, "/v2/broker/?" + query)
            self.assertEqual(client.status, 101, client.head)
            return client

        def take(frames):
            for opcode, payload in frames:
                if opcode == 8:
                    self.fail("the bridge closed the connection: %r" % (payload,))
                if opcode != 1:
                    continue
                doc = json.loads(payload)
                if doc.get("type") == "subscribed":
                    self.assertEqual(doc["topic"], topic)
                    if connection > 0:
                        self.assertIs(doc["recovered"], True, doc)
                        self.assertEqual(doc["start_offsets"], [last[0] + 1, last[1] + 1], doc)
                    continue
                self.assertNotIn("type", doc, "unexpected frame %r" % doc)
                p = doc["partition"]
                # No gap and no duplicate, at every message.
                self.assertEqual(doc["offset"], last[p] + 1, "partition %d after offset %d: %r" % (p, last[p], doc))
                last[p] = doc["offset"]
                received[p].append(doc["message"])

        while thread.is_alive():
            client = connect()
            take(read_for(client, rng.uniform(0.05, 0.6)))
            reset = rng.random() < 0.5
            cuts["reset" if reset else "clean"] += 1
            cut(client, reset)
            connection += 1
        self.assertEqual(producer.returncode, 0, producer.stderr.read().decode())
        self.assertGreaterEqual(cuts["clean"], 2, cuts)
        self.assertGreaterEqual(cuts["reset"], 2, cuts)
        # The last connection reads to the end.
        client = connect()
        deadline = time.monotonic() + 30
        while len(received[0]) + len(received[1]) < total and time.monotonic() < deadline:
            take(read_for(client, 0.5))
        cut(client, reset=False)
        highs = self.high_watermarks(topic)
        for p in (0, 1):
            self.assertEqual(len(received[p]), highs[p], "partition %d: received %d of %d" % (p, len(received[p]), highs[p]))
            self.assertEqual(received[p], sent[p], "partition %d differs from what was sent" % p)

    def test_a_position_past_the_end_is_a_new_log_delivered_from_its_start(self):
        topic = self.topic("reset")
        self.send_json(topic, [{"message": "a%d" % i, "partition": 0} for i in range(3)])
        bg = self.serve()

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=%s&resume=%s:0:500" % (topic, topic))) as ws:
                sub = await recv_json(ws)
                self.assertEqual(sub["type"], "subscribed")
                self.assertIs(sub["recovered"], False, sub)
                self.assertEqual(sub["reset"], [{"partition": 0, "from": 501, "end": 3}], sub)
                self.assertNotIn("lost", sub)
                self.assertEqual(sub["start_offsets"][0], 0)
                got = [await recv_json(ws) for _ in range(3)]
                self.assertEqual([m["message"] for m in got], ["a0", "a1", "a2"])

        run(go())

    def test_resume_in_a_subscribe_frame_and_without_a_resume_no_recovered_field(self):
        topic = self.topic("frame")
        self.send_json(topic, [{"message": "b%d" % i, "partition": 1} for i in range(5)])
        bg = self.serve()

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topics": [topic], "resume": "%s:1:2" % topic, "id": 4}))
                sub = await recv_json(ws)
                self.assertEqual(sub["type"], "subscribed")
                self.assertEqual(sub["id"], 4)
                self.assertIs(sub["recovered"], True)
                self.assertEqual(sub["start_offsets"][1], 3)
                got = [await recv_json(ws) for _ in range(2)]
                self.assertEqual([(m["partition"], m["offset"]) for m in got], [(1, 3), (1, 4)])
                await ws.send(json.dumps({"type": "subscribe", "topics": [topic], "offset": "earliest", "id": 5}))
                sub = await recv_json(ws)
                self.assertEqual(sub["type"], "subscribed")
                self.assertNotIn("recovered", sub)
                # Refusals name the problem; the session goes on.
                for frame, code in (({"resume": "%s:9:0" % topic}, "bad_partition"),
                                    ({"resume": "%s:0" % topic}, "bad_offset"),
                                    ({"resume": "other:0:1"}, "bad_offset"),
                                    ({"resume": 5}, "bad_offset")):
                    await ws.send(json.dumps(dict({"type": "subscribe", "topics": [topic], "id": 6}, **frame)))
                    doc = await recv_until(ws, lambda d: d.get("type") == "error", what="error")
                    self.assertEqual(doc[-1]["code"], code, doc)

        run(go())

    def test_history_just_older_than_the_ring_is_read_again_by_the_live_reader_and_nobody_gets_it_twice(self):
        # The ring starts where the bridge began reading the topic: a resume
        # before that, 20,000 offsets back at most, rewinds the bridge's one
        # reader of the topic (a seek in librdkafka) instead of opening a
        # catch-up reader; the client already live must not see anything twice.
        self.resume_before_the_ring(rewinds=True)

    def test_with_rewinds_off_history_older_than_the_ring_comes_from_a_catch_up_reader(self):
        self.resume_before_the_ring(rewinds=False)

    def resume_before_the_ring(self, rewinds):
        topic = self.topic()
        self.send_json(topic, [{"message": "old%d" % i, "partition": 0} for i in range(30)])
        bg = self.serve() if rewinds else self.serve("--rewind-offsets", "0")

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=%s" % topic)) as live:
                sub = await recv_json(live)
                self.assertEqual(sub["start_offsets"][0], 30, sub)
                self.send_json(topic, [{"message": "new%d" % i, "partition": 0} for i in range(5)])
                got = [await recv_json(live) for _ in range(5)]
                self.assertEqual([m["offset"] for m in got], list(range(30, 35)))
                async with kws_connect(self.ws_url(bg, "topics=%s&resume=%s:0:9" % (topic, topic))) as back:
                    sub = await recv_json(back)
                    self.assertEqual(sub["type"], "subscribed", sub)
                    self.assertIs(sub["recovered"], True, sub)
                    self.assertEqual(sub["start_offsets"][0], 10, sub)
                    self.assertEqual(sub["end_offsets"][0], 35, sub)
                    self.send_json(topic, [{"message": "after%d" % i, "partition": 0} for i in range(3)])
                    got = [await recv_json(back) for _ in range(28)]
                    self.assertEqual([(m["partition"], m["offset"]) for m in got], [(0, o) for o in range(10, 38)])
                    self.assertEqual(got[0]["message"], "old10")
                got = [await recv_json(live) for _ in range(3)]
                self.assertEqual([m["offset"] for m in got], [35, 36, 37])
                with self.assertRaises(asyncio.TimeoutError):
                    extra = await asyncio.wait_for(live.recv(), 0.5)
                    self.fail("the live client got a frame twice: %s" % extra)
            # The hub's figures are refreshed twice a second: wait until they
            # count the 8 messages that came after the subscriptions (offsets
            # 30-37; before the rewind its reader had read 5), or they may
            # predate the rewind.
            def figures_after_the_rewind():
                values = self.metrics(bg)
                return values if values.get("kws_serve_kafka_messages_total", 0) >= 8 else None

            values = kwstest.wait_until(figures_after_the_rewind, timeout=10, what="the hub's figures in /metrics")
            if rewinds and b"remaining partition seek(s)" in bg.err:
                # librdkafka did not finish the seek within its second (a
                # loaded machine): the bridge said so and read that history
                # with a catch-up reader instead, which the checks above saw
                # deliver it whole and once.
                self.assertIn(b"reading that history with a reader of its own", bg.err)
            elif rewinds:
                self.assertGreaterEqual(values.get("kws_serve_rewinds_total", 0), 1, bg.err.decode()[-3000:])
            else:
                self.assertEqual(values.get("kws_serve_rewinds_total"), 0, values)
            self.assertEqual(values.get("kws_serve_catchups"), 0, values)  # none, or finished

        run(go())

    def test_bad_resume_in_the_query_is_400_with_the_reason(self):
        topic = self.topic("bad")
        bg = self.serve()
        for query, needle in (("topics=%s&resume=%s:0" % (topic, topic), b"is not TOPIC:PARTITION:OFFSET"),
                              ("topics=%s&resume=other:0:1" % topic, b"which topics= does not"),
                              ("topics=%s&resume=%s:0:-5" % (topic, topic), b"the offset must be"),
                              ("topics=%s&group.id=g&resume=%s:0:1" % (topic, topic), b"group")):
            client = RawClient(bg.address, "/v2/broker/?" + query)
            self.assertEqual(client.status, 400, client.head)
            body = client.buf + b"".join(chunk for chunk in iter(lambda: client.sock.recv(4096), b""))
            self.assertIn(needle, body)
            client.close()


class TopicList(ServeTestCase):
    def test_the_topics_frame_lists_the_clusters_topics_in_order(self):
        a, b = self.create(self.topic("list-a")), self.create(self.topic("list-b"))
        bg = self.serve()

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"type": "topics"}))
                doc = await recv_json(ws)
                self.assertEqual(doc["type"], "topics", doc)
                self.assertNotIn("id", doc)
                self.assertIn(a, doc["topics"])
                self.assertIn(b, doc["topics"])
                self.assertEqual(doc["topics"], sorted(doc["topics"]))

        run(go())

class Filters(ServeTestCase):
    broker_args = ["--partitions", "1"]

    def produce_ticks(self, topic):
        ticks = [
            {"key": "BTC-USD", "message": json.dumps({"symbol": "BTC-USD", "side": "buy"}), "headers": {"source": "feed-1"}},
            {"key": "ETH-USD", "message": json.dumps({"symbol": "ETH-USD", "side": "sell"}), "headers": {"source": "feed-2"}},
            {"key": "BTC-EUR", "message": "not json", "headers": {"source": "feed-1"}},
            {"key": "SOL-USD", "message": json.dumps({"symbol": "SOL-USD", "side": "buy"})},
            {"key": None, "message": json.dumps({"side": "buy"})},
        ]
        self.send_json(topic, ticks)
        return ticks

    def filtered(self, bg, topic, filter_json, count, subprotocols=("kws.v1",)):
        query = "topics=%s&offset=earliest&filter=%s" % (topic, urllib.parse.quote(json.dumps(filter_json)))

        async def go():
            async with websockets.connect(self.ws_url(bg, query), subprotocols=list(subprotocols)) as ws:
                out = []
                while True:
                    try:
                        doc = await recv_json(ws, timeout=1.5)
                    except asyncio.TimeoutError:
                        return out
                    if doc.get("type") == "subscribed":
                        continue
                    self.assertNotIn("type", doc, doc)
                    out.append(doc)
                    if len(out) > count:
                        return out

        return run(go())

    def test_each_kind_of_filter_and_their_and(self):
        topic = self.topic("ticks")
        self.produce_ticks(topic)
        bg = self.serve()
        cases = [
            ({"key": ["BTC-USD", "ETH-USD"]}, ["BTC-USD", "ETH-USD"]),
            ({"key_prefix": "BTC-"}, ["BTC-USD", "BTC-EUR"]),
            ({"header": {"source": "feed-1"}}, ["BTC-USD", "BTC-EUR"]),
            ({"field": {"/side": "buy"}}, ["BTC-USD", "SOL-USD", None]),
            ({"field": {"/side": "buy"}, "key_prefix": "BTC-"}, ["BTC-USD"]),
            ({"key": ["DOGE-USD"]}, []),
        ]
        for filter_json, keys in cases:
            got = self.filtered(bg, topic, filter_json, len(keys))
            self.assertEqual([m["key"] for m in got], keys, filter_json)

    def test_a_filter_in_a_subscribe_frame_and_bad_filters(self):
        topic = self.topic("frame")
        self.produce_ticks(topic)
        bg = self.serve()

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topics": [topic], "offset": "earliest",
                                          "filter": {"key": ["SOL-USD"]}, "id": 1}))
                self.assertEqual((await recv_json(ws))["type"], "subscribed")
                self.assertEqual((await recv_json(ws))["key"], "SOL-USD")
                for bad, needle in (({"keys": ["a"]}, "unknown entry"), ([], "JSON object"),
                                    ({"field": {"side": "buy"}}, "JSON pointer")):
                    await ws.send(json.dumps({"type": "subscribe", "topics": [topic], "filter": bad, "id": 2}))
                    doc = await recv_json(ws)
                    self.assertEqual(doc["type"], "error", doc)
                    self.assertEqual(doc["code"], "bad_filter", doc)
                    self.assertIn(needle, doc["message"])
                with self.assertRaises(asyncio.TimeoutError):
                    await recv_json(ws, timeout=1)  # nothing else came: filtered messages never cross

        run(go())
        for query, needle in (("filter=%7B", b"not valid JSON"), ("filter=%7B%7D", b"empty"),
                              ("filter=" + urllib.parse.quote('{"key":"x"}'), b"\"key\" must be")):
            client = RawClient(bg.address, "/v2/broker/?topics=%s&%s" % (topic, query))
            self.assertEqual(client.status, 400, client.head)
            body = client.buf + b"".join(chunk for chunk in iter(lambda: client.sock.recv(4096), b""))
            self.assertIn(needle, body)
            client.close()

    def test_filters_compose_with_resume(self):
        topic = self.topic("both")
        self.send_json(topic, [{"key": "k%d" % (i % 3), "message": "v%d" % i} for i in range(12)])
        bg = self.serve()
        query = "topics=%s&filter=%s&resume=%s:0:4" % (topic, urllib.parse.quote('{"key":["k0"]}'), topic)

        async def go():
            async with kws_connect(self.ws_url(bg, query)) as ws:
                sub = await recv_json(ws)
                self.assertIs(sub["recovered"], True, sub)
                got = [await recv_json(ws) for _ in range(2)]
                self.assertEqual([(m["offset"], m["key"]) for m in got], [(6, "k0"), (9, "k0")])
                with self.assertRaises(asyncio.TimeoutError):
                    await recv_json(ws, timeout=1)

        run(go())


class SseReader:
    """A plain HTTP reader of /v2/sse: the request, the response head, then
    each event block as a dict (event, data, id; ":" for a comment)."""

    def __init__(self, address, target, headers=None):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=STEP)
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s\r\n"
                           % (target, address, extra)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode()
        self.status = int(self.head.split(" ")[1]) if self.head else 0
        self.ended = False

    def events(self, seconds):
        """The event blocks that arrive within `seconds` (or until the end)."""
        out = []
        deadline = time.monotonic() + seconds
        while True:
            while b"\n\n" in self.buf:
                block, _, self.buf = self.buf.partition(b"\n\n")
                fields = {}
                for line in block.decode().split("\n"):
                    name, _, value = line.partition(":")
                    if name == "":
                        fields[":"] = value.strip()
                    else:
                        fields[name] = value[1:] if value.startswith(" ") else value
                out.append(fields)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.ended:
                return out
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                return out
            if not chunk:
                self.ended = True
                continue
            self.buf += chunk

    def body(self):
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                return self.buf
            self.buf += chunk

    def close(self):
        self.sock.close()


class ServerSentEvents(ServeTestCase):
    broker_args = ["--partitions", "2"]

    def test_events_carry_envelopes_and_notices_and_the_id_resumes_on_the_other_bridge(self):
        topic = self.topic("sse")
        self.send_json(topic, [{"key": "k%d" % i, "message": "v%d" % i, "partition": i % 2} for i in range(10)])
        bridges = [self.serve(), self.serve()]
        reader = SseReader(bridges[0].address, "/v2/sse?topics=%s&offset=earliest" % topic)
        self.assertEqual(reader.status, 200, reader.head)
        self.assertIn("content-type: text/event-stream", reader.head.lower())
        events = reader.events(1.5)
        subscribed = [e for e in events if e.get("event") == "subscribed"]
        self.assertEqual(len(subscribed), 1, events)
        self.assertEqual(json.loads(subscribed[0]["data"])["start_offsets"], [0, 0])
        messages = [json.loads(e["data"]) for e in events if "data" in e and "event" not in e]
        self.assertEqual(sorted(m["message"] for m in messages), sorted("v%d" % i for i in range(10)))
        ids = [e["id"] for e in events if "id" in e]
        self.assertTrue(ids, events)
        self.assertEqual(ids[-1], "%s:0:4,%s:1:4" % (topic, topic))
        reader.close()
        # More arrives while the browser is away; it comes back to the other bridge.
        self.send_json(topic, [{"message": "w%d" % i, "partition": i % 2} for i in range(4)])
        again = SseReader(bridges[1].address, "/v2/sse?topics=%s&offset=earliest" % topic,
                          headers={"Last-Event-ID": ids[-1]})
        self.assertEqual(again.status, 200, again.head)
        events = again.events(1.5)
        subscribed = json.loads([e for e in events if e.get("event") == "subscribed"][0]["data"])
        self.assertIs(subscribed["recovered"], True)
        messages = [json.loads(e["data"]) for e in events if "data" in e and "event" not in e]
        self.assertEqual(sorted((m["partition"], m["offset"], m["message"]) for m in messages),
                         [(0, 5, "w0"), (0, 6, "w2"), (1, 5, "w1"), (1, 6, "w3")])
        again.close()

    def test_a_partition_nothing_came_from_resumes_where_the_subscription_started(self):
        topic = self.topic("quiet")
        self.send_json(topic, [{"message": "first", "partition": 0}])
        bg = self.serve()
        reader = SseReader(bg.address, "/v2/sse?topics=%s" % topic)
        ids = [e["id"] for e in reader.events(1.0) if "id" in e]
        self.assertEqual(ids, ["%s:0:0,%s:1:-1" % (topic, topic)])
        reader.close()
        self.send_json(topic, [{"message": "while-away", "partition": 1}])
        again = SseReader(bg.address, "/v2/sse?topics=%s" % topic, headers={"Last-Event-ID": ids[-1]})
        messages = [json.loads(e["data"]) for e in again.events(1.5) if "data" in e and "event" not in e]
        self.assertEqual([m["message"] for m in messages], ["while-away"])
        again.close()

    def test_heartbeats_keep_a_quiet_stream_open_past_the_idle_timeout(self):
        topic = self.topic("quiet")
        self.create(topic)
        bg = self.serve("--ping-interval", "300ms", "--idle-timeout", "1s")
        reader = SseReader(bg.address, "/v2/sse?topics=%s" % topic)
        events = reader.events(2.5)
        self.assertFalse(reader.ended, "the stream was closed: %r" % events)
        self.assertGreaterEqual(sum(1 for e in events if ":" in e), 3, events)
        reader.close()

    def test_filters_bad_requests_and_the_close_event_at_shutdown(self):
        topic = self.topic("mixed")
        self.send_json(topic, [{"key": k, "message": k, "partition": 0} for k in ("a", "b", "a")])
        bg = self.serve()
        query = "topics=%s&offset=earliest&filter=%s" % (topic, urllib.parse.quote('{"key":["a"]}'))
        reader = SseReader(bg.address, "/v2/sse?" + query)
        messages = [json.loads(e["data"]) for e in reader.events(1.5) if "data" in e and "event" not in e]
        self.assertEqual([m["offset"] for m in messages], [0, 2])
        for target, headers, needle in (("/v2/sse?topics=%s&filter=%%7B" % topic, {}, b"not valid JSON"),
                                        ("/v2/sse?topics=%s" % topic, {"Last-Event-ID": "nope"}, b"Last-Event-ID"),
                                        ("/v2/sse?topics=%s" % topic, {"Last-Event-ID": "other:0:1"}, b"topics= does not"),
                                        ("/v2/sse?topics=%s&bogus=1" % topic, {}, b"unknown query parameter")):
            bad = SseReader(bg.address, target, headers)
            self.assertEqual(bad.status, 400, bad.head)
            self.assertIn(needle, bad.body())
            bad.close()
        bg.signal(signal.SIGTERM)
        events = reader.events(5)
        closes = [json.loads(e["data"]) for e in events if e.get("event") == "close"]
        self.assertEqual(len(closes), 1, events)
        self.assertEqual(closes[0]["code"], 1001)
        self.assertTrue(reader.ended)
        reader.close()

class Conflation(ServeTestCase):
    broker_args = ["--partitions", "1"]

    def test_a_slow_reader_of_a_keyed_topic_ends_with_the_latest_value_of_every_key(self):
        topic = self.topic("ticker")
        self.create(topic)
        bg = self.serve("--slow-client", "latest-per-key", "--client-buffer", "64K")
        client = RawClient(bg.address, "/v2/broker/?topics=%s" % topic, rcvbuf=4096)
        self.assertEqual(client.status, 101, client.head)
        first = read_for(client, 1.0)
        self.assertTrue(any(b'"subscribed"' in p for _, p in first), first)
        # The client reads nothing while 20 keys tick 10,000 times (about
        # 2.3 MB: far past its 64 KiB budget and the sockets' buffers).
        keys = ["SYM-%02d" % k for k in range(20)]
        latest = {}
        ticks = []
        for i in range(10000):
            key = keys[i % len(keys)]
            value = json.dumps({"symbol": key, "seq": i, "pad": "x" * 180})
            latest[key] = value
            ticks.append({"key": key, "message": value})
        self.send_json(topic, ticks)
        # Then it reads what waited for it.
        frames = read_for(client, 3.0)
        client.close()
        docs = [json.loads(p) for op, p in frames if op == 1]
        conflated = sum(d["count"] for d in docs if d.get("type") == "conflated")
        dropped = sum(d["count"] for d in docs if d.get("type") == "dropped")
        messages = [d for d in docs if "type" not in d]
        self.assertGreater(conflated, 0, docs[:5])
        final = {}
        for m in messages:
            final[m["key"]] = m["message"]
        self.assertEqual(final, latest, "the last value seen per key must be the latest produced")
        # Every message is accounted for: delivered, replaced or dropped.
        self.assertEqual(len(messages) + conflated + dropped, 10000)
        self.assertLess(len(messages), 10000)
        self.assertGreater(self.metrics(bg)["kws_serve_conflated_total"], 0)

class GroupAtLeastOnce(ServeTestCase):
    broker_args = ["--partitions", "4"]

    def test_a_client_of_a_killed_bridge_goes_on_at_another_without_loss(self):
        topic = self.topic("group")
        group = "g-" + topic
        # About 13 MB: far more than the first bridge's budget (1 MB) and the
        # sockets' buffers (up to 4 MB with Linux's default tcp_wmem) hold,
        # so much of it waits in the bridge, consumed from Kafka but never
        # sent, when the bridge dies. (3.2 MB per partition: within the
        # embedded broker's retention.)
        pad = "x" * 16000
        count = 800
        self.send_json(topic, [{"message": "m%d %s" % (i, pad), "partition": i % 4} for i in range(count)])
        # Commits often, and a dead member leaves the group soon, so the test is short.
        kafka = ["-X", "auto.commit.interval.ms=200", "-X", "session.timeout.ms=6000"]
        first = self.serve("--client-buffer", "1M", *kafka)
        second = self.serve(*kafka)

        def messages(frames):
            docs = [json.loads(p) for op, p in frames if op == 1]
            return [d for d in docs if "type" not in d]

        slow = RawClient(first.address, "/v2/broker/?topics=%s&group.id=%s&offset=earliest" % (topic, group),
                         rcvbuf=4096)
        self.assertEqual(slow.status, 101, slow.head)
        # A slow reader: a few messages, a small read at a time, then nothing.
        got_first = []
        deadline = time.monotonic() + 30
        slow.sock.settimeout(1)
        while len(got_first) < 5 and time.monotonic() < deadline:
            frame = slow._parse()
            if frame is None:
                try:
                    chunk = slow.sock.recv(4096)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                slow.buf += chunk
                continue
            got_first += messages([frame])
        self.assertGreaterEqual(len(got_first), 5, "the group never delivered")
        time.sleep(1.5)  # a slow reader: the group commits only what its socket took
        first.kill()  # no goodbye, no final commit
        got_first += messages(read_for(slow, 5))  # everything the socket had taken arrives
        slow.close()
        self.assertLess(len(got_first), count, "the test needs messages the first bridge never sent")

        async def on_second():
            url = self.ws_url(second, "topics=%s&group.id=%s" % (topic, group))
            async with kws_connect(url, max_size=None) as ws:
                await recv_until(ws, is_type("subscribed"), timeout=30, what="the group's assignment")
                self.send_json(topic, [{"message": "marker", "partition": p} for p in range(4)])
                seen = []
                while sum(1 for m in seen if m["message"] == "marker") < 4:
                    doc = await recv_json(ws, timeout=30)
                    if "type" not in doc:
                        seen.append(doc)
                return seen

        got_second = run(on_second(), timeout=90)
        for p in range(4):
            first_p = [m["offset"] for m in got_first if m["partition"] == p]
            second_p = [m["offset"] for m in got_second if m["partition"] == p]
            self.assertEqual(sorted(set(first_p + second_p)), list(range(count // 4 + 1)),
                             "partition %d: every message reached the client at least once" % p)
            # The second bridge went on from what the group committed, with no gap.
            self.assertEqual(second_p, list(range(second_p[0], count // 4 + 1)), "partition %d" % p)

class GroupFilters(ServeTestCase):
    """filter= with group.id=: the group's consumer keeps what does not match
    on the bridge, and the group's commit still goes past it."""

    broker_args = ["--partitions", "2"]
    KEEP = urllib.parse.quote(json.dumps({"key": ["keep"]}))

    def mixed(self, topic, prefix, count, trailing_drops=0):
        """count messages over both partitions, keys "keep" and "drop" in
        turn, then trailing_drops "drop" messages in each partition; returns
        the values of the kept ones."""
        envs = [{"key": "keep" if i % 2 == 0 else "drop", "message": "%s-%d" % (prefix, i), "partition": (i // 2) % 2}
                for i in range(count)]
        envs += [{"key": "drop", "message": "%s-tail-%d" % (prefix, i), "partition": i % 2}
                 for i in range(2 * trailing_drops)]
        self.send_json(topic, envs)
        return sorted(e["message"] for e in envs if e["key"] == "keep")

    async def collect(self, ws, count, quiet=1.5):
        """Messages until count of them came, then any more within `quiet` s."""
        got = []
        while len(got) < count:
            doc = await recv_json(ws, timeout=30)
            if "type" not in doc:
                got.append(doc)
        while True:
            try:
                doc = await recv_json(ws, timeout=quiet)
            except asyncio.TimeoutError:
                return got
            if "type" not in doc:
                got.append(doc)

    def committed(self, group, topic):
        doc = self.topics_json("-G", group, topic)
        rows = {r["partition"]: r for r in doc.get("groups", []) if r["group"] == group and r["topic"] == topic}
        return {p: (r["committed"], r["high"]) for p, r in rows.items()}

    def test_a_filtered_group_session_gets_exactly_the_matching_messages(self):
        topic = self.topic("gf")
        group = "g-" + topic
        kept = self.mixed(topic, "m", 30)
        bg = self.serve()

        async def go():
            url = self.ws_url(bg, "topics=%s&group.id=%s&offset=earliest&filter=%s" % (topic, group, self.KEEP))
            async with kws_connect(url) as ws:
                await recv_until(ws, is_type("subscribed"), timeout=30, what="the group's assignment")
                return await self.collect(ws, len(kept))

        got = run(go(), timeout=90)
        self.assertEqual([m["key"] for m in got], ["keep"] * len(kept), got)
        self.assertEqual(sorted(m["message"] for m in got), kept)
        # kws tail through the bridge, as another group: the same messages.
        url = self.ws_url(bg, "topics=%s&group.id=%s-tail&offset=earliest&filter=%s" % (topic, group, self.KEEP))
        r = self.tail("-c", str(len(kept)), url, brokers=False, timeout=60)
        self.assertEqual(sorted(r.lines()), kept, str(r))
        # A bad filter is the same 400 with group.id as without.
        for query, needle in (("filter=%7B", b"not valid JSON"), ("filter=%7B%7D", b"empty")):
            client = RawClient(bg.address, "/v2/broker/?topics=%s&group.id=%s&%s" % (topic, group, query))
            self.assertEqual(client.status, 400, client.head)
            body = client.buf + b"".join(chunk for chunk in iter(lambda: client.sock.recv(4096), b""))
            self.assertIn(needle, body)
            client.close()

    def test_two_filtered_sessions_of_one_group_get_each_matching_message_once(self):
        topic = self.create(self.topic("gf2"))
        group = "g-" + topic
        bg = self.serve()

        async def go():
            url = self.ws_url(bg, "topics=%s&group.id=%s&filter=%s" % (topic, group, self.KEEP))
            async with kws_connect(url) as a, kws_connect(url) as b:
                for ws in (a, b):
                    await recv_until(ws, is_type("subscribed"), timeout=30, what="the group's assignment")
                seen = {a: [], b: []}

                async def drain_messages(ws, seconds):
                    frames = []
                    await drain(ws, seconds, frames)
                    seen[ws].extend(d for d in frames if "type" not in d)

                # Probe both partitions (with messages the filter keeps) until each member has one.
                deadline = time.monotonic() + 40
                n = 0
                while not (seen[a] and seen[b]):
                    self.assertLess(time.monotonic(), deadline, "the group never split the partitions: %r" % seen)
                    n += 1
                    self.send_json(topic, [{"key": "keep", "message": "probe-%d" % n, "partition": n % 2}])
                    await asyncio.gather(drain_messages(a, 0.3), drain_messages(b, 0.3))
                for ws in (a, b):
                    seen[ws].clear()
                kept = self.mixed(topic, "m", 40)
                await asyncio.gather(drain_messages(a, 3), drain_messages(b, 3))
                return seen[a], seen[b]

        got_a, got_b = run(go(), timeout=90)
        self.assertTrue(got_a and got_b, (got_a, got_b))
        both = got_a + got_b
        self.assertEqual([m["key"] for m in both], ["keep"] * len(both), both)
        self.assertEqual(sorted(m["message"] for m in both), sorted("m-%d" % i for i in range(0, 40, 2)))

    def test_the_next_member_goes_on_without_loss_or_duplicate_and_the_commit_passed_the_filtered_tail(self):
        topic = self.topic("gf3")
        group = "g-" + topic
        first = self.mixed(topic, "first", 20, trailing_drops=5)
        bg = self.serve()
        base = "topics=%s&group.id=%s&filter=%s" % (topic, group, self.KEEP)

        async def member(query, count):
            async with kws_connect(self.ws_url(bg, query)) as ws:
                await recv_until(ws, is_type("subscribed"), timeout=30, what="the group's assignment")
                return await self.collect(ws, count)

        got = run(member(base + "&offset=earliest", len(first)), timeout=90)
        self.assertEqual(sorted(m["message"] for m in got), first)
        # The client closed: the group committed every partition to its end,
        # past the five filtered-out messages that end each.
        positions = {}

        def at_end():
            positions.update(self.committed(group, topic))
            return len(positions) == 2 and all(c == h for c, h in positions.values())

        kwstest.wait_until(at_end, timeout=30, interval=0.5, what="the group's commit at the partitions' ends")
        self.assertEqual(sorted(h for c, h in positions.values()), [15, 15], positions)
        # Meanwhile, more; the group's next member goes on from its commit.
        second = self.mixed(topic, "second", 20, trailing_drops=2)
        got = run(member(base, len(second)), timeout=90)
        self.assertEqual(sorted(m["message"] for m in got), second, "nothing lost, nothing again")
        self.assertEqual([m["key"] for m in got], ["keep"] * len(second))
        for p in (0, 1):
            offsets = [m["offset"] for m in got if m["partition"] == p]
            self.assertEqual(offsets, sorted(offsets), "partition %d in order" % p)
            self.assertTrue(all(o >= 15 for o in offsets), offsets)


if __name__ == "__main__":
    kwstest.main(requires_modules={"websockets": websockets, "prometheus_client": text_string_to_metric_families})
