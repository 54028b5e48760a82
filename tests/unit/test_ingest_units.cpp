#include <catch2/catch.hpp>

#include "core/ingest/backoff.hpp"
#include "core/ingest/units.hpp"

using namespace kws;
using std::chrono::milliseconds;

// Reading durations and sizes moved to the settings table; its tests
// (test_core_settings.cpp) hold every form these parsers took.
TEST_CASE("units: durations in messages") {
  CHECK(format_duration(milliseconds(250)) == "250ms");
  CHECK(format_duration(milliseconds(1500)) == "1.5s");
  CHECK(format_duration(milliseconds(180000)) == "3.0m");
}

TEST_CASE("units: source label drops credentials and the query") {
  CHECK(source_label("wss://user:pw@feed.example:443/ws/v2?token=abc#x") == "wss://feed.example:443/ws/v2");
  CHECK(source_label("ws://127.0.0.1:8080") == "ws://127.0.0.1:8080");
  CHECK(source_label("ws://h/p@q") == "ws://h/p@q");
}

TEST_CASE("backoff: full jitter under a ceiling that grows to the max and resets") {
  Backoff b({milliseconds(100), milliseconds(1000), 2.0}, 42);
  std::vector<int64_t> ceilings;
  for (int i = 0; i < 6; ++i) {
    int64_t ceiling = b.ceiling().count();
    ceilings.push_back(ceiling);
    for (int k = 0; k < 1; ++k) {
      auto d = b.next();
      CHECK(d.count() >= 0);
      CHECK(d.count() <= ceiling);
    }
  }
  CHECK(ceilings == std::vector<int64_t>{100, 200, 400, 800, 1000, 1000});
  b.reset();
  CHECK(b.ceiling() == milliseconds(100));
}

TEST_CASE("backoff: delays are spread over the whole range (full jitter, not +-25%)") {
  Backoff b({milliseconds(1000), milliseconds(1000), 2.0}, 7);
  int low = 0, high = 0;
  for (int i = 0; i < 1000; ++i) {
    auto d = b.next().count();
    if (d < 250) ++low;
    if (d > 750) ++high;
  }
  CHECK(low > 150);
  CHECK(high > 150);
}
