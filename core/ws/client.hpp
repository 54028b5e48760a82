#pragma once
// kws ingest's WebSocket connection (ws:// and wss://) behind the plain
// FeedConnection interface, so websocketpp's slow headers stay in client.cpp.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/feed_io.hpp"
#include "core/util/log.hpp"

namespace kws {

struct TlsOptions {
  std::string ca_file;    // "": the system's CA store
  std::string cert_file;  // client certificate (PEM chain), with key_file
  std::string key_file;
  bool insecure = false;  // no certificate or host name check
};

struct FeedClientSettings {
  std::string url;                                          // ws://... or wss://...
  std::vector<std::pair<std::string, std::string>> headers;  // handshake headers, in order
  std::string origin;
  std::vector<std::string> protocols;                       // Sec-WebSocket-Protocol offers
  TlsOptions tls;
  std::chrono::milliseconds ping_interval{20000};  // 0: no pings
  std::chrono::milliseconds pong_timeout{10000};
  std::chrono::milliseconds open_timeout{10000};   // TCP + TLS + HTTP upgrade
  uint64_t max_message_size = 16ull << 20;
  std::string peer = "feed";  // what the server is called in messages ("the feed answered HTTP 401 ...")
};

// Starts the client's I/O thread (no connection yet: FeedConnection::connect
// makes one). Throws kws::Error (usage) for a URL that is not ws:// or wss://
// and kws::Error for TLS files that cannot be loaded. `listener` and `log`
// outlive the client.
std::unique_ptr<FeedConnection> make_feed_client(const FeedClientSettings& settings, FeedListener& listener,
                                                 LogSink& log);

}  // namespace kws
