#include "core/envelope.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iterator>

#include "core/json_parse.hpp"
#include "core/util/error.hpp"
#include "core/util/text.hpp"

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

// Each step returns false with `error` set; nothing below throws, so a server
// can reject one bad frame cheaply and carry on.
struct Decoder {
  std::string error;

  bool fail(std::string why) {
    error = std::move(why);
    return false;
  }

  bool bytes_field(const json& object, const std::string& name, const std::string& where,
                   std::optional<std::string>& out) {
    auto it = object.find(name);
    if (it == object.end() || it->is_null()) return true;
    if (!it->is_string()) return fail(where + "\"" + name + "\" must be a string or null");
    const auto& text = it->get_ref<const std::string&>();
    auto enc = object.find(name + "_encoding");
    if (enc == object.end() || enc->is_null()) {
      out = text;
      return true;
    }
    if (!enc->is_string()) return fail(where + "\"" + name + "_encoding\" must be a string");
    const auto& encoding = enc->get_ref<const std::string&>();
    if (encoding == "base64") {
      std::string why;
      out = try_base64_decode(text, why);
      if (!out) return fail(where + "\"" + name + "\": " + why);
      return true;
    }
    if (encoding == "utf8" || encoding == "utf-8") {
      out = text;
      return true;
    }
    return fail(where + "\"" + name + "_encoding\" must be \"base64\" or \"utf8\", not \"" + encoding + "\"");
  }

  // An integer field within [min, max]; nlohmann keeps numbers above
  // INT64_MAX as unsigned, so both representations are range-checked.
  bool integer_field(const json& value, int64_t min, int64_t max, int64_t& out) {
    if (value.is_number_unsigned()) {
      uint64_t u = value.get<uint64_t>();
      if (u > static_cast<uint64_t>(max)) return false;
      out = static_cast<int64_t>(u);
      return true;
    }
    if (!value.is_number_integer()) return false;
    int64_t v = value.get<int64_t>();
    if (v < min || v > max) return false;
    out = v;
    return true;
  }

  // kcat -J names the value "payload" and the time "ts": `found` is the
  // field under either name, nullptr when neither is there. Both at once is
  // ambiguous and refused.
  bool either(const json& doc, const char* ours, const char* kcats, const json*& found) {
    auto a = doc.find(ours);
    auto b = doc.find(kcats);
    if (a != doc.end() && b != doc.end()) {
      return fail(std::string("both \"") + ours + "\" and \"" + kcats + "\" (kcat's name for it) are given; use one");
    }
    found = a != doc.end() ? &*a : b != doc.end() ? &*b : nullptr;
    return true;
  }

  // A missing value must never turn into a tombstone: that deletes the key on
  // a compacted topic. So an envelope without one is refused, naming what it
  // has instead (a typo such as "mesage", or another tool's "value").
  bool no_value(const json& doc, const std::vector<std::string_view>& also_known) {
    static const std::string_view known[] = {
        "topic", "partition", "offset", "timestamp", "timestamp_type", "key", "key_encoding", "headers",
        "message", "message_encoding", "payload", "ts", "tstype", "broker"};
    std::string unknown;
    for (const auto& item : doc.items()) {
      const std::string& name = item.key();
      auto is = [&name](std::string_view k) { return k == name; };
      if (std::any_of(std::begin(known), std::end(known), is) ||
          std::any_of(also_known.begin(), also_known.end(), is)) {
        continue;
      }
      std::string quoted = json(name).dump(-1, ' ', false, json::error_handler_t::replace);
      unknown += (unknown.empty() ? "" : ", ") + quoted;
    }
    std::string why = "no \"message\" field (use \"message\": null for a tombstone)";
    if (!unknown.empty()) why += "; unknown fields: " + unknown;
    return fail(why);
  }

  // kcat's "tstype" words; only a producer's time is worth keeping.
  static TimestampType kcat_timestamp_type(const std::string& word) {
    if (word == "create") return TimestampType::create_time;
    if (word == "logappend") return TimestampType::log_append_time;
    return TimestampType::none;
  }

  bool decode(const json& doc, Message& m, const std::vector<std::string_view>& also_known) {
    if (!doc.is_object()) return fail("an envelope must be a JSON object");
    const json* value = nullptr;
    if (!either(doc, "message", "payload", value)) return false;
    if (!value) return no_value(doc, also_known);
    if (doc.contains("payload") && doc.contains("message_encoding")) {
      return fail("\"message_encoding\" applies to \"message\", not to kcat's \"payload\"");
    }
    if (auto it = doc.find("topic"); it != doc.end() && !it->is_null()) {
      if (!it->is_string()) return fail("\"topic\" must be a string");
      m.topic = it->get<std::string>();
    }
    if (auto it = doc.find("partition"); it != doc.end() && !it->is_null()) {
      int64_t p = 0;
      if (!integer_field(*it, -1, INT32_MAX, p)) return fail("\"partition\" must be an integer from -1 to 2147483647");
      if (p >= 0) m.partition = static_cast<int32_t>(p);
    }
    if (auto it = doc.find("offset"); it != doc.end() && !it->is_null()) {
      int64_t o = 0;
      if (!integer_field(*it, INT64_MIN, INT64_MAX, o)) return fail("\"offset\" must be a 64-bit integer");
      m.offset = o;
    }
    const json* timestamp = nullptr;
    if (!either(doc, "timestamp", "ts", timestamp)) return false;
    if (timestamp && !timestamp->is_null()) {
      const char* name = doc.contains("ts") ? "ts" : "timestamp";
      int64_t t = 0;
      if (!integer_field(*timestamp, 0, INT64_MAX, t)) {
        return fail(std::string("\"") + name + "\" must be a non-negative integer (milliseconds)");
      }
      m.timestamp_ms = t;
      m.timestamp_type = TimestampType::create_time;
    }
    const json* type = nullptr;
    if (!either(doc, "timestamp_type", "tstype", type)) return false;
    if (type && !type->is_null()) {
      const bool kcat = doc.contains("tstype");
      if (!type->is_string()) return fail(kcat ? "\"tstype\" must be a string" : "\"timestamp_type\" must be a string");
      const auto& t = type->get_ref<const std::string&>();
      if (kcat) {
        m.timestamp_type = kcat_timestamp_type(t);
      } else if (t == "create") {
        m.timestamp_type = TimestampType::create_time;
      } else if (t == "log_append") {
        m.timestamp_type = TimestampType::log_append_time;
      } else if (t == "none") {
        m.timestamp_type = TimestampType::none;
      } else {
        return fail("\"timestamp_type\" must be \"create\", \"log_append\" or \"none\"");
      }
    }
    if (!bytes_field(doc, "key", "", m.key)) return false;
    if (!bytes_field(doc, doc.contains("payload") ? "payload" : "message", "", m.value)) return false;

    auto it = doc.find("headers");
    if (it == doc.end() || it->is_null()) return true;
    if (it->is_object()) {
      // Convenience for hand-written input: {"name": "value", ...}.
      for (const auto& [name, value] : it->items()) {
        if (!value.is_string() && !value.is_null()) return fail("header \"" + name + "\" must be a string or null");
        m.headers.push_back(
            {name, value.is_null() ? std::nullopt : std::optional<std::string>(value.get<std::string>())});
      }
      return true;
    }
    if (!it->is_array()) return fail("\"headers\" must be an array of {\"name\",\"value\"} objects or an object");
    if (!it->empty() && !it->front().is_object()) return kcat_headers(*it, m);
    size_t index = 0;
    for (const auto& h : *it) {
      std::string where = "headers[" + std::to_string(index++) + "]: ";
      if (!h.is_object()) return fail(where + "must be an object {\"name\":..,\"value\":..}");
      std::optional<std::string> name;
      std::optional<std::string> value;
      if (!bytes_field(h, "name", where, name)) return false;
      if (!name) return fail(where + "\"name\" is required");
      if (!bytes_field(h, "value", where, value)) return false;
      m.headers.push_back({std::move(*name), std::move(value)});
    }
    return true;
  }

  // kcat -J's flat list: ["name1","value1","name2","value2",...].
  bool kcat_headers(const json& list, Message& m) {
    if (list.size() % 2 != 0) {
      return fail("\"headers\" as a flat list (kcat's) needs name, value pairs; it has " +
                  std::to_string(list.size()) + " items");
    }
    for (size_t i = 0; i < list.size(); i += 2) {
      const json& name = list[i];
      const json& value = list[i + 1];
      std::string where = "headers[" + std::to_string(i) + "]: ";
      if (!name.is_string()) return fail(where + "a header name in a flat list must be a string");
      if (!value.is_string() && !value.is_null()) {
        return fail("headers[" + std::to_string(i + 1) + "]: a header value must be a string or null");
      }
      m.headers.push_back({name.get<std::string>(), value.is_null() ? std::nullopt
                                                                     : std::optional<std::string>(value.get<std::string>())});
    }
    return true;
  }
};

}  // namespace

namespace {

// The DOM builder nlohmann uses itself, told not to throw; the parse error's
// text (which says where and why) is kept instead.
class ErrorKeepingDomParser : public nlohmann::detail::json_sax_dom_parser<json> {
 public:
  explicit ErrorKeepingDomParser(json& root) : json_sax_dom_parser(root, /*allow_exceptions=*/false) {}
  template <class Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/, const Exception& ex) {
    message = ex.what();
    return false;
  }
  std::string message;
};

}  // namespace

std::optional<nlohmann::json> parse_json_text(std::string_view text, std::string& error) noexcept {
  // nlohmann's lexer takes a NUL byte for the end of input and would accept
  // `{...}<NUL>junk`; JSON text cannot contain a raw NUL anywhere.
  if (auto nul = text.find('\0'); nul != std::string_view::npos) {
    error = "not valid JSON: a NUL byte at column " + std::to_string(nul + 1);
    return std::nullopt;
  }
  try {
    json doc;
    ErrorKeepingDomParser parser(doc);
    if (json::sax_parse(text.begin(), text.end(), &parser) && parser.message.empty()) return doc;
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax
    // error while parsing value - invalid literal; last read: 'x'": keep what
    // follows "line 1, " (every input here is one line).
    const std::string& what = parser.message;
    auto at = what.find("column ");
    error = "not valid JSON: " + (at == std::string::npos ? what : what.substr(at));
    // nlohmann echoes the token it was reading ("; last read: '...'"): that
    // may be a secret (an auth frame's token) and a refusal may be logged,
    // or bytes that are not UTF-8, which JSON frames cannot carry. The
    // column says where.
    error = error.substr(0, error.find("; last read:"));
  } catch (const std::exception& e) {  // allocation failure only
    error = std::string("not valid JSON: ") + e.what();
  }
  return std::nullopt;
}

DecodedEnvelope decode_envelope_document(const nlohmann::json& doc,
                                         const std::vector<std::string_view>& also_known) noexcept {
  DecodedEnvelope result;
  try {
    Decoder decoder;
    Message m;
    if (decoder.decode(doc, m, also_known)) {
      result.message = std::move(m);
    } else {
      result.error = std::move(decoder.error);
    }
  } catch (const std::exception&) {  // allocation failure only
    result.error = "out of memory decoding the envelope";
  }
  return result;
}

DecodedEnvelope decode_envelope(std::string_view json_text) noexcept {
  DecodedEnvelope result;
  std::optional<json> doc = parse_json_text(json_text, result.error);
  if (!doc) return result;
  return decode_envelope_document(*doc);
}

Message envelope_from_json(std::string_view json_text) {
  DecodedEnvelope decoded = decode_envelope(json_text);
  if (!decoded) throw Error(decoded.error);
  return std::move(*decoded.message);
}

}  // namespace kws
