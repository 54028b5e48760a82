#include "core/remote/bridge_tail.hpp"

#include <nlohmann/json.hpp>

#include "core/envelope.hpp"
#include "core/remote/frame_fields.hpp"

namespace kws {

BridgeTail::BridgeTail(std::string where, BridgeTailPlan plan, Sink sink, LogSink& log)
    : BridgeLink(std::move(where), log), plan_(std::move(plan)), sink_(std::move(sink)) {
  for (const auto& t : plan_.topics) topics_[t];
  if (plan_.count == 0) done_ = true;
}

BridgeTailResult BridgeTail::run(const StopCheck& stop, const std::function<bool()>& idle) {
  constexpr auto kIdleEvery = std::chrono::milliseconds(100);
  std::unique_lock<std::mutex> lock(mutex_);
  check_done_locked();
  auto last_idle = std::chrono::steady_clock::now();
  while (!done_ && state_ == State::open) {
    if (stop && stop()) break;
    changed_.wait_for(lock, kIdleEvery);
    if (done_ || state_ != State::open) break;
    // Every frame wakes this loop; the idle work (a flush, a look at the
    // pipe) runs at most every 100 ms, not once per message.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_idle < kIdleEvery) continue;
    last_idle = now;
    if (idle && !idle()) {
      reader_gone_ = true;
      break;
    }
  }
  const bool still_open = state_ == State::open;
  lock.unlock();
  if (still_open) close("done", std::chrono::milliseconds(2000));
  lock.lock();
  return result_;
}

void BridgeTail::on_frame_locked(std::string& payload, bool binary) {
  if (done_ || reader_gone_) return;  // -c reached: what follows is not asked for
  if (binary) {
    // kws.v1 sends messages as text; a binary frame means another server.
    log_.warning("the bridge sent a binary frame (" + std::to_string(payload.size()) +
                 " bytes); not a kws.v1 frame, skipped");
    return;
  }
  // Control frames carry a "type"; messages (envelopes) never do. An error
  // frame has a "message" too, so the type decides, not the envelope codec.
  if (frame_has_type(payload)) {
    on_control_locked(payload);
    return;
  }
  DecodedEnvelope decoded = decode_envelope(payload);
  if (!decoded) {
    ++result_.errors;
    log_.error("the bridge sent a frame that is not a kws envelope (" + decoded.error + "); skipped");
    return;
  }
  const Message& m = *decoded.message;
  if (!sink_(m.view())) {
    reader_gone_ = true;
    done_ = true;
    return;
  }
  ++result_.messages;
  if (plan_.count >= 0 && static_cast<int64_t>(result_.messages) >= plan_.count) {
    done_ = true;
    return;
  }
  if (m.partition && m.offset) reached_locked(m.topic, *m.partition, *m.offset);
}

void BridgeTail::on_control_locked(const std::string& payload) {
  ControlFrame f = parse_control_frame(payload);
  if (f.type == "subscribed") {
    auto it = topics_.find(f.topic);
    if (it == topics_.end()) return;
    TopicProgress& t = it->second;
    t.subscribed = true;
    t.waiting.clear();
    for (size_t p = 0; p < f.end_offsets.size(); ++p) {
      const int64_t start = p < f.start_offsets.size() ? f.start_offsets[p] : 0;
      if (start < f.end_offsets[p]) t.waiting[static_cast<int32_t>(p)] = f.end_offsets[p] - 1;
    }
    log_.debug("subscribed to " + f.topic + " (" + std::to_string(f.end_offsets.size()) + " partition(s))");
    check_done_locked();
  } else if (f.type == "error") {
    ++result_.errors;
    log_.error(describe_error_frame(f.code, f.message, f.topic, f.id));
    // A subscription the bridge refused will deliver nothing: without it,
    // -e must not wait for it, and with no subscription left there is
    // nothing to follow.
    auto it = topics_.find(f.topic);
    if (it != topics_.end() && !it->second.subscribed) {
      topics_.erase(it);
      if (topics_.empty()) done_ = true;
      check_done_locked();
    }
  } else if (f.type == "unsubscribed") {
    // The bridge ended a subscription (a refreshed token no longer grants it).
    log_.warning("the bridge ended the subscription to " + f.topic);
    topics_.erase(f.topic);
    if (topics_.empty()) done_ = true;
    check_done_locked();
  } else if (f.type == "lost") {
    const uint64_t n = f.to >= f.from ? static_cast<uint64_t>(f.to - f.from + 1) : 0;
    result_.lost += n;
    log_.warning("offsets " + std::to_string(f.from) + " to " + std::to_string(f.to) + " of " + f.topic +
                 " [" + std::to_string(f.partition) +
                 "] were deleted (retention) before the bridge read them: " + std::to_string(n) +
                 " message(s) lost");
    reached_locked(f.topic, f.partition, f.to);
  } else if (f.type == "caught_up") {
    // Everything up to the reply's end offsets went through the bridge,
    // including what a filter kept there: the only way -e can know it.
    auto it = topics_.find(f.topic);
    if (it != topics_.end() && it->second.subscribed) {
      it->second.waiting.clear();
      check_done_locked();
    }
  } else if (f.type == "dropped") {
    result_.dropped += static_cast<uint64_t>(f.count);
    log_.warning("the bridge dropped " + std::to_string(f.count) +
                 " message(s): this client read too slowly (kws serve --slow-client drop-oldest)");
  } else if (f.type == "kafka") {
    if (f.reachable) {
      log_.note("the bridge reaches Kafka again");
    } else {
      log_.warning("the bridge cannot reach Kafka" + (f.message.empty() ? std::string() : ": " + f.message) +
                   "; messages resume when it is back");
    }
  } else if (f.type == "authenticated" || f.type == "ack") {
    // Not asked for by a reader; nothing to do.
  } else {
    log_.debug("the bridge sent a frame of unknown type '" + f.type + "'; ignored");
  }
}

void BridgeTail::reached_locked(const std::string& topic, int32_t partition, int64_t offset) {
  if (!plan_.exit_at_end) return;
  auto it = topics_.find(topic);
  if (it == topics_.end()) return;
  auto p = it->second.waiting.find(partition);
  if (p != it->second.waiting.end() && offset >= p->second) {
    it->second.waiting.erase(p);
    check_done_locked();
  }
}

void BridgeTail::check_done_locked() {
  if (!plan_.exit_at_end || done_) return;
  for (const auto& [name, t] : topics_) {
    if (!t.subscribed || !t.waiting.empty()) return;
  }
  done_ = true;
}

void BridgeTail::on_lost_locked(const std::string& why) {
  if (!done_ && !reader_gone_)
    result_.failure = "the connection to the bridge at " + where_ + " ended: " + why;
}

}  // namespace kws
