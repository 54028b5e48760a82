#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "core/ingest/stdin_feed.hpp"

using namespace kws;

namespace {
// What the feed reported, until it closed.
struct Recorder : FeedListener {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> messages;
  int too_big = 0;
  bool closed = false;
  FeedEnd end = FeedEnd::failed;

  void on_feed_open() override {}
  void on_feed_message(std::string& payload, bool) override {
    std::lock_guard<std::mutex> lock(mutex);
    messages.push_back(payload);
  }
  void on_feed_too_big() override {
    std::lock_guard<std::mutex> lock(mutex);
    ++too_big;
  }
  void on_feed_closed(FeedEnd e, FeedFailure, const std::string&) override {
    std::lock_guard<std::mutex> lock(mutex);
    closed = true;
    end = e;
    changed.notify_all();
  }
  bool wait_closed() {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(10), [this] { return closed; });
  }
};

// Feeds `input` through a pipe to a StdinFeed with `limit`; returns what it reported.
void run_feed(Recorder& r, const std::string& input, uint64_t limit) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  {
    StdinFeed feed(r, fds[0], limit);
    feed.connect();
    size_t done = 0;
    while (done < input.size()) {
      ssize_t n = ::write(fds[1], input.data() + done, input.size() - done);
      REQUIRE(n > 0);
      done += static_cast<size_t>(n);
    }
    ::close(fds[1]);
    REQUIRE(r.wait_closed());
  }
  ::close(fds[0]);
}
}  // namespace

TEST_CASE("stdin feed: a line over the size limit is skipped and reported, the next lines go on") {
  Recorder r;
  run_feed(r, "a\n" + std::string(11, 'x') + "\nb\n" + std::string(10, 'y'), 10);
  CHECK(r.messages == std::vector<std::string>{"a", "b", std::string(10, 'y')});  // the limit itself is fine
  CHECK(r.too_big == 1);
  CHECK(r.end == FeedEnd::end_of_input);
}

TEST_CASE("stdin feed: a long line across many reads counts once and is not held") {
  Recorder r;
  // 3 MiB without a newline spans several of the feed's 1 MiB reads.
  run_feed(r, "first\n" + std::string(3 << 20, 'z') + "\nc\n" + std::string(5000, 'w'), 1000);
  CHECK(r.messages == std::vector<std::string>{"first", "c"});
  CHECK(r.too_big == 2);  // the long line, and the last one (without its newline)
  CHECK(r.end == FeedEnd::end_of_input);
}
