#include <catch2/catch.hpp>

#include "core/ingest/session.hpp"
#include "fakes.hpp"

using namespace kws;
using kws::test::FakeFeedConnection;
using kws::test::FakeTime;
using std::chrono::milliseconds;

namespace {

struct Rig {
  FakeFeedConnection feed;
  FakeTime time;
  NullLog log;
  IngestBuffer buffer;
  FeedSession session;

  explicit Rig(SessionSettings s, FieldSpecs fields = {}, BufferLimits limits = {})
      : buffer(limits), session(feed, buffer, std::move(s), FieldRules(fields), log, clock(), 1) {}

  SessionClock clock() {
    SessionClock c;
    c.steady = [this] { return time.now; };
    c.wall_ms = [this] { return time.wall; };
    return c;
  }
  void message(const std::string& text) {
    std::string p = text;
    session.on_feed_message(p, false);
  }
  void tick(milliseconds d = milliseconds(0)) {
    time.advance(d);
    session.tick(false);
  }
  std::vector<IngestItem> drain() {
    std::vector<IngestItem> out;
    buffer.pop(out, 1000, milliseconds(0));
    return out;
  }
};

SessionSettings fast() {
  SessionSettings s;
  s.backoff = {milliseconds(100), milliseconds(400), 2.0};
  return s;
}

}  // namespace

TEST_CASE("session: open messages after every connect, in order; reconnect after backoff") {
  SessionSettings s = fast();
  s.open_messages = {"auth", "subscribe"};
  Rig r(s);
  r.session.start();
  CHECK(r.feed.connects == 1);
  r.session.on_feed_open();
  r.tick();
  CHECK(r.feed.sent == std::vector<std::string>{"auth", "subscribe"});
  r.session.on_feed_closed(FeedEnd::lost, "closed by the feed");
  r.tick();
  CHECK(r.feed.connects == 1);  // waiting for the backoff
  r.tick(milliseconds(101));
  CHECK(r.feed.connects == 2);
  r.session.on_feed_open();
  r.tick();
  CHECK(r.feed.sent == std::vector<std::string>{"auth", "subscribe", "auth", "subscribe"});
  CHECK(r.session.stats().connections == 2);
}

TEST_CASE("session: records carry the connection; the first after a reconnect carries the downtime") {
  Rig r(fast());
  r.session.start();
  r.session.on_feed_open();
  r.message("a");
  r.session.on_feed_closed(FeedEnd::lost, "x");
  r.tick(milliseconds(150));
  r.tick(milliseconds(300));
  r.session.on_feed_open();
  r.message("b");
  r.message("c");
  auto items = r.drain();
  REQUIRE(items.size() == 3);
  CHECK(items[0].connection == 1);
  CHECK(items[0].downtime_ms == -1);
  CHECK(items[1].connection == 2);
  CHECK(items[1].downtime_ms == 450);
  CHECK(items[2].downtime_ms == -1);
}

TEST_CASE("session: marker records precede the connection's data") {
  SessionSettings s = fast();
  s.markers = MarkerMode::record;
  Rig r(s);
  r.session.start();
  r.session.on_feed_open();
  r.message("a");
  auto items = r.drain();
  REQUIRE(items.size() == 2);
  CHECK(items[0].marker);
  CHECK(items[0].payload == R"({"kws_marker":"connected","connection":1,"downtime_ms":null})");
  CHECK_FALSE(items[1].marker);
}

TEST_CASE("session: --max-retries counts failed attempts in a row, then gives up") {
  SessionSettings s = fast();
  s.max_retries = 2;
  Rig r(s);
  r.session.start();
  for (int i = 0; i < 3; ++i) {
    REQUIRE_FALSE(r.session.finished());
    r.session.on_feed_closed(FeedEnd::failed, "connection refused");
    r.tick();
    r.tick(milliseconds(1000));
  }
  CHECK(r.session.finished());
  REQUIRE(r.session.failure());
  CHECK(r.session.failure()->find("giving up after 3 failed attempt(s)") != std::string::npos);
  CHECK(r.session.failure()->find("connection refused") != std::string::npos);
  CHECK(r.feed.connects == 3);
}

TEST_CASE("session: a connection that stayed healthy resets the retry count") {
  SessionSettings s = fast();
  s.max_retries = 1;
  s.healthy_after = milliseconds(1000);
  Rig r(s);
  r.session.start();
  for (int round = 0; round < 3; ++round) {
    r.session.on_feed_open();
    r.tick();
    r.tick(milliseconds(1500));  // healthy
    r.session.on_feed_closed(FeedEnd::lost, "dropped");
    r.tick();
    CHECK_FALSE(r.session.finished());
    r.tick(milliseconds(500));
  }
  // Without a healthy spell in between, two failures in a row end it.
  r.session.on_feed_closed(FeedEnd::failed, "refused");
  r.tick();
  CHECK(r.session.finished());
}

TEST_CASE("session: a silent feed is closed after --stale-after, not while reading is paused") {
  SessionSettings s = fast();
  s.stale_after = milliseconds(300);
  Rig r(s);
  r.session.start();
  r.session.on_feed_open();
  r.tick();
  r.tick(milliseconds(200));
  r.message("a");
  r.tick(milliseconds(200));
  CHECK(r.feed.closes.empty());
  r.time.advance(milliseconds(500));
  r.session.tick(true);  // paused: the silence is ours
  CHECK(r.feed.closes.empty());
  r.session.tick(false);  // resumed just now
  CHECK(r.feed.closes.empty());
  r.tick(milliseconds(301));
  REQUIRE(r.feed.closes.size() == 1);
  CHECK(r.feed.closes[0].find("--stale-after") != std::string::npos);
  r.session.on_feed_closed(FeedEnd::lost, "closed");
  r.tick();
  r.tick(milliseconds(1000));
  CHECK(r.feed.connects == 2);
}

TEST_CASE("session: heartbeats at their interval; replies are liveness, not data") {
  SessionSettings s = fast();
  s.heartbeat = "PING";
  s.heartbeat_interval = milliseconds(100);
  s.heartbeat_reply = "\"pong\"";
  Rig r(s);
  r.session.start();
  r.session.on_feed_open();
  r.tick();
  for (int i = 0; i < 5; ++i) r.tick(milliseconds(50));
  CHECK(r.feed.sent == std::vector<std::string>{"PING", "PING"});
  r.message(R"({"pong":1})");
  r.message("data");
  CHECK(r.drain().size() == 1);
  CHECK(r.session.stats().heartbeat_replies == 1);
}

TEST_CASE("session: --await-reply confirms, or reconnects after --await-timeout") {
  SessionSettings s = fast();
  s.await_reply = "subscribed";
  s.await_timeout = milliseconds(500);
  Rig r(s);
  r.session.start();
  r.session.on_feed_open();
  r.tick();
  r.tick(milliseconds(600));
  REQUIRE(r.feed.closes.size() == 1);
  CHECK(r.feed.closes[0].find("no reply containing 'subscribed'") != std::string::npos);
  r.session.on_feed_closed(FeedEnd::lost, "closed");
  r.tick(milliseconds(1000));
  r.session.on_feed_open();
  r.tick();
  r.message(R"({"event":"subscribed"})");
  r.tick(milliseconds(600));
  CHECK(r.feed.closes.size() == 1);
  CHECK(r.drain().size() == 1);  // the reply itself is data
}

TEST_CASE("session: block pauses the feed; filter, key and --count") {
  SessionSettings s = fast();
  s.take = 3;
  Rig r(s, FieldSpecs{"/k", {"/t=x"}, ""}, BufferLimits{2, 1 << 20, WhenFull::block});
  r.session.start();
  r.session.on_feed_open();
  r.message(R"({"t":"x","k":"a"})");
  r.message(R"({"t":"y","k":"b"})");
  CHECK(r.feed.pauses == 0);
  r.message(R"({"t":"x"})");
  CHECK(r.feed.pauses == 1);
  r.message(R"({"t":"x","k":"c"})");
  CHECK(r.session.taken_all());
  r.message(R"({"t":"x","k":"d"})");  // after --count: not taken, not counted
  auto items = r.drain();
  REQUIRE(items.size() == 3);
  CHECK(items[0].key == std::optional<std::string>("a"));
  CHECK_FALSE(items[1].key);
  auto st = r.session.stats();
  CHECK(st.filtered_out == 1);
  CHECK(st.key_missing == 1);
  CHECK(st.taken == 3);
  CHECK(st.received == 4);
}

TEST_CASE("session: every message read is counted once as received and once in what became of it") {
  SessionSettings s = fast();
  s.take = 5;
  s.heartbeat_reply = "pong";
  s.ping_pattern = "ping";
  s.ping_answer = "PONG";
  Rig r(s, FieldSpecs{"", {"/t=x"}, ""});
  r.session.start();
  r.session.on_feed_open();
  for (const char* m : {R"({"t":"x"})", "pong", R"({"t":"y"})", "ping", R"({"t":"x"})"}) r.message(m);
  r.session.on_feed_too_big();
  for (const char* m : {R"({"t":"x"})", R"({"t":"x"})", R"({"t":"x"})"}) r.message(m);
  CHECK(r.session.taken_all());
  for (int i = 0; i < 3; ++i) r.message(R"({"t":"x"})");  // the feed goes on while the connection closes
  auto st = r.session.stats();
  CHECK(st.taken == 5);
  CHECK(st.filtered_out == 1);
  CHECK(st.heartbeat_replies == 1);
  CHECK(st.pings_answered == 1);
  CHECK(st.oversize == 1);
  CHECK(st.received == st.taken + st.filtered_out + st.heartbeat_replies + st.pings_answered + st.oversize);
  CHECK(st.received == 9);
}

TEST_CASE("session: stop closes the feed and finishes once it reports; end of input finishes") {
  Rig r(fast());
  r.session.start();
  r.session.on_feed_open();
  r.tick();
  r.session.stop();
  CHECK(r.feed.closes == std::vector<std::string>{"kws is shutting down"});
  CHECK_FALSE(r.session.finished());
  r.session.on_feed_closed(FeedEnd::lost, "closed");
  r.tick();
  CHECK(r.session.finished());
  CHECK_FALSE(r.session.failure());

  Rig in(fast());
  in.session.start();
  in.session.on_feed_open();
  in.session.on_feed_closed(FeedEnd::end_of_input, "end of input");
  in.tick();
  CHECK(in.session.finished());
  CHECK(in.session.ended_by_input());
}

TEST_CASE("session: a message over the size limit is counted and the feed reconnected") {
  Rig r(fast());
  r.session.start();
  r.session.on_feed_open();
  r.session.on_feed_closed(FeedEnd::too_big, "too big");
  r.tick();
  r.tick(milliseconds(1000));
  CHECK(r.session.stats().oversize == 1);
  CHECK(r.feed.connects == 2);
}

TEST_CASE("session: the feed's own pings are answered, not produced") {
  SessionSettings s = fast();
  s.ping_pattern = "\"ping\"";
  s.ping_answer = R"({"op":"pong"})";
  Rig r(s);
  r.session.start();
  r.session.on_feed_open();
  r.message(R"({"op":"ping"})");
  r.message("data");
  CHECK(r.feed.sent == std::vector<std::string>{R"({"op":"pong"})"});
  CHECK(r.drain().size() == 1);
  CHECK(r.session.stats().pings_answered == 1);
}

TEST_CASE("session: a dry run shows filtered messages, marked, and counts them toward --count") {
  SessionSettings s = fast();
  s.take = 3;
  s.show_filtered = true;
  Rig r(s, FieldSpecs{"/k", {"/t=x"}, ""});
  r.session.start();
  r.session.on_feed_open();
  r.message(R"({"t":"x","k":"a"})");
  r.message(R"({"t":"y","k":"b"})");
  r.message(R"({"t":"x"})");
  CHECK(r.session.taken_all());
  auto items = r.drain();
  REQUIRE(items.size() == 3);
  CHECK_FALSE(items[0].filtered);
  CHECK(items[0].key == std::optional<std::string>("a"));
  CHECK(items[1].filtered);
  CHECK_FALSE(items[2].filtered);
  auto st = r.session.stats();
  CHECK(st.taken == 2);
  CHECK(st.filtered_out == 1);
  CHECK(st.key_missing == 1);
  CHECK(st.received == 3);
}

TEST_CASE("session: before a healthy connection, a failure waiting will not fix ends the run at once") {
  for (FeedFailure cause : {FeedFailure::no_such_host, FeedFailure::http_refused, FeedFailure::tls_mismatch,
                            FeedFailure::not_http, FeedFailure::certificate}) {
    Rig r(fast());
    r.session.start();
    r.session.on_feed_closed(FeedEnd::failed, cause, "the feed answered HTTP 404 Not Found");
    r.tick();
    CHECK(r.session.finished());
    REQUIRE(r.session.failure());
    CHECK(r.session.failure()->find("HTTP 404") != std::string::npos);
    CHECK(r.session.failure()->find("--retry-permanent") != std::string::npos);
    CHECK(r.feed.connects == 1);
  }
  // A transient failure is retried as before.
  Rig t(fast());
  t.session.start();
  t.session.on_feed_closed(FeedEnd::failed, FeedFailure::transient, "connection refused");
  t.tick();
  t.tick(milliseconds(1000));
  CHECK_FALSE(t.session.finished());
  CHECK(t.feed.connects == 2);
}

TEST_CASE("session: --retry-permanent retries them; after a healthy connection they are retried anyway") {
  SessionSettings s = fast();
  s.retry_permanent = true;
  Rig r(s);
  r.session.start();
  r.session.on_feed_closed(FeedEnd::failed, FeedFailure::no_such_host, "no such host");
  r.tick();
  r.tick(milliseconds(1000));
  CHECK_FALSE(r.session.finished());
  CHECK(r.feed.connects == 2);

  Rig h(fast());  // healthy_after: 5 s
  h.session.start();
  h.session.on_feed_open();
  h.tick();
  h.tick(milliseconds(5001));
  h.session.on_feed_closed(FeedEnd::lost, "closed by the feed");
  h.tick();
  h.tick(milliseconds(1000));
  REQUIRE(h.feed.connects == 2);
  h.session.on_feed_closed(FeedEnd::failed, FeedFailure::http_refused, "the feed answered HTTP 404 Not Found");
  h.tick();
  h.tick(milliseconds(1000));
  CHECK_FALSE(h.session.finished());
  CHECK(h.feed.connects == 3);

  // A connection that opened but never became healthy does not count.
  Rig u(fast());
  u.session.start();
  u.session.on_feed_open();
  u.tick(milliseconds(1000));
  u.session.on_feed_closed(FeedEnd::lost, "closed by the feed");
  u.tick();
  u.tick(milliseconds(1000));
  u.session.on_feed_closed(FeedEnd::failed, FeedFailure::no_such_host, "no such host");
  u.tick();
  CHECK(u.session.finished());
  CHECK(u.session.failure());
}
