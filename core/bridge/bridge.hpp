#pragma once
// `kws serve` assembled: the only place that sees both the Kafka adapters
// and the WebSocket server. It owns the shared producer and its delivery
// thread, the hub and its reader thread, and the server's I/O thread, and
// runs the graceful shutdown in the order the protocol promises.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/config.hpp"
#include "core/util/error.hpp"
#include "core/hub/hub.hpp"
#include "core/kafka/context.hpp"
#include "core/mqtt/session.hpp"
#include "core/transform/pipeline.hpp"
#include "core/ws/server.hpp"

namespace kws {

struct BridgeOptions {
  ServerOptions server;
  HubLimits hub;
  std::chrono::milliseconds shutdown_grace{5000};  // for Kafka acks, then for closing handshakes
  // Every produce ends within this: an ack, or a timed_out error
  // (librdkafka's message.timeout.ms, unless -X sets it).
  std::chrono::milliseconds produce_timeout{30000};
  // Producing to a missing topic creates it where the broker allows it;
  // false: such a produce fails with unknown_topic.
  bool create_topics = true;
  // Transforms where the bridge meets Kafka (core/transform/pipeline.hpp):
  // topic prefix, produce headers, added fields, a plugin.
  TransformOptions transforms;
  // MQTT over WebSocket (/mqtt) and, with server.mqtt_listener, over TCP.
  bool mqtt = true;
  mqtt::MqttSettings mqtt_settings;
};

// A once-a-second picture for the status line.
struct BridgeStatus {
  size_t connections = 0;
  uint64_t messages_in = 0;   // read from Kafka by the hub
  uint64_t frames_out = 0;    // sent to clients
  uint64_t produced = 0;      // client messages Kafka acknowledged
  uint64_t dropped = 0;
  bool kafka_ready = false;
};

class Bridge {
 public:
  // Connects the producer (waits for the cluster: throws kws::Error) and
  // binds the listener (throws when the address is taken).
  Bridge(const KafkaSettings& settings, const KafkaContext& context, BridgeOptions options, std::string_view demo_page);
  ~Bridge();

  std::string address() const;  // "HOST:PORT" actually bound
  bool tls() const;  // serving wss:// and https://
  std::string metrics_address() const;  // "" without a metrics listener
  std::string mqtt_address() const;     // "" without an MQTT listener

  // Thread-safe: new connections use these from now on (null: keep the
  // current one); open sessions keep theirs.
  void reload(std::shared_ptr<const ws::TlsContext> tls, std::shared_ptr<const TokenChecker> check_token);

  // Serves until `context.should_stop` says so (checked every 100 ms), then
  // shuts down gracefully. `on_status` is called about once a second.
  void run(const std::function<void(const BridgeStatus&)>& on_status);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kws
