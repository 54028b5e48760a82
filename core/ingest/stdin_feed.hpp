#pragma once
// Standard input as a feed (`kws ingest - TOPIC`): one message per line, as
// `kws send` reads it; its end is the end of the run. A line longer than
// max_message_size is skipped (on_feed_too_big) without being held in memory.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "core/feed_io.hpp"

namespace kws {

class StdinFeed : public FeedConnection {
 public:
  StdinFeed(FeedListener& listener, int fd, uint64_t max_message_size)
      : listener_(listener), fd_(fd), max_message_size_(max_message_size) {}
  ~StdinFeed() override;

  void connect() override;
  void send_text(const std::string&) override {}  // nobody to send to
  void close(const std::string& why) override;
  void pause_reading() override;
  void resume_reading() override;

 private:
  void run();

  FeedListener& listener_;
  int fd_;
  uint64_t max_message_size_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable resumed_;
  bool paused_ = false;
  std::atomic<bool> closing_{false};
};

}  // namespace kws
