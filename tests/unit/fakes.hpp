#pragma once
// Fakes for the seams in core/message_io.hpp and core/feed_io.hpp.
#include <chrono>
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
