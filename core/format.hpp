#pragma once
// kcat-compatible output formats for `kws tail -f`.
#include <string>
#include <string_view>
#include <vector>

#include "core/envelope.hpp"

namespace kws {

// Tokens (kcat's, plus %I):
//   %t topic  %p partition  %o offset  %k key  %s value
//   %S value length (-1 for null)  %K key length (-1 for null)
//   %T timestamp in ms (-1 when none)  %I timestamp as ISO-8601 UTC
//   %h headers as name=value,name=value  %% a percent sign
// Escapes: \n \t \r \0 \\ \xNN.
class MessageFormat {
 public:
  // Throws kws::Error (usage) on an unknown token or a bad escape. With
  // `colour`, metadata tokens (not %s) are wrapped in ANSI colours, for
  // terminals; the value stays as it is.
  static MessageFormat parse(std::string_view spec, bool colour = false);

  void append(std::string& out, const MessageView& message) const;
  bool uses_headers() const { return uses_headers_; }

 private:
  enum class Token { literal, topic, partition, offset, key, value, value_length, key_length,
                     timestamp_ms, timestamp_iso, headers };
  static const char* colour_of(Token token);
  struct Piece {
    Token token;
    std::string literal;
  };
  std::vector<Piece> pieces_;
  bool uses_headers_ = false;
  bool colour_ = false;
};

// "2024-01-02T03:04:05.678Z".
std::string format_iso8601_utc(int64_t epoch_ms);

}  // namespace kws
