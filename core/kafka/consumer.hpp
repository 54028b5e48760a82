#pragma once
// Reading topics: explicit partition assignment (no group, nothing
// committed) or membership of a consumer group that commits what was
// consumed. `kws tail` drives it with run(); servers call poll_batch().
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/kafka/context.hpp"
#include "core/message_io.hpp"
#include "core/offset_spec.hpp"

namespace kws {

struct ConsumerPlan {
  std::vector<std::string> topics;
  std::optional<int32_t> partition;  // only this partition of each topic
  OffsetSpec start;
  // Whether `start` was chosen by the user; with a group, only an explicit
  // start overrides the group's committed offsets.
  bool start_explicit = false;
  std::string group;                 // empty: no group, nothing committed
  bool want_end_events = false;      // report partition ends (needed for exit-at-end)
  bool want_headers = false;         // fill MessageView::headers
  // With a group: offsets are stored only through store_offset (what the
  // caller really handed on), not when on_message returns.
  bool store_when_told = false;
};

// What run() stops on, besides the caller's own stop check.
struct RunLimits {
  bool exit_at_end = false;      // once every assigned partition reached its end
  int64_t max_messages = -1;     // after this many; -1: no limit
};

enum class RunStop { message_limit, end_of_partitions, interrupted, sink_closed };

class Consumer : public MessageSource {
 public:
  // Connects, checks the topics exist and assigns (or subscribes). Throws kws::Error.
  Consumer(const KafkaSettings& settings, ConsumerPlan plan, const KafkaContext& context);
  ~Consumer() override;
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // MessageSource. With a group, a message's offset is stored for commit once
  // on_message returned true for it.
  size_t poll_batch(std::chrono::milliseconds wait, size_t max,
                    const std::function<bool(const MessageView&)>& on_message,
                    const std::function<void(const PartitionEvent&)>& on_event) override;

  // Messages skipped because Kafka no longer had them when this consumer got
  // there (each skip is also logged as a warning and reported as a `lost`
  // PartitionEvent).
  uint64_t lost_messages() const;

  void store_offset(std::string_view topic, int32_t partition, int64_t next_offset) override;
  bool pause_all(bool pause) override;

  // Hands messages to `sink` until a limit, the context's stop check, or
  // `sink` returning false (its reader went away). `idle` is called whenever
  // no message arrived for a moment (to flush output); it returns false when
  // the reader went away meanwhile.
  RunStop run(const std::function<bool(const MessageView&)>& sink, const RunLimits& limits,
              const std::function<bool()>& idle);

  // Leaves the group and commits (when in one). Called by the destructor too.
  void close();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kws
