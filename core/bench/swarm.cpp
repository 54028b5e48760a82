#include "core/bench/swarm.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/util/error.hpp"

namespace kws::bench {

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

struct Swarm::Client {
  enum State : uint8_t { idle, connecting, handshaking, open, closed };
  int fd = -1;
  State state = idle;
  bool subscribed = false;
  Opcode fragment_opcode = Opcode::continuation;
  std::string in;        // bytes not parsed yet (the answer's head, or a partial frame)
  std::string fragment;  // a fragmented message being reassembled
  uint64_t unique = 0;
  std::vector<uint64_t> seen;  // bit per seq
};

namespace {

void raise_fd_limit(size_t clients) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  const rlim_t want = static_cast<rlim_t>(clients) + 64;  // the producer and stdio need some too
  if (rl.rlim_cur < want) {
    rl.rlim_cur = std::min(rl.rlim_max, want);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < want) {
    throw Error(std::to_string(clients) + " connections need " + std::to_string(want) +
                " file descriptors; the hard limit is " + std::to_string(rl.rlim_max) + " (raise it with ulimit -n)");
  }
}

}  // namespace

Swarm::Swarm(SwarmOptions options) : options_(std::move(options)), clients_(options_.clients), buffer_(1 << 18) {
  raise_fd_limit(options_.clients);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(options_.url.host.c_str(), std::to_string(options_.url.port).c_str(), &hints, &found);
  if (rc != 0 || !found) {
    throw Error("cannot resolve '" + options_.url.host + "': " + gai_strerror(rc));
  }
  family_ = found->ai_family;
  address_.assign(reinterpret_cast<unsigned char*>(found->ai_addr),
                  reinterpret_cast<unsigned char*>(found->ai_addr) + found->ai_addrlen);
  freeaddrinfo(found);
  std::string key = new_handshake_key();
  request_ = handshake_request(options_.url, options_.target, key, options_.subprotocol);
  accept_ = websocket_accept(key);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw Error(std::string("epoll_create1: ") + strerror(errno));
  if (options_.planned_messages > 0) {
    for (auto& c : clients_) c.seen.assign((options_.planned_messages + 63) / 64, 0);
  }
}

Swarm::~Swarm() {
  for (auto& c : clients_) {
    if (c.fd >= 0) ::close(c.fd);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void Swarm::start_connect(size_t index) {
  Client& c = clients_[index];
  c.fd = socket(family_, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) throw Error(std::string("cannot open a socket: ") + strerror(errno));
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(c.fd, reinterpret_cast<const sockaddr*>(address_.data()), static_cast<socklen_t>(address_.size())) != 0 &&
      errno != EINPROGRESS) {
    throw Error("cannot connect to " + options_.url.host + ":" + std::to_string(options_.url.port) + ": " + strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = index;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev);
  c.state = Client::connecting;
  ++connecting_;
}

void Swarm::connect(uint64_t deadline_ns, const StopCheck& stop) {
  while (open_ < clients_.size()) {
    while (next_ < clients_.size() && connecting_ < options_.max_connecting) start_connect(next_++);
    pump(20);
    if (!fatal_.empty()) throw Error(fatal_);
    if (stop && stop()) return;
    if (monotonic_ns() > deadline_ns) {
      throw Error("only " + std::to_string(open_) + " of " + std::to_string(clients_.size()) +
                  " WebSocket connections opened in time (--connect-timeout)");
    }
    if (next_ == clients_.size() && connecting_ == 0 && open_ < clients_.size()) {
      throw Error(counters_.first_close.empty() ? "connections closed during the handshake"
                                                 : "a connection closed during the handshake: " + counters_.first_close);
    }
  }
}

void Swarm::pump(int timeout_ms) {
  epoll_event events[512];
  int n = epoll_wait(epoll_fd_, events, 512, timeout_ms);
  for (int i = 0; i < n; i++) on_event(clients_[events[i].data.u64], events[i].events);
}

void Swarm::mark_closed(Client& c, const std::string& why, bool by_server) {
  if (c.state == Client::closed) return;
  if (c.state == Client::open) --open_;
  if (c.state == Client::connecting || c.state == Client::handshaking) --connecting_;
  c.state = Client::closed;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  if (by_server && !closing_) {
    ++counters_.closed_by_server;
    if (counters_.first_close.empty()) counters_.first_close = why;
  }
}

void Swarm::on_event(Client& c, uint32_t events) {
  if (c.state == Client::connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      fatal_ = "cannot connect to " + options_.url.host + ":" + std::to_string(options_.url.port) + ": " + strerror(err);
      mark_closed(c, fatal_, false);
      return;
    }
    // A ~250-byte request into a fresh socket's empty send buffer goes out whole.
    if (send(c.fd, request_.data(), request_.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request_.size())) {
      fatal_ = std::string("cannot send the WebSocket handshake: ") + strerror(errno);
      mark_closed(c, fatal_, false);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = static_cast<uint64_t>(&c - clients_.data());
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
    c.state = Client::handshaking;
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

void Swarm::on_readable(Client& c) {
  for (;;) {
    if (c.state == Client::closed) return;
    ssize_t r = read(c.fd, buffer_.data(), buffer_.size());
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r < 0 && errno == EAGAIN) return;
      std::string why = r == 0 ? "the server closed the connection without a close frame"
                               : std::string("read: ") + strerror(errno);
      if (c.state == Client::handshaking && fatal_.empty()) fatal_ = "the server closed the connection during the handshake";
      mark_closed(c, why, true);
      return;
    }
    const uint64_t rx = monotonic_ns();  // one clock read per read(): frames of one read share it
    counters_.reads++;
    counters_.read_bytes += static_cast<uint64_t>(r);
    std::string_view bytes(buffer_.data(), static_cast<size_t>(r));
    if (c.state == Client::handshaking) {
      c.in.append(bytes);
      HandshakeAnswer a = check_handshake(c.in, accept_, options_.subprotocol);
      if (a.header_bytes == 0) {
        if (c.in.size() > 65536) fatal_ = "the server's handshake answer is over 64 KiB";
        continue;
      }
      if (!a.ok) {
        // Take the rest of a short error body if it is already there.
        std::string why = a.error;
        if (fatal_.empty()) fatal_ = why;
        mark_closed(c, why, false);
        return;
      }
      c.state = Client::open;
      --connecting_;
      ++open_;
      c.in.erase(0, a.header_bytes);
      bytes = {};
    }
    size_t used = 0;
    if (c.in.empty()) {
      if (!on_frames(c, bytes, rx, used)) return;
      if (used < bytes.size()) c.in.assign(bytes.substr(used));
    } else {
      c.in.append(bytes);
      if (!on_frames(c, c.in, rx, used)) return;
      c.in.erase(0, used);
    }
    if (static_cast<size_t>(r) < buffer_.size()) return;
  }
}

bool Swarm::on_frames(Client& c, std::string_view bytes, uint64_t rx_ns, size_t& used) {
  std::string error;
  for (;;) {
    FrameView f;
    size_t n = parse_server_frame(bytes.substr(used), f, error);
    if (n == 0) {
      if (!error.empty()) {
        mark_closed(c, "protocol error: " + error, true);
        return false;
      }
      return true;
    }
    used += n;
    switch (f.opcode) {
      case Opcode::text:
      case Opcode::binary:
        if (f.fin) {
          on_message(c, f.opcode, f.payload, rx_ns);
        } else {
          c.fragment_opcode = f.opcode;
          c.fragment.assign(f.payload);
        }
        break;
      case Opcode::continuation:
        c.fragment.append(f.payload);
        if (f.fin) {
          std::string whole;
          whole.swap(c.fragment);
          on_message(c, c.fragment_opcode, whole, rx_ns);
        }
        break;
      case Opcode::ping: {
        std::string pong = client_frame(Opcode::pong, f.payload.substr(0, 125));
        (void)!send(c.fd, pong.data(), pong.size(), MSG_NOSIGNAL);
        counters_.pings++;
        break;
      }
      case Opcode::close: {
        auto [code, reason] = close_reason(f.payload);
        if (c.state == Client::open && !closing_) {
          std::string reply = client_frame(Opcode::close, f.payload.substr(0, 2));
          (void)!send(c.fd, reply.data(), reply.size(), MSG_NOSIGNAL);
        }
        mark_closed(c, "close " + std::to_string(code) + (reason.empty() ? "" : " '" + reason + "'"), true);
        return false;
      }
      default:
        break;  // pong or reserved opcodes: nothing to do
    }
    if (c.state == Client::closed) return false;
  }
}

void Swarm::on_message(Client& c, Opcode opcode, std::string_view payload, uint64_t rx_ns) {
  if (auto s = find_stamp(payload, options_.tag)) {
    counters_.stamped++;
    if (s->seq >= options_.planned_messages) {
      counters_.foreign++;
      return;
    }
    uint64_t& word = c.seen[s->seq >> 6];
    const uint64_t bit = uint64_t(1) << (s->seq & 63);
    if (word & bit) {
      counters_.duplicates++;
      return;
    }
    word |= bit;
    c.unique++;
    counters_.unique++;
    if (!counters_.first_rx_ns) counters_.first_rx_ns = rx_ns;
    counters_.last_rx_ns = rx_ns;
    latency_.add(rx_ns > s->sent_ns ? (rx_ns - s->sent_ns) / 1000 : 0);
    return;
  }
  // kws's control frames (docs/PROTOCOL.md); a kafka-websocket server sends none.
  if (opcode == Opcode::text && payload.rfind("{\"type\":\"", 0) == 0) {
    std::string_view type = payload.substr(9);
    if (type.rfind("subscribed\"", 0) == 0) {
      if (!c.subscribed) ++subscribed_;
      c.subscribed = true;
    } else if (type.rfind("error\"", 0) == 0) {
      if (counters_.error_frames++ == 0) counters_.first_error_frame = std::string(payload.substr(0, 300));
    } else if (type.rfind("dropped\"", 0) == 0) {
      size_t at = payload.find("\"count\":");
      if (at != std::string_view::npos) counters_.dropped_reported += std::strtoull(payload.data() + at + 8, nullptr, 10);
    }
    return;
  }
  counters_.foreign++;
}

size_t Swarm::clients() const { return clients_.size(); }

size_t Swarm::incomplete(uint64_t expected) const {
  size_t n = 0;
  for (const auto& c : clients_) {
    if (c.state == Client::open && c.unique < expected) ++n;
  }
  return n;
}

void Swarm::close_all(int timeout_ms) {
  closing_ = true;
  const std::string frame = client_frame(Opcode::close, std::string_view("\x03\xe8", 2));
  for (auto& c : clients_) {
    if (c.state == Client::open) {
      (void)!send(c.fd, frame.data(), frame.size(), MSG_NOSIGNAL);
      shutdown(c.fd, SHUT_WR);
    } else if (c.state != Client::closed && c.state != Client::idle) {
      mark_closed(c, "", false);
    }
  }
  const uint64_t deadline = monotonic_ns() + uint64_t(timeout_ms) * 1000000;
  while (open_ > 0 && monotonic_ns() < deadline) pump(20);
  for (auto& c : clients_) {
    if (c.state != Client::closed && c.state != Client::idle) mark_closed(c, "", false);
  }
}

}  // namespace kws::bench
