#include <catch2/catch.hpp>

#include "core/envelope.hpp"
#include "core/outgoing.hpp"

using namespace kws;

TEST_CASE("outgoing: an envelope keeps key, headers, partition and create time; -H is appended") {
  Message env = envelope_from_json(
      R"({"topic":"src","partition":2,"timestamp":1700000000000,"timestamp_type":"create","key":"k",)"
      R"("headers":[{"name":"a","value":"1"}],"message":"v"})");
  RecordPolicy policy;
  policy.topic = "dst";
  policy.partition_count = 3;
  policy.extra_headers = {{"x", std::string("y")}};
  PreparedRecord out;
  REQUIRE_FALSE(prepare_envelope_record(env, policy, out));
  CHECK(out.record.topic == "dst");
  CHECK(out.record.partition == 2);
  CHECK(out.record.key == std::optional<std::string_view>("k"));
  CHECK(out.record.value == std::optional<std::string_view>("v"));
  CHECK(out.record.timestamp_ms == 1700000000000);
  REQUIRE(out.record.headers->size() == 2);
  CHECK((*out.record.headers)[0].name == "a");
  CHECK((*out.record.headers)[1].name == "x");
}

TEST_CASE("outgoing: envelope partition rules") {
  Message env = envelope_from_json(R"({"partition":5,"message":"v"})");
  RecordPolicy policy;
  policy.topic = "dst";
  policy.partition_count = 3;
  PreparedRecord out;
  auto why = prepare_envelope_record(env, policy, out);
  REQUIRE(why);
  CHECK(why->find("partition 5 does not exist in topic 'dst' (it has 3)") != std::string::npos);

  policy.keep_envelope_partition = false;
  REQUIRE_FALSE(prepare_envelope_record(env, policy, out));
  CHECK_FALSE(out.record.partition);

  policy.partition = 1;
  REQUIRE_FALSE(prepare_envelope_record(env, policy, out));
  CHECK(out.record.partition == 1);
}

TEST_CASE("outgoing: the envelope's topic is used when the policy names none, and required") {
  RecordPolicy policy;
  PreparedRecord out;
  REQUIRE_FALSE(prepare_envelope_record(envelope_from_json(R"({"topic":"t","message":"v"})"), policy, out));
  CHECK(out.record.topic == "t");
  auto why = prepare_envelope_record(envelope_from_json(R"({"message":"v"})"), policy, out);
  REQUIRE(why);
  CHECK(*why == "the envelope names no \"topic\"");
}

TEST_CASE("outgoing: log-append time is not copied, a NUL in a header name is refused") {
  RecordPolicy policy;
  policy.topic = "dst";
  PreparedRecord out;
  REQUIRE_FALSE(prepare_envelope_record(
      envelope_from_json(R"({"timestamp":5,"timestamp_type":"log_append","message":"v"})"), policy, out));
  CHECK(out.record.timestamp_ms == 0);
  Message env;
  env.headers.push_back({std::string("a\0b", 3), std::nullopt});
  auto why = prepare_envelope_record(env, policy, out);
  REQUIRE(why);
  CHECK(why->find("NUL") != std::string::npos);
}

TEST_CASE("outgoing: plain records split at the key delimiter; -k and -p win") {
  RecordPolicy policy;
  policy.topic = "dst";
  policy.key_delimiter = "::";
  PreparedRecord out;
  prepare_plain_record("user1::hello::world", policy, out);
  CHECK(out.record.key == std::optional<std::string_view>("user1"));
  CHECK(out.record.value == std::optional<std::string_view>("hello::world"));
  prepare_plain_record("no delimiter", policy, out);
  CHECK_FALSE(out.record.key);
  CHECK(out.record.value == std::optional<std::string_view>("no delimiter"));
  policy.key = "fixed";
  policy.partition = 0;
  prepare_plain_record("a::b", policy, out, "other");
  CHECK(out.record.key == std::optional<std::string_view>("fixed"));
  CHECK(out.record.topic == "other");
  CHECK(out.record.partition == 0);
}
