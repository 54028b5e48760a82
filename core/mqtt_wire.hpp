#pragma once
// MQTT 3.1.1 and 5.0 control packets as pure functions over bytes: the one
// MQTT codec of kws. kws serve's MQTT sessions read client packets and write
// their answers with it (core/mqtt/), and the hub's encodings write PUBLISH
// packets with it (core/hub/encodings.*), once per batch. No sockets, no
// session state: what a packet may say in a given session is the caller's
// rule; what the specification says every packet must be is checked here.
// Fuzzed by tests/fuzz/fuzz_mqtt_packets.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kws::mqtt {

enum class PacketType : uint8_t {
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
  auth = 15,
};

inline constexpr uint8_t kVersion311 = 4;
inline constexpr uint8_t kVersion5 = 5;

// MQTT 5 reason codes kws sends (section 2.4); 3.1.1 has fewer, and
// connack_code() says which of its CONNACK codes stands for one.
namespace reason {
inline constexpr uint8_t success = 0x00;
inline constexpr uint8_t granted_qos1 = 0x01;
inline constexpr uint8_t disconnect_with_will = 0x04;
inline constexpr uint8_t no_subscription_existed = 0x11;
inline constexpr uint8_t unspecified = 0x80;
inline constexpr uint8_t malformed = 0x81;
inline constexpr uint8_t protocol_error = 0x82;
inline constexpr uint8_t implementation_specific = 0x83;
inline constexpr uint8_t unsupported_version = 0x84;
inline constexpr uint8_t client_id_not_valid = 0x85;
inline constexpr uint8_t bad_credentials = 0x86;
inline constexpr uint8_t not_authorized = 0x87;
inline constexpr uint8_t server_unavailable = 0x88;
inline constexpr uint8_t server_busy = 0x89;
inline constexpr uint8_t server_shutting_down = 0x8B;
inline constexpr uint8_t bad_auth_method = 0x8C;
inline constexpr uint8_t keep_alive_timeout = 0x8D;
inline constexpr uint8_t session_taken_over = 0x8E;
inline constexpr uint8_t topic_filter_invalid = 0x8F;
inline constexpr uint8_t topic_name_invalid = 0x90;
inline constexpr uint8_t receive_maximum_exceeded = 0x93;
inline constexpr uint8_t topic_alias_invalid = 0x94;
inline constexpr uint8_t packet_too_large = 0x95;
inline constexpr uint8_t quota_exceeded = 0x97;
inline constexpr uint8_t qos_not_supported = 0x9B;
inline constexpr uint8_t shared_subscriptions_not_supported = 0x9E;
inline constexpr uint8_t subscription_ids_not_supported = 0xA1;
}  // namespace reason

// The 3.1.1 CONNACK return code closest to a 5.0 reason code.
uint8_t connack_code_311(uint8_t reason5);
// A reason code in words, for logs and reason strings.
std::string_view reason_text(uint8_t code);

using UserProperties = std::vector<std::pair<std::string, std::string>>;

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  UserProperties user_properties;  // MQTT 5
  uint32_t delay_seconds = 0;      // MQTT 5 Will Delay Interval
};

struct Connect {
  uint8_t version = kVersion311;
  bool clean_start = true;
  uint16_t keep_alive = 0;  // seconds; 0: none
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  // MQTT 5 properties
  uint32_t session_expiry = 0;
  uint16_t receive_maximum = 65535;
  uint32_t maximum_packet_size = 0;  // 0: no limit
  bool has_auth_method = false;      // extended authentication asked for (kws has none)
};

struct Publish {
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  std::string topic;
  uint16_t packet_id = 0;  // qos > 0
  std::string payload;
  UserProperties user_properties;  // MQTT 5
  uint16_t topic_alias = 0;        // MQTT 5; kws allows none
};

struct SubscribeEntry {
  std::string filter;
  uint8_t qos = 0;
  bool no_local = false;             // MQTT 5
  bool retain_as_published = false;  // MQTT 5
  uint8_t retain_handling = 0;       // MQTT 5: 0 send retained, 1 only if new, 2 never
};

struct Subscribe {
  uint16_t packet_id = 0;
  std::vector<SubscribeEntry> entries;
  bool has_subscription_id = false;  // MQTT 5
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  std::vector<std::string> filters;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP.
struct Ack {
  PacketType type = PacketType::puback;
  uint16_t packet_id = 0;
  uint8_t reason = reason::success;
};

struct PingReq {};

struct Disconnect {
  uint8_t reason = reason::success;
};

struct Auth {};

using Packet = std::variant<Connect, Publish, Subscribe, Unsubscribe, Ack, PingReq, Disconnect, Auth>;

// Why bytes are not a packet: the MQTT 5 reason code to disconnect with
// (malformed, protocol error, packet too large) and what was wrong.
struct PacketError {
  uint8_t reason = reason::malformed;
  std::string why;
};

// Splits a byte stream into packets. Bytes arrive in any pieces (TCP reads,
// WebSocket frames); a packet's remaining length is checked against the
// limit as soon as it is known, so an oversized packet is refused before it
// is held.
class PacketReader {
 public:
  explicit PacketReader(size_t max_packet) : max_packet_(max_packet) {}

  struct Raw {
    uint8_t first = 0;       // type and flags
    std::string_view body;   // valid until the next call
  };
  // Appends `bytes` to what is held.
  void feed(std::string_view bytes);
  // The next whole packet, or nullopt when more bytes are needed; an error
  // ends the stream (the caller closes the connection).
  std::optional<Raw> next(PacketError& error, bool& failed);
  size_t held() const { return buffer_.size() - consumed_; }
  // Gives back the buffer's memory when nothing is held.
  void release_idle_memory();

 private:
  std::string buffer_;
  size_t consumed_ = 0;
  const size_t max_packet_;
};

// One packet's body as its type says. `version` is the session's (CONNECT
// is read without it); the reader's first byte carries type and flags.
std::variant<Packet, PacketError> decode(uint8_t first, std::string_view body, uint8_t version);

// ---- what a server writes ----------------------------------------------------

struct ConnackOptions {
  bool session_present = false;
  uint8_t reason = reason::success;  // MQTT 5 code; 3.1.1 gets connack_code_311()
  // MQTT 5 properties
  uint32_t maximum_packet_size = 0;  // 0: none sent
  uint16_t receive_maximum = 0;      // 0: none sent (65,535)
  uint16_t server_keep_alive = 0;    // 0: none sent
  bool session_expiry_zero = false;  // say Session Expiry Interval 0: no state outlives the connection
  std::string assigned_client_id;
  std::string reason_string;
};
std::string connack(uint8_t version, const ConnackOptions& options);
std::string suback(uint8_t version, uint16_t packet_id, const std::vector<uint8_t>& codes);
std::string unsuback(uint8_t version, uint16_t packet_id, const std::vector<uint8_t>& codes);
std::string ack(uint8_t version, PacketType type, uint16_t packet_id, uint8_t reason = reason::success);
std::string pingresp();
// MQTT 5 only (3.1.1 has no server DISCONNECT: the server just closes).
std::string disconnect(uint8_t reason, std::string_view reason_string = {});

// Appends a PUBLISH packet. `packet_id` is used for qos > 0. MQTT 5
// carries `user_properties`; 3.1.1 has nowhere to put them.
struct PublishOut {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;
  const UserProperties* user_properties = nullptr;
};
void append_publish(std::string& out, uint8_t version, const PublishOut& publish);
// The bytes append_publish would write, without writing them.
size_t publish_size(uint8_t version, const PublishOut& publish);

// ---- what a client writes (tests, kws bench, the fuzz seeds) ----------------

std::string encode_connect(const Connect& connect);
std::string encode_publish(uint8_t version, const Publish& publish);
std::string encode_subscribe(uint8_t version, const Subscribe& subscribe);
std::string encode_unsubscribe(uint8_t version, const Unsubscribe& unsubscribe);

// Remaining Length, the variable byte integer (1-4 bytes).
void append_varint(std::string& out, uint32_t value);
inline constexpr uint32_t kMaxRemainingLength = 268435455;

}  // namespace kws::mqtt
