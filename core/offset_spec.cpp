#include "core/offset_spec.hpp"

#include <charconv>
#include <cstdint>
#include <ctime>
#include <string>

#include "core/util/error.hpp"

namespace kws {

namespace {

bool parse_int(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// Reads exactly `digits` decimal digits at pos.
bool take_digits(std::string_view text, size_t& pos, int digits, int& out) {
  if (pos + digits > text.size()) return false;
  out = 0;
  for (int i = 0; i < digits; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += digits;
  return true;
}

bool take_char(std::string_view text, size_t& pos, char c) {
  if (pos < text.size() && text[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

}  // namespace

bool parse_iso8601(std::string_view text, int64_t& epoch_ms) {
  size_t pos = 0;
  int year, month, day, hour = 0, minute = 0, second = 0, millis = 0;
  if (!take_digits(text, pos, 4, year) || !take_char(text, pos, '-') ||
      !take_digits(text, pos, 2, month) || !take_char(text, pos, '-') ||
      !take_digits(text, pos, 2, day)) {
    return false;
  }
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
    ++pos;
    if (!take_digits(text, pos, 2, hour) || !take_char(text, pos, ':') ||
        !take_digits(text, pos, 2, minute)) {
      return false;
    }
    if (take_char(text, pos, ':')) {
      if (!take_digits(text, pos, 2, second)) return false;
      if (take_char(text, pos, '.') || take_char(text, pos, ',')) {
        // Keep milliseconds; finer digits are accepted and dropped.
        int scale = 100;
        size_t start = pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          millis += (text[pos] - '0') * scale;
          scale /= 10;
          ++pos;
        }
        if (pos == start) return false;
      }
    }
  }
  int64_t zone_offset_minutes = 0;
  if (take_char(text, pos, 'Z') || take_char(text, pos, 'z')) {
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int zh, zm;
    if (!take_digits(text, pos, 2, zh)) return false;
    take_char(text, pos, ':');
    if (!take_digits(text, pos, 2, zm)) return false;
    zone_offset_minutes = sign * (zh * 60 + zm);
  }
  if (pos != text.size()) return false;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  time_t t = timegm(&tm);
  if (tm.tm_mday != day) return false;  // timegm normalised e.g. Feb 30
  epoch_ms = (static_cast<int64_t>(t) - zone_offset_minutes * 60) * 1000 + millis;
  return epoch_ms >= 0;  // Kafka timestamps start at 1970
}

OffsetSpec parse_offset_spec(std::string_view text) {
  using Kind = OffsetSpec::Kind;
  if (text == "beginning" || text == "earliest") return {Kind::beginning, 0};
  if (text == "end" || text == "latest") return {Kind::end, 0};
  if (text == "stored") return {Kind::stored, 0};
  int64_t n;
  // librdkafka encodes "the last N" as -2000 - N, so N must leave room.
  constexpr int64_t kMaxCount = INT64_MAX / 2;
  if (parse_int(text, n)) {
    if (n >= 0) return {Kind::absolute, n};
    if (n >= -kMaxCount) return {Kind::from_end, -n};
  }
  std::string_view ts = text;
  if (ts.substr(0, 2) == "s@") ts.remove_prefix(2);
  else if (ts.substr(0, 1) == "@") ts.remove_prefix(1);
  if (ts.size() != text.size()) {
    if (parse_int(ts, n) && n >= 0) return {Kind::timestamp, n};
  }
  if (parse_iso8601(ts, n)) return {Kind::timestamp, n};
  throw usage_error("bad offset '" + std::string(text) +
                    "': expected beginning, end, stored, N, -N, @TIMESTAMP_MS "
                    "or an ISO-8601 time such as 2024-05-01T12:00:00Z");
}

}  // namespace kws
