#pragma once
// The two seams between kws and Kafka: where messages come from
// (MessageSource) and where they go (MessageSink). The Kafka adapters in
// core/kafka/ implement them; the hub, the bridge, ingest and send use only
// these, so they are unit-tested with the fakes in tests/unit/fakes.hpp.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"

namespace kws {

// One record to produce. Views must stay valid during try_produce/produce
// only: the sink copies what it keeps.
struct OutgoingRecord {
  std::string_view topic;
  std::optional<int32_t> partition;  // none: the partitioner chooses by key
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  const std::vector<Header>* headers = nullptr;  // may be null
  int64_t timestamp_ms = 0;                      // 0: now
  uint64_t token = 0;                            // handed back in its Delivery
};

// Why a record was not produced, in words a client can branch on. The
// spellings are part of the WebSocket protocol (docs/PROTOCOL.md).
enum class ProduceError {
  none,
  queue_full,      // try_produce only: nothing queued, retry after deliveries
  too_large,       // over message.max.bytes
  unknown_topic,   // the topic does not exist and may not be created
  bad_partition,   // the topic has no such partition
  not_allowed,     // the cluster refused (authorization)
  timed_out,       // not delivered within message.timeout.ms
  kafka_error,     // anything else the cluster or client said
};
std::string_view produce_error_code(ProduceError error);

struct ProduceOutcome {
  ProduceError error = ProduceError::none;
  std::string message;  // human words, "" when queued
  bool queued() const { return error == ProduceError::none; }
};

// The final word on one queued record.
struct Delivery {
  uint64_t token = 0;
  std::string_view topic;
  int32_t partition = -1;
  int64_t offset = -1;
  ProduceError error = ProduceError::none;
  std::string_view message;  // "" when delivered
  bool ok() const { return error == ProduceError::none; }
};

class MessageSink {
 public:
  virtual ~MessageSink() = default;

  // Queues one record without blocking. queue_full: nothing was queued and the
  // caller should pause its input until deliveries free room. Any other error:
  // the record can never be produced as asked, and no Delivery follows. Safe to
  // call from several threads.
  virtual ProduceOutcome try_produce(const OutgoingRecord& record) = 0;

  // Runs the delivery handler for every report that arrived, waiting up to
  // `wait` for the first. Call from one thread only.
  virtual void serve_deliveries(std::chrono::milliseconds wait) = 0;

  // Set before the first try_produce; called from serve_deliveries().
  virtual void on_delivery(std::function<void(const Delivery&)> handler) = 0;

  // Records queued and not yet reported.
  virtual uint64_t in_flight() const = 0;
};

// Where a reader stands on a partition when it reports an event.
struct PartitionEnd {
  std::string_view topic;
  int32_t partition = -1;
  int64_t next_offset = -1;  // the end: the offset the next message will get
};

class MessageSource {
 public:
  virtual ~MessageSource() = default;

  // Waits up to `wait` for a message, then hands every message already
  // fetched (at most `max`) to `on_message`, in order per partition. Views are
  // valid only during the call. `on_message` returns false to stop the batch:
  // that message counts as not consumed. `on_end`, when set, hears when a
  // partition was read to its current end. Returns how many messages were
  // consumed. Throws kws::Error when the source cannot go on (unknown topic,
  // cluster unreachable for longer than the timeout).
  virtual size_t poll_batch(std::chrono::milliseconds wait, size_t max,
                            const std::function<bool(const MessageView&)>& on_message,
                            const std::function<void(const PartitionEnd&)>& on_end) = 0;
};

}  // namespace kws

namespace kws {

// Where a topic's partitions stand, as a reader sees them.
struct PartitionWatermarks {
  int64_t low = -1;   // first offset still stored
  int64_t high = -1;  // the offset the next message will get
};

struct TopicLookup {
  enum class Error { none, unknown_topic, failed };
  std::vector<PartitionWatermarks> partitions;  // index = partition number
  Error error = Error::none;
  std::string message;  // why, when error != none
  bool ok() const { return error == Error::none; }
};

// A MessageSource whose partitions the caller assigns at explicit offsets:
// what a shared fan-out reader (and a short-lived catch-up reader) needs.
// Not thread-safe: one thread owns it.
class PartitionFeed : public MessageSource {
 public:
  // Partition count and current watermarks. Never throws.
  virtual TopicLookup describe(const std::string& topic) = 0;
  // Per partition, the first offset whose timestamp is at or after `ms`, or
  // -1 where there is none. A broker without a time index may answer with an
  // earlier offset: readers still skip older messages themselves.
  virtual std::vector<int64_t> offsets_for_time(const std::string& topic, int64_t ms, size_t partitions) = 0;
  // Starts reading the given partitions at absolute offsets (index =
  // partition; negative entries are left out). Adds to what is assigned.
  virtual void assign(const std::string& topic, const std::vector<int64_t>& offsets) = 0;
  // Stops reading every partition of `topic`.
  virtual void unassign(const std::string& topic) = 0;
  // The partition's high watermark as last seen by fetches (no request); -1
  // when unknown. For lag metrics.
  virtual int64_t cached_high_watermark(const std::string& topic, int32_t partition) = 0;
};

}  // namespace kws
