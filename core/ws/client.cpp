// The only file that includes websocketpp's client side: one translation
// unit, both transports (plain and TLS) instantiated from one template.
#include "core/ws/client.hpp"

#include <openssl/ssl.h>

#include <openssl/x509v3.h>

#include <thread>
#include <type_traits>
#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_client.hpp>
#include <websocketpp/uri.hpp>

#include "core/util/error.hpp"

namespace kws {

namespace {

using websocketpp::connection_hdl;
using SslContext = std::shared_ptr<asio::ssl::context>;

// Loads every TLS file up front, so a bad --ca or --cert is a clear error at
// start, not a failure inside the I/O thread.
SslContext make_tls_context(const TlsOptions& tls, const std::string& host) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  auto load = [](const std::string& what, const std::string& path, auto&& fn) {
    asio::error_code ec;
    fn(ec);
    if (ec) throw Error(what + " " + path + ": " + ec.message());
  };
  if (tls.insecure) {
    ctx->set_verify_mode(asio::ssl::verify_none);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_peer);
    if (!tls.ca_file.empty()) {
      load("--ca", tls.ca_file, [&](asio::error_code& ec) { ctx->load_verify_file(tls.ca_file, ec); });
    } else {
      load("the system CA store", "", [&](asio::error_code& ec) { ctx->set_default_verify_paths(ec); });
    }
    // OpenSSL checks the name itself, so a mismatch is reported as such by
    // SSL_get_verify_result (asio's callback would only say "failed").
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx->native_handle());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    asio::error_code ec;
    asio::ip::make_address(host, ec);
    int ok = ec ? X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size())
                : X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    if (ok != 1) throw Error("cannot check the host name '" + host + "' of the feed's certificate");
  }
  if (!tls.cert_file.empty()) {
    load("--client-cert", tls.cert_file, [&](asio::error_code& ec) { ctx->use_certificate_chain_file(tls.cert_file, ec); });
    const std::string& key = tls.key_file.empty() ? tls.cert_file : tls.key_file;
    load("--client-key", key, [&](asio::error_code& ec) { ctx->use_private_key_file(key, asio::ssl::context::pem, ec); });
  }
  return ctx;
}

struct TlsPart {
  static void setup(websocketpp::client<websocketpp::config::asio_tls_client>& endpoint, SslContext ctx) {
    endpoint.set_tls_init_handler([ctx](connection_hdl) { return ctx; });
  }
};

template <typename Config>
class Client : public FeedConnection {
 public:
  using Endpoint = websocketpp::client<Config>;
  using ConnectionPtr = typename Endpoint::connection_ptr;
  using MessagePtr = typename Endpoint::message_ptr;

  Client(const FeedClientSettings& settings, FeedListener& listener, LogSink& log, SslContext tls)
      : settings_(settings), listener_(listener), log_(log) {
    endpoint_.clear_access_channels(websocketpp::log::alevel::all);
    endpoint_.clear_error_channels(websocketpp::log::elevel::all);
    endpoint_.init_asio();
    endpoint_.set_user_agent("kws/" KWS_VERSION);
    endpoint_.start_perpetual();
    if constexpr (std::is_same_v<Config, websocketpp::config::asio_tls_client>) TlsPart::setup(endpoint_, tls);
    endpoint_.set_open_handler([this](connection_hdl h) { on_open(h); });
    endpoint_.set_fail_handler([this](connection_hdl h) { on_fail(h); });
    endpoint_.set_close_handler([this](connection_hdl h) { on_close(h); });
    endpoint_.set_message_handler([this](connection_hdl h, MessagePtr m) { on_message(h, m); });
    endpoint_.set_pong_handler([this](connection_hdl h, std::string) {
      if (current(h)) pong_timer_->cancel();
      ping_outstanding_ = false;
    });
    ping_timer_ = std::make_unique<asio::steady_timer>(endpoint_.get_io_service());
    pong_timer_ = std::make_unique<asio::steady_timer>(endpoint_.get_io_service());
    thread_ = std::thread([this] { endpoint_.run(); });
  }

  ~Client() override {
    post([this] {
      ping_timer_->cancel();
      pong_timer_->cancel();
      if (con_) {
        reported_ = true;  // nobody listens any more
        con_->terminate(websocketpp::lib::error_code());
      }
      endpoint_.stop_perpetual();
    });
    // The terminate above shuts the socket down asynchronously; give it a
    // moment, then stop the loop whatever remains.
    for (int i = 0; i < 20 && !endpoint_.stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    endpoint_.stop();
    if (thread_.joinable()) thread_.join();
  }

  void connect() override {
    post([this] { do_connect(); });
  }

  void send_text(const std::string& text) override {
    post([this, text] {
      if (!con_ || !open_) return;
      websocketpp::lib::error_code ec = con_->send(text, websocketpp::frame::opcode::text);
      if (ec) log_.debug("could not send to the feed: " + ec.message());
    });
  }

  void close(const std::string& why) override {
    post([this, why] {
      // A second request must not cut a close handshake already under way.
      if (!con_ || reported_ || !close_reason_.empty()) return;
      close_reason_ = why;
      websocketpp::lib::error_code ec;
      if (open_) {
        con_->close(websocketpp::close::status::going_away, why.substr(0, 120), ec);
        if (!ec) return;
      }
      con_->terminate(websocketpp::lib::error_code());
    });
  }

  void pause_reading() override {
    post([this] {
      if (paused_) return;
      paused_ = true;
      // The pong may now sit unread in the socket: not the feed's fault.
      pong_timer_->cancel();
      ping_outstanding_ = false;
      if (con_ && open_) con_->pause_reading();
    });
  }

  void resume_reading() override {
    post([this] {
      if (!paused_) return;
      paused_ = false;
      if (con_ && open_) con_->resume_reading();
    });
  }

 private:
  template <typename F>
  void post(F&& fn) {
    asio::post(endpoint_.get_io_service(), std::forward<F>(fn));
  }

  bool current(connection_hdl h) const { return con_ && !h.owner_before(con_) && !con_.owner_before(h) && !reported_; }

  void do_connect() {
    websocketpp::lib::error_code ec;
    ConnectionPtr con = endpoint_.get_connection(settings_.url, ec);
    if (ec) {
      listener_.on_feed_closed(FeedEnd::failed, "cannot use " + settings_.url + ": " + ec.message());
      return;
    }
    for (const auto& [name, value] : settings_.headers) con->append_header(name, value);
    if (!settings_.origin.empty()) con->replace_header("Origin", settings_.origin);
    for (const auto& p : settings_.protocols) con->add_subprotocol(p, ec);
    con->set_max_message_size(static_cast<size_t>(settings_.max_message_size));
    con->set_open_handshake_timeout(static_cast<long>(settings_.open_timeout.count()));
    con->set_close_handshake_timeout(2000);
    con_ = con;
    open_ = false;
    reported_ = false;
    close_reason_.clear();
    endpoint_.connect(con);
  }

  void on_open(connection_hdl h) {
    if (!current(h)) return;
    open_ = true;
    if (paused_) con_->pause_reading();
    schedule_ping();
    listener_.on_feed_open();
  }

  std::string failure_text() {
    if constexpr (std::is_same_v<Config, websocketpp::config::asio_tls_client>) {
      long verify = SSL_get_verify_result(con_->get_socket().native_handle());
      if (verify != X509_V_OK) {
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify) +
               (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH
                    ? ""
                    : " (is --ca right?)");
      }
    }
    std::string why = con_->get_ec().message();
    auto transport = con_->get_transport_ec();
    if (transport && transport != con_->get_ec()) why += ": " + transport.message();
    int status = static_cast<int>(con_->get_response_code());
    if (status != 0 && status != 101) {
      why = "the feed answered HTTP " + std::to_string(status) + " " + con_->get_response_msg();
    }
    return why;
  }

  void on_fail(connection_hdl h) {
    if (!current(h)) return;
    std::string why = close_reason_.empty() ? failure_text() : close_reason_;
    finish();
    listener_.on_feed_closed(FeedEnd::failed, why);
  }

  void on_close(connection_hdl h) {
    if (!current(h)) return;
    FeedEnd end = FeedEnd::lost;
    std::string why;
    if (con_->get_local_close_code() == websocketpp::close::status::message_too_big) {
      end = FeedEnd::too_big;
      why = "the feed sent a message over " + std::to_string(settings_.max_message_size) + " bytes";
    } else if (!close_reason_.empty()) {
      why = close_reason_;
    } else if (con_->get_remote_close_code() != websocketpp::close::status::abnormal_close &&
               con_->get_remote_close_code() != websocketpp::close::status::no_status) {
      why = "closed by the feed (code " + std::to_string(con_->get_remote_close_code());
      if (!con_->get_remote_close_reason().empty()) why += ": " + con_->get_remote_close_reason();
      why += ")";
    } else {
      why = "connection ended: " + con_->get_ec().message();
    }
    finish();
    listener_.on_feed_closed(end, why);
  }

  void finish() {
    reported_ = true;
    open_ = false;
    ping_outstanding_ = false;
    ping_timer_->cancel();
    pong_timer_->cancel();
  }

  void on_message(connection_hdl h, MessagePtr msg) {
    if (!current(h)) return;
    listener_.on_feed_message(msg->get_raw_payload(), msg->get_opcode() == websocketpp::frame::opcode::binary);
  }

  // websocketpp's own pong timer restarts with every ping, so it never fires
  // when pings come more often than the timeout; this one runs from the
  // first unanswered ping.
  void start_pong_timer() {
    if (settings_.pong_timeout.count() <= 0 || ping_outstanding_) return;
    ping_outstanding_ = true;
    pong_timer_->expires_after(settings_.pong_timeout);
    ConnectionPtr con = con_;
    pong_timer_->async_wait([this, con](const asio::error_code& ec) {
      if (ec || con != con_ || !open_ || paused_ || reported_) return;
      close_reason_ = "no pong within " + std::to_string(settings_.pong_timeout.count()) + " ms";
      // A peer that does not answer pings will not answer a close either.
      con_->terminate(websocketpp::lib::error_code());
    });
  }

  void schedule_ping() {
    if (settings_.ping_interval.count() <= 0) return;
    ping_timer_->expires_after(settings_.ping_interval);
    ConnectionPtr con = con_;
    ping_timer_->async_wait([this, con](const asio::error_code& ec) {
      if (ec || con != con_ || !open_) return;
      if (!paused_) {
        websocketpp::lib::error_code pec;
        con_->ping("kws", pec);
        if (!pec) start_pong_timer();
      }
      schedule_ping();
    });
  }

  FeedClientSettings settings_;
  FeedListener& listener_;
  LogSink& log_;
  Endpoint endpoint_;
  std::unique_ptr<asio::steady_timer> ping_timer_;
  std::unique_ptr<asio::steady_timer> pong_timer_;
  std::thread thread_;
  // I/O thread only.
  ConnectionPtr con_;
  bool open_ = false;
  bool reported_ = false;
  bool paused_ = false;
  bool ping_outstanding_ = false;
  std::string close_reason_;
};

}  // namespace

std::unique_ptr<FeedConnection> make_feed_client(const FeedClientSettings& settings, FeedListener& listener,
                                                 LogSink& log) {
  websocketpp::uri uri(settings.url);
  if (!uri.get_valid() || (uri.get_scheme() != "ws" && uri.get_scheme() != "wss")) throw usage_error("'" + settings.url + "' is not a ws:// or wss:// URL");
  if (uri.get_secure()) {
    SslContext ctx = make_tls_context(settings.tls, uri.get_host());
    if (settings.tls.insecure) log.warning("--insecure: the feed's certificate and host name are not checked");
    return std::make_unique<Client<websocketpp::config::asio_tls_client>>(settings, listener, log, ctx);
  }
  if (!settings.tls.ca_file.empty() || !settings.tls.cert_file.empty() || settings.tls.insecure) {
    throw usage_error("--ca, --client-cert, --client-key and --insecure apply to wss:// URLs only");
  }
  return std::make_unique<Client<websocketpp::config::asio_client>>(settings, listener, log, nullptr);
}

}  // namespace kws
