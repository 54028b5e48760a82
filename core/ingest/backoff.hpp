#pragma once
// Reconnect delays: exponential with full jitter (a uniformly random delay
// between 0 and the current ceiling), so many clients cut off at once do not
// come back in step. The ceiling doubles (by `multiplier`) per failed
// attempt up to `max`, and falls back to `initial` after reset().
#include <chrono>
#include <cstdint>
#include <random>

namespace kws {

struct BackoffSettings {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{30000};
  double multiplier = 2.0;
};

class Backoff {
 public:
  explicit Backoff(BackoffSettings settings, uint64_t seed = std::random_device{}());

  // The delay before the next attempt; raises the ceiling for the one after.
  std::chrono::milliseconds next();
  // The ceiling the next call draws under.
  std::chrono::milliseconds ceiling() const { return std::chrono::milliseconds(static_cast<int64_t>(ceiling_)); }
  void reset();

 private:
  BackoffSettings settings_;
  double ceiling_;
  std::mt19937_64 rng_;
};

}  // namespace kws
