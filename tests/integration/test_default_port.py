"""kws broker with no flags listens on 127.0.0.1:9092, where every other kws
command looks by default; when 9092 is busy that is an error naming the
holder (kws broker and kws serve alike), never a quiet move to another port
that would leave `kws send` talking to whatever holds 9092. These tests need
9092 itself, so CTest runs them alone
(RESOURCE_LOCK kws_port_9092). When something outside this test holds 9092
before the test starts, the zero-flag test cannot run here: the file then
reports SKIPPED (exit 77) naming the holder, and never passes."""

import os
import socket
import subprocess

import kwstest


def holder_of_9092():
    """Who listens on 9092, for the skip and failure messages."""
    try:
        out = subprocess.run(["ss", "-Hltnp", "sport = :9092"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        out = "(ss failed: %s)" % e
    return out or "(ss shows no listener; the port may be in TIME_WAIT or bound without listening)"


class DefaultPort(kwstest.KwsTestCase):
    broker_args = None

    def test_zero_flag_default_on_9092(self):
        if not kwstest.port_is_free("127.0.0.1", 9092, reuse_address=True):
            self.skipTest("127.0.0.1:9092 was busy before this test started, so the zero-flag "
                          "default cannot be tested on this machine; held by: %s" % holder_of_9092())
        b = kwstest.Broker(listen=None)
        self.addCleanup(b.kill)
        # 9092 was free a moment ago: a broker anywhere else is the regression
        # this test exists for (or, rarely, another process took the port in
        # between; the message names it).
        self.assertEqual(b.brokers, "127.0.0.1:9092",
                         "kws broker with no flags did not take the free port 9092; 9092 now held by: %s\n%s"
                         % (holder_of_9092(), b.describe()))
        t = self.topic()
        # No -b, no KWS_BROKERS, no config file: the default localhost:9092.
        r = kwstest.kws("send", t, "hi", timeout=20)
        self.assertEqual((r.rc, r.out, r.err), (0, b"", b""), str(r))
        r = kwstest.kws("tail", "-o", "beginning", "-e", t, timeout=20)
        self.assertEqual((r.rc, r.out), (0, b"hi\n"), str(r))
        r = kwstest.kws("topics", "-J", t, timeout=20)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(b.stop(), 143)  # SIGTERM

    def hold_9092(self):
        """Holds 127.0.0.1:9092 for the test (listening, as a broker would);
        returns the pid that holds it, or None when someone else already
        listens there (kws must refuse the port all the same). SO_REUSEADDR,
        as kws itself binds: connections of earlier tests in TIME_WAIT on
        9092 must not keep the test from holding it."""
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            held.bind(("127.0.0.1", 9092))
            held.listen(1)
        except OSError:
            held.close()
            return None
        self.addCleanup(held.close)
        return os.getpid()

    def test_default_port_busy_is_an_error_naming_the_holder(self):
        holder = self.hold_9092()
        r = kwstest.kws("broker", timeout=20)
        self.assertEqual((r.rc, r.out), (1, b""), str(r))
        self.assertIn("cannot listen on 127.0.0.1:9092", r.stderr, str(r))
        self.assertIn("-l 127.0.0.1:0 for any free port", r.stderr, str(r))
        if holder is not None:
            self.assertIn("held by pid %d: " % holder, r.stderr, str(r))

    def test_serve_with_default_embedded_broker_port_busy_is_an_error(self):
        holder = self.hold_9092()
        # No -b, no KWS_BROKERS, no config file: kws serve starts the embedded broker.
        r = kwstest.kws("serve", "-l", "127.0.0.1:0", timeout=20)
        self.assertEqual((r.rc, r.out), (1, b""), str(r))
        self.assertIn("cannot listen on 127.0.0.1:9092", r.stderr, str(r))
        self.assertIn("--broker-listen 127.0.0.1:0", r.stderr, str(r))
        if holder is not None:
            self.assertIn("held by pid %d" % holder, r.stderr, str(r))

if __name__ == "__main__":
    kwstest.main()
