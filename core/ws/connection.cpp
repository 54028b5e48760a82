#include "core/ws/connection.hpp"

#include <array>

#include "core/util/text.hpp"
#include "core/ws/tls.hpp"

namespace kws::ws {

namespace {

// Reads land here, one buffer per thread: a connection keeps only what it
// cannot parse yet, so ten thousand idle clients cost no read buffers.
constexpr size_t kScratchSize = 64 * 1024;
// A client that keeps its socket full is read at most this much per turn,
// so one fast sender cannot starve the others.
constexpr size_t kReadPerTurn = 1 << 20;

char* scratch() {
  static thread_local std::array<char, kScratchSize> buffer;
  return buffer.data();
}

// TLS: what OpenSSL decrypts from scratch() lands here.
char* plain_scratch() {
  static thread_local std::array<char, kScratchSize> buffer;
  return buffer.data();
}

// TLS: how much plaintext is encrypted at a time, each piece once the socket
// took the ciphertext of the one before. Ciphertext is each client's own (a
// batch's bytes are shared by every plain client, its records cannot be), so
// a client that reads slowly keeps its backlog as shared plaintext, under
// the same budget as ws://, and at most this much ciphertext of its own.
// Four full records (16 KiB each): a fan-out batch to a client that keeps
// up is still one piece, encrypted and written at once.
constexpr size_t kTlsAhead = 64 * 1024;

}  // namespace

std::string text_frame(std::string_view json) { return frame(Opcode::text, json); }

Connection::Connection(asio::ip::tcp::socket socket, const Limits& limits,
                       std::shared_ptr<const RequestHandler> on_request, std::unique_ptr<TlsStream> tls)
    : socket_(std::move(socket)),
      tls_(std::move(tls)),
      limits_(limits),
      on_request_(std::move(on_request)),
      parser_(limits.max_message) {}

Connection::~Connection() = default;

void Connection::start() {
  last_heard_ = Clock::now();
  std::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  if (ec) {
    shut();
    return;
  }
  arm_timer(limits_.handshake_timeout);
  read_now();
}

void Connection::start_raw(std::shared_ptr<LinkEvents> events) {
  last_heard_ = Clock::now();
  events_ = std::move(events);
  state_ = State::open;
  raw_ = true;
  std::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  if (ec) {
    shut();
    return;
  }
  read_now();
}

void Connection::arm_timer(std::chrono::milliseconds after) {
  // A write that completed at once may already have closed the connection.
  if (state_ == State::closed) return;
  if (!timer_) timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
  timer_->expires_after(after);
  std::weak_ptr<Connection> weak = weak_from_this();
  timer_->async_wait([weak](const std::error_code& ec) {
    auto self = weak.lock();
    if (!self || ec) return;
    // Handshake not finished, or the client never answered our close.
    self->shut();
  });
}

// ---- reading ----------------------------------------------------------------

// Reads and handles what the socket holds, up to `limit` bytes, until it
// would block, the connection closes or reading is paused.
Connection::ReadEnd Connection::read_available(size_t limit) {
  size_t total = 0;
  while (state_ != State::closed && !paused_) {
    if (total >= limit) return ReadEnd::limit;
    std::error_code ec;
    size_t n = socket_.read_some(asio::buffer(scratch(), kScratchSize), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return ReadEnd::would_block;
    if (ec == asio::error::eof && close_after_write_) {
      return ReadEnd::stopped;  // a client that half-closed after its request still gets the answer being written
    }
    if (ec) {
      shut();  // EOF or reset: the client is gone (no close frame to send)
      return ReadEnd::stopped;
    }
    last_heard_ = Clock::now();
    if (tls_) {
      if (!receive_tls(std::string_view(scratch(), n))) return ReadEnd::stopped;
    } else {
      process(std::string_view(scratch(), n));
    }
    total += n;
  }
  return ReadEnd::stopped;
}

void Connection::read_now() {
  read_armed_ = false;
  switch (read_available(kReadPerTurn)) {
    case ReadEnd::would_block:
      wait_readable();
      return;
    case ReadEnd::limit:
      // More may be waiting; come back after the others had their turn (a
      // posted read, not a wait: the reactor would not report data already there).
      read_armed_ = true;
      asio::post(socket_.get_executor(), [self = shared_from_this()] { self->read_now(); });
      return;
    case ReadEnd::stopped:
      return;
  }
}

void Connection::wait_readable() {
  read_armed_ = true;
  socket_.async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this()](const std::error_code& ec) {
    self->read_armed_ = false;
    if (ec || self->state_ == State::closed) return;
    self->read_now();
  });
}

bool Connection::receive_tls(std::string_view ciphertext) {
  // Every TLS connection starts with a handshake record (0x16).
  if (tls_->fresh() && !ciphertext.empty() && ciphertext[0] != 0x16) {
    refuse_plaintext();
    return false;
  }
  tls_->receive(ciphertext);
  for (;;) {
    TlsStream::ReadStatus status;
    const size_t n = tls_->read(plain_scratch(), kScratchSize, status);
    if (n > 0) {
      process(std::string_view(plain_scratch(), n));
      if (state_ == State::closed) return false;
      continue;
    }
    if (status == TlsStream::ReadStatus::more) break;
    // close_notify, or a client that is not speaking TLS we accept: the
    // connection ends, and shut() sends OpenSSL's last words (send_tls_farewell).
    shut();
    return false;
  }
  // Handshake messages, session tickets and key updates that reading made:
  // a write of their own when none is in flight (one in flight sends them
  // with its own ciphertext, in the order OpenSSL made them).
  if (!writing_ && !tls_->output().empty()) {
    writing_ = true;
    pump_tls();
  }
  return state_ != State::closed;
}

void Connection::refuse_plaintext() {
  if (raw_) {
    // MQTT over TLS: a plain MQTT client cannot read an HTTP answer.
    shut();
    return;
  }
  const std::string answer = http_response(400, "text/plain; charset=utf-8",
                                           "this port speaks TLS: use https:// or wss://\n");
  std::error_code ec;
  socket_.write_some(asio::buffer(answer), ec);
  shut();
}

void Connection::pause_reading() {
  // Only an open connection's messages are held back: closing, the client's
  // close answer must still be read (a session woken during a shutdown asks
  // for a pause again after close_with() resumed reading).
  if (state_ != State::open) return;
  paused_ = true;
  hold_while_paused();
}

// An open connection is owned by its pending reads, writes and timers;
// paused, it may have none, and its session still points at it.
void Connection::hold_while_paused() {
  if (state_ != State::closed && !paused_self_) paused_self_ = shared_from_this();
}

void Connection::drain_and_pause() {
  // Bounded: a client that keeps sending does not hold the shutdown.
  if (state_ == State::open) read_available(16 * kReadPerTurn);
  if (state_ != State::open) return;  // see pause_reading()
  paused_ = true;
  hold_while_paused();
}

void Connection::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  // The read posted below holds the connection from here on.
  std::shared_ptr<Connection> held = std::move(paused_self_);
  if (state_ == State::closed || read_armed_) return;
  read_armed_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->read_now(); });
}

void Connection::process(std::string_view bytes) {
  if (state_ == State::handshake) {
    if (!head_) head_ = std::make_unique<std::string>();
    if (head_->size() + bytes.size() > kMaxRequestHead + kScratchSize) {
      respond(431, "text/plain; charset=utf-8", "request head too large\n");
      return;
    }
    head_->append(bytes);
    process_head();
    return;
  }
  // A streamed response's client has nothing more to say; whatever it
  // sends is not a frame, and only its end (EOF) matters.
  if (stream_) return;
  if (raw_) {
    if (state_ != State::open || !events_) return;
    thread_local std::string piece;
    piece.assign(bytes);
    events_->on_message(MessageKind::binary, piece);
    if (piece.capacity() > kScratchSize) std::string().swap(piece);
    return;
  }
  std::vector<ClientEvent> events;
  parser_.feed(bytes, events);
  for (auto& e : events) {
    if (state_ == State::closed) return;
    handle_event(e);
  }
}

void Connection::process_head() {
  HttpRequest request;
  HeadParse parsed = parse_request_head(*head_, request);
  switch (parsed.status) {
    case HeadStatus::incomplete:
      return;
    case HeadStatus::too_large:
      respond(431, "text/plain; charset=utf-8", "request head too large\n");
      return;
    case HeadStatus::bad:
      respond(400, "text/plain; charset=utf-8", parsed.problem + "\n");
      return;
    case HeadStatus::complete:
      break;
  }
  std::string rest = head_->substr(parsed.consumed);
  head_.reset();
  head_request_ = request.method == "HEAD";
  auto self = shared_from_this();
  std::shared_ptr<const RequestHandler> handler = std::move(on_request_);  // needed once
  (*handler)(self, request);
  // A client may send its first frames right behind the request.
  if (state_ == State::open && !rest.empty()) process(rest);
}

void Connection::handle_event(ClientEvent& e) {
  switch (e.kind) {
    case ClientEvent::Kind::message:
      // After we started closing, data frames are read and dropped (RFC 6455 5.5.1).
      if (state_ == State::open && events_) {
        events_->on_message(e.opcode == Opcode::binary ? MessageKind::binary : MessageKind::text, e.payload);
      }
      return;
    case ClientEvent::Kind::ping:
      if (state_ != State::open) return;
      queue_pong(e.payload);
      write_queued();
      return;
    case ClientEvent::Kind::pong:
      return;  // last_heard_ already moved
    case ClientEvent::Kind::close:
      if (state_ == State::open) {
        // Echo the client's code; 1005 ("none") is never sent on the wire.
        push(e.code == 1005 ? control_frame(Opcode::close, {}) : close_frame(e.code, {}));
        state_ = State::closing;
      }
      // The server closes TCP first, once our close frame is out.
      finish_after_write();
      return;
    case ClientEvent::Kind::error:
      if (state_ == State::open) {
        push(close_frame(e.code, e.payload));
        state_ = State::closing;
      }
      finish_after_write();
      return;
  }
}

std::string Connection::peer_subject() const { return tls_ ? tls_->peer_subject() : std::string(); }

// ---- the handshake answers --------------------------------------------------

void Connection::accept_upgrade(const HttpRequest& request, std::string_view subprotocol,
                                std::shared_ptr<LinkEvents> events, bool frame_writes) {
  if (state_ != State::handshake) return;
  events_ = std::move(events);
  frame_writes_ = frame_writes;
  state_ = State::open;
  if (timer_) timer_->cancel();
  timer_.reset();
  // Queued first: the 101 reaches the client before any frame.
  push(upgrade_response(request.header("sec-websocket-key"), subprotocol));
  write_queued();
}

void Connection::accept_stream(std::string head, std::shared_ptr<LinkEvents> events) {
  if (state_ != State::handshake) return;
  events_ = std::move(events);
  state_ = State::open;
  stream_ = true;
  if (timer_) timer_->cancel();
  timer_.reset();
  push(std::move(head));
  write_queued();
}

void Connection::respond(int status, std::string_view content_type, std::string_view body,
                         std::string_view extra_headers) {
  if (state_ != State::handshake) return;
  state_ = State::closing;
  std::string answer = http_response(status, content_type, body, extra_headers);
  if (head_request_) answer.resize(answer.size() - body.size());
  push(std::move(answer));
  finish_after_write();
}

// ---- writing ----------------------------------------------------------------

// Most writes fit in the socket's buffer: they are written at once from
// where the bytes are (the non-blocking socket takes them or not), so an
// idle connection keeps no write buffers and there is no asio completion
// per client per batch. Only what the socket does not take is queued.
size_t Connection::write_now(const asio::const_buffer* buffers, size_t count, size_t total) {
  if (tls_) return write_now_tls(buffers, count, total);
  std::error_code ec;
  size_t written = 0;
  if (count == 1) {
    written = socket_.write_some(asio::const_buffer(buffers[0]), ec);
  } else {
    thread_local std::vector<asio::const_buffer> gathered;
    gathered.assign(buffers, buffers + count);
    written = socket_.write_some(gathered, ec);
    if (gathered.capacity() > 1024) std::vector<asio::const_buffer>().swap(gathered);
  }
  if (ec == asio::error::would_block || ec == asio::error::try_again) return 0;
  if (ec) {
    shut();
    return total;  // nothing more to do with these bytes
  }
  if (written > 0) last_progress_ = Clock::now();
  return written;
}

size_t Connection::buffered() const {
  // With TLS: the plaintext not yet encrypted, and the ciphertext not yet sent.
  return queued_bytes_ + inflight_bytes_ + (tls_ ? tls_->output().size() : 0);
}

size_t Connection::tls_output_capacity() const { return tls_ ? tls_->output_capacity() : 0; }

bool Connection::idle_writer() const { return state_ != State::closed && !writing_ && !has_queued(); }

void Connection::write(std::vector<OutItem>& items) {
  if (state_ != State::open) {
    items.clear();
    return;
  }
  if (frame_writes_) {
    // MQTT over WebSocket: packets may share a message or span several
    // (MQTT 5 section 6), so the whole write is one binary message, the
    // batches' shared bytes written as they are behind a header of ours.
    size_t payload = 0;
    for (const auto& item : items) payload += item.batch ? item.batch->bytes(item.encoding).size() : item.bytes.size();
    if (payload == 0) {
      items.clear();
      return;
    }
    std::string header;
    append_frame_header(header, Opcode::binary, payload);
    items.insert(items.begin(), OutItem{nullptr, std::move(header)});
  }
  size_t already = 0;
  if (idle_writer()) {
    thread_local std::vector<asio::const_buffer> direct;
    direct.clear();
    size_t total = 0;
    for (const auto& item : items) {
      const std::string& bytes = item.batch ? item.batch->bytes(item.encoding) : item.bytes;
      direct.emplace_back(bytes.data(), bytes.size());
      total += bytes.size();
    }
    already = total == 0 ? 0 : write_now(direct.data(), direct.size(), total);
    if (already == total) {
      items.clear();
      return;
    }
  }
  for (auto& item : items) {
    if (item.batch) {
      const std::string& bytes = item.batch->bytes(item.encoding);
      queue_shared(std::move(item.batch), bytes);
    } else {
      queue(std::move(item.bytes));
    }
  }
  items.clear();
  in_session_write_ = true;
  if (already > 0) {
    start_inflight(already);
  } else {
    write_queued();
  }
  in_session_write_ = false;
}

void Connection::queue(std::string frames) {
  // Nothing may follow our close frame (RFC 6455 section 5.5.1): what the
  // server hands over while the closing handshake runs is dropped.
  if (state_ != State::open) return;
  enqueue(std::move(frames));
}

void Connection::push(std::string frames) {
  if (state_ == State::closed || frames.empty()) return;
  if (idle_writer()) {
    asio::const_buffer one(frames.data(), frames.size());
    const size_t written = write_now(&one, 1, frames.size());
    if (written == frames.size()) return;
    frames.erase(0, written);
  }
  enqueue(std::move(frames));
}

void Connection::enqueue(std::string frames) {
  if (state_ == State::closed || frames.empty()) return;
  queued_bytes_ += frames.size();
  Chunk c;
  c.owned = std::move(frames);
  writes().queued.push_back(std::move(c));
}

void Connection::queue_pong(std::string_view payload) {
  // RFC 6455 5.5.3 allows answering only the most recent ping: a client
  // that pings without reading costs one pong, not one per ping.
  std::string pong = control_frame(Opcode::pong, payload);
  if (idle_writer()) {
    push(std::move(pong));
    return;
  }
  if (writes_ && pong_at_ < writes_->queued.size()) {
    Chunk& waiting = writes_->queued[pong_at_];
    queued_bytes_ = queued_bytes_ - waiting.owned.size() + pong.size();
    waiting.owned = std::move(pong);
    return;
  }
  pong_at_ = writes().queued.size();
  enqueue(std::move(pong));
}

void Connection::queue_shared(std::shared_ptr<const void> owner, std::string_view frames) {
  if (state_ != State::open || frames.empty()) return;
  queued_bytes_ += frames.size();
  Chunk c;
  c.owner = std::move(owner);
  c.data = frames.data();
  c.size = frames.size();
  writes().queued.push_back(std::move(c));
}

void Connection::write_queued() {
  if (!writing_ && has_queued()) start_write();
}

void Connection::start_write() {
  if (state_ == State::closed) return;
  Writes& w = begin_inflight();
  if (tls_) {
    writing_ = true;
    pump_tls();
    return;
  }
  // Most writes fit in the socket's buffer: write them now (the socket is
  // non-blocking) and leave asio's handler round trip, a scheduled
  // completion per client per batch, to the writes that do not.
  std::error_code ec;
  size_t written = socket_.write_some(w.buffers, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec.clear();
    written = 0;
  }
  if (ec) return after_write(ec);
  writing_ = true;
  last_progress_ = Clock::now();
  wrote({}, written);
}

// Whatever is queued becomes the write in flight, of which `written`
// bytes are already out.
void Connection::start_inflight(size_t written) {
  if (state_ == State::closed) return;
  begin_inflight();
  writing_ = true;
  if (tls_) {
    // write_now_tls encrypted `written` bytes and left ciphertext waiting
    // for the socket, with a wait for it: the rest is encrypted as the
    // socket takes it (pump_tls).
    advance_inflight(written);
    return;
  }
  wrote({}, written);
}

Connection::Writes& Connection::begin_inflight() {
  Writes& w = writes();
  w.inflight.swap(w.queued);
  pong_at_ = SIZE_MAX;
  inflight_bytes_ = queued_bytes_;
  queued_bytes_ = 0;
  w.buffers.clear();
  for (const auto& c : w.inflight) {
    auto v = c.view();
    w.buffers.emplace_back(v.data(), v.size());
  }
  return w;
}

// ---- writing with TLS ----------------------------------------------------------

// The plaintext is encrypted a piece at a time (kTlsAhead), each piece once
// the socket took the ciphertext of the one before, so a client that reads
// slowly holds its backlog as the shared plaintext a ws:// client would.
size_t Connection::write_now_tls(const asio::const_buffer* buffers, size_t count, size_t total) {
  size_t taken = 0;
  for (;;) {
    std::error_code ec;
    if (!send_tls_output(ec)) {
      if (ec) {
        shut();
        return total;  // nothing more to do with these bytes
      }
      // The socket is full: its ciphertext is the write in flight.
      writing_ = true;
      wait_writable_tls();
      return taken;
    }
    if (taken == total) return taken;
    const size_t n = encrypt_from(buffers, count, taken);
    if (n == 0) {
      shut();
      return total;
    }
    taken += n;
  }
}

size_t Connection::encrypt_from(const asio::const_buffer* buffers, size_t count, size_t skip) {
  size_t taken = 0;
  for (size_t i = 0; i < count && taken < kTlsAhead; ++i) {
    std::string_view bytes(static_cast<const char*>(buffers[i].data()), buffers[i].size());
    if (skip >= bytes.size()) {
      skip -= bytes.size();
      continue;
    }
    bytes = bytes.substr(skip, kTlsAhead - taken);
    skip = 0;
    if (!tls_->send(bytes)) return 0;
    taken += bytes.size();
  }
  return taken;
}

bool Connection::send_tls_output(std::error_code& ec) {
  for (;;) {
    const std::string_view out = tls_->output();
    if (out.empty()) return true;
    const size_t n = socket_.write_some(asio::buffer(out.data(), out.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec.clear();
      return false;
    }
    if (ec) return false;
    last_progress_ = Clock::now();
    tls_->consumed(n);
  }
}

void Connection::pump_tls() {
  while (state_ != State::closed) {
    std::error_code ec;
    if (!send_tls_output(ec)) {
      if (ec) return after_write(ec);
      return wait_writable_tls();
    }
    if (inflight_bytes_ == 0) return after_write({});
    const size_t n = encrypt_from(writes_->buffers.data(), writes_->buffers.size(), 0);
    if (n == 0) return after_write(std::make_error_code(std::errc::protocol_error));
    advance_inflight(n);
  }
}

void Connection::wait_writable_tls() {
  socket_.async_wait(asio::ip::tcp::socket::wait_write, [self = shared_from_this()](const std::error_code& ec) {
    if (self->state_ == State::closed) return;
    if (ec) return self->after_write(ec);
    self->pump_tls();
  });
}

// Not waited for: the socket closes next. In the middle of a write nothing
// is added (the client would never read past the records cut short).
void Connection::send_tls_farewell(bool nothing_in_flight) {
  if (!nothing_in_flight) return;
  if (tls_->error().empty()) tls_->close_notify();
  const std::string_view last = tls_->output();
  std::error_code ec;
  if (!last.empty()) socket_.write_some(asio::buffer(last.data(), last.size()), ec);
}

// The rest of a write, a piece at a time, so that the time of the last
// progress is known (a client that takes nothing for long is cut).
void Connection::write_some_more() {
  socket_.async_write_some(writes_->buffers, [self = shared_from_this()](const std::error_code& ec, size_t n) {
    self->wrote(ec, n);
  });
}

void Connection::wrote(const std::error_code& ec, size_t written) {
  if (ec) return after_write(ec);
  if (written > 0) last_progress_ = Clock::now();
  advance_inflight(written);
  if (inflight_bytes_ == 0) return after_write({});
  write_some_more();
}

void Connection::advance_inflight(size_t done) {
  inflight_bytes_ -= done;
  if (inflight_bytes_ == 0) return;  // after_write clears the buffers
  auto& buffers = writes_->buffers;
  size_t skip = 0;
  while (skip < buffers.size() && done >= buffers[skip].size()) done -= buffers[skip++].size();
  buffers.erase(buffers.begin(), buffers.begin() + static_cast<std::ptrdiff_t>(skip));
  if (done > 0) buffers.front() += done;
}

void Connection::after_write(const std::error_code& ec) {
  writing_ = false;
  inflight_bytes_ = 0;
  if (writes_) {
    writes_->inflight.clear();
    // A burst can leave large vectors behind (release_idle_memory frees the rest).
    if (writes_->inflight.capacity() > 64) {
      std::vector<Chunk>().swap(writes_->inflight);
      std::vector<asio::const_buffer>().swap(writes_->buffers);
    }
  }
  if (ec) {
    shut();
    return;
  }
  if (has_queued()) {
    start_write();
    return;
  }
  if (close_after_write_) {
    shut();
    return;
  }
  // Everything handed over is out: the session may write what waited.
  if (events_ && state_ == State::open && !in_session_write_) events_->on_drained();
}

void Connection::finish_after_write() {
  close_after_write_ = true;
  if (!writing_ && !has_queued()) {
    shut();
    return;
  }
  write_queued();
  arm_timer(limits_.close_timeout);  // a client that never reads must not hold the socket
}

void Connection::ping() {
  if (state_ != State::open || raw_) return;
  push(stream_ ? std::string(": keep-alive\n\n") : control_frame(Opcode::ping, {}));
  write_queued();
}

void Connection::close(CloseReason reason, std::string_view why, bool drop_pending) {
  switch (reason) {
    case CloseReason::normal: return close_with(close_normal, why, drop_pending);
    case CloseReason::going_away: return close_with(close_going_away, why, drop_pending);
    case CloseReason::policy: return close_with(close_policy, why, drop_pending);
    case CloseReason::try_again_later: return close_with(close_try_later, why, drop_pending);
    case CloseReason::internal: return close_with(close_internal, why, drop_pending);
  }
}

void Connection::close_with(uint16_t code, std::string_view reason, bool drop_queued) {
  if (state_ == State::handshake) {
    shut();
    return;
  }
  if (state_ != State::open) return;
  state_ = State::closing;
  if (drop_queued) {
    if (writes_) writes_->queued.clear();
    queued_bytes_ = 0;
    pong_at_ = SIZE_MAX;
  }
  if (raw_) {
    // MQTT over TCP has no closing handshake: the session wrote its
    // DISCONNECT (MQTT 5) if it had one to write.
    finish_after_write();
    return;
  }
  if (stream_) {
    // No closing handshake: the response ends with the connection, after an
    // event saying why. A browser's EventSource then reconnects with
    // Last-Event-ID.
    push("event: close\ndata: {\"type\":\"close\",\"code\":" + std::to_string(code) +
         ",\"reason\":" + json_quote(reason) + "}\n\n");
    finish_after_write();
    return;
  }
  push(close_frame(code, reason));
  write_queued();
  // Wait for the client's close frame (it arrives through read_now), but
  // not for ever. A paused connection (a shutdown pauses them all) would
  // never see it: closing, it reads again, and frames other than the
  // close are dropped unread by the session (handle_event).
  arm_timer(limits_.close_timeout);
  if (paused_) resume_reading();
}

void Connection::release_idle_memory() {
  if (writing_ || has_queued()) return;
  writes_.reset();
  if (tls_) tls_->release_idle_memory();
}

void Connection::abandon() {
  // The session hears on_closed as for any close: it leaves the hub and
  // stops a group reader, which must not outlive the server.
  shut();
  events_.reset();
}

void Connection::shut() {
  if (state_ == State::closed) return;
  const bool nothing_in_flight = !writing_ && !has_queued();
  state_ = State::closed;
  // A paused connection holds itself; let go once the caller's stack has
  // unwound (shut() runs inside write(), close() and the like, which touch
  // the connection after it returns).
  if (paused_self_) asio::post(socket_.get_executor(), [held = std::move(paused_self_)] {});
  if (tls_) send_tls_farewell(nothing_in_flight);
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  if (timer_) timer_->cancel();
  if (writes_) writes_->queued.clear();
  queued_bytes_ = 0;
  pong_at_ = SIZE_MAX;
  if (!closed_reported_) {
    closed_reported_ = true;
    if (auto events = std::move(events_)) events->on_closed();
  }
  on_request_ = nullptr;
}

}  // namespace kws::ws
