#include "core/ws/server.hpp"

#include <unistd.h>

#include <algorithm>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "core/auth/jwt.hpp"
#include "core/mqtt/session.hpp"
#include "core/util/descriptors.hpp"
#include "core/util/error.hpp"
#include "core/util/metrics_text.hpp"
#include "core/ws/connection.hpp"
#include "core/ws/listener.hpp"
#include "core/ws/origin.hpp"
#include "core/ws/peer_limits.hpp"
#include "core/ws/tls.hpp"
#include "core/ws/routes.hpp"

namespace kws {

namespace {

using ws::Connection;
using ConnectionPtr = std::shared_ptr<Connection>;
using Clock = std::chrono::steady_clock;

// Descriptors kws serve keeps for itself beyond client connections: Kafka
// clients (a few per broker), the embedded broker's relay when it runs in
// the same process, logs, timers.
constexpr uint64_t kReservedDescriptors = 256;

}  // namespace

struct Server::Impl : SessionHost, std::enable_shared_from_this<Server::Impl> {
  ServerOptions options;
  ServerServices services;
  // The limits (docs/SECURITY.md): before io, whose handlers own connections.
  ws::PeerLimits peer_limits{{options.max_connections_per_ip, options.limit_loopback}};
  ws::OriginPolicy origins{options.allow_origins};
  asio::io_context io;
  Connection::Limits limits;
  ws::Listener listener{io, *services.log};
  asio::steady_timer tick_timer{io};
  Clock::time_point last_ping{};
  size_t max_connections = 0;
  ServerCounters counters;
  SessionCounters session_counters;
  ProduceTracker deliveries;
  GrantsAuthorizer grants;
  TopicAllowList authorizer{grants, options.topics_allow};
  // What new connections use; reload() replaces them (I/O thread only).
  std::shared_ptr<const ws::TlsContext> tls;
  std::shared_ptr<const TokenChecker> check_token;
  std::unique_ptr<ws::Listener> metrics_listener;
  std::unique_ptr<ws::Listener> mqtt_listener;
  std::shared_ptr<const Connection::RequestHandler> metrics_handler;
  std::atomic<size_t> group_sessions{0};
  std::atomic<bool> finishing{false};
  std::vector<OutItem> flush_scratch;  // the I/O thread's, for Session::flush
  std::shared_ptr<const Connection::RequestHandler> request_handler;  // shared by every connection
  SessionServices session_services;
  unsigned ticks = 0;

  // Not owning: a connection belongs to its I/O handlers, a session to its
  // connection (and the hub, while subscribed). A session leaves when its
  // link closes.
  struct Entry {
    std::weak_ptr<Connection> connection;
    std::weak_ptr<ClientSession> session;
  };
  mutable std::mutex registry_mutex;
  std::unordered_map<const ClientSession*, Entry> registry;

  // Sessions with something to do on the I/O thread, run by one handler:
  // the hub thread posts once per batch, not once per client.
  std::mutex wake_mutex;
  std::vector<std::shared_ptr<ClientSession>> woken;
  bool wake_posted = false;

  // Kafka's state as the bridge last saw it, told to sessions that open.
  std::mutex kafka_state_mutex;
  bool kafka_reachable = true;
  std::string kafka_problem;

  HubNotice kafka_notice() {
    std::lock_guard<std::mutex> lock(kafka_state_mutex);
    HubNotice n;
    n.kind = HubNotice::Kind::kafka;
    n.reachable = kafka_reachable;
    n.message = kafka_problem;
    return n;
  }

  std::mutex retiring_mutex;
  std::vector<std::unique_ptr<GroupReader>> retiring;

  explicit Impl(ServerOptions o, ServerServices s) : options(std::move(o)), services(std::move(s)) {}

  std::vector<Entry> snapshot() const {
    std::lock_guard<std::mutex> lock(registry_mutex);
    std::vector<Entry> all;
    all.reserve(registry.size());
    for (const auto& [key, e] : registry) all.push_back(e);
    return all;
  }

  // SessionHost
  void wake(std::shared_ptr<ClientSession> s) override {
    std::lock_guard<std::mutex> lock(wake_mutex);
    woken.push_back(std::move(s));
    if (wake_posted) return;
    wake_posted = true;
    asio::post(io, [self = shared_from_this()] { self->run_woken(); });
  }
  void wake_after(std::shared_ptr<ClientSession> s, std::chrono::milliseconds delay) override {
    auto timer = std::make_shared<asio::steady_timer>(io, delay);
    timer->async_wait([timer, s = std::move(s)](const std::error_code& ec) {
      if (!ec) s->on_wake();
    });
  }
  void retire(std::unique_ptr<GroupReader> reader) override {
    std::lock_guard<std::mutex> lock(retiring_mutex);
    retiring.push_back(std::move(reader));
  }
  void closed(ClientSession& s) override {
    ++counters.connections_closed;
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry.erase(&s);
  }

  void run_woken() {
    std::vector<std::shared_ptr<ClientSession>> now;
    {
      std::lock_guard<std::mutex> lock(wake_mutex);
      now.swap(woken);
      wake_posted = false;
    }
    for (auto& s : now) s->on_wake();
  }

  // Who is asking: the principal of the request's token, or of its client
  // certificate, or null (anonymous) when neither is required; `problem`
  // when a token is required and missing or invalid.
  struct Authentication {
    std::shared_ptr<const Principal> principal;
    std::string problem;
    bool token_given = false;
  };

  void setup();
  bool on_socket(asio::ip::tcp::socket& socket);
  bool on_metrics_socket(asio::ip::tcp::socket& socket);
  // A connection for an accepted socket: with TLS when the listener has it,
  // counted against its peer address. Null when it was refused; `accepted`
  // false when the socket was not taken at all (the listener then backs off).
  ConnectionPtr accept_connection(asio::ip::tcp::socket& socket,
                                  std::shared_ptr<const Connection::RequestHandler> handler, bool& accepted);
  // MQTT over TCP: no HTTP, the session starts with the connection.
  bool on_mqtt_socket(asio::ip::tcp::socket& socket);
  // MQTT over WebSocket (/mqtt).
  void upgrade_mqtt(const ConnectionPtr& con, const ws::HttpRequest& request);
  // Registers and opens an MQTT session on `con`.
  std::shared_ptr<mqtt::MqttSession> open_mqtt(const ConnectionPtr& con, std::shared_ptr<const Principal> principal);
  // Counts the socket against its address's cap; false when it was refused
  // (answered 429 and closed).
  bool admit_peer(asio::ip::tcp::socket& socket, ws::PeerSlot& slot);
  void on_request(const ConnectionPtr& con, const ws::HttpRequest& request);
  void on_metrics_request(const ConnectionPtr& con, const ws::HttpRequest& request);
  Authentication authenticate(const Connection& con, const ws::HttpRequest& request, std::string_view query) const;
  void unauthorized(Connection& con, const Authentication& refused);
  // A WebSocket upgrade to /v2/broker/, or (`sse`) a GET of /v2/sse: the
  // same checks and the same session, over another link.
  void upgrade(const ConnectionPtr& con, const ws::HttpRequest& request, bool sse = false);
  void tick();
  void chores();
  std::string metrics(const ServerServices::TopicVisible& visible = {}) const;
};

void Server::Impl::setup() {
  // Frames between --max-frame and this get a too_large error frame and the
  // session goes on; beyond it the connection is closed with 1009.
  limits.max_message = options.session.max_frame * 2 + 65536;
  session_services.options = options.session;
  session_services.hub = services.hub;
  session_services.producer = services.producer;
  session_services.deliveries = &deliveries;
  session_services.open_group = services.open_group;
  session_services.authorizer = &authorizer;
  tls = options.tls;
  check_token = options.check_token;
  if (check_token) {
    // Through the server, so that an `auth` frame meets the keys of the last reload.
    session_services.check_token = [this](std::string_view token) { return (*check_token)(token); };
  }
  session_services.host = this;
  session_services.frame_text = &ws::text_frame;
  session_services.flush_scratch = &flush_scratch;
  session_services.counters = &session_counters;
  session_services.group_sessions = &group_sessions;
  session_services.finishing = &finishing;
  session_services.log = services.log;
  // Every connection costs a descriptor: a cap above what the process may
  // open would end in accept() failing for everyone, health checks included.
  const uint64_t limit = raise_open_file_limit();
  const uint64_t allowed = limit > kReservedDescriptors ? limit - kReservedDescriptors : 16;
  max_connections = static_cast<size_t>(std::min<uint64_t>(options.max_connections, allowed));
  if (max_connections < options.max_connections) {
    services.log->warning("serve.max_connections is " + std::to_string(options.max_connections) +
                          " but the open-file limit (ulimit -n) is " + std::to_string(limit) + ": serving at most " +
                          std::to_string(max_connections) + " connections; raise the hard limit to serve more");
  }
}

// HTTP requests beyond the session cap are still answered (a health check
// must not fail because the bridge is full), up to a margin.
bool Server::Impl::on_socket(asio::ip::tcp::socket& socket) {
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (registry.size() >= max_connections + 64) return false;
  }
  if (!request_handler) {
    std::weak_ptr<Impl> weak = weak_from_this();
    request_handler = std::make_shared<const Connection::RequestHandler>(
        [weak](const ConnectionPtr& c, const ws::HttpRequest& r) {
          if (auto impl = weak.lock()) impl->on_request(c, r);
        });
  }
  bool accepted = true;
  auto con = accept_connection(socket, request_handler, accepted);
  if (con) con->start();
  return accepted;
}

// The metrics address: plain HTTP, no token, nothing but what a scraper or
// a health check asks.
bool Server::Impl::on_metrics_socket(asio::ip::tcp::socket& socket) {
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (registry.size() >= max_connections + 64) return false;
  }
  if (!metrics_handler) {
    std::weak_ptr<Impl> weak = weak_from_this();
    metrics_handler = std::make_shared<const Connection::RequestHandler>(
        [weak](const ConnectionPtr& c, const ws::HttpRequest& r) {
          if (auto impl = weak.lock()) impl->on_metrics_request(c, r);
        });
  }
  auto con = std::make_shared<Connection>(std::move(socket), limits, metrics_handler, nullptr);
  con->start();
  return true;
}

ConnectionPtr Server::Impl::accept_connection(asio::ip::tcp::socket& socket,
                                              std::shared_ptr<const Connection::RequestHandler> handler,
                                              bool& accepted) {
  std::unique_ptr<ws::TlsStream> stream;
  if (tls) {
    try {
      stream = std::make_unique<ws::TlsStream>(*tls);
    } catch (const Error& e) {
      services.log->warning(e.what());
      accepted = false;
      return nullptr;
    }
  }
  ws::PeerSlot slot;
  if (!admit_peer(socket, slot)) return nullptr;  // answered and closed: the listener goes on
  auto con = std::make_shared<Connection>(std::move(socket), limits, std::move(handler), std::move(stream));
  con->hold(std::move(slot));
  return con;
}

bool Server::Impl::on_mqtt_socket(asio::ip::tcp::socket& socket) {
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (registry.size() >= max_connections || finishing) return false;
  }
  bool accepted = true;
  auto con = accept_connection(socket, nullptr, accepted);
  if (!con) return accepted;
  // A client certificate (mTLS) is only known after the handshake, which
  // the first reads run: a CONNECT's token is what names an MQTT client here.
  auto session = open_mqtt(con, nullptr);
  con->start_raw(session);
  return true;
}

std::shared_ptr<mqtt::MqttSession> Server::Impl::open_mqtt(const ConnectionPtr& con,
                                                           std::shared_ptr<const Principal> principal) {
  auto session = std::make_shared<mqtt::MqttSession>(session_services, *services.mqtt, std::move(principal));
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry.emplace(session.get(), Entry{con, session});
  }
  ++counters.connections_opened;
  session->open(*con);
  return session;
}

void Server::Impl::upgrade_mqtt(const ConnectionPtr& con, const ws::HttpRequest& request) {
  auto refuse = [&](int status, const std::string& why, std::string_view extra = {}) {
    ++counters.handshakes_refused;
    con->respond(status, "text/plain; charset=utf-8", why + "\n", extra);
  };
  bool version_mismatch = false;
  if (auto problem = ws::upgrade_problem(request, version_mismatch)) {
    if (version_mismatch) return refuse(426, *problem, "Sec-WebSocket-Version: 13\r\n");
    return refuse(400, *problem);
  }
  if (auto why = origins.refusal(request)) {
    ++counters.origin_refusals;
    return refuse(403, *why);
  }
  if (finishing) return refuse(503, "shutting down");
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (registry.size() >= max_connections) {
      return refuse(503, "too many connections (" + std::to_string(max_connections) + ")");
    }
  }
  // MQTT clients send `mqtt` (MQTT 3.1.1 and 5) or the older `mqttv3.1`.
  std::string subprotocol;
  for (const auto& offered : request.header_tokens("sec-websocket-protocol")) {
    if (offered == "mqtt" || offered == "mqttv3.1") {
      subprotocol = offered;
      break;
    }
  }
  if (subprotocol.empty() && !request.header("sec-websocket-protocol").empty()) {
    return refuse(400, "/mqtt speaks the subprotocol mqtt; offered: " + std::string(request.header("sec-websocket-protocol")));
  }
  // A token in the upgrade (header or query) names the client as for
  // /v2/broker/; without one, the CONNECT's password must carry it.
  std::shared_ptr<const Principal> principal;
  const size_t q = request.target.find('?');
  std::string_view query = q == std::string::npos ? std::string_view() : std::string_view(request.target).substr(q + 1);
  Authentication who = authenticate(*con, request, query);
  if (who.principal) {
    principal = std::move(who.principal);
  } else if (who.token_given) {
    return unauthorized(*con, who);
  }
  auto session = open_mqtt(con, std::move(principal));
  con->accept_upgrade(request, subprotocol, session, /*frame_writes=*/true);
}

void Server::Impl::on_metrics_request(const ConnectionPtr& con, const ws::HttpRequest& request) {
  const std::string path = request.target.substr(0, request.target.find('?'));
  if (request.is_upgrade() || (path != "/metrics" && path != "/healthz" && path != "/readyz")) {
    ++counters.handshakes_refused;
    con->respond(404, "text/plain; charset=utf-8",
                 "this is kws serve's metrics address: it answers /metrics, /healthz and /readyz\n");
    return;
  }
  ws::HttpEndpoints endpoints{{}, services.kafka_ready, [this] { return metrics(); }};
  ws::answer_http(*con, request, endpoints);
}

Server::Impl::Authentication Server::Impl::authenticate(const Connection& con, const ws::HttpRequest& request,
                                                        std::string_view query) const {
  Authentication a;
  if (!check_token) {
    // Without tokens a verified client certificate (mTLS) names the client;
    // its rights are not restricted (ACLs come from tokens only).
    std::string subject = con.peer_subject();
    if (!subject.empty()) {
      auto p = std::make_shared<Principal>();
      p->name = std::move(subject);
      a.principal = std::move(p);
    }
    return a;
  }
  // A browser cannot set headers on a WebSocket: it uses the query or a
  // subprotocol (docs/SECURITY.md, "Where the token comes from").
  std::optional<std::string> token = bearer_from_authorization(request.header("authorization"));
  if (!token) token = token_from_subprotocols(request.header_tokens("sec-websocket-protocol"));
  if (!token) token = token_from_query(query);
  if (!token) {
    a.problem =
        "a token is required: send it as Authorization: Bearer <token>, the access_token query parameter, or the "
        "subprotocol bearer.<token>";
    return a;
  }
  a.token_given = true;
  TokenCheck check = (*check_token)(*token);
  if (!check.principal) {
    a.problem = "token refused: " + check.problem;
    return a;
  }
  a.principal = std::move(check.principal);
  return a;
}

void Server::Impl::unauthorized(Connection& con, const Authentication& refused) {
  ++counters.unauthenticated;
  ++counters.handshakes_refused;
  // RFC 6750 §3: an invalid token says so; a missing one only names the scheme.
  con.respond(401, "text/plain; charset=utf-8", refused.problem + "\n",
              refused.token_given ? "WWW-Authenticate: Bearer realm=\"kws\", error=\"invalid_token\"\r\n"
                                  : "WWW-Authenticate: Bearer realm=\"kws\"\r\n");
}

namespace {

// The peer's IP address, when the socket is TCP over IPv4 or IPv6 (the
// test and fuzz seams serve AF_UNIX socketpairs, which have none).
std::optional<ws::PeerAddress> peer_address(asio::ip::tcp::socket& socket) {
  std::error_code ec;
  const asio::ip::tcp::endpoint remote = socket.remote_endpoint(ec);
  if (ec) return std::nullopt;
  const int family = remote.data()->sa_family;
  if (family != AF_INET && family != AF_INET6) return std::nullopt;
  const asio::ip::address a = remote.address();
  if (a.is_v4()) return ws::PeerAddress::v4(a.to_v4().to_uint());
  // A v4-mapped v6 peer (a dual-stack listener) counts as its v4 address.
  return ws::PeerAddress::v6(a.to_v6().to_bytes());
}

}  // namespace

bool Server::Impl::admit_peer(asio::ip::tcp::socket& socket, ws::PeerSlot& slot) {
  const std::optional<ws::PeerAddress> address = peer_address(socket);
  if (!address) return true;
  ws::PeerLimits::Admission admission = peer_limits.admit(*address);
  if (admission.admitted) {
    slot = std::move(admission.slot);
    return true;
  }
  ++counters.per_ip_refusals;
  // 429, not the 503 of a full server: this client, not the server, is at its limit.
  ws::refuse_socket(socket, 429,
                    "too many connections from " + address->text() + " (" +
                        std::to_string(peer_limits.max_per_address()) + ", serve.max_connections_per_ip)",
                    /*plain=*/!options.tls);
  return false;
}

void Server::Impl::on_request(const ConnectionPtr& con, const ws::HttpRequest& request) {
  if (request.is_upgrade() && services.mqtt && request.target.substr(0, request.target.find('?')) == "/mqtt") {
    upgrade_mqtt(con, request);
    return;
  }
  if (request.is_upgrade()) {
    upgrade(con, request);
    return;
  }
  if (ws::is_sse_path(request.target.substr(0, request.target.find('?'))) &&
      (request.method == "GET" || request.method == "HEAD")) {
    upgrade(con, request, /*sse=*/true);
    return;
  }
  ServerServices::TopicVisible visible;  // every topic, unless a token limits it
  if (check_token) {
    // Health checks stay open (a load balancer has no token); the page and
    // the metrics say what the bridge serves and how much.
    const size_t q = request.target.find('?');
    const std::string path = request.target.substr(0, q);
    const bool page = path == "/" || path == "/index.html";
    if ((page && !options.public_page) || path == "/metrics") {
      std::string_view query =
          q == std::string::npos ? std::string_view() : std::string_view(request.target).substr(q + 1);
      Authentication a = authenticate(*con, request, query);
      if (!a.principal) return unauthorized(*con, a);
      // Topic names are what a token's ACL keeps apart: its /metrics names
      // only the topics it may read (an ACL of "*" sees them all).
      visible = [this, principal = std::move(a.principal)](const std::string& topic) {
        return authorizer.allows(*principal, topic, TopicAction::read);
      };
    }
  }
  ws::HttpEndpoints endpoints{services.demo_page, services.kafka_ready, [this, &visible] { return metrics(visible); }};
  ws::answer_http(*con, request, endpoints);
}

void Server::Impl::upgrade(const ConnectionPtr& con, const ws::HttpRequest& request, bool sse) {
  auto refuse = [&](int status, const std::string& why, std::string_view extra = {}) {
    ++counters.handshakes_refused;
    con->respond(status, "text/plain; charset=utf-8", why + "\n", extra);
  };
  bool version_mismatch = false;
  if (sse) {
    // An EventSource is a plain GET.
  } else if (auto problem = ws::upgrade_problem(request, version_mismatch)) {
    if (version_mismatch) return refuse(426, *problem, "Sec-WebSocket-Version: 13\r\n");
    return refuse(400, *problem);
  }
  if (auto why = origins.refusal(request)) {
    ++counters.origin_refusals;
    return refuse(403, *why);
  }
  if (options.client_certificates && !check_token && options.allow_origins.empty() &&
      !request.header("origin").empty()) {
    // Cross-site WebSocket hijacking: any page the certificate's holder
    // opens would otherwise act with the certificate's rights.
    ++counters.origin_refusals;
    return refuse(403,
                  "a browser upgrade authenticated by a client certificate alone needs --allow-origin naming the "
                  "pages that may use it");
  }
  if (finishing) return refuse(503, "shutting down");
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (registry.size() >= max_connections) {
      return refuse(503, "too many connections (" + std::to_string(max_connections) + ")");
    }
  }
  const size_t q = request.target.find('?');
  const std::string path = request.target.substr(0, q);
  if (!sse && !ws::is_websocket_path(path)) {
    return refuse(404, "no WebSocket endpoint at " + path + "; use /v2/broker/ (or /v2/sse for Server-Sent Events)");
  }
  std::string_view query = q == std::string::npos ? std::string_view() : std::string_view(request.target).substr(q + 1);
  Authentication who = authenticate(*con, request, query);
  if (!who.principal && !who.problem.empty()) return unauthorized(*con, who);
  ConnectRequest parsed;
  if (auto problem = parse_connect_query(query, parsed)) return refuse(400, *problem);
  if (sse) {
    // Events carry kws envelopes and kws's notices; the id of the last
    // write the browser saw is its resume token (it sends it back as
    // Last-Event-ID when it reconnects, and it wins over resume=).
    parsed.encoding = Encoding::sse;
    parsed.kws_protocol = true;
    if (const std::string_view last_id = request.header("last-event-id"); !last_id.empty()) {
      if (!parsed.group.empty()) return refuse(400, "Last-Event-ID: a group.id session resumes from its group's offsets");
      ResumeByTopic resumed;
      if (auto problem = parse_resume(last_id, resumed)) return refuse(400, "Last-Event-ID: " + *problem);
      for (const auto& [topic, positions] : resumed) {
        if (std::find(parsed.topics.begin(), parsed.topics.end(), topic) == parsed.topics.end()) {
          return refuse(400, "Last-Event-ID names '" + topic + "', which topics= does not");
        }
      }
      parsed.resume = std::move(resumed);
    }
    if (request.method == "HEAD") return con->respond(200, "text/event-stream; charset=utf-8", "");
  } else {
    // A token offered as a subprotocol is never chosen, so never echoed back.
    std::vector<std::string> offered = request.header_tokens("sec-websocket-protocol");
    offered.erase(std::remove_if(offered.begin(), offered.end(),
                                 [](const std::string& p) { return p.rfind(kBearerSubprotocolPrefix, 0) == 0; }),
                  offered.end());
    if (auto problem = choose_subprotocol(offered, parsed)) return refuse(400, *problem);
  }
  // Every topic the query names passes the same door as a subscribe frame,
  // before the upgrade, so a refusal is an HTTP answer naming the topic.
  if (parsed.topics.size() > options.session.max_topics) {
    return refuse(400, "topics: more than " + std::to_string(options.session.max_topics) + " (serve.max_topics)");
  }
  if (parsed.topics.size() > options.session.max_subscriptions) {
    ++session_counters.subscription_limit_refusals;
    return refuse(400, "topics: more than " + std::to_string(options.session.max_subscriptions) +
                           " (serve.max_subscriptions)");
  }
  static const Principal anonymous;
  const Principal& principal = who.principal ? *who.principal : anonymous;
  for (const auto& t : parsed.topics) {
    if (auto refusal = admit_topic(t, TopicAction::read, parsed.encoding, principal, authorizer)) {
      if (refusal->error == ClientError::not_allowed) ++counters.forbidden;
      return refuse(refusal->error == ClientError::not_allowed ? 403 : 400, "topics: '" + t + "': " + refusal->why);
    }
  }
  if (!parsed.group.empty() && !authorizer.allows_group(principal, parsed.group)) {
    ++counters.forbidden;
    return refuse(403, "group.id: '" + parsed.group + "': reading as this group is not allowed");
  }
  const std::string subprotocol = parsed.subprotocol;
  auto session = std::make_shared<Session>(session_services, std::move(parsed), std::move(who.principal));
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry.emplace(session.get(), Entry{con, session});
  }
  ++counters.connections_opened;
  if (sse) {
    // retry: how soon the browser reconnects (its default is 3 s).
    con->accept_stream(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 1000\n\n",
        session);
  } else {
    con->accept_upgrade(request, subprotocol, session);
  }
  session->open(*con);
  HubNotice kafka = kafka_notice();
  if (!kafka.reachable) session->notify(kafka);
}

void Server::Impl::tick() {
  chores();
  if (finishing) return;
  tick_timer.expires_after(std::chrono::milliseconds(250));
  std::weak_ptr<Impl> weak = weak_from_this();
  tick_timer.async_wait([weak](const std::error_code& ec) {
    if (auto self = weak.lock(); self && !ec) self->tick();
  });
}

void Server::Impl::chores() {
  const auto now = Clock::now();
  const bool ping_due = now - last_ping >= options.ping_interval;
  if (ping_due) last_ping = now;
  // Every 2 s: buffers a connection kept from its last burst go back.
  const bool trim = ++ticks % 8 == 0;
  const auto wall = std::chrono::system_clock::now();
  for (const auto& e : snapshot()) {
    ConnectionPtr con = e.connection.lock();
    if (!con || !con->is_open()) continue;
    if (check_token) {
      auto s = e.session.lock();
      if (s && s->close_if_expired(wall)) {
        ++counters.token_expiry_closes;
        continue;
      }
    }
    if (trim) {
      con->release_idle_memory();
      if (auto s = e.session.lock()) s->release_idle_memory();
    }
    auto session = e.session.lock();
    if (session && session->on_tick(now)) continue;
    const auto stalled = con->stalled_since();
    const bool own_time = con->is_stream() || (session && session->keeps_own_time());
    if (!own_time && now - con->last_heard() > options.idle_timeout) {
      ++counters.idle_closes;
      con->close(CloseReason::normal, "idle timeout");
    } else if (stalled != Clock::time_point{} && now - stalled > options.write_timeout) {
      ++counters.stalled_closes;
      con->close(CloseReason::policy,
                 "slow client: took nothing for " + std::to_string(options.write_timeout.count() / 1000) + " s",
                 /*drop_pending=*/true);
    } else if (ping_due) {
      con->ping();
    }
  }
  {
    std::lock_guard<std::mutex> lock(retiring_mutex);
    retiring.erase(std::remove_if(retiring.begin(), retiring.end(), [](const auto& r) { return r->finished(); }),
                   retiring.end());
  }
}

std::string Server::Impl::metrics(const ServerServices::TopicVisible& visible) const {
  MetricsText m;
  auto counter = [&](const char* name, const char* help, uint64_t value) {
    m.family(name, "counter", help).sample(name, static_cast<double>(value));
  };
  size_t open = 0;
  uint64_t dropped = session_counters.dropped;  // sessions closed
  size_t pending_bytes = 0;
  for (const auto& e : snapshot()) {
    auto s = e.session.lock();
    if (!s) continue;
    ++open;
    pending_bytes += s->pending_bytes();
    dropped += s->dropped();
  }
  const SessionCounters& c = session_counters;
  m.family("kws_serve_connections", "gauge", "WebSocket connections open now").sample("kws_serve_connections", static_cast<double>(open));
  m.family("kws_serve_max_connections", "gauge", "The connection cap in force (serve.max_connections, or the open-file limit)")
      .sample("kws_serve_max_connections", static_cast<double>(max_connections));
  if (services.mqtt) {
    m.family("kws_serve_mqtt_sessions", "gauge", "MQTT clients connected now (past their CONNECT), TCP and WebSocket")
        .sample("kws_serve_mqtt_sessions", static_cast<double>(services.mqtt->sessions()));
    m.family("kws_serve_mqtt_retained", "gauge", "Retained MQTT messages the bridge knows (newest per MQTT topic)")
        .sample("kws_serve_mqtt_retained", static_cast<double>(services.mqtt->retained().size()));
  }
  counter("kws_serve_connections_opened_total", "WebSocket connections accepted", counters.connections_opened);
  counter("kws_serve_handshakes_refused_total", "Upgrade requests answered with an HTTP error", counters.handshakes_refused);
  counter("kws_serve_unauthenticated_total", "Requests answered 401: no token, or one that failed verification", counters.unauthenticated);
  counter("kws_serve_forbidden_total", "Upgrades answered 403: a topic or group.id the token does not grant", counters.forbidden);
  counter("kws_serve_token_expiry_closes_total", "Sessions closed because their token expired (1008)", counters.token_expiry_closes);
  counter("kws_serve_reloads_total", "Certificate and key reloads that took effect (SIGHUP)", counters.reloads);
  counter("kws_serve_frames_in_total", "Frames received from clients", c.frames_in);
  counter("kws_serve_bytes_in_total", "Payload bytes received from clients", c.bytes_in);
  counter("kws_serve_frames_out_total", "Frames sent to clients (messages and replies)", c.frames_out);
  counter("kws_serve_bytes_out_total", "Bytes written to clients, WebSocket framing included", c.bytes_out);
  counter("kws_serve_writes_total", "Coalesced socket writes", c.writes);
  counter("kws_serve_produced_total", "Client messages Kafka acknowledged", c.produced);
  counter("kws_serve_produce_errors_total", "Client messages Kafka refused or did not confirm", c.produce_errors);
  counter("kws_serve_client_errors_total", "Requests refused for bad client input", c.client_errors);
  counter("kws_serve_dropped_total", "Messages dropped for slow clients (drop-oldest)", dropped);
  counter("kws_serve_conflated_total", "Queued messages replaced by a newer one of their key (latest-per-key)", c.conflated);
  counter("kws_serve_slow_client_closes_total", "Connections closed for reading too slowly", c.slow_closes);
  counter("kws_serve_stalled_closes_total", "Connections closed for taking nothing for serve.write_timeout", counters.stalled_closes);
  counter("kws_serve_idle_closes_total", "Connections closed after the idle timeout", counters.idle_closes);
  counter("kws_serve_paused_reads_total", "Times a session stopped reading its client (Kafka's queue, open requests)", c.paused_reads);
  counter("kws_serve_lost_notices_total", "lost notices for sessions (messages Kafka deleted before they were read)", c.lost_notices);
  counter("kws_serve_per_ip_refusals_total", "Connections refused at accept (429): their address held serve.max_connections_per_ip", counters.per_ip_refusals);
  counter("kws_serve_origin_refusals_total", "Upgrades refused (403): their Origin matched no serve.allow_origin", counters.origin_refusals);
  counter("kws_serve_rate_limited_total", "Frames refused with rate_limited (serve.produce_rate, serve.produce_bytes_rate, serve.control_rate)", c.rate_limited);
  counter("kws_serve_rate_limit_closes_total", "Connections closed (1008) for going on over a rate limit (produce or control frames)", c.rate_limit_closes);
  counter("kws_serve_subscription_limit_refusals_total", "Subscriptions refused over serve.max_subscriptions (topic_limit, or 400 at connect)", c.subscription_limit_refusals);
  m.family("kws_serve_max_connections_per_ip", "gauge", "The per-address connection cap (serve.max_connections_per_ip; 0: none)")
      .sample("kws_serve_max_connections_per_ip", static_cast<double>(peer_limits.max_per_address()));
  m.family("kws_serve_peer_connections", "gauge", "TCP connections open now that count against their address's cap (plain HTTP and handshakes included)")
      .sample("kws_serve_peer_connections", static_cast<double>(peer_limits.connections()));
  m.family("kws_serve_peer_addresses", "gauge", "Peer addresses holding at least one connection now")
      .sample("kws_serve_peer_addresses", static_cast<double>(peer_limits.addresses()));
  counter("kws_serve_unsent_notices_total", "Replies and notices not sent to kafka-websocket clients (they did not ask for the kws protocol)", c.unsent_notices);
  m.family("kws_serve_pending_bytes", "gauge", "Bytes accepted for clients and not yet taken by their sockets")
      .sample("kws_serve_pending_bytes", static_cast<double>(pending_bytes));
  std::string out = m.text();
  if (services.extra_metrics) out += services.extra_metrics(visible);
  return out;
}

Server::Server(ServerOptions options, ServerServices services)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(services))) {
  impl_->setup();
}

Server::~Server() {
  // Connections still open here (clients that did not answer our close in
  // time) are dropped without a word; their handlers run once below so
  // that nothing they hold outlives the I/O context.
  for (const auto& e : impl_->snapshot()) {
    if (auto con = e.connection.lock()) con->abandon();
  }
  impl_->listener.close();
  if (impl_->metrics_listener) impl_->metrics_listener->close();
  if (impl_->mqtt_listener) impl_->mqtt_listener->close();
  impl_->tick_timer.cancel();
  {
    std::lock_guard<std::mutex> lock(impl_->wake_mutex);
    impl_->woken.clear();
  }
  impl_->io.restart();
  impl_->io.poll();
  std::lock_guard<std::mutex> lock(impl_->retiring_mutex);
  impl_->retiring.clear();
}

void Server::listen() {
  // A plain-text 503 means nothing to a TLS client.
  if (impl_->options.tls) impl_->listener.set_plain_refusals(false);
  impl_->listener.listen(impl_->options.host, impl_->options.port);
  std::weak_ptr<Impl> weak = impl_;
  if (impl_->options.metrics_listener) {
    impl_->metrics_listener = std::make_unique<ws::Listener>(impl_->io, *impl_->services.log);
    impl_->metrics_listener->listen(impl_->options.metrics_host, impl_->options.metrics_port);
    impl_->metrics_listener->start([weak](asio::ip::tcp::socket& socket) {
      auto self = weak.lock();
      return self && self->on_metrics_socket(socket);
    });
  }
  if (impl_->options.mqtt_listener && impl_->services.mqtt) {
    impl_->mqtt_listener = std::make_unique<ws::Listener>(impl_->io, *impl_->services.log);
    impl_->mqtt_listener->set_plain_refusals(false);  // an MQTT client cannot read an HTTP 503
    impl_->mqtt_listener->listen(impl_->options.mqtt_host, impl_->options.mqtt_port);
    impl_->mqtt_listener->start([weak](asio::ip::tcp::socket& socket) {
      auto self = weak.lock();
      return self && self->on_mqtt_socket(socket);
    });
  }
  impl_->listener.start([weak](asio::ip::tcp::socket& socket) {
    auto self = weak.lock();
    return self && self->on_socket(socket);
  });
}

std::string Server::mqtt_address() const { return impl_->mqtt_listener ? impl_->mqtt_listener->address() : std::string(); }

std::string Server::address() const { return impl_->listener.address(); }
std::string Server::metrics_address() const {
  return impl_->metrics_listener ? impl_->metrics_listener->address() : std::string();
}
bool Server::tls() const { return impl_->options.tls != nullptr; }

void Server::reload(std::shared_ptr<const ws::TlsContext> tls, std::shared_ptr<const TokenChecker> check_token) {
  std::weak_ptr<Impl> weak = impl_;
  asio::post(impl_->io, [weak, tls = std::move(tls), check_token = std::move(check_token)]() mutable {
    auto self = weak.lock();
    if (!self) return;
    // Only what the server was started with can be replaced: a server
    // without TLS does not start speaking it.
    bool replaced = false;
    if (tls && self->tls) {
      self->tls = std::move(tls);
      replaced = true;
    }
    if (check_token && self->check_token) {
      self->check_token = std::move(check_token);
      replaced = true;
    }
    if (replaced) ++self->counters.reloads;
  });
}
size_t Server::max_connections() const { return impl_->max_connections; }

void Server::run() {
  // One I/O thread: connections are not locked, and on 2 cores a second
  // thread measured worse (docs/ARCHITECTURE.md).
  impl_->tick();
  impl_->io.run();
}

void Server::stop_accepting() {
  std::weak_ptr<Impl> weak = impl_;
  asio::post(impl_->io, [weak] {
    if (auto self = weak.lock()) {
      self->finishing = true;
      self->listener.close();
      if (self->mqtt_listener) self->mqtt_listener->close();
    }
  });
}

std::future<void> Server::stop_reading() {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> ready = done->get_future();
  std::shared_ptr<Impl> self = impl_;
  asio::post(impl_->io, [self, done] {
    for (const auto& e : self->snapshot()) {
      if (auto con = e.connection.lock()) con->drain_and_pause();
    }
    done->set_value();
  });
  return ready;
}

void Server::finish(std::chrono::milliseconds grace) {
  std::shared_ptr<Impl> self = impl_;
  asio::post(impl_->io, [self, grace] {
    self->finishing = true;
    self->listener.close();
    if (self->metrics_listener) self->metrics_listener->close();
    if (self->mqtt_listener) self->mqtt_listener->close();
    self->tick_timer.cancel();
    for (const auto& e : self->snapshot()) {
      auto con = e.connection.lock();
      if (!con) continue;
      if (auto s = e.session.lock()) s->on_shutdown();
      con->close(CloseReason::going_away, "server shutting down");
    }
    auto deadline = Clock::now() + grace;
    auto waiter = std::make_shared<asio::steady_timer>(self->io);
    auto check = std::make_shared<std::function<void()>>();
    *check = [self, deadline, waiter, check] {
      bool empty;
      {
        std::lock_guard<std::mutex> lock(self->registry_mutex);
        empty = self->registry.empty();
      }
      if (empty || Clock::now() >= deadline) {
        self->io.stop();
        *check = nullptr;  // break the self-reference
        return;
      }
      waiter->expires_after(std::chrono::milliseconds(20));
      waiter->async_wait([check](const std::error_code&) {
        if (*check) (*check)();
      });
    };
    (*check)();
  });
}

void Server::on_delivery(const Delivery& d) {
  if (d.ok()) {
    ++impl_->session_counters.produced;
  } else {
    ++impl_->session_counters.produce_errors;
  }
  impl_->deliveries.route(d);
}

void Server::set_kafka_reachable(bool reachable, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(impl_->kafka_state_mutex);
    impl_->kafka_reachable = reachable;
    impl_->kafka_problem = reachable ? std::string() : why;
  }
  const HubNotice notice = impl_->kafka_notice();
  for (const auto& e : impl_->snapshot()) {
    if (auto session = e.session.lock()) session->notify(notice);
  }
}

const SessionCounters& Server::session_counters() const { return impl_->session_counters; }
const ServerCounters& Server::counters() const { return impl_->counters; }

uint64_t Server::dropped_total() const {
  uint64_t dropped = impl_->session_counters.dropped;
  for (const auto& e : impl_->snapshot()) {
    if (auto s = e.session.lock()) dropped += s->dropped();
  }
  return dropped;
}

size_t Server::open_connections() const {
  std::lock_guard<std::mutex> lock(impl_->registry_mutex);
  return impl_->registry.size();
}

std::string Server::metrics_text() const { return impl_->metrics(); }

bool Server::serve_descriptor(int fd) {
  // Asio checks nothing of the descriptor's family: an AF_UNIX socketpair
  // serves as well as TCP (TCP_NODELAY, which Connection::start asks for,
  // is then refused and ignored).
  asio::ip::tcp::socket socket(impl_->io);
  std::error_code ec;
  socket.assign(asio::ip::tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    return false;
  }
  return impl_->on_socket(socket);  // refused: the socket closes here
}

size_t Server::poll() {
  // Out of work, poll() leaves the context stopped; the next call starts again.
  if (impl_->io.stopped()) impl_->io.restart();
  return impl_->io.poll();
}

size_t Server::poll_one() {
  if (impl_->io.stopped()) impl_->io.restart();
  return impl_->io.poll_one();
}

void Server::run_chores() { impl_->chores(); }

}  // namespace kws
