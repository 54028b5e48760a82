#include "core/kafka/producer.hpp"

#include "core/error.hpp"
#include "core/kafka/metadata.hpp"

namespace kws {

Producer::Producer(const KafkaSettings& settings, int verbosity, std::chrono::milliseconds connect_timeout)
    : timeout_(connect_timeout) {
  ClientOptions options;
  options.type = RD_KAFKA_PRODUCER;
  // Safe by default: no duplicates on retry, every in-sync replica acknowledges.
  options.defaults = {{"enable.idempotence", "true"}, {"acks", "all"}};
  options.verbosity = verbosity;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_dr_msg_cb(conf, &Producer::delivery_callback);
  rk_ = create_client(settings, options, events_, conf);
  wait_for_brokers(rk_.get(), settings.brokers(), events_, connect_timeout);
  watch_ = std::make_unique<ConnectionWatch>(rk_.get(), events_, settings.brokers(), connect_timeout);
}

Producer::~Producer() {
  for (auto& [name, handle] : topics_) rd_kafka_topic_destroy(handle);
}

rd_kafka_topic_t* Producer::topic_handle(const std::string& topic) {
  auto it = topics_.find(topic);
  if (it != topics_.end()) return it->second;
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk_.get(), topic.c_str(), nullptr);
  if (!handle) {
    throw Error("bad topic '" + topic + "': " + rd_kafka_err2str(rd_kafka_last_error()));
  }
  topics_.emplace(topic, handle);
  return handle;
}

int32_t Producer::prepare_topic(const std::string& topic) {
  ClusterInfo info = fetch_cluster_info(rk_.get(), {topic}, timeout_);
  return static_cast<int32_t>(info.topics.at(0).partitions.size());
}

void Producer::delivery_callback(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  auto* self = static_cast<Producer*>(msg->_private);
  const char* topic = rd_kafka_topic_name(msg->rkt);
  if (msg->err) {
    self->record_failure(topic, msg->err);
  } else {
    ++self->delivered_;
  }
  if (self->listener_) self->listener_({topic, msg->partition, msg->offset, msg->err});
}

void Producer::record_failure(const std::string& topic, rd_kafka_resp_err_t err) {
  ++failed_;
  if (first_error_.empty()) first_error_ = "topic '" + topic + "': " + rd_kafka_err2str(err);
}

void Producer::produce(const OutgoingMessage& m) {
  rd_kafka_topic_t* rkt = topic_handle(*m.topic);
  // librdkafka's vararg macros cast their arguments unparenthesised.
  void* value = m.value ? const_cast<char*>(m.value->data()) : nullptr;
  size_t value_size = m.value ? m.value->size() : 0;
  const void* key = m.key ? m.key->data() : nullptr;
  size_t key_size = m.key ? m.key->size() : 0;
  while (true) {
    rd_kafka_headers_t* headers = nullptr;
    if (m.headers && !m.headers->empty()) {
      headers = rd_kafka_headers_new(m.headers->size());
      for (const auto& h : *m.headers) {
        rd_kafka_header_add(headers, h.name.data(), static_cast<ssize_t>(h.name.size()),
                            h.value ? h.value->data() : nullptr,
                            h.value ? static_cast<ssize_t>(h.value->size()) : 0);
      }
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(m.partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(value, value_size), RD_KAFKA_V_KEY(key, key_size),
        RD_KAFKA_V_TIMESTAMP(m.timestamp_ms), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(this), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Serve delivery reports as they come, so delivered messages are freed
      // promptly instead of piling up until the queue is full.
      rd_kafka_poll(rk_.get(), 0);
      break;
    }
    if (headers) rd_kafka_headers_destroy(headers);  // ownership passes only on success
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      // Backpressure: wait for deliveries to make room instead of growing.
      rd_kafka_poll(rk_.get(), 50);
      if (auto lost = watch_->check()) {
        throw Error(*lost + "; " + std::to_string(in_flight() + 1) + " message(s) not delivered");
      }
      continue;
    }
    record_failure(*m.topic, err);
    break;
  }
  if (events_.fatal()) throw Error("producer failed: " + events_.last_error());
}

void Producer::flush(const std::function<bool()>& give_up) {
  while (rd_kafka_outq_len(rk_.get()) > 0) {
    rd_kafka_flush(rk_.get(), 100);
    if (give_up && give_up()) return;
    if (auto lost = watch_->check()) {
      // Stop waiting; the caller reports what is still undelivered.
      if (first_error_.empty() || failed_ == 0) first_error_ = *lost;
      return;
    }
    if (events_.fatal()) throw Error("producer failed: " + events_.last_error());
  }
  rd_kafka_poll(rk_.get(), 0);
}

}  // namespace kws
