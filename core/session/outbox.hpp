#pragma once
// What waits to be written to one client: shared message batches and the
// session's own replies, in order, under a byte budget that counts what the
// link still holds too. Filled from any thread (the hub, group readers, the
// producer's deliveries), drained by the link's I/O thread.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/hub/frame.hpp"
#include "core/session/link.hpp"
#include "core/util/spin_lock.hpp"

namespace kws {

// What happens to a client whose pending bytes reach its budget: closed,
// its oldest messages dropped, or (tickers) every message but the newest
// per key replaced, then the oldest dropped if that is still too much.
enum class SlowClientPolicy { close, drop_oldest, latest_per_key };

class Outbox {
 public:
  Outbox(size_t budget, SlowClientPolicy policy, Encoding encoding)
      : budget_(budget), policy_(policy), encoding_(encoding) {}

  struct Offer {
    bool schedule_flush = false;  // the caller must arrange one take() (none is pending yet)
    bool overflow = false;        // policy close: the budget is exceeded; close the client
  };

  // Queues a batch of message frames (the encoding's bytes, shared, not
  // copied). Drop-oldest drops whole batches, the oldest first.
  Offer offer(const FrameBatchPtr& batch) { return offer(batch, encoding_); }
  // The same in an encoding of its own (a session mixing two).
  Offer offer(const FrameBatchPtr& batch, Encoding encoding);
  // Queues a reply (ack, error, subscribed...): never dropped, but counted.
  Offer offer_reply(std::string bytes);

  struct Taken {
    size_t frames = 0;     // message and reply frames moved
    uint64_t dropped = 0;     // messages dropped since the last take (drop-oldest)
    uint64_t conflated = 0;   // messages replaced by a newer one of their key since the last take
  };
  // Moves everything queued to `out`, in order. Pass `out` empty and reuse
  // it: then no allocation per take. Clears the pending-flush mark: the next
  // offer schedules again.
  Taken take(std::vector<OutItem>& out);
  // The same, as bytes back to back (tests, and writers without gather I/O).
  Taken take(std::string& out);

  // Bytes the link holds for this client beyond the outbox (observed by the
  // I/O thread after each write); they count against the budget.
  void set_in_link(size_t bytes);

  size_t pending_bytes() const;
  uint64_t dropped() const;
  bool overflowed() const;
  // Frees the queue's spare capacity when nothing is queued (an idle
  // client keeps no buffer from its last burst).
  void release_idle_memory();

 private:
  using Entry = OutItem;  // batch null and bytes empty: a dropped entry
  size_t entry_size(const Entry& e) const { return e.batch ? e.batch->bytes(e.encoding).size() : e.bytes.size(); }
  bool make_room_locked(size_t incoming);
  // latest-per-key: the queued messages become one batch per topic holding
  // only the newest of each key (a batch of its own: this client's bytes
  // are no longer the shared ones), after the replies.
  void conflate_locked();
  Offer scheduled_locked();

  mutable SpinLock mutex_;
  const size_t budget_;
  const SlowClientPolicy policy_;
  const Encoding encoding_;
  // A vector, not a std::deque: an empty libstdc++ deque already holds a
  // 512-byte block and its map, and most of an idle bridge's outboxes are
  // empty (docs/BENCHMARKS.md, memory per connection). Dropped entries stay
  // in place, emptied, until take().
  std::vector<Entry> queue_;
  uint32_t drop_from_ = 0;  // entries before it are replies or dropped: drop-oldest starts here
  uint32_t holes_ = 0;      // dropped entries still in queue_
  size_t queued_bytes_ = 0;
  size_t in_link_ = 0;
  uint64_t dropped_total_ = 0;
  uint64_t dropped_unreported_ = 0;
  uint64_t conflated_unreported_ = 0;
  bool flush_pending_ = false;
  bool overflowed_ = false;
};

}  // namespace kws
