"""kws serve's own RFC 6455 transport against the cases of the
Autobahn|Testsuite, groups 1 (framing), 2 (pings and pongs), 3 (reserved
bits) and 4 (opcodes). Each test names the cases it follows; their
descriptions are in github.com/crossbario/autobahn-testsuite,
autobahntestsuite/autobahntestsuite/case/caseN_N_N.py.

Autobahn talks to an echo server; kws serve is a bridge to Kafka. So here
"echo" is: a kws.v1 client subscribed to topic T produces to T, and Kafka
delivers the message back to it as an envelope, which proves the bridge took
the message intact however it was framed, fragmented or chopped up on the
wire. A text message is therefore a kws envelope (JSON) carrying the case's
payload as `message`; a binary one is kafka-websocket's
[topic length][topic][value]. Where a case expects "echo, then the
connection is failed", the client cannot get its echo (Kafka delivers it
after kws has sent its close frame, which nothing may follow): a second
subscriber, the witness, reads the message instead, and also shows that
what a client sent after a close never reached Kafka.
Autobahn ends most cases with a clean close; here that close also proves
that nothing else (a pong for an unsolicited pong, a reply to a frame after
the close) came before it.

Cases that test_serve_transport.py already runs are not repeated: 2.1, 2.2,
2.4, 2.5 (test_ping_gets_a_pong_with_the_same_payload), 2.9 (the same test's
unsolicited pong)."""

import json
import struct
import time

import kwstest
from test_serve import ServeTestCase  # one `kws broker` per class, `kws serve` per test
from test_serve_transport import BINARY, CLOSE, PING, PONG, STEP, TEXT, Peer, close_payload, frame

FRAME_WISE = 0  # a chop size: one write a frame
OCTET_WISE = 1
PAUSE = 0.001  # between frame-wise and octet-wise writes, so the server reads them apart


def envelope(topic, message, **fields):
    """A produce frame's text: a compact kws envelope, non-ASCII characters
    as raw UTF-8 (JSON escapes only U+0000-U+001F, quotes and backslashes)."""
    doc = {"topic": topic, "message": message}
    doc.update(fields)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def envelope_of_size(topic, size):
    """An envelope of exactly `size` bytes (Autobahn's payload lengths)."""
    return envelope(topic, "*" * (size - len(envelope(topic, ""))))


def binary_produce(topic, value):
    """kafka-websocket's binary produce: [1 byte: topic length][topic][value]."""
    return bytes([len(topic)]) + topic.encode() + value


def binary_of_size(topic, size):
    """A binary produce of exactly `size` bytes, its value Autobahn's 0xfe octets."""
    return binary_produce(topic, b"\xfe" * (size - 1 - len(topic)))


def value_of(payload, opcode=TEXT):
    """The value a produce frame's payload carries."""
    if opcode == BINARY:
        return payload[1 + payload[0]:]
    return json.loads(payload)["message"].encode()


def shorten(data, limit=200):
    return data if len(data) <= limit else data[:limit] + b"... (%d bytes)" % len(data)


class Client(Peer):
    """A kws.v1 client; subscribed to `topic`, it receives back what is
    produced there, its own messages included."""

    def __init__(self, address, topic=None):
        super().__init__(address)
        self.topic = topic
        self.upgrade("/v2/broker/?topics=" + topic if topic else "/v2/broker/")
        if topic:
            reply = self.json_reply()
            assert (reply.get("type"), reply.get("topic")) == ("subscribed", topic), reply

    def write(self, frames, chop=None):
        """Sends `frames` (bytes, or a list of frames) in one write (chop
        None), a write a frame (FRAME_WISE, a list) or in writes of `chop`
        bytes (Autobahn's chopsize), while the server reads: a server that
        fails the connection may close it (and reset) midway."""
        data = b"".join(frames) if isinstance(frames, list) else frames
        if chop == FRAME_WISE:
            writes = frames
        elif chop:
            writes = [data[at:at + chop] for at in range(0, len(data), chop)]
        else:
            writes = [data]
        for data in writes:
            if not self.send_until_refused(data):
                return
            if chop in (FRAME_WISE, OCTET_WISE):
                time.sleep(PAUSE)

    def delivered(self, timeout=STEP):
        """The next message Kafka delivers to this subscriber (an envelope);
        acks are passed over, any other frame fails."""
        while True:
            opcode, payload = self.next_frame(timeout)
            assert opcode == TEXT, "expected a message, got opcode %d: %r" % (opcode, shorten(payload))
            doc = json.loads(payload)
            if doc.get("type") == "ack":
                continue
            assert "type" not in doc and doc.get("topic") == self.topic, \
                "expected a message of %s, got %r" % (self.topic, shorten(payload))
            return doc

    def echo(self, timeout=STEP):
        """The value (bytes) of the next message delivered."""
        return kwstest.envelope_bytes(self.delivered(timeout), "message")


class Conformance(ServeTestCase):
    """Each test starts `kws serve` and makes a topic; after each, a new
    client must still be served."""

    def setUp(self):
        super().setUp()
        self.bg = self.serve()
        self.t = self.create(self.topic())

    def tearDown(self):
        c = self.client()
        c.send(frame(PING, b"still serving"))
        self.assertEqual(c.next_frame(), (PONG, b"still serving"), self.bg.describe())
        super().tearDown()

    def client(self, topic=None):
        c = Client(self.bg.address, topic)
        self.addCleanup(c.close)
        return c

    def produce(self, message):
        """A produce to this test's topic, on partition 0 so that a witness
        sees messages in the order they were sent."""
        return frame(TEXT, envelope(self.t, message, partition=0))

    def assert_echoed(self, c, frames, value, chop=None):
        """Sends `frames` as Client.write does; `value` comes back."""
        c.write(frames, chop)
        got = c.echo()
        self.assertEqual(len(got), len(value), "length of the message delivered")
        if got != value:
            at = next(i for i, (a, b) in enumerate(zip(got, value)) if a != b)
            self.fail("the message delivered differs from byte %d on: %r, sent %r" % (
                at, shorten(got[at:]), shorten(value[at:])))

    def assert_error_reply(self, c, code):
        reply = c.json_reply()
        self.assertEqual((reply.get("type"), reply.get("code")), ("error", code), reply)

    def assert_failed(self, c, code, reason_part=None):
        """The very next frame is the server's close with `code` (a pong, an
        ack or a message before it fails), then the server closes TCP."""
        opcode, payload = c.next_frame()
        self.assertEqual(opcode, CLOSE, "expected the server's close, got opcode %d: %r" % (opcode, shorten(payload)))
        self.assertGreaterEqual(len(payload), 2, "a close frame that fails the connection has a code")
        self.assertEqual(struct.unpack(">H", payload[:2])[0], code, payload[2:])
        if reason_part:
            self.assertIn(reason_part, payload[2:].decode())
        self.assertTrue(c.server_closed_tcp(), "the server must close TCP after its close frame")

    def close_cleanly(self, c, code=1000):
        """Autobahn's clean close: our close is echoed as the very next frame,
        then the server closes TCP."""
        c.send(frame(CLOSE, close_payload(code)))
        self.assertEqual(c.next_frame(), (CLOSE, close_payload(code)), "our close echoed, and nothing before it")
        self.assertTrue(c.server_closed_tcp(), "the server closes TCP after the closing handshake")

    def assert_nothing_reached_kafka(self, witness):
        """What a closed connection sent after its close was not produced:
        a marker produced now is the next message on partition 0."""
        witness.send(self.produce("marker"))
        self.assertEqual(witness.echo(), b"marker", "a message sent after the close reached Kafka")

    # ---- 1: framing ----------------------------------------------------------------

    def test_1_1_text_messages_of_each_length_encoding(self):
        """1.1.1-1.1.8; adapted: a text message is a kws envelope of the case's
        length, and the empty one (not JSON) is answered bad_json."""
        c = self.client(self.t)
        c.send(frame(TEXT, b""))  # 1.1.1
        self.assert_error_reply(c, "bad_json")
        for size in (125, 126, 127, 128, 65535, 65536):  # 1.1.2-1.1.7
            payload = envelope_of_size(self.t, size)
            self.assert_echoed(c, frame(TEXT, payload), value_of(payload))
        payload = envelope_of_size(self.t, 65536)  # 1.1.8: in chops of 997 octets
        self.assert_echoed(c, frame(TEXT, payload), value_of(payload), chop=997)
        self.close_cleanly(c)

    def test_1_2_binary_messages_of_each_length_encoding(self):
        """1.2.1-1.2.8; adapted: a binary message is a kafka-websocket produce
        of the case's length, and the empty one (no topic) is answered bad_frame."""
        c = self.client(self.t)
        c.send(frame(BINARY, b""))  # 1.2.1
        self.assert_error_reply(c, "bad_frame")
        for size in (125, 126, 127, 128, 65535, 65536):  # 1.2.2-1.2.7
            payload = binary_of_size(self.t, size)
            self.assert_echoed(c, frame(BINARY, payload), value_of(payload, BINARY))
        payload = binary_of_size(self.t, 65536)  # 1.2.8: in chops of 997 octets
        self.assert_echoed(c, frame(BINARY, payload), value_of(payload, BINARY), chop=997)
        self.close_cleanly(c)

    # ---- 2: pings and pongs -----------------------------------------------------------

    def test_2_3_2_6_pings_with_binary_payloads(self):
        """2.3, 2.6 as Autobahn has them (2.1, 2.2, 2.4, 2.5: test_serve_transport)."""
        c = self.client()
        c.send(frame(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))  # 2.3
        self.assertEqual(c.next_frame(), (PONG, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))
        c.write(frame(PING, b"\xfe" * 125), OCTET_WISE)  # 2.6
        self.assertEqual(c.next_frame(), (PONG, b"\xfe" * 125))
        self.close_cleanly(c)

    def test_2_7_2_8_unsolicited_pongs_get_nothing(self):
        """2.7, 2.8 as Autobahn has them (2.9: test_serve_transport); the clean
        close is the first frame back."""
        c = self.client()
        c.send(frame(PONG))
        c.send(frame(PONG, b"unsolicited pong payload"))
        self.close_cleanly(c)

    def test_2_10_2_11_ten_pings(self):
        """2.10, 2.11; adapted: Autobahn wants ten pongs, RFC 6455 5.5.3 lets a
        server answer only the latest of pings not yet answered (kws does): the
        pongs are some of the pings in order, the last one among them."""
        for chop in (None, OCTET_WISE):  # 2.10, 2.11
            c = self.client()
            pings = [("payload-%d" % i).encode() for i in range(10)]
            c.write([frame(PING, p) for p in pings], chop)
            c.send(frame(CLOSE, close_payload(1000)))
            pongs = []
            while True:
                opcode, payload = c.next_frame()
                if opcode == CLOSE:
                    break
                self.assertEqual(opcode, PONG, payload)
                pongs.append(payload)
            self.assertEqual(payload, close_payload(1000))
            self.assertTrue(pongs and pongs[-1] == pings[-1], pongs)
            self.assertEqual(pongs, [p for p in pings if p in pongs], "pongs in the order of their pings")
            self.assertTrue(c.server_closed_tcp())

    # ---- 3: reserved bits -----------------------------------------------------------

    def test_3_reserved_bits_fail_the_connection(self):
        """3.1-3.7; adapted: the message before the bad frame (3.2-3.4) is read
        back by a witness, since kws acks after Kafka and its close goes first."""
        witness = self.client(self.t)
        cases = [  # (case, frames, chop size): Autobahn's RSV = n is the 3-bit field, n << 4
            ("3.1", [frame(TEXT, "Hello, world!", rsv=1 << 4)], None),
            ("3.2", [self.produce("Hello, world! 3.2"), frame(TEXT, "Hello, world!", rsv=2 << 4), frame(PING)], None),
            ("3.3", [self.produce("Hello, world! 3.3"), frame(TEXT, "Hello, world!", rsv=3 << 4), frame(PING)],
             FRAME_WISE),
            ("3.4", [self.produce("Hello, world! 3.4"), frame(TEXT, "Hello, world!", rsv=4 << 4), frame(PING)],
             OCTET_WISE),
            ("3.5", [frame(BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5 << 4)], None),
            ("3.6", [frame(PING, "Hello, world!", rsv=6 << 4)], None),
            ("3.7", [frame(CLOSE, rsv=7 << 4)], None),
        ]
        for case, frames, chop in cases:
            with self.subTest(case):
                c = self.client()
                c.write(frames, chop)
                self.assert_failed(c, 1002, "reserved bits")
                if case in ("3.2", "3.3", "3.4"):
                    self.assertEqual(witness.echo(), ("Hello, world! " + case).encode())
        self.assert_nothing_reached_kafka(witness)

    # ---- 4: opcodes -------------------------------------------------------------------

    def test_4_reserved_opcodes_fail_the_connection(self):
        """4.1.1-4.1.5, 4.2.1-4.2.5; adapted: the message before the bad frame
        (4.1.3-4.1.5, 4.2.3-4.2.5) is read back by a witness."""
        witness = self.client(self.t)
        for group, opcodes in (("4.1", (3, 4, 5, 6, 7)), ("4.2", (11, 12, 13, 14, 15))):
            for n, opcode in enumerate(opcodes, 1):
                case = "%s.%d" % (group, n)
                with self.subTest(case):
                    c = self.client()
                    bad = frame(opcode, b"reserved opcode payload" if n in (2, 4, 5) else b"")
                    if n <= 2:
                        c.send(bad)
                    else:
                        c.send(self.produce("Hello, world! " + case) + bad + frame(PING))
                    self.assert_failed(c, 1002, "opcode %d" % opcode)
                    if n > 2:
                        self.assertEqual(witness.echo(), ("Hello, world! " + case).encode())
        self.assert_nothing_reached_kafka(witness)


if __name__ == "__main__":
    kwstest.main()
