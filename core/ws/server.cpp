#include "core/ws/server.hpp"

#include <asio.hpp>
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
#include "core/ws/connection.hpp"

namespace kws {

namespace {

using ws::Connection;
using ws::Opcode;
using ConnectionPtr = std::shared_ptr<Connection>;
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
  asio::ip::tcp::acceptor acceptor{io};
  asio::steady_timer accept_pause{io};  // out of descriptors: accept again later
  bool accept_error_logged = false;
  Connection::Limits limits;
  ServerCounters counters;
  asio::steady_timer tick_timer{io};
  std::string bound_address;
  std::atomic<bool> finishing{false};
  std::atomic<uint64_t> next_token{1};
  std::atomic<size_t> group_sessions{0};

  std::mutex sessions_mutex;
  std::unordered_map<const Connection*, std::shared_ptr<Session>> sessions;

  // Sessions with something new in their outbox, flushed by one handler on
  // the I/O thread: the hub thread posts once per batch, not once per client.
  std::mutex dirty_mutex;
  std::vector<std::shared_ptr<Session>> dirty;
  bool flush_posted = false;

  struct PendingProduce {
    std::weak_ptr<Session> session;
    std::string id_json;
  };
  std::mutex pending_mutex;
  std::unordered_map<uint64_t, PendingProduce> pending;

  std::mutex retiring_mutex;
  std::vector<std::unique_ptr<GroupReader>> retiring;

  // The sessions now, to act on without holding the lock (acting may close
  // one, which takes the lock to remove it).
  std::vector<std::shared_ptr<Session>> snapshot() {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    std::vector<std::shared_ptr<Session>> all;
    all.reserve(sessions.size());
    for (auto& [con, s] : sessions) all.push_back(s);
    return all;
  }

  void setup();
  void accept();
  void on_request(const ConnectionPtr& con, const ws::HttpRequest& request);
  void upgrade(const ConnectionPtr& con, const ws::HttpRequest& request, const std::string& target);
  void on_open(const std::shared_ptr<Session>& s);
  void on_close(const Connection* con);
  void schedule_flush(std::shared_ptr<Session> s);
  void flush_dirty();
  void tick();
  std::string metrics() const;
};

struct Server::Impl::Session : Subscriber, ws::ConnectionEvents, std::enable_shared_from_this<Session> {
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
  std::atomic<bool> slow_close_posted{false};
  std::atomic<size_t> pending_produce{0};
  // I/O-thread state.
  // Frames waiting for room in Kafka's queue. A list, not a deque: it is
  // almost always empty, and an empty libstdc++ deque holds ~550 bytes, for
  // every connection (docs/BENCHMARKS.md, memory per connection).
  std::list<std::pair<Opcode, std::string>> blocked;
  bool paused = false;
  std::vector<Outbox::Item> flush_items;  // reused by flush(); empty between flushes
  std::unique_ptr<asio::steady_timer> retry_timer;
  std::atomic<int64_t> last_activity_ms{0};
  Clock::time_point last_ping{};

  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
  }
  void touch() { last_activity_ms = now_ms(); }

  // Subscriber: called from the hub's or a reader's thread.
  void deliver(const FrameBatchPtr& batch) override {
    if (closed) return;
    after_offer(outbox.offer(batch));
  }
  void reply(const std::string& json) override {
    if (closed) return;
    after_offer(outbox.offer_reply(ws_text_frame(json)));
  }

  void after_offer(Outbox::Offer o) {
    if (o.overflow) {
      if (slow_close_posted.exchange(true)) return;
      auto self = shared_from_this();
      asio::post(server->io, [self] { self->close_slow(); });
    } else if (o.schedule_flush) {
      server->schedule_flush(shared_from_this());
    }
  }

  void client_error(std::string_view code, std::string_view message, const std::string& id_json,
                    std::string_view topic = {}) {
    ++server->counters.client_errors;
    reply(error_reply(code, message, id_json, topic));
  }

  // ws::ConnectionEvents, on the I/O thread.
  void on_message(Opcode op, std::string& payload) override { on_frame(op, std::move(payload)); }
  void on_pong() override { touch(); }
  void on_written(size_t buffered) override { outbox.set_in_socket(buffered); }
  void on_closed() override { server->on_close(con.get()); }

  // One write with everything queued, shared batches written from the
  // hub's own bytes: the coalescing of docs/ARCHITECTURE.md.
  void flush() {
    // Closing: the connection sends nothing after its close frame, so keep
    // the frames out of the counters too.
    if (closed || !con->is_open()) return;
    std::vector<Outbox::Item>& items = flush_items;
    size_t frames = outbox.take(items);
    if (items.empty()) return;
    size_t size = 0;
    for (auto& item : items) {
      if (item.batch) {
        const std::string& bytes = item.batch->bytes(request.format);
        size += bytes.size();
        con->queue_shared(std::move(item.batch), bytes);
      } else {
        size += item.reply.size();
        con->queue(std::move(item.reply));
      }
    }
    items.clear();  // keeps its capacity for the next flush (Outbox::take swaps it in)
    con->write_queued();
    server->counters.frames_out += frames;
    server->counters.bytes_out += size;
    ++server->counters.writes;
    outbox.set_in_socket(con->buffered());
  }

  void close_slow() {
    if (closed || !con->is_open()) return;
    ++server->counters.slow_closes;
    // What it has not been handed yet it will never get: the close frame
    // goes next, behind the write already in flight.
    con->close(ws::close_policy,
               "slow client: more than " + std::to_string(server->options.client_buffer) + " bytes pending",
               /*drop_queued=*/true);
  }

  void pause() {
    if (paused) return;
    paused = true;
    ++server->counters.paused_reads;
    con->pause_reading();
  }
  void resume_if_possible() {
    if (!paused || !blocked.empty() || pending_produce >= server->options.max_pending_produce) return;
    if (server->finishing) return;  // shutting down: stop_reading() keeps it paused
    paused = false;
    con->resume_reading();
  }

  void on_frame(Opcode op, std::string payload) {
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

  Handled handle(Opcode op, const std::string& payload) {
    if (op == Opcode::binary) return handle_binary(payload);
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
    DecodedEnvelope decoded = decode_envelope_document(doc, {"id", "type"});
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
  // Frames between --max-frame and this get a too_large error frame and the
  // session goes on; beyond it the connection is closed with 1009.
  limits.max_message = options.max_frame * 2 + 65536;
}

void Server::Impl::accept() {
  std::weak_ptr<Impl> weak = weak_from_this();
  acceptor.async_accept([weak](const std::error_code& ec, asio::ip::tcp::socket socket) {
    auto self = weak.lock();
    if (!self || !self->acceptor.is_open()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of descriptors (or another transient failure): the pending
      // connection stays in the backlog; try again shortly instead of spinning.
      if (!self->accept_error_logged) {
        self->accept_error_logged = true;
        self->services.log->warning("cannot accept connections: " + ec.message() + "; retrying every 100 ms");
      }
      self->accept_pause.expires_after(std::chrono::milliseconds(100));
      self->accept_pause.async_wait([weak](const std::error_code& e) {
        if (auto again = weak.lock(); again && !e) again->accept();
      });
      return;
    }
    self->accept_error_logged = false;
    auto con = std::make_shared<Connection>(std::move(socket), self->limits,
                                            [weak](const ConnectionPtr& c, const ws::HttpRequest& r) {
                                              if (auto impl = weak.lock()) impl->on_request(c, r);
                                            });
    con->start();
    self->accept();
  });
}

void Server::Impl::on_request(const ConnectionPtr& con, const ws::HttpRequest& request) {
  const std::string& target = request.target;
  std::string path = target.substr(0, target.find('?'));
  const char* text = "text/plain; charset=utf-8";
  if (request.is_upgrade()) {
    upgrade(con, request, target);
    return;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    con->respond(405, text, "kws serve answers GET only\n", "Allow: GET\r\n");
    return;
  }
  if (path == "/" || path == "/index.html") {
    con->respond(200, "text/html; charset=utf-8", services.demo_page);
  } else if (path == "/healthz") {
    con->respond(200, text, "ok\n");
  } else if (path == "/readyz") {
    bool ready = services.kafka_ready && services.kafka_ready();
    con->respond(ready ? 200 : 503, text, ready ? "ready\n" : "Kafka is not reachable\n");
  } else if (path == "/metrics") {
    con->respond(200, "text/plain; version=0.0.4; charset=utf-8", metrics());
  } else if (path == "/v2/broker/" || path == "/v2/broker") {
    con->respond(426, text, "this is a WebSocket endpoint: connect with a WebSocket client\n",
                 "Upgrade: websocket\r\n");
  } else {
    con->respond(404, text, "not found; kws serve answers /, /v2/broker/ (WebSocket), /healthz, /readyz, /metrics\n");
  }
}

void Server::Impl::upgrade(const ConnectionPtr& con, const ws::HttpRequest& request, const std::string& target) {
  auto refuse = [&](int status, const std::string& why, std::string_view extra = {}) {
    ++counters.handshakes_refused;
    con->respond(status, "text/plain; charset=utf-8", why + "\n", extra);
  };
  bool version_mismatch = false;
  if (auto problem = ws::upgrade_problem(request, version_mismatch)) {
    if (version_mismatch) return refuse(426, *problem, "Sec-WebSocket-Version: 13\r\n");
    return refuse(400, *problem);
  }
  if (finishing) return refuse(503, "shutting down");
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    if (sessions.size() >= options.max_connections) {
      return refuse(503, "too many connections (" + std::to_string(options.max_connections) + ")");
    }
  }
  size_t q = target.find('?');
  std::string path = target.substr(0, q);
  if (path != "/v2/broker/" && path != "/v2/broker") {
    return refuse(404, "no WebSocket endpoint at " + path + "; use /v2/broker/");
  }
  ConnectRequest parsed;
  if (auto problem = parse_connect_query(q == std::string::npos ? std::string_view() : std::string_view(target).substr(q + 1), parsed)) {
    return refuse(400, *problem);
  }
  const std::vector<std::string> offered = request.header_tokens("sec-websocket-protocol");
  if (!offered.empty()) {
    for (const auto& p : offered) {
      if (p == "kafka-text" || p == "kafka-binary") {
        parsed.subprotocol = p;
        break;
      }
    }
    if (parsed.subprotocol.empty()) return refuse(400, "unsupported subprotocol; kws serve speaks kafka-text and kafka-binary");
    if (parsed.subprotocol == "kafka-binary") parsed.format = WireFormat::binary;
  }
  for (const auto& t : parsed.topics) {
    if (parsed.format == WireFormat::binary && t.size() > kMaxBinaryTopicLength) {
      return refuse(400, "kafka-binary cannot carry topic names over 255 bytes");
    }
  }
  std::string subprotocol = parsed.subprotocol;
  auto session = std::make_shared<Session>(shared_from_this(), con, std::move(parsed));
  session->touch();
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    sessions.emplace(con.get(), session);
  }
  con->accept_upgrade(request, subprotocol, session);
  on_open(session);
}

void Server::Impl::schedule_flush(std::shared_ptr<Session> s) {
  std::lock_guard<std::mutex> lock(dirty_mutex);
  dirty.push_back(std::move(s));
  if (flush_posted) return;
  flush_posted = true;
  asio::post(io, [self = shared_from_this()] { self->flush_dirty(); });
}

void Server::Impl::flush_dirty() {
  std::vector<std::shared_ptr<Session>> now;
  {
    std::lock_guard<std::mutex> lock(dirty_mutex);
    now.swap(dirty);
    flush_posted = false;
  }
  for (auto& s : now) s->flush();
}

void Server::Impl::on_open(const std::shared_ptr<Session>& s) {
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
      s->con->close(ws::close_try_later, "too many group sessions");
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

void Server::Impl::on_close(const Connection* con) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    auto it = sessions.find(con);
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

void Server::Impl::tick() {
  const std::vector<std::shared_ptr<Session>> all = snapshot();
  const int64_t now = Session::now_ms();
  const auto clock_now = Clock::now();
  for (auto& s : all) {
    if (s->closed || !s->con->is_open()) continue;
    s->outbox.set_in_socket(s->con->buffered());
    if (now - s->last_activity_ms > options.idle_timeout.count()) {
      ++counters.idle_closes;
      s->con->close(ws::close_normal, "idle timeout");
      continue;
    }
    if (clock_now - s->last_ping >= options.ping_interval) {
      s->last_ping = clock_now;
      s->con->ping();
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
  std::unordered_map<const Connection*, std::shared_ptr<Impl::Session>> sessions;
  {
    std::lock_guard<std::mutex> lock(impl_->sessions_mutex);
    sessions.swap(impl_->sessions);
  }
  for (auto& [con, s] : sessions) {
    s->closed = true;
    // A connection still open here (a client that did not answer our close
    // in time) holds its session, which holds this Impl, whose io_context
    // holds the connection's pending handlers: break that cycle.
    s->con->abandon();
    if (s->group_reader) s->group_reader->stop();
  }
  for (auto& [con, s] : sessions) {
    s->group_reader.reset();
    if (s->retry_timer) s->retry_timer->cancel();
  }
  {
    std::lock_guard<std::mutex> lock(impl_->dirty_mutex);
    impl_->dirty.clear();
  }
  std::error_code ec;
  impl_->acceptor.close(ec);
  impl_->accept_pause.cancel();
  impl_->tick_timer.cancel();
  // Run what the closes and cancels completed: those handlers hold
  // connections and sessions, and with them this Impl.
  impl_->io.restart();
  impl_->io.poll();
  std::lock_guard<std::mutex> lock(impl_->retiring_mutex);
  impl_->retiring.clear();
}

void Server::listen() {
  std::error_code ec;
  asio::ip::tcp::endpoint where(asio::ip::make_address(impl_->options.host, ec), impl_->options.port);
  if (ec) throw usage_error("bad listen address '" + impl_->options.host + "': " + ec.message());
  auto& acceptor = impl_->acceptor;
  acceptor.open(where.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(where, ec);
  if (!ec) acceptor.listen(4096, ec);
  if (ec) {
    throw Error("cannot listen on " + impl_->options.host + ":" + std::to_string(impl_->options.port) + ": " +
                ec.message());
  }
  asio::ip::tcp::endpoint local = acceptor.local_endpoint(ec);
  std::string host = local.address().to_string();
  if (local.address().is_v6()) host = "[" + host + "]";
  impl_->bound_address = host + ":" + std::to_string(local.port());
  impl_->accept();
}

std::string Server::address() const { return impl_->bound_address; }

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
      std::error_code ec;
      self->acceptor.close(ec);
      self->accept_pause.cancel();
    }
  });
}

std::future<void> Server::stop_reading() {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> ready = done->get_future();
  std::shared_ptr<Impl> self = impl_;
  asio::post(impl_->io, [self, done] {
    for (auto& s : self->snapshot()) s->con->drain_and_pause();
    done->set_value();
  });
  return ready;
}

void Server::finish(std::chrono::milliseconds grace) {
  std::shared_ptr<Impl> self = impl_;
  asio::post(impl_->io, [self, grace] {
    self->finishing = true;
    std::error_code ec;
    self->acceptor.close(ec);
    self->accept_pause.cancel();
    self->tick_timer.cancel();
    for (auto& s : self->snapshot()) {
      s->flush();
      s->con->close(ws::close_going_away, "server shutting down");
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
