#include <catch2/catch.hpp>

#include "core/util/metrics_text.hpp"

using namespace kws;

TEST_CASE("metrics_text: families, labels with escapes, integers and fractions") {
  MetricsText m;
  m.family("kws_x_total", "counter", "Things\nand \\ more").sample("kws_x_total", 42);
  m.family("kws_lag", "gauge", "Lag").sample("kws_lag", 1.5, {{"topic", "a\"b\\c\nd"}, {"p", "0"}});
  CHECK(m.text() ==
        "# HELP kws_x_total Things\\nand \\\\ more\n"
        "# TYPE kws_x_total counter\n"
        "kws_x_total 42\n"
        "# HELP kws_lag Lag\n"
        "# TYPE kws_lag gauge\n"
        "kws_lag{topic=\"a\\\"b\\\\c\\nd\",p=\"0\"} 1.5\n");
}
