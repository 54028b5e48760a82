#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  std::string client_buffer = "4M";
  std::string slow_client = "close";
  double ping_interval = 20;
  double idle_timeout = 60;
  std::string max_frame = "1M";
  int max_connections = 10000;
  std::string ring_bytes = "8M";
  int max_group_sessions = 64;
  int max_catchups = 32;
  std::string log_format = "text";
  // Embedded broker only (no -b, KWS_BROKERS or config file).
  std::vector<std::string> topics;
  int partitions = 1;
  std::string broker_listen = "127.0.0.1:9092";
  bool broker_listen_given = false;
  ConnectionOptions connection;
};

extern const CommandDoc serve_doc;
CLI::App* register_serve(CLI::App& parent, ServeOptions& options);
int run_serve(const ServeOptions& options);

// "4M", "512k", "1G", "1000" -> bytes; throws a usage error naming `flag`.
size_t parse_byte_size(const std::string& text, const std::string& flag);

}  // namespace kws::cmd
