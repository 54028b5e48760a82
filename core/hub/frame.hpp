#pragma once
// One Kafka message as the bridge sends it: encoded once per wire format,
// already framed as a complete WebSocket frame, and shared (immutable) by
// every session that gets it. A session writes many of them back to back in
// one socket write.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

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

// kafka-binary's one-byte topic length limits the topic name.
inline constexpr size_t kMaxBinaryTopicLength = 255;

}  // namespace kws
