#pragma once
// Turning a librdkafka record into the message model without copying, and
// the start-time rule for brokers without a time index. Shared by every
// reader in core/kafka/.
#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>

#include "core/message.hpp"

namespace kws {

// Points `view` at `msg`'s bytes (valid while msg lives). `topic` is the
// topic's name, looked up by the caller once per topic handle.
void fill_message_view(const rd_kafka_message_t* msg, const char* topic, bool want_headers, MessageView& view);

// Brokers without a time index (the embedded one) answer an offset-for-time
// lookup with an earlier offset; this skips, per partition, the messages
// older than the start time until the first one at or after it.
class StartTimeFilter {
 public:
  explicit StartTimeFilter(int64_t start_ms = -1) : start_ms_(start_ms) {}
  bool active() const { return start_ms_ >= 0; }
  // Whether the message is at or after the start (or an earlier one was).
  bool admit(const char* topic, int32_t partition, int64_t timestamp_ms);

 private:
  int64_t start_ms_;
  std::set<std::pair<std::string, int32_t>> reached_;
};

}  // namespace kws
