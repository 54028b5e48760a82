#include "core/session/outbox.hpp"

#include <algorithm>

namespace kws {

Outbox::Offer Outbox::scheduled_locked() {
  Offer o;
  if (!flush_pending_) {
    flush_pending_ = true;
    o.schedule_flush = true;
  }
  return o;
}

// Over budget: drop-oldest frees the oldest message frames (never replies)
// until `incoming` fits; close marks the outbox overflowed. Returns whether
// `incoming` may be queued.
bool Outbox::make_room_locked(size_t incoming) {
  if (overflowed_) return false;
  if (queued_bytes_ + in_link_ + incoming <= budget_) return true;
  if (policy_ == SlowClientPolicy::drop_oldest) {
    for (; drop_from_ < queue_.size() && queued_bytes_ + in_link_ + incoming > budget_; ++drop_from_) {
      Entry& e = queue_[drop_from_];
      if (!e.batch) continue;  // a reply (never dropped) or already dropped
      queued_bytes_ -= entry_size(e);
      const uint64_t frames = e.batch->count(encoding_);
      e.batch.reset();
      ++holes_;
      dropped_total_ += frames;
      dropped_unreported_ += frames;
    }
    // Dropped entries stay until take(); a client that stays behind for long
    // between takes would pile them up, so squeeze them out now and then
    // (amortised: only once they are the larger half).
    if (holes_ > 64 && holes_ * 2 > queue_.size()) {
      const auto prefix_end = queue_.begin() + static_cast<std::ptrdiff_t>(drop_from_);
      const auto kept_end =
          std::remove_if(queue_.begin(), prefix_end, [](const Entry& e) { return !e.batch && e.bytes.empty(); });
      const size_t kept = static_cast<size_t>(kept_end - queue_.begin());
      queue_.erase(kept_end, prefix_end);
      drop_from_ = static_cast<uint32_t>(kept);
      holes_ = 0;
    }
    if (queued_bytes_ + in_link_ + incoming <= budget_) return true;
    // Even an empty queue cannot take it (replies or the socket hold the
    // budget): drop the newcomer instead, still counted.
    return false;
  }
  overflowed_ = true;
  return false;
}

Outbox::Offer Outbox::offer(const FrameBatchPtr& batch) {
  const size_t size = batch->bytes(encoding_).size();
  if (size == 0) return {};
  std::lock_guard<SpinLock> lock(mutex_);
  if (!make_room_locked(size)) {
    if (overflowed_) {
      Offer o;
      o.overflow = true;
      return o;
    }
    dropped_total_ += batch->count(encoding_);
    dropped_unreported_ += batch->count(encoding_);
    return scheduled_locked();  // the client still learns of the drop
  }
  queue_.push_back(Entry{batch, {}});
  queued_bytes_ += size;
  return scheduled_locked();
}

Outbox::Offer Outbox::offer_reply(std::string bytes) {
  std::lock_guard<SpinLock> lock(mutex_);
  if (overflowed_) {
    Offer o;
    o.overflow = true;
    return o;
  }
  size_t size = bytes.size();
  if (!make_room_locked(size) && overflowed_) {
    Offer o;
    o.overflow = true;
    return o;
  }
  // A reply is queued even past the budget under drop-oldest: the client
  // asked for it, and replies are bounded by the produce window.
  queued_bytes_ += size;
  queue_.push_back(Entry{nullptr, std::move(bytes)});
  return scheduled_locked();
}

Outbox::Taken Outbox::take(std::vector<OutItem>& out) {
  // The common case, `out` empty (the caller reuses one vector): swap, so
  // the queue gets out's spare capacity back and a steady stream costs no
  // allocation per flush on either side.
  const bool swapped = out.empty();
  std::vector<Entry> taken;
  Taken result;
  bool had_holes = false;
  {
    std::lock_guard<SpinLock> lock(mutex_);
    if (swapped) {
      out.swap(queue_);
    } else {
      taken.swap(queue_);
    }
    had_holes = holes_ > 0;
    drop_from_ = 0;
    holes_ = 0;
    result.dropped = dropped_unreported_;
    dropped_unreported_ = 0;
    in_link_ += queued_bytes_;  // until the I/O thread reports what the link really holds
    queued_bytes_ = 0;
    flush_pending_ = false;
  }
  if (!swapped) {
    for (auto& e : taken) out.push_back(std::move(e));
  }
  if (had_holes) {
    out.erase(std::remove_if(out.begin(), out.end(), [](const OutItem& e) { return !e.batch && e.bytes.empty(); }),
              out.end());
  }
  for (const auto& e : out) result.frames += e.batch ? e.batch->count(encoding_) : 1;
  return result;
}

Outbox::Taken Outbox::take(std::string& out) {
  std::vector<OutItem> items;
  Taken taken = take(items);
  for (const auto& i : items) out += i.batch ? i.batch->bytes(encoding_) : i.bytes;
  return taken;
}

void Outbox::set_in_link(size_t bytes) {
  std::lock_guard<SpinLock> lock(mutex_);
  in_link_ = bytes;
}

size_t Outbox::pending_bytes() const {
  std::lock_guard<SpinLock> lock(mutex_);
  return queued_bytes_ + in_link_;
}
uint64_t Outbox::dropped() const {
  std::lock_guard<SpinLock> lock(mutex_);
  return dropped_total_;
}
void Outbox::release_idle_memory() {
  std::lock_guard<SpinLock> lock(mutex_);
  if (queue_.empty() && queue_.capacity() > 0) std::vector<Entry>().swap(queue_);
}

bool Outbox::overflowed() const {
  std::lock_guard<SpinLock> lock(mutex_);
  return overflowed_;
}

}  // namespace kws
