"""Faults a long-running kws meets: the broker dies (SIGKILL: connections
refused) or freezes (SIGSTOP: connections stay open, nothing answers) while
kws send or kws tail is running. Each must fail with exit 1 within --timeout
of the broker's last answer, whatever its input rate, and say what happened
and what was lost. With the embedded broker, `kws broker` is the process
that dies or freezes."""

import json
import re
import signal
import subprocess
import threading
import time

import kwstest

TIMEOUT = 2  # --timeout of the command under test
# The broker's last answer comes up to one probe interval (TIMEOUT/4) before
# the fault; add a probe, process exit and a loaded machine.
MARGIN = 2.5
# How long a command may take at most before the test gives up on it: long
# enough to tell "bounded by --timeout" from "not bounded" without waiting
# for librdkafka's own 60 s timeouts.
GIVE_UP = TIMEOUT + 12


class SlowWriter:
    """Feeds `kws send` one line every `interval` seconds (None: two lines,
    then nothing, the pipe left open) until stopped or the reader exits."""

    def __init__(self, pipe, interval):
        self.pipe, self.interval = pipe, interval
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                if self.interval is None and self.written >= 2:
                    self._stop.wait(0.1)
                    continue
                self.written += 1
                self.pipe.write(b"line-%d\n" % self.written)
                self.pipe.flush()
                if self.interval is not None:
                    self._stop.wait(self.interval)
        except (BrokenPipeError, OSError, ValueError):
            pass  # kws exited, as it should

    def stop(self):
        self._stop.set()
        self._thread.join(5)


class BrokerFaults(kwstest.KwsTestCase):
    broker_args = None  # each test kills or freezes its own

    def own_broker(self):
        b = kwstest.Broker()

        def release():
            if b.proc.poll() is None:
                b.proc.send_signal(signal.SIGCONT)
            b.kill()

        self.addCleanup(release)
        return b

    def fault(self, broker, sig):
        broker.proc.send_signal(sig)
        return time.monotonic()

    def wait_bounded(self, bg, since):
        """Waits for bg to exit on its own; fails unless it exited 1 within
        --timeout (plus the margin) of `since`."""
        rc = bg.wait(timeout=GIVE_UP)
        took = time.monotonic() - since
        self.assertEqual(rc, 1, bg.describe())
        self.assertLess(took, TIMEOUT + MARGIN,
                        "took %.1f s after the fault, --timeout %s\n%s" % (took, TIMEOUT, bg.describe()))
        err = bg.err.decode("utf-8", "replace")
        self.assertTrue(err.startswith("kws: error: "), bg.describe())
        self.assertNotIn("version", err, "a stopped broker is not an old broker\n" + bg.describe())
        return err

    def check_send(self, sig, interval, cause):
        b = self.own_broker()
        t = self.topic()
        bg = self.background("send", "--timeout", TIMEOUT, "--print-offsets", t, brokers=b.brokers,
                             stdin=subprocess.PIPE)
        writer = SlowWriter(bg.proc.stdin, interval)
        self.addCleanup(writer.stop)
        # Offsets show as deliveries happen, not at exit: two lines printed
        # while the input is still open prove that they were delivered.
        bg.wait_for_output(lambda out: out.count(b"\n") >= 2, timeout=15,
                           what="--print-offsets lines for the first deliveries")
        for line in bg.lines():
            self.assertRegex(line, "^%s 0 \\d+$" % re.escape(t), bg.describe())
        since = self.fault(b, sig)
        err = self.wait_bounded(bg, since)
        writer.stop()
        self.assertIn(cause, err, bg.describe())
        m = re.search(r"(\d+) of (\d+) message\(s\) not delivered", err)
        self.assertIsNotNone(m, "must say how many messages were not delivered\n" + bg.describe())
        delivered = len(bg.lines())
        self.assertEqual(int(m.group(2)) - int(m.group(1)), delivered,
                         "delivered = sent - not delivered = offsets printed\n" + bg.describe())
        if interval is not None:
            self.assertIn("the rest of the input was never read", err, bg.describe())
        return err

    def test_send_slow_input_broker_killed(self):
        self.check_send(signal.SIGKILL, 0.25, "lost the connection to Kafka at")

    def test_send_quiet_input_broker_killed(self):
        # No input at all after the first two lines: kws sits waiting on
        # stdin and must still notice.
        self.check_send(signal.SIGKILL, None, "lost the connection to Kafka at")

    def test_send_slow_input_broker_frozen(self):
        err = self.check_send(signal.SIGSTOP, 0.25, "stopped answering for more than %s s" % TIMEOUT)
        self.assertIn("--timeout", err)

    def test_send_quiet_input_broker_frozen(self):
        self.check_send(signal.SIGSTOP, None, "stopped answering for more than %s s" % TIMEOUT)

    def follow(self, broker, t, bg):
        """Sends probes until the running tail prints one."""
        deadline = time.monotonic() + 20
        n = 0
        while True:
            n += 1
            r = kwstest.kws("send", "-b", broker.brokers, t, "probe-%d" % n, timeout=20)
            self.assertEqual(r.rc, 0, str(r))
            try:
                bg.wait_for_output(lambda out: b"probe-" in out, timeout=0.5, what="a probe")
                return
            except AssertionError:
                if bg.proc.poll() is not None or time.monotonic() > deadline:
                    raise

    def check_tail(self, sig, cause, *args):
        b = self.own_broker()
        t = self.topic()
        r = kwstest.kws("send", "-b", b.brokers, t, "first", timeout=20)
        self.assertEqual(r.rc, 0, str(r))
        bg = self.background("tail", "--timeout", TIMEOUT, *args, t, brokers=b.brokers)
        self.follow(b, t, bg)
        since = self.fault(b, sig)
        err = self.wait_bounded(bg, since)
        self.assertIn(cause, err, bg.describe())
        self.assertIn("more than %s s" % TIMEOUT, err, bg.describe())

    def test_tail_broker_killed(self):
        self.check_tail(signal.SIGKILL, "lost the connection to Kafka at")

    def test_tail_broker_frozen(self):
        self.check_tail(signal.SIGSTOP, "stopped answering")

    def test_tail_group_broker_killed(self):
        # Leaving the group needs the broker; kws must not wait for it.
        self.check_tail(signal.SIGKILL, "lost the connection to Kafka at", "-G", "g-" + self.topic())

    def test_tail_group_broker_frozen(self):
        self.check_tail(signal.SIGSTOP, "stopped answering", "-G", "g-" + self.topic())

    def test_tail_group_broker_frozen_while_joining(self):
        # Frozen before the group assigned anything: no fetch is in flight,
        # and the join request's own timeout is far longer than --timeout.
        b = self.own_broker()
        t = self.topic()
        r = kwstest.kws("send", "-b", b.brokers, t, "first", timeout=20)
        self.assertEqual(r.rc, 0, str(r))
        group = "g-" + t
        bg = self.background("tail", "--timeout", TIMEOUT, "-G", group, t, brokers=b.brokers)

        def group_known():
            r = kwstest.kws("topics", "-J", "--groups", "-b", b.brokers, t, timeout=20)
            self.assertEqual(r.rc, 0, str(r))
            return group in {g["group"] for g in json.loads(r.stdout)["groups"]}

        # The broker knows the group as soon as the join request arrived.
        kwstest.wait_until(group_known, what="the group to reach the broker")
        since = self.fault(b, signal.SIGSTOP)
        err = self.wait_bounded(bg, since)
        self.assertIn("stopped answering", err, bg.describe())


if __name__ == "__main__":
    kwstest.main()
