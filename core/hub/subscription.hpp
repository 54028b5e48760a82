#pragma once
// What one subscription asks of the hub besides its topic: where it starts
// (an offset spec, and for a resumed client the last offset it received per
// partition) and which messages it wants (a server-side filter). Pure
// values and parsers, shared by every protocol that subscribes (the kws
// WebSocket protocol, SSE), unit-tested and fuzzed through the client
// frames.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/hub/frame.hpp"
#include "core/offset_spec.hpp"

namespace kws {

// Per partition, the last offset a client received; delivery goes on from
// the next one. Made of Kafka's own offsets, so any bridge in front of the
// same cluster can continue it.
using ResumePositions = std::map<int32_t, int64_t>;
using ResumeByTopic = std::map<std::string, ResumePositions>;

// Reads `TOPIC:PARTITION:OFFSET[,TOPIC:PARTITION:OFFSET...]` into `out`
// (added to what it holds). OFFSET may be -1: nothing received yet, start
// at the partition's offset 0. Returns the reason on failure.
std::optional<std::string> parse_resume(std::string_view text, ResumeByTopic& out);
// The same text for `positions` (topics and partitions in order).
std::string format_resume(const ResumeByTopic& positions);

// A server-side filter (docs/PROTOCOL.md, "Filters"): every entry must hold.
//   {"key":["BTC-USD","ETH-USD"]}      the key is one of these
//   {"key_prefix":"BTC-"}              the key starts with this
//   {"header":{"source":"feed-1"}}     a header of that name has that value
//   {"field":{"/symbol":"BTC-USD"}}    the value is JSON and the pointer's
//                                      value equals this JSON value
//   {"mqtt_topic":["sensors/+/temp"]}  the key, read as an MQTT topic name,
//                                      matches one of these topic filters
//                                      (core/hub/topic_tree.hpp)
class MessageFilter {
 public:
  // Returns the filter, or the reason `json` is not one (for a 400 or a
  // bad_filter error).
  static std::shared_ptr<const MessageFilter> parse(const nlohmann::json& json, std::string& problem);
  static std::shared_ptr<const MessageFilter> parse_text(std::string_view text, std::string& problem);
  // A filter of one `mqtt_topic` entry, for a caller that has the topic
  // filters already (an MQTT session's SUBSCRIBE): the same rules and the
  // same canonical text as parsing {"mqtt_topic":filters}.
  static std::shared_ptr<const MessageFilter> mqtt_topics(std::vector<std::string> filters, std::string& problem);

  // `parsed_value`: the frame's value parsed as JSON, filled in on first
  // need and shared by every filter that asks about the same frame (a batch
  // is checked against many filters; the value is parsed at most once).
  struct ValueCache {
    bool tried = false;
    std::shared_ptr<const nlohmann::json> json;  // null: not JSON
  };
  bool matches(const Frame& frame, ValueCache& value) const;
  bool matches(const Frame& frame) const {
    ValueCache cache;
    return matches(frame, cache);
  }

  // The keys of a `key` entry (sorted, unique): a message whose key is not
  // one of them never matches, so the hub indexes filters by them. Empty
  // when the filter has no `key` entry.
  const std::vector<std::string>& exact_keys() const { return keys_; }
  bool has_exact_keys() const { return has_keys_; }
  // The topic filters of an `mqtt_topic` entry (sorted, unique); empty when
  // there is none. When it is the filter's only entry, a message matches
  // exactly when its key matches one of them, so the hub finds such filters
  // through a TopicTree instead of checking each.
  const std::vector<std::string>& mqtt_topics() const { return mqtt_topics_; }
  bool only_mqtt_topics() const;
  // One text per meaning (sorted members, normalized JSON): filters with the
  // same canonical text share their filtered batches, and its bytes.
  const std::string& canonical() const { return canonical_; }

  ~MessageFilter();
  MessageFilter(const MessageFilter&) = delete;
  MessageFilter& operator=(const MessageFilter&) = delete;

 private:
  MessageFilter();
  struct Field;
  bool take_mqtt_topics(std::vector<std::string> filters, std::string& problem);
  bool has_keys_ = false;
  std::vector<std::string> keys_;
  std::optional<std::string> key_prefix_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::vector<std::unique_ptr<Field>> fields_;
  std::vector<std::string> mqtt_topics_;  // empty: no `mqtt_topic` entry
  std::string canonical_;
};
using FilterPtr = std::shared_ptr<const MessageFilter>;

struct SubscriptionSpec {
  OffsetSpec start;                 // partitions `resume` does not name
  std::string start_text = "latest";
  ResumePositions resume;           // empty: not a resumed subscription
  FilterPtr filter;                 // null: every message
  // A `caught_up` notice once everything below the reply's end_offsets was
  // handed over or filtered out: with a filter, a client cannot tell it
  // from the offsets it gets (kws tail -e through a bridge).
  bool tell_caught_up = false;
};

}  // namespace kws
