#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

#include "core/hub/encodings.hpp"
#include "core/hub/frame.hpp"
#include "core/ws_frame.hpp"

using namespace kws;

namespace {

FramePtr frame(int64_t offset, std::string_view value, std::string_view topic = "t") {
  return make_frame(MessageView{topic, 0, offset, 5, TimestampType::create_time, std::nullopt, value, {}});
}

}  // namespace

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

TEST_CASE("frame batch: each encoding is built once, on first use, and shared") {
  auto topic = std::make_shared<const std::string>("my_topic");
  FrameBatch batch(topic, {frame(1, "hi", "my_topic"), frame(2, "yo", "my_topic")});
  const std::string& binary = batch.bytes(Encoding::kafka_binary);
  CHECK(binary == std::string("\x82\x0b\x08my_topichi\x82\x0b\x08my_topicyo", 26));
  CHECK(&binary == &batch.bytes(Encoding::kafka_binary));
  CHECK(batch.count(Encoding::kafka_binary) == 2);
  const std::string& text = batch.bytes(Encoding::kafka_text);
  CHECK(text.find("\"topic\":\"my_topic\"") != std::string::npos);
  CHECK(text.find("\"offset\":2") > text.find("\"offset\":1"));
  CHECK(batch.count(Encoding::kafka_text) == 2);
}

TEST_CASE("frame batch: many threads asking at once get the same bytes") {
  auto topic = std::make_shared<const std::string>("t");
  std::vector<FramePtr> frames;
  for (int i = 0; i < 1000; ++i) frames.push_back(frame(i, std::string(100, 'x')));
  FrameBatch batch(topic, frames);
  std::vector<const std::string*> seen(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] { seen[i] = &batch.bytes(Encoding::kafka_text); });
  }
  for (auto& t : threads) t.join();
  for (auto* s : seen) CHECK(s == seen[0]);
  CHECK(batch.count(Encoding::kafka_text) == 1000);
}

TEST_CASE("frame batch: kafka-binary leaves out what it cannot carry") {
  std::string long_topic(256, 't');
  auto topic = std::make_shared<const std::string>(long_topic);
  FrameBatch batch(topic, {frame(1, "x", long_topic)});
  CHECK(batch.bytes(Encoding::kafka_binary).empty());
  CHECK(batch.count(Encoding::kafka_binary) == 0);
  CHECK(batch.count(Encoding::kafka_text) == 1);
}

TEST_CASE("make_batches: cuts by size, keeps order, at least one frame each") {
  auto topic = std::make_shared<const std::string>("t");
  std::vector<FramePtr> frames;
  for (int i = 0; i < 100; ++i) frames.push_back(frame(i, std::string(1000, 'x')));
  auto batches = make_batches(topic, frames, 10000);
  CHECK(batches.size() > 5);
  int64_t expect = 0;
  for (const auto& b : batches) {
    CHECK(!b->frames().empty());
    for (const auto& f : b->frames()) CHECK(f->offset == expect++);
  }
  CHECK(expect == 100);
  auto huge = make_batches(topic, {frame(0, std::string(50000, 'x'))}, 10000);
  CHECK(huge.size() == 1);
}
