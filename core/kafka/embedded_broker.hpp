#pragma once
// An in-memory Kafka-protocol broker (librdkafka's mock cluster): real Kafka
// clients (kcat, python3-kafka, kafkajs) talk to it over loopback. Memory
// only; everything is gone when it stops, and each partition keeps a bounded
// amount of data (old messages are dropped). `kws broker` puts a
// BrokerFrontend in front of it for fixed ports and auto-create rules.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// librdkafka stays inside core/kafka/: the handles are only named here.
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace kws {

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication = 0;  // 0: min(brokers, 3)
};

// "name" or "name:partitions"; throws a usage kws::Error.
TopicSpec parse_topic_spec(const std::string& text, int default_partitions);

// A listen address split in two, by the rule of every address kws binds
// (parse_listen_address in core/settings.hpp: "8080" is 127.0.0.1:8080).
// Throws a usage kws::Error that names `what` (e.g. "--listen").
std::pair<std::string, uint16_t> split_host_port(const std::string& text, const std::string& what);

class EmbeddedBroker {
 public:
  // Starts `broker_count` brokers on random loopback ports. Throws kws::Error.
  explicit EmbeddedBroker(int broker_count);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // Blocks until the mock has the topic (milliseconds; see the .cpp). Safe
  // to call from any thread. Returns false when the topic was already
  // there; throws kws::Error.
  bool create_topic(const TopicSpec& topic);
  // "127.0.0.1:PORT,127.0.0.1:PORT,..."
  std::string bootstrap_servers() const;
  // Host and port of each broker, in node order.
  std::vector<std::pair<std::string, uint16_t>> broker_addresses() const;
  int broker_count() const { return broker_count_; }

 private:
  void wake_mock() const;

  int broker_count_;
  std::pair<std::string, uint16_t> first_broker_;
  rd_kafka_t* owner_ = nullptr;  // the mock cluster lives inside a client handle
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace kws
