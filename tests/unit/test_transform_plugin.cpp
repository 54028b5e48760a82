#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/transform/pipeline.hpp"
#include "core/transform/plugin.hpp"
#include "core/util/error.hpp"
#include "tests/unit/fakes.hpp"

using namespace kws;
using kws::test::FakeSink;

// Paths of plugins/example and tests/unit/plugins, from CMake.
#ifndef KWS_EXAMPLE_PLUGIN
#error "KWS_EXAMPLE_PLUGIN must name the example plugin"
#endif

namespace {

std::string load_error(const std::string& path) {
  try {
    Plugin::load(path);
  } catch (const Error& e) {
    CHECK(e.exit_code() == exit_usage);
    return e.what();
  }
  FAIL("loaded " << path);
  return "";
}

Message message(std::string topic, std::optional<std::string> key, std::string value) {
  Message m;
  m.topic = std::move(topic);
  m.key = std::move(key);
  m.value = std::move(value);
  m.headers.push_back({"h", std::string("1")});
  return m;
}

struct RecordingLog : LogSink {
  std::vector<std::string> lines;
  void write(LogLevel, std::string_view m) override { lines.emplace_back(m); }
};

}  // namespace

TEST_CASE("transform plugin: a missing file, a library without the entry, another ABI version: clear errors") {
  CHECK_THAT(load_error("/nonexistent/plugin.so"), Catch::StartsWith("--plugin: /nonexistent/plugin.so: ") && Catch::Contains("No such file"));
  CHECK_THAT(load_error("/tmp"), Catch::Contains("not a regular file"));
  CHECK_THAT(load_error(KWS_TEST_PLUGIN_NO_ENTRY), Catch::Contains("not a kws plugin") && Catch::Contains("kws_plugin_entry"));
  CHECK_THAT(load_error(KWS_TEST_PLUGIN_WRONG_ABI),
             Catch::Contains("plugin ABI version 99") && Catch::Contains("this kws speaks 1"));
  CHECK_THAT(load_error(__FILE__), Catch::Contains("cannot load it"));  // not a shared library at all
}

TEST_CASE("transform plugin: the example rewrites topic, value and headers of incoming messages, or drops them") {
  auto plugin = Plugin::load(KWS_EXAMPLE_PLUGIN);
  CHECK(plugin->name() == "example");
  std::string problem;
  Message m = message("rename-me", std::string("k"), "hello");
  REQUIRE(plugin->transform(PluginDirection::incoming, m, problem) == Plugin::Verdict::keep);
  CHECK(m.topic == "renamed");
  CHECK(m.key == std::string("k"));
  CHECK(m.value == std::string("HELLO"));
  CHECK(m.headers == std::vector<Header>{{"h", std::string("1")}, {"x-example", std::string("incoming")}});
  Message other = message("t", std::nullopt, "x");
  REQUIRE(plugin->transform(PluginDirection::incoming, other, problem) == Plugin::Verdict::keep);
  CHECK(other.topic == "t");
  CHECK_FALSE(other.key);
  Message drop = message("t", std::string("drop"), "x");
  CHECK(plugin->transform(PluginDirection::incoming, drop, problem) == Plugin::Verdict::drop);
  Message fail = message("t", std::string("fail"), "x");
  CHECK(plugin->transform(PluginDirection::incoming, fail, problem) == Plugin::Verdict::failed);
  CHECK_THAT(problem, Catch::Contains("returned 7"));
  CHECK(fail.value == std::string("x"));  // unchanged
}

TEST_CASE("transform plugin: the example redacts outgoing messages and drops those it is asked to") {
  auto plugin = Plugin::load(KWS_EXAMPLE_PLUGIN);
  std::string problem;
  Message m = message("t", std::nullopt, "my secret and secrets");
  REQUIRE(plugin->transform(PluginDirection::outgoing, m, problem) == Plugin::Verdict::keep);
  CHECK(m.value == std::string("my ****** and ******s"));
  CHECK(m.headers.back() == Header{"x-example", std::string("outgoing")});
  Message drop = message("t", std::string("drop-out"), "x");
  CHECK(plugin->transform(PluginDirection::outgoing, drop, problem) == Plugin::Verdict::drop);
}

TEST_CASE("transform plugin: in the pipeline a drop or a failure refuses an incoming message and drops an outgoing one") {
  RecordingLog log;
  TransformOptions o;
  o.plugin = Plugin::load(KWS_EXAMPLE_PLUGIN);
  o.topic_prefix = "p.";
  Transforms t(o, log);
  FakeSink kafka;
  TransformingSink sink(kafka, t);
  auto produce = [&](std::string_view topic, std::optional<std::string_view> key, std::string_view value) {
    OutgoingRecord r;
    r.topic = topic;
    r.key = key;
    r.value = value;
    return sink.try_produce(r);
  };
  CHECK(produce("rename-me", std::nullopt, "abc").queued());
  ProduceOutcome dropped = produce("t", std::string_view("drop"), "abc");
  CHECK(dropped.error == ProduceError::not_allowed);
  CHECK_THAT(dropped.message, Catch::Contains("dropped"));
  ProduceOutcome failed = produce("t", std::string_view("fail"), "abc");
  CHECK(failed.error == ProduceError::not_allowed);
  CHECK_THAT(failed.message, Catch::Contains("failed"));
  REQUIRE(kafka.kept.size() == 1);
  CHECK(kafka.kept[0].topic == "p.renamed");  // the plugin's name, then the prefix
  CHECK(kafka.kept[0].value == "ABC");
  CHECK(t.counters().incoming_dropped == 2);
  CHECK(t.counters().plugin_failures == 1);
  REQUIRE(log.lines.size() == 1);
  CHECK_THAT(log.lines[0], Catch::Contains("returned 7"));

  std::vector<std::string> seen;
  auto deliver = [&](const MessageView& v) {
    seen.push_back(std::string(v.topic) + ":" + std::string(v.value.value_or("")));
    return true;
  };
  MessageView keep;
  keep.topic = "p.t";
  keep.value = std::string_view("a secret");
  MessageView drop = keep;
  drop.key = std::string_view("drop-out");
  MessageView fail = keep;
  fail.key = std::string_view("fail");
  CHECK(t.outgoing(keep, deliver));
  CHECK(t.outgoing(drop, deliver));  // consumed, not delivered
  CHECK(t.outgoing(fail, deliver));  // fails closed: not delivered as it was
  CHECK(seen == std::vector<std::string>{"t:a ******"});
  CHECK(t.counters().outgoing_dropped == 2);
}
