// A minimal WebSocket server for benchmarking `kws ingest`: accepts one
// connection at a time, answers the upgrade, and sends fixed-size text
// messages {"seq":N,...} as fast as the socket takes them, many per write().
// It answers pings and reads (and drops) everything else the client sends.
//
//   kws_bench_feed [--size 100 (40..65535)] [--count N] [--drop-after K]
// prints "PORT=<port>" on stdout, then per connection on stderr:
//   "open <connection> <wall ms>", "sent <n> <seconds>", "dropped <wall ms>".
// --count: messages per connection (then it idles until the client leaves).
// --drop-after K: the first connection is cut (TCP close) after K messages.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "core/util/text.hpp"
#include "core/ws_frame.hpp"

namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool handshake(int fd) {
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    req.append(buf, static_cast<size_t>(n));
  }
  std::string lower = req;
  for (auto& c : lower) c = static_cast<char>(tolower(c));
  size_t k = lower.find("sec-websocket-key:");
  if (k == std::string::npos) return false;
  size_t start = req.find_first_not_of(' ', k + 18);
  size_t end = req.find("\r\n", start);
  std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: " + kws::websocket_accept(req.substr(start, end - start)) + "\r\n\r\n";
  return write_all(fd, resp.data(), resp.size());
}

// Reads client frames; answers pings; returns when the client goes away.
void reader(int fd, std::mutex& write_mutex, std::atomic<bool>& gone) {
  using kws::ws::Opcode;
  std::string in;
  char buf[65536];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    // Whole frames only; anything else (a partial frame, a length no one
    // could send) waits for more bytes. No validation: this is a load source.
    kws::ws::FrameHeader h;
    while (kws::ws::read_frame_header(in, h) == kws::ws::HeaderRead::complete && in.size() - h.size >= h.length) {
      const size_t total = h.size + static_cast<size_t>(h.length);
      if (h.opcode == Opcode::ping || h.opcode == Opcode::close) {
        std::string payload = in.substr(h.size, static_cast<size_t>(h.length));
        if (h.masked) kws::ws::mask_payload(payload.data(), payload.size(), h.mask);
        // A pong with the ping's payload; a close echoed as it came.
        const std::string frame = kws::ws::frame(h.opcode == Opcode::ping ? Opcode::pong : Opcode::close, payload);
        std::lock_guard<std::mutex> lock(write_mutex);
        write_all(fd, frame.data(), frame.size());
        if (h.opcode == Opcode::close) {
          gone = true;
          return;
        }
      }
      in.erase(0, total);
    }
  }
  gone = true;
}

}  // namespace

int main(int argc, char** argv) {
  size_t size = 100;
  uint64_t count = UINT64_MAX;
  uint64_t drop_after = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--size") size = v;
    else if (a == "--count") count = v;
    else if (a == "--drop-after") drop_after = v;
    else {
      fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  // Up to 65535: that covers the sizes where a byte bound, not a message
  // count, limits what kws holds.
  if (size < 40 || size > 65535) {
    fprintf(stderr, "--size must be 40..65535\n");
    return 2;
  }
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(ls, 16) != 0) {
    perror("bind/listen");
    return 1;
  }
  socklen_t alen = sizeof addr;
  getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &alen);
  printf("PORT=%d\n", ntohs(addr.sin_port));
  fflush(stdout);

  uint64_t seq = 0;
  for (int connection = 1;; ++connection) {
    int fd = ::accept(ls, nullptr, nullptr);
    if (fd < 0) continue;
    if (!handshake(fd)) {
      ::close(fd);
      continue;
    }
    fprintf(stderr, "open %d %lld\n", connection, static_cast<long long>(wall_ms()));
    std::mutex write_mutex;
    std::atomic<bool> gone{false};
    std::thread r(reader, fd, std::ref(write_mutex), std::ref(gone));
    const uint64_t limit = (connection == 1 && drop_after > 0) ? drop_after : count;
    auto start = std::chrono::steady_clock::now();
    std::string chunk;
    chunk.reserve(1 << 17);
    char msg[128];
    uint64_t sent = 0;
    while (sent < limit && !gone) {
      chunk.clear();
      for (int k = 0; k < 1000 && sent < limit; ++k, ++sent) {
        int n = snprintf(msg, sizeof msg, "{\"seq\":%llu,\"pad\":\"", static_cast<unsigned long long>(seq++));
        size_t pad = size - static_cast<size_t>(n) - 2;
        kws::ws::append_frame_header(chunk, kws::ws::Opcode::text, size);
        chunk.append(msg, static_cast<size_t>(n));
        chunk.append(pad, 'x');
        chunk += "\"}";
      }
      std::lock_guard<std::mutex> lock(write_mutex);
      if (!write_all(fd, chunk.data(), chunk.size())) break;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fprintf(stderr, "sent %llu %.3f\n", static_cast<unsigned long long>(sent), secs);
    if (connection == 1 && drop_after > 0) {
      fprintf(stderr, "dropped %lld\n", static_cast<long long>(wall_ms()));
      ::shutdown(fd, SHUT_RDWR);
    }
    r.join();
    ::close(fd);
  }
}
