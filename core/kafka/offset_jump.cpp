#include "core/kafka/offset_jump.hpp"

#include <cstring>
#include <memory>

#include "core/kafka/client.hpp"

namespace kws {

namespace {

std::string take_error(rd_kafka_error_t* error) {
  if (!error) return "";
  std::string why = rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  return why;
}

// Incremental (un)assignment is refused for members of a group that
// rebalances eagerly; a reader without a group (no protocol) may use it.
bool eager_group_member(rd_kafka_t* rk) {
  const char* protocol = rd_kafka_rebalance_protocol(rk);
  return protocol && std::strcmp(protocol, "EAGER") == 0;
}

}  // namespace

void OffsetJumps::jumped(const std::string& topic, int32_t partition, int64_t from) {
  // A second report before the first resolved keeps the first position:
  // everything from there on is what the reader never handed on.
  pending_.emplace(std::make_pair(topic, partition), from);
}

bool OffsetJumps::resolve_pending(const char* topic, int32_t partition, int64_t next, PartitionEvent& event) {
  auto it = pending_.find({topic, partition});
  if (it == pending_.end()) return false;
  const int64_t from = it->second;
  pending_.erase(it);
  if (next == from) return false;  // the log start is where the reader stood: nothing missed
  event.kind = next > from ? PartitionEvent::Kind::lost : PartitionEvent::Kind::rewound;
  event.topic = topic;
  event.partition = partition;
  event.lost_from = from;
  event.next_offset = next;
  return true;
}

std::string restart_partition(rd_kafka_t* rk, const char* topic, int32_t partition, int64_t offset,
                              const std::function<int64_t(const char*, int32_t)>& start_of) {
  if (!eager_group_member(rk)) {
    PartitionList one(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(one.get(), topic, partition);
    std::string why = take_error(rd_kafka_incremental_unassign(rk, one.get()));
    if (!why.empty()) return why;
    one->elems[0].offset = offset;
    return take_error(rd_kafka_incremental_assign(rk, one.get()));
  }
  rd_kafka_topic_partition_list_t* raw = nullptr;
  if (rd_kafka_resp_err_t err = rd_kafka_assignment(rk, &raw)) return rd_kafka_err2str(err);
  PartitionList all(raw);
  // Where the application stands on each partition (RD_KAFKA_OFFSET_INVALID
  // where it consumed nothing yet: then where it started).
  rd_kafka_position(rk, all.get());
  for (int i = 0; i < all->cnt; ++i) {
    auto& e = all->elems[i];
    if (e.offset < 0 && start_of) e.offset = start_of(e.topic, e.partition);
  }
  rd_kafka_topic_partition_t* target = rd_kafka_topic_partition_list_find(all.get(), topic, partition);
  if (!target) return "partition is no longer assigned";
  target->offset = offset;
  rd_kafka_resp_err_t err = rd_kafka_assign(rk, all.get());
  return err ? rd_kafka_err2str(err) : "";
}

std::string describe_jump(const PartitionEvent& e) {
  std::string where = "topic '" + std::string(e.topic) + "' partition " + std::to_string(e.partition);
  if (e.kind == PartitionEvent::Kind::lost) {
    const int64_t count = e.next_offset - e.lost_from;
    return where + ": offsets " + std::to_string(e.lost_from) + " to " + std::to_string(e.next_offset - 1) +
           " no longer exist (" + std::to_string(count) + " message" + (count == 1 ? "" : "s") +
           " deleted by retention before they were read); going on at " + std::to_string(e.next_offset);
  }
  return where + ": the partition now ends below offset " + std::to_string(e.lost_from) +
         " (the topic was deleted and created again, or truncated); reading it again from " +
         std::to_string(e.next_offset);
}

}  // namespace kws
