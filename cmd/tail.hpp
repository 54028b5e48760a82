#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct TailOptions {
  ConnectionOptions connection;
  std::vector<std::string> topics;
  std::string offset;
  bool offset_given = false;  // -o '' is an error, not the default
  bool exit_at_end = false;
  int64_t count = -1;
  int partition = -1;
  std::string group;
  std::string format;
  bool format_given = false;  // -f '' is an error, not the default
  bool json = false;
  BridgeFlags bridge;  // with a ws:// or wss:// URL first
};

extern const CommandDoc tail_doc;
CLI::App* register_tail(CLI::App& parent, TailOptions& options);
int run_tail(const TailOptions& options);

}  // namespace kws::cmd
