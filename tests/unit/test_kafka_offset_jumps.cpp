// Readers never skip offsets silently: against librdkafka's mock cluster,
// which keeps about 5 MiB per partition, a reader that starts (or falls)
// behind what is kept gets a `lost` event naming the missing offsets, a
// warning on its log, and goes on at the oldest offset still there.
#include <catch2/catch.hpp>

#include <mutex>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/kafka/consumer.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/kafka/partition_reader.hpp"
#include "core/kafka/producer.hpp"

using namespace kws;

namespace {

struct RecordingLog : LogSink {
  std::mutex mutex;
  std::vector<std::string> warnings;
  void write(LogLevel level, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mutex);
    if (level == LogLevel::warning) warnings.emplace_back(message);
  }
};

struct RetainedTopic {
  EmbeddedBroker broker{1};
  RecordingLog log;
  KafkaSettings settings;
  KafkaContext context;
  int64_t low = -1;
  int64_t high = -1;

  // Writes ~9 MiB into partition 0 of `topic`: the mock keeps only the last
  // ~5 MiB, so the first offsets are gone.
  explicit RetainedTopic(const std::string& topic) {
    broker.create_topic({topic, 1});
    settings.set({"bootstrap.servers", broker.bootstrap_servers(), ConfigSource::flag, "test"});
    context.log = &log;
    context.timeout = std::chrono::seconds(10);
    Producer producer(settings, context);
    const std::string value(3000, 'x');
    for (int i = 0; i < 3000; ++i) {
      OutgoingRecord r;
      r.topic = topic;
      r.partition = 0;
      r.value = std::string_view(value);
      REQUIRE(producer.produce(r));
    }
    producer.flush({});
    REQUIRE(producer.delivered() == 3000);
  }
};

}  // namespace

TEST_CASE("partition reader: a start the partition no longer has is a lost event, then the oldest kept") {
  RetainedTopic t("kept");
  PartitionReader reader(t.settings, t.context, PartitionReaderOptions{});
  reader.assign("kept", {0});
  std::vector<PartitionEvent> lost;
  int64_t first = -1, count = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (count == 0 && std::chrono::steady_clock::now() < deadline) {
    reader.poll_batch(
        std::chrono::milliseconds(100), 5000,
        [&](const MessageView& m) {
          if (first < 0) first = m.offset;
          ++count;
          return true;
        },
        [&](const PartitionEvent& e) {
          if (e.kind == PartitionEvent::Kind::lost) lost.push_back(e);
        });
  }
  REQUIRE(count > 0);
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].partition == 0);
  CHECK(lost[0].lost_from == 0);
  CHECK(lost[0].next_offset == first);
  CHECK(first > 0);
  REQUIRE(t.log.warnings.size() == 1);
  CHECK(t.log.warnings[0].find("offsets 0 to " + std::to_string(first - 1)) != std::string::npos);
}

TEST_CASE("consumer (kws tail): a start the partition no longer has is reported and counted") {
  RetainedTopic t("tailed");
  ConsumerPlan plan;
  plan.topics = {"tailed"};
  plan.start = parse_offset_spec("0");
  plan.start_explicit = true;
  plan.want_end_events = true;
  Consumer consumer(t.settings, plan, t.context);
  int64_t first = -1, count = 0;
  RunLimits limits;
  limits.exit_at_end = true;
  consumer.run(
      [&](const MessageView& m) {
        if (first < 0) first = m.offset;
        ++count;
        return true;
      },
      limits, [] { return true; });
  REQUIRE(first > 0);
  CHECK(count == 3000 - first);
  CHECK(consumer.lost_messages() == static_cast<uint64_t>(first));
  CHECK(t.log.warnings.size() == 1);
}

TEST_CASE("consumer (group): a committed offset the partition no longer has is reported") {
  RetainedTopic t("grouped");
  ConsumerPlan plan;
  plan.topics = {"grouped"};
  plan.group = "g";
  plan.start = parse_offset_spec("0");  // an explicit start: the group starts at 0, long gone
  plan.start_explicit = true;
  plan.want_end_events = true;
  Consumer consumer(t.settings, plan, t.context);
  int64_t first = -1;
  RunLimits limits;
  limits.exit_at_end = true;
  consumer.run(
      [&](const MessageView& m) {
        if (first < 0) first = m.offset;
        return true;
      },
      limits, [] { return true; });
  REQUIRE(first > 0);
  CHECK(consumer.lost_messages() == static_cast<uint64_t>(first));
}
