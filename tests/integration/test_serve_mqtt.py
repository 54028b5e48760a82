"""kws serve's MQTT (issue 17): the broker-independent semantics tests
(mqtt_semantics.py, checked against mosquitto by test_mqtt_reference.py)
against kws over TCP (--mqtt-listen) and over WebSocket (/mqtt), then what
only kws does: the mapping to Kafka, read and written with kws tail and kws
send (Kafka itself, not through the bridge), retained messages kept in
Kafka across bridges, tokens as MQTT passwords and ACLs.

The semantics classes use a broker whose topics have one partition: their
"not delivered" checks rest on order across MQTT topics, which kws keeps
within a partition of the MQTT topic (mqtt_semantics.py's docstring).
"""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import unittest
import urllib.request
import uuid

try:
    import jwt
except ImportError:  # reported by main() as a loud skip
    jwt = None

import kwstest
import mqtt_semantics
from mqtt_semantics import (CONNACK, PUBACK, MqttSemantics, PahoClient, RawMqtt, V311, V5, connect_packet, mqtt,
                            publish_packet, subscribe_packet)

SECRET = b"kws test secret: at least 32 bytes long for HS256"
FAR = 4102444800  # 2100-01-01

# --max-frame for the semantics classes; kws accepts packets up to
# max_frame + 64 KiB (the envelope's room), so the oversize tests send that.
MAX_FRAME = 16384
MAX_PACKET = MAX_FRAME + 65536


def start_serve(testcase_or_cls, brokers, *args):
    bg = kwstest.Background(["serve", "-b", brokers, "-l", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"] +
                            [str(a) for a in args])
    try:
        bg.wait_for_output(lambda out: b"MQTT=" in out and out.endswith(b"\n"), timeout=30, what="MQTT= line")
    except AssertionError:
        bg.__exit__(None, None, None)
        raise
    lines = bg.lines()
    url = [l for l in lines if l.startswith("URL=")][0][len("URL="):]
    mqtt_url = [l for l in lines if l.startswith("MQTT=")][0][len("MQTT="):]
    bg.ws_address = url.split("://", 1)[1].rstrip("/")
    bg.mqtt_address = mqtt_url.split("://", 1)[1]
    return bg


def wait_messages(client, count, timeout=mqtt_semantics.WAIT):
    """The first `count` messages `client` received (waiting for them)."""
    client.wait(lambda: len(client.messages) >= count, "%d message(s)" % count, timeout)
    with client.cond:
        return list(client.messages[:count])


def subscribe_code(client, topic_filter, qos=0):
    """The SUBACK's code for one filter, a failure included."""
    rc, mid = client.c.subscribe(topic_filter, qos)
    assert rc == mqtt.MQTT_ERR_SUCCESS, rc
    return client.wait(lambda: client.subacks.get(mid), "SUBACK for %r" % topic_filter)[0]


def host_port(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


class _KwsSemantics(MqttSemantics):
    broker_args = ["--partitions", "1"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.serve = start_serve(cls, cls.broker.brokers, "--max-frame", MAX_FRAME)
        cls.addClassCleanup(cls.serve.__exit__, None, None, None)

    def mqtt_max_packet(self):
        return MAX_PACKET


class KwsTcp(_KwsSemantics, kwstest.KwsTestCase):
    def mqtt_target(self):
        host, port = host_port(self.serve.mqtt_address)
        return {"host": host, "port": port, "transport": "tcp"}


class KwsWebSocket(_KwsSemantics, kwstest.KwsTestCase):
    def mqtt_target(self):
        host, port = host_port(self.serve.ws_address)
        return {"host": host, "port": port, "transport": "websockets", "path": "/mqtt"}


class KafkaMapping(kwstest.KwsTestCase):
    """What MQTT clients do, seen from Kafka, and Kafka records seen by MQTT
    clients, with kws send and kws tail on the broker directly."""

    broker_args = ["--partitions", "2"]

    def setUp(self):
        self.serve = start_serve(self, self.brokers)
        self.addCleanup(self.serve.__exit__, None, None, None)

    def target(self, transport="tcp"):
        if transport == "tcp":
            host, port = host_port(self.serve.mqtt_address)
            return {"host": host, "port": port, "transport": "tcp"}
        host, port = host_port(self.serve.ws_address)
        return {"host": host, "port": port, "transport": "websockets", "path": "/mqtt"}

    def client(self, version=V311, transport="tcp", auth=None, **kwargs):
        c = PahoClient(self.target(transport), version, auth=auth, **kwargs)
        self.addCleanup(c.stop)
        return c

    def records(self, topic, count, timeout=15):
        """The first `count` records of a Kafka topic, read by kws tail."""
        deadline = time.monotonic() + timeout
        while True:
            envs = self.tail_json(topic)
            if len(envs) >= count or time.monotonic() > deadline:
                return envs
            time.sleep(0.2)

    def test_publishes_reach_kafka_keyed_by_topic(self):
        prefix = "plant/%s" % uuid.uuid4().hex[:8]
        c = self.client(V5)
        c.publish(prefix + "/line1/temp", b"21.5", qos=1)
        c.publish(prefix + "/line2/temp", b"19.0", qos=1, user_properties=[("source", "sensor-7"), ("unit", "C")])
        c.publish(prefix + "/line3/temp", b"qos0", qos=0)
        wanted = {prefix + "/line1/temp", prefix + "/line2/temp", prefix + "/line3/temp"}
        deadline = time.monotonic() + 15
        while True:
            envs = [e for e in self.tail_json("mqtt-messages") if e.get("key", "").startswith(prefix)]
            if {e["key"] for e in envs} >= wanted or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        by_key = {e["key"]: e for e in envs}
        self.assertEqual(set(by_key), wanted, envs)
        self.assertEqual(by_key[prefix + "/line1/temp"]["message"], "21.5")
        self.assertEqual(kwstest.header_pairs(by_key[prefix + "/line2/temp"]),
                         [(b"source", b"sensor-7"), (b"unit", b"C")])

    def test_kafka_records_reach_mqtt_subscribers_of_kafka_topic(self):
        topic = self.topic("prices")
        self.send(topic, "seed")  # the topic exists before the subscription
        for version, transport in ((V311, "tcp"), (V5, "websockets")):
            c = self.client(version, transport)
            c.subscribe("kafka/%s/#" % topic, 0)
            one = self.client(version, transport)
            one.subscribe("kafka/%s/BTC-USD" % topic, 0)
            self.send_json(topic, [{"key": "BTC-USD", "message": "101", "headers": [{"name": "venue", "value": "x"}]},
                                   {"key": "ETH-USD", "message": "7"}, {"message": "no key"}])
            got = wait_messages(c, 3)  # in order per partition; the topic has two
            self.assertEqual(sorted((m.topic, m.payload) for m in got),
                             sorted([("kafka/%s/BTC-USD" % topic, b"101"), ("kafka/%s/ETH-USD" % topic, b"7"),
                                     ("kafka/%s" % topic, b"no key")]))
            if version == V5:
                btc = next(m for m in got if m.topic.endswith("/BTC-USD"))
                self.assertEqual(btc.user_properties, [("venue", "x")])
            only = wait_messages(one, 1)
            self.assertEqual([m.payload for m in only], [b"101"])

    def test_wildcards_match_records_kws_send_wrote(self):
        # A record any Kafka tool writes to mqtt-messages is an MQTT message
        # on the topic its key names.
        site = "site%s" % uuid.uuid4().hex[:6]
        plus = self.client(V311)
        plus.subscribe(site + "/+/temp", 0)
        hash_ = self.client(V5, "websockets")
        hash_.subscribe(site + "/#", 0)
        self.send_json("mqtt-messages", [{"key": site + "/line1/temp", "message": "21"},
                                         {"key": site + "/line1/humidity", "message": "40"},
                                         {"key": site + "/line2/temp", "message": "19"}])
        got = wait_messages(plus, 2)
        self.assertEqual(sorted((m.topic, m.payload) for m in got),
                         [(site + "/line1/temp", b"21"), (site + "/line2/temp", b"19")])
        got = wait_messages(hash_, 3)
        self.assertEqual(sorted(m.topic for m in got),
                         sorted([site + "/line1/temp", site + "/line1/humidity", site + "/line2/temp"]))

    def test_publish_to_kafka_topic_through_mqtt(self):
        topic = self.topic("cmds")
        self.send(topic, "seed")
        c = self.client(V311)
        c.publish("kafka/%s/device-9" % topic, b"reboot", qos=1)
        envs = self.records(topic, 2)
        self.assertEqual([(e.get("key"), e["message"]) for e in envs if e["message"] != "seed"], [("device-9", "reboot")])

    def test_retained_kept_in_kafka_and_served_by_another_bridge(self):
        prefix = "retained/%s" % uuid.uuid4().hex[:8]
        c = self.client(V311)
        c.publish(prefix + "/state", b"on", qos=1, retain=True)
        envs = [e for e in self.records("mqtt-retained", 1) if e.get("key") == prefix + "/state"]
        deadline = time.monotonic() + 15
        while not envs and time.monotonic() < deadline:
            time.sleep(0.2)
            envs = [e for e in self.tail_json("mqtt-retained") if e.get("key") == prefix + "/state"]
        self.assertEqual([e["message"] for e in envs], ["on"])
        # A second bridge on the same cluster knows it from Kafka.
        other = start_serve(self, self.brokers)
        self.addCleanup(other.__exit__, None, None, None)
        host, port = host_port(other.mqtt_address)
        late = PahoClient({"host": host, "port": port, "transport": "tcp"}, V311)
        self.addCleanup(late.stop)
        deadline = time.monotonic() + 15
        while True:
            late.subscribe(prefix + "/#", 1)
            try:
                (m,) = wait_messages(late, 1, timeout=1)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        self.assertEqual((m.topic, m.payload, m.retain), (prefix + "/state", b"on", True))

    def test_wildcard_kafka_topic_and_bad_filters_refused(self):
        c = self.client(V311)
        self.assertEqual(subscribe_code(c, "kafka/+/#"), 0x80)
        self.assertEqual(subscribe_code(c, "kafka/missing-%s/#" % uuid.uuid4().hex[:6]), 0x80)
        # The session goes on.
        topic = "ok/%s" % uuid.uuid4().hex[:6]
        c.subscribe(topic, 0)
        c.publish(topic, b"x", qos=1)
        self.assertEqual([m.payload for m in wait_messages(c, 1)], [b"x"])

    def test_qos0_and_qos1_read_back_with_kcat(self):
        if not shutil.which("kcat"):
            self.skipTest("kcat not installed")
        prefix = "kcat/%s" % uuid.uuid4().hex[:8]
        c = self.client(V311)
        c.publish(prefix + "/zero", b"at most once", qos=0)
        c.publish(prefix + "/one", b"acked", qos=1)
        deadline = time.monotonic() + 15
        while True:
            r = kwstest.run(["kcat", "-b", self.brokers, "-C", "-t", "mqtt-messages", "-o", "beginning", "-e", "-q",
                             "-f", "%k=%s\\n"], timeout=20)
            lines = [l for l in r.out.decode().splitlines() if l.startswith(prefix)]
            if len(lines) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(sorted(lines), [prefix + "/one=acked", prefix + "/zero=at most once"], str(r))


    def raw_client(self, version=V311, will=None):
        host, port = host_port(self.serve.mqtt_address)
        r = RawMqtt({"host": host, "port": port})
        self.addCleanup(r.sock.close)
        r.connect(version=version, will=will)
        return r

    def suback_codes(self, r, count):
        """{packet id: codes} of the next `count` SUBACKs (other packets in between are skipped)."""
        codes = {}
        while len(codes) < count:
            first, body = r.read_packet(what="SUBACK")
            if first >> 4 == mqtt_semantics.SUBACK:
                pos = 2 if r.version == V311 else 3 + body[2]  # MQTT 5: after the (short) properties
                codes[body[0] << 8 | body[1]] = list(body[pos:])
        return codes

    def test_unsubscribe_before_the_hub_answered_still_gets_its_suback(self):
        topic = self.topic("fresh")
        self.send(topic, "seed")
        r = self.raw_client()
        # Both in one write: the UNSUBSCRIBE arrives while the hub still
        # looks the topic up for the SUBSCRIBE.
        r.send(subscribe_packet("kafka/%s/#" % topic, V311, 0, 5) +
               mqtt_semantics.packet(0xA2, b"\x00\x06" + mqtt_semantics.mqtt_string("kafka/%s/#" % topic)))
        seen = set()
        while seen != {mqtt_semantics.SUBACK, mqtt_semantics.UNSUBACK}:
            first, body = r.read_packet(what="SUBACK and UNSUBACK")
            seen.add(first >> 4)

    def test_a_refused_subscription_can_be_made_again(self):
        topic = self.topic("later")
        r = self.raw_client()
        # Twice in one SUBSCRIBE: both refused (the topic does not exist yet).
        r.send(mqtt_semantics.packet(0x82, b"\x00\x01" + mqtt_semantics.mqtt_string("kafka/%s/#" % topic) + b"\x00" +
                                     mqtt_semantics.mqtt_string("kafka/%s/#" % topic) + b"\x00"))
        self.assertEqual(self.suback_codes(r, 1), {1: [0x80, 0x80]})
        self.send(topic, "seed")
        r.send(subscribe_packet("kafka/%s/#" % topic, V311, 0, 2))
        self.assertEqual(self.suback_codes(r, 1), {2: [0]})
        self.send(topic, "now")
        first, body = r.read_packet(what="the record after the new subscription")
        self.assertEqual(first >> 4, mqtt_semantics.PUBLISH)
        self.assertTrue(body.endswith(b"now"), body)

    def test_v5_disconnect_with_an_error_reason_keeps_the_will(self):
        # 3.1.2.5: only reason 0x00 discards the will.
        topic = "will/%s" % uuid.uuid4().hex[:8]
        watcher = self.client(V311)
        watcher.subscribe(topic, 0)
        r = self.raw_client(V5, will=(topic, b"gone", 0, False))
        r.send(mqtt_semantics.packet(0xE0, b"\x80\x00"))
        self.assertEqual(watcher.expect(topic).payload, b"gone")

    def test_v5_maximum_packet_size_is_respected(self):
        # MQTT 5 3.1.2.25: a packet over the client's Maximum Packet Size is
        # never sent; the ones that fit still arrive.
        prefix = "small/%s" % uuid.uuid4().hex[:8]
        host, port = host_port(self.serve.mqtt_address)
        r = RawMqtt({"host": host, "port": port})
        self.addCleanup(r.sock.close)
        body = (mqtt_semantics.mqtt_string("MQTT") + bytes([V5, 0x02]) + b"\x00\x3c" +
                b"\x05\x27\x00\x00\x01\x00" + mqtt_semantics.mqtt_string("tiny-" + uuid.uuid4().hex[:6]))
        r.send(mqtt_semantics.packet(0x10, body))  # CONNECT, Maximum Packet Size 256
        r.expect(CONNACK)
        r.send(subscribe_packet(prefix + "/#", V5, 0, 1))
        r.expect(mqtt_semantics.SUBACK)
        c = self.client(V311)
        c.publish(prefix + "/big", b"x" * 1000, qos=1)
        c.publish(prefix + "/fits", b"ok", qos=1)
        first, body = r.read_packet(what="the PUBLISH that fits")
        self.assertEqual(first >> 4, mqtt_semantics.PUBLISH)
        self.assertIn(prefix.encode() + b"/fits", body)

    def paced_bridge_and_client(self, *args):
        """A bridge of its own with these limits, and a 3.1.1 client of it."""
        serve = start_serve(self, self.brokers, *args)
        self.addCleanup(serve.__exit__, None, None, None)
        host, port = host_port(serve.mqtt_address)
        c = PahoClient({"host": host, "port": port}, V311)
        self.addCleanup(c.stop)
        return serve, c

    def test_produce_rate_slows_mqtt_publishers_without_refusing(self):
        # --produce-rate paces an MQTT client (it waits; reading stops)
        # instead of refusing what 3.1.1 could not be told about.
        _, c = self.paced_bridge_and_client("--produce-rate", "40")
        prefix = "paced/%s" % uuid.uuid4().hex[:8]
        started = time.monotonic()
        infos = [c.c.publish(prefix + "/%d" % i, b"v", qos=1) for i in range(120)]
        for info in infos:
            info.wait_for_publish(timeout=20)
            self.assertTrue(info.is_published())
        elapsed = time.monotonic() - started
        # 40/s with a second's burst: 120 take about 2 s, not an instant.
        self.assertGreater(elapsed, 1.5, "120 publishes at --produce-rate 40 took %.2f s" % elapsed)
        self.assertIsNone(c.disconnected)

    def test_control_rate_paces_mqtt_subscribes_without_refusing(self):
        # --control-rate paces SUBSCRIBE and UNSUBSCRIBE as --produce-rate
        # paces PUBLISH: each costs the hub work, and MQTT cannot refuse
        # one for its rate.
        serve, c = self.paced_bridge_and_client("--control-rate", "5")
        prefix = "paced-sub/%s" % uuid.uuid4().hex[:8]
        started = time.monotonic()
        mids = [c.c.subscribe(prefix + "/%d" % i, 0)[1] for i in range(15)]
        c.wait(lambda: all(c.subacks.get(m) == [0] for m in mids), "15 SUBACKs granting QoS 0", timeout=20)
        elapsed = time.monotonic() - started
        # 5/s with a second's burst: 15 take about 2 s, not an instant.
        self.assertGreater(elapsed, 1.5, "15 subscribes at --control-rate 5 took %.2f s" % elapsed)
        self.assertIsNone(c.disconnected)
        with urllib.request.urlopen("http://%s/metrics" % serve.ws_address, timeout=10) as r:
            text = r.read().decode()
        held = re.search(r"^kws_serve_rate_limited_total (\S+)$", text, re.M)
        self.assertTrue(held and float(held.group(1)) >= 1, "packets held for the rate, counted: %r" % held)


def hs(payload):
    return jwt.encode(payload, SECRET, algorithm="HS256")


class Security(kwstest.KwsTestCase):
    """Tokens as MQTT passwords, ACLs at every door, and TLS on --mqtt-listen."""

    broker_args = ["--partitions", "1"]

    def setUp(self):
        self.secret_file = os.path.join(kwstest.scratch_dir(), "secret")
        with open(self.secret_file, "wb") as f:
            f.write(SECRET)

    def raw(self, serve, version, auth):
        host, port = host_port(serve.mqtt_address)
        r = RawMqtt({"host": host, "port": port})
        self.addCleanup(r.sock.close)
        r.send(connect_packet("raw-" + uuid.uuid4().hex[:8], version, 60, True, None, auth))
        _, body = r.expect(CONNACK)
        return r, body[1]

    def test_token_as_password_and_acls(self):
        serve = start_serve(self, self.brokers, "--jwt-secret-file", self.secret_file)
        self.addCleanup(serve.__exit__, None, None, None)
        reader = hs({"sub": "dash", "exp": FAR, "kws": {"read": ["mqtt-messages"], "write": []}})
        writer = hs({"sub": "dev", "exp": FAR, "kws": {"read": [], "write": ["mqtt-messages"]}})
        # No token, a bad one: CONNACK 4 (3.1.1) / 0x86 (5), then closed.
        for version, auth, code in ((V311, None, 4), (V311, ("u", "not.a.token"), 4), (V5, ("u", "x.y.z"), 0x86)):
            r, got = self.raw(serve, version, auth)
            self.assertEqual(got, code, (version, auth))
            r.expect_closed()
        # The reader may subscribe to what MQTT clients publish, not to another topic.
        r, got = self.raw(serve, V311, ("any user", reader))
        self.assertEqual(got, 0)
        topic = self.topic("secret")
        self.send(topic, "seed")
        r.send(subscribe_packet("plant/#", V311, 0, 1) + subscribe_packet("kafka/%s/#" % topic, V311, 0, 2))
        codes = {}
        for _ in range(2):
            first, body = r.read_packet()
            codes[body[0] << 8 | body[1]] = body[2]
        self.assertEqual(codes, {1: 0, 2: 0x80})
        # ...nor publish: MQTT 5 at QoS 1 is told (0x87); 3.1.1 cannot be, and is closed.
        r5, got = self.raw(serve, V5, ("u", reader))
        self.assertEqual(got, 0)
        r5.send(publish_packet("plant/x", b"no", V5, qos=1, packet_id=7))
        _, body = r5.expect(PUBACK)
        self.assertEqual((body[0] << 8 | body[1], body[2]), (7, 0x87))
        r.send(publish_packet("plant/x", b"no", V311, qos=1, packet_id=3))
        r.expect_closed()
        # The writer's QoS 1 publish reaches Kafka, and a reader's subscription.
        host, port = host_port(serve.mqtt_address)
        sub = PahoClient({"host": host, "port": port}, V311, auth=("u", reader))
        self.addCleanup(sub.stop)
        sub.subscribe("plant/#", 0)
        pub = PahoClient({"host": host, "port": port}, V311, auth=("u", writer))
        self.addCleanup(pub.stop)
        pub.publish("plant/line1", b"ok", qos=1)
        self.assertEqual(sub.expect("plant/line1").payload, b"ok")

    def test_client_id_of_another_subject_is_refused_and_upgrade_token_counts(self):
        serve = start_serve(self, self.brokers, "--jwt-secret-file", self.secret_file)
        self.addCleanup(serve.__exit__, None, None, None)
        acl = {"read": ["mqtt-messages"], "write": ["mqtt-messages"]}
        alice = hs({"sub": "alice", "exp": FAR, "kws": acl})
        mallory = hs({"sub": "mallory", "exp": FAR, "kws": acl})
        host, port = host_port(serve.mqtt_address)
        first = RawMqtt({"host": host, "port": port})
        self.addCleanup(first.sock.close)
        first.send(connect_packet("sensor-1", V311, 60, True, None, ("u", alice)))
        self.assertEqual(first.expect(CONNACK)[1][1], 0)
        other = RawMqtt({"host": host, "port": port})
        self.addCleanup(other.sock.close)
        other.send(connect_packet("sensor-1", V311, 60, True, None, ("u", mallory)))
        self.assertEqual(other.expect(CONNACK)[1][1], 2)  # identifier rejected
        # Alice again (her own reconnect) takes the session over.
        again = RawMqtt({"host": host, "port": port})
        self.addCleanup(again.sock.close)
        again.send(connect_packet("sensor-1", V311, 60, True, None, ("u", alice)))
        self.assertEqual(again.expect(CONNACK)[1][1], 0)
        first.expect_closed()
        # A token in the WebSocket upgrade names the client; a user name
        # without a password (MQTT.js sends one) is not mistaken for a token.
        wsh, wsp = host_port(serve.ws_address)
        ws = RawMqtt({"host": wsh, "port": wsp, "transport": "websockets", "path": "/mqtt?access_token=" + alice})
        self.addCleanup(ws.sock.close)
        ws.send(connect_packet("browser-1", V311, 60, True, None, ("someone", None)))
        self.assertEqual(ws.expect(CONNACK)[1][1], 0)

    def test_mqtt_over_tls(self):
        files = kwstest.make_ca(kwstest.scratch_dir(), "mqtt")
        serve = start_serve(self, self.brokers, "--tls-cert", files["cert"], "--tls-key", files["key"])
        self.addCleanup(serve.__exit__, None, None, None)
        self.assertIn("MQTT=mqtts://", serve.out.decode())
        host, port = host_port(serve.mqtt_address)
        c = mqtt.Client(client_id="tls-" + uuid.uuid4().hex[:6], protocol=mqtt.MQTTv311)
        c.tls_set(ca_certs=files["ca"])
        got, subacks = [], []
        c.on_message = lambda client, userdata, m: got.append((m.topic, m.payload))
        c.on_subscribe = lambda client, userdata, mid, granted: subacks.append(mid)
        c.connect("localhost", port)
        c.loop_start()
        self.addCleanup(c.loop_stop)
        self.addCleanup(c.disconnect)
        topic = "secure/%s" % uuid.uuid4().hex[:6]
        result, mid = c.subscribe(topic, 1)
        self.assertEqual(result, 0)
        kwstest.wait_until(lambda: mid in subacks, timeout=10, what="SUBACK over TLS")
        info = c.publish(topic, b"over tls", qos=1)
        info.wait_for_publish(10)
        self.assertTrue(info.is_published())
        kwstest.wait_until(lambda: got, timeout=10, what="a message over TLS")
        self.assertEqual(got[0], (topic, b"over tls"))
        # A plain client on the TLS port gets no MQTT answer: the connection ends.
        plain = socket.create_connection((host, port), timeout=5)
        self.addCleanup(plain.close)
        plain.sendall(connect_packet("plain", V311))
        plain.settimeout(5)
        answer = plain.recv(100)
        self.assertIn(answer[:1], (b"", b"\x15"), "an MQTT client on the TLS port must not get an HTTP answer")


if __name__ == "__main__":
    kwstest.main(requires_modules={"paho.mqtt": mqtt, "jwt": jwt})
