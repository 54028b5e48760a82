#include "core/hub/encodings.hpp"

#include "core/envelope.hpp"
#include "core/hub/topic_tree.hpp"
#include "core/mqtt_wire.hpp"
#include "core/util/text.hpp"
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

// A record as an MQTT PUBLISH. A key that cannot be an MQTT topic name
// (none, empty, a wildcard, not UTF-8) leaves the record out of the keyed
// mapping; a header whose name or value is not UTF-8 is left out of the
// user properties (MQTT strings are UTF-8).
bool append_mqtt(std::string& out, std::string_view topic, const Frame& frame, bool v5, bool kafka_mapping) {
  thread_local std::string name;
  name.clear();
  if (kafka_mapping) {
    name += "kafka/";
    name += topic;
    if (frame.key) {
      name += '/';
      name += *frame.key;
    }
  } else {
    if (!frame.key || !is_mqtt_topic_name(*frame.key)) return false;
    name = *frame.key;
  }
  if (!is_mqtt_topic_name(name)) return false;
  mqtt::UserProperties properties;
  if (v5) {
    for (const auto& h : frame.headers) {
      const std::string_view value = h.value ? std::string_view(*h.value) : std::string_view();
      // An MQTT string holds at most 65,535 bytes of UTF-8 without U+0000.
      if (h.name.size() > 65535 || value.size() > 65535 || !is_valid_utf8(h.name) || !is_valid_utf8(value) ||
          h.name.find('\0') != std::string::npos || value.find('\0') != std::string_view::npos) {
        continue;
      }
      properties.emplace_back(h.name, std::string(value));
    }
  }
  mqtt::PublishOut publish;
  publish.topic = name;
  publish.payload = frame.value ? std::string_view(*frame.value) : std::string_view();
  publish.user_properties = &properties;
  mqtt::append_publish(out, v5 ? mqtt::kVersion5 : mqtt::kVersion311, publish);
  return true;
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
    case Encoding::mqtt311: return append_mqtt(out, topic, frame, false, false);
    case Encoding::mqtt311_kafka: return append_mqtt(out, topic, frame, false, true);
    case Encoding::mqtt5: return append_mqtt(out, topic, frame, true, false);
    case Encoding::mqtt5_kafka: return append_mqtt(out, topic, frame, true, true);
  }
  return false;
}

}  // namespace kws
