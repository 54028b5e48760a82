// The produce limits' arithmetic on a clock the test moves: no sleeps.
#include <catch2/catch.hpp>

#include "core/session/rate_limit.hpp"

using namespace kws;
using namespace std::chrono_literals;
using Verdict = RateLimiter::Verdict;

namespace {
const TokenBucket::Clock::time_point t0{std::chrono::seconds(1000)};
}

TEST_CASE("token bucket: starts full, refills at its rate, never above its burst", "[limits]") {
  TokenBucket b(10, 10, t0);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(b.has(1, t0));
    b.take(1);
  }
  CHECK_FALSE(b.has(1, t0));
  CHECK_FALSE(b.has(1, t0 + 99ms));
  CHECK(b.has(1, t0 + 100ms));  // 10/s: one token per 100 ms
  CHECK_FALSE(b.has(2, t0 + 100ms));
  CHECK(b.has(10, t0 + 1h));
  CHECK(b.tokens() == Approx(10));  // capped at the burst
}

TEST_CASE("token bucket: a clock that goes back refills nothing", "[limits]") {
  TokenBucket b(10, 10, t0);
  b.take(10);
  CHECK_FALSE(b.has(1, t0 - 5s));
  CHECK(b.has(1, t0 + 100ms));
}

TEST_CASE("rate limiter: off limits allow everything", "[limits]") {
  RateLimits limits;
  CHECK_FALSE(limits.enabled());
  RateLimiter l(limits, t0);
  for (int i = 0; i < 10000; ++i) {
    REQUIRE(l.check(1 << 20, t0).verdict == Verdict::allowed);
    l.spend(1 << 20);
  }
}

TEST_CASE("rate limiter: a second's worth at once, then the rate; refusals name the limit", "[limits]") {
  RateLimits limits;
  limits.messages_per_s = 5;
  RateLimiter l(limits, t0);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(l.check(10, t0).verdict == Verdict::allowed);
    l.spend(10);
  }
  auto refused = l.check(10, t0);
  CHECK(refused.verdict == Verdict::refused);
  CHECK_THAT(refused.why, Catch::Contains("5 messages/s") && Catch::Contains("serve.produce_rate"));
  CHECK(l.check(10, t0 + 200ms).verdict == Verdict::allowed);
}

TEST_CASE("rate limiter: a produce that was not handed to Kafka costs nothing", "[limits]") {
  RateLimits limits;
  limits.messages_per_s = 1;
  RateLimiter l(limits, t0);
  // Checked three times (Kafka's queue was full twice), produced once.
  CHECK(l.check(1, t0).verdict == Verdict::allowed);
  CHECK(l.check(1, t0).verdict == Verdict::allowed);
  CHECK(l.check(1, t0).verdict == Verdict::allowed);
  l.spend(1);
  CHECK(l.check(1, t0).verdict == Verdict::refused);
}

TEST_CASE("rate limiter: bytes per second, with a burst of at least the largest frame", "[limits]") {
  RateLimits limits;
  limits.bytes_per_s = 1000;
  limits.min_byte_burst = 4000;  // serve.max_frame above the rate: a frame that size must pass
  RateLimiter l(limits, t0);
  REQUIRE(l.check(4000, t0).verdict == Verdict::allowed);
  l.spend(4000);
  auto refused = l.check(1, t0);
  CHECK(refused.verdict == Verdict::refused);
  CHECK_THAT(refused.why, Catch::Contains("1000 bytes/s") && Catch::Contains("serve.produce_bytes_rate"));
  CHECK(l.check(500, t0 + 500ms).verdict == Verdict::allowed);
}

TEST_CASE("rate limiter: a client that keeps on after close_after_refusals refusals is closed", "[limits]") {
  RateLimits limits;
  limits.messages_per_s = 1;
  limits.close_after_refusals = 10;
  RateLimiter l(limits, t0);
  REQUIRE(l.check(1, t0).verdict == Verdict::allowed);
  l.spend(1);
  for (int i = 1; i < 10; ++i) REQUIRE(l.check(1, t0 + std::chrono::milliseconds(i)).verdict == Verdict::refused);
  auto last = l.check(1, t0 + 10ms);
  CHECK(last.verdict == Verdict::close);
  CHECK_FALSE(last.why.empty());  // still told why, in the error frame before the close
  CHECK(last.close_reason.size() <= 123);  // a WebSocket close reason's limit
  CHECK_THAT(last.close_reason, Catch::Contains("rate"));
}

TEST_CASE("rate limiter: a client over the rate for close_after without a pause is closed", "[limits]") {
  RateLimits limits;
  limits.messages_per_s = 2;
  limits.close_after = 5s;
  RateLimiter l(limits, t0);
  // Four a second against two allowed: half refused, every second.
  Verdict last = Verdict::allowed;
  auto at = t0;
  for (; at < t0 + 10s && last != Verdict::close; at += 250ms) {
    auto d = l.check(1, at);
    last = d.verdict;
    if (last == Verdict::allowed) l.spend(1);
  }
  CHECK(last == Verdict::close);
  CHECK(at >= t0 + 5s);
  CHECK(at <= t0 + 6s);
}

TEST_CASE("rate limiter: a client that backs off for a second starts afresh", "[limits]") {
  RateLimits limits;
  limits.messages_per_s = 1;
  limits.close_after_refusals = 3;
  RateLimiter l(limits, t0);
  auto at = t0;
  for (int round = 0; round < 10; ++round) {
    // One allowed, two refused, then it waits: never three in one overrun.
    REQUIRE(l.check(1, at).verdict == Verdict::allowed);
    l.spend(1);
    REQUIRE(l.check(1, at).verdict == Verdict::refused);
    REQUIRE(l.check(1, at).verdict == Verdict::refused);
    at += 1500ms;
  }
}
