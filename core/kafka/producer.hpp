#pragma once
// A safe-by-default Kafka producer: idempotent, acks=all, and it accounts
// for every message: each is either delivered or counted as failed.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/kafka/context.hpp"
#include "core/message_io.hpp"

namespace kws {

class Producer : public MessageSink {
 public:
  // Connects and waits until a broker answers (throws kws::Error otherwise).
  Producer(const KafkaSettings& settings, const KafkaContext& context);
  ~Producer() override;
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Makes sure `topic` exists (asking the broker to auto-create it where that
  // is allowed) and returns its partition count; throws for an unknown topic.
  int32_t prepare_topic(const std::string& topic);

  // MessageSink. Deliveries are counted (delivered(), failed()) whether or not
  // a handler is set.
  ProduceOutcome try_produce(const OutgoingRecord& record) override;
  void serve_deliveries(std::chrono::milliseconds wait) override;
  void on_delivery(std::function<void(const Delivery&)> handler) override;
  uint64_t in_flight() const override;

  // Queues one record, serving delivery reports while librdkafka's queue is
  // full, so memory stays bounded. A record librdkafka rejects outright counts
  // as failed, and `rejected` (when given) says why. Returns false, without
  // queueing the record, once the cluster is lost (connection_lost() says why).
  bool produce(const OutgoingRecord& record, std::string* rejected = nullptr);

  // Why the cluster is considered lost (no broker answered for longer than
  // the timeout), or nothing; once lost, it stays lost. Serves delivery
  // reports. A command that waits on its input calls it every few hundred ms,
  // so a dead or frozen cluster is noticed whatever the input rate.
  std::optional<std::string> connection_lost();

  // Waits until every queued message has a delivery report, or until
  // `give_up` returns true (checked every 100 ms), or the cluster is lost.
  void flush(const StopCheck& give_up);

  uint64_t delivered() const;
  uint64_t failed() const;
  // The first delivery error, with the count of others like it folded into failed().
  std::string first_error() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kws
