"""`kws tail -J -e -o beginning SRC | kws send -J DST` copies a topic:
keys, per-message headers (repeats, null values, binary values), binary
values, tombstones, partitions and producer timestamps all survive."""

import json
import os
import subprocess
import time

import kwstest
from kwstest import b64, envelope_bytes, header_pairs

BINARY = bytes(range(255, -1, -1)) + b"\x00\x00\xc3\x28"


def essence(env):
    """What a copy must preserve, as bytes."""
    return {
        "partition": env["partition"],
        "offset": env["offset"],
        "timestamp": env["timestamp"],
        "timestamp_type": env["timestamp_type"],
        "key": envelope_bytes(env, "key"),
        "headers": header_pairs(env),
        "message": envelope_bytes(env, "message"),
    }


class JsonCopy(kwstest.KwsTestCase):
    broker_args = ["--partitions", "4", "-t", "narrow-strict:1", "-t", "narrow-any:1"]

    def fill_source(self, t):
        # Plain sends: key, headers, partition and a binary file value.
        self.send(t, "-p", "0", "-k", "k0", "-H", "h=0", "zero")
        self.send(t, "-p", "0", "-H", "a=x", "-H", "a=y", "-H", "b=", "no key, repeated header")
        blob = os.path.join(kwstest.scratch_dir(), "blob")
        with open(blob, "wb") as f:
            f.write(BINARY)
        self.send(t, "-p", "2", "-k", "bin", "-H", "type=octets", "--file", blob)
        # Envelopes: what plain send cannot express.
        self.send_json(t, [
            {"partition": 1, "key": b64(b"\xff\xfe\x00k"), "key_encoding": "base64", "timestamp": 1600000000000,
             "headers": [{"name": "bin", "value": b64(b"\x80\x00\xff"), "value_encoding": "base64"},
                         {"name": "null", "value": None},
                         {"name": "utf8", "value": "✓ ünïcode"}],
             "message": "line1\nline2\ttab \"quoted\" ✓"},
            {"partition": 3, "key": "tomb", "message": None, "timestamp": 1600000000001},
            {"partition": 3, "key": "", "message": "", "headers": [{"name": "only", "value": "one"}]},
            {"partition": 1, "key": None, "message": b64(b"\x00\x01\x02\xfe"), "message_encoding": "base64"},
        ])
        envs = self.tail_json(t)
        self.assertEqual(len(envs), 7, envs)
        return envs

    def copy(self, src, dst, *send_args, send_rc=0):
        tail_cmd = [kwstest.KWS_BIN, "tail", "-b", self.brokers, "-J", "-e", "-o", "beginning", src]
        send_cmd = [kwstest.KWS_BIN, "send", "-b", self.brokers, "-J", *send_args, dst]
        env = kwstest.clean_env()
        errs = [open(os.path.join(kwstest.scratch_dir(), "err"), "w+b") for _ in range(2)]
        tail = kwstest.spawn(tail_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errs[0], env=env)
        send = kwstest.spawn(send_cmd, stdin=tail.stdout, stdout=subprocess.PIPE, stderr=errs[1], env=env)
        tail.stdout.close()
        try:
            out, _ = send.communicate(timeout=30)
            tail.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for p in (tail, send):
                p.kill()
                p.wait()
            out = b""
        texts = []
        for p, cmd, err in ((tail, tail_cmd, errs[0]), (send, send_cmd, errs[1])):
            err.seek(0)
            texts.append(kwstest.describe(cmd, p.returncode, out if p is send else b"<piped>", err.read()))
            err.close()
        story = "\n".join(texts)
        self.assertEqual(tail.returncode, 0, story)
        self.assertEqual(send.returncode, send_rc, story)
        self.assertEqual(out, b"", story)
        return story

    def test_copy_preserves_everything(self):
        src, dst = self.topic("src"), self.topic("dst")
        source = self.fill_source(src)
        self.copy(src, dst)
        copied = self.tail_json(dst)
        self.assertEqual([essence(e) for e in copied], [essence(e) for e in source])
        for e in copied:
            self.assertEqual(e["topic"], dst)
        # Spot checks, so that a bug in both directions cannot hide.
        by_value = {envelope_bytes(e, "message"): e for e in copied}
        self.assertEqual(by_value[BINARY]["partition"], 2)
        self.assertEqual(by_value[BINARY]["key"], "bin")
        self.assertEqual(by_value[BINARY].get("message_encoding"), "base64")
        self.assertIsNone(by_value[None]["message"])
        self.assertEqual(by_value[None]["key"], "tomb")
        self.assertEqual(by_value[None]["timestamp"], 1600000000001)

    def test_copy_twice_appends_identical_messages(self):
        src, dst = self.topic("src"), self.topic("dst")
        source = self.fill_source(src)
        self.copy(src, dst)
        self.copy(dst, src)
        doubled = self.tail_json(src)
        self.assertEqual(len(doubled), 14)
        per_partition = {}
        for e in doubled:
            per_partition.setdefault(e["partition"], []).append(essence(e))
        for p, msgs in per_partition.items():
            half = len(msgs) // 2
            first = [dict(m, offset=None) for m in msgs[:half]]
            second = [dict(m, offset=None) for m in msgs[half:]]
            self.assertEqual(first, second, "partition %d" % p)

    def test_copy_into_fewer_partitions(self):
        src = self.topic("src")
        source = self.fill_source(src)
        # Envelopes for partitions the destination lacks are rejected (and
        # said so), the others are copied.
        story = self.copy(src, "narrow-strict", send_rc=1)
        self.assertIn("partition", story)
        copied = self.tail_json("narrow-strict")
        self.assertEqual([essence(e) for e in copied], [essence(e) for e in source if e["partition"] == 0])
        # --any-partition lets the partitioner place every message.
        self.copy(src, "narrow-any", "--any-partition")
        copied = self.tail_json("narrow-any")
        strip = lambda e: dict(essence(e), partition=None, offset=None)
        self.assertEqual(sorted(map(repr, map(strip, copied))), sorted(map(repr, map(strip, source))))

    def test_create_like_keeps_every_partition(self):
        # The broker's default (4 here) would lose partitions 4 and 5.
        src, dst = self.topic("src"), self.topic("dst")
        self.kws("topics", "--create", src + ":6")
        self.send(src, "-p", "0", "-k", "a", "first")
        self.send(src, "-p", "5", "-k", "z", "last")
        story = self.copy(src, dst, "--create-like", src)
        self.assertIn("created topic '%s' with 6 partition(s), as '%s' has" % (dst, src), story)
        self.assertEqual(len(self.high_watermarks(dst)), 6)
        self.assertEqual([essence(e) for e in self.tail_json(dst)], [essence(e) for e in self.tail_json(src)])
        # A destination that exists is left as it is, and said to differ.
        story = self.copy(src, "narrow-any", "--create-like", src, "--any-partition")
        self.assertIn("'narrow-any' exists with 1 partition(s); '%s' has 6" % src, story)

    def test_create_like_a_missing_source_creates_nothing(self):
        dst = self.topic("dst")
        r = self.kws("send", "-J", "--create-like", "nosuch-" + dst, dst, input=b'{"message":"m"}\n', rc=1)
        self.assertIn("--create-like nosuch-%s: there is no topic" % dst, r.stderr, str(r))
        self.assertNotIn(dst, {t["name"] for t in self.topics_json()["topics"]})

    def test_envelope_without_value_is_refused_not_a_tombstone(self):
        # A typo ("mesage") or another tool's name ("value") once produced a
        # null value, which deletes the key on a compacted topic.
        t = self.topic()
        lines = "\n".join([
            json.dumps({"partition": 0, "key": "k1", "message": "before"}),
            json.dumps({"partition": 0, "key": "k1", "mesage": "typo", "value": "other tool"}),
            json.dumps({"partition": 0, "key": "k2"}),
            json.dumps({"partition": 0, "key": "k3", "message": None}),
            json.dumps({"partition": 0, "key": "k1", "message": "after", "extra": "ignored"}),
        ]) + "\n"
        r = self.kws("send", "-J", t, input=lines, rc=1)
        self.assertIn('input line 2: no "message" field (use "message": null for a tombstone); '
                      'unknown fields: "mesage", "value"', r.stderr, str(r))
        self.assertIn('input line 3: no "message" field', r.stderr, str(r))
        self.assertIn("2 input line(s) rejected", r.stderr, str(r))
        stored = [(e["key"], e["message"]) for e in self.tail_json(t)]
        self.assertEqual(stored, [("k1", "before"), ("k3", None), ("k1", "after")])

    def test_copy_keeps_log_append_time_out(self):
        # A log_append timestamp belongs to the source broker: a copy gets a
        # fresh producer time instead of claiming it.
        dst = self.topic()
        before = int(time.time() * 1000)
        self.send_json(dst, [{"partition": 0, "timestamp": 1000, "timestamp_type": "log_append", "message": "m"}])
        (env,) = self.tail_json(dst)
        self.assertEqual(env["timestamp_type"], "create")
        self.assertGreaterEqual(env["timestamp"], before - 1000)


if __name__ == "__main__":
    kwstest.main()
