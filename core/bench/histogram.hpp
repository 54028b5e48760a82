#pragma once
// End-to-end latency histogram: 1 us buckets below 1 s, 1 ms buckets up to
// 100 s. Exact enough for p99.9 at any rate, and adding a sample is one
// increment, so the counting clients stay cheap.
#include <cstdint>
#include <vector>

namespace kws::bench {

class LatencyHistogram {
 public:
  LatencyHistogram();
  void add(uint64_t micros, uint64_t count = 1);
  uint64_t count() const { return n_; }
  // The latency (ms) at quantile q in [0, 1]; 0 when empty.
  double quantile_ms(double q) const;
  double max_ms() const { return static_cast<double>(max_us_) / 1e3; }

 private:
  std::vector<uint32_t> fine_;    // 1 us each, [0, 1 s)
  std::vector<uint32_t> coarse_;  // 1 ms each, [0, 100 s], the last one open-ended
  uint64_t n_ = 0;
  uint64_t max_us_ = 0;
};

}  // namespace kws::bench
