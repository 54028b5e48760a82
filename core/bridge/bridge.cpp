#include "core/bridge/bridge.hpp"

#include <atomic>
#include <thread>

#include "core/kafka/consumer.hpp"
#include "core/kafka/partition_reader.hpp"
#include "core/kafka/producer.hpp"
#include "core/util/metrics_text.hpp"

namespace kws {

struct Bridge::Impl {
  KafkaSettings settings;
  KafkaContext context;
  BridgeOptions options;
  std::unique_ptr<Producer> producer;
  std::unique_ptr<Hub> hub;
  std::unique_ptr<Server> server;
  std::atomic<bool> kafka_ready{true};
  std::atomic<bool> delivering{true};

  std::string hub_metrics() const {
    HubStats s = hub->stats();
    MetricsText m;
    m.family("kws_serve_kafka_messages_total", "counter", "Messages the shared reader read from Kafka")
        .sample("kws_serve_kafka_messages_total", static_cast<double>(s.messages));
    m.family("kws_serve_catchups", "gauge", "Subscriptions reading history before joining the live stream")
        .sample("kws_serve_catchups", static_cast<double>(s.catchups));
    m.family("kws_serve_kafka_ready", "gauge", "1 when Kafka answers").sample("kws_serve_kafka_ready", kafka_ready ? 1 : 0);
    m.family("kws_serve_produce_in_flight", "gauge", "Client messages waiting for Kafka's answer")
        .sample("kws_serve_produce_in_flight", static_cast<double>(producer->in_flight()));
    m.family("kws_serve_topic_subscribers", "gauge", "Sessions subscribed to a topic (shared reader)");
    for (const auto& t : s.topics) m.sample("kws_serve_topic_subscribers", static_cast<double>(t.subscribers), {{"topic", t.topic}});
    m.family("kws_serve_topic_lag", "gauge", "Messages in Kafka the shared reader has not read yet");
    for (const auto& t : s.topics) m.sample("kws_serve_topic_lag", static_cast<double>(t.lag), {{"topic", t.topic}});
    m.family("kws_serve_ring_bytes", "gauge", "Bytes of recent frames kept for -N starts and catch-ups");
    for (const auto& t : s.topics) m.sample("kws_serve_ring_bytes", static_cast<double>(t.ring_bytes), {{"topic", t.topic}});
    m.family("kws_serve_ring_frames", "gauge", "Recent frames kept per topic");
    for (const auto& t : s.topics) m.sample("kws_serve_ring_frames", static_cast<double>(t.ring_frames), {{"topic", t.topic}});
    m.family("kws_serve_topic_messages_total", "counter", "Messages read per topic since it started");
    for (const auto& t : s.topics) m.sample("kws_serve_topic_messages_total", static_cast<double>(t.messages), {{"topic", t.topic}});
    return m.text();
  }
};

Bridge::Bridge(const KafkaSettings& settings, const KafkaContext& context, BridgeOptions options,
               std::string_view demo_page)
    : impl_(std::make_unique<Impl>()) {
  Impl& b = *impl_;
  b.settings = settings;
  b.context = context;
  b.options = std::move(options);
  b.producer = std::make_unique<Producer>(settings, context);

  PartitionReaderOptions live_options;
  live_options.fetch_queue_kbytes = 16384;
  auto live = std::make_unique<PartitionReader>(settings, context, live_options);
  auto catchup = [&b] {
    PartitionReaderOptions o;
    o.end_events = true;
    o.fetch_queue_kbytes = 4096;
    return std::unique_ptr<PartitionFeed>(std::make_unique<PartitionReader>(b.settings, b.context, o));
  };
  b.hub = std::make_unique<Hub>(std::move(live), catchup, b.options.hub, *context.log);

  ServerServices services;
  services.hub = b.hub.get();
  services.producer = b.producer.get();
  services.log = context.log;
  services.demo_page = demo_page;
  services.kafka_ready = [&b] { return b.kafka_ready.load(); };
  services.extra_metrics = [&b] { return b.hub_metrics(); };
  services.open_group = [&b](const GroupRequest& g) {
    ConsumerPlan plan;
    plan.topics = g.topics;
    plan.group = g.group;
    plan.start = g.start;
    plan.start_explicit = g.start_explicit;
    if (!g.start_explicit) plan.start.kind = OffsetSpec::Kind::stored;
    plan.want_headers = true;
    KafkaContext group_context = b.context;
    return std::unique_ptr<MessageSource>(std::make_unique<Consumer>(b.settings, plan, group_context));
  };
  b.server = std::make_unique<Server>(b.options.server, services);
  b.server->listen();
  b.producer->on_delivery([&b](const Delivery& d) { b.server->on_delivery(d); });
}

Bridge::~Bridge() = default;

std::string Bridge::address() const { return impl_->server->address(); }

void Bridge::run(const std::function<void(const BridgeStatus&)>& on_status) {
  Impl& b = *impl_;
  std::exception_ptr hub_failure;
  std::thread hub_thread([&] {
    try {
      b.hub->run();
    } catch (...) {
      hub_failure = std::current_exception();
      b.context.log->error("the shared Kafka reader stopped; shutting down");
    }
  });
  std::thread delivery_thread([&] {
    while (b.delivering) b.producer->serve_deliveries(std::chrono::milliseconds(50));
  });
  std::thread io_thread([&] { b.server->run(); });

  auto last_status = std::chrono::steady_clock::now();
  auto last_probe = last_status;
  while (!b.context.stopping() && !hub_failure) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = std::chrono::steady_clock::now();
    if (now - last_probe >= std::chrono::seconds(2)) {
      last_probe = now;
      b.kafka_ready = !b.producer->connection_lost().has_value();
    }
    if (on_status && now - last_status >= std::chrono::seconds(1)) {
      last_status = now;
      const auto& c = b.server->counters();
      BridgeStatus s;
      s.connections = b.server->open_connections();
      s.messages_in = b.hub->stats().messages;
      s.frames_out = c.frames_out;
      s.produced = c.produced;
      s.dropped = c.dropped;
      s.kafka_ready = b.kafka_ready;
      on_status(s);
    }
  }

  // Stop taking new work: no new connections, and every session handles
  // what its client had already sent, then stops reading. Then let Kafka
  // answer all of it (the acks go out before the close) and close every
  // connection with 1001.
  b.server->stop_accepting();
  if (b.server->stop_reading().wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    b.context.log->warning("the I/O thread did not stop reading clients within 5 s");
  }
  b.delivering = false;
  delivery_thread.join();
  auto deadline = std::chrono::steady_clock::now() + b.options.shutdown_grace;
  b.producer->flush([&] { return std::chrono::steady_clock::now() >= deadline; });
  if (b.producer->in_flight() > 0) {
    b.context.log->warning(std::to_string(b.producer->in_flight()) +
                           " client message(s) not confirmed by Kafka at shutdown; their senders got no ack");
  }
  b.server->finish(std::chrono::milliseconds(2000));
  io_thread.join();
  b.hub->stop();
  hub_thread.join();
  if (hub_failure) std::rethrow_exception(hub_failure);
}

}  // namespace kws
