"""A stand-in for kws serve's Kafka-to-MQTT mapping, for kws bench's MQTT
subscriber tests while kws serve has none: reads every new record of Kafka
topic T with python3-kafka and publishes it with python3-paho-mqtt to an
MQTT broker (mosquitto) as QoS 0 PUBLISH on kafka/T/<key> (kafka/T for a
record without key), payload = the record's value. Prints "READY" once its
consumer stands at the end of every partition and its MQTT connection is
up, so nothing produced afterwards is missed.

    kafka_to_mqtt_relay.py BROKERS TOPIC MQTT_PORT
"""

import sys
import threading

import paho.mqtt.client as paho
from kafka import KafkaConsumer, TopicPartition


def main():
    brokers, topic, mqtt_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False, request_timeout_ms=15000)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    if not partitions:
        sys.exit("kafka_to_mqtt_relay: topic %s has no partitions" % topic)
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for tp in partitions:
        consumer.position(tp)  # resolves the end now, not at the first poll

    connected = threading.Event()
    client = paho.Client(client_id="kafka-to-mqtt-relay", protocol=paho.MQTTv311)
    client.on_connect = lambda c, userdata, flags, rc: connected.set() if rc == 0 else None
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    if not connected.wait(20):
        sys.exit("kafka_to_mqtt_relay: no CONNACK from 127.0.0.1:%d" % mqtt_port)
    print("READY", flush=True)
    while True:
        for records in consumer.poll(timeout_ms=100).values():
            for r in records:
                name = "kafka/%s/%s" % (topic, r.key.decode()) if r.key is not None else "kafka/" + topic
                client.publish(name, r.value, qos=0)


if __name__ == "__main__":
    main()
