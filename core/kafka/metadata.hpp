#pragma once
// Metadata look-ups on a librdkafka handle, for the adapters in core/kafka/.
// Code outside core/kafka/ uses describe_cluster (cluster.hpp) instead.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/kafka/cluster.hpp"
#include "core/util/error.hpp"

namespace kws {

// A named topic the cluster does not have: an error of its own type, so that
// callers tell it from other failures without reading its words.
class UnknownTopicError : public Error {
 public:
  using Error::Error;
};

// Lists the cluster's topics, or only `topics` when not empty. A named topic
// that does not exist throws UnknownTopicError; a topic still being created
// is waited for until `timeout`.
ClusterInfo fetch_cluster_info(rd_kafka_t* rk, const std::vector<std::string>& topics,
                               const KafkaContext& context);

// One topic's metadata, or nothing when the broker says it does not exist
// (never asking it to create one only if the handle does not allow
// auto-creation). Transient errors are retried until `deadline`; `info`
// gets the brokers. Throws kws::Error otherwise.
std::optional<TopicInfo> find_topic(rd_kafka_t* rk, const std::string& name, ClusterInfo& info,
                                    std::chrono::steady_clock::time_point deadline, const KafkaContext& context);

// Queries low and high watermarks of every partition: two ListOffsets round
// trips per broker, whatever the number of partitions.
void fill_watermarks(rd_kafka_t* rk, ClusterInfo& info, std::chrono::milliseconds timeout);

// Committed offsets of `group` for the given partitions, by asking the group
// coordinator; RD_KAFKA_OFFSET_INVALID (-1001) where nothing was committed.
struct CommittedOffset {
  std::string topic;
  int32_t partition;
  int64_t offset;
};
std::vector<CommittedOffset> fetch_committed_offsets(rd_kafka_t* consumer_with_group,
                                                     const ClusterInfo& info,
                                                     std::chrono::milliseconds timeout);

// Names of the cluster's consumer groups. Throws when the brokers cannot list
// them; partial answers are kept, with a warning to context.log.
std::vector<std::string> list_consumer_groups(rd_kafka_t* rk, const KafkaContext& context);

}  // namespace kws
