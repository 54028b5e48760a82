#pragma once
// What a cluster holds: brokers, topics, partitions and their offsets.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

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
};

// Lists the cluster's topics, or only `topics` when not empty. A named topic
// that does not exist throws kws::Error ("unknown topic"); a topic still being
// created is waited for until `timeout`.
ClusterInfo fetch_cluster_info(rd_kafka_t* rk, const std::vector<std::string>& topics,
                               std::chrono::milliseconds timeout);

// Queries low and high watermarks of every partition.
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
// them (the embedded broker cannot).
std::vector<std::string> list_consumer_groups(rd_kafka_t* rk, std::chrono::milliseconds timeout);

}  // namespace kws
