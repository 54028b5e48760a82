"""kws bench's MQTT modes against Debian's mosquitto over TCP (kws serve has
no MQTT yet; the same modes will measure it):
 - subscribers (mqtt://): mosquitto cannot read Kafka, so a relay
   (kafka_to_mqtt_relay.py: python3-kafka and python3-paho-mqtt) plays kws
   serve's part, publishing each new record of the topic to kafka/TOPIC;
   every client must get every message once;
 - the same over WebSocket, through mqtt_ws_proxy.py, which cuts mosquitto's
   bytes into frames at random points (parts of packets, several packets);
 - publishers (--mqtt-publish): every QoS 1 PUBLISH acknowledged, and each
   one seen by an independent subscriber (python3-paho-mqtt);
 - idle connections, with and without SUBSCRIBE, and mosquitto's RSS;
 - idle and publishers over WebSocket too (through the proxy);
 - a refused CONNECT, and usage errors.
Timing is not judged here (docs/BENCHMARKS.md is)."""

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import kwstest

try:
    import kafka
    import paho.mqtt.client as paho
    import websockets
except ImportError:  # reported by kwstest.main() as a skip
    kafka = paho = websockets = None

MOSQUITTO = "/usr/sbin/mosquitto"


def start_helper(test, script, *args):
    """Runs a helper script of this folder until it prints READY [URL];
    returns (process, the rest of that line)."""
    err = tempfile.TemporaryFile()
    test.addCleanup(err.close)
    proc = kwstest.spawn([sys.executable, "-B", os.path.join(kwstest.HERE, script), *[str(a) for a in args]],
                         stdout=subprocess.PIPE, stderr=err, env=kwstest.clean_env())

    def stop():
        proc.kill()
        proc.wait()
    test.addCleanup(stop)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("READY"):
        err.seek(0)
        test.fail("%s not ready in 30 s: %r %r" % (script, line, err.read()))
    return proc, line[len("READY"):].strip()


class Mosquitto:
    """mosquitto on free ports with a generated configuration: an anonymous
    listener, and one that refuses anonymous clients (CONNACK 5)."""

    def __init__(self):
        self.dir = kwstest.scratch_dir()
        self.port, self.closed_port = self._free_port(), self._free_port()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("per_listener_settings true\n"
                    "persistence false\n"
                    "log_dest stderr\n"
                    "max_queued_messages 0\n"  # no QoS 1 message dropped for a slow subscriber
                    "listener %d 127.0.0.1\n"
                    "allow_anonymous true\n"
                    "listener %d 127.0.0.1\n"
                    "allow_anonymous false\n" % (self.port, self.closed_port))
        self.log = open(os.path.join(self.dir, "mosquitto.log"), "wb")
        self.proc = kwstest.spawn([MOSQUITTO, "-c", conf], stdout=self.log, stderr=subprocess.STDOUT)
        kwstest.wait_until(lambda: self._listening(self.port) or self.proc.poll() is not None, timeout=20,
                           what="mosquitto listening on %d" % self.port)
        if self.proc.poll() is not None:
            raise AssertionError("mosquitto exited: " + self.output())

    @staticmethod
    def _free_port():
        holder = kwstest.free_port_holder()
        port = holder.getsockname()[1]
        holder.close()
        return port

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def output(self, tail=3000):
        with open(os.path.join(self.dir, "mosquitto.log"), "rb") as f:
            return f.read().decode(errors="replace")[-tail:]

    def log_size(self):
        return os.path.getsize(os.path.join(self.dir, "mosquitto.log"))

    def clients_since(self, offset):
        """CONNECTs of kws bench clients logged after `offset` ("... as kwsb-<tag>-<index>")."""
        with open(os.path.join(self.dir, "mosquitto.log"), "rb") as f:
            f.seek(offset)
            return len(re.findall(rb"as kwsb-[0-9a-f]{8}-\d+", f.read()))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class BenchAgainstMosquitto(kwstest.KwsTestCase):
    """One mosquitto and one embedded Kafka broker for the class."""

    required_tools = [MOSQUITTO]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mosquitto = Mosquitto()
        cls.addClassCleanup(cls.mosquitto.stop)
        cls.url = "mqtt://127.0.0.1:%d" % cls.mosquitto.port

    def bench(self, *args, rc=0, timeout=60):
        r = kwstest.kws("bench", *args, timeout=timeout)
        self.assertEqual(r.rc, rc, "%s\nmosquitto:\n%s" % (r, self.mosquitto.output()))
        return r

    def subscribers(self, url, clients, rate, duration, *extra):
        topic = self.topic()
        self.send(topic, "create-the-topic")
        start_helper(self, "kafka_to_mqtt_relay.py", self.brokers, topic, self.mosquitto.port)
        r = self.bench(url, "-b", self.brokers, "-t", topic, "-c", clients, "-r", rate, "-d", duration, "--json",
                       *(["--protocol", "mqtt"] if url.startswith("ws") else []), *extra)
        doc = json.loads(r.stdout)
        expected = clients * int(rate * duration)
        self.assertEqual((doc["mode"], doc["clients"], doc["planned"], doc["produced"]),
                         ("load", clients, int(rate * duration), int(rate * duration)), str(r))
        self.assertEqual((doc["expected"], doc["received"], doc["lost"], doc["duplicates"]),
                         (expected, expected, 0, 0), str(r))
        # The SUBACKs confirm the subscriptions: no settle time.
        self.assertTrue(doc["subscribed_confirmed"], str(r))
        self.assertNotIn("settle", r.stderr, str(r))
        self.assertEqual((doc["closed_by_server"], doc["error_frames"], doc["other_frames"]), (0, 0, 0), str(r))
        self.assertTrue(doc["clean"], str(r))
        self.assertGreater(doc["p99_ms"], 0, str(r))
        return doc

    def test_subscribers_over_tcp_get_every_message_once(self):
        doc = self.subscribers(self.url, 10, 200, 1)
        self.assertEqual((doc["subprotocol"], doc["transport"]), ("mqtt over TCP", "tcp"))

    def test_subscribers_over_websocket_read_packets_across_frames(self):
        _, ws_url = start_helper(self, "mqtt_ws_proxy.py", self.mosquitto.port)
        # 1,000-byte messages: PUBLISHes with a two-byte Remaining Length,
        # cut anywhere by the proxy.
        doc = self.subscribers(ws_url, 5, 200, 1, "-s", 1000)
        self.assertEqual((doc["subprotocol"], doc["transport"]), ("mqtt", "websocket"))

    def test_idle_and_publishers_over_websocket(self):
        # (b) and (c) as they will run against kws serve's /mqtt.
        _, ws_url = start_helper(self, "mqtt_ws_proxy.py", self.mosquitto.port)
        r = self.bench(ws_url, "--protocol", "mqtt", "-b", self.brokers, "-t", self.topic(), "--idle", 20, "-d", 0.3,
                       "--json")
        doc = json.loads(r.stdout)
        self.assertEqual((doc["mode"], doc["subprotocol"], doc["clients"], doc["closed_by_server"]),
                         ("idle", "mqtt", 20, 0), str(r))
        self.assertTrue(doc["subscribed_confirmed"] and doc["clean"], str(r))
        r = self.bench(ws_url, "--protocol", "mqtt", "-t", self.topic(), "--mqtt-publish", 3, "-d", 0.5, "--json")
        doc = json.loads(r.stdout)
        self.assertEqual((doc["mode"], doc["transport"], doc["unacked"], doc["unexpected_acks"]),
                         ("publish", "websocket", 0, 0), str(r))
        self.assertEqual(doc["acked"], doc["published"], str(r))
        self.assertGreater(doc["acked"], 0, str(r))
        self.assertTrue(doc["clean"], str(r))

    def test_publishers_every_publish_acknowledged_and_delivered(self):
        topic = self.topic()
        received = []
        subscribed = threading.Event()
        sub = paho.Client(client_id="bench-test-" + topic, protocol=paho.MQTTv311)
        sub.on_connect = lambda c, u, f, rc: c.subscribe(topic + "/#", qos=1)
        sub.on_subscribe = lambda c, u, mid, granted: subscribed.set()
        sub.on_message = lambda c, u, m: received.append((m.topic, bytes(m.payload)))
        sub.connect("127.0.0.1", self.mosquitto.port)
        sub.loop_start()
        self.addCleanup(sub.loop_stop)
        self.addCleanup(sub.disconnect)
        self.assertTrue(subscribed.wait(20), "the paho subscriber got no SUBACK")

        r = self.bench(self.url, "-t", topic, "--mqtt-publish", 4, "--window", 5, "-d", 1, "-s", 200, "--json",
                       "--pid", self.mosquitto.proc.pid)
        doc = json.loads(r.stdout)
        self.assertEqual((doc["mode"], doc["clients"], doc["window"]), ("publish", 4, 5), str(r))
        self.assertGreater(doc["published"], 20, str(r))
        self.assertEqual((doc["acked"], doc["unacked"], doc["unexpected_acks"]), (doc["published"], 0, 0), str(r))
        self.assertGreater(doc["acks_per_s"], 0, str(r))
        self.assertGreater(doc["p99_ms"], 0, str(r))
        self.assertTrue(doc["clean"], str(r))
        self.assertIn("bridge", doc, str(r))
        # No Kafka on this side: no -b needed, no producer started.
        self.assertNotIn("kafka", r.stderr.lower(), str(r))

        kwstest.wait_until(lambda: len(received) >= doc["published"], timeout=20,
                           what="%d PUBLISHes at the paho subscriber" % doc["published"])
        time.sleep(0.2)
        self.assertEqual(len(received), doc["published"])
        self.assertEqual({t for t, _ in received}, {"%s/%d" % (topic, i) for i in range(4)})
        stamps = {re.match(rb"kwsb([0-9a-f]{8}):(\d+):", p).group(0) for _, p in received}
        self.assertEqual(len(stamps), doc["published"], "every PUBLISH carries a stamp of its own")
        self.assertTrue(all(len(p) == 200 for _, p in received))

    def test_publishers_table_report(self):
        r = self.bench(self.url, "-t", self.topic(), "--mqtt-publish", 2, "-d", 0.3)
        for needle in ("--mqtt-publish: 2 publishers", "QoS 1, window 10", "PUBACKs/s", "PUBACK ms", " 0 not"):
            self.assertIn(needle, r.stdout, str(r))

    def test_interrupted_publishers_print_the_partial_report(self):
        mark = self.mosquitto.log_size()
        with kwstest.Background(["bench", self.url, "-t", self.topic(), "--mqtt-publish", 2, "-d", 60]) as bg:
            kwstest.wait_until(lambda: self.mosquitto.clients_since(mark) >= 2 or bg.proc.poll() is not None, timeout=20,
                               what="two publishers connected to mosquitto")
            time.sleep(0.3)
            bg.signal(signal.SIGINT)
            self.assertEqual(bg.wait(timeout=15), 130, bg.describe())
            self.assertIn(b"(interrupted)", bg.out, bg.describe())
            self.assertIn(b"acknowledged", bg.out, bg.describe())

    def test_idle_connections(self):
        for extra in ([], ["--no-subscribe"]):
            r = self.bench(self.url, "-b", self.brokers, "-t", self.topic(), "--idle", 40, "-d", 0.3, "--json",
                           "--pid", self.mosquitto.proc.pid, *extra)
            doc = json.loads(r.stdout)
            self.assertEqual((doc["mode"], doc["clients"], doc["closed_by_server"], doc["error_frames"]),
                             ("idle", 40, 0, 0), str(r))
            self.assertTrue(doc["subscribed_confirmed"], str(r))
            self.assertIn("rss_bytes_per_connection", doc["bridge"], str(r))
            self.assertTrue(doc["clean"], str(r))

    def test_refused_connect(self):
        r = self.bench("mqtt://127.0.0.1:%d" % self.mosquitto.closed_port, "-b", self.brokers, "-t", self.topic(),
                       "-c", 2, "-d", 0.2, rc=1, timeout=30)
        self.assertIn("kws: error: the server refused the MQTT CONNECT: return code 5 (not authorized)", r.stderr,
                      str(r))
        r = self.bench("mqtt://127.0.0.1:%d" % self.mosquitto.closed_port, "--mqtt-publish", 2, "-d", 0.2, rc=1,
                       timeout=30)
        self.assertIn("return code 5 (not authorized)", r.stderr, str(r))

    def test_closed_port(self):
        holder = kwstest.free_port_holder()
        try:
            port = holder.getsockname()[1]
            r = self.bench("mqtt://127.0.0.1:%d" % port, "--mqtt-publish", 1, "-d", 0.2, rc=1)
        finally:
            holder.close()
        self.assertIn("cannot connect to 127.0.0.1:%d" % port, r.stderr)

    def test_usage_errors(self):
        for args, needle in [(["ws://h:1/", "--mqtt-publish", "3"], "--mqtt-publish needs --protocol mqtt"),
                             (["ws://h:1/", "--idle", "3", "--no-subscribe"], "--no-subscribe needs --protocol mqtt"),
                             (["mqtt://h:1", "--no-subscribe"], "--no-subscribe requires --idle"),
                             (["mqtt://h:1", "--window", "3"], "--window requires --mqtt-publish"),
                             (["mqtt://h:1", "--protocol", "kafka-binary"], "an mqtt:// URL speaks MQTT"),
                             (["mqtt://h:1", "--binary"], "an mqtt:// URL speaks MQTT"),
                             (["ws://h:1/", "--protocol", "mqtt", "--key-filters", "2"], "--key-filters is kws serve's"),
                             (["ws://h:1/", "--protocol", "mqtt", "--binary"], "excludes"),
                             (["ws://h:1/", "--protocol", "amqp"], "--protocol"),
                             (["mqtt://h:1", "--mqtt-publish", "2", "-c", "3"], "excludes"),
                             (["mqtt://h:1/topic"], "an mqtt:// URL has no path")]:
            r = self.bench(*args, rc=2)
            self.assertRegex(r.stderr, re.escape(needle), str(r))


if __name__ == "__main__":
    kwstest.main(requires_modules={"kafka": kafka, "paho.mqtt": paho, "websockets": websockets})
