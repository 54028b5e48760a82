#pragma once
// kws serve's transforms (issue 16, docs/PROTOCOL.md "Transforms"), applied
// where the bridge meets Kafka: decorators of the Kafka seams
// (core/message_io.hpp), so the hub, the sessions and the encodings see only
// client-visible messages and stay as they are.
//
//   client -> Session -> TransformingSink -> Producer        (incoming)
//   Kafka  -> TransformingFeed / TransformingSource -> Hub   (outgoing)
//
// Incoming, in this order: the plugin (it sees the client's topic), the
// fixed headers (--produce-header), the receive-time header
// (--produce-time-header), then the topic prefix. Outgoing: the prefix is
// taken off, then the plugin, then the added fields (--add-field). An
// outgoing message is transformed once where it is read: the live reader's
// messages once for every client (the hub's rings keep the result), a
// catch-up reader's or a group session's once for the one session reading.
//
// The prefix is bridge-wide: clients name `prices`, Kafka holds
// `public.prices`. The hub's topics, the ACLs (--topics-allow, the token's
// grants), acks and every frame use the client's name; only these
// decorators know Kafka's.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/message_io.hpp"
#include "core/transform/fields.hpp"
#include "core/transform/plugin.hpp"
#include "core/util/log.hpp"

namespace kws {

struct TransformOptions {
  std::string topic_prefix;            // --topic-prefix
  std::string produce_time_header;     // --produce-time-header; "" none
  std::vector<Header> produce_headers; // --produce-header NAME=VALUE
  std::vector<AddedField> add_fields;  // --add-field
  std::shared_ptr<const Plugin> plugin;

  bool incoming() const { return !topic_prefix.empty() || !produce_time_header.empty() || !produce_headers.empty() || plugin; }
  bool outgoing() const { return !topic_prefix.empty() || !add_fields.empty() || plugin; }
};

// What a bad option is, for cmd/ to report with its origin; nothing when fine.
std::optional<std::string> topic_prefix_problem(std::string_view prefix);
// One `NAME=VALUE` of --produce-header.
std::optional<Header> parse_produce_header(std::string_view item, std::string& problem);

// Milliseconds since the epoch (tests pass their own).
using WallClockMs = std::function<int64_t()>;

struct TransformCounters {
  std::atomic<uint64_t> incoming_dropped{0};   // produces the plugin dropped (the client was answered)
  std::atomic<uint64_t> outgoing_dropped{0};   // messages from Kafka the plugin dropped
  std::atomic<uint64_t> plugin_failures{0};    // calls that failed (counted in the drops too)
};

// The rules, shared by the decorators. Thread-safe.
class Transforms {
 public:
  Transforms(TransformOptions options, LogSink& log, WallClockMs clock = {});

  const TransformOptions& options() const { return options_; }
  std::string kafka_topic(std::string_view client_topic) const;
  // The client's name for a Kafka topic ("" prefix: the same); a name
  // without the prefix is returned as it is.
  std::string_view client_topic(std::string_view kafka_topic) const;
  // Why the Kafka name of a client's topic is no name Kafka takes (the
  // prefix made it too long); nothing when it is fine.
  std::optional<std::string> kafka_name_problem(std::string_view client_topic) const;
  // Kafka's words about a topic (an error message) with its Kafka name
  // replaced by the client's, so a client never learns the prefix.
  std::string client_words(std::string_view text) const;

  // A message read from Kafka (topic already the client's), as clients get
  // it: calls `deliver` with the transformed view and returns what it
  // returned, or returns true without calling it when the message is dropped.
  bool outgoing(const MessageView& message, const std::function<bool(const MessageView&)>& deliver) const;

  TransformCounters& counters() const { return counters_; }
  LogSink& log() const { return log_; }
  int64_t now_ms() const;
  // Logs a plugin failure; at most the first few, then every 1000th.
  void plugin_failed(std::string_view direction, const std::string& problem) const;

 private:
  TransformOptions options_;
  LogSink& log_;
  WallClockMs clock_;
  mutable TransformCounters counters_;
};

// MessageSink decorator: incoming transforms, and delivery reports in the
// client's topic names. A dropped or failed message is answered as the sink
// answers a record it can never produce: not_allowed, no Delivery.
class TransformingSink : public MessageSink {
 public:
  TransformingSink(MessageSink& inner, const Transforms& transforms) : inner_(inner), t_(transforms) {}
  ProduceOutcome try_produce(const OutgoingRecord& record) override;
  void serve_deliveries(std::chrono::milliseconds wait) override { inner_.serve_deliveries(wait); }
  void on_delivery(std::function<void(const Delivery&)> handler) override;
  uint64_t in_flight() const override { return inner_.in_flight(); }

 private:
  MessageSink& inner_;
  const Transforms& t_;
};

// MessageSource decorator (a group session's consumer): outgoing transforms.
class TransformingSource : public MessageSource {
 public:
  TransformingSource(std::unique_ptr<MessageSource> inner, const Transforms& transforms)
      : inner_(std::move(inner)), t_(transforms) {}
  size_t poll_batch(std::chrono::milliseconds wait, size_t max, const std::function<bool(const MessageView&)>& on_message,
                    const std::function<void(const PartitionEvent&)>& on_event) override;
  // The group session's commit, by the Kafka name.
  void store_offset(std::string_view topic, int32_t partition, int64_t next_offset) override {
    inner_->store_offset(t_.kafka_topic(topic), partition, next_offset);
  }
  bool pause_all(bool pause) override { return inner_->pause_all(pause); }

 private:
  std::unique_ptr<MessageSource> inner_;
  const Transforms& t_;
};

// PartitionFeed decorator (the hub's live and catch-up readers): topics
// assigned by the client's name, messages and events back in it, outgoing
// transforms on every message.
class TransformingFeed : public PartitionFeed {
 public:
  TransformingFeed(std::unique_ptr<PartitionFeed> inner, const Transforms& transforms)
      : inner_(std::move(inner)), t_(transforms) {}
  size_t poll_batch(std::chrono::milliseconds wait, size_t max, const std::function<bool(const MessageView&)>& on_message,
                    const std::function<void(const PartitionEvent&)>& on_event) override;
  void assign(const std::string& topic, const std::vector<int64_t>& offsets) override {
    inner_->assign(t_.kafka_topic(topic), offsets);
  }
  void unassign(const std::string& topic) override { inner_->unassign(t_.kafka_topic(topic)); }
  void rewind(const std::string& topic, int32_t partition, int64_t offset) override {
    inner_->rewind(t_.kafka_topic(topic), partition, offset);
  }
  int64_t cached_high_watermark(const std::string& topic, int32_t partition) override {
    return inner_->cached_high_watermark(t_.kafka_topic(topic), partition);
  }
  void on_ready(std::function<void()> wake) override { inner_->on_ready(std::move(wake)); }

 private:
  std::unique_ptr<PartitionFeed> inner_;
  const Transforms& t_;
};

// TopicAdmin decorator: lookups by the client's name; its readers transform.
class TransformingAdmin : public TopicAdmin {
 public:
  TransformingAdmin(TopicAdmin& inner, const Transforms& transforms) : inner_(inner), t_(transforms) {}
  TopicLookup describe(const std::string& topic) override {
    if (auto problem = t_.kafka_name_problem(topic)) {
      TopicLookup refused;
      refused.error = TopicLookup::Error::failed;
      refused.message = *problem;
      return refused;
    }
    TopicLookup lookup = inner_.describe(t_.kafka_topic(topic));
    lookup.message = t_.client_words(lookup.message);
    return lookup;
  }
  std::vector<int64_t> offsets_for_time(const std::string& topic, int64_t ms, size_t partitions) override {
    return inner_.offsets_for_time(t_.kafka_topic(topic), ms, partitions);
  }
  std::unique_ptr<PartitionFeed> open_reader() override {
    return std::make_unique<TransformingFeed>(inner_.open_reader(), t_);
  }
  // With a prefix, only the topics under it, by the client's names.
  std::vector<std::string> topic_names() override {
    std::vector<std::string> names;
    const std::string& prefix = t_.options().topic_prefix;
    for (auto& name : inner_.topic_names()) {
      if (name.compare(0, prefix.size(), prefix) == 0) names.push_back(name.substr(prefix.size()));
    }
    return names;
  }

 private:
  TopicAdmin& inner_;
  const Transforms& t_;
};

}  // namespace kws
