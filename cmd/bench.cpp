// kws bench: a load generator for kafka-websocket-compatible bridges.
#include "cmd/bench.hpp"

#include <cstdio>
#include <set>

#include "core/bench/load.hpp"
#include "core/bench/process_probe.hpp"
#include "core/bench/wire.hpp"
#include "core/kafka/cluster.hpp"
#include "core/kafka/producer.hpp"
#include "core/util/error.hpp"
#include "core/util/output.hpp"
#include "core/util/signals.hpp"

namespace kws::cmd {

const CommandDoc bench_doc{
    "bench",
    "Load-test a Kafka-to-WebSocket bridge (kws serve or kafka-websocket)",
    "[OPTIONS] URL",
    "Opens --clients WebSocket connections to URL/v2/broker/?topics=TOPIC (subprotocol kafka-text, "
    "or kafka-binary with --binary), waits until every one is subscribed, then produces --rate "
    "messages per second of --size bytes into TOPIC for --duration seconds through Kafka (-b, -X, "
    "-F as in kws send) and counts what each client receives. Each message carries a run tag, a "
    "sequence number and the moment it was due (CLOCK_MONOTONIC; producer and clients share this "
    "process), so the report is exact: deliveries per second, expected against received (loss), "
    "duplicates, and end-to-end latency percentiles (p50, p90, p99, p99.9, max) from the "
    "producer's schedule to the client's read. A producer that falls behind its schedule shows as "
    "latency, not as a lower rate.\n\n"
    "A wss:// URL makes every client a TLS client of its own (TLS 1.2 or 1.3, OpenSSL): the server's "
    "certificate and host name are checked against the system CA store, or against the CA "
    "certificates of --ca FILE; --insecure checks nothing (a warning says so). Each client "
    "decrypts its own records, as a browser would, so a TLS run also costs kws bench more CPU.\n\n"
    "kws serve confirms each subscription with a \"subscribed\" frame; for a server that sends none "
    "(kafka-websocket) kws bench waits --settle seconds instead. Messages of earlier runs on the "
    "topic are recognised by their tag and not counted. The producer defaults to linger.ms=0 (and, as every kws "
    "client, socket.nagle.disable=true) so that latency is the bridge's; -X linger.ms=5 mimics "
    "typical producers.\n\n"
    "With --pid, kws bench also watches the bridge process through /proc: its RSS before the "
    "clients connect, once they are subscribed, and at its peak (sampled every 100 ms), its CPU "
    "over the run, and its TCP connections to the Kafka brokers (which must not grow with the "
    "clients). --key-filters N keys the messages k0..k{N-1} round-robin and has client j subscribe "
    "with filter={\"key\":[\"k{j%N}\"]} (kws serve's filters): each client must receive exactly the "
    "messages of its key, once; one of another key counts as misdelivered. With --pid the report "
    "then also gives the bridge's CPU per delivery, to compare a filtered run with a broadcast. "
    "--idle N opens N connections that only subscribe and sit for --duration; with "
    "--pid it reports the bridge's RSS growth per connection.\n\n"
    "--protocol mqtt makes the clients MQTT 3.1.1 clients (subprotocol mqtt, MQTT packets in binary "
    "WebSocket frames) at URL's path, /mqtt when it is /; an mqtt://HOST:PORT URL (port 1883 by default) "
    "speaks MQTT over plain TCP and implies it. Each client sends CONNECT (clean session, keep-alive 0, "
    "client id kwsb-<tag>-<index>) and SUBSCRIBE kafka/TOPIC/# at QoS 0, and is subscribed at its SUBACK "
    "(a refused CONNECT or SUBSCRIBE fails the run); the stamps are read from the PUBLISH payloads, "
    "however the packets are cut into frames or reads. With --idle, --no-subscribe sends only the CONNECT. "
    "--mqtt-publish N opens N MQTT clients that each keep --window QoS 1 PUBLISHes of --size bytes in "
    "flight on MQTT topic TOPIC/<index> for --duration seconds, answering each PUBACK with the next "
    "PUBLISH, and reports PUBACKs per second and their latency (kws serve acknowledges only what Kafka "
    "has; this side needs no Kafka); one not acknowledged within --drain fails the run.\n\n"
    "The clients are raw sockets on one epoll thread, so they take little CPU from the bridge; on "
    "a shared machine, compare against a ceiling measured in the same minutes. The report goes to "
    "stdout, as a table or, with --json, as one JSON object; progress and errors go to stderr. Run kws "
    "bench with a raised open-file "
    "limit (ulimit -n) for thousands of clients; it raises its own soft limit up to the hard one.",
    {{"kws bench ws://127.0.0.1:8080/ -c 1000 -r 3000 -d 10",
      "1,000 clients, 3,000 msg/s each (3M deliveries/s), for 10 s"},
     {"kws bench ws://127.0.0.1:8080/ -c 100 -r 1000 --pid $(pgrep -f 'kws serve') --json",
      "latency at 100 clients with the bridge's RSS, CPU and Kafka connections, as JSON"},
     {"kws bench ws://127.0.0.1:8080/ --idle 10000 -d 5 --pid 1234", "bridge memory per idle connection"},
     {"kws bench ws://127.0.0.1:8080/ -c 1000 -r 10000 --key-filters 100 --pid 1234",
      "1,000 clients on 100 key filters: each gets a hundredth of 10,000 msg/s"},
     {"kws bench wss://localhost:8443/ --ca ca.pem -c 1000 -r 1500", "1,000 TLS clients of a bridge with a test CA's certificate"},
     {"kws bench -b kafka:9092 ws://ws-bridge:7080/ --settle 3", "a kafka-websocket bridge, which confirms no subscriptions"},
     {"kws bench ws://127.0.0.1:8080/ --protocol mqtt -c 1000 -r 1000 -d 10",
      "1,000 MQTT-over-WebSocket subscribers of kafka/kws-bench/#"},
     {"kws bench ws://127.0.0.1:8080/ --protocol mqtt --idle 10000 -d 5 --pid 1234",
      "bridge memory per idle MQTT connection"},
     {"kws bench mqtt://127.0.0.1:1883 --mqtt-publish 100 --window 10 -d 10",
      "QoS 1 PUBACKs per second from 100 MQTT clients over TCP"}},
    "1 when anything was lost, duplicated, refused or dropped, a PUBLISH was not acknowledged, a connection was closed by the server, "
    "a message was not confirmed by Kafka, or the clients could not connect or subscribe. When interrupted "
    "the partial report is still printed."};

CLI::App* register_bench(CLI::App& parent, BenchOptions& o) {
  CLI::App* app = add_documented_subcommand(parent, bench_doc);
  app->add_option("url", o.url,
                  "The bridge, ws://HOST:PORT/ or wss://HOST:PORT/ (the path defaults to /v2/broker/, /mqtt for MQTT), "
                  "or mqtt://HOST:PORT for MQTT over TCP")
      ->required()
      ->type_name("URL");
  app->add_option("-t,--topic", o.topic, "Topic to produce to and subscribe to")->type_name("TOPIC")->default_str("kws-bench");
  auto* clients = app->add_option("-c,--clients", o.clients, "WebSocket clients, all on the topic")
                      ->type_name("N")
                      ->default_val(100)
                      ->check(integer_in(1, 1000000));
  app->add_option("-r,--rate", o.rate, "Messages per second produced into Kafka (each goes to every client)")
      ->type_name("MSG/S")
      ->default_val(1000)
      ->check(positive_number());
  app->add_option("-d,--duration", o.duration, "Seconds of producing (with --idle: of sitting)")
      ->type_name("SECONDS")
      ->default_val(10)
      ->check(positive_number());
  app->add_option("-s,--size", o.size, "Bytes per message value (at least 64: the stamp)")
      ->type_name("BYTES")
      ->default_val(150)
      ->check(integer_in(64, 16 << 20));
  app->add_option("--key-filters", o.key_filters,
                  "Key messages k0..k{N-1} round-robin; client j subscribes with filter={\"key\":[\"k{j%N}\"]} "
                  "and must get exactly its key's messages")
      ->type_name("N")
      ->check(integer_in(1, 1000000));
  auto* binary = app->add_flag("--binary", o.binary, "Use the kafka-binary subprotocol instead of kafka-text");
  app->add_option("--protocol", o.protocol,
                  "The clients' protocol: kafka-text (default), kafka-binary, or mqtt (MQTT 3.1.1 subscribed to "
                  "kafka/TOPIC/#; implied by an mqtt:// URL)")
      ->type_name("NAME")
      ->check(CLI::IsMember({"kafka-text", "kafka-binary", "mqtt"}))
      ->excludes(binary);
  auto* idle = app->add_option("--idle", o.idle, "Open N connections that only subscribe and sit (memory per connection)")
                   ->type_name("N")
                   ->check(integer_in(1, 1000000))
                   ->excludes(clients);
  app->add_flag("--no-subscribe", o.no_subscribe, "With --idle and MQTT: send CONNECT only, no SUBSCRIBE")->needs(idle);
  const char* mqtt = "MQTT publishers";
  auto* publish = app->add_option("--mqtt-publish", o.mqtt_publish,
                                  "Open N MQTT clients that publish QoS 1 for --duration (PUBACKs per second)")
                      ->type_name("N")
                      ->check(integer_in(1, 1000000))
                      ->excludes(clients)
                      ->excludes(idle)
                      ->group(mqtt);
  app->add_option("--window", o.window, "QoS 1 PUBLISHes in flight per --mqtt-publish client")
      ->type_name("N")
      ->default_val(10)
      ->check(integer_in(1, 65535))
      ->needs(publish)
      ->group(mqtt);
  app->add_option("--pid", o.pid, "Watch this bridge process: RSS, CPU, Kafka connections")
      ->type_name("PID")
      ->check(integer_in(1, 1 << 30));
  app->add_flag("--json", o.json, "Print the report as one JSON object instead of a table");
  const char* timing = "Timing";
  app->add_option("--settle", o.settle, "Seconds to wait when the server confirms no subscriptions")
      ->type_name("SECONDS")
      ->default_val(1)
      ->check(positive_number())
      ->group(timing);
  app->add_option("--drain", o.drain, "Seconds to wait for the last deliveries after producing")
      ->type_name("SECONDS")
      ->default_val(10)
      ->check(positive_number())
      ->group(timing);
  app->add_option("--connect-timeout", o.connect_timeout, "Seconds for every client to connect and subscribe")
      ->type_name("SECONDS")
      ->default_val(60)
      ->check(positive_number())
      ->group(timing);
  const char* tls = "TLS (wss://)";
  app->add_option("--ca", o.ca_file, "Trust the CA certificates in FILE instead of the system store")
      ->type_name("FILE")
      ->group(tls);
  app->add_flag("--insecure", o.insecure, "Do not check the server's certificate or host name (warns)")->group(tls);
  add_connection_options(app, o.connection);
  return app;
}

namespace {

// The ports of the bootstrap list and of every broker the cluster names: the
// bridge's connections to any of them are its Kafka connections.
std::set<uint16_t> broker_ports(const KafkaSettings& settings, const ClusterInfo& cluster) {
  std::set<uint16_t> ports;
  for (const auto& b : cluster.brokers) ports.insert(static_cast<uint16_t>(b.port));
  std::string list = settings.brokers();
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string one = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t colon = one.rfind(':');
    if (colon != std::string::npos) {
      int port = std::atoi(one.c_str() + colon + 1);
      if (port > 0 && port < 65536) ports.insert(static_cast<uint16_t>(port));
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ports;
}

std::string failure_summary(const bench::BenchResult& r) {
  std::vector<std::string> why;
  const auto& c = r.counters;
  if (r.lost > 0) why.push_back(std::to_string(r.lost) + " of " + std::to_string(r.expected) + " deliveries lost");
  if (c.duplicates) why.push_back(std::to_string(c.duplicates) + " duplicate(s)");
  if (c.misdelivered) why.push_back(std::to_string(c.misdelivered) + " message(s) of another key (the filter let them through)");
  if (r.produce_failed) why.push_back(std::to_string(r.produce_failed) + " message(s) not confirmed by Kafka: " + r.first_produce_error);
  if (!r.options.idle && !r.options.publish && r.delivered + r.produce_failed < r.planned) {
    why.push_back(std::to_string(r.planned - r.delivered - r.produce_failed) + " message(s) never produced");
  }
  if (c.closed_by_server) why.push_back(std::to_string(c.closed_by_server) + " connection(s) closed by the server (" + c.first_close + ")");
  if (c.error_frames) why.push_back(std::to_string(c.error_frames) + " error frame(s) or MQTT refusal(s): " + c.first_error_frame);
  if (r.unacked) why.push_back(std::to_string(r.unacked) + " QoS 1 PUBLISH(es) never acknowledged");
  if (c.unexpected_acks) why.push_back(std::to_string(c.unexpected_acks) + " PUBACK(s) of a packet id not in flight");
  if (r.options.publish && c.acked == 0 && !r.interrupted) why.push_back("no PUBACK at all");
  if (c.dropped_reported) why.push_back(std::to_string(c.dropped_reported) + " message(s) dropped by the server for slow clients");
  std::string s;
  for (const auto& w : why) s += (s.empty() ? "" : "; ") + w;
  return s;
}

int print_report(const BenchOptions& o, const bench::BenchOptions& b, const bench::BenchResult& r) {
  // The report is the command's data, so it goes to stdout (`kws bench ... > report.txt`);
  // progress and the verdict below stay on stderr.
  std::string text = o.json ? bench::format_json(r) + "\n" : bench::format_table(r);
  fwrite(text.data(), 1, text.size(), stdout);
  fflush(stdout);
  if (r.interrupted) return exit_ok;  // a partial run is not judged; main exits 130 or 143
  if (!r.clean()) {
    print_diagnostic("error", failure_summary(r));
    return exit_failure;
  }
  if (!b.idle && !b.publish && r.queued > 0 && r.produce_s > 0 && r.queued / r.produce_s < 0.95 * b.rate) {
    print_diagnostic("warning", "the producer reached only " + std::to_string(static_cast<long>(r.queued / r.produce_s)) +
                                    " of " + std::to_string(static_cast<long>(b.rate)) +
                                    " msg/s: Kafka or this machine is the limit, not the bridge");
  }
  return exit_ok;
}

}  // namespace

int run_bench(const BenchOptions& o) {
  bench::BenchOptions b;
  b.url = o.url;
  b.ws = bench::parse_ws_url(o.url);
  if (!b.ws.tls && (!o.ca_file.empty() || o.insecure)) throw usage_error("--ca and --insecure need a wss:// URL");
  b.ca_file = o.ca_file;
  b.insecure = o.insecure;
  if (b.ws.tls && o.insecure) {
    print_diagnostic("warning", "--insecure: the server's certificate and host name are not checked");
  }
  if (o.topic.empty()) throw usage_error("-t must not be empty");
  b.topic = o.topic;
  b.binary = o.binary || o.protocol == "kafka-binary";
  b.mqtt = o.protocol == "mqtt" || b.ws.raw_mqtt;
  if (b.ws.raw_mqtt && !o.protocol.empty() && o.protocol != "mqtt") {
    throw usage_error("an mqtt:// URL speaks MQTT, not --protocol " + o.protocol);
  }
  if (b.ws.raw_mqtt && o.binary) throw usage_error("an mqtt:// URL speaks MQTT, not --binary");
  b.publish = o.mqtt_publish > 0;
  if (b.publish && !b.mqtt) throw usage_error("--mqtt-publish needs --protocol mqtt or an mqtt:// URL");
  if (o.no_subscribe && !b.mqtt) throw usage_error("--no-subscribe needs --protocol mqtt or an mqtt:// URL");
  if (b.mqtt && o.key_filters > 0) throw usage_error("--key-filters is kws serve's kafka-text filter, not MQTT's");
  b.subscribe = !o.no_subscribe;
  b.window = static_cast<size_t>(o.window);
  b.idle = o.idle > 0;
  if (o.key_filters > 0 && b.idle) throw usage_error("--key-filters needs a load run, not --idle");
  b.key_filters = static_cast<size_t>(o.key_filters);
  b.clients = static_cast<size_t>(b.idle ? o.idle : b.publish ? o.mqtt_publish : o.clients);
  b.rate = o.rate;
  b.duration_s = o.duration;
  b.size = static_cast<size_t>(o.size);
  b.settle_s = o.settle;
  b.drain_s = o.drain;
  b.connect_timeout_s = o.connect_timeout;
  b.pid = o.pid;
  if (b.pid > 0 && !bench::read_memory(b.pid)) {
    throw usage_error("--pid " + std::to_string(b.pid) + ": no such process (or /proc/" + std::to_string(b.pid) +
                      "/status is not readable)");
  }
  if (b.binary && b.topic.size() > 255) throw usage_error("kafka-binary cannot name a topic longer than 255 bytes");

  StopCheck stop = [] { return stop_requested(); };
  if (b.publish) {
    // The bridge writes the PUBLISHes into Kafka; this side only counts PUBACKs.
    StderrLog publish_log = o.connection.log();
    return print_report(o, b, bench::run_publish(b, publish_log, stop));
  }

  KafkaSettings settings = o.connection.resolve();
  // Latency should be the bridge's, not the producer's batching delay.
  // (Nagle is off for every kws client, see create_client: with it, one
  // client at 1000 msg/s measured p99 16-40 ms instead of 2.5 ms.)
  if (!settings.find("linger.ms")) settings.set({"linger.ms", "0", ConfigSource::default_value, "kws bench"});
  StderrLog log = o.connection.log();
  KafkaContext context = o.connection.kafka_context(log);

  // The producer also makes sure the topic exists before anyone subscribes.
  Producer producer(settings, context);
  producer.prepare_topic(b.topic);
  if (b.pid > 0) {
    ClusterQuery query;
    query.topics = {b.topic};
    b.broker_ports = broker_ports(settings, describe_cluster(settings, query, context).cluster);
  }

  return print_report(o, b, b.idle ? bench::run_idle(b, log, stop) : bench::run_load(b, producer, log, stop));
}

}  // namespace kws::cmd
