"""kws_bench_feed (bench/ingest_feed.cpp), the feed server of
scripts/bench-ingest, against python3-websockets as an independent client:
its text frames in both length forms it uses, pings answered with their
payload, client frames of every length form read past (masked, across the
key's 4-byte boundary), and the close echoed. It is not part of kws, but
the ingest benchmarks measure through it, so a framing error there would
show up as a kws ingest bug."""

import asyncio
import json
import os
import re
import select
import subprocess

import kwstest

try:
    import websockets
except ImportError:  # reported by main() as a loud skip
    websockets = None

FEED = os.environ.get("KWS_BENCH_FEED") or os.path.normpath(
    os.path.join(kwstest.HERE, "..", "..", "build", "bench", "kws_bench_feed"))
STEP = 10  # seconds any single wait may take


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Feed:
    """A running kws_bench_feed and the port it printed."""

    def __init__(self, *args):
        self.cmd = [FEED] + [str(a) for a in args]
        self.proc = kwstest.spawn(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        # The port comes first, at once; never wait on the pipe unbounded.
        ready, _, _ = select.select([self.proc.stdout], [], [], STEP)
        line = self.proc.stdout.readline().decode() if ready else ""
        match = re.fullmatch(r"PORT=(\d+)\n", line)
        if not match:
            self.proc.kill()
            raise AssertionError("%s printed %r, not PORT=<port>; stderr: %s" % (
                self.cmd, line, self.proc.stderr.read().decode(errors="replace")))
        self.url = "ws://127.0.0.1:%s/" % match.group(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


class BenchFeedTest(kwstest.KwsTestCase):
    def test_messages_are_text_frames_of_the_given_size(self):
        # 100 and 125 bytes: the 7-bit length; 126 and 65535: the 16-bit one.
        for size in (100, 125, 126, 300, 65535):
            with self.subTest(size=size), Feed("--size", size, "--count", 3) as feed:
                async def receive():
                    async with websockets.connect(feed.url, max_size=1 << 20) as ws:
                        return [await asyncio.wait_for(ws.recv(), STEP) for _ in range(3)]

                messages = run(receive())
                for seq, message in enumerate(messages):
                    self.assertIsInstance(message, str)
                    self.assertEqual(len(message), size)
                    self.assertEqual(json.loads(message)["seq"], seq)

    def test_pings_are_answered_with_their_payload(self):
        with Feed("--count", 0) as feed:
            async def ping():
                async with websockets.connect(feed.url) as ws:
                    # Lengths that end inside the mask's 4-byte cycle, up to
                    # the most a control frame may carry.
                    for n in (0, 1, 5, 7, 125):
                        payload = bytes((i * 7 + n) % 256 for i in range(n))
                        # websockets matches the pong to the ping by payload.
                        await asyncio.wait_for(await ws.ping(payload), STEP)

            run(ping())

    def test_client_messages_of_every_length_form_are_read_past(self):
        with Feed("--count", 0) as feed:
            async def send():
                async with websockets.connect(feed.url, max_size=None) as ws:
                    # 7-bit, 16-bit and 64-bit lengths: a pong after each
                    # shows the feed found the next frame's header.
                    for n in (3, 126, 65535, 65536, 70001):
                        await ws.send(bytes(i % 251 for i in range(n)))
                        await asyncio.wait_for(await ws.ping(b"after %d" % n), STEP)

            run(send())

    def test_a_close_is_echoed_and_ends_the_connection(self):
        with Feed("--count", 2) as feed:
            async def session():
                async with websockets.connect(feed.url) as ws:
                    seqs = [json.loads(await asyncio.wait_for(ws.recv(), STEP))["seq"] for _ in range(2)]
                    await asyncio.wait_for(ws.close(code=4001, reason="bye"), STEP)
                    return seqs, ws.close_code, ws.close_reason

            self.assertEqual(run(session()), ([0, 1], 4001, "bye"))
            # The feed serves one connection at a time: a second one is
            # answered only once the first has ended, and numbering goes on.
            self.assertEqual(run(session()), ([2, 3], 4001, "bye"))

if __name__ == "__main__":
    if not os.access(FEED, os.X_OK):
        print("FAIL: kws_bench_feed not found or not executable: %s (set KWS_BENCH_FEED)" % FEED)
        raise SystemExit(1)
    kwstest.main(requires_modules={"websockets": websockets})
