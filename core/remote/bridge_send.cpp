#include "core/remote/bridge_send.hpp"

#include "core/envelope.hpp"
#include "core/remote/frame_fields.hpp"

namespace kws {

std::string produce_frame(const OutgoingRecord& record, uint64_t id) {
  MessageView view;
  view.topic = record.topic;
  view.partition = record.partition ? *record.partition : -1;  // -1: the partitioner chooses
  if (record.timestamp_ms > 0) {
    view.timestamp_ms = record.timestamp_ms;
    view.timestamp_type = TimestampType::create_time;  // kept by the bridge
  }
  view.key = record.key;
  view.value = record.value;
  if (record.headers) {
    view.headers.reserve(record.headers->size());
    for (const auto& h : *record.headers) {
      HeaderView hv;
      hv.name = h.name;
      if (h.value) hv.value = std::string_view(*h.value);
      view.headers.push_back(hv);
    }
  }
  std::string envelope;
  append_envelope_json(envelope, view);
  // The envelope is one object: put the type and id first.
  std::string frame = "{\"type\":\"produce\",\"id\":" + std::to_string(id);
  if (envelope.size() > 2) frame += ',';
  frame.append(envelope, 1, std::string::npos);
  return frame;
}

BridgeSend::BridgeSend(std::string where, BridgeSendLimits limits,
                       std::function<void(const BridgeAck&)> on_ack, LogSink& log)
    : BridgeLink(std::move(where), log), limits_(limits), on_ack_(std::move(on_ack)) {}

bool BridgeSend::can_send_locked(size_t next_bytes) const {
  if (std::chrono::steady_clock::now() < paused_until_ || retry_count_ > 0) return false;
  if (pending_.empty()) return true;
  return pending_.size() < limits_.max_in_flight &&
         pending_bytes_ + next_bytes <= limits_.max_in_flight_bytes;
}

bool BridgeSend::send(const OutgoingRecord& record, uint64_t line, const StopCheck& stop) {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t id = next_id_++;
  std::string frame = produce_frame(record, id);
  for (;;) {
    if (state_ != State::open) return false;
    resend_locked();
    if (can_send_locked(frame.size())) break;
    if (stop && stop()) return false;
    changed_.wait_for(lock, std::chrono::milliseconds(100));
  }
  Pending& p = pending_[id];
  p.line = line;
  p.frame = std::move(frame);
  pending_bytes_ += p.frame.size();
  ++sent_;
  // Sent under the lock, so an answer cannot come before the entry exists
  // (send_text only queues the frame for the connection's thread).
  connection_->send_text(p.frame);
  return true;
}

void BridgeSend::resend_locked() {
  if (retry_count_ == 0 || std::chrono::steady_clock::now() < paused_until_) return;
  for (auto& [id, p] : pending_) {
    if (!p.refused_for_rate) continue;
    p.refused_for_rate = false;
    connection_->send_text(p.frame);
  }
  retry_count_ = 0;
}

void BridgeSend::finish(const std::function<bool()>& give_up) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (state_ == State::open && !pending_.empty()) {
    if (give_up && give_up()) break;
    resend_locked();
    changed_.wait_for(lock, std::chrono::milliseconds(100));
  }
  const bool still_open = state_ == State::open;
  lock.unlock();
  if (still_open) close("done");
}

void BridgeSend::on_frame_locked(std::string& payload, bool binary) {
  if (binary || !frame_has_type(payload)) {
    // A produce-only session subscribes to nothing; a message means the URL
    // had topics=, which kws send refuses. Nothing to do with it.
    return;
  }
  ControlFrame f = parse_control_frame(payload);
  if (f.type != "ack" && f.type != "error") {
    if (f.type == "kafka") {
      if (f.reachable) {
        log_.note("the bridge reaches Kafka again");
      } else {
        log_.warning("the bridge cannot reach Kafka" +
                     (f.message.empty() ? std::string() : ": " + f.message));
      }
    }
    return;
  }
  auto it = f.id_is_number ? pending_.find(f.number_id) : pending_.end();
  if (it == pending_.end()) {
    if (f.type == "error") {
      ++other_errors_;
      log_.error(describe_error_frame(f.code, f.message, f.topic, f.id));
    }
    return;
  }
  Pending& p = it->second;
  if (f.type == "ack") {
    ++acked_;
    if (on_ack_) on_ack_(BridgeAck{f.topic, f.partition, f.offset, p.line});
  } else if (f.code == "rate_limited") {
    // Not produced: sent again after a pause, so the bridge forgives us.
    if (rate_limited_++ == 0) {
      log_.note("the bridge limits this session's produce rate (" + f.message +
                "); refused messages are sent again after a pause, so sending is slower");
    }
    if (!p.refused_for_rate) {
      p.refused_for_rate = true;
      ++retry_count_;
    }
    paused_until_ = std::chrono::steady_clock::now() + limits_.rate_pause;
    return;
  } else {
    ++refused_;
    log_.error("input line " + std::to_string(p.line) + ": " +
               describe_error_frame(f.code, f.message, f.topic, ""));
  }
  pending_bytes_ -= p.frame.size();
  pending_.erase(it);
}

void BridgeSend::on_lost_locked(const std::string& why) {
  failure_ = "the connection to the bridge at " + where_ + " ended: " + why;
}

}  // namespace kws
