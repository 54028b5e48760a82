"""kws tail: every -o start position, -e, -c, -p, several topics, -f tokens
and escapes, and the shape of -J envelopes."""

import datetime
import json
import signal
import time

import kwstest
from kwstest import envelope_bytes

# Fixed producer timestamps (create time) for the time-based tests.
T_A = 1714521599000  # 2024-04-30T23:59:59.000Z
T_B = 1714521601000  # 2024-05-01T00:00:01.000Z


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


class TailStartOffsets(kwstest.KwsTestCase):
    broker_args = ["--partitions", "4"]

    def make_topic(self):
        """Partition 0: p0-0..p0-4, partition 1: p1-0..p1-2, 2 and 3 empty."""
        t = self.topic()
        self.send(t, "-p", "0", *["p0-%d" % i for i in range(5)])
        self.send(t, "-p", "1", *["p1-%d" % i for i in range(3)])
        return t

    def read(self, t, *args):
        r = self.tail("-e", "-f", "%p %o %s\\n", *args, t)
        return sorted(r.lines())

    def test_beginning(self):
        t = self.make_topic()
        self.assertEqual(self.read(t, "-o", "beginning"),
                         ["0 %d p0-%d" % (i, i) for i in range(5)] + ["1 %d p1-%d" % (i, i) for i in range(3)])

    def test_absolute_offset(self):
        t = self.make_topic()
        self.assertEqual(self.read(t, "-o", "3"), ["0 3 p0-3", "0 4 p0-4"])
        self.assertEqual(self.read(t, "-o", "1", "-p", "1"), ["1 1 p1-1", "1 2 p1-2"])

    def test_last_n_per_partition(self):
        t = self.make_topic()
        self.assertEqual(self.read(t, "-o", "-2"), ["0 3 p0-3", "0 4 p0-4", "1 1 p1-1", "1 2 p1-2"])
        # More than a partition holds: all of it.
        self.assertEqual(len(self.read(t, "-o", "-4")), 4 + 3)

    def test_partition_only(self):
        t = self.make_topic()
        r = self.tail("-e", "-o", "beginning", "-p", "1", t)
        self.assertEqual(r.lines(), ["p1-0", "p1-1", "p1-2"])

    def test_exit_at_end_of_empty_partition(self):
        t = self.make_topic()
        r = self.tail("-e", "-o", "beginning", "-p", "3", t, timeout=15)
        self.assertQuietSuccess(r)
        self.assertEqual(r.out, b"")

    def test_count_stops_without_exit_flag(self):
        t = self.make_topic()
        # No -e: only -c can end this command.
        r = self.tail("-o", "beginning", "-c", "3", "-p", "0", t, timeout=15)
        self.assertEqual(r.lines(), ["p0-0", "p0-1", "p0-2"])
        r = self.tail("-o", "beginning", "-c", "3", t, timeout=15)
        self.assertEqual(len(r.lines()), 3, str(r))

    def test_count_larger_than_topic_with_exit(self):
        t = self.make_topic()
        r = self.tail("-o", "beginning", "-c", "100", "-e", t)
        self.assertEqual(len(r.lines()), 8, str(r))

    def test_several_topics(self):
        t1, t2 = self.topic("a"), self.topic("b")
        self.send(t1, "-p", "0", "one")
        self.send(t2, "-p", "0", "two")
        r = self.tail("-e", "-o", "beginning", "-f", "%t=%s\\n", t1, t2)
        self.assertEqual(sorted(r.lines()), sorted(["%s=one" % t1, "%s=two" % t2]))

    def test_topic_flag_as_kcat_spells_it(self):
        t1, t2 = self.topic("a"), self.topic("b")
        self.send(t1, "-p", "0", "one")
        self.send(t2, "-p", "0", "two")
        r = self.tail("-e", "-o", "beginning", "-f", "%t=%s\\n", "-t", t1)
        self.assertEqual(r.lines(), ["%s=one" % t1])
        r = self.tail("-e", "-o", "beginning", "-f", "%t=%s\\n", "-t", t1, "--topic", t2)
        self.assertEqual(sorted(r.lines()), sorted(["%s=one" % t1, "%s=two" % t2]))

    def check_live_only(self, *offset_args):
        t = self.make_topic()
        bg = self.background("tail", *offset_args, t)
        self.follow_until_live(t, bg)
        self.send(t, "fresh")
        bg.wait_for_output(lambda out: b"fresh\n" in out, what="the new message")
        bg.signal(2)
        bg.wait()
        lines = bg.lines()
        self.assertEqual([l for l in lines if l.startswith("p0-") or l.startswith("p1-")], [],
                         "messages from before the start were printed\n" + bg.describe())
        self.assertIn("fresh", lines)

    def test_end_prints_only_new_messages(self):
        self.check_live_only("-o", "end")

    def test_default_start_is_end(self):
        self.check_live_only()

    def test_exit_flag_with_end_stops_at_once(self):
        t = self.make_topic()
        r = self.tail("-e", "-o", "end", t, timeout=15)
        self.assertQuietSuccess(r)
        self.assertEqual(r.out, b"")


class TailTimeOffsets(kwstest.KwsTestCase):
    broker_args = ["--partitions", "2"]

    def make_topic(self):
        """Batch A (timestamps T_A..) and batch B (T_B..) in both partitions."""
        t = self.topic()
        envs = []
        for p in (0, 1):
            envs += [{"partition": p, "timestamp": T_A + i, "message": "A%d-%d" % (p, i)} for i in range(3)]
            envs += [{"partition": p, "timestamp": T_B + i, "message": "B%d-%d" % (p, i)} for i in range(2)]
        self.send_json(t, envs)
        return t

    def read(self, t, offset):
        r = self.tail("-e", "-o", offset, "-f", "%s\\n", t)
        return sorted(r.lines())

    B_ALL = ["B0-0", "B0-1", "B1-0", "B1-1"]

    def test_timestamps_are_kept(self):
        t = self.make_topic()
        r = self.tail("-e", "-o", "beginning", "-p", "0", "-f", "%T %I %s\\n", t)
        self.assertEqual(r.lines(), ["%d %s A0-%d" % (T_A + i, iso(T_A + i), i) for i in range(3)] +
                         ["%d %s B0-%d" % (T_B + i, iso(T_B + i), i) for i in range(2)])

    def test_at_milliseconds(self):
        t = self.make_topic()
        self.assertEqual(self.read(t, "@%d" % T_B), self.B_ALL)
        self.assertEqual(self.read(t, "s@%d" % T_B), self.B_ALL)
        self.assertEqual(self.read(t, "@%d" % (T_B + 1)), ["B0-1", "B1-1"])
        self.assertEqual(self.read(t, "@%d" % (T_A + 2)), ["A0-2", "A1-2"] + self.B_ALL)

    def test_time_start_then_reads_on_in_offset_order(self):
        # Kafka's rule: start at the first offset whose timestamp is at or
        # after the time, then read on, even past older timestamps.
        t = self.topic()
        self.send_json(t, [{"partition": 0, "timestamp": ts, "message": m} for ts, m in (
            (T_A, "old"), (T_B, "new"), (T_A + 5, "late-but-older"), (T_B + 10, "newer"))])
        r = self.tail("-e", "-o", "@%d" % T_B, "-p", "0", t)
        self.assertEqual(r.lines(), ["new", "late-but-older", "newer"])
        # -c counts printed messages, not the ones before the start.
        r = self.tail("-o", "@%d" % T_B, "-p", "0", "-c", "2", t, timeout=15)
        self.assertEqual(r.lines(), ["new", "late-but-older"])

    def test_at_time_after_everything_reads_nothing(self):
        t = self.make_topic()
        r = self.tail("-e", "-o", "@%d" % (T_B + 3600 * 1000), t)
        self.assertQuietSuccess(r)
        self.assertEqual(r.out, b"")

    def test_iso_8601(self):
        t = self.make_topic()
        self.assertEqual(self.read(t, "2024-05-01T00:00:00Z"), self.B_ALL)
        self.assertEqual(self.read(t, "2024-05-01T00:00:01.001Z"), ["B0-1", "B1-1"])
        self.assertEqual(self.read(t, "2024-05-01"), self.B_ALL, "a date alone is midnight UTC")
        # The same instant in another zone.
        self.assertEqual(self.read(t, "2024-05-01T02:00:00+02:00"), self.B_ALL)
        self.assertEqual(self.read(t, "2024-04-30T23:59:59.002Z"), ["A0-2", "A1-2"] + self.B_ALL)


class TailFormats(kwstest.KwsTestCase):
    broker_args = ["--partitions", "4"]

    def test_format_tokens(self):
        t = self.topic()
        self.send_json(t, [
            {"partition": 2, "timestamp": 1714564800123, "key": "kk",
             "headers": [{"name": "h1", "value": "v1"}, {"name": "h2", "value": "v2"}], "message": "hello world"},
            {"partition": 2, "timestamp": 1714564800124, "key": None, "message": ""},
            {"partition": 2, "timestamp": 1714564800125, "key": "", "message": None},
        ])
        r = self.tail("-e", "-o", "beginning", "-f", "%t|%p|%o|%k|%s|%S|%K|%T|%h|%I\\n", t)
        self.assertEqual(r.lines(), [
            "%s|2|0|kk|hello world|11|2|1714564800123|h1=v1,h2=v2|2024-05-01T12:00:00.123Z" % t,
            "%s|2|1|||0|-1|1714564800124||2024-05-01T12:00:00.124Z" % t,
            "%s|2|2|||-1|0|1714564800125||2024-05-01T12:00:00.125Z" % t,
        ], str(r))

    def test_help_lists_every_format_token(self):
        # --help used to send the reader to "DESCRIPTION", which only the
        # man page has; test_format_tokens checks that the parser takes them.
        r = kwstest.kws("tail", "--help")
        self.assertEqual(r.rc, 0, str(r))
        for token in ["%t topic", "%p partition", "%o offset", "%k key", "%s value", "%S value length",
                      "%K key length", "%T timestamp", "%h headers", "%I", "%% a percent sign",
                      "\\n \\t \\r \\0 \\\\ \\xNN"]:
            self.assertIn(token, r.stdout, str(r))
        self.assertNotIn("DESCRIPTION", r.stdout, str(r))

    def test_format_escapes_and_literals(self):
        t = self.topic()
        self.send(t, "-p", "0", "v")
        r = self.tail("-e", "-o", "beginning", "-f", "[%s]\\t100%%\\x41\\\\\\r\\0\\n", t)
        self.assertEqual(r.out, b"[v]\t100%A\\\r\0\n", str(r))

    def test_default_format_is_value_and_newline(self):
        t = self.topic()
        self.send(t, "-p", "0", "-k", "k", "-H", "h=1", "only the value")
        r = self.tail("-e", "-o", "beginning", t)
        self.assertEqual(r.out, b"only the value\n", str(r))

    def test_json_envelope_shape(self):
        t = self.topic()
        self.send(t, "-p", "1", "-k", "kéy", "-H", "h=1", "-H", "h=2", "-H", "e=", "héllo \"quoted\" ✓\n\ttab")
        r = self.tail("-J", "-e", "-o", "beginning", t)
        lines = r.out.split(b"\n")
        self.assertEqual(lines[-1], b"", "-J output ends with a newline")
        self.assertEqual(len(lines), 2, "one envelope per line\n" + str(r))
        env = json.loads(lines[0])
        self.assertEqual(set(env), {"topic", "partition", "offset", "timestamp", "timestamp_type", "key",
                                    "headers", "message"}, env)
        self.assertEqual(env["topic"], t)
        self.assertEqual(env["partition"], 1)
        self.assertEqual(env["offset"], 0)
        self.assertIsInstance(env["timestamp"], int)
        self.assertEqual(env["timestamp_type"], "create")
        self.assertEqual(env["key"], "kéy")
        self.assertEqual(env["headers"], [{"name": "h", "value": "1"}, {"name": "h", "value": "2"},
                                          {"name": "e", "value": ""}])
        self.assertEqual(env["message"], "héllo \"quoted\" ✓\n\ttab")

    def test_json_timestamp_matches_wall_clock(self):
        import time
        t = self.topic()
        before = int(time.time() * 1000)
        self.send(t, "-p", "0", "now")
        after = int(time.time() * 1000)
        (env,) = self.tail_json(t)
        self.assertEqual(env["timestamp_type"], "create")
        self.assertTrue(before - 1000 <= env["timestamp"] <= after + 1000, (before, env["timestamp"], after))

    def test_json_null_key_and_tombstone(self):
        t = self.topic()
        self.send_json(t, [{"partition": 0, "key": "gone", "message": None}])
        (env,) = self.tail_json(t)
        self.assertIsNone(env["message"], env)
        self.assertEqual(env["key"], "gone")
        self.send(t, "-p", "0", "value-no-key")
        env = self.tail_json(t)[1]
        self.assertIsNone(env["key"], env)

    def test_json_binary_fields_are_base64(self):
        t = self.topic()
        key, value, hval = b"\xff\x00key", b"\x80\x81\x00\xfe", b"\xc3\x28"
        self.send_json(t, [{"partition": 0, "key": kwstest.b64(key), "key_encoding": "base64",
                            "headers": [{"name": "bin", "value": kwstest.b64(hval), "value_encoding": "base64"},
                                        {"name": "txt", "value": "plain"},
                                        {"name": "nul", "value": None},
                                        {"name": kwstest.b64(b"\xfename"), "name_encoding": "base64", "value": "v"}],
                            "message": kwstest.b64(value), "message_encoding": "base64"}])
        (env,) = self.tail_json(t)
        self.assertEqual(env.get("key_encoding"), "base64", env)
        self.assertEqual(env.get("message_encoding"), "base64", env)
        self.assertEqual(envelope_bytes(env, "key"), key)
        self.assertEqual(envelope_bytes(env, "message"), value)
        self.assertEqual(env["headers"][0], {"name": "bin", "value": kwstest.b64(hval), "value_encoding": "base64"})
        self.assertEqual(env["headers"][1], {"name": "txt", "value": "plain"})
        self.assertEqual(env["headers"][2], {"name": "nul", "value": None})
        self.assertEqual(env["headers"][3], {"name": kwstest.b64(b"\xfename"), "name_encoding": "base64",
                                             "value": "v"})
        # Valid UTF-8 with NUL and control characters stays text.
        self.send(t, "-p", "0", "--file", "/dev/stdin", input=b"a\x00b\x01c")
        env = self.tail_json(t)[1]
        self.assertEqual(set(env), {"topic", "partition", "offset", "timestamp", "timestamp_type", "key",
                                    "headers", "message"}, env)
        self.assertEqual(env["message"], "a\x00b\x01c")


class TailLoss(kwstest.KwsTestCase):
    """The embedded broker keeps about 5 MiB per partition: a tail that is
    stopped while 12 MB arrive finds most of them gone, and says so."""

    broker_args = ["--partitions", "1"]

    def test_a_tail_left_behind_by_retention_says_what_it_missed(self):
        t = self.topic()
        self.send(t, "seed")
        bg = self.background("tail", "-f", "%o %S\\n", t)
        deadline = time.monotonic() + 30
        while not bg.out:  # a new reader starts at the end: probe until it reads
            self.assertLess(time.monotonic(), deadline, "kws tail never read a probe: " + bg.describe())
            self.send(t, "probe")
            time.sleep(0.3)
        first_new = int(self.high_watermarks(t)[0])
        bg.signal(signal.SIGSTOP)
        try:
            count = 4000
            self.send(t, input="".join("%04d:%s\n" % (i, "z" * 3000) for i in range(count)))
        finally:
            bg.signal(signal.SIGCONT)
        last = first_new + count - 1
        bg.wait_for_output(lambda out: (b"\n%d " % last) in out, timeout=60, what="the last message")
        bg.signal(signal.SIGINT)
        bg.wait()
        offsets = [int(line.split()[0]) for line in bg.lines() if line.split()[1] == "3005"]
        err = bg.err.decode()
        # A stopped tail can still read the first messages after
        # first_new: a fetch it sent before SIGSTOP is answered into its
        # socket and read after SIGCONT. So the gap is wherever the output has
        # it, and it must be exactly one gap, named exactly.
        read = set(offsets)
        missing = [o for o in range(first_new, last + 1) if o not in read]
        self.assertTrue(missing, "retention deleted nothing: the test proves nothing")
        gap_start, gap_end = missing[0], missing[-1]
        self.assertEqual(missing, list(range(gap_start, gap_end + 1)), "one gap only")
        self.assertEqual(offsets, sorted(read), "in order, no duplicate")
        self.assertIn("offsets %d to %d no longer exist" % (gap_start, gap_end), err)
        self.assertIn("%d message(s) were deleted by retention" % len(missing), err)


if __name__ == "__main__":
    kwstest.main()
