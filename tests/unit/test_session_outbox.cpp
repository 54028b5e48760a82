#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/session/outbox.hpp"
#include "core/ws_frame.hpp"
#include "tests/unit/alloc_count.hpp"

using namespace kws;

namespace {

std::shared_ptr<const std::string> topic_t() {
  static auto t = std::make_shared<const std::string>("t");
  return t;
}

FrameBatchPtr batch_of(int64_t offset) {
  FramePtr f = make_frame(MessageView{"t", 0, offset, 5, TimestampType::create_time, std::nullopt,
                                      std::string_view("0123456789"), {}});
  return std::make_shared<const FrameBatch>(topic_t(), std::vector<FramePtr>{f});
}

std::string reply(std::string_view json) { return ws::frame(ws::Opcode::text, json); }

}  // namespace

TEST_CASE("outbox: close policy overflows past the budget; replies are counted too") {
  auto one_batch = batch_of(1);
  const size_t one = one_batch->bytes(Encoding::kafka_text).size();
  Outbox box(one * 3, SlowClientPolicy::close, Encoding::kafka_text);
  auto o = box.offer(one_batch);
  CHECK(o.schedule_flush);
  CHECK_FALSE(o.overflow);
  CHECK_FALSE(box.offer(batch_of(2)).schedule_flush);  // one flush pending already
  CHECK_FALSE(box.offer(batch_of(3)).overflow);
  CHECK(box.offer(batch_of(4)).overflow);
  CHECK(box.overflowed());
  std::string out;
  CHECK(box.take(out).frames == 3);
  CHECK(out.size() == 3 * one);
}

TEST_CASE("outbox: drop-oldest keeps the newest, never drops replies, and reports the count once") {
  const size_t one = batch_of(0)->bytes(Encoding::kafka_text).size();
  Outbox box(one * 3 + 40, SlowClientPolicy::drop_oldest, Encoding::kafka_text);
  box.offer_reply(reply("{\"type\":\"ack\"}"));
  for (int64_t i = 0; i < 10; ++i) box.offer(batch_of(i));
  CHECK(box.dropped() == 7);
  std::string out;
  Outbox::Taken taken = box.take(out);
  CHECK(taken.frames == 4);  // the reply and the newest three
  CHECK(taken.dropped == 7);
  CHECK(out.find("{\"type\":\"ack\"}") != std::string::npos);
  CHECK(out.find("\"offset\":9") != std::string::npos);
  CHECK(out.find("\"offset\":6") == std::string::npos);
  std::string again;
  CHECK(box.take(again).dropped == 0);
  CHECK(again.empty());
}

TEST_CASE("outbox: drop-oldest under a long backlog keeps order, replies and the exact count") {
  const std::string ack1 = reply("{\"type\":\"ack\",\"id\":1}");
  const std::string ack2 = reply("{\"type\":\"ack\",\"id\":2}");
  // Room for both replies and exactly the newest three frames.
  Outbox box(ack1.size() + ack2.size() + 3 * batch_of(4999)->bytes(Encoding::kafka_text).size(),
             SlowClientPolicy::drop_oldest, Encoding::kafka_text);
  box.offer_reply(ack1);
  for (int64_t i = 0; i < 5000; ++i) {
    box.offer(batch_of(i));
    if (i == 2500) box.offer_reply(ack2);
  }
  CHECK(box.dropped() == 4997);
  std::string out;
  Outbox::Taken taken = box.take(out);
  CHECK(taken.frames == 5);  // both replies and the newest three
  CHECK(taken.dropped == 4997);
  auto at = [&](const std::string& needle) { return out.find(needle); };
  CHECK(at("\"id\":1}") < at("\"id\":2}"));
  CHECK(at("\"id\":2}") < at("\"offset\":4997"));
  CHECK(at("\"offset\":4997") < at("\"offset\":4998"));
  CHECK(at("\"offset\":4998") < at("\"offset\":4999"));
  CHECK(at("\"offset\":4996") == std::string::npos);
}

TEST_CASE("outbox: what the link holds counts against the budget") {
  const size_t one = batch_of(0)->bytes(Encoding::kafka_text).size();
  Outbox box(one * 2, SlowClientPolicy::close, Encoding::kafka_text);
  box.set_in_link(one * 2);
  CHECK(box.offer(batch_of(1)).overflow);
}

TEST_CASE("outbox: an idle outbox costs no heap memory") {
  // Thousands of quiet connections each own one (docs/BENCHMARKS.md).
  kws::test::CountAllocations count;
  Outbox box(1 << 20, SlowClientPolicy::drop_oldest, Encoding::kafka_text);
  CHECK(count.allocations() == 0);
  std::string out;
  CHECK(box.take(out).frames == 0);
  CHECK(count.allocations() == 0);
}

TEST_CASE("outbox: a steady stream through a reused vector allocates nothing per take") {
  // One offer and one take per Kafka batch per client: at 1,000 clients
  // that is the bridge's hottest loop.
  Outbox box(1 << 20, SlowClientPolicy::close, Encoding::kafka_text);
  FrameBatchPtr batch = batch_of(1);
  batch->bytes(Encoding::kafka_text);  // encoded once, by whoever needs it first
  std::vector<OutItem> items;
  for (int warm = 0; warm < 2; ++warm) {  // both vectors get their capacity
    box.offer(batch);
    box.take(items);
    items.clear();
  }
  kws::test::CountAllocations count;
  for (int i = 0; i < 100; ++i) {
    box.offer(batch);
    REQUIRE(box.take(items).frames == 1);
    REQUIRE(items.size() == 1);
    REQUIRE(items[0].batch == batch);
    items.clear();
  }
  CHECK(count.allocations() == 0);
}

namespace {

FrameBatchPtr keyed_batch(std::vector<std::pair<std::optional<std::string>, int64_t>> messages) {
  std::vector<FramePtr> frames;
  for (const auto& [key, offset] : messages) {
    std::optional<std::string_view> k;
    if (key) k = std::string_view(*key);
    frames.push_back(make_frame(
        MessageView{"t", 0, offset, 5, TimestampType::create_time, k, std::string_view("0123456789"), {}}));
  }
  return std::make_shared<const FrameBatch>(topic_t(), std::move(frames));
}

std::vector<int64_t> offsets_in(const std::vector<OutItem>& items) {
  std::vector<int64_t> out;
  for (const auto& i : items) {
    if (!i.batch) continue;
    for (const auto& f : i.batch->frames()) out.push_back(f->offset);
  }
  return out;
}

}  // namespace

TEST_CASE("outbox: latest-per-key keeps the newest message of each key while the client is behind") {
  const size_t one = batch_of(0)->bytes(Encoding::kafka_text).size();
  Outbox box(one * 6, SlowClientPolicy::latest_per_key, Encoding::kafka_text);
  box.offer_reply(reply("{\"type\":\"subscribed\"}"));
  // Three keys (and messages without a key, which count as one more) tick
  // far past the budget.
  int64_t offset = 0;
  for (int round = 0; round < 50; ++round) {
    box.offer(keyed_batch({{"BTC", offset}, {"ETH", offset + 1}, {"SOL", offset + 2}, {std::nullopt, offset + 3}}));
    offset += 4;
  }
  CHECK_FALSE(box.overflowed());
  CHECK(box.pending_bytes() <= one * 6);
  std::vector<OutItem> items;
  Outbox::Taken taken = box.take(items);
  CHECK(taken.dropped == 0);
  CHECK(taken.conflated == 200 - 4);
  REQUIRE(!items.empty());
  CHECK(items.front().bytes.find("subscribed") != std::string::npos);  // replies are never conflated
  // The newest of each key, in the order they arrived.
  CHECK(offsets_in(items) == std::vector<int64_t>{196, 197, 198, 199});
  items.clear();
  CHECK(box.take(items).conflated == 0);
}

TEST_CASE("outbox: latest-per-key with more keys than the budget holds drops the oldest, counted") {
  const size_t one = batch_of(0)->bytes(Encoding::kafka_text).size();
  Outbox box(one * 3, SlowClientPolicy::latest_per_key, Encoding::kafka_text);
  for (int64_t i = 0; i < 10; ++i) box.offer(keyed_batch({{"k" + std::to_string(i), i}}));
  std::vector<OutItem> items;
  Outbox::Taken taken = box.take(items);
  CHECK(taken.conflated == 0);
  // The newest that fit the budget (by the frames' size estimates), the
  // rest dropped and counted: nothing vanishes uncounted.
  const std::vector<int64_t> kept = offsets_in(items);
  REQUIRE(kept.size() >= 2);
  CHECK(kept.size() + taken.dropped == 10);
  CHECK(kept.back() == 9);
  CHECK(kept.front() == static_cast<int64_t>(10 - kept.size()));
  CHECK(box.dropped() == taken.dropped);
}
