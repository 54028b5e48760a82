#pragma once
// A safe-by-default Kafka producer: idempotent, acks=all, and it accounts
// for every message: each is either delivered or counted as failed.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config.hpp"
#include "core/envelope.hpp"
#include "core/kafka/client.hpp"

namespace kws {

struct OutgoingMessage {
  const std::string* topic = nullptr;
  int32_t partition = RD_KAFKA_PARTITION_UA;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  const std::vector<Header>* headers = nullptr;  // may be null
  int64_t timestamp_ms = 0;                      // 0: now
};

struct DeliveryReport {
  std::string_view topic;
  int32_t partition;
  int64_t offset;
  rd_kafka_resp_err_t error;
};

class Producer {
 public:
  // Connects and waits until a broker answers (throws kws::Error otherwise).
  Producer(const KafkaSettings& settings, int verbosity, std::chrono::milliseconds connect_timeout);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Makes sure `topic` exists (asking the broker to auto-create it where that
  // is allowed) and returns its partition count; throws for an unknown topic.
  int32_t prepare_topic(const std::string& topic);

  // Called from inside produce()/poll()/flush() for every delivery report.
  void on_delivery(std::function<void(const DeliveryReport&)> listener) { listener_ = std::move(listener); }

  // Queues one message. While librdkafka's queue is full it serves delivery
  // reports and retries, so memory stays bounded. A message librdkafka rejects
  // outright counts as failed.
  void produce(const OutgoingMessage& message);

  // Serves pending delivery reports without blocking.
  void poll() { rd_kafka_poll(rk_.get(), 0); }

  // Waits until every queued message has a delivery report, or until
  // `give_up` returns true (checked every 100 ms).
  void flush(const std::function<bool()>& give_up);

  uint64_t delivered() const { return delivered_; }
  uint64_t failed() const { return failed_; }
  uint64_t in_flight() const { return static_cast<uint64_t>(rd_kafka_outq_len(rk_.get())); }
  // The first delivery error, with the count of others like it folded into failed().
  const std::string& first_error() const { return first_error_; }

 private:
  static void delivery_callback(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);
  void record_failure(const std::string& topic, rd_kafka_resp_err_t err);
  rd_kafka_topic_t* topic_handle(const std::string& topic);

  ClientEvents events_;
  KafkaHandle rk_;
  std::unordered_map<std::string, rd_kafka_topic_t*> topics_;
  std::function<void(const DeliveryReport&)> listener_;
  uint64_t delivered_ = 0;
  uint64_t failed_ = 0;
  std::string first_error_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<ConnectionWatch> watch_;
};

}  // namespace kws
