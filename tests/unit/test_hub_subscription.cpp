#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/hub/subscription.hpp"

using namespace kws;

namespace {

Frame frame(std::optional<std::string> key, std::optional<std::string> value, std::vector<Header> headers = {}) {
  Frame f;
  f.partition = 0;
  f.offset = 0;
  f.key = std::move(key);
  f.value = std::move(value);
  f.headers = std::move(headers);
  return f;
}

FilterPtr filter(const std::string& text) {
  std::string problem;
  FilterPtr f = MessageFilter::parse_text(text, problem);
  INFO(problem);
  REQUIRE(f);
  return f;
}

std::string refusal(const std::string& text) {
  std::string problem;
  FilterPtr f = MessageFilter::parse_text(text, problem);
  CHECK(!f);
  return problem;
}

}  // namespace

TEST_CASE("subscription: resume positions are TOPIC:PARTITION:OFFSET, the last offset received") {
  ResumeByTopic out;
  REQUIRE(!parse_resume("prices:0:41,prices:2:-1,orders.eu:1:7", out));
  CHECK(out.size() == 2);
  CHECK(out["prices"] == ResumePositions{{0, 41}, {2, -1}});
  CHECK(out["orders.eu"] == ResumePositions{{1, 7}});
  CHECK(format_resume(out) == "orders.eu:1:7,prices:0:41,prices:2:-1");

  for (const char* bad : {"", "prices", "prices:0", ":0:1", "prices:x:1", "prices:-1:4", "prices:0:-2",
                          "prices:0:1,", "prices:0:1,prices:0:2", "prices:0:99999999999999999999", "p:0:1 "}) {
    ResumeByTopic ignored;
    INFO(bad);
    CHECK(parse_resume(bad, ignored).has_value());
  }
}

TEST_CASE("subscription: filters match keys, key prefixes, headers and JSON fields, all entries together") {
  CHECK(filter(R"({"key":["BTC-USD","ETH-USD"]})")->matches(frame("ETH-USD", "x")));
  CHECK_FALSE(filter(R"({"key":["BTC-USD"]})")->matches(frame("BTC-EUR", "x")));
  CHECK_FALSE(filter(R"({"key":["BTC-USD"]})")->matches(frame(std::nullopt, "x")));
  CHECK(filter(R"({"key_prefix":"BTC-"})")->matches(frame("BTC-EUR", "x")));
  CHECK_FALSE(filter(R"({"key_prefix":"BTC-"})")->matches(frame("BT", "x")));
  CHECK(filter(R"({"header":{"source":"feed-1"}})")->matches(frame("k", "x", {{"a", "b"}, {"source", "feed-1"}})));
  CHECK_FALSE(filter(R"({"header":{"source":"feed-1"}})")->matches(frame("k", "x", {{"source", std::nullopt}})));
  CHECK(filter(R"({"field":{"/symbol":"BTC-USD","/qty":2}})")->matches(frame("k", R"({"symbol":"BTC-USD","qty":2})")));
  CHECK_FALSE(filter(R"({"field":{"/qty":2}})")->matches(frame("k", R"({"qty":"2"})")));
  CHECK_FALSE(filter(R"({"field":{"/qty":2}})")->matches(frame("k", "not json")));
  CHECK_FALSE(filter(R"({"field":{"/qty":2}})")->matches(frame("k", std::nullopt)));
  CHECK_FALSE(filter(R"({"field":{"/a/b":1}})")->matches(frame("k", R"({"a":5})")));
  CHECK(filter(R"({"field":{"/a/0":{"b":[1]}}})")->matches(frame("k", R"({"a":[{"b":[1]}]})")));
  // AND: every entry must hold.
  FilterPtr both = filter(R"({"key_prefix":"BTC-","field":{"/side":"buy"}})");
  CHECK(both->matches(frame("BTC-USD", R"({"side":"buy"})")));
  CHECK_FALSE(both->matches(frame("ETH-USD", R"({"side":"buy"})")));
  CHECK_FALSE(both->matches(frame("BTC-USD", R"({"side":"sell"})")));
}

TEST_CASE("subscription: a filter's canonical text is one per meaning; exact keys are indexable") {
  CHECK(filter(R"({"key":["b","a","b"]})")->canonical() == filter(R"({"key":["a","b"]})")->canonical());
  CHECK(filter(R"({"field":{"/x":1},"key_prefix":"p"})")->canonical() ==
        filter(R"({"key_prefix":"p","field":{"/x":1}})")->canonical());
  CHECK(filter(R"({"key":["a"]})")->canonical() != filter(R"({"key_prefix":"a"})")->canonical());
  CHECK(filter(R"({"key":["b","a"]})")->exact_keys() == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(filter(R"({"key_prefix":"a"})")->has_exact_keys());
}

TEST_CASE("subscription: a bad filter is refused with the reason") {
  CHECK(refusal("{").find("not valid JSON") != std::string::npos);
  CHECK(refusal("[]").find("JSON object") != std::string::npos);
  CHECK(refusal("{}").find("empty") != std::string::npos);
  CHECK(refusal(R"({"keys":["a"]})").find("unknown entry \"keys\"") != std::string::npos);
  CHECK(refusal(R"({"key":"a"})").find("\"key\" must be") != std::string::npos);
  CHECK(refusal(R"({"key":[]})").find("\"key\" must be") != std::string::npos);
  CHECK(refusal(R"({"key":[1]})").find("array of strings") != std::string::npos);
  CHECK(refusal(R"({"key_prefix":3})").find("key_prefix") != std::string::npos);
  CHECK(refusal(R"({"header":{"a":1}})").find("header \"a\"") != std::string::npos);
  CHECK(refusal(R"({"field":{"symbol":"x"}})").find("JSON pointer") != std::string::npos);
  CHECK(refusal(R"({"field":{}})").find("non-empty") != std::string::npos);
}

TEST_CASE("subscription: an mqtt_topic filter matches keys read as MQTT topic names, any of its topic filters") {
  FilterPtr f = filter(R"({"mqtt_topic":["sensors/+/temp","alarms/#"]})");
  CHECK(f->only_mqtt_topics());
  CHECK_FALSE(f->has_exact_keys());
  CHECK(f->mqtt_topics() == std::vector<std::string>{"alarms/#", "sensors/+/temp"});
  CHECK(f->matches(frame("sensors/kitchen/temp", "21.5")));
  CHECK(f->matches(frame("alarms", "x")));  // '#' includes the parent
  CHECK(f->matches(frame("alarms/fire/floor2", "x")));
  CHECK_FALSE(f->matches(frame("sensors/kitchen/humidity", "x")));
  CHECK_FALSE(f->matches(frame("sensors/kitchen/temp/raw", "x")));
  CHECK_FALSE(f->matches(frame(std::nullopt, "x")));  // no key, no topic name
  // A key that is not a topic name never matches, not even "#".
  FilterPtr everything = filter(R"({"mqtt_topic":["#"]})");
  CHECK(everything->matches(frame("a/b", "x")));
  CHECK_FALSE(everything->matches(frame("", "x")));
  CHECK_FALSE(everything->matches(frame("a/+", "x")));
  CHECK_FALSE(everything->matches(frame("\xFF", "x")));
  CHECK_FALSE(everything->matches(frame("$SYS/x", "x")));
  CHECK(filter(R"({"mqtt_topic":["$SYS/#"]})")->matches(frame("$SYS/x", "x")));
  // AND with the other entries.
  FilterPtr both = filter(R"({"mqtt_topic":["sensors/#"],"header":{"unit":"C"}})");
  CHECK_FALSE(both->only_mqtt_topics());
  CHECK(both->matches(frame("sensors/a", "x", {{"unit", "C"}})));
  CHECK_FALSE(both->matches(frame("sensors/a", "x", {{"unit", "F"}})));
  CHECK_FALSE(both->matches(frame("other/a", "x", {{"unit", "C"}})));
  FilterPtr keyed = filter(R"({"mqtt_topic":["a/+"],"key":["a/b","c/d"]})");
  CHECK(keyed->has_exact_keys());
  CHECK_FALSE(keyed->only_mqtt_topics());
  CHECK(keyed->matches(frame("a/b", "x")));
  CHECK_FALSE(keyed->matches(frame("c/d", "x")));
  CHECK_FALSE(filter(R"({"key":["a"]})")->only_mqtt_topics());
  CHECK(filter(R"({"key":["a"]})")->mqtt_topics().empty());
}

TEST_CASE("subscription: an mqtt_topic filter has one canonical text, parsed or built by MessageFilter::mqtt_topics") {
  const std::string canonical = filter(R"({"mqtt_topic":["b/#","a/+","b/#"]})")->canonical();
  CHECK(canonical == R"({"mqtt_topic":["a/+","b/#"]})");
  std::string problem;
  FilterPtr built = MessageFilter::mqtt_topics({"b/#", "a/+", "a/+"}, problem);
  REQUIRE(built);
  CHECK(built->canonical() == canonical);
  CHECK(built->only_mqtt_topics());
  CHECK(built->mqtt_topics() == std::vector<std::string>{"a/+", "b/#"});
  CHECK(built->matches(frame("a/x", "v")));
  CHECK(filter(R"({"mqtt_topic":["a/+"],"key_prefix":"a"})")->canonical() ==
        filter(R"({"key_prefix":"a","mqtt_topic":["a/+"]})")->canonical());
  CHECK(filter(R"({"mqtt_topic":["a"]})")->canonical() != filter(R"({"key":["a"]})")->canonical());

  CHECK_FALSE(MessageFilter::mqtt_topics({}, problem));
  CHECK(problem.find("non-empty") != std::string::npos);
  CHECK_FALSE(MessageFilter::mqtt_topics({"ok/+", "bad/#/x"}, problem));
  CHECK(problem == R"(filter: "mqtt_topic" "bad/#/x": '#' must be the last level, alone)");
  CHECK_FALSE(MessageFilter::mqtt_topics({"a\xFF"}, problem));
  CHECK(problem.find("UTF-8") != std::string::npos);
}

TEST_CASE("subscription: a bad mqtt_topic entry is refused with the reason, naming the topic filter") {
  CHECK(refusal(R"({"mqtt_topic":"a/#"})").find("\"mqtt_topic\" must be a non-empty array") != std::string::npos);
  CHECK(refusal(R"({"mqtt_topic":[]})").find("\"mqtt_topic\" must be a non-empty array") != std::string::npos);
  CHECK(refusal(R"({"mqtt_topic":[3]})").find("array of strings") != std::string::npos);
  CHECK(refusal(R"({"mqtt_topic":["sport+"]})") == R"(filter: "mqtt_topic" "sport+": '+' must be a whole level)");
  CHECK(refusal(R"({"mqtt_topic":["a","#/a"]})").find("\"#/a\": '#' must be the last level") != std::string::npos);
  CHECK(refusal(R"({"mqtt_topic":[""]})").find("empty") != std::string::npos);
  CHECK(refusal(R"({"mqtt_topic":["a\u0000b"]})").find("U+0000") != std::string::npos);
  nlohmann::json many = nlohmann::json::object();
  for (int i = 0; i < 65; ++i) many["mqtt_topic"].push_back("t/" + std::to_string(i));
  CHECK(refusal(many.dump()).find("more than 64") != std::string::npos);
  many["mqtt_topic"].erase(many["mqtt_topic"].size() - 1);
  many["mqtt_topic"].push_back("t/0");  // duplicates count once
  CHECK(filter(many.dump())->mqtt_topics().size() == 64);
  CHECK(refusal(R"({"mqtt":["a"]})").find("mqtt_topic") != std::string::npos);  // listed as accepted
  // At most 128 levels: the hub's tree is as deep as its deepest filter.
  std::string deep = "a";
  for (int i = 1; i < 128; ++i) deep += "/+";
  CHECK(filter(nlohmann::json{{"mqtt_topic", {deep}}}.dump())->matches(frame("a" + std::string(127, '/'), "x")));
  CHECK(refusal(nlohmann::json{{"mqtt_topic", {deep + "/#"}}}.dump()).find("more than 128 levels") != std::string::npos);
  CHECK(refusal(nlohmann::json{{"mqtt_topic", {std::string(65535, '/')}}}.dump()).find("more than 128 levels") !=
        std::string::npos);
}
