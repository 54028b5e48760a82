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
import socket
import time
import unittest
import uuid

import kwstest
import mqtt_semantics
from mqtt_semantics import MqttSemantics, PahoClient, RawMqtt, V311, V5, mqtt

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


if __name__ == "__main__":
    kwstest.main(requires_modules={"paho.mqtt": mqtt})
