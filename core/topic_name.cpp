#include "core/topic_name.hpp"

#include <algorithm>
#include <cctype>

#include "core/util/error.hpp"

namespace kws {

bool is_valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

void check_topic_name(const std::string& name) {
  if (is_valid_topic_name(name)) return;
  throw usage_error("bad topic name '" + name +
                    "': Kafka allows 1-249 characters of [a-zA-Z0-9._-], other than \".\" and \"..\"");
}

std::optional<std::string> topic_name_problem(std::string_view name) {
  if (is_valid_topic_name(name)) return std::nullopt;
  if (name.empty()) return std::string("empty topic name: Kafka allows 1-249 characters of [a-zA-Z0-9._-]");
  return std::string("bad topic name: Kafka allows 1-249 characters of [a-zA-Z0-9._-], other than \".\" and \"..\"");
}

}  // namespace kws
