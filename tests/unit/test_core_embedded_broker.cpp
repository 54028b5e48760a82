#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/util/error.hpp"
#include "core/kafka/client.hpp"
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

namespace {

// TCP_NODELAY of the socket this process accepted from `client` (found among
// its descriptors by the client's port as the peer's address); -1 when none.
int accepted_nodelay(int client) {
  sockaddr_in mine{};
  socklen_t len = sizeof mine;
  getsockname(client, reinterpret_cast<sockaddr*>(&mine), &len);
  for (int fd = 0; fd < 4096; ++fd) {
    if (fd == client) continue;
    sockaddr_in peer{};
    len = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 || peer.sin_family != AF_INET) continue;
    if (peer.sin_port != mine.sin_port) continue;
    int on = 0;
    len = sizeof on;
    if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0) return -1;
    return on;
  }
  return -1;
}

}  // namespace

TEST_CASE("embedded_broker: the mock answers without Nagle's delay") {
  // With Nagle on, an answer written while the previous one is unacknowledged
  // waits for the peer's delayed ACK: 40 ms spikes in end-to-end latency.
  EmbeddedBroker broker(1);
  auto [host, port] = broker.broker_addresses().front();
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(client >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  REQUIRE(connect(client, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  // The mock's thread accepts it on its own time.
  int nodelay = -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((nodelay = accepted_nodelay(client)) < 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  close(client);
  CHECK(nodelay == 1);
}

TEST_CASE("kafka client: Nagle is off by default, and -X can turn it back on") {
  // kws's handles send small requests (a Fetch, a produce with linger.ms=0)
  // that must not wait for the broker's delayed ACK.
  auto nagle_disabled = [](const KafkaSettings& settings) {
    NullLog log;
    KafkaContext context;
    context.log = &log;
    ClientEvents events;
    ClientOptions options;
    options.type = RD_KAFKA_PRODUCER;
    KafkaHandle rk = create_client(settings, options, context, events);
    char value[16];
    size_t size = sizeof value;
    REQUIRE(rd_kafka_conf_get(rd_kafka_conf(rk.get()), "socket.nagle.disable", value, &size) == RD_KAFKA_CONF_OK);
    return std::string(value);
  };
  KafkaSettings settings;
  settings.set({"bootstrap.servers", "127.0.0.1:1", ConfigSource::default_value, "test"});
  CHECK(nagle_disabled(settings) == "true");
  settings.set({"socket.nagle.disable", "false", ConfigSource::flag, "-X"});
  CHECK(nagle_disabled(settings) == "false");
}
