// core/ws_frame.*: the one RFC 6455 frame-header codec, which the serve
// transport, the hub's encodings, kws bench and the ingest benchmark's feed
// all go through.
#include <catch2/catch.hpp>

#include <string>

#include "core/ws_frame.hpp"

using namespace kws;

TEST_CASE("ws frame codec: headers for each length class, masked and not, read back") {
  std::string h;
  ws::append_frame_header(h, ws::Opcode::text, 125);
  CHECK(h == std::string("\x81\x7d", 2));
  h.clear();
  ws::append_frame_header(h, ws::Opcode::binary, 126);
  CHECK(h == std::string("\x82\x7e\x00\x7e", 4));
  h.clear();
  ws::append_frame_header(h, ws::Opcode::text, 70000);
  CHECK(h == std::string("\x81\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10));
  const uint8_t mask[4] = {1, 2, 3, 4};
  h.clear();
  ws::append_frame_header(h, ws::Opcode::ping, 5, mask, true);
  ws::FrameHeader read;
  REQUIRE(ws::read_frame_header(h, read) == ws::HeaderRead::complete);
  CHECK(read.opcode == ws::Opcode::ping);
  CHECK(read.masked);
  CHECK(read.length == 5);
  CHECK(read.size == 6);
  CHECK(read.mask[3] == 4);
  CHECK(ws::read_frame_header(h.substr(0, 3), read) == ws::HeaderRead::incomplete);
  std::string over("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10);
  CHECK(ws::read_frame_header(over, read) == ws::HeaderRead::length_over_63_bits);
  std::string longish("\x82\x7e\x00\x05", 4);  // 5 in the 16-bit form
  REQUIRE(ws::read_frame_header(longish, read) == ws::HeaderRead::complete);
  CHECK_FALSE(read.shortest);
}

TEST_CASE("ws frame codec: 64-bit lengths use all 8 bytes, both ways") {
  const uint64_t length = 0x0102030405060708ull;
  std::string h;
  ws::append_frame_header(h, ws::Opcode::binary, length);
  CHECK(h == std::string("\x82\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10));
  ws::FrameHeader read;
  REQUIRE(ws::read_frame_header(h, read) == ws::HeaderRead::complete);
  CHECK(read.length == length);
  CHECK(read.size == 10);
  CHECK(read.shortest);
  // The edges between the forms.
  for (uint64_t n : {uint64_t{0}, uint64_t{125}, uint64_t{126}, uint64_t{65535}, uint64_t{65536}, (uint64_t{1} << 63) - 1}) {
    INFO(n);
    h.clear();
    ws::append_frame_header(h, ws::Opcode::text, n);
    CHECK(h.size() == (n < 126 ? 2u : n <= 65535 ? 4u : 10u));
    REQUIRE(ws::read_frame_header(h, read) == ws::HeaderRead::complete);
    CHECK(read.length == n);
    CHECK(read.shortest);
  }
  // Over 2^63 the length is still there for the caller's message.
  std::string over("\x82\x7f\xff\xff\xff\xff\xff\xff\xff\xff", 10);
  REQUIRE(ws::read_frame_header(over, read) == ws::HeaderRead::length_over_63_bits);
  CHECK(read.length == UINT64_MAX);
}

TEST_CASE("ws frame codec: the first two bytes are read even when the header is incomplete") {
  ws::FrameHeader read;
  CHECK(ws::read_frame_header(std::string("\x81", 1), read) == ws::HeaderRead::incomplete);
  CHECK_FALSE(read.masked);
  // Masked, 64-bit length, RSV1 and RSV3, no FIN, a reserved opcode: all
  // known from two bytes, though the length and the key are still to come.
  CHECK(ws::read_frame_header(std::string("\x53\xff\x00", 3), read) == ws::HeaderRead::incomplete);
  CHECK_FALSE(read.fin);
  CHECK(read.reserved == 0x5);
  CHECK(static_cast<int>(read.opcode) == 3);
  CHECK(read.masked);
  // The key is part of the header: without it the header is incomplete.
  const uint8_t mask[4] = {9, 8, 7, 6};
  std::string h;
  ws::append_frame_header(h, ws::Opcode::text, 300, mask, false);
  CHECK(h.size() == 8);
  CHECK(ws::read_frame_header(std::string_view(h).substr(0, 7), read) == ws::HeaderRead::incomplete);
  REQUIRE(ws::read_frame_header(h, read) == ws::HeaderRead::complete);
  CHECK_FALSE(read.fin);
  CHECK(read.length == 300);
  CHECK(read.mask[0] == 9);
  CHECK(read.mask[3] == 6);
}

TEST_CASE("ws frame codec: masking in pieces equals masking at once, at any offset") {
  const uint8_t mask[4] = {0x11, 0x22, 0x44, 0x88};
  std::string payload;
  for (int i = 0; i < 23; i++) payload += static_cast<char>('a' + i);
  std::string whole = payload;
  ws::mask_payload(whole.data(), whole.size(), mask);
  for (size_t i = 0; i < payload.size(); i++) {
    CHECK(static_cast<uint8_t>(whole[i]) == (static_cast<uint8_t>(payload[i]) ^ mask[i % 4]));
  }
  // Split at every point, including ones that are not a multiple of 4.
  for (size_t cut = 0; cut <= payload.size(); cut++) {
    INFO(cut);
    std::string pieces = payload;
    ws::mask_payload(pieces.data(), cut, mask);
    ws::mask_payload(pieces.data() + cut, pieces.size() - cut, mask, cut);
    CHECK(pieces == whole);
  }
  // Masking twice gives the payload back.
  ws::mask_payload(whole.data(), whole.size(), mask);
  CHECK(whole == payload);
  // A whole frame: header and masked payload.
  CHECK(ws::frame(ws::Opcode::text, "hi") == std::string("\x81\x02hi", 4));
}
