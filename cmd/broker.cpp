// kws broker: an in-memory Kafka-protocol broker for demos and tests.
#include "cmd/broker.hpp"

#include <cstdio>

#include "core/error.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/net/tcp_forwarder.hpp"
#include "core/output.hpp"
#include "core/signals.hpp"

namespace kws::cmd {

const CommandDoc broker_doc{
    "broker",
    "Run an in-memory Kafka-protocol broker (no Kafka install needed)",
    "[OPTIONS]",
    "Starts librdkafka's mock cluster, which speaks the real Kafka protocol, so kws, kcat, "
    "python3-kafka or kafkajs can produce to and consume from it. The first line on stdout is "
    "BROKERS=HOST:PORT, the bootstrap address to use; it runs until SIGINT or SIGTERM.\n\n"
    "It listens on 127.0.0.1:9092 by default, so that `kws send demo hi` and `kws tail demo` "
    "work with no flags. The mock brokers themselves bind random loopback ports and 9092 "
    "forwards to the first of them; if 9092 is taken, kws says so on stderr and prints the "
    "mock's own address on the BROKERS line instead.\n\n"
    "Limits, honestly: everything is kept in memory only and is lost when the broker stops; each "
    "partition keeps a bounded amount of data and drops its oldest messages beyond that; topics "
    "that clients auto-create get the mock cluster's fixed partition count (4), so use -t "
    "NAME:PARTITIONS to choose; consumer groups work (join, commit, fetch committed offsets) but "
    "cannot be listed; it is one process, not a cluster with durability, and it is meant for "
    "development, demos and tests, not production.",
    {{"kws broker", "a broker on 127.0.0.1:9092"},
     {"kws broker -t orders:6 -t audit", "pre-create orders with 6 partitions and audit with --partitions"},
     {"kws broker --listen 127.0.0.1:0 -n 3", "three brokers, bootstrap on a free port"},
     {"eval \"$(kws broker --listen 127.0.0.1:0 | head -1)\" # in a script", "capture BROKERS=..."}},
    "0 after SIGTERM; 130 after SIGINT."};

CLI::App* register_broker(CLI::App& parent, BrokerOptions& o) {
  CLI::App* app = add_documented_subcommand(parent, broker_doc);
  app->add_option("-n,--broker-count", o.broker_count, "Number of brokers in the cluster")
      ->type_name("N")
      ->default_val(1)
      ->check(integer_in(1, 32));
  app->add_option("--partitions", o.partitions, "Partitions for each -t topic given without a count")
      ->type_name("N")
      ->default_val(1)
      ->check(integer_in(1, 100000));
  app->add_option("-t,--topic", o.topics, "Create topic NAME with PARTITIONS partitions at start (repeatable)")
      ->type_name("NAME[:PARTITIONS]")
      ->allow_extra_args(false);
  auto* listen = app->add_option("-l,--listen", o.listen, "Bootstrap address to listen on (port 0: any free port)")
                     ->type_name("HOST:PORT")
                     ->default_str("127.0.0.1:9092");
  app->add_flag("--no-listen", o.no_listen, "Do not listen on a fixed address; print the mock's own ports")
      ->excludes(listen);
  app->callback([&o, app] { o.listen_given = app->count("--listen") > 0; });
  return app;
}

namespace {
std::pair<std::string, uint16_t> split_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) throw usage_error("bad --listen '" + text + "': expected HOST:PORT");
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  int port = -1;
  try {
    port = std::stoi(text.substr(colon + 1));
  } catch (...) {
  }
  if (port < 0 || port > 65535) throw usage_error("bad --listen '" + text + "': port must be 0-65535");
  return {host, static_cast<uint16_t>(port)};
}
}  // namespace

int run_broker(const BrokerOptions& o) {
  std::vector<TopicSpec> topics;
  for (const auto& t : o.topics) topics.push_back(parse_topic_spec(t, o.partitions));
  std::pair<std::string, uint16_t> listen;
  if (!o.no_listen) listen = split_host_port(o.listen);

  EmbeddedBroker broker(o.broker_count);
  for (const auto& t : topics) broker.create_topic(t);

  std::unique_ptr<TcpForwarder> forwarder;
  std::string bootstrap = broker.bootstrap_servers();
  if (!o.no_listen) {
    auto [target_host, target_port] = broker.first_broker();
    try {
      forwarder = std::make_unique<TcpForwarder>(listen.first, listen.second, target_host, target_port);
      bootstrap = (listen.first.find(':') != std::string::npos ? "[" + listen.first + "]" : listen.first) + ":" +
                  std::to_string(forwarder->port());
    } catch (const Error& e) {
      // An explicit address must work; the default 9092 is best effort.
      if (o.listen_given) throw;
      print_diagnostic("warning", std::string(e.what()) + "; clients must use " + bootstrap);
    }
  }
  printf("BROKERS=%s\n", bootstrap.c_str());
  fflush(stdout);
  fprintf(stderr, "kws: broker running with %d broker(s) (mock ports %s); memory only, stop with Ctrl-C\n",
          o.broker_count, broker.bootstrap_servers().c_str());

  wait_for_stop_signal();
  return stop_signal() == SIGINT ? exit_interrupted : exit_ok;
}

}  // namespace kws::cmd
