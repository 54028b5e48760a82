#include "core/ingest/units.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace kws {

namespace {

// The leading non-negative decimal number of `text` and what follows it.
bool split_number(std::string_view text, double& number, std::string_view& unit) {
  size_t i = 0;
  bool digits = false, dot = false;
  while (i < text.size()) {
    char c = text[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
    ++i;
  }
  if (!digits) return false;
  number = std::strtod(std::string(text.substr(0, i)).c_str(), nullptr);
  unit = text.substr(i);
  return std::isfinite(number);
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  double n = 0;
  std::string_view unit;
  if (!split_number(text, n, unit)) return std::nullopt;
  double ms;
  if (unit == "ms") {
    ms = n;
  } else if (unit.empty() || unit == "s") {
    ms = n * 1000;
  } else if (unit == "m" || unit == "min") {
    ms = n * 60000;
  } else if (unit == "h") {
    ms = n * 3600000;
  } else {
    return std::nullopt;
  }
  if (ms > 1e15) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

std::optional<uint64_t> parse_size(std::string_view text) {
  double n = 0;
  std::string_view unit;
  if (!split_number(text, n, unit)) return std::nullopt;
  if (unit.size() >= 2 && unit.substr(unit.size() - 2) == "iB") {
    unit.remove_suffix(2);
  } else if (!unit.empty() && unit.back() == 'B') {
    unit.remove_suffix(1);
  }
  double mult;
  if (unit.empty()) {
    mult = 1;
  } else if (unit == "K" || unit == "k") {
    mult = 1024.0;
  } else if (unit == "M") {
    mult = 1024.0 * 1024;
  } else if (unit == "G") {
    mult = 1024.0 * 1024 * 1024;
  } else {
    return std::nullopt;
  }
  double v = n * mult;
  if (v > 1e18 || v != std::floor(v)) return std::nullopt;
  return static_cast<uint64_t>(v);
}

std::string format_duration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  char buf[48];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 120000) {
    std::snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fm", ms / 60000.0);
  }
  return buf;
}

}  // namespace kws

namespace kws {
std::string source_label(std::string_view url) {
  size_t scheme_end = url.find("://");
  size_t host_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  std::string_view rest = url.substr(host_start);
  size_t cut = rest.find_first_of("?#");
  if (cut != std::string_view::npos) rest = rest.substr(0, cut);
  size_t slash = rest.find('/');
  size_t at = rest.substr(0, slash).rfind('@');
  if (at != std::string_view::npos) rest = rest.substr(at + 1);
  return std::string(url.substr(0, host_start)) + std::string(rest);
}
}  // namespace kws
