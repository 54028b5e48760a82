#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct BenchOptions {
  ConnectionOptions connection;
  std::string url;
  std::string ca_file;
  bool insecure = false;
  std::string topic = "kws-bench";
  int clients = 100;
  double rate = 1000;
  double duration = 10;
  int size = 150;
  int idle = 0;
  int key_filters = 0;
  bool binary = false;
  std::string protocol;  // --protocol; empty: kafka-text, or mqtt for an mqtt:// URL
  int mqtt_publish = 0;  // --mqtt-publish N
  int window = 10;
  bool no_subscribe = false;
  bool json = false;
  int pid = 0;
  double settle = 1;
  double drain = 10;
  double connect_timeout = 60;
};

extern const CommandDoc bench_doc;
CLI::App* register_bench(CLI::App& parent, BenchOptions& options);
int run_bench(const BenchOptions& options);

}  // namespace kws::cmd
