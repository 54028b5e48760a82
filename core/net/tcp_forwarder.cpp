#include "core/net/tcp_forwarder.hpp"

#include <array>
#include <asio.hpp>
#include <thread>

#include "core/error.hpp"

namespace kws {

namespace {

using asio::ip::tcp;

// One accepted connection and its outgoing twin; lives while either
// direction still has a pending operation.
class Relay : public std::enable_shared_from_this<Relay> {
 public:
  Relay(tcp::socket client, asio::io_context& io) : client_(std::move(client)), target_(io) {}

  void start(const tcp::endpoint& target) {
    auto self = shared_from_this();
    target_.async_connect(target, [self](const asio::error_code& ec) {
      if (ec) {
        self->close();
        return;
      }
      asio::error_code ignored;
      self->client_.set_option(tcp::no_delay(true), ignored);
      self->target_.set_option(tcp::no_delay(true), ignored);
      self->pump(self->client_, self->target_, self->upstream_);
      self->pump(self->target_, self->client_, self->downstream_);
    });
  }

 private:
  using Buffer = std::array<char, 64 * 1024>;

  void pump(tcp::socket& from, tcp::socket& to, Buffer& buffer) {
    auto self = shared_from_this();
    from.async_read_some(asio::buffer(buffer), [self, &from, &to, &buffer](const asio::error_code& ec, size_t n) {
      if (ec) {
        self->close();
        return;
      }
      asio::async_write(to, asio::buffer(buffer.data(), n),
                        [self, &from, &to, &buffer](const asio::error_code& wec, size_t) {
                          if (wec) {
                            self->close();
                            return;
                          }
                          self->pump(from, to, buffer);
                        });
    });
  }

  void close() {
    asio::error_code ignored;
    client_.close(ignored);
    target_.close(ignored);
  }

  tcp::socket client_;
  tcp::socket target_;
  Buffer upstream_{};
  Buffer downstream_{};
};

}  // namespace

struct TcpForwarder::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  tcp::endpoint target;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](const asio::error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Relay>(std::move(socket), io)->start(target);
      accept();
    });
  }
};

TcpForwarder::TcpForwarder(const std::string& listen_host, uint16_t listen_port,
                           const std::string& target_host, uint16_t target_port)
    : impl_(std::make_unique<Impl>()) {
  asio::error_code ec;
  auto listen_addr = asio::ip::make_address(listen_host, ec);
  if (ec) throw usage_error("bad listen address '" + listen_host + "': " + ec.message());
  auto target_addr = asio::ip::make_address(target_host, ec);
  if (ec) throw Error("bad forward target '" + target_host + "': " + ec.message());
  impl_->target = tcp::endpoint(target_addr, target_port);

  tcp::endpoint endpoint(listen_addr, listen_port);
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw Error("cannot listen on " + listen_host + ":" + std::to_string(listen_port) + ": " + ec.message());
  }
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

TcpForwarder::~TcpForwarder() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t TcpForwarder::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace kws
