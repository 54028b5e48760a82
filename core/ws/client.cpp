// The only file that includes websocketpp's client side: one translation
// unit, both transports (plain and TLS) instantiated from one template.
#include "core/ws/client.hpp"

#include <openssl/ssl.h>

#include <openssl/x509v3.h>

#include <cstring>
#include <functional>
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

// The first record header a TLS peer sent, as OpenSSL read it: a server
// that speaks plain text instead of TLS shows here ("HTTP/"), which the
// handshake's error (websocketpp keeps only "TLS handshake failed") hides.
struct TlsPeek {
  bool seen = false;
  unsigned char header[5] = {};
  size_t size = 0;

  // A TLS record starts with a content type from 20 (change_cipher_spec) to
  // 24 (heartbeat) and major version 3.
  bool tls() const { return seen && size >= 2 && header[0] >= 20 && header[0] <= 24 && header[1] == 3; }
  bool plain() const { return seen && !tls(); }
  // The bytes for a message: printable ones as they are, others as \xNN.
  std::string shown() const {
    std::string out;
    for (size_t i = 0; i < size; ++i) {
      unsigned char c = header[i];
      if (c >= 0x20 && c < 0x7f) {
        out += static_cast<char>(c);
      } else {
        char hex[5];
        snprintf(hex, sizeof hex, "\\x%02x", c);
        out += hex;
      }
    }
    return out;
  }
};

// OpenSSL's message callback (SSL_CTX_set_msg_callback); its argument is the
// connection's TlsPeek (SSL_set_msg_callback_arg).
extern "C" void peek_tls_record(int write_p, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
  if (write_p || content_type != SSL3_RT_HEADER || !arg) return;
  auto* peek = static_cast<TlsPeek*>(arg);
  if (peek->seen) return;
  peek->seen = true;
  peek->size = std::min(len, sizeof peek->header);
  std::memcpy(peek->header, buf, peek->size);
}

// Whether host:port answers a TLS handshake. A ws:// URL that points at a
// TLS port meets a server that hangs up on the plain HTTP request without
// a word; this tells that apart from a feed that hung up for its own
// reasons. Calls `done` once, on the I/O thread, within `limit`.
class TlsProbe : public std::enable_shared_from_this<TlsProbe> {
 public:
  TlsProbe(asio::io_context& io, std::string host, std::string port, std::function<void(bool)> done)
      : host_(std::move(host)),
        port_(std::move(port)),
        done_(std::move(done)),
        resolver_(io),
        context_(asio::ssl::context::tls_client),
        stream_(io, context_),
        timer_(io) {}

  void start(std::chrono::milliseconds limit) {
    context_.set_verify_mode(asio::ssl::verify_none);  // any certificate at all says "TLS"
    SSL_CTX_set_msg_callback(context_.native_handle(), peek_tls_record);
    SSL_set_msg_callback_arg(stream_.native_handle(), &peek_);
    SSL_set_tlsext_host_name(stream_.native_handle(), host_.c_str());
    auto self = shared_from_this();
    timer_.expires_after(limit);
    timer_.async_wait([self](const asio::error_code& ec) {
      if (!ec) self->finish(false);
    });
    resolver_.async_resolve(host_, port_, [self](const asio::error_code& ec, asio::ip::tcp::resolver::results_type r) {
      if (ec) return self->finish(false);
      asio::async_connect(self->stream_.lowest_layer(), r, [self](const asio::error_code& ec, const asio::ip::tcp::endpoint&) {
        if (ec) return self->finish(false);
        self->stream_.async_handshake(asio::ssl::stream_base::client, [self](const asio::error_code& ec) {
          // An alert is an answer in TLS too (a server that wants SNI or a
          // client certificate).
          self->finish(!ec || self->peek_.tls());
        });
      });
    });
  }

 private:
  void finish(bool speaks_tls) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    resolver_.cancel();
    asio::error_code ignored;
    stream_.lowest_layer().close(ignored);
    done_(speaks_tls);
  }

  std::string host_, port_;
  std::function<void(bool)> done_;
  asio::ip::tcp::resolver resolver_;
  asio::ssl::context context_;
  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  asio::steady_timer timer_;
  TlsPeek peek_;
  bool finished_ = false;
};

// A refusal's body for an error message: one line of printable text, at
// most 300 bytes (a control byte or a line break becomes a space).
std::string printable_body(const std::string& body) {
  std::string out;
  for (char c : body) {
    if (out.size() >= 300) {
      out += "...";
      break;
    }
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Why an attempt failed, with the words for it.
struct FailureReport {
  FeedFailure cause = FeedFailure::transient;
  std::string why;
};

// Loads every TLS file up front, so a bad --ca or --cert is a clear error at
// start, not a failure inside the I/O thread.
SslContext make_tls_context(const TlsOptions& tls, const std::string& host, const std::string& peer) {
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
    if (ok != 1) throw Error("cannot check the host name '" + host + "' of the " + peer + "'s certificate");
  }
  if (!tls.cert_file.empty()) {
    load("--client-cert", tls.cert_file, [&](asio::error_code& ec) { ctx->use_certificate_chain_file(tls.cert_file, ec); });
    const std::string& key = tls.key_file.empty() ? tls.cert_file : tls.key_file;
    load("--client-key", key, [&](asio::error_code& ec) { ctx->use_private_key_file(key, asio::ssl::context::pem, ec); });
  }
  return ctx;
}

struct TlsPart {
  static void setup(websocketpp::client<websocketpp::config::asio_tls_client>& endpoint, SslContext ctx,
                    TlsPeek& peek) {
    SSL_CTX_set_msg_callback(ctx->native_handle(), peek_tls_record);
    endpoint.set_tls_init_handler([ctx](connection_hdl) { return ctx; });
    endpoint.set_socket_init_handler([&peek](connection_hdl, asio::ssl::stream<asio::ip::tcp::socket>& s) {
      peek = TlsPeek{};
      SSL_set_msg_callback_arg(s.native_handle(), &peek);
    });
  }
};

template <typename Config>
class Client : public FeedConnection {
 public:
  using Endpoint = websocketpp::client<Config>;
  static constexpr bool kTls = std::is_same_v<Config, websocketpp::config::asio_tls_client>;
  using ConnectionPtr = typename Endpoint::connection_ptr;
  using MessagePtr = typename Endpoint::message_ptr;

  Client(const FeedClientSettings& settings, FeedListener& listener, LogSink& log, SslContext tls)
      : settings_(settings), listener_(listener), log_(log) {
    websocketpp::uri uri(settings_.url);
    host_ = uri.get_host();
    port_ = uri.get_port_str();
    where_ = uri.get_host_port();
    endpoint_.clear_access_channels(websocketpp::log::alevel::all);
    endpoint_.clear_error_channels(websocketpp::log::elevel::all);
    endpoint_.init_asio();
    endpoint_.set_user_agent("kws/" KWS_VERSION);
    endpoint_.start_perpetual();
    if constexpr (kTls) TlsPart::setup(endpoint_, tls, tls_peek_);
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
      if (ec) log_.debug("could not send to the " + settings_.peer + ": " + ec.message());
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

  // What went wrong with a failed attempt, from the error values
  // websocketpp, Asio and OpenSSL give (never from their text), in words
  // that say what to do.
  FailureReport classify_failure() {
    using websocketpp::lib::error_code;
    const error_code ec = con_->get_ec();
    if constexpr (kTls) {
      long verify = SSL_get_verify_result(con_->get_socket().native_handle());
      if (verify != X509_V_OK) {
        return {FeedFailure::certificate,
                std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify) +
                    (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH
                         ? ""
                         : " (is --ca right?)")};
      }
      if (ec == websocketpp::transport::asio::socket::make_error_code(
                    websocketpp::transport::asio::socket::error::tls_handshake_failed)) {
        if (tls_peek_.plain()) {
          return {FeedFailure::tls_mismatch, "the " + settings_.peer + " at " + where_ + " answered the TLS handshake in plain text (\"" +
                                                 tls_peek_.shown() + "...\"): it is no TLS port; try ws:// instead of wss://"};
        }
        if (!tls_peek_.seen) {
          return {FeedFailure::transient, "the " + settings_.peer + " at " + where_ +
                                              " closed the connection during the TLS handshake without answering it "
                                              "(a plain ws:// port does that; if it is one, use ws://)"};
        }
        return {FeedFailure::transient, "the TLS handshake with " + where_ + " failed"};
      }
    }
    if (ec == asio::error::host_not_found) {
      return {FeedFailure::no_such_host, "cannot resolve the " + settings_.peer + "'s host name '" + host_ + "': no such host"};
    }
    if (ec == asio::error::host_not_found_try_again) {
      return {FeedFailure::transient, "cannot resolve the " + settings_.peer + "'s host name '" + host_ + "' just now (DNS did not answer)"};
    }
    if (ec == asio::error::connection_refused) return {FeedFailure::transient, where_ + " refused the connection"};
    const int status = static_cast<int>(con_->get_response_code());
    if (status != 0 && status != 101) {
      std::string why = "the " + settings_.peer + " answered HTTP " + std::to_string(status) + " " + con_->get_response_msg();
      const std::string& location = con_->get_response_header("Location");
      if (status >= 300 && status < 400 && !location.empty()) why += " (to " + location + ")";
      // The body says why (kws serve: "no token", "unknown topic ..."); only
      // what arrived with the head, made printable and cut short.
      if (std::string body = printable_body(con_->get_response().get_body()); !body.empty()) why += ": " + body;
      // 408 and 429 say "not now"; the other 4xx say "not like this".
      const bool refused = status >= 400 && status < 500 && status != 408 && status != 429;
      return {refused ? FeedFailure::http_refused : FeedFailure::transient, why};
    }
    if (ec == websocketpp::error::make_error_code(websocketpp::error::general)) {
      // The one failure websocketpp reports so during the handshake: its
      // parser threw on the answer.
      return {FeedFailure::not_http, "the " + settings_.peer + "'s answer is not an HTTP response: " + where_ +
                                         " does not speak HTTP (is the URL's port that of a WebSocket server?)"};
    }
    std::string why = ec.message();
    auto transport = con_->get_transport_ec();
    if (transport && transport != ec) why += ": " + transport.message();
    return {FeedFailure::transient, why};
  }

  // A ws:// attempt whose connection ended before any answer to the upgrade:
  // a TLS port hangs up on plain HTTP without a word.
  bool unanswered_plain_attempt() const {
    if constexpr (kTls) {
      return false;
    } else {
      return con_->get_ec() == websocketpp::transport::error::make_error_code(websocketpp::transport::error::eof) &&
             con_->get_response().get_version().empty();
    }
  }

  void on_fail(connection_hdl h) {
    if (!current(h)) return;
    if (!close_reason_.empty()) {
      std::string why = close_reason_;
      finish();
      listener_.on_feed_closed(FeedEnd::failed, why);
      return;
    }
    FailureReport report = classify_failure();
    const bool unanswered = unanswered_plain_attempt();
    finish();
    if (!unanswered) {
      listener_.on_feed_closed(FeedEnd::failed, report.cause, report.why);
      return;
    }
    auto probe = std::make_shared<TlsProbe>(endpoint_.get_io_service(), host_, port_, [this](bool speaks_tls) {
      if (speaks_tls) {
        listener_.on_feed_closed(FeedEnd::failed, FeedFailure::tls_mismatch,
                                 "the " + settings_.peer + " at " + where_ +
                                     " speaks TLS and hung up on the plain request: use wss:// instead of ws://");
      } else {
        listener_.on_feed_closed(FeedEnd::failed, FeedFailure::transient,
                                 "the " + settings_.peer + " at " + where_ + " closed the connection without answering the WebSocket "
                                                           "handshake");
      }
    });
    probe->start(std::chrono::milliseconds(2000));
  }

  void on_close(connection_hdl h) {
    if (!current(h)) return;
    FeedEnd end = FeedEnd::lost;
    std::string why;
    const auto local = con_->get_local_close_code();
    if (local == websocketpp::close::status::message_too_big) {
      end = FeedEnd::too_big;
      why = "the " + settings_.peer + " sent a message over " + std::to_string(settings_.max_message_size) + " bytes";
    } else if (local == websocketpp::close::status::invalid_payload) {
      why = "the " + settings_.peer + " sent a text frame that is not UTF-8 (close 1007)";
    } else if (local == websocketpp::close::status::protocol_error) {
      why = "the " + settings_.peer + " broke the WebSocket protocol (close 1002";
      if (!con_->get_local_close_reason().empty()) why += ": " + con_->get_local_close_reason();
      why += ")";
    } else if (!close_reason_.empty()) {
      why = close_reason_;
    } else if (con_->get_remote_close_code() != websocketpp::close::status::abnormal_close &&
               con_->get_remote_close_code() != websocketpp::close::status::no_status) {
      why = "closed by the " + settings_.peer + " (code " + std::to_string(con_->get_remote_close_code());
      if (!con_->get_remote_close_reason().empty()) why += ": " + con_->get_remote_close_reason();
      why += ")";
    } else if (con_->get_ec()) {
      why = "connection ended: " + con_->get_ec().message();
    } else {
      why = "the connection ended without a close frame";
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
  std::string host_, port_, where_;  // from the URL, for messages and the TLS probe
  // wss://: what the current attempt's peer sent first (the socket init
  // handler resets it); before endpoint_, which its sockets point into.
  TlsPeek tls_peek_;
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
    SslContext ctx = make_tls_context(settings.tls, uri.get_host(), settings.peer);
    if (settings.tls.insecure) log.warning("--insecure: the " + settings.peer + "'s certificate and host name are not checked");
    return std::make_unique<Client<websocketpp::config::asio_tls_client>>(settings, listener, log, ctx);
  }
  if (!settings.tls.ca_file.empty() || !settings.tls.cert_file.empty() || settings.tls.insecure) {
    throw usage_error("--ca, --client-cert, --client-key and --insecure apply to wss:// URLs only");
  }
  return std::make_unique<Client<websocketpp::config::asio_client>>(settings, listener, log, nullptr);
}

}  // namespace kws
