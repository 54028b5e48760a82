#pragma once
// `kws send ws://...`: producing through a kws serve bridge, one produce
// frame (a kws envelope with an "id") per record, every one answered by an
// `ack` or an `error`.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/message_io.hpp"
#include "core/remote/bridge_link.hpp"

namespace kws {

struct BridgeSendLimits {
  // Frames sent and not answered yet. Below the bridge's 100 refusals that
  // close a session that keeps on (docs/PROTOCOL.md, "Produce rate"): all
  // of them may come back rate_limited at once.
  size_t max_in_flight = 64;
  size_t max_in_flight_bytes = 8u << 20;  // at least one frame, whatever its size
  // After a rate_limited refusal, nothing is sent until this long after the
  // last one (the bridge forgives a client that paused for a second); then
  // the refused frames go again.
  std::chrono::milliseconds rate_pause{1200};
};

struct BridgeAck {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  uint64_t line = 0;  // the caller's number for the record
};

// The produce frame for `record`: its envelope (docs/PROTOCOL.md) with
// "type":"produce" and the numeric `id`.
std::string produce_frame(const OutgoingRecord& record, uint64_t id);

class BridgeSend : public BridgeLink {
 public:
  // `on_ack` runs for each ack, on the connection's thread; may be empty.
  BridgeSend(std::string where, BridgeSendLimits limits, std::function<void(const BridgeAck&)> on_ack,
             LogSink& log);

  // After open(): sends one record, numbered `line` for messages. Waits while
  // the in-flight limits are reached or a rate_limited pause lasts. Returns
  // false when the connection ended (failure() says why) or `stop` said so.
  bool send(const OutgoingRecord& record, uint64_t line, const StopCheck& stop);

  // Waits until every sent frame was answered, the connection ended, or
  // `give_up` says so (checked about every 100 ms). Then closes.
  void finish(const std::function<bool()>& give_up);

  uint64_t sent() const { return sent_; }  // records sent (each once, retries not counted)
  uint64_t acked() const { return acked_; }
  uint64_t refused() const { return refused_; }  // answered with an error
  uint64_t unanswered() const { return sent_ - acked_ - refused_; }
  uint64_t other_errors() const { return other_errors_; }  // error frames without an id of ours
  uint64_t rate_limited() const { return rate_limited_; }  // refusals that were sent again
  const std::string& failure() const { return failure_; }

 protected:
  void on_frame_locked(std::string& payload, bool binary) override;
  void on_lost_locked(const std::string& why) override;

 private:
  struct Pending {
    uint64_t line = 0;
    std::string frame;  // kept for a resend after rate_limited
    bool refused_for_rate = false;
  };

  // Sends again what rate_limited refused, once the pause is over.
  void resend_locked();
  bool can_send_locked(size_t next_bytes) const;

  BridgeSendLimits limits_;
  std::function<void(const BridgeAck&)> on_ack_;
  std::map<uint64_t, Pending> pending_;
  size_t pending_bytes_ = 0;
  size_t retry_count_ = 0;  // pending_ entries refused for rate
  std::chrono::steady_clock::time_point paused_until_{};
  uint64_t next_id_ = 1;
  uint64_t sent_ = 0, acked_ = 0, refused_ = 0, other_errors_ = 0, rate_limited_ = 0;
  std::string failure_;
};

}  // namespace kws
