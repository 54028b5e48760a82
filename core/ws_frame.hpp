#pragma once
// RFC 6455 frame headers as pure functions over bytes: the one WebSocket
// frame codec of kws. The server's transport (core/ws/protocol.*), the hub's
// encodings (core/hub/encodings.*), kws bench's client (core/bench/wire.*)
// and the ingest benchmark's feed all frame and read frames through it. No
// sockets, no validation policy: callers decide what a header may say.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kws::ws {

enum class Opcode : uint8_t { continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA };

// Appends the header of a frame with FIN set (unless `fin` is false) and the
// length in its shortest form. With `mask` (4 bytes: client frames) the mask
// bit and the key follow; the payload must then be masked (mask_payload).
void append_frame_header(std::string& out, Opcode opcode, uint64_t payload_size, const uint8_t* mask = nullptr,
                         bool fin = true);

// A complete unmasked frame (server to client) around `payload`.
std::string frame(Opcode opcode, std::string_view payload);

// XORs `size` bytes with the 4-byte key, starting `offset` bytes into the
// payload (for payloads masked in pieces).
void mask_payload(char* data, size_t size, const uint8_t* mask, size_t offset = 0);

struct FrameHeader {
  bool fin = false;
  uint8_t reserved = 0;  // RSV1-3, as the three bits
  Opcode opcode = Opcode::continuation;
  bool masked = false;
  uint8_t mask[4] = {0, 0, 0, 0};
  uint64_t length = 0;
  size_t size = 0;        // bytes of the header itself, key included
  bool shortest = true;   // the length used its shortest encoding
};

enum class HeaderRead { incomplete, complete, length_over_63_bits };

// Reads the header at the start of `bytes`. Once 2 bytes are there, `fin`,
// `reserved`, `opcode` and `masked` are set even when the result is
// `incomplete`, so a caller can refuse a frame it must never accept (a
// masked one from a server, reserved bits) before the rest arrives. With
// `length_over_63_bits`, `length` holds the length as read, for the message.
HeaderRead read_frame_header(std::string_view bytes, FrameHeader& out);

}  // namespace kws::ws
