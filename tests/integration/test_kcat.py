"""kcat as an independent peer: it reads what kws send wrote (keys, headers,
partitions, binary values) and kws tail reads what kcat -P wrote; kws tail -f
prints kcat's format tokens exactly as kcat does. Skips (exit 77) when kcat
is not installed."""

import json
import os

import kwstest
from kwstest import envelope_bytes, header_pairs

FORMAT = "%t|%p|%o|%k|%s|%S|%K|%T|%h\\n"


class KcatPeer(kwstest.KwsTestCase):
    broker_args = ["--partitions", "4"]
    required_tools = ["kcat"]

    def kcat(self, *args, input=None, rc=0, timeout=30):
        r = kwstest.run(["kcat", "-b", self.brokers] + [str(a) for a in args], input=input, timeout=timeout)
        if rc is not None:
            self.assertEqual(r.rc, rc, "kcat failed\n" + str(r))
        return r

    def kcat_json(self, topic):
        r = self.kcat("-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")
        return sorted((json.loads(line) for line in r.lines() if line.strip()),
                      key=lambda m: (m["partition"], m["offset"]))

    def test_kcat_reads_kws_send(self):
        t = self.topic()
        self.send(t, "-p", "1", "-K", ":", "-H", "trace=abc", "-H", "n=1", input=b"user1:hello\nuser2:world\n")
        self.send(t, "-p", "3", "no key here")
        msgs = self.kcat_json(t)
        self.assertEqual([(m["partition"], m["offset"], m["key"], m["payload"], m.get("headers")) for m in msgs], [
            (1, 0, "user1", "hello", ["trace", "abc", "n", "1"]),
            (1, 1, "user2", "world", ["trace", "abc", "n", "1"]),
            (3, 0, None, "no key here", None),
        ])
        self.assertTrue(all(m["tstype"] == "create" for m in msgs), msgs)

    def test_kcat_reads_binary_file_exactly(self):
        t = self.topic()
        data = bytes(range(256)) * 3 + b"\x00\xff"
        path = os.path.join(kwstest.scratch_dir(), "blob")
        with open(path, "wb") as f:
            f.write(data)
        self.send(t, "-p", "0", "-k", "blob", "--file", path)
        r = self.kcat("-C", "-t", t, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%k:%S:%s")
        self.assertEqual(r.out, b"blob:%d:" % len(data) + data)

    def test_kws_tail_reads_kcat_produce(self):
        t = self.topic()
        self.kcat("-P", "-t", t, "-K:", "-H", "origin=kcat", "-p", "2", input=b"k1:v1\nk2:v:2\n")
        self.kcat("-P", "-t", t, "-p", "0", input=b"plain\n")
        envs = self.tail_json(t)
        self.assertEqual([(e["partition"], e["offset"], envelope_bytes(e, "key"), envelope_bytes(e, "message"),
                           header_pairs(e)) for e in envs], [
            (0, 0, None, b"plain", []),
            (2, 0, b"k1", b"v1", [(b"origin", b"kcat")]),
            (2, 1, b"k2", b"v:2", [(b"origin", b"kcat")]),
        ])

    def test_kws_tail_reads_kcat_binary_values(self):
        t = self.topic()
        self.kcat("-P", "-t", t, "-p", "1", "-D", "|", input=b"\xff\xfe one|two\nlines|")
        envs = self.tail_json(t)
        self.assertEqual([envelope_bytes(e, "message") for e in envs], [b"\xff\xfe one", b"two\nlines"])
        self.assertEqual(envs[0].get("message_encoding"), "base64")

    def test_kcat_json_into_kws_send_json(self):
        # kcat -J's own shape (payload, ts, tstype, broker, flat headers) is
        # read by kws send -J: nothing becomes a tombstone, partitions, keys,
        # headers and producer times are kept, and kcat's explicit null
        # payload stays a tombstone.
        src, dst = self.topic("src"), self.topic("dst")
        self.send(src, "-p", "1", "-K", ":", "-H", "trace=abc", "-H", "trace=dup", input=b"user1:hello\nuser2:world\n")
        self.send(src, "-p", "3", "no key")
        self.send_json(src, [{"partition": 2, "key": "gone", "message": None}])
        kcat_lines = self.kcat("-C", "-t", src, "-o", "beginning", "-e", "-J", "-q").out
        self.assertIn(b'"payload":null', kcat_lines)
        self.kws("send", "-J", dst, input=kcat_lines)
        source = self.tail_json(src)
        copied = self.tail_json(dst)
        essence = lambda e: (e["partition"], e["offset"], e["timestamp"], e["timestamp_type"], e["key"],
                             header_pairs(e), envelope_bytes(e, "message"))
        self.assertEqual([essence(e) for e in copied], [essence(e) for e in source])
        self.assertEqual(len(copied), 4, copied)
        self.assertEqual([e["message"] for e in copied if e["partition"] == 2], [None])

    def test_format_tokens_match_kcat(self):
        t = self.topic()
        self.send(t, "-p", "1", "-k", "kk", "-H", "a=1", "-H", "b=2", "hello")
        self.send(t, "-p", "1", "nokey")
        self.send(t, "-p", "2", "-K", "=", input=b"=empty key\n")
        ours = self.tail("-o", "beginning", "-e", "-f", FORMAT, t)
        theirs = self.kcat("-C", "-t", t, "-o", "beginning", "-e", "-q", "-f", FORMAT)
        self.assertEqual(sorted(ours.lines()), sorted(theirs.lines()), "%s\n%s" % (ours, theirs))
        self.assertEqual(len(ours.lines()), 3, str(ours))

    def test_topics_agree_with_kcat_metadata(self):
        t = self.topic()
        self.send(t, "-p", "3", "x")
        r = self.kcat("-L", "-J", "-t", t)
        meta = json.loads(r.stdout)
        (kt,) = [x for x in meta["topics"] if x["topic"] == t]
        doc = self.topics_json(t)
        (ours,) = doc["topics"]
        self.assertEqual(sorted(p["partition"] for p in ours["partitions"]),
                         sorted(p["partition"] for p in kt["partitions"]))
        self.assertEqual({p["partition"]: p["leader"] for p in ours["partitions"]},
                         {p["partition"]: p["leader"] for p in kt["partitions"]})
        self.assertEqual(sorted(b["id"] for b in doc["brokers"]), sorted(b["id"] for b in meta["brokers"]))


if __name__ == "__main__":
    kwstest.main(requires=KcatPeer.required_tools)
