#!/usr/bin/env python3
"""kws serve's limits for a gateway facing the internet (issue 15,
docs/SECURITY.md "Limits"): the per-IP connection cap (429 at accept, and
the count back to where it was once clients leave), --allow-origin (403 for
a browser page from elsewhere; no Origin, no check), the produce rate
(rate_limited, then 1008 for a client that keeps on), the control-frame
rate (the same, for subscribe, unsubscribe, topics and auth frames) and
--max-subscriptions; each counted in /metrics. Every test binds 127.0.0.1
on a free port; waits poll, none relies on timing tighter than a second."""
import asyncio
import base64
import json
import os
import socket
import time

import kwstest
from test_serve import STEP, RawClient, ServeTestCase, kws_connect, recv_until, run, websockets


def host_port(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def handshake(address, path="/v2/broker/", headers=(), method_get_only=False):
    """One raw request on a fresh socket: an upgrade (or a plain GET with
    method_get_only); returns (status, body text) and the socket, left open."""
    sock = socket.create_connection(host_port(address), timeout=STEP)
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % address]
    if not method_get_only:
        key = base64.b64encode(os.urandom(16)).decode()
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key,
                  "Sec-WebSocket-Version: 13"]
    lines += list(headers)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("closed before an answer: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ")[1])
    if status != 101:
        # Error answers carry Content-Length and end the connection.
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
    return status, rest.decode(errors="replace"), sock


class PerIpCap(ServeTestCase):
    def test_the_cap_refuses_with_429_and_gives_the_place_back_when_a_connection_ends(self):
        bg = self.serve("--max-connections-per-ip", "3", "--limit-loopback", "true")
        # Three places taken three ways: an open session, one in its
        # handshake (a socket that has said nothing), a plain HTTP client
        # waiting on its request.
        session = RawClient(bg.address, "/v2/broker/")
        self.assertEqual(session.status, 101)
        silent = socket.create_connection(host_port(bg.address), timeout=STEP)
        half_request = socket.create_connection(host_port(bg.address), timeout=STEP)
        half_request.sendall(b"GET /healthz HTTP/1.1\r\n")

        # The server accepts in the order the kernel completed the
        # connections, so the next one finds the three counted.
        status, body, sock = handshake(bg.address)
        sock.close()
        self.assertEqual(status, 429, body)
        self.assertIn("serve.max_connections_per_ip", body)
        self.assertIn("127.0.0.1", body)
        # Plain HTTP from the same address is over it too: it would hold a connection.
        status, body, sock = handshake(bg.address, "/healthz", method_get_only=True)
        sock.close()
        self.assertEqual(status, 429, body)

        # Every way of leaving gives a place back: the session closes, the
        # silent socket and the half request are reset or closed.
        session.close()
        silent.close()
        half_request.close()

        def admitted():
            status, _, sock = handshake(bg.address)
            sock.close()
            return status == 101
        kwstest.wait_until(admitted, timeout=STEP, what="room again after the clients left")

        def counted_back():
            values = self.metrics(bg)
            # The metrics request itself is the one connection counted.
            return values["kws_serve_peer_connections"] == 1 and values["kws_serve_peer_addresses"] == 1
        kwstest.wait_until(counted_back, timeout=STEP, what="kws_serve_peer_connections back to 1")
        values = self.metrics(bg)
        self.assertGreaterEqual(values["kws_serve_per_ip_refusals_total"], 2)
        self.assertEqual(values["kws_serve_max_connections_per_ip"], 3)

    def test_loopback_peers_are_not_capped_unless_asked(self):
        bg = self.serve("--max-connections-per-ip", "2")
        held = [RawClient(bg.address, "/v2/broker/") for _ in range(4)]
        self.addCleanup(lambda: [c.close() for c in held])
        self.assertEqual([c.status for c in held], [101] * 4)
        values = self.metrics(bg)
        self.assertEqual(values["kws_serve_per_ip_refusals_total"], 0)
        self.assertEqual(values["kws_serve_peer_connections"], 5)  # four sessions and this request


class Origins(ServeTestCase):
    def test_a_browser_page_from_an_origin_not_allowed_gets_403_and_others_connect(self):
        bg = self.serve("--allow-origin", "https://app.example.com", "--allow-origin", "https://*.example.org")
        cases = [
            (["Origin: https://app.example.com"], 101),
            (["Origin: HTTPS://APP.EXAMPLE.COM"], 101),
            (["Origin: https://shop.eu.example.org"], 101),
            ([], 101),  # no Origin: not a browser, not checked
            (["Origin: https://evil.example.net"], 403),
            (["Origin: https://app.example.com.evil.net"], 403),
            (["Origin: https://example.org"], 403),
            (["Origin: null"], 403),
        ]
        for headers, expected in cases:
            status, body, sock = handshake(bg.address, headers=headers)
            sock.close()
            self.assertEqual(status, expected, (headers, body))
            if expected == 403:
                self.assertIn("origin not allowed", body)
                self.assertIn("serve.allow_origin", body)
        # Plain GETs are not checked: the demo page and health checks answer.
        status, _, sock = handshake(bg.address, "/healthz", headers=["Origin: https://evil.example.net"],
                                    method_get_only=True)
        sock.close()
        self.assertEqual(status, 200)
        self.assertEqual(self.metrics(bg)["kws_serve_origin_refusals_total"], 4)

    def test_python_websockets_with_an_origin(self):
        bg = self.serve("--allow-origin", "https://app.example.com,http://localhost:*")

        async def go(origin):
            try:
                async with websockets.connect(self.ws_url(bg), origin=origin, subprotocols=["kws.v1"]):
                    return 101
            except websockets.exceptions.InvalidStatusCode as e:
                return e.status_code

        self.assertEqual(run(go("http://localhost:5173")), 101)
        self.assertEqual(run(go("https://elsewhere.example.com")), 403)

    def test_the_origins_come_from_the_environment_and_a_bad_one_is_a_usage_error(self):
        env = kwstest.clean_env(KWS_SERVE_ALLOW_ORIGIN="https://app.example.com")
        bg = self.serve(env=env)
        status, _, sock = handshake(bg.address, headers=["Origin: https://evil.example.net"])
        sock.close()
        self.assertEqual(status, 403)
        r = self.kws("serve", "-l", "127.0.0.1:0", "--allow-origin", "https://app.example.com/", rc=2)
        self.assertStderrMentions(r, "--allow-origin", "path")


class ProduceRate(ServeTestCase):
    def test_produces_over_the_rate_get_rate_limited_and_a_client_that_keeps_on_is_closed_with_1008(self):
        bg = self.serve("--produce-rate", "5")
        t = self.topic("rate")

        async def go():
            # max_queue=None: the answers to the flood are not read until the
            # end, and a full queue would stop the library reading the close.
            async with kws_connect(self.ws_url(bg), max_queue=None) as ws:
                for i in range(10):
                    await ws.send(json.dumps({"id": i, "topic": t, "message": "m%d" % i}))
                answers = {}
                while len(answers) < 10:
                    d = (await recv_until(ws, lambda d: d.get("type") in ("ack", "error")))[-1]
                    answers[d["id"]] = d.get("code", d["type"])
                # It keeps on regardless: closed after being told enough times.
                try:
                    for i in range(10, 1000):
                        await ws.send(json.dumps({"id": i, "topic": t, "message": "m"}))
                    await asyncio.wait_for(ws.wait_closed(), STEP)
                except websockets.exceptions.ConnectionClosed:
                    await asyncio.wait_for(ws.wait_closed(), STEP)
                return answers, ws.close_code, ws.close_reason

        answers, code, reason = run(go())
        acked = [i for i, a in answers.items() if a == "ack"]
        limited = [i for i, a in answers.items() if a == "rate_limited"]
        # Five at once (a second's worth), perhaps one more refilled meanwhile.
        self.assertIn(len(acked), (5, 6), answers)
        self.assertEqual(len(acked) + len(limited), 10, answers)
        self.assertEqual(code, 1008)
        self.assertIn("rate", reason)
        values = self.metrics(bg)
        self.assertGreaterEqual(values["kws_serve_rate_limited_total"], 100)
        self.assertEqual(values["kws_serve_rate_limit_closes_total"], 1)
        # What was refused never reached Kafka (a few more refilled while it sent).
        self.assertLess(values["kws_serve_produced_total"], 100)

    def test_a_kafka_websocket_client_over_the_rate_is_counted_and_closed(self):
        bg = self.serve("--produce-rate", "2")
        t = self.topic("legacy-rate")

        async def go():
            async with websockets.connect(self.ws_url(bg, "topics=" + t)) as ws:
                try:
                    for i in range(1000):
                        await ws.send(json.dumps({"topic": t, "message": "m"}))
                except websockets.exceptions.ConnectionClosed:
                    pass
                await asyncio.wait_for(ws.wait_closed(), STEP)
                return ws.close_code

        self.assertEqual(run(go()), 1008)
        values = self.metrics(bg)
        self.assertEqual(values["kws_serve_rate_limit_closes_total"], 1)
        self.assertGreaterEqual(values["kws_serve_unsent_notices_total"], 100)
        # Told to the operator instead (the first few problems of a client).
        kwstest.wait_until(lambda: b"rate_limited" in bg.err, timeout=STEP, what="a warning naming rate_limited")


class ControlRate(ServeTestCase):
    def test_control_frames_over_the_rate_get_rate_limited_and_a_client_that_keeps_on_is_closed_with_1008(self):
        # Subscribe, unsubscribe, topics and auth frames each cost the hub or
        # the token verifier work: --control-rate bounds them per session,
        # apart from produces.
        bg = self.serve("--control-rate", "5")
        t = self.topic("control")
        self.create(t)

        async def go():
            async with kws_connect(self.ws_url(bg), max_queue=None) as ws:
                for i in range(10):
                    await ws.send(json.dumps({"type": "topics", "id": i}))
                answers, message = {}, ""
                while len(answers) < 10:
                    d = (await recv_until(ws, lambda d: d.get("type") in ("topics", "error")))[-1]
                    answers[d["id"]] = d.get("code", d["type"])
                    if d["type"] == "error":
                        message = d.get("message", "")
                # Produces are not control frames.
                await ws.send(json.dumps({"topic": t, "message": "m", "id": "p"}))
                produced = (await recv_until(ws, lambda d: d.get("id") == "p", timeout=15))[-1]
                try:
                    for i in range(10, 1000):
                        await ws.send(json.dumps({"type": "subscribe", "topics": [t], "id": i}))
                    await asyncio.wait_for(ws.wait_closed(), STEP)
                except websockets.exceptions.ConnectionClosed:
                    await asyncio.wait_for(ws.wait_closed(), STEP)
                return answers, message, produced, ws.close_code, ws.close_reason

        answers, message, produced, code, reason = run(go())
        answered = [i for i, a in answers.items() if a == "topics"]
        limited = [i for i, a in answers.items() if a == "rate_limited"]
        self.assertIn(len(answered), (5, 6), answers)
        self.assertEqual(len(answered) + len(limited), 10, answers)
        self.assertIn("serve.control_rate", message)
        self.assertEqual(produced["type"], "ack", produced)
        self.assertEqual(code, 1008)
        self.assertIn("control frame rate limit", reason)
        values = self.metrics(bg)
        self.assertEqual(values["kws_serve_rate_limit_closes_total"], 1)
        self.assertGreaterEqual(values["kws_serve_rate_limited_total"], 100)

    def test_the_rate_comes_from_the_environment_and_0_turns_it_off(self):
        bg = self.serve(env={"KWS_SERVE_CONTROL_RATE": "0"})

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                for i in range(300):
                    await ws.send(json.dumps({"type": "topics", "id": i}))
                return [(await recv_until(ws, lambda d: d.get("id") == i))[-1]["type"] for i in range(300)]

        self.assertEqual(set(run(go())), {"topics"})


class Subscriptions(ServeTestCase):
    def test_max_subscriptions_at_connect_and_at_run_time(self):
        bg = self.serve("--max-subscriptions", "2")
        a, b, c = self.topic("a"), self.topic("b"), self.topic("c")
        for name in (a, b, c):
            self.create(name)
        status, body, sock = handshake(bg.address, "/v2/broker/?topics=%s,%s,%s" % (a, b, c))
        sock.close()
        self.assertEqual(status, 400, body)
        self.assertIn("serve.max_subscriptions", body)

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=%s,%s" % (a, b))) as ws:
                await recv_until(ws, lambda d: d.get("type") == "subscribed")
                await ws.send(json.dumps({"type": "subscribe", "topic": c, "id": "c"}))
                refused = (await recv_until(ws, lambda d: d.get("id") == "c"))[-1]
                # Producing to a third topic is not subscribing to it.
                await ws.send(json.dumps({"topic": c, "message": "m", "id": "p"}))
                produced = (await recv_until(ws, lambda d: d.get("id") == "p", timeout=15))[-1]
                return refused, produced

        refused, produced = run(go())
        self.assertEqual((refused["type"], refused.get("code")), ("error", "topic_limit"), refused)
        self.assertIn("serve.max_subscriptions", refused.get("message", ""))
        self.assertEqual(produced["type"], "ack", produced)
        self.assertEqual(self.metrics(bg)["kws_serve_subscription_limit_refusals_total"], 2)


if __name__ == "__main__":
    kwstest.main(requires_modules={"websockets": websockets})
