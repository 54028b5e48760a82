"""kws topics --create and --delete against the embedded broker, whose front
end answers CreateTopics (the mock has no such request) and refuses
DeleteTopics as a cluster with delete.topic.enable=false does (the mock
cannot delete); python3-kafka's admin client is the independent peer that
creates topics through the same relay."""

import kwstest

try:
    import kafka
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError
except ImportError:  # reported by kwstest.main() as a skip
    kafka = None


class TopicsAdmin(kwstest.KwsTestCase):
    # Two brokers so that a replication factor can be too large; auto-created
    # topics get 2 partitions, which no created topic below asks for.
    broker_args = ["-n", "2", "--partitions", "2"]

    def partitions(self, topic):
        (t,) = [t for t in self.topics_json(topic)["topics"] if t["name"] == topic]
        return len(t["partitions"])

    def names(self):
        return {t["name"] for t in self.topics_json()["topics"]}

    def test_create_with_and_without_a_partition_count(self):
        a, b = self.topic("a"), self.topic("b")
        r = self.kws("topics", "--create", a + ":5", b)
        self.assertEqual(r.out, b"", "stdout is for data\n" + str(r))
        self.assertIn("created topic '%s'" % a, r.stderr, str(r))
        self.assertIn("created topic '%s'" % b, r.stderr, str(r))
        self.assertEqual(self.partitions(a), 5)
        self.assertEqual(self.partitions(b), 2)  # the broker's default (--partitions)
        # Usable at once, every partition.
        self.send(a, "-p", "4", "last partition")
        self.assertEqual([e["message"] for e in self.tail_json(a)], ["last partition"])

    def test_replication_within_the_brokers(self):
        t = self.topic()
        self.kws("topics", "--create", t + ":3", "--replication", "2")
        (info,) = self.topics_json(t)["topics"]
        self.assertEqual([len(p["replicas"]) for p in info["partitions"]], [2, 2, 2])

    def test_an_existing_topic_fails_alone(self):
        old, new = self.topic("old"), self.topic("new")
        self.kws("topics", "--create", old + ":3")
        r = self.kws("topics", "--create", old + ":4", new + ":4", rc=1)
        self.assertIn("cannot create topic '%s': it already exists" % old, r.stderr, str(r))
        self.assertIn("created topic '%s'" % new, r.stderr, str(r))
        self.assertEqual(self.partitions(old), 3)  # untouched
        self.assertEqual(self.partitions(new), 4)

    def test_what_the_embedded_broker_cannot_do_is_refused_clearly(self):
        t = self.topic()
        r = self.kws("topics", "--create", t, "--replication", "3", rc=1)
        self.assertIn("bad replication factor: 3 replicas asked for; this kws broker has 2 broker(s)", r.stderr, str(r))
        r = self.kws("topics", "--create", t + ":20000", rc=1)
        self.assertIn("at most 10000 partitions per topic", r.stderr, str(r))
        # It keeps no topic configs: accepting one would pretend.
        r = self.kws("topics", "--create", t, "--topic-config", "cleanup.policy=compact", rc=1)
        self.assertIn("keeps no topic configs (got 'cleanup.policy')", r.stderr, str(r))
        self.assertNotIn(t, self.names())

    def test_delete_is_refused_and_says_why(self):
        t = self.topic()
        self.kws("topics", "--create", t)
        self.send(t, "-p", "0", "kept")
        r = self.kws("topics", "--delete", t, "nosuch-" + t, rc=1)
        self.assertIn("cannot delete topic '%s': the cluster does not allow deleting topics" % t, r.stderr, str(r))
        self.assertIn("kws broker never deletes", r.stderr, str(r))
        self.assertIn("cannot delete topic 'nosuch-%s': no such topic" % t, r.stderr, str(r))
        # Nothing pretended: the topic and its data are still there.
        self.assertEqual([e["message"] for e in self.tail_json(t)], ["kept"])

    def test_bad_arguments_are_usage_errors(self):
        t = self.topic()
        for args, needle in [(["--create"], "--create needs the topics"),
                             (["--delete"], "--delete needs the topics"),
                             (["--create", t + ":0"], "PARTITIONS >= 1"),
                             (["--create", t + ":x"], "NAME:PARTITIONS"),
                             (["--create", "bad/name"], "bad/name"),
                             (["--create", t, t + ":2"], "given twice"),
                             (["--create", t, "--topic-config", "novalue"], "expected key=value"),
                             (["--create", t, "--replication", "0"], "--replication"),
                             (["--create", t, "--delete"], "excludes"),
                             (["--delete", t, "--replication", "2"], "excludes"),
                             (["--replication", "2"], "apply to --create only"),
                             (["--create", t, "-J"], "cannot be combined")]:
            with self.subTest(args=args):
                r = self.kws("topics", *args, rc=2)
                self.assertIn(needle, r.stderr, str(r))
                self.assertEqual(r.out, b"", str(r))
        self.assertNotIn(t, self.names())

    def test_python_kafka_admin_creates_through_the_relay(self):
        t = self.topic()
        admin = KafkaAdminClient(bootstrap_servers=self.brokers, request_timeout_ms=10000)
        self.addCleanup(admin.close)
        admin.create_topics([NewTopic(t, 3, 1)])
        self.assertEqual(self.partitions(t), 3)
        with self.assertRaises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(t, 3, 1)])
        # And what kws created, python3-kafka sees.
        u = self.topic("kws")
        self.kws("topics", "--create", u + ":6")
        (described,) = admin.describe_topics([u])
        self.assertEqual(len(described["partitions"]), 6)


if __name__ == "__main__":
    kwstest.main(requires_modules={"kafka": kafka})
