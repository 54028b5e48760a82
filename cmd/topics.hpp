#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct TopicsOptions {
  ConnectionOptions connection;
  std::vector<std::string> topics;
  bool json = false;
  bool names_only = false;  // --names: one metadata request, no offsets
  bool all_groups = false;
  std::vector<std::string> groups;
  bool create = false;  // TOPIC arguments are NAME[:PARTITIONS] to create
  bool remove = false;  // TOPIC arguments are to be deleted
  int replication = -1;
  std::vector<std::string> configs;  // KEY=VALUE
};

extern const CommandDoc topics_doc;
CLI::App* register_topics(CLI::App& parent, TopicsOptions& options);
int run_topics(const TopicsOptions& options);

}  // namespace kws::cmd
