#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct BrokerOptions {
  int broker_count = 1;
  int partitions = 1;
  std::vector<std::string> topics;
  std::string listen = "127.0.0.1:9092";
  bool no_auto_create = false;
};

extern const CommandDoc broker_doc;
CLI::App* register_broker(CLI::App& parent, BrokerOptions& options);
int run_broker(const BrokerOptions& options);

}  // namespace kws::cmd
