#pragma once
// What ingest reads inside a message: the key (--key-field), whether to keep
// it (--filter) and the feed's sequence number (--seq-field), all addressed
// by JSON pointers (RFC 6901). The message is parsed once, only when one of
// them is set; a binary frame whose bytes are JSON is treated like text.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kws {

struct FieldSpecs {
  std::string key_field;             // "" : no key from the message
  // "/pointer=value", all must match: the first '=' splits, the value is
  // compared as text. Expressions that read like another syntax (==, !=,
  // >=, quotes, blanks around '=') are refused rather than never matching.
  std::vector<std::string> filters;
  std::string seq_field;             // "" : no sequence tracking
};

struct Extracted {
  bool keep = true;                  // every filter matched
  std::optional<std::string> key;    // none: null key
  bool key_missing = false;          // a key field is set and this message lacks it
  std::optional<int64_t> seq;
  bool parsed = false;               // the message was JSON
};

class FieldRules {
 public:
  // Throws kws::Error (usage) for a malformed pointer or filter.
  explicit FieldRules(const FieldSpecs& specs);
  ~FieldRules();
  FieldRules(FieldRules&&) noexcept;
  FieldRules& operator=(FieldRules&&) noexcept;

  bool active() const;
  bool wants_filter() const;
  bool wants_key() const;
  bool wants_seq() const;
  Extracted extract(std::string_view message) const;
  // Why --filter leaves `message` out, in words ("/type is \"book\", not
  // trade"); "" when it passes. For --dry-run, so it parses again.
  std::string why_filtered(std::string_view message) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Counts numbers a feed skipped. Within a connection a jump from 7 to 10 is
// a gap of 2; a number not above the last is counted as out of order. Across
// a reconnect the jump is counted apart: numbers sent while kws was away.
class SeqTracker {
 public:
  // Returns how many numbers this one skipped within the connection.
  uint64_t observe(int64_t seq);
  void new_connection() { fresh_connection_ = true; }

  uint64_t gaps() const { return gaps_; }                   // jumps within a connection
  uint64_t skipped() const { return skipped_; }             // numbers missing within connections
  uint64_t out_of_order() const { return out_of_order_; }
  uint64_t skipped_across_reconnects() const { return across_; }

 private:
  std::optional<int64_t> last_;
  bool fresh_connection_ = true;
  uint64_t gaps_ = 0, skipped_ = 0, out_of_order_ = 0, across_ = 0;
};

// Whether `message` contains `pattern` (await-reply and heartbeat-reply
// matching: plain substrings, so a pattern needs no escaping).
inline bool matches_pattern(std::string_view message, std::string_view pattern) {
  return !pattern.empty() && message.find(pattern) != std::string_view::npos;
}

}  // namespace kws
