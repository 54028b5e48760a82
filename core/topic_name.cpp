#include "core/topic_name.hpp"

#include <algorithm>
#include <cctype>

namespace kws {

std::optional<std::string> topic_name_problem(std::string_view name) {
  const std::string rule = "topic names are 1-249 characters of a-z A-Z 0-9 . _ - (not \".\" or \"..\")";
  if (name.empty()) return "empty topic name: " + rule;
  if (name.size() > 249) return "topic name longer than 249 characters: " + rule;
  if (name == "." || name == "..") return "topic name \"" + std::string(name) + "\" is not allowed: " + rule;
  bool ok = std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
  if (!ok) return "bad topic name: " + rule;
  return std::nullopt;
}

}  // namespace kws
