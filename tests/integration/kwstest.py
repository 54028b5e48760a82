"""Helpers for kws integration tests.

Every test runs the real `kws` binary (path from $KWS_BIN, set by CTest to
$<TARGET_FILE:kws>) against its own embedded broker (`kws broker --listen
127.0.0.1:0`, one per test class) and its own unique topics.

Rules this module enforces so that no test can hang or pass by accident:
- every kws invocation has a timeout (subprocess timeout; the process is
  killed and the test fails with the command and what it printed so far);
- a failed assertion on a command prints the command, exit status, stdout and
  stderr;
- readiness is established by probing (produce until a reader sees it), never
  by fixed sleeps;
- kws runs in a hermetic environment: no KWS_* variables from the caller, an
  empty HOME and XDG_CONFIG_HOME, NO_COLOR=1.

A test file that needs an external tool calls `main(requires=["kcat"])`; when
the tool is missing it prints a loud SKIP line and exits 77, which CTest's
SKIP_RETURN_CODE reports as skipped (never as passed). So does a file in
which any test called skipTest and none failed.
"""

import atexit
import base64
import ctypes
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP_RETURN_CODE = 77

KWS_BIN = os.environ.get("KWS_BIN") or os.path.normpath(os.path.join(HERE, "..", "..", "build", "cmd", "kws"))

# Default upper bound for one kws command; generous, since a hang is what it
# guards against, not slowness.
DEFAULT_TIMEOUT = 30

_SCRATCH = tempfile.mkdtemp(prefix="kws-itest-")
_EMPTY_HOME = os.path.join(_SCRATCH, "home")
_EMPTY_XDG = os.path.join(_SCRATCH, "xdg")
os.makedirs(_EMPTY_HOME, exist_ok=True)
os.makedirs(_EMPTY_XDG, exist_ok=True)


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when this test process dies (even
    when CTest kills it on timeout), so no broker or tail outlives a run."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_LIVE = []  # processes to kill at exit


@atexit.register
def _clean_up():
    for proc in _LIVE:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shutil.rmtree(_SCRATCH, ignore_errors=True)


def spawn(cmd, preexec=None, **kwargs):
    """subprocess.Popen that never outlives the test process; preexec runs
    in the child before exec, too."""
    def child_setup():
        _die_with_parent()
        if preexec is not None:
            preexec()
    proc = subprocess.Popen(cmd, preexec_fn=child_setup, **kwargs)
    _LIVE.append(proc)
    return proc


def scratch_dir():
    """A fresh private directory for one test's files."""
    return tempfile.mkdtemp(dir=_SCRATCH)


def clean_env(**overrides):
    """The environment kws runs in: the caller's minus anything that would
    change kws's configuration, plus overrides (a value of None removes)."""
    # KWS_SANITIZER_REPORTS is not kws configuration: the sanitizer builds'
    # UBSan hook (tests/sanitizers/ubsan_support.c) writes its reports there.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KWS_") or k == "KWS_SANITIZER_REPORTS"}
    for k in ("XDG_CONFIG_HOME", "CLICOLOR_FORCE"):
        env.pop(k, None)
    env["HOME"] = _EMPTY_HOME
    env["XDG_CONFIG_HOME"] = _EMPTY_XDG
    env["NO_COLOR"] = "1"
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _show(data, limit=4000):
    if data is None:
        return "<none>"
    if isinstance(data, bytes):
        text = data.decode("utf-8", "backslashreplace")
    else:
        text = data
    if len(text) > limit:
        text = text[:limit] + "\n... (%d more characters)" % (len(text) - limit)
    return text


def describe(cmd, rc, out, err, elapsed=None, note=None):
    lines = ["command: " + " ".join(_quote(a) for a in cmd)]
    if note:
        lines.append(note)
    lines.append("exit status: %s" % rc + ("" if elapsed is None else "  (after %.2f s)" % elapsed))
    lines.append("--- stdout ---\n" + _show(out))
    lines.append("--- stderr ---\n" + _show(err))
    return "\n".join(lines)


def _quote(arg):
    arg = str(arg)
    if arg and all(c.isalnum() or c in "-_./:=@%,+" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


class Result:
    """What one finished command did."""

    def __init__(self, cmd, rc, out, err, elapsed):
        self.cmd, self.rc, self.out, self.err, self.elapsed = cmd, rc, out, err, elapsed

    @property
    def stdout(self):
        return self.out.decode("utf-8", "surrogateescape")

    @property
    def stderr(self):
        return self.err.decode("utf-8", "surrogateescape")

    def lines(self):
        return self.stdout.splitlines()

    def json_lines(self):
        return [json.loads(line) for line in self.out.decode("utf-8").splitlines() if line.strip()]

    def __str__(self):
        return describe(self.cmd, self.rc, self.out, self.err, self.elapsed)


class CommandTimeout(AssertionError):
    pass


def run(cmd, input=None, timeout=DEFAULT_TIMEOUT, env=None, cwd=None):
    """Runs cmd (a list) to completion or kills it after `timeout` seconds,
    which fails the test with the command and its partial output."""
    cmd = [str(c) for c in cmd]
    if isinstance(input, str):
        input = input.encode("utf-8")
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env if env is not None else clean_env(), cwd=cwd,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired as e:
        raise CommandTimeout(describe(cmd, "killed", e.stdout, e.stderr, time.monotonic() - start,
                                      note="TIMED OUT after %s s (killed)" % timeout)) from None
    return Result(cmd, p.returncode, p.stdout, p.stderr, time.monotonic() - start)


def kws(*args, **kwargs):
    return run([KWS_BIN] + [str(a) for a in args], **kwargs)


def wait_until(predicate, timeout=20, interval=0.1, what="condition"):
    """Polls predicate() until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %s s waiting for %s (last value: %r)" % (timeout, what, last))
        time.sleep(interval)


class _StderrInFile:
    """A child process whose stderr goes to self._err_file; once that file is
    closed, self._err_text keeps what it held."""

    @property
    def err(self):
        if self._err_file.closed:
            return self._err_text
        self._err_file.seek(0)
        return self._err_file.read()


class Background(_StderrInFile):
    """A kws process running in the background whose stdout is collected by
    a thread, so tests can wait for output without blocking on a pipe."""

    def __init__(self, args, env=None, stdin=subprocess.DEVNULL, nofile=None):
        """nofile: (soft, hard) limit on open descriptors for the process."""
        self.cmd = [KWS_BIN] + [str(a) for a in args]
        self._err_file = tempfile.TemporaryFile(dir=_SCRATCH)
        preexec = None
        if nofile is not None:
            import resource
            preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        self.proc = spawn(self.cmd, preexec=preexec, stdin=stdin, stdout=subprocess.PIPE, stderr=self._err_file,
                          env=env if env is not None else clean_env())
        self.started = time.monotonic()
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._buf += chunk
                self._cond.notify_all()

    @property
    def out(self):
        with self._cond:
            return bytes(self._buf)

    def lines(self):
        return self.out.decode("utf-8", "surrogateescape").splitlines()

    def describe(self, note=None):
        return describe(self.cmd, self.proc.poll(), self.out, self.err, time.monotonic() - self.started, note)

    def wait_for_output(self, predicate, timeout=20, what="output"):
        """Waits until predicate(stdout bytes) is true; fails with the whole
        story otherwise (also when the process exits first)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(bytes(self._buf)):
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.2))
            ok = predicate(bytes(self._buf))
        if not ok:
            raise AssertionError("waiting for %s: %s" % (what, self.describe(
                "process ended first" if self._eof else "TIMED OUT after %s s" % timeout)))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10):
        """Waits for exit; on timeout kills the process and fails."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("did not exit within %s s: %s" % (timeout, self.describe()))
        self._reader.join(5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        if not self._err_file.closed:
            self._err_text = self.err
        for f in (self.proc.stdout, self.proc.stdin, self._err_file):
            if f is not None and not f.closed:
                f.close()


class Broker(_StderrInFile):
    """`kws broker` on a free loopback port; `brokers` is its BROKERS= value."""

    def __init__(self, *args, listen="127.0.0.1:0", startup_timeout=20, nofile=None):
        """nofile: (soft, hard) limit on open descriptors for the broker."""
        self.args = [str(a) for a in args]
        if listen is not None:
            self.args += ["--listen", listen]
        self.cmd = [KWS_BIN, "broker"] + self.args
        self._err_file = tempfile.TemporaryFile(dir=_SCRATCH)
        preexec = None
        if nofile is not None:
            import resource
            preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        self.proc = spawn(self.cmd, preexec=preexec, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=self._err_file, env=clean_env())
        self.first_line = self._read_first_line(startup_timeout)
        if not self.first_line.startswith("BROKERS="):
            story = self.describe()
            self.kill()
            raise AssertionError("kws broker did not print BROKERS=...: " + story)
        self.brokers = self.first_line[len("BROKERS="):]

    def _read_first_line(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        data = b""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                story = self.describe()
                self.kill()
                raise AssertionError("kws broker printed no line within %s s: %s" % (timeout, story))
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        sel.close()
        return data.decode("utf-8", "replace").split("\n", 1)[0].strip()

    def describe(self):
        return describe(self.cmd, self.proc.poll(), getattr(self, "first_line", ""), self.err)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and returns the exit status; kills it if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("kws broker ignored signal %s for %s s: %s" % (sig, timeout, self.describe()))
        rc = self.proc.returncode
        self.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self):
        if not self._err_file.closed:
            self._err_text = self.err
        for f in (self.proc.stdout, self._err_file):
            if not f.closed:
                f.close()


def free_port_holder():
    """A socket bound (not listening) to a free loopback port: connections to
    the port are refused while it is held, and nobody else can take it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


def port_is_free(host, port, reuse_address=False):
    """Whether a listener could bind host:port now; with reuse_address, as
    kws binds (connections in TIME_WAIT on the port do not count)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse_address:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def make_ca(directory, name, san="DNS:localhost,IP:127.0.0.1"):
    """A CA and a server certificate for `san` signed by it."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=directory,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ca_key, ca_crt = name + "-ca.key", name + "-ca.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
            "-days", "2", "-subj", "/CN=kws test CA " + name)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=localhost")
    with open(os.path.join(directory, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")
    return {"ca": os.path.join(directory, ca_crt), "cert": os.path.join(directory, name + ".pem"),
            "key": os.path.join(directory, name + ".key")}


def b64(data):
    return base64.b64encode(data).decode("ascii")


def envelope_bytes(env, field):
    """The bytes an envelope field stands for (decoding base64 when marked)."""
    value = env.get(field)
    if value is None:
        return None
    if env.get(field + "_encoding") == "base64":
        return base64.b64decode(value)
    return value.encode("utf-8")


def header_pairs(env):
    """[(name bytes, value bytes or None)] of an envelope's headers."""
    return [(envelope_bytes(h, "name"), envelope_bytes(h, "value")) for h in env.get("headers", [])]


class KwsTestCase(unittest.TestCase):
    """Base class: one embedded broker per test class, unique topics per test."""

    # Extra `kws broker` arguments for this class's broker; None: no broker.
    broker_args = []
    # Programs the tests need; missing ones skip the class (and main() turns
    # that into exit 77 for CTest).
    required_tools = []
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = [tool for tool in cls.required_tools if shutil.which(tool) is None]
        if missing:
            raise unittest.SkipTest("required tool(s) not installed: " + ", ".join(missing))
        cls.broker = None
        if cls.broker_args is not None:
            cls.broker = Broker(*cls.broker_args)
            cls.addClassCleanup(cls.broker.stop)

    @property
    def brokers(self):
        return self.broker.brokers

    def topic(self, tag=""):
        """A topic name no other test uses."""
        name = self._testMethodName.replace("test_", "", 1)
        if tag:
            name += "-" + tag
        return "%s-%s" % (name.replace("_", "-")[:60], uuid.uuid4().hex[:8])

    # --- running kws -------------------------------------------------------

    def kws(self, command, *args, rc=0, brokers=True, input=None, timeout=DEFAULT_TIMEOUT, env=None):
        """Runs `kws COMMAND [-b BROKERS] ARGS...` and asserts its exit status
        (rc=None: any status). Returns the Result."""
        cmd = [command]
        if brokers is True:
            cmd += ["-b", self.brokers]
        elif brokers:
            cmd += ["-b", brokers]
        cmd += [str(a) for a in args]
        result = kws(*cmd, input=input, timeout=timeout, env=env)
        if rc is not None:
            self.assertEqual(result.rc, rc, "unexpected exit status\n" + str(result))
        return result

    def send(self, topic, *args, input=None, **kwargs):
        """kws send that must succeed silently (stdout and stderr empty
        unless --print-offsets)."""
        r = self.kws("send", topic, *args, input=input, **kwargs)
        if "--print-offsets" not in args and kwargs.get("rc", 0) == 0:
            self.assertEqual(r.out, b"", "kws send printed to stdout without --print-offsets\n" + str(r))
        return r

    def send_json(self, topic, envelopes, *args, **kwargs):
        data = "".join(json.dumps(e) + "\n" for e in envelopes)
        return self.send(topic, "-J", *args, input=data, **kwargs)

    def tail(self, *args, **kwargs):
        return self.kws("tail", *args, **kwargs)

    def tail_json(self, topic, *args, **kwargs):
        """Every message of topic (from the beginning, -e) as envelopes,
        ordered by partition and offset."""
        r = self.tail("-J", "-e", "-o", "beginning", *args, topic, **kwargs)
        envs = r.json_lines()
        return sorted(envs, key=lambda e: (e["partition"], e["offset"]))

    def topics_json(self, *args, **kwargs):
        r = self.kws("topics", "-J", *args, **kwargs)
        try:
            return json.loads(r.stdout)
        except ValueError:
            self.fail("kws topics -J printed invalid JSON\n" + str(r))

    def high_watermarks(self, topic):
        doc = self.topics_json(topic)
        (t,) = [t for t in doc["topics"] if t["name"] == topic]
        return {p["partition"]: p["high"] for p in t["partitions"]}

    def assertStderrMentions(self, result, *needles):
        for needle in needles:
            self.assertIn(needle.lower(), result.stderr.lower(),
                          "stderr should mention %r\n%s" % (needle, result))

    def assertQuietSuccess(self, result):
        self.assertEqual(result.rc, 0, str(result))
        self.assertEqual(result.err, b"", "unexpected stderr\n" + str(result))

    def background(self, command, *args, brokers=True, env=None, stdin=subprocess.DEVNULL, nofile=None):
        cmd = [command]
        if brokers is True:
            cmd += ["-b", self.brokers]
        elif brokers:
            cmd += ["-b", brokers]
        bg = Background(cmd + [str(a) for a in args], env=env, stdin=stdin, nofile=nofile)
        self.addCleanup(bg.__exit__, None, None, None)
        return bg

    def follow_until_live(self, topic, bg, probe_prefix="probe-", timeout=20):
        """Produces probe messages to topic until the running reader `bg`
        prints one: proof that it is assigned and reading from the live end.
        Returns the number of probes sent."""
        deadline = time.monotonic() + timeout
        n = 0
        while True:
            n += 1
            self.send(topic, "%s%d" % (probe_prefix, n))
            try:
                bg.wait_for_output(lambda out: probe_prefix.encode() in out, timeout=0.5, what="a probe")
                return n
            except AssertionError:
                if bg.proc.poll() is not None or time.monotonic() > deadline:
                    raise


def main(requires=(), requires_modules=None, needs_kws=True):
    """Entry point of each test file: skips loudly (exit 77) when a required
    tool (program on PATH) or Python module (name -> module or None when its
    import failed) is missing, otherwise runs unittest with verbose output.
    needs_kws=False: a file that never runs kws (test_mqtt_reference.py,
    checking tests against another broker) runs without a kws binary."""
    if needs_kws and not os.access(KWS_BIN, os.X_OK):
        print("FAIL: kws binary not found or not executable: %s (set KWS_BIN)" % KWS_BIN, file=sys.stderr)
        sys.exit(1)
    missing = [tool for tool in requires if shutil.which(tool) is None]
    missing += ["python module %r (for %s)" % (name, sys.executable)
                for name, module in (requires_modules or {}).items() if module is None]
    if missing:
        print("*** SKIP: %s: required tool(s) not installed: %s ***" % (
            os.path.basename(sys.argv[0]), ", ".join(missing)), file=sys.stderr)
        sys.exit(SKIP_RETURN_CODE)
    reports = os.environ.get("KWS_SANITIZER_REPORTS")
    if reports:
        # Set in the sanitizer builds: each kws process writes its ASan,
        # UBSan or TSan report there. Leftovers from an earlier run go first.
        shutil.rmtree(reports, ignore_errors=True)
        os.makedirs(reports)
    program = unittest.main(module="__main__", verbosity=2, exit=False)
    result = program.result
    if reports and os.listdir(reports):
        for name in sorted(os.listdir(reports)):
            with open(os.path.join(reports, name), errors="replace") as f:
                print("*** sanitizer report %s ***\n%s" % (name, f.read()), file=sys.stderr)
        print("FAIL: kws wrote %d sanitizer report(s) in %s" % (len(os.listdir(reports)), reports),
              file=sys.stderr)
        sys.exit(1)
    if not result.wasSuccessful():
        sys.exit(1)
    if not result.testsRun:
        # A file whose tests all went missing (e.g. a bad name on the command line) checked nothing.
        print("FAIL: no test ran", file=sys.stderr)
        sys.exit(1)
    if result.skipped:
        # unittest counts a skipped test as OK; CTest must show it as skipped.
        for test, reason in result.skipped:
            print("*** SKIP: %s: %s ***" % (test.id(), reason), file=sys.stderr)
        sys.exit(SKIP_RETURN_CODE)
