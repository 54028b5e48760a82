#pragma once
// Reading topics for `kws tail`: explicit partition assignment by default,
// or as a member of a consumer group.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/config.hpp"
#include "core/envelope.hpp"
#include "core/kafka/client.hpp"
#include "core/offset_spec.hpp"

namespace kws {

struct TailPlan {
  std::vector<std::string> topics;
  std::optional<int32_t> partition;  // only this partition of each topic
  OffsetSpec start;
  // Whether `start` was chosen by the user; with a group, only an explicit
  // start overrides the group's committed offsets.
  bool start_explicit = false;
  std::string group;                 // empty: no group, nothing committed
  bool exit_at_end = false;          // stop once every partition reached its end
  int64_t max_messages = -1;         // stop after this many; -1: no limit
  bool want_headers = false;         // fill MessageView::headers
};

enum class TailStop { message_limit, end_of_partitions, interrupted, sink_closed };

class TailConsumer {
 public:
  // Connects, checks the topics exist and assigns (or subscribes). Throws kws::Error.
  TailConsumer(const KafkaSettings& settings, TailPlan plan, int verbosity,
               std::chrono::milliseconds connect_timeout);
  ~TailConsumer();
  TailConsumer(const TailConsumer&) = delete;
  TailConsumer& operator=(const TailConsumer&) = delete;

  // Hands each message to `sink` until a stop condition. `sink` returns false
  // when its reader went away. `should_stop` is checked at least every 100 ms.
  // `idle` is called whenever no message arrived for a moment (to flush
  // output); it returns false when the reader went away meanwhile.
  TailStop run(const std::function<bool(const MessageView&)>& sink,
               const std::function<bool()>& should_stop, const std::function<bool()>& idle);

  // Leaves the group and commits (when in one). Called by the destructor too.
  void close();

 private:
  static void rebalance_callback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                 rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void on_assign(rd_kafka_topic_partition_list_t* partitions);
  void on_revoke(rd_kafka_topic_partition_list_t* partitions);
  void resolve_start_offsets(rd_kafka_topic_partition_list_t* partitions);
  int64_t logical_start_offset() const;
  void store_offset(const char* topic, int32_t partition, int64_t next_offset);

  TailPlan plan_;
  ClientEvents events_;
  KafkaHandle rk_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<ConnectionWatch> watch_;
  std::set<std::pair<std::string, int32_t>> assigned_;
  std::set<std::pair<std::string, int32_t>> at_end_;
  std::set<std::pair<std::string, int32_t>> started_;  // start offset already applied
  // With a timestamp start: partitions that reached a message at or after it.
  // Brokers without a time index (the embedded one) answer timestamp lookups
  // with an earlier offset, so older messages are skipped here.
  std::set<std::pair<std::string, int32_t>> reached_start_time_;
  bool closed_ = false;
  bool assignment_seen_ = false;
};

}  // namespace kws
