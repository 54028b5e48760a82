#pragma once
// What kws bench reads about the bridge process it measures (--pid), from
// /proc: memory, CPU time, and its TCP connections to the Kafka brokers.
// Linux only, like the rest of the bench.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/proc_net.hpp"

namespace kws::bench {

struct MemorySample {
  uint64_t rss_kb = 0;  // VmRSS
  uint64_t hwm_kb = 0;  // VmHWM: the peak RSS over the process's life
};
// Nothing when the process is gone or /proc is not readable.
std::optional<MemorySample> read_memory(int pid);
// User + system CPU seconds of the whole process (all threads).
std::optional<double> read_cpu_seconds(int pid);

// Established TCP connections owned by `pid` whose remote port is in
// `ports` (the brokers'), or nothing when /proc cannot be read. Matching the
// port alone is enough on a bench host; a bridge that also talks to something
// else on a broker's port would be over-counted.
std::optional<size_t> count_connections_to(int pid, const std::set<uint16_t>& ports);

}  // namespace kws::bench
