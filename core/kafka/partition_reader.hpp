#pragma once
// A consumer without a group whose partitions are assigned at explicit
// offsets, one topic at a time: the hub's shared reader and its short-lived
// catch-up readers (core/hub/hub.hpp). Never commits, never joins a group,
// never jumps over offsets without saying so (PartitionEvent).
#include <memory>

#include "core/config.hpp"
#include "core/kafka/context.hpp"
#include "core/message_io.hpp"

namespace kws {

struct PartitionReaderOptions {
  bool end_events = false;            // report partition ends (catch-up readers need them)
  size_t fetch_queue_kbytes = 16384;  // librdkafka's pre-fetch bound for this reader
};

class PartitionReader : public PartitionFeed {
 public:
  // Creates the client; does not wait for the cluster (the caller checked it).
  PartitionReader(const KafkaSettings& settings, const KafkaContext& context, PartitionReaderOptions options);
  ~PartitionReader() override;

  void assign(const std::string& topic, const std::vector<int64_t>& offsets) override;
  void unassign(const std::string& topic) override;
  void rewind(const std::string& topic, int32_t partition, int64_t offset) override;
  int64_t cached_high_watermark(const std::string& topic, int32_t partition) override;
  void on_ready(std::function<void()> wake) override;
  // Problems Kafka reports mid-stream (a broker down) go to the log; the
  // reader keeps going, as librdkafka reconnects by itself. A position the
  // partition no longer has becomes a `lost` (or `rewound`) event and a
  // warning, and reading goes on at the log start.
  size_t poll_batch(std::chrono::milliseconds wait, size_t max,
                    const std::function<bool(const MessageView&)>& on_message,
                    const std::function<void(const PartitionEvent&)>& on_event) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kws
