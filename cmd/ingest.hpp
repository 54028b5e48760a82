#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct IngestOptions {
  ConnectionOptions connection;
  std::string url;
  std::string topic;
  // Kafka side, as kws send.
  std::vector<std::string> headers;
  int partition = -1;
  std::string key;
  bool key_given = false;
  // Open messages and handshake.
  std::vector<std::string> subscribe;
  std::string subscribe_file;
  std::string await_reply;
  std::string await_timeout = "10s";
  std::string bearer;
  std::string bearer_file;
  std::vector<std::string> ws_headers;
  std::string origin;
  std::vector<std::string> protocols;
  // TLS.
  std::string ca_file, cert_file, key_file;
  bool insecure = false;
  // Reconnect and liveness.
  std::string backoff_initial = "500ms";
  std::string backoff_max = "30s";
  double backoff_multiplier = 2.0;
  long long max_retries = -1;
  std::string ping_interval = "20s";
  std::string pong_timeout = "10s";
  std::string stale_after = "0";
  std::string heartbeat;
  std::string heartbeat_interval = "0";
  std::string heartbeat_reply;
  std::string answer_ping;
  std::string answer_with;
  // Frames and records.
  std::string max_message_size = "16M";
  std::string key_field;
  std::vector<std::string> filters;
  std::string seq_field;
  std::string markers = "headers";
  bool no_source_headers = false;
  // Buffering and delivery.
  unsigned long long buffer_messages = 100000;
  std::string buffer_bytes = "64M";
  std::string when_full = "block";
  unsigned long long count = 0;
  std::string duration = "0";
  // Observability.
  std::string metrics;
  bool tee = false;
  bool dry_run = false;
  bool quiet = false;
};

extern const CommandDoc ingest_doc;
CLI::App* register_ingest(CLI::App& parent, IngestOptions& options);
int run_ingest(const IngestOptions& options);

}  // namespace kws::cmd
