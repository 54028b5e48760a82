#pragma once
// The WebSocket side of `kws serve`: accepting connections (listener.*),
// the HTTP routes (routes.*), the upgrade into a session (core/session/) on
// its own RFC 6455 transport (connection.*), and the server's chores: one
// tick over all connections for pings, idle and stalled clients, and the
// graceful shutdown. Asio stays behind this header.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/message_io.hpp"
#include "core/session/session.hpp"

namespace kws::mqtt {
class MqttShared;
}
#include "core/util/log.hpp"

namespace kws {

namespace ws {
class TlsContext;
}

// Checks a bearer token (a JWT) into a principal; thread-safe.
using TokenChecker = std::function<TokenCheck(std::string_view token)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port
  std::chrono::milliseconds ping_interval{20000};
  std::chrono::milliseconds idle_timeout{60000};
  // A client whose socket takes no byte for this long while bytes wait for
  // it is closed (it pongs, perhaps, but does not read).
  std::chrono::milliseconds write_timeout{30000};
  size_t max_connections = 10000;
  // Connections one peer IP address may hold at once, plain HTTP and
  // handshakes included (0: no cap); past it, 429 at accept. Loopback peers
  // only with limit_loopback (docs/SECURITY.md, "Limits").
  size_t max_connections_per_ip = 256;
  bool limit_loopback = false;
  // Origin patterns (core/ws/origin.hpp) a browser's upgrade must match;
  // empty: any. Requests without Origin are not checked.
  std::vector<std::string> allow_origins;
  // Topic name patterns clients may use at all (serve.topics_allow), on top
  // of a token's grants; empty: any.
  std::vector<std::string> topics_allow;
  // Set: the listener speaks only TLS (wss:// and https://).
  std::shared_ptr<const ws::TlsContext> tls;
  // Gateway security (docs/SECURITY.md). Set: every upgrade needs a valid
  // token, and so do the demo page (unless `public_page`) and /metrics.
  std::shared_ptr<const TokenChecker> check_token;
  bool public_page = false;
  // The TLS listener requires client certificates (mTLS). Browsers present
  // an installed one to any site's page, as they do cookies: without tokens
  // an upgrade that carries an Origin then needs --allow-origin.
  bool client_certificates = false;
  // Set: a second, plain-HTTP listener (port 0: any free one) answering
  // /metrics, /healthz and /readyz without a token, for a scraper on an
  // internal network.
  bool metrics_listener = false;
  std::string metrics_host = "127.0.0.1";
  uint16_t metrics_port = 0;
  // Set: a listener for MQTT over TCP (TLS when `tls` is set), next to
  // MQTT over WebSocket at /mqtt on the main one (docs/PROTOCOL.md, "MQTT").
  bool mqtt_listener = false;
  std::string mqtt_host = "127.0.0.1";
  uint16_t mqtt_port = 1883;
  SessionOptions session;
};

// What the server uses from the rest of the bridge; all must outlive it.
struct ServerServices {
  Hub* hub = nullptr;
  MessageSink* producer = nullptr;  // try_produce from the I/O thread
  std::function<std::unique_ptr<MessageSource>(const GroupRequest&)> open_group;
  std::function<bool()> kafka_ready;
  // Appended to /metrics (hub, Kafka). Per-topic series only for the
  // topics `visible` accepts (null: every topic): a token reads the
  // figures of the topics it may read, not the names of the others.
  using TopicVisible = std::function<bool(const std::string& topic)>;
  std::function<std::string(const TopicVisible& visible)> extra_metrics;
  std::string_view demo_page;
  // MQTT's shared state (client ids, retained messages); null: no MQTT.
  mqtt::MqttShared* mqtt = nullptr;
  LogSink* log = nullptr;
};

// The transport's own counts; the sessions' are in SessionCounters.
struct ServerCounters {
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> connections_closed{0};
  std::atomic<uint64_t> handshakes_refused{0};
  std::atomic<uint64_t> unauthenticated{0};  // requests answered 401
  std::atomic<uint64_t> forbidden{0};        // upgrades answered 403 for a topic the token does not grant
  std::atomic<uint64_t> token_expiry_closes{0};
  std::atomic<uint64_t> reloads{0};
  std::atomic<uint64_t> idle_closes{0};
  std::atomic<uint64_t> stalled_closes{0};
  std::atomic<uint64_t> per_ip_refusals{0};  // accepts refused: the address held serve.max_connections_per_ip
  std::atomic<uint64_t> origin_refusals{0};  // upgrades refused 403: Origin matched no serve.allow_origin
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
  std::string metrics_address() const;  // "" without ServerOptions::metrics_listen
  std::string mqtt_address() const;     // "" without ServerOptions::mqtt_listener
  bool tls() const;  // wss:// and https:// rather than ws:// and http://
  // The connection cap in force: --max-connections, or less when the
  // open-file limit allows fewer (said on the log at start).
  size_t max_connections() const;

  // Runs the I/O thread until finish() completes; returns then.
  void run();

  // Graceful shutdown, thread-safe: stop accepting now.
  void stop_accepting();
  // Then: every session handles what its client already sent and stops
  // reading. Ready when the I/O thread has done so.
  std::future<void> stop_reading();
  // Close every session with 1001 (MQTT 5: DISCONNECT 0x8B) after writing what it has queued, then
  // let run() return once they are closed (or after `grace`).
  void finish(std::chrono::milliseconds grace);

  // Thread-safe: new connections use this certificate (when the server
  // speaks TLS) and token checker from now on; open sessions keep theirs.
  void reload(std::shared_ptr<const ws::TlsContext> tls, std::shared_ptr<const TokenChecker> check_token);

  // Whether Kafka answers the bridge, from its periodic check (thread-safe).
  // A change is told to every session; a session that opens while Kafka
  // does not answer is told at once.
  void set_kafka_reachable(bool reachable, const std::string& why);

  // For the producer's delivery thread: routes a delivery to its session.
  void on_delivery(const Delivery& delivery);

  const SessionCounters& session_counters() const;
  const ServerCounters& counters() const;
  size_t open_connections() const;
  // Messages dropped for slow clients, closed sessions and open ones.
  uint64_t dropped_total() const;
  std::string metrics_text() const;

  // Seams for driving whole connections on the caller's thread, without a
  // listener or the tick's timer (tests/fuzz/fuzz_connection.cpp):
  // Serves a connected stream socket as if the listener had accepted it;
  // the server owns `fd` from here on. False (and `fd` closed) when the
  // socket cannot be used or the server is full.
  bool serve_descriptor(int fd);
  // Runs the I/O handlers that are ready now, without waiting for more;
  // returns how many ran. poll_one() runs at most one.
  size_t poll();
  size_t poll_one();
  // One round of what run() does every 250 ms: pings when due, idle and
  // stalled clients closed, spare buffers released.
  void run_chores();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kws
