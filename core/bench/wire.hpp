#pragma once
// What kws bench writes and reads on the wire, as pure functions: the stamp
// inside each produced message, the ws:// or wss:// URL, the RFC 6455 opening
// handshake and frame format of a client. The load generator (swarm.hpp)
// drives sockets with them; tests/unit/test_bench_wire.cpp pins them.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/util/text.hpp"  // websocket_accept
#include "core/ws_frame.hpp"

namespace kws::bench {

// Every produced message starts with "kwsb<tag>:<seq>:<sent_ns>:" and is
// padded with 'x'. The tag is random per run, so messages of earlier runs on
// the same topic are recognised and not counted. The stamp is plain ASCII, so
// it reads the same inside a kws envelope, a kafka-websocket text frame and a
// kafka-binary frame.
struct Stamp {
  uint64_t seq = 0;
  uint64_t sent_ns = 0;  // CLOCK_MONOTONIC
};
inline constexpr size_t kTagBytes = 8;
inline constexpr size_t kMaxStampBytes = 4 + kTagBytes + 1 + 20 + 1 + 20 + 1;
std::string make_run_tag();
// Replaces `out` with the message for `seq`, `size` bytes long (size >= kMaxStampBytes).
void format_message(std::string& out, std::string_view tag, uint64_t seq, uint64_t sent_ns, size_t size);
// This run's stamp anywhere in `payload`, or nothing.
std::optional<Stamp> find_stamp(std::string_view payload, std::string_view tag);

struct WsUrl {
  bool tls = false;  // wss://
  bool raw_mqtt = false;  // mqtt://: MQTT over plain TCP, no WebSocket (port 1883 by default)
  std::string host;
  uint16_t port = 80;  // 443 for wss://
  std::string path;  // begins with '/', may carry a query
};
// ws://HOST[:PORT][/PATH], wss://... or mqtt://HOST[:PORT]; throws a usage
// error for anything else.
WsUrl parse_ws_url(const std::string& url);
// The kafka-websocket endpoint for one topic: PATH + "v2/broker/" when PATH
// is "/", PATH as given otherwise, plus topics=TOPIC in the query.
std::string subscribe_target(const WsUrl& url, const std::string& topic);
std::string url_encode(std::string_view text);
// The MQTT-over-WebSocket endpoint: /mqtt when the URL's path is "/", the
// path as given otherwise.
std::string mqtt_target(const WsUrl& url);

// The client's opening handshake and the accept value the server must answer.
std::string handshake_request(const WsUrl& url, const std::string& target, std::string_view key,
                              std::string_view subprotocol);
std::string new_handshake_key();

struct HandshakeAnswer {
  size_t header_bytes = 0;  // 0: the answer's headers are not complete yet
  bool ok = false;
  std::string error;        // when !ok and complete: why, with the status line and body
};
// Checks a server's answer to the handshake (status 101, the accept value,
// the subprotocol when the server names one).
HandshakeAnswer check_handshake(std::string_view response, std::string_view expected_accept,
                                std::string_view subprotocol);

// Frames are read and written with the project's one codec (core/ws_frame.hpp).
using ws::Opcode;
struct FrameView {
  Opcode opcode = Opcode::continuation;  // any 4-bit value: reserved opcodes are the caller's to ignore
  bool fin = true;
  std::string_view payload;
};
// Parses the server frame at the start of `bytes`. Returns its total length,
// or 0 when more bytes are needed; sets `error` (and returns 0) for a frame a
// server must not send (masked, reserved bits, oversized). A length in a
// longer form than needed is accepted.
size_t parse_server_frame(std::string_view bytes, FrameView& frame, std::string& error,
                          uint64_t max_payload = uint64_t(64) << 20);
// A masked client frame (FIN set).
std::string client_frame(Opcode opcode, std::string_view payload);
// The close code and reason of a close frame's payload (1005 when it has none).
std::pair<int, std::string> close_reason(std::string_view payload);

}  // namespace kws::bench
