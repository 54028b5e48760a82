#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct SendOptions {
  ConnectionOptions connection;
  std::string topic;
  std::vector<std::string> messages;
  std::string delimiter = "\\n";
  std::string key_delimiter;
  std::string key;
  bool key_given = false;
  std::vector<std::string> headers;
  int partition = -1;
  bool json = false;
  bool any_partition = false;
  std::string create_like;  // create `topic` with this topic's partition count if it is missing
  std::vector<std::string> files;
  bool print_offsets = false;
  BridgeFlags bridge;  // with a ws:// or wss:// URL first
};

extern const CommandDoc send_doc;
CLI::App* register_send(CLI::App& parent, SendOptions& options);
int run_send(const SendOptions& options);

}  // namespace kws::cmd
