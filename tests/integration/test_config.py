"""Configuration precedence: flag (-b, -X) > environment (KWS_BROKERS) >
config file (-F, else $KWS_CONFIG, else $XDG_CONFIG_HOME/kws/kws.conf or
~/.config/kws/kws.conf) > default, as `kws config` reports it and as real
commands obey it."""

import os
import re

import kwstest

LINE = re.compile(r"^(\S+) = (.*?)  \(([^():]+)(?:: (.*))?\)$")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class ConfigPrecedence(kwstest.KwsTestCase):
    broker_args = None  # `kws config` never connects

    def setUp(self):
        self.dir = kwstest.scratch_dir()
        self.home = os.path.join(self.dir, "home")
        self.xdg = os.path.join(self.dir, "xdg")
        os.makedirs(self.home)
        os.makedirs(self.xdg)

    def config(self, *args, rc=0, **env):
        """Runs `kws config ARGS` and returns {key: (value, source, origin)}."""
        overrides = {"HOME": self.home, "XDG_CONFIG_HOME": self.xdg}
        overrides.update(env)
        environment = kwstest.clean_env(**overrides)
        r = kwstest.kws("config", *args, env=environment, timeout=10)
        self.assertEqual(r.rc, rc, str(r))
        if rc != 0:
            return r
        settings = {}
        for line in r.lines():
            m = LINE.match(line)
            self.assertIsNotNone(m, "unexpected line %r\n%s" % (line, r))
            settings[m.group(1)] = (m.group(2), m.group(3), m.group(4))
        self.result = r
        return settings

    def assertSetting(self, settings, key, value, source, origin=None):
        self.assertIn(key, settings, str(self.result))
        got = settings[key]
        self.assertEqual(got[:2], (value, source), "%s\n%s" % (key, self.result))
        if origin is not None:
            self.assertIn(origin, got[2] or "", "%s origin\n%s" % (key, self.result))

    def test_default(self):
        s = self.config()
        self.assertSetting(s, "bootstrap.servers", "localhost:9092", "default")

    def test_xdg_default_file(self):
        path = write(os.path.join(self.xdg, "kws", "kws.conf"),
                     "# comment\n\n! also a comment\nbootstrap.servers = xdg-host:1\n  client.id=from-xdg  \n")
        s = self.config()
        self.assertSetting(s, "bootstrap.servers", "xdg-host:1", "file", path + ":4")
        self.assertSetting(s, "client.id", "from-xdg", "file", path + ":5")

    def test_home_default_file_without_xdg(self):
        path = write(os.path.join(self.home, ".config", "kws", "kws.conf"), "bootstrap.servers=home-host:1\n")
        s = self.config(XDG_CONFIG_HOME=None)
        self.assertSetting(s, "bootstrap.servers", "home-host:1", "file", path)

    def test_kws_config_beats_default_file(self):
        write(os.path.join(self.xdg, "kws", "kws.conf"), "bootstrap.servers=xdg-host:1\n")
        other = write(os.path.join(self.dir, "other.conf"), "bootstrap.servers=env-file-host:1\n")
        s = self.config(KWS_CONFIG=other)
        self.assertSetting(s, "bootstrap.servers", "env-file-host:1", "file", other)

    def test_flag_file_beats_kws_config(self):
        other = write(os.path.join(self.dir, "other.conf"), "bootstrap.servers=env-file-host:1\n")
        flagged = write(os.path.join(self.dir, "flag.conf"), "bootstrap.servers=flag-file-host:1\n")
        s = self.config("-F", flagged, KWS_CONFIG=other)
        self.assertSetting(s, "bootstrap.servers", "flag-file-host:1", "file", flagged)

    def test_environment_beats_file(self):
        f = write(os.path.join(self.dir, "f.conf"), "bootstrap.servers=file-host:1\nclient.id=kept\n")
        s = self.config("-F", f, KWS_BROKERS="env-host:2")
        self.assertSetting(s, "bootstrap.servers", "env-host:2", "environment", "KWS_BROKERS")
        self.assertSetting(s, "client.id", "kept", "file")

    def test_flags_beat_environment(self):
        f = write(os.path.join(self.dir, "f.conf"), "bootstrap.servers=file-host:1\n")
        s = self.config("-F", f, "-X", "bootstrap.servers=x-host:3", KWS_BROKERS="env-host:2")
        self.assertSetting(s, "bootstrap.servers", "x-host:3", "flag", "-X")
        s = self.config("-F", f, "-X", "bootstrap.servers=x-host:3", "-b", "b-host:4", KWS_BROKERS="env-host:2")
        self.assertSetting(s, "bootstrap.servers", "b-host:4", "flag", "-b")

    def test_property_flag_beats_file_value(self):
        f = write(os.path.join(self.dir, "f.conf"), "client.id=from-file\nacks=1\n")
        s = self.config("-F", f, "-X", "client.id=from-flag")
        self.assertSetting(s, "client.id", "from-flag", "flag")
        self.assertSetting(s, "acks", "1", "file")

    def test_alias_key_in_file_is_the_same_setting(self):
        f = write(os.path.join(self.dir, "f.conf"), "metadata.broker.list=alias-host:1\n")
        s = self.config("-F", f)
        self.assertSetting(s, "bootstrap.servers", "alias-host:1", "file")
        s = self.config("-F", f, KWS_BROKERS="env-host:2")
        self.assertSetting(s, "bootstrap.servers", "env-host:2", "environment")
        self.assertNotIn("metadata.broker.list", s)

    def test_bad_file_line_is_usage_error(self):
        f = write(os.path.join(self.dir, "bad.conf"), "client.id=ok\nthis line has no equals sign\n")
        r = self.config("-F", f, rc=2)
        self.assertIn(f + ":2", r.stderr, str(r))

    def test_missing_explicit_file_is_usage_error(self):
        r = self.config("-F", os.path.join(self.dir, "nope.conf"), rc=2)
        self.assertIn("nope.conf", r.stderr, str(r))


class ConfigTakesEffect(kwstest.KwsTestCase):
    """Settings from files and the environment reach real commands."""

    broker_args = ["--partitions", "1"]

    def setUp(self):
        self.dir = kwstest.scratch_dir()

    def roundtrip(self, env, *args):
        t = self.topic()
        r = kwstest.kws("send", *args, t, "via-config", env=env)
        self.assertEqual((r.rc, r.out, r.err), (0, b"", b""), str(r))
        r = kwstest.kws("tail", *args, "-o", "beginning", "-e", t, env=env)
        self.assertEqual((r.rc, r.lines()), (0, ["via-config"]), str(r))

    def test_flag_file(self):
        f = write(os.path.join(self.dir, "kws.conf"), "bootstrap.servers=%s\n" % self.brokers)
        self.roundtrip(kwstest.clean_env(), "-F", f)

    def test_kws_config_variable(self):
        f = write(os.path.join(self.dir, "kws.conf"), "bootstrap.servers=%s\n" % self.brokers)
        self.roundtrip(kwstest.clean_env(KWS_CONFIG=f))

    def test_xdg_default_file(self):
        xdg = os.path.join(self.dir, "xdg")
        write(os.path.join(xdg, "kws", "kws.conf"), "bootstrap.servers=%s\n" % self.brokers)
        self.roundtrip(kwstest.clean_env(XDG_CONFIG_HOME=xdg))

    def test_kws_brokers_variable(self):
        self.roundtrip(kwstest.clean_env(KWS_BROKERS=self.brokers))

    def test_environment_beats_file_for_real(self):
        holder = kwstest.free_port_holder()
        self.addCleanup(holder.close)
        f = write(os.path.join(self.dir, "kws.conf"), "bootstrap.servers=127.0.0.1:%d\n" % holder.getsockname()[1])
        self.roundtrip(kwstest.clean_env(KWS_BROKERS=self.brokers), "-F", f)

    def test_broker_flag_beats_environment_for_real(self):
        holder = kwstest.free_port_holder()
        self.addCleanup(holder.close)
        dead = "127.0.0.1:%d" % holder.getsockname()[1]
        self.roundtrip(kwstest.clean_env(KWS_BROKERS=dead), "-b", self.brokers)

    def test_file_properties_apply_and_flags_override_them(self):
        f = write(os.path.join(self.dir, "kws.conf"),
                  "bootstrap.servers=%s\nmessage.max.bytes=2000\n" % self.brokers)
        t = self.topic()
        big = "y" * 5000
        env = kwstest.clean_env()
        r = kwstest.kws("send", "-F", f, t, big, env=env)
        self.assertEqual(r.rc, 1, "the file's message.max.bytes must apply\n" + str(r))
        r = kwstest.kws("send", "-F", f, "-X", "message.max.bytes=1000000", t, big, env=env)
        self.assertEqual(r.rc, 0, "-X must override the file\n" + str(r))
        r = kwstest.kws("tail", "-F", f, "-o", "beginning", "-e", "-f", "%S\\n", t, env=env)
        self.assertEqual(r.lines(), ["5000"], str(r))

    def test_bad_property_in_file_is_usage_error_naming_it(self):
        f = write(os.path.join(self.dir, "kws.conf"), "bootstrap.servers=%s\nno.such.property=1\n" % self.brokers)
        r = kwstest.kws("send", "-F", f, self.topic(), "x")
        self.assertEqual(r.rc, 2, str(r))
        self.assertIn("no.such.property", r.stderr, str(r))
        self.assertIn(f, r.stderr, str(r))


if __name__ == "__main__":
    kwstest.main()
