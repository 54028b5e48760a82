#pragma once
// One server-side WebSocket connection on an Asio TCP socket, run by one
// I/O thread. kws serve's own transport instead of websocketpp's server (see
// docs/ARCHITECTURE.md, "Why kws serve has its own WebSocket transport"):
// - an idle connection owns no read buffer: reads go into one scratch
//   buffer per thread, and only a partial frame is kept;
// - writes are gathered: everything queued goes out in one writev, and a
//   frame batch shared by a thousand clients is written from the same bytes
//   by all of them, never copied per client;
// - the bytes not yet taken by the kernel are counted exactly (queued and in
//   flight), which the slow-client budget needs;
// - with TLS (tls.hpp) the same loop reads ciphertext into the scratch
//   buffer and hands it to OpenSSL; writes queue the same shared plaintext
//   as for ws://, encrypted a piece at a time as the socket takes it, so a
//   slow TLS client holds little ciphertext of its own.
#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/session/link.hpp"
#include "core/ws/peer_limits.hpp"
#include "core/ws/protocol.hpp"
#include "core/ws/tls.hpp"

namespace kws::ws {

// A reply's JSON as the WebSocket text frame a session queues (Session::TextFramer).
std::string text_frame(std::string_view json);

class Connection : public Link, public std::enable_shared_from_this<Connection> {
 public:
  // Called once the request head is read; it must answer with
  // accept_upgrade() or respond(). Not called when the head is malformed
  // (the connection answers 400 itself) or does not arrive in time.
  using RequestHandler = std::function<void(const std::shared_ptr<Connection>&, const HttpRequest&)>;
  using Clock = std::chrono::steady_clock;

  struct Limits {
    size_t max_message = 1 << 20;
    std::chrono::milliseconds handshake_timeout{10000};
    std::chrono::milliseconds close_timeout{3000};
  };

  // `on_request` is shared by all of a server's connections. With `tls`,
  // the connection speaks TLS on the socket (wss:// and https://).
  Connection(asio::ip::tcp::socket socket, const Limits& limits, std::shared_ptr<const RequestHandler> on_request,
             std::unique_ptr<TlsStream> tls = nullptr);
  ~Connection() override;

  void start();

  // Handshake answers. To a HEAD request, respond() sends the headers a GET
  // would get (its Content-Length too) and no body (RFC 9110 section 9.3.2).
  // With `frame_writes` (MQTT over WebSocket), the session's writes are raw
  // packets and each write goes out as one binary message.
  void accept_upgrade(const HttpRequest& request, std::string_view subprotocol, std::shared_ptr<LinkEvents> events,
                      bool frame_writes = false);
  // No HTTP and no WebSocket (MQTT over TCP): instead of start(), the
  // connection is open at once; what the client sends reaches `events` as
  // it arrives (binary, in whatever pieces TCP gives), the session's writes
  // are the bytes on the wire, and a close is the end of TCP.
  void start_raw(std::shared_ptr<LinkEvents> events);
  bool is_raw() const { return raw_; }
  void respond(int status, std::string_view content_type, std::string_view body, std::string_view extra_headers = {});
  // Answers with `head` (a complete response head without Content-Length)
  // and streams what the session writes as the body until either side
  // closes: Server-Sent Events. Nothing the client sends after its request
  // is read as frames; a close is the end of the TCP connection.
  void accept_stream(std::string head, std::shared_ptr<LinkEvents> events);
  // A streamed response (SSE): its client sends nothing once connected, so
  // silence is no reason to close it.
  bool is_stream() const { return stream_; }

  // Link: the session's side.
  void write(std::vector<OutItem>& items) override;
  size_t buffered() const override;
  void close(CloseReason reason, std::string_view why, bool drop_pending = false) override;
  void pause_reading() override;
  void resume_reading() override;

  // Starts the closing handshake with a WebSocket close code (queued after
  // what is already queued, or instead of it with `drop_queued`); the socket
  // closes when the client answers or after the close timeout.
  void close_with(uint16_t code, std::string_view reason, bool drop_queued = false);
  // A WebSocket ping; on a stream, a comment line that keeps proxies from
  // closing it for silence.
  void ping();
  // For a server shutting down: reads and handles what the client has
  // already sent (what the kernel holds for us now), then stops reading, so
  // frames sent before the shutdown are answered rather than lost.
  void drain_and_pause();
  // Frees the write buffers' spare capacity when nothing is being written.
  void release_idle_memory();
  // Heap bytes of the TLS output (ciphertext not yet sent, and its spare
  // room); 0 for ws://. Bounded whatever the backlog: plaintext is
  // encrypted only as the socket takes it.
  size_t tls_output_capacity() const;
  // For a server going away with its I/O stopped: closes the socket (the
  // session hears on_closed) and lets go of the events, so neither keeps the
  // other alive.
  void abandon();

  // The connection's place in its peer address's count, given back when the
  // connection is destroyed, whichever way it ended.
  void hold(PeerSlot slot) { peer_slot_ = std::move(slot); }

  bool is_open() const { return state_ == State::open; }
  // The verified client certificate's subject (mTLS), "" without one.
  std::string peer_subject() const;
  // When the client last sent anything (a frame, a pong, a ping).
  Clock::time_point last_heard() const { return last_heard_; }
  // Since when bytes handed to the socket wait without the client taking
  // any (zero time point: nothing waits).
  Clock::time_point stalled_since() const { return writing_ ? last_progress_ : Clock::time_point{}; }

 private:
  enum class State { handshake, open, closing, closed };
  struct Chunk {
    std::shared_ptr<const void> owner;  // set: bytes point into owner's memory
    std::string owned;
    const char* data = nullptr;
    size_t size = 0;
    std::string_view view() const { return owner ? std::string_view(data, size) : std::string_view(owned); }
  };

  // Only while open: once the close frame is queued, frames are dropped.
  void queue(std::string frames);
  void queue_shared(std::shared_ptr<const void> owner, std::string_view frames);
  void write_queued();
  // The connection's own bytes (handshake answers, control and close
  // frames), also while closing: written now when nothing waits, else queued.
  void push(std::string bytes);
  void enqueue(std::string bytes);
  void queue_pong(std::string_view payload);
  enum class ReadEnd { would_block, limit, stopped };
  ReadEnd read_available(size_t limit);
  void read_now();
  void wait_readable();
  void process(std::string_view bytes);
  void process_head();
  void handle_event(ClientEvent& e);
  void start_write();
  void start_inflight(size_t written);
  bool idle_writer() const;
  // Writes what the socket takes now; returns how much (all of it when the
  // connection failed and was shut).
  size_t write_now(const asio::const_buffer* buffers, size_t count, size_t total);
  void write_some_more();
  void wrote(const std::error_code& ec, size_t written);
  // `done` more bytes of the write in flight were written (TLS: encrypted).
  void advance_inflight(size_t done);
  void after_write(const std::error_code& ec);
  void arm_timer(std::chrono::milliseconds after);
  void hold_while_paused();
  void finish_after_write();
  void shut();
  // TLS: decrypts and handles what was read; false once the connection closed.
  bool receive_tls(std::string_view ciphertext);
  // TLS's write_now: encrypts and writes while the socket takes the
  // records; returns how much plaintext was encrypted. Ciphertext the
  // socket did not take becomes the write in flight (writing_, with a wait
  // for the socket armed).
  size_t write_now_tls(const asio::const_buffer* buffers, size_t count, size_t total);
  // TLS: encrypts the next kTlsAhead bytes (or fewer) of `buffers`' plaintext,
  // from `skip` bytes in, into the TLS output; returns how many, 0 when TLS failed.
  size_t encrypt_from(const asio::const_buffer* buffers, size_t count, size_t skip);
  // TLS: writes the ciphertext the output holds; true once all of it is
  // out, false when the socket takes no more now or failed (`ec` set).
  bool send_tls_output(std::error_code& ec);
  // TLS: the write in flight: the ciphertext waiting goes out, then the next
  // piece of plaintext is encrypted, until all of it is out (after_write)
  // or the socket is full (it waits for the socket again).
  void pump_tls();
  void wait_writable_tls();
  // TLS, as the connection ends, the one place its last records are sent:
  // with nothing in flight, the alert of a TLS failure that reading met, or
  // else our close_notify, if the socket takes it now.
  void send_tls_farewell(bool nothing_in_flight);
  // A client speaking plain HTTP to the TLS port: told so in plain HTTP.
  void refuse_plaintext();

  asio::ip::tcp::socket socket_;
  std::unique_ptr<TlsStream> tls_;
  const Limits& limits_;  // the server's, which outlives its connections
  std::shared_ptr<const RequestHandler> on_request_;  // until the request head is read
  std::shared_ptr<LinkEvents> events_;
  std::shared_ptr<Connection> paused_self_;  // set while paused and open
  State state_ = State::handshake;
  ClientFrameParser parser_;
  std::unique_ptr<std::string> head_;  // the request head while it arrives
  std::unique_ptr<asio::steady_timer> timer_;  // handshake or close timeout, only while one runs
  Clock::time_point last_heard_{};
  Clock::time_point last_progress_{};

  // What waits for the socket and what is being written: only while a
  // connection writes (release_idle_memory() drops it once idle).
  struct Writes {
    std::vector<Chunk> queued;
    std::vector<Chunk> inflight;
    std::vector<asio::const_buffer> buffers;
  };
  Writes& writes() {
    if (!writes_) writes_ = std::make_unique<Writes>();
    return *writes_;
  }
  bool has_queued() const { return writes_ && !writes_->queued.empty(); }
  Writes& begin_inflight();
  std::unique_ptr<Writes> writes_;
  size_t queued_bytes_ = 0;
  size_t inflight_bytes_ = 0;
  size_t pong_at_ = SIZE_MAX;  // index in queued_ of the pong not yet written, if any
  bool writing_ = false;
  bool close_after_write_ = false;  // close the socket once everything queued is written
  bool paused_ = false;
  bool read_armed_ = false;  // an async wait or posted read is outstanding
  bool closed_reported_ = false;
  bool in_session_write_ = false;  // write() runs: the session learns of drained bytes from it
  bool head_request_ = false;  // the request is a HEAD: its answer has no body
  bool stream_ = false;        // an HTTP response streamed for ever (SSE), not a WebSocket
  bool raw_ = false;           // bytes both ways, no HTTP, no WebSocket (MQTT over TCP)
  bool frame_writes_ = false;  // each session write is one binary message (MQTT over WebSocket)
  PeerSlot peer_slot_;
};

}  // namespace kws::ws
