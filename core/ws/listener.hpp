#pragma once
// Accepting connections for kws serve: the listening socket, the accept
// loop, and what happens at the process's descriptor limit. A spare
// descriptor is kept so that, even out of descriptors, a client (a health
// check, say) gets a 503 and a closed socket instead of a hang in the
// kernel's backlog.
#include <asio.hpp>
#include <functional>
#include <string>

#include "core/util/log.hpp"

namespace kws::ws {

// Answers an accepted socket `status` with `why` as the body in one
// non-blocking write, without reading its request, and closes it; with
// `plain` false (a TLS port, where plain text means nothing) it only closes.
void refuse_socket(asio::ip::tcp::socket& socket, int status, const std::string& why, bool plain);

class Listener {
 public:
  // Takes each accepted socket; returns false when the server is full (the
  // listener then answers 503 and closes it).
  using OnSocket = std::function<bool(asio::ip::tcp::socket&)>;

  Listener(asio::io_context& io, LogSink& log);
  ~Listener();

  // Binds; throws kws::Error when it cannot. Then address() is known.
  void listen(const std::string& host, uint16_t port);
  std::string address() const { return address_; }

  void start(OnSocket on_socket);
  void close();
  // False for a TLS port: a refused client is closed without an answer.
  void set_plain_refusals(bool answer) { plain_refusals_ = answer; }

 private:
  void accept();
  void refuse(asio::ip::tcp::socket& socket, const char* why);
  void accept_with_spare();

  asio::io_context& io_;
  LogSink& log_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer pause_;  // out of descriptors even with the spare: accept again later
  OnSocket on_socket_;
  std::string address_;
  int spare_fd_ = -1;
  bool error_logged_ = false;
  bool plain_refusals_ = true;
};

}  // namespace kws::ws
