#include "core/mqtt_wire.hpp"

#include <bitset>

#include "core/util/text.hpp"

namespace kws::mqtt {

namespace {

// MQTT 5 property identifiers (section 2.2.2.2).
enum Prop : uint8_t {
  payload_format = 0x01,
  message_expiry = 0x02,
  content_type = 0x03,
  response_topic = 0x08,
  correlation_data = 0x09,
  subscription_id = 0x0B,
  session_expiry = 0x11,
  assigned_client_id = 0x12,
  server_keep_alive = 0x13,
  auth_method = 0x15,
  auth_data = 0x16,
  request_problem_info = 0x17,
  will_delay = 0x18,
  request_response_info = 0x19,
  server_reference = 0x1C,
  reason_string = 0x1F,
  receive_maximum = 0x21,
  topic_alias_maximum = 0x22,
  topic_alias = 0x23,
  maximum_qos = 0x24,
  retain_available = 0x25,
  user_property = 0x26,
  maximum_packet_size = 0x27,
  wildcard_available = 0x28,
  subscription_ids_available = 0x29,
  shared_available = 0x2A,
};

PacketError malformed(std::string why) { return {reason::malformed, std::move(why)}; }
PacketError protocol(std::string why) { return {reason::protocol_error, std::move(why)}; }

// Reads the fields of a packet body in order; the first failure sticks, so
// a decoder reads on and checks once.
class Cursor {
 public:
  explicit Cursor(std::string_view bytes) : rest_(bytes) {}

  bool ok() const { return !error_; }
  const PacketError& error() const { return *error_; }
  bool empty() const { return rest_.empty(); }
  size_t left() const { return rest_.size(); }
  void fail(PacketError e) {
    if (!error_) error_ = std::move(e);
    rest_ = {};
  }

  uint8_t byte(const char* what) {
    if (rest_.empty()) return fail(malformed(std::string(what) + " missing")), 0;
    const auto b = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return b;
  }
  uint16_t u16(const char* what) {
    if (rest_.size() < 2) return fail(malformed(std::string(what) + " cut short")), 0;
    const uint16_t v = static_cast<uint16_t>((static_cast<uint8_t>(rest_[0]) << 8) | static_cast<uint8_t>(rest_[1]));
    rest_.remove_prefix(2);
    return v;
  }
  uint32_t u32(const char* what) {
    if (rest_.size() < 4) return fail(malformed(std::string(what) + " cut short")), 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(rest_[i]);
    rest_.remove_prefix(4);
    return v;
  }
  uint32_t varint(const char* what) {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const uint8_t b = byte(what);
      if (!ok()) return 0;
      value |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
      if (!(b & 0x80)) {
        if (i > 0 && b == 0) return fail(malformed(std::string(what) + ": not in its shortest form")), 0;
        return value;
      }
    }
    fail(malformed(std::string(what) + ": a variable byte integer longer than 4 bytes"));
    return 0;
  }
  std::string_view binary(const char* what) {
    const uint16_t n = u16(what);
    if (!ok()) return {};
    if (rest_.size() < n) return fail(malformed(std::string(what) + " cut short")), std::string_view();
    std::string_view v = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return v;
  }
  // A UTF-8 Encoded String (1.5.4): valid UTF-8 without U+0000.
  std::string_view text(const char* what) {
    std::string_view v = binary(what);
    if (ok() && (!is_valid_utf8(v) || v.find('\0') != std::string_view::npos)) {
      fail(malformed(std::string(what) + ": not a valid UTF-8 string (or holds U+0000)"));
      return {};
    }
    return v;
  }
  std::string_view take(size_t n) {
    std::string_view v = rest_.substr(0, n);
    rest_.remove_prefix(v.size());
    return v;
  }
  std::string_view rest() { return take(rest_.size()); }

 private:
  std::string_view rest_;
  std::optional<PacketError> error_;
};

// Calls `on(id, cursor)` for each property; `on` reads the value and returns
// false for an identifier not allowed in this packet. A property other than
// User Property and Subscription Identifier may appear once (2.2.2.2).
template <class F>
void read_properties(Cursor& c, const char* packet, F&& on) {
  const uint32_t length = c.varint("property length");
  if (!c.ok()) return;
  if (length > c.left()) return c.fail(malformed(std::string(packet) + ": property length beyond the packet"));
  Cursor props(c.take(length));
  std::bitset<256> seen;
  while (props.ok() && !props.empty()) {
    const uint32_t id = props.varint("property identifier");
    if (!props.ok()) break;
    if (id > 0xFF) return c.fail(malformed(std::string(packet) + ": unknown property " + std::to_string(id)));
    if (id != user_property && id != subscription_id) {
      if (seen[id]) return c.fail(protocol(std::string(packet) + ": property " + std::to_string(id) + " twice"));
      seen[id] = true;
    }
    if (!on(static_cast<uint8_t>(id), props)) {
      return c.fail(malformed(std::string(packet) + ": property " + std::to_string(id) + " not allowed here"));
    }
  }
  if (!props.ok()) c.fail(props.error());
}

void read_user_property(Cursor& c, UserProperties& out) {
  std::string_view name = c.text("user property name");
  std::string_view value = c.text("user property value");
  if (c.ok()) out.emplace_back(std::string(name), std::string(value));
}

// The properties a PUBLISH (or a will) may carry that kws passes over:
// read and checked, not kept.
bool skip_message_property(uint8_t id, Cursor& c) {
  switch (id) {
    case payload_format: {
      const uint8_t v = c.byte("payload format indicator");
      if (c.ok() && v > 1) c.fail(protocol("payload format indicator other than 0 or 1"));
      return true;
    }
    case message_expiry: c.u32("message expiry interval"); return true;
    case content_type: c.text("content type"); return true;
    case response_topic: c.text("response topic"); return true;
    case correlation_data: c.binary("correlation data"); return true;
    default: return false;
  }
}

std::variant<Packet, PacketError> done(Cursor& c, Packet packet) {
  if (!c.ok()) return c.error();
  return packet;
}

std::variant<Packet, PacketError> decode_connect(Cursor& c) {
  Connect p;
  const std::string_view name = c.binary("protocol name");
  const uint8_t level = c.byte("protocol level");
  if (!c.ok()) return c.error();
  if (name == "MQIsdp" && level == 3) return PacketError{reason::unsupported_version, "MQTT 3.1 is not supported; use 3.1.1 or 5"};
  if (name != "MQTT") return protocol("CONNECT: protocol name is not MQTT");
  if (level != kVersion311 && level != kVersion5) {
    return PacketError{reason::unsupported_version, "protocol level " + std::to_string(level) + ": kws speaks MQTT 3.1.1 (4) and 5"};
  }
  p.version = level;
  const uint8_t flags = c.byte("connect flags");
  p.keep_alive = c.u16("keep alive");
  if (!c.ok()) return c.error();
  if (flags & 0x01) return malformed("CONNECT: the reserved flag is set");
  p.clean_start = flags & 0x02;
  const bool will = flags & 0x04;
  const uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = flags & 0x20;
  const bool has_password = flags & 0x40;
  const bool has_username = flags & 0x80;
  if (!will && (will_qos != 0 || will_retain)) return malformed("CONNECT: will QoS or retain without a will");
  if (will_qos == 3) return malformed("CONNECT: will QoS 3");
  if (level == kVersion311 && has_password && !has_username) return malformed("CONNECT: a password without a user name");
  if (level == kVersion5) {
    read_properties(c, "CONNECT", [&](uint8_t id, Cursor& pc) {
      switch (id) {
        case session_expiry: p.session_expiry = pc.u32("session expiry interval"); return true;
        case receive_maximum:
          p.receive_maximum = pc.u16("receive maximum");
          if (pc.ok() && p.receive_maximum == 0) pc.fail(protocol("CONNECT: receive maximum 0"));
          return true;
        case maximum_packet_size:
          p.maximum_packet_size = pc.u32("maximum packet size");
          if (pc.ok() && p.maximum_packet_size == 0) pc.fail(protocol("CONNECT: maximum packet size 0"));
          return true;
        case topic_alias_maximum: pc.u16("topic alias maximum"); return true;
        case request_response_info:
        case request_problem_info: {
          const uint8_t v = pc.byte("request flag");
          if (pc.ok() && v > 1) pc.fail(protocol("CONNECT: a request flag other than 0 or 1"));
          return true;
        }
        case user_property: {
          UserProperties ignored;
          read_user_property(pc, ignored);
          return true;
        }
        case auth_method: pc.text("authentication method"); p.has_auth_method = true; return true;
        case auth_data: pc.binary("authentication data"); return true;
        default: return false;
      }
    });
  }
  p.client_id = std::string(c.text("client identifier"));
  if (will) {
    Will w;
    w.qos = will_qos;
    w.retain = will_retain;
    if (level == kVersion5) {
      read_properties(c, "will", [&](uint8_t id, Cursor& pc) {
        if (id == user_property) return read_user_property(pc, w.user_properties), true;
        if (id == will_delay) return w.delay_seconds = pc.u32("will delay interval"), true;
        return skip_message_property(id, pc);
      });
    }
    w.topic = std::string(c.text("will topic"));
    w.payload = std::string(c.binary("will payload"));
    p.will = std::move(w);
  }
  if (has_username) p.username = std::string(c.text("user name"));
  if (has_password) p.password = std::string(c.binary("password"));
  if (c.ok() && !c.empty()) return malformed("CONNECT: bytes after the payload");
  return done(c, std::move(p));
}

std::variant<Packet, PacketError> decode_publish(uint8_t flags, Cursor& c, uint8_t version) {
  Publish p;
  p.dup = flags & 0x08;
  p.qos = (flags >> 1) & 0x03;
  p.retain = flags & 0x01;
  if (p.qos == 3) return malformed("PUBLISH: QoS 3");
  if (p.qos == 0 && p.dup) return malformed("PUBLISH: DUP set at QoS 0");
  p.topic = std::string(c.text("topic name"));
  if (p.qos > 0) {
    p.packet_id = c.u16("packet identifier");
    if (c.ok() && p.packet_id == 0) return protocol("PUBLISH: packet identifier 0");
  }
  if (version == kVersion5) {
    read_properties(c, "PUBLISH", [&](uint8_t id, Cursor& pc) {
      if (id == user_property) return read_user_property(pc, p.user_properties), true;
      if (id == topic_alias) {
        p.topic_alias = pc.u16("topic alias");
        return true;
      }
      if (id == subscription_id) return false;  // server to client only
      return skip_message_property(id, pc);
    });
  }
  if (!c.ok()) return c.error();
  p.payload = std::string(c.rest());
  return Packet(std::move(p));
}

std::variant<Packet, PacketError> decode_subscribe(Cursor& c, uint8_t version) {
  Subscribe p;
  p.packet_id = c.u16("packet identifier");
  if (c.ok() && p.packet_id == 0) return protocol("SUBSCRIBE: packet identifier 0");
  if (version == kVersion5) {
    read_properties(c, "SUBSCRIBE", [&](uint8_t id, Cursor& pc) {
      if (id == user_property) {
        UserProperties ignored;
        return read_user_property(pc, ignored), true;
      }
      if (id == subscription_id) {
        const uint32_t v = pc.varint("subscription identifier");
        if (pc.ok() && v == 0) pc.fail(protocol("SUBSCRIBE: subscription identifier 0"));
        p.has_subscription_id = true;
        return true;
      }
      return false;
    });
  }
  while (c.ok() && !c.empty()) {
    SubscribeEntry e;
    e.filter = std::string(c.text("topic filter"));
    const uint8_t options = c.byte("subscription options");
    if (!c.ok()) break;
    e.qos = options & 0x03;
    if (e.qos == 3) return malformed("SUBSCRIBE: QoS 3");
    if (version == kVersion5) {
      e.no_local = options & 0x04;
      e.retain_as_published = options & 0x08;
      e.retain_handling = (options >> 4) & 0x03;
      if (e.retain_handling == 3) return protocol("SUBSCRIBE: retain handling 3");
      if (options & 0xC0) return malformed("SUBSCRIBE: reserved option bits set");
    } else if (options & 0xFC) {
      return malformed("SUBSCRIBE: reserved bits of the requested QoS set");
    }
    p.entries.push_back(std::move(e));
  }
  if (c.ok() && p.entries.empty()) return protocol("SUBSCRIBE with no topic filter");
  return done(c, std::move(p));
}

std::variant<Packet, PacketError> decode_unsubscribe(Cursor& c, uint8_t version) {
  Unsubscribe p;
  p.packet_id = c.u16("packet identifier");
  if (c.ok() && p.packet_id == 0) return protocol("UNSUBSCRIBE: packet identifier 0");
  if (version == kVersion5) {
    read_properties(c, "UNSUBSCRIBE", [&](uint8_t id, Cursor& pc) {
      if (id != user_property) return false;
      UserProperties ignored;
      return read_user_property(pc, ignored), true;
    });
  }
  while (c.ok() && !c.empty()) p.filters.emplace_back(c.text("topic filter"));
  if (c.ok() && p.filters.empty()) return protocol("UNSUBSCRIBE with no topic filter");
  return done(c, std::move(p));
}

std::variant<Packet, PacketError> decode_ack(PacketType type, Cursor& c, uint8_t version) {
  Ack p;
  p.type = type;
  p.packet_id = c.u16("packet identifier");
  if (version == kVersion5 && c.ok() && !c.empty()) {
    p.reason = c.byte("reason code");
    if (c.ok() && !c.empty()) {
      read_properties(c, "acknowledgement", [&](uint8_t id, Cursor& pc) {
        if (id == user_property) {
          UserProperties ignored;
          return read_user_property(pc, ignored), true;
        }
        if (id == reason_string) return pc.text("reason string"), true;
        return false;
      });
    }
  }
  if (c.ok() && !c.empty()) return malformed("acknowledgement: bytes after its fields");
  return done(c, p);
}

std::variant<Packet, PacketError> decode_disconnect(Cursor& c, uint8_t version) {
  Disconnect p;
  if (version != kVersion5) {
    if (!c.empty()) return malformed("DISCONNECT with a body (MQTT 3.1.1)");
    return p;
  }
  if (!c.empty()) p.reason = c.byte("reason code");
  if (c.ok() && !c.empty()) {
    read_properties(c, "DISCONNECT", [&](uint8_t id, Cursor& pc) {
      switch (id) {
        case session_expiry: pc.u32("session expiry interval"); return true;
        case reason_string: pc.text("reason string"); return true;
        case server_reference: pc.text("server reference"); return true;
        case user_property: {
          UserProperties ignored;
          return read_user_property(pc, ignored), true;
        }
        default: return false;
      }
    });
  }
  if (c.ok() && !c.empty()) return malformed("DISCONNECT: bytes after its properties");
  return done(c, p);
}

void append_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
void append_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}
void append_string(std::string& out, std::string_view s) {
  append_u16(out, static_cast<uint16_t>(s.size()));
  out.append(s);
}
size_t varint_size(uint32_t v) { return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4; }

// A packet from its first byte and body.
std::string packet(uint8_t first, std::string_view body) {
  std::string out;
  out.reserve(body.size() + 5);
  out.push_back(static_cast<char>(first));
  append_varint(out, static_cast<uint32_t>(body.size()));
  out.append(body);
  return out;
}

std::string with_properties(std::string_view fixed, std::string_view properties) {
  std::string body(fixed);
  append_varint(body, static_cast<uint32_t>(properties.size()));
  body.append(properties);
  return body;
}

size_t user_properties_size(const UserProperties* props) {
  size_t n = 0;
  if (props) {
    for (const auto& [name, value] : *props) n += 1 + 2 + name.size() + 2 + value.size();
  }
  return n;
}

void append_user_properties(std::string& out, const UserProperties& props) {
  for (const auto& [name, value] : props) {
    out.push_back(static_cast<char>(user_property));
    append_string(out, name);
    append_string(out, value);
  }
}

size_t publish_body_size(uint8_t version, const PublishOut& p) {
  size_t n = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
  if (version == kVersion5) {
    const size_t props = user_properties_size(p.user_properties);
    n += varint_size(static_cast<uint32_t>(props)) + props;
  }
  return n;
}

}  // namespace

uint8_t connack_code_311(uint8_t reason5) {
  switch (reason5) {
    case reason::success: return 0;
    case reason::unsupported_version: return 1;
    case reason::client_id_not_valid: return 2;
    case reason::server_unavailable:
    case reason::server_busy:
    case reason::server_shutting_down: return 3;
    case reason::bad_credentials: return 4;
    default: return 5;  // not authorized
  }
}

std::string_view reason_text(uint8_t code) {
  switch (code) {
    case reason::success: return "success";
    case reason::unspecified: return "unspecified error";
    case reason::malformed: return "malformed packet";
    case reason::protocol_error: return "protocol error";
    case reason::implementation_specific: return "implementation specific error";
    case reason::unsupported_version: return "unsupported protocol version";
    case reason::client_id_not_valid: return "client identifier not valid";
    case reason::bad_credentials: return "bad user name or password";
    case reason::not_authorized: return "not authorized";
    case reason::server_unavailable: return "server unavailable";
    case reason::server_busy: return "server busy";
    case reason::server_shutting_down: return "server shutting down";
    case reason::bad_auth_method: return "bad authentication method";
    case reason::keep_alive_timeout: return "keep alive timeout";
    case reason::session_taken_over: return "session taken over";
    case reason::topic_filter_invalid: return "topic filter invalid";
    case reason::topic_name_invalid: return "topic name invalid";
    case reason::receive_maximum_exceeded: return "receive maximum exceeded";
    case reason::topic_alias_invalid: return "topic alias invalid";
    case reason::packet_too_large: return "packet too large";
    case reason::quota_exceeded: return "quota exceeded";
    case reason::qos_not_supported: return "QoS not supported";
    case reason::shared_subscriptions_not_supported: return "shared subscriptions not supported";
    case reason::subscription_ids_not_supported: return "subscription identifiers not supported";
    default: return "error";
  }
}

void append_varint(std::string& out, uint32_t value) {
  do {
    uint8_t b = value & 0x7F;
    value >>= 7;
    if (value) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (value);
}

void PacketReader::feed(std::string_view bytes) {
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

std::optional<PacketReader::Raw> PacketReader::next(PacketError& error, bool& failed) {
  failed = false;
  if (consumed_ > (64u << 10) && consumed_ * 2 > buffer_.size()) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  const std::string_view held(buffer_.data() + consumed_, buffer_.size() - consumed_);
  if (held.size() < 2) return std::nullopt;
  uint32_t length = 0;
  size_t header = 1;
  for (int i = 0;; ++i) {
    if (i == 4) {
      error = malformed("remaining length longer than 4 bytes");
      failed = true;
      return std::nullopt;
    }
    if (header >= held.size()) return std::nullopt;
    const auto b = static_cast<uint8_t>(held[header++]);
    length |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
    if (!(b & 0x80)) break;
  }
  if (header + length > max_packet_) {
    error = {reason::packet_too_large,
             "a packet of " + std::to_string(header + length) + " bytes; the limit is " + std::to_string(max_packet_)};
    failed = true;
    return std::nullopt;
  }
  if (held.size() < header + length) return std::nullopt;
  Raw raw{static_cast<uint8_t>(held[0]), held.substr(header, length)};
  consumed_ += header + length;
  return raw;
}

void PacketReader::release_idle_memory() {
  if (held() == 0) {
    std::string().swap(buffer_);
    consumed_ = 0;
  }
}

std::variant<Packet, PacketError> decode(uint8_t first, std::string_view body, uint8_t version) {
  const auto type = static_cast<PacketType>(first >> 4);
  const uint8_t flags = first & 0x0F;
  Cursor c(body);
  // Section 2.1.3: every packet but PUBLISH has fixed flags.
  auto flags_must_be = [&](uint8_t expected) -> std::optional<PacketError> {
    if (flags == expected) return std::nullopt;
    return malformed("packet type " + std::to_string(first >> 4) + " with flags " + std::to_string(flags) +
                     " (must be " + std::to_string(expected) + ")");
  };
  switch (type) {
    case PacketType::connect:
      if (auto e = flags_must_be(0)) return *e;
      return decode_connect(c);
    case PacketType::publish: return decode_publish(flags, c, version);
    case PacketType::puback:
    case PacketType::pubrec:
    case PacketType::pubcomp:
      if (auto e = flags_must_be(0)) return *e;
      return decode_ack(type, c, version);
    case PacketType::pubrel:
      if (auto e = flags_must_be(2)) return *e;
      return decode_ack(type, c, version);
    case PacketType::subscribe:
      if (auto e = flags_must_be(2)) return *e;
      return decode_subscribe(c, version);
    case PacketType::unsubscribe:
      if (auto e = flags_must_be(2)) return *e;
      return decode_unsubscribe(c, version);
    case PacketType::pingreq:
      if (auto e = flags_must_be(0)) return *e;
      if (!body.empty()) return malformed("PINGREQ with a body");
      return PingReq{};
    case PacketType::disconnect:
      if (auto e = flags_must_be(0)) return *e;
      return decode_disconnect(c, version);
    case PacketType::auth:
      if (version != kVersion5) return malformed("AUTH is an MQTT 5 packet");
      if (auto e = flags_must_be(0)) return *e;
      return Auth{};
    case PacketType::connack:
    case PacketType::suback:
    case PacketType::unsuback:
    case PacketType::pingresp:
      return protocol("packet type " + std::to_string(first >> 4) + " is sent by servers, not clients");
  }
  return malformed("packet type 0 is reserved");
}

std::string connack(uint8_t version, const ConnackOptions& o) {
  std::string fixed;
  fixed.push_back(o.session_present ? 1 : 0);
  if (version != kVersion5) {
    fixed.push_back(static_cast<char>(connack_code_311(o.reason)));
    return packet(0x20, fixed);
  }
  fixed.push_back(static_cast<char>(o.reason));
  std::string props;
  if (o.reason == reason::success) {
    props.push_back(static_cast<char>(maximum_qos));
    props.push_back(1);
    props.push_back(static_cast<char>(retain_available));
    props.push_back(1);
    // Neither is supported; the defaults say they are (3.2.2.3).
    props.push_back(static_cast<char>(subscription_ids_available));
    props.push_back(0);
    props.push_back(static_cast<char>(shared_available));
    props.push_back(0);
    if (o.maximum_packet_size) {
      props.push_back(static_cast<char>(maximum_packet_size));
      append_u32(props, o.maximum_packet_size);
    }
    if (o.receive_maximum) {
      props.push_back(static_cast<char>(receive_maximum));
      append_u16(props, o.receive_maximum);
    }
    if (o.session_expiry_zero) {
      props.push_back(static_cast<char>(session_expiry));
      append_u32(props, 0);
    }
    if (o.server_keep_alive) {
      props.push_back(static_cast<char>(server_keep_alive));
      append_u16(props, o.server_keep_alive);
    }
    if (!o.assigned_client_id.empty()) {
      props.push_back(static_cast<char>(assigned_client_id));
      append_string(props, o.assigned_client_id);
    }
  }
  if (!o.reason_string.empty()) {
    props.push_back(static_cast<char>(reason_string));
    append_string(props, o.reason_string.substr(0, 1024));
  }
  return packet(0x20, with_properties(fixed, props));
}

std::string suback(uint8_t version, uint16_t packet_id, const std::vector<uint8_t>& codes) {
  std::string fixed;
  append_u16(fixed, packet_id);
  std::string body = version == kVersion5 ? with_properties(fixed, {}) : fixed;
  for (uint8_t code : codes) {
    // 3.1.1 knows granted QoS and 0x80 only.
    body.push_back(static_cast<char>(version == kVersion5 || code <= 2 ? code : 0x80));
  }
  return packet(0x90, body);
}

std::string unsuback(uint8_t version, uint16_t packet_id, const std::vector<uint8_t>& codes) {
  std::string fixed;
  append_u16(fixed, packet_id);
  if (version != kVersion5) return packet(0xB0, fixed);
  std::string body = with_properties(fixed, {});
  for (uint8_t code : codes) body.push_back(static_cast<char>(code));
  return packet(0xB0, body);
}

std::string ack(uint8_t version, PacketType type, uint16_t packet_id, uint8_t reason_code) {
  std::string body;
  append_u16(body, packet_id);
  // MQTT 5: a success may leave the reason code out (3.4.2.1).
  if (version == kVersion5 && reason_code != reason::success) body.push_back(static_cast<char>(reason_code));
  const uint8_t flags = type == PacketType::pubrel ? 2 : 0;
  return packet(static_cast<uint8_t>((static_cast<uint8_t>(type) << 4) | flags), body);
}

std::string pingresp() { return std::string("\xD0\x00", 2); }

std::string disconnect(uint8_t reason_code, std::string_view why) {
  std::string fixed(1, static_cast<char>(reason_code));
  std::string props;
  if (!why.empty()) {
    props.push_back(static_cast<char>(reason_string));
    append_string(props, why.substr(0, 1024));
  }
  return packet(0xE0, with_properties(fixed, props));
}

size_t publish_size(uint8_t version, const PublishOut& p) {
  const size_t body = publish_body_size(version, p);
  return 1 + varint_size(static_cast<uint32_t>(body)) + body;
}

void append_publish(std::string& out, uint8_t version, const PublishOut& p) {
  const size_t body = publish_body_size(version, p);
  out.push_back(static_cast<char>(0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 1 : 0)));
  append_varint(out, static_cast<uint32_t>(body));
  append_string(out, p.topic);
  if (p.qos > 0) append_u16(out, p.packet_id);
  if (version == kVersion5) {
    append_varint(out, static_cast<uint32_t>(user_properties_size(p.user_properties)));
    if (p.user_properties) append_user_properties(out, *p.user_properties);
  }
  out.append(p.payload);
}

std::string encode_connect(const Connect& c) {
  std::string body;
  append_string(body, "MQTT");
  body.push_back(static_cast<char>(c.version));
  uint8_t flags = c.clean_start ? 0x02 : 0;
  if (c.will) flags |= 0x04 | (c.will->qos << 3) | (c.will->retain ? 0x20 : 0);
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;
  body.push_back(static_cast<char>(flags));
  append_u16(body, c.keep_alive);
  if (c.version == kVersion5) {
    std::string props;
    if (c.maximum_packet_size) {
      props.push_back(static_cast<char>(maximum_packet_size));
      append_u32(props, c.maximum_packet_size);
    }
    append_varint(body, static_cast<uint32_t>(props.size()));
    body += props;
  }
  append_string(body, c.client_id);
  if (c.will) {
    if (c.version == kVersion5) {
      std::string props;
      append_user_properties(props, c.will->user_properties);
      append_varint(body, static_cast<uint32_t>(props.size()));
      body += props;
    }
    append_string(body, c.will->topic);
    append_string(body, c.will->payload);
  }
  if (c.username) append_string(body, *c.username);
  if (c.password) append_string(body, *c.password);
  return packet(0x10, body);
}

std::string encode_publish(uint8_t version, const Publish& p) {
  std::string out;
  PublishOut o{p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, &p.user_properties};
  append_publish(out, version, o);
  return out;
}

std::string encode_subscribe(uint8_t version, const Subscribe& s) {
  std::string body;
  append_u16(body, s.packet_id);
  if (version == kVersion5) body.push_back(0);
  for (const auto& e : s.entries) {
    append_string(body, e.filter);
    uint8_t options = e.qos;
    if (version == kVersion5) {
      options |= (e.no_local ? 0x04 : 0) | (e.retain_as_published ? 0x08 : 0) | (e.retain_handling << 4);
    }
    body.push_back(static_cast<char>(options));
  }
  return packet(0x82, body);
}

std::string encode_unsubscribe(uint8_t version, const Unsubscribe& u) {
  std::string body;
  append_u16(body, u.packet_id);
  if (version == kVersion5) body.push_back(0);
  for (const auto& f : u.filters) append_string(body, f);
  return packet(0xA2, body);
}

}  // namespace kws::mqtt
