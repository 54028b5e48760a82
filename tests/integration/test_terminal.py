"""What kws does differently on a terminal: colour (and NO_COLOR /
CLICOLOR_FORCE), send's progress line. A pseudo-terminal comes from
util-linux's `script`, which runs the command with stdio on a pty."""

import shlex

import kwstest
from kwstest import KWS_BIN

ESC = b"\x1b["


class OnATerminal(kwstest.KwsTestCase):
    required_tools = ["script"]
    broker_args = ["--partitions", "1"]

    def on_tty(self, shell_command, timeout=60, **env):
        """Runs shell_command with stdin/stdout/stderr on a pty; returns what
        the terminal showed (stdout and stderr interleaved)."""
        r = kwstest.run(["script", "-qec", shell_command, "/dev/null"], timeout=timeout,
                        env=kwstest.clean_env(**env))
        self.assertEqual(r.rc, 0, str(r))
        return r.out

    def kws_cmd(self, *args):
        return " ".join(shlex.quote(a) for a in [KWS_BIN] + list(args))

    def test_tail_format_is_coloured_on_a_terminal_but_not_the_value(self):
        t = self.topic()
        self.send(t, "-k", "the-key", "the-value")
        shown = self.on_tty(self.kws_cmd("tail", "-b", self.brokers, "-o", "beginning", "-e",
                                         "-f", "%t %k %s\\n", t), NO_COLOR=None)
        self.assertIn(ESC + b"33mthe-key" + ESC + b"0m", shown)
        self.assertIn(b" the-value", shown)
        self.assertNotIn(ESC + b"33mthe-value", shown)

    def test_no_color_turns_colour_off_on_a_terminal(self):
        t = self.topic()
        self.send(t, "-k", "k", "v")
        shown = self.on_tty(self.kws_cmd("tail", "-b", self.brokers, "-o", "beginning", "-e",
                                         "-f", "%k %s\\n", t), NO_COLOR="1")
        self.assertIn(b"k v", shown)
        self.assertNotIn(ESC, shown)

    def test_pipes_get_no_colour_unless_forced(self):
        t = self.topic()
        self.send(t, "-k", "k", "v")
        plain = self.tail("-o", "beginning", "-e", "-f", "%k %s\\n", t, env=kwstest.clean_env(NO_COLOR=None))
        self.assertEqual(plain.out, b"k v\n")
        forced = self.tail("-o", "beginning", "-e", "-f", "%k %s\\n", t,
                           env=kwstest.clean_env(NO_COLOR=None, CLICOLOR_FORCE="1"))
        self.assertIn(ESC + b"33mk" + ESC + b"0m v\n", forced.out)

    def test_errors_are_coloured_only_on_a_terminal(self):
        shown = self.on_tty(self.kws_cmd("tail", "-o", "bogus", "t") + "; true", NO_COLOR=None)
        self.assertIn(ESC, shown)
        self.assertIn(b"bad offset 'bogus'", shown)
        piped = kwstest.kws("tail", "-o", "bogus", "t", env=kwstest.clean_env(NO_COLOR=None))
        self.assertEqual(piped.rc, 2)
        self.assertNotIn(ESC, piped.err)

    def test_send_shows_a_progress_line_on_a_terminal_for_large_input(self):
        t = self.topic()
        # Enough input to take more than a second, when the first line appears.
        shown = self.on_tty("seq 1 4000000 | " + self.kws_cmd("send", "-b", self.brokers, t), timeout=120)
        self.assertIn(b"kws: sent ", shown)
        self.assertIn(b"msg/s", shown)

    def test_send_prints_no_progress_into_a_pipe(self):
        t = self.topic()
        r = kwstest.run(["sh", "-c", "seq 1 2000000 | " + self.kws_cmd("send", "-b", self.brokers, t)],
                        timeout=120, env=kwstest.clean_env())
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(r.err, b"", str(r))

    def test_serve_shows_a_status_line_on_a_terminal_only(self):
        # On a pty: the status line appears within a couple of seconds; the
        # serve is stopped with SIGTERM by `timeout` and exits 143.
        cmd = "timeout --preserve-status -s TERM 3 " + self.kws_cmd("serve", "-b", self.brokers, "-l", "127.0.0.1:0") + "; test $? = 143"
        shown = self.on_tty(cmd, timeout=60)
        self.assertIn(b"connection(s) | ", shown)
        self.assertIn(b"msg/s from Kafka", shown)
        piped = kwstest.run(["timeout", "--preserve-status", "-s", "TERM", "3", KWS_BIN, "serve", "-b", self.brokers, "-l", "127.0.0.1:0"],
                            timeout=60, env=kwstest.clean_env())
        self.assertEqual(piped.rc, 143, str(piped))
        self.assertNotIn(b"connection(s) | ", piped.err)
        self.assertNotIn(ESC, piped.err)


if __name__ == "__main__":
    kwstest.main(requires=["script"])
