#include "core/bench/swarm.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
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
  enum State : uint8_t { idle, connecting, tls_handshaking, handshaking, open, closed };
  int fd = -1;
  SSL* ssl = nullptr;  // wss:// only
  State state = idle;
  bool subscribed = false;
  Opcode fragment_opcode = Opcode::continuation;
  bool watching_writable = false;  // EPOLLOUT asked for, while `out` waits
  std::string in;        // bytes not parsed yet (the answer's head, or a partial frame)
  std::string out;       // bytes the socket has not taken yet (a pong, the close frame)
  std::string fragment;  // a fragmented message being reassembled
  uint64_t unique = 0;
  std::vector<uint64_t> seen;  // bit per seq
  mqtt::PacketReader mqtt;     // MQTT: the packet stream, across frames and reads
  // MQTT publishers: when each packet id (index + 1) was sent, 0 when free.
  std::vector<uint64_t> sent_ns;
  std::string publish_topic;
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

// The first OpenSSL error queued in this thread, in words, and the queue cleared.
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// One client context for every connection; the files are loaded here, so a
// bad --ca is an error before any connection is opened.
SSL_CTX* make_client_context(const SwarmOptions& o) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) throw Error("cannot create a TLS context: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Buffers only while a record is in flight: 10,000 idle clients stay small.
  // A write the socket took part of is retried from the client's queue of
  // pending bytes, which may have grown and moved since (send_pending).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (o.insecure) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  bool loaded = o.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) == 1
                                  : SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) == 1;
  if (!loaded) {
    std::string why = openssl_error();
    SSL_CTX_free(ctx);
    throw Error(o.ca_file.empty() ? "cannot load the system CA store: " + why
                                  : "--ca " + o.ca_file + ": not a readable PEM file of CA certificates (" + why + ")");
  }
  // OpenSSL checks the name itself, so a mismatch is reported as such by
  // SSL_get_verify_result (as kws ingest does).
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const std::string& host = o.url.host;
  int ok = is_ip_literal(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                               : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  if (ok != 1) {
    SSL_CTX_free(ctx);
    throw Error("cannot check the host name '" + host + "' of the server's certificate");
  }
  return ctx;
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
  if (options_.mqtt) options_.subprotocol = "mqtt";
  std::string key = new_handshake_key();
  if (options_.targets.empty()) {
    requests_.push_back(handshake_request(options_.url, options_.target, key, options_.subprotocol));
  } else {
    for (const auto& t : options_.targets) requests_.push_back(handshake_request(options_.url, t, key, options_.subprotocol));
  }
  accept_ = websocket_accept(key);
  if (options_.url.tls) tls_ = make_client_context(options_);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw Error(std::string("epoll_create1: ") + strerror(errno));
  if (options_.planned_messages > 0) {
    for (auto& c : clients_) c.seen.assign((options_.planned_messages + 63) / 64, 0);
  }
  if (options_.mqtt && options_.publish_window > 0) {
    for (size_t i = 0; i < clients_.size(); i++) {
      clients_[i].sent_ns.assign(std::min<size_t>(options_.publish_window, 65535), 0);
      clients_[i].publish_topic = options_.publish_topic + "/" + std::to_string(i);
    }
  }
}

Swarm::~Swarm() {
  for (auto& c : clients_) {
    if (c.ssl) SSL_free(c.ssl);
    if (c.fd >= 0) ::close(c.fd);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (tls_) SSL_CTX_free(tls_);
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
                  " connections opened in time (--connect-timeout)");
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
  if (c.state == Client::connecting || c.state == Client::tls_handshaking || c.state == Client::handshaking) {
    --connecting_;
  }
  c.state = Client::closed;
  if (c.ssl) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
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
    if (tls_) {
      start_tls(c);
    } else if (options_.url.raw_mqtt) {
      watch(c, EPOLLIN | EPOLLRDHUP);
      c.watching_writable = false;
      c.state = Client::open;
      --connecting_;
      ++open_;
      start_mqtt(c);
    } else {
      send_request(c);
    }
    return;
  }
  if (c.state == Client::tls_handshaking) {
    continue_tls(c);
    return;
  }
  if ((events & EPOLLOUT) && !c.out.empty() && !flush_pending(c)) {
    mark_closed(c, "cannot write: " + (c.ssl ? openssl_error() : std::string(strerror(errno))), true);
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

void Swarm::watch(Client& c, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = static_cast<uint64_t>(&c - clients_.data());
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Swarm::send_request(Client& c) {
  // From here on the client waits to read, and to write only while bytes wait.
  watch(c, EPOLLIN | EPOLLRDHUP);
  c.watching_writable = false;
  c.state = Client::handshaking;
  const size_t index = static_cast<size_t>(&c - clients_.data());
  if (!send_bytes(c, requests_[index % requests_.size()])) {
    fatal_ = std::string("cannot send the WebSocket handshake: ") + (c.ssl ? openssl_error() : strerror(errno));
    mark_closed(c, fatal_, false);
  }
}

void Swarm::start_tls(Client& c) {
  c.ssl = SSL_new(tls_);
  if (!c.ssl || SSL_set_fd(c.ssl, c.fd) != 1) {
    fatal_ = "cannot start TLS: " + openssl_error();
    mark_closed(c, fatal_, false);
    return;
  }
  // Fewer read(2) calls per record: the records of a batch come in one read.
  SSL_set_read_ahead(c.ssl, 1);
  if (!is_ip_literal(options_.url.host)) SSL_set_tlsext_host_name(c.ssl, options_.url.host.c_str());
  c.state = Client::tls_handshaking;
  continue_tls(c);
}

void Swarm::continue_tls(Client& c) {
  ERR_clear_error();
  errno = 0;
  int rc = SSL_connect(c.ssl);
  if (rc == 1) {
    send_request(c);
    return;
  }
  int e = SSL_get_error(c.ssl, rc);
  if (e == SSL_ERROR_WANT_READ) {
    watch(c, EPOLLIN | EPOLLRDHUP);
  } else if (e == SSL_ERROR_WANT_WRITE) {
    watch(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
  } else {
    std::string why = tls_failure(c, e);
    if (fatal_.empty()) fatal_ = why;
    mark_closed(c, why, false);
  }
}

// Why SSL_connect failed, from OpenSSL's codes (never its text), in words
// that say what to do; the wording follows kws ingest's.
std::string Swarm::tls_failure(Client& c, int ssl_error) {
  const std::string where = options_.url.host + ":" + std::to_string(options_.url.port);
  long verify = SSL_get_verify_result(c.ssl);
  if (verify != X509_V_OK) {
    ERR_clear_error();
    return "the TLS handshake with " + where + " failed: certificate verify failed: " +
           X509_verify_cert_error_string(verify) +
           (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH
                ? ""
                : " (is --ca right? --insecure skips the check)");
  }
  unsigned long e = ERR_peek_error();
  if (ssl_error == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
      (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER || ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG)) {
    ERR_clear_error();
    return "the server at " + where + " answered the TLS handshake with something that is not TLS: it is no TLS port; "
           "try ws:// instead of wss://";
  }
  if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    std::string why = openssl_error();
    if (why.empty() && errno != 0 && ssl_error == SSL_ERROR_SYSCALL) why = strerror(errno);
    return "the server at " + where + " closed the connection during the TLS handshake" +
           (why.empty() ? "" : " (" + why + ")") + " (a plain ws:// port does that; if it is one, use ws://)";
  }
  return "the TLS handshake with " + where + " failed: " + openssl_error();
}

ssize_t Swarm::read_some(Client& c, std::string& error) {
  if (!c.ssl) {
    for (;;) {
      ssize_t r = read(c.fd, buffer_.data(), buffer_.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno != EAGAIN) error = std::string("read: ") + strerror(errno);
      return r;
    }
  }
  ERR_clear_error();
  errno = 0;
  int r = SSL_read(c.ssl, buffer_.data(), static_cast<int>(std::min<size_t>(buffer_.size(), 1 << 30)));
  if (r > 0) return r;
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:  // a key update being answered; the socket says when to go on
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:  // close_notify
      return 0;
    case SSL_ERROR_SYSCALL: {
      std::string why = openssl_error();
      if (why.empty() && errno == 0) return 0;  // EOF without close_notify
      error = "TLS read: " + (why.empty() ? std::string(strerror(errno)) : why);
      return -1;
    }
    default:
      error = "TLS read: " + openssl_error();
      return -1;
  }
}

bool send_pending(SSL* ssl, int fd, std::string& pending) {
  size_t sent = 0;
  while (sent < pending.size()) {
    const size_t left = std::min<size_t>(pending.size() - sent, 1 << 30);
    if (!ssl) {
      const ssize_t n = send(fd, pending.data() + sent, left, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0) return false;
      sent += static_cast<size_t>(n);
      continue;
    }
    ERR_clear_error();
    const int n = SSL_write(ssl, pending.data() + sent, static_cast<int>(left));
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    const int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;  // retried with these bytes first
    return false;
  }
  pending.erase(0, sent);
  return true;
}

bool Swarm::send_bytes(Client& c, std::string_view bytes) {
  c.out.append(bytes);
  return flush_pending(c);
}

bool Swarm::flush_pending(Client& c) {
  if (!send_pending(c.ssl, c.fd, c.out)) return false;
  const bool waiting = !c.out.empty();
  if (waiting != c.watching_writable) {
    watch(c, EPOLLIN | EPOLLRDHUP | (waiting ? uint32_t(EPOLLOUT) : 0u));
    c.watching_writable = waiting;
  }
  if (!waiting && c.out.capacity() > 4096) std::string().swap(c.out);
  return true;
}

void Swarm::on_readable(Client& c) {
  for (;;) {
    if (c.state == Client::closed) return;
    std::string error;
    ssize_t r = read_some(c, error);
    if (r <= 0) {
      if (r < 0 && error.empty()) return;  // EAGAIN
      std::string why = r == 0 ? "the server closed the connection without a close frame" : error;
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
      if (options_.mqtt) {
        start_mqtt(c);
        if (c.state == Client::closed) return;
      }
    }
    if (options_.url.raw_mqtt) {
      if (!on_mqtt_bytes(c, bytes, rx)) return;
      if (static_cast<size_t>(r) < buffer_.size()) return;
      continue;
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
    // Level-triggered epoll calls again for what is left in the socket, but
    // not for what OpenSSL has read ahead: a TLS client reads until WANT_READ.
    if (!c.ssl && static_cast<size_t>(r) < buffer_.size()) return;
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
        (void)send_bytes(c, client_frame(Opcode::pong, f.payload.substr(0, 125)));
        counters_.pings++;
        break;
      }
      case Opcode::close: {
        auto [code, reason] = close_reason(f.payload);
        if (c.state == Client::open && !closing_) {
          (void)send_bytes(c, client_frame(Opcode::close, f.payload.substr(0, 2)));
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
  if (options_.mqtt) {
    if (opcode == Opcode::binary) {
      (void)on_mqtt_bytes(c, payload, rx_ns);
    } else {
      counters_.foreign++;  // MQTT over WebSocket is binary frames only
    }
    return;
  }
  if (on_stamped(c, payload, rx_ns)) return;
  // kws's control frames (docs/PROTOCOL.md); a kafka-websocket server sends none.
  if (opcode == Opcode::text && payload.rfind("{\"type\":\"", 0) == 0) {
    std::string_view type = payload.substr(9);
    if (type.rfind("subscribed\"", 0) == 0) {
      mark_ready(c);
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

void Swarm::mark_ready(Client& c) {
  if (!c.subscribed) ++subscribed_;
  c.subscribed = true;
}

bool Swarm::on_stamped(Client& c, std::string_view payload, uint64_t rx_ns) {
  if (auto s = find_stamp(payload, options_.tag)) {
    counters_.stamped++;
    if (s->seq >= options_.planned_messages) {
      counters_.foreign++;
      return true;
    }
    if (!options_.targets.empty() &&
        s->seq % options_.targets.size() != static_cast<size_t>(&c - clients_.data()) % options_.targets.size()) {
      counters_.misdelivered++;
      return true;
    }
    uint64_t& word = c.seen[s->seq >> 6];
    const uint64_t bit = uint64_t(1) << (s->seq & 63);
    if (word & bit) {
      counters_.duplicates++;
      return true;
    }
    word |= bit;
    c.unique++;
    counters_.unique++;
    if (!counters_.first_rx_ns) counters_.first_rx_ns = rx_ns;
    counters_.last_rx_ns = rx_ns;
    latency_.add(rx_ns > s->sent_ns ? (rx_ns - s->sent_ns) / 1000 : 0);
    return true;
  }
  return false;
}

void Swarm::queue_mqtt(Client& c, std::string_view packet) {
  if (options_.url.raw_mqtt) {
    c.out.append(packet);
  } else {
    c.out += client_frame(Opcode::binary, packet);
  }
}

void Swarm::start_mqtt(Client& c) {
  const size_t index = static_cast<size_t>(&c - clients_.data());
  queue_mqtt(c, mqtt::connect_packet("kwsb-" + options_.tag + "-" + std::to_string(index), 0, true));
  // A client may send more packets right after CONNECT (MQTT 3.1.1, 3.1.4);
  // one round trip instead of two for every subscriber.
  if (!options_.mqtt_filter.empty()) queue_mqtt(c, mqtt::subscribe_packet(1, options_.mqtt_filter, 0));
  if (!flush_pending(c)) {
    fatal_ = std::string("cannot send the MQTT CONNECT: ") + (c.ssl ? openssl_error() : strerror(errno));
    mark_closed(c, fatal_, false);
  }
}

bool Swarm::on_mqtt_bytes(Client& c, std::string_view bytes, uint64_t rx_ns) {
  const bool ok = c.mqtt.feed(bytes, [&](const mqtt::Packet& p) { return on_mqtt_packet(c, p, rx_ns); });
  if (c.state == Client::closed) return false;
  if (!ok) {
    mark_closed(c, "MQTT protocol error: " + c.mqtt.error(), true);
    return false;
  }
  // PUBACKs answered and next PUBLISHes, in one write per read.
  if (!c.out.empty() && !flush_pending(c)) {
    mark_closed(c, "cannot write: " + (c.ssl ? openssl_error() : std::string(strerror(errno))), true);
    return false;
  }
  return true;
}

namespace {

const char* connack_meaning(int code) {
  switch (code) {
    case 1: return "unacceptable protocol version";
    case 2: return "identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
    default: return "unknown code";
  }
}

}  // namespace

bool Swarm::on_mqtt_packet(Client& c, const mqtt::Packet& p, uint64_t rx_ns) {
  auto refused = [&](const std::string& why) {
    if (counters_.error_frames++ == 0) counters_.first_error_frame = why;
  };
  auto malformed = [&](const std::string& why) {
    mark_closed(c, "MQTT protocol error: " + why, true);
    return false;
  };
  switch (p.type) {
    case mqtt::publish: {
      mqtt::Publish pub;
      std::string error;
      if (!mqtt::parse_publish(p, pub, error)) return malformed(error);
      if (pub.qos == 1) queue_mqtt(c, mqtt::puback_packet(pub.packet_id));
      if (!on_stamped(c, pub.payload, rx_ns)) counters_.foreign++;
      return true;
    }
    case mqtt::connack: {
      if (p.body.size() < 2) return malformed("CONNACK shorter than 2 bytes");
      const int code = static_cast<unsigned char>(p.body[1]);
      if (code != 0) {
        refused("the server refused the MQTT CONNECT: return code " + std::to_string(code) + " (" +
                connack_meaning(code) + ")");
        return true;
      }
      if (options_.mqtt_filter.empty()) {
        mark_ready(c);
        if (publishing_) {
          for (size_t i = 0; i < c.sent_ns.size(); i++) publish_next(c, static_cast<uint16_t>(i + 1));
        }
      }
      return true;
    }
    case mqtt::suback: {
      uint16_t id = 0;
      if (!mqtt::read_packet_id(p.body, id) || p.body.size() < 3) return malformed("SUBACK shorter than 3 bytes");
      const auto code = static_cast<unsigned char>(p.body[2]);
      if (code & 0x80) {
        refused("the server refused the MQTT SUBSCRIBE to '" + options_.mqtt_filter + "': return code " +
                std::to_string(code));
      } else {
        mark_ready(c);
      }
      return true;
    }
    case mqtt::puback: {
      uint16_t id = 0;
      if (!mqtt::read_packet_id(p.body, id)) return malformed("PUBACK shorter than 2 bytes");
      if (id == 0 || id > c.sent_ns.size() || c.sent_ns[id - 1] == 0) {
        counters_.unexpected_acks++;
        return true;
      }
      const uint64_t sent = c.sent_ns[id - 1];
      c.sent_ns[id - 1] = 0;
      --in_flight_;
      counters_.acked++;
      if (!counters_.first_ack_ns) counters_.first_ack_ns = rx_ns;
      counters_.last_ack_ns = rx_ns;
      latency_.add(rx_ns > sent ? (rx_ns - sent) / 1000 : 0);
      if (publishing_) publish_next(c, id);
      return true;
    }
    case mqtt::pingresp:
      return true;
    default:
      counters_.foreign++;
      return true;
  }
}

void Swarm::publish_next(Client& c, uint16_t packet_id) {
  const uint64_t now = monotonic_ns();
  format_message(payload_, options_.tag, publish_seq_++, now, options_.publish_size);
  packet_.clear();
  mqtt::append_publish(packet_, c.publish_topic, payload_, 1, packet_id);
  queue_mqtt(c, packet_);
  c.sent_ns[packet_id - 1] = now;
  ++in_flight_;
  counters_.published++;
}

void Swarm::start_publishing() {
  publishing_ = true;
  for (auto& c : clients_) {
    if (c.state != Client::open || !c.subscribed) continue;
    for (size_t i = 0; i < c.sent_ns.size(); i++) {
      if (c.sent_ns[i] == 0) publish_next(c, static_cast<uint16_t>(i + 1));
    }
    if (!flush_pending(c)) mark_closed(c, "cannot write: " + std::string(strerror(errno)), true);
  }
}

size_t Swarm::clients() const { return clients_.size(); }

size_t Swarm::incomplete(uint64_t expected) const {
  size_t n = 0;
  for (const auto& c : clients_) {
    if (c.state == Client::open && c.unique < expected) ++n;
  }
  return n;
}

size_t Swarm::incomplete(const std::vector<uint64_t>& expected_per_key) const {
  if (expected_per_key.empty()) return 0;
  size_t n = 0;
  for (size_t i = 0; i < clients_.size(); i++) {
    const auto& c = clients_[i];
    if (c.state == Client::open && c.unique < expected_per_key[i % expected_per_key.size()]) ++n;
  }
  return n;
}

void Swarm::close_all(int timeout_ms) {
  closing_ = true;
  const std::string frame = client_frame(Opcode::close, std::string_view("\x03\xe8", 2));
  for (auto& c : clients_) {
    if (c.state == Client::open) {
      if (options_.mqtt) queue_mqtt(c, mqtt::disconnect_packet());
      if (options_.url.raw_mqtt) {
        (void)flush_pending(c);
      } else {
        (void)send_bytes(c, frame);
      }
      // A TLS client leaves the socket open: the server's close frame still
      // has to come through it. So does a client whose close frame waits.
      if (!c.ssl && c.out.empty()) shutdown(c.fd, SHUT_WR);
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
