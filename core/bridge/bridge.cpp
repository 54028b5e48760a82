#include "core/bridge/bridge.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "core/kafka/cluster.hpp"
#include "core/kafka/consumer.hpp"
#include "core/kafka/partition_reader.hpp"
#include "core/kafka/producer.hpp"
#include "core/kafka/topic_admin.hpp"
#include "core/util/guarded_thread.hpp"
#include "core/util/metrics_text.hpp"

namespace kws {

struct Bridge::Impl {
  KafkaSettings settings;
  KafkaContext context;
  BridgeOptions options;
  std::unique_ptr<Producer> producer;
  std::unique_ptr<KafkaTopicAdmin> admin;
  // Before the hub and the server, which use them, so destroyed after.
  std::unique_ptr<Transforms> transforms;
  std::unique_ptr<TransformingSink> sink;
  std::unique_ptr<TransformingAdmin> client_admin;
  std::unique_ptr<Hub> hub;
  std::unique_ptr<mqtt::MqttShared> mqtt;
  std::unique_ptr<Server> server;
  std::atomic<bool> kafka_ready{true};
  std::atomic<bool> delivering{true};

  std::string hub_metrics(const ServerServices::TopicVisible& visible) const {
    HubStats s = hub->stats();
    if (visible) {
      s.topics.erase(std::remove_if(s.topics.begin(), s.topics.end(), [&](const TopicStats& t) { return !visible(t.topic); }),
                     s.topics.end());
    }
    MetricsText m;
    m.family("kws_serve_kafka_messages_total", "counter", "Messages the shared reader read from Kafka")
        .sample("kws_serve_kafka_messages_total", static_cast<double>(s.messages));
    m.family("kws_serve_catchups", "gauge", "Subscriptions reading history before joining the live stream")
        .sample("kws_serve_catchups", static_cast<double>(s.catchups));
    m.family("kws_serve_rewinds_total", "counter",
             "Partitions the shared reader read again for subscriptions starting shortly before the ring")
        .sample("kws_serve_rewinds_total", static_cast<double>(s.rewinds));
    m.family("kws_serve_admin_requests", "gauge", "Kafka lookups waiting for or running on the admin worker")
        .sample("kws_serve_admin_requests", static_cast<double>(s.admin_jobs));
    m.family("kws_serve_kafka_ready", "gauge", "1 when Kafka answers").sample("kws_serve_kafka_ready", kafka_ready ? 1 : 0);
    m.family("kws_serve_produce_in_flight", "gauge", "Client messages waiting for Kafka's answer")
        .sample("kws_serve_produce_in_flight", static_cast<double>(producer->in_flight()));
    m.family("kws_serve_topic_subscribers", "gauge", "Sessions subscribed to a topic (shared reader)");
    for (const auto& t : s.topics) {
      if (t.reading) m.sample("kws_serve_topic_subscribers", static_cast<double>(t.subscribers), {{"topic", t.topic}});
    }
    m.family("kws_serve_topic_lag", "gauge", "Messages in Kafka the shared reader has not read yet");
    for (const auto& t : s.topics) {
      if (t.reading) m.sample("kws_serve_topic_lag", static_cast<double>(t.lag), {{"topic", t.topic}});
    }
    m.family("kws_serve_ring_bytes", "gauge", "Bytes of recent frames kept for -N starts and catch-ups");
    for (const auto& t : s.topics) {
      if (t.reading) m.sample("kws_serve_ring_bytes", static_cast<double>(t.ring_bytes), {{"topic", t.topic}});
    }
    m.family("kws_serve_ring_frames", "gauge", "Recent frames kept per topic");
    for (const auto& t : s.topics) {
      if (t.reading) m.sample("kws_serve_ring_frames", static_cast<double>(t.ring_frames), {{"topic", t.topic}});
    }
    m.family("kws_serve_topic_messages_total", "counter", "Messages read per topic since the bridge started");
    for (const auto& t : s.topics) m.sample("kws_serve_topic_messages_total", static_cast<double>(t.messages), {{"topic", t.topic}});
    m.family("kws_serve_lost_messages_total", "counter",
             "Offsets skipped because Kafka deleted them (retention) before they were read");
    for (const auto& t : s.topics) {
      for (const auto& [partition, count] : t.lost) {
        m.sample("kws_serve_lost_messages_total", static_cast<double>(count),
                 {{"topic", t.topic}, {"partition", std::to_string(partition)}});
      }
    }
    if (transforms->options().plugin) {
      const TransformCounters& c = transforms->counters();
      m.family("kws_serve_plugin_dropped_total", "counter", "Messages the plugin dropped or failed on, by direction")
          .sample("kws_serve_plugin_dropped_total", static_cast<double>(c.incoming_dropped), {{"direction", "incoming"}})
          .sample("kws_serve_plugin_dropped_total", static_cast<double>(c.outgoing_dropped), {{"direction", "outgoing"}});
      m.family("kws_serve_plugin_failures_total", "counter", "Plugin calls that failed (also counted as dropped)")
          .sample("kws_serve_plugin_failures_total", static_cast<double>(c.plugin_failures));
    }
    return m.text();
  }
};

namespace {

// MQTT's two topics exist before the first client needs them: the retained
// one compacted (the newest message per MQTT topic is all it must keep),
// which auto-creation by a produce would not make it. A cluster that refuses
// (no rights) is told on the log; MQTT still serves what it can.
void start_mqtt(Bridge::Impl& b) {
  const mqtt::MqttSettings& m = b.options.mqtt_settings;
  std::vector<NewTopic> wanted;
  NewTopic messages;
  messages.name = b.transforms->kafka_topic(m.kafka_topic);
  wanted.push_back(messages);
  NewTopic retained;
  retained.name = b.transforms->kafka_topic(m.retained_topic);
  retained.configs = {{"cleanup.policy", "compact"}};
  wanted.push_back(retained);
  try {
    for (const auto& outcome : create_topics(b.settings, wanted, b.context)) {
      if (outcome.error.empty() || outcome.already_exists) {
        if (!outcome.already_exists) b.context.log->info("MQTT: created topic " + outcome.name);
        continue;
      }
      if (outcome.name == retained.name) {
        // A broker that takes no topic configs (kws broker, the embedded
        // one) still keeps the topic; only compaction is missing.
        NewTopic plain = retained;
        plain.configs.clear();
        const auto again = create_topics(b.settings, {plain}, b.context);
        if (!again.empty() && (again[0].error.empty() || again[0].already_exists)) {
          b.context.log->note("MQTT: created " + plain.name + " without cleanup.policy=compact (" + outcome.error +
                              "); on a real cluster create it compacted");
          continue;
        }
      }
      b.context.log->warning("MQTT: topic " + outcome.name + " could not be created: " + outcome.error);
    }
  } catch (const Error& e) {
    b.context.log->warning(std::string("MQTT: its topics could not be created: ") + e.what());
  }
  b.mqtt = std::make_unique<mqtt::MqttShared>(m);
}

// Every retained message from the log's start, kept current for as long as
// the bridge runs (retained.*), on a reader of its own: read by the hub's
// shared reader, this quiet topic cost the live fan-out a p99 of seconds
// instead of tens of ms (docs/BENCHMARKS.md, "MQTT").
void read_retained(Bridge::Impl& b) {
  const std::string& topic = b.options.mqtt_settings.retained_topic;
  std::unique_ptr<PartitionFeed> feed;
  size_t assigned = 0;
  auto last_lookup = std::chrono::steady_clock::time_point{};
  while (b.delivering) {
    const auto now = std::chrono::steady_clock::now();
    // New partitions (and a topic created late) are picked up every 30 s;
    // until the first lookup succeeds, every second.
    if (now - last_lookup >= (assigned == 0 ? std::chrono::seconds(1) : std::chrono::seconds(30))) {
      last_lookup = now;
      TopicLookup lookup = b.client_admin->describe(topic);
      if (lookup.ok() && lookup.partitions.size() > assigned) {
        if (!feed) feed = b.client_admin->open_reader();
        std::vector<int64_t> from(lookup.partitions.size(), -1);
        for (size_t p = assigned; p < from.size(); ++p) from[p] = 0;
        feed->assign(topic, from);
        assigned = lookup.partitions.size();
      }
    }
    if (!feed) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    std::vector<FramePtr> frames;
    try {
      feed->poll_batch(
          std::chrono::milliseconds(100), 4096,
          [&](const MessageView& m) {
            frames.push_back(make_frame(m));
            return true;
          },
          [](const PartitionEvent&) {});
    } catch (const Error& e) {
      // MQTT goes on with what it knows; the reader starts over (from the
      // log's start: the newest per topic wins again).
      b.context.log->warning(std::string("MQTT: reading retained messages: ") + e.what() + "; retrying");
      feed.reset();
      assigned = 0;
      continue;
    }
    if (!frames.empty()) {
      b.mqtt->retained().deliver(std::make_shared<FrameBatch>(std::make_shared<const std::string>(topic), std::move(frames)));
    }
  }
}

}  // namespace

Bridge::Bridge(const KafkaSettings& settings, const KafkaContext& context, BridgeOptions options,
               std::string_view demo_page)
    : impl_(std::make_unique<Impl>()) {
  Impl& b = *impl_;
  b.settings = settings;
  b.context = context;
  b.options = std::move(options);
  KafkaSettings producer_settings = settings;
  // A produce ends within a bound the protocol documents: an ack or a
  // timed_out error, even when the broker freezes (librdkafka's own default
  // is five minutes). -X message.timeout.ms still wins.
  if (!settings.find("message.timeout.ms")) {
    producer_settings.set({"message.timeout.ms", std::to_string(b.options.produce_timeout.count()),
                           ConfigSource::default_value, "kws serve"});
  }
  if (!b.options.create_topics) {
    producer_settings.set({"allow.auto.create.topics", "false", ConfigSource::default_value, "serve.create_topics"});
    // librdkafka waits this long for a topic to appear before it fails a
    // record for it as unknown; nobody is creating it.
    if (!settings.find("topic.metadata.propagation.max.ms")) {
      producer_settings.set({"topic.metadata.propagation.max.ms", "1000", ConfigSource::default_value, "kws serve"});
    }
  }
  // What the transport accepts (up to serve.max_frame) must not be refused
  // by librdkafka's own default limit (1,000,000 bytes) before a broker sees
  // it: a 1 MiB frame was too_large at the defaults. Headroom for the key,
  // headers and record overhead; -X still wins, and a broker with a lower
  // limit still refuses with too_large.
  if (!settings.find("message.max.bytes")) {
    const size_t wanted = std::min<size_t>(b.options.server.session.max_frame + 64 * 1024, 1000000000);
    if (wanted > 1000000) {
      producer_settings.set({"message.max.bytes", std::to_string(wanted), ConfigSource::default_value, "serve.max_frame"});
    }
  }
  b.producer = std::make_unique<Producer>(producer_settings, context);
  b.admin = std::make_unique<KafkaTopicAdmin>(settings, context);

  PartitionReaderOptions live_options;
  live_options.fetch_queue_kbytes = 16384;
  auto live = std::make_unique<PartitionReader>(settings, context, live_options);
  // Everything above the Kafka adapters speaks the client's topic names and
  // sees transformed messages: the live reader's once for every client.
  b.transforms = std::make_unique<Transforms>(b.options.transforms, *context.log);
  if (const auto& plugin = b.options.transforms.plugin) {
    context.log->note("plugin '" + plugin->name() + "' loaded from " + plugin->path());
  }
  b.sink = std::make_unique<TransformingSink>(*b.producer, *b.transforms);
  b.client_admin = std::make_unique<TransformingAdmin>(*b.admin, *b.transforms);
  b.hub = std::make_unique<Hub>(std::make_unique<TransformingFeed>(std::move(live), *b.transforms), *b.client_admin,
                                b.options.hub, *context.log);

  if (b.options.mqtt) start_mqtt(b);

  ServerServices services;
  services.hub = b.hub.get();
  services.mqtt = b.mqtt.get();
  services.producer = b.sink.get();
  services.log = context.log;
  services.demo_page = demo_page;
  services.kafka_ready = [&b] { return b.kafka_ready.load(); };
  services.extra_metrics = [&b](const ServerServices::TopicVisible& visible) { return b.hub_metrics(visible); };
  services.open_group = [&b](const GroupRequest& g) {
    ConsumerPlan plan;
    for (const auto& t : g.topics) plan.topics.push_back(b.transforms->kafka_topic(t));
    plan.group = g.group;
    plan.start = g.start;
    plan.start_explicit = g.start_explicit;
    if (!g.start_explicit) plan.start.kind = OffsetSpec::Kind::stored;
    plan.want_headers = true;
    // At least once: the session stores what its client's socket took.
    plan.store_when_told = true;
    return std::unique_ptr<MessageSource>(
        std::make_unique<TransformingSource>(std::make_unique<Consumer>(b.settings, plan, b.context), *b.transforms));
  };
  b.server = std::make_unique<Server>(b.options.server, services);
  b.server->listen();
  b.sink->on_delivery([&b](const Delivery& d) { b.server->on_delivery(d); });
}

Bridge::~Bridge() = default;

std::string Bridge::address() const { return impl_->server->address(); }
bool Bridge::tls() const { return impl_->server->tls(); }
std::string Bridge::metrics_address() const { return impl_->server->metrics_address(); }
std::string Bridge::mqtt_address() const { return impl_->server->mqtt_address(); }

void Bridge::reload(std::shared_ptr<const ws::TlsContext> tls, std::shared_ptr<const TokenChecker> check_token) {
  impl_->server->reload(std::move(tls), std::move(check_token));
}

void Bridge::run(const std::function<void(const BridgeStatus&)>& on_status) {
  Impl& b = *impl_;
  ThreadFailure failure;
  std::thread hub_thread = guarded_thread(failure, "the shared Kafka reader", [&] { b.hub->run(); });
  std::thread delivery_thread = guarded_thread(failure, "the producer's delivery thread", [&] {
    while (b.delivering) b.producer->serve_deliveries(std::chrono::milliseconds(50));
  });
  std::thread io_thread = guarded_thread(failure, "the WebSocket I/O thread", [&] { b.server->run(); });
  std::thread retained_thread;
  if (b.mqtt) retained_thread = guarded_thread(failure, "the MQTT retained-message reader", [&] { read_retained(b); });

  auto last_status = std::chrono::steady_clock::now();
  auto last_probe = last_status;
  while (!b.context.stopping() && !failure.failed()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = std::chrono::steady_clock::now();
    if (now - last_probe >= std::chrono::seconds(1)) {
      last_probe = now;
      // Not sticky: ready again as soon as Kafka answers again.
      std::optional<std::string> problem = b.admin->reachability();
      const bool ready = !problem.has_value();
      if (ready != b.kafka_ready.exchange(ready)) {
        b.server->set_kafka_reachable(ready, problem.value_or(""));
        if (ready) {
          b.context.log->note("Kafka answers again; ready");
        } else {
          b.context.log->warning(*problem + "; not ready (/readyz answers 503) until it answers again");
        }
      }
    }
    if (on_status && now - last_status >= std::chrono::seconds(1)) {
      last_status = now;
      const auto& c = b.server->session_counters();
      BridgeStatus s;
      s.connections = b.server->open_connections();
      s.messages_in = b.hub->stats().messages;
      s.frames_out = c.frames_out;
      s.produced = c.produced;
      s.dropped = b.server->dropped_total();
      s.kafka_ready = b.kafka_ready;
      on_status(s);
    }
  }
  if (failure.failed()) b.context.log->error(failure.message() + "; shutting down");

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
  if (retained_thread.joinable()) retained_thread.join();
  auto deadline = std::chrono::steady_clock::now() + b.options.shutdown_grace;
  try {
    b.producer->flush([&] { return std::chrono::steady_clock::now() >= deadline; });
  } catch (const std::exception& e) {
    b.context.log->error(std::string("flushing client messages to Kafka: ") + e.what());
  }
  // Acks of the last deliveries.
  b.producer->serve_deliveries(std::chrono::milliseconds(0));
  if (b.producer->in_flight() > 0) {
    b.context.log->warning(std::to_string(b.producer->in_flight()) +
                           " client message(s) not confirmed by Kafka at shutdown; their senders got no ack");
  }
  b.server->finish(std::chrono::milliseconds(2000));
  io_thread.join();
  b.hub->stop();
  hub_thread.join();
  if (failure.failed()) throw Error(failure.message());
}

}  // namespace kws
