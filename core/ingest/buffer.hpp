#pragma once
// The bounded buffer between a feed's reading thread and the producer. It
// never loses a message without counting it: block keeps everything and
// asks the reader to pause; drop-oldest and drop-newest make room or refuse
// and count each message they drop.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kws {

enum class WhenFull { block, drop_oldest, drop_newest };
std::optional<WhenFull> parse_when_full(std::string_view text);
std::string_view when_full_name(WhenFull w);

struct BufferLimits {
  uint64_t messages = 100000;
  uint64_t bytes = 64ull << 20;
  WhenFull when_full = WhenFull::block;
};

// --buffer-messages and --buffer-bytes bound everything kws ingest holds
// between the feed and Kafka: its own buffer and the producer's queue
// (librdkafka's, which keeps each record until Kafka confirms it and, at its
// defaults, holds another 100,000 messages up to 1 GiB). The producer gets
// a quarter of each bound, enough for full batches at full speed, and the
// buffer the rest. Where the user sized the producer's queue (-X
// queue.buffering.max.messages or .kbytes), that size stands and the buffer
// keeps the whole bound in that dimension.
struct HeldLimits {
  BufferLimits buffer;
  std::optional<uint64_t> producer_messages;  // queue.buffering.max.messages to set; none: leave it
  std::optional<uint64_t> producer_kbytes;    // queue.buffering.max.kbytes to set; none: leave it
};
HeldLimits split_held_limits(const BufferLimits& total, bool producer_messages_given, bool producer_kbytes_given);

// One message on its way to Kafka.
struct IngestItem {
  std::string payload;
  std::optional<std::string> key;
  int64_t received_ms = 0;    // wall clock, ms since the epoch
  uint64_t connection = 0;    // 1 for the first connection
  int64_t downtime_ms = -1;   // >= 0 on the first record of a reconnected connection
  bool binary = false;
  bool marker = false;        // a reconnect marker record, not feed data
  bool filtered = false;      // --dry-run only: --filter leaves it out; shown as such, never produced

  size_t weight() const { return payload.size() + (key ? key->size() : 0); }
};

class IngestBuffer {
 public:
  explicit IngestBuffer(BufferLimits limits);

  struct PushResult {
    bool accepted = true;  // false: dropped (drop-newest), counted
    bool pause = false;    // block: the buffer is full, stop reading until pop() says resume
  };
  // Reader side. `force`: never dropped and never drops another (markers).
  PushResult push(IngestItem&& item, bool force = false);

  // Producer side: moves up to `max` items to the end of `out`, waiting up to
  // `wait` for the first. Returns true exactly once after a pause, when the
  // buffer has drained to half its limits: the reader may resume.
  bool pop(std::vector<IngestItem>& out, size_t max, std::chrono::milliseconds wait);

  // Wakes a pop() that is waiting (for shutdown).
  void wake();

  struct Stats {
    uint64_t messages = 0;  // held now
    uint64_t bytes = 0;
    uint64_t dropped_oldest = 0;
    uint64_t dropped_newest = 0;
    uint64_t peak_messages = 0;
    bool paused = false;
  };
  Stats stats() const;
  const BufferLimits& limits() const { return limits_; }

 private:
  bool full_locked() const;

  BufferLimits limits_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<IngestItem> items_;
  uint64_t bytes_ = 0;
  uint64_t dropped_oldest_ = 0;
  uint64_t dropped_newest_ = 0;
  uint64_t peak_ = 0;
  bool paused_ = false;
  bool woken_ = false;
};

}  // namespace kws
