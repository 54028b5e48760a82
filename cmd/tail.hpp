#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct TailOptions {
  ConnectionOptions connection;
  std::vector<std::string> topics;
  std::string offset;  // "" = not given
  bool exit_at_end = false;
  int64_t count = -1;
  int partition = -1;
  std::string group;
  std::string format;  // "" = value per line
  bool json = false;
};

extern const CommandDoc tail_doc;
CLI::App* register_tail(CLI::App& parent, TailOptions& options);
int run_tail(const TailOptions& options);

}  // namespace kws::cmd
