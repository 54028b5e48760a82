#pragma once
// Kafka messages as the hub hands them to sessions. A Frame is one message,
// owned and immutable, kept in the hub's rings. A FrameBatch is the frames
// of one topic that one poll brought, shared by every session that gets
// them; it builds its bytes once per encoding (kafka-text, kafka-binary,
// and whatever a later protocol adds), on first use by the first session
// that needs that encoding, so a thousand sessions cost one encoding and
// every socket writes straight from the same bytes.
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"

namespace kws {

// How a session wants messages on its wire: each names a complete framing
// (WebSocket frames holding the kws envelope, ...), see encodings.hpp.
enum class Encoding : uint8_t {
  kafka_text,    // WebSocket text frames holding the kws envelope (docs/PROTOCOL.md)
  kafka_binary,  // WebSocket binary frames, [topic length][topic][value] (kafka-websocket)
  sse,           // Server-Sent Events: `data: <kws envelope>` and a blank line per message
  // MQTT PUBLISH packets (QoS 0), raw: the link frames them (a WebSocket
  // binary frame per write, or nothing on TCP). The topic name is the
  // record's key (the MQTT topics' Kafka topic), or `kafka/<topic>/<key>`
  // (any other Kafka topic); MQTT 5 carries the headers as user properties.
  mqtt311,
  mqtt311_kafka,
  mqtt5,
  mqtt5_kafka,
};
inline constexpr size_t kEncodingCount = 7;

struct Frame {
  int32_t partition = -1;
  int64_t offset = -1;
  int64_t timestamp_ms = -1;
  TimestampType timestamp_type = TimestampType::none;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<Header> headers;

  // The message, with the topic its batch or ring belongs to.
  MessageView view(std::string_view topic) const;
  // Bytes kept for it (the rings are bounded by this).
  size_t memory() const;
  // About as many bytes as its largest encoding, without encoding it:
  // batches are cut by this.
  size_t wire_estimate() const;
};
using FramePtr = std::shared_ptr<const Frame>;

// Copies a message out of a reader's buffers.
FramePtr make_frame(const MessageView& message);

class FrameBatch {
 public:
  FrameBatch(std::shared_ptr<const std::string> topic, std::vector<FramePtr> frames)
      : topic_(std::move(topic)), frames_(std::move(frames)) {}

  const std::string& topic() const { return *topic_; }
  const std::shared_ptr<const std::string>& topic_name() const { return topic_; }
  const std::vector<FramePtr>& frames() const { return frames_; }

  // Every frame in `encoding`, back to back; built on the first call for
  // that encoding (from any thread), then shared.
  const std::string& bytes(Encoding encoding) const;
  // How many frames `bytes(encoding)` holds (an encoding may leave some out:
  // kafka-binary cannot name a topic over 255 bytes).
  size_t count(Encoding encoding) const;

 private:
  struct Encoded {
    std::once_flag built;
    std::string bytes;
    size_t count = 0;
  };
  const Encoded& encoded(Encoding encoding) const;

  std::shared_ptr<const std::string> topic_;
  std::vector<FramePtr> frames_;
  mutable std::array<Encoded, kEncodingCount> encoded_;
};
using FrameBatchPtr = std::shared_ptr<const FrameBatch>;

// Cuts `frames` into batches of about `max_bytes` each (wire_estimate; at
// least one frame each), so that a slow client's budget and drop-oldest work
// on pieces much smaller than the budget.
std::vector<FrameBatchPtr> make_batches(const std::shared_ptr<const std::string>& topic,
                                        const std::vector<FramePtr>& frames, size_t max_bytes);

}  // namespace kws
