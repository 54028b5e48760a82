#pragma once
// Per-session limits of kws serve: produce (serve.produce_rate,
// serve.produce_bytes_rate) and control frames (serve.control_rate): token
// buckets, and the rule for a client that keeps on after being told it is
// over (closed with 1008). Pure arithmetic on an injected clock, so the
// tests never sleep.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace kws {

// Refills at `rate` tokens per second up to `burst`; starts full.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(double rate, double burst, Clock::time_point now) : rate_(rate), burst_(burst), tokens_(burst), at_(now) {}

  // Whether `cost` tokens are there at `now`; takes none (take() does, once
  // the work they pay for was done).
  bool has(double cost, Clock::time_point now);
  void take(double cost) { tokens_ -= cost; }
  double tokens() const { return tokens_; }

 private:
  void refill(Clock::time_point now);
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point at_;
};

// One per-session limit: messages (or frames) per second and bytes per
// second, and how refusals name it.
struct RateLimits {
  uint64_t messages_per_s = 0;  // 0: no limit
  uint64_t bytes_per_s = 0;     // 0: no limit; bytes of the client's frames
  // The byte bucket holds at least this, so the largest frame the bridge
  // takes (serve.max_frame) can pass at any rate.
  uint64_t min_byte_burst = 0;
  // A client "keeps going" when its frames go on being refused: for this
  // long without a second's pause between refusals, or this many times
  // before such a pause. It is then closed (WebSocket 1008).
  std::chrono::milliseconds close_after{5000};
  uint32_t close_after_refusals = 100;
  // How refusals and the close reason name the limit: the control-frame
  // limit is the same rule over other frames.
  const char* what = "produce rate";
  const char* unit = "messages";
  const char* rate_setting = "serve.produce_rate";
  bool enabled() const { return messages_per_s > 0 || bytes_per_s > 0; }
};

// The limit on a session's control frames (subscribe, unsubscribe, topics,
// auth): each costs the hub or the token verifier work, and nothing else
// bounds how many a client sends. 0: no limit.
RateLimits control_frame_limits(uint64_t frames_per_s);

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(const RateLimits& limits, Clock::time_point now);

  enum class Verdict { allowed, refused, close };
  struct Decision {
    Verdict verdict = Verdict::allowed;
    std::string why;           // refused and close: which limit, in the client's words
    std::string close_reason;  // close: the WebSocket close frame's reason
  };
  // Whether one frame (a produce of `bytes`, or a control frame) may go
  // now; takes nothing. allowed: call spend() once it was acted on (a
  // produce once handed to Kafka: one that waits for Kafka's queue and is
  // checked again later pays once). refused: answer rate_limited. close:
  // answer rate_limited, then close the client.
  Decision check(size_t bytes, Clock::time_point now);
  void spend(size_t bytes);

 private:
  RateLimits limits_;
  TokenBucket messages_;
  TokenBucket bytes_;
  // The current overrun: refusals with less than a second between them.
  Clock::time_point overrun_since_{};
  Clock::time_point last_refusal_{};
  uint32_t refusals_ = 0;
};

}  // namespace kws
