#pragma once
// MQTT's retained messages (the newest per topic name, delivered to every
// new subscription that matches), kept in Kafka: a compacted topic keyed by
// the MQTT topic name (docs/PROTOCOL.md, "MQTT"). Every bridge reads that
// topic from its start on a reader of its own and keeps the newest value of
// each key in memory, so a retained message published through one bridge is
// delivered by all of them, and survives their restarts.
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "core/hub/hub.hpp"
#include "core/mqtt_wire.hpp"

namespace kws::mqtt {

struct RetainedMessage {
  std::string payload;
  UserProperties properties;
  int64_t offset = -1;  // in the retained topic; -1: published here, not read back yet
};

class RetainedStore : public Subscriber {
 public:
  // The retained topic's records, in offset order per partition, from the
  // bridge's retained reader (a thread of its own, not the hub's: see
  // core/bridge/bridge.cpp, read_retained).
  void deliver(const FrameBatchPtr& batch) override;
  void notify(const HubNotice&) override {}

  // A retained publish through this bridge, at once (it reaches Kafka, and
  // comes back through the reader, after its PUBACK may have gone out; a
  // subscription made meanwhile must see it). An empty payload removes.
  void put(const std::string& topic, std::string_view payload, const UserProperties& properties);
  // Calls `on` for each retained message whose topic `filter` matches.
  void match(std::string_view filter,
             const std::function<void(const std::string& topic, const RetainedMessage& message)>& on) const;
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, RetainedMessage> by_topic_;
};

}  // namespace kws::mqtt
