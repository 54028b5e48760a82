#include "core/hub/topic_tree.hpp"

#include "core/util/text.hpp"

namespace kws {

namespace {

// The length field of an MQTT string is two bytes (section 1.5.4).
constexpr size_t kMaxTopicBytes = 65535;

std::optional<std::string> text_problem(std::string_view text, const char* what) {
  if (text.empty()) return std::string(what) + " is empty";
  if (text.size() > kMaxTopicBytes) return std::string(what) + " is longer than 65535 bytes";
  if (!is_valid_utf8(text)) return std::string(what) + " is not UTF-8";
  if (text.find('\0') != std::string_view::npos) return std::string(what) + " contains U+0000";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> topic_filter_problem(std::string_view filter) {
  if (auto problem = text_problem(filter, "a topic filter")) return problem;
  for (size_t pos = 0;;) {
    const size_t slash = filter.find('/', pos);
    const bool last = slash == std::string_view::npos;
    const std::string_view level = filter.substr(pos, last ? std::string_view::npos : slash - pos);
    if (level.find('#') != std::string_view::npos && (level.size() != 1 || !last)) {
      return std::string("'#' must be the last level, alone");
    }
    if (level.find('+') != std::string_view::npos && level.size() != 1) {
      return std::string("'+' must be a whole level");
    }
    if (last) return std::nullopt;
    pos = slash + 1;
  }
}

std::optional<std::string> mqtt_topic_name_problem(std::string_view name) {
  if (auto problem = text_problem(name, "a topic name")) return problem;
  if (name.find_first_of("+#") != std::string_view::npos)
    return std::string("a topic name has no '+' or '#'");
  return std::nullopt;
}

bool is_mqtt_topic_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxTopicBytes &&
         name.find_first_of(std::string_view("+#\0", 3)) == std::string_view::npos && is_valid_utf8(name);
}

bool topic_matches(std::string_view filter, std::string_view name) {
  if (!name.empty() && name.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    // Only when '+' or '#' is the whole first level ("+/x", "#"); a literal
    // first level such as "+x" is not a wildcard.
    const size_t end = filter.find('/');
    if (end == 1 || filter.size() == 1) return false;
  }
  size_t f = 0;
  size_t n = 0;
  for (;;) {
    const size_t f_slash = filter.find('/', f);
    const bool f_last = f_slash == std::string_view::npos;
    const std::string_view f_level = filter.substr(f, f_last ? std::string_view::npos : f_slash - f);
    if (f_last && f_level == "#") return true;      // the rest, including none
    if (n == std::string_view::npos) return false;  // the name ended, the filter did not
    const size_t n_slash = name.find('/', n);
    const std::string_view n_level =
        name.substr(n, n_slash == std::string_view::npos ? std::string_view::npos : n_slash - n);
    if (f_level != "+" && f_level != n_level) return false;
    n = n_slash == std::string_view::npos ? std::string_view::npos : n_slash + 1;
    if (f_last) return n == std::string_view::npos;
    f = f_slash + 1;
  }
}

}  // namespace kws
