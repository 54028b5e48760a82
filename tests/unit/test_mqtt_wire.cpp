// The MQTT codec (core/mqtt_wire.*): packets as the specification writes
// them, byte for byte where it gives the bytes.
#include <catch2/catch.hpp>

#include <string>
#include <variant>

#include "core/mqtt_wire.hpp"

using namespace kws::mqtt;

namespace {

std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out.push_back(static_cast<char>(b));
  return out;
}

// Reads exactly one packet from `wire` and decodes it.
std::variant<Packet, PacketError> one(const std::string& wire, uint8_t version = kVersion311, size_t limit = 1 << 20) {
  PacketReader reader(limit);
  reader.feed(wire);
  PacketError error;
  bool failed = false;
  auto raw = reader.next(error, failed);
  if (failed) return error;
  REQUIRE(raw);
  auto decoded = decode(raw->first, raw->body, version);
  REQUIRE(reader.held() == 0);
  return decoded;
}

template <class T>
T as(const std::variant<Packet, PacketError>& d) {
  if (auto* e = std::get_if<PacketError>(&d)) FAIL("decode failed: " << e->why);
  return std::get<T>(std::get<Packet>(d));
}

}  // namespace

TEST_CASE("MQTT remaining length: the spec's examples, shortest form only", "[mqtt]") {
  std::string out;
  append_varint(out, 0);
  append_varint(out, 127);
  append_varint(out, 128);
  append_varint(out, 16383);
  append_varint(out, 16384);
  append_varint(out, kMaxRemainingLength);
  CHECK(out == bytes({0x00, 0x7F, 0x80, 0x01, 0xFF, 0x7F, 0x80, 0x80, 0x01, 0xFF, 0xFF, 0xFF, 0x7F}));
}

TEST_CASE("MQTT CONNECT 3.1.1 with a will and credentials", "[mqtt]") {
  Connect c;
  c.version = kVersion311;
  c.clean_start = true;
  c.keep_alive = 30;
  c.client_id = "dev-1";
  c.will = Will{"status/dev-1", "offline", 1, true, {}, 0};
  c.username = "user";
  c.password = std::string("a.b\0c", 5);
  const Connect d = as<Connect>(one(encode_connect(c)));
  CHECK(d.version == kVersion311);
  CHECK(d.keep_alive == 30);
  CHECK(d.client_id == "dev-1");
  REQUIRE(d.will);
  CHECK(d.will->topic == "status/dev-1");
  CHECK(d.will->payload == "offline");
  CHECK(d.will->qos == 1);
  CHECK(d.will->retain);
  CHECK(d.username == std::optional<std::string>("user"));
  CHECK(d.password == c.password);  // binary data: U+0000 allowed
}

TEST_CASE("MQTT CONNECT refusals", "[mqtt]") {
  SECTION("MQTT 3.1 (MQIsdp, level 3) is an unsupported version") {
    std::string body = bytes({0, 6}) + "MQIsdp" + bytes({3, 2, 0, 10, 0, 1}) + "c";
    auto d = one(bytes({0x10, static_cast<int>(body.size())}) + body);
    REQUIRE(std::holds_alternative<PacketError>(d));
    CHECK(std::get<PacketError>(d).reason == reason::unsupported_version);
  }
  SECTION("the reserved flag") {
    std::string body = bytes({0, 4}) + "MQTT" + bytes({4, 3, 0, 10, 0, 1}) + "c";
    auto d = one(bytes({0x10, static_cast<int>(body.size())}) + body);
    REQUIRE(std::holds_alternative<PacketError>(d));
    CHECK(std::get<PacketError>(d).reason == reason::malformed);
  }
  SECTION("a client id that is not UTF-8") {
    std::string body = bytes({0, 4}) + "MQTT" + bytes({4, 2, 0, 10, 0, 2, 0xC3, 0x28});
    auto d = one(bytes({0x10, static_cast<int>(body.size())}) + body);
    REQUIRE(std::holds_alternative<PacketError>(d));
    CHECK(std::get<PacketError>(d).reason == reason::malformed);
  }
  SECTION("MQTT 5 properties: maximum packet size read, a duplicate is a protocol error") {
    Connect c;
    c.version = kVersion5;
    c.client_id = "x";
    c.maximum_packet_size = 4096;
    CHECK(as<Connect>(one(encode_connect(c))).maximum_packet_size == 4096);
    std::string body = bytes({0, 4}) + "MQTT" + bytes({5, 2, 0, 10, 10, 0x27, 0, 0, 1, 0, 0x27, 0, 0, 1, 0, 0, 1}) + "c";
    auto d = one(bytes({0x10, static_cast<int>(body.size())}) + body);
    REQUIRE(std::holds_alternative<PacketError>(d));
    CHECK(std::get<PacketError>(d).reason == reason::protocol_error);
  }
}

TEST_CASE("MQTT PUBLISH round trip, MQTT 5 user properties in order", "[mqtt]") {
  Publish p;
  p.qos = 1;
  p.packet_id = 77;
  p.retain = true;
  p.topic = "sensors/a/temp";
  p.payload = std::string("21.5\0x", 6);
  p.user_properties = {{"source", "feed-1"}, {"source", "feed-2"}, {"unit", "C"}};
  const Publish v5 = as<Publish>(one(encode_publish(kVersion5, p), kVersion5));
  CHECK(v5.topic == p.topic);
  CHECK(v5.payload == p.payload);
  CHECK(v5.qos == 1);
  CHECK(v5.packet_id == 77);
  CHECK(v5.retain);
  CHECK(v5.user_properties == p.user_properties);
  const Publish v311 = as<Publish>(one(encode_publish(kVersion311, p)));
  CHECK(v311.payload == p.payload);
  CHECK(v311.user_properties.empty());
  PublishOut out{p.topic, p.payload, 0, false, false, 0, &p.user_properties};
  std::string wire;
  append_publish(wire, kVersion5, out);
  CHECK(wire.size() == publish_size(kVersion5, out));
}

TEST_CASE("MQTT PUBLISH refusals", "[mqtt]") {
  auto reason_of = [](const std::string& wire) {
    auto d = one(wire);
    REQUIRE(std::holds_alternative<PacketError>(d));
    return std::get<PacketError>(d).reason;
  };
  CHECK(reason_of(bytes({0x36, 5, 0, 1, 'a', 0, 1})) == reason::malformed);      // QoS 3
  CHECK(reason_of(bytes({0x38, 3, 0, 1, 'a'})) == reason::malformed);            // DUP at QoS 0
  CHECK(reason_of(bytes({0x32, 5, 0, 1, 'a', 0, 0})) == reason::protocol_error);  // packet id 0
  CHECK(reason_of(bytes({0x30, 4, 0, 1, 0, 'x'})) == reason::malformed);         // U+0000 in the topic
}

TEST_CASE("MQTT fixed-header flags are checked for every type but PUBLISH", "[mqtt]") {
  Subscribe s;
  s.packet_id = 1;
  s.entries.push_back({"a/+", 1, false, false, 0});
  std::string wire = encode_subscribe(kVersion311, s);
  CHECK(as<Subscribe>(one(wire)).entries[0].filter == "a/+");
  wire[0] = static_cast<char>(0x80);
  auto d = one(wire);
  REQUIRE(std::holds_alternative<PacketError>(d));
  CHECK(std::get<PacketError>(d).reason == reason::malformed);
  CHECK(std::holds_alternative<PacketError>(one(bytes({0xC1, 0}))));  // PINGREQ with a flag
  CHECK(std::holds_alternative<PacketError>(one(bytes({0x82, 2, 0, 1}))));  // SUBSCRIBE with no filter
}

TEST_CASE("MQTT PacketReader: any split, oversized and overlong lengths refused early", "[mqtt]") {
  Publish p;
  p.topic = "t";
  p.payload = std::string(300, 'x');
  const std::string wire = encode_publish(kVersion311, p) + bytes({0xC0, 0});
  PacketReader reader(1 << 20);
  std::vector<uint8_t> types;
  for (char c : wire) {
    reader.feed(std::string_view(&c, 1));
    PacketError e;
    bool failed = false;
    while (auto raw = reader.next(e, failed)) types.push_back(raw->first >> 4);
    REQUIRE_FALSE(failed);
  }
  CHECK(types == std::vector<uint8_t>{3, 12});

  PacketReader small(100);
  small.feed(wire.substr(0, 3));  // the header says 303 bytes are coming
  PacketError e;
  bool failed = false;
  CHECK_FALSE(small.next(e, failed));
  CHECK(failed);
  CHECK(e.reason == reason::packet_too_large);

  PacketReader overlong(1 << 20);
  overlong.feed(bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
  CHECK_FALSE(overlong.next(e, failed));
  CHECK(failed);
  CHECK(e.reason == reason::malformed);
}

TEST_CASE("MQTT server packets as the spec writes them", "[mqtt]") {
  ConnackOptions ok;
  CHECK(connack(kVersion311, ok) == bytes({0x20, 2, 0, 0}));
  ConnackOptions refused;
  refused.reason = reason::bad_credentials;
  CHECK(connack(kVersion311, refused) == bytes({0x20, 2, 0, 4}));
  refused.reason = reason::not_authorized;
  CHECK(connack(kVersion311, refused) == bytes({0x20, 2, 0, 5}));
  // MQTT 5: Maximum QoS 1 and no shared subscriptions are said.
  const std::string v5 = connack(kVersion5, ok);
  CHECK(v5.find(bytes({0x24, 1})) != std::string::npos);
  CHECK(v5.find(bytes({0x2A, 0})) != std::string::npos);
  CHECK(suback(kVersion311, 9, {0, 0x8F, 0x80}) == bytes({0x90, 5, 0, 9, 0, 0x80, 0x80}));
  CHECK(suback(kVersion5, 9, {0, 0x87}) == bytes({0x90, 5, 0, 9, 0, 0, 0x87}));
  CHECK(unsuback(kVersion311, 3, {0, 0x11}) == bytes({0xB0, 2, 0, 3}));
  CHECK(ack(kVersion311, PacketType::puback, 0x1234) == bytes({0x40, 2, 0x12, 0x34}));
  CHECK(ack(kVersion5, PacketType::puback, 1, reason::not_authorized) == bytes({0x40, 3, 0, 1, 0x87}));
  CHECK(ack(kVersion311, PacketType::pubcomp, 5) == bytes({0x70, 2, 0, 5}));
  CHECK(pingresp() == bytes({0xD0, 0}));
  CHECK(disconnect(reason::keep_alive_timeout) == bytes({0xE0, 2, 0x8D, 0}));
}
