#pragma once
// How input becomes a Kafka record: the rules `kws send`, `kws ingest` and
// the bridge share, so a key, header or partition means the same everywhere.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"
#include "core/message_io.hpp"

namespace kws {

struct RecordPolicy {
  std::string topic;                       // destination; empty: the envelope's own "topic"
  std::optional<int32_t> partition;        // forces every record here (-p)
  bool keep_envelope_partition = true;     // false: the partitioner chooses (--any-partition)
  int32_t partition_count = -1;            // of the destination, when known: bounds envelope partitions
  std::optional<std::string> key;          // forces every record's key (-k)
  std::string key_delimiter;               // plain input: split "key<delim>value" at the first one (-K)
  std::vector<Header> extra_headers;       // appended to every record (-H)
};

// A record ready for MessageSink::try_produce, owning what its views point at.
// Keep it alive until the produce call returned.
struct PreparedRecord {
  OutgoingRecord record;
  std::vector<Header> headers;
  std::string topic;
};

// Fills `out` from a decoded envelope, or returns why the envelope cannot be
// produced as asked (no topic, a partition the topic lacks, a header name
// with a NUL byte).
std::optional<std::string> prepare_envelope_record(const Message& envelope, const RecordPolicy& policy,
                                                   PreparedRecord& out);

// Fills `out` from one plain input record (a line, a file, a frame): the
// bytes are the value, split at the key delimiter when one is set. `topic`
// overrides policy.topic when not empty. `out` views `bytes`.
void prepare_plain_record(std::string_view bytes, const RecordPolicy& policy, PreparedRecord& out,
                          std::string_view topic = {});

}  // namespace kws
