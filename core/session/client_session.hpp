#pragma once
// What the server asks of every client session, whatever protocol it speaks
// (the kws protocol and kafka-websocket in session.*, MQTT in core/mqtt/):
// one registry, one wake-up path, one tick and one delivery route for all
// of them. Each is a Subscriber to the hub and hears its link as LinkEvents.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/hub/hub.hpp"
#include "core/message_io.hpp"
#include "core/session/link.hpp"

namespace kws {

class ClientSession : public Subscriber, public LinkEvents, public std::enable_shared_from_this<ClientSession> {
 public:
  // On the I/O thread, when the host was asked to wake the session.
  virtual void on_wake() = 0;
  // On the I/O thread: writes what is queued now (`behind_pending`: at
  // shutdown, behind what the link holds).
  virtual void flush(bool behind_pending = false) = 0;
  // On the I/O thread, now and then: gives back buffers an idle session
  // kept from its last burst.
  virtual void release_idle_memory() = 0;
  // On the I/O thread, now and then: closes the session once its
  // principal's token has expired; true if it did.
  virtual bool close_if_expired(std::chrono::system_clock::time_point now) = 0;
  // On the I/O thread, every server tick (250 ms): a protocol's own timers
  // (MQTT's keep-alive). True if the session closed its link.
  virtual bool on_tick(std::chrono::steady_clock::time_point /*now*/) { return false; }
  // Whether the protocol decides when a silent client is gone (MQTT's keep
  // alive); if not, the server's idle timeout does.
  virtual bool keeps_own_time() const { return false; }
  // On the I/O thread, as the bridge shuts down: what is queued goes out
  // (and a protocol's farewell, MQTT 5's DISCONNECT), before the link closes.
  virtual void on_shutdown() { flush(/*behind_pending=*/true); }
  // From the producer's delivery thread (through the ProduceTracker).
  virtual void on_delivery(const Delivery& delivery, const std::string& request_id) = 0;

  virtual size_t pending_bytes() const = 0;
  virtual uint64_t dropped() const = 0;
};

}  // namespace kws
