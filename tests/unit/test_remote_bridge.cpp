#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/remote/bridge_send.hpp"
#include "core/remote/bridge_tail.hpp"
#include "core/remote/bridge_url.hpp"
#include "core/remote/frame_fields.hpp"
#include "core/util/error.hpp"

using namespace kws;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

// Plays the bridge: connect() opens at once (or fails with `refuse`),
// close() ends the connection; frames are fed by the test.
class FakeBridge : public FeedConnection {
 public:
  explicit FakeBridge(FeedListener& listener) : listener_(listener) {}
  std::string refuse;   // set: connect() fails with this
  bool silent = false;  // connect() never answers
  void connect() override {
    if (silent) return;
    if (!refuse.empty()) {
      listener_.on_feed_closed(FeedEnd::failed, FeedFailure::http_refused, refuse);
    } else {
      listener_.on_feed_open();
    }
  }
  void send_text(const std::string& t) override {
    std::lock_guard<std::mutex> lock(mutex_);
    sent_.push_back(t);
  }
  void close(const std::string& why) override {
    closes.push_back(why);
    listener_.on_feed_closed(FeedEnd::lost, why);
  }
  void pause_reading() override {}
  void resume_reading() override {}
  void frame(std::string text) { listener_.on_feed_message(text, false); }
  std::vector<std::string> sent() {
    std::lock_guard<std::mutex> lock(mutex_);
    return sent_;
  }
  std::vector<std::string> closes;

 private:
  FeedListener& listener_;
  std::mutex mutex_;
  std::vector<std::string> sent_;
};

class KeptLog : public LogSink {
 public:
  void write(LogLevel level, std::string_view m) override {
    std::lock_guard<std::mutex> lock(mutex_);
    lines.push_back(std::string(log_level_name(level)) + ": " + std::string(m));
  }
  bool mentions(const std::string& needle) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& l : lines) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<std::string> lines;

 private:
  std::mutex mutex_;
};

std::string message_frame(const std::string& topic, int partition, int64_t offset, const std::string& value) {
  return json{{"topic", topic},
              {"partition", partition},
              {"offset", offset},
              {"timestamp", 1},
              {"timestamp_type", "create"},
              {"key", nullptr},
              {"headers", json::array()},
              {"message", value}}
      .dump();
}

std::string subscribed(const std::string& topic, std::vector<int64_t> start, std::vector<int64_t> end) {
  return json{{"type", "subscribed"}, {"topic", topic},         {"partitions", end.size()},
              {"offset", "earliest"}, {"start_offsets", start}, {"end_offsets", end}}
      .dump();
}

struct TailHarness {
  KeptLog log;
  std::vector<std::string> printed;
  BridgeTail tail;
  FakeBridge bridge{tail};
  explicit TailHarness(BridgeTailPlan plan)
      : tail(
            "ws://b/", std::move(plan),
            [this](const MessageView& m) {
              printed.push_back(std::string(m.value.value_or("<null>")));
              return true;
            },
            log) {
    tail.attach(bridge);
    REQUIRE(tail.open(milliseconds(1000), nullptr));
  }
};

}  // namespace

TEST_CASE("bridge_url: the path defaults to /v2/broker/, flags become parameters") {
  CHECK(is_bridge_url("ws://h:1/"));
  CHECK(is_bridge_url("WSS://h/"));
  CHECK_FALSE(is_bridge_url("orders"));
  CHECK_FALSE(is_bridge_url("http://h/"));

  BridgeTarget t = make_bridge_target("ws://h:8080", {{"a", "b c"}, std::string("-10")});
  CHECK(t.url == "ws://h:8080/v2/broker/?topics=a%2Cb%20c&offset=-10");
  CHECK(t.topics == std::vector<std::string>{"a", "b c"});

  t = make_bridge_target("wss://h/v2/broker/?topics=x%2Cy&group.id=g", {});
  CHECK(t.url == "wss://h/v2/broker/?topics=x%2Cy&group.id=g");
  CHECK(t.topics == std::vector<std::string>{"x", "y"});
  CHECK(t.group);

  CHECK(make_bridge_target("ws://h/other", {}).url == "ws://h/other");  // the bridge answers 404
  CHECK_THROWS_WITH(make_bridge_target("ws://h/?topics=a", {{"b"}, {}}), Catch::Contains("not both"));
  CHECK_THROWS_WITH(make_bridge_target("ws://h/?offset=1", {{}, std::string("2")}),
                    Catch::Contains("not both"));
  CHECK_THROWS_WITH(make_bridge_target("ws:///x", {}), Catch::Contains("no host"));
  CHECK_THROWS_WITH(make_bridge_target("ws://h/#f", {}), Catch::Contains("fragment"));
  CHECK_THROWS_WITH(make_bridge_target("ws://h/?topics=%zz", {}), Catch::Contains("%-escape"));
  CHECK_THROWS_WITH(make_bridge_target("ws://h/ x", {}), Catch::Contains("spaces"));
  try {
    make_bridge_target("http://h/", {});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.exit_code() == exit_usage);
  }
}

TEST_CASE("frame_fields: a control frame has a type; an envelope never does") {
  CHECK(frame_has_type(R"({"type":"error","code":"bad_json","message":"x"})"));
  CHECK_FALSE(frame_has_type(message_frame("t", 0, 1, R"({"type":"order"})")));
  CHECK_FALSE(frame_has_type(R"({"topic":"t","headers":[{"name":"type","value":"x"}],"message":"m"})"));
  ControlFrame f = parse_control_frame(R"({"type":"ack","id":7,"topic":"t","partition":1,"offset":42})");
  CHECK(f.type == "ack");
  CHECK(f.id_is_number);
  CHECK(f.number_id == 7);
  CHECK(f.offset == 42);
  f = parse_control_frame(R"({"type":"error","id":"abc","code":"x"})");
  CHECK(f.id == "abc");
  CHECK_FALSE(f.id_is_number);
}

TEST_CASE("bridge_tail: -e ends once every partition delivered end - 1 or had nothing") {
  TailHarness h({{"a", "b"}, true, -1});
  h.bridge.frame(subscribed("a", {0, 5}, {3, 5}));  // partition 1: nothing to deliver
  h.bridge.frame(message_frame("a", 0, 0, "a0"));
  h.bridge.frame(subscribed("b", {2}, {3}));
  h.bridge.frame(message_frame("a", 0, 1, "a1"));
  h.bridge.frame(message_frame("b", 0, 2, "b2"));
  h.bridge.frame(message_frame("a", 0, 2, "a2"));
  h.bridge.frame(message_frame("a", 0, 3, "late"));  // after the end: not printed
  BridgeTailResult r = h.tail.run(nullptr, nullptr);
  CHECK(h.printed == std::vector<std::string>{"a0", "a1", "b2", "a2"});
  CHECK(r.failure.empty());
  CHECK(r.errors == 0);
  CHECK(h.bridge.closes.size() == 1);
}

TEST_CASE("bridge_tail: -e counts a lost range as reached") {
  TailHarness h({{"a"}, true, -1});
  h.bridge.frame(subscribed("a", {0}, {10}));
  h.bridge.frame(R"({"type":"lost","topic":"a","partition":0,"from":0,"to":9})");
  BridgeTailResult r = h.tail.run(nullptr, nullptr);
  CHECK(r.lost == 10);
  CHECK(h.log.mentions("10 message(s) lost"));
}

TEST_CASE("bridge_tail: a refused subscription is an error and not waited for") {
  TailHarness h({{"a", "nope"}, true, -1});
  h.bridge.frame(R"({"type":"error","code":"unknown_topic","message":"no topic nope","topic":"nope"})");
  h.bridge.frame(subscribed("a", {0}, {1}));
  h.bridge.frame(message_frame("a", 0, 0, "only"));
  BridgeTailResult r = h.tail.run(nullptr, nullptr);
  CHECK(h.printed == std::vector<std::string>{"only"});
  CHECK(r.errors == 1);
  CHECK(h.log.mentions("error: the bridge answered unknown_topic: no topic nope (topic nope)"));
}

TEST_CASE("bridge_tail: every subscription refused ends a follow run") {
  TailHarness h({{"nope"}, false, -1});
  h.bridge.frame(R"({"type":"error","code":"not_allowed","message":"m","topic":"nope"})");
  BridgeTailResult r = h.tail.run(nullptr, nullptr);
  CHECK(r.errors == 1);
}

TEST_CASE("bridge_tail: -c stops after N; notices go to the log, not the output") {
  TailHarness h({{"a"}, false, 2});
  h.bridge.frame(subscribed("a", {0}, {0}));
  h.bridge.frame(R"({"type":"dropped","count":17})");
  h.bridge.frame(R"({"type":"kafka","reachable":false,"message":"down"})");
  h.bridge.frame(message_frame("a", 0, 0, "one"));
  h.bridge.frame(message_frame("a", 0, 1, "two"));
  h.bridge.frame(message_frame("a", 0, 2, "three"));
  BridgeTailResult r = h.tail.run(nullptr, nullptr);
  CHECK(h.printed == std::vector<std::string>{"one", "two"});
  CHECK(r.dropped == 17);
  CHECK(h.log.mentions("dropped 17"));
  CHECK(h.log.mentions("cannot reach Kafka: down"));
}

TEST_CASE("bridge_tail: a connection that ends mid-run is a failure") {
  TailHarness h({{"a"}, false, -1});
  h.tail.on_feed_closed(FeedEnd::lost, "closed by the bridge (code 1001)");
  BridgeTailResult r = h.tail.run(nullptr, nullptr);
  CHECK(r.failure == "the connection to the bridge at ws://b/ ended: closed by the bridge (code 1001)");
}

TEST_CASE("bridge_link: a refused or silent connection is an error naming the bridge") {
  KeptLog log;
  BridgeTail tail(
      "ws://b/", {{"a"}, false, -1}, [](const MessageView&) { return true; }, log);
  FakeBridge bridge(tail);
  tail.attach(bridge);
  bridge.refuse = "the bridge answered HTTP 401 Unauthorized: no token";
  CHECK_THROWS_WITH(
      tail.open(milliseconds(1000), nullptr),
      "cannot connect to the bridge at ws://b/: the bridge answered HTTP 401 Unauthorized: no token");

  BridgeTail silent_tail(
      "ws://s/", {{"a"}, false, -1}, [](const MessageView&) { return true; }, log);
  FakeBridge silent(silent_tail);
  silent.silent = true;
  silent_tail.attach(silent);
  CHECK_THROWS_WITH(silent_tail.open(milliseconds(200), nullptr),
                    Catch::Contains("no WebSocket connection within 200 ms"));
  CHECK(silent.closes.size() == 1);
}

TEST_CASE("bridge_send: the produce frame is the envelope with a type and an id") {
  std::vector<Header> headers{{"h", std::string("v")}, {"n", std::nullopt}};
  OutgoingRecord r;
  r.topic = "t";
  r.partition = 2;
  r.key = std::string_view("k");
  r.value = std::string_view("\xff\x01", 2);
  r.headers = &headers;
  json f = json::parse(produce_frame(r, 9));
  CHECK(f["type"] == "produce");
  CHECK(f["id"] == 9);
  CHECK(f["topic"] == "t");
  CHECK(f["partition"] == 2);
  CHECK(f["key"] == "k");
  CHECK(f["message_encoding"] == "base64");
  CHECK(f["message"] == "/wE=");
  CHECK(f["headers"] == json::parse(R"([{"name":"h","value":"v"},{"name":"n","value":null}])"));

  OutgoingRecord tomb;
  tomb.topic = "t";
  f = json::parse(produce_frame(tomb, 1));
  CHECK(f["message"].is_null());
  CHECK(f["partition"] == -1);  // the partitioner chooses
}

TEST_CASE("bridge_send: acks, errors with their lines, a bounded number in flight") {
  KeptLog log;
  std::vector<BridgeAck> acks;
  BridgeSendLimits limits;
  limits.max_in_flight = 2;
  BridgeSend sender(
      "ws://b/", limits, [&](const BridgeAck& a) { acks.push_back(a); }, log);
  FakeBridge bridge(sender);
  sender.attach(bridge);
  REQUIRE(sender.open(milliseconds(1000), nullptr));
  OutgoingRecord r;
  r.topic = "t";
  r.value = std::string_view("v");
  REQUIRE(sender.send(r, 10, nullptr));
  REQUIRE(sender.send(r, 11, nullptr));
  std::atomic<bool> third{false};
  std::thread t([&] {
    sender.send(r, 12, nullptr);
    third = true;
  });
  std::this_thread::sleep_for(milliseconds(300));
  CHECK_FALSE(third);  // two in flight: it waits
  CHECK(bridge.sent().size() == 2);
  bridge.frame(R"({"type":"ack","id":1,"topic":"t","partition":0,"offset":5})");
  t.join();
  CHECK(third);
  bridge.frame(R"({"type":"error","id":2,"code":"too_large","message":"over 1 MiB","topic":"t"})");
  bridge.frame(R"({"type":"ack","id":3,"topic":"t","partition":1,"offset":6})");
  sender.finish(nullptr);
  REQUIRE(acks.size() == 2);
  CHECK(acks[0].line == 10);
  CHECK(acks[0].offset == 5);
  CHECK(acks[1].line == 12);
  CHECK(sender.acked() == 2);
  CHECK(sender.refused() == 1);
  CHECK(sender.unanswered() == 0);
  CHECK(log.mentions("input line 11: the bridge answered too_large: over 1 MiB (topic t)"));
}

TEST_CASE("bridge_send: rate_limited frames go again after the pause, once each") {
  KeptLog log;
  BridgeSendLimits limits;
  limits.rate_pause = milliseconds(0);
  BridgeSend sender("ws://b/", limits, nullptr, log);
  FakeBridge bridge(sender);
  sender.attach(bridge);
  REQUIRE(sender.open(milliseconds(1000), nullptr));
  OutgoingRecord r;
  r.topic = "t";
  r.value = std::string_view("v");
  REQUIRE(sender.send(r, 1, nullptr));
  bridge.frame(R"({"type":"error","id":1,"code":"rate_limited","message":"slow down"})");
  REQUIRE(sender.send(r, 2, nullptr));  // resends 1 first
  auto sent = bridge.sent();
  REQUIRE(sent.size() == 3);
  CHECK(sent[0] == sent[1]);
  bridge.frame(R"({"type":"ack","id":1,"topic":"t","partition":0,"offset":0})");
  bridge.frame(R"({"type":"ack","id":2,"topic":"t","partition":0,"offset":1})");
  sender.finish(nullptr);
  CHECK(sender.acked() == 2);
  CHECK(sender.rate_limited() == 1);
  CHECK(sender.refused() == 0);
}

TEST_CASE("bridge_send: frames unanswered when the connection ends are counted") {
  KeptLog log;
  BridgeSend sender("ws://b/", {}, nullptr, log);
  FakeBridge bridge(sender);
  sender.attach(bridge);
  REQUIRE(sender.open(milliseconds(1000), nullptr));
  OutgoingRecord r;
  r.topic = "t";
  REQUIRE(sender.send(r, 1, nullptr));
  sender.on_feed_closed(FeedEnd::lost, "closed by the bridge (code 1008: slow client)");
  CHECK_FALSE(sender.send(r, 2, nullptr));
  sender.finish(nullptr);
  CHECK(sender.unanswered() == 1);
  CHECK(sender.failure() ==
        "the connection to the bridge at ws://b/ ended: closed by the bridge (code 1008: slow client)");
}
