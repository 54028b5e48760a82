#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/hub/hub.hpp"
#include "core/offset_spec.hpp"
#include "core/transform/pipeline.hpp"
#include "tests/unit/fakes.hpp"

using namespace kws;
using kws::test::FakeAdmin;
using kws::test::FakeCluster;
using kws::test::FakeFeed;
using kws::test::FakeSink;

namespace {

struct Batches : Subscriber {
  std::vector<FrameBatchPtr> batches;
  std::vector<HubNotice> notices;
  void deliver(const FrameBatchPtr& b) override { batches.push_back(b); }
  void notify(const HubNotice& n) override { notices.push_back(n); }
  std::vector<std::string> values() const {
    std::vector<std::string> out;
    for (const auto& b : batches) {
      for (const auto& f : b->frames()) out.push_back(f->value.value_or("<null>"));
    }
    return out;
  }
};

AddedField field(const char* item) {
  std::string problem;
  auto f = parse_added_field(item, problem);
  REQUIRE(f);
  return *f;
}

std::optional<std::string> header(const std::vector<Header>& headers, const std::string& name) {
  for (const auto& h : headers) {
    if (h.name == name) return h.value;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("transform pipeline: produce headers, the receive time and the prefix on every produced record") {
  NullLog log;
  TransformOptions o;
  o.topic_prefix = "public.";
  o.produce_time_header = "kws-received";
  o.produce_headers = {{"source", std::string("bridge-1")}, {"env", std::string("prod")}};
  Transforms t(o, log, [] { return int64_t{1700000000123}; });
  FakeSink kafka;
  TransformingSink sink(kafka, t);
  std::vector<std::string> delivered_topics;
  sink.on_delivery([&](const Delivery& d) { delivered_topics.emplace_back(d.topic); });

  std::vector<Header> client = {{"source", std::string("spoofed")}, {"mine", std::string("kept")}, {"kws-received", std::string("0")}};
  OutgoingRecord r;
  r.topic = "prices";
  r.value = std::string_view("v");
  r.headers = &client;
  r.token = 42;
  REQUIRE(sink.try_produce(r).queued());
  OutgoingRecord bare;
  bare.topic = "prices";
  bare.value = std::string_view("w");
  REQUIRE(sink.try_produce(bare).queued());

  REQUIRE(kafka.kept.size() == 2);
  CHECK(kafka.kept[0].topic == "public.prices");
  CHECK(kafka.kept[0].token == 42);
  CHECK(kafka.kept[0].value == "v");
  // The bridge's own replace the client's of the same name; the client's others stay.
  CHECK(kafka.kept[0].headers == std::vector<Header>{{"mine", std::string("kept")},
                                                     {"source", std::string("bridge-1")},
                                                     {"env", std::string("prod")},
                                                     {"kws-received", std::string("1700000000123")}});
  CHECK(header(kafka.kept[1].headers, "kws-received") == std::string("1700000000123"));
  CHECK(header(kafka.kept[1].headers, "source") == std::string("bridge-1"));
  CHECK(client.size() == 3);  // the caller's vector is not touched
  kafka.serve_deliveries(std::chrono::milliseconds(0));
  CHECK(delivered_topics == std::vector<std::string>{"prices", "prices"});  // the client's name in acks
}

TEST_CASE("transform pipeline: fixed headers without a time header leave a client's header with an empty name") {
  NullLog log;
  TransformOptions o;
  o.produce_headers = {{"source", std::string("bridge-1")}};
  Transforms t(o, log);
  FakeSink kafka;
  TransformingSink sink(kafka, t);
  std::vector<Header> client = {{"", std::string("nameless")}};
  OutgoingRecord r;
  r.topic = "prices";
  r.value = std::string_view("v");
  r.headers = &client;
  REQUIRE(sink.try_produce(r).queued());
  CHECK(kafka.kept[0].topic == "prices");
  CHECK(kafka.kept[0].headers == std::vector<Header>{{"", std::string("nameless")}, {"source", std::string("bridge-1")}});
}

TEST_CASE("transform pipeline: without incoming transforms the record passes as it is") {
  NullLog log;
  Transforms t(TransformOptions{}, log);
  FakeSink kafka;
  TransformingSink sink(kafka, t);
  OutgoingRecord r;
  r.topic = "prices";
  r.value = std::string_view("v");
  REQUIRE(sink.try_produce(r).queued());
  CHECK(kafka.kept[0].topic == "prices");
  CHECK(kafka.kept[0].headers.empty());
}

TEST_CASE("transform pipeline: the prefix and added fields apply once per message read, shared by every subscriber") {
  FakeCluster cluster;
  cluster.create("public.prices", 1);
  cluster.create("prices", 1);  // another topic of the same client name, never read
  cluster.append("prices", 0, R"({"wrong":"topic"})");
  FakeAdmin kafka_admin(cluster);
  NullLog log;
  TransformOptions o;
  o.topic_prefix = "public.";
  o.add_fields = {field("at=bridge_time")};
  int clock_calls = 0;
  Transforms t(o, log, [&] {
    ++clock_calls;
    return int64_t{99};
  });
  TransformingAdmin admin(kafka_admin, t);
  HubLimits limits;
  limits.admin_thread = false;
  limits.linger = std::chrono::milliseconds(0);
  Hub hub(std::make_unique<TransformingFeed>(std::make_unique<FakeFeed>(cluster), t), admin, limits, log);
  auto a = std::make_shared<Batches>();
  auto b = std::make_shared<Batches>();
  hub.subscribe(a, "prices", parse_offset_spec("end"), "latest", "");
  hub.subscribe(b, "prices", parse_offset_spec("end"), "latest", "");
  for (int i = 0; i < 3; ++i) hub.run_once(std::chrono::milliseconds(0));
  REQUIRE(a->notices.size() == 1);
  CHECK(a->notices[0].kind == HubNotice::Kind::subscribed);
  CHECK(a->notices[0].topic == "prices");
  cluster.append("public.prices", 0, R"({"p":1})");
  cluster.append("public.prices", 0, "not json");
  for (int i = 0; i < 3; ++i) hub.run_once(std::chrono::milliseconds(0));
  REQUIRE(a->batches.size() == 1);
  REQUIRE(b->batches.size() == 1);
  CHECK(a->batches[0] == b->batches[0]);           // one batch, so one encoding of it
  CHECK(a->batches[0]->topic() == "prices");        // what the encodings write: the client's name
  CHECK(a->values() == std::vector<std::string>{R"({"p":1,"at":99})", "not json"});
  CHECK(clock_calls == 2);  // once per message read, not once per subscriber
  CHECK(a->batches[0]->bytes(Encoding::kafka_text).find("\"topic\":\"prices\"") != std::string::npos);

  // History from a catch-up reader is transformed too, and by the client's name.
  auto c = std::make_shared<Batches>();
  hub.subscribe(c, "prices", parse_offset_spec("beginning"), "earliest", "");
  for (int i = 0; i < 5; ++i) hub.run_once(std::chrono::milliseconds(0));
  CHECK(c->values() == std::vector<std::string>{R"({"p":1,"at":99})", "not json"});
}

TEST_CASE("transform pipeline: a group session's source gets the client's names and the fields") {
  NullLog log;
  TransformOptions o;
  o.topic_prefix = "public.";
  o.add_fields = {field("region=\"eu\"")};
  Transforms t(o, log);
  struct OneMessage : MessageSource {
    size_t poll_batch(std::chrono::milliseconds, size_t, const std::function<bool(const MessageView&)>& on_message,
                      const std::function<void(const PartitionEvent&)>& on_event) override {
      PartitionEvent e;
      e.topic = "public.prices";
      on_event(e);
      MessageView v;
      v.topic = "public.prices";
      v.value = std::string_view("{}");
      on_message(v);
      return 1;
    }
  };
  TransformingSource source(std::make_unique<OneMessage>(), t);
  std::string topic, value, event_topic;
  source.poll_batch(
      std::chrono::milliseconds(0), 10,
      [&](const MessageView& m) {
        topic = std::string(m.topic);
        value = std::string(m.value.value_or(""));
        return true;
      },
      [&](const PartitionEvent& e) { event_topic = std::string(e.topic); });
  CHECK(topic == "prices");
  CHECK(event_topic == "prices");
  CHECK(value == R"({"region":"eu"})");
}

TEST_CASE("transform pipeline: Kafka's words about a prefixed topic reach clients with the client's name") {
  FakeCluster cluster;
  FakeAdmin kafka_admin(cluster);
  NullLog log;
  TransformOptions o;
  o.topic_prefix = "public.";
  Transforms t(o, log);
  TransformingAdmin admin(kafka_admin, t);
  TopicLookup lookup = admin.describe("nosuch");
  CHECK(lookup.error == TopicLookup::Error::unknown_topic);
  CHECK(lookup.message == "unknown topic 'nosuch'");
  CHECK(t.client_words("topic \"public.a\" and 'public.b' but not public.c") == "topic \"a\" and 'b' but not public.c");
  FakeSink kafka;
  kafka.fail_values = {"late"};
  TransformingSink sink(kafka, t);
  std::string message;
  sink.on_delivery([&](const Delivery& d) { message = std::string(d.message); });
  std::vector<Header> client = {{"h", std::string("1")}};
  OutgoingRecord r;
  r.topic = "a";
  r.value = std::string_view("late");
  r.headers = &client;
  REQUIRE(sink.try_produce(r).queued());
  CHECK(kafka.kept[0].topic == "public.a");
  CHECK(kafka.kept[0].headers == client);  // the prefix alone leaves headers as they are
  kafka.serve_deliveries(std::chrono::milliseconds(0));
  CHECK(message == "timed out");
}

TEST_CASE("transform pipeline: a client name the prefix makes too long for Kafka is refused, never sent") {
  FakeCluster cluster;
  FakeAdmin kafka_admin(cluster);
  NullLog log;
  TransformOptions o;
  o.topic_prefix = "public.";
  Transforms t(o, log);
  TransformingAdmin admin(kafka_admin, t);
  const std::string longest(242, 'a'), over(243, 'a');
  CHECK(admin.describe(longest).error == TopicLookup::Error::unknown_topic);  // asked Kafka
  TopicLookup lookup = admin.describe(over);
  CHECK(lookup.error == TopicLookup::Error::failed);
  CHECK_THAT(lookup.message, Catch::Contains("too long") && Catch::Contains("250 characters"));
  CHECK(kafka_admin.describes == 1);
  FakeSink kafka;
  TransformingSink sink(kafka, t);
  OutgoingRecord r;
  r.topic = over;
  r.value = std::string_view("v");
  ProduceOutcome out = sink.try_produce(r);
  CHECK(out.error == ProduceError::kafka_error);
  CHECK_THAT(out.message, Catch::Contains("too long"));
  CHECK(kafka.kept.empty());
}

TEST_CASE("transform pipeline: bad prefixes and produce headers are refused with why") {
  CHECK_FALSE(topic_prefix_problem(""));
  CHECK_FALSE(topic_prefix_problem("public."));
  CHECK(topic_prefix_problem("bad/prefix"));
  CHECK(topic_prefix_problem(std::string(249, 'a')));
  std::string problem;
  auto h = parse_produce_header("source=bridge=1", problem);
  REQUIRE(h);
  CHECK(h->name == "source");
  CHECK(h->value == std::string("bridge=1"));
  CHECK(parse_produce_header("empty=", problem)->value == std::string(""));
  CHECK_FALSE(parse_produce_header("novalue", problem));
  CHECK_THAT(problem, Catch::Contains("NAME=VALUE"));
  CHECK_FALSE(parse_produce_header("=v", problem));
}
