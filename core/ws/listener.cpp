#include "core/ws/listener.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "core/util/error.hpp"
#include "core/ws/protocol.hpp"

namespace kws::ws {

namespace {

int open_spare() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

Listener::Listener(asio::io_context& io, LogSink& log) : io_(io), log_(log), acceptor_(io), pause_(io) {
  spare_fd_ = open_spare();
}

Listener::~Listener() {
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

void Listener::listen(const std::string& host, uint16_t port) {
  std::error_code ec;
  asio::ip::tcp::endpoint where(asio::ip::make_address(host, ec), port);
  if (ec) throw usage_error("bad listen address '" + host + "': " + ec.message());
  acceptor_.open(where.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(where, ec);
  if (!ec) acceptor_.listen(4096, ec);
  // The accept of a client taken with the spare descriptor must never wait:
  // it runs on the I/O thread.
  if (!ec) acceptor_.non_blocking(true, ec);
  if (ec) throw Error("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  asio::ip::tcp::endpoint local = acceptor_.local_endpoint(ec);
  std::string bound = local.address().to_string();
  if (local.address().is_v6()) bound = "[" + bound + "]";
  address_ = bound + ":" + std::to_string(local.port());
}

void Listener::start(OnSocket on_socket) {
  on_socket_ = std::move(on_socket);
  accept();
}

void Listener::close() {
  std::error_code ec;
  acceptor_.close(ec);
  pause_.cancel();
}

void refuse_socket(asio::ip::tcp::socket& socket, int status, const std::string& why, bool plain) {
  // One non-blocking write: the answer fits any socket buffer, and a client
  // that does not read it loses nothing it could use.
  std::error_code ec;
  if (!plain) {
    socket.close(ec);
    return;
  }
  socket.non_blocking(true, ec);
  const std::string answer = http_response(status, "text/plain; charset=utf-8", why + "\n");
  socket.write_some(asio::buffer(answer), ec);
  // Closing with unread bytes sends a reset, which may make the client's
  // kernel drop the answer before it is read: read what the request already
  // brought (usually all of it, as it came with the connection) first.
  char discard[4096];
  for (int i = 0; i < 16 && !ec; ++i) socket.read_some(asio::buffer(discard), ec);
  socket.close(ec);
}

void Listener::refuse(asio::ip::tcp::socket& socket, const char* why) { refuse_socket(socket, 503, why, plain_refusals_); }

void Listener::accept() {
  acceptor_.async_accept([this](const std::error_code& ec, asio::ip::tcp::socket socket) {
    if (!acceptor_.is_open() || ec == asio::error::operation_aborted) return;
    if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space || ec.value() == ENFILE ||
        ec.value() == ENOMEM) {
      accept_with_spare();
      return;
    }
    if (ec) {
      // Another transient failure (a connection reset while queued): go on.
      accept();
      return;
    }
    error_logged_ = false;
    if (!on_socket_(socket)) refuse(socket, "too many connections; try again later");
    accept();
  });
}

// Out of descriptors: give the spare back, take the waiting client with it,
// tell it why, and keep the spare for the next time.
void Listener::accept_with_spare() {
  if (!error_logged_) {
    error_logged_ = true;
    log_.warning("out of file descriptors: refusing new connections with 503 until some close");
  }
  if (spare_fd_ >= 0) {
    ::close(spare_fd_);
    spare_fd_ = -1;
    std::error_code ec;
    asio::ip::tcp::socket socket(io_);
    acceptor_.accept(socket, ec);
    if (!ec) refuse(socket, "out of file descriptors; try again later");
    spare_fd_ = open_spare();
    if (spare_fd_ >= 0 && (ec == asio::error::would_block || ec == asio::error::try_again)) {
      // Linux says EMFILE before it looks for a waiting client, so nobody
      // was waiting: accepting again at once would only fail again. Wait
      // until a client arrives.
      acceptor_.async_wait(asio::socket_base::wait_read, [this](const std::error_code& e) {
        if (!e && acceptor_.is_open()) accept();
      });
      return;
    }
  }
  if (spare_fd_ >= 0) {
    accept();
    return;
  }
  // Not even the spare could be had back: wait instead of spinning.
  pause_.expires_after(std::chrono::milliseconds(100));
  pause_.async_wait([this](const std::error_code& e) {
    if (!e) accept();
  });
}

}  // namespace kws::ws
