"""kws serve's transforms (issue 16, docs/PROTOCOL.md "Transforms",
docs/PLUGINS.md), end to end with python3-websockets as the client and
kws send/tail as the Kafka side: --read-only, --produce-time-header,
--produce-header, --topics-allow, --topic-prefix, --add-field and --plugin
(the example plugin, both directions), and the errors for bad values."""

import asyncio
import json
import os
import time

import kwstest
from test_serve_streams import SseReader
from test_serve import ServeTestCase, STEP, is_type, kws_connect, recv_json, recv_until, run, \
    text_string_to_metric_families

try:
    import websockets
except ImportError:  # reported by main() as a loud skip
    websockets = None

EXAMPLE_PLUGIN = os.environ.get("KWS_EXAMPLE_PLUGIN", "")


def headers_of(env):
    return {name.decode(): (value.decode() if value is not None else None)
            for name, value in kwstest.header_pairs(env)}


def now_ms():
    return int(time.time() * 1000)


class ReadOnly(ServeTestCase):
    def test_every_produce_is_refused_and_the_session_goes_on(self):
        t = self.create(self.topic())
        bg = self.serve("--read-only")

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + t)) as ws:
                await recv_until(ws, is_type("subscribed"))
                await ws.send(json.dumps({"topic": t, "message": "no", "id": 1}))
                err = await recv_json(ws)
                self.assertEqual((err["type"], err["code"], err["id"], err["topic"]), ("error", "not_allowed", 1, t), err)
                self.assertEqual(err["message"], "this bridge is read-only")
                # A binary produce too; the error frame has no id.
                await ws.send(bytes([len(t)]) + t.encode() + b"binary")
                err = await recv_json(ws)
                self.assertEqual((err["code"], err["message"]), ("not_allowed", "this bridge is read-only"), err)
                # Reading goes on.
                self.send(t, "-p", "0", "from kafka")
                seen = await recv_until(ws, lambda d: d.get("message") == "from kafka")
                self.assertEqual([d for d in seen if d.get("type") == "error"], [])
            # A kafka-websocket client cannot be told: logged for the operator,
            # and its session goes on.
            async with websockets.connect(self.ws_url(bg, "topics=" + t)) as ws:
                await ws.send(json.dumps({"topic": t, "message": "legacy"}))
                kwstest.wait_until(lambda: b"read-only" in bg.err, what="a log line for the kafka-websocket client")
                await asyncio.wait_for(await ws.ping(), STEP)

        run(go())
        envs = self.tail_json(t)
        self.assertEqual([kwstest.envelope_bytes(e, "message") for e in envs], [b"seed", b"from kafka"])


class ProduceHeaders(ServeTestCase):
    def test_time_and_fixed_headers_on_produced_records(self):
        t = self.create(self.topic())
        bg = self.serve("--produce-time-header", "kws-received", "--produce-header", "source=bridge-1",
                        "--produce-header", "env=test")

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"topic": t, "message": "m", "id": 1,
                                          "headers": [{"name": "source", "value": "spoofed"},
                                                      {"name": "mine", "value": "kept"}]}))
                ack = await recv_json(ws)
                self.assertEqual(ack["type"], "ack", ack)

        before = now_ms()
        run(go())
        after = now_ms()
        (env,) = [e for e in self.tail_json(t) if kwstest.envelope_bytes(e, "message") == b"m"]
        h = headers_of(env)
        self.assertEqual(h["source"], "bridge-1")  # the client's own of that name is replaced
        self.assertEqual(h["env"], "test")
        self.assertEqual(h["mine"], "kept")
        self.assertEqual([n for n, _ in kwstest.header_pairs(env)].count(b"source"), 1)
        self.assertRegex(h["kws-received"], r"^\d+$")
        self.assertTrue(before <= int(h["kws-received"]) <= after, (before, h, after))

    def test_same_values_from_env_and_config(self):
        t = self.create(self.topic())
        bg = self.serve(env=kwstest.clean_env(KWS_SERVE_PRODUCE_HEADERS="from=env", KWS_SERVE_PRODUCE_TIME_HEADER="rt"))

        async def go():
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"topic": t, "message": "m", "id": 1}))
                self.assertEqual((await recv_json(ws))["type"], "ack")

        run(go())
        (env,) = [e for e in self.tail_json(t) if kwstest.envelope_bytes(e, "message") == b"m"]
        self.assertEqual(headers_of(env)["from"], "env")
        self.assertIn("rt", headers_of(env))


class TopicsAllow(ServeTestCase):
    def test_topics_outside_the_list_are_refused_at_every_door(self):
        tag = self.topic()[-8:]
        ok = self.create("allowed-" + tag)
        other = self.create("other-" + tag)
        bg = self.serve("--topics-allow", "nothing-else,allowed-*")

        async def go():
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as refused:
                async with websockets.connect(self.ws_url(bg, "topics=" + other)):
                    pass
            self.assertEqual(refused.exception.status_code, 403)
            async with kws_connect(self.ws_url(bg, "topics=" + ok)) as ws:
                await recv_until(ws, is_type("subscribed"))
                await ws.send(json.dumps({"type": "subscribe", "topic": other, "id": 1}))
                err = await recv_json(ws)
                self.assertEqual((err["type"], err["code"], err["topic"]), ("error", "not_allowed", other), err)
                await ws.send(json.dumps({"topic": other, "message": "m", "id": 2}))
                err = await recv_json(ws)
                self.assertEqual((err["code"], err["id"]), ("not_allowed", 2), err)
                await ws.send(json.dumps({"topic": ok, "message": "m", "id": 3}))
                ack = (await recv_until(ws, is_type("ack")))[-1]  # its own message may come first
                self.assertEqual((ack["type"], ack["id"]), ("ack", 3), ack)

        run(go())
        self.assertEqual([kwstest.envelope_bytes(e, "message") for e in self.tail_json(other)], [b"seed"])


class TopicPrefix(ServeTestCase):
    def test_clients_see_their_names_and_kafka_holds_the_prefixed_ones(self):
        name = self.topic()
        kafka_name = "public." + name
        self.create(kafka_name)
        bg = self.serve("--topic-prefix", "public.")

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + name)) as ws, \
                    websockets.connect(self.ws_url(bg, "topics=" + name + "&offset=latest"),
                                       subprotocols=["kafka-binary"]) as binary:
                sub = (await recv_until(ws, is_type("subscribed")))[-1]
                self.assertEqual(sub["topic"], name)
                # The offset parameter makes it a kws client: its replies are text frames.
                sub = json.loads(await asyncio.wait_for(binary.recv(), STEP))
                self.assertEqual((sub["type"], sub["topic"]), ("subscribed", name))
                await ws.send(json.dumps({"topic": name, "message": "from ws", "partition": 0, "id": 1}))
                seen = []
                while not (any(d.get("type") == "ack" for d in seen) and any(d.get("message") == "from ws" for d in seen)):
                    seen.append(await recv_json(ws))
                ack = [d for d in seen if d.get("type") == "ack"]
                self.assertEqual(ack[0]["topic"], name, seen)
                self.assertEqual([d["topic"] for d in seen if d.get("message") == "from ws"], [name])
                self.send(kafka_name, "-p", "0", "from kafka")
                env = (await recv_until(ws, lambda d: d.get("message") == "from kafka"))[-1]
                self.assertEqual(env["topic"], name)
                # kafka-binary frames carry the client's name too.
                frames = []
                while len(frames) < 2:
                    frame = await asyncio.wait_for(binary.recv(), STEP)
                    if isinstance(frame, bytes):
                        frames.append(frame)
                for frame in frames:
                    self.assertEqual(frame[1:1 + frame[0]].decode(), name)
                self.assertEqual([f[1 + f[0]:] for f in frames], [b"from ws", b"from kafka"])

        run(go())
        self.assertEqual([kwstest.envelope_bytes(e, "message") for e in self.tail_json(kafka_name)],
                         [b"seed", b"from ws", b"from kafka"])
        # Nothing went to the unprefixed name.
        topics = self.topics_json()
        self.assertNotIn(name, [t["name"] for t in topics["topics"]])


    def test_group_sessions_and_errors_speak_the_clients_names(self):
        name = self.topic()
        self.create("public." + name)
        bg = self.serve("--topic-prefix", "public.")

        async def go():
            url = self.ws_url(bg, "topics=%s&group.id=g-%s&offset=latest" % (name, name))
            async with kws_connect(url) as ws:
                sub = await recv_json(ws, timeout=30)
                self.assertEqual((sub["type"], sub.get("topic", name)), ("subscribed", name), sub)
                self.send("public." + name, "-p", "0", "to the group")
                env = (await recv_until(ws, lambda d: d.get("message") == "to the group", timeout=15))[-1]
                self.assertEqual(env["topic"], name)
            async with kws_connect(self.ws_url(bg)) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": "nosuch-" + name, "id": 1}))
                err = await recv_json(ws)
                self.assertEqual((err["code"], err["topic"]), ("unknown_topic", "nosuch-" + name), err)
                self.assertIn("nosuch-" + name, err["message"])
                self.assertNotIn("public.", err["message"])

        run(go(), timeout=90)


    def test_server_sent_events_and_their_resume_ids_speak_the_clients_names(self):
        name = self.topic()
        self.create("public." + name)
        self.send("public." + name, "-p", "0", '{"n": 1}')
        bg = self.serve("--topic-prefix", "public.", "--add-field", "at=bridge_time")
        reader = SseReader(bg.address, "/v2/sse?topics=%s&offset=earliest" % name)
        self.assertEqual(reader.status, 200, reader.head)
        events = reader.events(3)
        reader.close()
        messages = [json.loads(e["data"]) for e in events if "data" in e and "event" not in e]
        self.assertEqual([m["topic"] for m in messages], [name, name], events)
        self.assertEqual(messages[0]["message"], "seed")
        self.assertEqual(sorted(json.loads(messages[1]["message"])), ["at", "n"])
        ids = [e["id"] for e in events if "id" in e]
        self.assertTrue(ids and ids[-1].startswith(name + ":"), events)


class AddField(ServeTestCase):
    def test_fields_added_to_json_objects_once_for_every_client(self):
        t = self.create(self.topic())
        bg = self.serve("--add-field", "at=bridge_time", "--add-field", 'region="eu"')

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + t)) as a, \
                    websockets.connect(self.ws_url(bg, "topics=" + t)) as b:
                await recv_until(a, is_type("subscribed"))
                await self.follow(t, b)
                before = now_ms()
                self.send(t, "-p", "0", '{"price": 1.5}')
                self.send(t, "-p", "0", "plain")
                self.send(t, "-p", "0", '{"at": "mine"}')
                after = now_ms()
                got_a = [d for d in await recv_until(a, lambda d: d.get("message", "").startswith('{"at": "mine"'))
                         if "message" in d and not d["message"].startswith("probe-")]
                got_b = []
                while len(got_b) < 3:
                    got_b.append(json.loads(await asyncio.wait_for(b.recv(), STEP)))
                self.assertEqual([d["message"] for d in got_a], [d["message"] for d in got_b])
                first = json.loads(got_a[0]["message"])
                self.assertEqual((first["price"], first["region"]), (1.5, "eu"))
                self.assertTrue(before <= first["at"] <= after + 5000, (before, first, after))
                self.assertTrue(got_a[0]["message"].startswith('{"price": 1.5,'), got_a[0])
                self.assertEqual(got_a[1]["message"], "plain")
                self.assertEqual(json.loads(got_a[2]["message"]), {"at": "mine", "region": "eu"})

        run(go())
        # Kafka keeps what was sent: fields are for clients only.
        stored = [kwstest.envelope_bytes(e, "message") for e in self.tail_json(t)]
        self.assertIn(b'{"price": 1.5}', stored)
        self.assertFalse([m for m in stored if b"region" in m], stored)

    async def follow(self, t, ws):
        """Sends probes until the kafka-websocket client `ws` gets one: it is live."""
        for i in range(50):
            self.send(t, "-p", "0", "probe-%d" % i)
            try:
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    if frame["message"].startswith("probe-"):
                        # Drain the other probes that may follow.
                        try:
                            while True:
                                await asyncio.wait_for(ws.recv(), 0.3)
                        except asyncio.TimeoutError:
                            return
            except asyncio.TimeoutError:
                continue
        self.fail("the kafka-websocket client never went live")


class PluginExample(ServeTestCase):
    def setUp(self):
        if not EXAMPLE_PLUGIN or not os.path.exists(EXAMPLE_PLUGIN):
            self.fail("KWS_EXAMPLE_PLUGIN does not name the built example plugin: %r" % EXAMPLE_PLUGIN)

    def test_incoming_and_outgoing_through_the_example_plugin(self):
        t = self.create(self.topic())
        bg = self.serve("--plugin", EXAMPLE_PLUGIN)
        self.assertIn(b"example", bg.err)  # the log names the plugin it loaded

        async def go():
            async with kws_connect(self.ws_url(bg, "topics=" + t)) as ws:
                await recv_until(ws, is_type("subscribed"))
                # Incoming: upper-cased, a header added; key "drop" refused.
                await ws.send(json.dumps({"topic": t, "message": "hello", "partition": 0, "id": 1}))
                await ws.send(json.dumps({"topic": t, "message": "x", "key": "drop", "id": 2}))
                await ws.send(json.dumps({"topic": t, "message": "x", "key": "fail", "id": 3}))
                by_id, replies = {}, []
                while len(by_id) < 3:  # errors come at once, the ack once Kafka stored the message
                    replies.append(await recv_json(ws))
                    if "id" in replies[-1]:
                        by_id[replies[-1]["id"]] = replies[-1]
                self.assertEqual(by_id[1]["type"], "ack", replies)
                self.assertEqual((by_id[2]["type"], by_id[2]["code"]), ("error", "not_allowed"), replies)
                self.assertIn("dropped", by_id[2]["message"])
                self.assertEqual((by_id[3]["type"], by_id[3]["code"]), ("error", "not_allowed"), replies)
                # The plugin may move a produced message to another topic; the ack names it.
                await ws.send(json.dumps({"topic": "rename-me", "message": "moved", "id": 4}))
                replies += await recv_until(ws, lambda d: d.get("id") == 4)
                moved = replies[-1]
                self.assertEqual((moved["type"], moved["topic"]), ("ack", "renamed"), moved)
                # Outgoing: "secret" redacted, a header added; key "drop-out" never shown.
                self.send(t, "-p", "0", "-k", "drop-out", "hidden")
                self.send(t, "-p", "0", "my secret")
                seen = await recv_until(ws, lambda d: d.get("message") == "my ******")
                messages = [d for d in replies + seen if "message" in d and "type" not in d]
                self.assertEqual([d["message"] for d in messages], ["HELLO", "my ******"], seen)
                pairs = [[(n.decode(), v.decode()) for n, v in kwstest.header_pairs(d)] for d in messages]
                # HELLO passed the plugin twice: on its way in and on its way out.
                self.assertEqual(pairs, [[("x-example", "incoming"), ("x-example", "outgoing")],
                                         [("x-example", "outgoing")]], messages)

        run(go())
        envs = self.tail_json(t)
        self.assertEqual([kwstest.envelope_bytes(e, "message") for e in envs],
                         [b"seed", b"HELLO", b"hidden", b"my secret"])  # Kafka keeps the originals
        self.assertEqual(headers_of(envs[1])["x-example"], "incoming")
        self.assertEqual([kwstest.envelope_bytes(e, "message") for e in self.tail_json("renamed")], [b"MOVED"])
        self.assertNotIn("rename-me", [x["name"] for x in self.topics_json()["topics"]])
        kwstest.wait_until(lambda: b"returned 7" in bg.err, what="the plugin's failure in the log")
        m = self.metrics(bg)
        self.assertEqual(m["kws_serve_plugin_dropped_total{direction=incoming}"], 2)
        self.assertEqual(m["kws_serve_plugin_dropped_total{direction=outgoing}"], 1)
        self.assertEqual(m["kws_serve_plugin_failures_total"], 1)


class BadValues(ServeTestCase):
    def refused(self, *args, env=None):
        r = self.kws("serve", "-l", "127.0.0.1:0", *args, rc=2, timeout=20, env=env)
        self.assertEqual(r.out, b"", r)
        return r.stderr

    def test_bad_transform_values_are_usage_errors_naming_where(self):
        scratch = kwstest.scratch_dir()
        not_a_library = os.path.join(scratch, "plain.so")
        with open(not_a_library, "w") as f:
            f.write("not ELF\n")
        self.assertIn("--plugin", self.refused("--plugin", "/nonexistent/plugin.so"))
        err = self.refused("--plugin", not_a_library)
        self.assertIn("cannot load it", err)
        self.assertIn(not_a_library, err)
        err = self.refused("--plugin", os.environ["KWS_BIN"])
        self.assertIn(os.environ["KWS_BIN"], err)
        self.assertIn("--add-field: 'region=eu'", self.refused("--add-field", "region=eu"))
        self.assertIn("KWS_SERVE_ADD_FIELDS: 'noequals'",
                      self.refused(env=kwstest.clean_env(KWS_SERVE_ADD_FIELDS="noequals")))
        self.assertIn("--topic-prefix: 'bad/'", self.refused("--topic-prefix", "bad/"))
        self.assertIn("--produce-header: 'novalue'", self.refused("--produce-header", "novalue"))
        self.assertIn("--topics-allow: 'a/b*'", self.refused("--topics-allow", "a/b*"))
        self.assertIn("--read-only", self.kws("serve", "--help", brokers=False).stdout)


if __name__ == "__main__":
    kwstest.main(requires_modules={"websockets": websockets, "prometheus_client": text_string_to_metric_families})
