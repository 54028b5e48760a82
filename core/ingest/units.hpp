#pragma once
// Durations and sizes as users type them ("500ms", "20s", "16M"). Small and
// separate so kws's settings table can reuse them.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kws {

// "250ms", "20s", "1.5s", "5m", "2h"; a bare number is seconds. Returns
// nothing for anything else (negative, empty, unknown unit, overflow).
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// "1048576", "64K", "16M", "1G" (binary multiples; a trailing "B" or "iB" is
// allowed). Returns nothing for anything else.
std::optional<uint64_t> parse_size(std::string_view text);

// "1.5s", "250ms", "2m": the short form, for messages.
std::string format_duration(std::chrono::milliseconds d);

}  // namespace kws

namespace kws {
// A feed URL fit for a header or a log line: scheme, host, port and path,
// without user:password@ or the ?query (either may carry a token).
std::string source_label(std::string_view url);
}  // namespace kws
