#include "core/kafka/embedded_broker.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <future>

#include "core/settings.hpp"
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

std::pair<std::string, uint16_t> split_host_port(const std::string& text, const std::string& what) {
  HostPort at = parse_listen_address(text, what);
  return {at.host, at.port};
}

namespace {

// librdkafka's mock leaves Nagle's algorithm on for the connections it
// accepts, so an answer written while its previous one is not yet
// acknowledged waits for the peer's delayed ACK: 40 ms now and then on
// loopback. Linux hands a listening socket's TCP_NODELAY down to the
// sockets it accepts, so it is set on the mock's listeners, found by their
// ports among this process's descriptors.
void disable_nagle_on_listeners(const std::vector<std::pair<std::string, uint16_t>>& brokers) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_in addr{};
    len = sizeof addr;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&addr), &len) != 0 || addr.sin_family != AF_INET) {
      continue;
    }
    uint16_t port = ntohs(addr.sin_port);
    bool mine = std::any_of(brokers.begin(), brokers.end(), [port](const auto& b) { return b.second == port; });
    int on = 1;
    if (mine) setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  closedir(dir);
}

}  // namespace

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
  auto brokers = broker_addresses();
  first_broker_ = brokers.front();
  disable_nagle_on_listeners(brokers);
}

EmbeddedBroker::~EmbeddedBroker() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(owner_);
}

void EmbeddedBroker::wake_mock() const {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(first_broker_.second);
  if (inet_pton(AF_INET, first_broker_.first.c_str(), &addr.sin_addr) == 1) {
    connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  }
  close(fd);
}

bool EmbeddedBroker::create_topic(const TopicSpec& topic) {
  int replication = topic.replication > 0 ? topic.replication : std::min(broker_count_, 3);
  // rd_kafka_mock_topic_create queues an operation for the mock's thread and
  // waits for it, but that thread often misses the wake-up and serves the
  // queue only when its poll() next returns: about a second per topic (300
  // topics took 40-80 s). Any socket event ends the poll, so while the
  // creation is pending this connects to the mock now and then.
  auto done = std::async(std::launch::async, [this, &topic, replication] {
    return rd_kafka_mock_topic_create(cluster_, topic.name.c_str(), topic.partitions, replication);
  });
  while (done.wait_for(std::chrono::milliseconds(2)) != std::future_status::ready) wake_mock();
  rd_kafka_resp_err_t err = done.get();
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) return false;
  if (err) throw Error("cannot create topic '" + topic.name + "': " + rd_kafka_err2str(err));
  return true;
}

std::string EmbeddedBroker::bootstrap_servers() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

std::vector<std::pair<std::string, uint16_t>> EmbeddedBroker::broker_addresses() const {
  std::vector<std::pair<std::string, uint16_t>> out;
  std::string all = bootstrap_servers();
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find(',', start);
    out.push_back(split_host_port(all.substr(start, end == std::string::npos ? std::string::npos : end - start),
                                  "mock broker address"));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

}  // namespace kws
