#pragma once
// kws bench's two runs against a kafka-websocket-compatible bridge:
//  - load: N clients subscribe to one topic, a producer writes stamped
//    messages into Kafka at a fixed rate, and every client counts what it
//    receives: deliveries/s, loss, duplicates, end-to-end latency;
//  - idle: N connections that only subscribe and sit there, to measure the
//    bridge's memory per connection;
//  - publish (MQTT only): N clients publish QoS 1 with a window of packet
//    ids in flight, for the rate of PUBACKs (a bridge sends each only once
//    Kafka has the record) and their latency.
// Subscribers speak kafka-text, kafka-binary or MQTT 3.1.1 (over WebSocket,
// or over TCP for mqtt://), which subscribes to kafka/<topic>/#.
// Both can watch the bridge process (--pid): RSS, CPU and its Kafka
// connections. Kafka is reached only through MessageSink, so this folder
// needs no librdkafka.
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "core/bench/histogram.hpp"
#include "core/bench/process_probe.hpp"
#include "core/bench/swarm.hpp"
#include "core/bench/wire.hpp"
#include "core/message_io.hpp"
#include "core/util/log.hpp"

namespace kws::bench {

struct BenchOptions {
  std::string url;            // as given, for the report
  WsUrl ws;
  std::string ca_file;        // wss:// only: trust this CA instead of the system store
  bool insecure = false;      // wss:// only: check no certificate
  std::string topic = "kws-bench";
  bool binary = false;        // subprotocol kafka-binary instead of kafka-text
  size_t clients = 100;
  double rate = 1000;         // messages per second into Kafka
  double duration_s = 10;     // of producing (load) or of sitting (idle)
  size_t size = 150;          // bytes per message value
  bool idle = false;
  bool mqtt = false;          // MQTT 3.1.1 clients (subprotocol mqtt, or raw TCP for mqtt://)
  bool subscribe = true;      // MQTT --idle: false to CONNECT only
  bool publish = false;       // MQTT publishers instead of subscribers (--mqtt-publish)
  size_t window = 10;         // publishers: QoS 1 PUBLISHes in flight per client
  // --key-filters N: the producer keys messages k0..k{N-1} round-robin and
  // client j subscribes with filter={"key":["k{j%N}"]}; 0: no keys, no filters.
  size_t key_filters = 0;
  double settle_s = 1;        // wait for a server that sends no "subscribed" frames
  double drain_s = 10;        // after the last message is produced, wait at most this for deliveries
  double connect_timeout_s = 60;
  int pid = 0;                // the bridge process to watch; 0: none
  std::set<uint16_t> broker_ports;  // for counting the bridge's Kafka connections
};

struct BridgeReport {
  int pid = 0;
  std::optional<MemorySample> before;     // before the clients connected
  std::optional<MemorySample> connected;  // every client subscribed, before any traffic
  std::optional<MemorySample> after;      // at the end, clients still connected
  uint64_t rss_peak_kb = 0;               // highest VmRSS sampled during the run (every 100 ms)
  double cpu_pct = -1;                    // over the traffic window; 100 = one core
  double cpu_s = -1;                      // CPU seconds over the same window
  std::optional<size_t> kafka_connections_before;
  std::optional<size_t> kafka_connections_subscribed;  // just after every client subscribed
  std::optional<size_t> kafka_connections;  // at the end, clients still connected (a reader may connect lazily)
};

struct BenchResult {
  BenchOptions options;
  std::string subprotocol;
  double connect_s = 0;
  double subscribe_s = 0;
  bool server_confirms_subscriptions = false;  // false: kafka-websocket, settle time used
  uint64_t planned = 0;   // messages the schedule asked for
  uint64_t queued = 0;    // handed to the producer
  uint64_t delivered = 0; // confirmed by Kafka
  uint64_t produce_failed = 0;
  std::string first_produce_error;
  double produce_s = 0;   // from the first message to the last queued
  uint64_t expected = 0;  // delivered x clients; with --key-filters, each client's key's share
  int64_t lost = 0;       // expected - unique received
  SwarmCounters counters;
  double window_s = 0;    // first to last receipt
  double deliveries_per_s = 0;
  double bridge_us_per_delivery = -1;  // bridge CPU over the window / unique deliveries (--pid)
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  double bench_cpu_pct = 0;
  BridgeReport bridge;
  bool interrupted = false;
  // Idle runs: RSS growth of the bridge per connection, when --pid was given.
  std::optional<double> bytes_per_connection;
  // Publish runs: PUBACKs per second over the first to the last PUBACK, and
  // the PUBLISHes still unacknowledged at the end of --drain (lost).
  double acks_per_s = 0;
  uint64_t unacked = 0;

  // Zero loss, no duplicates, nothing refused, nothing closed by the server.
  bool clean() const;
};

// Runs the load benchmark; `sink` must outlive the call. Throws kws::Error
// when clients cannot connect or subscribe.
BenchResult run_load(const BenchOptions& options, MessageSink& sink, LogSink& log, const StopCheck& stop);
// Runs the idle-connection benchmark.
BenchResult run_idle(const BenchOptions& options, LogSink& log, const StopCheck& stop);
// Runs the MQTT publish benchmark (options.publish): no Kafka on this side.
BenchResult run_publish(const BenchOptions& options, LogSink& log, const StopCheck& stop);
// "kafka-text", "kafka-binary", "mqtt" (over WebSocket) or "mqtt over TCP".
std::string protocol_name(const BenchOptions& options);

// The report: a human table (for stderr) and one JSON object (for stdout).
std::string format_table(const BenchResult& r);
std::string format_json(const BenchResult& r);

}  // namespace kws::bench
