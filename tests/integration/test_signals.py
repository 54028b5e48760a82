"""Ending kws from outside: a reader that goes away (`kws tail | head -1`)
ends kws tail quietly with status 0. A stop signal ends every long-running
command promptly after its orderly shutdown, with one rule for all of them
(EXIT STATUS in every man page): 130 after SIGINT, 143 after SIGTERM."""

import os
import select
import signal
import subprocess
import time

import kwstest

PROMPT = 2.5  # seconds a signal may take to end a command


def wait_for_handler(proc, sig, timeout=10):
    """Waits until proc has installed a handler for sig (SigCgt in
    /proc/PID/status): before that, the signal would just kill it."""
    bit = 1 << (sig - 1)

    def caught():
        try:
            with open("/proc/%d/status" % proc.pid) as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return int(line.split()[1], 16) & bit
        except FileNotFoundError:
            return False
        return False

    kwstest.wait_until(caught, timeout=timeout, interval=0.02, what="a handler for signal %d" % sig)


class PipeClosed(kwstest.KwsTestCase):
    broker_args = ["--partitions", "2"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Far more than a pipe buffer holds: kws is still writing when the
        # reader goes away.
        cls.big = "big-" + os.urandom(4).hex()
        data = "".join("%06d %s\n" % (i, "x" * 1000) for i in range(3000))
        r = kwstest.kws("send", "-b", cls.broker.brokers, cls.big, input=data, timeout=60)
        assert r.rc == 0, str(r)

    def pipeline(self, tail_args, reader=("head", "-1"), timeout=10):
        """kws tail ARGS | READER; returns (tail's exit status, the reader's
        output, tail's stderr, the whole story for failure messages)."""
        err = open(os.path.join(kwstest.scratch_dir(), "err"), "w+b")
        self.addCleanup(err.close)
        cmd = [kwstest.KWS_BIN, "tail", "-b", self.brokers] + list(tail_args)
        tail = kwstest.spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                             env=kwstest.clean_env())
        head = kwstest.spawn(list(reader), stdin=tail.stdout, stdout=subprocess.PIPE)
        tail.stdout.close()
        try:
            out, _ = head.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            tail.kill()
            self.fail("the reader did not finish: %s" % " ".join(reader))
        reader_done = time.monotonic()
        try:
            rc = tail.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            tail.kill()
            tail.wait()
            rc = "still running after %s s (killed)" % timeout
        elapsed = time.monotonic() - reader_done
        err.seek(0)
        err_text = err.read()
        story = kwstest.describe(cmd + ["|"] + list(reader), rc, out, err_text, elapsed,
                                 note="(exit status of kws tail, %.2f s after the reader ended)" % elapsed)
        return rc, out, err_text, story

    def test_head_on_big_topic(self):
        rc, out, err, story = self.pipeline(["-o", "beginning", self.big])
        self.assertEqual(rc, 0, story)
        self.assertRegex(out.decode(), r"^\d{6} x{1000}\n$", story)
        self.assertEqual(err, b"", "no error output expected\n" + story)

    def test_head_on_big_topic_json(self):
        rc, out, err, story = self.pipeline(["-J", "-o", "beginning", self.big])
        self.assertEqual(rc, 0, story)
        self.assertIn('"message":"', out.decode(), story)
        self.assertEqual(err, b"", story)

    def test_head_on_big_topic_with_exit_flag(self):
        rc, out, err, story = self.pipeline(["-e", "-o", "beginning", "-f", "%o\\n", self.big], reader=("head", "-3"))
        self.assertEqual(rc, 0, story)
        self.assertEqual(err, b"", story)
        self.assertEqual(len(out.splitlines()), 3, story)

    def test_head_on_small_idle_topic(self):
        # Everything fits in the pipe and the topic then goes quiet: kws
        # tail must still notice that its reader is gone (as `tail -f`
        # does) instead of following a dead pipe forever.
        t = self.topic()
        self.send(t, "-p", "0", "a", "b", "c")
        rc, out, err, story = self.pipeline(["-o", "beginning", t], timeout=5)
        self.assertEqual(out, b"a\n", story)
        self.assertEqual(rc, 0, story)


class Interrupts(kwstest.KwsTestCase):
    broker_args = ["--partitions", "2"]

    def interrupt(self, bg, sig=signal.SIGINT, expect=130):
        start = time.monotonic()
        bg.signal(sig)
        rc = bg.wait(timeout=PROMPT * 2)
        took = time.monotonic() - start
        self.assertEqual(rc, expect, bg.describe())
        self.assertLess(took, PROMPT, "took %.1f s to stop\n%s" % (took, bg.describe()))
        return rc

    def existing_topic(self):
        t = self.topic()
        self.send(t, "-p", "0", "old")
        return t

    def test_sigint_while_following(self):
        t = self.existing_topic()
        bg = self.background("tail", t)
        self.follow_until_live(t, bg)
        self.interrupt(bg)
        self.assertNotIn(b"error", bg.err, bg.describe())

    def test_sigint_while_following_group(self):
        t = self.existing_topic()
        bg = self.background("tail", "-G", self.topic("g"), t)
        self.follow_until_live(t, bg, timeout=30)
        self.interrupt(bg)

    def test_sigint_while_waiting_for_group_assignment(self):
        t = self.existing_topic()
        # librdkafka's group debug log shows when the JoinGroup request is
        # out; the broker holds the answer for ~3 s (initial rebalance delay).
        bg = self.background("tail", "-v", "-X", "debug=cgrp", "-G", self.topic("g"), t)
        kwstest.wait_until(lambda: b"JoinGroup" in bg.err, timeout=20, what="the JoinGroup request")
        self.interrupt(bg)
        self.assertEqual(bg.out, b"", bg.describe())

    def test_sigint_while_connecting(self):
        holder = kwstest.free_port_holder()
        self.addCleanup(holder.close)
        bg = self.background("tail", "--timeout", "20", "sometopic",
                             brokers="127.0.0.1:%d" % holder.getsockname()[1])
        wait_for_handler(bg.proc, signal.SIGINT)
        self.interrupt(bg)

    def test_sigterm_ends_tail(self):
        # kws-tail(1): SIGTERM is a clean shutdown with status 143 (128 +
        # 15, as a shell reports a process the signal killed). A process the
        # signal simply killed reports -15 here, and any other status means
        # the handler or the exit mapping changed.
        t = self.existing_topic()
        bg = self.background("tail", t)
        self.follow_until_live(t, bg)
        self.interrupt(bg, signal.SIGTERM, expect=143)
        self.assertNotIn(b"error", bg.err, bg.describe())

    def test_sigterm_ends_send_reading_open_pipe(self):
        t = self.topic()
        bg = self.background("send", t, stdin=subprocess.PIPE)
        bg.proc.stdin.write(b"before\n")
        bg.proc.stdin.flush()
        kwstest.wait_until(lambda: sum(self.high_watermarks(t).values()) == 1 if self.topic_exists(t) else False,
                           what="the first line to be delivered")
        self.interrupt(bg, signal.SIGTERM, expect=143)
        bg.proc.stdin.close()
        self.assertEqual([e["message"] for e in self.tail_json(t)], ["before"])

    def test_sigint_send_reading_open_pipe(self):
        t = self.topic()
        bg = self.background("send", t, stdin=subprocess.PIPE)
        bg.proc.stdin.write(b"before-1\nbefore-2\n")
        bg.proc.stdin.flush()
        # Both lines arrived: kws is now blocked reading more input.
        kwstest.wait_until(lambda: sum(self.high_watermarks(t).values()) == 2 if self.topic_exists(t) else False,
                           what="the first two lines to be delivered")
        self.interrupt(bg)
        bg.proc.stdin.close()
        self.assertEqual(sorted(e["message"] for e in self.tail_json(t)), ["before-1", "before-2"])

    def topic_exists(self, t):
        return t in {x["name"] for x in self.topics_json()["topics"]}


class BrokerSignals(kwstest.KwsTestCase):
    broker_args = None

    def check(self, sig, expect):
        b = kwstest.Broker()
        self.addCleanup(b.kill)
        # It serves before it is stopped.
        r = kwstest.kws("send", "-b", b.brokers, "t", "x", timeout=20)
        self.assertEqual(r.rc, 0, str(r))
        start = time.monotonic()
        rc = b.stop(sig, timeout=10)
        self.assertEqual(rc, expect, b.describe())
        self.assertLess(time.monotonic() - start, 5, b.describe())

    def test_sigint_exits_130(self):
        self.check(signal.SIGINT, 130)

    def test_sigterm_exits_143(self):
        self.check(signal.SIGTERM, 143)


class ServeAndIngestSignals(kwstest.KwsTestCase):
    """kws serve and kws ingest used to exit 0 after either signal; they
    follow the same rule as the other commands, after their own shutdown
    (serve: connections closed with 1001; ingest: everything read flushed,
    then the summary line)."""

    def serve_until_ready(self):
        bg = self.background("serve", "-l", "127.0.0.1:0")
        bg.wait_for_output(lambda out: b"URL=" in out and out.endswith(b"\n"), timeout=30, what="URL= line")
        wait_for_handler(bg.proc, signal.SIGTERM)
        return bg

    def ingest_until_delivered(self):
        t = self.topic()
        bg = self.background("ingest", "-", t, stdin=subprocess.PIPE)
        bg.proc.stdin.write(b"one\n")
        bg.proc.stdin.flush()
        kwstest.wait_until(lambda: self.tail_json(t) if t in {x["name"] for x in self.topics_json()["topics"]}
                           else False, what="the first line in Kafka")
        self.addCleanup(bg.proc.stdin.close)
        return bg

    def stop(self, bg, sig, expect):
        start = time.monotonic()
        bg.signal(sig)
        rc = bg.wait(timeout=PROMPT * 4)
        self.assertEqual(rc, expect, bg.describe())
        self.assertLess(time.monotonic() - start, PROMPT * 2, bg.describe())

    def test_serve_sigint_exits_130(self):
        self.stop(self.serve_until_ready(), signal.SIGINT, 130)

    def test_serve_sigterm_exits_143(self):
        self.stop(self.serve_until_ready(), signal.SIGTERM, 143)

    def test_ingest_sigint_exits_130(self):
        bg = self.ingest_until_delivered()
        self.stop(bg, signal.SIGINT, 130)
        self.assertIn(b"summary: received=1 ", bg.err, bg.describe())

    def test_ingest_sigterm_exits_143(self):
        bg = self.ingest_until_delivered()
        self.stop(bg, signal.SIGTERM, 143)
        self.assertIn(b"summary: received=1 ", bg.err, bg.describe())


if __name__ == "__main__":
    kwstest.main()
