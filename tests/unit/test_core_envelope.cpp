#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/envelope.hpp"
#include "core/util/error.hpp"

using namespace kws;
using nlohmann::json;

namespace {
Message sample() {
  Message m;
  m.topic = "orders";
  m.partition = 3;
  m.offset = 42;
  m.timestamp_ms = 1714564800123;
  m.timestamp_type = TimestampType::create_time;
  m.key = "user-1";
  m.value = "{\"total\":12}";
  m.headers = {{"trace", std::string("abc")}, {"empty", std::nullopt}, {"trace", std::string("dup")}};
  return m;
}
}  // namespace

TEST_CASE("envelope: encodes every field with kafka-websocket's topic and message names") {
  json j = json::parse(envelope_to_json(sample().view()));
  CHECK(j["topic"] == "orders");
  CHECK(j["message"] == "{\"total\":12}");
  CHECK(j["partition"] == 3);
  CHECK(j["offset"] == 42);
  CHECK(j["timestamp"] == 1714564800123);
  CHECK(j["timestamp_type"] == "create");
  CHECK(j["key"] == "user-1");
  REQUIRE(j["headers"].size() == 3);
  CHECK(j["headers"][0] == json({{"name", "trace"}, {"value", "abc"}}));
  CHECK(j["headers"][1]["value"].is_null());
  CHECK(j["headers"][2]["value"] == "dup");
  CHECK_FALSE(j.contains("message_encoding"));
}

TEST_CASE("envelope: round-trips through JSON") {
  Message in = sample();
  Message out = envelope_from_json(envelope_to_json(in.view()));
  CHECK(out.topic == in.topic);
  CHECK(out.partition == in.partition);
  CHECK(out.offset == in.offset);
  CHECK(out.timestamp_ms == in.timestamp_ms);
  CHECK(out.timestamp_type == in.timestamp_type);
  CHECK(out.key == in.key);
  CHECK(out.value == in.value);
  CHECK(out.headers == in.headers);
}

TEST_CASE("envelope: non-UTF-8 key, value and header bytes travel as base64") {
  Message in;
  in.topic = "bin";
  in.key = std::string("\xff\x00k", 3);
  in.value = std::string("\x00\x01\x02\xfe", 4);
  in.headers = {{"h", std::string("\xc3", 1)}, {std::string("\xff", 1), std::string("v")}};
  std::string text = envelope_to_json(in.view());
  json j = json::parse(text);  // must be valid JSON despite the bytes
  CHECK(j["key_encoding"] == "base64");
  CHECK(j["message_encoding"] == "base64");
  CHECK(j["message"] == "AAEC/g==");
  CHECK(j["headers"][0]["value_encoding"] == "base64");
  CHECK(j["headers"][1]["name_encoding"] == "base64");
  Message out = envelope_from_json(text);
  CHECK(out.key == in.key);
  CHECK(out.value == in.value);
  CHECK(out.headers == in.headers);
}

TEST_CASE("envelope: valid UTF-8 with control characters and NUL stays text") {
  Message in;
  in.topic = "t";
  in.value = std::string("line1\nline2\t\"q\"\x00 \xE2\x82\xAC", 20);
  std::string text = envelope_to_json(in.view());
  CHECK(text.find('\n') == std::string::npos);  // one envelope per line
  json j = json::parse(text);
  CHECK_FALSE(j.contains("message_encoding"));
  CHECK(envelope_from_json(text).value == in.value);
}

TEST_CASE("envelope: null key and value stay null, empty stays empty") {
  Message in;
  in.topic = "t";
  in.value = std::string();
  json j = json::parse(envelope_to_json(in.view()));
  CHECK(j["key"].is_null());
  CHECK(j["message"] == "");
  CHECK(j["timestamp"].is_null());
  CHECK(j["timestamp_type"] == "none");
  Message out = envelope_from_json(j.dump());
  CHECK_FALSE(out.key.has_value());
  CHECK(out.value == std::string());
}

TEST_CASE("envelope: accepts kafka-websocket's minimal shape and header maps") {
  Message m = envelope_from_json(R"({"topic":"t","message":"hi","key":"k"})");
  CHECK(m.topic == "t");
  CHECK(m.value == "hi");
  CHECK(m.key == "k");
  CHECK_FALSE(m.partition.has_value());
  m = envelope_from_json(R"({"message":"x","headers":{"a":"1","b":null}})");
  REQUIRE(m.headers.size() == 2);
  CHECK(m.headers[0] == Header{"a", std::string("1")});
  CHECK(m.headers[1] == Header{"b", std::nullopt});
  CHECK(envelope_from_json(R"({"message":"x","partition":-1})").partition == std::nullopt);
  CHECK(envelope_from_json(R"({"message":"x","message_encoding":"utf8"})").value == "x");
}

TEST_CASE("envelope: rejects bad input with a message naming the field") {
  auto message_of = [](const std::string& text) {
    try {
      envelope_from_json(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message_of("{not json").rfind("not valid JSON: column 3", 0) == 0);
  CHECK(message_of("[1,2]").find("object") != std::string::npos);
  CHECK(message_of(R"({"message":5})").find("\"message\"") != std::string::npos);
  CHECK(message_of(R"({"topic":1})").find("\"topic\"") != std::string::npos);
  CHECK(message_of(R"({"partition":"0"})").find("\"partition\"") != std::string::npos);
  CHECK(message_of(R"({"timestamp":-5})").find("\"timestamp\"") != std::string::npos);
  CHECK(message_of(R"({"timestamp_type":"x"})").find("timestamp_type") != std::string::npos);
  CHECK(message_of(R"({"message":"@@@@","message_encoding":"base64"})").find("base64") != std::string::npos);
  CHECK(message_of(R"({"message":"x","message_encoding":"rot13"})").find("rot13") != std::string::npos);
  CHECK(message_of(R"({"headers":[{"value":"v"}]})").find("headers[0]") != std::string::npos);
  CHECK(message_of(R"({"headers":"x"})").find("headers") != std::string::npos);
  CHECK(message_of("{\"message\":\"\xff\"}").rfind("not valid JSON", 0) == 0);  // JSON text must be UTF-8
}

TEST_CASE("envelope: decode_envelope returns errors as values, with where and why") {
  DecodedEnvelope bad = decode_envelope("{\"message\": x}");
  CHECK_FALSE(bad);
  CHECK(bad.error.rfind("not valid JSON: column 13", 0) == 0);

  DecodedEnvelope trailing = decode_envelope("{\"message\":\"a\"} trailing");
  CHECK_FALSE(trailing);
  CHECK(trailing.error.find("column") != std::string::npos);

  DecodedEnvelope nul = decode_envelope(std::string("{\"message\":\"d9\"}\0junk", 21));
  CHECK_FALSE(nul);
  CHECK(nul.error == "not valid JSON: a NUL byte at column 17");

  DecodedEnvelope utf8 = decode_envelope("{\"message\":\"\xff\"}");
  CHECK_FALSE(utf8);
  CHECK(utf8.error.find("UTF-8") != std::string::npos);

  DecodedEnvelope good = decode_envelope(R"({"message":"ok"})");
  REQUIRE(good);
  CHECK(good.message->value == "ok");
}

TEST_CASE("envelope: partitions past int32 are rejected however they are spelled") {
  for (const char* text : {R"({"partition":18446744073709551615})", R"({"partition":4294967295})",
                           R"({"partition":2147483648})", R"({"partition":-2})", R"({"partition":1e3})"}) {
    INFO(text);
    DecodedEnvelope d = decode_envelope(text);
    CHECK_FALSE(d);
    CHECK(d.error.find("\"partition\" must be an integer") != std::string::npos);
  }
  CHECK(decode_envelope(R"({"partition":2147483647})").message->partition == 2147483647);
  CHECK_FALSE(decode_envelope(R"({"offset":18446744073709551615})"));
}
