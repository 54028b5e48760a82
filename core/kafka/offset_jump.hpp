#pragma once
// Never skipping offsets silently. librdkafka, told auto.offset.reset=error,
// reports a position the partition no longer has (retention deleted it under
// a slow reader, or the topic was created again) instead of jumping by
// itself. The reader then restarts the partition at its log start on
// purpose, and the first message or end it sees there says how far it
// jumped: that becomes a PartitionEvent (lost or rewound) handed on before
// the message. Shared by PartitionReader and Consumer.
#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "core/message_io.hpp"

namespace kws {

class OffsetJumps {
 public:
  // The reader stood at `from` when the broker said the offset is gone; it
  // restarts the partition at the log start (restart_at_log_start).
  void jumped(const std::string& topic, int32_t partition, int64_t from);

  // Before handing on a message or end of (topic, partition) at `next` (the
  // message's offset, or the end offset): whether a jump is now known, and
  // which. Cheap when nothing is pending (the usual case).
  bool resolve(const char* topic, int32_t partition, int64_t next, PartitionEvent& event) {
    if (pending_.empty()) return false;
    return resolve_pending(topic, partition, next, event);
  }

  // A partition no longer read: forget its pending jump.
  void forget(const std::string& topic, int32_t partition) { pending_.erase({topic, partition}); }

 private:
  bool resolve_pending(const char* topic, int32_t partition, int64_t next, PartitionEvent& event);
  std::map<std::pair<std::string, int32_t>, int64_t> pending_;
};

// Restarts reading one assigned partition at `offset` (a logical offset such
// as RD_KAFKA_OFFSET_BEGINNING, or absolute). A fetch stopped by an offset
// error cannot be sought (librdkafka answers "erroneous state"), so the
// partition is assigned again: incrementally where the handle allows it,
// otherwise by assigning the whole assignment again with every other
// partition at the position the application reached (nothing re-read), or
// where `start_of` says it started when the application has read nothing
// from it yet. Returns librdkafka's complaint, or "".
std::string restart_partition(rd_kafka_t* rk, const char* topic, int32_t partition, int64_t offset,
                              const std::function<int64_t(const char*, int32_t)>& start_of = {});

// Human words for a jump, for the log.
std::string describe_jump(const PartitionEvent& event);

}  // namespace kws
