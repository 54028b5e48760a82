#include <catch2/catch.hpp>

#include "core/ingest/runner.hpp"
#include "fakes.hpp"

using namespace kws;
using kws::test::FakeFeedConnection;
using kws::test::FakeSink;
using std::chrono::milliseconds;

namespace {

std::optional<std::string> header(const FakeSink::Kept& k, const std::string& name) {
  for (const auto& h : k.headers) {
    if (h.name == name) return h.value;
  }
  return std::nullopt;
}

struct RunnerRig {
  FakeFeedConnection feed;
  NullLog log;
  IngestBuffer buffer{BufferLimits{}};
  FeedSession session;
  FakeSink sink;

  explicit RunnerRig(SessionSettings s = {}) : session(feed, buffer, std::move(s), FieldRules(FieldSpecs{}), log) {}

  // The feed's whole life, before the runner starts: two connections.
  void play() {
    session.on_feed_open();
    for (const char* m : {"a", "b"}) {
      std::string p = m;
      session.on_feed_message(p, false);
    }
    session.on_feed_closed(FeedEnd::lost, "gone");
    session.on_feed_open();
    std::string p = "c";
    session.on_feed_message(p, true);
    session.on_feed_closed(FeedEnd::end_of_input, "end");
  }
};

}  // namespace

TEST_CASE("runner: every message reaches the sink once, in order, through queue_full, with its headers") {
  RunnerRig r;
  r.play();
  r.sink.refuse = 5;
  RecordSettings rs;
  rs.topic = "t";
  rs.source = "ws://feed/x";
  rs.extra_headers = {{"env", std::string("test")}};
  IngestRunner runner(r.session, r.buffer, r.feed, &r.sink, rs, r.log);
  CHECK(runner.run(RunLimits{}, RunHooks{}) == RunEnd::end_of_input);
  REQUIRE(r.sink.kept.size() == 3);
  CHECK(r.sink.refused == 5);
  CHECK(r.sink.kept[0].value == "a");
  CHECK(r.sink.kept[1].value == "b");
  CHECK(r.sink.kept[2].value == "c");
  CHECK(header(r.sink.kept[0], "kws-source") == std::optional<std::string>("ws://feed/x"));
  CHECK(header(r.sink.kept[0], "kws-connection") == std::optional<std::string>("1"));
  CHECK(header(r.sink.kept[0], "env") == std::optional<std::string>("test"));
  CHECK_FALSE(header(r.sink.kept[0], "kws-downtime-ms"));
  CHECK(header(r.sink.kept[2], "kws-connection") == std::optional<std::string>("2"));
  CHECK(header(r.sink.kept[2], "kws-downtime-ms"));
  CHECK(header(r.sink.kept[2], "kws-frame") == std::optional<std::string>("binary"));
  CHECK(header(r.sink.kept[0], "kws-received-ms") ==
        std::optional<std::string>(std::to_string(r.sink.kept[0].timestamp_ms)));
  CHECK(runner.counters().delivered == 3);
  CHECK(runner.counters().failed == 0);
}

TEST_CASE("runner: failed deliveries are counted; -k applies; headers can be left out") {
  RunnerRig r;
  r.play();
  r.sink.fail_values = {"b"};
  RecordSettings rs;
  rs.topic = "t";
  rs.key = "K";
  rs.ingest_headers = false;
  IngestRunner runner(r.session, r.buffer, r.feed, &r.sink, rs, r.log);
  runner.run(RunLimits{}, RunHooks{});
  CHECK(runner.counters().delivered == 2);
  CHECK(runner.counters().failed == 1);
  REQUIRE(r.sink.kept.size() == 3);
  CHECK(r.sink.kept[0].key == std::optional<std::string>("K"));
  CHECK(r.sink.kept[0].headers.empty());
  // The frame type and the outage marker are not source headers: they stay.
  CHECK(header(r.sink.kept[2], "kws-downtime-ms"));
  CHECK(header(r.sink.kept[2], "kws-frame") == std::optional<std::string>("binary"));
}

TEST_CASE("runner: a stop request closes the feed and still flushes what was read") {
  RunnerRig r;
  r.session.on_feed_open();
  for (int i = 0; i < 100; ++i) {
    std::string p = std::to_string(i);
    r.session.on_feed_message(p, false);
  }
  bool stop = false;
  RunHooks hooks;
  hooks.stop = [&] {
    // The feed reports its close once asked.
    if (!r.feed.closes.empty() && !stop) {
      stop = true;
      r.session.on_feed_closed(FeedEnd::lost, "closed");
    }
    return true;
  };
  RecordSettings rs;
  rs.topic = "t";
  IngestRunner runner(r.session, r.buffer, r.feed, &r.sink, rs, r.log);
  CHECK(runner.run(RunLimits{}, hooks) == RunEnd::interrupted);
  CHECK(r.feed.closes == std::vector<std::string>{"kws is shutting down"});
  CHECK(r.sink.kept.size() == 100);
  CHECK(runner.counters().undelivered == 0);
}

TEST_CASE("runner: marker records are counted apart from feed messages") {
  SessionSettings s;
  s.markers = MarkerMode::record;
  RunnerRig r(s);
  r.play();  // two connections: two markers, three messages
  r.sink.fail_values = {"b", R"({"kws_marker":"connected","connection":1,"downtime_ms":null})"};
  RecordSettings rs;
  rs.topic = "t";
  IngestRunner runner(r.session, r.buffer, r.feed, &r.sink, rs, r.log);
  runner.run(RunLimits{}, RunHooks{});
  REQUIRE(r.sink.kept.size() == 5);
  // Feed messages: a and c delivered, b failed; the markers do not count there.
  CHECK(runner.counters().delivered == 2);
  CHECK(runner.counters().failed == 1);
  CHECK(runner.counters().queued == 3);
  CHECK(runner.counters().markers_delivered == 1);
  CHECK(runner.counters().markers_failed == 1);
  CHECK(runner.counters().undelivered == 0);
}
