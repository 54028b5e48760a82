#include "core/hub/encodings.hpp"

#include "core/envelope.hpp"
#include "core/ws_frame.hpp"

namespace kws {

namespace {

void append_kafka_text(std::string& out, std::string_view topic, const Frame& frame) {
  // The envelope's length goes into the frame header before it: encode it
  // aside once per message (not per session), then copy.
  thread_local std::string envelope;
  envelope.clear();
  append_envelope_json(envelope, frame.view(topic));
  ws::append_frame_header(out, ws::Opcode::text, envelope.size());
  out += envelope;
  if (envelope.capacity() > (1 << 20)) std::string().swap(envelope);  // one huge message must not pin memory
}

bool append_kafka_binary(std::string& out, std::string_view topic, const Frame& frame) {
  if (topic.size() > kMaxBinaryTopicLength) return false;
  const size_t value_size = frame.value ? frame.value->size() : 0;
  ws::append_frame_header(out, ws::Opcode::binary, 1 + topic.size() + value_size);
  out += static_cast<char>(topic.size());
  out.append(topic);
  if (frame.value) out.append(*frame.value);
  return true;
}

void append_sse(std::string& out, std::string_view topic, const Frame& frame) {
  // The envelope is one line (no raw newline: JSON escapes it), so one
  // data field carries it whole.
  out += "data: ";
  append_envelope_json(out, frame.view(topic));
  out += "\n\n";
}

}  // namespace

std::string sse_event(std::string_view json) {
  // Replies begin {"type":"NAME": NAME becomes the event's name, so a page
  // listens for what it wants (addEventListener("subscribed", ...)) and
  // onmessage gets messages only.
  constexpr std::string_view prefix = "{\"type\":\"";
  std::string_view name = "kws";
  if (json.substr(0, prefix.size()) == prefix) {
    const size_t end = json.find('"', prefix.size());
    if (end != std::string_view::npos) name = json.substr(prefix.size(), end - prefix.size());
  }
  std::string out;
  out.reserve(json.size() + name.size() + 16);
  out += "event: ";
  out += name;
  out += "\ndata: ";
  out += json;
  out += "\n\n";
  return out;
}

bool append_encoded(std::string& out, Encoding encoding, std::string_view topic, const Frame& frame) {
  switch (encoding) {
    case Encoding::kafka_text:
      append_kafka_text(out, topic, frame);
      return true;
    case Encoding::kafka_binary:
      return append_kafka_binary(out, topic, frame);
    case Encoding::sse:
      append_sse(out, topic, frame);
      return true;
  }
  return false;
}

}  // namespace kws
