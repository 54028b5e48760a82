#include "core/envelope.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/text.hpp"

namespace kws {

std::string_view timestamp_type_name(TimestampType type) {
  switch (type) {
    case TimestampType::create_time: return "create";
    case TimestampType::log_append_time: return "log_append";
    case TimestampType::none: break;
  }
  return "none";
}

MessageView Message::view() const {
  MessageView v;
  v.topic = topic;
  v.partition = partition.value_or(-1);
  v.offset = offset.value_or(-1);
  v.timestamp_ms = timestamp_ms.value_or(-1);
  v.timestamp_type = timestamp_type;
  if (key) v.key = std::string_view(*key);
  if (value) v.value = std::string_view(*value);
  for (const auto& h : headers) {
    HeaderView hv{h.name, std::nullopt};
    if (h.value) hv.value = std::string_view(*h.value);
    v.headers.push_back(hv);
  }
  return v;
}

namespace {

// Writes "name":"text" or, for bytes that are not UTF-8,
// "name":"<base64>","name_encoding":"base64"; null stays null.
void append_bytes_field(std::string& out, std::string_view name,
                        const std::optional<std::string_view>& bytes) {
  out += '"';
  out += name;
  out += "\":";
  if (!bytes) {
    out += "null";
    return;
  }
  if (is_valid_utf8(*bytes)) {
    out += '"';
    append_json_escaped(out, *bytes);
    out += '"';
    return;
  }
  out += '"';
  out += base64_encode(*bytes);
  out += "\",\"";
  out += name;
  out += "_encoding\":\"base64\"";
}

}  // namespace

void append_envelope_json(std::string& out, const MessageView& m) {
  out += "{\"topic\":\"";
  append_json_escaped(out, m.topic);
  out += "\",\"partition\":";
  out += std::to_string(m.partition);
  out += ",\"offset\":";
  out += std::to_string(m.offset);
  out += ",\"timestamp\":";
  if (m.timestamp_type == TimestampType::none) {
    out += "null";
  } else {
    out += std::to_string(m.timestamp_ms);
  }
  out += ",\"timestamp_type\":\"";
  out += timestamp_type_name(m.timestamp_type);
  out += "\",";
  append_bytes_field(out, "key", m.key);
  out += ",\"headers\":[";
  bool first = true;
  for (const auto& h : m.headers) {
    if (!first) out += ',';
    first = false;
    out += "{\"name\":\"";
    // Header names are strings in Kafka's protocol, but nothing stops a
    // producer from putting arbitrary bytes there; keep them lossless.
    if (is_valid_utf8(h.name)) {
      append_json_escaped(out, h.name);
      out += "\",";
    } else {
      out += base64_encode(h.name);
      out += "\",\"name_encoding\":\"base64\",";
    }
    append_bytes_field(out, "value", h.value);
    out += '}';
  }
  out += "],";
  append_bytes_field(out, "message", m.value);
  out += '}';
}

std::string envelope_to_json(const MessageView& message) {
  std::string out;
  append_envelope_json(out, message);
  return out;
}

namespace {

using nlohmann::json;

std::optional<std::string> decode_bytes_field(const json& object, const std::string& name,
                                              const std::string& where) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw Error(where + "\"" + name + "\" must be a string or null");
  std::string text = it->get<std::string>();
  auto enc = object.find(name + "_encoding");
  if (enc == object.end() || enc->is_null()) return text;
  if (!enc->is_string()) throw Error(where + "\"" + name + "_encoding\" must be a string");
  const auto& encoding = enc->get_ref<const std::string&>();
  if (encoding == "base64") {
    try {
      return base64_decode(text);
    } catch (const Error& e) {
      throw Error(where + "\"" + name + "\": " + e.what());
    }
  }
  if (encoding == "utf8" || encoding == "utf-8") return text;
  throw Error(where + "\"" + name + "_encoding\" must be \"base64\" or \"utf8\", not \"" +
              encoding + "\"");
}

}  // namespace

Message envelope_from_json(std::string_view json_text) {
  json doc = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw Error("not valid JSON");
  if (!doc.is_object()) throw Error("an envelope must be a JSON object");

  Message m;
  if (auto it = doc.find("topic"); it != doc.end() && !it->is_null()) {
    if (!it->is_string()) throw Error("\"topic\" must be a string");
    m.topic = it->get<std::string>();
  }
  if (auto it = doc.find("partition"); it != doc.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < -1 || it->get<int64_t>() > INT32_MAX) {
      throw Error("\"partition\" must be an integer >= -1");
    }
    if (it->get<int64_t>() >= 0) m.partition = it->get<int32_t>();
  }
  if (auto it = doc.find("offset"); it != doc.end() && !it->is_null()) {
    if (!it->is_number_integer()) throw Error("\"offset\" must be an integer");
    m.offset = it->get<int64_t>();
  }
  if (auto it = doc.find("timestamp"); it != doc.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      throw Error("\"timestamp\" must be a non-negative integer (milliseconds)");
    }
    m.timestamp_ms = it->get<int64_t>();
    m.timestamp_type = TimestampType::create_time;
  }
  if (auto it = doc.find("timestamp_type"); it != doc.end() && !it->is_null()) {
    if (!it->is_string()) throw Error("\"timestamp_type\" must be a string");
    const auto& t = it->get_ref<const std::string&>();
    if (t == "create") {
      m.timestamp_type = TimestampType::create_time;
    } else if (t == "log_append") {
      m.timestamp_type = TimestampType::log_append_time;
    } else if (t == "none") {
      m.timestamp_type = TimestampType::none;
    } else {
      throw Error("\"timestamp_type\" must be \"create\", \"log_append\" or \"none\"");
    }
  }
  m.key = decode_bytes_field(doc, "key", "");
  m.value = decode_bytes_field(doc, "message", "");

  if (auto it = doc.find("headers"); it != doc.end() && !it->is_null()) {
    if (it->is_object()) {
      // Convenience for hand-written input: {"name": "value", ...}.
      for (const auto& [name, value] : it->items()) {
        if (!value.is_string() && !value.is_null()) {
          throw Error("header \"" + name + "\" must be a string or null");
        }
        m.headers.push_back({name, value.is_null() ? std::nullopt
                                                   : std::optional<std::string>(value.get<std::string>())});
      }
    } else if (it->is_array()) {
      size_t index = 0;
      for (const auto& h : *it) {
        std::string where = "headers[" + std::to_string(index++) + "]: ";
        if (!h.is_object()) throw Error(where + "must be an object {\"name\":..,\"value\":..}");
        auto name = decode_bytes_field(h, "name", where);
        if (!name) throw Error(where + "\"name\" is required");
        m.headers.push_back({*name, decode_bytes_field(h, "value", where)});
      }
    } else {
      throw Error("\"headers\" must be an array of {\"name\",\"value\"} objects or an object");
    }
  }
  return m;
}

}  // namespace kws
