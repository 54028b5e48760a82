"""MQTT over WebSocket in front of an MQTT-over-TCP broker (mosquitto as
Debian builds it has no WebSocket listener), for kws bench's tests: accepts
ws://127.0.0.1:PORT/mqtt with subprotocol mqtt (python3-websockets), pipes
the client's binary frames to the broker, and cuts the broker's bytes into
binary frames at random points, so a frame holds part of a packet, or the
end of one and the start of the next. Prints "READY ws://127.0.0.1:PORT/".

    mqtt_ws_proxy.py MQTT_PORT
"""

import asyncio
import random
import sys

import websockets


def main():
    mqtt_port = int(sys.argv[1])
    rng = random.Random(17)

    async def session(ws, path):
        if path != "/mqtt":
            await ws.close(1008, "unknown path")
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", mqtt_port)

        async def up():
            async for frame in ws:
                if isinstance(frame, str):
                    break
                writer.write(frame)
            writer.close()

        async def down():
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                at = 0
                while at < len(data):
                    n = rng.choice([1, 2, 3, 7, 50, 200, 5000, len(data)])
                    await ws.send(data[at:at + n])
                    at += n
            await ws.close()

        try:
            await asyncio.gather(up(), down())
        except (websockets.ConnectionClosed, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve():
        server = await websockets.serve(session, "127.0.0.1", 0, subprotocols=["mqtt"], max_size=None)
        print("READY ws://127.0.0.1:%d/" % server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

    asyncio.new_event_loop().run_until_complete(serve())


if __name__ == "__main__":
    main()
