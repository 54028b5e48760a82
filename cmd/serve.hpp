#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct ServeOptions {
  // What the flags of serve.* settings gave (--listen, --client-buffer, ...),
  // as typed; run_serve resolves them against KWS_SERVE_*, the config file
  // and the defaults of the key table (core/settings.cpp).
  FlagValues settings;
  int max_group_sessions = 64;
  int max_catchups = 32;
  int64_t rewind_offsets = 20000;
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

}  // namespace kws::cmd
