#include "core/mqtt/session.hpp"

#include <algorithm>

#include "core/hub/encodings.hpp"
#include "core/hub/topic_tree.hpp"
#include "core/topic_name.hpp"

namespace kws::mqtt {

namespace {

const Principal& nobody() {
  static const Principal anonymous;
  return anonymous;
}

constexpr std::string_view kKafkaPrefix = "kafka/";

// `kafka/T/rest` as T and rest; nullopt for a topic outside kafka/.
struct KafkaPath {
  std::string topic;
  std::optional<std::string> rest;  // none: `kafka/T` itself
};
std::optional<KafkaPath> kafka_path(std::string_view mqtt_topic) {
  if (mqtt_topic.substr(0, kKafkaPrefix.size()) != kKafkaPrefix) return std::nullopt;
  std::string_view after = mqtt_topic.substr(kKafkaPrefix.size());
  const size_t slash = after.find('/');
  KafkaPath p;
  p.topic = std::string(after.substr(0, slash));
  if (slash != std::string_view::npos) p.rest = std::string(after.substr(slash + 1));
  return p;
}

// What the will or a PUBLISH carries as Kafka headers: MQTT 5's user
// properties, in order.
std::vector<Header> headers_of(const UserProperties& properties) {
  std::vector<Header> headers;
  headers.reserve(properties.size());
  for (const auto& [name, value] : properties) headers.push_back(Header{name, value});
  return headers;
}

uint8_t reason_for(ProduceError error) {
  switch (error) {
    case ProduceError::too_large: return reason::packet_too_large;
    case ProduceError::unknown_topic: return reason::topic_name_invalid;
    case ProduceError::queue_full: return reason::quota_exceeded;
    default: return reason::unspecified;
  }
}

}  // namespace

// ---- shared state -------------------------------------------------------------

std::shared_ptr<MqttSession> MqttShared::claim(const std::string& client_id,
                                               const std::shared_ptr<MqttSession>& session) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::weak_ptr<MqttSession>& slot = by_client_id_[client_id];
  std::shared_ptr<MqttSession> previous = slot.lock();
  slot = session;
  return previous;
}

void MqttShared::release(const std::string& client_id, const MqttSession* session) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = by_client_id_.find(client_id);
  if (it == by_client_id_.end()) return;
  auto held = it->second.lock();
  if (!held || held.get() == session) by_client_id_.erase(it);
}

std::shared_ptr<MqttSession> MqttShared::holder(const std::string& client_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = by_client_id_.find(client_id);
  return it == by_client_id_.end() ? nullptr : it->second.lock();
}

std::string MqttShared::assign_client_id() {
  std::lock_guard<std::mutex> lock(mutex_);
  return "kws-" + std::to_string(++next_id_);
}

size_t MqttShared::sessions() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return by_client_id_.size();
}

// ---- routes: one hub subscription per topic filter ------------------------------

struct MqttSession::Route : Subscriber {
  std::weak_ptr<MqttSession> session;
  std::string filter;
  Encoding encoding = Encoding::mqtt311;
  // Set before the hub is asked, read on the hub's thread after: the
  // SUBSCRIBE waiting for this route's answer, and where its filter is in
  // it (a filter may be there twice).
  uint64_t suback = 0;
  std::vector<size_t> indexes;
  // The hub's answer (or an UNSUBSCRIBE before it) was counted: exactly once.
  std::atomic<bool> answered{false};

  void deliver(const FrameBatchPtr& batch) override {
    if (auto s = session.lock()) s->route_delivered(batch, encoding);
  }
  void notify(const HubNotice& notice) override {
    if (auto s = session.lock()) s->route_answered(*this, notice);
  }
};

// ---- the session ----------------------------------------------------------------

MqttSession::MqttSession(const SessionServices& services, MqttShared& shared,
                         std::shared_ptr<const Principal> principal)
    : services_(services),
      shared_(shared),
      principal_(std::move(principal)),
      outbox_(services.options.client_buffer,
              // Conflation keeps the newest per topic and key: for MQTT, per
              // MQTT topic, which is what a dashboard wants.
              services.options.slow_client, Encoding::mqtt311),
      reader_(services.options.max_frame + 65536) {}

MqttSession::~MqttSession() = default;

void MqttSession::open(Link& link) {
  link_ = &link;
  opened_ = last_packet_ = std::chrono::steady_clock::now();
}

const Principal& MqttSession::who() const { return principal_ ? *principal_ : nobody(); }

void MqttSession::send(std::string bytes) {
  if (closed_) return;
  Outbox::Offer o = outbox_.offer_reply(std::move(bytes));
  if (o.overflow || o.schedule_flush) services_.host->wake(shared_from_this());
}

void MqttSession::route_delivered(const FrameBatchPtr& batch, Encoding encoding) {
  if (closed_) return;
  if (max_packet_out_ != 0 && batch->bytes(encoding).size() > max_packet_out_) {
    // MQTT 5 3.1.2.25: a packet over the client's Maximum Packet Size is
    // discarded as if delivered. The shared bytes may hold one: this client
    // gets a batch of its own without it.
    std::vector<FramePtr> fit;
    std::string one;
    for (const auto& f : batch->frames()) {
      one.clear();
      if (append_encoded(one, encoding, batch->topic(), *f) && one.size() <= max_packet_out_) fit.push_back(f);
    }
    if (fit.size() < batch->frames().size()) {
      services_.counters->dropped += batch->frames().size() - fit.size();
      if (fit.empty()) return;
      route_delivered(std::make_shared<FrameBatch>(batch->topic_name(), std::move(fit)), encoding);
      return;
    }
  }
  Outbox::Offer o = outbox_.offer(batch, encoding);
  if (o.overflow || o.schedule_flush) services_.host->wake(shared_from_this());
}

void MqttSession::route_answered(Route& route, const HubNotice& notice) {
  if (notice.kind == HubNotice::Kind::lost) {
    ++services_.counters->lost_notices;
    return;
  }
  if (!notice.answers_request) {
    if (notice.kind == HubNotice::Kind::error) {
      services_.log->warning("MQTT client '" + client_id_ + "': subscription " + route.filter +
                             " stopped: " + notice.message);
    }
    return;
  }
  if (notice.kind != HubNotice::Kind::subscribed && notice.kind != HubNotice::Kind::error) return;
  if (route.answered.exchange(true)) return;
  if (notice.kind == HubNotice::Kind::subscribed) return suback_answered(route.suback, {});
  services_.log->info("MQTT client '" + client_id_ + "': subscription " + route.filter + " refused: " +
                      notice.message);
  {
    // The I/O thread forgets the route (routes_ is its own), so that the
    // filter can be subscribed again.
    std::lock_guard<std::mutex> lock(mutex_);
    refused_routes_.push_back(route.filter);
  }
  services_.host->wake(shared_from_this());
  suback_answered(route.suback, route.indexes);
}

void MqttSession::suback_answered(uint64_t id, const std::vector<size_t>& failed) {
  std::string bytes;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = subacks_.find(id);
    if (it == subacks_.end()) return;
    PendingSuback& p = it->second;
    for (size_t i : failed) p.codes[i] = reason::unspecified;
    if (--p.waiting > 0) return;
    bytes = suback(version_, p.packet_id, p.codes);
    // Retained messages after the SUBACK, with RETAIN set (3.3.1.3).
    for (size_t i = 0; i < p.filters.size(); ++i) {
      if (p.codes[i] >= reason::unspecified || p.retain_handling[i] == 2) continue;
      shared_.retained().match(p.filters[i], [&](const std::string& topic, const RetainedMessage& m) {
        PublishOut out;
        out.topic = topic;
        out.payload = m.payload;
        out.retain = true;
        out.user_properties = &m.properties;
        if (max_packet_out_ != 0 && publish_size(version_, out) > max_packet_out_) return;
        append_publish(bytes, version_, out);
      });
    }
    subacks_.erase(it);
  }
  send(std::move(bytes));
}

void MqttSession::on_delivery(const Delivery& d, const std::string& request_id) {
  const uint64_t slot = request_id.empty() ? 0 : std::stoull(request_id);
  bool ready = false;  // (the server counts produced and failed records for every session)
  if (slot != 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& a : acks_) {
      if (a.id != slot) continue;
      if (!d.ok() && a.reason == reason::success) {
        a.reason = reason_for(d.error);
        a.why = std::string(d.message);
      }
      --a.remaining;
      break;
    }
    ready = !acks_.empty() && acks_.front().remaining == 0;
  } else if (!d.ok()) {
    services_.log->warning("MQTT client '" + client_id_ + "': a QoS 0 message to " + std::string(d.topic) +
                           " was not produced: " + std::string(d.message));
  }
  const bool was_full = pending_produce_.fetch_sub(1) == services_.options.max_pending_produce;
  if ((ready || was_full) && !closed_) services_.host->wake(shared_from_this());
}

// ---- on the I/O thread ------------------------------------------------------------

void MqttSession::on_wake() {
  if (!link_) return;
  if (outbox_.overflowed()) {
    if (!closing_) {
      ++services_.counters->slow_closes;
      closing_ = true;
      link_->close(CloseReason::policy,
                   "slow client: more than " + std::to_string(services_.options.client_buffer) + " bytes pending",
                   /*drop_pending=*/true);
    }
    return;
  }
  forget_refused_routes();
  answer_ready_acks();
  if (retry_armed_) {
    retry_armed_ = false;
    retry_blocked();
  }
  flush();
  update_reading();
}

void MqttSession::forget_refused_routes() {
  std::vector<std::string> refused;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (refused_routes_.empty()) return;
    refused.swap(refused_routes_);
  }
  for (const auto& filter : refused) {
    auto it = routes_.find(filter);
    if (it == routes_.end() || !it->second->answered) continue;
    services_.hub->remove(it->second);
    routes_.erase(it);
  }
}

void MqttSession::answer_ready_acks() {
  std::vector<AckSlot> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t done = 0;
    while (done < acks_.size() && acks_[done].remaining == 0) ready.push_back(std::move(acks_[done++]));
    acks_.erase(acks_.begin(), acks_.begin() + static_cast<std::ptrdiff_t>(done));
  }
  for (const auto& a : ready) {
    if (a.reason != reason::success && version_ != kVersion5) {
      // MQTT 3.1.1 cannot say a PUBLISH failed: acknowledging it would be a
      // lie, so the connection ends and the client publishes again (4.4).
      end(a.reason, "a message could not be written to Kafka: " + a.why, /*publish_will=*/true);
      return;
    }
    send(ack(version_, a.type, a.packet_id, a.reason));
  }
}

void MqttSession::flush(bool behind_pending) {
  if (!link_ || (link_->buffered() > 0 && !behind_pending)) return;
  std::vector<OutItem>& items = *services_.flush_scratch;
  Outbox::Taken taken = outbox_.take(items);
  if (taken.conflated > 0) services_.counters->conflated += taken.conflated;
  if (items.empty()) return;
  size_t size = 0;
  for (const auto& item : items) size += item.batch ? item.batch->bytes(item.encoding).size() : item.bytes.size();
  link_->write(items);
  items.clear();
  services_.counters->frames_out += taken.frames;
  services_.counters->bytes_out += size;
  ++services_.counters->writes;
  if (link_) outbox_.set_in_link(link_->buffered());
}

void MqttSession::on_drained() {
  std::shared_ptr<ClientSession> self = shared_from_this();  // a failed write may close the link
  outbox_.set_in_link(0);
  flush();
}

void MqttSession::release_idle_memory() {
  reader_.release_idle_memory();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (acks_.empty()) std::vector<AckSlot>().swap(acks_);
  }
  if (link_ && link_->buffered() == 0) outbox_.release_idle_memory();
}

bool MqttSession::close_if_expired(std::chrono::system_clock::time_point now) {
  if (!link_ || closing_ || !principal_ || !principal_->expires) return false;
  if (now < *principal_->expires + services_.options.token_leeway) return false;
  end(reason::not_authorized, "token expired");
  return true;
}

bool MqttSession::on_tick(std::chrono::steady_clock::time_point now) {
  if (!link_ || closing_) return false;
  if (!connected_) {
    if (now - opened_ < shared_.settings().connect_timeout) return false;
    end(reason::protocol_error, "no CONNECT within " +
                                    std::to_string(shared_.settings().connect_timeout.count() / 1000) + " s",
        /*publish_will=*/false);
    return true;
  }
  // 3.1.2.10: one and a half times the keep alive without a packet. Not
  // while kws itself is not reading (Kafka's queue full, a rate limit):
  // the client's PINGREQs wait unread in the socket then.
  if (blocked_ || reading_paused_) return false;
  if (keep_alive_ == 0 || now - last_packet_ < std::chrono::milliseconds(keep_alive_ * 1500)) return false;
  end(reason::keep_alive_timeout, "keep alive: nothing for 1.5 x " + std::to_string(keep_alive_) + " s");
  return true;
}

void MqttSession::end(uint8_t reason_code, const std::string& why, bool publish_will, bool farewell) {
  if (!link_ || closing_) return;
  closing_ = true;
  if (!publish_will) will_.reset();
  if (connected_) {
    services_.log->info("MQTT client '" + client_id_ + "' disconnected: " + why);
  } else {
    services_.log->info("MQTT connection closed before CONNECT: " + why);
  }
  // Only MQTT 5 has a server DISCONNECT (and only after a CONNACK).
  if (farewell && connected_ && version_ == kVersion5) send(disconnect(reason_code, why));
  flush(/*behind_pending=*/true);
  if (link_) link_->close(CloseReason::policy, why);
}

void MqttSession::on_shutdown() {
  will_.reset();
  if (connected_ && version_ == kVersion5 && !closing_) send(disconnect(reason::server_shutting_down, "server shutting down"));
  closing_ = true;
  flush(/*behind_pending=*/true);
}

void MqttSession::take_over() {
  if (!link_ || closing_) return;
  end(reason::session_taken_over, "another connection took over client id '" + client_id_ + "'");
}

void MqttSession::on_closed() {
  if (closed_.exchange(true)) return;
  link_ = nullptr;
  services_.counters->dropped += outbox_.dropped();
  if (connected_ && !clean_disconnect_) publish_will();
  for (auto& [filter, route] : routes_) services_.hub->remove(route);
  routes_.clear();
  if (connected_) shared_.release(client_id_, this);
  blocked_.reset();
  services_.host->closed(*this);
}

void MqttSession::update_reading() {
  if (!link_) return;
  const bool pause = blocked_ || pending_produce_ >= services_.options.max_pending_produce ||
                     (services_.finishing && *services_.finishing);
  if (pause == reading_paused_) return;
  if (!pause && services_.finishing && *services_.finishing) return;
  reading_paused_ = pause;
  if (pause) {
    ++services_.counters->paused_reads;
    link_->pause_reading();
  } else {
    last_packet_ = std::chrono::steady_clock::now();  // the keep alive counts from here again
    link_->resume_reading();
  }
}

void MqttSession::on_message(MessageKind kind, std::string& payload) {
  if (closing_) return;
  // Ending the session closes its link, which may let go of the session
  // (raw TCP closes at once): it stays alive until this call returns.
  std::shared_ptr<ClientSession> self = shared_from_this();
  services_.counters->bytes_in += payload.size();
  if (kind == MessageKind::text) {
    // MQTT over WebSocket is binary only (MQTT 5 section 6).
    end(reason::malformed, "a WebSocket text frame: MQTT packets travel in binary frames", false);
    return;
  }
  reader_.feed(payload);
  for (;;) {
    if (blocked_) {
      // Handled once Kafka's queue (or the rate) has room, in order; until
      // then nothing more is read (the socket holds the rest).
      update_reading();
      return;
    }
    PacketError error;
    bool failed = false;
    std::optional<PacketReader::Raw> raw = reader_.next(error, failed);
    if (failed) {
      ++services_.counters->client_errors;
      end(error.reason, error.why, /*publish_will=*/true);
      return;
    }
    if (!raw) break;
    ++services_.counters->frames_in;
    last_packet_ = std::chrono::steady_clock::now();
    if (handle(raw->first, raw->body) == Handled::queue_full) {
      blocked_ = std::make_unique<std::deque<std::pair<uint8_t, std::string>>>();
      blocked_->emplace_back(raw->first, std::string(raw->body));
      if (!retry_armed_) {
        retry_armed_ = true;
        services_.host->wake_after(shared_from_this(), std::chrono::milliseconds(5));
      }
    }
    if (closing_) return;
  }
  update_reading();
}

void MqttSession::retry_blocked() {
  while (blocked_ && !closing_) {
    if (handle(blocked_->front().first, blocked_->front().second) == Handled::queue_full) {
      retry_armed_ = true;
      services_.host->wake_after(shared_from_this(), std::chrono::milliseconds(5));
      return;
    }
    blocked_->pop_front();
    if (blocked_->empty()) blocked_.reset();
  }
  // What arrived behind the blocked packets waits in the reader.
  if (!blocked_ && link_ && !closing_) {
    std::string none;
    on_message(MessageKind::binary, none);
  }
}

MqttSession::Handled MqttSession::handle(uint8_t first, std::string_view body) {
  const auto type = static_cast<PacketType>(first >> 4);
  if (!connected_ && type != PacketType::connect) {
    end(reason::protocol_error, "the first packet must be CONNECT", false);
    return Handled::done;
  }
  if (connected_ && type == PacketType::connect) {
    end(reason::protocol_error, "a second CONNECT", true);
    return Handled::done;
  }
  auto decoded = decode(first, body, connected_ ? version_ : kVersion5);
  if (auto* e = std::get_if<PacketError>(&decoded)) {
    ++services_.counters->client_errors;
    if (!connected_ && type == PacketType::connect && e->reason == reason::unsupported_version) {
      // 3.1.2.2: answered with return code 1, then closed.
      const uint8_t version = body.size() > 6 && static_cast<uint8_t>(body[6]) == kVersion5 ? kVersion5 : kVersion311;
      ConnackOptions refused;
      refused.reason = reason::unsupported_version;
      send(connack(version, refused));
    }
    end(e->reason, e->why, true);
    return Handled::done;
  }
  Packet& packet = std::get<Packet>(decoded);
  if (auto* c = std::get_if<Connect>(&packet)) {
    on_connect(*c);
  } else if (auto* p = std::get_if<Publish>(&packet)) {
    return on_publish(*p);
  } else if (auto* s = std::get_if<Subscribe>(&packet)) {
    if (!within_control_rate()) return Handled::queue_full;
    on_subscribe(*s);
  } else if (auto* u = std::get_if<Unsubscribe>(&packet)) {
    if (!within_control_rate()) return Handled::queue_full;
    on_unsubscribe(*u);
  } else if (auto* a = std::get_if<Ack>(&packet)) {
    if (a->type == PacketType::pubrel) {
      on_pubrel(a->packet_id);
    }
    // PUBACK, PUBREC, PUBCOMP answer what a server sends at QoS 1 and 2;
    // kws delivers at QoS 0, so there is nothing they could answer.
  } else if (std::holds_alternative<PingReq>(packet)) {
    send(pingresp());
  } else if (auto* d = std::get_if<Disconnect>(&packet)) {
    // 3.14.4: a DISCONNECT ends the connection.
    // 3.1.2.5: only a normal disconnection (0x00; 3.1.1 has no other)
    // discards the will.
    clean_disconnect_ = d->reason == reason::success;
    end(reason::success, "DISCONNECT", !clean_disconnect_, /*farewell=*/false);
  } else if (std::holds_alternative<Auth>(packet)) {
    end(reason::protocol_error, "AUTH: kws has no extended authentication", true);
  }
  return Handled::done;
}

void MqttSession::on_connect(Connect& c) {
  version_ = c.version;
  ConnackOptions answer;
  auto refuse = [&](uint8_t reason_code, const std::string& why) {
    ++services_.counters->client_errors;
    answer.reason = reason_code;
    if (version_ == kVersion5) answer.reason_string = why;
    send(connack(version_, answer));
    end(reason_code, why, false);
  };
  if (c.has_auth_method) return refuse(reason::bad_auth_method, "kws has no extended authentication (AUTH)");
  if (c.client_id.empty()) {
    // 3.1.3.3: a server may assign one to a clean session; MQTT 5 says which.
    if (!c.clean_start && version_ != kVersion5) {
      return refuse(reason::client_id_not_valid, "an empty client id needs clean session");
    }
    c.client_id = shared_.assign_client_id();
    if (version_ == kVersion5) answer.assigned_client_id = c.client_id;
  }
  if (c.will) {
    if (auto problem = mqtt_topic_name_problem(c.will->topic)) return refuse(reason::topic_name_invalid, "will topic: " + *problem);
    if (c.will->topic[0] == '$') return refuse(reason::topic_name_invalid, "will topic: names beginning with $ are the server's");
    if (c.will->qos > 1 && version_ == kVersion5) return refuse(reason::qos_not_supported, "will QoS 2: the maximum is 1");
  }
  // Credentials: the password carries a JWT (the user name is free), as
  // brokers that accept tokens do; a token in the WebSocket upgrade counts.
  if (services_.check_token) {
    // The password is the token; a user name alone is one only for a
    // client the upgrade did not already name (MQTT.js sends a user name
    // out of habit).
    const std::optional<std::string>& token = c.password ? c.password : principal_ ? std::nullopt : c.username;
    if (token && !token->empty()) {
      TokenCheck check = services_.check_token(*token);
      if (!check.principal) return refuse(reason::bad_credentials, "token: " + check.problem);
      principal_ = std::move(check.principal);
    } else if (!principal_) {
      return refuse(reason::bad_credentials, "a token is required: send it as the password");
    }
  }
  if (c.will) {
    const Target t = target_of(c.will->topic);
    if (auto why = refusal(t.topic, TopicAction::write)) return refuse(reason::not_authorized, "will topic: " + *why);
    will_ = std::make_unique<Will>(std::move(*c.will));
  }
  if (auto holder = shared_.holder(c.client_id); holder && holder->subject() != who().name) {
    // With tokens, a client id is its subject's: another subject taking it
    // over would cut that client off and publish its will.
    return refuse(reason::client_id_not_valid, "client id '" + c.client_id + "' is in use by another subject");
  }
  client_id_ = c.client_id;
  keep_alive_ = c.keep_alive;
  connected_ = true;
  // The session state kws keeps is the connection's: a new connection
  // starts clean whatever it asked (3.2.2.2: session present 0).
  answer.maximum_packet_size = static_cast<uint32_t>(services_.options.max_frame + 65536);
  // 3.2.2.3.2: the session ends with the connection, whatever was asked.
  answer.session_expiry_zero = c.session_expiry > 0;
  max_packet_out_ = c.maximum_packet_size;
  answer.receive_maximum = static_cast<uint16_t>(std::min<size_t>(services_.options.max_pending_produce, 65535));
  send(connack(version_, answer));
  if (auto previous = shared_.claim(client_id_, std::static_pointer_cast<MqttSession>(shared_from_this()))) {
    previous->take_over();
  }
}

MqttSession::Target MqttSession::target_of(const std::string& mqtt_topic) const {
  if (auto k = kafka_path(mqtt_topic)) return Target{k->topic, k->rest};
  return Target{shared_.settings().kafka_topic, mqtt_topic};
}

std::optional<std::string> MqttSession::refusal(const std::string& kafka_topic, TopicAction action) {
  if (action == TopicAction::write && services_.options.read_only) return std::string("this bridge is read-only");
  if (auto r = admit_topic(kafka_topic, action, Encoding::mqtt311, who(), *services_.authorizer)) {
    return "'" + kafka_topic + "': " + r->why;
  }
  return std::nullopt;
}

bool MqttSession::bucket_allows(std::unique_ptr<RateLimiter>& limiter, const RateLimits& limits, size_t bytes) {
  if (!limits.enabled()) return true;
  const auto now = services_.clock ? services_.clock() : std::chrono::steady_clock::now();
  if (!limiter) limiter = std::make_unique<RateLimiter>(limits, now);
  if (limiter->check(bytes, now).verdict == RateLimiter::Verdict::allowed) return true;
  if (!blocked_) ++services_.counters->rate_limited;  // once per packet held, not per retry
  return false;
}

bool MqttSession::within_control_rate() {
  // As for PUBLISH: MQTT cannot refuse a SUBSCRIBE for its rate, so the
  // packet waits, and reading stops, until the bucket allows it.
  if (!bucket_allows(control_limiter_, services_.options.control_limits, 0)) return false;
  if (control_limiter_) control_limiter_->spend(0);
  return true;
}

MqttSession::Handled MqttSession::on_publish(Publish& p) {
  if (p.topic_alias != 0) {
    end(reason::topic_alias_invalid, "topic alias: kws allows none (Topic Alias Maximum 0)", true);
    return Handled::done;
  }
  if (p.qos == 2 && version_ == kVersion5) {
    // 3.3.1.4: more than the CONNACK's Maximum QoS.
    end(reason::qos_not_supported, "PUBLISH at QoS 2: the maximum is 1", true);
    return Handled::done;
  }
  {
    // Acknowledgements wait in order (4.6); a client that keeps sending
    // behind one Kafka has not answered waits too (reading pauses).
    std::lock_guard<std::mutex> lock(mutex_);
    if (p.qos > 0 && acks_.size() >= services_.options.max_pending_produce) return Handled::queue_full;
  }
  if (p.qos == 2 && awaiting_release_.count(p.packet_id) > 0) {
    // A resent QoS 2 PUBLISH whose first copy was taken: not written twice,
    // answered (again) with PUBREC in its turn.
    queue_ack(PacketType::pubrec, p.packet_id, reason::success, {});
    return Handled::done;
  }
  std::optional<std::string> problem = mqtt_topic_name_problem(p.topic);
  uint8_t code = reason::topic_name_invalid;
  if (!problem && p.topic[0] == '$') problem = "topic names beginning with $ are the server's";
  Target target;
  if (!problem) {
    target = target_of(p.topic);
    if (auto why = refusal(target.topic, TopicAction::write)) {
      problem = *why;
      code = reason::not_authorized;
    } else if (auto bad = topic_name_problem(target.topic)) {
      problem = "'" + target.topic + "': " + *bad;
    }
  }
  if (problem) {
    ++services_.counters->client_errors;
    services_.log->info("MQTT client '" + client_id_ + "': PUBLISH to " + p.topic + " refused: " + *problem);
    if (p.qos == 1 && version_ == kVersion5) {
      queue_ack(PacketType::puback, p.packet_id, code, *problem);
      return Handled::done;
    }
    // 3.1.1 cannot refuse a PUBLISH; neither can MQTT 5 at QoS 0. The
    // connection ends rather than the message vanishing (3.3.5).
    end(code, "PUBLISH to " + p.topic + ": " + *problem, true);
    return Handled::done;
  }
  // serve.produce_rate and serve.produce_bytes_rate: an MQTT client is
  // slowed, not refused (3.1.1 could not be told): the packet waits, and
  // reading stops, until the session's buckets allow it.
  const size_t bytes = p.topic.size() + p.payload.size();
  if (!bucket_allows(produce_limiter_, services_.options.produce_limits, bytes)) return Handled::queue_full;
  if (produce(p) == Handled::queue_full) return Handled::queue_full;
  if (p.qos == 2) awaiting_release_.insert(p.packet_id);
  if (produce_limiter_) produce_limiter_->spend(bytes);
  return Handled::done;
}

void MqttSession::queue_ack(PacketType type, uint16_t packet_id, uint8_t reason_code, std::string why) {
  std::lock_guard<std::mutex> lock(mutex_);
  AckSlot a;
  a.id = next_slot_++;
  a.type = type;
  a.packet_id = packet_id;
  a.remaining = 0;
  a.reason = reason_code;
  a.why = std::move(why);
  acks_.push_back(std::move(a));
  if (acks_.front().remaining == 0) services_.host->wake(shared_from_this());
}

MqttSession::Handled MqttSession::produce(const Publish& p, bool will) {
  const Target target = target_of(p.topic);
  const std::vector<Header> headers = headers_of(p.user_properties);
  // Beyond the session's share, packets wait (and reading pauses); a will
  // is the session's last word and goes whatever the count.
  if (!will && pending_produce_ >= services_.options.max_pending_produce) return Handled::queue_full;
  // The slot is in place before the first record is queued: its delivery
  // report may come back before try_produce returns.
  uint64_t slot = 0;
  const int records = p.retain ? 2 : 1;
  if (p.qos > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    slot = next_slot_++;
    AckSlot a;
    a.id = slot;
    a.type = p.qos == 2 ? PacketType::pubrec : PacketType::puback;
    a.packet_id = p.packet_id;
    a.remaining = records;
    acks_.push_back(std::move(a));
  }
  // A record that was not queued will never be reported: its share of the
  // slot is settled here.
  auto settle = [&](const ProduceOutcome& failed) {
    if (slot == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& a : acks_) {
      if (a.id != slot) continue;
      --a.remaining;
      if (a.reason == reason::success && failed.error != ProduceError::none) {
        a.reason = reason_for(failed.error);
        a.why = failed.message;
      }
      break;
    }
    if (!acks_.empty() && acks_.front().remaining == 0) services_.host->wake(shared_from_this());
  };
  auto queue = [&](std::string_view topic, const std::optional<std::string>& key,
                   std::optional<std::string_view> value) -> ProduceOutcome {
    const uint64_t token =
        services_.deliveries->track(weak_from_this(), slot ? std::to_string(slot) : std::string());
    OutgoingRecord record;
    record.topic = topic;
    if (key) record.key = std::string_view(*key);
    record.value = value;
    record.headers = &headers;
    record.token = token;
    ++pending_produce_;
    ProduceOutcome out = services_.producer->try_produce(record);
    if (!out.queued()) {
      --pending_produce_;
      services_.deliveries->forget(token);
    }
    return out;
  };
  // 3.3.1.3: an empty retained payload deletes the retained message, and is
  // still delivered to current subscribers as a normal message.
  ProduceOutcome out = queue(target.topic, target.key, std::string_view(p.payload));
  if (out.error == ProduceError::queue_full) {
    if (slot != 0) {
      // Nothing was queued: the packet is handled again later, slot and all.
      std::lock_guard<std::mutex> lock(mutex_);
      acks_.pop_back();
    }
    return Handled::queue_full;
  }
  if (!out.queued()) {
    ++services_.counters->produce_errors;
    services_.log->info("MQTT client '" + client_id_ + "': PUBLISH to " + p.topic + " failed: " + out.message);
    for (int i = 0; i < records; ++i) settle(out);
    if (slot == 0 && version_ != kVersion5) end(reason_for(out.error), out.message, true);
    return Handled::done;
  }
  if (p.retain) {
    std::optional<std::string_view> value;
    if (!p.payload.empty()) value = std::string_view(p.payload);
    ProduceOutcome kept = queue(shared_.settings().retained_topic, p.topic, value);
    if (kept.queued()) {
      shared_.retained().put(p.topic, p.payload, p.user_properties);
    } else {
      // The message itself is in Kafka: the PUBACK says so; the log says
      // what was not kept.
      services_.log->warning("MQTT client '" + client_id_ + "': retained copy of " + p.topic +
                             " not kept: " + kept.message);
      settle(ProduceOutcome{});
    }
  }
  return Handled::done;
}

void MqttSession::on_pubrel(uint16_t packet_id) {
  // 4.3.3: PUBCOMP whether or not the identifier is known (a resent PUBREL).
  awaiting_release_.erase(packet_id);
  send(ack(version_, PacketType::pubcomp, packet_id));
}

void MqttSession::publish_will() {
  std::unique_ptr<Will> will = std::move(will_);
  if (!will) return;
  Publish p;
  p.topic = will->topic;
  p.payload = will->payload;
  p.retain = will->retain;
  p.user_properties = will->user_properties;
  // The session is gone: nobody waits for an acknowledgement.
  if (produce(p, /*will=*/true) == Handled::queue_full) {
    services_.log->warning("MQTT client '" + client_id_ + "': will to " + p.topic +
                           " not published: Kafka's queue is full");
    return;
  }
  services_.log->info("MQTT client '" + client_id_ + "': will published to " + p.topic);
}

void MqttSession::on_subscribe(const Subscribe& s) {
  if (s.has_subscription_id) {
    end(reason::subscription_ids_not_supported, "subscription identifiers are not supported", true);
    return;
  }
  uint64_t suback_id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    suback_id = next_suback_++;
    PendingSuback& p = subacks_[suback_id];
    p.packet_id = s.packet_id;
    p.codes.assign(s.entries.size(), reason::success);
    p.waiting = 1;  // this function's own hold, released at the end
    for (const auto& e : s.entries) {
      p.filters.push_back(e.filter);
      p.retain_handling.push_back(e.retain_handling);
    }
  }
  std::vector<std::pair<std::shared_ptr<Route>, std::pair<std::string, SubscriptionSpec>>> asks;
  std::map<std::string, Route*> asked;  // this SUBSCRIBE's new routes, by filter
  for (size_t i = 0; i < s.entries.size(); ++i) {
    const SubscribeEntry& e = s.entries[i];
    uint8_t code = reason::success;  // granted QoS 0: kws delivers at most once
    std::string why;
    std::string kafka_topic;
    FilterPtr filter;
    bool all = false;
    if (auto problem = topic_filter_problem(e.filter)) {
      code = reason::topic_filter_invalid;
      why = *problem;
    } else if (e.filter.rfind("$share/", 0) == 0) {
      code = reason::shared_subscriptions_not_supported;
      why = "shared subscriptions are not supported";
    } else if (auto k = kafka_path(e.filter)) {
      kafka_topic = k->topic;
      if (!k->rest) {
        code = reason::topic_filter_invalid;
        why = "kafka/" + k->topic + " alone: subscribe to kafka/" + k->topic + "/# or kafka/" + k->topic + "/KEY";
      } else if (auto bad = topic_name_problem(k->topic)) {
        code = reason::topic_filter_invalid;
        why = "kafka/TOPIC/...: '" + k->topic + "': " + *bad + " (a wildcard cannot name Kafka topics)";
      } else if (*k->rest == "#") {
        all = true;
      } else {
        std::string problem;
        filter = MessageFilter::mqtt_topics({*k->rest}, problem);
        if (!filter) {
          code = reason::topic_filter_invalid;
          why = problem;
        }
      }
    } else {
      kafka_topic = shared_.settings().kafka_topic;
      std::string problem;
      filter = MessageFilter::mqtt_topics({e.filter}, problem);
      if (!filter) {
        code = reason::topic_filter_invalid;
        why = problem;
      }
    }
    if (code == reason::success) {
      if (auto refused = refusal(kafka_topic, TopicAction::read)) {
        code = reason::not_authorized;
        why = *refused;
      }
    }
    if (code == reason::success && routes_.count(e.filter) == 0 &&
        routes_.size() >= services_.options.max_subscriptions) {
      ++services_.counters->subscription_limit_refusals;
      code = reason::quota_exceeded;
      why = "more than " + std::to_string(services_.options.max_subscriptions) + " subscriptions (serve.max_subscriptions)";
    }
    if (code != reason::success) {
      ++services_.counters->client_errors;
      services_.log->info("MQTT client '" + client_id_ + "': SUBSCRIBE " + e.filter + " refused: " + why);
      std::lock_guard<std::mutex> lock(mutex_);
      subacks_[suback_id].codes[i] = code == reason::topic_filter_invalid && version_ != kVersion5 ? 0x80 : code;
      continue;
    }
    if (auto same = asked.find(e.filter); same != asked.end()) {
      same->second->indexes.push_back(i);  // the same filter twice in one SUBSCRIBE: one route, one answer
      continue;
    }
    if (routes_.count(e.filter) > 0) {
      // 3.8.4: replaces the existing one, whose retained messages are sent
      // again, unless MQTT 5's Retain Handling 1 says "only if new".
      if (e.retain_handling == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        subacks_[suback_id].retain_handling[i] = 2;
      }
      continue;
    }
    auto route = std::make_shared<Route>();
    route->session = std::static_pointer_cast<MqttSession>(shared_from_this());
    route->filter = e.filter;
    const bool kafka_mapping = kafka_topic != shared_.settings().kafka_topic || kafka_path(e.filter).has_value();
    route->encoding = version_ == kVersion5 ? (kafka_mapping ? Encoding::mqtt5_kafka : Encoding::mqtt5)
                                            : (kafka_mapping ? Encoding::mqtt311_kafka : Encoding::mqtt311);
    route->suback = suback_id;
    route->indexes.push_back(i);
    asked[e.filter] = route.get();
    SubscriptionSpec spec;
    spec.start = OffsetSpec{OffsetSpec::Kind::end, 0};
    spec.start_text = "latest";
    if (!all) spec.filter = filter;
    routes_[e.filter] = route;
    asks.emplace_back(route, std::make_pair(kafka_topic, std::move(spec)));
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    subacks_[suback_id].waiting += asks.size();
  }
  for (auto& [route, what] : asks) services_.hub->subscribe(route, what.first, std::move(what.second), "mqtt");
  // This function's own hold: if every answer came already (or none was
  // asked), the SUBACK goes now.
  suback_answered(suback_id, {});
}

void MqttSession::on_unsubscribe(const Unsubscribe& u) {
  std::vector<uint8_t> codes;
  for (const auto& filter : u.filters) {
    auto it = routes_.find(filter);
    if (it == routes_.end()) {
      codes.push_back(reason::no_subscription_existed);
      continue;
    }
    services_.hub->remove(it->second);
    // The hub drops a removed subscriber's requests unanswered: a SUBACK
    // still waiting for this route's answer must not wait for ever.
    if (!it->second->answered.exchange(true)) suback_answered(it->second->suback, {});
    routes_.erase(it);
    codes.push_back(reason::success);
  }
  // Messages already queued for it may still arrive (3.10.4 allows it).
  send(unsuback(version_, u.packet_id, codes));
}

}  // namespace kws::mqtt
