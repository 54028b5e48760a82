#pragma once
// The TopicAdmin of `kws serve` (core/message_io.hpp): lookups on a handle of
// its own, which never asks the broker to create a topic, and catch-up
// readers. Blocking calls; the hub runs them on its admin worker.
#include <memory>

#include "core/config.hpp"
#include "core/kafka/context.hpp"
#include "core/message_io.hpp"

namespace kws {

class KafkaTopicAdmin : public TopicAdmin {
 public:
  // Creates the client; does not wait for the cluster (the caller checked it).
  KafkaTopicAdmin(const KafkaSettings& settings, const KafkaContext& context);
  ~KafkaTopicAdmin() override;

  TopicLookup describe(const std::string& topic) override;
  std::vector<int64_t> offsets_for_time(const std::string& topic, int64_t ms, size_t partitions) override;
  std::unique_ptr<PartitionFeed> open_reader() override;
  std::vector<std::string> topic_names() override;

  // Whether a broker answers now, or why not. Cheap whatever the number of
  // topics anyone produced to (this handle asks metadata for no topic), and
  // not sticky: it answers again once Kafka is back.
  std::optional<std::string> reachability();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kws
