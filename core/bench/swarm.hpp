#pragma once
// Many WebSocket clients on one epoll thread, with no WebSocket library: the
// bench's clients must cost the bridge under test as little CPU as possible
// (the machine is shared). Each client does the RFC 6455 handshake, reads
// unmasked server frames, answers pings, and counts the messages of this
// run: unique per client (a bitmap per client, so duplicates are exact),
// and their latency from the stamp the producer wrote into each message.
// For wss:// each client runs OpenSSL over its own non-blocking socket
// (SSL_set_fd; WANT_READ/WANT_WRITE are waited for with the same epoll), so
// every client decrypts its own records, as a browser would.
// With `mqtt` the clients speak MQTT 3.1.1 instead (mqtt_wire.hpp), in
// binary WebSocket frames or, for mqtt://, straight over TCP: CONNECT and
// SUBSCRIBE, then a stream of PUBLISH packets whose payloads carry the
// stamp; or, as publishers, QoS 1 PUBLISHes with a window of packet ids in
// flight, each PUBACK timed and answered with the next PUBLISH.
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/bench/histogram.hpp"
#include "core/bench/mqtt_wire.hpp"
#include "core/bench/wire.hpp"
#include "core/util/log.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX and SSL, kept out of this header
struct ssl_st;

namespace kws::bench {

struct SwarmOptions {
  WsUrl url;
  std::string target;                   // request target: path and query
  std::string subprotocol = "kafka-text";
  size_t clients = 1;
  std::string tag;                      // this run's stamp tag (wire.hpp)
  uint64_t planned_messages = 0;        // seq numbers counted: [0, planned)
  size_t max_connecting = 256;          // handshakes in flight at once (the server's accept backlog)
  // --key-filters: when not empty, client i asks for targets[i % size]
  // (each with its own filter) and should receive exactly the messages whose
  // seq % size == i % size (the producer keys them round-robin); any other
  // message it gets counts as misdelivered.
  std::vector<std::string> targets;
  // wss:// only: trust the CA certificates in this PEM file instead of the
  // system store; or check no certificate and no host name at all.
  std::string ca_file;
  bool insecure = false;
  // MQTT 3.1.1 instead of kafka-text/kafka-binary (subprotocol "mqtt"); with
  // url.raw_mqtt over plain TCP, no WebSocket. Each client CONNECTs (clean
  // session, keep-alive 0: an idle client sends nothing) with client id
  // "kwsb-<tag>-<index>", then SUBSCRIBEs to mqtt_filter at QoS 0 (none when
  // empty); CONNACK, or the SUBACK, makes it subscribed.
  bool mqtt = false;
  std::string mqtt_filter;
  // MQTT publishers: once start_publishing() is called, each client keeps
  // publish_window QoS 1 PUBLISHes of publish_size bytes (stamped) in
  // flight on MQTT topic "<publish_topic>/<index>".
  size_t publish_window = 0;
  std::string publish_topic;
  size_t publish_size = 150;
};

struct SwarmCounters {
  uint64_t stamped = 0;           // frames with this run's stamp, duplicates included
  uint64_t unique = 0;            // distinct (client, seq) pairs
  uint64_t duplicates = 0;
  uint64_t misdelivered = 0;      // --key-filters: a message of another client's key
  uint64_t foreign = 0;           // data frames without this run's stamp (other data on the topic)
  uint64_t error_frames = 0;      // {"type":"error"} from a kws bridge; MQTT: a refused CONNECT or SUBSCRIBE
  std::string first_error_frame;
  uint64_t dropped_reported = 0;  // sum of {"type":"dropped","count":N}
  uint64_t closed_by_server = 0;  // close frames or EOF not asked for
  std::string first_close;
  uint64_t pings = 0;
  uint64_t first_rx_ns = 0;       // receipt of the first and last stamped frame
  uint64_t last_rx_ns = 0;
  uint64_t reads = 0;
  uint64_t read_bytes = 0;
  // MQTT publishers.
  uint64_t published = 0;         // QoS 1 PUBLISHes sent
  uint64_t acked = 0;             // PUBACKs for them
  uint64_t unexpected_acks = 0;   // PUBACKs of a packet id not in flight
  uint64_t first_ack_ns = 0;      // receipt of the first and last PUBACK
  uint64_t last_ack_ns = 0;
};

uint64_t monotonic_ns();

// Sends the front of `pending` as far as the socket takes it now, and
// erases what went: with `ssl`, through SSL_write, which must allow partial
// writes and a moving buffer (the swarm's context does), since a write
// OpenSSL wants retried comes back from `pending` grown or moved; without,
// with send(2) on `fd`. Returns false when the connection failed; what the
// socket did not take stays for the next call, so nothing is dropped.
bool send_pending(ssl_st* ssl, int fd, std::string& pending);

class Swarm {
 public:
  explicit Swarm(SwarmOptions options);
  ~Swarm();
  Swarm(const Swarm&) = delete;
  Swarm& operator=(const Swarm&) = delete;

  // Opens every connection, at most max_connecting handshakes at a time.
  // Throws kws::Error when one cannot connect or the server refuses the
  // upgrade (with the server's answer), or when `deadline_ns` passes; returns
  // early (some clients not open) when `stop` says so.
  void connect(uint64_t deadline_ns, const StopCheck& stop);
  // Handles socket events for up to `timeout_ms`.
  void pump(int timeout_ms);
  // Sends a close frame (1000) on every open connection, waits up to
  // `timeout_ms` for the server to close, then closes every socket.
  void close_all(int timeout_ms);

  size_t clients() const;
  size_t open_clients() const { return open_; }
  size_t subscribed_clients() const { return subscribed_; }
  // Open clients that have fewer than `expected` unique messages.
  size_t incomplete(uint64_t expected) const;
  // The same with --key-filters: client i expects expected_per_key[i % size].
  size_t incomplete(const std::vector<uint64_t>& expected_per_key) const;
  const SwarmCounters& counters() const { return counters_; }
  // MQTT publishers: fill every ready client's window, and answer each
  // PUBACK with the next PUBLISH until stop_publishing().
  void start_publishing();
  void stop_publishing() { publishing_ = false; }
  // PUBLISHes sent and not acknowledged yet.
  uint64_t in_flight() const { return in_flight_; }
  const LatencyHistogram& latency() const { return latency_; }

 private:
  struct Client;
  void start_connect(size_t index);
  void on_event(Client& c, uint32_t events);
  void start_tls(Client& c);
  void continue_tls(Client& c);
  std::string tls_failure(Client& c, int ssl_error);
  void send_request(Client& c);
  void watch(Client& c, uint32_t events);
  // read(2) or SSL_read: > 0 bytes, 0 at the end of the stream, -1 with
  // errno EAGAIN when nothing is there yet, -1 with `error` set otherwise.
  ssize_t read_some(Client& c, std::string& error);
  // Queues bytes behind what waits to be sent and sends what the socket
  // takes now (the clients only write the handshake, pongs and the close
  // frame); what it does not take goes when the socket is writable. False
  // when the connection failed.
  bool send_bytes(Client& c, std::string_view bytes);
  bool flush_pending(Client& c);
  void on_readable(Client& c);
  bool on_frames(Client& c, std::string_view bytes, uint64_t rx_ns, size_t& used);
  void on_message(Client& c, Opcode opcode, std::string_view payload, uint64_t rx_ns);
  // Counts a stamped payload of this run; false when `payload` has no stamp of it.
  bool on_stamped(Client& c, std::string_view payload, uint64_t rx_ns);
  void mark_ready(Client& c);
  // Starts the MQTT session once the connection is open (after the upgrade,
  // or at once for mqtt://).
  void start_mqtt(Client& c);
  // Queues one MQTT packet (in a binary frame unless over raw TCP); the
  // caller flushes.
  void queue_mqtt(Client& c, std::string_view packet);
  bool on_mqtt_bytes(Client& c, std::string_view bytes, uint64_t rx_ns);
  bool on_mqtt_packet(Client& c, const mqtt::Packet& p, uint64_t rx_ns);
  void publish_next(Client& c, uint16_t packet_id);
  void mark_closed(Client& c, const std::string& why, bool by_server);

  SwarmOptions options_;
  std::vector<std::string> requests_;  // one per target (one without --key-filters)
  std::string accept_;
  std::vector<unsigned char> address_;  // sockaddr of the server
  int family_ = 0;
  int epoll_fd_ = -1;
  ssl_ctx_st* tls_ = nullptr;  // wss:// only
  std::vector<Client> clients_;
  size_t next_ = 0;        // next client to start connecting
  size_t connecting_ = 0;  // started, handshake not answered
  size_t open_ = 0;
  size_t subscribed_ = 0;
  bool closing_ = false;   // close_all() began: closes are ours
  std::string fatal_;      // a handshake failure, thrown by connect()
  bool publishing_ = false;
  uint64_t in_flight_ = 0;
  uint64_t publish_seq_ = 0;
  std::string payload_, packet_;  // publishers' scratch
  SwarmCounters counters_;
  LatencyHistogram latency_;
  std::vector<char> buffer_;
};

}  // namespace kws::bench
