#include "core/session/outbox.hpp"

#include <algorithm>
#include <map>
#include <optional>

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
  if (policy_ == SlowClientPolicy::latest_per_key) {
    conflate_locked();
    if (queued_bytes_ + in_link_ + incoming <= budget_) return true;
  }
  if (policy_ != SlowClientPolicy::close) {
    for (; drop_from_ < queue_.size() && queued_bytes_ + in_link_ + incoming > budget_; ++drop_from_) {
      Entry& e = queue_[drop_from_];
      if (!e.batch) continue;  // a reply (never dropped) or already dropped
      queued_bytes_ -= entry_size(e);
      const uint64_t frames = e.batch->count(e.encoding);
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

void Outbox::conflate_locked() {
  struct Kept {
    size_t order;  // of the frame's last appearance
    FramePtr frame;
  };
  struct Topic {
    std::shared_ptr<const std::string> name;
    Encoding encoding = Encoding::kafka_text;
    std::map<std::optional<std::string>, Kept> keys;
  };
  // Per topic, per key (no key is a key of its own), the newest frame.
  std::map<std::string, Topic> newest;
  std::vector<Entry> replies;
  uint64_t before = 0;
  size_t order = 0;
  for (auto& e : queue_) {
    if (!e.batch) {
      if (!e.bytes.empty()) replies.push_back(std::move(e));
      continue;
    }
    Topic& t = newest[e.batch->topic()];
    if (!t.name) {
      t.name = e.batch->topic_name();
      t.encoding = e.encoding;
    }
    for (const auto& f : e.batch->frames()) t.keys[f->key] = Kept{order++, f};
    before += e.batch->count(e.encoding);
  }
  queue_ = std::move(replies);
  queued_bytes_ = 0;
  for (const auto& e : queue_) queued_bytes_ += e.bytes.size();
  // More keys than the budget holds: the oldest of the newest go first,
  // message by message (a batch is too coarse a unit here).
  std::vector<std::pair<const Topic*, Kept>> kept;
  for (auto& [name, topic] : newest) {
    for (auto& [key, k] : topic.keys) kept.emplace_back(&topic, std::move(k));
  }
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.second.order < b.second.order; });
  const size_t room = budget_ > in_link_ + queued_bytes_ ? budget_ - in_link_ - queued_bytes_ : 0;
  size_t estimate = 0;
  for (const auto& k : kept) estimate += k.second.frame->wire_estimate();
  size_t first = 0;
  uint64_t dropped = 0;
  while (first < kept.size() && estimate > room) {
    estimate -= kept[first].second.frame->wire_estimate();
    ++first;
    ++dropped;
  }
  uint64_t after = 0;
  for (auto& [name, topic] : newest) {
    std::vector<FramePtr> frames;
    for (size_t i = first; i < kept.size(); ++i) {
      if (kept[i].first == &topic) frames.push_back(kept[i].second.frame);
    }
    for (auto& b : make_batches(topic.name, frames, 16 << 10)) {
      const Entry entry{std::move(b), {}, topic.encoding};
      const size_t size = entry_size(entry);
      if (size == 0) continue;
      after += entry.batch->count(entry.encoding);
      queued_bytes_ += size;
      queue_.push_back(entry);
    }
  }
  dropped_total_ += dropped;
  dropped_unreported_ += dropped;
  conflated_unreported_ += before > after + dropped ? before - after - dropped : 0;
  // Replies first, then messages: drop-oldest (if still over) starts at them.
  drop_from_ = 0;
  holes_ = 0;
}

Outbox::Offer Outbox::offer(const FrameBatchPtr& batch, Encoding encoding) {
  const size_t size = batch->bytes(encoding).size();
  if (size == 0) return {};
  std::lock_guard<SpinLock> lock(mutex_);
  if (policy_ == SlowClientPolicy::latest_per_key && queued_bytes_ + in_link_ + size > budget_) {
    // The newcomer joins the conflation: its keys replace older messages.
    queue_.push_back(Entry{batch, {}, encoding});
    queued_bytes_ += size;
    conflate_locked();
    // Even conflated it may not fit: then the newest per key stays as far
    // as the budget goes, the oldest first out (counted as dropped).
    make_room_locked(0);
    return scheduled_locked();
  }
  if (!make_room_locked(size)) {
    if (overflowed_) {
      Offer o;
      o.overflow = true;
      return o;
    }
    dropped_total_ += batch->count(encoding);
    dropped_unreported_ += batch->count(encoding);
    return scheduled_locked();  // the client still learns of the drop
  }
  queue_.push_back(Entry{batch, {}, encoding});
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
    result.conflated = conflated_unreported_;
    conflated_unreported_ = 0;
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
  for (const auto& e : out) result.frames += e.batch ? e.batch->count(e.encoding) : 1;
  return result;
}

Outbox::Taken Outbox::take(std::string& out) {
  std::vector<OutItem> items;
  Taken taken = take(items);
  for (const auto& i : items) out += i.batch ? i.batch->bytes(i.encoding) : i.bytes;
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
