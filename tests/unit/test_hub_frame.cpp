#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

#include "core/hub/encodings.hpp"
#include "core/hub/frame.hpp"

using namespace kws;

namespace {

FramePtr frame(int64_t offset, std::string_view value, std::string_view topic = "t") {
  return make_frame(MessageView{topic, 0, offset, 5, TimestampType::create_time, std::nullopt, value, {}});
}

}  // namespace

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
