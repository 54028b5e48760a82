#include <catch2/catch.hpp>

#include "core/util/error.hpp"
#include "core/kafka/embedded_broker.hpp"

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
  CHECK_NOTHROW(broker.create_topic({"t1", 5}));
}
