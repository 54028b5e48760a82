// The server over a socketpair through its seams (serve_descriptor, poll):
// what a whole connection does, on the test's thread and without timers,
// as tests/fuzz/fuzz_connection.cpp drives it.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "core/hub/hub.hpp"
#include "core/util/log.hpp"
#include "core/ws/server.hpp"
#include "tests/unit/fakes.hpp"

using namespace kws;

namespace {

const std::string kUpgrade =
    "GET /v2/broker/?topics=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// A masked close frame with code 1001.
const std::string kClose1001 = std::string("\x88\x82" "abcd", 6) + static_cast<char>(0x03 ^ 'a') +
                               static_cast<char>(0xE9 ^ 'b');

// A server on fakes of Kafka (a cluster with topic "t", its hub, a sink).
struct ServerWorld {
  test::FakeCluster cluster;
  test::FakeAdmin admin{cluster};
  NullLog log;
  std::unique_ptr<Hub> hub;
  test::FakeSink sink;
  std::unique_ptr<Server> server;

  explicit ServerWorld(ServerOptions options = {}) {
    cluster.create("t", 1);
    HubLimits limits;
    limits.admin_thread = false;
    hub = std::make_unique<Hub>(std::make_unique<test::FakeFeed>(cluster), admin, limits, log);
    ServerServices services;
    services.hub = hub.get();
    services.producer = &sink;
    services.kafka_ready = [] { return true; };
    services.log = &log;
    server = std::make_unique<Server>(std::move(options), services);
  }
};

struct ServerOverSocketpair : ServerWorld {
  int client = -1;
  std::string received;
  bool eof = false;

  ServerOverSocketpair() {
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    client = fds[0];
    REQUIRE(server->serve_descriptor(fds[1]));
  }
  ~ServerOverSocketpair() {
    server.reset();
    close(client);
  }
  // Until nothing moves: the hub, the server's handlers, the client's reads.
  void settle() {
    for (int idle = 0, round = 0; idle < 3 && round < 1000; ++round) {
      hub->run_once(std::chrono::milliseconds(0));
      bool moved = server->poll() > 0;
      char buf[4096];
      ssize_t n;
      while ((n = recv(client, buf, sizeof buf, 0)) > 0) {
        received.append(buf, static_cast<size_t>(n));
        moved = true;
      }
      if (n == 0 && !eof) eof = moved = true;
      idle = moved ? 0 : idle + 1;
    }
  }
  void send_all(const std::string& bytes) {
    REQUIRE(send(client, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
    settle();
  }
};

}  // namespace

TEST_CASE("server: a socket handed over as a descriptor is served as an accepted one, up to the close handshake") {
  ServerOverSocketpair s;
  s.send_all(kUpgrade);
  CHECK(s.received.rfind("HTTP/1.1 101 ", 0) == 0);
  CHECK(s.server->open_connections() == 1);
  s.send_all(kClose1001);
  // The server echoes the code and closes its end first.
  REQUIRE(s.received.size() >= 4);
  CHECK(s.received.substr(s.received.size() - 4) == std::string("\x88\x02\x03\xE9", 4));
  CHECK(s.eof);
  CHECK(s.server->open_connections() == 0);
}

// Found with fuzz_connection: stop_reading() pauses every connection and
// finish() then starts their closing handshakes, but a paused connection
// reads nothing, so the client's answer (or its EOF) is never seen and the
// connection is held until finish's grace or the close timeout: `kws serve`
// with one client that answers at once took 4.0 s to exit after SIGTERM
// instead of 0.15 s without a client, and the client saw TCP close after
// 2.1 s (the bridge's 2 s grace). A connection now reads again once it
// starts closing (Connection::close_with).
TEST_CASE("server: at shutdown a client that answers the close at once is let go at once") {
  ServerOverSocketpair s;
  s.send_all(kUpgrade);
  REQUIRE(s.server->open_connections() == 1);
  s.server->stop_accepting();
  s.server->stop_reading();
  s.settle();
  // No grace: finish() stops the I/O at once instead of waiting on a timer
  // (Server::poll starts it again); the connection then shows what it
  // would do until the grace ran out.
  s.server->finish(std::chrono::milliseconds(0));
  s.settle();
  // The server's close frame: 1001 and a reason.
  const size_t close = s.received.find(std::string("\x03\xE9server shutting down"));
  REQUIRE(close != std::string::npos);
  REQUIRE(s.received[close - 2] == '\x88');
  s.send_all(kClose1001);
  CHECK(s.eof);
  CHECK(s.server->open_connections() == 0);
}

TEST_CASE("server: a HEAD request gets the headers a GET gets, Content-Length included, and no body") {
  std::string answers[2];
  for (int head = 0; head < 2; ++head) {
    ServerOverSocketpair s;
    s.send_all(std::string(head ? "HEAD" : "GET") + " /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(s.eof);
    answers[head] = s.received;
  }
  CHECK(answers[0].find("Content-Length: 3\r\n") != std::string::npos);
  CHECK(answers[0].substr(answers[0].size() - 3) == "ok\n");
  CHECK(answers[1] == answers[0].substr(0, answers[0].size() - 3));
}

namespace {

// Real TCP over loopback, handed to the server through serve_descriptor,
// so the peer address is there and serve.max_connections_per_ip applies.
ServerOptions capped_per_ip(size_t per_ip) {
  ServerOptions options;
  options.max_connections_per_ip = per_ip;
  options.limit_loopback = true;
  return options;
}

struct ServerOverTcp : ServerWorld {
  int listener = -1;
  sockaddr_in address{};

  explicit ServerOverTcp(size_t per_ip) : ServerWorld(capped_per_ip(per_ip)) {
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t len = sizeof address;
    REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &len) == 0);
    REQUIRE(::listen(listener, 8) == 0);
  }
  ~ServerOverTcp() {
    server.reset();
    close(listener);
  }
  // A client socket, its server end served; returns the client's end.
  int connect_client() {
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    int served = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    REQUIRE(served >= 0);
    server->serve_descriptor(served);
    settle();
    return client;
  }
  void settle() {
    for (int i = 0; i < 50; ++i) {
      hub->run_once(std::chrono::milliseconds(0));
      server->poll();
      usleep(1000);
    }
  }
  double gauge(const std::string& name) {
    const std::string text = server->metrics_text();
    const size_t at = text.find("\n" + name + " ");
    REQUIRE(at != std::string::npos);
    return std::stod(text.substr(at + name.size() + 2));
  }
  static std::string read_some(int fd) {
    timeval timeout{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
};

}  // namespace

TEST_CASE("server: the per-IP count goes back to 0 whichever way connections end", "[limits]") {
  ServerOverTcp s(2);
  // An upgraded session that ends with a close handshake.
  int session = s.connect_client();
  REQUIRE(send(session, kUpgrade.data(), kUpgrade.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(kUpgrade.size()));
  s.settle();
  CHECK(ServerOverTcp::read_some(session).rfind("HTTP/1.1 101 ", 0) == 0);
  // A socket in its handshake that says nothing.
  int silent = s.connect_client();
  CHECK(s.gauge("kws_serve_peer_connections") == 2);
  // Over the cap: 429 at once, and not counted.
  int third = s.connect_client();
  const std::string refused = ServerOverTcp::read_some(third);
  CHECK(refused.rfind("HTTP/1.1 429 ", 0) == 0);
  CHECK(refused.find("serve.max_connections_per_ip") != std::string::npos);
  close(third);
  CHECK(s.gauge("kws_serve_peer_connections") == 2);
  CHECK(s.gauge("kws_serve_per_ip_refusals_total") == 1);
  // The silent one resets; the session closes properly.
  linger reset{1, 0};
  setsockopt(silent, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  close(silent);
  send(session, kClose1001.data(), kClose1001.size(), MSG_NOSIGNAL);
  s.settle();
  close(session);
  s.settle();
  CHECK(s.gauge("kws_serve_peer_connections") == 0);
  CHECK(s.gauge("kws_serve_peer_addresses") == 0);
  // A bad request (400 from the connection itself) gives its place back too.
  int bad = s.connect_client();
  const std::string garbage = "NOT HTTP\r\n\r\n";
  send(bad, garbage.data(), garbage.size(), MSG_NOSIGNAL);
  s.settle();
  CHECK(ServerOverTcp::read_some(bad).rfind("HTTP/1.1 400 ", 0) == 0);
  close(bad);
  s.settle();
  CHECK(s.gauge("kws_serve_peer_connections") == 0);
}
