#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>

#include "core/util/error.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/kafka/metadata.hpp"

using namespace kws;

TEST_CASE("embedded_broker: topic specs") {
  CHECK(parse_topic_spec("orders", 3).partitions == 3);
  auto spec = parse_topic_spec("orders:12", 3);
  CHECK(spec.name == "orders");
  CHECK(spec.partitions == 12);
  for (const char* bad : {"", ":3", "orders:0", "orders:x", "bad name", "a/b"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_topic_spec(bad, 1), Error);
  }
}

TEST_CASE("embedded_broker: starts brokers on loopback and creates topics") {
  EmbeddedBroker broker(3);
  std::string bootstraps = broker.bootstrap_servers();
  CHECK(std::count(bootstraps.begin(), bootstraps.end(), ',') == 2);
  auto addresses = broker.broker_addresses();
  REQUIRE(addresses.size() == 3);
  CHECK(addresses[0].first == "127.0.0.1");
  CHECK(addresses[0].second > 0);
  broker.create_topic({"t1", 5});
  broker.create_topic({"t2", 1});

  // Ask the cluster itself, as a client would, which topics it holds.
  // Listing all topics never auto-creates one, so a create_topic that did
  // nothing shows up as a missing topic, not as one with default partitions.
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), errstr, sizeof errstr) ==
          RD_KAFKA_CONF_OK);
  REQUIRE(rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr) == RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  REQUIRE(rk != nullptr);
  ClusterInfo info;
  NullLog log;
  KafkaContext context;
  context.log = &log;
  context.timeout = std::chrono::seconds(10);
  try {
    info = fetch_cluster_info(rk, {}, context);
  } catch (...) {
    rd_kafka_destroy(rk);
    throw;
  }
  rd_kafka_destroy(rk);

  CHECK(info.brokers.size() == 3);
  auto find = [&](const std::string& name) {
    return std::find_if(info.topics.begin(), info.topics.end(),
                        [&](const TopicInfo& t) { return t.name == name; });
  };
  auto t1 = find("t1");
  REQUIRE(t1 != info.topics.end());
  REQUIRE(t1->partitions.size() == 5);
  for (int i = 0; i < 5; ++i) {
    INFO("partition " << i);
    CHECK(t1->partitions[i].id == i);
    CHECK(t1->partitions[i].error.empty());
    CHECK(t1->partitions[i].replicas.size() == 3);  // replication is min(brokers, 3)
  }
  auto t2 = find("t2");
  REQUIRE(t2 != info.topics.end());
  CHECK(t2->partitions.size() == 1);
  CHECK(find("never-created") == info.topics.end());
}
