// libFuzzer target for the MQTT packet decoder (core/mqtt_wire.*): every
// byte an MQTT client sends to kws serve, over TCP or WebSocket, goes
// through PacketReader and decode() before a session acts on it. Build and
// run: see tests/fuzz/CMakeLists.txt.
//
// Input: [split][limit][version][bytes...]. The bytes are split into packets
// whole and in two reads (where `split` says), and both must give the same
// packets and the same error; `limit` picks the largest packet (so that
// "packet too large" is reached); `version` picks MQTT 3.1.1 or 5 for what
// follows a CONNECT. Each decoded packet must hold only what the
// specification allows (UTF-8 strings without U+0000, QoS 0-2, packet
// identifiers not 0 where one is required), and what kws can encode again
// must decode to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/mqtt_wire.hpp"
#include "core/util/text.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace kws::mqtt;

namespace {

struct Split {
  std::vector<std::pair<uint8_t, std::string>> packets;
  bool failed = false;
  PacketError error;
};

Split split(std::string_view bytes, size_t cut, size_t limit) {
  Split out;
  PacketReader reader(limit);
  auto drain = [&] {
    for (;;) {
      bool failed = false;
      auto raw = reader.next(out.error, failed);
      if (failed) {
        out.failed = true;
        return;
      }
      if (!raw) return;
      CHECK(raw->body.size() + 2 <= limit);
      out.packets.emplace_back(raw->first, std::string(raw->body));
    }
  };
  reader.feed(bytes.substr(0, cut));
  drain();
  if (!out.failed) {
    reader.feed(bytes.substr(cut));
    drain();
  }
  return out;
}

bool text_ok(std::string_view s) { return kws::is_valid_utf8(s) && s.find('\0') == std::string_view::npos; }

void check_connect(const Connect& c) {
  CHECK(c.version == kVersion311 || c.version == kVersion5);
  CHECK(text_ok(c.client_id));
  if (c.will) {
    CHECK(text_ok(c.will->topic));
    CHECK(c.will->qos <= 2);
  }
  if (c.username) CHECK(text_ok(*c.username));
  // What encode_connect writes again reads back the same.
  const std::string bytes = encode_connect(c);
  Split again = split(bytes, bytes.size() / 2, bytes.size() + 1);
  CHECK(!again.failed && again.packets.size() == 1);
  auto decoded = decode(again.packets[0].first, again.packets[0].second, kVersion5);
  CHECK(std::holds_alternative<Packet>(decoded));
  const Connect& d = std::get<Connect>(std::get<Packet>(decoded));
  CHECK(d.version == c.version && d.clean_start == c.clean_start && d.keep_alive == c.keep_alive);
  CHECK(d.client_id == c.client_id && d.username == c.username && d.password == c.password);
  CHECK(d.maximum_packet_size == c.maximum_packet_size);
  CHECK(d.will.has_value() == c.will.has_value());
  if (c.will) {
    CHECK(d.will->topic == c.will->topic && d.will->payload == c.will->payload);
    CHECK(d.will->qos == c.will->qos && d.will->retain == c.will->retain);
    if (c.version == kVersion5) CHECK(d.will->user_properties == c.will->user_properties);
  }
}

void check_publish(const Publish& p, uint8_t version) {
  CHECK(text_ok(p.topic));
  CHECK(p.qos <= 2);
  CHECK(p.qos == 0 || p.packet_id != 0);
  for (const auto& [name, value] : p.user_properties) CHECK(text_ok(name) && text_ok(value));
  Publish plain = p;
  plain.topic_alias = 0;
  const std::string bytes = encode_publish(version, plain);
  Split again = split(bytes, bytes.size(), bytes.size() + 1);
  CHECK(!again.failed && again.packets.size() == 1);
  auto decoded = decode(again.packets[0].first, again.packets[0].second, version);
  CHECK(std::holds_alternative<Packet>(decoded));
  const Publish& q = std::get<Publish>(std::get<Packet>(decoded));
  CHECK(q.topic == p.topic && q.payload == p.payload && q.qos == p.qos && q.retain == p.retain && q.dup == p.dup);
  CHECK(q.packet_id == p.packet_id);
  if (version == kVersion5) CHECK(q.user_properties == p.user_properties);
}

void check_subscribe(const Subscribe& s, uint8_t version) {
  CHECK(s.packet_id != 0 && !s.entries.empty());
  for (const auto& e : s.entries) {
    CHECK(text_ok(e.filter));
    CHECK(e.qos <= 2 && e.retain_handling <= 2);
  }
  Subscribe plain = s;
  plain.has_subscription_id = false;
  const std::string bytes = encode_subscribe(version, plain);
  Split again = split(bytes, 0, bytes.size() + 1);
  CHECK(!again.failed && again.packets.size() == 1);
  auto decoded = decode(again.packets[0].first, again.packets[0].second, version);
  CHECK(std::holds_alternative<Packet>(decoded));
  const Subscribe& t = std::get<Subscribe>(std::get<Packet>(decoded));
  CHECK(t.packet_id == s.packet_id && t.entries.size() == s.entries.size());
  for (size_t i = 0; i < s.entries.size(); ++i) {
    CHECK(t.entries[i].filter == s.entries[i].filter && t.entries[i].qos == s.entries[i].qos);
  }
}

void check_unsubscribe(const Unsubscribe& u, uint8_t version) {
  CHECK(u.packet_id != 0 && !u.filters.empty());
  for (const auto& f : u.filters) CHECK(text_ok(f));
  const std::string bytes = encode_unsubscribe(version, u);
  Split again = split(bytes, 1, bytes.size() + 1);
  CHECK(!again.failed && again.packets.size() == 1);
  auto decoded = decode(again.packets[0].first, again.packets[0].second, version);
  CHECK(std::holds_alternative<Packet>(decoded));
  CHECK(std::get<Unsubscribe>(std::get<Packet>(decoded)).filters == u.filters);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t limit = 16 + static_cast<size_t>(data[1]) * 64;
  const uint8_t version = (data[2] & 1) ? kVersion5 : kVersion311;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 3), size - 3);
  const size_t cut = bytes.empty() ? 0 : data[0] % (bytes.size() + 1);
  Split whole = split(bytes, bytes.size(), limit);
  Split pieces = split(bytes, cut, limit);
  CHECK(whole.failed == pieces.failed);
  CHECK(whole.packets == pieces.packets);
  if (whole.failed) {
    CHECK(whole.error.reason == reason::malformed || whole.error.reason == reason::packet_too_large);
    CHECK(!whole.error.why.empty());
  }
  for (const auto& [first, body] : whole.packets) {
    auto decoded = decode(first, body, version);
    if (auto* e = std::get_if<PacketError>(&decoded)) {
      CHECK(e->reason == reason::malformed || e->reason == reason::protocol_error ||
            e->reason == reason::unsupported_version);
      CHECK(!e->why.empty());
      continue;
    }
    const Packet& p = std::get<Packet>(decoded);
    if (auto* c = std::get_if<Connect>(&p)) check_connect(*c);
    if (auto* pub = std::get_if<Publish>(&p)) check_publish(*pub, version);
    if (auto* s = std::get_if<Subscribe>(&p)) check_subscribe(*s, version);
    if (auto* u = std::get_if<Unsubscribe>(&p)) check_unsubscribe(*u, version);
  }
  return 0;
}
