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
  config.create_topic = [&broker, partitions](const std::string& name) { broker.create_topic({name, partitions}); };
  try {
    impl_->frontend = std::make_unique<BrokerFrontend>(config);
  } catch (const Error& e) {
    // An explicit address must work; the default 9092 is best effort.
    if (o.listen_given || o.listen_port == 0) throw;
    config.first_port = 0;
    impl_->frontend = std::make_unique<BrokerFrontend>(config);
    log.warning(std::string(e.what()) + "; listening on " + impl_->frontend->bootstrap_servers() +
                " instead (pass it with -b or KWS_BROKERS)");
  }
}

LocalCluster::~LocalCluster() {
  // The relay goes first: it talks to the mock brokers.
  if (impl_) impl_->frontend.reset();
}

std::string LocalCluster::bootstrap_servers() const { return impl_->frontend->bootstrap_servers(); }

}  // namespace kws
