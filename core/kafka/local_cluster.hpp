#pragma once
// The embedded broker with its front end, as `kws broker` and `kws serve`
// (with no broker configured) start it: the mock cluster behind a relay on
// 127.0.0.1:9092. An address in use is an error, the default one too: a
// broker quietly elsewhere would leave `kws send demo` talking to whatever
// holds 9092.
#include <memory>
#include <string>
#include <vector>

#include "core/util/log.hpp"

namespace kws {

struct LocalClusterOptions {
  int broker_count = 1;
  int partitions = 1;                  // of auto-created topics
  std::vector<std::string> topics;     // "name" or "name:partitions", created at start
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 9092;         // 0: any free port
  std::string listen_flag = "-l";      // named in the error when the address is in use
  bool auto_create = true;
};

class LocalCluster {
 public:
  // Throws kws::Error (usage errors for bad topic specs).
  LocalCluster(const LocalClusterOptions& options, LogSink& log);
  ~LocalCluster();
  std::string bootstrap_servers() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kws
