#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/session/session.hpp"
#include "core/ws_frame.hpp"
#include "tests/unit/fakes.hpp"

using namespace kws;
using kws::test::FakeAdmin;
using kws::test::FakeCluster;
using kws::test::FakeFeed;
using kws::test::FakeSink;

namespace {

std::string plain_text(std::string_view json) { return std::string(json); }
std::vector<OutItem> scratch;

// A link that keeps what it was given: replies as JSON documents, message
// batches by offset. `hold` makes it keep bytes as a socket that does not
// read would.
struct FakeLink : Link {
  std::vector<nlohmann::json> replies;
  std::vector<int64_t> offsets;
  size_t held = 0;
  bool hold = false;
  bool paused = false;
  int pauses = 0;
  std::optional<CloseReason> closed;
  std::string close_why;
  void write(std::vector<OutItem>& items) override {
    for (auto& i : items) {
      if (i.batch) {
        for (const auto& f : i.batch->frames()) offsets.push_back(f->offset);
        if (hold) held += i.batch->bytes(i.encoding).size();
      } else {
        replies.push_back(nlohmann::json::parse(i.bytes));
        if (hold) held += i.bytes.size();
      }
    }
    items.clear();
  }
  size_t buffered() const override { return held; }
  void close(CloseReason reason, std::string_view why, bool) override {
    closed = reason;
    close_why = std::string(why);
  }
  void pause_reading() override {
    paused = true;
    ++pauses;
  }
  void resume_reading() override { paused = false; }
  std::vector<std::string> types() const {
    std::vector<std::string> out;
    for (const auto& r : replies) out.push_back(r.value("type", "?"));
    return out;
  }
};

// Runs wake-ups when the test says so, as an I/O thread would.
// Wakes may come from other threads (a group session's reader).
struct FakeHost : SessionHost {
  std::mutex mutex;
  std::vector<std::shared_ptr<ClientSession>> woken;
  int delayed = 0;
  std::vector<std::unique_ptr<GroupReader>> retired;
  void wake(std::shared_ptr<ClientSession> s) override {
    std::lock_guard<std::mutex> lock(mutex);
    woken.push_back(std::move(s));
  }
  void wake_after(std::shared_ptr<ClientSession> s, std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> lock(mutex);
    ++delayed;
    woken.push_back(std::move(s));
  }
  void retire(std::unique_ptr<GroupReader> reader) override { retired.push_back(std::move(reader)); }
  void closed(ClientSession&) override {}
  void run() {
    std::vector<std::shared_ptr<ClientSession>> now;
    {
      std::lock_guard<std::mutex> lock(mutex);
      now.swap(woken);
    }
    for (auto& s : now) s->on_wake();
  }
};

struct RecordingLog : LogSink {
  std::vector<std::pair<LogLevel, std::string>> lines;
  void write(LogLevel level, std::string_view m) override { lines.emplace_back(level, std::string(m)); }
  size_t count(LogLevel level) const {
    size_t n = 0;
    for (const auto& l : lines) n += l.first == level;
    return n;
  }
};

struct SessionFixture {
  FakeCluster cluster;
  FakeAdmin admin{cluster};
  RecordingLog log;
  std::unique_ptr<Hub> hub;
  FakeSink sink;
  ProduceTracker deliveries;
  AllowEveryone authorizer;
  FakeHost host;
  SessionCounters counters;
  std::atomic<size_t> group_sessions{0};
  std::atomic<bool> finishing{false};
  SessionServices services;

  SessionFixture() {
    cluster.create("t", 1);
    HubLimits limits;
    limits.admin_thread = false;
    hub = std::make_unique<Hub>(std::make_unique<FakeFeed>(cluster), admin, limits, log);
    sink.on_delivery([this](const Delivery& d) { deliveries.route(d); });
    services.hub = hub.get();
    services.producer = &sink;
    services.deliveries = &deliveries;
    services.authorizer = &authorizer;
    services.host = &host;
    services.frame_text = &plain_text;
    services.flush_scratch = &scratch;
    services.counters = &counters;
    services.group_sessions = &group_sessions;
    services.finishing = &finishing;
    services.log = &log;
  }
  // Hub work, deliveries and wake-ups, until nothing moves.
  void settle() {
    for (int i = 0; i < 5; ++i) {
      hub->run_once(std::chrono::milliseconds(0));
      sink.serve_deliveries(std::chrono::milliseconds(0));
      host.run();
    }
  }
  // For a group session's own reader thread: the host's wake-ups until
  // `done`, up to 10 s (the thread is slow to start under a sanitizer on a
  // loaded machine; 2 s was not always enough in CI).
  bool wait_for(const std::function<bool()>& done) {
    for (int i = 0; i < 2000 && !done(); ++i) {
      host.run();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done();
  }
  std::shared_ptr<Session> open(FakeLink& link, const std::string& query, const std::string& subprotocol = "",
                                std::shared_ptr<const Principal> principal = nullptr) {
    ConnectRequest request;
    REQUIRE_FALSE(parse_connect_query(query, request));
    std::vector<std::string> offered;
    if (!subprotocol.empty()) offered.push_back(subprotocol);
    REQUIRE_FALSE(choose_subprotocol(offered, request));
    auto s = std::make_shared<Session>(services, std::move(request), std::move(principal));
    s->open(link);
    settle();
    return s;
  }
  void send(Session& s, std::string text, MessageKind kind = MessageKind::text) {
    s.on_message(kind, text);
    settle();
  }
};

}  // namespace

TEST_CASE("session: a kafka-websocket client gets messages only, never reply frames") {
  SessionFixture f;
  FakeLink link;
  auto s = f.open(link, "topics=t");
  f.send(*s, R"({"topic":"t","message":"hello"})");
  f.cluster.append("t", 0, "from kafka");
  f.settle();
  f.send(*s, R"({"topic":"bad topic!","message":"x"})");
  CHECK(link.replies.empty());
  CHECK(link.offsets == std::vector<int64_t>{0});
  CHECK(f.counters.unsent_notices >= 2);  // subscribed and the error
  CHECK(f.sink.kept.size() == 1);
  CHECK_FALSE(s->kws_protocol());
  // The refusal it could not be told is a warning for the operator; the
  // subscribed reply is not.
  REQUIRE(f.log.count(LogLevel::warning) == 1);
  CHECK_THAT(f.log.lines.back().second, Catch::Contains("bad_topic"));
}

TEST_CASE("session: a kafka-websocket client repeating a bad frame cannot flood the log") {
  SessionFixture f;
  FakeLink link;
  auto s = f.open(link, "topics=t");
  for (int i = 0; i < 300; ++i) {
    std::string bad = "not json";
    s->on_message(MessageKind::text, bad);
  }
  f.settle();
  CHECK(link.replies.empty());
  CHECK(f.counters.unsent_notices >= 300);
  CHECK(f.log.count(LogLevel::warning) == 5);
  bool told = false;
  for (const auto& l : f.log.lines) told = told || l.second.find("further problems are only counted") != std::string::npos;
  CHECK(told);
}

TEST_CASE("session: the kws.v1 subprotocol, an offset parameter or an id asks for replies") {
  SessionFixture f;
  FakeLink a, b, c;
  auto by_subprotocol = f.open(a, "topics=t", "kws.v1");
  auto by_offset = f.open(b, "topics=t&offset=latest");
  auto by_id = f.open(c, "topics=t");
  CHECK(a.types() == std::vector<std::string>{"subscribed"});
  CHECK(a.replies[0]["start_offsets"] == nlohmann::json::array({0}));
  CHECK(b.types() == std::vector<std::string>{"subscribed"});
  CHECK(c.replies.empty());
  f.send(*by_id, R"({"topic":"t","message":"m","id":1})");
  CHECK(c.types() == std::vector<std::string>{"ack"});
  CHECK(c.replies[0]["id"] == 1);
}

TEST_CASE("session: bad frames get error values and the session goes on") {
  SessionFixture f;
  FakeLink link;
  auto s = f.open(link, "", "kws.v1");
  f.send(*s, "not json");
  f.send(*s, R"({"type":"dance","id":"x"})");
  f.send(*s, R"({"topic":"no/slash","message":"m","id":2})");
  f.send(*s, std::string("\x05t", 2), MessageKind::binary);
  f.send(*s, R"({"topic":"t","message":"fine","id":3})");
  REQUIRE(link.replies.size() == 5);
  CHECK(link.replies[0]["code"] == "bad_json");
  CHECK(link.replies[1]["code"] == "unknown_type");
  CHECK(link.replies[1]["id"] == "x");
  CHECK(link.replies[2]["code"] == "bad_topic");
  CHECK(link.replies[2]["id"] == 2);
  CHECK(link.replies[3]["code"] == "bad_frame");
  CHECK(link.replies[4]["type"] == "ack");
  CHECK_FALSE(link.closed);
}

namespace {
// The gateway's ACLs will plug in here: reading "secret" and writing "ro" are refused.
struct DenySome : Authorizer {
  bool allows(const Principal&, std::string_view topic, TopicAction action) const override {
    return !(action == TopicAction::read && topic == "secret") && !(action == TopicAction::write && topic == "ro");
  }
  bool allows_group(const Principal&, std::string_view group) const override { return group != "forbidden"; }
};
}  // namespace

TEST_CASE("session: every door a topic enters by asks the authorizer") {
  SessionFixture f;
  DenySome deny;
  f.services.authorizer = &deny;
  f.cluster.create("secret", 1);
  f.cluster.create("ro", 1);
  FakeLink link;
  // Kws replies with kafka-binary messages: an offset parameter asks for them.
  auto s = f.open(link, "topics=secret,t&offset=latest", "kafka-binary");
  f.send(*s, R"({"type":"subscribe","topic":"secret","id":1})");
  f.send(*s, R"({"topic":"ro","message":"m","id":2})");
  f.send(*s, std::string("\x02ro", 3) + "binary", MessageKind::binary);
  f.send(*s, R"({"type":"subscribe","topic":"ro","id":3})");  // reading it is allowed
  f.send(*s, R"({"topic":"t","message":"m","id":4})");        // and so is writing t
  std::vector<std::string> codes;
  for (const auto& r : link.replies) codes.push_back(r.value("type", "") == "error" ? r.value("code", "") : r.value("type", ""));
  CHECK(codes == std::vector<std::string>{"not_allowed", "subscribed", "not_allowed", "not_allowed", "not_allowed",
                                          "subscribed", "ack"});
  CHECK(link.replies[0]["topic"] == "secret");
  CHECK(f.sink.kept.size() == 1);  // only the record to t
  f.cluster.append("secret", 0, "never shown");
  f.settle();
  CHECK(link.offsets.empty());
}

TEST_CASE("session: one session may use serve.max_topics topics, no more") {
  SessionFixture f;
  f.services.options.max_topics = 3;
  FakeLink link;
  auto s = f.open(link, "topics=t", "kws.v1");
  f.send(*s, R"({"topic":"a","message":"m","id":1})");
  f.send(*s, R"({"topic":"b","message":"m","id":2})");
  f.send(*s, R"({"topic":"c","message":"m","id":3})");
  f.send(*s, R"({"topic":"a","message":"again","id":4})");
  CHECK(link.types() == std::vector<std::string>{"subscribed", "ack", "ack", "error", "ack"});
  CHECK(link.replies[3]["code"] == "topic_limit");
  CHECK(f.sink.kept.size() == 3);
}

TEST_CASE("session: Kafka's queue full pauses reading, keeps order, and retries") {
  SessionFixture f;
  f.sink.refuse = 2;
  FakeLink link;
  auto s = f.open(link, "", "kws.v1");
  std::string first = R"({"topic":"t","message":"1","id":1})";
  std::string second = R"({"topic":"t","message":"2","id":2})";
  s->on_message(MessageKind::text, first);
  CHECK(link.paused);
  s->on_message(MessageKind::text, second);  // already read when the pause came
  f.settle();
  CHECK_FALSE(link.paused);
  REQUIRE(f.sink.kept.size() == 2);
  CHECK(f.sink.kept[0].value == "1");
  CHECK(f.sink.kept[1].value == "2");
  CHECK(link.types() == std::vector<std::string>{"ack", "ack"});
  CHECK(f.host.delayed >= 1);
}

TEST_CASE("session: too many open subscribe requests pause reading until the hub answers") {
  SessionFixture f;
  f.services.options.max_pending_requests = 2;
  FakeLink link;
  auto s = f.open(link, "", "kws.v1");
  std::string sub = R"({"type":"subscribe","topics":["t"],"offset":"earliest"})";
  s->on_message(MessageKind::text, sub);
  s->on_message(MessageKind::text, sub);
  CHECK(link.paused);
  f.settle();
  CHECK_FALSE(link.paused);
  CHECK(link.types() == std::vector<std::string>{"subscribed", "subscribed"});
}

TEST_CASE("session: while the link holds bytes new ones wait, and drop-oldest says how many it dropped once") {
  SessionFixture f;
  f.services.options.slow_client = SlowClientPolicy::drop_oldest;
  f.services.options.client_buffer = 2000;
  FakeLink link;
  auto s = f.open(link, "topics=t", "kws.v1");
  link.replies.clear();
  link.hold = true;
  f.cluster.append("t", 0, "first");
  f.settle();
  CHECK(link.offsets == std::vector<int64_t>{0});
  for (int i = 1; i <= 100; ++i) {
    f.cluster.append("t", 0, std::string(200, 'x'));
    f.settle();
  }
  CHECK(link.offsets.size() == 1);  // the socket took nothing: nothing more handed over
  link.hold = false;
  link.held = 0;
  s->on_drained();
  REQUIRE(link.replies.size() == 1);
  CHECK(link.replies[0]["type"] == "dropped");
  const int64_t dropped = link.replies[0]["count"];
  CHECK(dropped > 50);
  CHECK(static_cast<int64_t>(link.offsets.size()) - 1 + dropped == 100);
  CHECK(link.offsets.back() == 100);
}

TEST_CASE("session: over the budget with policy close, the client is closed with the reason") {
  SessionFixture f;
  f.services.options.client_buffer = 1000;
  FakeLink link;
  auto s = f.open(link, "topics=t");
  link.hold = true;
  for (int i = 0; i < 20; ++i) f.cluster.append("t", 0, std::string(200, 'x'));
  f.settle();
  REQUIRE(link.closed);
  CHECK(*link.closed == CloseReason::policy);
  CHECK(link.close_why.find("slow client") != std::string::npos);
  CHECK(f.counters.slow_closes == 1);
}

TEST_CASE("session: messages Kafka deleted before the hub read them reach a kws client as one lost notice") {
  SessionFixture f;
  FakeLink link;
  auto s = f.open(link, "topics=t", "kws.v1");
  link.replies.clear();
  for (int i = 0; i < 5; ++i) f.cluster.append("t", 0, "m");
  f.cluster.low["t"][0] = 3;
  f.settle();
  REQUIRE(link.replies.size() == 1);
  CHECK(link.replies[0] == nlohmann::json::parse(R"({"type":"lost","topic":"t","partition":0,"from":0,"to":2})"));
  CHECK(link.offsets == std::vector<int64_t>{3, 4});
  CHECK(f.counters.lost_notices == 1);
}

TEST_CASE("session: closing leaves the hub and stops answering") {
  SessionFixture f;
  FakeLink link;
  auto s = f.open(link, "topics=t", "kws.v1");
  s->on_closed();
  f.settle();
  f.cluster.append("t", 0, "after");
  f.settle();
  CHECK(link.offsets.empty());
  CHECK(s->closed());
}

TEST_CASE("session: Kafka going away is told to a kws client, never to a kafka-websocket one") {
  SessionFixture f;
  FakeLink kws_link, legacy_link;
  auto kws = f.open(kws_link, "", "kws.v1");
  auto legacy = f.open(legacy_link, "topics=t");
  HubNotice gone;
  gone.kind = HubNotice::Kind::kafka;
  gone.reachable = false;
  gone.message = "no answer for 10 s";
  kws->notify(gone);
  legacy->notify(gone);
  f.settle();
  REQUIRE(kws_link.replies.size() == 1);
  CHECK(kws_link.replies[0] ==
        nlohmann::json::parse(R"({"type":"kafka","reachable":false,"message":"no answer for 10 s"})"));
  CHECK(legacy_link.replies.empty());
  // The bridge logs Kafka's state once, not once per legacy client.
  for (const auto& line : f.log.lines) CHECK(line.second.find("reachable") == std::string::npos);
}

TEST_CASE("session: a group.id the authorizer refuses ends the session and holds no group slot") {
  SessionFixture f;
  DenySome deny;
  f.services.authorizer = &deny;
  FakeLink refused_group, refused_topic;
  f.cluster.create("secret", 1);
  auto a = f.open(refused_group, "topics=t&group.id=forbidden", "kws.v1");
  auto b = f.open(refused_topic, "topics=secret&group.id=fine", "kws.v1");
  REQUIRE(refused_group.closed == CloseReason::policy);
  CHECK(refused_group.replies.at(0)["code"] == "not_allowed");
  CHECK_THAT(refused_group.close_why, Catch::Contains("forbidden"));
  REQUIRE(refused_topic.closed == CloseReason::policy);
  CHECK(refused_topic.replies.at(0)["code"] == "not_allowed");
  CHECK(f.group_sessions == 0);
}

TEST_CASE("session: an auth frame replaces the token's rights and ends subscriptions it no longer allows") {
  SessionFixture f;
  GrantsAuthorizer by_grants;
  f.services.authorizer = &by_grants;
  f.cluster.create("u", 1);
  // "SUBJECT:TOPIC": a token of SUBJECT that may read TOPIC only.
  f.services.check_token = [](std::string_view token) {
    TokenCheck check;
    const size_t colon = token.find(':');
    if (colon == std::string_view::npos) {
      check.problem = "signature does not verify";
      return check;
    }
    auto p = std::make_shared<Principal>();
    p->name = std::string(token.substr(0, colon));
    p->grants = Grants{{std::string(token.substr(colon + 1))}, {}, {}};
    p->expires = std::chrono::system_clock::time_point(std::chrono::seconds(4102444800));
    check.principal = p;
    return check;
  };
  FakeLink link;
  auto first = std::make_shared<Principal>();
  first->name = "alice";
  first->grants = Grants{{"t", "u"}, {}, {}};
  auto s = f.open(link, "topics=t,u", "kws.v1", first);
  f.send(*s, R"({"type":"auth","token":"forged","id":1})");
  f.send(*s, R"({"type":"auth","id":2})");
  f.send(*s, R"({"type":"auth","token":"mallory:u","id":3})");
  f.send(*s, R"({"type":"auth","token":"alice:t","id":4})");
  f.send(*s, R"({"type":"subscribe","topic":"u","id":5})");
  std::vector<std::string> got;
  for (const auto& r : link.replies) got.push_back(r.value("type", "") == "error" ? r.value("code", "") : r.value("type", ""));
  CHECK(got == std::vector<std::string>{"subscribed", "subscribed", "bad_token", "bad_frame", "bad_token",
                                        "authenticated", "unsubscribed", "not_allowed"});  // authenticated first, then what it ends
  CHECK(link.replies[2]["message"] == "signature does not verify");
  CHECK_THAT(link.replies[4]["message"].get<std::string>(), Catch::Contains("another subject"));
  CHECK(link.replies[5]["sub"] == "alice");
  CHECK(link.replies[5]["expires"] == 4102444800);
  CHECK(link.replies[6]["topic"] == "u");
  f.cluster.append("u", 0, "no longer readable");
  f.cluster.append("t", 0, "still readable");
  f.settle();
  CHECK(link.offsets == std::vector<int64_t>{0});
  CHECK_FALSE(link.closed);
}

TEST_CASE("session: with tokens configured, a session without a principal may touch no topic") {
  SessionFixture f;
  f.services.check_token = [](std::string_view) { return TokenCheck{}; };
  FakeLink link;
  auto s = f.open(link, "", "kws.v1");
  f.send(*s, R"({"topic":"t","message":"m","id":1})");
  f.send(*s, R"({"type":"subscribe","topic":"t","id":2})");
  REQUIRE(link.replies.size() == 2);
  CHECK(link.replies[0]["code"] == "not_allowed");
  CHECK(link.replies[1]["code"] == "not_allowed");
  CHECK(f.sink.kept.empty());
}

TEST_CASE("session: an auth frame where no token authentication is configured is refused") {
  SessionFixture f;
  FakeLink link;
  auto s = f.open(link, "", "kws.v1");
  f.send(*s, R"({"type":"auth","token":"abc","id":1})");
  REQUIRE(link.replies.size() == 1);
  CHECK(link.replies[0]["code"] == "bad_frame");
}

TEST_CASE("session: a session closes with 1008 once its token expired, after the leeway") {
  SessionFixture f;
  f.services.options.token_leeway = std::chrono::seconds(30);
  FakeLink link, forever;
  auto expiring = std::make_shared<Principal>();
  const auto exp = std::chrono::system_clock::time_point(std::chrono::seconds(2000000000));
  expiring->expires = exp;
  auto s = f.open(link, "topics=t", "kws.v1", expiring);
  auto t = f.open(forever, "topics=t", "kws.v1", std::make_shared<Principal>());
  CHECK_FALSE(s->close_if_expired(exp + std::chrono::seconds(29)));
  CHECK_FALSE(link.closed);
  CHECK(s->close_if_expired(exp + std::chrono::seconds(30)));
  REQUIRE(link.closed == CloseReason::policy);
  CHECK(link.close_why == "token expired");
  CHECK_FALSE(s->close_if_expired(exp + std::chrono::seconds(31)));  // once
  CHECK_FALSE(t->close_if_expired(exp + std::chrono::hours(1000000)));
}

TEST_CASE("session: subscriptions beyond serve.max_subscriptions are refused with topic_limit, producing goes on", "[limits]") {
  SessionFixture f;
  f.services.options.max_subscriptions = 2;
  for (const char* t : {"a", "b", "c"}) f.cluster.create(t, 1);
  FakeLink link;
  auto s = f.open(link, "topics=t", "kws.v1");
  f.send(*s, R"({"type":"subscribe","topics":["a","b"],"id":1})");
  f.send(*s, R"({"type":"subscribe","topic":"t","id":2})");  // already subscribed: not a new one
  f.send(*s, R"({"topic":"c","message":"m","id":3})");       // producing is not subscribing
  CHECK(link.types() == std::vector<std::string>{"subscribed", "subscribed", "error", "subscribed", "ack"});
  CHECK(link.replies[2]["code"] == "topic_limit");
  CHECK(link.replies[2]["topic"] == "b");
  CHECK_THAT(link.replies[2].value("message", ""), Catch::Contains("serve.max_subscriptions"));
  CHECK(f.counters.subscription_limit_refusals == 1);
  f.send(*s, R"({"type":"unsubscribe","topic":"t","id":4})");
  f.send(*s, R"({"type":"subscribe","topic":"b","id":5})");  // room again
  CHECK(link.replies.back()["type"] == "subscribed");
}

namespace {
// A clock the test moves.
struct ManualClock {
  std::chrono::steady_clock::time_point now{std::chrono::seconds(100)};
  SteadyClock fn() {
    return [this] { return now; };
  }
};
}  // namespace

TEST_CASE("session: produces over serve.produce_rate get rate_limited and are not produced; one that keeps on is closed (1008)", "[limits]") {
  SessionFixture f;
  ManualClock clock;
  f.services.clock = clock.fn();
  f.services.options.produce_limits.messages_per_s = 3;
  f.services.options.produce_limits.close_after_refusals = 5;
  FakeLink link;
  auto s = f.open(link, "", "kws.v1");
  for (int i = 1; i <= 4; ++i) f.send(*s, R"({"topic":"t","message":"m","id":)" + std::to_string(i) + "}");
  CHECK(link.types() == std::vector<std::string>{"ack", "ack", "ack", "error"});
  CHECK(link.replies[3]["code"] == "rate_limited");
  CHECK(link.replies[3]["id"] == 4);
  CHECK(f.sink.kept.size() == 3);
  // Binary produce frames pay the same.
  f.send(*s, std::string("\x01t", 2) + "bin", MessageKind::binary);
  CHECK(link.replies.back()["code"] == "rate_limited");
  clock.now += std::chrono::milliseconds(400);  // one more allowed
  f.send(*s, R"({"topic":"t","message":"m","id":6})");
  CHECK(link.replies.back()["type"] == "ack");
  CHECK_FALSE(link.closed);
  for (int i = 7; i <= 9; ++i) f.send(*s, R"({"topic":"t","message":"m","id":)" + std::to_string(i) + "}");
  CHECK(f.counters.rate_limited == 5);
  REQUIRE(link.closed);
  CHECK(*link.closed == CloseReason::policy);
  CHECK_THAT(link.close_why, Catch::Contains("rate"));
  CHECK(link.replies.back()["code"] == "rate_limited");  // told before the close
  CHECK(f.counters.rate_limit_closes == 1);
  CHECK(f.sink.kept.size() == 4);
  const size_t replies = link.replies.size();
  f.send(*s, R"({"topic":"t","message":"after the close","id":10})");
  CHECK(link.replies.size() == replies);
  CHECK(f.sink.kept.size() == 4);
}

TEST_CASE("session: control frames over serve.control_rate get rate_limited and are not acted on; produces are not counted", "[limits]") {
  SessionFixture f;
  f.cluster.create("u", 1);
  ManualClock clock;
  f.services.clock = clock.fn();
  f.services.options.control_limits = control_frame_limits(2);
  f.services.options.control_limits.close_after_refusals = 4;
  FakeLink link;
  auto s = f.open(link, "", "kws.v1");
  f.send(*s, R"({"type":"subscribe","topics":["t"],"id":"a"})");
  f.send(*s, R"({"type":"topics","id":"b"})");
  f.send(*s, R"({"type":"subscribe","topics":["u"],"id":"c"})");
  f.send(*s, R"({"type":"auth","token":"x","id":"d"})");
  REQUIRE(link.types() == std::vector<std::string>{"subscribed", "topics", "error", "error"});
  for (int i : {2, 3}) {
    CHECK(link.replies[i]["code"] == "rate_limited");
    CHECK(link.replies[i]["message"] == "over this session's control frame rate of 2 frames/s (serve.control_rate); slow down");
  }
  CHECK(link.replies[2]["id"] == "c");
  CHECK(link.replies[3]["id"] == "d");
  // The refused subscribe was not made: u's messages do not come.
  f.cluster.append("u", 0, "not for this session");
  f.cluster.append("t", 0, "for it");
  f.settle();
  CHECK(link.offsets == std::vector<int64_t>{0});
  // Produces have a limit of their own.
  f.send(*s, R"({"topic":"t","message":"m","id":"e"})");
  CHECK(link.replies.back()["type"] == "ack");
  clock.now += std::chrono::milliseconds(500);  // one more frame
  f.send(*s, R"({"type":"unsubscribe","topics":["t"],"id":"f"})");
  CHECK(link.replies.back()["type"] == "unsubscribed");
  CHECK_FALSE(link.closed);
  // Keeping on closes the session, after telling it.
  for (int i = 0; i < 2; ++i) f.send(*s, R"({"type":"topics"})");
  CHECK(f.counters.rate_limited == 4);
  REQUIRE(link.closed);
  CHECK(*link.closed == CloseReason::policy);
  CHECK(link.close_why == "control frame rate limit: still over after 4 rate_limited errors");
  CHECK(link.replies.back()["code"] == "rate_limited");
  CHECK(f.counters.rate_limit_closes == 1);
}

TEST_CASE("session: serve.produce_bytes_rate counts the client's frame bytes", "[limits]") {
  SessionFixture f;
  ManualClock clock;
  f.services.clock = clock.fn();
  f.services.options.produce_limits.bytes_per_s = 100;
  FakeLink link;
  auto s = f.open(link, "", "kws.v1");
  f.send(*s, R"({"topic":"t","message":")" + std::string(60, 'x') + R"(","id":1})");
  f.send(*s, R"({"topic":"t","message":")" + std::string(60, 'x') + R"(","id":2})");
  CHECK(link.types() == std::vector<std::string>{"ack", "error"});
  CHECK_THAT(link.replies[1].value("message", ""), Catch::Contains("bytes/s"));
}

TEST_CASE("session: a kafka-websocket client over the rate cannot be told: counted and logged, and closed if it keeps on", "[limits]") {
  SessionFixture f;
  ManualClock clock;
  f.services.clock = clock.fn();
  f.services.options.produce_limits.messages_per_s = 1;
  f.services.options.produce_limits.close_after_refusals = 3;
  FakeLink link;
  auto s = f.open(link, "topics=t");
  for (int i = 0; i < 4; ++i) f.send(*s, R"({"topic":"t","message":"m"})");
  CHECK(link.replies.empty());
  CHECK(f.sink.kept.size() == 1);
  CHECK(f.counters.rate_limited == 3);
  CHECK(f.counters.unsent_notices >= 3);
  CHECK(link.closed);
  bool logged = false;
  for (const auto& l : f.log.lines) logged = logged || l.second.find("rate_limited") != std::string::npos;
  CHECK(logged);
}

namespace {

// A group's consumer over the FakeCluster's "t" partition 0: reads from
// the start, and records what the session stores for the group's commit.
struct GroupLog {
  std::mutex mutex;
  std::vector<int64_t> stored;
  std::vector<int64_t> snapshot() {
    std::lock_guard<std::mutex> lock(mutex);
    return stored;
  }
};

// A group session's reader thread outlives a failed REQUIRE unless the
// session is closed: it would go on reading the fixture being destroyed.
struct CloseOnExit {
  std::shared_ptr<Session> session;
  ~CloseOnExit() { session->on_closed(); }
};

class FakeGroupSource : public MessageSource {
 public:
  FakeGroupSource(FakeCluster& cluster, std::shared_ptr<GroupLog> log) : cluster_(cluster), log_(std::move(log)) {}
  size_t poll_batch(std::chrono::milliseconds wait, size_t max, const std::function<bool(const MessageView&)>& on_message,
                    const std::function<void(const PartitionEvent&)>& on_event) override {
    if (!assigned_ && on_event) {
      assigned_ = true;
      PartitionEvent e;
      e.kind = PartitionEvent::Kind::assigned;
      on_event(e);
      // A real group's first fetch comes well after its assignment: the
      // session may well write `subscribed` before any message comes.
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    size_t n = 0;
    std::vector<FakeCluster::Record> records;
    {
      std::lock_guard<std::mutex> lock(cluster_mutex());
      const auto& log = cluster_.topics.at("t").at(0);
      for (size_t i = static_cast<size_t>(next_); i < log.size() && records.size() < max; ++i) records.push_back(log[i]);
    }
    for (const auto& r : records) {
      MessageView v;
      v.topic = "t";
      v.partition = 0;
      v.offset = r.offset;
      if (!r.key.empty()) v.key = r.key;
      v.value = r.value;
      if (!on_message(v)) break;
      next_ = r.offset + 1;
      ++n;
    }
    if (n == 0) std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(5)));
    return n;
  }
  void store_offset(std::string_view topic, int32_t partition, int64_t next_offset) override {
    REQUIRE(topic == "t");
    REQUIRE(partition == 0);
    std::lock_guard<std::mutex> lock(log_->mutex);
    log_->stored.push_back(next_offset);
  }
  static std::mutex& cluster_mutex() {
    static std::mutex m;
    return m;
  }

 private:
  FakeCluster& cluster_;
  std::shared_ptr<GroupLog> log_;
  bool assigned_ = false;
  int64_t next_ = 0;
};

}  // namespace

TEST_CASE("session: a group session stores offsets for the group's commit only once its socket took them") {
  SessionFixture f;
  auto group_log = std::make_shared<GroupLog>();
  f.services.open_group = [&f, group_log](const GroupRequest&) {
    return std::unique_ptr<MessageSource>(std::make_unique<FakeGroupSource>(f.cluster, group_log));
  };
  FakeLink link;
  auto s = f.open(link, "topics=t&group.id=g", "kws.v1");
  const CloseOnExit close_on_exit{s};
  REQUIRE(f.wait_for([&] { return link.types() == std::vector<std::string>{"subscribed"}; }));
  link.hold = true;  // the socket takes nothing for now
  {
    std::lock_guard<std::mutex> lock(FakeGroupSource::cluster_mutex());
    for (int i = 0; i < 3; ++i) f.cluster.append("t", 0, "m" + std::to_string(i));
  }
  REQUIRE(f.wait_for([&] { return link.offsets.size() == 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  f.host.run();
  CHECK(group_log->snapshot().empty());  // handed to the link, not yet sent
  link.held = 0;
  s->on_drained();
  CHECK(group_log->snapshot() == std::vector<int64_t>{3});
  // Later writes that the socket takes at once are stored at once.
  link.hold = false;
  {
    std::lock_guard<std::mutex> lock(FakeGroupSource::cluster_mutex());
    f.cluster.append("t", 0, "m3");
  }
  REQUIRE(f.wait_for([&] { return group_log->snapshot().size() == 2; }));
  CHECK(group_log->snapshot().back() == 4);
}

TEST_CASE("session: a filtered group session sends only what matches, and commits past what the filter left out") {
  SessionFixture f;
  auto group_log = std::make_shared<GroupLog>();
  f.services.open_group = [&f, group_log](const GroupRequest&) {
    return std::unique_ptr<MessageSource>(std::make_unique<FakeGroupSource>(f.cluster, group_log));
  };
  FakeLink link;
  auto s = f.open(link, "topics=t&group.id=g&filter=%7B%22key%22%3A%5B%22k%22%5D%7D", "kws.v1");
  const CloseOnExit close_on_exit{s};
  REQUIRE(f.wait_for([&] { return link.types() == std::vector<std::string>{"subscribed"}; }));
  link.hold = true;  // the socket takes nothing for now
  {
    std::lock_guard<std::mutex> lock(FakeGroupSource::cluster_mutex());
    f.cluster.append_keyed("t", 0, "k", "m0");
    f.cluster.append_keyed("t", 0, "x", "m1");
    f.cluster.append_keyed("t", 0, "x", "m2");
  }
  REQUIRE(f.wait_for([&] { return link.offsets.size() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  f.host.run();
  CHECK(link.offsets == std::vector<int64_t>{0});
  // Offset 0 waits in the link: nothing is committed, not even the
  // filtered-out 1 and 2 behind it.
  CHECK(group_log->snapshot().empty());
  link.held = 0;
  s->on_drained();
  // Sent: the commit goes past the filtered-out messages after it.
  CHECK(group_log->snapshot() == std::vector<int64_t>{3});
  // Only filtered-out messages, nothing waiting for the client: committed
  // by the reader itself.
  {
    std::lock_guard<std::mutex> lock(FakeGroupSource::cluster_mutex());
    f.cluster.append_keyed("t", 0, "x", "m3");
    f.cluster.append_keyed("t", 0, "y", "m4");
  }
  REQUIRE(f.wait_for([&] { return group_log->snapshot().size() == 2; }));
  CHECK(group_log->snapshot().back() == 5);
  link.hold = false;
  {
    std::lock_guard<std::mutex> lock(FakeGroupSource::cluster_mutex());
    f.cluster.append_keyed("t", 0, "k", "m5");
  }
  REQUIRE(f.wait_for([&] { return group_log->snapshot().size() == 3; }));
  CHECK(group_log->snapshot().back() == 6);
  CHECK(link.offsets == std::vector<int64_t>{0, 5});
}

TEST_CASE("session: serve.read_only refuses every produce, text and binary, with not_allowed; reading goes on", "[transforms]") {
  SessionFixture f;
  f.services.options.read_only = true;
  FakeLink link;
  auto s = f.open(link, "topics=t&offset=latest", "kafka-binary");
  f.send(*s, R"({"topic":"t","message":"m","id":1})");
  f.send(*s, std::string("\x01t", 2) + "binary", MessageKind::binary);
  f.cluster.append("t", 0, "from kafka");
  f.settle();
  CHECK(f.sink.kept.empty());
  REQUIRE(link.replies.size() == 3);
  CHECK(link.replies[0]["type"] == "subscribed");
  for (int i : {1, 2}) {
    CHECK(link.replies[i]["code"] == "not_allowed");
    CHECK(link.replies[i]["message"] == "this bridge is read-only");
    CHECK(link.replies[i]["topic"] == "t");
  }
  CHECK(link.replies[1]["id"] == 1);
  CHECK(link.offsets == std::vector<int64_t>{0});
  CHECK_FALSE(link.closed);
}

TEST_CASE("session: serve.read_only for a kafka-websocket client is counted and logged, the session goes on", "[transforms]") {
  SessionFixture f;
  f.services.options.read_only = true;
  FakeLink link;
  auto s = f.open(link, "topics=t");
  const uint64_t before = f.counters.unsent_notices;
  f.send(*s, R"({"topic":"t","message":"m"})");
  CHECK(f.sink.kept.empty());
  CHECK(link.replies.empty());
  CHECK(f.counters.unsent_notices == before + 1);
  REQUIRE(f.log.count(LogLevel::warning) == 1);
  CHECK_THAT(f.log.lines.back().second, Catch::Contains("read-only"));
  CHECK_FALSE(link.closed);
}

TEST_CASE("session: serve.topics_allow over the grants refuses other topics at every door", "[transforms]") {
  SessionFixture f;
  DenySome grants;
  TopicAllowList allow(grants, {"t", "ro", "pub-*"});
  f.services.authorizer = &allow;
  f.cluster.create("other", 1);
  f.cluster.create("ro", 1);
  f.cluster.create("pub-a", 1);
  FakeLink link;
  auto s = f.open(link, "topics=other,t&offset=latest", "kws.v1");
  f.send(*s, R"({"type":"subscribe","topic":"pub-a","id":1})");
  f.send(*s, R"({"topic":"other","message":"m","id":2})");
  f.send(*s, R"({"topic":"ro","message":"m","id":3})");  // listed, but the grants refuse writing it
  f.send(*s, R"({"topic":"pub-a","message":"m","id":4})");
  std::vector<std::string> codes;
  for (const auto& r : link.replies) codes.push_back(r.value("type", "") == "error" ? r.value("code", "") : r.value("type", ""));
  CHECK(codes == std::vector<std::string>{"not_allowed", "subscribed", "subscribed", "not_allowed", "not_allowed", "ack"});
  CHECK(link.replies[0]["topic"] == "other");
  REQUIRE(f.sink.kept.size() == 1);
  CHECK(f.sink.kept[0].topic == "pub-a");
  // Groups are the grants' business alone.
  CHECK(allow.allows_group(Principal{}, "any"));
  CHECK_FALSE(allow.allows_group(Principal{}, "forbidden"));
  // An empty list restricts nothing but what the grants do.
  TopicAllowList open_list(grants, {});
  CHECK(open_list.allows(Principal{}, "whatever", TopicAction::write));
  CHECK_FALSE(open_list.allows(Principal{}, "ro", TopicAction::write));
}
