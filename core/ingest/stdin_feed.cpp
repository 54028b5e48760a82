#include "core/ingest/stdin_feed.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace kws {

StdinFeed::~StdinFeed() {
  close("");
  if (thread_.joinable()) thread_.join();
}

void StdinFeed::connect() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void StdinFeed::close(const std::string&) {
  closing_ = true;
  resumed_.notify_all();
}

void StdinFeed::pause_reading() {
  std::lock_guard<std::mutex> lock(mutex_);
  paused_ = true;
}

void StdinFeed::resume_reading() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    paused_ = false;
  }
  resumed_.notify_all();
}

void StdinFeed::run() {
  listener_.on_feed_open();
  std::string buffer;
  std::string record;
  std::string why = "end of input";
  constexpr size_t kBlock = 1 << 20;
  bool eof = false;
  bool skipping = false;  // inside a line already over the limit: dropped up to its newline
  while (!eof && !closing_) {
    // poll with a timeout so a close() is noticed while stdin is idle: a
    // signal interrupts only the main thread's calls, not this read.
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) {
      why = std::string("cannot read input: ") + std::strerror(errno);
      break;
    }
    if (ready <= 0) continue;
    size_t old = buffer.size();
    buffer.resize(old + kBlock);
    ssize_t n = ::read(fd_, buffer.data() + old, kBlock);
    if (n < 0) {
      buffer.resize(old);
      if (errno == EINTR || errno == EAGAIN) continue;
      why = std::string("cannot read input: ") + std::strerror(errno);
      break;
    }
    buffer.resize(old + static_cast<size_t>(n));
    if (n == 0) {
      eof = true;
      if (buffer.empty()) break;
      buffer += '\n';  // a last line without its newline is still a message
    }
    size_t start = 0;
    while (!closing_) {
      size_t nl = buffer.find('\n', start);
      if (nl == std::string::npos) break;
      const size_t line_start = start;
      start = nl + 1;
      if (skipping) {  // the end of a line reported as too big already
        skipping = false;
        continue;
      }
      if (nl - line_start > max_message_size_) {
        listener_.on_feed_too_big();
        continue;
      }
      record.assign(buffer, line_start, nl - line_start);
      listener_.on_feed_message(record, false);
      std::unique_lock<std::mutex> lock(mutex_);
      resumed_.wait(lock, [this] { return !paused_ || closing_; });
    }
    buffer.erase(0, start);
    // A line that is over the limit before its newline arrived is reported
    // now and not kept: a newline-less stream must not grow without bound.
    if (!closing_ && !skipping && buffer.size() > max_message_size_) {
      listener_.on_feed_too_big();
      skipping = true;
    }
    if (skipping) buffer.clear();
  }
  listener_.on_feed_closed(FeedEnd::end_of_input, why);
}

}  // namespace kws
