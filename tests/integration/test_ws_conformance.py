"""kws serve's own RFC 6455 transport against the cases of the
Autobahn|Testsuite, groups 1 (framing), 2 (pings and pongs), 3 (reserved
bits), 4 (opcodes), 5 (fragmentation), 6 (UTF-8), 7 (closing) and 9
(limits, scaled down). Each test names the cases it follows; their
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
unsolicited pong), 5.7 (test_fragmented_produce_with_a_ping_between_reaches_kafka),
5.9 (the orphan continuation in test_unmasked_frame_gets_1002_and_the_socket_closes),
7.1.3, 7.3.1, 7.3.4 (test_client_close_is_echoed_and_the_server_closes_tcp),
9.9.1 (a message that grows past the limit fragment by fragment:
test_messages_over_the_limit_get_1009)."""

import json
import socket
import struct
import time

import kwstest
from test_serve import ServeTestCase  # one `kws broker` per class, `kws serve` per test
from test_serve_transport import (BINARY, CLOSE, CONT, PING, PONG, STEP, TEXT, Peer, close_payload, frame,
                                  frame_header)

# --max-frame's default (core/settings.cpp, serve.max_frame): the largest
# message kws takes. Up to twice that plus 64 KiB a message is read and
# refused with too_large; beyond, the connection is closed with 1009.
MAX_FRAME = 1 << 20
MESSAGE_LIMIT = 2 * MAX_FRAME + 65536
# librdkafka's message.max.bytes defaults to 1,000,000, under --max-frame's
# 1 MiB: raised here so that the bridge's own limit is what 9.x meets.
KAFKA_MAX = 2 * MAX_FRAME

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


def fragmented(opcode, payload, size):
    """One message as frames of `size` payload bytes (the last may be shorter)."""
    pieces = [payload[at:at + size] for at in range(0, len(payload), size)] or [b""]
    last = len(pieces) - 1
    return b"".join(frame(opcode if i == 0 else CONT, piece, fin=i == last) for i, piece in enumerate(pieces))


def split(payload, parts):
    """`payload` cut into `parts` pieces of about the same size."""
    step = -(-len(payload) // parts)
    return [payload[at:at + step] for at in range(0, step * parts, step)]


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
    """Each test starts `kws serve` with its default limits (Kafka's raised
    above them) and a topic; after each, a new client must still be served."""

    def setUp(self):
        super().setUp()
        # Group 9 pushes MiBs through one session: the per-session produce
        # rates (a gateway limit, tested in test_serve_limits) stay out of it.
        self.bg = self.serve("-X", "message.max.bytes=%d" % KAFKA_MAX, "--produce-rate", "0",
                             "--produce-bytes-rate", "0")
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

    # ---- 5: fragmentation ---------------------------------------------------------------

    def test_5_1_5_2_fragmented_control_frames_fail_the_connection(self):
        """5.1, 5.2 as Autobahn has them."""
        for case, opcode in (("5.1", PING), ("5.2", PONG)):
            with self.subTest(case):
                c = self.client()
                c.send(frame(opcode, "fragment1", fin=False) + frame(CONT, "fragment2"))
                self.assert_failed(c, 1002, "control frames must be whole")

    def test_5_3_to_5_8_fragmented_messages_are_echoed(self):
        """5.3-5.6, 5.8 (5.7: test_serve_transport); adapted: the message is an
        envelope in two fragments, chopped as the case says."""
        c = self.client(self.t)
        for case, ping, chop in (("5.3", False, None), ("5.4", False, FRAME_WISE), ("5.5", False, OCTET_WISE),
                                 ("5.6", True, None), ("5.8", True, OCTET_WISE)):
            with self.subTest(case):
                payload = envelope(self.t, "fragmented message " + case)
                first, second = split(payload, 2)
                frames = [frame(TEXT, first, fin=False)]
                if ping:
                    frames.append(frame(PING, "ping payload"))
                frames.append(frame(CONT, second))
                c.write(frames, chop)
                if ping:
                    self.assertEqual(c.next_frame(), (PONG, b"ping payload"), "the pong comes before the echo")
                self.assertEqual(c.echo(), value_of(payload))
        self.close_cleanly(c)

    def test_5_10_to_5_18_broken_fragment_sequences_fail_the_connection(self):
        """5.10-5.18 (5.9: test_serve_transport); adapted: the whole message of
        5.15 is read back by a witness."""
        witness = self.client(self.t)
        text = frame(TEXT, "fragment2")
        cases = [  # (case, frames, chop size)
            ("5.10", [frame(CONT, "fragment1"), text], FRAME_WISE),
            ("5.11", [frame(CONT, "fragment1"), text], OCTET_WISE),
            ("5.12", [frame(CONT, "fragment1", fin=False), text], None),
            ("5.13", [frame(CONT, "fragment1", fin=False), text], FRAME_WISE),
            ("5.14", [frame(CONT, "fragment1", fin=False), text], OCTET_WISE),
            ("5.16", [frame(CONT, "fragment1", fin=False), frame(TEXT, "fragment2", fin=False),
                      frame(CONT, "fragment3")] * 2, None),
            ("5.17", [frame(CONT, "fragment1"), frame(TEXT, "fragment2", fin=False), frame(CONT, "fragment3")] * 2,
             None),
            ("5.18", [frame(TEXT, "fragment1", fin=False), frame(TEXT, "fragment2")], None),
        ]
        whole = envelope(self.t, "fragment1fragment2 5.15", partition=0)
        first, second = split(whole, 2)
        cases.insert(5, ("5.15", [frame(TEXT, first, fin=False), frame(CONT, second), frame(CONT, "fragment3", fin=False),
                                  frame(TEXT, "fragment4")], None))
        for case, frames, chop in cases:
            with self.subTest(case):
                c = self.client()
                c.write(frames, chop)
                self.assert_failed(c, 1002, "new message inside" if case == "5.18" else "continuation without")
        self.assertEqual(witness.echo(), b"fragment1fragment2 5.15")
        self.assert_nothing_reached_kafka(witness)

    def test_5_19_5_20_pings_answered_in_the_middle_of_a_message(self):
        """5.19, 5.20; adapted: the message is an envelope in five fragments, and
        the wait between its parts 0.2 s instead of 1 s."""
        c = self.client(self.t)
        for case in ("5.19", "5.20"):
            with self.subTest(case):
                payload = envelope(self.t, "five fragments " + case)
                pieces = split(payload, 5)
                part1 = [frame(TEXT, pieces[0], fin=False), frame(CONT, pieces[1], fin=False), frame(PING, "pongme 1!")]
                part2 = [frame(CONT, pieces[2], fin=False), frame(CONT, pieces[3], fin=False), frame(PING, "pongme 2!"),
                         frame(CONT, pieces[4])]
                for part in (part1, part2):
                    c.write(part, FRAME_WISE if case == "5.20" else None)
                    if part is part1:
                        # Answered at once, with the message still open.
                        self.assertEqual(c.next_frame(), (PONG, b"pongme 1!"))
                        time.sleep(0.2)
                self.assertEqual(c.next_frame(), (PONG, b"pongme 2!"))
                self.assertEqual(c.echo(), value_of(payload))
        self.close_cleanly(c)

    # ---- 6: UTF-8 ---------------------------------------------------------------------------

    def test_6_1_empty_fragments(self):
        """6.1.1-6.1.3; adapted: an empty text message (not JSON) is answered
        bad_json, once for three empty fragments; 6.1.3's middle fragment is an envelope."""
        c = self.client(self.t)
        c.send(frame(TEXT, b""))  # 6.1.1
        self.assert_error_reply(c, "bad_json")
        c.send(frame(TEXT, b"", fin=False) + frame(CONT, b"", fin=False) + frame(CONT, b""))  # 6.1.2
        self.assert_error_reply(c, "bad_json")
        payload = envelope(self.t, "middle frame payload")  # 6.1.3
        self.assert_echoed(c, frame(TEXT, b"", fin=False) + frame(CONT, payload, fin=False) + frame(CONT, b""),
                           value_of(payload))
        self.close_cleanly(c)

    def test_6_2_valid_utf8_whole_and_in_fragments(self):
        """6.2.1-6.2.4; adapted: the text is an envelope's message, and the
        fragments split the whole envelope."""
        c = self.client(self.t)
        hello = envelope(self.t, "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!")
        self.assert_echoed(c, frame(TEXT, hello), value_of(hello))  # 6.2.1
        at = hello.index("\u00f6".encode())  # 6.2.2: two fragments, cut on a code point boundary
        self.assert_echoed(c, frame(TEXT, hello[:at], fin=False) + frame(CONT, hello[at:]), value_of(hello))
        self.assert_echoed(c, fragmented(TEXT, hello, 1), value_of(hello))  # 6.2.3: one octet a fragment
        kosme = envelope(self.t, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5".decode())
        self.assert_echoed(c, fragmented(TEXT, kosme, 1), value_of(kosme))  # 6.2.4
        self.close_cleanly(c)

    def test_6_3_invalid_utf8_whole_and_in_fragments(self):
        """6.3.1, 6.3.2 as Autobahn has them."""
        payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"
        for case, data in (("6.3.1", frame(TEXT, payload)), ("6.3.2", fragmented(TEXT, payload, 1))):
            with self.subTest(case):
                c = self.client()
                c.send(data)
                self.assert_failed(c, 1007, "UTF-8")

    def test_6_4_invalid_utf8_in_the_middle_of_a_message(self):
        """6.4.1-6.4.4; adapted: waits of 0.2 s instead of 1 s. kws checks
        UTF-8 once a message is whole, not as it arrives: Autobahn's "non-strict"
        (1007 after the last part, not the second); fail-fast would pass too."""
        part1 = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
        part2 = b"\xf4\x90\x80\x80"  # 0x110000: over U+10FFFF
        part3 = b"\x65\x64\x69\x74\x65\x64"
        whole = part1 + part2 + part3
        cases = [  # (case, the three parts as frames (pings between) or chops of one frame)
            ("6.4.1", [frame(TEXT, part1, fin=False), frame(CONT, part2, fin=False), frame(CONT, part3)], True),
            ("6.4.2", [frame(TEXT, whole[:12], fin=False), frame(CONT, whole[12:13], fin=False),
                       frame(CONT, whole[13:])], True),
            ("6.4.3", None, False),
            ("6.4.4", None, False),
        ]
        for case, frames, framed in cases:
            with self.subTest(case):
                if not framed:  # one frame written in three chops, cut as 6.4.1 and 6.4.2 cut their frames
                    one = frame(TEXT, whole)
                    head = len(one) - len(whole)
                    cut1, cut2 = (len(part1), len(part1) + len(part2)) if case == "6.4.3" else (12, 13)
                    frames = [one[:head + cut1], one[head + cut1:head + cut2], one[head + cut2:]]
                c = self.client()
                for n, part in enumerate(frames[:2], 1):
                    c.send(part)
                    if framed:  # a ping after each frame: its pong shows the frame was taken
                        c.send(frame(PING, str(n)))
                        opcode, payload = c.next_frame()
                    else:  # in the middle of a frame, only the close of a fail-fast server may come
                        try:
                            opcode, payload = c.next_frame(timeout=0.2)
                        except socket.timeout:
                            continue
                    if n == 2 and opcode == CLOSE:  # failed fast
                        self.assertEqual(payload[:2], close_payload(1007), payload)
                        self.assertTrue(c.server_closed_tcp())
                        break
                    self.assertEqual((opcode, payload), (PONG, str(n).encode()), "part %d is valid so far" % n)
                else:
                    c.send(frames[2])
                    self.assert_failed(c, 1007, "UTF-8")

    def test_6_5_to_6_23_utf8_sequences(self):
        """6.5.x-6.23.x (Markus Kuhn's UTF-8 test, as case6_x_x.py has it);
        adapted: a valid sequence travels as an envelope's message (JSON
        escapes U+0000-U+001F, the rest stays raw UTF-8) and is read back;
        an invalid one is sent as Autobahn sends it and gets 1007."""
        valid = [(case, payload) for case, ok, payload in utf8_cases() if ok]
        invalid = [(case, payload) for case, ok, payload in utf8_cases() if not ok]
        self.assertEqual((len(valid), len(invalid)), (63, 69), "Autobahn's case counts")
        c = self.client(self.t)
        c.send(b"".join(frame(TEXT, envelope(self.t, p.decode(), key=case, partition=0)) for case, p in valid))
        got = []
        for _ in valid:
            env = c.delivered()
            got.append((env["key"], kwstest.envelope_bytes(env, "message")))
        self.assertEqual(got, valid)
        self.close_cleanly(c)
        for case, payload in invalid:
            with self.subTest(case, payload=payload):
                c = self.client()
                c.send(frame(TEXT, payload))
                self.assert_failed(c, 1007, "UTF-8")

    # ---- 7: closing ---------------------------------------------------------------------

    def test_7_1_frames_around_the_close(self):
        """7.1.1, 7.1.2, 7.1.4-7.1.6 (7.1.3: test_serve_transport); adapted: a
        witness reads what reached Kafka (the messages before the close) and
        what did not (those after it); 7.1.6's message is 256 KiB."""
        witness = self.client(self.t)
        c = self.client()  # 7.1.1: a message, then the close
        c.send(self.produce("7.1.1") + frame(CLOSE, close_payload(1000)))
        self.assertEqual(c.next_frame(), (CLOSE, close_payload(1000)))
        self.assertTrue(c.server_closed_tcp())
        self.assertEqual(witness.echo(), b"7.1.1")
        c = self.client()  # 7.1.2: two closes; the second is ignored
        c.send(frame(CLOSE, close_payload(1000)) + frame(CLOSE, close_payload(1000)))
        self.assertEqual(c.next_frame(), (CLOSE, close_payload(1000)))
        self.assertTrue(c.server_closed_tcp(), "nothing after the close, no second close")
        c = self.client()  # 7.1.4: a message after the close is ignored
        c.send(frame(CLOSE, close_payload(1000)) + self.produce("7.1.4 after the close"))
        self.assertEqual(c.next_frame(), (CLOSE, close_payload(1000)))
        self.assertTrue(c.server_closed_tcp())
        self.assert_nothing_reached_kafka(witness)
        c = self.client()  # 7.1.5: the close between two fragments; the message is not finished
        first, second = split(envelope(self.t, "7.1.5 around the close", partition=0), 2)
        c.send(frame(TEXT, first, fin=False) + frame(CLOSE, close_payload(1000)) + frame(CONT, second))
        self.assertEqual(c.next_frame(), (CLOSE, close_payload(1000)))
        self.assertTrue(c.server_closed_tcp())
        self.assert_nothing_reached_kafka(witness)
        c = self.client()  # 7.1.6: 256 KiB and a small message, the close, a ping: no pong
        big = "BAsd7&jh23" * (256 * 1024 // 10)
        c.send(self.produce(big) + self.produce("Hello World!") + frame(CLOSE, close_payload(1000)) + frame(PING))
        self.assertEqual(c.next_frame(), (CLOSE, close_payload(1000)), "the close echoed, no pong")
        self.assertTrue(c.server_closed_tcp())
        self.assertEqual(witness.echo(), big.encode())
        self.assertEqual(witness.echo(), b"Hello World!")

    def test_7_1_mirrored_frames_after_the_servers_close(self):
        """7.1.3, 7.1.4 the other way round, kws's own: Autobahn's client closes
        first, and kws then closes TCP at once; here kws closes first (its idle
        timeout) and the client sends a message and a ping before it answers.
        Neither is answered nor produced (RFC 6455 5.5.1), and the client's
        close ends the handshake."""
        witness = self.client(self.t)
        bg = self.serve("--idle-timeout", "1", "--ping-interval", "60")
        c = Client(bg.address)
        self.addCleanup(c.close)
        self.assertEqual(c.next_frame(), (CLOSE, close_payload(1000, b"idle timeout")))
        c.send(self.produce("after the server's close") + frame(PING, b"after the server's close"))
        c.send(frame(CLOSE, close_payload(1000)))
        self.assertTrue(c.server_closed_tcp(), "nothing after the server's close: no pong, no reply")
        self.assert_nothing_reached_kafka(witness)

    def test_7_3_close_payloads(self):
        """7.3.2, 7.3.3, 7.3.5, 7.3.6 (7.3.1, 7.3.4: test_serve_transport);
        kws echoes the code without the reason."""
        c = self.client()  # 7.3.2: one byte is not a code
        c.send(frame(CLOSE, b"a"))
        self.assert_failed(c, 1002, "one-byte")
        self.close_cleanly(self.client())  # 7.3.3: a code and no reason
        c = self.client()  # 7.3.5: a reason of 123 bytes, the most that fits
        c.send(frame(CLOSE, close_payload(1000, b"*" * 123)))
        self.assertEqual(c.next_frame(), (CLOSE, close_payload(1000)))
        self.assertTrue(c.server_closed_tcp())
        c = self.client()  # 7.3.6: 124 bytes make a control frame of 126
        c.send(frame(CLOSE, close_payload(1000, b"*" * 124)))
        self.assert_failed(c, 1002, "at most 125 bytes")

    def test_7_5_1_close_reason_not_utf8_gets_1007(self):
        """7.5.1; Autobahn takes 1002 or 1007, kws says 1007."""
        c = self.client()
        c.send(frame(CLOSE, close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")))
        self.assert_failed(c, 1007, "not UTF-8")

    def test_7_7_valid_close_codes_are_echoed(self):
        """7.7.1-7.7.13, plus 1012-1014, which IANA registered after RFC 6455
        (kws closes with 1013 itself)."""
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
                     1012, 1013, 1014):
            with self.subTest(code=code):
                self.close_cleanly(self.client(), code)

    def test_7_9_7_13_invalid_close_codes_get_1002(self):
        """7.9.1-7.9.9, 1015 (never sent on the wire, RFC 6455 7.4.1) and
        7.13.1-7.13.2, whose outcome the RFC leaves open: kws says 1002."""
        for code in (0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 1015, 5000, 65535):
            with self.subTest(code=code):
                c = self.client()
                c.send(frame(CLOSE, close_payload(code)))
                self.assert_failed(c, 1002, "invalid close code %d" % code)

    # ---- 9: limits ------------------------------------------------------------------------------

    def test_9_1_to_9_6_messages_up_to_the_limit_whole_fragmented_and_chopped(self):
        """9.1.1-9.1.3, 9.2.1-9.2.3 whole; 9.3.1-9.3.7, 9.4.1-9.4.7 in fragments
        of 64 B to 256 KiB; 9.5.1-9.5.6, 9.6.1-9.6.6 in chops of 64 B to 2 KiB.
        Adapted: 1 MiB (--max-frame) is kws's largest message, so it stands
        for Autobahn's 4 MiB in 9.3 and 9.4; 9.x.7-9.x.9 at 4 MiB and more:
        test_9_over_the_limit."""
        c = self.client(self.t)
        for opcode, make, group in ((TEXT, envelope_of_size, (1, 3, 5)), (BINARY, binary_of_size, (2, 4, 6))):
            for n, size in enumerate((64 << 10, 256 << 10, MAX_FRAME), 1):
                with self.subTest("9.%d.%d" % (group[0], n)):
                    payload = make(self.t, size)
                    self.assert_echoed(c, frame(opcode, payload), value_of(payload, opcode))
            payload = make(self.t, MAX_FRAME)
            for n, fragment in enumerate((64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10), 1):
                with self.subTest("9.%d.%d" % (group[1], n)):
                    self.assert_echoed(c, fragmented(opcode, payload, fragment), value_of(payload, opcode))
            for n, chop in enumerate((64, 128, 256, 512, 1024, 2048), 1):
                with self.subTest("9.%d.%d" % (group[2], n)):
                    self.assert_echoed(c, frame(opcode, payload), value_of(payload, opcode), chop=chop)
        self.close_cleanly(c)

    def test_9_over_the_limit(self):
        """9.1.4-9.1.6, 9.2.4-9.2.6 (4, 8, 16 MiB) and 9.3.8-9.4.9; adapted: over
        kws's limits, so refused: a message over --max-frame (here the smallest
        such, in whole and in fragments) gets too_large and the session goes on;
        one over twice that plus 64 KiB gets 1009, decided from the header."""
        c = self.client(self.t)
        for opcode, make in ((TEXT, envelope_of_size), (BINARY, binary_of_size)):
            payload = make(self.t, MAX_FRAME + 1)
            c.send(frame(opcode, payload))
            self.assert_error_reply(c, "too_large")
            c.send(fragmented(opcode, payload, 64 << 10))
            self.assert_error_reply(c, "too_large")
        payload = envelope_of_size(self.t, MAX_FRAME)
        self.assert_echoed(c, frame(TEXT, payload), value_of(payload))
        self.close_cleanly(c)
        for size in (4 << 20, 8 << 20, 16 << 20):
            for opcode in (TEXT, BINARY):
                with self.subTest(size=size, opcode=opcode):
                    c = self.client()
                    c.send(frame_header(opcode, size))
                    self.assert_failed(c, 1009, "message of more than %d bytes" % MESSAGE_LIMIT)
        c = self.client()  # 9.3.8: 4 MiB in fragments of 1 MiB: the third passes the limit
        c.send(frame(TEXT, b"a" * MAX_FRAME, fin=False) + frame(CONT, b"b" * MAX_FRAME, fin=False) +
               frame_header(CONT, MAX_FRAME))
        self.assert_failed(c, 1009)

    def test_9_7_9_8_round_trips(self):
        """9.7.1-9.7.6, 9.8.1-9.8.6; adapted: 20 messages of each size instead
        of 1,000 (each round trip goes through Kafka), one at a time as in
        Autobahn; the empty text message is answered bad_json."""
        c = self.client(self.t)
        count = 20
        for opcode, group in ((TEXT, "9.7"), (BINARY, "9.8")):
            for n, size in enumerate((0, 16, 64, 256, 1024, 4096), 1):
                with self.subTest("%s.%d" % (group, n)):
                    start = time.monotonic()
                    for i in range(count):
                        if opcode == TEXT and size == 0:
                            c.send(frame(TEXT, b""))
                            self.assert_error_reply(c, "bad_json")
                            continue
                        value = (b"*" if opcode == TEXT else b"\xfe") * size
                        if opcode == TEXT:
                            c.send(frame(TEXT, envelope(self.t, value.decode())))
                        else:
                            c.send(frame(BINARY, binary_produce(self.t, value)))
                        self.assertEqual(c.echo(), value)
                    elapsed = time.monotonic() - start
                    self.assertLess(elapsed, 30, "%d round trips took %.1f s" % (count, elapsed))
        self.close_cleanly(c)


def utf8_cases():
    """[(case id, valid, payload)] of Autobahn's case6_x_x.py, numbered as
    there: 6.5 onwards, one number a category, in its order."""
    kosme = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
    incomplete = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
                  b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    noncharacters = [b"\xef\xbf\xbe", b"\xef\xbf\xbf"]
    for z1 in (0xf0, 0xf1, 0xf2, 0xf3, 0xf4):
        for z2 in (0x8f, 0x9f, 0xaf, 0xbf):
            if z1 == 0xf4 and z2 != 0x8f:
                continue  # over U+10FFFF
            for z3 in (0xbe, 0xbf):
                if not (z1 == 0xf0 and z2 == 0x8f):  # overlong
                    noncharacters.append(bytes([z1, z2, 0xbf, z3]))
    surrogates = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf", b"\xed\xb0\x80",
                  b"\xed\xbe\x80", b"\xed\xbf\xbf"]
    high, low = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf"], [b"\xed\xb0\x80", b"\xed\xbf\xbf"]
    categories = [  # (valid or None: whatever Python's strict decoder says, payloads)
        (True, [b"hello\x24world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld", b"hello\xf0\xa4\xad\xa2world",
                kosme]),
        (None, [kosme[:i] for i in range(1, len(kosme) + 1)]),
        (True, [b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"]),
        (False, [b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"]),
        (True, [b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"]),
        (False, [b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf"]),
        (None, [b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80"]),
        (False, [b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf", b"\x80\xbf\x80\xbf\x80",
                 b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xbf))]),
        (False, [b"".join(bytes([i, 0x20]) for i in range(a, b))
                 for a, b in ((0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd))]),
        (False, incomplete),
        (False, [b"".join(incomplete)]),
        (False, [b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"]),
        (False, [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x80\x80\x80\xaf",
                 b"\xfc\x80\x80\x80\x80\xaf"]),
        (False, [b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf", b"\xf8\x87\xbf\xbf\xbf",
                 b"\xfc\x83\xbf\xbf\xbf\xbf"]),
        (False, [b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x80\x80\x80\x80",
                 b"\xfc\x80\x80\x80\x80\x80"]),
        (False, surrogates),
        (False, [h + l for h in high for l in low]),
        (True, noncharacters),
        (True, [b"\xef\xbf\xb9", b"\xef\xbf\xba", b"\xef\xbf\xbb", b"\xef\xbf\xbc", b"\xef\xbf\xbd", b"\xef\xbf\xbe",
                b"\xef\xbf\xbf"]),
    ]
    cases = []
    for i, (valid, payloads) in enumerate(categories, 5):
        for j, payload in enumerate(payloads, 1):
            try:
                payload.decode("utf-8")
                decodes = True
            except UnicodeDecodeError:
                decodes = False
            # Python's decoder is a second opinion on the table (or its only one, for None).
            assert valid is None or valid == decodes, "6.%d.%d" % (i, j)
            cases.append(("6.%d.%d" % (i, j), decodes, payload))
    return cases


if __name__ == "__main__":
    kwstest.main()
