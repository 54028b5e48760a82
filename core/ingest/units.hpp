#pragma once
// Durations as kws ingest writes them in messages ("1.5s", "250ms"), and the
// feed's URL as it may appear in headers and logs. Reading durations and
// sizes is the settings table's job (core/settings.hpp), one rule for every
// flag, variable and config-file line.
#include <chrono>
#include <string>
#include <string_view>

namespace kws {

// "1.5s", "250ms", "2.0m": the short form, for messages.
std::string format_duration(std::chrono::milliseconds d);

// A feed URL fit for a header or a log line: scheme, host, port and path,
// without user:password@ or the ?query (either may carry a token).
std::string source_label(std::string_view url);

}  // namespace kws
