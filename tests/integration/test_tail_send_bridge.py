"""kws tail ws://... and kws send ws://...: the bridge from a terminal
(issue 16). Each test runs a real `kws serve` on the class's `kws broker`;
what kws send wrote through the bridge is checked by reading Kafka directly
(kws tail -b), and what kws tail reads through the bridge was written
directly (kws send -b), so neither side only agrees with itself."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import time
import urllib.parse

import kwstest
import test_serve as serve_tests

try:
    import websockets
except ImportError:  # reported by main() as a loud skip
    websockets = None
try:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
except ImportError:  # the Peers tests skip, loudly
    KafkaConsumer = None

SECRET = b"kws bridge test secret: at least 32 bytes for HS256"


def hs256(payload, secret=SECRET):
    def part(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(json.dumps(payload).encode())
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + part(signature)).decode()


class BridgeTestCase(serve_tests.ServeTestCase):
    def bridge(self, *args):
        """kws serve on this class's broker; returns it with .ws (its ws://HOST:PORT/)."""
        bg = self.serve(*args)
        bg.ws = bg.url if bg.url.endswith("/") else bg.url + "/"
        return bg

    def through(self, command, *args, rc=0, **kwargs):
        """kws COMMAND ARGS without -b: through a bridge only."""
        return self.kws(command, *args, rc=rc, brokers=False, **kwargs)

    def direct_values(self, topic):
        return [(e["key"], e["message"]) for e in self.tail_json(topic)]


class Send(BridgeTestCase):
    def test_lines_with_keys_arrive_once_each(self):
        bg = self.bridge()
        topic = self.topic()
        lines = ["k%d:value %d" % (i % 3, i) for i in range(25)]
        r = self.through("send", bg.ws, topic, "-K", ":", input="\n".join(lines) + "\n")
        self.assertQuietSuccess(r)
        got = self.direct_values(topic)
        self.assertEqual(sorted(got, key=lambda kv: int(kv[1].split()[1])),
                         [("k%d" % (i % 3), "value %d" % i) for i in range(25)])
        # Same key, same partition: the bridge's producer chose by key.
        by_key = {}
        for e in self.tail_json(topic):
            by_key.setdefault(e["key"], set()).add(e["partition"])
        self.assertTrue(all(len(p) == 1 for p in by_key.values()), by_key)

    def test_print_offsets_are_the_acks(self):
        bg = self.bridge()
        topic = self.topic()
        r = self.through("send", bg.ws, topic, "-p", "1", "--print-offsets", "a", "b", "c")
        self.assertEqual(r.lines(), ["%s 1 %d" % (topic, i) for i in range(3)], str(r))
        self.assertEqual(self.direct_values(topic), [(None, "a"), (None, "b"), (None, "c")])

    def test_headers_key_and_envelopes(self):
        bg = self.bridge()
        topic = self.topic()
        self.through("send", bg.ws, topic, "-k", "K", "-H", "h1=v1", "-H", "h2=", "plain")
        envs = [{"key": "e1", "message": "bin", "partition": 1, "headers": {"x": "y"}},
                {"key": None, "message": None, "partition": 0,
                 "message_encoding": "base64"},
                {"key": "b", "message": base64.b64encode(b"\xff\x00").decode(), "message_encoding": "base64",
                 "partition": 0}]
        self.through("send", bg.ws, topic, "-J", input="".join(json.dumps(e) + "\n" for e in envs))
        got = self.tail_json(topic)
        plain = [e for e in got if e["message"] == "plain"]
        self.assertEqual(len(plain), 1, got)
        self.assertEqual(kwstest.header_pairs(plain[0]), [(b"h1", b"v1"), (b"h2", b"")])
        self.assertEqual(plain[0]["key"], "K")
        (e1,) = [e for e in got if e["key"] == "e1"]
        self.assertEqual((e1["partition"], e1["message"], kwstest.header_pairs(e1)), (1, "bin", [(b"x", b"y")]))
        (tomb,) = [e for e in got if e["key"] is None and e["message"] is None]
        self.assertEqual(tomb["partition"], 0)
        (binary,) = [e for e in got if e["key"] == "b"]
        self.assertEqual(kwstest.envelope_bytes(binary, "message"), b"\xff\x00")

    def test_refused_produce_is_exit_1_naming_the_line(self):
        bg = self.bridge("--create-topics", "false")
        missing = self.topic("missing")
        r = self.through("send", bg.ws, missing, rc=1, input="one\ntwo\n")
        self.assertStderrMentions(r, "input line 1", "input line 2", "unknown_topic", "2 of 2 message(s) not acknowledged")
        self.assertEqual(r.out, b"", str(r))

    def test_bad_partition_is_refused_the_others_arrive(self):
        bg = self.bridge()
        topic = self.create(self.topic())  # two partitions
        envs = [{"message": "ok1", "partition": 0}, {"message": "nope", "partition": 7}, {"message": "ok2"}]
        r = self.through("send", bg.ws, topic, "-J", rc=1, input="".join(json.dumps(e) + "\n" for e in envs))
        self.assertStderrMentions(r, "input line 2", "bad_partition", "1 of 3 message(s) not acknowledged")
        self.assertEqual(sorted(v for _, v in self.direct_values(topic)), ["ok1", "ok2", "seed"])

    def test_rate_limited_frames_are_sent_again_not_lost(self):
        """More lines than --produce-rate allows in a second: the refused
        frames go again after a pause, so every line arrives exactly once
        and the bridge never closes the session for overrunning."""
        bg = self.bridge("--produce-rate", "100")
        topic = self.topic()
        n = 300
        r = self.through("send", bg.ws, topic, input="".join("m%d\n" % i for i in range(n)), timeout=60)
        self.assertEqual(r.rc, 0, str(r))
        # Said once, as a note: the limit was met, and is not an error.
        self.assertEqual(r.stderr.count("the bridge limits this session's produce rate"), 1, str(r))
        self.assertNotIn("error", r.stderr, str(r))
        self.assertGreater(r.elapsed, 1.5, "300 messages at 100/s cannot take less\n" + str(r))
        values = [v for _, v in self.direct_values(topic)]
        self.assertEqual(sorted(values), sorted("m%d" % i for i in range(n)))

    def test_usage_errors_name_why(self):
        bg = self.bridge()
        cases = [
            (["-b", self.brokers, bg.ws, "t"], "-b cannot be used with a ws://"),
            (["-X", "acks=1", bg.ws, "t"], "-X cannot be used"),
            (["--create-like", "a", bg.ws, "t"], "--create-like cannot be used"),
            ([bg.ws], "needs a TOPIC after the URL"),
            ([bg.ws + "v2/broker/?topics=a", "t"], "only produces"),
            (["--token", "/nonexistent/token", "t"], "apply to a ws:// or wss:// URL only"),
            ([bg.ws, "bad topic!"], "topic"),
        ]
        for args, needle in cases:
            r = self.through("send", *args, rc=2, input="x\n")
            self.assertStderrMentions(r, needle)


class Tail(BridgeTestCase):
    def filled(self, n=12):
        topic = self.topic()
        self.send(topic, "-K", ":", input="".join("k%d:v%d\n" % (i, i) for i in range(n)))
        return topic

    def test_earliest_e_prints_exactly_what_is_there(self):
        bg = self.bridge()
        topic = self.filled()
        for args in ([bg.ws + "v2/broker/?topics=" + topic], [bg.ws, topic]):
            r = self.through("tail", *args, "-o", "earliest", "-e", "-f", "%k=%s\\n", timeout=20)
            self.assertEqual(sorted(r.lines()), sorted("k%d=v%d" % (i, i) for i in range(12)), str(r))
            self.assertEqual(r.err, b"", str(r))

    def test_e_waits_for_every_topic_and_partition(self):
        bg = self.bridge()
        a = self.filled(5)
        b = self.topic()
        self.create(b)  # one message on partition 0, partition 1 empty
        r = self.through("tail", bg.ws, a, b, "-o", "beginning", "-e", "-f", "%t %s\\n", timeout=20)
        self.assertEqual(sorted(r.lines()), sorted(["%s v%d" % (a, i) for i in range(5)] + [b + " seed"]), str(r))

    def test_e_with_a_filter_stops_once_the_bridge_says_it_is_caught_up(self):
        # Keys k0..k11 on two partitions; the filter keeps k1 and k2 only, so
        # the last message below the end offsets of each partition stays on
        # the bridge: only its caught_up frame can end the run.
        bg = self.bridge()
        topic = self.filled()
        query = "topics=%s&filter=%s" % (topic, urllib.parse.quote('{"key":["k1","k2"]}'))
        for extra in (["-o", "earliest"], ["-o", "-3"]):
            r = self.through("tail", bg.ws + "v2/broker/?" + query, *extra, "-e", "-f", "%k=%s\\n", timeout=20)
            want = ["k1=v1", "k2=v2"] if extra[1] == "earliest" else []
            self.assertEqual(sorted(r.lines()), want, str(r))
            self.assertEqual(r.err, b"", str(r))
        # Through the subscribe frame too, as a page would ask.
        async def go():
            async with websockets.connect(bg.ws + "v2/broker/", subprotocols=["kws.v1"]) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topics": [topic], "offset": "earliest",
                                          "filter": {"key": ["k3"]}, "caught_up": True, "id": 1}))
                frames = []
                while not frames or frames[-1].get("type") != "caught_up":
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
                self.assertEqual([f.get("type", "message") for f in frames], ["subscribed", "message", "caught_up"], frames)
                self.assertEqual(frames[1]["key"], "k3")
                self.assertEqual(frames[2]["topic"], topic)
                await ws.send(json.dumps({"type": "subscribe", "topics": [topic], "caught_up": "yes", "id": 2}))
                doc = json.loads(await asyncio.wait_for(ws.recv(), 10))
                self.assertEqual((doc["type"], doc["code"]), ("error", "bad_frame"), doc)
        asyncio.run(go())
        status, body = self.http(bg, "/v2/sse?topics=%s&caught_up=maybe" % topic)  # the same query rules
        self.assertEqual(status, 400, body)
        self.assertIn("caught_up", body)

    def test_offset_from_end(self):
        bg = self.bridge()
        topic = self.topic()
        self.send(topic, "-p", "0", input="".join("x%d\n" % i for i in range(10)))
        r = self.through("tail", bg.ws, topic, "-o", "-3", "-e")
        self.assertEqual(r.lines(), ["x7", "x8", "x9"], str(r))

    def test_count_stops_after_n(self):
        bg = self.bridge()
        topic = self.filled()
        r = self.through("tail", bg.ws, topic, "-o", "earliest", "-c", "3", timeout=20)
        self.assertEqual(len(r.lines()), 3, str(r))
        self.assertEqual(r.rc, 0)

    def test_json_prints_the_envelopes(self):
        bg = self.bridge()
        topic = self.filled(4)
        through = self.through("tail", bg.ws, topic, "-J", "-o", "earliest", "-e").json_lines()
        direct = self.tail_json(topic)
        self.assertEqual(sorted(through, key=lambda e: (e["partition"], e["offset"])), direct)
        self.assertEqual(set(direct[0]), {"topic", "partition", "offset", "timestamp", "timestamp_type", "key",
                                          "headers", "message"})

    def test_follows_new_messages_and_ctrl_c_exits_130(self):
        bg = self.bridge()
        topic = self.create(self.topic())
        t = self.background("tail", bg.ws, topic, brokers=False)
        self.follow_until_live(topic, t)
        self.send(topic, "after")
        t.wait_for_output(lambda out: b"after\n" in out, what="the message sent after it was live")
        self.assertNotIn(b"seed", t.out, "the default start is the end\n" + t.describe())
        t.signal(signal.SIGINT)
        self.assertEqual(t.wait(), 130, t.describe())

    def test_unknown_topic_is_an_error_frame_exit_1(self):
        bg = self.bridge()
        r = self.through("tail", bg.ws, self.topic("nope"), "-e", rc=1, timeout=20)
        self.assertStderrMentions(r, "unknown_topic")
        self.assertEqual(r.out, b"")
        # With one good topic left, -e still ends, at its end, with status 1.
        good = self.filled(2)
        r = self.through("tail", bg.ws, good, self.topic("nope"), "-o", "earliest", "-e", rc=1, timeout=20)
        self.assertEqual(sorted(r.lines()), ["v0", "v1"], str(r))
        self.assertStderrMentions(r, "unknown_topic")

    def test_bad_offset_and_usage_errors(self):
        bg = self.bridge()
        cases = [
            (["-G", "g", bg.ws, "t"], "-G cannot be used with a ws:// URL"),
            (["-p", "0", bg.ws, "t"], "-p cannot be used"),
            (["-b", self.brokers, bg.ws, "t"], "-b cannot be used"),
            (["-F", "/dev/null", bg.ws, "t"], "-F cannot be used"),
            (["-o", "stored", bg.ws, "t"], "needs a consumer group"),
            (["-o", "sideways", bg.ws, "t"], "sideways"),
            ([bg.ws], "nothing to read"),
            ([bg.ws + "v2/broker/?topics=a", "b"], "not both"),
            ([bg.ws + "v2/broker/?topics=a&offset=earliest", "-o", "latest"], "not both"),
            (["-e", bg.ws + "v2/broker/?topics=a&group.id=g"], "-e cannot be used with group.id"),
            (["t", bg.ws], "must be the first argument"),
            (["--insecure", "t"], "apply to a ws:// or wss:// URL only"),
            (["http://localhost/", "t"], None),
        ]
        for args, needle in cases:
            r = self.through("tail", *args, rc=2)
            if needle:
                self.assertStderrMentions(r, needle)

    def test_bridge_refusal_shows_status_and_body(self):
        bg = self.bridge()
        r = self.through("tail", bg.ws + "v2/broker/?topics=a&bogus=1", rc=1)
        self.assertStderrMentions(r, "HTTP 400", "bogus")
        r = self.through("tail", bg.ws + "elsewhere/?topics=a", rc=1)
        self.assertStderrMentions(r, "HTTP 404")


class Peers(BridgeTestCase):
    """python3-kafka, an independent Kafka client, on the other side."""

    def setUp(self):
        if KafkaConsumer is None:
            self.skipTest("python3-kafka is not installed")

    def test_python_kafka_reads_what_went_through_the_bridge(self):
        bg = self.bridge()
        topic = self.topic()
        # A line that is not UTF-8 travels as base64 in the frame and
        # arrives as the same bytes.
        self.through("send", bg.ws, topic, "-p", "1", "-K", ":", "-H", "h=v", input=b"k1:hello\nk2:w\xf6rld\n")
        c = KafkaConsumer(bootstrap_servers=self.brokers, enable_auto_commit=False, consumer_timeout_ms=2000,
                          request_timeout_ms=15000)
        self.addCleanup(c.close)
        tp = TopicPartition(topic, 1)
        c.assign([tp])
        c.seek_to_beginning(tp)
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 2 and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=500).values():
                records.extend(batch)
        self.assertEqual([(r.key, r.value, list(r.headers)) for r in records],
                         [(b"k1", b"hello", [("h", b"v")]), (b"k2", b"w\xf6rld", [("h", b"v")])])

    def test_kws_tail_reads_what_python_kafka_wrote(self):
        bg = self.bridge()
        topic = self.topic()
        p = KafkaProducer(bootstrap_servers=self.brokers, request_timeout_ms=15000)
        self.addCleanup(p.close)
        for f in [p.send(topic, key=b"a", value=b"\xff\x00", headers=[("h", b"1")], partition=0),
                  p.send(topic, key=None, value=b"text", partition=0)]:
            f.get(timeout=15)
        envs = self.through("tail", bg.ws, topic, "-J", "-o", "beginning", "-e").json_lines()
        self.assertEqual([(e["key"], kwstest.envelope_bytes(e, "message"), kwstest.header_pairs(e)) for e in envs],
                         [("a", b"\xff\x00", [(b"h", b"1")]), (None, b"text", [])])


class Connecting(BridgeTestCase):
    def test_refused_connection_is_a_clear_error_not_a_hang(self):
        holder = kwstest.free_port_holder()
        self.addCleanup(holder.close)
        url = "ws://127.0.0.1:%d/" % holder.getsockname()[1]
        for args in (["tail", url, "t"], ["send", url, "t", "x"]):
            r = self.through(*args, rc=1, timeout=15)
            self.assertStderrMentions(r, "cannot connect to the bridge", "refused the connection")

    def test_timeout_bounds_a_silent_server(self):
        """A listener that accepts TCP but never answers the upgrade."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        self.addCleanup(s.close)
        url = "ws://127.0.0.1:%d/" % s.getsockname()[1]
        for args in (["tail", url, "t"], ["send", url, "t", "x"]):
            start = time.monotonic()
            r = self.through(*args, "--timeout", "1", rc=1, timeout=15)
            self.assertLess(time.monotonic() - start, 6, str(r))
            self.assertStderrMentions(r, "cannot connect to the bridge")

    def test_a_frozen_bridge_ends_the_run_within_timeout(self):
        """A bridge that stops (SIGSTOP) answers no ping: kws tail ends with
        status 1 instead of waiting for ever."""
        bg = self.bridge()
        topic = self.create(self.topic())
        t = self.background("tail", "--timeout", "1", bg.ws, topic, "-o", "beginning", brokers=False)
        t.wait_for_output(lambda out: b"seed\n" in out, what="the seed message")
        bg.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: bg.proc.poll() is None and bg.proc.send_signal(signal.SIGCONT))
        self.assertEqual(t.wait(timeout=10), 1, t.describe())
        self.assertIn(b"no pong within 1000 ms", t.err, t.describe())

    def test_bearer_token_from_file_and_environment(self):
        d = kwstest.scratch_dir()
        secret = os.path.join(d, "secret")
        with open(secret, "wb") as f:
            f.write(SECRET)
        bg = self.bridge("--jwt-secret-file", secret)
        topic = self.topic()
        # No token: 401 with the bridge's reason, for both commands.
        for args in (["tail", bg.ws, topic], ["send", bg.ws, topic, "x"]):
            r = self.through(*args, rc=1)
            self.assertStderrMentions(r, "HTTP 401", "token")
        token = hs256({"sub": "alice", "exp": int(time.time()) + 3600,
                       "kws": {"read": [topic], "write": [topic]}})
        token_file = os.path.join(d, "token")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        self.through("send", "--token", token_file, bg.ws, topic, "one", "two")
        r = self.through("tail", bg.ws, topic, "-o", "earliest", "-e",
                         env=kwstest.clean_env(KWS_TOKEN=token))
        self.assertEqual(sorted(r.lines()), ["one", "two"], str(r))
        # A topic the token does not grant: 403 naming it.
        r = self.through("tail", "--token", token_file, bg.ws, self.topic("other"), rc=1)
        self.assertStderrMentions(r, "HTTP 403")
        # A produce the token does not grant: an error frame, exit 1.
        r = self.through("send", "--token", token_file, bg.ws, self.topic("other"), "x", rc=1)
        self.assertStderrMentions(r, "not_allowed", "input line 1")

    def test_wss_with_ca(self):
        d = kwstest.scratch_dir()
        files = kwstest.make_ca(d, "bridge")
        bg = self.bridge("--tls-cert", files["cert"], "--tls-key", files["key"])
        self.assertTrue(bg.ws.startswith("wss://"), bg.ws)
        topic = self.topic()
        self.through("send", "--ca", files["ca"], bg.ws, topic, "secure")
        r = self.through("tail", "--ca", files["ca"], bg.ws, topic, "-o", "earliest", "-e")
        self.assertEqual(r.lines(), ["secure"], str(r))
        r = self.through("tail", bg.ws, topic, "-o", "earliest", "-e", rc=1)
        self.assertStderrMentions(r, "certificate verify failed")
        # A wss:// URL on the plain port is named as such.
        plain = self.bridge()
        r = self.through("tail", "--ca", files["ca"], plain.ws.replace("ws://", "wss://"), topic, rc=1)
        self.assertStderrMentions(r, "TLS")


if __name__ == "__main__":
    kwstest.main(requires_modules={"websockets": websockets})
