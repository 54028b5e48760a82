#include "core/session/rate_limit.hpp"

#include <algorithm>

namespace kws {

namespace {

// A second without a refusal ends an overrun: a client that backed off
// after being told starts with a clean slate.
constexpr std::chrono::milliseconds kOverrunPause{1000};

}  // namespace

void TokenBucket::refill(Clock::time_point now) {
  if (now <= at_) return;
  const double seconds = std::chrono::duration<double>(now - at_).count();
  tokens_ = std::min(burst_, tokens_ + seconds * rate_);
  at_ = now;
}

bool TokenBucket::has(double cost, Clock::time_point now) {
  refill(now);
  return tokens_ >= cost;
}

// About one second's worth of burst: a client may send a second's messages
// at once, then at the rate.
RateLimiter::RateLimiter(const RateLimits& limits, Clock::time_point now)
    : limits_(limits),
      messages_(static_cast<double>(limits.messages_per_s), static_cast<double>(limits.messages_per_s), now),
      bytes_(static_cast<double>(limits.bytes_per_s),
             static_cast<double>(std::max(limits.bytes_per_s, limits.min_byte_burst)), now) {}

RateLimits control_frame_limits(uint64_t frames_per_s) {
  RateLimits limits;
  limits.messages_per_s = frames_per_s;
  limits.what = "control frame rate";
  limits.unit = "frames";
  limits.rate_setting = "serve.control_rate";
  return limits;
}

RateLimiter::Decision RateLimiter::check(size_t bytes, Clock::time_point now) {
  Decision d;
  if (limits_.messages_per_s > 0 && !messages_.has(1, now)) {
    d.why = std::string("over this session's ") + limits_.what + " of " + std::to_string(limits_.messages_per_s) + " " +
            limits_.unit + "/s (" + limits_.rate_setting + "); slow down";
  } else if (limits_.bytes_per_s > 0 && !bytes_.has(static_cast<double>(bytes), now)) {
    d.why = "over this session's produce rate of " + std::to_string(limits_.bytes_per_s) +
            " bytes/s (serve.produce_bytes_rate); slow down";
  } else {
    return d;
  }
  if (refusals_ == 0 || now - last_refusal_ >= kOverrunPause) {
    overrun_since_ = now;
    refusals_ = 0;
  }
  ++refusals_;
  last_refusal_ = now;
  d.verdict = Verdict::refused;
  if (refusals_ >= limits_.close_after_refusals || now - overrun_since_ >= limits_.close_after) {
    d.verdict = Verdict::close;
    // A close reason: at most 123 bytes on the wire.
    d.close_reason = std::string(limits_.what) + " limit: still over after " + std::to_string(refusals_) +
                     " rate_limited errors";
  }
  return d;
}

void RateLimiter::spend(size_t bytes) {
  if (limits_.messages_per_s > 0) messages_.take(1);
  if (limits_.bytes_per_s > 0) bytes_.take(static_cast<double>(bytes));
}

}  // namespace kws
