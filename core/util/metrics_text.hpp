#pragma once
// A small writer for Prometheus' text exposition format (version 0.0.4):
// prometheus-cpp is not packaged in Debian 12, and kws needs only counters
// and gauges with a few labels.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kws {

class MetricsText {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  // Writes the HELP and TYPE lines for a metric family (once per name).
  MetricsText& family(std::string_view name, std::string_view type, std::string_view help);
  // One sample of the family last declared; label values are escaped.
  MetricsText& sample(std::string_view name, double value, const Labels& labels = {});
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

}  // namespace kws
