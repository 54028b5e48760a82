#pragma once
// Words taken from a token (a key id, a claim's key) for a refusal that ends
// up in an HTTP body and in logs: printable ASCII only, others as '?', and
// cut short, so a hostile token cannot write control characters or a
// megabyte into either.
#include <string>
#include <string_view>

namespace kws::auth_detail {

inline std::string printable(std::string_view text, size_t max = 40) {
  std::string out;
  const size_t n = text.size() < max ? text.size() : max;
  out.reserve(n + 3);
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    out += (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') ? c : '?';
  }
  if (text.size() > max) out += "...";
  return out;
}

}  // namespace kws::auth_detail
