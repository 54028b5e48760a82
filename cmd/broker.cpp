// kws broker: an in-memory Kafka-protocol broker for demos and tests.
#include "cmd/broker.hpp"

#include <cstdio>

#include "core/util/error.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/kafka/local_cluster.hpp"
#include "core/util/output.hpp"
#include "core/util/signals.hpp"

namespace kws::cmd {

const CommandDoc broker_doc{
    "broker",
    "Run an in-memory Kafka-protocol broker (no Kafka install needed)",
    "[OPTIONS]",
    "Starts librdkafka's mock cluster, which speaks the real Kafka protocol, so kws, kcat, "
    "python3-kafka or kafkajs can produce to and consume from it. The first line on stdout is "
    "BROKERS=HOST:PORT[,...], the bootstrap address to use; it runs until SIGINT or SIGTERM.\n\n"
    "It listens on 127.0.0.1:9092 by default, so that `kws send demo hi` and `kws tail demo` "
    "work with no flags; with -n, the other brokers take free ports. An address that is taken is "
    "an error, 9092 too (the message says which process holds it, when kws may see that): a broker "
    "quietly elsewhere would leave `kws send demo` talking to whatever holds 9092. -l 127.0.0.1:0 "
    "asks for any free port; the BROKERS line always has the address in use.\n\n"
    "Topics are auto-created as on a real broker with auto.create.topics.enable: when a "
    "producer's metadata request names a missing topic it is created with --partitions "
    "partitions; consumers and `kws topics` get 'unknown topic' instead. --no-auto-create turns "
    "auto-creation off for everyone, so only -t topics exist.\n\n"
    "Limits, honestly: everything is kept in memory only and is lost when the broker stops; each "
    "partition keeps about 5 MiB (or 100,000 batches) and drops its oldest messages beyond that, "
    "like a very short retention: a reader more than that behind finds them gone (kws readers "
    "say so, with the offsets missed, and go on at the oldest kept); "
    "consumer groups work (join, commit, fetch committed offsets, and listing the groups that "
    "joined or committed through this process), but their members cannot be described, and "
    "consumer session timeouts are capped at 6 s; there is no time index, so a lookup of the "
    "offset for a timestamp answers with the earliest offset (kws tail -o @TIME then skips the "
    "older messages itself; other clients see them); it "
    "answers on loopback only; a request may be at most 100 MiB, may create at most 100 topics "
    "(the rest are answered THROTTLING_QUOTA_EXCEEDED) and name at most 10,000 in one Metadata "
    "request (more closes the connection); it does not drop the copies of an idempotent "
    "producer's retries (librdkafka's mock checks sequence numbers for transactional producers "
    "only), so a request sent again after a timeout, say after the broker was stopped for longer "
    "than the client's socket.timeout.ms, can be stored twice; "
    "topics created with Kafka's admin API (kws topics "
    "--create) get at most 10,000 partitions and no topic configs, and topics are never deleted "
    "(kws topics --delete is answered as by a cluster with delete.topic.enable=false); a "
    "connection has at most 5 requests awaiting an "
    "answer and is not read from while its answers are not being read; it raises its open-file "
    "limit to the hard limit and relays as many connections as that allows (three descriptors "
    "each), letting further ones wait; it is one process without durability or replication, meant for "
    "development, demos and tests, not production.",
    {{"kws broker", "a broker on 127.0.0.1:9092"},
     {"kws broker -t orders:6 -t audit", "pre-create orders with 6 partitions and audit with --partitions"},
     {"kws broker --listen 127.0.0.1:0 -n 3", "three brokers, on free ports"},
     {"kws broker --no-auto-create -t events:3", "only topic events exists"}},
    ""};

CLI::App* register_broker(CLI::App& parent, BrokerOptions& o) {
  CLI::App* app = add_documented_subcommand(parent, broker_doc);
  app->add_option("-n,--broker-count", o.broker_count, "Number of brokers in the cluster")
      ->type_name("N")
      ->default_val(1)
      ->check(integer_in(1, 32));
  app->add_option("--partitions", o.partitions, "Partitions of auto-created topics and of -t topics without a count")
      ->type_name("N")
      ->default_val(1)
      ->check(integer_in(1, 100000));
  app->add_option("-t,--topic", o.topics, "Create topic NAME with PARTITIONS partitions at start (repeatable)")
      ->type_name("NAME[:PARTITIONS]")
      ->allow_extra_args(false);
  app->add_option("-l,--listen", o.listen, "Address of broker 1; PORT alone is 127.0.0.1:PORT (port 0: any free port)")
      ->type_name("HOST:PORT")
      ->default_str("127.0.0.1:9092");
  app->add_flag("--no-auto-create", o.no_auto_create, "Never auto-create topics; only -t topics exist");
  app->footer(
      "Limits: memory only, all data is lost when it stops; each partition keeps a bounded amount\n"
      "(about 5 MiB) and drops its oldest messages beyond that; group members cannot be described;\n"
      "no time index (offset-for-time lookups answer the earliest offset); loopback only; requests\n"
      "up to 100 MiB, at most 100 topics created per request; a producer's retries are not\n"
      "deduplicated (idempotence is not checked); for development, demos and tests,\n"
      "not production. See 'man kws-broker' and docs/SECURITY.md.");
  return app;
}

int run_broker(const BrokerOptions& o) {
  auto [listen_host, listen_port] = split_host_port(o.listen, "--listen");
  LocalClusterOptions options;
  options.broker_count = o.broker_count;
  options.partitions = o.partitions;
  options.topics = o.topics;
  options.listen_host = listen_host;
  options.listen_port = listen_port;
  options.auto_create = !o.no_auto_create;
  StderrLog log;
  LocalCluster cluster(options, log);
  printf("BROKERS=%s\n", cluster.bootstrap_servers().c_str());
  fflush(stdout);
  fprintf(stderr, "kws: broker running with %d broker(s); memory only, stop with Ctrl-C\n", o.broker_count);

  wait_for_stop_signal();
  return exit_ok;  // main turns the signal into 130 or 143
}

}  // namespace kws::cmd
