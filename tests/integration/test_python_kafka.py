"""python3-kafka (kafka-python, a pure-Python Kafka client) as an
independent peer: it reads what kws send wrote, kws tail reads what it
produced, and it sees the offsets kws tail -G committed (and kws topics -G
sees the ones it committed)."""

import time

import kwstest
from kwstest import envelope_bytes, header_pairs

try:
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata
except ImportError:  # reported by kwstest.main() as a skip
    kafka = None


class PythonKafkaPeer(kwstest.KwsTestCase):
    broker_args = ["--partitions", "3"]

    def consumer(self, **kwargs):
        c = KafkaConsumer(bootstrap_servers=self.brokers, enable_auto_commit=False,
                          consumer_timeout_ms=2000, request_timeout_ms=15000, **kwargs)
        self.addCleanup(c.close)
        return c

    def read_partition(self, topic, partition, expected):
        """Reads from the beginning until `expected` records arrived (or 20 s)."""
        c = self.consumer()
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        records = []
        deadline = time.monotonic() + 20
        while len(records) < expected and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=500).values():
                records.extend(batch)
        return records

    def test_python_reads_kws_send(self):
        t = self.topic()
        self.send(t, "-p", "1", "-K", ":", "-H", "h1=v1", "-H", "h2=", input=b"k1:hello\nk2:w\xf6rld\n")
        self.send(t, "-p", "1", "-J", input=b'{"message":"tomb?","key":null}\n{"message":null,"key":"gone"}\n')
        records = self.read_partition(t, 1, 4)
        self.assertEqual([(r.offset, r.key, r.value, list(r.headers)) for r in records], [
            (0, b"k1", b"hello", [("h1", b"v1"), ("h2", b"")]),
            (1, b"k2", b"w\xf6rld", [("h1", b"v1"), ("h2", b"")]),
            (2, None, b"tomb?", []),
            (3, b"gone", None, []),
        ])

    def test_kws_tail_reads_python_produce(self):
        t = self.topic()
        p = KafkaProducer(bootstrap_servers=self.brokers, request_timeout_ms=15000)
        self.addCleanup(p.close)
        futures = [
            p.send(t, key=b"k", value=b"\xff\x00binary", headers=[("h", b"1"), ("h", b"\xfe")], partition=2,
                   timestamp_ms=1700000000000),
            p.send(t, key=None, value=b"text \xe2\x9c\x93", partition=2, timestamp_ms=1700000000001),
            p.send(t, key=b"x", value=b"other partition", partition=0, timestamp_ms=1700000000002),
        ]
        offsets = [(f.get(timeout=15).partition, f.get(timeout=15).offset) for f in futures]
        self.assertEqual(offsets, [(2, 0), (2, 1), (0, 0)])
        p.flush()
        envs = self.tail_json(t)
        self.assertEqual([(e["partition"], e["offset"], e["timestamp"], envelope_bytes(e, "key"),
                           envelope_bytes(e, "message"), header_pairs(e)) for e in envs], [
            (0, 0, 1700000000002, b"x", b"other partition", []),
            (2, 0, 1700000000000, b"k", b"\xff\x00binary", [(b"h", b"1"), (b"h", b"\xfe")]),
            (2, 1, 1700000000001, None, "text ✓".encode(), []),
        ])
        self.assertEqual(envs[1].get("message_encoding"), "base64")
        self.assertNotIn("message_encoding", envs[2])

    def test_committed_offsets_agree_both_ways(self):
        t, g_kws, g_py = self.topic(), self.topic("gk"), self.topic("gp")
        self.send(t, "-p", "0", "a", "b", "c")
        self.send(t, "-p", "2", "d")
        # kws commits; python reads the group's committed offsets.
        r = self.tail("-G", g_kws, "-o", "beginning", "-e", t, timeout=40)
        self.assertEqual(sorted(r.lines()), ["a", "b", "c", "d"])
        c = self.consumer(group_id=g_kws)
        self.assertEqual(c.committed(TopicPartition(t, 0)), 3)
        self.assertEqual(c.committed(TopicPartition(t, 2)), 1)
        # python commits; kws topics -G shows it.
        c2 = self.consumer(group_id=g_py)
        c2.commit({TopicPartition(t, 0): OffsetAndMetadata(1, ""), TopicPartition(t, 2): OffsetAndMetadata(1, "")})
        doc = self.topics_json("-G", g_py, t)
        rows = {row["partition"]: (row["committed"], row["high"], row["lag"]) for row in doc["groups"]}
        self.assertEqual(rows, {0: (1, 3, 2), 1: (None, 0, None), 2: (1, 1, 0)})


if __name__ == "__main__":
    kwstest.main(requires_modules={"kafka": kafka})
