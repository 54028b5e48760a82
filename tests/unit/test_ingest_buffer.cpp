#include <catch2/catch.hpp>

#include <thread>

#include "core/ingest/buffer.hpp"

using namespace kws;
using std::chrono::milliseconds;

namespace {
IngestItem item(const std::string& payload) {
  IngestItem i;
  i.payload = payload;
  return i;
}
std::vector<std::string> payloads(const std::vector<IngestItem>& items) {
  std::vector<std::string> out;
  for (const auto& i : items) out.push_back(i.payload);
  return out;
}
}  // namespace

TEST_CASE("buffer: block keeps everything and asks to pause at the limit, resume at half") {
  IngestBuffer b({4, 1 << 20, WhenFull::block});
  CHECK_FALSE(b.push(item("1")).pause);
  CHECK_FALSE(b.push(item("2")).pause);
  CHECK_FALSE(b.push(item("3")).pause);
  auto r = b.push(item("4"));
  CHECK(r.accepted);
  CHECK(r.pause);
  // What the socket had already read still goes in.
  CHECK(b.push(item("5")).accepted);
  CHECK(b.stats().messages == 5);
  std::vector<IngestItem> out;
  CHECK_FALSE(b.pop(out, 2, milliseconds(0)));  // 3 left: above half
  CHECK(b.pop(out, 1, milliseconds(0)));        // 2 left: resume, once
  CHECK_FALSE(b.pop(out, 1, milliseconds(0)));
  CHECK(payloads(out) == std::vector<std::string>{"1", "2", "3", "4"});
  CHECK(b.stats().dropped_oldest + b.stats().dropped_newest == 0);
}

TEST_CASE("buffer: the byte limit counts too") {
  IngestBuffer b({1000, 10, WhenFull::block});
  CHECK_FALSE(b.push(item("12345")).pause);
  CHECK(b.push(item("67890")).pause);
}

TEST_CASE("buffer: drop-newest refuses and counts exactly") {
  IngestBuffer b({3, 1 << 20, WhenFull::drop_newest});
  int refused = 0;
  for (int i = 0; i < 10; ++i) {
    auto r = b.push(item(std::to_string(i)));
    CHECK_FALSE(r.pause);
    if (!r.accepted) ++refused;
  }
  CHECK(refused == 7);
  CHECK(b.stats().dropped_newest == 7);
  std::vector<IngestItem> out;
  b.pop(out, 100, milliseconds(0));
  CHECK(payloads(out) == std::vector<std::string>{"0", "1", "2"});
}

TEST_CASE("buffer: drop-oldest makes room and counts exactly; markers stay") {
  IngestBuffer b({3, 1 << 20, WhenFull::drop_oldest});
  IngestItem marker = item("M");
  marker.marker = true;
  b.push(std::move(marker), true);
  for (int i = 0; i < 6; ++i) CHECK(b.push(item(std::to_string(i))).accepted);
  CHECK(b.stats().dropped_oldest == 4);
  std::vector<IngestItem> out;
  b.pop(out, 100, milliseconds(0));
  CHECK(payloads(out) == std::vector<std::string>{"M", "4", "5"});
}

TEST_CASE("buffer: drop-oldest by bytes") {
  IngestBuffer b({100, 6, WhenFull::drop_oldest});
  b.push(item("aaa"));
  b.push(item("bbb"));
  b.push(item("cc"));
  CHECK(b.stats().dropped_oldest == 1);
  CHECK(b.stats().bytes == 5);
}

TEST_CASE("buffer: pop waits for a push from another thread, and wake() ends the wait") {
  IngestBuffer b({10, 1 << 20, WhenFull::block});
  std::thread t([&] {
    std::this_thread::sleep_for(milliseconds(20));
    b.push(item("late"));
  });
  std::vector<IngestItem> out;
  b.pop(out, 10, milliseconds(5000));
  t.join();
  REQUIRE(out.size() == 1);
  auto start = std::chrono::steady_clock::now();
  std::thread w([&] {
    std::this_thread::sleep_for(milliseconds(20));
    b.wake();
  });
  out.clear();
  b.pop(out, 10, milliseconds(5000));
  w.join();
  CHECK(out.empty());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("buffer: when-full names") {
  CHECK(parse_when_full("drop-oldest") == WhenFull::drop_oldest);
  CHECK_FALSE(parse_when_full("drop"));
  CHECK(when_full_name(WhenFull::drop_newest) == "drop-newest");
}

TEST_CASE("buffer: the bound is split with the producer's queue unless -X sized it") {
  BufferLimits total{100000, 64ull << 20, WhenFull::block};
  HeldLimits split = split_held_limits(total, false, false);
  REQUIRE(split.producer_messages);
  REQUIRE(split.producer_kbytes);
  CHECK(*split.producer_messages == 25000);
  CHECK(split.buffer.messages == 75000);
  CHECK(*split.producer_kbytes == 16384);
  CHECK(split.buffer.bytes == (48ull << 20));
  CHECK(split.buffer.messages + *split.producer_messages == total.messages);
  CHECK(split.buffer.bytes + *split.producer_kbytes * 1024 == total.bytes);
  CHECK(split.buffer.when_full == WhenFull::block);

  // A queue size given with -X stands; the buffer keeps that whole dimension.
  HeldLimits given = split_held_limits(total, true, false);
  CHECK_FALSE(given.producer_messages);
  CHECK(given.buffer.messages == 100000);
  CHECK(given.producer_kbytes);
  given = split_held_limits(total, false, true);
  CHECK_FALSE(given.producer_kbytes);
  CHECK(given.buffer.bytes == total.bytes);

  // Tiny bounds still leave both at least one.
  HeldLimits tiny = split_held_limits(BufferLimits{1, 1, WhenFull::block}, false, false);
  CHECK(*tiny.producer_messages == 1);
  CHECK(tiny.buffer.messages == 1);
  CHECK(*tiny.producer_kbytes == 1);
  CHECK(tiny.buffer.bytes == 1);
}
