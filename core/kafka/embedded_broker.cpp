#include "core/kafka/embedded_broker.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <charconv>

#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "core/kafka/broker_frontend.hpp"

namespace kws {

TopicSpec parse_topic_spec(const std::string& text, int default_partitions) {
  TopicSpec spec{text, default_partitions};
  auto colon = text.rfind(':');
  if (colon != std::string::npos) {
    spec.name = text.substr(0, colon);
    std::string count = text.substr(colon + 1);
    int n = 0;
    auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
    if (ec != std::errc() || ptr != count.data() + count.size() || n < 1) {
      throw usage_error("bad topic '" + text + "': expected NAME or NAME:PARTITIONS with PARTITIONS >= 1");
    }
    spec.partitions = n;
  }
  check_topic_name(spec.name);
  return spec;
}

EmbeddedBroker::EmbeddedBroker(int broker_count) : broker_count_(broker_count) {
  if (broker_count < 1 || broker_count > 32) throw usage_error("broker count must be 1..32");
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  // The owning handle never connects anywhere; silence its logs.
  rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr);
  owner_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!owner_) {
    rd_kafka_conf_destroy(conf);
    throw Error(std::string("cannot start the embedded broker: ") + errstr);
  }
  cluster_ = rd_kafka_mock_cluster_new(owner_, broker_count);
  if (!cluster_) {
    rd_kafka_destroy(owner_);
    throw Error("cannot start the embedded broker (librdkafka mock cluster)");
  }
}

EmbeddedBroker::~EmbeddedBroker() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(owner_);
}

void EmbeddedBroker::create_topic(const TopicSpec& topic) {
  int replication = std::min(broker_count_, 3);
  rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(cluster_, topic.name.c_str(), topic.partitions, replication);
  if (err) throw Error("cannot create topic '" + topic.name + "': " + rd_kafka_err2str(err));
}

std::string EmbeddedBroker::bootstrap_servers() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

std::vector<std::pair<std::string, uint16_t>> EmbeddedBroker::broker_addresses() const {
  std::vector<std::pair<std::string, uint16_t>> out;
  std::string all = bootstrap_servers();
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find(',', start);
    std::string one = all.substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto colon = one.rfind(':');
    out.emplace_back(one.substr(0, colon), static_cast<uint16_t>(std::stoi(one.substr(colon + 1))));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

}  // namespace kws
