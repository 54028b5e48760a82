#pragma once
// What a cluster holds: brokers, topics, partitions, their offsets, and
// where consumer groups stand. Plain values, no librdkafka types.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.hpp"
#include "core/kafka/context.hpp"

namespace kws {

struct BrokerInfo {
  int32_t id = -1;
  std::string host;
  int port = 0;
};

struct PartitionInfo {
  int32_t id = -1;
  int32_t leader = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> in_sync_replicas;
  int64_t low_watermark = -1;   // filled by fill_watermarks
  int64_t high_watermark = -1;
  std::string error;            // "" when fine
};

struct TopicInfo {
  std::string name;
  std::vector<PartitionInfo> partitions;
};

struct ClusterInfo {
  std::vector<BrokerInfo> brokers;
  std::vector<TopicInfo> topics;  // sorted by name
  // The high watermark of one partition; -1 when unknown.
  int64_t high_watermark(const std::string& topic, int32_t partition) const;
};

// Where one consumer group stands on one partition.
struct GroupPosition {
  std::string group;
  std::string topic;
  int32_t partition = -1;
  int64_t committed = -1;  // < 0: nothing committed
  int64_t high = -1;       // < 0: unknown
  // Messages the group has not consumed yet; nothing when either end is unknown.
  std::optional<int64_t> lag() const {
    if (committed < 0 || high < 0) return std::nullopt;
    return high - committed;
  }
};

struct ClusterReport {
  ClusterInfo cluster;              // with watermarks
  std::vector<GroupPosition> groups;
};

struct ClusterQuery {
  std::vector<std::string> topics;  // empty: all topics
  std::vector<std::string> groups;  // groups to report on
  bool all_groups = false;          // also every group the cluster lists
  // false: metadata only (names, partitions, leaders), no watermark round
  // trip per partition; for listings that must be quick (shell completion).
  bool watermarks = true;
};

// Connects (without ever creating a topic), looks everything up and
// disconnects. Throws kws::Error for an unreachable cluster or unknown topic.
ClusterReport describe_cluster(const KafkaSettings& settings, const ClusterQuery& query, const KafkaContext& context);

// Changing what a cluster holds, through librdkafka's admin API (on a real
// cluster and on kws broker alike). Each topic has its own outcome: one that
// fails does not stop the others. A request the cluster does not answer at
// all (unreachable, timed out) throws kws::Error instead.
struct NewTopic {
  std::string name;
  int partitions = -1;   // -1: the broker's default
  int replication = -1;  // -1: the broker's default
  std::vector<std::pair<std::string, std::string>> configs;
};
struct TopicOutcome {
  std::string name;
  std::string error;            // "" when done; else what went wrong, in words
  bool already_exists = false;  // create: the topic was there before
};
std::vector<TopicOutcome> create_topics(const KafkaSettings& settings, const std::vector<NewTopic>& topics,
                                        const KafkaContext& context);
std::vector<TopicOutcome> delete_topics(const KafkaSettings& settings, const std::vector<std::string>& topics,
                                        const KafkaContext& context);

// `topic` with as many partitions as `source` has, unless `topic` exists
// (then it is left as it is). Throws kws::Error when `source` does not exist
// or the creation fails.
struct CreatedLike {
  bool created = false;
  int32_t partitions = 0;         // of `topic` now
  int32_t source_partitions = 0;
};
CreatedLike create_topic_like(const KafkaSettings& settings, const std::string& topic, const std::string& source,
                              const KafkaContext& context);

}  // namespace kws
