#pragma once
// One Kafka message as the bridge sends it: encoded once per wire format,
// already framed as a complete WebSocket frame, and shared (immutable) by
// every session that gets it. A session writes many of them back to back in
// one socket write.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"

namespace kws {

enum class WireFormat { text, binary };

// Appends the header of an unmasked, final server->client WebSocket frame
// (RFC 6455 section 5.2): opcode 0x1 text or 0x2 binary, then the length.
void append_ws_frame_header(std::string& out, bool binary, size_t payload_size);

// A complete text frame around `payload`.
std::string ws_text_frame(std::string_view payload);

struct Frame {
  int32_t partition = -1;
  int64_t offset = -1;
  int64_t timestamp_ms = -1;
  std::string text;    // text frame: the kws envelope (docs/PROTOCOL.md)
  std::string binary;  // binary frame: [topic length][topic][value]; empty when the topic is over 255 bytes
  const std::string& bytes(WireFormat format) const { return format == WireFormat::text ? text : binary; }
  size_t memory() const { return sizeof(Frame) + text.capacity() + binary.capacity(); }
};
using FramePtr = std::shared_ptr<const Frame>;

FramePtr encode_frame(const MessageView& message);

// Frames of one topic handed to subscribers together: each format's bytes
// back to back, so a session queues one shared buffer per batch (and its
// socket writes it straight from here) instead of one entry per message.
struct FrameBatch {
  std::vector<FramePtr> frames;
  std::string text;          // every frame's text bytes, in order
  std::string binary;        // every frame's binary bytes (frames without them are left out)
  size_t binary_frames = 0;  // frames present in `binary`
  const std::string& bytes(WireFormat format) const { return format == WireFormat::text ? text : binary; }
  size_t count(WireFormat format) const { return format == WireFormat::text ? frames.size() : binary_frames; }
};
using FrameBatchPtr = std::shared_ptr<const FrameBatch>;

FrameBatchPtr make_batch(const FramePtr* frames, size_t count);
// Cuts `frames` into batches of at most `max_bytes` of text each (at least
// one frame each), so that a slow client's budget and drop-oldest work on
// pieces much smaller than the budget.
std::vector<FrameBatchPtr> make_batches(const std::vector<FramePtr>& frames, size_t max_bytes);

// kafka-binary's one-byte topic length limits the topic name.
inline constexpr size_t kMaxBinaryTopicLength = 255;

}  // namespace kws
