#include "core/remote/frame_fields.hpp"

#include <nlohmann/json.hpp>

namespace kws {

namespace {
using json = nlohmann::json;

std::string text_of(const json& doc, const char* name) {
  auto it = doc.find(name);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int64_t integer_of(const json& doc, const char* name, int64_t fallback) {
  auto it = doc.find(name);
  return it != doc.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}
std::vector<int64_t> integers_of(const json& doc, const char* name) {
  std::vector<int64_t> out;
  auto it = doc.find(name);
  if (it == doc.end() || !it->is_array()) return out;
  for (const auto& v : *it) out.push_back(v.is_number_integer() ? v.get<int64_t>() : 0);
  return out;
}
}  // namespace

bool frame_has_type(std::string_view payload) {
  // The bridge writes "type" first in every control frame; anything else is
  // parsed to be sure (a message whose JSON merely contains the word).
  if (payload.find("\"type\"") == std::string_view::npos) return false;
  json doc = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  return doc.is_object() && doc.contains("type") && doc["type"].is_string();
}

ControlFrame parse_control_frame(std::string_view payload) {
  ControlFrame f;
  json doc = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return f;
  f.type = text_of(doc, "type");
  f.topic = text_of(doc, "topic");
  f.code = text_of(doc, "code");
  f.message = text_of(doc, "message");
  if (auto it = doc.find("id"); it != doc.end() && !it->is_null()) {
    f.has_id = true;
    if (it->is_string()) {
      f.id = it->get<std::string>();
    } else {
      f.id = it->dump();
      if (it->is_number_unsigned()) {
        f.id_is_number = true;
        f.number_id = it->get<uint64_t>();
      }
    }
  }
  f.partition = static_cast<int32_t>(integer_of(doc, "partition", -1));
  f.offset = integer_of(doc, "offset", -1);
  f.from = integer_of(doc, "from", -1);
  f.to = integer_of(doc, "to", -1);
  f.count = integer_of(doc, "count", 0);
  if (auto it = doc.find("reachable"); it != doc.end() && it->is_boolean()) f.reachable = it->get<bool>();
  f.start_offsets = integers_of(doc, "start_offsets");
  f.end_offsets = integers_of(doc, "end_offsets");
  return f;
}

}  // namespace kws
