#pragma once
// What every Kafka adapter needs from the command that created it: where to
// report, when to give up, how long to wait. No librdkafka types, so code
// outside core/kafka/ can build one.
#include <chrono>

#include "core/util/log.hpp"

namespace kws {

// How long to wait for brokers and metadata, and how long every broker may
// be unreachable mid-run, unless --timeout says otherwise.
inline constexpr std::chrono::milliseconds kDefaultKafkaTimeout{10000};

struct KafkaContext {
  LogSink* log = nullptr;  // required; outlives the adapter
  StopCheck should_stop;   // empty: never asked to stop
  int verbosity = 0;       // >0: librdkafka's own log lines go to `log` as debug events
  std::chrono::milliseconds timeout = kDefaultKafkaTimeout;

  bool stopping() const { return should_stop && should_stop(); }
};

}  // namespace kws
