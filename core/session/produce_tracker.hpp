#pragma once
// Which session waits for which produced record: the token handed to
// MessageSink::try_produce comes back in its Delivery, on the producer's
// delivery thread, and is routed here to its session (if it is still there).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/message_io.hpp"

namespace kws {

class ClientSession;

class ProduceTracker {
 public:
  // A token for one record of `session`; `request_id` is echoed in the ack.
  uint64_t track(std::weak_ptr<ClientSession> session, std::string request_id);
  // The record was not queued after all.
  void forget(uint64_t token);
  // From the delivery thread: hands the delivery to its session.
  void route(const Delivery& delivery);

 private:
  struct Waiting {
    std::weak_ptr<ClientSession> session;
    std::string request_id;
  };
  std::mutex mutex_;
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, Waiting> waiting_;
};

}  // namespace kws
