"""kws broker with no flags listens on 127.0.0.1:9092, where every other kws
command looks by default; when 9092 is busy it falls back to a free port and
says so. These tests need 9092 itself, so CTest runs them alone
(RESOURCE_LOCK kws_port_9092). When something outside this test holds 9092
before the test starts, the zero-flag test cannot run here: the file then
reports SKIPPED (exit 77) naming the holder, and never passes."""

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
        if not kwstest.port_is_free("127.0.0.1", 9092):
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

    def test_default_port_busy_falls_back_to_free_port(self):
        held = None
        if kwstest.port_is_free("127.0.0.1", 9092):
            held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(held.close)
            held.bind(("127.0.0.1", 9092))
            held.listen(1)
        b = kwstest.Broker(listen=None)
        self.addCleanup(b.kill)
        self.assertRegex(b.first_line, r"^BROKERS=127\.0\.0\.1:\d+$")
        self.assertNotEqual(b.brokers, "127.0.0.1:9092")
        self.assertIn(b"9092", b.err, "it must say that 9092 was busy\n" + b.describe())
        r = kwstest.kws("send", "-b", b.brokers, "fallback", "works", timeout=20)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(b.stop(), 143)  # SIGTERM


if __name__ == "__main__":
    kwstest.main()
