#pragma once
// The server side of RFC 6455 as pure functions over bytes: the HTTP request
// head of the opening handshake, and the frames a client sends. No sockets,
// so every rule is unit-tested and fuzzed (tests/fuzz) without a network.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ws_frame.hpp"

namespace kws::ws {

// Close status codes (RFC 6455 section 7.4.1) kws sends.
enum CloseCode : uint16_t {
  close_normal = 1000,
  close_going_away = 1001,
  close_protocol_error = 1002,
  close_unsupported = 1003,
  close_bad_payload = 1007,  // text that is not UTF-8
  close_policy = 1008,
  close_too_big = 1009,
  close_internal = 1011,
  close_try_later = 1013,
};

// ---- the opening handshake -------------------------------------------------

inline constexpr size_t kMaxRequestHead = 16 * 1024;

struct HttpRequest {
  std::string method;
  std::string target;  // path and query, as sent
  std::string version;  // "HTTP/1.1" or "HTTP/1.0"
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
  // The first value of a header ("" when absent); names are lower case.
  std::string_view header(std::string_view name) const;
  // Every comma-separated token of every occurrence of a header, trimmed.
  std::vector<std::string> header_tokens(std::string_view name) const;
  bool is_upgrade() const;  // asks for a WebSocket (Upgrade: websocket)
};

enum class HeadStatus { incomplete, complete, bad, too_large };

struct HeadParse {
  HeadStatus status = HeadStatus::incomplete;
  size_t consumed = 0;  // bytes of the head, terminator included (complete only)
  std::string problem;  // why, for bad
};

// Parses an HTTP/1.1 request head from the start of `bytes`.
HeadParse parse_request_head(std::string_view bytes, HttpRequest& out);

// What is wrong with a WebSocket upgrade request (every rule of RFC 6455
// section 4.2.1: GET over HTTP/1.1, Host, Upgrade: websocket, Connection:
// Upgrade, a 16-byte key, version 13), or nothing. `version_mismatch` is set
// when only Sec-WebSocket-Version is wrong (the caller answers 426).
std::optional<std::string> upgrade_problem(const HttpRequest& request, bool& version_mismatch);

// A complete HTTP/1.1 response that closes the connection.
std::string http_response(int status, std::string_view content_type, std::string_view body,
                          std::string_view extra_headers = {});
// The 101 answer to an upgrade; `subprotocol` empty for none.
std::string upgrade_response(std::string_view key, std::string_view subprotocol);

std::string_view status_text(int status);

// ---- frames from the client ------------------------------------------------

// Heap bytes a string owns: none while it fits its in-object buffer (15
// bytes in libstdc++), although capacity() reports that buffer's size.
inline size_t heap_bytes(const std::string& s) { return s.capacity() > std::string().capacity() ? s.capacity() : 0; }

// One event out of the byte stream: a whole message (fragments joined) or a
// control frame, or the reason the connection must close.
struct ClientEvent {
  enum class Kind { message, ping, pong, close, error } kind = Kind::message;
  Opcode opcode = Opcode::text;  // message: text or binary
  std::string payload;           // message / ping / pong data; close: the reason
  uint16_t code = 0;             // close: the client's code (1005 when none); error: the code to close with
};

// Reads client frames incrementally. Holds only a partial frame or message
// between reads, so an idle connection's parser owns no heap memory.
class ClientFrameParser {
 public:
  explicit ClientFrameParser(size_t max_message) : max_message_(max_message) {}

  // Consumes `bytes`, appending complete events to `out`. After an error
  // event the parser is done: the caller closes with that code.
  void feed(std::string_view bytes, std::vector<ClientEvent>& out);
  bool failed() const { return failed_; }
  size_t held_bytes() const {
    return held_ ? sizeof(Held) + heap_bytes(held_->pending) + heap_bytes(held_->message) : 0;
  }

 private:
  bool fail(std::vector<ClientEvent>& out, uint16_t code, std::string why);
  // Parses one frame of `data` at `pos` (advancing it); false when the
  // frame is incomplete or wrong (then failed_ is set).
  bool take_frame(std::string_view data, size_t& pos, std::vector<ClientEvent>& out);

  // What a connection keeps between reads; allocated only while there is
  // something to keep, so an idle connection's parser is a few words.
  struct Held {
    std::string pending;  // bytes not yet parsed (a partial frame)
    std::string message;  // fragments of a message in progress
  };
  Held& held() {
    if (!held_) held_ = std::make_unique<Held>();
    return *held_;
  }
  size_t message_size() const { return held_ ? held_->message.size() : 0; }

  size_t max_message_;
  std::unique_ptr<Held> held_;
  Opcode message_opcode_ = Opcode::text;
  bool in_message_ = false;
  bool failed_ = false;
};

// ---- frames to the client (server frames are never masked) -----------------

// A complete control frame (payload at most 125 bytes; longer is cut).
std::string control_frame(Opcode opcode, std::string_view payload);
// A close frame with a status code and a reason (cut to fit 125 bytes).
std::string close_frame(uint16_t code, std::string_view reason);

}  // namespace kws::ws
