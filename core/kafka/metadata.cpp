#include "core/kafka/metadata.hpp"

#include <algorithm>
#include <memory>
#include <thread>

#include "core/kafka/client.hpp"
#include "core/util/error.hpp"

namespace kws {

namespace {

struct MetadataDeleter {
  void operator()(const struct rd_kafka_metadata* md) const { rd_kafka_metadata_destroy(md); }
};
using MetadataPtr = std::unique_ptr<const struct rd_kafka_metadata, MetadataDeleter>;

struct TopicDeleter {
  void operator()(rd_kafka_topic_t* t) const { rd_kafka_topic_destroy(t); }
};

TopicInfo convert_topic(const rd_kafka_metadata_topic& t) {
  TopicInfo topic;
  topic.name = t.topic;
  for (int i = 0; i < t.partition_cnt; ++i) {
    const auto& p = t.partitions[i];
    PartitionInfo part;
    part.id = p.id;
    part.leader = p.leader;
    part.replicas.assign(p.replicas, p.replicas + p.replica_cnt);
    part.in_sync_replicas.assign(p.isrs, p.isrs + p.isr_cnt);
    if (p.err) part.error = rd_kafka_err2str(p.err);
    topic.partitions.push_back(std::move(part));
  }
  std::sort(topic.partitions.begin(), topic.partitions.end(),
            [](const PartitionInfo& a, const PartitionInfo& b) { return a.id < b.id; });
  return topic;
}

void copy_brokers(const struct rd_kafka_metadata& md, ClusterInfo& info) {
  info.brokers.clear();
  for (int i = 0; i < md.broker_cnt; ++i) {
    info.brokers.push_back({md.brokers[i].id, md.brokers[i].host, md.brokers[i].port});
  }
  std::sort(info.brokers.begin(), info.brokers.end(),
            [](const BrokerInfo& a, const BrokerInfo& b) { return a.id < b.id; });
}

bool transient(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
         err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
         err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
}

}  // namespace

std::optional<TopicInfo> find_topic(rd_kafka_t* rk, const std::string& name, ClusterInfo& info,
                                    std::chrono::steady_clock::time_point deadline, const KafkaContext& context) {
  std::unique_ptr<rd_kafka_topic_t, TopicDeleter> rkt(rd_kafka_topic_new(rk, name.c_str(), nullptr));
  if (!rkt) throw Error("bad topic name '" + name + "'", exit_usage);
  std::string last = "timed out";
  while (std::chrono::steady_clock::now() < deadline) {
    if (context.stopping()) throw Error("interrupted while looking up topic '" + name + "'", exit_interrupted);
    const struct rd_kafka_metadata* raw = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt.get(), &raw, 1000);
    MetadataPtr md(raw);
    if (err) {
      last = rd_kafka_err2str(err);
      if (!transient(err)) break;
      continue;
    }
    copy_brokers(*md, info);
    if (md->topic_cnt < 1) {
      last = "broker returned no metadata for it";
      continue;
    }
    const auto& t = md->topics[0];
    if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) return std::nullopt;
    if (t.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
        t.err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION) {
      throw Error("topic '" + name + "': " + rd_kafka_err2str(t.err));
    }
    if (t.err || t.partition_cnt == 0) {
      last = t.err ? rd_kafka_err2str(t.err) : "no partitions yet";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    return convert_topic(t);
  }
  throw Error("cannot get metadata for topic '" + name + "': " + last);
}

namespace {

TopicInfo fetch_one_topic(rd_kafka_t* rk, const std::string& name, ClusterInfo& info,
                          std::chrono::steady_clock::time_point deadline, const KafkaContext& context) {
  if (auto topic = find_topic(rk, name, info, deadline, context)) return std::move(*topic);
  throw UnknownTopicError("unknown topic '" + name +
              "' (it does not exist; producing to it creates it where the broker allows "
              "auto-creation)");
}

}  // namespace

ClusterInfo fetch_cluster_info(rd_kafka_t* rk, const std::vector<std::string>& topics,
                               const KafkaContext& context) {
  const auto timeout = context.timeout;
  ClusterInfo info;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (topics.empty()) {
    const struct rd_kafka_metadata* raw = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &raw, static_cast<int>(timeout.count()));
    MetadataPtr md(raw);
    if (err) throw Error(std::string("cannot list topics: ") + rd_kafka_err2str(err));
    copy_brokers(*md, info);
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) info.topics.push_back(convert_topic(md->topics[i]));
    }
  } else {
    for (const auto& name : topics) {
      if (std::any_of(info.topics.begin(), info.topics.end(),
                      [&](const TopicInfo& t) { return t.name == name; })) {
        continue;
      }
      info.topics.push_back(fetch_one_topic(rk, name, info, deadline, context));
    }
  }
  std::sort(info.topics.begin(), info.topics.end(),
            [](const TopicInfo& a, const TopicInfo& b) { return a.name < b.name; });
  return info;
}

void fill_watermarks(rd_kafka_t* rk, ClusterInfo& info, std::chrono::milliseconds timeout) {
  // ListOffsets with the timestamps -2 (earliest) and -1 (latest) answers for
  // every partition at once; one query per partition took one round trip each.
  struct Lists {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(0);
    ~Lists() { rd_kafka_topic_partition_list_destroy(list); }
  };
  Lists lows, highs;
  for (const auto& topic : info.topics) {
    for (const auto& p : topic.partitions) {
      rd_kafka_topic_partition_list_add(lows.list, topic.name.c_str(), p.id)->offset = RD_KAFKA_OFFSET_BEGINNING;
      rd_kafka_topic_partition_list_add(highs.list, topic.name.c_str(), p.id)->offset = RD_KAFKA_OFFSET_END;
    }
  }
  if (lows.list->cnt == 0) return;
  const int ms = static_cast<int>(timeout.count());
  const rd_kafka_resp_err_t low_err = rd_kafka_offsets_for_times(rk, lows.list, ms);
  const rd_kafka_resp_err_t high_err = rd_kafka_offsets_for_times(rk, highs.list, ms);
  for (auto& topic : info.topics) {
    for (auto& p : topic.partitions) {
      const auto* low = rd_kafka_topic_partition_list_find(lows.list, topic.name.c_str(), p.id);
      const auto* high = rd_kafka_topic_partition_list_find(highs.list, topic.name.c_str(), p.id);
      rd_kafka_resp_err_t err = low_err ? low_err : high_err ? high_err : low->err ? low->err : high->err;
      if (err) {
        p.error = rd_kafka_err2str(err);
        continue;
      }
      p.low_watermark = low->offset;
      p.high_watermark = high->offset;
    }
  }
}

std::vector<CommittedOffset> fetch_committed_offsets(rd_kafka_t* consumer_with_group,
                                                     const ClusterInfo& info,
                                                     std::chrono::milliseconds timeout) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(0);
  for (const auto& t : info.topics) {
    for (const auto& p : t.partitions) rd_kafka_topic_partition_list_add(list, t.name.c_str(), p.id);
  }
  rd_kafka_resp_err_t err = rd_kafka_committed(consumer_with_group, list, static_cast<int>(timeout.count()));
  if (err) {
    rd_kafka_topic_partition_list_destroy(list);
    throw Error(std::string("cannot fetch committed offsets: ") + rd_kafka_err2str(err));
  }
  std::vector<CommittedOffset> out;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    out.push_back({e.topic, e.partition, e.err ? RD_KAFKA_OFFSET_INVALID : e.offset});
  }
  rd_kafka_topic_partition_list_destroy(list);
  return out;
}

std::vector<std::string> list_consumer_groups(rd_kafka_t* rk, const KafkaContext& context) {
  const auto timeout = context.timeout;
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
  char errstr[256];
  rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout.count()), errstr, sizeof errstr);
  rd_kafka_ListConsumerGroups(rk, options, queue);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 1000);
  rd_kafka_queue_destroy(queue);
  if (!event) throw Error("timed out listing consumer groups; name the groups with -G GROUP");

  std::vector<std::string> names;
  std::string failure;
  if (rd_kafka_event_error(event)) {
    failure = rd_kafka_event_error_string(event);
  } else {
    const auto* result = rd_kafka_event_ListConsumerGroups_result(event);
    size_t count = 0;
    const auto** groups = rd_kafka_ListConsumerGroups_result_valid(result, &count);
    for (size_t i = 0; i < count; ++i) names.emplace_back(rd_kafka_ConsumerGroupListing_group_id(groups[i]));
    size_t error_count = 0;
    const auto** errors = rd_kafka_ListConsumerGroups_result_errors(result, &error_count);
    // Groups from the brokers that answered are still worth showing; say
    // which ones did not.
    for (size_t i = 0; i < error_count; ++i) {
      if (!failure.empty()) failure += "; ";
      failure += rd_kafka_error_string(errors[i]);
    }
    if (!failure.empty() && !names.empty()) {
      context.log->warning("some brokers could not list their groups: " + failure);
      failure.clear();
    }
  }
  rd_kafka_event_destroy(event);
  if (!failure.empty()) {
    throw Error("the brokers cannot list consumer groups (" + failure + "); name the groups with -G GROUP");
  }
  // Each broker lists the groups it coordinates; a group must appear once.
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace kws

namespace kws {

int64_t ClusterInfo::high_watermark(const std::string& topic, int32_t partition) const {
  for (const auto& t : topics) {
    if (t.name != topic) continue;
    for (const auto& p : t.partitions) {
      if (p.id == partition) return p.high_watermark;
    }
  }
  return -1;
}

ClusterReport describe_cluster(const KafkaSettings& settings, const ClusterQuery& query, const KafkaContext& context) {
  ClientEvents events;
  ClientOptions options;
  options.type = RD_KAFKA_PRODUCER;
  // Looking must not create: never ask the broker to auto-create a topic named here.
  options.required = {{"allow.auto.create.topics", "false"}};
  KafkaHandle rk = create_client(settings, options, context, events);
  wait_for_brokers(rk.get(), settings.brokers(), events, context);
  ClusterReport report;
  report.cluster = fetch_cluster_info(rk.get(), query.topics, context);
  if (query.watermarks) fill_watermarks(rk.get(), report.cluster, context.timeout);

  std::vector<std::string> groups = query.groups;
  if (query.all_groups) {
    for (auto& g : list_consumer_groups(rk.get(), context)) groups.push_back(g);
  }
  for (const auto& group : groups) {
    ClientEvents group_events;
    ClientOptions group_options;
    group_options.type = RD_KAFKA_CONSUMER;
    group_options.required = {{"group.id", group}, {"enable.auto.commit", "false"}};
    KafkaHandle consumer = create_client(settings, group_options, context, group_events);
    for (const auto& c : fetch_committed_offsets(consumer.get(), report.cluster, context.timeout)) {
      // Without named topics, show only where the group has committed something.
      if (c.offset < 0 && query.topics.empty()) continue;
      report.groups.push_back({group, c.topic, c.partition, c.offset, report.cluster.high_watermark(c.topic, c.partition)});
    }
    rd_kafka_consumer_close(consumer.get());
  }
  return report;
}

}  // namespace kws
