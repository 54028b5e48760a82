#include "core/auth/principal.hpp"

#include <nlohmann/json.hpp>

#include "core/auth/printable.hpp"

namespace kws {

bool name_matches(std::string_view pattern, std::string_view name) {
  size_t p = 0, n = 0;
  // Where the last '*' was, and the name position it is matched up to: on a
  // mismatch the star takes one more character and matching resumes after it.
  size_t star = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {

bool any_matches(const std::vector<std::string>& patterns, std::string_view name) {
  for (const auto& pattern : patterns) {
    if (name_matches(pattern, name)) return true;
  }
  return false;
}

}  // namespace

bool Grants::allows(std::string_view topic, TopicAction action) const {
  return any_matches(action == TopicAction::read ? read : write, topic);
}

bool Grants::allows_group(std::string_view group) const { return any_matches(groups, group); }

std::optional<std::string> parse_grants(const nlohmann::json& claim, Grants& out) {
  if (!claim.is_object()) return std::string("not an object");
  Grants grants;
  for (const auto& [key, value] : claim.items()) {
    std::vector<std::string>* list = key == "read"     ? &grants.read
                                     : key == "write"  ? &grants.write
                                     : key == "groups" ? &grants.groups
                                                       : nullptr;
    if (!list) return "unknown key \"" + auth_detail::printable(key) + "\" (expected read, write or groups)";
    if (!value.is_array()) return "\"" + key + "\" is not a list";
    list->reserve(value.size());
    for (const auto& pattern : value) {
      if (!pattern.is_string()) return "\"" + key + "\" holds something other than a string";
      const auto& text = pattern.get_ref<const std::string&>();
      // An empty pattern matches no topic: most likely a mistake in the issuer.
      if (text.empty()) return "\"" + key + "\" holds an empty name";
      list->push_back(text);
    }
  }
  out = std::move(grants);
  return std::nullopt;
}

}  // namespace kws
