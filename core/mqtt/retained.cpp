#include "core/mqtt/retained.hpp"

#include "core/hub/topic_tree.hpp"
#include "core/util/text.hpp"

namespace kws::mqtt {

void RetainedStore::deliver(const FrameBatchPtr& batch) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& f : batch->frames()) {
    if (!f->key || !is_mqtt_topic_name(*f->key)) continue;  // not written by kws: no MQTT topic
    auto it = by_topic_.find(*f->key);
    // Kafka's order wins over what this bridge put meanwhile, except that a
    // record older than one already read back changes nothing.
    if (it != by_topic_.end() && it->second.offset > f->offset) continue;
    if (!f->value || f->value->empty()) {
      if (it != by_topic_.end()) by_topic_.erase(it);
      continue;
    }
    RetainedMessage& m = by_topic_[*f->key];
    m.payload = *f->value;
    m.offset = f->offset;
    m.properties.clear();
    for (const auto& h : f->headers) {
      // What an MQTT user property can carry (encodings.cpp's rule).
      if (h.value && h.name.size() <= 65535 && h.value->size() <= 65535 && is_valid_utf8(h.name) &&
          is_valid_utf8(*h.value) && h.name.find('\0') == std::string::npos &&
          h.value->find('\0') == std::string::npos) {
        m.properties.emplace_back(h.name, *h.value);
      }
    }
  }
}

void RetainedStore::put(const std::string& topic, std::string_view payload, const UserProperties& properties) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (payload.empty()) {
    by_topic_.erase(topic);
    return;
  }
  RetainedMessage& m = by_topic_[topic];
  m.payload = std::string(payload);
  m.properties = properties;
  m.offset = -1;
}

void RetainedStore::match(std::string_view filter,
                          const std::function<void(const std::string&, const RetainedMessage&)>& on) const {
  std::lock_guard<std::mutex> lock(mutex_);
  // A subscription is rare next to messages: a scan of the retained topics
  // is fine here (mosquitto walks its tree; the set is the same size).
  for (const auto& [topic, message] : by_topic_) {
    if (topic_matches(filter, topic)) on(topic, message);
  }
}

size_t RetainedStore::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return by_topic_.size();
}

}  // namespace kws::mqtt
