#include <catch2/catch.hpp>

#include "core/ingest/backoff.hpp"
#include "core/ingest/units.hpp"

using namespace kws;
using std::chrono::milliseconds;

TEST_CASE("units: durations") {
  CHECK(parse_duration("500ms") == milliseconds(500));
  CHECK(parse_duration("20s") == milliseconds(20000));
  CHECK(parse_duration("1.5s") == milliseconds(1500));
  CHECK(parse_duration("2m") == milliseconds(120000));
  CHECK(parse_duration("1h") == milliseconds(3600000));
  CHECK(parse_duration("3") == milliseconds(3000));
  CHECK(parse_duration("0") == milliseconds(0));
  for (const char* bad : {"", "s", "-1s", "5 s", "5parsecs", "1e3", "ms"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration(bad));
  }
}

TEST_CASE("units: sizes") {
  CHECK(parse_size("1024") == 1024u);
  CHECK(parse_size("64K") == 65536u);
  CHECK(parse_size("16M") == 16u << 20);
  CHECK(parse_size("16MiB") == 16u << 20);
  CHECK(parse_size("1G") == 1u << 30);
  CHECK(parse_size("1.5K") == 1536u);
  for (const char* bad : {"", "M", "-1", "1.3", "12X", "lots"}) {
    INFO(bad);
    CHECK_FALSE(parse_size(bad));
  }
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
