#pragma once
// The encodings a FrameBatch can build: each appends one message's complete
// wire bytes (framing included) to a batch. Adding a protocol (SSE, MQTT
// PUBLISH) means adding an Encoding and its function here; the hub, the
// rings and the sessions stay as they are.
#include <string>
#include <string_view>

#include "core/hub/frame.hpp"

namespace kws {

// Appends `frame` encoded as `encoding`; false when this encoding cannot
// carry it (nothing appended).
bool append_encoded(std::string& out, Encoding encoding, std::string_view topic, const Frame& frame);

// A reply's JSON (one line, beginning {"type":"NAME") as a Server-Sent
// Event named NAME.
std::string sse_event(std::string_view json);

// kafka-binary's one-byte topic length limits the topic name.
inline constexpr size_t kMaxBinaryTopicLength = 255;

}  // namespace kws
