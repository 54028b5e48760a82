#include "core/kafka/partition_reader.hpp"

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <atomic>
#include <map>

#include "core/kafka/client.hpp"
#include "core/kafka/metadata.hpp"
#include "core/kafka/record_view.hpp"
#include "core/util/error.hpp"

namespace kws {

namespace {

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

std::string error_text(rd_kafka_error_t* error) {
  std::string why = rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  return why;
}

}  // namespace

struct PartitionReader::Impl {
  KafkaContext context;
  ClientEvents events;
  KafkaHandle rk;
  PartitionReaderOptions options;
  std::map<std::string, std::vector<int32_t>> assigned;
  MessageView view;
  const rd_kafka_topic_t* last_rkt = nullptr;
  const char* last_topic_name = nullptr;
};

PartitionReader::PartitionReader(const KafkaSettings& settings, const KafkaContext& context,
                                 PartitionReaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  static std::atomic<uint64_t> serial{0};
  impl_->context = context;
  impl_->options = options;
  ClientOptions o;
  o.type = RD_KAFKA_CONSUMER;
  o.defaults = {{"queued.max.messages.kbytes", std::to_string(options.fetch_queue_kbytes)},
                // A broker (the embedded one too) answers a fetch as soon as
                // it has data; the wait only bounds how late an empty answer
                // comes, which is when a catch-up reader learns it reached
                // the end of a partition.
                {"fetch.wait.max.ms", "50"}};
  o.required = {{"enable.partition.eof", options.end_events ? "true" : "false"},
                {"enable.auto.commit", "false"},
                {"enable.auto.offset.store", "false"},
                // An offset the broker no longer has (retention) starts at
                // the oldest it has, not at the end.
                {"auto.offset.reset", "earliest"},
                // librdkafka 2.0 wants a group.id before assign(); this one
                // is never joined and never committed to.
                {"group.id", "kws-reader-" + std::to_string(getpid()) + "-" + std::to_string(++serial)}};
  impl_->rk = create_client(settings, o, context, impl_->events);
  rd_kafka_poll_set_consumer(impl_->rk.get());
}

PartitionReader::~PartitionReader() {
  if (impl_ && impl_->rk) rd_kafka_consumer_close(impl_->rk.get());
}

TopicLookup PartitionReader::describe(const std::string& topic) {
  TopicLookup out;
  try {
    ClusterInfo info = fetch_cluster_info(impl_->rk.get(), {topic}, impl_->context);
    fill_watermarks(impl_->rk.get(), info, impl_->context.timeout);
    for (const auto& p : info.topics.at(0).partitions) {
      if (!p.error.empty()) {
        out.error = TopicLookup::Error::failed;
        out.message = "topic '" + topic + "' partition " + std::to_string(p.id) + ": " + p.error;
        return out;
      }
      out.partitions.push_back({p.low_watermark, p.high_watermark});
    }
  } catch (const Error& e) {
    std::string why = e.what();
    out.error = why.rfind("unknown topic", 0) == 0 ? TopicLookup::Error::unknown_topic : TopicLookup::Error::failed;
    out.message = why;
  }
  return out;
}

std::vector<int64_t> PartitionReader::offsets_for_time(const std::string& topic, int64_t ms, size_t partitions) {
  std::vector<int64_t> out(partitions, -1);
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions)));
  for (size_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), static_cast<int32_t>(p))->offset = ms;
  }
  if (rd_kafka_offsets_for_times(impl_->rk.get(), list.get(), static_cast<int>(impl_->context.timeout.count()))) {
    return out;
  }
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    if (!e.err && e.offset >= 0) out[static_cast<size_t>(e.partition)] = e.offset;
  }
  return out;
}

void PartitionReader::assign(const std::string& topic, const std::vector<int64_t>& offsets) {
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  auto& mine = impl_->assigned[topic];
  for (size_t p = 0; p < offsets.size(); ++p) {
    if (offsets[p] < 0) continue;
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), static_cast<int32_t>(p))->offset = offsets[p];
    mine.push_back(static_cast<int32_t>(p));
  }
  if (list->cnt == 0) return;
  if (rd_kafka_error_t* error = rd_kafka_incremental_assign(impl_->rk.get(), list.get())) {
    throw Error("cannot read topic '" + topic + "': " + error_text(error));
  }
}

void PartitionReader::unassign(const std::string& topic) {
  auto it = impl_->assigned.find(topic);
  if (it == impl_->assigned.end()) return;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(it->second.size())));
  for (int32_t p : it->second) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  impl_->assigned.erase(it);
  if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(impl_->rk.get(), list.get())) {
    impl_->context.log->warning("cannot stop reading topic '" + topic + "': " + error_text(error));
  }
}

int64_t PartitionReader::cached_high_watermark(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(impl_->rk.get(), topic.c_str(), partition, &low, &high)) return -1;
  return high;
}

size_t PartitionReader::poll_batch(std::chrono::milliseconds wait, size_t max,
                                   const std::function<bool(const MessageView&)>& on_message,
                                   const std::function<void(const PartitionEnd&)>& on_end) {
  Impl& r = *impl_;
  size_t consumed = 0;
  int timeout_ms = static_cast<int>(wait.count());
  while (consumed < max) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(r.rk.get(), timeout_ms);
    timeout_ms = 0;
    if (!msg) break;
    struct Destroy {
      rd_kafka_message_t* m;
      ~Destroy() { rd_kafka_message_destroy(m); }
    } destroy{msg};
    if (msg->rkt != r.last_rkt) {
      r.last_rkt = msg->rkt;
      r.last_topic_name = msg->rkt ? rd_kafka_topic_name(msg->rkt) : "";
    }
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (on_end) on_end({r.last_topic_name, msg->partition, msg->offset});
      continue;
    }
    if (msg->err) {
      r.context.log->warning(std::string("reading Kafka: ") + rd_kafka_message_errstr(msg));
      continue;
    }
    fill_message_view(msg, r.last_topic_name, true, r.view);
    if (!on_message(r.view)) break;
    ++consumed;
  }
  return consumed;
}

}  // namespace kws
