#pragma once
// What kws bench writes and reads as an MQTT 3.1.1 client, as pure functions
// (as wire.hpp is for WebSocket): the packets it sends (CONNECT, SUBSCRIBE,
// PUBLISH, DISCONNECT), the Remaining Length codec, and a reader that cuts
// a byte stream into packets whatever the chunks it arrives in (a WebSocket
// frame may hold several packets or part of one; so may a TCP read).
// tests/unit/test_bench_mqtt_wire.cpp pins them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kws::bench::mqtt {

enum PacketType : uint8_t {
  connect = 1,
  connack = 2,
  publish = 3,
  puback = 4,
  pubrec = 5,
  pubrel = 6,
  pubcomp = 7,
  subscribe = 8,
  suback = 9,
  unsubscribe = 10,
  unsuback = 11,
  pingreq = 12,
  pingresp = 13,
  disconnect = 14,
};

// The largest Remaining Length the encoding can carry (4 bytes of 7 bits).
inline constexpr uint32_t kMaxRemainingLength = 268435455;

// Appends `length` as 1 to 4 bytes of 7 bits, least significant first.
void append_remaining_length(std::string& out, uint32_t length);

enum class LengthRead { ok, incomplete, malformed };
// Reads a Remaining Length at the start of `bytes`: `value` and the bytes
// it took (1-4). malformed: a fifth continuation byte.
LengthRead read_remaining_length(std::string_view bytes, uint32_t& value, size_t& used);

// CONNECT of protocol level 4 (3.1.1) with no will, user or password.
std::string connect_packet(std::string_view client_id, uint16_t keep_alive_s, bool clean_session);
// SUBSCRIBE of one topic filter at `qos` (0-2).
std::string subscribe_packet(uint16_t packet_id, std::string_view filter, uint8_t qos);
// Appends a PUBLISH; `packet_id` is written for qos 1 and 2 only.
void append_publish(std::string& out, std::string_view topic, std::string_view payload, uint8_t qos,
                    uint16_t packet_id, bool retain = false);
std::string publish_packet(std::string_view topic, std::string_view payload, uint8_t qos, uint16_t packet_id);
std::string puback_packet(uint16_t packet_id);
std::string pingreq_packet();
std::string disconnect_packet();

struct Packet {
  uint8_t type = 0;       // PacketType, 0-15
  uint8_t flags = 0;      // the low 4 bits of the first byte
  std::string_view body;  // the Remaining Length bytes after the fixed header
};
// Parses the packet at the start of `bytes`. Returns its total length, or 0
// when more bytes are needed; sets `error` (and returns 0) for a malformed
// Remaining Length or a packet over `max_bytes`.
size_t parse_packet(std::string_view bytes, Packet& packet, std::string& error,
                    uint32_t max_bytes = 64u << 20);

struct Publish {
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::string_view topic;
  uint16_t packet_id = 0;  // qos 1 and 2 only
  std::string_view payload;
};
// A PUBLISH's variable header and payload (MQTT 3.1.1: no properties).
// False, with `error`, when the body is too short or the QoS is 3.
bool parse_publish(const Packet& packet, Publish& out, std::string& error);
// The packet id at the start of a PUBACK, SUBACK, UNSUBACK...; false when
// the body is shorter than 2 bytes.
bool read_packet_id(std::string_view body, uint16_t& id);

// Cuts a stream into whole packets, keeping only a partial one between
// calls: whole packets in a chunk are handed over from the chunk itself,
// with no copy.
class PacketReader {
 public:
  explicit PacketReader(uint32_t max_bytes = 64u << 20) : max_bytes_(max_bytes) {}
  // Calls on_packet(const Packet&) for each packet completed by `bytes`, in
  // order; stops at, and returns false for, a malformed packet (error()) or
  // when on_packet returns false.
  template <class F>
  bool feed(std::string_view bytes, F&& on_packet) {
    if (!error_.empty()) return false;
    if (partial_.empty()) {
      size_t used = 0;
      if (!drain(bytes, used, on_packet)) return false;
      if (used < bytes.size()) partial_.assign(bytes.substr(used));
      return true;
    }
    partial_.append(bytes);
    size_t used = 0;
    // The packets handed over point into partial_, which is only cut after.
    const bool ok = drain(partial_, used, on_packet);
    partial_.erase(0, used);
    if (partial_.empty() && partial_.capacity() > 4096) std::string().swap(partial_);
    return ok;
  }
  const std::string& error() const { return error_; }
  size_t buffered() const { return partial_.size(); }

 private:
  template <class F>
  bool drain(std::string_view bytes, size_t& used, F& on_packet) {
    for (;;) {
      Packet p;
      const size_t n = parse_packet(bytes.substr(used), p, error_, max_bytes_);
      if (n == 0) return error_.empty();
      used += n;
      if (!on_packet(p)) return false;
    }
  }
  uint32_t max_bytes_;
  std::string partial_;
  std::string error_;
};

}  // namespace kws::bench::mqtt
