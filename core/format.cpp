#include "core/format.hpp"

#include <ctime>

#include "core/util/error.hpp"
#include "core/util/text.hpp"

namespace kws {

MessageFormat MessageFormat::parse(std::string_view spec, bool colour) {
  MessageFormat format;
  format.colour_ = colour;
  std::string literal;
  auto flush_literal = [&] {
    if (literal.empty()) return;
    format.pieces_.push_back({Token::literal, unescape(literal)});
    literal.clear();
  };
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] != '%') {
      literal += spec[i];
      continue;
    }
    if (i + 1 == spec.size()) throw usage_error("format ends with a lone '%'");
    char t = spec[++i];
    Token token;
    switch (t) {
      case '%': literal += '%'; continue;
      case 't': token = Token::topic; break;
      case 'p': token = Token::partition; break;
      case 'o': token = Token::offset; break;
      case 'k': token = Token::key; break;
      case 's': token = Token::value; break;
      case 'S': token = Token::value_length; break;
      case 'K': token = Token::key_length; break;
      case 'T': token = Token::timestamp_ms; break;
      case 'I': token = Token::timestamp_iso; break;
      case 'h': token = Token::headers; format.uses_headers_ = true; break;
      default:
        throw usage_error(std::string("unknown format token '%") + t +
                          "' (known: %t %p %o %k %s %S %K %T %I %h %%)");
    }
    flush_literal();
    format.pieces_.push_back({token, {}});
  }
  flush_literal();
  return format;
}

std::string format_iso8601_utc(int64_t epoch_ms) {
  int64_t seconds = epoch_ms / 1000;
  int64_t millis = epoch_ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(millis));
  return buf;
}

const char* MessageFormat::colour_of(Token token) {
  switch (token) {
    case Token::topic: return "\033[36m";  // cyan
    case Token::partition:
    case Token::offset:
    case Token::timestamp_ms:
    case Token::timestamp_iso: return "\033[2m";  // dim
    case Token::key: return "\033[33m";          // yellow
    case Token::headers: return "\033[35m";      // magenta
    default: return "";                           // literals and the value stay plain
  }
}

void MessageFormat::append(std::string& out, const MessageView& m) const {
  for (const auto& piece : pieces_) {
    const char* colour = colour_ ? colour_of(piece.token) : "";
    out += colour;
    switch (piece.token) {
      case Token::literal: out += piece.literal; break;
      case Token::topic: out += m.topic; break;
      case Token::partition: out += std::to_string(m.partition); break;
      case Token::offset: out += std::to_string(m.offset); break;
      case Token::key: if (m.key) out += *m.key; break;
      case Token::value: if (m.value) out += *m.value; break;
      case Token::value_length: out += std::to_string(m.value ? static_cast<int64_t>(m.value->size()) : -1); break;
      case Token::key_length: out += std::to_string(m.key ? static_cast<int64_t>(m.key->size()) : -1); break;
      case Token::timestamp_ms:
        out += std::to_string(m.timestamp_type == TimestampType::none ? -1 : m.timestamp_ms);
        break;
      case Token::timestamp_iso:
        if (m.timestamp_type != TimestampType::none) out += format_iso8601_utc(m.timestamp_ms);
        break;
      case Token::headers: {
        bool first = true;
        for (const auto& h : m.headers) {
          if (!first) out += ',';
          first = false;
          out += h.name;
          out += '=';
          if (h.value) out += *h.value;
        }
        break;
      }
    }
    if (*colour) out += "\033[0m";
  }
}

}  // namespace kws
