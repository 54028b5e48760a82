// The hub's shared reader is given topics while it already reads others.
// A topic new to a connected librdkafka client waits for the client's
// once-a-second scan of unknown topics before anyone asks for its leader,
// unless the reader asks at assign(): without that, one quiet subscription on
// a bridge delayed every later topic's start by up to a second, and the fan-out
// of a busy topic then trailed by that second's backlog for the whole run.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/kafka/partition_reader.hpp"
#include "core/kafka/producer.hpp"

using namespace kws;

namespace {

struct QuietLog : LogSink {
  void write(LogLevel, std::string_view) override {}
};

}  // namespace

TEST_CASE("partition reader: a topic assigned to a reader that is already reading starts at once") {
  EmbeddedBroker broker(1);
  const std::vector<std::string> topics = {"first", "second", "third", "fourth"};
  for (const auto& t : topics) broker.create_topic({t, 1});
  QuietLog log;
  KafkaSettings settings;
  settings.set({"bootstrap.servers", broker.bootstrap_servers(), ConfigSource::flag, "test"});
  KafkaContext context;
  context.log = &log;
  context.timeout = std::chrono::seconds(10);
  {
    Producer producer(settings, context);
    for (const auto& t : topics) {
      OutgoingRecord r;
      r.topic = t;
      r.partition = 0;
      r.value = std::string_view("one");
      REQUIRE(producer.produce(r));
    }
    producer.flush({});
    REQUIRE(producer.delivered() == topics.size());
  }

  PartitionReader reader(settings, context, PartitionReaderOptions{});
  // How long a topic's one message takes to arrive once the topic is assigned.
  auto time_to_first = [&](const std::string& topic) {
    const auto start = std::chrono::steady_clock::now();
    reader.assign(topic, {0});
    bool got = false;
    while (!got && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
      reader.poll_batch(
          std::chrono::milliseconds(5), 100,
          [&](const MessageView& m) {
            got = got || m.topic == topic;
            return true;
          },
          nullptr);
    }
    REQUIRE(got);
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  };

  // The first topic is assigned before the client connects, and a connecting
  // client asks for the leaders of the topics it has.
  time_to_first(topics[0]);
  // Each next topic is assigned just after the previous one arrived, which
  // without the query at assign() is just after the scan that found it: the
  // wait would be nearly the whole next second, every time. With it, the
  // wait is at most one long-polling Fetch (fetch.wait.max.ms, 50 ms) that
  // the leader query and then the topic's first Fetch queue behind.
  for (size_t i = 1; i < topics.size(); ++i) {
    const auto took = time_to_first(topics[i]);
    INFO("topic '" << topics[i] << "' took " << took.count() << " ms to start");
    CHECK(took < std::chrono::milliseconds(700));  // without the query: 900 ms or more
  }
}
