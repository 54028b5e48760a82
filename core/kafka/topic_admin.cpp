#include "core/kafka/topic_admin.hpp"

#include <librdkafka/rdkafka.h>

#include <mutex>

#include "core/kafka/client.hpp"
#include "core/kafka/metadata.hpp"
#include "core/kafka/partition_reader.hpp"

namespace kws {

struct KafkaTopicAdmin::Impl {
  KafkaSettings settings;
  KafkaContext context;
  // Lookups create a topic handle per name, and librdkafka keeps every name
  // it ever saw in its metadata requests; the probe handle sees no topic,
  // so probing stays one small request however many names clients tried.
  ClientEvents lookup_events;
  KafkaHandle lookups;
  ClientEvents probe_events;
  KafkaHandle probe;
  std::unique_ptr<ConnectionWatch> watch;
};

KafkaTopicAdmin::KafkaTopicAdmin(const KafkaSettings& settings, const KafkaContext& context)
    : impl_(std::make_unique<Impl>()) {
  Impl& a = *impl_;
  a.settings = settings;
  a.context = context;
  ClientOptions lookup;
  lookup.type = RD_KAFKA_CONSUMER;
  // Looking must not create: a subscription to a missing topic is an error.
  lookup.required = {{"allow.auto.create.topics", "false"}};
  a.lookups = create_client(settings, lookup, context, a.lookup_events);
  ClientOptions probe;
  probe.type = RD_KAFKA_PRODUCER;
  a.probe = create_client(settings, probe, context, a.probe_events);
  a.watch = std::make_unique<ConnectionWatch>(a.probe.get(), a.probe_events, settings.brokers(), context.timeout);
}

KafkaTopicAdmin::~KafkaTopicAdmin() = default;

TopicLookup KafkaTopicAdmin::describe(const std::string& topic) {
  TopicLookup out;
  try {
    ClusterInfo info = fetch_cluster_info(impl_->lookups.get(), {topic}, impl_->context);
    fill_watermarks(impl_->lookups.get(), info, impl_->context.timeout);
    for (const auto& p : info.topics.at(0).partitions) {
      if (!p.error.empty()) {
        out.error = TopicLookup::Error::failed;
        out.message = "topic '" + topic + "' partition " + std::to_string(p.id) + ": " + p.error;
        out.partitions.clear();
        return out;
      }
      out.partitions.push_back({p.low_watermark, p.high_watermark});
    }
  } catch (const UnknownTopicError& e) {
    out.error = TopicLookup::Error::unknown_topic;
    out.message = e.what();
  } catch (const std::exception& e) {
    out.error = TopicLookup::Error::failed;
    out.message = e.what();
  }
  return out;
}

std::vector<int64_t> KafkaTopicAdmin::offsets_for_time(const std::string& topic, int64_t ms, size_t partitions) {
  std::vector<int64_t> out(partitions, -1);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions));
  for (size_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), static_cast<int32_t>(p))->offset = ms;
  }
  if (!rd_kafka_offsets_for_times(impl_->lookups.get(), list, static_cast<int>(impl_->context.timeout.count()))) {
    for (int i = 0; i < list->cnt; ++i) {
      const auto& e = list->elems[i];
      if (!e.err && e.offset >= 0) out[static_cast<size_t>(e.partition)] = e.offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  return out;
}

std::vector<std::string> KafkaTopicAdmin::topic_names() {
  ClusterInfo info = fetch_cluster_info(impl_->lookups.get(), {}, impl_->context);
  std::vector<std::string> names;
  names.reserve(info.topics.size());
  for (const auto& t : info.topics) names.push_back(t.name);
  return names;
}

std::unique_ptr<PartitionFeed> KafkaTopicAdmin::open_reader() {
  PartitionReaderOptions o;
  o.end_events = true;
  o.fetch_queue_kbytes = 4096;
  return std::make_unique<PartitionReader>(impl_->settings, impl_->context, o);
}

std::optional<std::string> KafkaTopicAdmin::reachability() {
  rd_kafka_poll(impl_->probe.get(), 0);  // serves error_cb, which the watch reads
  return impl_->watch->check();
}

}  // namespace kws
