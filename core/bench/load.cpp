#include "core/bench/load.hpp"

#include <sys/resource.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/util/error.hpp"

namespace kws::bench {

namespace {

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

void sleep_until_ns(uint64_t t) {
  timespec ts{static_cast<time_t>(t / 1000000000ull), static_cast<long>(t % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

uint64_t seconds_ns(double s) { return static_cast<uint64_t>(s * 1e9); }

// Watches the bridge process: a memory sample every 100 ms, CPU over a window.
class BridgeWatch {
 public:
  explicit BridgeWatch(const BenchOptions& o) : pid_(o.pid), ports_(o.broker_ports) { report_.pid = o.pid; }
  bool enabled() const { return pid_ > 0; }
  std::optional<MemorySample> sample() {
    if (!enabled()) return std::nullopt;
    auto m = read_memory(pid_);
    if (m) report_.rss_peak_kb = std::max(report_.rss_peak_kb, m->rss_kb);
    last_sample_ = monotonic_ns();
    return m;
  }
  void maybe_sample() {
    if (enabled() && monotonic_ns() - last_sample_ > 100000000ull) sample();
  }
  std::optional<size_t> kafka_connections() {
    if (!enabled() || ports_.empty()) return std::nullopt;
    return count_connections_to(pid_, ports_);
  }
  void start_cpu() {
    if (!enabled()) return;
    cpu0_ = read_cpu_seconds(pid_);
    wall0_ = monotonic_ns();
  }
  void stop_cpu() {
    if (!enabled() || !cpu0_) return;
    auto cpu1 = read_cpu_seconds(pid_);
    double wall = (monotonic_ns() - wall0_) / 1e9;
    if (cpu1 && wall > 0) {
      report_.cpu_pct = 100.0 * (*cpu1 - *cpu0_) / wall;
      report_.cpu_s = *cpu1 - *cpu0_;
    }
  }
  BridgeReport& report() { return report_; }

 private:
  int pid_;
  std::set<uint16_t> ports_;
  BridgeReport report_;
  uint64_t last_sample_ = 0;
  std::optional<double> cpu0_;
  uint64_t wall0_ = 0;
};

std::string key_name(size_t k) { return "k" + std::to_string(k); }

SwarmOptions swarm_options(const BenchOptions& o, const std::string& tag, uint64_t planned) {
  SwarmOptions s;
  s.url = o.ws;
  s.target = subscribe_target(o.ws, o.topic);
  s.subprotocol = o.binary ? "kafka-binary" : "kafka-text";
  s.mqtt = o.mqtt;
  if (o.mqtt) {
    s.target = mqtt_target(o.ws);
    if (!o.publish && o.subscribe) s.mqtt_filter = "kafka/" + o.topic + "/#";
  }
  if (o.publish) {
    s.publish_window = o.window;
    s.publish_topic = o.topic;
    s.publish_size = o.size;
  }
  s.clients = o.clients;
  s.tag = tag;
  s.planned_messages = planned;
  s.ca_file = o.ca_file;
  s.insecure = o.insecure;
  for (size_t k = 0; k < o.key_filters; k++) {
    const std::string filter = "{\"key\":[\"" + key_name(k) + "\"]}";
    s.targets.push_back(s.target + "&filter=" + url_encode(filter));
  }
  return s;
}

// Connects every client and waits until each has its subscription, or, for a
// server that never confirms one (kafka-websocket), for the settle time.
void connect_and_subscribe(Swarm& swarm, const BenchOptions& o, BenchResult& r, LogSink& log, const StopCheck& stop) {
  const uint64_t t0 = monotonic_ns();
  const uint64_t deadline = t0 + seconds_ns(o.connect_timeout_s);
  swarm.connect(deadline, stop);
  const uint64_t t1 = monotonic_ns();
  r.connect_s = (t1 - t0) / 1e9;
  log.info("kws bench: " + std::to_string(swarm.open_clients()) + " connections open in " +
           std::to_string(r.connect_s).substr(0, 5) + " s");
  for (;;) {
    if (stop && stop()) return;
    const auto& c = swarm.counters();
    if (c.error_frames > 0) {
      throw Error(o.mqtt ? c.first_error_frame : "the server refused the subscription: " + c.first_error_frame);
    }
    if (c.closed_by_server > 0) throw Error("the server closed a connection while subscribing: " + c.first_close);
    if (swarm.subscribed_clients() == swarm.clients()) {
      r.server_confirms_subscriptions = true;
      break;
    }
    const uint64_t now = monotonic_ns();
    // An MQTT server always answers CONNECT and SUBSCRIBE.
    if (!o.mqtt && swarm.subscribed_clients() == 0 && now - t1 > seconds_ns(o.settle_s)) {
      log.note("the server sent no \"subscribed\" frames (not kws serve?); assumed subscribed after --settle " +
               std::to_string(o.settle_s).substr(0, 4) + " s");
      break;
    }
    if (now > deadline) {
      throw Error("only " + std::to_string(swarm.subscribed_clients()) + " of " + std::to_string(swarm.clients()) +
                  " clients were subscribed in time (--connect-timeout)");
    }
    swarm.pump(10);
  }
  r.subscribe_s = (monotonic_ns() - t1) / 1e9;
}

void fill_latency(BenchResult& r, const Swarm& swarm) {
  const auto& h = swarm.latency();
  r.p50_ms = h.quantile_ms(0.50);
  r.p90_ms = h.quantile_ms(0.90);
  r.p99_ms = h.quantile_ms(0.99);
  r.p999_ms = h.quantile_ms(0.999);
  r.max_ms = h.max_ms();
}

}  // namespace

std::string protocol_name(const BenchOptions& o) {
  if (o.mqtt) return o.ws.raw_mqtt ? "mqtt over TCP" : "mqtt";
  return o.binary ? "kafka-binary" : "kafka-text";
}

bool BenchResult::clean() const {
  return !interrupted && lost == 0 && counters.duplicates == 0 && counters.misdelivered == 0 && produce_failed == 0 && counters.closed_by_server == 0 &&
         counters.error_frames == 0 && counters.dropped_reported == 0 && counters.unexpected_acks == 0 && unacked == 0 &&
         (options.idle || (options.publish ? counters.acked > 0 : delivered == planned));
}

BenchResult run_load(const BenchOptions& o, MessageSink& sink, LogSink& log, const StopCheck& stop) {
  BenchResult r;
  r.options = o;
  r.subprotocol = protocol_name(o);
  r.planned = static_cast<uint64_t>(std::llround(o.rate * o.duration_s));
  if (r.planned == 0) throw usage_error("--rate x --duration is less than one message");
  const double bitmap_bytes = static_cast<double>(r.planned) * static_cast<double>(o.clients) / 8;
  if (bitmap_bytes > 2e9) {
    throw usage_error("--clients x --rate x --duration is too large to count exactly (" +
                      std::to_string(static_cast<uint64_t>(bitmap_bytes / 1e6)) +
                      " MB of per-client bitmaps); shorten --duration");
  }
  const std::string tag = make_run_tag();
  BridgeWatch watch(o);
  watch.report().before = watch.sample();
  watch.report().kafka_connections_before = watch.kafka_connections();

  Swarm swarm(swarm_options(o, tag, r.planned));
  connect_and_subscribe(swarm, o, r, log, stop);
  watch.report().connected = watch.sample();
  watch.report().kafka_connections_subscribed = watch.kafka_connections();
  if (stop && stop()) {
    r.interrupted = true;
    return r;
  }

  // The producer runs on its own thread so that a blocked produce never
  // delays the clients' reads (which would inflate the latency measured).
  std::atomic<uint64_t> delivered{0}, failed_delivery{0}, failed_enqueue{0}, queued{0};
  std::atomic<bool> producing_done{false}, flushed{false}, stop_producing{false};
  std::atomic<uint64_t> produce_end_ns{0};
  std::mutex error_mutex;
  std::string first_error;
  // --key-filters: messages confirmed per key, for each client's expected count.
  const size_t nkeys = o.key_filters;
  std::vector<std::atomic<uint64_t>> delivered_per_key(nkeys);
  std::vector<std::string> keys;
  for (size_t k = 0; k < nkeys; k++) keys.push_back(key_name(k));
  auto expected_per_key = [&] {
    std::vector<uint64_t> v(nkeys);
    for (size_t k = 0; k < nkeys; k++) v[k] = delivered_per_key[k].load();
    return v;
  };
  sink.on_delivery([&](const Delivery& d) {
    if (d.ok()) {
      if (nkeys) delivered_per_key[d.token % nkeys].fetch_add(1, std::memory_order_relaxed);
      delivered.fetch_add(1, std::memory_order_relaxed);
    } else {
      failed_delivery.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lock(error_mutex);
      if (first_error.empty()) first_error = std::string(d.message);
    }
  });
  const double cpu0 = process_cpu_seconds();
  watch.start_cpu();
  const uint64_t start_ns = monotonic_ns() + 1000000;  // 1 ms to let the thread start
  const double period_ns = 1e9 / o.rate;
  std::thread producer([&] {
    std::string value;
    OutgoingRecord record;
    record.topic = o.topic;
    for (uint64_t seq = 0; seq < r.planned && !stop_producing.load(std::memory_order_relaxed); seq++) {
      // The stamp is the moment the message became due, not when the
      // producer got to it: a producer that falls behind shows as latency
      // instead of hiding it (coordinated omission).
      const uint64_t due = start_ns + static_cast<uint64_t>(static_cast<double>(seq) * period_ns);
      if (monotonic_ns() < due) {
        sink.serve_deliveries(std::chrono::milliseconds(0));
        sleep_until_ns(due);
      }
      format_message(value, tag, seq, due, o.size);
      record.value = value;
      if (nkeys) record.key = std::string_view(keys[seq % nkeys]);
      record.token = seq;
      for (;;) {
        ProduceOutcome out = sink.try_produce(record);
        if (out.queued()) {
          queued.fetch_add(1, std::memory_order_relaxed);
          break;
        }
        if (out.error != ProduceError::queue_full) {
          failed_enqueue.fetch_add(1, std::memory_order_relaxed);
          std::lock_guard<std::mutex> lock(error_mutex);
          if (first_error.empty()) first_error = out.message;
          break;
        }
        if (stop_producing.load(std::memory_order_relaxed)) break;
        sink.serve_deliveries(std::chrono::milliseconds(1));
      }
    }
    produce_end_ns = monotonic_ns();
    producing_done = true;
    const uint64_t flush_deadline = monotonic_ns() + seconds_ns(o.drain_s);
    while (sink.in_flight() > 0 && monotonic_ns() < flush_deadline && !stop_producing.load()) {
      sink.serve_deliveries(std::chrono::milliseconds(20));
    }
    sink.serve_deliveries(std::chrono::milliseconds(0));
    flushed = true;
  });

  uint64_t drain_deadline = 0;
  for (;;) {
    swarm.pump(5);
    watch.maybe_sample();
    if (stop && stop()) {
      r.interrupted = true;
      stop_producing = true;
      break;
    }
    if (!flushed.load()) continue;
    if (!drain_deadline) drain_deadline = monotonic_ns() + seconds_ns(o.drain_s);
    const size_t left = nkeys ? swarm.incomplete(expected_per_key()) : swarm.incomplete(delivered.load());
    if (left == 0 || monotonic_ns() > drain_deadline) break;
  }
  producer.join();
  watch.stop_cpu();
  const double cpu1 = process_cpu_seconds();
  watch.report().after = watch.sample();
  watch.report().kafka_connections = watch.kafka_connections();

  r.queued = queued.load();
  r.delivered = delivered.load();
  // Queued and never reported within --drain counts as failed too.
  const uint64_t unreported = r.queued - std::min(r.queued, r.delivered + failed_delivery.load());
  r.produce_failed = failed_enqueue.load() + failed_delivery.load() + unreported;
  r.first_produce_error = first_error;
  if (unreported > 0 && r.first_produce_error.empty()) {
    r.first_produce_error = "no delivery report within --drain";
  }
  r.produce_s = produce_end_ns.load() > start_ns ? (produce_end_ns.load() - start_ns) / 1e9 : 0;
  r.counters = swarm.counters();
  if (nkeys) {
    const auto per_key = expected_per_key();
    r.expected = 0;
    for (size_t j = 0; j < o.clients; j++) r.expected += per_key[j % nkeys];
  } else {
    r.expected = r.delivered * o.clients;
  }
  r.lost = static_cast<int64_t>(r.expected) - static_cast<int64_t>(r.counters.unique);
  r.window_s = r.counters.last_rx_ns > r.counters.first_rx_ns ? (r.counters.last_rx_ns - r.counters.first_rx_ns) / 1e9 : 0;
  r.deliveries_per_s = r.window_s > 0 ? static_cast<double>(r.counters.unique) / r.window_s : 0;
  fill_latency(r, swarm);
  const double wall = (monotonic_ns() - start_ns) / 1e9;
  r.bench_cpu_pct = wall > 0 ? 100.0 * (cpu1 - cpu0) / wall : 0;
  r.bridge = watch.report();
  if (r.bridge.cpu_s >= 0 && r.counters.unique > 0) {
    r.bridge_us_per_delivery = r.bridge.cpu_s * 1e6 / static_cast<double>(r.counters.unique);
  }
  swarm.close_all(2000);
  return r;
}

BenchResult run_idle(const BenchOptions& o, LogSink& log, const StopCheck& stop) {
  BenchResult r;
  r.options = o;
  r.subprotocol = protocol_name(o);
  BridgeWatch watch(o);
  watch.report().before = watch.sample();
  watch.report().kafka_connections_before = watch.kafka_connections();
  Swarm swarm(swarm_options(o, make_run_tag(), 0));
  connect_and_subscribe(swarm, o, r, log, stop);
  watch.report().connected = watch.sample();
  watch.report().kafka_connections_subscribed = watch.kafka_connections();
  watch.start_cpu();
  const uint64_t start = monotonic_ns();
  const double cpu0 = process_cpu_seconds();
  while (monotonic_ns() - start < seconds_ns(o.duration_s)) {
    if (stop && stop()) {
      r.interrupted = true;
      break;
    }
    swarm.pump(50);
    watch.maybe_sample();
    if (swarm.counters().closed_by_server > 0) break;
  }
  watch.stop_cpu();
  r.bench_cpu_pct = 100.0 * (process_cpu_seconds() - cpu0) / std::max(1e-9, (monotonic_ns() - start) / 1e9);
  // Sampled after sitting, so lazily freed memory and the first pings are in.
  watch.report().after = watch.sample();
  watch.report().kafka_connections = watch.kafka_connections();
  r.counters = swarm.counters();
  r.bridge = watch.report();
  if (r.bridge.before && r.bridge.after && o.clients > 0) {
    r.bytes_per_connection = (static_cast<double>(r.bridge.after->rss_kb) - static_cast<double>(r.bridge.before->rss_kb)) *
                             1024.0 / static_cast<double>(o.clients);
  }
  swarm.close_all(2000);
  return r;
}

BenchResult run_publish(const BenchOptions& o, LogSink& log, const StopCheck& stop) {
  BenchResult r;
  r.options = o;
  r.subprotocol = protocol_name(o);
  BridgeWatch watch(o);
  watch.report().before = watch.sample();
  watch.report().kafka_connections_before = watch.kafka_connections();
  Swarm swarm(swarm_options(o, make_run_tag(), 0));
  connect_and_subscribe(swarm, o, r, log, stop);  // every client has its CONNACK
  watch.report().connected = watch.sample();
  watch.report().kafka_connections_subscribed = watch.kafka_connections();
  if (stop && stop()) {
    r.interrupted = true;
    swarm.close_all(2000);
    return r;
  }
  watch.start_cpu();
  const double cpu0 = process_cpu_seconds();
  const uint64_t start = monotonic_ns();
  swarm.start_publishing();
  while (monotonic_ns() - start < seconds_ns(o.duration_s)) {
    if (stop && stop()) {
      r.interrupted = true;
      break;
    }
    swarm.pump(5);
    watch.maybe_sample();
    if (swarm.counters().closed_by_server > 0) break;
  }
  swarm.stop_publishing();
  r.produce_s = (monotonic_ns() - start) / 1e9;
  // What is in flight is waited for: unacknowledged at the end is lost.
  const uint64_t drain_deadline = monotonic_ns() + seconds_ns(o.drain_s);
  while (swarm.in_flight() > 0 && monotonic_ns() < drain_deadline && !(stop && stop())) {
    swarm.pump(5);
    watch.maybe_sample();
  }
  watch.stop_cpu();
  r.bench_cpu_pct = 100.0 * (process_cpu_seconds() - cpu0) / std::max(1e-9, (monotonic_ns() - start) / 1e9);
  watch.report().after = watch.sample();
  watch.report().kafka_connections = watch.kafka_connections();
  r.counters = swarm.counters();
  r.unacked = swarm.in_flight();
  const auto& c = r.counters;
  r.window_s = c.last_ack_ns > c.first_ack_ns ? (c.last_ack_ns - c.first_ack_ns) / 1e9 : 0;
  r.acks_per_s = r.window_s > 0 ? static_cast<double>(c.acked) / r.window_s : 0;
  fill_latency(r, swarm);
  r.bridge = watch.report();
  if (r.bridge.cpu_s >= 0 && c.acked > 0) r.bridge_us_per_delivery = r.bridge.cpu_s * 1e6 / static_cast<double>(c.acked);
  log.info("kws bench: " + std::to_string(c.acked) + " PUBACKs from " + std::to_string(o.clients) + " publishers");
  swarm.close_all(2000);
  return r;
}

namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string kb(uint64_t v) { return fmt("%.1f MB", static_cast<double>(v) / 1024.0); }

}  // namespace

std::string format_table(const BenchResult& r) {
  const auto& o = r.options;
  const auto& c = r.counters;
  std::string t;
  auto row = [&t](const std::string& name, const std::string& value) {
    t += "  " + name + std::string(name.size() < 16 ? 16 - name.size() : 1, ' ') + value + "\n";
  };
  if (o.publish) {
    t += "kws bench --mqtt-publish: " + std::to_string(o.clients) + " publishers on " + o.url + " (" + r.subprotocol +
         ", MQTT topics " + o.topic + "/<client>), QoS 1, window " + std::to_string(o.window) + ", " +
         std::to_string(o.size) + " B for " + fmt("%g", o.duration_s) + " s\n";
  } else if (o.idle) {
    t += "kws bench --idle: " + std::to_string(o.clients) + " connections to " + o.url + " (topic " + o.topic + ", " +
         r.subprotocol + ")\n";
  } else {
    t += "kws bench: " + std::to_string(o.clients) + " clients on " + o.url + " (topic " + o.topic + ", " +
         r.subprotocol + "), " + fmt("%g", o.rate) + " msg/s for " + fmt("%g", o.duration_s) + " s, " +
         std::to_string(o.size) + " B\n";
    if (o.key_filters) {
      row("key filters", std::to_string(o.key_filters) + " keys round-robin; client j filters on k{j % " +
                             std::to_string(o.key_filters) + "}");
    }
  }
  row("connect", fmt("%.2f s", r.connect_s) + ", subscribed in " + fmt("%.2f s", r.subscribe_s) +
                     (r.server_confirms_subscriptions ? "" : " (settle time: no subscribed frames)"));
  if (o.publish) {
    row("published", std::to_string(c.published) + " QoS 1 PUBLISHes; " + std::to_string(c.acked) + " acknowledged, " +
                         std::to_string(r.unacked) + " not" +
                         (c.unexpected_acks ? ", " + std::to_string(c.unexpected_acks) + " unexpected PUBACKs" : ""));
    row("PUBACKs/s", fmt("%.0f", r.acks_per_s) + fmt(" (over %.2f s)", r.window_s));
    row("PUBACK ms", fmt("p50 %.3f", r.p50_ms) + fmt("  p90 %.3f", r.p90_ms) + fmt("  p99 %.3f", r.p99_ms) +
                         fmt("  p99.9 %.3f", r.p999_ms) + fmt("  max %.3f", r.max_ms));
  } else if (!o.idle) {
    row("produced", std::to_string(r.delivered) + " of " + std::to_string(r.planned) + " confirmed by Kafka" +
                        (r.produce_failed ? ", " + std::to_string(r.produce_failed) + " failed: " + r.first_produce_error : "") +
                        fmt(", at %.0f msg/s", r.produce_s > 0 ? r.queued / r.produce_s : 0));
    row("deliveries", std::to_string(c.unique) + " of " + std::to_string(r.expected) + " expected; lost " +
                          std::to_string(r.lost) + ", duplicates " + std::to_string(c.duplicates) +
                          (o.key_filters ? ", misdelivered " + std::to_string(c.misdelivered) : ""));
    row("deliveries/s", fmt("%.0f", r.deliveries_per_s) + fmt(" (over %.2f s)", r.window_s));
    row("latency ms", fmt("p50 %.3f", r.p50_ms) + fmt("  p90 %.3f", r.p90_ms) + fmt("  p99 %.3f", r.p99_ms) +
                          fmt("  p99.9 %.3f", r.p999_ms) + fmt("  max %.3f", r.max_ms));
  }
  if (c.dropped_reported || c.error_frames || c.closed_by_server || c.foreign) {
    std::string s = "dropped by server " + std::to_string(c.dropped_reported) + ", error frames " +
                    std::to_string(c.error_frames) + ", closed by server " + std::to_string(c.closed_by_server) +
                    ", other frames " + std::to_string(c.foreign);
    if (!c.first_close.empty()) s += "; first close: " + c.first_close;
    if (!c.first_error_frame.empty()) s += "; first error: " + c.first_error_frame;
    row("server", s);
  }
  row("bench CPU", fmt("%.0f %%", r.bench_cpu_pct) + " (this process: clients and producer)");
  if (r.bridge.pid > 0) {
    const auto& b = r.bridge;
    std::string mem = "pid " + std::to_string(b.pid) + ": RSS ";
    mem += b.before ? kb(b.before->rss_kb) : "?";
    mem += " before, " + (b.connected ? kb(b.connected->rss_kb) : std::string("?")) + " connected, " + kb(b.rss_peak_kb) +
           " peak";
    if (b.after) mem += ", HWM " + kb(b.after->hwm_kb);
    row("bridge", mem);
    if (b.cpu_pct >= 0) {
      row("bridge CPU", fmt("%.0f %%", b.cpu_pct) +
                            (r.bridge_us_per_delivery >= 0 ? fmt(", %.3f µs per delivery", r.bridge_us_per_delivery) : ""));
    }
    if (b.kafka_connections) {
      auto n = [](const std::optional<size_t>& v) { return v ? std::to_string(*v) : std::string("?"); };
      row("Kafka conns", n(b.kafka_connections) + " at the end, " + n(b.kafka_connections_subscribed) +
                             " once subscribed, " + n(b.kafka_connections_before) + " before the clients");
    }
    if (r.bytes_per_connection) row("per connection", fmt("%.0f B of bridge RSS", *r.bytes_per_connection));
  }
  if (r.interrupted) t += "  (interrupted)\n";
  return t;
}

std::string format_json(const BenchResult& r) {
  using nlohmann::json;
  const auto& o = r.options;
  const auto& c = r.counters;
  json j;
  j["mode"] = o.publish ? "publish" : o.idle ? "idle" : "load";
  j["url"] = o.url;
  j["topic"] = o.topic;
  j["subprotocol"] = r.subprotocol;
  j["clients"] = o.clients;
  j["transport"] = o.ws.raw_mqtt ? "tcp" : "websocket";
  j["connect_s"] = r.connect_s;
  j["subscribe_s"] = r.subscribe_s;
  j["subscribed_confirmed"] = r.server_confirms_subscriptions;
  if (o.publish) {
    j["duration_s"] = o.duration_s;
    j["size"] = o.size;
    j["window"] = o.window;
    j["published"] = c.published;
    j["acked"] = c.acked;
    j["unacked"] = r.unacked;
    j["unexpected_acks"] = c.unexpected_acks;
    j["window_s"] = r.window_s;
    j["acks_per_s"] = r.acks_per_s;
    j["p50_ms"] = r.p50_ms;
    j["p90_ms"] = r.p90_ms;
    j["p99_ms"] = r.p99_ms;
    j["p999_ms"] = r.p999_ms;
    j["max_ms"] = r.max_ms;
  } else if (!o.idle) {
    j["rate"] = o.rate;
    j["duration_s"] = o.duration_s;
    j["size"] = o.size;
    j["planned"] = r.planned;
    j["produced"] = r.delivered;
    j["produce_failed"] = r.produce_failed;
    if (!r.first_produce_error.empty()) j["produce_error"] = r.first_produce_error;
    j["produce_rate"] = r.produce_s > 0 ? r.queued / r.produce_s : 0;
    j["expected"] = r.expected;
    j["received"] = c.unique;
    j["lost"] = r.lost;
    j["duplicates"] = c.duplicates;
    j["key_filters"] = o.key_filters;
    if (o.key_filters) j["misdelivered"] = c.misdelivered;
    j["window_s"] = r.window_s;
    j["deliveries_per_s"] = r.deliveries_per_s;
    j["p50_ms"] = r.p50_ms;
    j["p90_ms"] = r.p90_ms;
    j["p99_ms"] = r.p99_ms;
    j["p999_ms"] = r.p999_ms;
    j["max_ms"] = r.max_ms;
  } else {
    j["duration_s"] = o.duration_s;
  }
  j["dropped_by_server"] = c.dropped_reported;
  j["error_frames"] = c.error_frames;
  j["closed_by_server"] = c.closed_by_server;
  j["other_frames"] = c.foreign;
  j["pings"] = c.pings;
  j["bench_cpu_pct"] = r.bench_cpu_pct;
  j["clean"] = r.clean();
  j["interrupted"] = r.interrupted;
  if (r.bridge.pid > 0) {
    const auto& b = r.bridge;
    json bj;
    bj["pid"] = b.pid;
    auto mem = [](const std::optional<MemorySample>& m) { return m ? json(m->rss_kb) : json(nullptr); };
    bj["rss_kb_before"] = mem(b.before);
    bj["rss_kb_connected"] = mem(b.connected);
    bj["rss_kb_after"] = mem(b.after);
    bj["rss_kb_peak"] = b.rss_peak_kb;
    bj["hwm_kb"] = b.after ? json(b.after->hwm_kb) : json(nullptr);
    bj["cpu_pct"] = b.cpu_pct >= 0 ? json(b.cpu_pct) : json(nullptr);
    bj["cpu_s"] = b.cpu_s >= 0 ? json(b.cpu_s) : json(nullptr);
    bj["us_per_delivery"] = r.bridge_us_per_delivery >= 0 ? json(r.bridge_us_per_delivery) : json(nullptr);
    bj["kafka_connections_before"] = b.kafka_connections_before ? json(*b.kafka_connections_before) : json(nullptr);
    bj["kafka_connections_subscribed"] =
        b.kafka_connections_subscribed ? json(*b.kafka_connections_subscribed) : json(nullptr);
    bj["kafka_connections"] = b.kafka_connections ? json(*b.kafka_connections) : json(nullptr);
    if (r.bytes_per_connection) bj["rss_bytes_per_connection"] = *r.bytes_per_connection;
    j["bridge"] = bj;
  }
  return j.dump();
}

}  // namespace kws::bench
