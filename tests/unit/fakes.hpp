#pragma once
// Fakes for the seams in core/message_io.hpp and core/feed_io.hpp.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/feed_io.hpp"
#include "core/message_io.hpp"

namespace kws::test {

// Records what the session asked of the feed; the test plays the feed's
// side by calling the listener itself.
class FakeFeed : public FeedConnection {
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

}  // namespace kws::test

namespace kws::test {

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
      d.topic = kept[i].topic;
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
