#include "core/kafka/producer.hpp"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

#include "core/kafka/client.hpp"
#include "core/kafka/metadata.hpp"
#include "core/util/error.hpp"

namespace kws {

namespace {

ProduceError classify(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return ProduceError::none;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL: return ProduceError::queue_full;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE: return ProduceError::too_large;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART: return ProduceError::unknown_topic;
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION: return ProduceError::bad_partition;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED: return ProduceError::not_allowed;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT: return ProduceError::timed_out;
    default: return ProduceError::kafka_error;
  }
}

}  // namespace

constexpr size_t kMaxTopicHandles = 4096;

struct Producer::Impl {
  KafkaContext context;
  std::string brokers;
  ClientEvents events;
  KafkaHandle rk;
  std::unique_ptr<ConnectionWatch> watch;
  std::optional<std::string> lost;  // sticky: the cluster is not trusted again
  std::mutex topics_mutex;  // try_produce may run on several I/O threads
  std::unordered_map<std::string, rd_kafka_topic_t*> topics;
  std::string last_topic;
  rd_kafka_topic_t* last_topic_handle = nullptr;
  std::function<void(const Delivery&)> handler;
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> failed{0};
  mutable std::mutex first_error_mutex;
  std::string first_error;

  ~Impl() {
    for (auto& [name, handle] : topics) rd_kafka_topic_destroy(handle);
  }

  rd_kafka_topic_t* topic_handle(std::string_view topic) {
    std::lock_guard<std::mutex> lock(topics_mutex);
    // Most callers produce to one topic: compare with the last one before
    // building a std::string key (an allocation per record for long names).
    if (last_topic_handle && topic == last_topic) return last_topic_handle;
    auto it = topics.find(std::string(topic));
    if (it != topics.end()) {
      last_topic = it->first;
      last_topic_handle = it->second;
      return it->second;
    }
    // A server's clients may name any number of topics over time: the cache
    // starts again rather than grow (a record in flight keeps its topic
    // alive inside librdkafka; a dropped handle is made again on demand).
    if (topics.size() >= kMaxTopicHandles) {
      for (auto& [name, cached] : topics) rd_kafka_topic_destroy(cached);
      topics.clear();
      last_topic.clear();
      last_topic_handle = nullptr;
    }
    rd_kafka_topic_t* handle = rd_kafka_topic_new(rk.get(), std::string(topic).c_str(), nullptr);
    if (!handle) return nullptr;
    topics.emplace(std::string(topic), handle);
    return handle;
  }

  void record_failure(std::string_view topic, const std::string& why) {
    ++failed;
    std::lock_guard<std::mutex> lock(first_error_mutex);
    if (first_error.empty()) first_error = "topic '" + std::string(topic) + "': " + why;
  }

  rd_kafka_resp_err_t enqueue(const OutgoingRecord& r) {
    rd_kafka_topic_t* rkt = topic_handle(r.topic);
    if (!rkt) return rd_kafka_last_error();
    // librdkafka's vararg macros cast their arguments unparenthesised.
    void* value = r.value ? const_cast<char*>(r.value->data()) : nullptr;
    size_t value_size = r.value ? r.value->size() : 0;
    const void* key = r.key ? r.key->data() : nullptr;
    size_t key_size = r.key ? r.key->size() : 0;
    int32_t partition = r.partition.value_or(RD_KAFKA_PARTITION_UA);
    void* token = reinterpret_cast<void*>(static_cast<uintptr_t>(r.token));
    rd_kafka_headers_t* headers = nullptr;
    if (r.headers && !r.headers->empty()) {
      headers = rd_kafka_headers_new(r.headers->size());
      for (const auto& h : *r.headers) {
        rd_kafka_header_add(headers, h.name.data(), static_cast<ssize_t>(h.name.size()),
                            h.value ? h.value->data() : nullptr, h.value ? static_cast<ssize_t>(h.value->size()) : 0);
      }
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(value, value_size), RD_KAFKA_V_KEY(key, key_size), RD_KAFKA_V_TIMESTAMP(r.timestamp_ms),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(token), RD_KAFKA_V_END);
    if (err && headers) rd_kafka_headers_destroy(headers);  // ownership passes only on success
    return err;
  }

  static void delivery_callback(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<Impl*>(static_cast<ClientEvents*>(opaque)->owner);
    Delivery d;
    d.token = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(msg->_private));
    d.topic = rd_kafka_topic_name(msg->rkt);
    d.partition = msg->partition;
    d.offset = msg->offset;
    d.error = classify(msg->err);
    if (msg->err) {
      d.message = rd_kafka_err2str(msg->err);
      self->record_failure(d.topic, std::string(d.message));
    } else {
      ++self->delivered;
    }
    if (self->handler) self->handler(d);
  }
};

Producer::Producer(const KafkaSettings& settings, const KafkaContext& context) : impl_(std::make_unique<Impl>()) {
  impl_->context = context;
  impl_->brokers = settings.brokers();
  ClientOptions options;
  options.type = RD_KAFKA_PRODUCER;
  // Safe by default: no duplicates on retry, every in-sync replica acknowledges.
  options.defaults = {{"enable.idempotence", "true"}, {"acks", "all"}};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_dr_msg_cb(conf, &Impl::delivery_callback);
  impl_->events.owner = impl_.get();
  impl_->rk = create_client(settings, options, context, impl_->events, conf);
  impl_->watch = connect_and_watch(impl_->rk.get(), settings.brokers(), impl_->events, context);
}

Producer::~Producer() = default;

int32_t Producer::prepare_topic(const std::string& topic) {
  ClusterInfo info = fetch_cluster_info(impl_->rk.get(), {topic}, impl_->context);
  return static_cast<int32_t>(info.topics.at(0).partitions.size());
}

void Producer::on_delivery(std::function<void(const Delivery&)> handler) { impl_->handler = std::move(handler); }

uint64_t Producer::in_flight() const { return static_cast<uint64_t>(rd_kafka_outq_len(impl_->rk.get())); }
uint64_t Producer::delivered() const { return impl_->delivered; }
uint64_t Producer::failed() const { return impl_->failed; }
std::string Producer::first_error() const {
  std::lock_guard<std::mutex> lock(impl_->first_error_mutex);
  return impl_->first_error;
}

ProduceOutcome Producer::try_produce(const OutgoingRecord& record) {
  rd_kafka_resp_err_t err = impl_->enqueue(record);
  if (!err) return {};
  return {classify(err), rd_kafka_err2str(err)};
}

void Producer::serve_deliveries(std::chrono::milliseconds wait) {
  rd_kafka_poll(impl_->rk.get(), static_cast<int>(wait.count()));
}

std::optional<std::string> Producer::connection_lost() {
  if (impl_->events.fatal()) return "producer failed: " + impl_->events.last_error();
  rd_kafka_poll(impl_->rk.get(), 0);
  if (!impl_->lost) impl_->lost = impl_->watch->check();
  return impl_->lost;
}

bool Producer::produce(const OutgoingRecord& record, std::string* rejected) {
  if (impl_->lost) return false;
  while (true) {
    rd_kafka_resp_err_t err = impl_->enqueue(record);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Serve delivery reports as they come, so delivered messages are freed
      // promptly instead of piling up until the queue is full.
      rd_kafka_poll(impl_->rk.get(), 0);
      break;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      // Backpressure: wait for deliveries to make room instead of growing.
      rd_kafka_poll(impl_->rk.get(), 50);
      if (connection_lost()) return false;
      continue;
    }
    std::string why = rd_kafka_err2str(err);
    if (classify(err) == ProduceError::too_large) {
      char limit[32] = "?";
      size_t size = sizeof limit;
      rd_kafka_conf_get(rd_kafka_conf(impl_->rk.get()), "message.max.bytes", limit, &size);
      size_t bytes = (record.value ? record.value->size() : 0) + (record.key ? record.key->size() : 0);
      why = "message of " + std::to_string(bytes) + " bytes is larger than message.max.bytes (" + limit +
            "; -X message.max.bytes=N raises it, up to what the broker accepts)";
    }
    impl_->record_failure(record.topic, why);
    if (rejected) *rejected = why;
    break;
  }
  if (impl_->events.fatal()) throw Error("producer failed: " + impl_->events.last_error());
  return true;
}

void Producer::flush(const StopCheck& give_up) {
  while (rd_kafka_outq_len(impl_->rk.get()) > 0) {
    rd_kafka_flush(impl_->rk.get(), 100);
    if (give_up && give_up()) return;
    // Stop waiting once the cluster is lost; the caller reports what is
    // still undelivered, and why (connection_lost()).
    if (connection_lost()) return;
    if (impl_->events.fatal()) throw Error("producer failed: " + impl_->events.last_error());
  }
  rd_kafka_poll(impl_->rk.get(), 0);
}

}  // namespace kws
