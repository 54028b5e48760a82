// kws bench's MQTT 3.1.1 client packets and the reader that cuts a stream
// into packets, whatever the chunks (WebSocket frames, TCP reads) it comes in.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "core/bench/mqtt_wire.hpp"
#include "core/bench/wire.hpp"

using namespace kws::bench;
using namespace std::string_literals;
using namespace std::string_view_literals;

namespace {

std::string remaining_length(uint32_t v) {
  std::string out;
  mqtt::append_remaining_length(out, v);
  return out;
}

struct Seen {
  std::string topic;
  std::string payload;
  uint8_t qos;
  uint16_t id;
};

// Feeds `stream` cut at the given sizes (cycled) and collects the PUBLISHes.
std::vector<Seen> read_publishes(const std::string& stream, const std::vector<size_t>& cuts, size_t& others) {
  mqtt::PacketReader reader;
  std::vector<Seen> out;
  size_t at = 0, i = 0;
  while (at < stream.size()) {
    const size_t n = std::min(cuts[i++ % cuts.size()], stream.size() - at);
    const bool ok = reader.feed(std::string_view(stream).substr(at, n), [&](const mqtt::Packet& p) {
      if (p.type != mqtt::publish) {
        others++;
        return true;
      }
      mqtt::Publish pub;
      std::string error;
      REQUIRE(mqtt::parse_publish(p, pub, error));
      out.push_back({std::string(pub.topic), std::string(pub.payload), pub.qos, pub.packet_id});
      return true;
    });
    REQUIRE(ok);
    at += n;
  }
  CHECK(reader.buffered() == 0);
  return out;
}

}  // namespace

TEST_CASE("bench mqtt: Remaining Length takes 1 to 4 bytes of 7 bits") {
  CHECK(remaining_length(0) == "\x00"s);
  CHECK(remaining_length(127) == "\x7f"s);
  CHECK(remaining_length(128) == "\x80\x01"s);
  CHECK(remaining_length(16383) == "\xff\x7f"s);
  CHECK(remaining_length(16384) == "\x80\x80\x01"s);
  CHECK(remaining_length(2097151) == "\xff\xff\x7f"s);
  CHECK(remaining_length(2097152) == "\x80\x80\x80\x01"s);
  CHECK(remaining_length(mqtt::kMaxRemainingLength) == "\xff\xff\xff\x7f"s);
  for (uint32_t v : {0u, 1u, 127u, 128u, 300u, 16383u, 16384u, 2097151u, 2097152u, mqtt::kMaxRemainingLength}) {
    const std::string enc = remaining_length(v);
    uint32_t back = 0;
    size_t used = 0;
    REQUIRE(mqtt::read_remaining_length(enc, back, used) == mqtt::LengthRead::ok);
    CHECK(back == v);
    CHECK(used == enc.size());
    // Every proper prefix needs more bytes.
    for (size_t k = 0; k < enc.size(); k++) {
      CHECK(mqtt::read_remaining_length(std::string_view(enc).substr(0, k), back, used) == mqtt::LengthRead::incomplete);
    }
  }
  uint32_t v = 0;
  size_t used = 0;
  CHECK(mqtt::read_remaining_length("\xff\xff\xff\xff\x01"s, v, used) == mqtt::LengthRead::malformed);
}

TEST_CASE("bench mqtt: CONNECT, SUBSCRIBE, PUBLISH, PUBACK and DISCONNECT bytes") {
  // MQTT 3.1.1, 3.1: "MQTT", level 4, clean session, keep-alive, client id.
  CHECK(mqtt::connect_packet("kwsb-1", 0, true) == "\x10\x12\x00\x04MQTT\x04\x02\x00\x00\x00\x06kwsb-1"s);
  CHECK(mqtt::connect_packet("c", 600, false) == "\x10\x0d\x00\x04MQTT\x04\x00\x02\x58\x00\x01\x63"s);
  // 3.8: fixed header flags 0010, packet id, filter, requested QoS.
  CHECK(mqtt::subscribe_packet(1, "kafka/t/#", 0) == "\x82\x0e\x00\x01\x00\x09kafka/t/#\x00"s);
  CHECK(mqtt::subscribe_packet(0x1234, "a", 1) == "\x82\x06\x12\x34\x00\x01" "a\x01"s);
  // 3.3: QoS in bits 1-2, packet id only for QoS > 0.
  CHECK(mqtt::publish_packet("a/b", "hi", 0, 7) == "\x30\x07\x00\x03" "a/b" "hi"s);
  CHECK(mqtt::publish_packet("a/b", "hi", 1, 0x0102) == "\x32\x09\x00\x03" "a/b\x01\x02" "hi"s);
  std::string retained;
  mqtt::append_publish(retained, "t", "", 1, 5, true);
  CHECK(retained == "\x33\x05\x00\x01t\x00\x05"s);
  CHECK(mqtt::puback_packet(0xabcd) == "\x40\x02\xab\xcd"s);
  CHECK(mqtt::pingreq_packet() == "\xc0\x00"s);
  CHECK(mqtt::disconnect_packet() == "\xe0\x00"s);
  // A payload over 127 bytes takes a two-byte Remaining Length.
  const std::string big = mqtt::publish_packet("t", std::string(200, 'x'), 0, 0);
  CHECK(big.substr(0, 3) == "\x30\xcb\x01"s);  // 2 + 1 + 200 = 203
  CHECK(big.size() == 3 + 203);
}

TEST_CASE("bench mqtt: parse_packet and parse_publish") {
  std::string error;
  mqtt::Packet p;
  const std::string pub = mqtt::publish_packet("kafka/t/k1", "value", 1, 42);
  REQUIRE(mqtt::parse_packet(pub, p, error) == pub.size());
  CHECK(p.type == mqtt::publish);
  CHECK(p.flags == 2);
  mqtt::Publish out;
  REQUIRE(mqtt::parse_publish(p, out, error));
  CHECK(out.topic == "kafka/t/k1");
  CHECK(out.payload == "value");
  CHECK(out.qos == 1);
  CHECK(out.packet_id == 42);
  CHECK_FALSE(out.retain);
  // Incomplete: any proper prefix.
  for (size_t k = 0; k < pub.size(); k++) {
    CHECK(mqtt::parse_packet(std::string_view(pub).substr(0, k), p, error) == 0);
    CHECK(error.empty());
  }
  // CONNACK and SUBACK as a server sends them.
  // (p.body points into the bytes parsed: they must outlive it.)
  const std::string connack_bytes = "\x20\x02\x00\x00"s;
  REQUIRE(mqtt::parse_packet(connack_bytes, p, error) == 4);
  CHECK((p.type == mqtt::connack && p.body == "\x00\x00"s));
  const std::string suback_bytes = "\x90\x03\x00\x01\x80"s;
  REQUIRE(mqtt::parse_packet(suback_bytes, p, error) == 5);
  uint16_t id = 0;
  CHECK((p.type == mqtt::suback && mqtt::read_packet_id(p.body, id) && id == 1 && p.body[2] == '\x80'));
  CHECK_FALSE(mqtt::read_packet_id("\x01"s, id));
  // Over the limit, malformed length, bad publishes.
  CHECK(mqtt::parse_packet("\x30\x80\x80\x04"s, p, error, 1000) == 0);
  CHECK(error == "packet of 65536 bytes, over the 1000 byte limit");
  error.clear();
  CHECK(mqtt::parse_packet("\x30\xff\xff\xff\xff\x01"s, p, error) == 0);
  CHECK(error.find("malformed Remaining Length") == 0);
  error.clear();
  mqtt::Packet bad{mqtt::publish, 6, "\x00\x01t\x00\x01"sv};  // QoS 3
  CHECK_FALSE(mqtt::parse_publish(bad, out, error));
  CHECK(error == "PUBLISH with QoS 3");
  bad = {mqtt::publish, 2, "\x00\x01t\x00"sv};  // QoS 1, packet id cut short
  CHECK_FALSE(mqtt::parse_publish(bad, out, error));
  bad = {mqtt::publish, 0, "\x00\x05t"sv};  // topic length past the end
  CHECK_FALSE(mqtt::parse_publish(bad, out, error));
  // A keyless record's topic and an empty payload.
  const std::string empty = mqtt::publish_packet("kafka/t", "", 0, 0);
  REQUIRE(mqtt::parse_packet(empty, p, error) == empty.size());
  REQUIRE(mqtt::parse_publish(p, out, error));
  CHECK((out.topic == "kafka/t" && out.payload.empty() && out.packet_id == 0));
}

TEST_CASE("bench mqtt: the packet reader gives the same PUBLISHes fed byte by byte and in random chunks") {
  const std::string tag = make_run_tag();
  std::string stream = "\x20\x02\x00\x00"s + "\x90\x03\x00\x01\x00"s;  // CONNACK, SUBACK
  std::vector<Seen> sent;
  std::mt19937 rng(17);
  for (uint64_t seq = 0; seq < 300; seq++) {
    // Sizes around the Remaining Length's 1/2/3-byte boundaries.
    const size_t size = std::vector<size_t>{64, 100, 121, 122, 123, 124, 125, 126, 200, 16380, 16400, 70000}[seq % 12];
    std::string value;
    format_message(value, tag, seq, 1000 + seq, size);
    const std::string topic = seq % 5 == 0 ? "kafka/t" : "kafka/t/k" + std::to_string(seq % 7);
    const uint8_t qos = seq % 3 == 0 ? 1 : 0;
    const uint16_t id = qos ? static_cast<uint16_t>(seq + 1) : 0;
    mqtt::append_publish(stream, topic, value, qos, id);
    sent.push_back({topic, value, qos, id});
    if (seq % 50 == 0) stream += "\xd0\x00"s;  // PINGRESP between them
  }
  auto check_same = [&](const std::vector<Seen>& got, size_t others) {
    REQUIRE(got.size() == sent.size());
    CHECK(others == 2 + 6);
    for (size_t i = 0; i < sent.size(); i++) {
      INFO(i);
      CHECK(got[i].topic == sent[i].topic);
      CHECK(got[i].payload == sent[i].payload);
      CHECK(got[i].qos == sent[i].qos);
      CHECK(got[i].id == sent[i].id);
      auto s = find_stamp(got[i].payload, tag);
      REQUIRE(s);
      CHECK(s->seq == i);
      CHECK(s->sent_ns == 1000 + i);
    }
  };
  SECTION("whole") {
    size_t others = 0;
    const auto got = read_publishes(stream, {stream.size()}, others);
    check_same(got, others);
  }
  SECTION("byte by byte") {
    size_t others = 0;
    const auto got = read_publishes(stream, {1}, others);
    check_same(got, others);
  }
  SECTION("random chunks") {
    for (int round = 0; round < 20; round++) {
      std::vector<size_t> cuts;
      std::uniform_int_distribution<size_t> small(1, 8), any(1, 40000);
      for (int i = 0; i < 64; i++) cuts.push_back(i % 3 == 0 ? small(rng) : any(rng));
      size_t others = 0;
      const auto got = read_publishes(stream, cuts, others);
      check_same(got, others);
    }
  }
}

TEST_CASE("bench mqtt: the packet reader stops at a malformed packet and stays stopped") {
  mqtt::PacketReader reader(1 << 10);
  int packets = 0;
  auto count = [&](const mqtt::Packet&) {
    packets++;
    return true;
  };
  CHECK(reader.feed("\xd0\x00\x30"s, count));  // PINGRESP, then the start of a PUBLISH
  CHECK(packets == 1);
  CHECK_FALSE(reader.feed("\x80\x10"s, count));  // 2048 bytes: over the reader's limit
  CHECK(reader.error() == "packet of 2048 bytes, over the 1024 byte limit");
  CHECK_FALSE(reader.feed("\xd0\x00"s, count));
  CHECK(packets == 1);
  // A handler that returns false stops the feed too.
  mqtt::PacketReader second;
  int seen = 0;
  CHECK_FALSE(second.feed("\xd0\x00\xd0\x00"s, [&](const mqtt::Packet&) { return ++seen < 1; }));
  CHECK(seen == 1);
}

TEST_CASE("bench mqtt: mqtt:// URLs and the /mqtt path") {
  auto u = parse_ws_url("mqtt://127.0.0.1:1884");
  CHECK(u.raw_mqtt);
  CHECK_FALSE(u.tls);
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == 1884);
  CHECK(parse_ws_url("mqtt://h").port == 1883);
  CHECK(parse_ws_url("mqtt://h/").path == "/");
  CHECK_THROWS_WITH(parse_ws_url("mqtt://h:1/x"), Catch::Contains("an mqtt:// URL has no path"));
  CHECK_THROWS_WITH(parse_ws_url("tcp://h:1"), Catch::Contains("mqtt://HOST:PORT"));
  CHECK(mqtt_target(parse_ws_url("ws://h:1/")) == "/mqtt");
  CHECK(mqtt_target(parse_ws_url("ws://h:1")) == "/mqtt");
  CHECK(mqtt_target(parse_ws_url("ws://h:1/ws/mqtt")) == "/ws/mqtt");
  CHECK_FALSE(parse_ws_url("ws://h:1/").raw_mqtt);
}
