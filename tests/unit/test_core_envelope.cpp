#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/envelope.hpp"
#include "core/json_parse.hpp"
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
  CHECK(message_of(R"({"topic":1,"message":"x"})").find("\"topic\"") != std::string::npos);
  CHECK(message_of(R"({"partition":"0","message":"x"})").find("\"partition\"") != std::string::npos);
  CHECK(message_of(R"({"timestamp":-5,"message":"x"})").find("\"timestamp\"") != std::string::npos);
  CHECK(message_of(R"({"timestamp_type":"x","message":"x"})").find("timestamp_type") != std::string::npos);
  CHECK(message_of(R"({"message":"@@@@","message_encoding":"base64"})").find("base64") != std::string::npos);
  CHECK(message_of(R"({"message":"x","message_encoding":"rot13"})").find("rot13") != std::string::npos);
  CHECK(message_of(R"({"headers":[{"value":"v"}],"message":"x"})").find("headers[0]") != std::string::npos);
  CHECK(message_of(R"({"headers":"x","message":"x"})").find("headers") != std::string::npos);
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
  for (const char* text : {R"({"partition":18446744073709551615,"message":"x"})",
                           R"({"partition":4294967295,"message":"x"})", R"({"partition":2147483648,"message":"x"})",
                           R"({"partition":-2,"message":"x"})", R"({"partition":1e3,"message":"x"})"}) {
    INFO(text);
    DecodedEnvelope d = decode_envelope(text);
    CHECK_FALSE(d);
    CHECK(d.error.find("\"partition\" must be an integer") != std::string::npos);
  }
  CHECK(decode_envelope(R"({"partition":2147483647,"message":"x"})").message->partition == 2147483647);
  CHECK_FALSE(decode_envelope(R"({"offset":18446744073709551615,"message":"x"})"));
}

TEST_CASE("envelope: no value field is refused, never stored as a tombstone") {
  DecodedEnvelope typo = decode_envelope(R"({"topic":"t","key":"k","value":"hi","mesage":"x"})");
  REQUIRE_FALSE(typo);
  CHECK(typo.error ==
        R"(no "message" field (use "message": null for a tombstone); unknown fields: "mesage", "value")");

  DecodedEnvelope bare = decode_envelope(R"({"topic":"t","key":"k"})");
  REQUIRE_FALSE(bare);
  CHECK(bare.error == R"(no "message" field (use "message": null for a tombstone))");
  CHECK_FALSE(decode_envelope("{}"));
  // message_encoding alone is no value either.
  CHECK_FALSE(decode_envelope(R"({"message_encoding":"base64"})"));
}

TEST_CASE("envelope: only an explicit null value is a tombstone") {
  DecodedEnvelope ours = decode_envelope(R"({"key":"k","message":null})");
  REQUIRE(ours);
  CHECK(ours.message->key == "k");
  CHECK_FALSE(ours.message->value.has_value());
  DecodedEnvelope kcats = decode_envelope(R"({"key":"k","payload":null})");
  REQUIRE(kcats);
  CHECK_FALSE(kcats.message->value.has_value());
}

TEST_CASE("envelope: unknown fields next to a value are ignored") {
  DecodedEnvelope d = decode_envelope(R"({"message":"m","mesage":"typo","schema":{"v":2}})");
  REQUIRE(d);
  CHECK(d.message->value == "m");
}

TEST_CASE("envelope: reads kcat -J's shape (payload, ts, tstype, broker, flat headers)") {
  // As kcat 1.7 prints it (tests/integration/test_kcat.py round-trips the real thing).
  DecodedEnvelope d = decode_envelope(
      R"({"topic":"src","partition":1,"offset":7,"tstype":"create","ts":1714564800123,"broker":0,)"
      R"("headers":["trace","abc","n","1","trace","dup"],"key":"user1","payload":"hello"})");
  REQUIRE(d);
  const Message& m = *d.message;
  CHECK(m.topic == "src");
  CHECK(m.partition == 1);
  CHECK(m.offset == 7);
  CHECK(m.timestamp_ms == 1714564800123);
  CHECK(m.timestamp_type == TimestampType::create_time);
  CHECK(m.key == "user1");
  CHECK(m.value == "hello");
  CHECK(m.headers == std::vector<Header>{{"trace", std::string("abc")}, {"n", std::string("1")},
                                         {"trace", std::string("dup")}});

  // kcat's words for a broker's time; such a time is not copied.
  CHECK(decode_envelope(R"({"payload":"v","ts":5,"tstype":"logappend"})").message->timestamp_type ==
        TimestampType::log_append_time);
  CHECK(decode_envelope(R"({"payload":"v","ts":5,"tstype":"unknown"})").message->timestamp_type ==
        TimestampType::none);
  CHECK(decode_envelope(R"({"payload":"v","headers":["h",null]})").message->headers ==
        std::vector<Header>{{"h", std::nullopt}});
}

TEST_CASE("envelope: the same thing under kws's and kcat's names at once is refused") {
  DecodedEnvelope both = decode_envelope(R"({"message":"a","payload":"b"})");
  REQUIRE_FALSE(both);
  CHECK(both.error.find(R"(both "message" and "payload")") != std::string::npos);
  CHECK_FALSE(decode_envelope(R"({"message":"a","timestamp":1,"ts":2})"));
  CHECK_FALSE(decode_envelope(R"({"message":"a","timestamp_type":"create","tstype":"create"})"));
  // message_encoding would be silently ignored next to payload: base64 stored as text.
  CHECK_FALSE(decode_envelope(R"({"payload":"aGk=","message_encoding":"base64"})"));
}

TEST_CASE("envelope: a bad flat header list names the item") {
  DecodedEnvelope odd = decode_envelope(R"({"payload":"v","headers":["a","1","b"]})");
  REQUIRE_FALSE(odd);
  CHECK(odd.error.find("pairs") != std::string::npos);
  DecodedEnvelope name = decode_envelope(R"({"payload":"v","headers":[1,"x"]})");
  REQUIRE_FALSE(name);
  CHECK(name.error.find("headers[0]") != std::string::npos);
  DecodedEnvelope value = decode_envelope(R"({"payload":"v","headers":["a",2]})");
  REQUIRE_FALSE(value);
  CHECK(value.error.find("headers[1]") != std::string::npos);
}

TEST_CASE("envelope: fields the caller knows are not reported as unknown") {
  json frame = {{"type", "produce"}, {"id", 1}, {"topic", "t"}, {"value", "hi"}};
  DecodedEnvelope d = decode_envelope_document(frame, {"id", "type"});
  REQUIRE_FALSE(d);
  CHECK(d.error == R"(no "message" field (use "message": null for a tombstone); unknown fields: "value")");
  DecodedEnvelope plain = decode_envelope_document(frame);
  REQUIRE_FALSE(plain);
  CHECK(plain.error.find(R"("id")") != std::string::npos);
}
