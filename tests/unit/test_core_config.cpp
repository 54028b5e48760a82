#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.hpp"
#include "core/util/error.hpp"

using namespace kws;

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
    char name[] = "/tmp/kws-config-XXXXXX";
    int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name;
    std::ofstream(path) << content;
  }
  ~TempFile() { std::remove(path.c_str()); }
};
}  // namespace

TEST_CASE("config: default brokers when nothing is set") {
  auto s = resolve_kafka_settings({}, fake_env({}));
  CHECK(s.brokers() == "localhost:9092");
  CHECK(s.find("bootstrap.servers")->source == ConfigSource::default_value);
}

TEST_CASE("config: precedence is flag > environment > file > default") {
  TempFile file("# comment\nbootstrap.servers = file:9092\nclient.id=from-file\n\nacks=1\n");
  ConnectionInputs in;
  in.config_file = file.path;

  auto s = resolve_kafka_settings(in, fake_env({}));
  CHECK(s.brokers() == "file:9092");
  CHECK(s.find("bootstrap.servers")->source == ConfigSource::file);
  CHECK(s.find("bootstrap.servers")->origin == file.path + ":2");
  CHECK(s.find("client.id")->value == "from-file");

  s = resolve_kafka_settings(in, fake_env({{"KWS_BROKERS", "env:9092"}}));
  CHECK(s.brokers() == "env:9092");
  CHECK(s.find("bootstrap.servers")->source == ConfigSource::environment);

  in.properties = {"bootstrap.servers=x:1", "acks=all"};
  s = resolve_kafka_settings(in, fake_env({{"KWS_BROKERS", "env:9092"}}));
  CHECK(s.brokers() == "x:1");
  CHECK(s.find("acks")->value == "all");
  CHECK(s.find("acks")->source == ConfigSource::flag);

  in.brokers = "flag:9092";
  s = resolve_kafka_settings(in, fake_env({{"KWS_BROKERS", "env:9092"}}));
  CHECK(s.brokers() == "flag:9092");
  CHECK(s.find("bootstrap.servers")->origin == "-b");
}

TEST_CASE("config: metadata.broker.list is the same setting as bootstrap.servers") {
  ConnectionInputs in;
  in.properties = {"metadata.broker.list=legacy:9092"};
  auto s = resolve_kafka_settings(in, fake_env({}));
  CHECK(s.brokers() == "legacy:9092");
  CHECK(s.entries().size() == 1);
}

TEST_CASE("config: default file is found through XDG_CONFIG_HOME, KWS_CONFIG overrides it") {
  char dir[] = "/tmp/kws-xdg-XXXXXX";
  REQUIRE(mkdtemp(dir));
  std::string kws_dir = std::string(dir) + "/kws";
  REQUIRE(::mkdir(kws_dir.c_str(), 0700) == 0);
  std::ofstream(kws_dir + "/kws.conf") << "bootstrap.servers=xdg:9092\n";
  auto s = resolve_kafka_settings({}, fake_env({{"XDG_CONFIG_HOME", dir}}));
  CHECK(s.brokers() == "xdg:9092");
  CHECK(s.config_file == kws_dir + "/kws.conf");

  TempFile other("bootstrap.servers=other:9092\n");
  s = resolve_kafka_settings({}, fake_env({{"XDG_CONFIG_HOME", dir}, {"KWS_CONFIG", other.path}}));
  CHECK(s.brokers() == "other:9092");

  s = resolve_kafka_settings({}, fake_env({{"HOME", "/nonexistent-home"}}));
  CHECK(s.brokers() == "localhost:9092");  // a missing default file is fine
  std::remove((kws_dir + "/kws.conf").c_str());
  ::rmdir(kws_dir.c_str());
  ::rmdir(dir);
}

TEST_CASE("config: malformed input is a usage error naming its origin") {
  ConnectionInputs in;
  in.properties = {"no-equals-sign"};
  try {
    resolve_kafka_settings(in, fake_env({}));
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.exit_code() == exit_usage);
    CHECK(std::string(e.what()).find("no-equals-sign") != std::string::npos);
  }

  TempFile bad("good=1\nthis line is bad\n");
  in = {};
  in.config_file = bad.path;
  try {
    resolve_kafka_settings(in, fake_env({}));
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(bad.path + ":2") != std::string::npos);
  }

  in = {};
  in.config_file = "/nonexistent/kws.conf";
  CHECK_THROWS_AS(resolve_kafka_settings(in, fake_env({})), Error);
}
