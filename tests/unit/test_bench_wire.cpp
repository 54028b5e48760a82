// kws bench's wire pieces: stamps, URLs, the handshake and frames; and
// what a client sends when its socket is full.
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/bench/histogram.hpp"
#include "core/bench/process_probe.hpp"
#include "core/bench/swarm.hpp"
#include "core/bench/wire.hpp"
#include "core/util/error.hpp"
#include "tests/unit/tls_identity.hpp"

using namespace kws::bench;

TEST_CASE("bench wire: a stamp round-trips inside an envelope, a text frame and a binary frame") {
  const std::string tag = make_run_tag();
  REQUIRE(tag.size() == kTagBytes);
  std::string msg;
  format_message(msg, tag, 12345, 987654321012345ull, 150);
  CHECK(msg.size() == 150);
  CHECK(msg.find_first_not_of("x", msg.rfind(':') + 1) == std::string::npos);
  for (const std::string& frame :
       {msg, "{\"topic\":\"t\",\"partition\":0,\"offset\":7,\"message\":\"" + msg + "\"}", std::string("\x01t") + msg}) {
    auto s = find_stamp(frame, tag);
    REQUIRE(s);
    CHECK(s->seq == 12345);
    CHECK(s->sent_ns == 987654321012345ull);
  }
  CHECK_FALSE(find_stamp(msg, std::string(kTagBytes, 'z')));  // another run's message
  CHECK_FALSE(find_stamp(msg.substr(0, 20), tag));            // truncated stamp
  // Too small a size still carries the whole stamp.
  format_message(msg, tag, UINT64_MAX, UINT64_MAX, 10);
  CHECK(msg.size() <= kMaxStampBytes);
  REQUIRE(find_stamp(msg, tag));
  CHECK(find_stamp(msg, tag)->seq == UINT64_MAX);
}

TEST_CASE("bench wire: ws:// URLs and the subscribe target") {
  auto u = parse_ws_url("ws://127.0.0.1:8080/");
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == 8080);
  CHECK(subscribe_target(u, "kws-bench") == "/v2/broker/?topics=kws-bench&offset=latest");
  CHECK(subscribe_target(parse_ws_url("ws://h"), "a b,c") == "/v2/broker/?topics=a%20b%2Cc&offset=latest");
  CHECK(parse_ws_url("ws://h").port == 80);
  CHECK(subscribe_target(parse_ws_url("ws://h:1/ws/v2/broker/?offset=latest"), "t") == "/ws/v2/broker/?offset=latest&topics=t");
  auto v6 = parse_ws_url("ws://[::1]:9000/");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 9000);
  CHECK_FALSE(parse_ws_url("ws://h").tls);
  auto tls = parse_ws_url("wss://h/x");
  CHECK(tls.tls);
  CHECK(tls.port == 443);
  CHECK(tls.path == "/x");
  CHECK(parse_ws_url("wss://[::1]:8443/").port == 8443);
  for (const char* bad : {"http://h:1/", "https://h:1/", "wss://", "wss://h:0/", "ws://", "ws://h:0/", "ws://h:70000/", "ws://h:x/", "ws://h:/",
                          "ws://[::1/", "ws://u@h:1/", "h:1"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_ws_url(bad), kws::Error);
  }
}

TEST_CASE("bench wire: the handshake accept value and answer checks") {
  // RFC 6455 section 1.3's example.
  CHECK(kws::websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  auto u = parse_ws_url("ws://127.0.0.1:8080/");
  std::string req = handshake_request(u, "/v2/broker/?topics=t", "KEY", "kafka-text");
  CHECK(req.rfind("GET /v2/broker/?topics=t HTTP/1.1\r\n", 0) == 0);
  CHECK(req.find("Sec-WebSocket-Protocol: kafka-text\r\n") != std::string::npos);
  CHECK(req.size() > 4);
  CHECK(req.substr(req.size() - 4) == "\r\n\r\n");

  const std::string ok =
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nSEC-WEBSOCKET-ACCEPT: abc=\r\n"
      "Sec-WebSocket-Protocol: kafka-text\r\n\r\n\x81\x02hi";
  auto a = check_handshake(ok, "abc=", "kafka-text");
  CHECK(a.ok);
  CHECK(a.header_bytes == ok.size() - 4);
  CHECK(check_handshake(ok.substr(0, 40), "abc=", "kafka-text").header_bytes == 0);  // incomplete
  auto wrong = check_handshake(ok, "xyz=", "kafka-text");
  CHECK_FALSE(wrong.ok);
  CHECK(wrong.error.find("Accept") != std::string::npos);
  CHECK_FALSE(check_handshake(ok, "abc=", "kafka-binary").ok);
  auto refused = check_handshake("HTTP/1.1 400 Bad Request\r\nContent-Length: 22\r\n\r\nunknown parameter 'x'\n", "abc=",
                                 "kafka-text");
  CHECK_FALSE(refused.ok);
  CHECK(refused.error == "the server answered 'HTTP/1.1 400 Bad Request': unknown parameter 'x'");
}

TEST_CASE("bench wire: server frames parse whole, split, extended and bad") {
  std::string error;
  FrameView f;
  std::string two = std::string("\x81\x03" "abc" "\x89\x00", 7);
  REQUIRE(parse_server_frame(two, f, error) == 5);
  CHECK(f.opcode == Opcode::text);
  CHECK(f.payload == "abc");
  REQUIRE(parse_server_frame(std::string_view(two).substr(5), f, error) == 2);
  CHECK(f.opcode == Opcode::ping);
  for (size_t cut = 0; cut < 5; cut++) CHECK(parse_server_frame(two.substr(0, cut), f, error) == 0);
  CHECK(error.empty());

  std::string big(300, 'y');
  std::string ext = std::string("\x82\x7e\x01\x2c", 4) + big;
  REQUIRE(parse_server_frame(ext, f, error) == ext.size());
  CHECK(f.payload.size() == 300);
  std::string huge = std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) + std::string(65536, 'z');
  REQUIRE(parse_server_frame(huge, f, error) == huge.size());
  CHECK(f.payload.size() == 65536);
  CHECK(parse_server_frame(std::string("\x02\x01z", 3), f, error) == 3);
  CHECK_FALSE(f.fin);

  CHECK(parse_server_frame(std::string("\x81\x81\x00\x00\x00\x00z", 7), f, error) == 0);
  CHECK(error.find("masked") != std::string::npos);
  error.clear();
  CHECK(parse_server_frame(std::string("\xc1\x00", 2), f, error) == 0);
  CHECK(error.find("reserved") != std::string::npos);
  error.clear();
  CHECK(parse_server_frame(std::string("\x82\x7f\x7f\x00\x00\x00\x00\x00\x00\x00", 10), f, error, 1 << 20) == 0);
  CHECK(error.find("limit") != std::string::npos);
}

TEST_CASE("bench wire: server frame headers, piece by piece and at the edges of each length form") {
  std::string error;
  FrameView f;
  // A masked frame or reserved bits are refused from the first two bytes,
  // before the length and key that follow.
  CHECK(parse_server_frame(std::string("\x81\xfe", 2), f, error) == 0);
  CHECK(error == "masked frame from the server");
  error.clear();
  CHECK(parse_server_frame(std::string("\xc2\x7f", 2), f, error) == 0);
  CHECK(error == "frame with reserved bits set (no extension was negotiated)");
  error.clear();
  // Extended lengths wait for all their bytes.
  CHECK(parse_server_frame(std::string("\x82\x7e\x01", 3), f, error) == 0);
  CHECK(parse_server_frame(std::string("\x82\x7f\x00\x00\x00\x00\x00\x00\x01", 9), f, error) == 0);
  CHECK(error.empty());
  // All 8 bytes of the 64-bit form count, and the error names the length read.
  CHECK(parse_server_frame(std::string("\x82\x7f\x00\x00\x00\x01\x00\x00\x00\x00", 10), f, error) == 0);
  CHECK(error == "frame of 4294967296 bytes, over the 67108864 byte limit");
  error.clear();
  CHECK(parse_server_frame(std::string("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01", 10), f, error, 1 << 20) == 0);
  CHECK(error == "frame of 9223372036854775809 bytes, over the 1048576 byte limit");
  error.clear();
  // A length in a longer form than it needs is accepted: the bench measures
  // servers, it does not grade them.
  // (FrameView points into the buffer it parsed, so the buffers are named.)
  const std::string long16("\x81\x7e\x00\x03" "abc", 7);
  REQUIRE(parse_server_frame(long16, f, error) == 7);
  CHECK(f.payload == "abc");
  const std::string long64("\x81\x7f\x00\x00\x00\x00\x00\x00\x00\x03" "abc", 13);
  REQUIRE(parse_server_frame(long64, f, error) == 13);
  CHECK(f.payload == "abc");
  // The largest 16-bit length, and a payload exactly at the limit.
  std::string edge = std::string("\x82\x7e\xff\xff", 4) + std::string(65535, 'e');
  REQUIRE(parse_server_frame(edge, f, error, 65535) == edge.size());
  CHECK(f.payload.size() == 65535);
  CHECK(parse_server_frame(std::string_view(edge).substr(0, edge.size() - 1), f, error, 65535) == 0);
  // A reserved opcode is handed on as it is; the caller ignores it.
  REQUIRE(parse_server_frame(std::string("\x83\x00", 2), f, error) == 2);
  CHECK(static_cast<int>(f.opcode) == 3);
  CHECK(error.empty());
}

TEST_CASE("bench wire: client frames are masked and unmask to the payload") {
  // Lengths at the edges of each length form, and payloads that do not end
  // on a 4-byte boundary of the key.
  for (size_t n : {0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 70001}) {
    INFO(n);
    std::string payload(n, '\0');
    for (size_t i = 0; i < n; i++) payload[i] = static_cast<char>(i * 7 % 251);
    std::string f = client_frame(Opcode::pong, payload);
    auto b = reinterpret_cast<const unsigned char*>(f.data());
    CHECK(b[0] == 0x8a);
    CHECK((b[1] & 0x80) != 0);
    size_t header = n < 126 ? 2 : n < 65536 ? 4 : 10;
    REQUIRE(f.size() == header + 4 + n);
    uint64_t length = b[1] & 0x7f;
    if (header > 2) {
      CHECK(length == (header == 4 ? 126u : 127u));
      length = 0;
      for (size_t i = 2; i < header; i++) length = (length << 8) | b[i];
    }
    CHECK(length == n);
    const unsigned char* key = b + header;
    std::string unmasked;
    for (size_t i = 0; i < n; i++) unmasked += static_cast<char>(b[header + 4 + i] ^ key[i & 3]);
    CHECK(unmasked == payload);
  }
  CHECK(close_reason(std::string("\x03\xf0slow client", 13)) == std::pair<int, std::string>(1008, "slow client"));
  CHECK(close_reason("").first == 1005);
}

TEST_CASE("bench histogram: quantiles over fine and coarse buckets") {
  LatencyHistogram h;
  CHECK(h.quantile_ms(0.99) == 0);
  for (uint64_t us = 1; us <= 1000; us++) h.add(us);  // 1 us .. 1 ms
  CHECK(h.quantile_ms(0.5) == Approx(0.500));
  CHECK(h.quantile_ms(0.99) == Approx(0.990));
  CHECK(h.quantile_ms(1.0) == Approx(1.000));
  h.add(2500000, 10);  // 2.5 s, in the coarse buckets
  CHECK(h.count() == 1010);
  CHECK(h.quantile_ms(0.999) == Approx(2500));
  CHECK(h.max_ms() == Approx(2500));
}

TEST_CASE("bench probe: this process's own memory, CPU and connections") {
  auto me = read_memory(getpid());
  REQUIRE(me);
  CHECK(me->rss_kb > 0);
  CHECK(me->hwm_kb >= me->rss_kb);
  CHECK(read_cpu_seconds(getpid()));
  CHECK(count_connections_to(getpid(), {9092}) == size_t(0));
}

// Found reading swarm.cpp: a pong or close frame SSL_write could not finish
// (WANT_WRITE: the socket full) was dropped, and OpenSSL then required the
// same write to be retried. Now bytes wait in the client's queue and are
// retried from it, even after the queue grew and moved.
TEST_CASE("bench swarm: bytes a full socket did not take wait and go later, in order, over TLS and plain") {
  kws::test::Identity id;
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  REQUIRE(SSL_CTX_use_certificate_file(server_ctx, id.cert.path.c_str(), SSL_FILETYPE_PEM) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey_file(server_ctx, id.key.path.c_str(), SSL_FILETYPE_PEM) == 1);
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_mode(client_ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);  // as the swarm's context
  for (bool tls : {true, false}) {
    INFO((tls ? "TLS" : "plain"));
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    SSL* client = nullptr;
    SSL* server = nullptr;
    if (tls) {
      client = SSL_new(client_ctx);
      server = SSL_new(server_ctx);
      SSL_set_fd(client, fds[0]);
      SSL_set_fd(server, fds[1]);
      SSL_set_connect_state(client);
      SSL_set_accept_state(server);
      for (int i = 0; i < 100 && !(SSL_is_init_finished(client) && SSL_is_init_finished(server)); ++i) {
        SSL_do_handshake(client);
        SSL_do_handshake(server);
      }
      REQUIRE(SSL_is_init_finished(client));
    }
    // More than the socket buffers hold, then a pong behind it.
    std::string expected(4 << 20, 'm');
    std::string pending = expected;
    REQUIRE(send_pending(client, fds[0], pending));
    REQUIRE_FALSE(pending.empty());  // the socket is full
    const std::string pong = "\x8a\x80" "abcd";
    pending += pong;
    expected += pong;
    pending.shrink_to_fit();  // the retried write comes from moved bytes
    std::string received;
    char buf[65536];
    for (int round = 0; round < 100000 && received.size() < expected.size(); ++round) {
      REQUIRE(send_pending(client, fds[0], pending));
      for (;;) {
        const ssize_t n = tls ? SSL_read(server, buf, sizeof buf) : read(fds[1], buf, sizeof buf);
        if (n <= 0) break;
        received.append(buf, static_cast<size_t>(n));
      }
    }
    CHECK(pending.empty());
    CHECK(received.size() == expected.size());
    CHECK(received == expected);
    SSL_free(client);
    SSL_free(server);
    close(fds[0]);
    close(fds[1]);
  }
  SSL_CTX_free(client_ctx);
  SSL_CTX_free(server_ctx);
}
