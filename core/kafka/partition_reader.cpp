#include "core/kafka/partition_reader.hpp"

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>

#include "core/kafka/client.hpp"
#include "core/kafka/offset_jump.hpp"
#include "core/kafka/record_view.hpp"
#include "core/util/error.hpp"

namespace kws {

namespace {

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
  OffsetJumps jumps;
  MessageView view;
  const rd_kafka_topic_t* last_rkt = nullptr;
  const char* last_topic_name = nullptr;
  rd_kafka_queue_t* queue = nullptr;  // the consumer queue, while a wake hook is set
  std::function<void()> wake;

  // librdkafka calls this from its own threads whenever it queues something
  // for the application; it must not call back into librdkafka.
  static void queue_event(rd_kafka_t*, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    if (self->wake) self->wake();
  }

  // An offset error: restart the partition at its log start; the first
  // message or end there resolves the jump (offset_jump.hpp).
  void restart_after_offset_error(const rd_kafka_message_t* msg) {
    const char* topic = last_topic_name;
    if (msg->offset >= 0) jumps.jumped(topic, msg->partition, msg->offset);
    std::string why = restart_partition(rk.get(), topic, msg->partition, RD_KAFKA_OFFSET_BEGINNING);
    if (!why.empty()) {
      context.log->error("topic '" + std::string(topic) + "' partition " + std::to_string(msg->partition) +
                         ": cannot restart reading after an offset error: " + why);
    }
  }
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
  o.required = {// Ends resolve offset jumps even when the caller does not want them.
                {"enable.partition.eof", "true"},
                {"enable.auto.commit", "false"},
                {"enable.auto.offset.store", "false"},
                // Never jump silently: an offset the broker no longer has is
                // reported to us, and we move on deliberately (offset_jump.hpp).
                {"auto.offset.reset", "error"},
                // librdkafka 2.0 wants a group.id before assign(); this one
                // is never joined and never committed to.
                {"group.id", "kws-reader-" + std::to_string(getpid()) + "-" + std::to_string(++serial)}};
  impl_->rk = create_client(settings, o, context, impl_->events);
  rd_kafka_poll_set_consumer(impl_->rk.get());
}

PartitionReader::~PartitionReader() {
  if (!impl_ || !impl_->rk) return;
  if (impl_->queue) {
    rd_kafka_queue_cb_event_enable(impl_->queue, nullptr, nullptr);
    rd_kafka_queue_destroy(impl_->queue);
  }
  rd_kafka_consumer_close(impl_->rk.get());
}

void PartitionReader::on_ready(std::function<void()> wake) {
  Impl& r = *impl_;
  if (!r.queue) r.queue = rd_kafka_queue_get_consumer(r.rk.get());
  // librdkafka calls the event callback under the queue's lock, and takes
  // that lock to change it: once disabled here, no call is running or
  // will run, so `wake` may be replaced safely.
  rd_kafka_queue_cb_event_enable(r.queue, nullptr, nullptr);
  r.wake = std::move(wake);
  if (r.wake) rd_kafka_queue_cb_event_enable(r.queue, &Impl::queue_event, &r);
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
  // A topic new to this client has no leader yet. When the client is already
  // connected (the hub's reader, busy with other topics), nothing asks for
  // one until librdkafka's once-a-second scan of its topics: the partition
  // would start up to a second late, and what was produced meanwhile then
  // reaches every subscriber in one burst. A topic handle created here,
  // before the assignment creates the topic, makes librdkafka ask for its
  // leader at once, without blocking; for a topic this client already knows
  // it does nothing.
  if (rd_kafka_topic_t* rkt = rd_kafka_topic_new(impl_->rk.get(), topic.c_str(), nullptr)) {
    rd_kafka_topic_destroy(rkt);  // the assignment keeps the topic
  }
  if (rd_kafka_error_t* error = rd_kafka_incremental_assign(impl_->rk.get(), list.get())) {
    throw Error("cannot read topic '" + topic + "': " + error_text(error));
  }
}

void PartitionReader::unassign(const std::string& topic) {
  auto it = impl_->assigned.find(topic);
  if (it == impl_->assigned.end()) return;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(it->second.size())));
  for (int32_t p : it->second) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
    impl_->jumps.forget(topic, p);
  }
  impl_->assigned.erase(it);
  if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(impl_->rk.get(), list.get())) {
    impl_->context.log->warning("cannot stop reading topic '" + topic + "': " + error_text(error));
  }
}

void PartitionReader::rewind(const std::string& topic, int32_t partition, int64_t offset) {
  // A seek raises librdkafka's version barrier on this thread before it
  // returns: whatever was fetched from the old position is dropped at poll
  // time, never handed on after the call. The wait is for librdkafka's own
  // threads, not for a broker.
  PartitionList one(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(one.get(), topic.c_str(), partition)->offset = offset;
  std::string why;
  if (rd_kafka_error_t* error = rd_kafka_seek_partitions(impl_->rk.get(), one.get(), 1000)) {
    why = error_text(error);
  } else if (one->elems[0].err) {
    why = rd_kafka_err2str(one->elems[0].err);
  }
  if (!why.empty()) {
    throw Error("cannot read topic '" + topic + "' partition " + std::to_string(partition) + " again from " +
                std::to_string(offset) + ": " + why);
  }
  impl_->jumps.forget(topic, partition);  // a pending jump belonged to the old position
}

int64_t PartitionReader::cached_high_watermark(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(impl_->rk.get(), topic.c_str(), partition, &low, &high)) return -1;
  return high;
}

size_t PartitionReader::poll_batch(std::chrono::milliseconds wait, size_t max,
                                   const std::function<bool(const MessageView&)>& on_message,
                                   const std::function<void(const PartitionEvent&)>& on_event) {
  Impl& r = *impl_;
  size_t consumed = 0;
  int timeout_ms = static_cast<int>(wait.count());
  PartitionEvent jump;
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
    if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
      r.restart_after_offset_error(msg);
      continue;
    }
    if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      r.context.log->warning(std::string("reading Kafka: ") + rd_kafka_message_errstr(msg));
      continue;
    }
    // A message or an end at the log start tells how far a restart jumped.
    if (r.jumps.resolve(r.last_topic_name, msg->partition, msg->offset, jump)) {
      r.context.log->warning(describe_jump(jump));
      if (on_event) on_event(jump);
    }
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (r.options.end_events && on_event) {
        PartitionEvent end;
        end.topic = r.last_topic_name;
        end.partition = msg->partition;
        end.next_offset = msg->offset;
        on_event(end);
      }
      continue;
    }
    fill_message_view(msg, r.last_topic_name, true, r.view);
    if (!on_message(r.view)) break;
    ++consumed;
  }
  return consumed;
}

}  // namespace kws
