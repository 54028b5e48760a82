#pragma once
// The kws envelope: the JSON codec for the message model (message.hpp), used
// by `kws tail -J`, `kws send -J` and the WebSocket bridge. docs/PROTOCOL.md
// is its specification; keep the two in step.
#include <optional>
#include <string>
#include <string_view>

#include "core/message.hpp"

namespace kws {

// Appends one envelope (a single line of JSON, no trailing newline) to out.
void append_envelope_json(std::string& out, const MessageView& message);
std::string envelope_to_json(const MessageView& message);

// The outcome of decoding one envelope: a message, or why not. A server
// rejects one bad frame with this and carries on; nothing is thrown.
struct DecodedEnvelope {
  std::optional<Message> message;
  std::string error;  // set when message is empty; names the field and, for bad JSON, the column
  explicit operator bool() const { return message.has_value(); }
};
DecodedEnvelope decode_envelope(std::string_view json_text) noexcept;

// decode_envelope for callers whose error path is an exception: throws
// kws::Error with the same message.
Message envelope_from_json(std::string_view json_text);

}  // namespace kws
