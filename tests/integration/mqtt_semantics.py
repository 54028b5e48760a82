"""MQTT semantics that any conforming broker shows, as a unittest mixin.

`MqttSemantics` holds tests of MQTT 3.1.1 and MQTT 5 behaviour that the
specifications mandate (OASIS MQTT 3.1.1 and MQTT 5.0), written against a
target, not against kws: test_mqtt_reference.py runs them against Debian's
mosquitto so that the tests' own expectations are checked by a reference
broker, and kws's tests run the same mixin against kws over TCP and over
WebSocket. A test that only passes against kws tests kws's quirks.

The concrete class (also a unittest.TestCase) provides:
- mqtt_target(): dict(host=, port=, transport="tcp" or "websockets",
  path="/mqtt" for websockets);
- mqtt_max_packet(): the largest packet (in bytes, fixed header included)
  the broker accepts; the oversize tests send more than that;
- optionally mqtt_auth(): (username, password) or None;
- optionally mqtt_v311_qos2_target(): where an MQTT 3.1.1 client may publish
  at QoS 2 (default: mqtt_target()). MQTT 3.1.1 gives a server no way to
  refuse QoS 2, so a conforming server completes the exchange; mosquitto with
  `max_qos 1` disconnects such a client instead, so its reference class
  points this at a listener without max_qos.

Two kinds of clients:
- Paho (python3-paho-mqtt), an independent implementation, for everything a
  well-behaved client does (PahoClient below);
- raw sockets speaking MQTT bytes written here (RawMqtt), for what Paho
  cannot or will not do: malformed packets, dropped sockets, silence past
  the keep-alive. Over "websockets" the raw client wraps its bytes in
  WebSocket binary frames (subprotocol "mqtt").

Rules, as in kwstest.py: every wait is bounded and a failure says what it
waited for; "not delivered" is established with a marker published after the
messages that must not arrive (the subscriber waits for the marker, then
checks it saw nothing else), never by sleeping. Every test uses its own topic
prefix (a uuid), so tests do not see each other's messages.

The marker rests on an assumption the spec guarantees only per topic (4.6:
order per topic and QoS): that a server which acknowledged (PUBACK/PUBCOMP)
message A before B was published delivers A before B to a subscriber of
both, across topics. mosquitto does. A server that maps MQTT topics onto
Kafka partitions may not; a test that fails there with an unwanted message
arriving after its marker points at that, not at a wrong delivery.

Optional hooks for targets that differ where the spec leaves room:
mqtt_keepalive_deadline() (default 4 s: 1.5 x the 1 s keep-alive, plus
slack).
"""

import base64
import os
import socket
import struct
import threading
import time
import uuid

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
except ImportError:  # the test file's main() skips (exit 77) when paho is missing
    mqtt = None

# An upper bound for one expected event (a CONNACK, a delivery); generous,
# since what it guards against is a hang, not slowness.
WAIT = 10

V311 = 4
V5 = 5

# Packet types (first byte >> 4).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
                8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
                14: "DISCONNECT", 15: "AUTH"}


# --- MQTT bytes ------------------------------------------------------------

def varint(n):
    """MQTT's Variable Byte Integer (the remaining length's encoding)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(s):
    data = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("!H", len(data)) + data


def packet(first_byte, body):
    """A whole control packet: fixed header (first byte, remaining length) and body."""
    return bytes([first_byte]) + varint(len(body)) + body


def props(data=b""):
    """An MQTT 5 property block (length, then the properties)."""
    return varint(len(data)) + data


def connect_packet(client_id, version=V311, keepalive=60, clean=True, will=None, auth=None):
    """CONNECT; will = (topic, payload bytes, qos, retain) or None; auth = (user, password) or None."""
    flags = 0x02 if clean else 0
    if will is not None:
        flags |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    if auth is not None:
        flags |= 0x80 | (0x40 if auth[1] is not None else 0)
    body = mqtt_string("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == V5:
        body += props()
    body += mqtt_string(client_id)
    if will is not None:
        if version == V5:
            body += props()
        body += mqtt_string(will[0]) + mqtt_string(will[1])
    if auth is not None:
        body += mqtt_string(auth[0])
        if auth[1] is not None:
            body += mqtt_string(auth[1])
    return packet(0x10, body)


def publish_packet(topic, payload, version=V311, qos=0, packet_id=1, retain=False):
    body = mqtt_string(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == V5:
        body += props()
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body + payload)


def subscribe_packet(topic_filter, version=V311, qos=0, packet_id=1, first_byte=0x82):
    body = struct.pack("!H", packet_id)
    if version == V5:
        body += props()
    return packet(first_byte, body + mqtt_string(topic_filter) + bytes([qos]))


def ack_packet(kind, packet_id):
    """PUBACK/PUBREC/PUBREL/PUBCOMP with reason Success (PUBREL's flags are 0b0010)."""
    return packet((kind << 4) | (0x02 if kind == PUBREL else 0), struct.pack("!H", packet_id))


PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"  # MQTT 5: no reason code means 0x00, Normal disconnection

# MQTT 5 property identifiers -> type, for parsing CONNACK and DISCONNECT.
_PROPERTY_TYPES = {
    0x01: "byte", 0x02: "int4", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint", 0x11: "int4",
    0x12: "str", 0x13: "int2", 0x15: "str", 0x16: "bin", 0x17: "byte", 0x18: "int4", 0x19: "byte",
    0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "int2", 0x22: "int2", 0x23: "int2", 0x24: "byte",
    0x25: "byte", 0x26: "pair", 0x27: "int4", 0x28: "byte", 0x29: "byte", 0x2A: "byte",
}
MAXIMUM_QOS, MAXIMUM_PACKET_SIZE, REASON_STRING = 0x24, 0x27, 0x1F


def read_varint(data, pos):
    """(value, next position) of a Variable Byte Integer in data at pos; None when incomplete."""
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(data):
            return None
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("variable byte integer longer than 4 bytes")


def parse_properties(data, pos):
    """(dict id -> value (a list for user properties), next position) of the property block at pos."""
    length, pos = read_varint(data, pos)
    end = pos + length
    out = {}
    while pos < end:
        pid = data[pos]
        pos += 1
        kind = _PROPERTY_TYPES.get(pid)
        if kind == "byte":
            value, pos = data[pos], pos + 1
        elif kind == "int2":
            value, pos = struct.unpack_from("!H", data, pos)[0], pos + 2
        elif kind == "int4":
            value, pos = struct.unpack_from("!I", data, pos)[0], pos + 4
        elif kind == "varint":
            value, pos = read_varint(data, pos)
        elif kind in ("str", "bin"):
            n = struct.unpack_from("!H", data, pos)[0]
            value, pos = bytes(data[pos + 2:pos + 2 + n]), pos + 2 + n
        elif kind == "pair":
            n = struct.unpack_from("!H", data, pos)[0]
            name, pos = bytes(data[pos + 2:pos + 2 + n]), pos + 2 + n
            n = struct.unpack_from("!H", data, pos)[0]
            value, pos = (name, bytes(data[pos + 2:pos + 2 + n])), pos + 2 + n
            out.setdefault(pid, []).append(value)
            continue
        else:
            raise ValueError("unknown MQTT 5 property 0x%02x" % pid)
        out[pid] = value
    return out, end


def describe_packet(first_byte, body):
    name = PACKET_NAMES.get(first_byte >> 4, "reserved type %d" % (first_byte >> 4))
    return "%s (first byte 0x%02x, body %s)" % (name, first_byte, bytes(body[:40]).hex()
                                                 + ("..." if len(body) > 40 else ""))


class Closed(Exception):
    pass


class RawMqtt:
    """An MQTT connection on a raw socket: write any bytes, read whole packets.
    Over "websockets", bytes travel in masked binary frames after an HTTP
    upgrade asking for subprotocol "mqtt"; a close frame counts as the
    connection closing."""

    def __init__(self, target, timeout=WAIT, auth=None):
        """auth: (username, password) that connect() sends unless told otherwise."""
        self.target = target
        self.auth = auth
        self.ws = target.get("transport", "tcp") == "websockets"
        self.sock = socket.create_connection((target["host"], target["port"]), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.raw = bytearray()   # bytes off the socket not yet unframed (WebSocket) or parsed
        self.buf = bytearray()   # MQTT bytes not yet parsed into packets
        self.eof = False
        if self.ws:
            self._upgrade(timeout)

    # WebSocket framing (client side) -----------------------------------
    def _upgrade(self, timeout):
        key = base64.b64encode(os.urandom(16)).decode()
        request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
                   % (self.target.get("path", "/mqtt"), self.target["host"], self.target["port"], key))
        self.sock.sendall(request.encode())
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            if not self._fill(deadline):
                raise AssertionError("WebSocket upgrade: connection closed; got %r" % bytes(self.raw))
        head, _, rest = bytes(self.raw).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError("WebSocket upgrade refused: %r" % head)
        self.raw = bytearray(rest)

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes([0x80 | opcode, 0x80 | n])
        elif n < 65536:
            head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def _unframe(self):
        """Moves whole WebSocket frames' payloads from raw to buf."""
        while len(self.raw) >= 2:
            opcode, n = self.raw[0] & 0x0F, self.raw[1] & 0x7F
            pos = 2
            if n == 126:
                if len(self.raw) < 4:
                    return
                n, pos = struct.unpack_from("!H", self.raw, 2)[0], 4
            elif n == 127:
                if len(self.raw) < 10:
                    return
                n, pos = struct.unpack_from("!Q", self.raw, 2)[0], 10
            if self.raw[1] & 0x80:
                pos += 4  # servers do not mask; tolerate it anyway
            if len(self.raw) < pos + n:
                return
            payload = bytes(self.raw[pos:pos + n])
            if self.raw[1] & 0x80:
                mask = self.raw[pos - 4:pos]
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            del self.raw[:pos + n]
            if opcode == 0x8:
                self.eof = True
                return
            if opcode == 0x9:
                self._send_raw(self._frame(0xA, payload))
            elif opcode in (0x0, 0x1, 0x2):
                self.buf += payload

    # bytes --------------------------------------------------------------
    def _send_raw(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True

    def send(self, data):
        """Writes MQTT bytes; a peer that already closed is noted, not an error
        (whether the server closes before reading everything is its business)."""
        self._send_raw(self._frame(0x2, data) if self.ws else data)

    def _fill(self, deadline):
        """Reads once from the socket; False at EOF (or reset). Raises
        socket.timeout at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.raw += chunk
        return True

    def _next_packet(self):
        if self.ws:
            self._unframe()
        else:
            self.buf += self.raw
            del self.raw[:]
        if len(self.buf) < 2:
            return None
        got = read_varint(self.buf, 1)
        if got is None:
            return None
        length, pos = got
        if len(self.buf) < pos + length:
            return None
        first, body = self.buf[0], bytes(self.buf[pos:pos + length])
        del self.buf[:pos + length]
        return first, body

    def read_packet(self, timeout=WAIT, what="a packet"):
        """(first byte, body) of the next packet; fails if the connection closes or nothing comes."""
        deadline = time.monotonic() + timeout
        while True:
            got = self._next_packet()
            if got is not None:
                return got
            if self.eof:
                raise Closed("connection closed while waiting for %s" % what)
            try:
                self._fill(deadline)
            except socket.timeout:
                raise AssertionError("no %s within %s s" % (what, timeout)) from None

    def expect(self, kind, timeout=WAIT):
        first, body = self.read_packet(timeout, what=PACKET_NAMES[kind])
        if first >> 4 != kind:
            raise AssertionError("expected %s, got %s" % (PACKET_NAMES[kind], describe_packet(first, body)))
        return first, body

    def connect(self, client_id=None, version=V311, keepalive=60, will=None, auth=None, clean=True):
        """CONNECT, then CONNACK with return/reason code 0. Returns the CONNACK's properties (MQTT 5)."""
        self.version = version
        auth = auth if auth is not None else self.auth
        self.send(connect_packet(client_id or "raw-" + uuid.uuid4().hex[:12], version, keepalive, clean, will, auth))
        _, body = self.expect(CONNACK)
        if body[1] != 0:
            raise AssertionError("CONNACK refused the connection: code 0x%02x" % body[1])
        if version == V5:
            return parse_properties(body, 2)[0]
        return {}

    def expect_closed(self, timeout=WAIT, disconnect_reasons=(), what="the server to close the connection"):
        """Waits for the server to close the connection. MQTT 5 servers may
        send a DISCONNECT first; its reason code must then be one of
        disconnect_reasons. Returns the DISCONNECT reason code or None."""
        deadline = time.monotonic() + timeout
        reason = None
        while True:
            try:
                first, body = self.read_packet(max(deadline - time.monotonic(), 0.001), what=what)
            except Closed:
                return reason
            except AssertionError:
                raise AssertionError("connection still open after %s s, waiting for %s" % (timeout, what)) from None
            if first >> 4 == DISCONNECT and reason is None:
                reason = body[0] if body else 0
                if reason not in disconnect_reasons:
                    raise AssertionError("while waiting for %s: DISCONNECT with reason 0x%02x, expected one of %s "
                                         "or a plain close" % (what, reason,
                                                               [hex(r) for r in disconnect_reasons]))
                continue
            raise AssertionError("while waiting for %s, the server sent %s" % (what, describe_packet(first, body)))

    def close(self, abrupt=False):
        """Closes the socket; abrupt: a TCP reset, as a device that loses power would not even manage."""
        if abrupt:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


# --- Paho ------------------------------------------------------------------

class Message:
    def __init__(self, msg):
        self.topic = msg.topic
        self.payload = msg.payload
        self.qos = msg.qos
        self.retain = bool(msg.retain)
        props_ = getattr(msg, "properties", None)
        self.user_properties = list(getattr(props_, "UserProperty", []) or []) if props_ is not None else []

    def __repr__(self):
        return "Message(%r, %r, qos=%d, retain=%d%s)" % (self.topic, self.payload[:60], self.qos, self.retain,
                                                           ", user=%r" % self.user_properties
                                                           if self.user_properties else "")


class PahoClient:
    """A Paho client on its own network thread, whose deliveries are
    collected for the test to wait on."""

    def __init__(self, target, version=V311, client_id=None, auth=None, keepalive=30):
        self.version = version
        self.client_id = client_id or "paho-" + uuid.uuid4().hex[:12]
        proto = mqtt.MQTTv5 if version == V5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=self.client_id, protocol=proto,
                             clean_session=None if version == V5 else True,
                             transport=target.get("transport", "tcp"), reconnect_on_failure=False)
        if target.get("transport") == "websockets":
            self.c.ws_set_options(path=target.get("path", "/mqtt"))
        if auth:
            self.c.username_pw_set(*auth)
        self.cond = threading.Condition()
        self.messages = []
        self.connack = None
        self.subacks = {}
        self.unsubacks = set()
        self.disconnected = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_disconnect = self._on_disconnect
        self.c.connect(target["host"], target["port"], keepalive=keepalive)
        self.c.loop_start()
        self.wait(lambda: self.connack is not None or self.disconnected is not None, "CONNACK")
        code = self.connack[1] if self.connack else None
        if code != 0:
            self.stop()
            raise AssertionError("%s: connection refused (CONNACK %r, disconnect %r)"
                                 % (self.client_id, code, self.disconnected))

    # callbacks (Paho's network thread) --------------------------------------
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.cond:
            self.connack = (flags, rc.value if hasattr(rc, "value") else rc, properties)
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append(Message(msg))
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cond:
            self.subacks[mid] = [g.value if hasattr(g, "value") else g for g in granted]
            self.cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, *rest):
        with self.cond:
            self.unsubacks.add(mid)
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.cond:
            self.disconnected = rc.value if hasattr(rc, "value") else rc
            self.cond.notify_all()

    # waiting ---------------------------------------------------------------
    def wait(self, predicate, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("%s: no %s within %s s (received so far: %r; disconnected: %r)"
                                         % (self.client_id, what, timeout, self.messages, self.disconnected))
                self.cond.wait(min(remaining, 0.2))
            return predicate()

    def subscribe(self, topic_filter, qos=0):
        """Subscribes and waits for the SUBACK; a granted QoS must be <= the
        requested one (a server may downgrade) and not a failure (0x80+)."""
        rc, mid = self.c.subscribe(topic_filter, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("%s: SUBSCRIBE %r not sent: %s" % (self.client_id, topic_filter, mqtt.error_string(rc)))
        granted = self.wait(lambda: self.subacks.get(mid), "SUBACK for %r" % topic_filter)
        if len(granted) != 1 or not 0 <= granted[0] <= qos:
            raise AssertionError("%s: SUBACK for %r at QoS %d granted %r (expected a QoS from 0 to %d)"
                                 % (self.client_id, topic_filter, qos, granted, qos))
        return granted[0]

    def unsubscribe(self, topic_filter):
        rc, mid = self.c.unsubscribe(topic_filter)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("%s: UNSUBSCRIBE not sent: %s" % (self.client_id, mqtt.error_string(rc)))
        self.wait(lambda: mid in self.unsubacks, "UNSUBACK for %r" % topic_filter)

    def publish(self, topic, payload, qos=0, retain=False, user_properties=None):
        """Publishes; at QoS 1 and 2 waits until the handshake completed (PUBACK, or PUBCOMP)."""
        properties = None
        if user_properties:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = list(user_properties)
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos:
            info.wait_for_publish(timeout=WAIT)
            if not info.is_published():
                raise AssertionError("%s: QoS %d PUBLISH to %r not acknowledged within %s s (disconnected: %r)"
                                     % (self.client_id, qos, topic, WAIT, self.disconnected))
        elif info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("%s: PUBLISH to %r not sent: %s" % (self.client_id, topic, mqtt.error_string(info.rc)))
        return info

    def expect(self, topic, timeout=WAIT):
        """The first message received on topic (waiting for it)."""
        return self.wait(lambda: next((m for m in self.messages if m.topic == topic), None),
                         "message on %r" % topic, timeout)

    def received(self, topic):
        with self.cond:
            return [m for m in self.messages if m.topic == topic]

    def until(self, marker_topic, timeout=WAIT):
        """Waits for a message on marker_topic; returns every message that came before it."""
        self.expect(marker_topic, timeout)
        with self.cond:
            i = next(i for i, m in enumerate(self.messages) if m.topic == marker_topic)
            return self.messages[:i]

    def disconnect(self):
        self.c.disconnect()
        self.wait(lambda: self.disconnected is not None, "disconnection after DISCONNECT")
        self.stop()

    def stop(self):
        with self.cond:
            connected = self.connack is not None and self.disconnected is None
        if connected:
            self.c.disconnect()  # also wakes the network thread, which loop_stop waits for
        self.c.loop_stop()
        # Paho 1.6 leaves its socket and the socket pair that wakes its
        # thread open after loop_stop.
        for sock in (self.c.socket(), getattr(self.c, "_sockpairR", None), getattr(self.c, "_sockpairW", None)):
            try:
                if sock is not None:
                    sock.close()
            except OSError:
                pass


# --- the tests -------------------------------------------------------------

class MqttSemantics:
    """The tests; mixed into a unittest.TestCase that provides mqtt_target()
    and mqtt_max_packet() (see the module's docstring)."""

    def mqtt_auth(self):
        return None

    def mqtt_v311_qos2_target(self):
        return self.mqtt_target()

    def mqtt_keepalive_deadline(self):
        """Seconds after CONNECT (keep-alive 1 s) by which a silent client
        must be disconnected: 1.5 s by the spec, plus slack."""
        return 4.0

    # helpers ----------------------------------------------------------------
    def prefix(self):
        """A topic prefix no other test (or run) uses."""
        return "kt/%s/%s" % (self._testMethodName.replace("test_", "", 1), uuid.uuid4().hex[:10])

    def client(self, version=V311, target=None, **kwargs):
        c = PahoClient(target or self.mqtt_target(), version, auth=self.mqtt_auth(), **kwargs)
        self.addCleanup(c.stop)
        return c

    def raw(self, target=None):
        r = RawMqtt(target or self.mqtt_target(), auth=self.mqtt_auth())
        self.addCleanup(r.sock.close)
        return r

    def assertServesOthers(self, version):
        """After a misbehaving client: a new client connects, publishes at QoS 1 and receives it."""
        topic = self.prefix() + "/after"
        c = self.client(version)
        c.subscribe(topic, 1)
        c.publish(topic, b"still serving", qos=1)
        self.assertEqual(c.expect(topic).payload, b"still serving")
        c.disconnect()

    def assertNotDelivered(self, sub, pub, marker_topic, unwanted_topics=None):
        """pub publishes a marker (QoS 1, acknowledged) that sub subscribes
        to; once sub has it, sub must have received nothing on
        unwanted_topics (None: nothing at all) before it."""
        pub.publish(marker_topic, b"marker", qos=1)
        before = sub.until(marker_topic)
        if unwanted_topics is not None:
            before = [m for m in before if m.topic in unwanted_topics]
        self.assertEqual(before, [], "%s received these before the marker on %r" % (sub.client_id, marker_topic))

    # QoS 0 and 1 -----------------------------------------------------------
    def _publish_qos(self, version, qos):
        topic = self.prefix() + "/t"
        sub = self.client(version)
        sub.subscribe(topic, qos)
        pub = self.client(version)
        payload = bytes(range(256)) + "ünïcode".encode()
        pub.publish(topic, payload, qos=qos)  # QoS 1: waits for the PUBACK
        got = sub.expect(topic)
        self.assertEqual((got.topic, got.payload, got.retain), (topic, payload, False))
        self.assertLessEqual(got.qos, qos)
        pub.disconnect()
        sub.disconnect()

    def test_qos0_v311(self):
        self._publish_qos(V311, 0)

    def test_qos0_v5(self):
        self._publish_qos(V5, 0)

    def test_qos1_v311(self):
        self._publish_qos(V311, 1)

    def test_qos1_v5(self):
        self._publish_qos(V5, 1)

    def test_qos1_across_versions(self):
        """A 3.1.1 publisher reaches a 5 subscriber and the other way round."""
        p = self.prefix()
        c4, c5 = self.client(V311), self.client(V5)
        c4.subscribe(p + "/from5", 1)
        c5.subscribe(p + "/from4", 1)
        c4.publish(p + "/from4", b"four", qos=1)
        c5.publish(p + "/from5", b"five", qos=1)
        self.assertEqual(c5.expect(p + "/from4").payload, b"four")
        self.assertEqual(c4.expect(p + "/from5").payload, b"five")

    # wildcards -----------------------------------------------------------
    def _wildcards(self, version):
        p = self.prefix()
        plus, hash_ = self.client(version), self.client(version)
        plus.subscribe(p + "/+/temp", 1)
        hash_.subscribe(p + "/a/#", 1)
        for c in (plus, hash_):
            c.subscribe(p + "/marker", 1)
        pub = self.client(version)
        topics = [p + "/a", p + "/a/temp", p + "/b/temp", p + "/a/b/temp", p + "/b/humidity", p + "/a/x/y",
                  p + "/ab/temp", p + "/b/temp/x"]
        for t in topics:
            pub.publish(t, t.encode(), qos=1)
        pub.publish(p + "/marker", b"marker", qos=1)
        # `+` matches exactly one level; `a/#` matches a and everything under it.
        self.assertEqual(sorted(m.topic for m in plus.until(p + "/marker")),
                         sorted([p + "/a/temp", p + "/b/temp", p + "/ab/temp"]))
        self.assertEqual(sorted(m.topic for m in hash_.until(p + "/marker")),
                         sorted([p + "/a", p + "/a/temp", p + "/a/b/temp", p + "/a/x/y"]))
        for c in (plus, hash_):
            for m in c.until(p + "/marker"):
                self.assertEqual(m.payload, m.topic.encode())

    def test_wildcards_v311(self):
        self._wildcards(V311)

    def test_wildcards_v5(self):
        self._wildcards(V5)

    def _dollar_topics(self, version):
        """Topics beginning with $ are not matched by filters beginning with a
        wildcard (3.1.1 4.7.2, 5.0 4.7.2: MUST NOT)."""
        p = self.prefix()
        dollar = "$" + p.replace("/", "-", 1)  # e.g. $kt-dollar_topics_v5/1234
        hash_, plus, exact = self.client(version), self.client(version), self.client(version)
        hash_.subscribe("#", 0)
        plus.subscribe("+/" + dollar.split("/", 1)[1], 0)
        exact.subscribe(dollar, 1)
        for c in (hash_, plus, exact):
            c.subscribe(p + "/marker", 1)
        pub = self.client(version)
        info = pub.c.publish(dollar, b"dollar", qos=1)
        pub.wait(lambda: info.is_published() or pub.disconnected is not None,
                 "PUBACK or disconnection after publishing to %r" % dollar)
        marker_pub = self.client(version)
        self.assertNotDelivered(hash_, marker_pub, p + "/marker", [dollar])
        self.assertNotDelivered(plus, marker_pub, p + "/marker", [dollar])
        # Whether the exact subscriber got it is the server's choice: the
        # spec says a server SHOULD prevent clients from exchanging messages
        # on $ topics (4.7.2), which kws does; mosquitto delivers it, which
        # shows that the wildcard subscribers above skipped a message that
        # was routed.
        self.assertIn([m.payload for m in exact.until(p + "/marker") if m.topic == dollar], ([], [b"dollar"]))
        hash_.unsubscribe("#")  # it would see every other test's traffic

    def test_dollar_topics_not_matched_by_wildcards_v311(self):
        self._dollar_topics(V311)

    def test_dollar_topics_not_matched_by_wildcards_v5(self):
        self._dollar_topics(V5)

    def _sys_publish(self, version):
        """A client publishing to $SYS/...: a `#` subscriber never sees it
        (MUST, 4.7.2: wildcards do not match $ topics), and neither does a
        `$SYS/#` subscriber: the server SHOULD prevent clients from using $
        topics to exchange messages (4.7.2), which issue 17 asks of kws and
        mosquitto does (it acknowledges the PUBLISH and drops it). What
        happens to the publisher is not asserted: it may be refused
        (MQTT 5 PUBACK >= 0x80 or DISCONNECT) or ignored."""
        p = self.prefix()
        sys_topic = "$SYS/kt/" + p.split("/", 2)[2]
        hash_, sys_ = self.client(version), self.client(version)
        hash_.subscribe("#", 0)
        sys_.subscribe("$SYS/#", 0)
        for c in (hash_, sys_):
            c.subscribe(p + "/marker", 1)
        pub = self.client(version)
        info = pub.c.publish(sys_topic, b"from a client", qos=1)
        # Processed: acknowledged (whatever the reason code) or the publisher closed.
        pub.wait(lambda: info.is_published() or pub.disconnected is not None,
                 "PUBACK or disconnection after publishing to %r" % sys_topic)
        # The marker comes from another client, in case the server closed the publisher.
        marker_pub = self.client(version)
        self.assertNotDelivered(hash_, marker_pub, p + "/marker", [sys_topic])
        self.assertEqual([m for m in sys_.until(p + "/marker") if m.topic == sys_topic], [],
                         "a client's PUBLISH to %r reached a $SYS/# subscriber" % sys_topic)
        hash_.unsubscribe("#")

    def test_sys_publish_from_client_not_delivered_v311(self):
        self._sys_publish(V311)

    def test_sys_publish_from_client_not_delivered_v5(self):
        self._sys_publish(V5)

    # retained ---------------------------------------------------------------
    def _retained(self, version):
        p = self.prefix()
        topic = p + "/state"
        live = self.client(version)
        live.subscribe(topic, 1)
        pub = self.client(version)
        pub.publish(topic, b"on", qos=1, retain=True)
        # To a subscription that existed already: retain flag 0 (3.1.1
        # 3.3.1.3; 5.0 with Retain As Published 0, the default).
        got = live.expect(topic)
        self.assertEqual((got.payload, got.retain), (b"on", False))
        # To a new subscription: the retained message, with retain flag 1.
        new = self.client(version)
        new.subscribe(p + "/#", 1)
        got = new.expect(topic)
        self.assertEqual((got.payload, got.retain), (b"on", True))
        # A retained message with an empty payload clears it (and is
        # delivered to existing subscribers as an ordinary empty message).
        pub.publish(topic, b"", qos=1, retain=True)
        self.assertEqual(len(live.wait(lambda: live.received(topic)[1:], "the empty retained message")), 1)
        later = self.client(version)
        later.subscribe(p + "/#", 1)
        self.assertNotDelivered(later, pub, p + "/marker", [topic])

    def test_retained_v311(self):
        self._retained(V311)

    def test_retained_v5(self):
        self._retained(V5)

    def test_retained_replaced_by_latest(self):
        """Only the latest retained message per topic is kept."""
        p = self.prefix()
        pub = self.client(V311)
        for payload in (b"one", b"two", b"three"):
            pub.publish(p + "/s", payload, qos=1, retain=True)
        sub = self.client(V5)
        sub.subscribe(p + "/s", 1)
        sub.subscribe(p + "/marker", 1)
        self.assertEqual(sub.expect(p + "/s").payload, b"three")
        pub.publish(p + "/marker", b"marker", qos=1)
        self.assertEqual([m.payload for m in sub.until(p + "/marker") if m.topic == p + "/s"], [b"three"])
        pub.publish(p + "/s", b"", qos=1, retain=True)

    # will -------------------------------------------------------------------
    def _will(self, version):
        p = self.prefix()
        sub = self.client(version)
        sub.subscribe(p + "/#", 1)
        dropped = self.raw()
        dropped.connect(version=version, will=(p + "/will-dropped", b"gone", 1, False))
        dropped.close(abrupt=True)
        got = sub.expect(p + "/will-dropped")
        self.assertEqual((got.payload, got.retain), (b"gone", False))
        # A client that says DISCONNECT leaves no will.
        polite = self.raw()
        polite.connect(version=version, will=(p + "/will-polite", b"should not appear", 1, False))
        polite.send(DISCONNECT_PACKET)
        polite.expect_closed()
        self.assertNotDelivered(sub, self.client(version), p + "/marker", [p + "/will-polite"])

    def test_will_v311(self):
        self._will(V311)

    def test_will_v5(self):
        self._will(V5)

    def test_will_on_clean_close_without_disconnect(self):
        """A socket closed normally (FIN) without DISCONNECT is still an
        abnormal end for MQTT: the will goes out."""
        p = self.prefix()
        sub = self.client(V311)
        sub.subscribe(p + "/will", 1)
        r = self.raw()
        r.connect(version=V311, will=(p + "/will", b"fin", 0, False))
        r.close()
        self.assertEqual(sub.expect(p + "/will").payload, b"fin")

    # keep-alive ---------------------------------------------------------------
    def test_keepalive(self):
        """Keep-alive 1 s and silence, MQTT 3.1.1 and 5 side by side: the
        server closes the connection (3.1.1 and 5.0 3.1.2.10: within 1.5 x
        the keep-alive; here not before ~1 s and within
        mqtt_keepalive_deadline() seconds) and publishes the will."""
        p = self.prefix()
        sub = self.client(V5)
        sub.subscribe(p + "/will/#", 1)
        clients = {}
        for version in (V311, V5):
            r = self.raw()
            start = time.monotonic()
            props_ = r.connect(version=version, keepalive=1, will=(p + "/will/%d" % version, b"timed out", 1, False))
            self.assertNotIn(0x13, props_, "this test assumes the server keeps the client's keep-alive")
            clients[version] = (r, start)
        limit = self.mqtt_keepalive_deadline()
        for version, (r, start) in clients.items():
            r.expect_closed(timeout=max(limit - (time.monotonic() - start), 0.01), disconnect_reasons=(0x8D,),
                            what="the keep-alive to expire (MQTT %s)" % ("5" if version == V5 else "3.1.1"))
            elapsed = time.monotonic() - start
            self.assertGreaterEqual(elapsed, 0.9, "closed after %.2f s: before the keep-alive even ran out" % elapsed)
        for version in (V311, V5):
            self.assertEqual(sub.expect(p + "/will/%d" % version).payload, b"timed out")

    def test_keepalive_pings_keep_it_open(self):
        """PINGREQ every half keep-alive: PINGRESP each time, still open after 2.5 x the keep-alive."""
        r = self.raw()
        r.connect(version=V311, keepalive=1)
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            r.send(PINGREQ_PACKET)
            r.expect(PINGRESP, timeout=2)
            time.sleep(0.4)  # pacing the client, not waiting for the server
        r.send(PINGREQ_PACKET)
        r.expect(PINGRESP, timeout=2)

    # malformed packets ----------------------------------------------------------
    def _malformed(self, version, build, reasons, what):
        """build(raw) sends something; the server must close (MQTT 5: with
        an optional DISCONNECT whose reason is in `reasons`) and then still
        serve other clients."""
        r = self.raw()
        build(r)
        r.expect_closed(disconnect_reasons=reasons if version == V5 else (), what="the close after " + what)
        self.assertServesOthers(version)

    def _bad_remaining_length(self, version):
        def build(r):
            r.connect(version=version)
            r.send(b"\x30\xff\xff\xff\xff\x01" + b"x" * 64)  # 5 bytes of remaining length
        self._malformed(version, build, (0x81,), "a remaining length of 5 bytes")

    def test_malformed_remaining_length_v311(self):
        self._bad_remaining_length(V311)

    def test_malformed_remaining_length_v5(self):
        self._bad_remaining_length(V5)

    def _bad_subscribe_flags(self, version):
        def build(r):
            r.connect(version=version)
            r.send(subscribe_packet("kt/flags/#", version, first_byte=0x80))
        self._malformed(version, build, (0x81,), "SUBSCRIBE with flags 0000")

    def test_malformed_subscribe_flags_v311(self):
        self._bad_subscribe_flags(V311)

    def test_malformed_subscribe_flags_v5(self):
        self._bad_subscribe_flags(V5)

    def test_first_packet_not_connect(self):
        def build(r):
            r.send(PINGREQ_PACKET)
        self._malformed(V311, build, (), "PINGREQ before CONNECT")

    def test_first_packet_publish(self):
        def build(r):
            r.send(publish_packet("kt/first", b"x"))
        self._malformed(V311, build, (), "PUBLISH before CONNECT")

    def _wildcard_topic_name(self, version):
        def build(r):
            r.connect(version=version)
            r.send(publish_packet("kt/+/wild", b"x", version))
        # 3.1.1 3.3.2-2 / 5.0 3.3.2-2: a Topic Name MUST NOT contain wildcards;
        # a protocol violation closes the connection (4.8 / 4.13).
        self._malformed(version, build, (0x81, 0x82, 0x90), "a PUBLISH to topic name kt/+/wild")

    def test_publish_wildcard_topic_name_v311(self):
        self._wildcard_topic_name(V311)

    def test_publish_wildcard_topic_name_v5(self):
        self._wildcard_topic_name(V5)

    def _second_connect(self, version):
        def build(r):
            r.connect(version=version)
            r.send(connect_packet("raw-" + uuid.uuid4().hex[:12], version))
        self._malformed(version, build, (0x82,), "a second CONNECT")

    def test_second_connect_v311(self):
        self._second_connect(V311)

    def test_second_connect_v5(self):
        self._second_connect(V5)

    def _oversize(self, version):
        """A PUBLISH bigger than the server's maximum packet size: closed
        (MQTT 5: optionally after DISCONNECT 0x95, Packet too large)."""
        limit = self.mqtt_max_packet()
        p = self.prefix()
        sub = self.client(version)
        sub.subscribe(p + "/big", 0)

        def build(r):
            props_ = r.connect(version=version)
            if version == V5 and MAXIMUM_PACKET_SIZE in props_:
                self.assertEqual(props_[MAXIMUM_PACKET_SIZE], limit, "CONNACK's Maximum Packet Size")
            r.send(publish_packet(p + "/big", b"x" * (limit + 1), version))
        self._malformed(version, build, (0x95,), "a PUBLISH of more than %d bytes" % limit)
        sub.subscribe(p + "/marker", 1)
        self.assertNotDelivered(sub, self.client(version), p + "/marker", [p + "/big"])

    def test_oversize_publish_v311(self):
        self._oversize(V311)

    def test_oversize_publish_v5(self):
        self._oversize(V5)

    def test_largest_packet_accepted(self):
        """A PUBLISH of exactly the maximum packet size goes through."""
        limit = self.mqtt_max_packet()
        p = self.prefix()
        topic = p + "/big"
        sub = self.client(V311)
        sub.subscribe(topic, 0)
        r = self.raw()
        r.connect(version=V311)
        # limit = 1 (first byte) + size of the remaining length + topic + packet id + payload
        body_len = next(limit - 1 - n for n in (1, 2, 3, 4) if len(varint(limit - 1 - n)) == n)
        payload_len = body_len - len(mqtt_string(topic)) - 2
        data = publish_packet(topic, b"y" * payload_len, V311, qos=1, packet_id=7)
        self.assertEqual(len(data), limit)
        r.send(data)
        _, body = r.expect(PUBACK)
        self.assertEqual(body[:2], b"\x00\x07")
        self.assertEqual(len(sub.expect(topic).payload), payload_len)

    # session takeover -------------------------------------------------------------
    def _takeover(self, version):
        """A second connection with the same client id: the server
        disconnects the first (3.1.1 3.1.4-2; 5.0 3.1.4-3, with DISCONNECT
        0x8E Session taken over allowed first)."""
        client_id = "take-" + uuid.uuid4().hex[:12]
        first = self.raw()
        first.connect(client_id, version)
        second = self.raw()
        second.connect(client_id, version)
        first.expect_closed(disconnect_reasons=(0x8E,), what="the first connection to be taken over")
        second.send(PINGREQ_PACKET)
        second.expect(PINGRESP)

    def test_session_takeover_v311(self):
        self._takeover(V311)

    def test_session_takeover_v5(self):
        self._takeover(V5)

    # unsubscribe -----------------------------------------------------------------
    def _unsubscribe(self, version):
        p = self.prefix()
        sub = self.client(version)
        sub.subscribe(p + "/t", 1)
        sub.subscribe(p + "/marker", 1)
        pub = self.client(version)
        pub.publish(p + "/t", b"before", qos=1)
        self.assertEqual(sub.expect(p + "/t").payload, b"before")
        sub.unsubscribe(p + "/t")
        pub.publish(p + "/t", b"after", qos=1)
        pub.publish(p + "/marker", b"marker", qos=1)
        self.assertEqual([m.payload for m in sub.until(p + "/marker") if m.topic == p + "/t"], [b"before"])

    def test_unsubscribe_v311(self):
        self._unsubscribe(V311)

    def test_unsubscribe_v5(self):
        self._unsubscribe(V5)

    # MQTT 5 -----------------------------------------------------------------------
    def test_user_properties_v5(self):
        """User properties arrive with the same names and values, in order
        (5.0 3.3.2.3.7: the server MUST maintain their order)."""
        p = self.prefix()
        sub = self.client(V5)
        sub.subscribe(p + "/t", 1)
        pub = self.client(V5)
        user = [("trace", "abc-123"), ("zone", "ünïcode"), ("trace", "second value"), ("empty", "")]
        pub.publish(p + "/t", b"with properties", qos=1, user_properties=user)
        got = sub.expect(p + "/t")
        self.assertEqual(got.payload, b"with properties")
        self.assertEqual(got.user_properties, user)

    def test_max_qos_v5(self):
        """CONNACK says Maximum QoS 1; a QoS 2 PUBLISH then gets DISCONNECT
        0x9B, QoS not supported (5.0 3.3.4), and the server serves others."""
        r = self.raw()
        props_ = r.connect(version=V5)
        self.assertEqual(props_.get(MAXIMUM_QOS), 1, "CONNACK's Maximum QoS (properties: %r)" % props_)
        r.send(publish_packet(self.prefix() + "/qos2", b"x", V5, qos=2, packet_id=3))
        self.assertEqual(r.expect_closed(disconnect_reasons=(0x9B,), what="the close after a QoS 2 PUBLISH"), 0x9B,
                         "DISCONNECT with reason 0x9B before the close")
        self.assertServesOthers(V5)

    def test_subscribe_qos2_granted_at_most_1_v5(self):
        """A subscription asking for QoS 2 is granted QoS 0 or 1 by a server whose Maximum QoS is 1."""
        sub = self.client(V5)
        self.assertLessEqual(sub.subscribe(self.prefix() + "/t", 2), 1)

    # MQTT 3.1.1 QoS 2 ---------------------------------------------------------------
    def test_qos2_v311(self):
        """MQTT 3.1.1 has no way to refuse a QoS 2 PUBLISH: PUBREC, PUBREL,
        PUBCOMP complete and the message is delivered once."""
        target = self.mqtt_v311_qos2_target()
        p = self.prefix()
        sub = self.client(V311, target=target)
        sub.subscribe(p + "/t", 1)  # delivered at QoS 1, like the marker, so they stay in order
        sub.subscribe(p + "/marker", 1)
        r = self.raw(target)
        r.connect(version=V311)
        r.send(publish_packet(p + "/t", b"exactly once", V311, qos=2, packet_id=9))
        _, body = r.expect(PUBREC)
        self.assertEqual(body[:2], b"\x00\x09")
        r.send(ack_packet(PUBREL, 9))
        _, body = r.expect(PUBCOMP)
        self.assertEqual(body[:2], b"\x00\x09")
        r.send(DISCONNECT_PACKET)
        r.expect_closed()
        pub = self.client(V311, target=target)
        pub.publish(p + "/marker", b"marker", qos=1)
        self.assertEqual([m.payload for m in sub.until(p + "/marker")], [b"exactly once"])

    def test_qos2_duplicate_delivered_once_v311(self):
        """The same QoS 2 packet id sent twice before PUBREL (a resend with
        DUP): delivered once (3.1.1 4.3.3 method B or A: either way, once)."""
        target = self.mqtt_v311_qos2_target()
        p = self.prefix()
        sub = self.client(V311, target=target)
        sub.subscribe(p + "/t", 1)  # delivered at QoS 1, like the marker, so they stay in order
        sub.subscribe(p + "/marker", 1)
        r = self.raw(target)
        r.connect(version=V311)
        data = publish_packet(p + "/t", b"once", V311, qos=2, packet_id=4)
        r.send(data)
        r.expect(PUBREC)
        r.send(bytes([data[0] | 0x08]) + data[1:])  # DUP
        r.expect(PUBREC)
        r.send(ack_packet(PUBREL, 4))
        r.expect(PUBCOMP)
        pub = self.client(V311, target=target)
        pub.publish(p + "/marker", b"marker", qos=1)
        self.assertEqual([m.payload for m in sub.until(p + "/marker")], [b"once"])
