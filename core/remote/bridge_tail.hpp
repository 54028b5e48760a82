#pragma once
// `kws tail ws://...`: reading through a kws serve bridge as a browser does
// (subprotocol kws.v1), with kws tail's -c and -e.
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/message.hpp"
#include "core/remote/bridge_link.hpp"

namespace kws {

struct BridgeTailPlan {
  std::vector<std::string> topics;  // what the URL subscribes to
  bool exit_at_end = false;         // -e: stop at the `subscribed` replies' end_offsets
  int64_t count = -1;               // -c: stop after this many messages (-1: no limit)
};

struct BridgeTailResult {
  uint64_t messages = 0;  // handed to the sink
  uint64_t errors = 0;    // `error` frames (each reported on the log)
  uint64_t lost = 0;      // offsets `lost` frames reported
  uint64_t dropped = 0;   // messages `dropped` frames reported
  std::string failure;    // set when the connection ended before the run did
};

class BridgeTail : public BridgeLink {
 public:
  // Called for every message, on the connection's thread, never while the
  // `idle` of run() runs. Returns false when the reader went away.
  using Sink = std::function<bool(const MessageView&)>;

  BridgeTail(std::string where, BridgeTailPlan plan, Sink sink, LogSink& log);

  // After open(): reads until -c or -e is satisfied, the sink's reader went
  // away, every subscription failed, `stop` says so, or the connection ends
  // (then `failure` says why). `idle` runs about every 100 ms, busy or quiet
  // (flushing output; false ends the run as a gone reader does). Closes the
  // connection before returning.
  BridgeTailResult run(const StopCheck& stop, const std::function<bool()>& idle);

 protected:
  void on_frame_locked(std::string& payload, bool binary) override;
  void on_lost_locked(const std::string& why) override;

 private:
  // A topic's state for -e: partitions whose end is not reached yet, each
  // with the offset it must reach (end_offsets[p] - 1).
  struct TopicProgress {
    bool subscribed = false;
    std::map<int32_t, int64_t> waiting;  // partition -> last offset to deliver
  };

  void on_control_locked(const std::string& payload);
  void reached_locked(const std::string& topic, int32_t partition, int64_t offset);
  void check_done_locked();

  BridgeTailPlan plan_;
  Sink sink_;
  std::map<std::string, TopicProgress> topics_;  // the subscriptions still alive
  BridgeTailResult result_;
  bool done_ = false;  // the run has what it wanted (or cannot get more)
  bool reader_gone_ = false;
};

}  // namespace kws
