"""A minimal kafka-websocket stand-in for tests: GET /v2/broker/?topics=T
(subprotocol kafka-text) gets {"topic","message"} text frames of every new
Kafka message of T, read with python3-kafka, and -- like kafka-websocket --
no "subscribed" frame. Prints "READY ws://127.0.0.1:PORT/" once its consumer
stands at the end of every partition, so nothing produced afterwards is missed.

    fake_kafka_websocket.py BROKERS TOPIC
"""

import asyncio
import json
import sys
import threading

import websockets
from kafka import KafkaConsumer, TopicPartition


def main():
    brokers, topic = sys.argv[1], sys.argv[2]
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False, request_timeout_ms=15000)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    if not partitions:
        sys.exit("fake_kafka_websocket: topic %s has no partitions" % topic)
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for tp in partitions:
        consumer.position(tp)  # resolves the end now, not at the first poll

    loop = asyncio.new_event_loop()
    queues = set()

    def publish(frame):
        for q in queues:
            q.put_nowait(frame)

    def read_kafka():
        while True:
            for records in consumer.poll(timeout_ms=100).values():
                for r in records:
                    frame = json.dumps({"topic": r.topic, "message": r.value.decode("utf-8", "replace")})
                    loop.call_soon_threadsafe(publish, frame)

    async def session(ws, path):
        if not path.startswith("/v2/broker/"):
            await ws.close(1008, "unknown path")
            return
        q = asyncio.Queue()
        queues.add(q)
        try:
            while True:
                await ws.send(await q.get())
        except websockets.ConnectionClosed:
            pass
        finally:
            queues.discard(q)

    async def serve():
        server = await websockets.serve(session, "127.0.0.1", 0, subprotocols=["kafka-text"])
        port = server.sockets[0].getsockname()[1]
        threading.Thread(target=read_kafka, daemon=True).start()
        print("READY ws://127.0.0.1:%d/" % port, flush=True)
        await asyncio.Future()

    loop.run_until_complete(serve())


if __name__ == "__main__":
    main()
