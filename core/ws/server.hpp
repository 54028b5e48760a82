#pragma once
// The WebSocket side of `kws serve`: its own transport (connection.hpp) on
// Asio stays behind this header.
// Each connection is a session: a hub Subscriber that drains its Outbox in
// one write per wake-up, decodes client frames (docs/PROTOCOL.md) into
// produce requests, control requests and errors, and never lets one bad frame
// end the connection.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/hub/hub.hpp"
#include "core/hub/outbox.hpp"
#include "core/message_io.hpp"
#include "core/offset_spec.hpp"
#include "core/util/log.hpp"

namespace kws {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port
  size_t client_buffer = 4 << 20;
  SlowClientPolicy slow_client = SlowClientPolicy::close;
  std::chrono::milliseconds ping_interval{20000};
  std::chrono::milliseconds idle_timeout{60000};
  size_t max_frame = 1 << 20;
  size_t max_connections = 10000;
  size_t max_pending_produce = 1000;  // per session: frames waiting for Kafka
  size_t max_group_sessions = 64;
};

// A group session's reader: what the bridge opens for `group.id` sessions.
struct GroupRequest {
  std::string group;
  std::vector<std::string> topics;
  OffsetSpec start;
  bool start_explicit = false;
};

// What the server uses from the rest of the bridge; all must outlive it.
struct ServerServices {
  Hub* hub = nullptr;
  MessageSink* producer = nullptr;  // try_produce from I/O threads
  std::function<std::unique_ptr<MessageSource>(const GroupRequest&)> open_group;
  std::function<bool()> kafka_ready;
  std::function<std::string()> extra_metrics;  // appended to /metrics (hub, Kafka)
  std::string_view demo_page;
  LogSink* log = nullptr;
};

struct ServerCounters {
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> connections_closed{0};
  std::atomic<uint64_t> handshakes_refused{0};
  std::atomic<uint64_t> frames_in{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> frames_out{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> produced{0};       // acknowledged by Kafka
  std::atomic<uint64_t> produce_errors{0};
  std::atomic<uint64_t> client_errors{0};  // error frames sent for bad client input
  std::atomic<uint64_t> dropped{0};        // messages dropped for slow clients (drop-oldest)
  std::atomic<uint64_t> slow_closes{0};    // connections closed for being slow
  std::atomic<uint64_t> idle_closes{0};
  std::atomic<uint64_t> paused_reads{0};   // times a socket stopped being read because Kafka's queue was full
};

class Server {
 public:
  Server(ServerOptions options, ServerServices services);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds; throws kws::Error when it cannot. Then address() is known.
  void listen();
  std::string address() const;  // "HOST:PORT"

  // Runs the I/O threads until finish() completes; returns then.
  void run();

  // Graceful shutdown, thread-safe: stop accepting now.
  void stop_accepting();
  // Then: every session handles what its client already sent and stops
  // reading. Ready when the I/O thread has done so.
  std::future<void> stop_reading();
  // Close every session with 1001 after writing what it has queued, then
  // let run() return once they are closed (or after `grace`).
  void finish(std::chrono::milliseconds grace);

  // For the producer's delivery thread: routes a delivery to its session.
  void on_delivery(const Delivery& delivery);

  const ServerCounters& counters() const;
  size_t open_connections() const;
  std::string metrics_text() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kws
