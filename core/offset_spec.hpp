#pragma once
// Where `kws tail` starts reading, in kcat's -o vocabulary.
#include <cstdint>
#include <string_view>

namespace kws {

struct OffsetSpec {
  enum class Kind {
    beginning,   // "beginning"
    end,         // "end"
    stored,      // "stored": the consumer group's committed offset
    absolute,    // "N"
    from_end,    // "-N": the last N messages of each partition
    timestamp,   // "@MS", "s@MS" or an ISO-8601 time: first message at or after it
  };
  Kind kind = Kind::end;
  int64_t value = 0;  // offset, count or epoch milliseconds, by kind

  bool operator==(const OffsetSpec& o) const { return kind == o.kind && value == o.value; }
};

// Throws a usage kws::Error that lists the accepted forms.
OffsetSpec parse_offset_spec(std::string_view text);

// Parses YYYY-MM-DD[(T| )hh:mm[:ss[.fff]]][Z|(+|-)hh[:]mm] to epoch ms. A time
// without a zone is UTC (a log line's time, not the terminal's). Returns false
// when the text is not such a time, or one before 1970.
bool parse_iso8601(std::string_view text, int64_t& epoch_ms);

}  // namespace kws
