#pragma once
// One MQTT 3.1.1 or 5 client of `kws serve`, over WebSocket (/mqtt) or TCP
// (--mqtt-listen), apart from its transport like the kws protocol's Session:
// it reads packets from its Link and writes packets to it, publishes into
// Kafka through the shared producer, and subscribes through the hub, one
// hub subscription per MQTT topic filter (a `Route`), so the hub's filter
// groups and their once-per-batch encodings serve MQTT too, and a wildcard
// is matched through the hub's topic tree, not per session.
//
// The mapping (docs/PROTOCOL.md, "MQTT"): an MQTT topic `a/b` is the record
// key in one Kafka topic (`mqtt-messages` by default); `kafka/T/rest` is
// Kafka topic T with key `rest` (and `kafka/T` is T without a key), so
// existing topics can be read and written from MQTT. Retained messages are
// kept in a compacted topic as well (retained.*).
//
// Threads as for Session: packets, flushes and timers on the link's I/O
// thread; deliveries and hub answers from the hub's thread; produce reports
// from the producer's. Those only queue and wake the session.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/mqtt/retained.hpp"
#include "core/mqtt_wire.hpp"
#include "core/session/session.hpp"

namespace kws::mqtt {

class MqttSession;

struct MqttSettings {
  std::string kafka_topic = "mqtt-messages";    // every MQTT topic outside kafka/..., keyed by it
  std::string retained_topic = "mqtt-retained";  // compacted: the newest retained message per MQTT topic
  std::chrono::milliseconds connect_timeout{10000};  // from the connection to its CONNECT
};

// Which session holds which client identifier (a new CONNECT with the same
// one takes the session over, MQTT 3.1.4-2), and the retained messages.
// Shared by every MQTT session of a bridge; thread-safe.
class MqttShared {
 public:
  explicit MqttShared(MqttSettings settings) : settings_(std::move(settings)) {}
  const MqttSettings& settings() const { return settings_; }
  RetainedStore& retained() { return *retained_; }

  // Registers `session` as `client_id`'s; returns the session it replaces.
  std::shared_ptr<MqttSession> claim(const std::string& client_id, const std::shared_ptr<MqttSession>& session);
  // `session` is gone: the identifier is free, unless another took it since.
  void release(const std::string& client_id, const MqttSession* session);
  // The session holding `client_id` now, if any.
  std::shared_ptr<MqttSession> holder(const std::string& client_id) const;
  std::string assign_client_id();
  size_t sessions() const;

 private:
  const MqttSettings settings_;
  std::shared_ptr<RetainedStore> retained_ = std::make_shared<RetainedStore>();
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<MqttSession>> by_client_id_;
  uint64_t next_id_ = 0;
};

class MqttSession : public ClientSession {
 public:
  // `principal`: who the WebSocket upgrade authenticated (a token in its
  // query or headers, or a client certificate), null if nobody; a CONNECT's
  // credentials may still name someone.
  MqttSession(const SessionServices& services, MqttShared& shared, std::shared_ptr<const Principal> principal);
  ~MqttSession() override;

  // On the I/O thread, once the link is up.
  void open(Link& link);

  // Subscriber: the session itself subscribes to nothing (its Routes do);
  // it hears Kafka's state like every session.
  void deliver(const FrameBatchPtr&) override {}
  void notify(const HubNotice&) override {}
  void on_delivery(const Delivery& delivery, const std::string& request_id) override;

  // LinkEvents.
  void on_message(MessageKind kind, std::string& payload) override;
  void on_drained() override;
  void on_closed() override;

  void on_wake() override;
  void flush(bool behind_pending = false) override;
  void release_idle_memory() override;
  bool close_if_expired(std::chrono::system_clock::time_point now) override;
  bool on_tick(std::chrono::steady_clock::time_point now) override;
  bool keeps_own_time() const override { return true; }
  // MQTT 5 clients hear DISCONNECT 0x8B; no will is published (the client
  // did nothing wrong, and reconnects to another bridge).
  void on_shutdown() override;
  size_t pending_bytes() const override { return outbox_.pending_bytes(); }
  uint64_t dropped() const override { return outbox_.dropped(); }

  // Another connection CONNECTed with this session's client identifier.
  void take_over();
  // Who the session is ("" anonymous).
  const std::string& subject() const { return who().name; }

  // From a Route, on the hub's thread.
  struct Route;
  void route_delivered(const FrameBatchPtr& batch, Encoding encoding);
  void route_answered(Route& route, const HubNotice& notice);

 private:
  enum class Handled { done, queue_full };
  // How a session ends: for the log, the will, and (`farewell`) an MQTT 5
  // DISCONNECT; never one in answer to the client's own DISCONNECT.
  void end(uint8_t reason, const std::string& why, bool publish_will = true, bool farewell = true);
  void send(std::string bytes);
  Handled handle(uint8_t first, std::string_view body);
  void on_connect(Connect& connect);
  Handled on_publish(Publish& publish);
  // Whether `limits` let a packet of `bytes` through now (making `limiter`
  // at first use); takes nothing. False: the packet waits (counted once).
  bool bucket_allows(std::unique_ptr<RateLimiter>& limiter, const RateLimits& limits, size_t bytes);
  // serve.control_rate for SUBSCRIBE and UNSUBSCRIBE (each costs the hub
  // work): false when the packet must wait for the session's bucket.
  bool within_control_rate();
  void on_subscribe(const Subscribe& subscribe);
  void on_unsubscribe(const Unsubscribe& unsubscribe);
  void on_pubrel(uint16_t packet_id);
  // Where an MQTT topic name goes in Kafka: the topic and the key (none for
  // `kafka/T`).
  struct Target {
    std::string topic;
    std::optional<std::string> key;
  };
  Target target_of(const std::string& mqtt_topic) const;
  std::optional<std::string> refusal(const std::string& kafka_topic, TopicAction action);
  // Queues the records of one PUBLISH (and the retained copy); false when
  // Kafka's queue is full (nothing queued).
  // `publish` into Kafka; at QoS 1 and 2 with a slot for its acknowledgement.
  Handled produce(const Publish& publish, bool will = false);
  // An acknowledgement that needs no record (a refusal, a resent QoS 2
  // PUBLISH), in its turn among the others.
  void queue_ack(PacketType type, uint16_t packet_id, uint8_t reason, std::string why);
  // One answer (or this session's own hold) for a SUBSCRIBE; the last one
  // sends the SUBACK and the retained messages.
  void suback_answered(uint64_t id, const std::vector<size_t>& failed);
  // Routes the hub refused leave routes_ (I/O thread), so their filters
  // can be subscribed again.
  void forget_refused_routes();
  void publish_will();
  void answer_ready_acks();
  void update_reading();
  void retry_blocked();
  const Principal& who() const;

  struct AckSlot {
    uint64_t id = 0;
    PacketType type = PacketType::puback;  // or pubrec (QoS 2, MQTT 3.1.1)
    uint16_t packet_id = 0;
    int remaining = 0;  // records not yet confirmed
    uint8_t reason = reason::success;
    std::string why;
  };
  struct PendingSuback {
    uint16_t packet_id = 0;
    std::vector<uint8_t> codes;
    std::vector<std::string> filters;  // for the retained messages after the SUBACK
    std::vector<uint8_t> retain_handling;
    size_t waiting = 0;
  };

  const SessionServices& services_;
  MqttShared& shared_;
  std::shared_ptr<const Principal> principal_;
  Outbox outbox_;
  PacketReader reader_;
  Link* link_ = nullptr;
  bool connected_ = false;
  bool closing_ = false;
  bool reading_paused_ = false;
  bool retry_armed_ = false;
  bool clean_disconnect_ = false;
  uint8_t version_ = kVersion311;
  uint16_t keep_alive_ = 0;
  std::string client_id_;
  std::unique_ptr<Will> will_;
  uint32_t max_packet_out_ = 0;  // MQTT 5: the client's Maximum Packet Size (0: none)
  // Made at the first PUBLISH when produce limits are set.
  std::unique_ptr<RateLimiter> produce_limiter_;
  // Made at the first SUBSCRIBE or UNSUBSCRIBE when serve.control_rate is set.
  std::unique_ptr<RateLimiter> control_limiter_;
  std::chrono::steady_clock::time_point opened_{};
  std::chrono::steady_clock::time_point last_packet_{};
  // filter -> its hub subscription
  std::map<std::string, std::shared_ptr<Route>> routes_;
  // QoS 2 (3.1.1): PUBREC sent, PUBREL not yet received.
  std::set<uint16_t> awaiting_release_;
  // Packets read while Kafka's queue was full, in order.
  std::unique_ptr<std::deque<std::pair<uint8_t, std::string>>> blocked_;
  std::atomic<uint32_t> pending_produce_{0};
  std::atomic<bool> closed_{false};
  // Shared with the producer's and the hub's threads.
  std::mutex mutex_;
  // In the order of the PUBLISHes (4.6: acknowledged in order). A vector:
  // an empty std::deque already holds a 512-byte block, and most MQTT
  // connections are idle devices.
  std::vector<AckSlot> acks_;
  uint64_t next_slot_ = 1;
  std::map<uint64_t, PendingSuback> subacks_;  // by a number of ours
  std::vector<std::string> refused_routes_;    // filters whose hub subscription was refused
  uint64_t next_suback_ = 1;
};

}  // namespace kws::mqtt
