"""kws serve's own WebSocket transport (core/ws/connection.*, protocol.*)
driven over plain sockets, byte by byte where it matters: what RFC 6455 asks
of a server for bad frames (1002, 1007), oversize messages (1009, and the
too_large frame below that limit), control frames, fragments, the closing
handshake in both directions (nothing after the server's close frame),
frames right behind the request head, trickled, oversize, silent and
malformed handshakes, and plain HTTP requests (405, a client that
half-closes). After each misbehaving client the server must still serve a
client that was connected all along and a new one. Last, a quick fan-out
check: 100 clients get the same messages in the same order."""

import json
import os
import base64
import selectors
import socket
import struct
import time

import kwstest
from test_serve import ServeTestCase  # one `kws broker` per class, `kws serve` per test

STEP = 10  # seconds any single wait may take

MAX_FRAME = 4096
# The server closes with 1009 beyond this (core/ws/server.cpp, setup());
# between MAX_FRAME and it, a frame gets a too_large error and the session goes on.
MESSAGE_LIMIT = MAX_FRAME * 2 + 65536
# Connection::Limits::handshake_timeout (core/ws/connection.hpp); kws serve has no flag for it.
HANDSHAKE_TIMEOUT = 10.0
# parse_request_head's limit (core/ws/protocol.hpp, kMaxRequestHead).
MAX_REQUEST_HEAD = 16 * 1024

TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
MASK = b"\x37\xfa\x21\x3d"


def frame(opcode, payload=b"", fin=True, masked=True, rsv=0):
    """A client frame (masked unless told otherwise)."""
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n <= 125:
        head += bytes([mask_bit | n])
    elif n <= 0xFFFF:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i & 3] for i, b in enumerate(payload))


def frame_header(opcode, length, fin=True):
    """Only the header (with its mask) of a masked frame announcing `length` bytes."""
    first = bytes([(0x80 if fin else 0) | opcode])
    if length <= 125:
        return first + bytes([0x80 | length]) + MASK
    if length <= 0xFFFF:
        return first + bytes([0x80 | 126]) + struct.pack(">H", length) + MASK
    return first + bytes([0x80 | 127]) + struct.pack(">Q", length) + MASK


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def upgrade_head(path="/v2/broker/", host="127.0.0.1", version="13", extra="",
                 subprotocol="kws.v1"):
    """These tests want the bridge's replies: they speak the kws protocol
    (a kafka-websocket client, offering none, would get messages only)."""
    key = base64.b64encode(os.urandom(16)).decode()
    if subprotocol:
        extra = "Sec-WebSocket-Protocol: %s\r\n%s" % (subprotocol, extra)
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n%s\r\n" % (path, host, key, version, extra)).encode()


class Peer:
    """One client socket: raw bytes out, HTTP answers and server frames in."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=STEP)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def send_until_refused(self, data):
        """Sends what the server still reads; it may close (and reset) midway."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _more(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("the server closed the connection; unread: %r" % self.buf[:200])
        self.buf += chunk

    def http_answer(self, timeout=STEP, with_body=True):
        """(status, {lower-case name: value}, body) of an HTTP answer; the
        body by Content-Length, none for a 101 (nor, without with_body, for
        the answer to a HEAD)."""
        while b"\r\n\r\n" not in self.buf:
            self._more(timeout)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        body = b""
        if status != 101 and with_body:
            length = int(headers.get("content-length", "0"))
            while len(self.buf) < length:
                self._more(timeout)
            body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def upgrade(self, path="/v2/broker/"):
        self.send(upgrade_head(path))
        status, headers, body = self.http_answer()
        assert status == 101, (status, headers, body)
        return self

    def next_frame(self, timeout=STEP, skip_pings=True):
        """(opcode, payload) of the next server frame (server pings skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                if skip_pings and parsed[0] == PING:
                    continue
                return parsed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("no frame within %s s" % timeout)
            try:
                self._more(remaining)
            except socket.timeout:
                raise socket.timeout("no frame within %s s; unread %r" % (timeout, self.buf[:200])) from None

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        assert b[1] & 0x80 == 0, "server frames are never masked: %r" % b[:16]
        assert b[0] & 0x80, "kws serve sends whole frames"
        opcode, n, at = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, at = struct.unpack(">H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, at = struct.unpack(">Q", b[2:10])[0], 10
        if len(b) < at + n:
            return None
        self.buf = b[at + n:]
        return opcode, b[at:at + n]

    def json_reply(self, timeout=STEP):
        opcode, payload = self.next_frame(timeout)
        assert opcode == TEXT, (opcode, payload[:200])
        return json.loads(payload)

    def closed_with(self, timeout=STEP):
        """Frames until the server's close frame; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        while True:
            opcode, payload = self.next_frame(max(0.1, deadline - time.monotonic()))
            if opcode == CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:]

    def server_closed_tcp(self, timeout=STEP):
        """True once the server has closed the TCP connection (EOF or reset)
        with nothing more sent; fails on data."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        assert data == b"", "expected the end of the connection, got %r" % data[:200]
        return True

    def close(self):
        self.sock.close()


class Transport(ServeTestCase):
    """Each test starts `kws serve --max-frame 4096` and a bystander client
    that stays connected; assert_still_serving() checks it and a new client."""

    def setUp(self):
        super().setUp()
        self.bg = self.serve("--max-frame", str(MAX_FRAME))
        self.bystander = self.peer().upgrade()

    def peer(self):
        p = Peer(self.bg.address)
        self.addCleanup(p.close)
        return p

    def round_trip(self, p, tag):
        p.send(frame(PING, tag))
        self.assertEqual(p.next_frame(), (PONG, tag.encode()))
        p.send(frame(TEXT, "{not json " + tag))
        reply = p.json_reply()
        self.assertEqual((reply["type"], reply["code"]), ("error", "bad_json"), reply)

    def assert_still_serving(self):
        self.round_trip(self.bystander, "bystander")
        self.round_trip(self.peer().upgrade(), "newcomer")
        self.assertIsNone(self.bg.proc.poll(), self.bg.describe())

    def assert_fails_with(self, data, code, reason_part=None):
        p = self.peer().upgrade()
        p.send_until_refused(data)
        got, reason = p.closed_with()
        self.assertEqual(got, code, reason)
        if reason_part:
            self.assertIn(reason_part, reason.decode())
        self.assertTrue(p.server_closed_tcp(), "the server must close TCP after its close frame")
        return reason

    # ---- frames the server must refuse ----------------------------------------

    def test_unmasked_frame_gets_1002_and_the_socket_closes(self):
        self.assert_fails_with(frame(TEXT, '{"type":"subscribe","topics":["x"]}', masked=False), 1002, "masked")
        self.assert_fails_with(frame(TEXT, "rsv", rsv=0x40), 1002, "reserved")
        self.assert_fails_with(frame(0x3, "what"), 1002, "opcode")
        self.assert_fails_with(frame(CONT, "orphan"), 1002, "continuation")
        self.assert_still_serving()

    def test_text_that_is_not_utf8_gets_1007(self):
        self.assert_fails_with(frame(TEXT, b'{"topic":"t","message":"\xff"}'), 1007, "UTF-8")
        # Valid in each fragment's bytes so far, invalid as a whole.
        self.assert_fails_with(frame(TEXT, b"a\xe2\x82", fin=False) + frame(CONT, b"("), 1007)
        self.assert_still_serving()

    def test_frames_over_max_frame_get_too_large_and_the_session_goes_on(self):
        t = self.create(self.topic())
        p = self.peer().upgrade()
        for size, opcode in ((MAX_FRAME + 1, TEXT), (MESSAGE_LIMIT, TEXT), (MAX_FRAME + 1, BINARY)):
            p.send(frame(opcode, b"x" * size))
            reply = p.json_reply()
            self.assertEqual((reply["type"], reply["code"]), ("error", "too_large"), (size, reply))
            self.assertIn(str(MAX_FRAME), reply["message"])
        # Fragments count together: three fragments just over --max-frame in all.
        third = (MAX_FRAME + 3) // 3
        p.send(frame(TEXT, b"y" * third, fin=False) + frame(CONT, b"y" * third, fin=False) +
               frame(CONT, b"y" * (MAX_FRAME + 1 - 2 * third)))
        self.assertEqual(p.json_reply()["code"], "too_large")
        # A produce at exactly --max-frame still goes through, on the same session.
        doc = {"id": "fits", "topic": t, "message": ""}
        doc["message"] = "m" * (MAX_FRAME - len(json.dumps(doc)))
        text = json.dumps(doc)
        self.assertEqual(len(text), MAX_FRAME)
        p.send(frame(TEXT, text))
        ack = p.json_reply()
        self.assertEqual((ack["type"], ack["id"]), ("ack", "fits"), ack)
        self.assert_still_serving()

    def test_messages_over_the_limit_get_1009(self):
        over = MESSAGE_LIMIT + 1
        # The whole frame: the server may stop reading (and reset) before it is all sent.
        self.assert_fails_with(frame(TEXT, b"z" * over), 1009)
        # Decided from the header: the payload is never sent.
        self.assert_fails_with(frame_header(BINARY, over), 1009)
        self.assert_fails_with(frame_header(BINARY, 1 << 40), 1009)
        # Across fragments, at the fragment that passes the limit.
        self.assert_fails_with(frame(BINARY, b"a" * (MESSAGE_LIMIT - 10), fin=False) + frame_header(CONT, 11), 1009)
        self.assert_still_serving()

    # ---- control frames, fragments, closing --------------------------------------

    def test_ping_gets_a_pong_with_the_same_payload(self):
        p = self.peer().upgrade()
        for payload in (b"", b"hello", bytes(range(125))):
            p.send(frame(PING, payload))
            self.assertEqual(p.next_frame(), (PONG, payload))
        # An unsolicited pong is allowed and answered with nothing.
        p.send(frame(PONG, b"unsolicited") + frame(PING, b"after"))
        self.assertEqual(p.next_frame(), (PONG, b"after"))
        # A ping over 125 bytes is a protocol error.
        p.send(frame(PING, b"p" * 126))
        self.assertEqual(p.closed_with()[0], 1002)
        self.assert_still_serving()

    def test_fragmented_produce_with_a_ping_between_reaches_kafka(self):
        t = self.create(self.topic())
        text = json.dumps({"id": "frag", "topic": t, "message": "in three fragments \u00e9\u20ac"}, ensure_ascii=False).encode()
        # Cut inside the multi-byte characters too.
        cut1, cut2 = 10, text.index(b"\xe2\x82") + 1
        p = self.peer().upgrade()
        p.send(frame(TEXT, text[:cut1], fin=False))
        p.send(frame(PING, b"between"))
        self.assertEqual(p.next_frame(), (PONG, b"between"), "a ping is answered in the middle of a message")
        p.send(frame(CONT, text[cut1:cut2], fin=False))
        p.send(frame(CONT, text[cut2:]))
        ack = p.json_reply()
        self.assertEqual((ack["type"], ack["id"], ack["topic"]), ("ack", "frag", t), ack)
        messages = [e["message"] for e in self.tail_json(t)]
        self.assertIn("in three fragments \u00e9\u20ac", messages)
        self.assert_still_serving()

    def test_client_close_is_echoed_and_the_server_closes_tcp(self):
        p = self.peer().upgrade()
        p.send(frame(CLOSE, close_payload(1000, b"bye")))
        self.assertEqual(p.closed_with(), (1000, b""))
        self.assertTrue(p.server_closed_tcp(), "the server closes TCP first, without waiting for us")
        # A close without a code is answered with a close without a code.
        q = self.peer().upgrade()
        q.send(frame(CLOSE))
        self.assertEqual(q.next_frame(), (CLOSE, b""))
        self.assertTrue(q.server_closed_tcp())
        # Frames after the close are not answered.
        r = self.peer().upgrade()
        r.send(frame(CLOSE, close_payload(4001)) + frame(PING, b"late"))
        self.assertEqual(r.next_frame(), (CLOSE, close_payload(4001)))
        self.assertTrue(r.server_closed_tcp(), "no pong after the close")
        # An invalid close code is a protocol error.
        self.assert_fails_with(frame(CLOSE, close_payload(1005)), 1002)
        self.assert_still_serving()

    def test_nothing_follows_the_servers_close_frame(self):
        # RFC 6455 section 5.5.1: no data frame after a Close. The server
        # closes an idle client and waits for its answer (up to 3 s,
        # Connection::Limits::close_timeout); messages published meanwhile
        # must not be sent behind the close frame.
        t = self.create(self.topic())
        bg = self.serve("--idle-timeout", "1", "--ping-interval", "60")
        p = Peer(bg.address)
        self.addCleanup(p.close)
        p.upgrade("/v2/broker/?topics=" + t)
        self.assertEqual(p.json_reply()["type"], "subscribed")
        self.assertEqual(p.closed_with(), (1000, b"idle timeout"))
        self.send(t, "after-the-close")
        late = []
        try:
            while True:
                late.append(p.next_frame(timeout=STEP, skip_pings=False))
        except EOFError:
            pass
        self.assertEqual(late, [], "frames after the server's close frame")

    # ---- handshakes ----------------------------------------------------------------

    def test_request_head_trickled_one_byte_at_a_time_still_upgrades(self):
        p = self.peer()
        for byte in upgrade_head():
            p.send(bytes([byte]))
            # Long enough for the server to read most bytes on their own, so
            # every incomplete-head path runs; ~250 bytes take about half a second.
            time.sleep(0.002)
        status, headers, _ = p.http_answer()
        self.assertEqual(status, 101)
        self.assertEqual(headers.get("upgrade", "").lower(), "websocket")
        self.round_trip(p, "trickled")
        self.assert_still_serving()

    def test_frames_right_behind_the_head_are_read(self):
        p = self.peer()
        p.send(upgrade_head() + frame(PING, b"early") + frame(TEXT, "{early"))
        self.assertEqual(p.http_answer()[0], 101)
        self.assertEqual(p.next_frame(), (PONG, b"early"))
        self.assertEqual(p.json_reply()["code"], "bad_json")
        self.assert_still_serving()

    def test_http_client_that_half_closes_gets_the_whole_answer(self):
        # Like `printf 'GET / ...' | nc -N`: the request, then FIN.
        for path, needle in (("/", b"</html>"), ("/metrics", b"kws_serve_connections"), ("/healthz", b"ok")):
            p = self.peer()
            p.send(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            p.sock.shutdown(socket.SHUT_WR)
            status, _, body = p.http_answer()
            self.assertEqual(status, 200, path)
            self.assertIn(needle, body.lower(), path)
            self.assertTrue(p.server_closed_tcp(), path)
        self.assert_still_serving()

    def test_request_head_over_16k_gets_431(self):
        p = self.peer()
        p.send_until_refused(upgrade_head(extra="X-Pad: %s\r\n" % ("a" * MAX_REQUEST_HEAD)))
        status, headers, body = p.http_answer()
        self.assertEqual(status, 431, body)
        self.assertTrue(p.server_closed_tcp())
        # One that fits (about 15 KiB) upgrades.
        q = self.peer()
        q.send(upgrade_head(extra="X-Pad: %s\r\n" % ("a" * (MAX_REQUEST_HEAD - 1024))))
        self.assertEqual(q.http_answer()[0], 101)
        self.round_trip(q, "big head")
        self.assert_still_serving()

    def test_silent_and_half_sent_handshakes_are_dropped_after_the_handshake_timeout(self):
        # Slow by design: the timeout is 10 s and kws serve has no flag for it.
        start = time.monotonic()
        silent = self.peer()
        half = self.peer()
        half.send(upgrade_head()[:40])
        for p in (silent, half):
            self.assertTrue(p.server_closed_tcp(timeout=HANDSHAKE_TIMEOUT + 5),
                            "still open %.1f s after connecting" % (time.monotonic() - start))
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, HANDSHAKE_TIMEOUT - 0.5)
        self.assertLess(elapsed, HANDSHAKE_TIMEOUT + 5)
        self.assert_still_serving()

    def test_version_8_gets_426_naming_13(self):
        p = self.peer()
        p.send(upgrade_head(version="8"))
        status, headers, body = p.http_answer()
        self.assertEqual(status, 426, body)
        self.assertEqual(headers.get("sec-websocket-version"), "13")
        self.assertTrue(p.server_closed_tcp())
        self.assert_still_serving()

    def test_malformed_upgrades_get_400(self):
        cases = {
            "no Host": upgrade_head().replace(b"Host: 127.0.0.1\r\n", b""),
            "HTTP/1.0": upgrade_head().replace(b"HTTP/1.1", b"HTTP/1.0"),
            "short key": upgrade_head().replace(b"Sec-WebSocket-Key: ", b"Sec-WebSocket-Key: AAAA"),
            "no Connection: Upgrade": upgrade_head().replace(b"Connection: Upgrade", b"Connection: keep-alive"),
            "obs-fold": upgrade_head().replace(b"Upgrade: websocket\r\n", b"Upgrade: websocket\r\n  folded\r\n"),
            "bad header name": upgrade_head().replace(b"Host:", b"Ho st:"),
        }
        for what, head in cases.items():
            p = self.peer()
            p.send(head)
            status, _, body = p.http_answer()
            self.assertEqual(status, 400, (what, body))
            self.assertTrue(body.strip(), "a 400 says why: " + what)
            self.assertTrue(p.server_closed_tcp(), what)
        self.assert_still_serving()

    def test_post_to_metrics_gets_405(self):
        p = self.peer()
        p.send(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        status, headers, _ = p.http_answer()
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "GET, HEAD")
        self.assertTrue(p.server_closed_tcp())
        # GET still works.
        q = self.peer()
        q.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = q.http_answer()
        self.assertEqual(status, 200)
        self.assertIn(b"kws_serve_connections", body)
        self.assert_still_serving()

    def test_head_gets_the_headers_of_get_and_no_body(self):
        # RFC 9110 section 9.3.2: the same headers as a GET, Content-Length
        # of the GET's body included, and no content.
        for path in ("/", "/healthz", "/v2/broker/", "/nowhere"):
            g = self.peer()
            g.send(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            get_status, get_headers, get_body = g.http_answer()
            h = self.peer()
            h.send(("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            status, headers, _ = h.http_answer(with_body=False)
            self.assertEqual((status, headers), (get_status, get_headers), path)
            self.assertEqual(int(headers["content-length"]), len(get_body), path)
            self.assertEqual(h.buf, b"", path)
            self.assertTrue(h.server_closed_tcp(), path)  # and nothing after the head
        self.assert_still_serving()

    # ---- fan-out ---------------------------------------------------------------------

    def test_a_hundred_clients_receive_the_same_messages(self):
        t = self.create(self.topic())
        clients = []
        for _ in range(100):
            p = self.peer()
            p.send(upgrade_head("/v2/broker/?topics=" + t))
            clients.append(p)
        for p in clients:
            status, _, body = p.http_answer()
            self.assertEqual(status, 101, body)
        for p in clients:
            reply = p.json_reply()
            self.assertEqual((reply["type"], reply["topic"]), ("subscribed", t), reply)
        count = 50
        sent = ["fan-%03d" % i for i in range(count)]
        self.send(t, input="".join(m + "\n" for m in sent))

        got = {p: [] for p in clients}
        sel = selectors.DefaultSelector()
        for p in clients:
            p.sock.setblocking(False)
            sel.register(p.sock, selectors.EVENT_READ, p)
        deadline = time.monotonic() + 30
        waiting = set(clients)
        while waiting:
            self.assertLess(time.monotonic(), deadline, "%d clients still short of %d messages: %r" % (
                len(waiting), count, sorted(len(got[p]) for p in waiting)[:10]))
            for key, _ in sel.select(timeout=1):
                p = key.data
                chunk = p.sock.recv(1 << 16)
                self.assertTrue(chunk, "the server closed a subscriber")
                p.buf += chunk
                while True:
                    parsed = p._parse()
                    if parsed is None:
                        break
                    opcode, payload = parsed
                    if opcode == PING:
                        continue
                    self.assertEqual(opcode, TEXT)
                    env = json.loads(payload)
                    got[p].append((env["partition"], env["offset"], env["message"]))
                if len(got[p]) >= count:
                    waiting.discard(p)
        sel.close()
        first = got[clients[0]]
        self.assertEqual(sorted(m for _, _, m in first), sent)
        for p in clients:
            self.assertEqual(got[p], first, "every client gets the same frames in the same order")
        for p in clients:
            p.sock.setblocking(True)
        self.assert_still_serving()

    def test_a_client_that_reads_slowly_gets_every_byte_in_order(self):
        # A small receive window and a pause before reading: the server's
        # writes then stop part-way through a frame and go on from there
        # (Connection::start_write), which must neither repeat nor skip bytes.
        # More than the kernel buffers on both ends hold (tcp_wmem tops out at
        # 4 MiB here), within a client buffer that keeps the client. Each
        # partition gets under the ~5 MiB the embedded broker keeps, so
        # retention cannot take any of it (that is test_serve.py's Loss).
        bg = self.serve("--client-buffer", "64M")
        t = self.create(self.topic())
        host, port = bg.address.rsplit(":", 1)
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(STEP)
        raw.connect((host, int(port)))
        p = Peer.__new__(Peer)
        p.sock, p.buf = raw, b""
        self.addCleanup(p.close)
        p.upgrade("/v2/broker/?topics=" + t)
        reply = p.json_reply()
        self.assertEqual(reply["type"], "subscribed")
        start = reply["start_offsets"]
        per_partition = 1200  # 2 x 1,200 x 3 KB: 7.2 MB in all, 3.6 MB per partition
        sent = {}
        for partition in (0, 1):
            sent[partition] = ["%d-%04d:" % (partition, i) + chr(ord("a") + i % 26) * 3000
                               for i in range(per_partition)]
            self.send(t, "-p", str(partition), input="".join(m + "\n" for m in sent[partition]))
        time.sleep(1.5)  # the server fills what the socket takes and waits
        got = {0: [], 1: []}
        while len(got[0]) + len(got[1]) < 2 * per_partition:
            opcode, payload = p.next_frame(timeout=30)
            self.assertEqual(opcode, TEXT, payload[:200])
            env = json.loads(payload)
            self.assertIn("offset", env, "only messages are expected here: %r" % env)
            partition = env["partition"]
            # Every offset, from where the subscription started, none skipped.
            self.assertEqual(env["offset"], start[partition] + len(got[partition]), "offsets in order, no gap")
            got[partition].append(env["message"])
        self.assertEqual(got, sent, "every message once, intact, in order")
        self.assert_still_serving()


if __name__ == "__main__":
    kwstest.main()
