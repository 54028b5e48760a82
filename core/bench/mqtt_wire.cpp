#include "core/bench/mqtt_wire.hpp"

namespace kws::bench::mqtt {

namespace {

void append_u16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

void append_string(std::string& out, std::string_view s) {
  append_u16(out, static_cast<uint16_t>(s.size()));
  out.append(s);
}

uint16_t u16_at(std::string_view s, size_t at) {
  return static_cast<uint16_t>((static_cast<unsigned char>(s[at]) << 8) |
                               static_cast<unsigned char>(s[at + 1]));
}

std::string with_fixed_header(uint8_t first, const std::string& body) {
  std::string out(1, static_cast<char>(first));
  append_remaining_length(out, static_cast<uint32_t>(body.size()));
  return out + body;
}

}  // namespace

void append_remaining_length(std::string& out, uint32_t length) {
  do {
    uint8_t byte = length & 0x7f;
    length >>= 7;
    if (length) byte |= 0x80;
    out += static_cast<char>(byte);
  } while (length);
}

LengthRead read_remaining_length(std::string_view bytes, uint32_t& value, size_t& used) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; i++) {
    if (i >= bytes.size()) return LengthRead::incomplete;
    const auto b = static_cast<unsigned char>(bytes[i]);
    v |= static_cast<uint32_t>(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      value = v;
      used = i + 1;
      return LengthRead::ok;
    }
  }
  return LengthRead::malformed;
}

std::string connect_packet(std::string_view client_id, uint16_t keep_alive_s, bool clean_session) {
  std::string body;
  append_string(body, "MQTT");
  body += '\x04';                                       // protocol level: 3.1.1
  body += static_cast<char>(clean_session ? 0x02 : 0);  // connect flags
  append_u16(body, keep_alive_s);
  append_string(body, client_id);
  return with_fixed_header(connect << 4, body);
}

std::string subscribe_packet(uint16_t packet_id, std::string_view filter, uint8_t qos) {
  std::string body;
  append_u16(body, packet_id);
  append_string(body, filter);
  body += static_cast<char>(qos & 3);
  return with_fixed_header((subscribe << 4) | 0x02, body);  // flags 0010 are required
}

void append_publish(std::string& out, std::string_view topic, std::string_view payload, uint8_t qos,
                    uint16_t packet_id, bool retain) {
  const size_t length = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size();
  out += static_cast<char>((publish << 4) | ((qos & 3) << 1) | (retain ? 1 : 0));
  append_remaining_length(out, static_cast<uint32_t>(length));
  append_string(out, topic);
  if (qos > 0) append_u16(out, packet_id);
  out.append(payload);
}

std::string publish_packet(std::string_view topic, std::string_view payload, uint8_t qos,
                           uint16_t packet_id) {
  std::string out;
  append_publish(out, topic, payload, qos, packet_id);
  return out;
}

std::string puback_packet(uint16_t packet_id) {
  std::string out{static_cast<char>(puback << 4), '\x02'};
  append_u16(out, packet_id);
  return out;
}

std::string pingreq_packet() { return std::string{static_cast<char>(pingreq << 4), '\0'}; }

std::string disconnect_packet() { return std::string{static_cast<char>(disconnect << 4), '\0'}; }

size_t parse_packet(std::string_view bytes, Packet& packet, std::string& error, uint32_t max_bytes) {
  if (bytes.empty()) return 0;
  uint32_t length = 0;
  size_t used = 0;
  switch (read_remaining_length(bytes.substr(1), length, used)) {
    case LengthRead::incomplete:
      return 0;
    case LengthRead::malformed:
      error = "malformed Remaining Length (more than 4 bytes)";
      return 0;
    case LengthRead::ok:
      break;
  }
  if (length > max_bytes) {
    error = "packet of " + std::to_string(length) + " bytes, over the " + std::to_string(max_bytes) +
            " byte limit";
    return 0;
  }
  const size_t header = 1 + used;
  if (bytes.size() - header < length) return 0;
  const auto first = static_cast<unsigned char>(bytes[0]);
  packet.type = first >> 4;
  packet.flags = first & 0x0f;
  packet.body = bytes.substr(header, length);
  return header + length;
}

bool parse_publish(const Packet& packet, Publish& out, std::string& error) {
  out.qos = (packet.flags >> 1) & 3;
  out.retain = packet.flags & 1;
  out.dup = packet.flags & 8;
  if (out.qos == 3) {
    error = "PUBLISH with QoS 3";
    return false;
  }
  const std::string_view b = packet.body;
  if (b.size() < 2) {
    error = "PUBLISH too short for its topic length";
    return false;
  }
  const size_t topic_len = u16_at(b, 0);
  const size_t id_len = out.qos > 0 ? 2 : 0;
  if (b.size() < 2 + topic_len + id_len) {
    error = "PUBLISH too short for its topic name" + std::string(id_len ? " and packet id" : "");
    return false;
  }
  out.topic = b.substr(2, topic_len);
  out.packet_id = id_len ? u16_at(b, 2 + topic_len) : 0;
  out.payload = b.substr(2 + topic_len + id_len);
  return true;
}

bool read_packet_id(std::string_view body, uint16_t& id) {
  if (body.size() < 2) return false;
  id = u16_at(body, 0);
  return true;
}

}  // namespace kws::bench::mqtt
