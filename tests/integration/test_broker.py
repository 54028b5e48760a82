"""kws broker: the BROKERS= line, -n brokers, -t and --partitions topics,
auto-creation and --no-auto-create, a busy --listen address. The default
port 9092 is tested in test_default_port.py."""

import re
import select
import os
import socket
import struct
import time

import kwstest


class Cluster(kwstest.KwsTestCase):
    broker_args = ["-n", "3", "-t", "x:5", "-t", "y:5", "-t", "plain", "--partitions", "2"]

    def test_brokers_line(self):
        self.assertRegex(self.broker.first_line, r"^BROKERS=127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+)*$")
        for address in self.brokers.split(","):
            self.assertNotEqual(address, "127.0.0.1:0")

    def test_three_brokers_and_five_partitions(self):
        doc = self.topics_json("x")
        self.assertEqual(sorted(b["id"] for b in doc["brokers"]), [1, 2, 3], doc)
        (x,) = doc["topics"]
        self.assertEqual(x["name"], "x")
        self.assertEqual([p["partition"] for p in x["partitions"]], [0, 1, 2, 3, 4], x)
        for p in x["partitions"]:
            self.assertIn(p["leader"], (1, 2, 3), p)
            self.assertEqual(p["low"], 0, p)
            self.assertGreaterEqual(p["high"], 0, p)
        # The table form says the same.
        r = self.kws("topics", "x")
        self.assertEqual(len([l for l in r.lines() if l.startswith("x ")]), 5, str(r))
        self.assertEqual(len([l for l in r.lines() if re.match(r"^[123]\s+127\.0\.0\.1:\d+$", l)]), 3, str(r))

    def test_every_partition_works_across_brokers(self):
        for p in range(5):
            self.send("y", "-p", p, "to-%d" % p)
        envs = self.tail_json("y")
        self.assertEqual([(e["partition"], e["message"]) for e in envs], [(p, "to-%d" % p) for p in range(5)])
        self.assertEqual(self.high_watermarks("y"), {p: 1 for p in range(5)})

    def test_topic_without_count_uses_partitions_option(self):
        (t,) = self.topics_json("plain")["topics"]
        self.assertEqual(len(t["partitions"]), 2, t)

    def test_auto_created_topic_uses_partitions_option(self):
        t = self.topic()
        self.send(t, "x")
        self.assertEqual(len(self.high_watermarks(t)), 2)

    def test_listing_all_topics(self):
        names = {t["name"] for t in self.topics_json()["topics"]}
        self.assertTrue({"x", "y", "plain"} <= names, names)


class DefaultPartitions(kwstest.KwsTestCase):
    broker_args = []

    def test_auto_created_topic_has_one_partition_by_default(self):
        # As documented (kws broker --help): --partitions defaults to 1, as Kafka.
        t = self.topic()
        self.send(t, "x")
        self.assertEqual(self.high_watermarks(t), {0: 1})


class NoAutoCreate(kwstest.KwsTestCase):
    broker_args = ["--no-auto-create", "-t", "only:2"]

    def test_unknown_topic_is_refused(self):
        t = self.topic()
        r = self.send(t, "x", rc=1, timeout=20)
        self.assertStderrMentions(r, t)
        self.assertNotIn(t, {x["name"] for x in self.topics_json()["topics"]})

    def test_created_topic_works(self):
        self.send("only", "-p", "1", "fine")
        self.assertEqual([e["message"] for e in self.tail_json("only")], ["fine"])


class ListenAddress(kwstest.KwsTestCase):
    broker_args = None

    def test_busy_explicit_address_fails(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        address = "127.0.0.1:%d" % busy.getsockname()[1]
        r = kwstest.kws("broker", "--listen", address, timeout=15)
        self.assertEqual(r.rc, 1, str(r))
        self.assertNotIn(b"BROKERS=", r.out, str(r))
        self.assertIn(str(busy.getsockname()[1]), r.stderr, str(r))
        self.assertRegex(r.stderr.lower(), r"in use|cannot listen|bind", str(r))
        self.assertIn("held by pid %d: " % os.getpid(), r.stderr, str(r))
        self.assertIn("pass -l 127.0.0.1:0 for any free port, or -l HOST:PORT", r.stderr, str(r))

    def test_port_alone_means_loopback(self):
        # websocat's forms, read by the same rule as kws serve's -l.
        for listen in ("0", ":0"):
            b = kwstest.Broker(listen=listen)
            self.addCleanup(b.kill)
            self.assertRegex(b.brokers, r"^127\.0\.0\.1:\d+$", b.describe())
            self.assertNotEqual(b.brokers, "127.0.0.1:0")
            self.assertEqual(b.stop(), 143)  # SIGTERM

    def test_help_states_the_limits(self):
        r = kwstest.kws("broker", "--help", timeout=15)
        self.assertEqual(r.rc, 0, str(r))
        for needle in ("memory only", "lost when it stops", "oldest messages", "not production"):
            self.assertIn(needle, r.stdout, str(r))

    def test_bad_listen_and_topic_specs_are_usage_errors(self):
        for args in (["--listen", "nonsense"], ["--listen", "127.0.0.1:99999"], ["-t", "x:0"],
                     ["-t", "bad/name"], ["-n", "0"], ["-t", "x", "-t", "x:2"]):
            with self.subTest(args=args):
                r = kwstest.kws("broker", *args, timeout=15)
                self.assertEqual(r.rc, 2, str(r))
                self.assertEqual(r.out, b"", str(r))


class MalformedRequests(kwstest.KwsTestCase):
    """The front end stops requests that would crash librdkafka's mock or let
    it create topics behind --no-auto-create; the broker keeps serving."""
    broker_args = ["--no-auto-create", "-t", "known"]

    def raw_request(self, api_key, version, body, correlation_id=1):
        """The broker's first bytes back, or b"" when it closed the
        connection. A broker that neither answers nor closes fails the test:
        a hung broker must not pass as "dropped"."""
        host, port = self.brokers.split(",")[0].rsplit(":", 1)
        client_id = b"raw"
        frame = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id + body
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(struct.pack(">i", len(frame)) + frame)
            s.settimeout(10)
            try:
                return s.recv(65536)
            except ConnectionResetError:
                return b""
            except socket.timeout:
                self.fail("TIMED OUT: the broker neither answered nor closed the connection in 10 s")

    def assertBrokerServes(self):
        doc = self.topics_json("known")
        self.assertEqual([t["name"] for t in doc["topics"]], ["known"], doc)

    def test_unreadable_metadata_request_is_dropped(self):
        # A topic count far beyond the frame (the mock tried to allocate it and aborted).
        self.assertEqual(self.raw_request(3, 1, struct.pack(">i", 0x4D0000FF) + struct.pack(">h", -1)), b"")
        # A null topic name (the mock created "" and the named topic).
        body = struct.pack(">i", 2) + struct.pack(">h", 6) + b"secret" + struct.pack(">h", -1)
        self.assertEqual(self.raw_request(3, 1, body), b"")
        self.assertBrokerServes()
        names = [t["name"] for t in self.topics_json()["topics"]]
        self.assertEqual(names, ["known"], "nothing may be created behind --no-auto-create")

    def test_join_group_without_protocols_is_refused(self):
        body = struct.pack(">h", 1) + b"g" + struct.pack(">i", 10000) + struct.pack(">h", 0)
        body += struct.pack(">h", 8) + b"consumer" + struct.pack(">i", 0)
        for _ in range(12):  # the mock died at the 10th
            answer = self.raw_request(11, 0, body)
            # INCONSISTENT_GROUP_PROTOCOL after size and correlation id, as Kafka answers.
            self.assertEqual(answer[8:10], struct.pack(">h", 23), answer)
        self.assertBrokerServes()


def _str16(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _fetch_v4(correlation_id, topic, offset, max_wait_ms, min_bytes=1):
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, 1 << 20, 0)  # replica, wait, min bytes, max bytes, isolation
    body += struct.pack(">i", 1) + _str16(topic) + struct.pack(">i", 1) + struct.pack(">iqi", 0, offset, 1 << 20)
    frame = struct.pack(">hhi", 1, 4, correlation_id) + _str16("raw") + body
    return struct.pack(">i", len(frame)) + frame


def _metadata_v0(correlation_id, topic):
    frame = struct.pack(">hhi", 3, 0, correlation_id) + _str16("raw") + struct.pack(">i", 1) + _str16(topic)
    return struct.pack(">i", len(frame)) + frame


class FetchWaits(kwstest.KwsTestCase):
    """librdkafka's mock answers an empty Fetch only after the client's
    whole wait, even when records arrive meanwhile; the front end answers
    as soon as a produce is stored, like a real broker, and keeps each
    connection's answers in order."""
    broker_args = []

    def read_frame(self, s, deadline):
        """The next answer on `s` (after its size), read into self.buf first."""
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">i", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    frame, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail("TIMED OUT waiting for the broker's answer")
            s.settimeout(remaining)
            chunk = s.recv(65536)
            self.assertNotEqual(chunk, b"", "the broker closed the connection")
            self.buf += chunk

    def test_a_waiting_fetch_is_answered_when_a_record_arrives_and_answers_stay_in_order(self):
        t = self.topic()
        self.send(t, "first")
        host, port = self.brokers.split(",")[0].rsplit(":", 1)
        self.buf = b""
        with socket.create_connection((host, int(port)), timeout=5) as s:
            # A Fetch at the end of the partition that may wait 20 s, and a
            # Metadata request right behind it on the same connection.
            s.sendall(_fetch_v4(1, t, 1, 20000) + _metadata_v0(2, t))
            ready, _, _ = select.select([s], [], [], 0.5)
            self.assertEqual(ready, [], "nothing may be answered before the Fetch: it has no data yet")
            # A record in another topic wakes the Fetch, which finds nothing and waits on.
            self.send(self.topic("other"), "elsewhere")
            ready, _, _ = select.select([s], [], [], 0.5)
            self.assertEqual(ready, [], "a record elsewhere must not end the wait with an empty answer")
            started = time.monotonic()
            self.send(t, "second")
            fetch = self.read_frame(s, started + 15)
            waited = time.monotonic() - started
            self.assertEqual(struct.unpack(">i", fetch[:4])[0], 1, "the Fetch is answered first")
            self.assertIn(b"second", fetch)
            # kws send itself takes a while to start; the mock alone would have held the answer 20 s.
            self.assertLess(waited, 8, "the Fetch was answered %.1f s after the record was sent" % waited)
            metadata = self.read_frame(s, time.monotonic() + 10)
            self.assertEqual(struct.unpack(">i", metadata[:4])[0], 2, "then the Metadata request behind it")

            # With no record arriving, the answer comes when the client's wait is over, empty.
            started = time.monotonic()
            s.sendall(_fetch_v4(3, t, 2, 700))
            empty = self.read_frame(s, started + 10)
            waited = time.monotonic() - started
            self.assertEqual(struct.unpack(">i", empty[:4])[0], 3)
            self.assertNotIn(b"second", empty)
            self.assertGreaterEqual(waited, 0.6, "an empty Fetch is held for the client's wait")
            self.assertLess(waited, 5)

            # Data the client asked more bytes of than there are: answered at once
            # (the mock answers with one stored batch; waiting would not add more).
            started = time.monotonic()
            s.sendall(_fetch_v4(4, t, 0, 20000, min_bytes=1 << 20))
            some = self.read_frame(s, started + 15)
            self.assertEqual(struct.unpack(">i", some[:4])[0], 4)
            self.assertIn(b"first", some)
            self.assertLess(time.monotonic() - started, 5)

    def test_a_consumer_with_a_long_wait_sees_records_at_once(self):
        t = self.topic()
        self.send(t, "warm-up")
        with self.background("tail", t, "-o", "end", "-X", "fetch.wait.max.ms=30000") as bg:
            self.follow_until_live(t, bg)
            for i in range(3):
                started = time.monotonic()
                self.send(t, "now-%d" % i)
                bg.wait_for_output(lambda out, i=i: b"now-%d" % i in out, timeout=10,
                                   what="record now-%d" % i)
                self.assertLess(time.monotonic() - started, 8)


if __name__ == "__main__":
    kwstest.main()
