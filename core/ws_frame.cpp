#include "core/ws_frame.hpp"

namespace kws::ws {

void append_frame_header(std::string& out, Opcode opcode, uint64_t n, const uint8_t* mask, bool fin) {
  out += static_cast<char>((fin ? 0x80 : 0x00) | static_cast<uint8_t>(opcode));
  const uint8_t mask_bit = mask ? 0x80 : 0x00;
  if (n < 126) {
    out += static_cast<char>(mask_bit | n);
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>((n >> 8) & 0xFF);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xFF);
  }
  if (mask) out.append(reinterpret_cast<const char*>(mask), 4);
}

std::string frame(Opcode opcode, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 10);
  append_frame_header(out, opcode, payload.size());
  out.append(payload);
  return out;
}

void mask_payload(char* data, size_t size, const uint8_t* mask, size_t offset) {
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>(data[i] ^ mask[(offset + i) & 3]);
}

HeaderRead read_frame_header(std::string_view bytes, FrameHeader& out) {
  if (bytes.size() < 2) return HeaderRead::incomplete;
  auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  out.fin = (byte(0) & 0x80) != 0;
  out.reserved = static_cast<uint8_t>((byte(0) >> 4) & 0x7);
  out.opcode = static_cast<Opcode>(byte(0) & 0x0F);
  out.masked = (byte(1) & 0x80) != 0;
  out.length = byte(1) & 0x7F;
  out.shortest = true;
  size_t size = 2;
  if (out.length == 126) {
    if (bytes.size() < 4) return HeaderRead::incomplete;
    out.length = (uint64_t{byte(2)} << 8) | byte(3);
    out.shortest = out.length >= 126;
    size = 4;
  } else if (out.length == 127) {
    if (bytes.size() < 10) return HeaderRead::incomplete;
    out.length = 0;
    for (size_t i = 0; i < 8; ++i) out.length = (out.length << 8) | byte(2 + i);
    if (out.length >> 63) return HeaderRead::length_over_63_bits;
    out.shortest = out.length > 0xFFFF;
    size = 10;
  }
  if (out.masked) {
    if (bytes.size() < size + 4) return HeaderRead::incomplete;
    for (size_t i = 0; i < 4; ++i) out.mask[i] = byte(size + i);
    size += 4;
  }
  out.size = size;
  return HeaderRead::complete;
}

}  // namespace kws::ws
