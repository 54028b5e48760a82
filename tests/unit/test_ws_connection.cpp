// ws::Connection against a real loopback socket: lifetimes the transport
// must get right whatever the peer does (run under ASan and TSan with the
// rest of the unit tests).
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <thread>

#include "core/ws/connection.hpp"

using namespace kws;

namespace {

const std::string kUpgrade =
    "GET /v2/broker/?topics=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// A masked text frame "hi".
std::string masked_hi() {
  std::string f = "\x81\x82" "abcd";
  f += static_cast<char>('h' ^ 'a');
  f += static_cast<char>('i' ^ 'b');
  return f;
}

struct Events : LinkEvents {
  Link* link = nullptr;
  bool pause_on_message = false;
  int messages = 0;
  bool closed = false;
  void on_message(MessageKind, std::string&) override {
    ++messages;
    if (pause_on_message && link) link->pause_reading();
  }
  void on_drained() override {}
  void on_closed() override {
    closed = true;
    link = nullptr;
  }
};

struct Pair {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  asio::ip::tcp::socket client{io};
  asio::ip::tcp::socket server{io};
  ws::Connection::Limits limits;
  Pair() {
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
  void spin(int rounds = 20) {
    for (int i = 0; i < rounds; ++i) {
      io.poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  void reset_client() {
    struct linger lg {1, 0};
    setsockopt(client.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client.close();
  }
  std::shared_ptr<const ws::Connection::RequestHandler> handler(std::shared_ptr<Events> events,
                                                                 std::function<void()> after = {}) {
    return std::make_shared<const ws::Connection::RequestHandler>(
        [events, after](const std::shared_ptr<ws::Connection>& c, const ws::HttpRequest& r) {
          c->accept_upgrade(r, "", events);
          if (!events->closed) events->link = c.get();
          if (after) after();
        });
  }
};

}  // namespace

TEST_CASE("connection: a paused connection whose client reset survives a write that fails at once") {
  Pair p;
  auto events = std::make_shared<Events>();
  events->pause_on_message = true;
  std::make_shared<ws::Connection>(std::move(p.server), p.limits, p.handler(events))->start();
  asio::write(p.client, asio::buffer(kUpgrade + masked_hi()));
  p.spin();
  REQUIRE(events->messages == 1);
  REQUIRE(events->link);  // paused now: only the connection itself holds it
  p.reset_client();
  p.spin(4);
  // What Session::flush does from a wake-up: the write fails, the
  // connection shuts, and it must still be there when write() returns.
  std::vector<OutItem> items;
  items.push_back(OutItem{nullptr, std::string(1000, 'x')});
  events->link->write(items);
  p.spin(4);
  CHECK(events->closed);
}

TEST_CASE("connection: a client gone before the handshake answer closes the session before it opens") {
  Pair p;
  auto events = std::make_shared<Events>();
  bool open_after_close = false;
  asio::write(p.client, asio::buffer(kUpgrade));
  p.reset_client();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto con = std::make_shared<ws::Connection>(std::move(p.server), p.limits,
                                              p.handler(events, [&] { open_after_close = events->closed; }));
  con->start();
  p.spin(4);
  // The server must not open a session whose link already closed
  // (Session::open checks; this pins the order that makes it necessary).
  CHECK(events->closed);
  CHECK(open_after_close);
}
