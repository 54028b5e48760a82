#include "core/hub/subscription.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/hub/topic_tree.hpp"
#include "core/json_parse.hpp"

namespace kws {

namespace {

// Bounds what one filter may cost per message: a key list is a binary
// search, but headers and fields are checked one by one.
constexpr size_t kMaxFilterKeys = 10000;
constexpr size_t kMaxFilterEntries = 16;
// Topic filters are found through the hub's TopicTree, but rings and
// catch-up readers check them one by one. The levels bound the tree's depth,
// which its walk, erase and destruction recurse through: MQTT sets no limit,
// and 65,535 bytes of "/" would be 65,536 levels deep on the hub's stack.
constexpr size_t kMaxMqttTopics = 64;
constexpr size_t kMaxMqttTopicLevels = 128;

template <typename T>
bool parse_integer(std::string_view text, T& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

std::optional<std::string> parse_resume(std::string_view text, ResumeByTopic& out) {
  if (text.empty()) return "resume: empty (expected TOPIC:PARTITION:OFFSET[,...])";
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    // Topic names have no ':' (Kafka's rule), so the last two split it.
    const size_t second = item.rfind(':');
    const size_t first = second == std::string_view::npos || second == 0 ? std::string_view::npos : item.rfind(':', second - 1);
    if (first == std::string_view::npos || first == 0) {
      return "resume: '" + std::string(item) + "' is not TOPIC:PARTITION:OFFSET";
    }
    const std::string topic(item.substr(0, first));
    int32_t partition = -1;
    int64_t offset = -2;
    if (!parse_integer(item.substr(first + 1, second - first - 1), partition) || partition < 0) {
      return "resume: '" + std::string(item) + "': the partition must be a number from 0";
    }
    if (!parse_integer(item.substr(second + 1), offset) || offset < -1) {
      return "resume: '" + std::string(item) + "': the offset must be the last offset received (-1 for none)";
    }
    auto [it, inserted] = out[topic].emplace(partition, offset);
    if (!inserted) return "resume: partition " + std::to_string(partition) + " of '" + topic + "' is named twice";
  }
  return std::nullopt;
}

std::string format_resume(const ResumeByTopic& positions) {
  std::string out;
  for (const auto& [topic, partitions] : positions) {
    for (const auto& [partition, offset] : partitions) {
      if (!out.empty()) out += ',';
      out += topic + ':' + std::to_string(partition) + ':' + std::to_string(offset);
    }
  }
  return out;
}

struct MessageFilter::Field {
  nlohmann::json::json_pointer pointer;
  nlohmann::json expected;
};

MessageFilter::MessageFilter() = default;
MessageFilter::~MessageFilter() = default;

std::shared_ptr<const MessageFilter> MessageFilter::parse_text(std::string_view text, std::string& problem) {
  std::string why;
  std::optional<nlohmann::json> doc = parse_json_text(text, why);
  if (!doc) {
    problem = "filter: " + why;
    return nullptr;
  }
  return parse(*doc, problem);
}

std::shared_ptr<const MessageFilter> MessageFilter::parse(const nlohmann::json& json, std::string& problem) {
  if (!json.is_object()) {
    problem = "filter: must be a JSON object such as {\"key\":[\"BTC-USD\"]}";
    return nullptr;
  }
  if (json.empty()) {
    problem = "filter: empty (accepted entries: key, key_prefix, header, field, mqtt_topic)";
    return nullptr;
  }
  std::shared_ptr<MessageFilter> f(new MessageFilter());
  nlohmann::json canonical = nlohmann::json::object();
  size_t entries = 0;
  for (const auto& [name, value] : json.items()) {
    if (name == "key") {
      if (!value.is_array() || value.empty()) {
        problem = "filter: \"key\" must be a non-empty array of strings";
        return nullptr;
      }
      if (value.size() > kMaxFilterKeys) {
        problem = "filter: \"key\" lists more than " + std::to_string(kMaxFilterKeys) + " keys";
        return nullptr;
      }
      for (const auto& k : value) {
        if (!k.is_string()) {
          problem = "filter: \"key\" must be an array of strings";
          return nullptr;
        }
        f->keys_.push_back(k.get<std::string>());
      }
      std::sort(f->keys_.begin(), f->keys_.end());
      f->keys_.erase(std::unique(f->keys_.begin(), f->keys_.end()), f->keys_.end());
      f->has_keys_ = true;
      canonical["key"] = f->keys_;
    } else if (name == "key_prefix") {
      if (!value.is_string()) {
        problem = "filter: \"key_prefix\" must be a string";
        return nullptr;
      }
      f->key_prefix_ = value.get<std::string>();
      canonical["key_prefix"] = value;
    } else if (name == "header" || name == "field") {
      if (!value.is_object() || value.empty()) {
        problem = "filter: \"" + name + "\" must be a non-empty object";
        return nullptr;
      }
      for (const auto& [member, wanted] : value.items()) {
        if (++entries > kMaxFilterEntries) {
          problem = "filter: more than " + std::to_string(kMaxFilterEntries) + " header and field entries";
          return nullptr;
        }
        if (name == "header") {
          if (!wanted.is_string()) {
            problem = "filter: header \"" + member + "\" must be compared with a string";
            return nullptr;
          }
          f->headers_.emplace_back(member, wanted.get<std::string>());
          continue;
        }
        auto field = std::make_unique<Field>();
        try {
          field->pointer = nlohmann::json::json_pointer(member);
        } catch (const nlohmann::json::exception&) {
          problem = "filter: field \"" + member + "\" is not a JSON pointer (such as \"/symbol\")";
          return nullptr;
        }
        field->expected = wanted;
        f->fields_.push_back(std::move(field));
      }
      canonical[name] = value;
    } else if (name == "mqtt_topic") {
      if (!value.is_array() || value.empty()) {
        problem = "filter: \"mqtt_topic\" must be a non-empty array of MQTT topic filters such as \"sensors/+/temp\"";
        return nullptr;
      }
      std::vector<std::string> filters;
      for (const auto& t : value) {
        if (!t.is_string()) {
          problem = "filter: \"mqtt_topic\" must be an array of strings";
          return nullptr;
        }
        filters.push_back(t.get<std::string>());
      }
      if (!f->take_mqtt_topics(std::move(filters), problem)) return nullptr;
      canonical["mqtt_topic"] = f->mqtt_topics_;
    } else {
      problem = "filter: unknown entry \"" + name + "\" (accepted: key, key_prefix, header, field, mqtt_topic)";
      return nullptr;
    }
  }
  f->canonical_ = canonical.dump();
  return f;
}

std::shared_ptr<const MessageFilter> MessageFilter::mqtt_topics(std::vector<std::string> filters, std::string& problem) {
  if (filters.empty()) {
    problem = "filter: \"mqtt_topic\" must be a non-empty array of MQTT topic filters such as \"sensors/+/temp\"";
    return nullptr;
  }
  std::shared_ptr<MessageFilter> f(new MessageFilter());
  if (!f->take_mqtt_topics(std::move(filters), problem)) return nullptr;
  nlohmann::json canonical = nlohmann::json::object();
  canonical["mqtt_topic"] = f->mqtt_topics_;
  f->canonical_ = canonical.dump();
  return f;
}

bool MessageFilter::take_mqtt_topics(std::vector<std::string> filters, std::string& problem) {
  for (const auto& t : filters) {
    if (auto why = topic_filter_problem(t)) {
      // Quoted as JSON: the filter may hold anything, even bytes that are not UTF-8.
      problem = "filter: \"mqtt_topic\" " + nlohmann::json(t).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ": " + *why;
      return false;
    }
    if (static_cast<size_t>(std::count(t.begin(), t.end(), '/')) >= kMaxMqttTopicLevels) {
      problem = "filter: \"mqtt_topic\": a topic filter has more than " + std::to_string(kMaxMqttTopicLevels) + " levels";
      return false;
    }
  }
  std::sort(filters.begin(), filters.end());
  filters.erase(std::unique(filters.begin(), filters.end()), filters.end());
  if (filters.size() > kMaxMqttTopics) {
    problem = "filter: \"mqtt_topic\" lists more than " + std::to_string(kMaxMqttTopics) + " topic filters";
    return false;
  }
  mqtt_topics_ = std::move(filters);
  return true;
}

bool MessageFilter::only_mqtt_topics() const {
  return !mqtt_topics_.empty() && !has_keys_ && !key_prefix_ && headers_.empty() && fields_.empty();
}

bool MessageFilter::matches(const Frame& frame, ValueCache& value) const {
  if (has_keys_) {
    if (!frame.key || !std::binary_search(keys_.begin(), keys_.end(), *frame.key)) return false;
  }
  if (key_prefix_) {
    if (!frame.key || frame.key->compare(0, key_prefix_->size(), *key_prefix_) != 0) return false;
  }
  if (!mqtt_topics_.empty()) {
    // A key that is not a topic name (none, empty, '+', not UTF-8) could not
    // be published to an MQTT client, so no topic filter matches it.
    if (!frame.key || !is_mqtt_topic_name(*frame.key)) return false;
    const std::string& name = *frame.key;
    if (!std::any_of(mqtt_topics_.begin(), mqtt_topics_.end(), [&name](const std::string& t) { return topic_matches(t, name); })) {
      return false;
    }
  }
  for (const auto& wanted : headers_) {
    const bool found = std::any_of(frame.headers.begin(), frame.headers.end(), [&wanted](const Header& h) {
      return h.name == wanted.first && h.value && *h.value == wanted.second;
    });
    if (!found) return false;
  }
  if (fields_.empty()) return true;
  if (!value.tried) {
    value.tried = true;
    if (frame.value) {
      std::string why;
      if (auto doc = parse_json_text(*frame.value, why)) value.json = std::make_shared<const nlohmann::json>(std::move(*doc));
    }
  }
  if (!value.json) return false;
  for (const auto& field : fields_) {
    const nlohmann::json* at = nullptr;
    try {
      if (value.json->contains(field->pointer)) at = &value.json->at(field->pointer);
    } catch (const nlohmann::json::exception&) {
      at = nullptr;  // a pointer into something that is not a container
    }
    if (!at || *at != field->expected) return false;
  }
  return true;
}

}  // namespace kws
