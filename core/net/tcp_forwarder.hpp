#pragma once
// A plain TCP relay: every connection accepted on the listen address is
// piped, byte for byte, to a target address. The embedded broker uses it to
// be reachable on the well-known localhost:9092, since librdkafka's mock
// cluster always binds random ports.
#include <cstdint>
#include <memory>
#include <string>

namespace kws {

class TcpForwarder {
 public:
  // Binds at once; throws kws::Error (e.g. "address already in use").
  // listen_port 0 picks a free port.
  TcpForwarder(const std::string& listen_host, uint16_t listen_port, const std::string& target_host,
               uint16_t target_port);
  ~TcpForwarder();
  TcpForwarder(const TcpForwarder&) = delete;
  TcpForwarder& operator=(const TcpForwarder&) = delete;

  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kws
