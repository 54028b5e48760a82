#include "core/ws/server.hpp"

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/hub/group_reader.hpp"
#include "core/json_parse.hpp"
#include "core/outgoing.hpp"
#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "core/util/metrics_text.hpp"
#include "core/util/text.hpp"

namespace kws {

namespace {

// websocketpp's asio config with a smaller read buffer: it is allocated
// inside every connection, and idle connections are the common case.
struct WsConfig : public websocketpp::config::asio {
  typedef WsConfig type;
  static const size_t connection_read_buffer_size = 4096;
  static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
  static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
};

using WsServer = websocketpp::server<WsConfig>;
using ConnectionPtr = WsServer::connection_ptr;
using Hdl = websocketpp::connection_hdl;
namespace opcode = websocketpp::frame::opcode;
using Clock = std::chrono::steady_clock;

std::string json_string(std::string_view text) {
  std::string out = "\"";
  if (is_valid_utf8(text)) {
    append_json_escaped(out, text);
  } else {
    out += base64_encode(text);
  }
  return out + '"';
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding; nothing on a bad escape.
std::optional<std::string> url_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_digit(text[i + 1]);
      int lo = hex_digit(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

// What a client asked for in its handshake.
struct ConnectRequest {
  std::vector<std::string> topics;
  std::string group;
  OffsetSpec start;
  std::string start_text = "latest";
  bool start_explicit = false;
  WireFormat format = WireFormat::text;
  std::string subprotocol;  // "" when the client offered none
};

// Parses the query of GET /v2/broker/?...; returns the reason on failure.
std::optional<std::string> parse_connect_query(std::string_view query, ConnectRequest& out) {
  std::set<std::string> seen;
  size_t pos = 0;
  while (pos <= query.size() && !query.empty()) {
    size_t amp = query.find('&', pos);
    std::string_view part = query.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    pos = amp == std::string_view::npos ? query.size() + 1 : amp + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    auto name = url_decode(part.substr(0, eq));
    auto value = url_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
    if (!name || !value) return "malformed query: bad %-escape in '" + std::string(part) + "'";
    if (!seen.insert(*name).second) return "query parameter '" + *name + "' is given twice";
    if (*name == "topics") {
      size_t start = 0;
      while (start <= value->size()) {
        size_t comma = value->find(',', start);
        std::string topic = value->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? value->size() + 1 : comma + 1;
        if (topic.empty()) continue;
        if (auto problem = topic_name_problem(topic)) return "topics: " + *problem;
        out.topics.push_back(topic);
      }
    } else if (*name == "group.id") {
      if (value->empty()) return "group.id must not be empty";
      out.group = *value;
    } else if (*name == "offset") {
      try {
        std::string spec = *value == "latest" ? "end" : *value == "earliest" ? "beginning" : *value;
        out.start = parse_offset_spec(spec);
      } catch (const Error& e) {
        return std::string("offset: ") + e.what();
      }
      out.start_text = *value;
      out.start_explicit = true;
    } else {
      return "unknown query parameter '" + *name + "' (accepted: topics, group.id, offset)";
    }
  }
  if (out.start.kind == OffsetSpec::Kind::stored && out.group.empty()) return "offset=stored needs a group.id";
  return std::nullopt;
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  struct Session;

  ServerOptions options;
  ServerServices services;
  asio::io_context io;
  WsServer endpoint;
  ServerCounters counters;
  asio::steady_timer tick_timer{io};
  std::string bound_address;
  std::atomic<bool> finishing{false};
  std::atomic<uint64_t> next_token{1};
  std::atomic<size_t> group_sessions{0};

  std::mutex sessions_mutex;
  std::map<Hdl, std::shared_ptr<Session>, std::owner_less<Hdl>> sessions;

  struct PendingProduce {
    std::weak_ptr<Session> session;
    std::string id_json;
  };
  std::mutex pending_mutex;
  std::unordered_map<uint64_t, PendingProduce> pending;

  std::mutex retiring_mutex;
  std::vector<std::unique_ptr<GroupReader>> retiring;

  std::shared_ptr<Session> find(const Hdl& hdl) {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    auto it = sessions.find(hdl);
    return it == sessions.end() ? nullptr : it->second;
  }

  void setup();
  bool validate(Hdl hdl);
  void on_open(Hdl hdl);
  void on_close(Hdl hdl);
  void on_message(Hdl hdl, WsServer::message_ptr msg);
  void on_http(Hdl hdl);
  void tick();
  std::string metrics() const;
};

struct Server::Impl::Session : Subscriber, std::enable_shared_from_this<Session> {
  enum class Handled { done, queue_full };

  Session(std::shared_ptr<Impl> server, ConnectionPtr con, ConnectRequest request)
      : server(std::move(server)),
        con(std::move(con)),
        request(std::move(request)),
        outbox(this->server->options.client_buffer, this->server->options.slow_client, this->request.format) {}

  std::shared_ptr<Impl> server;  // keeps the I/O context alive for as long as anything holds a session
  ConnectionPtr con;
  ConnectRequest request;
  Outbox outbox;
  std::set<std::string> topics;
  std::unique_ptr<GroupReader> group_reader;
  std::atomic<bool> closed{false};
  std::atomic<size_t> pending_produce{0};
  // I/O-thread state.
  // Frames waiting for room in Kafka's queue. A list, not a deque: it is
  // almost always empty, and an empty libstdc++ deque holds ~550 bytes, for
  // every connection (docs/BENCHMARKS.md, memory per connection).
  std::list<std::pair<opcode::value, std::string>> blocked;
  bool paused = false;
  std::unique_ptr<asio::steady_timer> retry_timer;
  std::atomic<int64_t> last_activity_ms{0};
  Clock::time_point last_ping{};

  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
  }
  void touch() { last_activity_ms = now_ms(); }

  // Subscriber: called from the hub's or a reader's thread.
  void deliver(const FramePtr* frames, size_t count) override {
    if (closed) return;
    after_offer(outbox.offer(frames, count));
  }
  void reply(const std::string& json) override {
    if (closed) return;
    after_offer(outbox.offer_reply(ws_text_frame(json)));
  }

  void after_offer(Outbox::Offer o) {
    if (o.overflow) {
      auto self = shared_from_this();
      asio::post(server->io, [self] { self->close_slow(); });
    } else if (o.schedule_flush) {
      auto self = shared_from_this();
      asio::post(server->io, [self] { self->flush(); });
    }
  }

  void client_error(std::string_view code, std::string_view message, const std::string& id_json,
                    std::string_view topic = {}) {
    ++server->counters.client_errors;
    reply(error_reply(code, message, id_json, topic));
  }

  // One write with everything queued: the coalescing that makes websocketpp
  // fast (docs/ARCHITECTURE.md).
  void flush() {
    if (closed) return;
    std::string bytes;
    size_t frames = outbox.take(bytes);
    if (bytes.empty()) return;
    auto msg = std::make_shared<WsConfig::message_type>(nullptr, opcode::text, 0);
    msg->get_raw_payload().swap(bytes);  // already complete frames: header stays empty
    msg->set_prepared(true);
    size_t size = msg->get_raw_payload().size();
    if (!con->send(msg)) {
      server->counters.frames_out += frames;
      server->counters.bytes_out += size;
      ++server->counters.writes;
    }
    outbox.set_in_socket(con->get_buffered_amount());
  }

  void close_slow() {
    if (closed) return;
    ++server->counters.slow_closes;
    std::error_code ec;
    con->close(websocketpp::close::status::policy_violation,
               "slow client: more than " + std::to_string(server->options.client_buffer) + " bytes pending", ec);
  }

  void pause() {
    if (paused) return;
    paused = true;
    ++server->counters.paused_reads;
    con->pause_reading();
  }
  void resume_if_possible() {
    if (!paused || !blocked.empty() || pending_produce >= server->options.max_pending_produce) return;
    paused = false;
    con->resume_reading();
  }

  void on_frame(opcode::value op, std::string payload) {
    touch();
    ++server->counters.frames_in;
    server->counters.bytes_in += payload.size();
    // Order is kept: once one frame waits for Kafka's queue, later ones wait behind it.
    if (!blocked.empty()) {
      blocked.emplace_back(op, std::move(payload));
      return;
    }
    if (handle(op, payload) == Handled::queue_full) {
      blocked.emplace_back(op, std::move(payload));
      pause();
      arm_retry();
    }
  }

  void arm_retry() {
    if (!retry_timer) retry_timer = std::make_unique<asio::steady_timer>(server->io);
    retry_timer->expires_after(std::chrono::milliseconds(5));
    auto self = shared_from_this();
    retry_timer->async_wait([self](const std::error_code& ec) {
      if (!ec) self->retry_blocked();
    });
  }

  void retry_blocked() {
    if (closed) return;
    while (!blocked.empty()) {
      if (handle(blocked.front().first, blocked.front().second) == Handled::queue_full) {
        arm_retry();
        return;
      }
      blocked.pop_front();
    }
    resume_if_possible();
  }

  Handled handle(opcode::value op, const std::string& payload) {
    if (op == opcode::binary) return handle_binary(payload);
    return handle_text(payload);
  }

  Handled handle_binary(const std::string& payload) {
    if (payload.size() > server->options.max_frame) {
      client_error("too_large", "frame of " + std::to_string(payload.size()) + " bytes is over the limit of " +
                                    std::to_string(server->options.max_frame), "");
      return Handled::done;
    }
    if (payload.empty() || payload.size() < 1 + static_cast<size_t>(static_cast<unsigned char>(payload[0]))) {
      client_error("bad_frame", "a binary frame is [1 byte topic length][topic][message]; this one is too short", "");
      return Handled::done;
    }
    size_t length = static_cast<unsigned char>(payload[0]);
    std::string_view topic(payload.data() + 1, length);
    if (auto problem = topic_name_problem(topic)) {
      client_error("bad_topic", *problem, "", is_valid_utf8(topic) ? topic : std::string_view());
      return Handled::done;
    }
    RecordPolicy policy;
    PreparedRecord prepared;
    prepare_plain_record(std::string_view(payload).substr(1 + length), policy, prepared, topic);
    return produce(prepared.record, "");
  }

  Handled handle_text(const std::string& payload) {
    if (payload.size() > server->options.max_frame) {
      client_error("too_large", "frame of " + std::to_string(payload.size()) + " bytes is over the limit of " +
                                    std::to_string(server->options.max_frame), "");
      return Handled::done;
    }
    std::string why;
    std::optional<nlohmann::json> doc = parse_json_text(payload, why);
    if (!doc) {
      client_error("bad_json", why, "");
      return Handled::done;
    }
    if (!doc->is_object()) {
      client_error("bad_json", "a frame must be a JSON object", "");
      return Handled::done;
    }
    std::string id_json;
    if (auto it = doc->find("id"); it != doc->end()) {
      if (!it->is_string() && !it->is_number()) {
        client_error("bad_frame", "\"id\" must be a string or a number", "");
        return Handled::done;
      }
      id_json = it->dump();
    }
    std::string type = "produce";
    if (auto it = doc->find("type"); it != doc->end()) {
      if (!it->is_string()) {
        client_error("bad_frame", "\"type\" must be a string", id_json);
        return Handled::done;
      }
      type = it->get<std::string>();
    }
    if (type == "produce") return handle_produce(*doc, id_json);
    if (type == "subscribe" || type == "unsubscribe") {
      handle_control(*doc, type == "subscribe", id_json);
      return Handled::done;
    }
    client_error("unknown_type", "unknown frame type \"" + type + "\" (expected produce, subscribe or unsubscribe)",
                 id_json);
    return Handled::done;
  }

  Handled handle_produce(const nlohmann::json& doc, const std::string& id_json) {
    auto topic = doc.find("topic");
    if (topic == doc.end() || !topic->is_string()) {
      client_error("bad_frame", "\"topic\" is required and must be a string", id_json);
      return Handled::done;
    }
    if (auto problem = topic_name_problem(topic->get_ref<const std::string&>())) {
      client_error("bad_topic", *problem, id_json);
      return Handled::done;
    }
    DecodedEnvelope decoded = decode_envelope_document(doc);
    if (!decoded) {
      client_error("bad_frame", decoded.error, id_json, topic->get_ref<const std::string&>());
      return Handled::done;
    }
    RecordPolicy policy;
    PreparedRecord prepared;
    if (auto problem = prepare_envelope_record(*decoded.message, policy, prepared)) {
      client_error("bad_frame", *problem, id_json, prepared.topic);
      return Handled::done;
    }
    return produce(prepared.record, id_json);
  }

  Handled produce(OutgoingRecord record, const std::string& id_json) {
    uint64_t token = server->next_token++;
    {
      std::lock_guard<std::mutex> lock(server->pending_mutex);
      server->pending.emplace(token, PendingProduce{weak_from_this(), id_json});
    }
    record.token = token;
    ++pending_produce;
    ProduceOutcome out = server->services.producer->try_produce(record);
    if (out.queued()) {
      if (pending_produce >= server->options.max_pending_produce) pause();
      return Handled::done;
    }
    --pending_produce;
    {
      std::lock_guard<std::mutex> lock(server->pending_mutex);
      server->pending.erase(token);
    }
    if (out.error == ProduceError::queue_full) return Handled::queue_full;
    ++server->counters.produce_errors;
    reply(error_reply(produce_error_code(out.error), out.message, id_json, record.topic));
    return Handled::done;
  }

  void handle_control(const nlohmann::json& doc, bool subscribe, const std::string& id_json) {
    if (!request.group.empty()) {
      client_error("bad_frame", "a group.id session cannot change its topics; reconnect with other topics", id_json);
      return;
    }
    std::vector<std::string> names;
    auto topics_it = doc.find("topics");
    auto topic_it = doc.find("topic");
    if (topics_it != doc.end() && topics_it->is_array()) {
      for (const auto& t : *topics_it) {
        if (!t.is_string()) {
          client_error("bad_frame", "\"topics\" must be an array of strings", id_json);
          return;
        }
        names.push_back(t.get<std::string>());
      }
    } else if (topic_it != doc.end() && topic_it->is_string()) {
      names.push_back(topic_it->get<std::string>());
    } else {
      client_error("bad_frame", "\"topics\" (an array of strings) is required", id_json);
      return;
    }
    if (names.empty()) {
      client_error("bad_frame", "\"topics\" must not be empty", id_json);
      return;
    }
    OffsetSpec start;
    std::string start_text = "latest";
    if (subscribe) {
      if (auto it = doc.find("offset"); it != doc.end() && !it->is_null()) {
        if (it->is_number_integer()) {
          start_text = it->dump();
        } else if (it->is_string()) {
          start_text = it->get<std::string>();
        } else {
          client_error("bad_offset", "\"offset\" must be a string or an integer", id_json);
          return;
        }
        try {
          start = parse_offset_spec(start_text == "latest" ? "end" : start_text == "earliest" ? "beginning" : start_text);
        } catch (const Error& e) {
          client_error("bad_offset", e.what(), id_json);
          return;
        }
      } else {
        start.kind = OffsetSpec::Kind::end;
      }
    }
    for (const auto& name : names) {
      if (auto problem = topic_name_problem(name)) {
        client_error("bad_topic", *problem, id_json, is_valid_utf8(name) ? name : std::string());
        continue;
      }
      if (subscribe && request.format == WireFormat::binary && name.size() > kMaxBinaryTopicLength) {
        client_error("bad_topic", "kafka-binary frames cannot carry a topic name over 255 bytes", id_json, name);
        continue;
      }
      if (subscribe) {
        topics.insert(name);
        server->services.hub->subscribe(shared_from_this(), name, start, start_text, id_json);
      } else {
        topics.erase(name);
        server->services.hub->unsubscribe(shared_from_this(), name, id_json);
      }
    }
  }
};

void Server::Impl::setup() {
  endpoint.clear_access_channels(websocketpp::log::alevel::all);
  endpoint.clear_error_channels(websocketpp::log::elevel::all);
  endpoint.init_asio(&io);
  endpoint.set_reuse_addr(true);
  endpoint.set_listen_backlog(4096);
  // websocketpp closes a connection (1009) on frames over this; kws answers
  // frames between --max-frame and this with a too_large error instead.
  endpoint.set_max_message_size(options.max_frame * 2 + 65536);
  std::weak_ptr<Impl> weak = weak_from_this();
  endpoint.set_tcp_pre_init_handler([this](Hdl hdl) {
    std::error_code ec;
    endpoint.get_con_from_hdl(hdl)->get_socket().set_option(asio::ip::tcp::no_delay(true), ec);
  });
  endpoint.set_validate_handler([this](Hdl hdl) { return validate(hdl); });
  endpoint.set_open_handler([this](Hdl hdl) { on_open(hdl); });
  endpoint.set_close_handler([this](Hdl hdl) { on_close(hdl); });
  endpoint.set_fail_handler([this](Hdl hdl) { on_close(hdl); });
  endpoint.set_message_handler([this](Hdl hdl, WsServer::message_ptr msg) { on_message(hdl, std::move(msg)); });
  endpoint.set_http_handler([this](Hdl hdl) { on_http(hdl); });
  endpoint.set_pong_handler([this](Hdl hdl, std::string) {
    if (auto s = find(hdl)) s->touch();
  });
}

bool Server::Impl::validate(Hdl hdl) {
  ConnectionPtr con = endpoint.get_con_from_hdl(hdl);
  auto refuse = [&](websocketpp::http::status_code::value code, const std::string& why) {
    ++counters.handshakes_refused;
    con->set_status(code);
    con->set_body(why + "\n");
    con->append_header("Content-Type", "text/plain; charset=utf-8");
    return false;
  };
  if (finishing) return refuse(websocketpp::http::status_code::service_unavailable, "shutting down");
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    if (sessions.size() >= options.max_connections) {
      return refuse(websocketpp::http::status_code::service_unavailable,
                    "too many connections (" + std::to_string(options.max_connections) + ")");
    }
  }
  const std::string& resource = con->get_resource();
  size_t q = resource.find('?');
  std::string path = resource.substr(0, q);
  if (path != "/v2/broker/" && path != "/v2/broker") {
    return refuse(websocketpp::http::status_code::not_found, "no WebSocket endpoint at " + path + "; use /v2/broker/");
  }
  ConnectRequest request;
  if (auto problem = parse_connect_query(q == std::string::npos ? std::string_view() : std::string_view(resource).substr(q + 1), request)) {
    return refuse(websocketpp::http::status_code::bad_request, *problem);
  }
  const auto& offered = con->get_requested_subprotocols();
  if (!offered.empty()) {
    for (const auto& p : offered) {
      if (p == "kafka-text" || p == "kafka-binary") {
        request.subprotocol = p;
        break;
      }
    }
    if (request.subprotocol.empty()) {
      return refuse(websocketpp::http::status_code::bad_request,
                    "unsupported subprotocol; kws serve speaks kafka-text and kafka-binary");
    }
    con->select_subprotocol(request.subprotocol);
    if (request.subprotocol == "kafka-binary") request.format = WireFormat::binary;
  }
  for (const auto& t : request.topics) {
    if (request.format == WireFormat::binary && t.size() > kMaxBinaryTopicLength) {
      return refuse(websocketpp::http::status_code::bad_request, "kafka-binary cannot carry topic names over 255 bytes");
    }
  }
  auto session = std::make_shared<Session>(shared_from_this(), con, std::move(request));
  session->touch();
  std::lock_guard<std::mutex> lock(sessions_mutex);
  sessions.emplace(hdl, std::move(session));
  return true;
}

void Server::Impl::on_open(Hdl hdl) {
  auto s = find(hdl);
  if (!s) return;
  ++counters.connections_opened;
  s->touch();
  s->last_ping = Clock::now();
  if (!s->request.group.empty()) {
    if (s->request.topics.empty()) {
      s->client_error("bad_frame", "a group.id session needs topics in the query", "");
      return;
    }
    if (group_sessions >= options.max_group_sessions) {
      s->client_error("group_limit",
                      "too many group.id sessions on this bridge (" + std::to_string(options.max_group_sessions) + ")",
                      "");
      std::error_code ec;
      s->con->close(websocketpp::close::status::try_again_later, "too many group sessions", ec);
      return;
    }
    ++group_sessions;
    GroupRequest g{s->request.group, s->request.topics, s->request.start, s->request.start_explicit};
    for (const auto& t : g.topics) {
      s->reply("{\"type\":\"subscribed\",\"topic\":" + json_string(t) + ",\"group\":" + json_string(g.group) +
               ",\"offset\":" + json_string(s->request.start_text) + "}");
    }
    std::weak_ptr<Session> weak = s;
    auto open = [this, g] { return services.open_group(g); };
    auto backlog = [weak] {
      auto locked = weak.lock();
      return locked ? locked->outbox.pending_bytes() : 0;
    };
    s->group_reader = std::make_unique<GroupReader>(open, s, backlog, options.client_buffer / 2, *services.log);
    return;
  }
  for (const auto& t : s->request.topics) {
    s->topics.insert(t);
    services.hub->subscribe(s, t, s->request.start, s->request.start_text, "");
  }
}

void Server::Impl::on_close(Hdl hdl) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    auto it = sessions.find(hdl);
    if (it == sessions.end()) return;
    s = std::move(it->second);
    sessions.erase(it);
  }
  s->closed = true;
  ++counters.connections_closed;
  counters.dropped += s->outbox.dropped();
  if (s->retry_timer) s->retry_timer->cancel();
  services.hub->remove(s);
  if (s->group_reader) {
    --group_sessions;
    s->group_reader->stop();
    std::lock_guard<std::mutex> lock(retiring_mutex);
    retiring.push_back(std::move(s->group_reader));
  }
}

void Server::Impl::on_message(Hdl hdl, WsServer::message_ptr msg) {
  auto s = find(hdl);
  if (!s) return;
  s->on_frame(msg->get_opcode(), std::move(msg->get_raw_payload()));
}

void Server::Impl::on_http(Hdl hdl) {
  ConnectionPtr con = endpoint.get_con_from_hdl(hdl);
  std::string path = con->get_resource().substr(0, con->get_resource().find('?'));
  auto respond = [&](websocketpp::http::status_code::value code, const std::string& type, std::string body) {
    con->set_status(code);
    con->append_header("Content-Type", type);
    con->append_header("Cache-Control", "no-store");
    con->set_body(std::move(body));
  };
  if (path == "/" || path == "/index.html") {
    respond(websocketpp::http::status_code::ok, "text/html; charset=utf-8", std::string(services.demo_page));
  } else if (path == "/healthz") {
    respond(websocketpp::http::status_code::ok, "text/plain; charset=utf-8", "ok\n");
  } else if (path == "/readyz") {
    bool ready = services.kafka_ready && services.kafka_ready();
    respond(ready ? websocketpp::http::status_code::ok : websocketpp::http::status_code::service_unavailable,
            "text/plain; charset=utf-8", ready ? "ready\n" : "Kafka is not reachable\n");
  } else if (path == "/metrics") {
    respond(websocketpp::http::status_code::ok, "text/plain; version=0.0.4; charset=utf-8", metrics());
  } else if (path == "/v2/broker/" || path == "/v2/broker") {
    respond(websocketpp::http::status_code::upgrade_required, "text/plain; charset=utf-8",
            "this is a WebSocket endpoint: connect with a WebSocket client\n");
  } else {
    respond(websocketpp::http::status_code::not_found, "text/plain; charset=utf-8",
            "not found; kws serve answers /, /v2/broker/ (WebSocket), /healthz, /readyz, /metrics\n");
  }
}

void Server::Impl::tick() {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    all.reserve(sessions.size());
    for (auto& [hdl, s] : sessions) all.push_back(s);
  }
  const int64_t now = Session::now_ms();
  const auto clock_now = Clock::now();
  for (auto& s : all) {
    if (s->closed || s->con->get_state() != websocketpp::session::state::open) continue;
    s->outbox.set_in_socket(s->con->get_buffered_amount());
    std::error_code ec;
    if (now - s->last_activity_ms > options.idle_timeout.count()) {
      ++counters.idle_closes;
      s->con->close(websocketpp::close::status::normal, "idle timeout", ec);
      continue;
    }
    if (clock_now - s->last_ping >= options.ping_interval) {
      s->last_ping = clock_now;
      s->con->ping("", ec);
    }
  }
  {
    std::lock_guard<std::mutex> lock(retiring_mutex);
    retiring.erase(std::remove_if(retiring.begin(), retiring.end(), [](const auto& r) { return r->finished(); }),
                   retiring.end());
  }
  if (finishing) return;
  tick_timer.expires_after(std::chrono::milliseconds(250));
  std::weak_ptr<Impl> weak = weak_from_this();
  tick_timer.async_wait([weak](const std::error_code& ec) {
    if (auto self = weak.lock(); self && !ec) self->tick();
  });
}

std::string Server::Impl::metrics() const {
  MetricsText m;
  auto counter = [&](const char* name, const char* help, uint64_t value) {
    m.family(name, "counter", help).sample(name, static_cast<double>(value));
  };
  size_t open = 0;
  uint64_t dropped_live = 0;
  size_t pending_bytes = 0;
  {
    std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(sessions_mutex));
    open = sessions.size();
    for (const auto& [hdl, s] : sessions) {
      dropped_live += s->outbox.dropped();
      pending_bytes += s->outbox.pending_bytes();
    }
  }
  m.family("kws_serve_connections", "gauge", "WebSocket connections open now").sample("kws_serve_connections", open);
  counter("kws_serve_connections_opened_total", "WebSocket connections accepted", counters.connections_opened);
  counter("kws_serve_handshakes_refused_total", "Upgrade requests answered with an HTTP error", counters.handshakes_refused);
  counter("kws_serve_frames_in_total", "Frames received from clients", counters.frames_in);
  counter("kws_serve_bytes_in_total", "Payload bytes received from clients", counters.bytes_in);
  counter("kws_serve_frames_out_total", "Frames sent to clients (messages and replies)", counters.frames_out);
  counter("kws_serve_bytes_out_total", "Bytes written to clients, WebSocket framing included", counters.bytes_out);
  counter("kws_serve_writes_total", "Coalesced socket writes", counters.writes);
  counter("kws_serve_produced_total", "Client messages Kafka acknowledged", counters.produced);
  counter("kws_serve_produce_errors_total", "Client messages Kafka refused or did not confirm", counters.produce_errors);
  counter("kws_serve_client_errors_total", "Error frames sent for bad client input", counters.client_errors);
  counter("kws_serve_dropped_total", "Messages dropped for slow clients (drop-oldest)", counters.dropped + dropped_live);
  counter("kws_serve_slow_client_closes_total", "Connections closed for reading too slowly", counters.slow_closes);
  counter("kws_serve_idle_closes_total", "Connections closed after the idle timeout", counters.idle_closes);
  counter("kws_serve_paused_reads_total", "Times a socket stopped being read while Kafka's queue was full", counters.paused_reads);
  m.family("kws_serve_pending_bytes", "gauge", "Bytes accepted for clients and not yet taken by their sockets")
      .sample("kws_serve_pending_bytes", static_cast<double>(pending_bytes));
  std::string out = m.text();
  if (services.extra_metrics) out += services.extra_metrics();
  return out;
}

Server::Server(ServerOptions options, ServerServices services) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->services = std::move(services);
  impl_->setup();
}

Server::~Server() {
  // Sessions hold the Impl; let them go so the I/O context can be torn down.
  std::map<Hdl, std::shared_ptr<Impl::Session>, std::owner_less<Hdl>> sessions;
  {
    std::lock_guard<std::mutex> lock(impl_->sessions_mutex);
    sessions.swap(impl_->sessions);
  }
  for (auto& [hdl, s] : sessions) {
    s->closed = true;
    if (s->group_reader) s->group_reader->stop();
  }
  for (auto& [hdl, s] : sessions) s->group_reader.reset();
  std::lock_guard<std::mutex> lock(impl_->retiring_mutex);
  impl_->retiring.clear();
}

void Server::listen() {
  std::error_code ec;
  asio::ip::tcp::endpoint where(asio::ip::make_address(impl_->options.host, ec), impl_->options.port);
  if (ec) throw usage_error("bad listen address '" + impl_->options.host + "': " + ec.message());
  impl_->endpoint.listen(where, ec);
  if (ec) {
    throw Error("cannot listen on " + impl_->options.host + ":" + std::to_string(impl_->options.port) + ": " +
                ec.message());
  }
  impl_->endpoint.start_accept(ec);
  if (ec) throw Error("cannot accept connections: " + ec.message());
  asio::ip::tcp::endpoint local = impl_->endpoint.get_local_endpoint(ec);
  std::string host = local.address().to_string();
  if (local.address().is_v6()) host = "[" + host + "]";
  impl_->bound_address = host + ":" + std::to_string(local.port());
}

std::string Server::address() const { return impl_->bound_address; }

void Server::run() {
  impl_->tick();
  std::vector<std::thread> extra;
  for (int i = 1; i < impl_->options.io_threads; ++i) extra.emplace_back([this] { impl_->io.run(); });
  impl_->io.run();
  for (auto& t : extra) t.join();
}

void Server::stop_accepting() {
  std::weak_ptr<Impl> weak = impl_;
  asio::post(impl_->io, [weak] {
    if (auto self = weak.lock()) {
      self->finishing = true;
      std::error_code ec;
      self->endpoint.stop_listening(ec);
    }
  });
}

void Server::finish(std::chrono::milliseconds grace) {
  std::shared_ptr<Impl> self = impl_;
  asio::post(impl_->io, [self, grace] {
    self->finishing = true;
    std::error_code ec;
    self->endpoint.stop_listening(ec);
    self->tick_timer.cancel();
    std::vector<std::shared_ptr<Impl::Session>> all;
    {
      std::lock_guard<std::mutex> lock(self->sessions_mutex);
      for (auto& [hdl, s] : self->sessions) all.push_back(s);
    }
    for (auto& s : all) {
      s->flush();
      s->con->close(websocketpp::close::status::going_away, "server shutting down", ec);
    }
    auto deadline = Clock::now() + grace;
    auto waiter = std::make_shared<asio::steady_timer>(self->io);
    auto check = std::make_shared<std::function<void()>>();
    *check = [self, deadline, waiter, check] {
      bool empty;
      {
        std::lock_guard<std::mutex> lock(self->sessions_mutex);
        empty = self->sessions.empty();
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
  Impl::PendingProduce pending;
  {
    std::lock_guard<std::mutex> lock(impl_->pending_mutex);
    auto it = impl_->pending.find(d.token);
    if (it == impl_->pending.end()) return;
    pending = std::move(it->second);
    impl_->pending.erase(it);
  }
  if (d.ok()) {
    ++impl_->counters.produced;
  } else {
    ++impl_->counters.produce_errors;
  }
  auto s = pending.session.lock();
  if (!s) return;
  if (d.ok()) {
    if (!pending.id_json.empty()) {
      s->reply("{\"type\":\"ack\",\"id\":" + pending.id_json + ",\"topic\":" + json_string(d.topic) +
               ",\"partition\":" + std::to_string(d.partition) + ",\"offset\":" + std::to_string(d.offset) + "}");
    }
  } else {
    s->reply(error_reply(produce_error_code(d.error), d.message, pending.id_json, d.topic));
  }
  size_t before = s->pending_produce--;
  if (before == impl_->options.max_pending_produce) {
    asio::post(impl_->io, [s] { s->resume_if_possible(); });
  }
}

const ServerCounters& Server::counters() const { return impl_->counters; }

size_t Server::open_connections() const {
  std::lock_guard<std::mutex> lock(impl_->sessions_mutex);
  return impl_->sessions.size();
}

std::string Server::metrics_text() const { return impl_->metrics(); }

}  // namespace kws
