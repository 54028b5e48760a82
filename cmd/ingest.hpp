#pragma once
#include "cmd/common.hpp"

namespace kws::cmd {

struct IngestOptions {
  ConnectionOptions connection;
  // What the flags of ingest.* settings gave (--buffer-bytes, --ping-interval,
  // ...), as typed; run_ingest resolves them against KWS_INGEST_*, the config
  // file and the defaults of the key table (core/settings.cpp).
  FlagValues settings;
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
  std::string bearer;
  std::string bearer_file;
  std::vector<std::string> ws_headers;
  std::string origin;
  std::vector<std::string> protocols;
  // TLS.
  std::string ca_file, cert_file, key_file;
  bool insecure = false;
  // Reconnect and liveness.
  std::string heartbeat;
  std::string heartbeat_reply;
  std::string answer_ping;
  std::string answer_with;
  bool retry_permanent = false;
  // Frames and records.
  std::string key_field;
  std::vector<std::string> filters;
  std::string seq_field;
  std::string markers = "headers";
  bool no_source_headers = false;
  // Buffering and delivery.
  unsigned long long count = 0;
  std::string duration = "0";  // per run, so no setting; 0: no limit
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
