#include "core/hub/admin_worker.hpp"

#include <atomic>

namespace kws {

AdminWorker::AdminWorker(TopicAdmin& admin, Clock clock, std::chrono::milliseconds cache_for, bool threaded)
    : admin_(admin), clock_(std::move(clock)), cache_for_(cache_for), threaded_(threaded) {
  if (threaded_) thread_ = std::thread([this] { run(); });
}

AdminWorker::~AdminWorker() { stop(); }

void AdminWorker::stop() {
  std::deque<std::function<void()>> abandoned;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    abandoned.swap(errands_);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Abandoned errands holding readers close them here, outside the lock.
}

size_t AdminWorker::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return errands_.size() + running_;
}

void AdminWorker::submit(std::function<void()> errand) {
  if (!threaded_) {
    if (!stopping_) errand();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    errands_.push_back(std::move(errand));
  }
  cv_.notify_one();
}

void AdminWorker::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !errands_.empty(); });
    if (stopping_) return;
    std::function<void()> errand = std::move(errands_.front());
    errands_.pop_front();
    ++running_;
    lock.unlock();
    errand();  // the TopicAdmin never throws; open_reader's errand catches
    errand = nullptr;  // a disposed reader closes here, outside the lock
    lock.lock();
    --running_;
  }
}

TopicLookup AdminWorker::describe_cached(const std::string& topic, bool fresh,
                                         std::chrono::steady_clock::time_point asked) {
  const auto now = clock_();
  auto it = cache_.find(topic);
  // A fresh lookup takes an answer Kafka was asked for after it: a
  // burst of subscriptions to a topic the hub does not read yet (a bridge
  // restarted under a thousand clients) costs a round trip or two, not one
  // per subscription.
  if (it != cache_.end() && (fresh ? it->second.at > asked : now - it->second.at < cache_for_)) {
    return it->second.lookup;
  }
  // A flood of distinct names must not grow the cache: drop what is stale.
  if (cache_.size() > 1024) {
    for (auto it = cache_.begin(); it != cache_.end();) {
      it = now - it->second.at >= cache_for_ ? cache_.erase(it) : std::next(it);
    }
  }
  const auto asking = clock_();  // the answer is at least this new
  TopicLookup lookup = admin_.describe(topic);
  if (lookup.error != TopicLookup::Error::failed) cache_[topic] = Cached{lookup, asking};
  return lookup;
}

void AdminWorker::look_up(const std::string& topic, bool fresh, std::optional<int64_t> time_ms,
                          std::shared_ptr<const std::atomic<bool>> cancelled, std::function<void(Lookup)> done) {
  const auto asked = clock_();
  submit([this, topic, fresh, asked, time_ms, cancelled = std::move(cancelled), done = std::move(done)] {
    if (cancelled && *cancelled) return;
    Lookup out;
    out.topic = describe_cached(topic, fresh, asked);
    if (out.topic.ok() && time_ms) out.times = admin_.offsets_for_time(topic, *time_ms, out.topic.partitions.size());
    done(std::move(out));
  });
}

void AdminWorker::topic_names(std::shared_ptr<const std::atomic<bool>> cancelled,
                              std::function<void(std::vector<std::string>, std::string)> done) {
  submit([this, cancelled = std::move(cancelled), done = std::move(done)] {
    if (cancelled && *cancelled) return;
    // A page that opens asks once; a thousand pages opening at once ask
    // the cluster once a cache period.
    const auto at = clock_();
    if (names_at_ != std::chrono::steady_clock::time_point{} && at - names_at_ < cache_for_) {
      done(names_, "");
      return;
    }
    try {
      names_ = admin_.topic_names();
      names_at_ = at;
      done(names_, "");
    } catch (const std::exception& e) {
      done({}, e.what());
    }
  });
}

void AdminWorker::open_reader(std::shared_ptr<const std::atomic<bool>> cancelled,
                              std::function<void(std::unique_ptr<PartitionFeed>, std::string)> done) {
  submit([this, cancelled = std::move(cancelled), done = std::move(done)] {
    if (cancelled && *cancelled) return;
    try {
      done(admin_.open_reader(), "");
    } catch (const std::exception& e) {
      done(nullptr, e.what());
    }
  });
}

void AdminWorker::dispose(std::unique_ptr<PartitionFeed> feed) {
  if (!feed) return;
  // A std::function must be copyable: hold the reader in a shared_ptr; it
  // is destroyed when the errand is (on the worker thread, or here when
  // running inline, or with the queue at shutdown).
  std::shared_ptr<PartitionFeed> owned(std::move(feed));
  submit([owned = std::move(owned)]() mutable { owned.reset(); });
}

}  // namespace kws
