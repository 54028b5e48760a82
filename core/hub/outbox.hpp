#pragma once
// What waits to be written to one client: shared message frames and the
// session's own replies, in order, under a byte budget that kws counts itself
// (websocketpp's own count leaves out the write in flight). Filled from any
// thread, drained by the connection's I/O thread in one coalesced write.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/hub/frame.hpp"

namespace kws {

enum class SlowClientPolicy { close, drop_oldest };

class Outbox {
 public:
  Outbox(size_t budget, SlowClientPolicy policy, WireFormat format)
      : budget_(budget), policy_(policy), format_(format) {}

  struct Offer {
    bool schedule_flush = false;  // the caller must arrange one take() (none is pending yet)
    bool overflow = false;        // policy close: the budget is exceeded; close the client
  };

  // Queues a batch of message frames (the format's bytes, shared, not
  // copied). Frames without bytes in this format (a binary frame for a topic
  // over 255 bytes) are skipped. Drop-oldest drops whole batches.
  Offer offer(const FrameBatchPtr& batch);
  Offer offer(const FramePtr* frames, size_t count) { return offer(make_batch(frames, count)); }
  // Queues a reply (ack, error, subscribed...): never dropped, but counted.
  Offer offer_reply(std::string ws_frame);

  // What take() hands out, in order: a shared batch or a reply frame.
  struct Item {
    FrameBatchPtr batch;  // write batch->bytes(format())
    std::string reply;    // when batch is null: a complete frame
  };
  // Moves everything queued to `out` (a "dropped" notice first when
  // messages were dropped since the last take) and returns how many message
  // and reply frames it moved (the notice not counted). Pass `out` empty and
  // reuse it: then no allocation per take.
  // Clears the pending-flush mark: the next offer schedules again.
  size_t take(std::vector<Item>& out);
  // The same, as bytes back to back (tests, and writers without gather I/O).
  size_t take(std::string& out);

  // Bytes the socket layer holds for this client beyond the outbox (observed
  // by the I/O thread after each write); they count against the budget.
  void set_in_socket(size_t bytes);

  size_t pending_bytes() const;
  uint64_t dropped() const;
  bool overflowed() const;
  WireFormat format() const { return format_; }

 private:
  using Entry = Item;  // batch null and reply empty: a dropped entry
  size_t entry_size(const Entry& e) const { return e.batch ? e.batch->bytes(format_).size() : e.reply.size(); }
  bool make_room_locked(size_t incoming);
  Offer scheduled_locked();

  mutable std::mutex mutex_;
  const size_t budget_;
  const SlowClientPolicy policy_;
  const WireFormat format_;
  // A vector, not a std::deque: an empty libstdc++ deque already holds a
  // 512-byte block and its map, and most of an idle bridge's outboxes are
  // empty (docs/BENCHMARKS.md, memory per connection). Dropped entries stay
  // in place, emptied, until take().
  std::vector<Entry> queue_;
  size_t drop_from_ = 0;  // entries before it are replies or dropped: drop-oldest starts here
  size_t holes_ = 0;      // dropped entries still in queue_
  size_t queued_bytes_ = 0;
  size_t in_socket_ = 0;
  uint64_t dropped_total_ = 0;
  uint64_t dropped_unreported_ = 0;
  bool flush_pending_ = false;
  bool overflowed_ = false;
};

}  // namespace kws
