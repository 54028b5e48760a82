#include "core/kafka/local_cluster.hpp"

#include "core/kafka/broker_frontend.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/util/error.hpp"

namespace kws {

struct LocalCluster::Impl {
  std::unique_ptr<EmbeddedBroker> broker;
  std::unique_ptr<BrokerFrontend> frontend;
};

LocalCluster::LocalCluster(const LocalClusterOptions& o, LogSink& log) : impl_(std::make_unique<Impl>()) {
  std::vector<TopicSpec> topics;
  for (const auto& t : o.topics) {
    topics.push_back(parse_topic_spec(t, o.partitions));
    for (size_t i = 0; i + 1 < topics.size(); ++i) {
      if (topics[i].name == topics.back().name) throw usage_error("topic '" + topics.back().name + "' is given twice");
    }
  }
  impl_->broker = std::make_unique<EmbeddedBroker>(o.broker_count);
  EmbeddedBroker& broker = *impl_->broker;
  FrontendConfig config;
  config.listen_host = o.listen_host;
  config.first_port = o.listen_port;
  for (const auto& [host, port] : broker.broker_addresses()) config.backends.push_back({host, port});
  for (const auto& t : topics) {
    broker.create_topic(t);
    config.existing_topics.push_back(t.name);
  }
  config.auto_create = o.auto_create;
  config.log = &log;
  const int partitions = o.partitions;
  config.create_topic = [&broker, partitions](const std::string& name, int n, int replication) {
    return broker.create_topic({name, n > 0 ? n : partitions, replication});
  };
  const std::string& flag = o.listen_flag;
  config.listen_hint = "pass " + flag + " 127.0.0.1:0 for any free port, or " + flag + " HOST:PORT";
  if (o.listen_port == 9092) {
    // Most often a kws broker or kws serve from an earlier step, or a real Kafka.
    config.listen_hint = "kws commands look for Kafka there by default, so it may be the broker you want; "
                         "otherwise stop it, or " + config.listen_hint +
                         ", and give the BROKERS= address to the other commands with -b";
  }
  impl_->frontend = std::make_unique<BrokerFrontend>(config);
}

LocalCluster::~LocalCluster() {
  // The relay goes first: it talks to the mock brokers.
  if (impl_) impl_->frontend.reset();
}

std::string LocalCluster::bootstrap_servers() const { return impl_->frontend->bootstrap_servers(); }

}  // namespace kws
