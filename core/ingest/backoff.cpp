#include "core/ingest/backoff.hpp"

#include <algorithm>

namespace kws {

Backoff::Backoff(BackoffSettings settings, uint64_t seed) : settings_(settings), rng_(seed) {
  if (settings_.initial.count() < 1) settings_.initial = std::chrono::milliseconds(1);
  if (settings_.max < settings_.initial) settings_.max = settings_.initial;
  if (!(settings_.multiplier >= 1.0)) settings_.multiplier = 1.0;
  ceiling_ = static_cast<double>(settings_.initial.count());
}

std::chrono::milliseconds Backoff::next() {
  std::uniform_int_distribution<int64_t> pick(0, static_cast<int64_t>(ceiling_));
  int64_t delay = pick(rng_);
  ceiling_ = std::min(ceiling_ * settings_.multiplier, static_cast<double>(settings_.max.count()));
  return std::chrono::milliseconds(delay);
}

void Backoff::reset() { ceiling_ = static_cast<double>(settings_.initial.count()); }

}  // namespace kws
