// libFuzzer target for kws serve's connection state machine: one whole
// server connection (core/ws/connection.* behind core/ws/server.*, with its
// routes, a Session, its Outbox and the Hub) driven over a socket that the
// fuzz input writes into in pieces, while the harness reads and checks what
// the server answers. uWebSockets fuzzes its servers this way; every bug
// kws serve had after it got its own transport was in the connection, which
// fuzz_ws_protocol (the pure parsers) does not reach. Build and run: see
// tests/fuzz/CMakeLists.txt; seeds: tests/fuzz/corpus/connection (made by
// tests/fuzz/connection_seeds.py, which also spells the input format out).
//
// Real: Server (through its seams serve_descriptor, poll, poll_one and
// run_chores), Connection, the routes, Session, Outbox, ProduceTracker, Hub.
// Mocked: the client is the other end of an AF_UNIX socketpair, in this
// process (a socketpair has no TCP timers and no TIME_WAIT, so an input
// always takes the same path, about a thousand a second); Kafka is the
// FakeCluster of tests/unit/fakes.hpp behind the hub and a sink whose
// deliveries the harness releases (records produced to a known topic are
// appended to it, so subscribers read them back). Everything runs on this
// thread, and no clock is waited for: the handshake and close timeouts never
// fire, and the server's chores run when the input says.
//
// Input: [config: 3 bytes][op...]; op byte b, kind b & 7, arg b >> 3:
//   0  write arg+1 bytes (which follow) to the server, then settle
//   1  write ((arg & 15) << 8 | next byte) + 1 bytes (which follow), then
//      settle; with arg & 16, run just one of the server's ready handlers
//      instead, so that the next op lands between two of them
//   2  client stops (arg odd) or goes on (even) reading the server
//   3  arg+1 records of 64 bytes appended to topic t, then settle
//   4  client half-closes (no more writes), then settle
//   5  client closes its socket, then settle (no more client ops)
//   6  server side, by arg % 6: chores; Kafka unreachable; reachable again;
//      stop_reading(); finish(0 ms); set the producer to refuse (unknown
//      topic) -- then settle
//   7  arg 0: producer deliveries succeed, 1: they fail; 2-31: the last
//      write again, arg-1 times in one write (big heads, floods, long
//      messages from a short input), then settle
// "Settle" runs the hub, the producer's deliveries, the server's ready
// handlers and the client's reads until three rounds in a row move nothing.
// At the end the client half-closes, reads on and settles. With
// KWS_FUZZ_TRACE set, each input's outcome is printed (to check a seed).
//
// Checked: the server's answer is one HTTP response (status line, headers,
// exactly Content-Length bytes of body, then nothing) or a 101 and then
// well-formed server frames (unmasked, no reserved bits, shortest lengths,
// whole control frames of at most 125 bytes, close codes a server may send,
// UTF-8 close reasons, every text frame a JSON document) and nothing after
// the close frame; while the client is there, the server never closes
// without an answer, mid-frame or without a close frame; once the client
// is gone, the server's socket is closed, every session has left and no
// connection is stuck (unless the server began shutting down, which pauses
// connections that only the close timeout ends then); ASan and
// LeakSanitizer see every input through.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/hub/hub.hpp"
#include "core/util/log.hpp"
#include "core/util/text.hpp"
#include "core/ws/server.hpp"
#include "core/ws_frame.hpp"
#include "tests/unit/fakes.hpp"

#include "tests/fuzz/fuzz_check.hpp"

using namespace kws;
using kws::fuzz::violated;

namespace {

// The fuzz input, read from the front; past its end every byte is 0.
struct Input {
  const uint8_t* data;
  size_t size;
  bool empty() const { return size == 0; }
  uint8_t byte() {
    if (size == 0) return 0;
    --size;
    return *data++;
  }
  std::string_view take(size_t n) {
    n = std::min(n, size);
    std::string_view out(reinterpret_cast<const char*>(data), n);
    data += n;
    size -= n;
    return out;
  }
};

// What the client reads, checked as it arrives: one HTTP response, or a
// 101 and then server frames.
class ServerStream {
 public:
  // `client_there`: the client has neither half-closed nor closed, so the
  // server has no reason to end the connection without a word.
  void feed(std::string_view bytes) {
    CHECK(!ended_);
    buf_.append(bytes);
    parse();
  }
  // The request is a HEAD: its answer may come without the body its
  // Content-Length announces (RFC 9110 §9.3.2).
  void answers_head() { head_request_ = true; }

  void end(bool client_there) {
    ended_ = true;
    if (!client_there) return;
    if (state_ == State::body && head_request_ && body_left_ == content_length_) return;
    // A server that closes on its own says everything it means to first.
    switch (state_) {
      case State::head:
        violated(buf_.empty() ? "the server closed without answering a client that is still there"
                              : "the server closed in the middle of its response head");
      case State::body:
        violated("the server closed before the whole body (Content-Length) was out");
      case State::frames:
        violated(buf_.empty() ? "the server closed a WebSocket without a close frame"
                              : "the server closed in the middle of a frame");
      case State::after_close:
      case State::done:
        break;
    }
  }
  bool upgraded() const { return upgraded_; }
  bool ended() const { return ended_; }
  size_t frames() const { return frames_; }
  // What the server said, for KWS_FUZZ_TRACE.
  std::string summary() const {
    std::string out = "status " + std::to_string(status_);
    if (upgraded_) {
      out += ", frames: " + std::to_string(counts_[1]) + " text " + std::to_string(counts_[2]) + " binary " +
             std::to_string(counts_[9]) + " ping " + std::to_string(counts_[10]) + " pong";
      if (close_code_ >= 0) out += ", close " + std::to_string(close_code_);
    }
    return out + (ended_ ? ", then EOF" : "");
  }

 private:
  enum class State { head, body, frames, after_close, done };

  void parse() {
    if (state_ == State::head) parse_head();
    if (state_ == State::body) {
      CHECK(buf_.size() <= body_left_);  // nothing after the body
      body_left_ -= buf_.size();
      buf_.clear();
      if (body_left_ == 0) state_ = State::done;
    }
    // Frames are taken off the front in one erase per read, not one per
    // frame (a read may hold thousands).
    size_t pos = 0;
    while (state_ == State::frames && parse_frame(pos)) {
    }
    buf_.erase(0, pos);
    if (state_ == State::after_close || state_ == State::done) CHECK(buf_.empty());  // nothing after the end
  }

  void parse_head() {
    const size_t end = buf_.find("\r\n\r\n");
    if (end == std::string::npos) {
      CHECK(buf_.size() < 4096);  // a response head is short
      return;
    }
    const std::string head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    CHECK(head.compare(0, 9, "HTTP/1.1 ") == 0);
    CHECK(head.size() > 13 && head[12] == ' ');
    const int status = std::atoi(head.substr(9, 3).c_str());
    CHECK(status >= 101 && status <= 599);
    status_ = status;
    long content_length = -1;
    bool connection_close = false, accept = false;
    size_t pos = head.find("\r\n") + 2;
    while (pos < head.size()) {
      const size_t eol = head.find("\r\n", pos);
      CHECK(eol != std::string::npos);
      const std::string line = head.substr(pos, eol - pos);
      pos = eol + 2;
      const size_t colon = line.find(": ");
      CHECK(colon != std::string::npos && colon > 0);
      const std::string name = line.substr(0, colon), value = line.substr(colon + 2);
      for (char c : line) CHECK(c != '\r' && c != '\n' && c != '\0');  // no header injection
      if (name == "Content-Length") content_length = std::atol(value.c_str());
      if (name == "Connection" && value == "close") connection_close = true;
      if (name == "Sec-WebSocket-Accept") accept = value.size() == 28;
    }
    if (status == 101) {
      CHECK(accept && content_length < 0);
      upgraded_ = true;
      state_ = State::frames;
      return;
    }
    CHECK(content_length >= 0 && connection_close);
    body_left_ = content_length_ = static_cast<size_t>(content_length);
    state_ = body_left_ == 0 ? State::done : State::body;
  }

  // One whole frame of buf_ at `pos` (advanced past it); false when it is
  // not all there.
  bool parse_frame(size_t& pos) {
    const std::string_view rest = std::string_view(buf_).substr(pos);
    ws::FrameHeader h;
    const ws::HeaderRead read = ws::read_frame_header(rest, h);
    if (rest.size() >= 2) {
      CHECK(!h.masked);        // server frames are never masked
      CHECK(h.reserved == 0);  // no extension was agreed
      CHECK(h.opcode == ws::Opcode::text || h.opcode == ws::Opcode::binary || h.opcode == ws::Opcode::close ||
            h.opcode == ws::Opcode::ping || h.opcode == ws::Opcode::pong);  // kws never fragments
      CHECK(h.fin);
    }
    CHECK(read != ws::HeaderRead::length_over_63_bits);
    if (read == ws::HeaderRead::incomplete) return false;
    CHECK(h.shortest);
    CHECK(h.length < (uint64_t(1) << 32));
    if (rest.size() - h.size < h.length) return false;
    const std::string_view payload = rest.substr(h.size, static_cast<size_t>(h.length));
    ++frames_;
    ++counts_[static_cast<size_t>(h.opcode) & 15];
    switch (h.opcode) {
      case ws::Opcode::text: {
        // Replies, notices and kafka-text messages are all JSON documents.
        CHECK(is_valid_utf8(payload));
        CHECK(nlohmann::json::accept(payload.begin(), payload.end()));
        break;
      }
      case ws::Opcode::binary:
        // kafka-binary: [topic length][topic][value].
        CHECK(!payload.empty() && static_cast<uint8_t>(payload[0]) + 1u <= payload.size());
        break;
      case ws::Opcode::ping:
        CHECK(payload.empty());  // kws pings carry nothing
        break;
      case ws::Opcode::pong:
        CHECK(payload.size() <= 125);
        break;
      case ws::Opcode::close:
        check_close(payload);
        close_code_ = payload.size() >= 2 ? static_cast<uint8_t>(payload[0]) << 8 | static_cast<uint8_t>(payload[1]) : 1005;
        state_ = State::after_close;
        break;
      default:
        break;
    }
    pos += h.size + static_cast<size_t>(h.length);
    return true;
  }

  static void check_close(std::string_view payload) {
    CHECK(payload.size() <= 125 && payload.size() != 1);
    if (payload.empty()) return;
    const unsigned code = static_cast<uint8_t>(payload[0]) << 8 | static_cast<uint8_t>(payload[1]);
    // Codes an endpoint may put on the wire (RFC 6455 7.4): never 1005,
    // 1006 or 1015, nothing unassigned below 3000.
    CHECK((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
    CHECK(is_valid_utf8(payload.substr(2)));
  }

  std::string buf_;
  State state_ = State::head;
  size_t body_left_ = 0;
  size_t content_length_ = 0;
  bool head_request_ = false;
  size_t frames_ = 0;
  size_t counts_[16] = {};
  int status_ = 0;
  int close_code_ = -1;
  bool upgraded_ = false;
  bool ended_ = false;
};

// The producer: queues what sessions produce and reports it when the
// harness says (settle), as librdkafka's delivery thread would; what it
// delivers to a topic the cluster has is appended there.
class LoopSink : public MessageSink {
 public:
  explicit LoopSink(test::FakeCluster& cluster) : cluster_(cluster) {}
  bool fail = false;    // deliveries fail (timed out)
  bool refuse = false;  // try_produce refuses (unknown topic)

  ProduceOutcome try_produce(const OutgoingRecord& r) override {
    if (refuse) return {ProduceError::unknown_topic, "unknown topic"};
    pending_.push_back({std::string(r.topic), std::string(r.value.value_or("")), r.token});
    return {};
  }
  void serve_deliveries(std::chrono::milliseconds) override {
    std::vector<Pending> now;
    now.swap(pending_);
    for (auto& p : now) {
      Delivery d;
      d.token = p.token;
      d.topic = p.topic;
      d.partition = 0;
      if (fail) {
        d.error = ProduceError::timed_out;
        d.message = "timed out";
      } else if (cluster_.topics.count(p.topic) != 0) {
        d.offset = cluster_.append(p.topic, 0, std::move(p.value));
      }
      if (handler_) handler_(d);
    }
  }
  void on_delivery(std::function<void(const Delivery&)> h) override { handler_ = std::move(h); }
  uint64_t in_flight() const override { return pending_.size(); }

 private:
  struct Pending {
    std::string topic;
    std::string value;
    uint64_t token;
  };
  test::FakeCluster& cluster_;
  std::vector<Pending> pending_;
  std::function<void(const Delivery&)> handler_;
};

ino_t inode_of(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

std::string value_of(size_t size, size_t n) {
  std::string v = "{\"n\":" + std::to_string(n) + ",\"pad\":\"";
  v.append(size > v.size() + 2 ? size - v.size() - 2 : 0, 'x');
  return v + "\"}";
}

// One input's world. Members are destroyed bottom up: the server (and its
// sessions) before the sink and the hub they use.
struct World {
  test::FakeCluster cluster;
  test::FakeAdmin admin{cluster};
  NullLog log;
  std::unique_ptr<Hub> hub;
  LoopSink sink{cluster};
  std::unique_ptr<Server> server;
  ServerStream stream;
  int client = -1;
  int server_fd = -1;
  ino_t server_inode = 0;
  bool client_reads = true;
  bool client_writes = true;  // not half-closed
  bool client_open = true;    // its descriptor is open
  bool shutting_down = false;
  std::string last_write;
  std::string sent_;  // the first bytes the client sent: is it a HEAD request?

  World(uint8_t c0, uint8_t c1, uint8_t c2) {
    cluster.create("t", 1);
    cluster.create("u", 2);
    for (size_t i = 0; i < c1; ++i) cluster.append("t", 0, value_of(200, i));
    cluster.append("u", 1, "not json");
    HubLimits hub_limits;
    hub_limits.admin_thread = false;
    hub = std::make_unique<Hub>(std::make_unique<test::FakeFeed>(cluster), admin, hub_limits, log);

    ServerOptions options;
    options.port = 0;
    options.ping_interval = (c2 & 2) ? std::chrono::milliseconds(0) : std::chrono::hours(1);
    options.idle_timeout = (c0 & 0x40) ? std::chrono::milliseconds(0) : std::chrono::hours(1);
    options.write_timeout = (c0 & 0x80) ? std::chrono::milliseconds(0) : std::chrono::hours(1);
    if (c0 & 0x04) options.session.client_buffer = 16 << 10;
    if (c0 & 0x08) {
      options.session.max_pending_produce = 2;
      options.session.max_pending_requests = 1;
    }
    if (c0 & 0x10) options.session.max_frame = 512;
    if (c0 & 0x20) options.session.max_topics = 2;
    // A group session would start a reader thread: refused here, which is
    // a path of its own (a close right after the upgrade).
    options.session.max_group_sessions = 0;
    ServerServices services;
    services.hub = hub.get();
    services.producer = &sink;
    services.open_group = [](const GroupRequest&) { return std::unique_ptr<MessageSource>(); };
    services.kafka_ready = [] { return true; };
    services.extra_metrics = [](const ServerServices::TopicVisible&) { return std::string("kws_fuzz_extra 1\n"); };
    // Bigger than a small socket buffer, so an HTTP answer is written in parts.
    static const std::string page(40000, 'p');
    services.demo_page = page;
    services.log = &log;
    server = std::make_unique<Server>(options, services);
    sink.on_delivery([this](const Delivery& d) { server->on_delivery(d); });
    if (c2 & 1) server->set_kafka_reachable(false, "the fuzzer says so");

    int fds[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    client = fds[0];
    server_fd = fds[1];
    static const int kSendBuffers[] = {0, 4096, 16384, 65536};
    if (int size = kSendBuffers[c0 & 3]) setsockopt(server_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    server_inode = inode_of(server_fd);
    CHECK(server->serve_descriptor(server_fd));
  }

  ~World() {
    server.reset();
    if (client >= 0) close(client);
  }

  // Reads what the server wrote; true when anything happened.
  bool drain() {
    if (!client_open || !client_reads || stream.ended()) return false;
    static char buf[64 << 10];
    bool moved = false;
    for (;;) {
      const ssize_t n = recv(client, buf, sizeof buf, 0);
      if (n > 0) {
        stream.feed(std::string_view(buf, static_cast<size_t>(n)));
        moved = true;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return moved;
      CHECK(n == 0 || errno == ECONNRESET);
      stream.end(client_writes);
      return true;
    }
  }

  void settle() {
    int idle = 0;
    for (int round = 0; idle < 3; ++round) {
      CHECK(round < 10000);  // the server goes idle
      hub->run_once(std::chrono::milliseconds(0));
      const bool delivered = sink.in_flight() > 0;
      sink.serve_deliveries(std::chrono::milliseconds(0));
      const size_t ran = server->poll();
      const bool read = drain();
      idle = delivered || ran > 0 || read ? 0 : idle + 1;
    }
  }

  void write(std::string_view bytes, bool settle_after = true) {
    if (sent_.size() < 5) {
      sent_.append(bytes.substr(0, 5 - sent_.size()));
      if (sent_ == "HEAD ") stream.answers_head();
    }
    int stuck = 0;
    while (!bytes.empty() && client_open && client_writes) {
      const ssize_t n = send(client, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
        stuck = 0;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // The server reads when it may; one that paused reading takes no
        // more, and the rest is dropped.
        if (++stuck > 4) break;
        settle();
        continue;
      }
      CHECK(n < 0 && (errno == EPIPE || errno == ECONNRESET));  // the server closed
      break;
    }
    if (settle_after) {
      settle();
    } else {
      server->poll_one();
    }
  }

  void half_close() {
    if (!client_open || !client_writes) return;
    shutdown(client, SHUT_WR);
    client_writes = false;
  }

  void close_client() {
    if (!client_open) return;
    close(client);
    client = -1;
    client_open = false;
  }

  void server_event(unsigned which) {
    switch (which % 6) {
      case 0:
        server->run_chores();
        break;
      case 1:
        server->set_kafka_reachable(false, "broker down");
        break;
      case 2:
        server->set_kafka_reachable(true, "");
        break;
      case 3:
        server->stop_reading();
        shutting_down = true;
        break;
      case 4:
        // No grace: the finish handler stops the context at once instead of
        // polling the registry on a real timer (Server::poll starts it again).
        server->finish(std::chrono::milliseconds(0));
        shutting_down = true;
        break;
      case 5:
        sink.refuse = true;
        break;
    }
    settle();
  }

  // The client leaves (if it has not yet), and the server must let go.
  void finish() {
    half_close();
    client_reads = true;
    settle();
    // stop_reading() pauses every connection for good, and a session that
    // wakes after finish() pauses its own: only the close timeout, which
    // never fires here, ends those.
    if (shutting_down) return;
    if (client_open) CHECK(stream.ended());  // the server closed its end
    CHECK(inode_of(server_fd) != server_inode);  // its socket is closed
    CHECK(server->open_connections() == 0);      // every session left
    CHECK(server->counters().connections_opened == server->counters().connections_closed);
  }
};

// Op 1 writing `bytes` (1 to 4096 of them), then settling.
std::string write_op(std::string_view bytes) {
  const size_t n = bytes.size() - 1;
  std::string op;
  op += static_cast<char>(1 | (n >> 8) << 3);
  op += static_cast<char>(n & 0xFF);
  op.append(bytes);
  return op;
}

struct Outcome {
  bool upgraded = false;
  size_t frames = 0;
};

Outcome run(Input in) {
  const uint8_t c0 = in.byte(), c1 = in.byte(), c2 = in.byte();
  World w(c0, c1, c2);
  w.settle();
  while (!in.empty()) {
    const uint8_t b = in.byte();
    const unsigned arg = b >> 3;
    switch (b & 7) {
      case 0:
        w.last_write = in.take(arg + 1);
        w.write(w.last_write);
        break;
      case 1:
        w.last_write = in.take(((arg & 15) << 8 | in.byte()) + 1);
        w.write(w.last_write, /*settle_after=*/(arg & 16) == 0);
        break;
      case 2:
        w.client_reads = (arg & 1) == 0;
        w.settle();
        break;
      case 3:
        for (unsigned i = 0; i <= arg; ++i) w.cluster.append("t", 0, value_of(64, i));
        w.settle();
        break;
      case 4:
        w.half_close();
        w.settle();
        break;
      case 5:
        w.close_client();
        w.settle();
        break;
      case 6:
        w.server_event(arg);
        break;
      case 7:
        if (arg < 2) {
          w.sink.fail = arg == 1;
          break;
        }
        {
          std::string again;
          for (unsigned i = 1; i < arg; ++i) again += w.last_write;
          w.write(again);
        }
        break;
    }
  }
  w.finish();
  if (std::getenv("KWS_FUZZ_TRACE")) {
    std::fprintf(stderr, "fuzz_connection: %s; sessions opened %llu, closed %llu\n", w.stream.summary().c_str(),
                 static_cast<unsigned long long>(w.server->counters().connections_opened.load()),
                 static_cast<unsigned long long>(w.server->counters().connections_closed.load()));
  }
  return {w.stream.upgraded(), w.stream.frames()};
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  signal(SIGPIPE, SIG_IGN);
  // The harness must reach a session, or every input tests nothing: a
  // plain upgrade subscribing to t (with two records) must get its 101 and
  // the records. Fails loudly when Connection stops taking the socketpair.
  const std::string upgrade =
      "GET /v2/broker/?topics=t&offset=earliest HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  const std::string input = std::string("\0\2\0", 3) + write_op(upgrade);
  const Outcome o = run(Input{reinterpret_cast<const uint8_t*>(input.data()), input.size()});
  if (!o.upgraded || o.frames < 2) {
    std::fprintf(stderr, "fuzz_connection: the self-check upgrade got no session (upgraded %d, %zu frames)\n",
                 o.upgraded, o.frames);
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run(Input{data, size});
  return 0;
}
