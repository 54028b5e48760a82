#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/hub/group_reader.hpp"
#include "core/hub/hub.hpp"
#include "tests/unit/fakes.hpp"

using namespace kws;
using kws::test::FakeAdmin;
using kws::test::FakeCluster;
using kws::test::FakeFeed;

namespace {

// Records what the hub handed over, frame identity included, and every
// notice in order with the frames (as offsets) around it.
struct Recorder : Subscriber {
  std::mutex mutex;
  std::vector<FrameBatchPtr> batches;
  std::vector<FramePtr> frames;
  std::vector<HubNotice> notices;
  std::vector<std::string> events;  // "p0@5" for frames, "lost p0 3-7", "subscribed t"
  void deliver(const FrameBatchPtr& b) override {
    std::lock_guard<std::mutex> lock(mutex);
    batches.push_back(b);
    for (const auto& f : b->frames()) {
      frames.push_back(f);
      events.push_back("p" + std::to_string(f->partition) + "@" + std::to_string(f->offset));
    }
  }
  void notify(const HubNotice& n) override {
    std::lock_guard<std::mutex> lock(mutex);
    notices.push_back(n);
    if (n.kind == HubNotice::Kind::lost) {
      events.push_back("lost p" + std::to_string(n.partition) + " " + std::to_string(n.first) + "-" +
                       std::to_string(n.last));
    }
  }
  std::vector<int64_t> offsets(int32_t partition) {
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<int64_t> out;
    for (const auto& f : frames) {
      if (f->partition == partition) out.push_back(f->offset);
    }
    return out;
  }
  size_t notice_count() {
    std::lock_guard<std::mutex> lock(mutex);
    return notices.size();
  }
};

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (int64_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

struct HubFixture {
  FakeCluster cluster;
  FakeAdmin admin{cluster};
  NullLog log;
  HubLimits limits;
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  FakeFeed* live = nullptr;
  std::unique_ptr<Hub> hub;

  // History older than the ring goes to catch-up readers here; the tests
  // of the live reader's rewinds turn them on (`rewind_offsets`).
  explicit HubFixture(size_t ring_bytes = 1 << 20, bool admin_thread = false, int64_t rewind_offsets = 0) {
    limits.ring_bytes = ring_bytes;
    limits.rewind_offsets = rewind_offsets;
    limits.linger = std::chrono::milliseconds(0);
    limits.admin_thread = admin_thread;
    auto feed = std::make_unique<FakeFeed>(cluster);
    live = feed.get();
    hub = std::make_unique<Hub>(std::move(feed), admin, limits, log, [this] { return now; });
  }
  void spin(int times = 3) {
    for (int i = 0; i < times; ++i) hub->run_once(std::chrono::milliseconds(0));
  }
  void subscribe(const std::shared_ptr<Recorder>& r, const std::string& topic, const std::string& start,
                 const std::string& id = "7") {
    hub->subscribe(r, topic, parse_offset_spec(start == "latest" ? "end" : start), start, id);
    spin();
  }
};

}  // namespace

TEST_CASE("hub: every subscriber of a topic gets the same batch, encoded once") {
  HubFixture f;
  f.cluster.create("t", 2);
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  f.subscribe(b, "t", "latest");
  REQUIRE(a->notices.size() == 1);
  CHECK(a->notices[0].kind == HubNotice::Kind::subscribed);
  CHECK(a->notices[0].answers_request);
  CHECK(a->notices[0].request_id == "7");
  CHECK(a->notices[0].start_offsets == std::vector<int64_t>{0, 0});
  CHECK(a->notices[0].end_offsets == std::vector<int64_t>{0, 0});
  f.cluster.append("t", 0, "x");
  f.cluster.append("t", 1, "y");
  f.spin();
  REQUIRE(a->frames.size() == 2);
  REQUIRE(b->frames.size() == 2);
  REQUIRE(a->batches.size() == 1);
  CHECK(a->batches[0].get() == b->batches[0].get());  // shared, not re-encoded
  const std::string& text = a->batches[0]->bytes(Encoding::kafka_text);
  CHECK(&text == &b->batches[0]->bytes(Encoding::kafka_text));
  CHECK(text.find("\"message\":\"x\"") != std::string::npos);
  CHECK(f.admin.readers == 0);
}

TEST_CASE("hub: latest starts after what the topic already holds") {
  HubFixture f;
  f.cluster.create("t", 1);
  f.cluster.append("t", 0, "old");
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  CHECK(a->notices.at(0).start_offsets == std::vector<int64_t>{1});
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
  CHECK(late->notices.at(0).start_offsets == std::vector<int64_t>{7});
  CHECK(late->notices.at(0).end_offsets == std::vector<int64_t>{10});
  CHECK(f.admin.readers == 0);
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
  CHECK(f.admin.readers == 1);
  CHECK(late->offsets(0) == range(0, 55));
  CHECK(late->offsets(1) == range(0, 55));
  f.cluster.append("t", 0, "end");
  f.spin();
  CHECK(late->offsets(0) == range(0, 56));
  f.now += std::chrono::seconds(1);  // stats refresh at most twice a second
  f.spin(1);
  CHECK(f.hub->stats().catchups == 0);
}

TEST_CASE("hub: messages Kafka deleted under a catch-up reader become one lost notice, then history goes on") {
  HubFixture f(600);  // a ring of a few frames: history comes from a catch-up reader
  f.limits.batch = 5;  // which reads 5 messages per round
  auto feed = std::make_unique<FakeFeed>(f.cluster);
  f.live = feed.get();
  f.hub = std::make_unique<Hub>(std::move(feed), f.admin, f.limits, f.log, [&f] { return f.now; });
  f.cluster.create("t", 1);
  for (int i = 0; i < 40; ++i) f.cluster.append("t", 0, "old-" + std::to_string(i));
  auto live = std::make_shared<Recorder>();
  f.subscribe(live, "t", "latest");
  auto late = std::make_shared<Recorder>();
  f.hub->subscribe(late, "t", parse_offset_spec("beginning"), "earliest", "");
  for (int i = 0; i < 10 && late->offsets(0).empty(); ++i) f.spin(1);
  const std::vector<int64_t> before = late->offsets(0);
  REQUIRE(!before.empty());
  REQUIRE(before.back() < 19);
  f.cluster.low.at("t").at(0) = 20;  // retention deletes 0-19 under the reader
  f.spin(20);
  std::vector<std::string> expected;
  for (int64_t o : before) expected.push_back("p0@" + std::to_string(o));
  expected.push_back("lost p0 " + std::to_string(before.back() + 1) + "-19");
  for (int64_t o = 20; o < 40; ++o) expected.push_back("p0@" + std::to_string(o));
  std::vector<std::string> got;
  for (const auto& e : late->events) {
    if (e.rfind("p0@", 0) == 0 || e.rfind("lost", 0) == 0) got.push_back(e);
  }
  CHECK(got == expected);
}

TEST_CASE("hub: a time start skips older messages even when the broker answers with an earlier offset") {
  HubFixture f;
  f.cluster.create("t", 1);
  for (int i = 0; i < 6; ++i) f.cluster.append("t", 0, "m", 1000 + i * 100);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "@1300");
  CHECK(a->offsets(0) == range(3, 6));
}

TEST_CASE("hub: unknown topics, stored offsets and unsubscribe get answers as values; the session goes on") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "nosuch", "latest");
  REQUIRE(a->notices.size() == 1);
  CHECK(a->notices[0].kind == HubNotice::Kind::error);
  CHECK(a->notices[0].error == ClientError::unknown_topic);
  CHECK(a->notices[0].topic == "nosuch");
  CHECK(a->notices[0].answers_request);
  f.subscribe(a, "t", "stored");
  CHECK(a->notices[1].error == ClientError::bad_offset);
  f.subscribe(a, "t", "latest");
  CHECK(a->notices[2].kind == HubNotice::Kind::subscribed);
  f.hub->unsubscribe(a, "t", "\"u1\"");
  f.spin();
  CHECK(a->notices[3].kind == HubNotice::Kind::unsubscribed);
  CHECK(a->notices[3].request_id == "\"u1\"");
  f.cluster.append("t", 0, "x");
  f.spin();
  CHECK(a->frames.empty());
}

TEST_CASE("hub: a topic nobody reads is let go after the linger, and its message count is kept") {
  HubFixture f;
  f.limits.linger = std::chrono::seconds(10);
  f.hub = std::make_unique<Hub>(std::make_unique<FakeFeed>(f.cluster), f.admin, f.limits, f.log, [&f] { return f.now; });
  f.cluster.create("t", 1);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  f.cluster.append("t", 0, "x");
  f.spin();
  f.hub->remove(a);
  f.spin();
  f.now += std::chrono::seconds(9);
  f.spin();
  CHECK(f.hub->stats().topics.at(0).reading);
  f.now += std::chrono::seconds(2);  // past the linger, and past the stats refresh
  f.spin();
  HubStats s = f.hub->stats();
  REQUIRE(s.topics.size() == 1);
  CHECK_FALSE(s.topics[0].reading);
  CHECK(s.topics[0].messages == 1);  // a counter never goes back
}

TEST_CASE("hub: requests of one subscriber are answered in order; a closed one's requests never reach Kafka") {
  HubFixture f;
  f.cluster.create("t", 1);
  f.cluster.create("u", 1);
  auto a = std::make_shared<Recorder>();
  f.hub->subscribe(a, "t", parse_offset_spec("beginning"), "earliest", "1");
  f.hub->unsubscribe(a, "t", "2");
  f.hub->subscribe(a, "u", parse_offset_spec("end"), "latest", "3");
  f.spin(5);
  REQUIRE(a->notices.size() == 3);
  CHECK(a->notices[0].request_id == "1");
  CHECK(a->notices[1].request_id == "2");
  CHECK(a->notices[1].kind == HubNotice::Kind::unsubscribed);
  CHECK(a->notices[2].request_id == "3");

  auto gone = std::make_shared<Recorder>();
  const int before = f.admin.describes;
  for (int i = 0; i < 50; ++i) f.hub->subscribe(gone, "t", parse_offset_spec("-5"), "-5", std::to_string(i));
  f.hub->remove(gone);
  f.spin(5);
  // The first went out before the hub read the removal (the admin runs
  // inline here); the 49 behind it never did.
  CHECK(f.admin.describes - before <= 1);
  CHECK(gone->notices.empty());
}

TEST_CASE("hub: a burst of subscriptions to one topic costs one lookup") {
  HubFixture f;
  f.cluster.create("t", 4);
  auto first = std::make_shared<Recorder>();
  f.subscribe(first, "t", "latest");
  const int before = f.admin.describes;
  std::vector<std::shared_ptr<Recorder>> many;
  for (int i = 0; i < 100; ++i) {
    many.push_back(std::make_shared<Recorder>());
    f.hub->subscribe(many.back(), "t", parse_offset_spec("-5"), "-5", "");
  }
  f.spin(5);
  for (auto& r : many) CHECK(r->notices.at(0).kind == HubNotice::Kind::subscribed);
  CHECK(f.admin.describes - before <= 1);
}

TEST_CASE("hub: messages Kafka deleted under the live reader become one lost notice before the next message") {
  HubFixture f;
  f.cluster.create("t", 2);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  f.cluster.append("t", 0, "m0");
  f.spin();
  // The reader falls behind; retention deletes offsets 1-3 before it reads them.
  for (int i = 1; i < 6; ++i) f.cluster.append("t", 0, "m" + std::to_string(i));
  f.cluster.low["t"][0] = 4;
  f.cluster.append("t", 1, "other");
  f.spin();
  CHECK(a->events == std::vector<std::string>{"p0@0", "lost p0 1-3", "p0@4", "p0@5", "p1@0"});
  f.now += std::chrono::seconds(1);
  f.spin(1);
  CHECK(f.hub->stats().topics.at(0).lost.at(0) == 3);
}

TEST_CASE("hub: a reader's wake-up ends the wait; without one the loop sleeps") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  f.cluster.append("t", 0, "x");
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    f.live->ready();
  });
  const auto started = std::chrono::steady_clock::now();
  f.hub->run_once(std::chrono::seconds(10));  // polls (x), then waits until the reader's wake-up
  const auto waited = std::chrono::steady_clock::now() - started;
  waker.join();
  CHECK(waited >= std::chrono::milliseconds(40));
  CHECK(waited < std::chrono::seconds(5));
  CHECK(a->offsets(0) == std::vector<int64_t>{0});
}

namespace {

// A TopicAdmin whose lookups wait until released: Kafka taking its time.
struct SlowAdmin : FakeAdmin {
  using FakeAdmin::FakeAdmin;
  std::mutex mutex;
  std::condition_variable cv;
  bool released = false;
  TopicLookup describe(const std::string& topic) override {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return released; });
    lock.unlock();
    return FakeAdmin::describe(topic);
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex);
    released = true;
    cv.notify_all();
  }
};

}  // namespace

TEST_CASE("hub: a subscription waiting for Kafka does not hold back anyone's live messages") {
  FakeCluster cluster;
  cluster.create("t", 1);
  cluster.create("slow", 1);
  SlowAdmin admin(cluster);
  admin.release();  // the first topic looks up at once
  NullLog log;
  HubLimits limits;
  limits.admin_thread = true;
  auto feed = std::make_unique<FakeFeed>(cluster);
  Hub hub(std::move(feed), admin, limits, log);
  auto reader = std::make_shared<Recorder>();
  hub.subscribe(reader, "t", parse_offset_spec("end"), "latest", "");
  for (int i = 0; i < 200 && reader->notice_count() == 0; ++i) hub.run_once(std::chrono::milliseconds(10));
  REQUIRE(reader->notice_count() == 1);
  {
    std::lock_guard<std::mutex> lock(admin.mutex);
    admin.released = false;  // Kafka stops answering lookups
  }
  auto waiting = std::make_shared<Recorder>();
  hub.subscribe(waiting, "slow", parse_offset_spec("beginning"), "earliest", "");
  cluster.append("t", 0, "live");
  for (int i = 0; i < 200 && reader->offsets(0).empty(); ++i) hub.run_once(std::chrono::milliseconds(10));
  CHECK(reader->offsets(0) == std::vector<int64_t>{0});
  CHECK(waiting->notice_count() == 0);
  admin.release();
  for (int i = 0; i < 200 && waiting->notice_count() == 0; ++i) hub.run_once(std::chrono::milliseconds(10));
  CHECK(waiting->notice_count() == 1);
}

TEST_CASE("hub: a catch-up finishes even when the ring moves past a partition it started in the ring") {
  HubFixture f(2000);
  f.limits.batch = 10;
  f.hub = std::make_unique<Hub>(std::make_unique<FakeFeed>(f.cluster), f.admin, f.limits, f.log, [&f] { return f.now; });
  f.cluster.create("t", 2);
  for (int i = 0; i < 100; ++i) f.cluster.append("t", 0, std::string(100, 'a'));  // p0: history beyond the ring
  auto first = std::make_shared<Recorder>();
  f.subscribe(first, "t", "latest");
  f.cluster.append("t", 1, "p1-in-ring");
  f.spin();
  auto late = std::make_shared<Recorder>();
  f.hub->subscribe(late, "t", parse_offset_spec("beginning"), "earliest", "");
  f.spin();
  // p1 moves on while p0's history is read: its ring passes where the catch-up started p1.
  for (int i = 0; i < 50; ++i) f.cluster.append("t", 1, std::string(100, 'b'));
  for (int i = 0; i < 50; ++i) f.spin(1);
  f.cluster.append("t", 0, "after");
  f.cluster.append("t", 1, "after");
  f.spin(10);
  CHECK(late->offsets(0) == range(0, 101));
  CHECK(late->offsets(1) == range(0, 52));
  f.now += std::chrono::seconds(1);
  f.spin(1);
  CHECK(f.hub->stats().catchups == 0);
}

TEST_CASE("hub: partitions added to a topic while it is read are read too, from their start") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto a = std::make_shared<Recorder>();
  f.subscribe(a, "t", "latest");
  f.cluster.topics["t"].emplace_back();  // the topic grows to 2 partitions
  f.cluster.low["t"].push_back(0);
  f.cluster.append("t", 1, "in the new partition");
  f.now += std::chrono::seconds(31);
  f.spin();
  f.now += std::chrono::seconds(31);
  f.spin();
  f.cluster.append("t", 1, "and another");
  f.spin();
  CHECK(a->offsets(1) == range(0, 2));
}

namespace {

SubscriptionSpec resume_spec(const std::string& text, const std::string& start = "latest") {
  SubscriptionSpec spec;
  spec.start = parse_offset_spec(start == "latest" ? "end" : start);
  spec.start_text = start;
  ResumeByTopic positions;
  REQUIRE(!parse_resume(text, positions));
  spec.resume = positions.begin()->second;
  return spec;
}

FilterPtr filter_of(const std::string& json) {
  std::string problem;
  FilterPtr f = MessageFilter::parse_text(json, problem);
  REQUIRE(f);
  return f;
}

}  // namespace

TEST_CASE("hub: a resume goes on right after the last offset received, from the ring or from history") {
  HubFixture f(600);  // a ring of a few frames: older positions need a catch-up reader
  f.cluster.create("t", 2);
  for (int i = 0; i < 40; ++i) f.cluster.append("t", i % 2, "m" + std::to_string(i));
  auto reader = std::make_shared<Recorder>();
  f.subscribe(reader, "t", "latest");  // the topic is read live from here
  for (int i = 0; i < 6; ++i) f.cluster.append("t", i % 2, "n" + std::to_string(i));
  f.spin();

  SECTION("in the ring") {
    auto back = std::make_shared<Recorder>();
    f.hub->subscribe(back, "t", resume_spec("t:0:21,t:1:22"), "");
    f.spin();
    REQUIRE(!back->notices.empty());
    const HubNotice& n = back->notices[0];
    CHECK(n.kind == HubNotice::Kind::subscribed);
    CHECK(n.resumed);
    CHECK(n.recovered);
    CHECK(n.start_offsets == std::vector<int64_t>{22, 23});
    CHECK(back->offsets(0) == range(22, 23));
    CHECK(back->offsets(1) == std::vector<int64_t>{});
    CHECK(f.admin.readers == 0);
  }
  SECTION("older than the ring: a catch-up reader, then live, no gap and no duplicate") {
    auto back = std::make_shared<Recorder>();
    f.hub->subscribe(back, "t", resume_spec("t:0:4"), "");  // partition 1 starts as offset= says: latest
    f.spin(5);
    f.cluster.append("t", 0, "after");
    f.cluster.append("t", 1, "after");
    f.spin(5);
    CHECK(back->notices[0].recovered);
    CHECK(back->offsets(0) == range(5, 24));
    CHECK(back->offsets(1) == range(23, 24));
  }
}

TEST_CASE("hub: a resume older than the log start says what was lost; one past the end starts the new log over") {
  HubFixture f;
  f.cluster.create("t", 2);
  for (int i = 0; i < 20; ++i) f.cluster.append("t", i % 2, "m" + std::to_string(i));
  f.cluster.low.at("t").at(0) = 6;  // retention deleted 0-5 of partition 0
  auto back = std::make_shared<Recorder>();
  f.hub->subscribe(back, "t", resume_spec("t:0:2,t:1:40"), "9");
  f.spin(5);
  REQUIRE(back->notices.size() >= 2);
  const HubNotice& n = back->notices[0];
  CHECK(n.kind == HubNotice::Kind::subscribed);
  CHECK(n.request_id == "9");
  CHECK_FALSE(n.recovered);
  REQUIRE(n.resume_lost.size() == 1);
  CHECK(n.resume_lost[0].partition == 0);
  CHECK(n.resume_lost[0].first == 3);
  CHECK(n.resume_lost[0].last == 5);
  REQUIRE(n.resume_reset.size() == 1);
  CHECK(n.resume_reset[0].partition == 1);
  CHECK(n.resume_reset[0].first == 41);
  CHECK(n.resume_reset[0].last == 10);
  // The lost notice comes right after, before any message of the partition.
  CHECK(back->events.front() == "lost p0 3-5");
  CHECK(back->offsets(0) == range(6, 10));
  CHECK(back->offsets(1) == range(0, 10));
}

TEST_CASE("hub: a resume names a partition the topic does not have: bad_partition, the session goes on") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto back = std::make_shared<Recorder>();
  f.hub->subscribe(back, "t", resume_spec("t:3:0"), "");
  f.spin();
  REQUIRE(back->notices.size() == 1);
  CHECK(back->notices[0].kind == HubNotice::Kind::error);
  CHECK(back->notices[0].error == ClientError::bad_partition);
}

TEST_CASE("hub: filtered subscribers get only matching frames; one filter, one shared batch") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto all = std::make_shared<Recorder>();
  auto btc1 = std::make_shared<Recorder>();
  auto btc2 = std::make_shared<Recorder>();
  auto eth = std::make_shared<Recorder>();
  auto prefix = std::make_shared<Recorder>();
  auto field = std::make_shared<Recorder>();
  auto sub = [&](const std::shared_ptr<Recorder>& r, const std::string& filter) {
    SubscriptionSpec spec;
    spec.start = parse_offset_spec("end");
    if (!filter.empty()) spec.filter = filter_of(filter);
    f.hub->subscribe(r, "t", spec, "");
    f.spin();
  };
  sub(all, "");
  sub(btc1, R"({"key":["BTC-USD"]})");
  sub(btc2, R"({"key":["BTC-USD","BTC-USD"]})");  // the same filter, written otherwise
  sub(eth, R"({"key":["ETH-USD","SOL-USD"]})");
  sub(prefix, R"({"key_prefix":"BTC-"})");
  sub(field, R"({"field":{"/side":"buy"}})");
  f.cluster.append_keyed("t", 0, "BTC-USD", R"({"side":"buy"})");
  f.cluster.append_keyed("t", 0, "ETH-USD", R"({"side":"sell"})");
  f.cluster.append_keyed("t", 0, "BTC-EUR", "not json");
  f.cluster.append_keyed("t", 0, "SOL-USD", R"({"side":"buy"})");
  f.spin();
  CHECK(all->offsets(0) == range(0, 4));
  CHECK(btc1->offsets(0) == std::vector<int64_t>{0});
  CHECK(eth->offsets(0) == std::vector<int64_t>{1, 3});
  CHECK(prefix->offsets(0) == std::vector<int64_t>{0, 2});
  CHECK(field->offsets(0) == std::vector<int64_t>{0, 3});
  REQUIRE(btc1->batches.size() == 1);
  REQUIRE(btc2->batches.size() == 1);
  CHECK(btc1->batches[0].get() == btc2->batches[0].get());  // one filter group, encoded once
  // A frame no filter wants costs no batch for filtered subscribers.
  f.cluster.append_keyed("t", 0, "DOGE-USD", "{}");
  f.spin();
  CHECK(btc1->batches.size() == 1);
  CHECK(all->offsets(0) == range(0, 5));
  // Leaving and joining again keeps the index right.
  f.hub->unsubscribe(btc1, "t", "");
  f.hub->unsubscribe(btc2, "t", "");
  f.spin();
  f.cluster.append_keyed("t", 0, "BTC-USD", "{}");
  f.spin();
  CHECK(btc1->offsets(0) == std::vector<int64_t>{0});
  CHECK(prefix->offsets(0) == std::vector<int64_t>{0, 2, 5});
}

TEST_CASE("hub: mqtt_topic subscribers get exactly the frames whose key matches, through the topic tree") {
  HubFixture f;
  f.cluster.create("t", 1);
  auto all = std::make_shared<Recorder>();
  auto temp1 = std::make_shared<Recorder>();
  auto temp2 = std::make_shared<Recorder>();
  auto overlap = std::make_shared<Recorder>();
  auto alarms = std::make_shared<Recorder>();
  auto sys = std::make_shared<Recorder>();
  auto mixed = std::make_shared<Recorder>();
  auto sub = [&](const std::shared_ptr<Recorder>& r, FilterPtr filter) {
    SubscriptionSpec spec;
    spec.start = parse_offset_spec("end");
    spec.filter = std::move(filter);
    f.hub->subscribe(r, "t", spec, "");
    f.spin();
  };
  sub(all, nullptr);
  sub(temp1, filter_of(R"({"mqtt_topic":["sensors/+/temp"]})"));
  std::string problem;
  sub(temp2, MessageFilter::mqtt_topics({"sensors/+/temp", "sensors/+/temp"}, problem));  // the same filter, built
  sub(overlap, filter_of(R"({"mqtt_topic":["sensors/#","sensors/+/temp","+/kitchen/+"]})"));
  sub(alarms, filter_of(R"({"mqtt_topic":["alarms/#"]})"));
  sub(sys, filter_of(R"({"mqtt_topic":["$SYS/#"]})"));
  // Not only topic filters: checked one by one, as before.
  sub(mixed, filter_of(R"({"mqtt_topic":["sensors/+/temp"],"field":{"/ok":true}})"));
  f.cluster.append_keyed("t", 0, "sensors/kitchen/temp", R"({"ok":true})");  // 0
  f.cluster.append_keyed("t", 0, "sensors/kitchen/humidity", "{}");          // 1
  f.cluster.append_keyed("t", 0, "alarms", "{}");                            // 2
  f.cluster.append_keyed("t", 0, "$SYS/uptime", "{}");                       // 3
  f.cluster.append("t", 0, "no key");                                        // 4
  f.cluster.append_keyed("t", 0, "sensors/+/temp", "{}");                    // 5: not a topic name
  f.cluster.append_keyed("t", 0, "sensors/hall/temp", R"({"ok":false})");    // 6
  f.cluster.append_keyed("t", 0, "sensors", "{}");                           // 7
  f.spin();
  CHECK(all->offsets(0) == range(0, 8));
  CHECK(temp1->offsets(0) == std::vector<int64_t>{0, 6});
  CHECK(temp2->offsets(0) == std::vector<int64_t>{0, 6});
  // Three topic filters match frame 0: it comes once, in offset order.
  CHECK(overlap->offsets(0) == std::vector<int64_t>{0, 1, 6, 7});
  CHECK(alarms->offsets(0) == std::vector<int64_t>{2});
  CHECK(sys->offsets(0) == std::vector<int64_t>{3});
  CHECK(mixed->offsets(0) == std::vector<int64_t>{0});
  REQUIRE(temp1->batches.size() == 1);
  REQUIRE(temp2->batches.size() == 1);
  CHECK(temp1->batches[0].get() == temp2->batches[0].get());  // one filter group, one batch, encoded once
  CHECK(temp1->batches[0].get() != overlap->batches[0].get());

  // Leaving drops a group from the index only when its last member goes.
  f.hub->unsubscribe(temp1, "t", "");
  f.spin();
  f.cluster.append_keyed("t", 0, "sensors/attic/temp", "{}");  // 8
  f.spin();
  CHECK(temp1->offsets(0) == std::vector<int64_t>{0, 6});
  CHECK(temp2->offsets(0) == std::vector<int64_t>{0, 6, 8});
  f.hub->unsubscribe(temp2, "t", "");
  f.hub->unsubscribe(overlap, "t", "");
  f.spin();
  f.cluster.append_keyed("t", 0, "sensors/cellar/temp", "{}");  // 9
  f.cluster.append_keyed("t", 0, "alarms/fire", "{}");          // 10
  f.spin();
  CHECK(temp2->offsets(0) == std::vector<int64_t>{0, 6, 8});
  CHECK(overlap->offsets(0) == std::vector<int64_t>{0, 1, 6, 7, 8});
  CHECK(alarms->offsets(0) == std::vector<int64_t>{2, 10});
  CHECK(mixed->offsets(0) == std::vector<int64_t>{0});
  // Joining again after the group was dropped indexes it again.
  sub(temp1, filter_of(R"({"mqtt_topic":["sensors/+/temp"]})"));
  f.cluster.append_keyed("t", 0, "sensors/roof/temp", "{}");  // 11
  f.spin();
  CHECK(temp1->offsets(0) == std::vector<int64_t>{0, 6, 11});
  CHECK(all->offsets(0) == range(0, 12));
}

TEST_CASE("hub: an mqtt_topic filter applies to history from the ring and from a catch-up reader") {
  HubFixture f(600);
  f.cluster.create("t", 1);
  for (int i = 0; i < 30; ++i) f.cluster.append_keyed("t", 0, i % 3 == 0 ? "room/" + std::to_string(i) : "hall", "m");
  auto reader = std::make_shared<Recorder>();
  f.subscribe(reader, "t", "latest");
  auto back = std::make_shared<Recorder>();
  SubscriptionSpec spec = resume_spec("t:0:5");
  spec.filter = filter_of(R"({"mqtt_topic":["room/+"]})");
  f.hub->subscribe(back, "t", spec, "");
  f.spin(5);
  f.cluster.append_keyed("t", 0, "room/live", "live");
  f.cluster.append_keyed("t", 0, "hall", "live");
  f.spin(5);
  CHECK(f.admin.readers == 1);
  CHECK(back->offsets(0) == std::vector<int64_t>{6, 9, 12, 15, 18, 21, 24, 27, 30});
  // The live frames are in the ring now: a resume among them needs no reader.
  auto ring = std::make_shared<Recorder>();
  SubscriptionSpec from_ring = resume_spec("t:0:29");
  from_ring.filter = spec.filter;
  f.hub->subscribe(ring, "t", from_ring, "");
  f.spin(5);
  CHECK(f.admin.readers == 1);
  CHECK(ring->offsets(0) == std::vector<int64_t>{30});
  f.cluster.append_keyed("t", 0, "room/x", "live");
  f.spin(5);
  CHECK(ring->offsets(0) == std::vector<int64_t>{30, 32});
  CHECK(back->offsets(0) == std::vector<int64_t>{6, 9, 12, 15, 18, 21, 24, 27, 30, 32});
}

TEST_CASE("hub: a filter applies to history from the ring and from a catch-up reader, and composes with resume") {
  HubFixture f(600);
  f.cluster.create("t", 1);
  for (int i = 0; i < 30; ++i) f.cluster.append_keyed("t", 0, i % 3 == 0 ? "a" : "b", std::to_string(i));
  auto reader = std::make_shared<Recorder>();
  f.subscribe(reader, "t", "latest");
  auto back = std::make_shared<Recorder>();
  SubscriptionSpec spec = resume_spec("t:0:5");
  spec.filter = filter_of(R"({"key":["a"]})");
  f.hub->subscribe(back, "t", spec, "");
  f.spin(5);
  f.cluster.append_keyed("t", 0, "a", "live");
  f.cluster.append_keyed("t", 0, "b", "live");
  f.spin(5);
  CHECK(f.admin.readers == 1);
  CHECK(back->offsets(0) == std::vector<int64_t>{6, 9, 12, 15, 18, 21, 24, 27, 30});
}

TEST_CASE("hub: list_topics answers in turn with the topics the predicate keeps") {
  HubFixture f;
  f.cluster.create("prices", 1);
  f.cluster.create("orders", 1);
  f.cluster.create("__consumer_offsets", 1);
  auto r = std::make_shared<Recorder>();
  f.hub->subscribe(r, "missing", parse_offset_spec("end"), "latest", "1");
  f.hub->list_topics(r, [](const std::string& name) { return name.rfind("__", 0) != 0 && name != "orders"; }, "2");
  f.spin();
  REQUIRE(r->notices.size() == 2);
  CHECK(r->notices[0].request_id == "1");  // the subscribe's answer comes first
  CHECK(r->notices[0].error == ClientError::unknown_topic);
  CHECK(r->notices[1].kind == HubNotice::Kind::topics);
  CHECK(r->notices[1].answers_request);
  CHECK(r->notices[1].request_id == "2");
  CHECK(r->notices[1].names == std::vector<std::string>{"prices"});
}

namespace {

// Large messages, as many as asked for; records each poll's max.
class BigMessages : public MessageSource {
 public:
  explicit BigMessages(std::shared_ptr<std::vector<size_t>> maxes) : maxes_(std::move(maxes)) {}
  size_t poll_batch(std::chrono::milliseconds, size_t max, const std::function<bool(const MessageView&)>& on_message,
                    const std::function<void(const PartitionEvent&)>&) override {
    {
      std::lock_guard<std::mutex> lock(mutex());
      maxes_->push_back(max);
    }
    const std::string value(16000, 'x');
    for (size_t i = 0; i < max; ++i) {
      MessageView v;
      v.topic = "t";
      v.partition = 0;
      v.offset = next_++;
      v.value = value;
      on_message(v);
    }
    return max;
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }

 private:
  std::shared_ptr<std::vector<size_t>> maxes_;
  int64_t next_ = 0;
};

struct CountingSubscriber : Subscriber {
  std::atomic<size_t> bytes{0};
  void deliver(const FrameBatchPtr& b) override { bytes += b->bytes(Encoding::kafka_text).size(); }
  void notify(const HubNotice&) override {}
};

}  // namespace

TEST_CASE("group reader: one poll never hands over more than fits under the high water, however large the messages") {
  auto maxes = std::make_shared<std::vector<size_t>>();
  auto subscriber = std::make_shared<CountingSubscriber>();
  NullLog log;
  const size_t high_water = 64 << 10;
  // The client takes nothing: the backlog is what was handed over.
  GroupReader reader([maxes] { return std::unique_ptr<MessageSource>(std::make_unique<BigMessages>(maxes)); },
                     GroupSubscription{"g", {"t"}, "latest", nullptr}, subscriber, [subscriber] { return subscriber->bytes.load(); },
                     high_water, log);
  for (int i = 0; i < 200 && subscriber->bytes < high_water; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  reader.stop();
  std::lock_guard<std::mutex> lock(BigMessages::mutex());
  REQUIRE(!maxes->empty());
  for (size_t m : *maxes) CHECK(m * 16000 <= high_water + 16000);
  // It went over the high water by less than one poll's worth of messages, then stopped handing over.
  CHECK(subscriber->bytes <= 2 * high_water);
}

namespace {

// A FakeFeed whose polls the test schedules: a poll may find nothing yet (a
// fetch still under way) or fewer messages than asked, at random from a
// seeded generator, so the live reader and a catch-up reader notice the same
// retention in any order around the handover.
class JitteryFeed : public FakeFeed {
 public:
  JitteryFeed(FakeCluster& cluster, std::mt19937& rng, int stall_percent, size_t most)
      : FakeFeed(cluster), rng_(rng), stall_percent_(stall_percent), most_(most) {}
  size_t poll_batch(std::chrono::milliseconds wait, size_t max, const std::function<bool(const MessageView&)>& on_message,
                    const std::function<void(const PartitionEvent&)>& on_event) override {
    if (held || static_cast<int>(rng_() % 100) < stall_percent_) return 0;
    return FakeFeed::poll_batch(wait, std::min<size_t>(max, 1 + rng_() % most_), on_message, on_event);
  }
  bool held = false;

 private:
  std::mt19937& rng_;
  int stall_percent_;
  size_t most_;
};

// Opens JitteryFeeds; a lookup may answer with a log start from before
// retention ran (a cached answer), as a broker's cached watermarks can.
struct JitteryAdmin : FakeAdmin {
  JitteryAdmin(FakeCluster& cluster, std::mt19937& rng) : FakeAdmin(cluster), cluster_(cluster), rng_(rng) {}
  TopicLookup describe(const std::string& topic) override {
    TopicLookup out = FakeAdmin::describe(topic);
    if (stale_low >= 0) {
      for (auto& p : out.partitions) p.low = stale_low;
    }
    return out;
  }
  std::unique_ptr<PartitionFeed> open_reader() override {
    ++readers;
    return std::make_unique<JitteryFeed>(cluster_, rng_, stall_percent, most);
  }
  int64_t stale_low = -1;
  int stall_percent = 0;
  size_t most = 8;

 private:
  FakeCluster& cluster_;
  std::mt19937& rng_;
};

// A hub over a FakeCluster whose admin worker and live reader stall at
// random (seeded): set `limits` and the admin's knobs, then start().
struct JitteryHub {
  FakeCluster cluster;
  JitteryAdmin admin;
  NullLog log;
  HubLimits limits;
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  JitteryFeed* live = nullptr;
  std::unique_ptr<Hub> hub;

  JitteryHub(std::mt19937& rng, uint32_t admin_stall_below) : admin(cluster, rng) {
    admin.stall_percent = static_cast<int>(rng() % admin_stall_below);
    admin.most = 1 + rng() % 12;
    limits.admin_thread = false;
    limits.linger = std::chrono::hours(1);
    limits.batch = 1 + rng() % 16;
  }
  Hub& start(std::mt19937& rng, uint32_t feed_stall_below) {
    auto feed = std::make_unique<JitteryFeed>(cluster, rng, static_cast<int>(rng() % feed_stall_below), 1 + rng() % 12);
    live = feed.get();
    hub = std::make_unique<Hub>(std::move(feed), admin, limits, log, [this] { return now; });
    return *hub;
  }
};

}  // namespace

TEST_CASE("hub: a gap both the lingering live reader and a resume's catch-up reader jump: one lost notice, each offset once") {
  // kws serve's log in the browser test's flaky run: two readers told of
  // the same gap, the live reader (lingering on the topic, at 1) and the
  // resumed page's catch-up reader (at 0: the lookup answered with the log
  // start from before retention ran). Whichever notices the gap first, the
  // page gets one lost notice and then every offset after it once.
  const bool live_jumps_first = GENERATE(false, true);
  CAPTURE(live_jumps_first);
  std::mt19937 rng(1);
  FakeCluster cluster;
  JitteryAdmin admin(cluster, rng);
  NullLog log;
  HubLimits limits;
  limits.admin_thread = false;
  limits.linger = std::chrono::hours(1);
  limits.rewind_offsets = 0;  // the scenario of catch-up readers
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  auto feed = std::make_unique<JitteryFeed>(cluster, rng, 0, 1000);
  JitteryFeed* live = feed.get();
  Hub hub(std::move(feed), admin, limits, log, [&now] { return now; });
  auto spin = [&](int times) {
    for (int i = 0; i < times; ++i) hub.run_once(std::chrono::milliseconds(0));
  };
  cluster.create("t", 1);
  cluster.append("t", 0, "shown");
  auto page = std::make_shared<Recorder>();
  hub.subscribe(page, "t", parse_offset_spec("beginning"), "earliest", "");
  spin(3);
  REQUIRE(page->offsets(0) == std::vector<int64_t>{0});
  hub.remove(page);
  spin(1);
  // Away: 1-39 arrive while the live reader does not get to read them, and
  // retention deletes 1-23.
  live->held = true;
  for (int i = 1; i < 40; ++i) cluster.append("t", 0, "m" + std::to_string(i));
  cluster.low["t"][0] = 24;
  if (live_jumps_first) {
    live->held = false;
    spin(2);  // lost 1-23, then 24-39 in the ring
    live->held = true;
  }
  admin.stale_low = 0;
  auto back = std::make_shared<Recorder>();
  hub.subscribe(back, "t", resume_spec("t:0:-1", "earliest"), "");  // checks offset 0 again
  spin(3);
  REQUIRE(admin.readers == 2);  // the first subscription's and this one's catch-up readers
  cluster.append("t", 0, "m40");
  cluster.append("t", 0, "m41");
  live->held = false;
  spin(3);
  std::vector<std::string> want{"lost p0 0-23"};
  for (int o = 24; o < 42; ++o) want.push_back("p0@" + std::to_string(o));
  CHECK(back->events == want);
}

TEST_CASE("hub: a resume across a gap, in any order of polls around the handover: every offset once, every skip said lost") {
  // The browser test's scenario: a page saw offset 0 of a topic and went
  // away; the topic is still read (linger); many messages later retention
  // deleted 1..L-1; the page resumes from 0 (resume=t:0:-1, it checks 0
  // again) and must get one lost notice, then L..end exactly once each.
  for (uint32_t seed = 0; seed < 5000; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    JitteryHub world(rng, 80);
    world.limits.ring_bytes = (rng() % 2) ? (1 << 20) : 200 + rng() % 2000;
    // History from a catch-up reader or from the live reader rewound.
    world.limits.rewind_offsets = (rng() % 2) ? 0 : 20000;
    Hub& hub = world.start(rng, 80);
    FakeCluster& cluster = world.cluster;
    JitteryAdmin& admin = world.admin;
    JitteryFeed* live = world.live;
    auto spin = [&](int times) {
      for (int i = 0; i < times; ++i) hub.run_once(std::chrono::milliseconds(0));
    };
    cluster.create("t", 1 + static_cast<int>(rng() % 3));  // only partition 0 gets messages
    cluster.append("t", 0, "shown");
    auto page = std::make_shared<Recorder>();
    hub.subscribe(page, "t", parse_offset_spec("beginning"), "earliest", "");
    for (int i = 0; i < 200 && page->offsets(0).empty(); ++i) spin(1);
    REQUIRE(page->offsets(0) == std::vector<int64_t>{0});
    hub.remove(page);
    spin(1);
    // The page is away: messages arrive, the lingering live reader reads
    // some (or none), retention keeps the last `keep`.
    const int64_t count = 20 + rng() % 60;
    const int64_t keep = 5 + rng() % 30;
    live->held = rng() % 2;
    for (int64_t i = 1; i <= count; ++i) {
      cluster.append("t", 0, std::string(40, 'x'));
      cluster.low["t"][0] = std::max<int64_t>(0, i + 1 - keep);
      if (rng() % 4 == 0) spin(1);
    }
    const int64_t low = cluster.low["t"][0];
    if (rng() % 2) live->held = false;
    if (rng() % 3) spin(static_cast<int>(rng() % 4));
    if (rng() % 2) admin.stale_low = static_cast<int64_t>(rng() % static_cast<uint32_t>(low + 1));
    auto back = std::make_shared<Recorder>();
    const int64_t resumed_after = rng() % 2 ? -1 : 0;  // the page checks offset 0 again, or not
    hub.subscribe(back, "t", resume_spec("t:0:" + std::to_string(resumed_after), "earliest"), "");
    for (int i = 0; i < 30; ++i) {
      if (rng() % 5 == 0) cluster.append("t", 0, std::string(40, 'y'));
      if (rng() % 6 == 0) live->held = !live->held;
      spin(1);
    }
    live->held = false;
    admin.stall_percent = 0;
    cluster.append("t", 0, "last");
    const int64_t end = static_cast<int64_t>(cluster.topics["t"][0].size());
    for (int i = 0; i < 2000 && (back->offsets(0).empty() || back->offsets(0).back() != end - 1); ++i) spin(1);
    // Each offset once, in order, up to the end; every offset skipped was
    // said lost before the next message.
    int64_t next = resumed_after;
    for (const auto& e : back->events) {
      if (e.rfind("lost p0 ", 0) == 0) {
        const int64_t first = std::stoll(e.substr(8));
        const int64_t last = std::stoll(e.substr(e.find('-', 8) + 1));
        if (first <= next + 1 && last >= next + 1) next = last;
        continue;
      }
      const int64_t offset = std::stoll(e.substr(3));
      INFO(e << " after " << next);
      REQUIRE(offset == next + 1);
      next = offset;
    }
    CHECK(next == end - 1);
  }
}

TEST_CASE("hub: a start a little older than the ring is read again by the live reader: no catch-up reader, nothing twice") {
  HubFixture f(600, false, /*rewind_offsets=*/1000);  // a ring of a few frames
  f.cluster.create("t", 2);
  for (int i = 0; i < 50; ++i) f.cluster.append("t", i % 2, "before-" + std::to_string(i));
  auto first = std::make_shared<Recorder>();
  f.subscribe(first, "t", "latest");
  for (int i = 0; i < 40; ++i) f.cluster.append("t", i % 2, "live-" + std::to_string(i));
  f.spin();
  REQUIRE(first->offsets(0) == range(25, 45));
  auto late = std::make_shared<Recorder>();
  f.hub->subscribe(late, "t", parse_offset_spec("beginning"), "earliest", "");
  f.hub->run_once(std::chrono::milliseconds(0));
  // Subscribed while the live reader reads history again: `latest` is
  // still the end Kafka had, not where the rewound reader stands.
  auto newest = std::make_shared<Recorder>();
  f.hub->subscribe(newest, "t", parse_offset_spec("end"), "latest", "");
  for (int round = 0; round < 20; ++round) {
    f.cluster.append("t", round % 2, "during-" + std::to_string(round));
    f.hub->run_once(std::chrono::milliseconds(0));
  }
  f.spin(5);
  CHECK(f.admin.readers == 0);
  CHECK(f.live->rewinds == 2);  // both partitions
  CHECK(late->offsets(0) == range(0, 55));
  CHECK(late->offsets(1) == range(0, 55));
  CHECK(first->offsets(0) == range(25, 55));
  CHECK(first->offsets(1) == range(25, 55));
  REQUIRE(!newest->notices.empty());
  CHECK(newest->notices[0].kind == HubNotice::Kind::subscribed);
  CHECK(newest->notices[0].start_offsets[0] >= 45);
  CHECK(newest->notices[0].end_offsets[0] >= 45);
  const int64_t newest_start = newest->notices[0].start_offsets[0];
  CHECK(newest->offsets(0) == range(newest_start, 55));
  REQUIRE(!late->notices.empty());
  CHECK(late->notices[0].start_offsets == std::vector<int64_t>{0, 0});
  CHECK(late->notices[0].end_offsets == std::vector<int64_t>{45, 45});
  f.cluster.append("t", 0, "end");
  f.spin();
  CHECK(late->offsets(0) == range(0, 56));
  CHECK(first->offsets(0) == range(25, 56));
  f.now += std::chrono::seconds(1);
  f.spin(1);
  CHECK(f.hub->stats().rewinds == 2);
  CHECK(f.hub->stats().catchups == 0);
}

TEST_CASE("hub: history further back than rewind_offsets still gets a catch-up reader of its own") {
  HubFixture f(600, false, /*rewind_offsets=*/10);
  f.cluster.create("t", 1);
  for (int i = 0; i < 50; ++i) f.cluster.append("t", 0, "before-" + std::to_string(i));
  auto first = std::make_shared<Recorder>();
  f.subscribe(first, "t", "latest");
  auto near = std::make_shared<Recorder>();
  f.subscribe(near, "t", "-8");  // within rewind_offsets: the live reader
  auto far = std::make_shared<Recorder>();
  f.subscribe(far, "t", "earliest");  // 50 back: a catch-up reader
  f.cluster.append("t", 0, "live");
  f.spin(5);
  CHECK(f.live->rewinds == 1);
  CHECK(f.admin.readers == 1);
  CHECK(near->offsets(0) == range(42, 51));
  CHECK(far->offsets(0) == range(0, 51));
  CHECK(first->offsets(0) == range(50, 51));
}

TEST_CASE("hub: a storm of resumes after a bridge restart costs no catch-up reader; each client gets its offsets once") {
  // A new bridge, a topic it does not read yet, and 300 clients each
  // resuming right after its own last offset, a few messages back.
  std::mt19937 rng(7);
  HubFixture f(1 << 20, false, /*rewind_offsets=*/20000);
  f.cluster.create("t", 4);
  for (int i = 0; i < 400; ++i) f.cluster.append("t", i % 4, "m" + std::to_string(i));
  struct Client {
    std::shared_ptr<Recorder> recorder = std::make_shared<Recorder>();
    std::vector<int64_t> last;
  };
  std::vector<Client> clients(300);
  for (auto& c : clients) {
    std::string text;
    for (int p = 0; p < 4; ++p) {
      c.last.push_back(80 + static_cast<int64_t>(rng() % 20));  // each partition holds 100
      text += (p ? ",t:" : "t:") + std::to_string(p) + ":" + std::to_string(c.last.back());
    }
    f.hub->subscribe(c.recorder, "t", resume_spec(text), "");
    if (rng() % 3 == 0) f.hub->run_once(std::chrono::milliseconds(0));
    if (rng() % 10 == 0) f.cluster.append("t", static_cast<int32_t>(rng() % 4), "during");
  }
  f.spin(10);
  // One replay at a time: a resume older than the one being replayed (rare,
  // as each goes back twice as far as asked) reads with a catch-up reader.
  CHECK(f.admin.readers <= 4);
  CHECK(f.live->rewinds <= 8);
  for (auto& c : clients) {
    REQUIRE(!c.recorder->notices.empty());
    CHECK(c.recorder->notices[0].kind == HubNotice::Kind::subscribed);
    CHECK(c.recorder->notices[0].recovered);
    for (int32_t p = 0; p < 4; ++p) {
      const auto end = static_cast<int64_t>(f.cluster.topics["t"][static_cast<size_t>(p)].size());
      CHECK(c.recorder->offsets(p) == range(c.last[static_cast<size_t>(p)] + 1, end));
    }
  }
}

TEST_CASE("hub: caught_up comes once, after the last frame below the reply's end offsets, filtered or not, from any path") {
  // rewind_offsets 0: history from a catch-up reader; 1000: the live reader rewound.
  const int64_t rewind = GENERATE(0, 1000);
  CAPTURE(rewind);
  HubFixture f(600, false, rewind);
  f.cluster.create("t", 2);
  for (int i = 0; i < 40; ++i) f.cluster.append_keyed("t", i % 2, i == 4 ? "keep" : "other", "m" + std::to_string(i));
  auto first = std::make_shared<Recorder>();
  f.subscribe(first, "t", "latest");
  auto index_of_caught_up = [](Recorder& r) {
    std::lock_guard<std::mutex> lock(r.mutex);
    for (size_t i = 0; i < r.notices.size(); ++i) {
      if (r.notices[i].kind == HubNotice::Kind::caught_up) return static_cast<int>(i);
    }
    return -1;
  };
  auto count_caught_up = [](Recorder& r) {
    std::lock_guard<std::mutex> lock(r.mutex);
    return std::count_if(r.notices.begin(), r.notices.end(),
                         [](const HubNotice& n) { return n.kind == HubNotice::Kind::caught_up; });
  };
  // A filtered subscription from the start: the only match is offset 2 of
  // partition 0; the rest below the end stays on the bridge.
  SubscriptionSpec spec;
  spec.start = parse_offset_spec("beginning");
  spec.start_text = "earliest";
  spec.filter = filter_of(R"({"key":["keep"]})");
  spec.tell_caught_up = true;
  auto filtered = std::make_shared<Recorder>();
  f.hub->subscribe(filtered, "t", spec, "");
  f.spin(6);
  CHECK(filtered->offsets(0) == std::vector<int64_t>{2});
  CHECK(filtered->offsets(1).empty());
  CHECK(count_caught_up(*filtered) == 1);
  CHECK(index_of_caught_up(*filtered) == 1);  // subscribed, then caught_up
  // Unfiltered from the start: caught_up after offset 19 of both partitions.
  spec.filter = nullptr;
  auto all = std::make_shared<Recorder>();
  f.hub->subscribe(all, "t", spec, "");
  f.spin(6);
  CHECK(all->offsets(0) == range(0, 20));
  CHECK(count_caught_up(*all) == 1);
  // latest: nothing to wait for.
  spec.start = parse_offset_spec("end");
  spec.start_text = "latest";
  auto now_only = std::make_shared<Recorder>();
  f.hub->subscribe(now_only, "t", spec, "");
  f.spin(2);
  CHECK(count_caught_up(*now_only) == 1);
  // New messages never bring another; nobody who did not ask gets one.
  f.cluster.append("t", 0, "later");
  f.spin(3);
  CHECK(count_caught_up(*all) == 1);
  CHECK(count_caught_up(*filtered) == 1);
  CHECK(count_caught_up(*first) == 0);
  CHECK(all->offsets(0) == range(0, 21));
}

TEST_CASE("hub: a time start while the live reader replays a rewind gets nothing older than its time") {
  FakeCluster cluster;
  FakeAdmin admin(cluster);
  NullLog log;
  HubLimits limits;
  limits.admin_thread = false;
  limits.linger = std::chrono::milliseconds(0);
  limits.ring_bytes = 600;
  limits.rewind_offsets = 1000;
  limits.batch = 2;  // the replay takes a few polls
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  auto feed = std::make_unique<FakeFeed>(cluster);
  FakeFeed* live_feed = feed.get();
  Hub hub(std::move(feed), admin, limits, log, [&now] { return now; });
  cluster.create("t", 1);
  for (int i = 0; i < 100; ++i) cluster.append("t", 0, "m" + std::to_string(i), 1000 + i);
  auto live = std::make_shared<Recorder>();
  hub.subscribe(live, "t", parse_offset_spec("end"), "latest", "");
  for (int i = 0; i < 5; ++i) hub.run_once(std::chrono::milliseconds(0));
  // A start at 70 is older than the (empty) ring: the live reader rewinds (to 40).
  auto resumer = std::make_shared<Recorder>();
  hub.subscribe(resumer, "t", parse_offset_spec("70"), "70", "");
  for (int i = 0; i < 10 && resumer->notice_count() == 0; ++i) hub.run_once(std::chrono::milliseconds(0));
  REQUIRE(live_feed->rewinds == 1);
  // Now a time start: offsets_for_time says 95 (ts 1095).
  auto timed = std::make_shared<Recorder>();
  hub.subscribe(timed, "t", parse_offset_spec("@1095"), "@1095", "");
  for (int i = 0; i < 200; ++i) hub.run_once(std::chrono::milliseconds(0));
  REQUIRE(!timed->notices.empty());
  CHECK(timed->notices[0].kind == HubNotice::Kind::subscribed);
  CHECK(timed->notices[0].start_offsets == std::vector<int64_t>{95});
  CHECK(timed->offsets(0) == range(95, 100));  // not from the rewound reader's position
  CHECK(resumer->offsets(0) == range(70, 100));
  CHECK(live->offsets(0).empty());
}

namespace {
struct CuRecorder : Recorder {
  void notify(const HubNotice& n) override {
    Recorder::notify(n);
    if (n.kind == HubNotice::Kind::caught_up) {
      std::lock_guard<std::mutex> lock(mutex);
      events.push_back("caught");
    }
  }
};
}  // namespace

TEST_CASE("hub: randomised: many subscribers, filters, rewinds, catch-ups, retention, added partitions: each offset once, in order, one caught_up after its end") {
  int total_rewinds = 0, total_readers = 0, total_lost = 0, total_caught = 0;
  for (uint32_t seed = 0; seed < 3000; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    JitteryHub world(rng, 50);
    world.limits.ring_bytes = (rng() % 3) ? 200 + rng() % 1500 : (1 << 20);
    const int64_t rw[] = {0, 15, 60, 20000};
    world.limits.rewind_offsets = rw[rng() % 4];
    Hub& hub = world.start(rng, 50);
    FakeCluster& cluster = world.cluster;
    JitteryAdmin& admin = world.admin;
    JitteryFeed* live = world.live;
    auto& now = world.now;
    int parts = 1 + static_cast<int>(rng() % 3);
    cluster.create("t", parts);
    auto add = [&] {
      const int32_t p = static_cast<int32_t>(rng() % static_cast<uint32_t>(parts));
      cluster.append_keyed("t", p, rng() % 3 == 0 ? "keep" : "other", std::string(10 + rng() % 40, 'x'));
      if (rng() % 8 == 0) {
        auto& low = cluster.low["t"][static_cast<size_t>(p)];
        const auto size = static_cast<int64_t>(cluster.topics["t"][static_cast<size_t>(p)].size());
        low = std::max<int64_t>(low, size - 5 - static_cast<int64_t>(rng() % 60));
      }
    };
    for (int i = 0; i < 40 + static_cast<int>(rng() % 80); ++i) add();
    struct Sub {
      std::shared_ptr<CuRecorder> r = std::make_shared<CuRecorder>();
      bool filtered = false;
      bool caught = false;
    };
    std::vector<Sub> subs;
    const int nsubs = 2 + static_cast<int>(rng() % 6);
    for (int step = 0; step < 80; ++step) {
      if (rng() % 3 == 0) add();
      if (static_cast<int>(subs.size()) < nsubs && rng() % 6 == 0) {
        Sub s;
        SubscriptionSpec spec;
        const char* starts[] = {"end", "beginning", "-5", "-20", "-50", "30", "60"};
        std::string st = starts[rng() % 7];
        spec.start = parse_offset_spec(st);
        spec.start_text = st;
        if (rng() % 3 == 0) {
          s.filtered = true;
          spec.filter = filter_of(R"({"key":["keep"]})");
        }
        spec.tell_caught_up = true;
        hub.subscribe(s.r, "t", spec, "");
        subs.push_back(std::move(s));
      }
      if (rng() % 6 == 0) live->held = !live->held;
      if (rng() % 40 == 0 && parts < 4) {  // a partition added; the hub looks again after partition_check
        ++parts;
        cluster.topics["t"].resize(static_cast<size_t>(parts));
        cluster.low["t"].resize(static_cast<size_t>(parts), 0);
      }
      if (rng() % 10 == 0) now += std::chrono::seconds(31);
      hub.run_once(std::chrono::milliseconds(0));
    }
    live->held = false;
    admin.stall_percent = 0;
    for (int p = 0; p < parts; ++p) cluster.append_keyed("t", p, "keep", "last");
    for (int i = 0; i < 3000; ++i) {
      if (i % 500 == 0) now += std::chrono::seconds(31);
      hub.run_once(std::chrono::milliseconds(0));
    }
    for (int p = 0; p < parts; ++p) cluster.append_keyed("t", p, "keep", "last2");
    for (int i = 0; i < 3000; ++i) hub.run_once(std::chrono::milliseconds(0));
    total_rewinds += live->rewinds;
    total_readers += admin.readers;
    for (auto& s : subs) for (auto& n : s.r->notices) { total_lost += n.kind == HubNotice::Kind::lost; total_caught += n.kind == HubNotice::Kind::caught_up; }
    for (size_t si = 0; si < subs.size(); ++si) {
      auto& s = subs[si];
      CAPTURE(si);
      CAPTURE(s.filtered);
      std::lock_guard<std::mutex> lock(s.r->mutex);
      REQUIRE(!s.r->notices.empty());
      if (s.r->notices[0].kind != HubNotice::Kind::subscribed) continue;  // e.g. catchup_limit
      const auto starts = s.r->notices[0].start_offsets;
      const auto ends = s.r->notices[0].end_offsets;
      CAPTURE(starts);
      CAPTURE(ends);
      std::vector<int64_t> next(starts.begin(), starts.end());
      next.resize(static_cast<size_t>(parts), 0);  // added later: read from their start
      int caught = 0;
      for (const auto& e : s.r->events) {
        CAPTURE(e);
        if (e == "caught") {
          ++caught;
          // Everything below ends went through (or was filtered out / lost).
          for (size_t p = 0; p < ends.size() && p < next.size(); ++p) {
            const auto& log = cluster.topics["t"][p];
            for (int64_t o = next[p]; o < ends[p]; ++o) {
              INFO("caught_up early: p" << p << " offset " << o << " not yet delivered");
              CHECK((s.filtered && log[static_cast<size_t>(o)].key != "keep"));
            }
          }
          continue;
        }
        if (e.rfind("lost p", 0) == 0) {
          const auto p = static_cast<size_t>(std::stoll(e.substr(6)));
          const int64_t first = std::stoll(e.substr(e.find(' ', 6) + 1));
          const int64_t last = std::stoll(e.substr(e.find('-', 6) + 1));
          CHECK(first >= next[p]);  // no lost for something already delivered
          for (int64_t o = next[p]; o < first; ++o) {
            INFO("gap before lost: p" << p << " offset " << o);
            CHECK((s.filtered && cluster.topics["t"][p][static_cast<size_t>(o)].key != "keep"));
          }
          next[p] = std::max(next[p], last + 1);
          continue;
        }
        const auto p = static_cast<size_t>(std::stoll(e.substr(1)));
        const int64_t o = std::stoll(e.substr(e.find('@') + 1));
        REQUIRE(o >= next[p]);  // no duplicate, no out of order
        for (int64_t m = next[p]; m < o; ++m) {
          INFO("gap: p" << p << " offset " << m);
          CHECK((s.filtered && cluster.topics["t"][p][static_cast<size_t>(m)].key != "keep"));
        }
        if (s.filtered) CHECK(cluster.topics["t"][p][static_cast<size_t>(o)].key == "keep");
        next[p] = o + 1;
      }
      for (size_t p = 0; p < next.size(); ++p) {
        CHECK(next[p] == static_cast<int64_t>(cluster.topics["t"][p].size()));
      }
      CHECK(caught == 1);
    }
  }
  // The paths were taken: rewinds, catch-up readers, lost notices, caught_up.
  CHECK(total_rewinds > 100);
  CHECK(total_readers > 100);
  CHECK(total_lost > 100);
  CHECK(total_caught > 1000);
}
