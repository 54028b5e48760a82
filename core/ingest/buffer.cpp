#include "core/ingest/buffer.hpp"

#include <algorithm>

namespace kws {

HeldLimits split_held_limits(const BufferLimits& total, bool producer_messages_given, bool producer_kbytes_given) {
  HeldLimits out;
  out.buffer = total;
  if (!producer_messages_given) {
    out.producer_messages = std::max<uint64_t>(1, total.messages / 4);
    out.buffer.messages = std::max<uint64_t>(1, total.messages - *out.producer_messages);
  }
  if (!producer_kbytes_given) {
    // librdkafka counts this queue in KiB, at least 1.
    out.producer_kbytes = std::max<uint64_t>(1, total.bytes / 4 / 1024);
    const uint64_t producer_bytes = *out.producer_kbytes * 1024;
    out.buffer.bytes = total.bytes > producer_bytes ? std::max<uint64_t>(1, total.bytes - producer_bytes) : 1;
  }
  return out;
}

std::optional<WhenFull> parse_when_full(std::string_view text) {
  if (text == "block") return WhenFull::block;
  if (text == "drop-oldest") return WhenFull::drop_oldest;
  if (text == "drop-newest") return WhenFull::drop_newest;
  return std::nullopt;
}

std::string_view when_full_name(WhenFull w) {
  switch (w) {
    case WhenFull::block: return "block";
    case WhenFull::drop_oldest: return "drop-oldest";
    case WhenFull::drop_newest: return "drop-newest";
  }
  return "block";
}

IngestBuffer::IngestBuffer(BufferLimits limits) : limits_(limits) {
  if (limits_.messages == 0) limits_.messages = 1;
  if (limits_.bytes == 0) limits_.bytes = 1;
}

bool IngestBuffer::full_locked() const { return items_.size() >= limits_.messages || bytes_ >= limits_.bytes; }

IngestBuffer::PushResult IngestBuffer::push(IngestItem&& item, bool force) {
  PushResult result;
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t weight = item.weight();
  if (!force) {
    switch (limits_.when_full) {
      case WhenFull::block:
        // What was already read is kept: the reader pauses instead.
        break;
      case WhenFull::drop_newest:
        if (items_.size() + 1 > limits_.messages || (bytes_ + weight > limits_.bytes && !items_.empty())) {
          ++dropped_newest_;
          result.accepted = false;
          return result;
        }
        break;
      case WhenFull::drop_oldest:
        // Markers stay: they say where an outage was, and are few.
        while (!items_.empty() && (items_.size() + 1 > limits_.messages || bytes_ + weight > limits_.bytes)) {
          auto victim = items_.begin();
          while (victim != items_.end() && victim->marker) ++victim;
          if (victim == items_.end()) break;
          bytes_ -= victim->weight();
          items_.erase(victim);
          ++dropped_oldest_;
        }
        break;
    }
  }
  bytes_ += weight;
  items_.push_back(std::move(item));
  if (items_.size() > peak_) peak_ = items_.size();
  if (limits_.when_full == WhenFull::block && full_locked()) {
    paused_ = true;
    result.pause = true;
  }
  const bool was_empty = items_.size() == 1;
  lock.unlock();
  if (was_empty) ready_.notify_one();
  return result;
}

bool IngestBuffer::pop(std::vector<IngestItem>& out, size_t max, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (items_.empty() && wait.count() > 0) {
    ready_.wait_for(lock, wait, [this] { return !items_.empty() || woken_; });
  }
  woken_ = false;
  size_t n = 0;
  while (!items_.empty() && n < max) {
    bytes_ -= items_.front().weight();
    out.push_back(std::move(items_.front()));
    items_.pop_front();
    ++n;
  }
  if (paused_ && items_.size() <= limits_.messages / 2 && bytes_ <= limits_.bytes / 2) {
    paused_ = false;
    return true;
  }
  return false;
}

void IngestBuffer::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    woken_ = true;
  }
  ready_.notify_all();
}

IngestBuffer::Stats IngestBuffer::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Stats s;
  s.messages = items_.size();
  s.bytes = bytes_;
  s.dropped_oldest = dropped_oldest_;
  s.dropped_newest = dropped_newest_;
  s.peak_messages = peak_;
  s.paused = paused_;
  return s;
}

}  // namespace kws
