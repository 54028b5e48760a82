"""kws bench against a kws serve it starts (embedded broker): a short load
run must deliver every message to every client exactly once, in both
subprotocols, over ws:// and wss://; idle mode reports the bridge's memory
per connection; bad URLs, refused upgrades, closed ports, untrusted
certificates and TLS against a plain port fail clearly. Timing is not judged
here (docs/BENCHMARKS.md is)."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile

import kwstest

try:
    import kafka
    import websockets
except ImportError:  # reported by kwstest.main() as a skip
    kafka = websockets = None


class ServeForBench(kwstest.KwsTestCase):
    """One kws serve on its own embedded broker per class, started with
    serve_args(); no tests of its own."""

    broker_args = None  # kws serve runs its own embedded broker

    @classmethod
    def serve_args(cls):
        return []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.serve = kwstest.Background(["serve", "-l", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0",
                                        *cls.serve_args()])
        cls.url, cls.serve_brokers = cls.wait_for_serve(cls.serve)

    @classmethod
    def tearDownClass(cls):
        cls.serve.kill()
        super().tearDownClass()

    @staticmethod
    def wait_for_serve(bg):
        bg.wait_for_output(lambda out: b"BROKERS=" in out and out.endswith(b"\n"), timeout=30,
                           what="URL= and BROKERS= from kws serve")
        lines = dict(l.split("=", 1) for l in bg.lines() if "=" in l)
        return lines["URL"], lines["BROKERS"]

    def bench(self, *args, rc=0, timeout=60):
        # timeout: a failure must come back as an error, never as a hang.
        r = kwstest.kws("bench", *args, timeout=timeout)
        self.assertEqual(r.rc, rc, str(r))
        return r


class BenchAgainstServe(ServeForBench):

    def load(self, *args):
        r = self.bench(self.url, "-b", self.serve_brokers, "-t", self.topic(), "--json",
                       "--pid", self.serve.proc.pid, *args)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["lost"], 0, str(r))
        self.assertEqual(doc["duplicates"], 0, str(r))
        self.assertEqual(doc["received"], doc["expected"], str(r))
        self.assertEqual(doc["expected"], doc["produced"] * doc["clients"], str(r))
        self.assertEqual(doc["produced"], doc["planned"], str(r))
        self.assertTrue(doc["subscribed_confirmed"], str(r))
        self.assertTrue(doc["clean"], str(r))
        self.assertEqual((doc["closed_by_server"], doc["error_frames"], doc["dropped_by_server"]), (0, 0, 0), str(r))
        self.assertGreater(doc["p99_ms"], 0, str(r))
        self.assertLessEqual(doc["p50_ms"], doc["p99_ms"], str(r))
        return r, doc

    def test_every_client_gets_every_message_once(self):
        r, doc = self.load("-c", 20, "-r", 200, "-d", 1)
        self.assertEqual(doc["expected"], 20 * 200, str(r))
        bridge = doc["bridge"]
        self.assertEqual(bridge["pid"], self.serve.proc.pid)
        self.assertGreater(bridge["rss_kb_connected"], 0, str(r))
        self.assertGreaterEqual(bridge["rss_kb_peak"], bridge["rss_kb_connected"], str(r))
        # The bridge reads Kafka over TCP through its embedded broker's front end.
        self.assertGreaterEqual(bridge["kafka_connections"], 1, str(r))

    def test_report_is_the_data_on_stdout(self):
        # `kws bench ... > report.txt` keeps the report; stderr has only progress.
        r = self.bench(self.url, "-b", self.serve_brokers, "-t", self.topic(), "-c", 3, "-r", 100, "-d", 0.5,
                       "--pid", self.serve.proc.pid)
        for needle in ("deliveries/s", "latency ms", "p99", "lost 0, duplicates 0", "Kafka conns"):
            self.assertIn(needle, r.stdout, str(r))
            self.assertNotIn(needle, r.stderr, str(r))
        r = self.bench(self.url, "-b", self.serve_brokers, "-t", self.topic(), "--idle", 5, "-d", 0.3,
                       "--pid", self.serve.proc.pid)
        self.assertIn("per connection", r.stdout, str(r))
        self.assertNotIn("per connection", r.stderr, str(r))

    def test_kafka_binary_subprotocol(self):
        r, doc = self.load("-c", 5, "-r", 100, "-d", 0.5, "--binary", "-s", 300)
        self.assertEqual(doc["subprotocol"], "kafka-binary")
        self.assertEqual(doc["expected"], 5 * 50, str(r))

    def test_key_filters_each_client_gets_exactly_its_key(self):
        # 20 clients, 4 keys: client j filters on k{j%4}, so each key has 5
        # clients and each client 1/4 of the messages; a message of another
        # key reaching a client counts as misdelivered and fails the run.
        r = self.bench(self.url, "-b", self.serve_brokers, "-t", self.topic(), "--json",
                       "--pid", self.serve.proc.pid, "-c", 20, "-r", 200, "-d", 1, "--key-filters", 4)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["key_filters"], 4, str(r))
        self.assertEqual(doc["produced"], 200, str(r))
        # 200 messages, 50 per key, 5 clients per key: 20 x 50.
        self.assertEqual((doc["expected"], doc["received"], doc["lost"], doc["duplicates"], doc["misdelivered"]),
                         (20 * 50, 20 * 50, 0, 0, 0), str(r))
        self.assertTrue(doc["subscribed_confirmed"], str(r))
        self.assertTrue(doc["clean"], str(r))
        self.assertEqual((doc["closed_by_server"], doc["error_frames"], doc["dropped_by_server"]), (0, 0, 0), str(r))
        self.assertGreater(doc["bridge"]["us_per_delivery"], 0, str(r))
        # Uneven: 7 keys do not divide 101 messages or 10 clients.
        r = self.bench(self.url, "-b", self.serve_brokers, "-t", self.topic(), "--json",
                       "-c", 10, "-r", 101, "-d", 1, "--key-filters", 7)
        doc = json.loads(r.stdout)
        per_key = [len(range(k, 101, 7)) for k in range(7)]
        self.assertEqual((doc["expected"], doc["received"], doc["misdelivered"]),
                         (sum(per_key[j % 7] for j in range(10)),) * 2 + (0,), str(r))
        self.assertTrue(doc["clean"], str(r))

    def test_idle_connections(self):
        r = self.bench(self.url, "-b", self.serve_brokers, "-t", self.topic(), "--idle", 30, "-d", 0.3, "--json",
                       "--pid", self.serve.proc.pid)
        doc = json.loads(r.stdout)
        self.assertEqual((doc["mode"], doc["clients"], doc["closed_by_server"]), ("idle", 30, 0), str(r))
        self.assertIn("rss_bytes_per_connection", doc["bridge"], str(r))

    def test_refused_upgrade_shows_the_servers_reason(self):
        r = self.bench(self.url + "v2/broker/?bogus=1", "-b", self.serve_brokers, "-c", 2, "-d", 0.2, rc=1)
        self.assertRegex(r.stderr, r"kws: error: the server answered 'HTTP/1.1 400[^']*': .*bogus")

    def test_closed_port(self):
        holder = kwstest.free_port_holder()
        try:
            port = holder.getsockname()[1]
            r = self.bench("ws://127.0.0.1:%d/" % port, "-b", self.serve_brokers, "-c", 2, "-d", 0.2, rc=1)
        finally:
            holder.close()
        self.assertIn("cannot connect to 127.0.0.1:%d" % port, r.stderr)

    def test_interrupt_prints_the_partial_report(self):
        with kwstest.Background(["bench", self.url, "-b", self.serve_brokers, "-t", self.topic(), "-c", 3,
                                 "-r", 100, "-d", 60]) as bg:
            kwstest.wait_until(lambda: self.serve_connections() >= 3 or bg.proc.poll() is not None, timeout=20,
                               what="three bench clients connected to kws serve")
            bg.signal(signal.SIGINT)
            self.assertEqual(bg.wait(timeout=15), 130, bg.describe())
            self.assertIn(b"(interrupted)", bg.out, bg.describe())

    def serve_connections(self):
        import urllib.request
        with urllib.request.urlopen(self.url.replace("ws://", "http://") + "metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("kws_serve_connections "):
                    return float(line.split()[1])
        return 0

    def test_usage_errors(self):
        for args, needle in [(["http://h:1/"], "expected ws://HOST:PORT/"),
                             (["ws://h:1/", "--ca", "ca.pem"], "--ca and --insecure need a wss:// URL"),
                             (["ws://h:1/", "--insecure"], "--ca and --insecure need a wss:// URL"),
                             (["ws://h:1/", "-s", "10"], "--size"),
                             (["ws://h:1/", "--idle", "5", "-c", "5"], "excludes"),
                             (["ws://h:1/", "--idle", "5", "--key-filters", "3"], "--key-filters needs a load run"),
                             (["ws://h:1/", "--key-filters", "0"], "--key-filters"),
                             (["ws://h:1/", "--pid", "999999999"], "--pid"),
                             ([], "kws bench: a URL is required (kws bench [OPTIONS] URL)")]:
            r = self.bench(*args, rc=2)
            self.assertRegex(r.stderr, re.escape(needle), str(r))


class BenchOverTls(ServeForBench):
    """kws bench wss:// against a kws serve with --tls-cert/--tls-key and a
    certificate of a CA this test makes with openssl."""

    @classmethod
    def serve_args(cls):
        d = kwstest.scratch_dir()
        cls.files = kwstest.make_ca(d, "bench")
        cls.other = kwstest.make_ca(d, "other", san="DNS:example.invalid")
        cls.not_pem = os.path.join(d, "not-a-ca.pem")
        with open(cls.not_pem, "w") as f:
            f.write("not a certificate\n")
        return ["--tls-cert", cls.files["cert"], "--tls-key", cls.files["key"]]

    def test_url_is_wss(self):
        self.assertTrue(self.url.startswith("wss://127.0.0.1:"), self.url)

    def test_every_client_gets_every_message_once_over_tls(self):
        for extra in ([], ["--binary", "-s", 300]):
            r = self.bench(self.url, "--ca", self.files["ca"], "-b", self.serve_brokers, "-t", self.topic(),
                           "-c", 10, "-r", 200, "-d", 1, "--json", "--pid", self.serve.proc.pid, *extra)
            doc = json.loads(r.stdout)
            self.assertEqual((doc["expected"], doc["received"], doc["lost"], doc["duplicates"]),
                             (10 * 200, 10 * 200, 0, 0), str(r))
            self.assertTrue(doc["subscribed_confirmed"], str(r))
            self.assertTrue(doc["clean"], str(r))
            self.assertEqual((doc["closed_by_server"], doc["error_frames"], doc["dropped_by_server"]), (0, 0, 0), str(r))
            self.assertEqual(r.stderr.count("warning"), 0, str(r))

    def test_idle_over_tls(self):
        r = self.bench(self.url, "--ca", self.files["ca"], "-b", self.serve_brokers, "-t", self.topic(),
                       "--idle", 30, "-d", 0.3, "--json", "--pid", self.serve.proc.pid)
        doc = json.loads(r.stdout)
        self.assertEqual((doc["mode"], doc["clients"], doc["closed_by_server"]), ("idle", 30, 0), str(r))
        self.assertIn("rss_bytes_per_connection", doc["bridge"], str(r))

    def test_insecure_needs_no_ca_and_warns(self):
        r = self.bench(self.url, "--insecure", "-b", self.serve_brokers, "-t", self.topic(), "-c", 2, "-r", 100,
                       "-d", 0.3, "--json")
        self.assertEqual(json.loads(r.stdout)["lost"], 0, str(r))
        self.assertIn("kws: warning: --insecure: the server's certificate and host name are not checked", r.stderr)

    def test_certificate_of_another_ca_is_refused(self):
        r = self.bench(self.url, "--ca", self.other["ca"], "-b", self.serve_brokers, "-c", 2, "-d", 0.2, rc=1,
                       timeout=30)
        self.assertRegex(r.stderr, r"kws: error: the TLS handshake with 127\.0\.0\.1:\d+ failed: certificate verify "
                                   r"failed: .*\(is --ca right\? --insecure skips the check\)", str(r))

    def test_system_store_does_not_know_the_test_ca(self):
        r = self.bench(self.url, "-b", self.serve_brokers, "-c", 2, "-d", 0.2, rc=1, timeout=30)
        self.assertIn("certificate verify failed", r.stderr, str(r))

    def test_host_name_is_checked(self):
        # A certificate of a trusted CA, but for another name than 127.0.0.1.
        with kwstest.Background(["serve", "-l", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0",
                                 "--tls-cert", self.other["cert"], "--tls-key", self.other["key"]]) as other:
            url, brokers = self.wait_for_serve(other)
            r = self.bench(url, "--ca", self.other["ca"], "-b", brokers, "-c", 2, "-d", 0.2, rc=1, timeout=30)
        self.assertRegex(r.stderr, r"certificate verify failed: IP address mismatch$", str(r))

    def test_unreadable_ca_file(self):
        for path, needle in [(self.not_pem, "not a readable PEM file of CA certificates"),
                             (os.path.join(kwstest.scratch_dir(), "missing.pem"), "not a readable PEM file")]:
            r = self.bench(self.url, "--ca", path, "-b", self.serve_brokers, "-c", 2, "-d", 0.2, rc=1, timeout=30)
            self.assertIn("kws: error: --ca " + path + ": " + needle, r.stderr, str(r))

    def test_wss_to_a_plain_port(self):
        with kwstest.Background(["serve", "-l", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0"]) as plain:
            url, brokers = self.wait_for_serve(plain)
            r = self.bench(url.replace("ws://", "wss://"), "--ca", self.files["ca"], "-b", brokers, "-c", 2, "-d", 0.2,
                           rc=1, timeout=30)
        self.assertRegex(r.stderr, r"kws: error: the server at 127\.0\.0\.1:\d+ (answered the TLS handshake with "
                                   r"something that is not TLS|closed the connection during the TLS handshake).*ws://",
                         str(r))

    def test_ws_to_a_tls_port(self):
        r = self.bench(self.url.replace("wss://", "ws://"), "-b", self.serve_brokers, "-c", 2, "-d", 0.2, rc=1,
                       timeout=30)
        self.assertIn("kws: error:", r.stderr, str(r))


class BenchResumeScript(kwstest.KwsTestCase):
    """scripts/bench-resume --quick: 50 clients, a SIGKILLed and restarted
    kws serve, every client resumed with recovered:true and no gap or
    duplicate (the figure itself is docs/BENCHMARKS.md's)."""

    broker_args = None

    def test_quick_resume_storm_is_clean(self):
        script = os.path.join(kwstest.HERE, "..", "..", "scripts", "bench-resume")
        env = dict(os.environ, KWS_BIN=kwstest.KWS_BIN)
        r = subprocess.run([sys.executable, script, "--quick", "--json", "--out", kwstest.scratch_dir()],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, (r.stdout, r.stderr))
        doc = json.loads(r.stdout)
        self.assertEqual((doc["clients"], doc["recovered_true"], doc["gaps"], doc["duplicates"], doc["lost_notices"],
                          doc["behind_at_end"], doc["errors"]), (50, 50, 0, 0, 0, 0, 0), doc)
        self.assertEqual(sum(doc["partition_ends"]), doc["produced"], doc)
        self.assertTrue(doc["clean"], doc)


class BenchAgainstKafkaWebsocket(kwstest.KwsTestCase):
    """A server that, like kafka-websocket, confirms no subscription: kws
    bench waits --settle seconds instead, and still counts exactly."""

    broker_args = ["--partitions", "2"]

    def test_settle_instead_of_subscribed_frames(self):
        topic = self.topic()
        self.send(topic, "create-the-topic")
        err = tempfile.TemporaryFile()
        self.addCleanup(err.close)
        server = kwstest.spawn([sys.executable, "-B", os.path.join(kwstest.HERE, "fake_kafka_websocket.py"),
                                self.brokers, topic], stdout=subprocess.PIPE, stderr=err, env=kwstest.clean_env())
        try:
            ready, _, _ = select.select([server.stdout], [], [], 20)
            line = server.stdout.readline().decode() if ready else ""
            if not line.startswith("READY "):
                server.kill()
                server.wait()
                err.seek(0)
                self.fail("fake kafka-websocket server not ready in 20 s: %r %r" % (line, err.read()))
            url = line.split()[1]
            r = kwstest.kws("bench", url, "-b", self.brokers, "-t", topic, "-c", 5, "-r", 100, "-d", 1,
                            "--settle", 1, "--json", timeout=60)
            self.assertEqual(r.rc, 0, str(r))
            doc = json.loads(r.stdout)
            self.assertFalse(doc["subscribed_confirmed"], str(r))
            self.assertEqual((doc["expected"], doc["received"], doc["lost"], doc["duplicates"]), (500, 500, 0, 0), str(r))
            self.assertIn('sent no "subscribed" frames', r.stderr)
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    kwstest.main(requires_modules={"kafka": kafka, "websockets": websockets})
