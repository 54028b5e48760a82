#include "core/session/produce_tracker.hpp"

#include "core/session/client_session.hpp"

namespace kws {

uint64_t ProduceTracker::track(std::weak_ptr<ClientSession> session, std::string request_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t token = next_++;
  waiting_.emplace(token, Waiting{std::move(session), std::move(request_id)});
  return token;
}

void ProduceTracker::forget(uint64_t token) {
  std::lock_guard<std::mutex> lock(mutex_);
  waiting_.erase(token);
}

void ProduceTracker::route(const Delivery& d) {
  Waiting w;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = waiting_.find(d.token);
    if (it == waiting_.end()) return;
    w = std::move(it->second);
    waiting_.erase(it);
  }
  if (auto s = w.session.lock()) s->on_delivery(d, w.request_id);
}

}  // namespace kws
