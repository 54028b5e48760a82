#pragma once
// The message model every part of kws shares: what a Kafka record is, as
// plain values. No JSON, no librdkafka, no sockets: the envelope codec
// (envelope.hpp), the Kafka adapters and the hub all speak these types.
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

// An owning message, as decoded from an envelope or a client frame.
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

}  // namespace kws
