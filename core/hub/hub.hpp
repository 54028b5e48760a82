#pragma once
// The shared fan-out: one reader for the whole bridge reads each partition
// once, encodes each message once (frame.hpp) and hands the same frame to
// every session subscribed to its topic. Sessions that start in the past are
// served from a bounded ring of recent frames per partition, or by a
// short-lived catch-up reader that hands over to the live stream at the ring
// with no gap and no duplicate (dedupe by offset).
//
// The hub never touches a socket or librdkafka: sessions are Subscribers,
// Kafka is a PartitionFeed (core/message_io.hpp). All state is owned by the
// hub's thread (run()); other threads only queue requests.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/hub/frame.hpp"
#include "core/message_io.hpp"
#include "core/offset_spec.hpp"
#include "core/util/log.hpp"

namespace kws {

// A session as the hub sees it. Called from the hub's thread.
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Message frames of one topic, in offset order per partition. The live
  // stream hands the same batch to every subscriber of the topic.
  virtual void deliver(const FrameBatchPtr& batch) = 0;
  // A reply frame's JSON text ({"type":"subscribed",...}).
  virtual void reply(const std::string& json) = 0;
};

struct HubLimits {
  size_t ring_bytes = 8 << 20;             // per partition
  size_t max_catchups = 32;                // sessions reading history at once
  std::chrono::milliseconds linger{10000};  // keep a topic read this long after its last subscriber
  size_t batch = 4096;                     // messages per poll
  size_t batch_bytes = 64 << 10;           // text bytes per batch handed to subscribers
};

struct TopicStats {
  std::string topic;
  size_t subscribers = 0;
  size_t ring_bytes = 0;
  size_t ring_frames = 0;
  int64_t lag = 0;              // messages Kafka has that the hub has not read yet (all partitions)
  uint64_t messages = 0;        // read from Kafka since the topic started
};

struct HubStats {
  std::vector<TopicStats> topics;
  size_t catchups = 0;
  uint64_t messages = 0;  // frames encoded by the live reader, all topics
};

class Hub {
 public:
  using FeedFactory = std::function<std::unique_ptr<PartitionFeed>()>;

  // `live` is the shared reader; `catchup_feeds` makes a fresh reader per
  // session that starts before the ring.
  Hub(std::unique_ptr<PartitionFeed> live, FeedFactory catchup_feeds, HubLimits limits, LogSink& log);
  ~Hub();

  // Thread-safe; take effect on the hub's thread, in the order called.
  // `id_json` is the client's request id as JSON text ("" when none), echoed
  // in the reply. Replies: {"type":"subscribed"...} or {"type":"error"...}.
  void subscribe(std::shared_ptr<Subscriber> subscriber, const std::string& topic, const OffsetSpec& start,
                 const std::string& start_text, const std::string& id_json);
  void unsubscribe(const std::shared_ptr<Subscriber>& subscriber, const std::string& topic, const std::string& id_json);
  // Forgets a closed session everywhere (no reply).
  void remove(const std::shared_ptr<Subscriber>& subscriber);

  // The hub's loop: serves requests and reads Kafka until stop() is called.
  // Throws kws::Error when the live reader cannot go on (cluster lost).
  void run();
  // One iteration of run() (for tests): requests, then one poll of every reader.
  void run_once(std::chrono::milliseconds wait);
  void stop();

  HubStats stats() const;

 private:
  struct Ring;
  struct Topic;
  struct CatchUp;
  struct Request;

  void handle(Request& r);
  void start_subscription(Topic& t, Request& r);
  void join_live(Topic& t, const std::shared_ptr<Subscriber>& s, const std::vector<int64_t>& from);
  void detach(const std::shared_ptr<Subscriber>& s, const std::string& topic);
  void poll_live(std::chrono::milliseconds wait);
  void poll_catchups();
  void retire_idle_topics();
  void update_stats();
  Topic* find_topic(const std::string& name);

  std::unique_ptr<PartitionFeed> live_;
  FeedFactory catchup_feeds_;
  HubLimits limits_;
  LogSink& log_;

  std::mutex requests_mutex_;
  std::condition_variable requests_cv_;
  std::deque<std::unique_ptr<Request>> requests_;
  std::atomic<bool> stopping_{false};

  std::map<std::string, std::unique_ptr<Topic>> topics_;
  std::vector<std::unique_ptr<CatchUp>> catchups_;
  uint64_t messages_ = 0;

  mutable std::mutex stats_mutex_;
  HubStats stats_;
  std::chrono::steady_clock::time_point stats_at_{};
};

// The JSON text of a reply frame (shared with the session's own replies).
std::string error_reply(std::string_view code, std::string_view message, const std::string& id_json,
                        std::string_view topic = {});

}  // namespace kws
