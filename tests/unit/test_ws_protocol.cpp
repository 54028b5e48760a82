#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/util/text.hpp"
#include "core/ws/protocol.hpp"

using namespace kws::ws;
using namespace std::string_literals;

namespace {

using Kind = ClientEvent::Kind;

// ---- request heads ----------------------------------------------------------

const std::string kSampleKey = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 section 1.3

std::string upgrade_head(const std::string& extra_headers = "", const std::string& request_line = "GET /v2/broker/?topics=a HTTP/1.1") {
  return request_line + "\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: " + kSampleKey + "\r\nSec-WebSocket-Version: 13\r\n" + extra_headers + "\r\n";
}

HeadParse parse(const std::string& bytes, HttpRequest& out) { return parse_request_head(bytes, out); }

HeadParse parse(const std::string& bytes) {
  HttpRequest ignored;
  return parse_request_head(bytes, ignored);
}

// A request built header by header, for upgrade_problem.
HttpRequest request(std::vector<std::pair<std::string, std::string>> headers, std::string method = "GET",
                    std::string version = "HTTP/1.1") {
  std::string head = method + " /v2/broker/ " + version + "\r\n";
  for (const auto& [name, value] : headers) head += name + ": " + value + "\r\n";
  head += "\r\n";
  HttpRequest r;
  HeadParse p = parse_request_head(head, r);
  REQUIRE(p.status == HeadStatus::complete);
  return r;
}

std::vector<std::pair<std::string, std::string>> good_headers() {
  return {{"Host", "x"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"},
          {"Sec-WebSocket-Key", kSampleKey}, {"Sec-WebSocket-Version", "13"}};
}

std::vector<std::pair<std::string, std::string>> with(std::vector<std::pair<std::string, std::string>> headers,
                                                      const std::string& name, const std::string& value) {
  for (auto& [n, v] : headers) {
    if (n == name) v = value;
  }
  return headers;
}

std::vector<std::pair<std::string, std::string>> without(std::vector<std::pair<std::string, std::string>> headers,
                                                         const std::string& name) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& h : headers) {
    if (h.first != name) out.push_back(h);
  }
  return out;
}

// ---- client frames ----------------------------------------------------------

constexpr std::array<uint8_t, 4> kMask{0x37, 0xfa, 0x21, 0x3d};

// A frame as a client would send it. `first` is the whole first byte (FIN,
// RSV1-3, opcode); `form` forces the length encoding (7, 16 or 64 bits; 0
// for the shortest), so non-minimal encodings can be written too.
std::string raw_frame(uint8_t first, std::string_view payload, bool masked = true, int form = 0) {
  std::string f;
  f += static_cast<char>(first);
  uint64_t n = payload.size();
  if (form == 0) form = n <= 125 ? 7 : n <= 0xFFFF ? 16 : 64;
  const char mask_bit = masked ? '\x80' : '\0';
  if (form == 7) {
    f += static_cast<char>(mask_bit | static_cast<char>(n));
  } else if (form == 16) {
    f += static_cast<char>(mask_bit | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xFF);
  } else {
    f += static_cast<char>(mask_bit | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((n >> (8 * i)) & 0xFF);
  }
  if (masked) {
    for (uint8_t m : kMask) f += static_cast<char>(m);
  }
  for (size_t i = 0; i < payload.size(); ++i) {
    f += masked ? static_cast<char>(payload[i] ^ kMask[i & 3]) : payload[i];
  }
  return f;
}

// Only the header of a masked frame that announces `length` payload bytes.
std::string frame_header(uint8_t first, uint64_t length) {
  std::string f;
  f += static_cast<char>(first);
  if (length <= 125) {
    f += static_cast<char>(0x80 | length);
  } else if (length <= 0xFFFF) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(length >> 8);
    f += static_cast<char>(length & 0xFF);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((length >> (8 * i)) & 0xFF);
  }
  for (uint8_t m : kMask) f += static_cast<char>(m);
  return f;
}

constexpr uint8_t FIN = 0x80;
constexpr uint8_t CONT = 0x0, TEXT = 0x1, BINARY = 0x2, CLOSE = 0x8, PING = 0x9, PONG = 0xA;

std::string text(std::string_view payload) { return raw_frame(FIN | TEXT, payload); }
std::string binary(std::string_view payload) { return raw_frame(FIN | BINARY, payload); }
std::string ping(std::string_view payload) { return raw_frame(FIN | PING, payload); }
std::string close_with(uint16_t code, std::string_view reason = {}) {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xFF);
  p.append(reason);
  return raw_frame(FIN | CLOSE, p);
}

// One line per event; long payloads by size and hash, so a failure stays readable.
std::string describe(const std::vector<ClientEvent>& events) {
  std::string out;
  for (const auto& e : events) {
    switch (e.kind) {
      case Kind::message: out += e.opcode == Opcode::text ? "text" : e.opcode == Opcode::binary ? "binary" : "message?"; break;
      case Kind::ping: out += "ping"; break;
      case Kind::pong: out += "pong"; break;
      case Kind::close: out += "close " + std::to_string(e.code); break;
      case Kind::error: out += "error " + std::to_string(e.code); break;
    }
    if (e.payload.size() <= 40) {
      out += " [" + e.payload + "]";
    } else {
      out += " (" + std::to_string(e.payload.size()) + " bytes, hash " + std::to_string(std::hash<std::string>()(e.payload)) + ")";
    }
    out += "\n";
  }
  return out;
}

std::vector<ClientEvent> feed_whole(const std::string& bytes, size_t max_message = 1 << 20) {
  ClientFrameParser p(max_message);
  std::vector<ClientEvent> out;
  p.feed(bytes, out);
  return out;
}

std::vector<ClientEvent> feed_at(const std::string& bytes, const std::vector<size_t>& cuts, size_t max_message = 1 << 20) {
  ClientFrameParser p(max_message);
  std::vector<ClientEvent> out;
  size_t at = 0;
  for (size_t cut : cuts) {
    p.feed(std::string_view(bytes).substr(at, cut - at), out);
    at = cut;
  }
  p.feed(std::string_view(bytes).substr(at), out);
  return out;
}

std::vector<ClientEvent> feed_bytewise(const std::string& bytes, size_t max_message = 1 << 20) {
  ClientFrameParser p(max_message);
  std::vector<ClientEvent> out;
  for (char c : bytes) p.feed(std::string_view(&c, 1), out);
  return out;
}

std::vector<size_t> random_cuts(size_t size, std::mt19937& rng) {
  std::uniform_int_distribution<size_t> count(1, 12);
  std::uniform_int_distribution<size_t> where(0, size);
  std::vector<size_t> cuts(count(rng));
  for (auto& c : cuts) c = where(rng);
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

// The one error a parser reports for `bytes` (fed whole).
ClientEvent only_error(const std::string& bytes, size_t max_message = 1 << 20) {
  auto events = feed_whole(bytes, max_message);
  REQUIRE_FALSE(events.empty());
  INFO(describe(events));
  REQUIRE(events.back().kind == Kind::error);
  return events.back();
}

std::string repeat(std::string_view s, size_t times) {
  std::string out;
  for (size_t i = 0; i < times; ++i) out.append(s);
  return out;
}

}  // namespace

// ---- request heads ------------------------------------------------------------

TEST_CASE("ws protocol: a complete request head parses, with lower-cased names and trimmed values") {
  std::string head =
      "GET /v2/broker/?topics=a%2Cb HTTP/1.1\r\nHost: example:80\r\nX-Mixed-CASE:   spaced value \t\r\n"
      "Empty:\r\n\r\n";
  HttpRequest r;
  HeadParse p = parse(head + "\x81\x80 frames behind the head", r);
  REQUIRE(p.status == HeadStatus::complete);
  CHECK(p.consumed == head.size());
  CHECK(r.method == "GET");
  CHECK(r.target == "/v2/broker/?topics=a%2Cb");
  REQUIRE(r.headers.size() == 3);
  CHECK(r.headers[0] == std::make_pair(std::string("host"), std::string("example:80")));
  CHECK(r.headers[1] == std::make_pair(std::string("x-mixed-case"), std::string("spaced value")));
  CHECK(r.headers[2] == std::make_pair(std::string("empty"), std::string("")));
  CHECK(r.header("x-mixed-case") == "spaced value");
  CHECK(r.header("X-Mixed-CASE").empty());  // lookups take lower-case names
  CHECK(r.header("absent").empty());

  CHECK(r.version == "HTTP/1.1");

  HttpRequest r10;
  CHECK(parse("GET / HTTP/1.0\r\n\r\n", r10).status == HeadStatus::complete);
  CHECK(r10.version == "HTTP/1.0");
  CHECK(r10.headers.empty());
}

TEST_CASE("ws protocol: a request head split anywhere is incomplete until its last byte") {
  const std::string head = upgrade_head();
  for (size_t n = 0; n < head.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    HeadParse p = parse(head.substr(0, n));
    CHECK(p.status == HeadStatus::incomplete);
    CHECK(p.consumed == 0);
  }
  HttpRequest r;
  HeadParse p = parse(head, r);
  REQUIRE(p.status == HeadStatus::complete);
  CHECK(p.consumed == head.size());
  CHECK(r.header("sec-websocket-key") == kSampleKey);
}

TEST_CASE("ws protocol: a request head over 16 KiB is too large, with or without its terminator") {
  const std::string line = "GET / HTTP/1.1\r\nX-Pad: ";
  // Exactly at the limit, terminator included: fine.
  std::string at_limit = line + std::string(kMaxRequestHead - line.size() - 4, 'a') + "\r\n\r\n";
  REQUIRE(at_limit.size() == kMaxRequestHead);
  HeadParse p = parse(at_limit);
  CHECK(p.status == HeadStatus::complete);
  CHECK(p.consumed == kMaxRequestHead);
  // One byte more.
  std::string over = line + std::string(kMaxRequestHead - line.size() - 3, 'a') + "\r\n\r\n";
  CHECK(parse(over).status == HeadStatus::too_large);
  // No terminator yet: incomplete below the limit, too large at it.
  CHECK(parse(line + std::string(kMaxRequestHead - line.size() - 1, 'a')).status == HeadStatus::incomplete);
  CHECK(parse(line + std::string(kMaxRequestHead - line.size(), 'a')).status == HeadStatus::too_large);
  CHECK(parse(std::string(100000, 'a')).status == HeadStatus::too_large);
}

TEST_CASE("ws protocol: malformed request heads are bad, with a reason") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GET /\r\n\r\n", "request line"},
      {"GET\r\n\r\n", "request line"},
      {"GET  / HTTP/1.1\r\n\r\n", "request line"},
      {"GET / HTTP/1.1 extra\r\n\r\n", "request line"},
      {" GET / HTTP/1.1\r\n\r\n", "request line"},
      {"GET\t/ HTTP/1.1\r\n\r\n", "request line"},
      {"G\x01T / HTTP/1.1\r\n\r\n", "method"},
      {"G(T / HTTP/1.1\r\n\r\n", "method"},
      {"GET http://host/ HTTP/1.1\r\n\r\n", "request target"},
      {"GET * HTTP/1.1\r\n\r\n", "request target"},
      {"GET /a\x01z HTTP/1.1\r\n\r\n", "control character"},
      {"GET /a\x7fz HTTP/1.1\r\n\r\n", "control character"},
      {"GET / HTTP/2.0\r\n\r\n", "HTTP version"},
      {"GET / http/1.1\r\n\r\n", "HTTP version"},
      {"GET / HTTP/1.1x\r\n\r\n", "HTTP version"},
      {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "header name"},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "header name"},
      {"GET / HTTP/1.1\r\nNa(me: x\r\n\r\n", "header name"},
      {"GET / HTTP/1.1\r\n: x\r\n\r\n", "header line"},
      {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", "header line"},
      {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "folding"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", "folding"},
      {"GET / HTTP/1.1\r\nHost: a\x01z\r\n\r\n", "control character"},
      {"GET / HTTP/1.1\r\nHost: a\x7fz\r\n\r\n", "control character"},
      {"GET / HTTP/1.1\r\nHost: a\nX-Smuggled: z\r\n\r\n", "bare LF"},
      {"GET / HTTP/1.1\nHost: a\n\n", "bare LF"},
      {"GET / HTTP/1.1\n", "bare LF"},  // refused at once, not after a timeout
      {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "not TLS"},
      {"GET / HTTP/1.1\r\nHost: a\rz\r\n\r\n", "control character"},
      {"GET / HTTP/1.1\r\nHost: a\0z\r\n\r\n"s, "control character"},
  };
  for (const auto& [head, reason] : cases) {
    INFO(head);
    HeadParse p = parse(head);
    CHECK(p.status == HeadStatus::bad);
    CHECK_THAT(p.problem, Catch::Contains(reason));
  }
  // A tab inside a value and bytes over 0x7f (obs-text) are allowed.
  HttpRequest r;
  REQUIRE(parse("GET / HTTP/1.1\r\nX-A: a\tb\xC3\xA9\r\n\r\n", r).status == HeadStatus::complete);
  CHECK(r.header("x-a") == "a\tb\xC3\xA9");

  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  CHECK(parse(many + "\r\n").status == HeadStatus::complete);
  HeadParse p = parse(many + "X-100: v\r\n\r\n");
  CHECK(p.status == HeadStatus::bad);
  CHECK_THAT(p.problem, Catch::Contains("100 header lines"));
}

TEST_CASE("ws protocol: repeated headers keep their order; header_tokens splits every occurrence") {
  HttpRequest r;
  REQUIRE(parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\nUPGRADE: h2c , WebSocket\r\n"
                "connection: ,  Upgrade ,,\r\nSec-WebSocket-Protocol: kafka-text,kafka-binary\r\n\r\n", r)
              .status == HeadStatus::complete);
  CHECK(r.header("connection") == "keep-alive");  // the first one
  CHECK(r.header_tokens("connection") == std::vector<std::string>{"keep-alive", "Upgrade"});
  CHECK(r.header_tokens("upgrade") == std::vector<std::string>{"h2c", "WebSocket"});
  CHECK(r.header_tokens("sec-websocket-protocol") == std::vector<std::string>{"kafka-text", "kafka-binary"});
  CHECK(r.header_tokens("absent").empty());
  CHECK(r.is_upgrade());
}

TEST_CASE("ws protocol: is_upgrade asks for the websocket token, in any case") {
  auto upgrade_of = [](const std::string& value) {
    HttpRequest r;
    REQUIRE(parse("GET / HTTP/1.1\r\nUpgrade: " + value + "\r\n\r\n", r).status == HeadStatus::complete);
    return r.is_upgrade();
  };
  CHECK(upgrade_of("websocket"));
  CHECK(upgrade_of("WebSocket"));
  CHECK(upgrade_of("WEBSOCKET"));
  CHECK(upgrade_of("h2c, websocket"));
  CHECK_FALSE(upgrade_of("h2c"));
  CHECK_FALSE(upgrade_of("websockets"));
  CHECK_FALSE(upgrade_of("web socket"));
  HttpRequest none;
  REQUIRE(parse("GET / HTTP/1.1\r\n\r\n", none).status == HeadStatus::complete);
  CHECK_FALSE(none.is_upgrade());
}

// ---- the upgrade (RFC 6455 section 4.2.1) -------------------------------------

TEST_CASE("ws protocol: upgrade_problem accepts a valid upgrade") {
  bool version_mismatch = true;
  CHECK_FALSE(upgrade_problem(request(good_headers()), version_mismatch));
  CHECK_FALSE(version_mismatch);

  HttpRequest full;
  REQUIRE(parse(upgrade_head(), full).status == HeadStatus::complete);
  CHECK_FALSE(upgrade_problem(full, version_mismatch));
}

TEST_CASE("ws protocol: upgrade_problem enforces the method and the Connection token list") {
  bool version_mismatch = true;
  auto problem = upgrade_problem(request(good_headers(), "POST"), version_mismatch);
  REQUIRE(problem);
  CHECK_THAT(*problem, Catch::Contains("GET"));
  CHECK_FALSE(version_mismatch);

  for (const std::string value : {"Upgrade", "upgrade", "keep-alive, Upgrade", "keep-alive,UPGRADE", "Upgrade, close"}) {
    INFO(value);
    CHECK_FALSE(upgrade_problem(request(with(good_headers(), "Connection", value)), version_mismatch));
  }
  for (const std::string value : {"keep-alive", "close", "Upgraded", "keep-alive Upgrade", ""}) {
    INFO(value);
    auto p = upgrade_problem(request(with(good_headers(), "Connection", value)), version_mismatch);
    REQUIRE(p);
    CHECK_THAT(*p, Catch::Contains("Connection"));
    CHECK_FALSE(version_mismatch);
  }
  CHECK(upgrade_problem(request(without(good_headers(), "Connection")), version_mismatch));
  // The token in a second Connection header counts (lists may be split across lines).
  auto split = without(good_headers(), "Connection");
  split.emplace_back("Connection", "keep-alive");
  split.emplace_back("Connection", "Upgrade");
  CHECK_FALSE(upgrade_problem(request(split), version_mismatch));
}

TEST_CASE("ws protocol: upgrade_problem wants HTTP/1.1, a Host and Upgrade: websocket") {
  bool version_mismatch = true;
  auto old = upgrade_problem(request(good_headers(), "GET", "HTTP/1.0"), version_mismatch);
  REQUIRE(old);
  CHECK_THAT(*old, Catch::Contains("HTTP/1.1"));
  CHECK_FALSE(version_mismatch);

  auto no_host = upgrade_problem(request(without(good_headers(), "Host")), version_mismatch);
  REQUIRE(no_host);
  CHECK_THAT(*no_host, Catch::Contains("Host"));
  CHECK(upgrade_problem(request(with(good_headers(), "Host", "")), version_mismatch));

  for (const std::string value : {"h2c", "websockets", ""}) {
    INFO("Upgrade: " << value);
    auto p = upgrade_problem(request(with(good_headers(), "Upgrade", value)), version_mismatch);
    REQUIRE(p);
    CHECK_THAT(*p, Catch::Contains("Upgrade: websocket"));
  }
  CHECK(upgrade_problem(request(without(good_headers(), "Upgrade")), version_mismatch));
  CHECK_FALSE(upgrade_problem(request(with(good_headers(), "Upgrade", "h2c, WebSocket")), version_mismatch));
  CHECK_FALSE(version_mismatch);
}

TEST_CASE("ws protocol: upgrade_problem refuses a second Host, key or version") {
  bool version_mismatch = true;
  for (const std::string name : {"Host", "Sec-WebSocket-Key", "Sec-WebSocket-Version"}) {
    INFO(name);
    auto twice = good_headers();
    for (const auto& h : good_headers()) {
      if (h.first == name) twice.push_back(h);
    }
    auto p = upgrade_problem(request(twice), version_mismatch);
    REQUIRE(p);
    CHECK_THAT(*p, Catch::Contains("more than one"));
  }
}

TEST_CASE("ws protocol: upgrade_problem wants a key of 16 bytes in base64") {
  bool version_mismatch = true;
  // 15 and 17 bytes, not base64, whitespace inside, bad padding, missing.
  for (const std::string key : {"AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                "not base64 at all!!!!!!!", "dGhlIHNhbXBs ZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=A",
                                "dGhlIHNhbXBsZSBub25jZQ", ""}) {
    INFO("key '" << key << "'");
    auto p = upgrade_problem(request(with(good_headers(), "Sec-WebSocket-Key", key)), version_mismatch);
    REQUIRE(p);
    CHECK_THAT(*p, Catch::Contains("Sec-WebSocket-Key"));
    CHECK_FALSE(version_mismatch);
  }
  CHECK(upgrade_problem(request(without(good_headers(), "Sec-WebSocket-Key")), version_mismatch));
  CHECK_FALSE(upgrade_problem(request(with(good_headers(), "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")), version_mismatch));
}

TEST_CASE("ws protocol: upgrade_problem sets version_mismatch for a version other than 13") {
  for (const std::string version : {"8", "12", "14", "13, 8", "thirteen", ""}) {
    INFO("version '" << version << "'");
    bool version_mismatch = false;
    auto p = upgrade_problem(request(with(good_headers(), "Sec-WebSocket-Version", version)), version_mismatch);
    REQUIRE(p);
    CHECK_THAT(*p, Catch::Contains("Sec-WebSocket-Version"));
    CHECK(version_mismatch);
  }
  bool version_mismatch = false;
  CHECK(upgrade_problem(request(without(good_headers(), "Sec-WebSocket-Version")), version_mismatch));
  CHECK(version_mismatch);
  // A later valid request resets the flag.
  CHECK_FALSE(upgrade_problem(request(good_headers()), version_mismatch));
  CHECK_FALSE(version_mismatch);
}

// ---- answers ---------------------------------------------------------------------

TEST_CASE("ws protocol: upgrade_response carries the RFC's sample accept value") {
  std::string r = upgrade_response(kSampleKey, "");
  CHECK(r.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
  CHECK_THAT(r, Catch::Contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  CHECK_THAT(r, Catch::Contains("\r\nUpgrade: websocket\r\n"));
  CHECK_THAT(r, Catch::Contains("\r\nConnection: Upgrade\r\n"));
  CHECK_THAT(r, !Catch::Contains("Sec-WebSocket-Protocol"));
  CHECK(r.size() >= 4);
  CHECK(r.substr(r.size() - 4) == "\r\n\r\n");
  CHECK(r.find("\r\n\r\n") == r.size() - 4);

  std::string with_protocol = upgrade_response(kSampleKey, "kafka-binary");
  CHECK_THAT(with_protocol, Catch::Contains("\r\nSec-WebSocket-Protocol: kafka-binary\r\n"));
  CHECK(with_protocol.find("\r\n\r\n") == with_protocol.size() - 4);
}

TEST_CASE("ws protocol: http_response is a whole HTTP/1.1 answer that closes") {
  std::string r = http_response(426, "text/plain", "use 13\n", "Sec-WebSocket-Version: 13\r\n");
  CHECK(r.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0) == 0);
  CHECK_THAT(r, Catch::Contains("\r\nContent-Length: 7\r\n"));
  CHECK_THAT(r, Catch::Contains("\r\nConnection: close\r\n"));
  CHECK_THAT(r, Catch::Contains("\r\nSec-WebSocket-Version: 13\r\n"));
  CHECK(r.substr(r.find("\r\n\r\n") + 4) == "use 13\n");
  CHECK(http_response(431, "text/plain", "").rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0) == 0);
  CHECK(http_response(405, "text/plain", "").rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
}

// ---- client frames -----------------------------------------------------------------

TEST_CASE("ws protocol: masked text and binary in 7-, 16- and 64-bit lengths, whole, byte by byte and split") {
  std::string stream;
  std::vector<std::string> payloads;
  for (size_t n : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{127}, size_t{1000}, size_t{65535},
                   size_t{65536}, size_t{70001}}) {
    std::string p(n, '\0');
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>('a' + (i * 7 + n) % 26);
    payloads.push_back(p);
    stream += text(p);
    std::string b = p;
    if (!b.empty()) b[0] = '\xff';  // not UTF-8: fine in a binary message
    stream += binary(b);
  }
  stream += ping("are you there");
  stream += raw_frame(FIN | PONG, "");

  auto whole = feed_whole(stream);
  REQUIRE(whole.size() == payloads.size() * 2 + 2);
  for (size_t i = 0; i < payloads.size(); ++i) {
    INFO("payload of " << payloads[i].size() << " bytes");
    CHECK(whole[2 * i].kind == Kind::message);
    CHECK(whole[2 * i].opcode == Opcode::text);
    CHECK(whole[2 * i].payload == payloads[i]);
    CHECK(whole[2 * i + 1].opcode == Opcode::binary);
    CHECK(whole[2 * i + 1].payload.size() == payloads[i].size());
  }
  CHECK(whole[whole.size() - 2].kind == Kind::ping);
  CHECK(whole[whole.size() - 2].payload == "are you there");
  CHECK(whole.back().kind == Kind::pong);

  const std::string expected = describe(whole);
  CHECK(describe(feed_bytewise(stream)) == expected);
  std::mt19937 rng(20240611);
  for (int round = 0; round < 50; ++round) {
    auto cuts = random_cuts(stream.size(), rng);
    INFO("round " << round);
    CHECK(describe(feed_at(stream, cuts)) == expected);
  }
  // Every single split point of a short stream.
  std::string short_stream = text("h\xC3\xA9llo") + ping("p") + binary(std::string(130, 'b')) + close_with(1000, "bye");
  const std::string short_expected = describe(feed_whole(short_stream));
  for (size_t cut = 0; cut <= short_stream.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK(describe(feed_at(short_stream, {cut})) == short_expected);
  }
}

TEST_CASE("ws protocol: fragmented messages with a ping between fragments") {
  std::string stream = raw_frame(TEXT, "Hel") + ping("mid") + raw_frame(CONT, "") + raw_frame(CONT, "lo, ") +
                       raw_frame(FIN | PONG, "pp") + raw_frame(FIN | CONT, "world") + binary("after") +
                       raw_frame(BINARY, std::string(200, 'x')) + raw_frame(FIN | CONT, std::string(70000, 'y'));
  auto events = feed_whole(stream);
  REQUIRE(events.size() == 5);
  CHECK(events[0].kind == Kind::ping);
  CHECK(events[0].payload == "mid");
  CHECK(events[1].kind == Kind::pong);
  CHECK(events[1].payload == "pp");
  CHECK(events[2].kind == Kind::message);
  CHECK(events[2].opcode == Opcode::text);
  CHECK(events[2].payload == "Hello, world");
  CHECK(events[3].opcode == Opcode::binary);
  CHECK(events[3].payload == "after");
  CHECK(events[4].opcode == Opcode::binary);
  CHECK(events[4].payload == std::string(200, 'x') + std::string(70000, 'y'));

  const std::string expected = describe(events);
  CHECK(describe(feed_bytewise(stream)) == expected);
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) CHECK(describe(feed_at(stream, random_cuts(stream.size(), rng))) == expected);
  // A fragmented message whose fragments are all empty is an empty message.
  auto empty = feed_whole(raw_frame(BINARY, "") + raw_frame(FIN | CONT, ""));
  REQUIRE(empty.size() == 1);
  CHECK(empty[0].opcode == Opcode::binary);
  CHECK(empty[0].payload.empty());
}

TEST_CASE("ws protocol: frame errors close with 1002") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"unmasked text", raw_frame(FIN | TEXT, "hi", /*masked=*/false)},
      {"unmasked close", raw_frame(FIN | CLOSE, "", false)},
      {"RSV1", raw_frame(FIN | 0x40 | TEXT, "hi")},
      {"RSV2", raw_frame(FIN | 0x20 | TEXT, "hi")},
      {"RSV3", raw_frame(FIN | 0x10 | BINARY, "hi")},
      {"continuation without a message", raw_frame(FIN | CONT, "hi")},
      {"unfinished continuation without a message", raw_frame(CONT, "hi")},
      {"text inside a fragmented message", raw_frame(TEXT, "a") + text("b")},
      {"binary inside a fragmented message", raw_frame(TEXT, "a") + raw_frame(BINARY, "b")},
      {"ping over 125 bytes", raw_frame(FIN | PING, std::string(126, 'p'))},
      {"close over 125 bytes", raw_frame(FIN | CLOSE, "\x03\xe8" + std::string(124, 'c'))},
      {"fragmented ping", raw_frame(PING, "p")},
      {"fragmented pong", raw_frame(PONG, "p")},
      {"fragmented close", raw_frame(CLOSE, "")},
      {"16-bit length for 125 bytes", raw_frame(FIN | TEXT, std::string(125, 'a'), true, 16)},
      {"16-bit length for 0 bytes", raw_frame(FIN | BINARY, "", true, 16)},
      {"64-bit length for 65535 bytes", raw_frame(FIN | BINARY, std::string(65535, 'a'), true, 64)},
      {"64-bit length for 1 byte", raw_frame(FIN | BINARY, "a", true, 64)},
      {"64-bit length with the top bit set", std::string("\x82\xff\x80\0\0\0\0\0\0\x01", 10) + "mask"},
      {"one-byte close payload", raw_frame(FIN | CLOSE, "\x03")},
  };
  for (const auto& [what, bytes] : cases) {
    INFO(what);
    ClientEvent e = only_error(bytes);
    CHECK(e.code == close_protocol_error);
    CHECK_FALSE(e.payload.empty());
    // The same split byte by byte.
    auto bytewise = feed_bytewise(bytes);
    REQUIRE_FALSE(bytewise.empty());
    CHECK(bytewise.back().kind == Kind::error);
    CHECK(bytewise.back().code == close_protocol_error);
  }
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    INFO("opcode " << int(op));
    ClientEvent e = only_error(raw_frame(FIN | op, "x"));
    CHECK(e.code == close_protocol_error);
    CHECK_THAT(e.payload, Catch::Contains("opcode"));
  }
}

TEST_CASE("ws protocol: a message over the limit closes with 1009, decided from the header") {
  const size_t limit = 1000;
  auto ok = feed_whole(text(std::string(limit, 'a')), limit);
  REQUIRE(ok.size() == 1);
  CHECK(ok[0].payload.size() == limit);
  CHECK(only_error(text(std::string(limit + 1, 'a')), limit).code == close_too_big);
  // Across fragments: 600 + 400 fits, 600 + 401 does not.
  auto fits = feed_whole(raw_frame(TEXT, std::string(600, 'a')) + raw_frame(FIN | CONT, std::string(400, 'b')), limit);
  REQUIRE(fits.size() == 1);
  CHECK(fits[0].payload.size() == limit);
  CHECK(only_error(raw_frame(TEXT, std::string(600, 'a')) + raw_frame(FIN | CONT, std::string(401, 'b')), limit).code ==
        close_too_big);
  // From the header alone: none of these payloads is ever sent.
  for (uint64_t announced : {uint64_t{1001}, uint64_t{65536}, uint64_t{1} << 40, (uint64_t{1} << 63) - 1}) {
    INFO("announced " << announced);
    ClientFrameParser p(limit);
    std::vector<ClientEvent> out;
    p.feed(frame_header(FIN | BINARY, announced), out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == Kind::error);
    CHECK(out[0].code == close_too_big);
    CHECK(p.failed());
    CHECK(p.held_bytes() == 0);
  }
  // ... also for a continuation, once the earlier fragments count.
  ClientFrameParser p(limit);
  std::vector<ClientEvent> out;
  p.feed(raw_frame(BINARY, std::string(900, 'a')), out);
  CHECK(out.empty());
  p.feed(frame_header(FIN | CONT, 101), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].code == close_too_big);
  // Control frames do not count towards a message.
  auto control = feed_whole(raw_frame(TEXT, std::string(990, 'a')) + ping(std::string(100, 'p')) +
                            raw_frame(FIN | CONT, std::string(10, 'b')), limit);
  REQUIRE(control.size() == 2);
  CHECK(control[1].payload.size() == limit);
}

TEST_CASE("ws protocol: text that is not UTF-8 closes with 1007, also across fragments") {
  CHECK(only_error(text("\xff")).code == close_bad_payload);
  CHECK(only_error(text("ok \xC0\xAF")).code == close_bad_payload);  // overlong
  CHECK(only_error(text("\xED\xA0\x80")).code == close_bad_payload);  // surrogate
  CHECK(only_error(text("cut \xE2\x82")).code == close_bad_payload);  // truncated at the end
  // Invalid across fragments: each fragment is a prefix of valid text, the whole is not.
  CHECK(only_error(raw_frame(TEXT, "a\xE2\x82") + raw_frame(FIN | CONT, "(")).code == close_bad_payload);
  CHECK(only_error(raw_frame(TEXT, "ok") + raw_frame(CONT, "\xff") + raw_frame(FIN | CONT, "ok")).code == close_bad_payload);
  // Valid multi-byte characters split across fragments (and a ping between) pass.
  std::string split = raw_frame(TEXT, "price: \xE2") + raw_frame(CONT, "\x82") + ping("") +
                      raw_frame(CONT, "\xAC 5 \xF0\x9F") + raw_frame(FIN | CONT, "\x98\x80");
  auto events = feed_whole(split);
  INFO(describe(events));
  REQUIRE(events.size() == 2);
  CHECK(events[0].kind == Kind::ping);
  CHECK(events[1].kind == Kind::message);
  CHECK(events[1].payload == "price: \xE2\x82\xAC 5 \xF0\x9F\x98\x80");
  CHECK(describe(feed_bytewise(split)) == describe(events));
  // Binary messages are not text.
  CHECK(feed_whole(binary("\xff\xfe")).at(0).payload == "\xff\xfe");
}

TEST_CASE("ws protocol: close frames carry a valid code and a UTF-8 reason") {
  auto none = feed_whole(raw_frame(FIN | CLOSE, ""));
  REQUIRE(none.size() == 1);
  CHECK(none[0].kind == Kind::close);
  CHECK(none[0].code == 1005);
  CHECK(none[0].payload.empty());

  // 1012-1014 are registered with IANA after RFC 6455; kws sends 1013 itself.
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
    INFO("code " << code);
    auto events = feed_whole(close_with(code, "bye \xC3\xBC"));
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == Kind::close);
    CHECK(events[0].code == code);
    CHECK(events[0].payload == "bye \xC3\xBC");
  }
  auto no_reason = feed_whole(close_with(1000));
  REQUIRE(no_reason.size() == 1);
  CHECK(no_reason[0].code == 1000);
  CHECK(no_reason[0].payload.empty());

  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    INFO("code " << code);
    ClientEvent e = only_error(close_with(code, "x"));
    CHECK(e.code == close_protocol_error);
    CHECK_THAT(e.payload, Catch::Contains(std::to_string(code)));
  }
  CHECK(only_error(close_with(1000, "bad \xff reason")).code == close_bad_payload);
  CHECK(only_error(close_with(1000, "cut \xC3")).code == close_bad_payload);
}

TEST_CASE("ws protocol: after an error the parser stays failed") {
  ClientFrameParser p(1 << 20);
  std::vector<ClientEvent> out;
  // A good frame, then an unmasked one, then more good frames in the same read.
  p.feed(text("first") + raw_frame(FIN | TEXT, "x", false) + text("never"), out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].payload == "first");
  CHECK(out[1].kind == Kind::error);
  CHECK(p.failed());
  CHECK(p.held_bytes() == 0);
  p.feed(text("later"), out);
  p.feed(ping("p"), out);
  p.feed(close_with(1000), out);
  CHECK(out.size() == 2);
  CHECK(p.failed());

  // Also when the error comes in the middle of a fragmented message.
  ClientFrameParser q(1 << 20);
  std::vector<ClientEvent> qout;
  q.feed(raw_frame(TEXT, std::string(5000, 'a')), qout);
  CHECK(q.held_bytes() > 0);
  q.feed(raw_frame(FIN | 0x40 | CONT, "b"), qout);
  REQUIRE(qout.size() == 1);
  CHECK(qout[0].code == close_protocol_error);
  CHECK(q.held_bytes() == 0);
  q.feed(raw_frame(FIN | CONT, "c"), qout);
  CHECK(qout.size() == 1);
}

TEST_CASE("ws protocol: an idle parser holds no heap") {
  ClientFrameParser p(1 << 20);
  CHECK(p.held_bytes() == 0);
  std::vector<ClientEvent> out;
  p.feed(text(std::string(5000, 'a')) + binary(std::string(70000, 'b')) + ping("x"), out);
  CHECK(out.size() == 3);
  CHECK(p.held_bytes() == 0);

  // A partial frame is kept, and let go once it completes.
  std::string big = binary(std::string(100000, 'c'));
  p.feed(std::string_view(big).substr(0, 3), out);
  p.feed(std::string_view(big).substr(3, 20), out);
  CHECK(p.held_bytes() >= 23);
  p.feed(std::string_view(big).substr(23, 50000 - 20), out);
  CHECK(p.held_bytes() >= 50003);
  p.feed(std::string_view(big).substr(50003), out);
  CHECK(out.size() == 4);
  CHECK(p.held_bytes() == 0);

  // Two whole frames and the start of a third, then the rest of it.
  std::string two = text("one") + text("two") + text("three, long enough to need the heap");
  p.feed(std::string_view(two).substr(0, two.size() - 2), out);
  CHECK(out.size() == 6);
  CHECK(p.held_bytes() > 0);
  p.feed(std::string_view(two).substr(two.size() - 2), out);
  CHECK(out.size() == 7);
  CHECK(p.held_bytes() == 0);

  // A fragmented message is held until its last fragment.
  p.feed(raw_frame(TEXT, std::string(3000, 'f')), out);
  CHECK(p.held_bytes() >= 3000);
  p.feed(raw_frame(FIN | CONT, "g"), out);
  CHECK(out.size() == 8);
  CHECK(p.held_bytes() == 0);
}

// ---- frames to the client ------------------------------------------------------------

TEST_CASE("ws protocol: control_frame and close_frame stay within 125 bytes of payload") {
  std::string pong = control_frame(Opcode::pong, "abc");
  CHECK(pong == std::string("\x8A\x03" "abc"));
  std::string cut = control_frame(Opcode::ping, std::string(300, 'p'));
  CHECK(cut.size() == 127);
  CHECK(static_cast<uint8_t>(cut[1]) == 125);

  CHECK(close_frame(1000, "") == std::string("\x88\x02\x03\xe8", 4));
  CHECK(close_frame(1009, "big") == std::string("\x88\x05\x03\xf1" "big", 7));

  // Long multi-byte reasons are cut at a character boundary, for each width.
  for (const std::string ch : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "a\xF0\x9F\x98\x80"}) {
    std::string reason = repeat(ch, 100);
    std::string f = close_frame(4000, reason);
    INFO("reason of " << reason.size() << " bytes");
    REQUIRE(f.size() >= 4);
    CHECK(f.size() <= 127);
    CHECK(static_cast<uint8_t>(f[0]) == 0x88);
    CHECK(static_cast<size_t>(static_cast<uint8_t>(f[1])) == f.size() - 2);
    std::string kept = f.substr(4);
    CHECK(kept.size() > 120 - ch.size());
    CHECK(kws::is_valid_utf8(kept));
    CHECK(reason.compare(0, kept.size(), kept) == 0);
    // What a client would read back (masked, as a client echoes it).
    std::string payload = f.substr(2);
    auto events = feed_whole(raw_frame(FIN | CLOSE, payload));
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == Kind::close);
    CHECK(events[0].code == 4000);
    CHECK(events[0].payload == kept);
  }
  // A reason that fits is kept whole, even when it ends on a multi-byte character.
  std::string fits = std::string(120, 'a') + "\xE2\x82\xAC";
  CHECK(close_frame(1000, fits).substr(4) == fits);
}
