#include "core/transform/fields.hpp"

#include <nlohmann/json.hpp>

namespace kws {

std::optional<AddedField> parse_added_field(std::string_view item, std::string& problem) {
  const size_t eq = item.find('=');
  if (eq == std::string_view::npos) {
    problem = "'" + std::string(item) + "' is not NAME=bridge_time or NAME=JSON";
    return std::nullopt;
  }
  AddedField f;
  f.name = std::string(item.substr(0, eq));
  const std::string_view value = item.substr(eq + 1);
  if (f.name.empty()) {
    problem = "'" + std::string(item) + "' has an empty field name";
    return std::nullopt;
  }
  try {
    f.quoted_name = nlohmann::json(f.name).dump();
  } catch (const nlohmann::json::exception&) {
    problem = "'" + std::string(item) + "': the field name is not UTF-8";
    return std::nullopt;
  }
  if (value == "bridge_time") {
    f.bridge_time = true;
    return f;
  }
  if (value.empty() || !nlohmann::json::accept(value)) {
    problem = "'" + std::string(item) + "': the value is neither bridge_time nor JSON (write a string as \"text\")";
    return std::nullopt;
  }
  f.json = nlohmann::json::parse(value).dump();
  return f;
}

std::optional<std::string> add_fields(std::string_view value, const std::vector<AddedField>& fields, int64_t now_ms) {
  size_t first = value.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || value[first] != '{') return std::nullopt;
  nlohmann::json doc = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  const size_t last = value.find_last_not_of(" \t\r\n");  // the closing '}'
  std::string added;
  bool empty = doc.empty();
  for (const auto& f : fields) {
    if (doc.contains(f.name)) continue;
    if (!empty || !added.empty()) added += ',';
    added += f.quoted_name;
    added += ':';
    added += f.bridge_time ? std::to_string(now_ms) : f.json;
  }
  if (added.empty()) return std::nullopt;
  std::string out;
  out.reserve(value.size() + added.size());
  out.append(value.substr(0, last));
  out.append(added);
  out.append(value.substr(last));
  return out;
}

}  // namespace kws
