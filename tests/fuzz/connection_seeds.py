#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_connection (tests/fuzz/corpus/connection).

An input is [config: 3 bytes][op...] (fuzz_connection.cpp says what each op
does); this file builds them from readable pieces: the client's bytes are
real requests and masked RFC 6455 frames, so the fuzzer starts from
connections that reach a session and mutates from there. Run it again after
changing a seed; files it did not write (inputs the fuzzer found) are kept.

  tests/fuzz/connection_seeds.py [DIR]
  tests/fuzz/connection_seeds.py --decode FILE...   the ops of inputs, readable
"""
import os
import struct
import sys

# config byte 0
SNDBUF_4K, SNDBUF_16K, SNDBUF_64K = 1, 2, 3
SMALL_CLIENT_BUFFER = 0x04
FEW_PENDING = 0x08        # max_pending_produce 2, max_pending_requests 1
SMALL_MAX_FRAME = 0x10    # 512 bytes
FEW_TOPICS = 0x20         # max_topics 2
IDLE_NOW = 0x40           # idle_timeout 0: chores close every open connection
STALL_NOW = 0x80          # write_timeout 0: chores close a client that is behind
# config byte 2
KAFKA_DOWN = 0x01
PING_NOW = 0x02           # ping_interval 0: chores ping every connection

MASK = b"\x37\xfa\x21\x3d"


def config(c0=0, records=0, c2=0):
    return bytes([c0, records, c2])


def frame(opcode, payload=b"", fin=True, mask=MASK, rsv=0, length=None):
    """A client frame; masked unless mask is None."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text(s, **kw):
    return frame(0x1, s, **kw)


def binary(b, **kw):
    return frame(0x2, b, **kw)


def cont(s, **kw):
    return frame(0x0, s, **kw)


def ping(s=b""):
    return frame(0x9, s)


def pong(s=b""):
    return frame(0xA, s)


def close(code=1000, reason=b""):
    return frame(0x8, struct.pack(">H", code) + reason if code is not None else b"")


def upgrade(query="topics=t", protocol=None, path="/v2/broker/", extra=""):
    head = (f"GET {path}?{query} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n")
    if protocol:
        head += f"Sec-WebSocket-Protocol: {protocol}\r\n"
    return (head + extra + "\r\n").encode()


def get(path, method="GET"):
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def write(data):
    """Op 0 or 1: the client writes `data` (split into pieces of 4096)."""
    if isinstance(data, str):
        data = data.encode()
    out = b""
    while data:
        piece, data = data[:4096], data[4096:]
        n = len(piece) - 1
        if n < 32:
            out += bytes([0 | n << 3]) + piece
        else:
            out += bytes([1 | (n >> 8) << 3, n & 0xFF]) + piece
    return out


def write_between(data):
    """Op 1 with arg & 16: the client writes `data`, then the server runs
    just one ready handler, so the next op lands between two of them."""
    if isinstance(data, str):
        data = data.encode()
    n = len(data) - 1
    assert n < 4096
    return bytes([1 | (16 | n >> 8) << 3, n & 0xFF]) + data


def pieces(data, size):
    """The client writes `data` in pieces of `size` bytes, settling between."""
    return b"".join(write(data[i:i + size]) for i in range(0, len(data), size))


def stop_reading():
    return bytes([2 | 1 << 3])


def go_on_reading():
    return bytes([2])


def kafka(records):
    return bytes([3 | (records - 1) << 3])


HALF_CLOSE = bytes([4])
CLOSE = bytes([5])
CHORES, KAFKA_UNREACHABLE, KAFKA_BACK, STOP_READING, FINISH, REFUSE_PRODUCE = (bytes([6 | i << 3]) for i in range(6))
FAIL_DELIVERIES, DELIVER = bytes([7 | 1 << 3]), bytes([7])


def again(times):
    """Op 7: the last write again, `times` times in one write."""
    return bytes([7 | (times + 1) << 3])


def produce(topic="t", message="hi", id_=None):
    doc = f'{{"topic":"{topic}","message":"{message}"' + (f',"id":{id_}' if id_ is not None else "") + "}"
    return text(doc)


def subscribe(topics, offset="earliest", id_=1, kind="subscribe"):
    names = ",".join(f'"{t}"' for t in topics)
    return text(f'{{"type":"{kind}","topics":[{names}],"offset":"{offset}","id":{id_}}}')


SEEDS = {
    # The plain path: upgrade, subscribe from the start, produce, ping, close.
    "upgrade_produce_close": config(0, 3) + write(upgrade("topics=t&offset=earliest"))
    + write(produce(id_=1)) + write(ping(b"p1")) + write(close(1000, b"bye")),
    # Frames right behind the request, in the same read.
    "frames_behind_request": config(0, 1) + write(upgrade() + produce() + ping() + close()),
    # The request head a few bytes at a time, then a frame byte by byte.
    "head_in_pieces": config() + pieces(upgrade(), 7) + pieces(produce("t", "x"), 1) + write(close(1001)),
    # Fragments with a ping between them, a binary message in three parts.
    "fragmented": config(0, 0, 0) + write(upgrade(protocol="kws.v1"))
    + write(text('{"topic":"t",', fin=False)) + write(ping(b"mid")) + write(cont('"message":"x","id":"f"}'))
    + write(binary(b"\x01", fin=False) + cont(b"t", fin=False) + cont(b"value"))
    + write(close(1000)),
    # Continuation without a message, then a new message inside one (1002).
    "bad_fragments": config() + write(upgrade()) + write(cont("x")) + write(text("a", fin=False) + text("b")),
    # A client that pings without reading gets one pong, not one per ping.
    "ping_flood": config(SNDBUF_4K, 50) + write(upgrade("topics=t&offset=earliest")) + stop_reading()
    + write(b"".join(ping(bytes([i])) for i in range(60))) + again(30) + go_on_reading() + write(close()),
    # Unmasked, reserved bits, a long length not in shortest form, an unknown opcode.
    "unmasked": config() + write(upgrade()) + write(text("{}", mask=None)),
    "reserved_bits": config() + write(upgrade()) + write(text("{}", rsv=4)),
    "not_shortest": config() + write(upgrade()) + write(b"\x81\xfe\x00\x05" + MASK + b"hello"),
    "unknown_opcode": config() + write(upgrade()) + write(frame(0x3, "x")),
    "text_not_utf8": config() + write(upgrade()) + write(text(b"\xc3\x28")),
    "close_bad_code": config() + write(upgrade()) + write(close(1005)) + write(close(999)),
    "close_one_byte": config() + write(upgrade()) + write(frame(0x8, b"\x03")),
    "close_no_code_then_more": config() + write(upgrade()) + write(frame(0x8, b"") + produce() + ping()),
    # A message over the limit (max_frame 512: the connection's limit is 2*512+64 KiB).
    "too_big": config(SMALL_MAX_FRAME) + write(upgrade(protocol="kws.v1"))
    + write(text('{"topic":"t","message":"' + "x" * 600 + '"}'))
    + write(frame(0x2, b"", length=1 << 20)[:14]),
    # A long message in many fragments, over the connection's limit (1009).
    "fragments_too_big": config(SMALL_MAX_FRAME) + write(upgrade()) + write(text("[", fin=False))
    + write(cont("x" * 3500, fin=False)) + again(25) + write(cont("]")),
    # HTTP answers: the demo page over a small socket buffer, read slowly, half-closed.
    "demo_page_slow": config(SNDBUF_4K) + stop_reading() + write(get("/")) + HALF_CLOSE + go_on_reading(),
    "routes": config() + write(get("/healthz")),
    "readyz": config() + write(get("/readyz")),
    "metrics": config(SNDBUF_4K) + write(get("/metrics")),
    "not_found": config() + write(get("/nope?x=1")),
    "post": config() + write(get("/", "POST")),
    "head_method": config() + write(get("/", "HEAD")),
    "ws_path_plain_get": config() + write(get("/v2/broker/")),
    "bad_head": config() + write(b"GET / HTTP/1.1\r\nHost localhost\r\n\r\n"),
    "tls_hello": config() + write(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
    "head_too_large": config() + write(b"GET / HTTP/1.1\r\nX: ") + write(b"a" * 1000) + again(20),
    "request_then_reset": config(SNDBUF_4K) + stop_reading() + write(get("/")) + CLOSE,
    # Upgrade refusals: version, missing key, unknown path, bad query, bad subprotocol, group limit.
    "upgrade_version": config() + write(upgrade().replace(b"Version: 13", b"Version: 8")),
    "upgrade_no_key": config() + write(upgrade().replace(b"Sec-WebSocket-Key", b"X-Key")),
    "upgrade_wrong_path": config() + write(upgrade(path="/v1/")),
    "upgrade_bad_topic": config() + write(upgrade("topics=bad%20name")),
    "upgrade_bad_protocol": config() + write(upgrade(protocol="mqtt")),
    "upgrade_group": config() + write(upgrade("topics=t&group.id=g", protocol="kws.v1")),
    # The kws protocol: subscribe, unsubscribe, a topic Kafka does not have, the topic limit.
    "kws_subscribe": config(FEW_TOPICS, 5) + write(upgrade("", protocol="kws.v1"))
    + write(subscribe(["t", "u", "missing"])) + kafka(3) + write(subscribe(["t"], kind="unsubscribe", id_=2))
    + write(close()),
    # Binary produce (kafka-binary) and binary messages out.
    "binary": config(0, 2) + write(upgrade("topics=t&offset=earliest", protocol="kafka-binary"))
    + write(binary(b"\x01tpayload")) + write(binary(b"\x05t")) + kafka(2) + write(close()),
    # A slow reader: small client buffer and socket buffer, the client stops
    # reading while Kafka keeps writing (drop-oldest or a slow-client close).
    "slow_client": config(SNDBUF_4K | SMALL_CLIENT_BUFFER, 200) + write(upgrade("topics=t&offset=earliest"))
    + stop_reading() + kafka(32) + kafka(32) + go_on_reading(),
    "slow_client_reset": config(SNDBUF_4K | SMALL_CLIENT_BUFFER, 200)
    + write(upgrade("topics=t&offset=earliest", protocol="kws.v1")) + stop_reading() + kafka(32) + CLOSE,
    # Reading paused on pending produce and requests, resumed by deliveries.
    "paused_produce": config(FEW_PENDING) + write(upgrade(protocol="kws.v1"))
    + write(b"".join(produce(id_=i) for i in range(6))) + FAIL_DELIVERIES + write(produce(id_=9))
    + DELIVER + write(subscribe(["t"]) + subscribe(["u"], id_=2)) + write(close()),
    "paused_then_reset": config(FEW_PENDING | SNDBUF_4K, 100) + stop_reading()
    + write(upgrade("topics=t&offset=earliest")) + write(b"".join(produce(id_=i) for i in range(6))) + CLOSE,
    "produce_refused": config() + write(upgrade(protocol="kws.v1")) + REFUSE_PRODUCE + write(produce(id_=1)),
    # The server's chores: pings, idle and stalled clients.
    "chores_ping": config(0, 0, PING_NOW) + write(upgrade()) + CHORES + write(pong()) + CHORES + write(close()),
    "chores_idle": config(IDLE_NOW) + write(upgrade()) + CHORES + write(close()),
    "chores_stalled": config(STALL_NOW | SNDBUF_4K, 200) + stop_reading() + write(upgrade("topics=t&offset=earliest"))
    + CHORES + go_on_reading(),
    # Kafka's state told to sessions; the server shutting down.
    "kafka_down": config(0, 0, KAFKA_DOWN) + write(upgrade(protocol="kws.v1")) + KAFKA_BACK + KAFKA_UNREACHABLE,
    "shutdown": config(0, 10) + write(upgrade("topics=t&offset=earliest")) + write(produce(id_=1))
    + STOP_READING + write(produce(id_=2)) + FINISH + write(close()),
    "finish_only": config(SNDBUF_4K, 100) + stop_reading() + write(upgrade("topics=t&offset=earliest")) + FINISH
    + go_on_reading(),
    # The client answers the server's 1001 at once, during a shutdown.
    "shutdown_answered": config() + write(upgrade(protocol="kws.v1")) + STOP_READING + FINISH + write(close(1001)),
    # The client half-closes in the middle of a frame, or right after the upgrade.
    "half_close_mid_frame": config() + write(upgrade()) + write(produce()[:5]) + HALF_CLOSE,
    "close_then_half_close": config() + write(upgrade()) + write(close()) + HALF_CLOSE,
    # The client acts while the server still has handlers to run.
    "reset_between_handlers": config(SNDBUF_4K, 50) + write_between(upgrade("topics=t&offset=earliest"))
    + write_between(produce(id_=1)) + CLOSE,
    "close_between_handlers": config(FEW_PENDING) + write(upgrade(protocol="kws.v1"))
    + write_between(b"".join(produce(id_=i) for i in range(4)) + close()) + HALF_CLOSE,
}


def decode(data):
    """The ops of an input, one a line (for reading what the fuzzer found)."""
    names = ["chores", "kafka unreachable", "kafka reachable", "stop_reading", "finish", "refuse produce"]
    lines = [f"config {data[:3].hex()}"]
    i = 3
    while i < len(data):
        b = data[i]
        kind, arg = b & 7, b >> 3
        i += 1
        if kind in (0, 1):
            if kind == 0:
                n, between = arg + 1, False
            else:
                n, between = ((arg & 15) << 8 | (data[i] if i < len(data) else 0)) + 1, bool(arg & 16)
                i += 1
            piece = data[i:i + n]
            i += n
            lines.append(f"write {len(piece)}{' (one handler after)' if between else ''}: {piece[:60]!r}"
                         + ("..." if len(piece) > 60 else ""))
        elif kind == 2:
            lines.append("client stops reading" if arg & 1 else "client reads")
        elif kind == 3:
            lines.append(f"kafka: {arg + 1} records")
        elif kind == 4:
            lines.append("client half-closes")
        elif kind == 5:
            lines.append("client closes")
        elif kind == 6:
            lines.append(f"server: {names[arg % 6]}")
        else:
            lines.append({0: "deliveries succeed", 1: "deliveries fail"}.get(arg, f"last write again x{arg - 1}"))
    return "\n".join(lines)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--decode":
        for path in sys.argv[2:]:
            with open(path, "rb") as f:
                print(f"== {path}\n{decode(f.read())}")
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "connection")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        assert len(data) <= 4096, f"{name}: {len(data)} bytes; scripts/test runs with -max_len=4096"
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
