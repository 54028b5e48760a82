#pragma once
// A minimal HTTP endpoint that answers every GET with one text document
// (Prometheus metrics for `kws ingest --metrics`). One connection at a time,
// on its own thread; the document is a snapshot the caller replaces, so the
// serving thread never touches the caller's state.
#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace kws {

class TextEndpoint {
 public:
  // Listens on host:port (port 0: any free one). Throws kws::Error.
  TextEndpoint(const std::string& host, int port, std::string content_type);
  ~TextEndpoint();
  TextEndpoint(const TextEndpoint&) = delete;
  TextEndpoint& operator=(const TextEndpoint&) = delete;

  int port() const { return port_; }
  void set(std::string document);

 private:
  void run();

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::string content_type_;
  std::mutex mutex_;
  std::string document_;
  std::thread thread_;
};

}  // namespace kws
