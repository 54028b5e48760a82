#include "core/bench/histogram.hpp"

#include <algorithm>

namespace kws::bench {

LatencyHistogram::LatencyHistogram() : fine_(1000000), coarse_(100001) {}

void LatencyHistogram::add(uint64_t us, uint64_t count) {
  if (us < fine_.size()) {
    fine_[us] += static_cast<uint32_t>(count);
  } else {
    coarse_[std::min<uint64_t>(us / 1000, coarse_.size() - 1)] += static_cast<uint32_t>(count);
  }
  n_ += count;
  max_us_ = std::max(max_us_, us);
}

double LatencyHistogram::quantile_ms(double q) const {
  if (n_ == 0) return 0;
  // The smallest value with at least ceil(q * n) samples at or below it.
  uint64_t want = std::max<uint64_t>(1, static_cast<uint64_t>(q * static_cast<double>(n_) + 0.999999));
  want = std::min(want, n_);
  uint64_t seen = 0;
  for (size_t i = 0; i < fine_.size(); i++) {
    if ((seen += fine_[i]) >= want) return static_cast<double>(i) / 1e3;
  }
  for (size_t i = 0; i < coarse_.size(); i++) {
    if ((seen += coarse_[i]) >= want) return static_cast<double>(i);
  }
  return max_ms();
}

}  // namespace kws::bench
