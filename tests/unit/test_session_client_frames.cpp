#include <catch2/catch.hpp>

#include "core/session/client_frames.hpp"

using namespace kws;

namespace {

ClientRequest text(const std::string& payload, size_t max = 1 << 20) {
  return decode_client_message(MessageKind::text, payload, max);
}

}  // namespace

TEST_CASE("client frames: kafka-websocket's produce frame, and kws's with an id") {
  ClientRequest plain = text(R"({"topic":"t","message":"m","key":"k"})");
  CHECK(plain.kind == ClientRequest::Kind::produce);
  CHECK_FALSE(plain.kws_only);
  CHECK(plain.message.topic == "t");
  CHECK(plain.message.value == std::optional<std::string>("m"));
  CHECK(plain.message.key == std::optional<std::string>("k"));
  ClientRequest with_id = text(R"({"topic":"t","message":"m","id":"a1"})");
  CHECK(with_id.kws_only);
  CHECK(with_id.request_id == "\"a1\"");
}

TEST_CASE("client frames: binary produce views the payload") {
  std::string payload = std::string("\x03top", 4) + "value";
  ClientRequest r = decode_client_message(MessageKind::binary, payload, 1 << 20);
  CHECK(r.kind == ClientRequest::Kind::produce);
  CHECK(r.binary);
  CHECK(r.binary_topic == "top");
  CHECK(r.binary_value == "value");
  ClientRequest short_one = decode_client_message(MessageKind::binary, std::string("\x09t", 2), 1 << 20);
  CHECK(short_one.kind == ClientRequest::Kind::invalid);
  CHECK(short_one.error == ClientError::bad_frame);
}

TEST_CASE("client frames: subscribe and unsubscribe") {
  ClientRequest s = text(R"({"type":"subscribe","topics":["a","b"],"offset":-5,"id":1})");
  CHECK(s.kind == ClientRequest::Kind::subscribe);
  CHECK(s.topics == std::vector<std::string>{"a", "b"});
  CHECK(s.start.kind == OffsetSpec::Kind::from_end);
  CHECK(s.start_text == "-5");
  ClientRequest one = text(R"({"type":"unsubscribe","topic":"a"})");
  CHECK(one.kind == ClientRequest::Kind::unsubscribe);
  CHECK(one.topics == std::vector<std::string>{"a"});
  CHECK(one.kws_only);
}

TEST_CASE("client frames: what is wrong, as a code and words") {
  CHECK(text("[1]").error == ClientError::bad_json);
  CHECK(text("{").error == ClientError::bad_json);
  CHECK(text(R"({"message":"m"})").error == ClientError::bad_frame);
  CHECK(text(R"({"topic":"t","message":"m","id":[1]})").error == ClientError::bad_frame);
  CHECK(text(R"({"type":"subscribe"})").error == ClientError::bad_frame);
  CHECK(text(R"({"type":"subscribe","topics":[]})").error == ClientError::bad_frame);
  CHECK(text(R"({"type":"subscribe","topics":[1]})").error == ClientError::bad_frame);
  CHECK(text(R"({"type":"subscribe","topics":["a"],"offset":"sideways"})").error == ClientError::bad_offset);
  CHECK(text(R"({"type":"sing"})").error == ClientError::unknown_type);
  ClientRequest big = text(std::string(2000, ' '), 1000);
  CHECK(big.error == ClientError::too_large);
  CHECK(big.request_id.empty());
}
