#include "core/transform/pipeline.hpp"

#include <algorithm>
#include <chrono>

#include "core/topic_name.hpp"

namespace kws {

std::optional<std::string> topic_prefix_problem(std::string_view prefix) {
  if (prefix.empty()) return std::nullopt;
  // Any client name after it must still make a name Kafka takes.
  if (auto problem = topic_name_problem(std::string(prefix) + "x")) return "'" + std::string(prefix) + "': " + *problem;
  return std::nullopt;
}

std::optional<Header> parse_produce_header(std::string_view item, std::string& problem) {
  const size_t eq = item.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    problem = "'" + std::string(item) + "' is not NAME=VALUE";
    return std::nullopt;
  }
  return Header{std::string(item.substr(0, eq)), std::string(item.substr(eq + 1))};
}

Transforms::Transforms(TransformOptions options, LogSink& log, WallClockMs clock)
    : options_(std::move(options)), log_(log), clock_(std::move(clock)) {}

std::string Transforms::kafka_topic(std::string_view client_topic) const {
  std::string name;
  name.reserve(options_.topic_prefix.size() + client_topic.size());
  name.append(options_.topic_prefix).append(client_topic);
  return name;
}

std::string_view Transforms::client_topic(std::string_view kafka_topic) const {
  const std::string& prefix = options_.topic_prefix;
  if (!prefix.empty() && kafka_topic.size() > prefix.size() && kafka_topic.compare(0, prefix.size(), prefix) == 0) {
    kafka_topic.remove_prefix(prefix.size());
  }
  return kafka_topic;
}

std::optional<std::string> Transforms::kafka_name_problem(std::string_view client_topic) const {
  const size_t length = options_.topic_prefix.size() + client_topic.size();
  if (options_.topic_prefix.empty() || length <= 249) return std::nullopt;
  return "topic '" + std::string(client_topic) + "' is too long for this bridge: with its topic prefix, Kafka's name would have " +
         std::to_string(length) + " characters (at most 249)";
}

std::string Transforms::client_words(std::string_view text) const {
  // Kafka names a topic in quotes ("topic 'public.prices' ..."): the prefix
  // right after a quote goes.
  const std::string& prefix = options_.topic_prefix;
  std::string out(text);
  if (prefix.empty()) return out;
  for (const char quote : {'\'', '"'}) {
    const std::string needle = std::string(1, quote) + prefix;
    for (size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) {
      out.erase(at + 1, prefix.size());
    }
  }
  return out;
}

int64_t Transforms::now_ms() const {
  if (clock_) return clock_();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Transforms::plugin_failed(std::string_view direction, const std::string& problem) const {
  const uint64_t n = ++counters_.plugin_failures;
  if (n <= 5 || n % 1000 == 0) {
    log_.warning("plugin " + options_.plugin->name() + " failed on " + std::string(direction) + " message (" +
                 std::to_string(n) + " so far): " + problem);
  }
}

bool Transforms::outgoing(const MessageView& in, const std::function<bool(const MessageView&)>& deliver) const {
  const std::string_view topic = client_topic(in.topic);
  if (!options_.plugin && options_.add_fields.empty()) {
    if (topic.size() == in.topic.size()) return deliver(in);
    MessageView v = in;
    v.topic = topic;
    return deliver(v);
  }
  if (!options_.plugin) {
    std::optional<std::string> value;
    if (in.value) value = add_fields(*in.value, options_.add_fields, now_ms());
    if (!value && topic.size() == in.topic.size()) return deliver(in);
    MessageView v = in;
    v.topic = topic;
    if (value) v.value = std::string_view(*value);
    return deliver(v);
  }
  Message m;
  m.topic = std::string(topic);
  m.partition = in.partition;
  m.offset = in.offset;
  m.timestamp_ms = in.timestamp_ms;
  m.timestamp_type = in.timestamp_type;
  if (in.key) m.key = std::string(*in.key);
  if (in.value) m.value = std::string(*in.value);
  m.headers.reserve(in.headers.size());
  for (const auto& h : in.headers) {
    m.headers.push_back(Header{std::string(h.name), h.value ? std::optional<std::string>(std::string(*h.value)) : std::nullopt});
  }
  std::string problem;
  switch (options_.plugin->transform(PluginDirection::outgoing, m, problem)) {
    case Plugin::Verdict::keep:
      break;
    case Plugin::Verdict::failed:
      plugin_failed("an outgoing", problem);
      // Fails closed: a redacting plugin that failed must not let the original through.
      ++counters_.outgoing_dropped;
      return true;
    case Plugin::Verdict::drop:
      ++counters_.outgoing_dropped;
      return true;
  }
  if (m.value && !options_.add_fields.empty()) {
    if (auto value = add_fields(*m.value, options_.add_fields, now_ms())) m.value = std::move(*value);
  }
  MessageView v = m.view();
  v.topic = topic;  // the plugin cannot rename an outgoing message
  return deliver(v);
}

// ---- incoming ----------------------------------------------------------------

ProduceOutcome TransformingSink::try_produce(const OutgoingRecord& record) {
  const TransformOptions& o = t_.options();
  if (!o.incoming()) return inner_.try_produce(record);
  OutgoingRecord out = record;
  std::optional<Message> edited;
  if (o.plugin) {
    Message& m = edited.emplace();
    m.topic = std::string(record.topic);
    m.partition = record.partition;
    if (record.timestamp_ms != 0) m.timestamp_ms = record.timestamp_ms;
    if (record.key) m.key = std::string(*record.key);
    if (record.value) m.value = std::string(*record.value);
    if (record.headers) m.headers = *record.headers;
    std::string problem;
    switch (o.plugin->transform(PluginDirection::incoming, m, problem)) {
      case Plugin::Verdict::keep:
        break;
      case Plugin::Verdict::drop:
        ++t_.counters().incoming_dropped;
        return {ProduceError::not_allowed, "the bridge's plugin (" + o.plugin->name() + ") dropped this message"};
      case Plugin::Verdict::failed:
        t_.plugin_failed("an incoming", problem);
        ++t_.counters().incoming_dropped;
        return {ProduceError::not_allowed, "the bridge's plugin (" + o.plugin->name() + ") failed on this message"};
    }
    out.topic = m.topic;
    out.key = m.key ? std::optional<std::string_view>(*m.key) : std::nullopt;
    out.value = m.value ? std::optional<std::string_view>(*m.value) : std::nullopt;
  }
  const bool bridge_headers = !o.produce_headers.empty() || !o.produce_time_header.empty();
  std::vector<Header> headers;
  if (edited) {
    headers = std::move(edited->headers);
  } else if (record.headers && bridge_headers) {
    headers = *record.headers;
  }
  if (bridge_headers) {
    // The bridge's headers replace a client's of the same name: a consumer
    // can trust them.
    auto bridges = [&o](const Header& h) {
      if (!o.produce_time_header.empty() && h.name == o.produce_time_header) return true;
      return std::any_of(o.produce_headers.begin(), o.produce_headers.end(),
                         [&h](const Header& f) { return f.name == h.name; });
    };
    headers.erase(std::remove_if(headers.begin(), headers.end(), bridges), headers.end());
    headers.insert(headers.end(), o.produce_headers.begin(), o.produce_headers.end());
    if (!o.produce_time_header.empty()) headers.push_back(Header{o.produce_time_header, std::to_string(t_.now_ms())});
  }
  // With the prefix alone the client's headers pass as they are, uncopied.
  if (edited || bridge_headers) out.headers = headers.empty() ? nullptr : &headers;
  if (auto problem = t_.kafka_name_problem(out.topic)) return {ProduceError::kafka_error, *problem};
  const std::string topic = t_.kafka_topic(out.topic);
  out.topic = topic;
  ProduceOutcome outcome = inner_.try_produce(out);
  if (!outcome.queued()) outcome.message = t_.client_words(outcome.message);
  return outcome;
}

void TransformingSink::on_delivery(std::function<void(const Delivery&)> handler) {
  inner_.on_delivery([this, handler = std::move(handler)](const Delivery& d) {
    if (t_.options().topic_prefix.empty()) return handler(d);
    Delivery mine = d;
    mine.topic = t_.client_topic(d.topic);
    std::string words;
    if (!d.ok()) {
      words = t_.client_words(d.message);
      mine.message = words;
    }
    handler(mine);
  });
}

// ---- outgoing ----------------------------------------------------------------

namespace {

size_t poll_transformed(MessageSource& inner, const Transforms& t, std::chrono::milliseconds wait, size_t max,
                        const std::function<bool(const MessageView&)>& on_message,
                        const std::function<void(const PartitionEvent&)>& on_event) {
  if (!t.options().outgoing()) return inner.poll_batch(wait, max, on_message, on_event);
  std::function<void(const PartitionEvent&)> events;
  if (on_event) {
    events = [&t, &on_event](const PartitionEvent& e) {
      PartitionEvent mine = e;
      mine.topic = t.client_topic(e.topic);
      on_event(mine);
    };
  }
  return inner.poll_batch(
      wait, max, [&t, &on_message](const MessageView& m) { return t.outgoing(m, on_message); }, events);
}

}  // namespace

size_t TransformingSource::poll_batch(std::chrono::milliseconds wait, size_t max,
                                      const std::function<bool(const MessageView&)>& on_message,
                                      const std::function<void(const PartitionEvent&)>& on_event) {
  return poll_transformed(*inner_, t_, wait, max, on_message, on_event);
}

size_t TransformingFeed::poll_batch(std::chrono::milliseconds wait, size_t max,
                                    const std::function<bool(const MessageView&)>& on_message,
                                    const std::function<void(const PartitionEvent&)>& on_event) {
  return poll_transformed(*inner_, t_, wait, max, on_message, on_event);
}

}  // namespace kws
