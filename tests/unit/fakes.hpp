#pragma once
// Fakes for the seams in core/message_io.hpp and core/feed_io.hpp: the hub,
// the bridge and ingest are tested against these instead of Kafka or a socket.
#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/feed_io.hpp"
#include "core/message_io.hpp"

namespace kws::test {

// An in-memory log of topics: what a cluster stores.
struct FakeCluster {
  struct Record {
    int64_t offset;
    int64_t timestamp_ms;
    std::string key;
    std::string value;
  };
  std::map<std::string, std::vector<std::vector<Record>>> topics;  // topic -> partition -> records
  std::map<std::string, std::vector<int64_t>> low;                 // retention: first stored offset

  void create(const std::string& topic, int partitions) {
    topics[topic].resize(static_cast<size_t>(partitions));
    low[topic].assign(static_cast<size_t>(partitions), 0);
  }
  int64_t append(const std::string& topic, int32_t partition, std::string value, int64_t ts = 1000) {
    auto& log = topics.at(topic).at(static_cast<size_t>(partition));
    int64_t offset = static_cast<int64_t>(log.size());
    log.push_back({offset, ts, "", std::move(value)});
    return offset;
  }
  int64_t append_keyed(const std::string& topic, int32_t partition, std::string key, std::string value) {
    auto& log = topics.at(topic).at(static_cast<size_t>(partition));
    int64_t offset = static_cast<int64_t>(log.size());
    log.push_back({offset, 1000, std::move(key), std::move(value)});
    return offset;
  }
};

// A PartitionFeed over a FakeCluster: reads what was appended, in order.
// Retention (FakeCluster::low) under a reader's position is reported as a
// `lost` event, as the Kafka readers do.
class FakeFeed : public PartitionFeed {
 public:
  explicit FakeFeed(FakeCluster& cluster) : cluster_(cluster) {}

  void assign(const std::string& topic, const std::vector<int64_t>& offsets) override {
    for (size_t p = 0; p < offsets.size(); ++p) {
      if (offsets[p] >= 0) positions_[{topic, static_cast<int32_t>(p)}] = offsets[p];
    }
  }
  void unassign(const std::string& topic) override {
    for (auto it = positions_.begin(); it != positions_.end();) {
      it = it->first.first == topic ? positions_.erase(it) : std::next(it);
    }
  }
  void rewind(const std::string& topic, int32_t partition, int64_t offset) override {
    ++rewinds;
    positions_.at({topic, partition}) = offset;
  }
  int64_t cached_high_watermark(const std::string& topic, int32_t partition) override {
    return static_cast<int64_t>(cluster_.topics.at(topic).at(static_cast<size_t>(partition)).size());
  }
  void on_ready(std::function<void()> wake) override { wake_ = std::move(wake); }
  size_t poll_batch(std::chrono::milliseconds, size_t max, const std::function<bool(const MessageView&)>& on_message,
                    const std::function<void(const PartitionEvent&)>& on_event) override {
    ++polls;
    size_t n = 0;
    for (auto& [tp, next] : positions_) {
      const auto& log = cluster_.topics.at(tp.first).at(static_cast<size_t>(tp.second));
      const int64_t low = cluster_.low.at(tp.first).at(static_cast<size_t>(tp.second));
      if (next < low) {
        if (on_event) {
          PartitionEvent lost;
          lost.kind = PartitionEvent::Kind::lost;
          lost.topic = tp.first;
          lost.partition = tp.second;
          lost.lost_from = next;
          lost.next_offset = low;
          on_event(lost);
        }
        next = low;
      }
      bool had_any = false;
      while (n < max && next < static_cast<int64_t>(log.size())) {
        const auto& r = log[static_cast<size_t>(next)];
        MessageView v;
        v.topic = tp.first;
        v.partition = tp.second;
        v.offset = r.offset;
        v.timestamp_ms = r.timestamp_ms;
        v.timestamp_type = TimestampType::create_time;
        v.value = r.value;
        if (!r.key.empty()) v.key = r.key;
        if (!on_message(v)) return n;
        ++next;
        ++n;
        had_any = true;
      }
      if (had_any && on_event && next == static_cast<int64_t>(log.size())) {
        PartitionEvent end;
        end.topic = tp.first;
        end.partition = tp.second;
        end.next_offset = next;
        on_event(end);
      }
    }
    return n;
  }
  size_t assigned() const { return positions_.size(); }
  // What a reader with a wake hook does when data arrives.
  void ready() {
    if (wake_) wake_();
  }
  int polls = 0;
  int rewinds = 0;

 private:
  FakeCluster& cluster_;
  std::map<std::pair<std::string, int32_t>, int64_t> positions_;
  std::function<void()> wake_;
};

// A TopicAdmin over a FakeCluster; counts what it was asked.
class FakeAdmin : public TopicAdmin {
 public:
  explicit FakeAdmin(FakeCluster& cluster) : cluster_(cluster) {}

  TopicLookup describe(const std::string& topic) override {
    ++describes;
    TopicLookup out;
    auto it = cluster_.topics.find(topic);
    if (it == cluster_.topics.end()) {
      out.error = TopicLookup::Error::unknown_topic;
      out.message = "unknown topic '" + topic + "'";
      return out;
    }
    for (size_t p = 0; p < it->second.size(); ++p) {
      out.partitions.push_back({cluster_.low[topic][p], static_cast<int64_t>(it->second[p].size())});
    }
    return out;
  }
  std::vector<int64_t> offsets_for_time(const std::string& topic, int64_t ms, size_t partitions) override {
    std::vector<int64_t> out(partitions, -1);
    for (size_t p = 0; p < partitions; ++p) {
      for (const auto& r : cluster_.topics.at(topic)[p]) {
        if (r.timestamp_ms >= ms) {
          out[p] = r.offset;
          break;
        }
      }
    }
    return out;
  }
  std::unique_ptr<PartitionFeed> open_reader() override {
    ++readers;
    return std::make_unique<FakeFeed>(cluster_);
  }
  std::vector<std::string> topic_names() override {
    std::vector<std::string> names;
    for (const auto& [name, partitions] : cluster_.topics) names.push_back(name);
    return names;
  }
  int describes = 0;
  int readers = 0;

 private:
  FakeCluster& cluster_;
};

// Records what the session asked of the feed; the test plays the feed's
// side by calling the listener itself.
class FakeFeedConnection : public FeedConnection {
 public:
  int connects = 0;
  std::vector<std::string> sent;
  std::vector<std::string> closes;
  int pauses = 0, resumes = 0;
  void connect() override { ++connects; }
  void send_text(const std::string& t) override { sent.push_back(t); }
  void close(const std::string& why) override { closes.push_back(why); }
  void pause_reading() override { ++pauses; }
  void resume_reading() override { ++resumes; }
};

// A clock the test moves by hand.
struct FakeTime {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  int64_t wall = 1700000000000;
  void advance(std::chrono::milliseconds d) {
    now += d;
    wall += d.count();
  }
};


// Keeps copies of what was produced; refuses with queue_full the first
// `refuse` times; reports deliveries on serve_deliveries (failing the values
// listed in `fail_values`).
class FakeSink : public MessageSink {
 public:
  struct Kept {
    std::string topic;
    std::optional<std::string> key;
    std::string value;
    std::vector<Header> headers;
    int64_t timestamp_ms;
    uint64_t token;
  };
  std::vector<Kept> kept;
  int refuse = 0;
  int refused = 0;
  std::vector<std::string> fail_values;

  ProduceOutcome try_produce(const OutgoingRecord& r) override {
    if (refused < refuse) {
      ++refused;
      return {ProduceError::queue_full, "full"};
    }
    Kept k{std::string(r.topic), r.key ? std::optional<std::string>(std::string(*r.key)) : std::nullopt,
           std::string(r.value.value_or("")), r.headers ? *r.headers : std::vector<Header>{}, r.timestamp_ms,
           r.token};
    kept.push_back(std::move(k));
    pending_.push_back(kept.size() - 1);
    return {};
  }
  void serve_deliveries(std::chrono::milliseconds) override {
    for (size_t i : pending_) {
      Delivery d;
      d.token = kept[i].token;
      d.topic = kept[i].topic;
      d.partition = 0;
      d.offset = static_cast<int64_t>(i);
      for (const auto& f : fail_values) {
        if (kept[i].value == f) {
          d.error = ProduceError::timed_out;
          d.message = "timed out";
        }
      }
      if (handler_) handler_(d);
    }
    pending_.clear();
  }
  void on_delivery(std::function<void(const Delivery&)> h) override { handler_ = std::move(h); }
  uint64_t in_flight() const override { return pending_.size(); }

 private:
  std::vector<size_t> pending_;
  std::function<void(const Delivery&)> handler_;
};


}  // namespace kws::test
