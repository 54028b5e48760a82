"""kws tail -G: consuming as a group commits offsets (checked with
`kws topics -G GROUP -J`), and later runs resume from them."""

import signal

import kwstest


class GroupConsumption(kwstest.KwsTestCase):
    broker_args = ["--partitions", "3"]

    def group(self, tag="g"):
        return self.topic(tag)  # unique too

    def group_rows(self, group, topic):
        doc = self.topics_json("-G", group, topic)
        self.assertIn("groups", doc, doc)
        rows = {r["partition"]: r for r in doc["groups"] if r["group"] == group and r["topic"] == topic}
        highs = {p["partition"]: p["high"] for t in doc["topics"] if t["name"] == topic for p in t["partitions"]}
        self.assertEqual(set(rows), set(highs), "one group row per partition\n%s" % doc)
        for p, row in rows.items():
            self.assertEqual(row["high"], highs[p], row)
        return rows

    def assertCommittedAtEnd(self, group, topic):
        rows = self.group_rows(group, topic)
        checked = 0
        for p, row in rows.items():
            if row["high"] == 0:
                # Nothing to consume there: nothing committed, or 0.
                self.assertIn(row["committed"], (None, 0), row)
                continue
            self.assertEqual(row["committed"], row["high"], "partition %d not committed to its end: %s" % (p, row))
            self.assertEqual(row["lag"], 0, row)
            checked += 1
        # Every caller consumed something: a topic with no data anywhere
        # means the test checked nothing.
        self.assertGreater(checked, 0, "no partition of %s holds data: nothing was checked\n%s" % (topic, rows))
        return rows

    def values(self, result):
        return sorted(result.lines())

    def send_spread(self, t, prefix, per_partition):
        """per_partition messages into each of the 3 partitions."""
        sent = []
        for p in range(3):
            batch = ["%s-p%d-%d" % (prefix, p, i) for i in range(per_partition)]
            self.send(t, "-p", p, *batch)
            sent += batch
        return sorted(sent)

    def test_commit_then_resume_from_stored(self):
        t, g = self.topic(), self.group()
        first = self.send_spread(t, "first", 4)
        r = self.tail("-G", g, "-o", "beginning", "-e", t, timeout=40)
        self.assertEqual(self.values(r), first)
        self.assertCommittedAtEnd(g, t)

        newer = self.send_spread(t, "newer", 2)
        # Lag is visible before anyone reads them.
        rows = self.group_rows(g, t)
        self.assertEqual({p: row["lag"] for p, row in rows.items()}, {0: 2, 1: 2, 2: 2}, rows)

        r = self.tail("-G", g, "-o", "stored", "-e", t, timeout=40)
        self.assertEqual(self.values(r), newer, "-o stored must print only the newer messages")
        self.assertCommittedAtEnd(g, t)

        # Without -o, a group resumes from its committed offsets too.
        newest = self.send_spread(t, "newest", 1)
        r = self.tail("-G", g, "-e", t, timeout=40)
        self.assertEqual(self.values(r), sorted(newest))
        rows = self.assertCommittedAtEnd(g, t)

        # The table form shows the same numbers. Every partition holds data
        # and was committed to its end, so no cell may be "-".
        r = self.kws("topics", "-G", g, t)
        self.assertIn("GROUP", r.stdout)
        group_lines = [l.split() for l in r.lines() if l.startswith(g + " ")]
        self.assertEqual(sorted(int(cols[2]) for cols in group_lines), [0, 1, 2], str(r))
        for cols in group_lines:
            row = rows[int(cols[2])]
            self.assertEqual(cols[1], t, str(r))
            self.assertEqual(cols[3:6], [str(row["high"]), str(row["high"]), "0"],
                             "COMMITTED == HIGH == %d, LAG 0\n%s" % (row["high"], r))

    def test_count_commits_only_what_was_printed(self):
        t, g = self.topic(), self.group()
        self.send(t, "-p", "1", *["m%d" % i for i in range(6)])
        r = self.tail("-G", g, "-o", "beginning", "-c", "2", t, timeout=40)
        self.assertEqual(r.lines(), ["m0", "m1"])
        rows = self.group_rows(g, t)
        self.assertEqual(rows[1]["committed"], 2, rows)
        self.assertEqual(rows[1]["lag"], 4, rows)
        r = self.tail("-G", g, "-o", "stored", "-e", t, timeout=40)
        self.assertEqual(r.lines(), ["m2", "m3", "m4", "m5"])
        self.assertCommittedAtEnd(g, t)

    def test_new_group_starts_at_end_and_interrupt_commits(self):
        t, g = self.topic(), self.group()
        self.send(t, "old-1", "old-2", "old-3")
        bg = self.background("tail", "-G", g, t)
        self.follow_until_live(t, bg, timeout=30)
        r = self.send(t, "--print-offsets", "live-1", "live-2", "live-3")
        live_partitions = {int(line.split()[1]) for line in r.lines()}
        self.assertEqual(len(r.lines()), 3, "one --print-offsets line per message\n%s" % r)
        bg.wait_for_output(lambda out: all(b"live-%d\n" % i in out for i in (1, 2, 3)), what="the live messages")
        bg.signal(signal.SIGINT)
        self.assertEqual(bg.wait(timeout=10), 130, bg.describe())
        lines = bg.lines()
        for old in ("old-1", "old-2", "old-3"):
            self.assertNotIn(old, lines, bg.describe())
        # Ctrl-C closed the consumer, which committed what it printed; where
        # it printed nothing it may have committed nothing.
        rows = self.group_rows(g, t)
        for p, row in rows.items():
            if p in live_partitions:
                self.assertEqual(row["committed"], row["high"], rows)
            else:
                self.assertIn(row["committed"], (None, row["high"]), rows)

    def test_second_run_joins_promptly(self):
        # A user running `kws tail -G GROUP` again right after the previous
        # run ended must not wait for the old member's session (45 s by
        # default) to expire: the previous run left the group when it closed.
        t, g = self.topic(), self.group()
        self.send(t, "-p", "0", "a")
        r = self.tail("-G", g, "-o", "beginning", "-e", t, timeout=20)
        self.assertEqual(r.lines(), ["a"])
        self.send(t, "-p", "0", "b")
        r = self.tail("-G", g, "-e", t, timeout=20)
        self.assertEqual(r.lines(), ["b"])
        self.assertLess(r.elapsed, 15, str(r))

    def test_partition_empty_at_first_run_is_not_skipped_later(self):
        # Run 1 reads every partition from the beginning; partition 1 is
        # empty then. Messages that arrive there later are the group's next
        # messages: run 2 (resuming the group) must print them, not start
        # partition 1 at its end because nothing was committed there.
        t, g = self.topic(), self.group()
        self.send(t, "-p", "0", "early")
        r = self.tail("-G", g, "-o", "beginning", "-e", t, timeout=40)
        self.assertEqual(r.lines(), ["early"])
        self.send(t, "-p", "1", "later-1", "later-2")
        r = self.tail("-G", g, "-o", "stored", "-e", t, timeout=40)
        self.assertEqual(r.lines(), ["later-1", "later-2"])

    def test_groups_are_independent(self):
        t, g1, g2 = self.topic(), self.group("g1"), self.group("g2")
        self.send(t, "-p", "0", "a", "b", "c")
        r = self.tail("-G", g1, "-o", "beginning", "-e", t, timeout=40)
        self.assertEqual(r.lines(), ["a", "b", "c"])
        rows = self.group_rows(g2, t)
        self.assertIsNone(rows[0]["committed"], "a group that never consumed has no committed offset: %s" % rows)
        self.assertIsNone(rows[0]["lag"], rows)
        self.assertCommittedAtEnd(g1, t)

    def test_groups_lists_every_group_with_offsets_and_lag(self):
        t, g1, g2 = self.topic(), self.group("all1"), self.group("all2")
        self.send(t, "-p", "0", "a", "b", "c", "d")
        self.tail("-G", g1, "-o", "beginning", "-e", t, timeout=40)
        self.tail("-G", g2, "-o", "beginning", "-c", "1", t, timeout=40)
        doc = self.topics_json("--groups", t)
        rows = {(r["group"], r["partition"]): r for r in doc["groups"]}
        self.assertEqual(rows[(g1, 0)]["committed"], 4, doc)
        self.assertEqual(rows[(g1, 0)]["lag"], 0, doc)
        self.assertEqual(rows[(g2, 0)]["committed"], 1, doc)
        self.assertEqual(rows[(g2, 0)]["lag"], 3, doc)
        table = self.kws("topics", "--groups", t).stdout
        self.assertRegex(table, r"(?m)^GROUP +TOPIC +PARTITION +COMMITTED +HIGH +LAG$")
        self.assertRegex(table, r"(?m)^%s +%s +0 +1 +4 +3$" % (g2, t))


class MoreMembersThanPartitions(kwstest.KwsTestCase):
    broker_args = ["-n", "3", "-t", "one:1"]

    def test_exit_at_end_with_nothing_assigned(self):
        g = self.topic("g")
        self.send("one", "first")
        holder = self.background("tail", "-G", g, "-o", "beginning", "one")
        holder.wait_for_output(lambda out: b"first" in out, timeout=30, what="the first member's message")
        r = self.tail("-G", g, "-e", "one", timeout=60)
        self.assertEqual(r.out, b"", str(r))
        self.assertIn("assigned no partitions", r.stderr, str(r))

    def test_groups_listed_once_on_a_three_broker_cluster(self):
        g = self.topic("listed")
        self.send("one", "x")
        self.tail("-G", g, "-o", "beginning", "-e", "one", timeout=40)
        doc = self.topics_json("--groups", "one")
        self.assertEqual([r["group"] for r in doc["groups"]].count(g), 1, doc)


class NoGroupsYet(kwstest.KwsTestCase):
    broker_args = []

    def test_groups_on_a_fresh_broker_is_an_empty_list(self):
        doc = self.topics_json("--groups")
        self.assertEqual(doc["groups"], [], doc)


if __name__ == "__main__":
    kwstest.main()
