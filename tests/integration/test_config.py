"""Configuration precedence: flag (-b, -X) > environment (KWS_BROKERS) >
config file (-F, else $KWS_CONFIG, else $XDG_CONFIG_HOME/kws/kws.conf or
~/.config/kws/kws.conf) > default, as `kws config` reports it and as real
commands obey it; and kws's own settings (`kws.` keys, KWS_SERVE_* and
KWS_INGEST_*), which `kws config` lists and the man page documents."""

import os
import re

import kwstest

LINE = re.compile(r"^(\S+) = (.*?)  \(([^():]+)(?:: (.*))?\)$")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class ConfigCase(kwstest.KwsTestCase):
    """Runs `kws config` in a scratch HOME and XDG_CONFIG_HOME."""

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


class ConfigPrecedence(ConfigCase):

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


# kws's own settings and their defaults, written out here rather than read
# from the binary, so that a key dropped from the table or a changed default
# fails a test.
KWS_DEFAULTS = {
    "kws.serve.listen": "127.0.0.1:8080",
    "kws.serve.ping_interval": "20s",
    "kws.serve.idle_timeout": "60s",
    "kws.serve.client_buffer": "4M",
    "kws.serve.slow_client": "close",
    "kws.serve.ring_bytes": "8M",
    "kws.serve.max_frame": "1M",
    "kws.serve.max_connections": "10000",
    "kws.serve.write_timeout": "30s",
    "kws.serve.max_topics": "100",
    "kws.serve.max_subscriptions": "64",
    "kws.serve.max_connections_per_ip": "256",
    "kws.serve.limit_loopback": "false",
    "kws.serve.produce_rate": "1000",
    "kws.serve.control_rate": "100",
    "kws.serve.produce_bytes_rate": "4M",
    "kws.serve.allow_origin": "",
    "kws.serve.create_topics": "true",
    "kws.serve.produce_timeout": "30s",
    "kws.serve.read_only": "false",
    "kws.serve.topics_allow": "",
    "kws.serve.topic_prefix": "",
    "kws.serve.produce_time_header": "",
    "kws.serve.produce_headers": "",
    "kws.serve.add_fields": "",
    "kws.serve.plugin": "",
    "kws.serve.tls_cert": "",
    "kws.serve.tls_key": "",
    "kws.serve.tls_client_ca": "",
    "kws.serve.auth": "required",
    "kws.serve.jwt_secret_file": "",
    "kws.serve.jwt_key": "",
    "kws.serve.jwks": "",
    "kws.serve.jwt_issuer": "",
    "kws.serve.jwt_audience": "",
    "kws.serve.jwt_leeway": "30s",
    "kws.serve.acl_claim": "kws",
    "kws.serve.public_page": "false",
    "kws.serve.metrics_listen": "",
    "kws.serve.mqtt": "true",
    "kws.serve.mqtt_listen": "",
    "kws.serve.mqtt_kafka_topic": "mqtt-messages",
    "kws.serve.mqtt_retained_topic": "mqtt-retained",
    "kws.ingest.buffer_messages": "100000",
    "kws.ingest.buffer_bytes": "64M",
    "kws.ingest.when_full": "block",
    "kws.ingest.ping_interval": "20s",
    "kws.ingest.pong_timeout": "10s",
    "kws.ingest.stale_after": "0",
    "kws.ingest.heartbeat_interval": "0",
    "kws.ingest.await_timeout": "10s",
    "kws.ingest.backoff_initial": "500ms",
    "kws.ingest.backoff_max": "30s",
    "kws.ingest.backoff_multiplier": "2",
    "kws.ingest.max_retries": "forever",
    "kws.ingest.max_message_size": "16M",
}


def env_name(key):
    return key.replace(".", "_").upper()


class KwsSettings(ConfigCase):
    """`kws config` shows kws's own settings after the librdkafka ones."""

    def kws_settings(self, settings):
        return {k: v for k, v in settings.items() if k.startswith("kws.")}

    def test_every_key_with_its_default(self):
        s = self.config()
        self.assertEqual({k: v[:2] for k, v in self.kws_settings(s).items()},
                         {k: (v, "default") for k, v in KWS_DEFAULTS.items()}, str(self.result))
        # librdkafka properties first, then kws's, in the table's order.
        keys = [line.split(" ")[0] for line in self.result.lines()]
        self.assertEqual(keys[0], "bootstrap.servers", str(self.result))
        self.assertEqual(keys[1:], list(KWS_DEFAULTS), str(self.result))

    def test_file_then_environment(self):
        f = write(os.path.join(self.dir, "f.conf"),
                  "bootstrap.servers=file-host:1\n# serve\nkws.serve.listen = 0.0.0.0:9000\n"
                  "kws.ingest.when_full=drop-oldest\nkws.serve.client_buffer=512k\n")
        s = self.config("-F", f)
        self.assertSetting(s, "kws.serve.listen", "0.0.0.0:9000", "file", f + ":3")
        self.assertSetting(s, "kws.ingest.when_full", "drop-oldest", "file", f + ":4")
        self.assertSetting(s, "kws.serve.client_buffer", "512k", "file", f + ":5")
        self.assertSetting(s, "kws.serve.ping_interval", "20s", "default")
        self.assertSetting(s, "bootstrap.servers", "file-host:1", "file", f + ":1")

        s = self.config("-F", f, KWS_SERVE_LISTEN="[::1]:7000", KWS_SERVE_IDLE_TIMEOUT="2m")
        self.assertSetting(s, "kws.serve.listen", "[::1]:7000", "environment", "KWS_SERVE_LISTEN")
        self.assertSetting(s, "kws.serve.idle_timeout", "2m", "environment", "KWS_SERVE_IDLE_TIMEOUT")
        self.assertSetting(s, "kws.ingest.when_full", "drop-oldest", "file", f + ":4")

    def test_serve_client_buffer_default_file_environment(self):
        s = self.config()
        self.assertSetting(s, "kws.serve.client_buffer", "4M", "default")
        f = write(os.path.join(self.dir, "f.conf"), "kws.serve.client_buffer=512k\n")
        s = self.config("-F", f)
        self.assertSetting(s, "kws.serve.client_buffer", "512k", "file", f + ":1")
        s = self.config("-F", f, KWS_SERVE_CLIENT_BUFFER="1M")
        self.assertSetting(s, "kws.serve.client_buffer", "1M", "environment", "KWS_SERVE_CLIENT_BUFFER")
        # A bad value is refused naming where it came from, unless a higher layer hides it.
        bad = write(os.path.join(self.dir, "bad.conf"), "kws.serve.client_buffer=lots\n")
        r = self.config("-F", bad, rc=2)
        self.assertIn("kws: error: %s:1: kws.serve.client_buffer: 'lots' is not a size in bytes" % bad, r.stderr)
        s = self.config("-F", bad, KWS_SERVE_CLIENT_BUFFER="1M")
        self.assertSetting(s, "kws.serve.client_buffer", "1M", "environment")
        # MB and MiB are powers of 1024 alike; a lower-case b (bits) is refused.
        s = self.config("-F", f, KWS_SERVE_CLIENT_BUFFER="1MB")
        self.assertSetting(s, "kws.serve.client_buffer", "1MB", "environment", "KWS_SERVE_CLIENT_BUFFER")
        r = self.config("-F", f, rc=2, KWS_SERVE_CLIENT_BUFFER="1Mb")
        self.assertIn("kws: error: KWS_SERVE_CLIENT_BUFFER: '1Mb' is not a size in bytes", r.stderr, str(r))

    def test_plain_number_duration_is_seconds(self):
        # As kws serve's --ping-interval and --idle-timeout have always read it.
        s = self.config(KWS_SERVE_PING_INTERVAL="0.5", KWS_SERVE_IDLE_TIMEOUT="90")
        self.assertSetting(s, "kws.serve.ping_interval", "0.5", "environment")
        self.assertSetting(s, "kws.serve.idle_timeout", "90", "environment")
        r = self.config(rc=2, KWS_SERVE_PING_INTERVAL="0.0005")
        self.assertIn("KWS_SERVE_PING_INTERVAL: '0.0005' is finer than a millisecond", r.stderr, str(r))

    def test_io_threads_is_no_setting(self):
        # kws serve's socket I/O is one thread by design; the key went with the idea.
        f = write(os.path.join(self.dir, "f.conf"), "kws.serve.io_threads=2\n")
        r = self.config("-F", f, rc=2)
        self.assertIn("%s:1: unknown kws setting 'kws.serve.io_threads'" % f, r.stderr, str(r))

    def test_default_file_holds_kws_settings_too(self):
        path = write(os.path.join(self.xdg, "kws", "kws.conf"), "kws.ingest.backoff_max=1m\n")
        s = self.config()
        self.assertSetting(s, "kws.ingest.backoff_max", "1m", "file", path + ":1")

    def test_bad_environment_value_names_the_variable(self):
        for var, value, why in [("KWS_SERVE_LISTEN", "localhost", "is not HOST:PORT"),
                                ("KWS_SERVE_PING_INTERVAL", "30sec", "is not a duration"),
                                ("KWS_INGEST_BUFFER_BYTES", "4Mb", "is not a size in bytes"),
                                ("KWS_INGEST_MAX_RETRIES", "-1", "from 0 to 2147483647 or forever"),
                                ("KWS_INGEST_BACKOFF_MULTIPLIER", "0.5", "must be a number from 1 to 100"),
                                ("KWS_INGEST_BACKOFF_INITIAL", "0", "must be above 0"),
                                ("KWS_SERVE_MAX_CONNECTIONS", "0", "must be a whole number from 1"),
                                ("KWS_SERVE_SLOW_CLIENT", "drop", "is not one of: close, drop-oldest, latest-per-key"),
                                ("KWS_SERVE_TLS_CERT", os.path.join(self.dir, "none.pem"), "No such file")]:
            r = self.config(rc=2, **{var: value})
            self.assertIn("kws: error: %s: " % var, r.stderr, str(r))
            self.assertIn(why, r.stderr, str(r))
            self.assertEqual(r.stdout, "", str(r))

    def test_durations_in_parts(self):
        s = self.config(KWS_SERVE_IDLE_TIMEOUT="1m30s", KWS_INGEST_BACKOFF_MAX="1h2m")
        self.assertSetting(s, "kws.serve.idle_timeout", "1m30s", "environment", "KWS_SERVE_IDLE_TIMEOUT")
        self.assertSetting(s, "kws.ingest.backoff_max", "1h2m", "environment", "KWS_INGEST_BACKOFF_MAX")
        r = self.config(rc=2, KWS_SERVE_IDLE_TIMEOUT="30s1m")
        self.assertIn("KWS_SERVE_IDLE_TIMEOUT: '30s1m': a duration's parts go from the largest unit down",
                      r.stderr, str(r))

    def test_bad_file_value_names_file_and_line(self):
        f = write(os.path.join(self.dir, "f.conf"), "acks=1\n\nkws.serve.idle_timeout=60 s\n")
        r = self.config("-F", f, rc=2)
        self.assertIn("kws: error: %s:3: kws.serve.idle_timeout: '60 s' is not a duration" % f, r.stderr, str(r))
        # The environment beats the file, so the bad line is never looked at.
        s = self.config("-F", f, KWS_SERVE_IDLE_TIMEOUT="90s")
        self.assertSetting(s, "kws.serve.idle_timeout", "90s", "environment")

    def test_unknown_kws_key_is_an_error_for_every_command(self):
        f = write(os.path.join(self.dir, "f.conf"), "bootstrap.servers=127.0.0.1:1\nkws.serve.lisen=0.0.0.0:1\n")
        expected = "%s:2: unknown kws setting 'kws.serve.lisen'" % f
        r = self.config("-F", f, rc=2)
        self.assertIn(expected, r.stderr, str(r))
        # Commands that read no kws setting still refuse the typo, before connecting.
        for args in (["send", "-F", f, "t", "x"], ["tail", "-F", f, "-e", "t"], ["topics", "-F", f]):
            r = kwstest.kws(*args, env=kwstest.clean_env(HOME=self.home), timeout=10)
            self.assertEqual(r.rc, 2, str(r))
            self.assertIn(expected, r.stderr, str(r))

    def test_kws_key_is_not_a_librdkafka_property(self):
        r = self.config("-X", "kws.serve.listen=0.0.0.0:1", rc=2)
        self.assertIn("kws.serve.listen is a kws setting, not a librdkafka property", r.stderr, str(r))
        self.assertIn("KWS_SERVE_LISTEN", r.stderr, str(r))

    def test_man_page_documents_every_key(self):
        r = kwstest.kws("manpage", "kws", env=kwstest.clean_env(), timeout=10)
        self.assertEqual(r.rc, 0, str(r))
        page = r.stdout
        self.assertIn("\n.SH SETTINGS\n", page)
        section = page.split("\n.SH SETTINGS\n", 1)[1].split("\n.SH ", 1)[0]
        entries = section.split("\n.TP\n.B ")[1:]
        documented = {e.split("\n", 1)[0]: e.split("\n", 1)[1] for e in entries}
        self.assertEqual(list(documented), list(KWS_DEFAULTS), section)
        for key, default in KWS_DEFAULTS.items():
            text = documented[key]
            self.assertIn("Environment %s;" % env_name(key), text, key)
            self.assertIn("default %s;" % (default.replace("-", "\\-") if default else "empty (not set)"), text, key)
            self.assertRegex(text.split("\n", 1)[0], r"\w", "%s has no description" % key)
        # kws-config(1) carries the same section; kws-send(1) reads no kws setting.
        r = kwstest.kws("manpage", "kws-config", env=kwstest.clean_env(), timeout=10)
        self.assertIn(section, r.stdout)
        r = kwstest.kws("manpage", "kws-send", env=kwstest.clean_env(), timeout=10)
        self.assertNotIn(".SH SETTINGS", r.stdout)


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

    def test_large_message_max_bytes_is_accepted_by_tail(self):
        # tail's own fetch.max.bytes default must give way: librdkafka refuses
        # a fetch.max.bytes below message.max.bytes.
        f = write(os.path.join(self.dir, "kws.conf"),
                  "bootstrap.servers=%s\nmessage.max.bytes=5000000\n" % self.brokers)
        self.roundtrip(kwstest.clean_env(), "-F", f)

    def test_kws_settings_in_the_file_do_not_reach_librdkafka(self):
        # librdkafka would refuse an unknown property ("No such configuration property").
        f = write(os.path.join(self.dir, "kws.conf"),
                  "bootstrap.servers=%s\nkws.serve.listen=0.0.0.0:1\nkws.ingest.when_full=drop-newest\n" % self.brokers)
        self.roundtrip(kwstest.clean_env(), "-F", f)

    def test_bad_property_in_file_is_usage_error_naming_it(self):
        f = write(os.path.join(self.dir, "kws.conf"), "bootstrap.servers=%s\nno.such.property=1\n" % self.brokers)
        r = kwstest.kws("send", "-F", f, self.topic(), "x")
        self.assertEqual(r.rc, 2, str(r))
        self.assertIn("no.such.property", r.stderr, str(r))
        self.assertIn(f, r.stderr, str(r))


if __name__ == "__main__":
    kwstest.main()
