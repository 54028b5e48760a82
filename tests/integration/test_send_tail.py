"""kws send -> kws tail round trips: every way of giving send its input,
keys, headers, partitions, --print-offsets, and the binary-safety of values."""

import os
import re
import random

import kwstest
from kwstest import envelope_bytes, header_pairs


class SendTailRoundTrip(kwstest.KwsTestCase):
    broker_args = ["--partitions", "4"]

    def values(self, envs):
        return [envelope_bytes(e, "message") for e in envs]

    def test_each_argument_is_one_message(self):
        t = self.topic()
        self.send(t, "-p", "0", "one", "two words", "", "line\nbreak")
        envs = self.tail_json(t)
        self.assertEqual(self.values(envs), [b"one", b"two words", b"", b"line\nbreak"])
        for e in envs:
            self.assertIsNone(e["key"], e)
            self.assertEqual(e["headers"], [], e)

    def test_stdin_one_message_per_line(self):
        t = self.topic()
        self.send(t, "-p", "0", input=b"alpha\nbeta gamma\n  spaced  \nlast-without-newline")
        self.assertEqual(self.values(self.tail_json(t)),
                         [b"alpha", b"beta gamma", b"  spaced  ", b"last-without-newline"])

    def test_stdin_trailing_newline_adds_no_message(self):
        t = self.topic()
        self.send(t, "-p", "0", input=b"x\ny\n")
        self.assertEqual(self.values(self.tail_json(t)), [b"x", b"y"])

    def test_stdin_many_lines_all_delivered(self):
        t = self.topic()
        n = 5000
        self.send(t, input="".join("m%05d\n" % i for i in range(n)))
        envs = self.tail_json(t)
        self.assertEqual(sorted(self.values(envs)), [b"m%05d" % i for i in range(n)])
        self.assertEqual(sum(self.high_watermarks(t).values()), n)

    def test_stdin_records_across_read_blocks(self):
        # ~4 MB of records of random length with a two-byte delimiter: some
        # records and delimiters straddle kws's read blocks.
        t = self.topic()
        rng = random.Random(7)
        records = [("r%05d-" % i).encode() + b"z" * rng.randint(0, 3000) for i in range(2500)]
        self.send(t, "-p", "0", "-D", "||", input=b"||".join(records), timeout=60)
        r = self.tail("-o", "beginning", "-e", "-f", "%s\\n", t, timeout=60)
        self.assertEqual(r.out.split(b"\n")[:-1], records)

    def test_empty_stdin_sends_nothing(self):
        t = self.topic()
        self.send(t, "-p", "0", "first")
        self.send(t, "-p", "0", input=b"")
        self.assertEqual(self.values(self.tail_json(t)), [b"first"])

    def test_nul_delimiter(self):
        t = self.topic()
        self.send(t, "-p", "0", "-D", "\\0", input=b"first\nstill first\0second\0third\0")
        self.assertEqual(self.values(self.tail_json(t)), [b"first\nstill first", b"second", b"third"])

    def test_multi_character_delimiter(self):
        t = self.topic()
        self.send(t, "-p", "0", "-D", "||", input=b"a|b||c\nd||e")
        self.assertEqual(self.values(self.tail_json(t)), [b"a|b", b"c\nd", b"e"])

    def test_file_is_one_binary_message(self):
        t = self.topic()
        data = bytes(range(256)) + b"\x00\xff\xfe\xc3(\nend\n\x00"
        path = os.path.join(kwstest.scratch_dir(), "blob.bin")
        with open(path, "wb") as f:
            f.write(data)
        self.send(t, "-p", "0", "--file", path)
        envs = self.tail_json(t)
        self.assertEqual(len(envs), 1, envs)
        self.assertEqual(envs[0].get("message_encoding"), "base64", envs[0])
        self.assertEqual(envelope_bytes(envs[0], "message"), data)
        # The raw bytes, exactly, through -f '%s'.
        raw = self.tail("-o", "beginning", "-e", "-f", "%s", t)
        self.assertEqual(raw.out, data)

    def test_large_binary_file(self):
        t = self.topic()
        data = random.Random(3).randbytes(700 * 1024)
        path = os.path.join(kwstest.scratch_dir(), "large.bin")
        with open(path, "wb") as f:
            f.write(data)
        self.send(t, "-p", "0", "--file", path)
        raw = self.tail("-o", "beginning", "-e", "-f", "%S:%s", t)
        self.assertEqual(raw.out, b"%d:" % len(data) + data)
        (env,) = self.tail_json(t)
        self.assertEqual(envelope_bytes(env, "message"), data)

    def test_file_with_text_and_newlines_is_one_message(self):
        t = self.topic()
        text = "héllo\nwörld\n\n✓ done\n".encode("utf-8")
        path = os.path.join(kwstest.scratch_dir(), "text.txt")
        with open(path, "wb") as f:
            f.write(text)
        self.send(t, "--file", path)
        envs = self.tail_json(t)
        self.assertEqual(len(envs), 1, envs)
        self.assertNotIn("message_encoding", envs[0])
        self.assertEqual(envs[0]["message"], text.decode("utf-8"))

    def test_key_delimiter_splits_at_first(self):
        t = self.topic()
        self.send(t, "-p", "0", "-K", ":", input=b"k1:v1\nk2:v:2\nnokey\n:emptykey\n")
        envs = self.tail_json(t)
        self.assertEqual([(envelope_bytes(e, "key"), envelope_bytes(e, "message")) for e in envs],
                         [(b"k1", b"v1"), (b"k2", b"v:2"), (None, b"nokey"), (b"", b"emptykey")])

    def test_fixed_key(self):
        t = self.topic()
        self.send(t, "-p", "0", "-k", "the-key", "a", "b")
        envs = self.tail_json(t)
        self.assertEqual([(e["key"], e["message"]) for e in envs], [("the-key", "a"), ("the-key", "b")])

    def test_same_key_same_partition(self):
        t = self.topic()
        self.send(t, "-k", "user-42", *["m%d" % i for i in range(20)])
        envs = self.tail_json(t)
        self.assertEqual(len(envs), 20)
        self.assertEqual(len({e["partition"] for e in envs}), 1, "one key must map to one partition")
        self.assertEqual([e["message"] for e in envs], ["m%d" % i for i in range(20)])

    def test_headers(self):
        t = self.topic()
        self.send(t, "-p", "0", "-H", "a=1", "-H", "b=x=y", "-H", "a=2", "-H", "empty=", "msg")
        (env,) = self.tail_json(t)
        self.assertEqual(header_pairs(env), [(b"a", b"1"), (b"b", b"x=y"), (b"a", b"2"), (b"empty", b"")])
        self.assertEqual(env["message"], "msg")

    def test_headers_apply_to_every_stdin_line_with_keys(self):
        t = self.topic()
        self.send(t, "-p", "0", "-K", "=", "-H", "source=test", input=b"k=v1\nk=v2\n")
        envs = self.tail_json(t)
        self.assertEqual([(e["key"], e["message"], header_pairs(e)) for e in envs],
                         [("k", "v1", [(b"source", b"test")]), ("k", "v2", [(b"source", b"test")])])

    def test_partition(self):
        t = self.topic()
        self.send(t, "-p", "2", "a", "b", "c")
        self.send(t, "-p", "3", "d")
        envs = self.tail_json(t)
        self.assertEqual([(e["partition"], e["offset"], e["message"]) for e in envs],
                         [(2, 0, "a"), (2, 1, "b"), (2, 2, "c"), (3, 0, "d")])
        self.assertEqual(self.high_watermarks(t), {0: 0, 1: 0, 2: 3, 3: 1})

    def test_print_offsets_format(self):
        t = self.topic()
        r = self.send(t, "-p", "1", "--print-offsets", "a", "b", "c")
        self.assertEqual(r.stdout, "%s 1 0\n%s 1 1\n%s 1 2\n" % (t, t, t), str(r))
        self.assertEqual(r.err, b"", str(r))
        r = self.send(t, "-p", "1", "--print-offsets", input=b"d\ne\n")
        self.assertEqual(r.stdout, "%s 1 3\n%s 1 4\n" % (t, t), str(r))

    def test_print_offsets_match_what_tail_reads(self):
        t = self.topic()
        r = self.send(t, "--print-offsets", *["v%d" % i for i in range(30)])
        printed = set()
        for line in r.lines():
            topic, partition, offset = line.split(" ")
            self.assertEqual(topic, t, str(r))
            printed.add((int(partition), int(offset)))
        self.assertEqual(len(printed), 30, str(r))
        self.assertEqual(printed, {(e["partition"], e["offset"]) for e in self.tail_json(t)})

    def test_stdout_empty_without_print_offsets(self):
        t = self.topic()
        for args, data in ((("a", "b"), None), ((), b"x\ny\n"), (("-J",), b'{"message":"j"}\n')):
            r = self.kws("send", t, *args, input=data)
            self.assertEqual(r.out, b"", str(r))
            self.assertEqual(r.err, b"", str(r))
        self.assertEqual(sorted(self.values(self.tail_json(t))), [b"a", b"b", b"j", b"x", b"y"])


class ReadmeTour(kwstest.KwsTestCase):
    """Lines of the README's tour, run as written (kws from PATH, the broker
    from KWS_BROKERS), where a silent surprise is easy to miss."""
    broker_args = ["--partitions", "3"]

    def readme_line(self, needle):
        with open(os.path.join(kwstest.HERE, "..", "..", "README.md")) as f:
            lines = [line.split("  #")[0].strip() for line in f if needle in line]
        self.assertEqual(len(lines), 1, "README.md has one line with %r" % needle)
        return lines[0]

    def run_shell(self, line):
        bin_dir = os.path.join(kwstest.scratch_dir(), "bin")
        os.makedirs(bin_dir, exist_ok=True)
        if not os.path.exists(os.path.join(bin_dir, "kws")):
            os.symlink(os.path.abspath(kwstest.KWS_BIN), os.path.join(bin_dir, "kws"))
        env = kwstest.clean_env(KWS_BROKERS=self.brokers, PATH=bin_dir + os.pathsep + os.environ["PATH"])
        r = kwstest.run(["sh", "-c", line], timeout=30, env=env)
        self.assertEqual(r.rc, 0, str(r))
        return r

    def tour_lines(self):
        """Every command of the README's tour, in order, continuation lines
        joined and comments cut."""
        with open(os.path.join(kwstest.HERE, "..", "..", "README.md")) as f:
            text = f.read()
        tour = text[text.index("## A short tour"):text.index("## Commands")]
        lines = []
        for block in re.findall(r"```sh\n(.*?)```", tour, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip()
                if line and not line.startswith("#"):
                    lines.append(line)
        return lines

    def test_the_tour_runs_top_to_bottom(self):
        # What a new user pastes, in order, against the test's embedded
        # broker (started as the tour's `kws broker -t demo:3` would be).
        # Left out, and why: servers and feeds that run until stopped (and
        # the lines that need them), and hosts that do not exist here.
        def left_out(line):
            # ws:// lines and the SSE reader go through the `kws serve` that is left out.
            # MQTT lines need that `kws serve` (its --mqtt-listen) too.
            return (line.startswith(("kws serve", "kws broker")) or "ws://" in line or "127.0.0.1:8080" in line or
                    "mosquitto_" in line or "mqtt" in line or
                    "kafka1" in line or "example.com" in line or "wss://..." in line or
                    (line.startswith("kws tail") and " -e" not in line and " -c" not in line))
        ran = []
        for line in self.tour_lines():
            if left_out(line):
                continue
            r = self.run_shell(line.replace("localhost:9092", self.brokers))
            ran.append((line, r))
        self.assertGreaterEqual(len(ran), 12, [l for l, _ in ran])
        outputs = {line: r.out for line, r in ran}
        everything = next(out for line, out in outputs.items() if line.startswith("kws tail -o beginning -e demo"))
        self.assertIn(b"hello", everything)
        self.assertIn(b"login", everything)
        copy = self.tail_json("demo-copy")
        self.assertEqual(len(copy), len(self.tail_json("demo")))
        self.assertEqual(len(self.tail_json("numbers")), 100)

    def test_keyed_send_example_gives_keys(self):
        # It read `seq 5 | kws send -K : ...`: no ':' in the input, so
        # every key was null and the example showed nothing of -K.
        line = self.readme_line("kws send -K :")
        self.run_shell(line)
        topic = line.split()[-1]
        envs = self.tail_json(topic)
        self.assertGreater(len(envs), 1, line)
        keys = [e["key"] for e in envs]
        self.assertNotIn(None, keys, "%s\ngave %s" % (line, envs))
        self.assertGreater(len(set(keys)), 1, "%s\ngave one key for all: %s" % (line, envs))
        for e in envs:
            self.assertNotIn(e["key"] + ":", e["message"], e)


if __name__ == "__main__":
    kwstest.main()
