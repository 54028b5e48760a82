#pragma once
// The two seams between kws and Kafka: where messages come from
// (MessageSource) and where they go (MessageSink). The Kafka adapters in
// core/kafka/ implement them; the hub, the bridge, ingest and send use only
// these, so they are unit-tested with the fakes in tests/unit/fakes.hpp.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
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

// Something a reader reports about a partition besides its messages, in
// order with them.
struct PartitionEvent {
  enum class Kind {
    // The partition was read to its current end.
    end,
    // Offsets [lost_from, next_offset) no longer exist (retention deleted
    // them under the reader, or a start older than the log): the reader moved
    // on to next_offset, the oldest offset the partition still has.
    lost,
    // The partition's offsets went backwards (the topic was deleted and
    // created again, or truncated): the reader, at lost_from, goes on at
    // next_offset, which is lower. Whoever dedupes by offset must start over.
    rewound,
    // A consumer group (re)assigned partitions to this member (possibly
    // none); `topic` and `partition` are not set.
    assigned,
  };
  Kind kind = Kind::end;
  std::string_view topic;
  int32_t partition = -1;
  int64_t next_offset = -1;  // the offset the next message will get
  int64_t lost_from = -1;    // lost, rewound: where the reader stood
};

class MessageSource {
 public:
  virtual ~MessageSource() = default;

  // Waits up to `wait` for a message, then hands every message already
  // fetched (at most `max`) to `on_message`, in order per partition. Views are
  // valid only during the call. `on_message` returns false to stop the batch:
  // that message counts as not consumed. `on_event`, when set, hears partition
  // ends and jumps (PartitionEvent), before the next message of that
  // partition; a source never skips offsets without reporting it. Returns how
  // many messages were consumed. Throws kws::Error when the source cannot go on
  // (unknown topic, cluster unreachable for longer than the timeout).
  virtual size_t poll_batch(std::chrono::milliseconds wait, size_t max,
                            const std::function<bool(const MessageView&)>& on_message,
                            const std::function<void(const PartitionEvent&)>& on_event) = 0;

  // For a group source that stores offsets only when told (a bridge's group
  // session: only what its client's socket took counts as consumed): marks
  // `topic`'s `partition` done below `next_offset`, committed with the
  // group's next commit. Thread-safe. Others ignore it.
  virtual void store_offset(std::string_view topic, int32_t partition, int64_t next_offset) {
    (void)topic, (void)partition, (void)next_offset;
  }
  // Stops (true) or restarts fetching every assigned partition while
  // polling goes on, so the group keeps this member (a consumer that stops
  // polling is dropped from its group after max.poll.interval.ms). Returns
  // false when the source cannot: the caller then stops polling instead.
  virtual bool pause_all(bool pause) {
    (void)pause;
    return false;
  }
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
// Not thread-safe: one thread owns it, except for the wake-up hook.
class PartitionFeed : public MessageSource {
 public:
  // Starts reading the given partitions at absolute offsets (index =
  // partition; negative entries are left out). Adds to what is assigned.
  virtual void assign(const std::string& topic, const std::vector<int64_t>& offsets) = 0;
  // Stops reading every partition of `topic`.
  virtual void unassign(const std::string& topic) = 0;
  // Reads one assigned partition again from `offset` (earlier than where it
  // stands): nothing read before the call is handed on after it.
  virtual void rewind(const std::string& topic, int32_t partition, int64_t offset) = 0;
  // The partition's high watermark as last seen by fetches (no request); -1
  // when unknown. For lag metrics.
  virtual int64_t cached_high_watermark(const std::string& topic, int32_t partition) = 0;
  // `wake` is called, from any thread, when something new can be polled
  // after a poll_batch found nothing more: a reader that owns no thread
  // (the hub) sleeps until then instead of polling on a timer. Set once,
  // before the first poll.
  virtual void on_ready(std::function<void()> wake) = 0;
};

// The questions about topics that wait for a broker's answer. Blocking, and
// thread-safe, so that a worker thread asks them while the hub goes on
// delivering (nothing that waits for Kafka runs on the fan-out thread).
class TopicAdmin {
 public:
  virtual ~TopicAdmin() = default;
  // Partition count and current watermarks, in a fixed number of round
  // trips whatever the partition count. Never throws.
  virtual TopicLookup describe(const std::string& topic) = 0;
  // Per partition, the first offset whose timestamp is at or after `ms`, or
  // -1 where there is none. A broker without a time index may answer with an
  // earlier offset: readers still skip older messages themselves. Never throws.
  virtual std::vector<int64_t> offsets_for_time(const std::string& topic, int64_t ms, size_t partitions) = 0;
  // A new reader for one subscription's history (it connects; may throw
  // kws::Error). Closing one also waits for the cluster, so readers are
  // handed back to the admin's thread to be destroyed.
  virtual std::unique_ptr<PartitionFeed> open_reader() = 0;
  // The cluster's topic names, sorted. Throws kws::Error when no broker
  // answers.
  virtual std::vector<std::string> topic_names() = 0;
};

}  // namespace kws
