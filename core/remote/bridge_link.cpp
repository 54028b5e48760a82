#include "core/remote/bridge_link.hpp"

#include "core/util/error.hpp"

namespace kws {

namespace {
// How often a waiting command looks at its stop check.
constexpr std::chrono::milliseconds kTick{100};

std::string seconds_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}
}  // namespace

bool BridgeLink::open(std::chrono::milliseconds timeout, const StopCheck& stop) {
  if (!connection_) throw std::logic_error("BridgeLink::open without a connection");
  std::unique_lock<std::mutex> lock(mutex_);
  state_ = State::connecting;
  lock.unlock();
  connection_->connect();
  lock.lock();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (state_ == State::connecting) {
    if (stop && stop()) {
      lock.unlock();
      close("interrupted", std::chrono::milliseconds(1000));
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      lock.unlock();
      close("timed out", std::chrono::milliseconds(2000));
      throw Error("cannot connect to the bridge at " + where_ + ": no WebSocket connection within " +
                  seconds_text(timeout) + " (--timeout)");
    }
    changed_.wait_for(lock, kTick);
  }
  if (state_ == State::closed) throw Error("cannot connect to the bridge at " + where_ + ": " + end_why_);
  return true;
}

void BridgeLink::close(const std::string& why, std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (state_ == State::closed || state_ == State::idle) return;
  closing_ = true;
  lock.unlock();
  connection_->close(why);
  lock.lock();
  changed_.wait_for(lock, limit, [&] { return state_ == State::closed; });
}

void BridgeLink::on_feed_open() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_ == State::connecting) state_ = State::open;
  changed_.notify_all();
}

void BridgeLink::on_feed_message(std::string& payload, bool binary) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_ != State::open) return;
  on_frame_locked(payload, binary);
  changed_.notify_all();
}

void BridgeLink::on_feed_closed(FeedEnd end, FeedFailure, const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  const bool was_open = state_ == State::open;
  state_ = State::closed;
  end_why_ = why;
  if (end == FeedEnd::too_big) end_why_ += " (the connection cannot skip it)";
  if (was_open && !closing_) on_lost_locked(end_why_);
  changed_.notify_all();
}

std::string BridgeLink::describe_error_frame(const std::string& code, const std::string& message,
                                             const std::string& topic, const std::string& id) {
  std::string text = "the bridge answered " + (code.empty() ? std::string("an error") : code);
  if (!message.empty()) text += ": " + message;
  std::string about;
  if (!topic.empty()) about = "topic " + topic;
  if (!id.empty()) about += std::string(about.empty() ? "" : ", ") + "id " + id;
  if (!about.empty()) text += " (" + about + ")";
  return text;
}

}  // namespace kws
