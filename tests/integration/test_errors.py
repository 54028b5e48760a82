"""Failures: unreachable brokers fail in bounded time with exit 1, unknown
topics are not created behind the user's back, usage errors exit 2, bad
input lines and undeliverable messages exit 1 without losing the rest."""

import json

import kwstest

# Each command with the arguments it needs to do real work.
COMMANDS = [
    ("send", ["sometopic", "x"]),
    ("tail", ["-o", "beginning", "-e", "sometopic"]),
    ("topics", []),
]


class UnreachableBrokers(kwstest.KwsTestCase):
    broker_args = None  # nothing to reach

    def check_fails_fast(self, brokers, *needles):
        for command, args in COMMANDS:
            with self.subTest(command=command):
                r = kwstest.kws(command, "-b", brokers, "--timeout", "3", *args, timeout=20)
                self.assertEqual(r.rc, 1, str(r))
                self.assertLess(r.elapsed, 10, "took too long\n" + str(r))
                self.assertEqual(r.out, b"", str(r))
                self.assertTrue(r.stderr.startswith("kws: error: "), str(r))
                for needle in needles:
                    self.assertIn(needle, r.stderr, str(r))

    def test_topics_names_gives_up_within_its_timeout(self):
        # The completions ask with --timeout 0.5: a missing broker must cost
        # about that, not the default 10 s.
        holder = kwstest.free_port_holder()
        self.addCleanup(holder.close)
        r = kwstest.kws("topics", "--names", "--timeout", "0.5", "-b", "127.0.0.1:%d" % holder.getsockname()[1],
                        timeout=20)
        self.assertEqual((r.rc, r.out), (1, b""), str(r))
        self.assertLess(r.elapsed, 2.5, str(r))

    def test_unknown_host(self):
        # The reason must survive: "cannot be resolved", not just "down".
        self.check_fails_fast("no-such-host.invalid:9092", "no-such-host.invalid", "resolve")

    def test_closed_port(self):
        holder = kwstest.free_port_holder()  # bound, not listening: refuses
        self.addCleanup(holder.close)
        address = "127.0.0.1:%d" % holder.getsockname()[1]
        self.check_fails_fast(address, address, "refused")

    def test_config_shows_without_connecting(self):
        r = kwstest.kws("config", "-b", "no-such-host.invalid:9092", timeout=10)
        self.assertEqual(r.rc, 0, str(r))


class RuntimeErrors(kwstest.KwsTestCase):
    broker_args = ["--partitions", "2"]

    def topic_names(self):
        return {t["name"] for t in self.topics_json()["topics"]}

    def test_tail_unknown_topic(self):
        t = self.topic()
        r = self.tail("-e", t, rc=1, timeout=20)
        self.assertStderrMentions(r, t)
        r = self.tail(t, rc=1, timeout=20)  # without -e too: no waiting forever
        self.assertStderrMentions(r, t)
        self.assertNotIn(t, self.topic_names(), "tail must not create the topic")

    def test_topics_unknown_topic(self):
        t = self.topic()
        r = self.kws("topics", t, rc=1, timeout=20)
        self.assertStderrMentions(r, t)
        self.assertNotIn(t, self.topic_names(), "topics must not create the topic")

    def test_topics_names_lists_names_only(self):
        # The quiet listing the shell completions read: one name per line,
        # sorted, nothing else on stdout or stderr.
        a, b = self.topic("a"), self.topic("b")
        self.send(a, "x")
        self.send(b, "y")
        r = self.kws("topics", "--names", timeout=20)
        names = r.lines()
        self.assertIn(a, names, str(r))
        self.assertIn(b, names, str(r))
        self.assertEqual(names, sorted(names), str(r))
        self.assertEqual(r.err, b"", str(r))
        # Named topics that do not exist are still an error, not created.
        t = self.topic()
        r = self.kws("topics", "--names", t, rc=1, timeout=20)
        self.assertNotIn(t, self.topic_names())
        # Names only: no offsets, so the flags about offsets and groups do not mix.
        for other in (["-J"], ["--groups"], ["-G", "g"]):
            r = self.kws("topics", "--names", *other, rc=2, timeout=20)

    def test_send_without_auto_create(self):
        t = self.topic()
        r = self.send(t, "-X", "allow.auto.create.topics=false", "x", rc=1, timeout=20)
        self.assertStderrMentions(r, t)
        self.assertNotIn(t, self.topic_names())

    def test_send_partition_out_of_range(self):
        t = self.topic()
        self.send(t, "-p", "0", "create it")
        r = self.send(t, "-p", "99", "x", rc=1)
        self.assertStderrMentions(r, "99")
        self.assertEqual(sum(self.high_watermarks(t).values()), 1)

    def test_tail_partition_out_of_range(self):
        t = self.topic()
        self.send(t, "-p", "0", "x")
        r = self.tail("-e", "-o", "beginning", "-p", "5", t, rc=1)
        self.assertStderrMentions(r, "5")
        self.assertEqual(r.out, b"")

    def test_bad_json_line_others_delivered(self):
        t = self.topic()
        data = b'{"message":"one"}\n{not json\n\n{"message":"three"}\n{"message":"four","partition":"x"}\n[1]\n'
        r = self.kws("send", "-J", t, input=data, rc=1)
        self.assertEqual(r.out, b"", str(r))
        self.assertRegex(r.stderr, r"line 2\b", str(r))
        self.assertRegex(r.stderr, r"line 5\b", str(r))
        self.assertRegex(r.stderr, r"line 6\b", str(r))
        self.assertNotRegex(r.stderr, r"line [134]\b", "blank and good lines are not errors\n" + str(r))
        self.assertEqual(sorted(e["message"] for e in self.tail_json(t)), ["one", "three"])

    def test_json_envelope_partition_out_of_range(self):
        t = self.topic()
        self.send(t, "-p", "0", "create it")
        data = b'{"message":"ok","partition":1}\n{"message":"nowhere","partition":9}\n'
        r = self.kws("send", "-J", t, input=data, rc=1)
        self.assertRegex(r.stderr, r"line 2\b", str(r))
        self.assertEqual(sorted(e["message"] for e in self.tail_json(t)), ["create it", "ok"])

    def test_undeliverable_message_counted(self):
        t = self.topic()
        big = "x" * 5000
        r = self.send(t, "-p", "0", "-X", "message.max.bytes=2000", "small", big, "small2", rc=1)
        self.assertEqual(r.out, b"", str(r))
        self.assertIn("1 of 3", r.stderr, str(r))
        self.assertEqual(sorted(e["message"] for e in self.tail_json(t)), ["small", "small2"])

    def test_header_name_with_nul_is_rejected_not_truncated(self):
        t = self.topic()
        data = (b'{"message":"ok","headers":[{"name":"h","value":"v"}]}\n'
                b'{"message":"cut","headers":[{"name":"YQBi","name_encoding":"base64","value":"v"}]}\n')
        r = self.kws("send", "-J", t, input=data, rc=1)
        self.assertRegex(r.stderr, r"line 2\b.*NUL", str(r))
        self.assertEqual([e["message"] for e in self.tail_json(t)], ["ok"])

    def test_print_offsets_reader_leaving_does_not_stop_sending(self):
        t = self.topic()
        n = 300000
        cmd = "seq %d | %s send -b %s --print-offsets %s | head -1" % (
            n, kwstest.KWS_BIN, self.brokers, t)
        r = kwstest.run(["bash", "-o", "pipefail", "-c", cmd], timeout=120, env=kwstest.clean_env())
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(len(r.lines()), 1, str(r))
        self.assertEqual(sum(self.high_watermarks(t).values()), n,
                         "every input line must be sent even after stdout closed")

    def test_missing_file(self):
        t = self.topic()
        r = self.send(t, "--file", "/nonexistent/kws-input", rc=1)
        self.assertStderrMentions(r, "/nonexistent/kws-input")


class UsageErrors(kwstest.KwsTestCase):
    """Exit 2, a message on stderr, nothing on stdout."""

    def usage(self, *args, needle=None):
        r = kwstest.kws(*args, timeout=20)
        self.assertEqual(r.rc, 2, str(r))
        self.assertEqual(r.out, b"", str(r))
        self.assertIn("kws: error", r.stderr, str(r))
        if needle:
            self.assertIn(needle, r.stderr, str(r))
        return r

    def setUp(self):
        self.t = self.topic()
        self.send(self.t, "x")

    def test_bad_offset(self):
        for bad in ("yesterday", "@abc", "2024-13-01", "2024-02-30T00:00:00Z", "1.5", "--3", "s@"):
            with self.subTest(offset=bad):
                self.usage("tail", "-b", self.brokers, "-e", "-o", bad, self.t, needle=bad)

    def test_stored_needs_group(self):
        self.usage("tail", "-b", self.brokers, "-e", "-o", "stored", self.t, needle="-G")

    def test_bad_property(self):
        # kws config connects nowhere, yet refuses what the others refuse, in the same words.
        for command, args in COMMANDS + [("config", [])]:
            with self.subTest(command=command, problem="unknown property"):
                self.usage(command, "-b", self.brokers, "-X", "no.such.property=1", *args, needle="no.such.property")
            with self.subTest(command=command, problem="missing ="):
                self.usage(command, "-b", self.brokers, "-X", "acks", *args, needle="acks")
            with self.subTest(command=command, problem="bad value"):
                self.usage(command, "-b", self.brokers, "-X", "acks=sometimes", *args, needle="acks")

    def test_config_refuses_a_property_in_the_words_of_tail(self):
        ours = self.usage("config", "-X", "foo.bar=1")
        theirs = self.usage("tail", "-b", self.brokers, "-X", "foo.bar=1", self.t)
        self.assertEqual(ours.stderr, theirs.stderr)
        self.assertIn("foo.bar", ours.stderr)

    def test_bad_format_token(self):
        self.usage("tail", "-b", self.brokers, "-e", "-f", "%s %z\\n", self.t, needle="%z")
        self.usage("tail", "-b", self.brokers, "-e", "-f", "trailing %", self.t)

    def test_format_and_json_exclusive(self):
        self.usage("tail", "-b", self.brokers, "-e", "-J", "-f", "%s", self.t)

    def test_unknown_flag_and_command(self):
        self.usage("tail", "--no-such-flag", self.t)
        self.usage("send", "-b", self.brokers, "--no-such-flag", self.t, "x")
        self.usage("no-such-command")
        self.usage()

    def test_missing_topic_argument(self):
        self.usage("send", "-b", self.brokers, needle="kws send: a TOPIC is required (kws send [OPTIONS] TOPIC")
        self.usage("tail", "-b", self.brokers, needle="kws tail: a TOPIC is required (kws tail [OPTIONS] TOPIC...)")
        self.usage("completion", needle="kws completion: a SHELL is required")

    def test_unknown_command_suggests_the_one_meant(self):
        r = self.usage("tial", "demo")
        self.assertEqual(r.stderr, "kws: error: unknown command 'tial' (did you mean tail?)\n", str(r))
        r = self.usage("frobnicate")
        self.assertIn("unknown command 'frobnicate'; the commands are serve, broker, send, tail", r.stderr, str(r))
        self.usage(needle="a COMMAND is required")

    def test_other_tools_flags_point_at_ours(self):
        self.usage("tail", "--from-beginning", self.t, needle="-o beginning")
        self.usage("tail", "--from-beginning", needle="-o beginning")
        self.usage("send", "--bootstrap-server", self.brokers, self.t, "x", needle="-b BROKERS")

    def test_conflicting_options(self):
        self.usage("tail", "-b", self.brokers, "-e", "-G", "g", "-p", "0", self.t)
        self.usage("send", "-b", self.brokers, "--any-partition", self.t, "x")
        self.usage("send", "-b", self.brokers, "-J", "-K", ":", self.t)

    def test_bad_header(self):
        self.usage("send", "-b", self.brokers, "-H", "novalue", self.t, "x", needle="novalue")

    def test_bad_numbers(self):
        self.usage("tail", "-b", self.brokers, "-c", "-1", self.t)
        self.usage("tail", "-b", self.brokers, "-p", "x", self.t)
        self.usage("send", "-b", self.brokers, "-p", "-2", self.t, "x")
        self.usage("send", "-b", self.brokers, "--timeout", "0", self.t, "x")

    def test_missing_config_file(self):
        self.usage("send", "-F", "/nonexistent/kws.conf", self.t, "x", needle="/nonexistent/kws.conf")

    def test_nothing_sent_on_usage_error(self):
        before = self.high_watermarks(self.t)
        self.usage("send", "-b", self.brokers, "-X", "acks", self.t, "should-not-arrive")
        self.usage("send", "-b", self.brokers, "-H", "bad", self.t, "should-not-arrive")
        self.assertEqual(self.high_watermarks(self.t), before)


class ClearerErrors(kwstest.KwsTestCase):
    """Mistakes refused before connecting (an unreachable -b proves it: the
    error must come at once, exit 2), and runtime errors that say where."""
    broker_args = []

    UNREACHABLE = "127.0.0.1:1"

    def usage_error(self, command, *args):
        r = kwstest.kws(command, "-b", self.UNREACHABLE, "--timeout", "3", *args, timeout=10)
        self.assertEqual(r.rc, 2, str(r))
        self.assertLess(r.elapsed, 2, "must fail before connecting\n" + str(r))
        self.assertEqual(r.out, b"", str(r))
        return r

    def test_bad_topic_names_refused_with_the_rule(self):
        for name in ["bad topic", "a/b", ".", "..", "x" * 250, "caf\u00e9"]:
            for command, args in [("send", [name, "x"]), ("tail", ["-e", name]), ("topics", [name])]:
                with self.subTest(command=command, name=name[:20]):
                    r = self.usage_error(command, *args)
                    self.assertStderrMentions(r, "bad topic name", "[a-zA-Z0-9._-]", "249")

    def test_longest_legal_topic_name_is_accepted(self):
        t = ("x" * 240) + self.topic()[-8:]
        self.assertEqual(len(t), 248)
        self.send(t, "x")

    def test_empty_offset_and_format_are_usage_errors(self):
        r = self.usage_error("tail", "-o", "", "t")
        self.assertStderrMentions(r, "bad offset ''")
        r = self.usage_error("tail", "-f", "", "t")
        self.assertStderrMentions(r, "-f")

    def test_partition_with_group_is_a_usage_error(self):
        r = self.usage_error("tail", "-p", "0", "-G", "g", "t")
        self.assertStderrMentions(r, "-p", "-G")

    def test_offset_past_the_end_says_so(self):
        t = self.topic()
        self.send(t, "a")
        r = self.tail("-e", "-o", "9223372036854775807", t, timeout=20)
        self.assertEqual(r.out, b"", str(r))
        self.assertStderrMentions(r, "9223372036854775807", "past the end", "next offset is 1")

    def test_oversize_message_names_its_line_and_the_limit(self):
        t = self.topic()
        data = b"small\n" + b"x" * 2000 + b"\nafter\n"
        r = self.send(t, "-X", "message.max.bytes=1000", input=data, rc=1, timeout=20)
        self.assertStderrMentions(r, "input line 2:", "message.max.bytes", "2000 bytes", "1 of 3 message(s) not delivered")
        self.assertEqual(self.high_watermarks(t)[0], 2)

    def test_json_error_names_line_and_column(self):
        t = self.topic()
        r = self.send(t, "-J", input='{"message":"a"}\n{"message":\n', rc=1, timeout=20)
        self.assertRegex(r.stderr, r"input line 2: not valid JSON: column \d+", str(r))


if __name__ == "__main__":
    kwstest.main()
