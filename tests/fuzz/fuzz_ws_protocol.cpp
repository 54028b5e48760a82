// libFuzzer target for kws serve's WebSocket protocol (core/ws/protocol.cpp):
// the HTTP request head and the client frame parser see every byte a client
// sends before anything else does. Build and run: see tests/fuzz/CMakeLists.txt.
//
// Input: [split][limit][bytes...]. The bytes are parsed as a request head and
// as client frames, whole and split where the first byte says (as two reads
// of a socket would deliver them), and the results must agree; the second
// byte picks the largest message, so that small limits (1009) are reached.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/text.hpp"
#include "core/ws/protocol.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace kws::ws;

namespace {

bool same(const HttpRequest& a, const HttpRequest& b) {
  return a.method == b.method && a.target == b.target && a.version == b.version && a.headers == b.headers;
}

bool same(const std::vector<ClientEvent>& a, const std::vector<ClientEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind != b[i].kind || a[i].opcode != b[i].opcode || a[i].payload != b[i].payload || a[i].code != b[i].code) {
      return false;
    }
  }
  return true;
}

bool tchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void check_request(const HttpRequest& r) {
  CHECK(!r.method.empty());
  CHECK(!r.target.empty() && r.target[0] == '/');
  CHECK(r.version == "HTTP/1.1" || r.version == "HTTP/1.0");
  CHECK(r.headers.size() <= 100);
  for (const auto& [name, value] : r.headers) {
    CHECK(!name.empty());
    for (char c : name) CHECK(tchar(c));  // lower case: no A-Z
    if (!value.empty()) {
      CHECK(value.front() != ' ' && value.front() != '\t' && value.back() != ' ' && value.back() != '\t');
    }
    for (char c : value) CHECK(c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f));
  }
  for (const auto& t : r.header_tokens("connection")) CHECK(!t.empty() && t.find(',') == std::string::npos);
  bool version_mismatch = false;
  auto problem = upgrade_problem(r, version_mismatch);
  if (problem) {
    CHECK(!problem->empty());
    http_response(version_mismatch ? 426 : 400, "text/plain", *problem);
  } else {
    CHECK(!version_mismatch);
    CHECK(r.is_upgrade());
    std::string answer = upgrade_response(r.header("sec-websocket-key"), "kafka-text");
    CHECK(answer.find("\r\n\r\n") == answer.size() - 4);
    CHECK(answer.find("Sec-WebSocket-Accept: " + kws::websocket_accept(r.header("sec-websocket-key")) + "\r\n") !=
          std::string::npos);
  }
}

void check_head(std::string_view bytes, size_t split) {
  HttpRequest whole;
  HeadParse w = parse_request_head(bytes, whole);
  const size_t end = bytes.find("\r\n\r\n");
  switch (w.status) {
    case HeadStatus::incomplete:
      CHECK(end == std::string_view::npos && bytes.size() < kMaxRequestHead);
      break;
    case HeadStatus::too_large:
      CHECK(end == std::string_view::npos ? bytes.size() >= kMaxRequestHead : end + 4 > kMaxRequestHead);
      break;
    case HeadStatus::bad: {
      CHECK(!w.problem.empty());
      // Only a TLS ClientHello or a line ending in a bare LF is refused
      // before the whole head is there (a client that sends either may never
      // send "\r\n\r\n"); anything else needs the head, within the limit.
      const bool tls = bytes.size() >= 2 && bytes[0] == '\x16' && bytes[1] == '\x03';
      const size_t head_end = end == std::string_view::npos ? bytes.size() : end + 4;
      bool bare_lf = false;
      for (size_t i = 0; i < head_end; ++i) bare_lf = bare_lf || (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r'));
      CHECK(tls || bare_lf || (end != std::string_view::npos && end + 4 <= kMaxRequestHead));
      break;
    }
    case HeadStatus::complete: {
      CHECK(w.consumed == end + 4 && w.consumed <= kMaxRequestHead);
      check_request(whole);
      // What follows the head does not change it.
      HttpRequest alone;
      HeadParse a = parse_request_head(bytes.substr(0, w.consumed), alone);
      CHECK(a.status == HeadStatus::complete && a.consumed == w.consumed && same(alone, whole));
      break;
    }
  }
  // The head as far as a first read brought it: the connection parses what
  // it has after every read, and an earlier answer must be the final one.
  HttpRequest first;
  HeadParse f = parse_request_head(bytes.substr(0, split), first);
  switch (f.status) {
    case HeadStatus::incomplete:
      break;
    case HeadStatus::too_large:
      CHECK(w.status == HeadStatus::too_large);
      break;
    case HeadStatus::bad:
      CHECK(w.status == HeadStatus::bad && w.problem == f.problem);
      break;
    case HeadStatus::complete:
      CHECK(w.status == HeadStatus::complete && w.consumed == f.consumed && same(first, whole));
      break;
  }
}

bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// What the server's own frames look like to a client: unmasked, so mask them
// with a zero key for the client parser.
std::string as_client(std::string frame) {
  CHECK(frame.size() >= 2 && !(static_cast<uint8_t>(frame[1]) & 0x80));
  frame[1] = static_cast<char>(frame[1] | 0x80);
  frame.insert(2, std::string(4, '\0'));
  return frame;
}

void check_events(const std::vector<ClientEvent>& events, const ClientFrameParser& parser, size_t max_message) {
  for (size_t i = 0; i < events.size(); ++i) {
    const ClientEvent& e = events[i];
    switch (e.kind) {
      case ClientEvent::Kind::message:
        CHECK(e.opcode == Opcode::text || e.opcode == Opcode::binary);
        CHECK(e.payload.size() <= max_message);
        if (e.opcode == Opcode::text) CHECK(kws::is_valid_utf8(e.payload));
        break;
      case ClientEvent::Kind::ping: {
        CHECK(e.payload.size() <= 125);
        // The pong the connection answers with carries the same payload.
        ClientFrameParser echo(0);
        std::vector<ClientEvent> back;
        echo.feed(as_client(control_frame(Opcode::pong, e.payload)), back);
        CHECK(back.size() == 1 && back[0].kind == ClientEvent::Kind::pong && back[0].payload == e.payload);
        break;
      }
      case ClientEvent::Kind::pong:
        CHECK(e.payload.size() <= 125);
        break;
      case ClientEvent::Kind::close: {
        CHECK(e.payload.size() <= 123);
        CHECK(e.code == 1005 ? e.payload.empty() : valid_close_code(e.code));
        CHECK(kws::is_valid_utf8(e.payload));
        if (e.code != 1005) {
          // The echo of a close is itself a valid close frame.
          ClientFrameParser echo(0);
          std::vector<ClientEvent> back;
          std::string frame = close_frame(e.code, e.payload);
          CHECK(frame.size() <= 127);
          echo.feed(as_client(frame), back);
          CHECK(back.size() == 1 && back[0].kind == ClientEvent::Kind::close && back[0].code == e.code &&
                back[0].payload == e.payload);
        }
        break;
      }
      case ClientEvent::Kind::error:
        CHECK(i + 1 == events.size());  // nothing after an error
        CHECK(e.code == close_protocol_error || e.code == close_bad_payload || e.code == close_too_big);
        CHECK(!e.payload.empty());
        // The close frame the connection sends with that reason is valid.
        CHECK(close_frame(e.code, e.payload).size() <= 127);
        break;
    }
  }
  const bool ended_in_error = !events.empty() && events.back().kind == ClientEvent::Kind::error;
  CHECK(parser.failed() == ended_in_error);
  if (parser.failed()) CHECK(parser.held_bytes() == 0);
}

void check_frames(std::string_view bytes, size_t split, size_t max_message) {
  ClientFrameParser whole(max_message);
  std::vector<ClientEvent> w;
  whole.feed(bytes, w);
  check_events(w, whole, max_message);
  // Held: at most the unparsed tail and the message so far, with the
  // slack of std::string's doubling.
  CHECK(whole.held_bytes() <= 4 * bytes.size() + 64);
  // A failed parser stays failed.
  if (whole.failed()) {
    std::vector<ClientEvent> more;
    whole.feed(bytes, more);
    CHECK(more.empty() && whole.failed());
  }

  // Two reads, split where the input says.
  ClientFrameParser two(max_message);
  std::vector<ClientEvent> t;
  two.feed(bytes.substr(0, split), t);
  two.feed(bytes.substr(split), t);
  CHECK(same(w, t));
  CHECK(two.failed() == whole.failed());

  // One byte per read (short inputs only, to keep the fuzzer fast).
  if (bytes.size() <= 512) {
    ClientFrameParser each(max_message);
    std::vector<ClientEvent> b;
    for (char c : bytes) each.feed(std::string_view(&c, 1), b);
    CHECK(same(w, b));
    CHECK(each.held_bytes() <= 4 * bytes.size() + 64);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t split = bytes.size() * data[0] / 255;
  // Small limits (0..508 bytes) for most inputs, so 1009 is reached; 1 MiB otherwise.
  const size_t max_message = data[1] < 128 ? size_t{data[1]} * 4 : size_t{1} << 20;

  check_head(bytes, split);
  check_frames(bytes, split, max_message);
  // As a connection sees it: frames right behind a complete head.
  HttpRequest request;
  HeadParse head = parse_request_head(bytes, request);
  if (head.status == HeadStatus::complete) {
    std::string_view rest = bytes.substr(head.consumed);
    check_frames(rest, split > head.consumed ? split - head.consumed : 0, max_message);
  }
  return 0;
}
