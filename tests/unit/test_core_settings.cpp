#include <catch2/catch.hpp>

#include <unistd.h>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include "core/config.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/settings.hpp"
#include "core/util/error.hpp"

using namespace kws;
using std::chrono::milliseconds;

namespace {
EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/kws-settings-XXXXXX";
    int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name;
    std::ofstream(path) << content;
  }
  ~TempFile() { std::remove(path.c_str()); }
};

ConfigFile file_of(const TempFile& f) { return load_config_file(f.path, fake_env({})); }

// The usage error's message, or "" when `fn` did not throw one.
template <typename Fn>
std::string usage_error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    CHECK(e.exit_code() == exit_usage);
    return e.what();
  }
  return "";
}

std::string parse_error(const std::string& name, const std::string& text) {
  const SettingKey* key = find_setting_key(name);
  REQUIRE(key);
  return usage_error_of([&] { parse_setting(*key, text, "ORIGIN"); });
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}
}  // namespace

TEST_CASE("settings: the table is consistent") {
  std::set<std::string> names;
  for (const auto& key : kws_setting_keys()) {
    INFO(key.name);
    CHECK(names.insert(key.name).second);
    // The environment variable is the key's name, upper-cased, dots as
    // underscores, so users can guess one from the other.
    std::string env = "KWS_";
    for (char c : key.name)
      env += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    CHECK(key.env == env);
    CHECK_FALSE(key.doc.empty());
    CHECK_FALSE(key.commands.empty());
    CHECK(key.file_key() == "kws." + key.name);
    CHECK(find_setting_key(key.name) == &key);
    if (key.type == SettingType::choice) CHECK(key.choices.size() >= 2);
    if (key.type == SettingType::factor) CHECK(key.max > 0);
    // 0 has a meaning only where the type has a zero, and a word for "no limit" only counts have.
    if (!key.zero.empty()) {
      CHECK((key.type == SettingType::count || key.type == SettingType::duration || key.type == SettingType::bytes));
    }
    if (!key.unlimited.empty()) CHECK(key.type == SettingType::count);
    // Every default passes its own validator.
    CHECK_NOTHROW(parse_setting(key, key.default_value, "default"));
  }
  CHECK(find_setting_key("serve.nope") == nullptr);
  CHECK(find_setting_key("kws.serve.listen") == nullptr);  // names are without the prefix
}

TEST_CASE("settings: the keys serve and ingest read, with their defaults") {
  auto all = resolve_kws_settings("", {}, {}, fake_env({}));
  CHECK(all.all().size() == kws_setting_keys().size());

  auto serve = resolve_kws_settings("serve", {}, {}, fake_env({}));
  CHECK(serve.host_port("serve.listen") == HostPort{"127.0.0.1", 8080});
  CHECK(serve.duration("serve.ping_interval") == milliseconds(20'000));
  CHECK(serve.duration("serve.idle_timeout") == milliseconds(60'000));
  CHECK(serve.bytes("serve.client_buffer") == 4u << 20);
  CHECK(serve.choice("serve.slow_client") == "close");
  CHECK(serve.bytes("serve.ring_bytes") == 8u << 20);
  CHECK(serve.bytes("serve.max_frame") == 1u << 20);
  CHECK(serve.count("serve.max_connections") == 10000);
  CHECK(serve.path("serve.tls_cert").empty());
  CHECK(serve.path("serve.tls_key").empty());
  CHECK(serve.at("serve.listen").source == ConfigSource::default_value);
  CHECK(serve.at("serve.listen").origin == "default");
  CHECK_THROWS_AS(serve.at("ingest.when_full"), std::logic_error);  // not serve's

  auto ingest = resolve_kws_settings("ingest", {}, {}, fake_env({}));
  CHECK(ingest.count("ingest.buffer_messages") == 100000);
  CHECK(ingest.bytes("ingest.buffer_bytes") == 64u << 20);
  CHECK(ingest.choice("ingest.when_full") == "block");
  CHECK(ingest.duration("ingest.ping_interval") == milliseconds(20'000));
  CHECK(ingest.duration("ingest.pong_timeout") == milliseconds(10'000));
  CHECK(ingest.duration("ingest.backoff_initial") == milliseconds(500));
  CHECK(ingest.duration("ingest.backoff_max") == milliseconds(30'000));
  CHECK(ingest.bytes("ingest.max_message_size") == 16u << 20);
  CHECK(ingest.duration("ingest.stale_after") == milliseconds(0));         // never
  CHECK(ingest.duration("ingest.heartbeat_interval") == milliseconds(0));  // none
  CHECK(ingest.duration("ingest.await_timeout") == milliseconds(10'000));
  CHECK(ingest.factor("ingest.backoff_multiplier") == 2.0);
  CHECK(ingest.limit("ingest.max_retries") == std::nullopt);  // forever
  CHECK_THROWS_AS(ingest.at("serve.listen"), std::logic_error);
  // A count that may be "forever" is read with limit(), so no caller takes the word for a number.
  CHECK_THROWS_AS(ingest.count("ingest.max_retries"), std::logic_error);
  CHECK(serve.limit("serve.max_connections") == 10000u);

  // Asking for the wrong type is the caller's bug, not the user's.
  CHECK_THROWS_AS(serve.bytes("serve.listen"), std::logic_error);
  CHECK_THROWS_AS(serve.count("serve.client_buffer"), std::logic_error);
}

TEST_CASE("settings: precedence is flag > environment > file > default") {
  TempFile f(
      "# kws settings beside librdkafka properties\nbootstrap.servers=k:9092\nkws.serve.listen=0.0.0.0:1\n"
      "kws.serve.ping_interval = 5s\nkws.serve.ping_interval=7s\n");
  ConfigFile file = file_of(f);

  auto s = resolve_kws_settings("serve", {}, file, fake_env({}));
  CHECK(s.host_port("serve.listen") == HostPort{"0.0.0.0", 1});
  CHECK(s.at("serve.listen").source == ConfigSource::file);
  CHECK(s.at("serve.listen").origin == f.path + ":3");
  CHECK(s.duration("serve.ping_interval") == milliseconds(7000));  // the last line wins
  CHECK(s.at("serve.ping_interval").origin == f.path + ":5");
  CHECK(s.at("serve.idle_timeout").source == ConfigSource::default_value);

  auto env = fake_env({{"KWS_SERVE_LISTEN", "[::1]:2"}});
  s = resolve_kws_settings("serve", {}, file, env);
  CHECK(s.host_port("serve.listen") == HostPort{"::1", 2});
  CHECK(s.at("serve.listen").source == ConfigSource::environment);
  CHECK(s.at("serve.listen").origin == "KWS_SERVE_LISTEN");
  CHECK(s.at("serve.listen").text == "[::1]:2");

  s = resolve_kws_settings("serve", {{"serve.listen", {"localhost:3", "--listen"}}}, file, env);
  CHECK(s.host_port("serve.listen") == HostPort{"127.0.0.1", 3});
  CHECK(s.at("serve.listen").source == ConfigSource::flag);
  CHECK(s.at("serve.listen").origin == "--listen");
  // The other keys keep their own sources.
  CHECK(s.at("serve.ping_interval").source == ConfigSource::file);
}

TEST_CASE("settings: serve.client_buffer from each layer, a hidden bad value never looked at") {
  TempFile good("kws.serve.client_buffer=512k\n");
  TempFile bad("kws.serve.client_buffer=lots\n");
  const FlagValues flag = {{"serve.client_buffer", {"2M", "--client-buffer"}}};
  auto env = fake_env({{"KWS_SERVE_CLIENT_BUFFER", "1M"}});
  auto bad_env = fake_env({{"KWS_SERVE_CLIENT_BUFFER", "1Mb"}});

  auto s = resolve_kws_settings("serve", {}, file_of(good), fake_env({}));
  CHECK(s.bytes("serve.client_buffer") == 512u << 10);
  CHECK(s.at("serve.client_buffer").origin == good.path + ":1");
  s = resolve_kws_settings("serve", {}, file_of(good), env);
  CHECK(s.bytes("serve.client_buffer") == 1u << 20);
  CHECK(s.at("serve.client_buffer").origin == "KWS_SERVE_CLIENT_BUFFER");
  s = resolve_kws_settings("serve", flag, file_of(good), env);
  CHECK(s.bytes("serve.client_buffer") == 2u << 20);
  CHECK(s.at("serve.client_buffer").origin == "--client-buffer");
  CHECK(s.at("serve.client_buffer").text == "2M");

  CHECK(starts_with(usage_error_of([&] { resolve_kws_settings("serve", {}, file_of(bad), fake_env({})); }),
                    bad.path + ":1: kws.serve.client_buffer: 'lots' is not a size in bytes"));
  CHECK(resolve_kws_settings("serve", {}, file_of(bad), env).bytes("serve.client_buffer") == 1u << 20);
  CHECK(starts_with(usage_error_of([&] { resolve_kws_settings("serve", {}, file_of(good), bad_env); }),
                    "KWS_SERVE_CLIENT_BUFFER: '1Mb' is not a size in bytes"));
  CHECK(resolve_kws_settings("serve", flag, file_of(bad), bad_env).bytes("serve.client_buffer") == 2u << 20);
  CHECK(starts_with(
      usage_error_of([&] {
        resolve_kws_settings("serve", {{"serve.client_buffer", {"0", "--client-buffer"}}}, {}, env);
      }),
      "--client-buffer: '0': the size must be above 0"));
}

TEST_CASE("settings: librdkafka never sees kws keys, and they never pass as librdkafka properties") {
  TempFile f("acks=1\nkws.serve.listen=0.0.0.0:1\n");
  ConfigFile file = file_of(f);
  auto kafka = resolve_kafka_settings({}, file, fake_env({}));
  CHECK(kafka.find("kws.serve.listen") == nullptr);
  CHECK(kafka.find("acks")->value == "1");
  CHECK(kafka.config_file == f.path);

  ConnectionInputs in;
  in.properties = {"kws.serve.listen=0.0.0.0:1"};
  std::string message = usage_error_of([&] { resolve_kafka_settings(in, {}, fake_env({})); });
  CHECK(message.find("kws.serve.listen is a kws setting") != std::string::npos);
  CHECK(message.find("KWS_SERVE_LISTEN") != std::string::npos);
}

TEST_CASE("settings: an unknown kws key in the file is an error naming file and line, for every command") {
  TempFile f("acks=1\n\nkws.serve.lisen=0.0.0.0:1\n");
  ConfigFile file = file_of(f);
  const std::string where = f.path + ":3: unknown kws setting 'kws.serve.lisen'";
  CHECK(starts_with(usage_error_of([&] { resolve_kws_settings("serve", {}, file, fake_env({})); }), where));
  CHECK(starts_with(usage_error_of([&] { resolve_kws_settings("ingest", {}, file, fake_env({})); }), where));
  // kws send reads no kws setting, but a typo must not go unnoticed there either.
  CHECK(starts_with(usage_error_of([&] { resolve_kafka_settings({}, file, fake_env({})); }), where));
}

TEST_CASE("settings: a bad value is a usage error that names where it came from") {
  TempFile f("kws.serve.idle_timeout=60 s\n");
  ConfigFile file = file_of(f);
  std::string m = usage_error_of([&] { resolve_kws_settings("serve", {}, file, fake_env({})); });
  CHECK(starts_with(m, f.path + ":1: kws.serve.idle_timeout: '60 s' is not a duration"));

  m = usage_error_of([&] {
    resolve_kws_settings("serve", {}, {}, fake_env({{"KWS_SERVE_LISTEN", "host-without-port"}}));
  });
  CHECK(starts_with(m, "KWS_SERVE_LISTEN: 'host-without-port' is not HOST:PORT"));

  m = usage_error_of([&] {
    resolve_kws_settings("ingest", {{"ingest.when_full", {"drop", "--when-full"}}}, {}, fake_env({}));
  });
  CHECK(starts_with(m, "--when-full: 'drop' is not one of: block, drop-oldest, drop-newest"));

  // A value that the command's flag overrides is not looked at...
  CHECK_NOTHROW(
      resolve_kws_settings("serve", {{"serve.idle_timeout", {"5s", "--idle-timeout"}}}, file, fake_env({})));
  // ...and a command only checks the keys it reads: ingest does not care about serve's.
  CHECK_NOTHROW(resolve_kws_settings("ingest", {}, file, fake_env({{"KWS_SERVE_LISTEN", "bad"}})));
}

TEST_CASE("settings: a flag for a key the command does not read is a bug in the command") {
  CHECK_THROWS_AS(resolve_kws_settings("ingest", {{"serve.listen", {"a:1", "--listen"}}}, {}, fake_env({})),
                  std::logic_error);
  CHECK_THROWS_AS(resolve_kws_settings("serve", {{"serve.nope", {"1", "--nope"}}}, {}, fake_env({})),
                  std::logic_error);
}

TEST_CASE("settings: host:port") {
  const SettingKey& key = *find_setting_key("serve.listen");
  CHECK(std::get<HostPort>(parse_setting(key, "0.0.0.0:8080", "o")) == HostPort{"0.0.0.0", 8080});
  CHECK(std::get<HostPort>(parse_setting(key, "example.com:0", "o")) == HostPort{"example.com", 0});
  CHECK(std::get<HostPort>(parse_setting(key, "[fe80::1]:65535", "o")) == HostPort{"fe80::1", 65535});
  // websocat's forms: a port alone is loopback, never every interface.
  CHECK(std::get<HostPort>(parse_setting(key, "8080", "o")) == HostPort{"127.0.0.1", 8080});
  CHECK(std::get<HostPort>(parse_setting(key, ":8080", "o")) == HostPort{"127.0.0.1", 8080});
  CHECK(std::get<HostPort>(parse_setting(key, "0", "o")) == HostPort{"127.0.0.1", 0});
  CHECK(std::get<HostPort>(parse_setting(key, "localhost:1", "o")) == HostPort{"127.0.0.1", 1});
  CHECK(starts_with(parse_error("serve.listen", "65536"), "ORIGIN: '65536': the port must be"));
  CHECK(starts_with(parse_error("serve.listen", ":"), "ORIGIN: ':' is not HOST:PORT"));
  CHECK(starts_with(parse_error("serve.listen", "host"), "ORIGIN: 'host' is not HOST:PORT"));
  CHECK(starts_with(parse_error("serve.listen", "-1"), "ORIGIN: '-1' is not HOST:PORT"));
  CHECK(starts_with(parse_error("serve.listen", ""), "ORIGIN: '' is not HOST:PORT"));
  CHECK(starts_with(parse_error("serve.listen", "[]:1"), "ORIGIN: '[]:1' is not HOST:PORT"));
  CHECK(starts_with(parse_error("serve.listen", "::1:8080"),
                    "ORIGIN: '::1:8080': an IPv6 address needs brackets"));
  for (const char* port : {"h:", "h:65536", "h:-1", "h:+1", "h:80x", "h: 80", "h:99999999999999999999"}) {
    INFO(port);
    CHECK(starts_with(parse_error("serve.listen", port),
                      "ORIGIN: '" + std::string(port) + "': the port must be"));
  }
}

TEST_CASE("settings: every listen address outside the table reads the same forms") {
  CHECK(split_host_port("9092", "--listen") == std::pair<std::string, uint16_t>{"127.0.0.1", 9092});
  CHECK(split_host_port(":0", "--listen") == std::pair<std::string, uint16_t>{"127.0.0.1", 0});
  CHECK(split_host_port("[::1]:7", "--listen") == std::pair<std::string, uint16_t>{"::1", 7});
  CHECK(parse_listen_address("9464", "--metrics") == HostPort{"127.0.0.1", 9464});
  CHECK_THROWS_WITH(split_host_port("nonsense", "--broker-listen"), Catch::StartsWith("--broker-listen: 'nonsense'"));
}

TEST_CASE("settings: bytes with k, M and G suffixes") {
  const SettingKey& key = *find_setting_key("serve.client_buffer");
  CHECK(std::get<uint64_t>(parse_setting(key, "1", "o")) == 1);
  CHECK(std::get<uint64_t>(parse_setting(key, "4096", "o")) == 4096);
  CHECK(std::get<uint64_t>(parse_setting(key, "64k", "o")) == 64 * 1024);
  CHECK(std::get<uint64_t>(parse_setting(key, "64K", "o")) == 64 * 1024);
  CHECK(std::get<uint64_t>(parse_setting(key, "4M", "o")) == 4ull << 20);
  CHECK(std::get<uint64_t>(parse_setting(key, "2G", "o")) == 2ull << 30);
  // A B after the unit, or iB: powers of 1024 either way (buffer sizes, as Docker reads them).
  CHECK(std::get<uint64_t>(parse_setting(key, "4096B", "o")) == 4096);
  CHECK(std::get<uint64_t>(parse_setting(key, "64KB", "o")) == 64 * 1024);
  CHECK(std::get<uint64_t>(parse_setting(key, "64kB", "o")) == 64 * 1024);
  CHECK(std::get<uint64_t>(parse_setting(key, "64KiB", "o")) == 64 * 1024);
  CHECK(std::get<uint64_t>(parse_setting(key, "4MB", "o")) == 4ull << 20);
  CHECK(std::get<uint64_t>(parse_setting(key, "16MiB", "o")) == 16ull << 20);
  CHECK(std::get<uint64_t>(parse_setting(key, "2GiB", "o")) == 2ull << 30);
  // A fraction, when it comes to whole bytes.
  CHECK(std::get<uint64_t>(parse_setting(key, "1.5K", "o")) == 1536);
  CHECK(std::get<uint64_t>(parse_setting(key, "1.5M", "o")) == 3ull << 19);
  CHECK(std::get<uint64_t>(parse_setting(key, ".5k", "o")) == 512);
  CHECK(std::get<uint64_t>(parse_setting(key, "2.M", "o")) == 2ull << 20);
  for (const char* bad : {"", "M", "4 M", "-1", "+4", "0x10", "four", "B", "iB", "5iB", "4mb", "4Mib", "4MiB ",
                          "4TB", "1e3", ".", "1..5K", "12X", "lots"}) {
    INFO(bad);
    CHECK(starts_with(parse_error("serve.client_buffer", bad),
                      "ORIGIN: '" + std::string(bad) + "' is not a size in bytes"));
  }
  CHECK(starts_with(parse_error("serve.client_buffer", "0"), "ORIGIN: '0': the size must be above 0"));
  CHECK(starts_with(parse_error("serve.client_buffer", "0k"), "ORIGIN: '0k': the size must be above 0"));
  CHECK(starts_with(parse_error("serve.client_buffer", "0.0B"), "ORIGIN: '0.0B': the size must be above 0"));
  CHECK(parse_error("serve.client_buffer", "1.3") == "ORIGIN: '1.3' is not a whole number of bytes");
  CHECK(parse_error("serve.client_buffer", "0.3K") == "ORIGIN: '0.3K' is not a whole number of bytes");
  CHECK(starts_with(parse_error("serve.client_buffer", "9000000000G"), "ORIGIN: '9000000000G' is too large"));
  CHECK(starts_with(parse_error("serve.client_buffer", "99999999999999999999"),
                    "ORIGIN: '99999999999999999999' is not a size"));
}

TEST_CASE("settings: counts are positive and bounded per key") {
  const SettingKey& connections = *find_setting_key("serve.max_connections");
  CHECK(std::get<uint64_t>(parse_setting(connections, "1", "o")) == 1);
  CHECK(std::get<uint64_t>(parse_setting(connections, "1000000", "o")) == 1000000);
  const std::string range = "' must be a whole number from 1 to 1000000";
  for (const char* bad : {"1000001", "0", "-5", "2k", "", "+1", "1.0", "99999999999999999999"}) {
    INFO(bad);
    CHECK(parse_error("serve.max_connections", bad) == "ORIGIN: '" + std::string(bad) + range);
  }
  CHECK(parse_error("ingest.buffer_messages", "100000001") ==
        "ORIGIN: '100000001' must be a whole number from 1 to 100000000");
}

TEST_CASE("settings: a count may take 0 and a word for no limit, when its key says what they mean") {
  const SettingKey& retries = *find_setting_key("ingest.max_retries");
  CHECK(retries.zero == "give up at the first failure");
  CHECK(retries.unlimited == "forever");
  CHECK(std::get<uint64_t>(parse_setting(retries, "0", "o")) == 0);
  CHECK(std::get<uint64_t>(parse_setting(retries, "2147483647", "o")) == 2147483647);
  const std::string range = "' must be a whole number from 0 to 2147483647 or forever";
  for (const char* bad : {"2147483648", "-1", "Forever", "never", "inf", ""}) {
    INFO(bad);
    CHECK(parse_error("ingest.max_retries", bad) == "ORIGIN: '" + std::string(bad) + range);
  }
  auto s = resolve_kws_settings("ingest", {}, {}, fake_env({{"KWS_INGEST_MAX_RETRIES", "0"}}));
  CHECK(s.limit("ingest.max_retries") == 0u);
  s = resolve_kws_settings("ingest", {{"ingest.max_retries", {"forever", "--max-retries"}}}, {},
                           fake_env({{"KWS_INGEST_MAX_RETRIES", "3"}}));
  CHECK(s.limit("ingest.max_retries") == std::nullopt);
  // The word is that key's; other counts do not take it.
  CHECK(parse_error("serve.max_connections", "forever") ==
        "ORIGIN: 'forever' must be a whole number from 1 to 1000000");
}

TEST_CASE("settings: factors are decimal numbers from 1 to the key's max") {
  const SettingKey& key = *find_setting_key("ingest.backoff_multiplier");
  auto x = [&](const char* text) { return std::get<double>(parse_setting(key, text, "o")); };
  CHECK(x("2") == 2.0);
  CHECK(x("1") == 1.0);
  CHECK(x("1.5") == 1.5);
  CHECK(x("1.") == 1.0);
  CHECK(x("100") == 100.0);
  CHECK(x("100.000") == 100.0);
  for (const char* bad : {"0.5", ".5", "0", "100.5", "101", "1e1", "-2", "+2", "", "x", "2x", "inf", "nan", " 2"}) {
    INFO(bad);
    CHECK(parse_error("ingest.backoff_multiplier", bad) ==
          "ORIGIN: '" + std::string(bad) + "' must be a number from 1 to 100 (e.g. 1.5)");
  }
}

TEST_CASE("settings: serve.io_threads is gone: kws serve's socket I/O is one thread") {
  CHECK(find_setting_key("serve.io_threads") == nullptr);
  TempFile f("kws.serve.io_threads=2\n");
  ConfigFile file = file_of(f);
  CHECK(starts_with(usage_error_of([&] { resolve_kws_settings("serve", {}, file, fake_env({})); }),
                    f.path + ":1: unknown kws setting 'kws.serve.io_threads'"));
}

TEST_CASE("settings: durations take ms, s, m or h, and a plain number is seconds") {
  const SettingKey& key = *find_setting_key("ingest.backoff_initial");
  auto ms = [&](const char* text) { return std::get<milliseconds>(parse_setting(key, text, "o")).count(); };
  CHECK(ms("500ms") == 500);
  CHECK(ms("30s") == 30'000);
  CHECK(ms("2m") == 120'000);
  CHECK(ms("1h") == 3'600'000);
  // What kws serve's --ping-interval and --idle-timeout have always taken.
  CHECK(ms("20") == 20'000);
  CHECK(ms("0.2") == 200);
  CHECK(ms("1.5s") == 1'500);
  CHECK(ms("0.001") == 1);
  CHECK(ms("1.25m") == 75'000);
  CHECK(ms("0.5h") == 1'800'000);
  CHECK(ms("2.000s") == 2'000);
  CHECK(ms("8760h") == 365LL * 24 * 3'600'000);
  // As strtod and Go's durations read them, and as kws ingest always did.
  CHECK(ms(".5") == 500);
  CHECK(ms("1.") == 1'000);
  CHECK(ms(".25s") == 250);
  CHECK(ms("5min") == 300'000);
  CHECK(ms("0.5min") == 30'000);
  for (const char* bad :
       {"",     "s",     "ms",  "min", "-1s", "+1",  "30 s",     " 30",  "30sec", "1d",  "5S",   ".",      "..5",
        "1..5", "1.5.2", "1e3", "0x10", "inf", "nan", "1,5", "0.0000000001", "5mins", "5 min", "5Min", "1.s5"}) {
    INFO(bad);
    CHECK(starts_with(parse_error("ingest.backoff_initial", bad),
                      "ORIGIN: '" + std::string(bad) + "' is not a duration"));
  }
  CHECK(parse_error("ingest.backoff_initial", "0s") == "ORIGIN: '0s': the duration must be above 0");
  CHECK(parse_error("ingest.backoff_initial", "0") == "ORIGIN: '0': the duration must be above 0");
  CHECK(parse_error("ingest.backoff_initial", "0.000") == "ORIGIN: '0.000': the duration must be above 0");
  // Refused, not rounded to something the user did not type.
  CHECK(parse_error("ingest.backoff_initial", "1.5ms") == "ORIGIN: '1.5ms' is finer than a millisecond");
  CHECK(parse_error("ingest.backoff_initial", "0.0001") == "ORIGIN: '0.0001' is finer than a millisecond");
  CHECK(parse_error("ingest.backoff_initial", "9000h") == "ORIGIN: '9000h' is too long");
  CHECK(parse_error("ingest.backoff_initial", "8760.5h") == "ORIGIN: '8760.5h' is too long");
  CHECK(parse_error("ingest.backoff_initial", "99999999999999999999") ==
        "ORIGIN: '99999999999999999999' is not a duration (a number with ms, s, m or h, e.g. 30s, 500ms, 2m, "
        "1m30s; a plain number is seconds)");
  CHECK(parse_error("ingest.backoff_initial", "31536001") == "ORIGIN: '31536001' is too long");
}

TEST_CASE("settings: durations in parts, largest unit first, as Go and systemd write them") {
  const SettingKey& key = *find_setting_key("ingest.backoff_initial");
  auto ms = [&](const char* text) { return std::get<milliseconds>(parse_setting(key, text, "o")).count(); };
  CHECK(ms("1m30s") == 90'000);
  CHECK(ms("1h2m") == 3'720'000);
  CHECK(ms("2s500ms") == 2'500);
  CHECK(ms("1h1m1s1ms") == 3'661'001);
  CHECK(ms("1min30s") == 90'000);
  CHECK(ms("1m0.5s") == 60'500);
  CHECK(ms("8759h59m59s999ms") == 365LL * 24 * 3'600'000 - 1);
  for (const char* bad : {"1m30", "30s1m", "1m1m", "1m1min", "1s1s", "1m 30s", "1m+30s", "1h-1m", "m30s"}) {
    INFO(bad);
    CHECK(usage_error_of([&] { parse_setting(key, bad, "ORIGIN"); }).rfind("ORIGIN: '" + std::string(bad) + "'", 0) == 0);
  }
  CHECK(parse_error("ingest.backoff_initial", "30s1m") ==
        "ORIGIN: '30s1m': a duration's parts go from the largest unit down, each once (e.g. 1h2m, 1m30s)");
  CHECK(parse_error("ingest.backoff_initial", "1m30") ==
        "ORIGIN: '1m30' is not a duration (a number with ms, s, m or h, e.g. 30s, 500ms, 2m, 1m30s; a plain "
        "number is seconds)");
  CHECK(parse_error("ingest.backoff_initial", "1s0.5ms") == "ORIGIN: '1s0.5ms' is finer than a millisecond");
  CHECK(parse_error("ingest.backoff_initial", "8760h1ms") == "ORIGIN: '8760h1ms' is too long");
  CHECK(parse_error("ingest.backoff_initial", "0m0s") == "ORIGIN: '0m0s': the duration must be above 0");
  // The same rule for a flag that is no setting (kws ingest --duration).
  CHECK(parse_duration("1m30s", "--duration", false) == milliseconds(90'000));
}

TEST_CASE("settings: a duration is 0 only where its key says what 0 means") {
  const SettingKey& ping = *find_setting_key("ingest.ping_interval");
  CHECK(ping.zero == "no pings");
  for (const char* zero : {"0", "0s", "0ms", "0.0", "0m", "0h", "0min", ".0"}) {
    INFO(zero);
    CHECK(std::get<milliseconds>(parse_setting(ping, zero, "o")) == milliseconds(0));
  }
  for (const char* key : {"ingest.pong_timeout", "ingest.stale_after", "ingest.heartbeat_interval"}) {
    INFO(key);
    CHECK(std::get<milliseconds>(parse_setting(*find_setting_key(key), "0", "o")) == milliseconds(0));
  }
  // Where 0 would mean reconnecting in a tight loop, or giving up on every
  // reply before it could come, it is refused.
  for (const char* key : {"ingest.backoff_initial", "ingest.backoff_max", "ingest.await_timeout",
                          "serve.ping_interval", "serve.idle_timeout"}) {
    INFO(key);
    CHECK(usage_error_of([&] { parse_setting(*find_setting_key(key), "0", "ORIGIN"); }) ==
          "ORIGIN: '0': the duration must be above 0");
  }
  // Still no rounding down to 0 (which would turn pings off).
  CHECK(parse_error("ingest.ping_interval", "0.0004") == "ORIGIN: '0.0004' is finer than a millisecond");

  // The same rule for a flag that is no setting (ingest's per-run --duration).
  CHECK(parse_duration("1.4s", "--duration", true) == milliseconds(1400));
  CHECK(parse_duration("0", "--duration", true) == milliseconds(0));
  CHECK(usage_error_of([] { parse_duration("0", "--duration", false); }) ==
        "--duration: '0': the duration must be above 0");
  CHECK(starts_with(usage_error_of([] { parse_duration("5 parsecs", "--duration", true); }),
                    "--duration: '5 parsecs' is not a duration"));
}

// What core/ingest/units.* took (its tests, and the forms kws ingest's help,
// man page and integration tests use) before ingest read its settings through
// the table, and what it refused: the table agrees with all of it.
TEST_CASE("settings: every form kws ingest's own parsers took, the table takes alike") {
  auto duration = [](const char* key, const char* text) {
    return std::get<milliseconds>(parse_setting(*find_setting_key(key), text, "o"));
  };
  CHECK(duration("ingest.backoff_initial", "500ms") == milliseconds(500));
  CHECK(duration("ingest.backoff_initial", "20s") == milliseconds(20'000));
  CHECK(duration("ingest.backoff_initial", "1.5s") == milliseconds(1'500));
  CHECK(duration("ingest.backoff_initial", "2m") == milliseconds(120'000));
  CHECK(duration("ingest.backoff_initial", "1h") == milliseconds(3'600'000));
  CHECK(duration("ingest.backoff_initial", "3") == milliseconds(3'000));
  CHECK(duration("ingest.backoff_initial", "100ms") == milliseconds(100));
  CHECK(duration("ingest.ping_interval", "0") == milliseconds(0));  // --ping-interval 0: no pings
  CHECK(duration("ingest.stale_after", "300ms") == milliseconds(300));
  CHECK(duration("ingest.heartbeat_interval", "250ms") == milliseconds(250));
  for (const char* bad : {"", "s", "-1s", "5 s", "5parsecs", "1e3", "ms"}) {
    INFO(bad);
    CHECK(starts_with(parse_error("ingest.ping_interval", bad), "ORIGIN: '" + std::string(bad) + "' is not a duration"));
  }
  auto size = [](const char* text) {
    return std::get<uint64_t>(parse_setting(*find_setting_key("ingest.max_message_size"), text, "o"));
  };
  CHECK(size("1024") == 1024u);
  CHECK(size("64K") == 65536u);
  CHECK(size("4K") == 4096u);
  CHECK(size("16M") == 16u << 20);
  CHECK(size("16MiB") == 16u << 20);
  CHECK(size("1G") == 1u << 30);
  CHECK(size("1.5K") == 1536u);
  for (const char* bad : {"", "M", "-1", "1.3", "12X", "lots", "0"}) {
    INFO(bad);
    CHECK_THROWS_AS(size(bad), Error);
  }
  CHECK(std::get<uint64_t>(parse_setting(*find_setting_key("ingest.buffer_messages"), "500", "o")) == 500);
  CHECK(std::get<std::string>(parse_setting(*find_setting_key("ingest.when_full"), "drop-newest", "o")) ==
        "drop-newest");
  CHECK(std::get<double>(parse_setting(*find_setting_key("ingest.backoff_multiplier"), "1.5", "o")) == 1.5);
}

TEST_CASE("settings: an error about a value starts with where it came from") {
  TempFile f("kws.ingest.backoff_max=1m\n");
  auto s = resolve_kws_settings("ingest", {{"ingest.stale_after", {"5s", "--stale-after"}}}, file_of(f),
                                fake_env({{"KWS_INGEST_PING_INTERVAL", "1s"}}));
  CHECK(s.at("ingest.stale_after").where() == "--stale-after");
  CHECK(s.at("ingest.ping_interval").where() == "KWS_INGEST_PING_INTERVAL");
  CHECK(s.at("ingest.backoff_max").where() == f.path + ":1: kws.ingest.backoff_max");
  CHECK(s.at("ingest.backoff_initial").where() == "default of kws.ingest.backoff_initial");
}

TEST_CASE("settings: choices are matched exactly") {
  const SettingKey& key = *find_setting_key("serve.slow_client");
  CHECK(std::get<std::string>(parse_setting(key, "drop-oldest", "o")) == "drop-oldest");
  CHECK(parse_error("serve.slow_client", "Close") == "ORIGIN: 'Close' is not one of: close, drop-oldest, latest-per-key");
  CHECK(parse_error("serve.slow_client", "") == "ORIGIN: '' is not one of: close, drop-oldest, latest-per-key");
}

TEST_CASE("settings: file paths must be readable regular files, empty means not set") {
  const SettingKey& key = *find_setting_key("serve.tls_cert");
  TempFile cert("-----BEGIN CERTIFICATE-----\n");
  CHECK(std::get<std::string>(parse_setting(key, cert.path, "o")) == cert.path);
  CHECK(std::get<std::string>(parse_setting(key, "", "o")).empty());
  CHECK(parse_error("serve.tls_cert", "/nonexistent/cert.pem") ==
        "ORIGIN: cannot use '/nonexistent/cert.pem': No such file or directory");
  CHECK(parse_error("serve.tls_cert", "/tmp") == "ORIGIN: '/tmp' is not a regular file");

  auto m = usage_error_of([&] {
    resolve_kws_settings("serve", {}, {}, fake_env({{"KWS_SERVE_TLS_KEY", "/nonexistent/key.pem"}}));
  });
  CHECK(starts_with(m, "KWS_SERVE_TLS_KEY: cannot use '/nonexistent/key.pem'"));
}

TEST_CASE("settings: booleans") {
  // No registered key is a boolean yet; the validator is there for the next one.
  SettingKey key{"test.flag", "KWS_TEST_FLAG", "false", SettingType::boolean, "doc", {"test"}, {}, 0, "", ""};
  for (const char* yes : {"true", "TRUE", "yes", "on", "1"})
    CHECK(std::get<bool>(parse_setting(key, yes, "o")));
  for (const char* no : {"false", "No", "off", "0"}) CHECK_FALSE(std::get<bool>(parse_setting(key, no, "o")));
  CHECK(usage_error_of([&] { parse_setting(key, "maybe", "ORIGIN"); }) ==
        "ORIGIN: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)");
}

TEST_CASE("settings: lists, and byte sizes whose 0 means something", "[limits]") {
  auto s = resolve_kws_settings("serve", {}, {},
                                fake_env({{"KWS_SERVE_ALLOW_ORIGIN", " https://a.example.com , http://localhost:*"},
                                          {"KWS_SERVE_PRODUCE_BYTES_RATE", "0"}}));
  CHECK(s.list("serve.allow_origin") == std::vector<std::string>{"https://a.example.com", "http://localhost:*"});
  CHECK(s.bytes("serve.produce_bytes_rate") == 0);
  CHECK(resolve_kws_settings("serve", {}, {}, fake_env({})).list("serve.allow_origin").empty());
  const SettingKey& list = *find_setting_key("serve.allow_origin");
  CHECK(usage_error_of([&] { parse_setting(list, "a,,b", "ORIGIN"); }) ==
        "ORIGIN: 'a,,b' has an empty item (items are separated by single commas)");
  CHECK(usage_error_of([&] { parse_setting(list, "a b", "ORIGIN"); }) == "ORIGIN: 'a b': an item cannot contain spaces");
  // A bytes key without a meaning for 0 still refuses it.
  CHECK(usage_error_of([&] { parse_setting(*find_setting_key("serve.max_frame"), "0", "ORIGIN"); }) ==
        "ORIGIN: '0': the size must be above 0");
}
