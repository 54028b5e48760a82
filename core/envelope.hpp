#pragma once
// The kws envelope: the one JSON shape for a Kafka message, used by
// `kws tail -J`, `kws send -J` and the WebSocket bridge. docs/PROTOCOL.md is
// its specification; keep the two in step.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kws {

enum class TimestampType { none, create_time, log_append_time };

// Spelling used in the envelope's "timestamp_type" field.
std::string_view timestamp_type_name(TimestampType type);

struct HeaderView {
  std::string_view name;
  std::optional<std::string_view> value;  // Kafka allows null header values
};

// A message as seen by formatters: views into bytes owned elsewhere (a
// librdkafka message, or an owning Message), so output costs no copies.
struct MessageView {
  std::string_view topic;
  int32_t partition = -1;
  int64_t offset = -1;
  int64_t timestamp_ms = -1;
  TimestampType timestamp_type = TimestampType::none;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  std::vector<HeaderView> headers;
};

struct Header {
  std::string name;
  std::optional<std::string> value;
  bool operator==(const Header& other) const { return name == other.name && value == other.value; }
};

// An owning message, as decoded from an envelope line.
struct Message {
  std::string topic;                 // empty when the envelope had none
  std::optional<int32_t> partition;  // absent: let the partitioner choose
  std::optional<int64_t> offset;
  std::optional<int64_t> timestamp_ms;
  TimestampType timestamp_type = TimestampType::none;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<Header> headers;

  MessageView view() const;
};

// Appends one envelope (a single line of JSON, no trailing newline) to out.
void append_envelope_json(std::string& out, const MessageView& message);
std::string envelope_to_json(const MessageView& message);

// Parses one envelope. Throws kws::Error with a message that names the
// offending field.
Message envelope_from_json(std::string_view json_text);

}  // namespace kws
