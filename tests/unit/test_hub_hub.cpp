#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <thread>
#include <vector>

#include "core/hub/hub.hpp"
#include "core/hub/outbox.hpp"
#include "tests/unit/alloc_count.hpp"
#include "tests/unit/fakes.hpp"

using namespace kws;
using kws::test::FakeCluster;
using kws::test::FakeFeed;

namespace {

// Records what the hub handed over, frame identity included.
struct Recorder : Subscriber {
  std::vector<FramePtr> frames;
  std::vector<nlohmann::json> replies;
  void deliver(const FrameBatchPtr& b) override { frames.insert(frames.end(), b->frames.begin(), b->frames.end()); }
  void reply(const std::string& json) override { replies.push_back(nlohmann::json::parse(json)); }
  std::vector<int64_t> offsets(int32_t partition) const {
    std::vector<int64_t> out;
    for (const auto& f : frames) {
      if (f->partition == partition) out.push_back(f->offset);
    }
    return out;
  }
};

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (int64_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

struct HubFixture {
  FakeCluster cluster;
  NullLog log;
  int catchup_feeds = 0;
  HubLimits limits;
  std::unique_ptr<Hub> hub;

  explicit HubFixture(size_t ring_bytes = 1 << 20) {
    limits.ring_bytes = ring_bytes;
    limits.linger = std::chrono::milliseconds(0);
    hub = std::make_unique<Hub>(
        std::make_unique<FakeFeed>(cluster),
        [this] {
          ++catchup_feeds;
          return std::make_unique<FakeFeed>(cluster);
        },
        limits, log);
  }
  void spin(int times = 3) {
    for (int i = 0; i < times; ++i) hub->run_once(std::chrono::milliseconds(0));
  }
  void subscribe(const std::shared_ptr<Recorder>& r, const std::string& topic, const std::string& start) {
    hub->subscribe(r, topic, parse_offset_spec(start == "latest" ? "end" : start), start, "7");
    spin();
  }
};

}  // namespace

TEST_CASE("hub: every subscriber of a topic gets the same encoded frame, once") {
  HubFixture f;
  f.cluster.create("t", 2);
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  f.subscribe(b, "t", "latest");
  REQUIRE(a->replies.size() == 1);
  CHECK(a->replies[0]["type"] == "subscribed");
  CHECK(a->replies[0]["partitions"] == 2);
  CHECK(a->replies[0]["id"] == 7);
  f.cluster.append("t", 0, "x");
  f.cluster.append("t", 1, "y");
  f.spin();
  REQUIRE(a->frames.size() == 2);
  REQUIRE(b->frames.size() == 2);
  CHECK(a->frames[0].get() == b->frames[0].get());  // shared, not re-encoded
  CHECK(a->frames[0]->text.find("\"message\":\"x\"") != std::string::npos);
  CHECK(f.catchup_feeds == 0);
}

TEST_CASE("hub: latest starts after what the topic already holds") {
  HubFixture f;
  f.cluster.create("t", 1);
  f.cluster.append("t", 0, "old");
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  f.cluster.append("t", 0, "new");
  f.spin();
  CHECK(a->offsets(0) == std::vector<int64_t>{1});
}

TEST_CASE("hub: -N within the ring is served from memory, without a catch-up reader") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto first = std::make_shared<Recorder>();
  f.subscribe(first, "t", "latest");
  for (int i = 0; i < 10; ++i) f.cluster.append("t", 0, "m" + std::to_string(i));
  f.spin();
  auto late = std::make_shared<Recorder>();
  f.subscribe(late, "t", "-3");
  CHECK(late->offsets(0) == range(7, 10));
  CHECK(f.catchup_feeds == 0);
  f.cluster.append("t", 0, "after");
  f.spin();
  CHECK(late->offsets(0) == range(7, 11));
}

TEST_CASE("hub: history older than the ring comes from a catch-up reader, then live, no gap and no duplicate") {
  HubFixture f(600);  // a ring of a few frames only
  f.cluster.create("t", 2);
  for (int i = 0; i < 50; ++i) f.cluster.append("t", i % 2, "before-" + std::to_string(i));
  auto first = std::make_shared<Recorder>();
  f.subscribe(first, "t", "latest");
  for (int i = 0; i < 40; ++i) f.cluster.append("t", i % 2, "live-" + std::to_string(i));
  f.spin();
  auto late = std::make_shared<Recorder>();
  f.hub->subscribe(late, "t", parse_offset_spec("beginning"), "earliest", "");
  // Messages keep arriving while the catch-up runs.
  for (int round = 0; round < 20; ++round) {
    f.cluster.append("t", round % 2, "during-" + std::to_string(round));
    f.hub->run_once(std::chrono::milliseconds(0));
  }
  f.spin(5);
  CHECK(f.catchup_feeds == 1);
  CHECK(late->offsets(0) == range(0, 55));
  CHECK(late->offsets(1) == range(0, 55));
  f.cluster.append("t", 0, "end");
  f.spin();
  CHECK(late->offsets(0) == range(0, 56));
  CHECK(f.hub->stats().catchups == 0);
}

TEST_CASE("hub: a time start skips older messages even when the broker answers with an earlier offset") {
  HubFixture f;
  f.cluster.create("t", 1);
  for (int i = 0; i < 6; ++i) f.cluster.append("t", 0, "m", 1000 + i * 100);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "@1300");
  CHECK(a->offsets(0) == range(3, 6));
}

TEST_CASE("hub: unknown topics, stored offsets and unsubscribe get replies; the session goes on") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "nosuch", "latest");
  REQUIRE(a->replies.size() == 1);
  CHECK(a->replies[0]["type"] == "error");
  CHECK(a->replies[0]["code"] == "unknown_topic");
  CHECK(a->replies[0]["topic"] == "nosuch");
  f.subscribe(a, "t", "stored");
  CHECK(a->replies[1]["code"] == "bad_offset");
  f.subscribe(a, "t", "latest");
  CHECK(a->replies[2]["type"] == "subscribed");
  f.hub->unsubscribe(a, "t", "\"u1\"");
  f.spin();
  CHECK(a->replies[3]["type"] == "unsubscribed");
  CHECK(a->replies[3]["id"] == "u1");
  f.cluster.append("t", 0, "x");
  f.spin();
  CHECK(a->frames.empty());
}

TEST_CASE("hub: a topic nobody reads is let go after the linger") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  CHECK(f.hub->stats().topics.size() == 1);
  f.hub->remove(a);
  f.spin();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // stats refresh at most twice a second
  f.spin();
  CHECK(f.hub->stats().topics.empty());
}

TEST_CASE("outbox: close policy overflows past the budget; replies are counted too") {
  auto frame = encode_frame(MessageView{"t", 0, 1, 5, TimestampType::create_time, std::nullopt, std::string_view("0123456789"), {}});
  size_t one = frame->text.size();
  Outbox box(one * 3, SlowClientPolicy::close, WireFormat::text);
  std::vector<FramePtr> three(3, frame);
  auto o = box.offer(three.data(), 3);
  CHECK(o.schedule_flush);
  CHECK_FALSE(o.overflow);
  CHECK_FALSE(box.offer(three.data(), 1).schedule_flush);  // one flush pending already
  CHECK(box.overflowed());
  std::string out;
  CHECK(box.take(out) == 3);
  CHECK(out.size() == 3 * one);
}

TEST_CASE("outbox: drop-oldest keeps the newest, never drops replies, and reports the count once") {
  auto make = [](int64_t offset) {
    return encode_frame(MessageView{"t", 0, offset, 5, TimestampType::create_time, std::nullopt, std::string_view("0123456789"), {}});
  };
  size_t one = make(0)->text.size();
  Outbox box(one * 3 + 40, SlowClientPolicy::drop_oldest, WireFormat::text);
  box.offer_reply(ws_text_frame("{\"type\":\"ack\"}"));
  for (int64_t i = 0; i < 10; ++i) {
    FramePtr f = make(i);
    box.offer(&f, 1);
  }
  CHECK(box.dropped() == 7);
  std::string out;
  CHECK(box.take(out) == 4);  // the reply and the newest three
  CHECK(out.find("{\"type\":\"dropped\",\"count\":7}") != std::string::npos);
  CHECK(out.find("{\"type\":\"ack\"}") != std::string::npos);
  CHECK(out.find("\"offset\":9") != std::string::npos);
  CHECK(out.find("\"offset\":6") == std::string::npos);
  std::string again;
  box.take(again);
  CHECK(again.empty());
}

TEST_CASE("outbox: drop-oldest under a long backlog keeps order, replies and the exact count") {
  auto make = [](int64_t offset) {
    return encode_frame(MessageView{"t", 0, offset, 5, TimestampType::create_time, std::nullopt, std::string_view("0123456789"), {}});
  };
  const std::string ack1 = ws_text_frame("{\"type\":\"ack\",\"id\":1}");
  const std::string ack2 = ws_text_frame("{\"type\":\"ack\",\"id\":2}");
  // Room for both replies and exactly the newest three frames.
  Outbox box(ack1.size() + ack2.size() + 3 * make(4999)->text.size(), SlowClientPolicy::drop_oldest, WireFormat::text);
  box.offer_reply(ack1);
  for (int64_t i = 0; i < 5000; ++i) {
    FramePtr f = make(i);
    box.offer(&f, 1);
    if (i == 2500) box.offer_reply(ack2);
  }
  CHECK(box.dropped() == 4997);
  std::string out;
  CHECK(box.take(out) == 5);  // both replies and the newest three
  auto at = [&](const std::string& needle) { return out.find(needle); };
  CHECK(at("{\"type\":\"dropped\",\"count\":4997}") == at("{\"type\":\"dropped\""));
  CHECK(at("\"id\":1}") < at("\"id\":2}"));
  CHECK(at("\"id\":2}") < at("\"offset\":4997"));
  CHECK(at("\"offset\":4997") < at("\"offset\":4998"));
  CHECK(at("\"offset\":4998") < at("\"offset\":4999"));
  CHECK(at("\"offset\":4996") == std::string::npos);
}

TEST_CASE("outbox: an idle outbox costs no heap memory") {
  // Thousands of quiet connections each own one (docs/BENCHMARKS.md).
  kws::test::CountAllocations count;
  Outbox box(1 << 20, SlowClientPolicy::drop_oldest, WireFormat::text);
  CHECK(count.allocations() == 0);
  std::string out;
  CHECK(box.take(out) == 0);
  CHECK(count.allocations() == 0);
}

TEST_CASE("outbox: a steady stream through a reused vector allocates nothing per take") {
  // One offer and one take per Kafka batch per client: at 1,000 clients
  // that is the bridge's hottest loop.
  Outbox box(1 << 20, SlowClientPolicy::close, WireFormat::text);
  FramePtr f = encode_frame(MessageView{"t", 0, 1, 5, TimestampType::create_time, std::nullopt, std::string_view("x"), {}});
  FrameBatchPtr batch = make_batch(&f, 1);
  std::vector<Outbox::Item> items;
  for (int warm = 0; warm < 2; ++warm) {  // both vectors get their capacity
    box.offer(batch);
    box.take(items);
    items.clear();
  }
  kws::test::CountAllocations count;
  for (int i = 0; i < 100; ++i) {
    box.offer(batch);
    REQUIRE(box.take(items) == 1);
    REQUIRE(items.size() == 1);
    REQUIRE(items[0].batch == batch);
    items.clear();
  }
  CHECK(count.allocations() == 0);
}

TEST_CASE("frame: WebSocket headers for each length class, and the kafka-binary layout") {
  std::string h;
  append_ws_frame_header(h, false, 125);
  CHECK(h == std::string("\x81\x7d", 2));
  h.clear();
  append_ws_frame_header(h, true, 126);
  CHECK(h == std::string("\x82\x7e\x00\x7e", 4));
  h.clear();
  append_ws_frame_header(h, false, 70000);
  CHECK(h == std::string("\x81\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10));
  auto f = encode_frame(MessageView{"my_topic", 0, 1, 5, TimestampType::create_time, std::nullopt, std::string_view("hi"), {}});
  CHECK(f->binary == std::string("\x82\x0b\x08my_topichi", 13));
  std::string long_topic(256, 't');
  CHECK(encode_frame(MessageView{long_topic, 0, 1, 5, TimestampType::create_time, std::nullopt, std::nullopt, {}})->binary.empty());
}
