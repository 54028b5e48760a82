#pragma once
// The hub's errands to Kafka, run on a thread of their own so that the
// fan-out thread never waits for a broker: looking up a topic's partitions
// and watermarks (kept for a moment, so a burst of subscriptions to one
// topic costs one round trip), offsets for a time, opening catch-up readers
// and closing them. Each result is handed to a callback on the worker's
// thread; the hub posts it back onto its own queue.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/message_io.hpp"

namespace kws {

class AdminWorker {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `threaded` false runs every errand at once on the caller's thread
  // (deterministic tests).
  AdminWorker(TopicAdmin& admin, Clock clock, std::chrono::milliseconds cache_for, bool threaded);
  ~AdminWorker();  // stop()
  // Abandons waiting errands and waits for the running one; callbacks are
  // not called after it returns.
  void stop();
  AdminWorker(const AdminWorker&) = delete;
  AdminWorker& operator=(const AdminWorker&) = delete;

  struct Lookup {
    TopicLookup topic;
    std::vector<int64_t> times;  // offsets_for_time per partition, when a time was asked for
  };
  // `fresh`: answer only with what Kafka said after this call (the live
  // reader starts at these high watermarks). `cancelled` (may be null) is checked before the errand
  // runs: a closed session's errands are skipped.
  void look_up(const std::string& topic, bool fresh, std::optional<int64_t> time_ms,
               std::shared_ptr<const std::atomic<bool>> cancelled, std::function<void(Lookup)> done);
  // The cluster's topic names (cached like lookups), or why not.
  void topic_names(std::shared_ptr<const std::atomic<bool>> cancelled,
                   std::function<void(std::vector<std::string>, std::string error)> done);
  void open_reader(std::shared_ptr<const std::atomic<bool>> cancelled,
                   std::function<void(std::unique_ptr<PartitionFeed>, std::string error)> done);
  // Closing a reader waits for the cluster; it happens here.
  void dispose(std::unique_ptr<PartitionFeed> feed);

  size_t pending() const;

 private:
  void submit(std::function<void()> errand);
  void run();
  TopicLookup describe_cached(const std::string& topic, bool fresh, std::chrono::steady_clock::time_point asked);

  TopicAdmin& admin_;
  Clock clock_;
  std::chrono::milliseconds cache_for_;
  const bool threaded_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> errands_;
  size_t running_ = 0;
  bool stopping_ = false;
  std::thread thread_;

  struct Cached {
    TopicLookup lookup;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, Cached> cache_;  // worker thread only
  std::vector<std::string> names_;       // worker thread only: the last topic listing
  std::chrono::steady_clock::time_point names_at_{};
};

}  // namespace kws
