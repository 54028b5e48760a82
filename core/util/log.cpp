#include "core/util/log.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>

#include "core/util/output.hpp"
#include "core/util/text.hpp"

namespace kws {

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::note: return "note";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "info";
}

void StderrLog::write(LogLevel level, std::string_view message) {
  if (level < threshold_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  print_diagnostic(log_level_name(level), message);
}

void JsonLinesLog::write(LogLevel level, std::string_view message) {
  if (level < threshold_) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[40];
  size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(ms % 1000));
  std::string line = "{\"time\":\"";
  line += stamp;
  line += "\",\"level\":\"";
  line += log_level_name(level);
  line += "\",\"message\":\"";
  // Log text comes from kws and librdkafka; keep the line valid JSON even if
  // a broker name or topic carries odd bytes.
  if (is_valid_utf8(message)) {
    append_json_escaped(line, message);
  } else {
    for (unsigned char c : message) line += (c < 0x80 && c >= 0x20 && c != '"' && c != '\\') ? static_cast<char>(c) : '?';
  }
  line += "\"}\n";
  std::lock_guard<std::mutex> lock(mutex_);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t w = ::write(fd_, line.data() + done, line.size() - done);
    if (w <= 0) return;
    done += static_cast<size_t>(w);
  }
}

}  // namespace kws
