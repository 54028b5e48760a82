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

}  // namespace

bool append_encoded(std::string& out, Encoding encoding, std::string_view topic, const Frame& frame) {
  switch (encoding) {
    case Encoding::kafka_text:
      append_kafka_text(out, topic, frame);
      return true;
    case Encoding::kafka_binary:
      return append_kafka_binary(out, topic, frame);
  }
  return false;
}

}  // namespace kws
