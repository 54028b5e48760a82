// ws::TlsStream against an OpenSSL client, all in memory: the handshake,
// data both ways in pieces of any size, close_notify, a client that is not
// speaking TLS, and the files TlsContext refuses. And a TLS ws::Connection
// over loopback whose client does not read: what its backlog costs.
#include <catch2/catch.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "core/util/error.hpp"
#include "core/ws/connection.hpp"
#include "core/ws/tls.hpp"
#include "tests/unit/tls_identity.hpp"

using namespace kws;
using namespace kws::ws;
using kws::test::Identity;

namespace {

// An OpenSSL client over two memory BIOs; trusts nothing (the test checks
// the server's TLS, not its certificate).
struct Client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  BIO* in = BIO_new(BIO_s_mem());   // what the server sent
  BIO* out = BIO_new(BIO_s_mem());  // what the client sends
  explicit Client(int max_version = 0) {
    if (max_version) SSL_CTX_set_max_proto_version(ctx, max_version);
    ssl = SSL_new(ctx);
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
  }
  ~Client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  std::string take_output() {
    std::string bytes;
    char buf[4096];
    int n;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(n));
    return bytes;
  }
  std::string read_all() {
    std::string plain;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) plain.append(buf, static_cast<size_t>(n));
    return plain;
  }
};

// Hands the server what the client sent, in pieces of `piece` bytes, and
// returns what the server decrypted.
std::string to_server(TlsStream& server, const std::string& ciphertext, size_t piece,
                      TlsStream::ReadStatus& status) {
  std::string plain;
  status = TlsStream::ReadStatus::more;
  char buf[1000];  // smaller than a record: read() is called until it returns 0
  for (size_t at = 0; at < ciphertext.size(); at += piece) {
    server.receive(std::string_view(ciphertext).substr(at, piece));
    while (size_t n = server.read(buf, sizeof buf, status)) plain.append(buf, n);
    if (status != TlsStream::ReadStatus::more) break;
  }
  return plain;
}

void to_client(TlsStream& server, Client& client) {
  const std::string_view out = server.output();
  BIO_write(client.in, out.data(), static_cast<int>(out.size()));
  server.consumed(out.size());
}

// Until the client is done and the server has its Finished (and sent its
// session ticket, in TLS 1.3).
void handshake(TlsStream& server, Client& client, size_t piece) {
  for (int round = 0; round < 10; ++round) {
    SSL_do_handshake(client.ssl);
    const std::string flight = client.take_output();
    if (flight.empty() && SSL_is_init_finished(client.ssl)) break;
    TlsStream::ReadStatus status;
    to_server(server, flight, piece, status);
    REQUIRE(status == TlsStream::ReadStatus::more);
    REQUIRE(server.error().empty());
    to_client(server, client);
  }
  REQUIRE(SSL_is_init_finished(client.ssl));
}

}  // namespace

TEST_CASE("tls: handshake and data both ways, the ciphertext cut anywhere") {
  Identity id;
  TlsContext context(id.cert.path, id.key.path);
  for (int version : {0, TLS1_2_VERSION}) {
    for (size_t piece : {size_t(1), size_t(7), size_t(1 << 20)}) {
      INFO("max version " << version << ", pieces of " << piece);
      TlsStream server(context);
      Client client(version);
      CHECK(server.fresh());
      handshake(server, client, piece);
      CHECK_FALSE(server.fresh());
      CHECK(SSL_version(client.ssl) == (version ? TLS1_2_VERSION : TLS1_3_VERSION));

      // Server to client: more than one record (16 KiB each).
      const std::string big(40000, 'b');
      REQUIRE(server.send("hello "));
      REQUIRE(server.send(big));
      to_client(server, client);
      CHECK(server.output().empty());
      CHECK(client.read_all() == "hello " + big);

      // Client to server, a record cut into pieces.
      const std::string request = "GET / HTTP/1.1\r\n\r\n" + std::string(20000, 'c');
      REQUIRE(SSL_write(client.ssl, request.data(), static_cast<int>(request.size())) > 0);
      TlsStream::ReadStatus status;
      CHECK(to_server(server, client.take_output(), piece, status) == request);
      CHECK(status == TlsStream::ReadStatus::more);
    }
  }
}

TEST_CASE("tls: a client's close_notify ends the stream, and the server answers with its own") {
  Identity id;
  TlsContext context(id.cert.path, id.key.path);
  TlsStream server(context);
  Client client;
  handshake(server, client, 1 << 20);
  SSL_shutdown(client.ssl);
  TlsStream::ReadStatus status;
  CHECK(to_server(server, client.take_output(), 1 << 20, status).empty());
  CHECK(status == TlsStream::ReadStatus::peer_closed);
  server.close_notify();
  to_client(server, client);
  CHECK(SSL_shutdown(client.ssl) == 1);  // both sides said goodbye
}

TEST_CASE("tls: bytes that are not TLS fail the stream with OpenSSL's reason and an alert") {
  Identity id;
  TlsContext context(id.cert.path, id.key.path);
  TlsStream server(context);
  TlsStream::ReadStatus status;
  const std::string garbage = std::string("\x16\x03\x01\x00\x10", 5) + std::string(16, '\xff');
  CHECK(to_server(server, garbage, 1 << 20, status).empty());
  CHECK(status == TlsStream::ReadStatus::failed);
  CHECK(server.error().rfind("TLS: ", 0) == 0);
  REQUIRE_FALSE(server.output().empty());
  CHECK(server.output()[0] == 21);  // an alert record
  CHECK_FALSE(server.send("nothing after a failure"));
}

TEST_CASE("tls: the context refuses missing, swapped and mismatched files, naming them") {
  Identity id;
  Identity other;
  auto refusal = [](const std::string& cert, const std::string& key) -> std::string {
    try {
      TlsContext context(cert, key);
    } catch (const Error& e) {
      CHECK(e.exit_code() == exit_usage);
      return e.what();
    }
    return "accepted";
  };
  CHECK(refusal("/nonexistent.pem", id.key.path).rfind("TLS certificate /nonexistent.pem: not a readable PEM", 0) == 0);
  CHECK(refusal(id.key.path, id.key.path).find("not a readable PEM certificate chain") != std::string::npos);
  CHECK(refusal(id.cert.path, id.cert.path).find("not a readable PEM private key") != std::string::npos);
  CHECK(refusal(id.cert.path, other.key.path).find("does not belong to the certificate") != std::string::npos);
  CHECK(refusal(id.cert.path, id.key.path) == "accepted");
  CHECK(ERR_peek_error() == 0);  // nothing left on the thread's error queue
}

namespace {

struct Events : LinkEvents {
  Link* link = nullptr;
  int drained = 0;
  bool closed = false;
  void on_message(MessageKind, std::string&) override {}
  void on_drained() override { ++drained; }
  void on_closed() override {
    closed = true;
    link = nullptr;
  }
};

// A TLS ws::Connection on loopback and an OpenSSL client on the other end
// of it, both driven from the test's thread; small socket buffers, so what
// the client does not read stays in the connection, not in the kernel.
struct TlsPair {
  Identity id;
  TlsContext context{id.cert.path, id.key.path};
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  asio::ip::tcp::socket client_socket{io};
  ws::Connection::Limits limits;
  std::shared_ptr<Events> events = std::make_shared<Events>();
  std::shared_ptr<ws::Connection> con;
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL* client = nullptr;

  TlsPair() {
    client_socket.open(asio::ip::tcp::v4());
    client_socket.set_option(asio::socket_base::receive_buffer_size(32 * 1024));
    client_socket.connect(acceptor.local_endpoint());
    asio::ip::tcp::socket server(io);
    acceptor.accept(server);
    server.set_option(asio::socket_base::send_buffer_size(32 * 1024));
    auto on_request = std::make_shared<const ws::Connection::RequestHandler>(
        [ev = events](const std::shared_ptr<ws::Connection>& c, const ws::HttpRequest& r) {
          c->accept_upgrade(r, "", ev);
          if (!ev->closed) ev->link = c.get();
        });
    con = std::make_shared<ws::Connection>(std::move(server), limits, on_request, std::make_unique<TlsStream>(context));
    con->start();
    client_socket.non_blocking(true);
    client = SSL_new(client_ctx);
    SSL_set_fd(client, client_socket.native_handle());
    SSL_set_connect_state(client);
  }
  ~TlsPair() {
    SSL_free(client);
    SSL_CTX_free(client_ctx);
  }
  void spin() {
    io.poll();
    io.restart();
  }
  // Runs the server until `done`, for at most 10 s.
  template <typename Done>
  bool until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      spin();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
  }
  void send(const std::string& plain) {
    REQUIRE(until([&] { return SSL_write(client, plain.data(), static_cast<int>(plain.size())) > 0; }));
  }
  // Reads what is there now into `into`; false at close_notify.
  bool read_some(std::string& into) {
    char buf[16384];
    for (;;) {
      const int n = SSL_read(client, buf, sizeof buf);
      if (n > 0) {
        into.append(buf, static_cast<size_t>(n));
        continue;
      }
      return SSL_get_error(client, n) != SSL_ERROR_ZERO_RETURN;
    }
  }
};

std::string masked_close_1000() {
  return std::string("\x88\x82" "abcd", 6) + static_cast<char>(0x03 ^ 'a') + static_cast<char>(0xE8 ^ 'b');
}

}  // namespace

// Found in the overload benchmark (docs/BENCHMARKS.md, "TLS"): each TLS
// connection encrypted everything handed to it at once, so a client that
// read slowly held its whole backlog (up to the 4 MiB budget) as ciphertext
// of its own, where a ws:// client holds references to shared batch bytes;
// 1,000 slow TLS clients took the bridge to 0.8-2 GB.
TEST_CASE("tls: a connection whose client reads nothing keeps its backlog as shared plaintext, not as ciphertext") {
  TlsPair p;
  REQUIRE(p.until([&] { return SSL_connect(p.client) == 1; }));
  p.send("GET /v2/broker/?topics=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  std::string received;
  REQUIRE(p.until([&] { return p.read_some(received), received.find("\r\n\r\n") != std::string::npos; }));
  REQUIRE(received.rfind("HTTP/1.1 101 ", 0) == 0);
  received.clear();
  REQUIRE(p.events->link);

  // 8 MiB in batches, as a session hands over a slow client's outbox.
  auto topic = std::make_shared<const std::string>("t");
  const std::string value(1 << 20, 'v');
  std::vector<OutItem> items;
  std::string expected;
  for (int64_t offset = 0; offset < 8; ++offset) {
    auto frame = make_frame(MessageView{"t", 0, offset, 5, TimestampType::create_time, std::nullopt, value, {}});
    auto batch = std::make_shared<const FrameBatch>(topic, std::vector<FramePtr>{frame});
    expected += batch->bytes(Encoding::kafka_text);
    items.push_back(OutItem{batch, {}});
  }
  const std::weak_ptr<const FrameBatch> last_batch = items.back().batch;
  p.events->link->write(items);
  for (int i = 0; i < 20; ++i) p.spin();

  // The kernel holds a little, the connection the rest: as plaintext it
  // shares (the batches are still the session's, not copies), and at most
  // a piece of ciphertext ahead of the socket.
  CHECK(p.con->buffered() > 6 * (1u << 20));
  CHECK(p.con->tls_output_capacity() <= 128 * 1024);
  CHECK(last_batch.use_count() > 0);
  // Waiting on the socket, as the server's write timeout sees it.
  CHECK(p.con->stalled_since() != ws::Connection::Clock::time_point{});
  const int drained_before = p.events->drained;

  // The client reads: everything arrives, in order, and the session hears it drained.
  REQUIRE(p.until([&] { return p.read_some(received), received.size() >= expected.size(); }));
  CHECK(received == expected);
  CHECK(p.con->buffered() == 0);
  CHECK(p.events->drained > drained_before);
  CHECK(last_batch.expired());

  // The closing handshake, then close_notify before TCP closes.
  received.clear();
  p.events->link->close(CloseReason::normal, "bye");
  REQUIRE(p.until([&] { return p.read_some(received), received.size() >= 7; }));
  CHECK(received == std::string("\x88\x05\x03\xe8" "bye", 7));
  p.send(masked_close_1000());
  bool notified = false;
  REQUIRE(p.until([&] { return notified = !p.read_some(received); }));
  CHECK(notified);
  CHECK(p.events->closed);
}
