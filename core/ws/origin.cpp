#include "core/ws/origin.hpp"

#include <algorithm>

namespace kws::ws {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// What a `*` may stand for: anything inside one host or port, never the
// `:` before a port or a `/`, so `https://*.example.com` cannot reach
// `https://example.com.evil:1` or a path.
bool wildcard_char(char c) { return c != ':' && c != '/'; }

// Glob match with `*` as one or more wildcard_char, ASCII case ignored.
// Iterative with one backtrack point per star, as patterns are short and
// come from the operator.
bool glob(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      // The star must take at least one character.
      if (!wildcard_char(text[t])) return false;
      star = p++;
      star_text = ++t;
      continue;
    }
    if (p < pattern.size() && lower(pattern[p]) == lower(text[t])) {
      ++p;
      ++t;
      continue;
    }
    // Let the last star take one more character, if it may.
    if (star != std::string_view::npos && star_text < text.size() && wildcard_char(text[star_text])) {
      p = star + 1;
      t = ++star_text;
      continue;
    }
    return false;
  }
  return p == pattern.size();
}

}  // namespace

std::optional<std::string> origin_pattern_problem(std::string_view pattern) {
  if (pattern == "null") return std::nullopt;
  const size_t sep = pattern.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    return "'" + std::string(pattern) + "' is not an origin: write scheme://host[:port], e.g. https://app.example.com";
  }
  for (char c : pattern.substr(0, sep)) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) {
      return "'" + std::string(pattern) + "': the scheme has a character a scheme cannot have";
    }
  }
  const std::string_view authority = pattern.substr(sep + 3);
  if (authority.empty()) return "'" + std::string(pattern) + "' has no host";
  if (authority.find('/') != std::string_view::npos) {
    return "'" + std::string(pattern) +
           "' has a path: an Origin header never has one (not even a trailing /), so it would match nothing";
  }
  for (char c : authority) {
    if (c == ' ' || c == ',' || c == '?' || c == '#' || c == '@' || static_cast<unsigned char>(c) < 0x21) {
      return "'" + std::string(pattern) + "': '" + std::string(1, c) + "' cannot appear in an origin";
    }
  }
  return std::nullopt;
}

bool origin_matches(std::string_view pattern, std::string_view origin) { return glob(pattern, origin); }

std::optional<std::string> OriginPolicy::refusal(const std::optional<std::string_view>& origin) const {
  if (patterns_.empty() || !origin) return std::nullopt;
  for (const auto& p : patterns_) {
    if (!origin_pattern_problem(p) && origin_matches(p, *origin)) return std::nullopt;
  }
  // The header is the client's text: said back, but never at length.
  constexpr size_t kShown = 200;
  std::string shown(origin->substr(0, kShown));
  if (origin->size() > kShown) shown += "...";
  return "origin not allowed: " + (shown.empty() ? std::string("(empty)") : shown) + " (serve.allow_origin)";
}

}  // namespace kws::ws

namespace kws::ws {

std::optional<std::string> OriginPolicy::refusal(const HttpRequest& request) const {
  if (patterns_.empty()) return std::nullopt;
  // An empty Origin header is still an Origin header: only its absence
  // says "not a browser".
  const bool sent = std::any_of(request.headers.begin(), request.headers.end(),
                                [](const auto& h) { return h.first == "origin"; });
  return refusal(sent ? std::optional<std::string_view>(request.header("origin")) : std::nullopt);
}

}  // namespace kws::ws
