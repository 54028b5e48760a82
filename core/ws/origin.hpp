#pragma once
// --allow-origin: which web pages may open a WebSocket to kws serve. A
// browser sends the page's origin with every upgrade and lets any page
// connect anywhere, with the user's cookies and network position, so
// without this check any site the user visits can talk to the gateway
// (cross-site WebSocket hijacking). Non-browser clients send no Origin and
// are not affected: the check protects users' browsers, it authenticates
// nobody (anything but a browser can send any Origin it likes).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ws/protocol.hpp"

namespace kws::ws {

// What an allowed origin looks like: `scheme://host` or `scheme://host:port`
// (as browsers send it: no path, no trailing slash, no default port), or
// `null` (sandboxed frames, file:// pages). A `*` in the host or port
// stands for one or more characters other than `:` and `/`:
// `https://*.example.com` is any subdomain at any depth (not example.com
// itself), `http://localhost:*` any port. Matching ignores case.
// Returns why `pattern` can never match an Origin header, or nothing.
std::optional<std::string> origin_pattern_problem(std::string_view pattern);

// Whether `origin` (an Origin header's value) matches `pattern`.
bool origin_matches(std::string_view pattern, std::string_view origin);

class OriginPolicy {
 public:
  OriginPolicy() = default;  // no patterns: every origin may connect
  // Patterns checked by origin_pattern_problem (cmd/ refuses bad ones with
  // the flag's name first); a bad one here matches nothing.
  explicit OriginPolicy(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {}

  bool restricts() const { return !patterns_.empty(); }
  // Why an upgrade with this Origin header is refused, or nothing.
  // `origin` null: the request had no Origin header (not a browser).
  std::optional<std::string> refusal(const std::optional<std::string_view>& origin) const;
  // The same for an upgrade request (its first Origin header, if any).
  std::optional<std::string> refusal(const HttpRequest& request) const;

 private:
  std::vector<std::string> patterns_;
};

}  // namespace kws::ws
