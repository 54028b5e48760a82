#include "core/session/session.hpp"

#include <algorithm>

#include "core/outgoing.hpp"
#include "core/hub/encodings.hpp"
#include "core/session/client_frames.hpp"
#include "core/session/replies.hpp"
#include "core/topic_name.hpp"

namespace kws {

namespace {

bool contains(const std::vector<std::string>& sorted, std::string_view name) {
  return std::binary_search(sorted.begin(), sorted.end(), name, std::less<>());
}

void insert_sorted(std::vector<std::string>& sorted, std::string_view name) {
  auto it = std::lower_bound(sorted.begin(), sorted.end(), name, std::less<>());
  if (it == sorted.end() || *it != name) sorted.insert(it, std::string(name));
}

void erase_sorted(std::vector<std::string>& sorted, std::string_view name) {
  auto it = std::lower_bound(sorted.begin(), sorted.end(), name, std::less<>());
  if (it != sorted.end() && *it == name) sorted.erase(it);
}

constexpr uint8_t kProblemsLoggedPerClient = 5;

const Principal& anonymous() {
  static const Principal nobody;
  return nobody;
}

// What the hub needs for one topic of a subscribe: the start, the
// positions named for that topic, the filter.
SubscriptionSpec subscription_spec(const OffsetSpec& start, const std::string& start_text, const ResumeByTopic& resume,
                                   const FilterPtr& filter, bool tell_caught_up, const std::string& topic) {
  SubscriptionSpec spec;
  spec.start = start;
  spec.start_text = start_text;
  if (auto it = resume.find(topic); it != resume.end()) spec.resume = it->second;
  spec.filter = filter;
  spec.tell_caught_up = tell_caught_up;
  return spec;
}

}  // namespace

Session::Session(const SessionServices& services, ConnectRequest request, std::shared_ptr<const Principal> principal)
    : services_(services),
      principal_(std::move(principal)),
      // A group session never drops: its partitions pause at half the
      // budget, and a client that still overflows is closed, to go on from
      // the group's committed offsets (docs/PROTOCOL.md, group sessions).
      outbox_(services.options.client_buffer,
              request.group.empty() ? services.options.slow_client : SlowClientPolicy::close, request.encoding),
      encoding_(request.encoding),
      group_session_(!request.group.empty()) {
  kws_protocol_ = request.kws_protocol;
  if (encoding_ == Encoding::sse) sse_ = std::make_unique<SsePositions>();
  opening_ = std::make_unique<ConnectRequest>(std::move(request));
}

Session::~Session() = default;

// ---- opening ------------------------------------------------------------------

void Session::open(Link& link) {
  // The handshake answer may have failed to go out, closing the link first.
  if (closed_) return;
  link_ = &link;
  // Only needed to open: an idle session keeps no copy.
  std::unique_ptr<ConnectRequest> request = std::move(opening_);
  if (group_session_) {
    open_group(*request);
    return;
  }
  for (const auto& t : request->topics) {
    // The handshake checked the names; the rest of the rules apply here.
    if (auto refusal = admit(t, TopicAction::read)) {
      refuse_in_turn(*refusal, "", t);
      continue;
    }
    insert_sorted(subscribed_, t);
    ++pending_requests_;
    services_.hub->subscribe(shared_from_this(), t, subscription_spec(request->start, request->start_text,
                                                                    request->resume, request->filter,
                                                                    request->tell_caught_up, t),
                             "");
  }
}

// A refused subscribe or unsubscribe is answered in its turn among the
// session's requests to the hub, so answers keep the order of requests.
void Session::refuse_in_turn(const Refusal& refusal, std::string_view request_id, std::string_view topic) {
  ++services_.counters->client_errors;
  HubNotice n;
  n.kind = HubNotice::Kind::error;
  n.answers_request = true;
  n.request_id = std::string(request_id);
  n.topic = std::string(topic);
  n.error = refusal.error;
  n.message = refusal.why;
  ++pending_requests_;
  services_.hub->answer(shared_from_this(), std::move(n));
}

void Session::open_group(const ConnectRequest& request) {
  // Rights first: a refused session must not hold one of the bridge's group slots.
  auto end_with = [this](ClientError error, const std::string& why, std::string_view topic, CloseReason reason) {
    refuse(error, why, "", topic);
    flush();
    if (link_) link_->close(reason, why);
  };
  for (const auto& t : request.topics) {
    if (auto refusal = admit(t, TopicAction::read)) return end_with(refusal->error, refusal->why, t, CloseReason::policy);
  }
  if (!services_.authorizer->allows_group(principal_ ? *principal_ : anonymous(), request.group)) {
    return end_with(ClientError::not_allowed, "reading as group.id '" + request.group + "' is not allowed", {},
                    CloseReason::policy);
  }
  const size_t max = services_.options.max_group_sessions;
  if (services_.group_sessions->fetch_add(1) >= max) {
    services_.group_sessions->fetch_sub(1);
    return end_with(ClientError::group_limit, "too many group.id sessions on this bridge (" + std::to_string(max) + ")",
                    {}, CloseReason::try_again_later);
  }
  GroupRequest g{request.group, request.topics, request.start, request.start_explicit};
  GroupSubscription subscription{request.group, request.topics, request.start_text, request.filter};
  std::weak_ptr<Session> weak = std::static_pointer_cast<Session>(shared_from_this());
  auto open = [services = &services_, g] { return services->open_group(g); };
  auto backlog = [weak] {
    auto locked = weak.lock();
    return locked ? locked->outbox_.pending_bytes() : 0;
  };
  group_reader_ = std::make_unique<GroupReader>(open, std::move(subscription), shared_from_this(), backlog,
                                                services_.options.client_buffer / 2, *services_.log);
}

// ---- from other threads -------------------------------------------------------

void Session::offered(Outbox::Offer o) {
  if (o.overflow || o.schedule_flush) services_.host->wake(shared_from_this());
}

void Session::deliver(const FrameBatchPtr& batch) {
  if (closed_) return;
  offered(outbox_.offer(batch));
}

void Session::reply(const std::string& json, ReplyKind kind) {
  if (closed_) return;
  if (!kws_protocol_) {
    // A kafka-websocket client knows only message frames: anything else
    // would reach it as a message with no value (kafka-text) or bytes it
    // cannot parse (kafka-binary). It is logged and counted instead.
    ++services_.counters->unsent_notices;
    std::string what = "not sent to a kafka-websocket client (it did not ask for the kws protocol): " + json;
    // Problems (a refused frame, a failed produce) are warnings, visible
    // without -v; only the first few per client, so that a client repeating
    // a bad frame cannot flood the log.
    const uint8_t logged = problems_logged_.load(std::memory_order_relaxed);
    if (kind == ReplyKind::problem && logged < kProblemsLoggedPerClient) {
      problems_logged_.store(logged + 1, std::memory_order_relaxed);
      if (logged + 1 == kProblemsLoggedPerClient) {
        what += " (this client's further problems are only counted, in kws_serve_unsent_notices_total)";
      }
      services_.log->warning(what);
    } else {
      services_.log->info(what);
    }
    return;
  }
  offered(outbox_.offer_reply(frame_own(json)));
}

std::string Session::frame_own(std::string_view json) const {
  return encoding_ == Encoding::sse ? sse_event(json) : services_.frame_text(json);
}

void Session::track_sse_positions(const HubNotice& notice) {
  if (!sse_) return;
  std::lock_guard<std::mutex> lock(sse_->mutex);
  if (notice.kind == HubNotice::Kind::unsubscribed) {
    sse_->last.erase(notice.topic);
  } else if (notice.kind == HubNotice::Kind::subscribed && !notice.start_offsets.empty()) {
    // A partition nothing was delivered from yet resumes where this
    // subscription started, not where `offset` would start a new one.
    auto& positions = sse_->last[notice.topic];
    positions.clear();
    for (size_t p = 0; p < notice.start_offsets.size(); ++p) {
      positions[static_cast<int32_t>(p)] = notice.start_offsets[p] - 1;
    }
  } else {
    return;
  }
  sse_->changed = true;
}

void Session::append_sse_id(std::vector<OutItem>& items) {
  std::lock_guard<std::mutex> lock(sse_->mutex);
  for (const auto& item : items) {
    if (!item.batch) continue;
    auto& positions = sse_->last[item.batch->topic()];
    for (const auto& f : item.batch->frames()) {
      int64_t& last = positions[f->partition];
      last = std::max(last, f->offset);
      sse_->changed = true;
    }
  }
  if (!sse_->changed) return;
  sse_->changed = false;
  // An event with an id and no data sets the browser's last event id
  // without a message event (HTML, "dispatch the event", step 1).
  items.push_back(OutItem{nullptr, "id: " + format_resume(sse_->last) + "\n\n"});
}

void Session::refuse(ClientError error, std::string_view why, std::string_view request_id, std::string_view topic) {
  ++services_.counters->client_errors;
  reply(error_json(error, why, request_id, topic), ReplyKind::problem);
}

void Session::notify(const HubNotice& notice) {
  // The bridge logs Kafka's state once; a line per legacy client says nothing more.
  if (notice.kind == HubNotice::Kind::kafka && !kws_protocol_) return;
  if (notice.kind == HubNotice::Kind::lost) ++services_.counters->lost_notices;
  if (notice.kind == HubNotice::Kind::error && !notice.answers_request) {
    services_.log->warning("topic '" + notice.topic + "': " + notice.message);
  }
  if (notice.kind == HubNotice::Kind::error && notice.answers_request && !notice.topic.empty()) {
    // A subscription that failed holds no place among the session's topics.
    std::lock_guard<SpinLock> lock(not_subscribed_lock_);
    if (!not_subscribed_) not_subscribed_ = std::make_unique<std::vector<std::string>>();
    not_subscribed_->push_back(notice.topic);
  }
  const bool problem = notice.kind == HubNotice::Kind::error || notice.kind == HubNotice::Kind::lost;
  track_sse_positions(notice);
  reply(notice_json(notice), problem ? ReplyKind::problem : ReplyKind::answer);
  if (notice.answers_request) request_done();
}

void Session::request_done() {
  // Reading paused on too many open requests resumes on the I/O thread.
  if (pending_requests_.fetch_sub(1) == services_.options.max_pending_requests && !closed_) {
    services_.host->wake(shared_from_this());
  }
}

void Session::on_delivery(const Delivery& d, const std::string& request_id) {
  if (d.ok()) {
    if (!request_id.empty()) reply(ack_json(request_id, d.topic, d.partition, d.offset));
  } else {
    reply(error_json(client_error_for(d.error), d.message, request_id, d.topic), ReplyKind::problem);
  }
  if (pending_produce_.fetch_sub(1) == services_.options.max_pending_produce && !closed_) {
    services_.host->wake(shared_from_this());
  }
}

// ---- on the I/O thread ---------------------------------------------------------

void Session::on_wake() {
  if (!link_) return;
  forget_failed_subscriptions();
  if (outbox_.overflowed()) {
    close_slow();
    return;
  }
  if (retry_armed_) {
    retry_armed_ = false;
    retry_blocked();
  }
  flush();
  update_reading();
}

void Session::forget_failed_subscriptions() {
  std::unique_ptr<std::vector<std::string>> failed;
  {
    std::lock_guard<SpinLock> lock(not_subscribed_lock_);
    failed = std::move(not_subscribed_);
  }
  if (!failed) return;
  for (const auto& t : *failed) erase_sorted(subscribed_, t);
}

void Session::on_drained() {
  outbox_.set_in_link(0);
  store_written();
  flush();
}

void Session::note_written(const std::vector<OutItem>& items) {
  for (const auto& item : items) {
    if (!item.batch || item.batch->frames().empty()) continue;
    if (!group_written_) group_written_ = std::make_unique<ResumeByTopic>();
    auto& positions = (*group_written_)[item.batch->topic()];
    for (const auto& f : item.batch->frames()) {
      int64_t& next = positions[f->partition];
      next = std::max(next, f->offset + 1);
    }
  }
}

void Session::store_written() {
  if (!group_written_ || !group_reader_) return;
  for (const auto& [topic, positions] : *group_written_) {
    for (const auto& [partition, next] : positions) group_reader_->store_offset(topic, partition, next);
  }
  group_written_.reset();
}

void Session::flush(bool behind_pending) {
  // While the link still holds bytes, new ones wait in the outbox, where
  // the budget and drop-oldest apply; on_drained() comes back for them. So a
  // client that reads nothing holds at most one write's worth in the link.
  // At shutdown everything goes behind what the link holds, before the close.
  if (!link_ || (link_->buffered() > 0 && !behind_pending)) return;
  std::vector<OutItem>& items = *services_.flush_scratch;
  Outbox::Taken taken = outbox_.take(items);
  if (taken.dropped > 0) {
    // One notice per write at most, with the count since the last one.
    if (kws_protocol_) {
      items.insert(items.begin(), OutItem{nullptr, frame_own(dropped_json(taken.dropped))});
    } else {
      ++services_.counters->unsent_notices;
    }
  }
  if (taken.conflated > 0) {
    services_.counters->conflated += taken.conflated;
    if (kws_protocol_) {
      items.insert(items.begin(), OutItem{nullptr, frame_own(conflated_json(taken.conflated))});
    } else {
      ++services_.counters->unsent_notices;
    }
  }
  if (sse_ && !items.empty()) append_sse_id(items);
  if (items.empty()) return;
  size_t size = 0;
  for (const auto& item : items) size += item.batch ? item.batch->bytes(encoding_).size() : item.bytes.size();
  if (group_reader_) note_written(items);
  link_->write(items);
  items.clear();  // keeps its capacity for the next flush (Outbox::take swaps it in)
  // All of it went into the socket at once: it counts as sent now.
  if (link_ && link_->buffered() == 0) store_written();
  services_.counters->frames_out += taken.frames;
  services_.counters->bytes_out += size;
  ++services_.counters->writes;
  // The link may have closed on a failed write.
  if (link_) outbox_.set_in_link(link_->buffered());
}

bool Session::close_if_expired(std::chrono::system_clock::time_point now) {
  if (!link_ || closing_ || !principal_ || !principal_->expires) return false;
  if (now < *principal_->expires + services_.options.token_leeway) return false;
  closing_ = true;
  link_->close(CloseReason::policy, "token expired");
  return true;
}

void Session::authenticate(const ClientRequest& r) {
  if (!services_.check_token) {
    refuse(ClientError::bad_frame, "this bridge does not use tokens (no JWT key configured)", r.request_id);
    return;
  }
  TokenCheck check = services_.check_token(r.token);
  if (!check.principal) {
    // The old token stays in force until it expires.
    refuse(ClientError::bad_token, check.problem, r.request_id);
    return;
  }
  // A refresh renews who the session is; it never turns it into someone else.
  if (principal_ && check.principal->name != principal_->name) {
    refuse(ClientError::bad_token, "the token is for another subject than this session's", r.request_id);
    return;
  }
  principal_ = std::move(check.principal);
  if (group_reader_) {
    // A group session's topics are fixed: rights that no longer cover them end it.
    const GroupSubscription& g = group_reader_->subscription();
    bool allowed = services_.authorizer->allows_group(*principal_, g.group);
    for (const auto& t : g.topics) allowed = allowed && services_.authorizer->allows(*principal_, t, TopicAction::read);
    if (!allowed) {
      const std::string why = "the new token does not grant this group session's group.id and topics";
      refuse(ClientError::not_allowed, why, r.request_id);
      flush();
      if (link_ && !closing_) {
        closing_ = true;
        link_->close(CloseReason::policy, why);
      }
      return;
    }
  }
  const int64_t expires =
      principal_->expires
          ? std::chrono::duration_cast<std::chrono::seconds>(principal_->expires->time_since_epoch()).count()
          : 0;
  reply(authenticated_json(r.request_id, principal_->name, expires));
  // The new token's rights replace the old one's: what it may no longer
  // read ends now, answered with `unsubscribed` after `authenticated`.
  const std::vector<std::string> reading = subscribed_;
  for (const auto& t : reading) {
    if (services_.authorizer->allows(*principal_, t, TopicAction::read)) continue;
    erase_sorted(subscribed_, t);
    ++pending_requests_;
    services_.hub->unsubscribe(shared_from_this(), t, r.request_id);
  }
}

void Session::release_idle_memory() {
  if (link_ && link_->buffered() == 0) outbox_.release_idle_memory();
}

void Session::close_slow() {
  if (!link_ || closing_) return;
  closing_ = true;
  ++services_.counters->slow_closes;
  // What it has not been handed yet it will never get: the close goes next.
  link_->close(CloseReason::policy,
               "slow client: more than " + std::to_string(services_.options.client_buffer) + " bytes pending",
               /*drop_pending=*/true);
}

void Session::on_closed() {
  if (closed_.exchange(true)) return;
  link_ = nullptr;
  services_.counters->dropped += outbox_.dropped();
  blocked_.reset();
  services_.hub->remove(shared_from_this());
  if (group_reader_) {
    services_.group_sessions->fetch_sub(1);
    group_reader_->stop();
    services_.host->retire(std::move(group_reader_));
  }
  services_.host->closed(*this);
}

void Session::update_reading() {
  if (!link_) return;
  const bool pause = blocked_ || pending_produce_ >= services_.options.max_pending_produce ||
                     pending_requests_ >= services_.options.max_pending_requests ||
                     (services_.finishing && *services_.finishing);
  if (pause == reading_paused_) return;
  // Shutting down: stop_reading() paused the link; it stays paused.
  if (!pause && services_.finishing && *services_.finishing) return;
  reading_paused_ = pause;
  if (pause) {
    ++services_.counters->paused_reads;
    link_->pause_reading();
  } else {
    link_->resume_reading();
  }
}

void Session::on_message(MessageKind kind, std::string& payload) {
  ++services_.counters->frames_in;
  services_.counters->bytes_in += payload.size();
  // Order is kept: once one frame waits for Kafka's queue, later ones wait behind it.
  if (blocked_) {
    blocked_->emplace_back(kind, std::move(payload));
    return;
  }
  if (handle(kind, payload) == Handled::queue_full) {
    blocked_ = std::make_unique<Blocked>();
    blocked_->emplace_back(kind, std::move(payload));
    if (!retry_armed_) {
      retry_armed_ = true;
      services_.host->wake_after(shared_from_this(), std::chrono::milliseconds(5));
    }
  }
  update_reading();
}

void Session::retry_blocked() {
  while (blocked_) {
    if (handle(blocked_->front().first, blocked_->front().second) == Handled::queue_full) {
      retry_armed_ = true;
      services_.host->wake_after(shared_from_this(), std::chrono::milliseconds(5));
      return;
    }
    blocked_->pop_front();
    if (blocked_->empty()) blocked_.reset();
  }
}

Session::Handled Session::handle(MessageKind kind, const std::string& payload) {
  ClientRequest r = decode_client_message(kind, payload, services_.options.max_frame);
  if (r.kws_only) kws_protocol_ = true;
  if (r.kind != ClientRequest::Kind::invalid && r.kind != ClientRequest::Kind::produce) {
    // Control frames are kws's own: their sender wants the answers.
    kws_protocol_ = true;
    if (!within_rate(r, {}, payload.size(), Limited::control)) return Handled::done;
  }
  switch (r.kind) {
    case ClientRequest::Kind::invalid:
      refuse(r.error, r.why, r.request_id, r.topic);
      return Handled::done;
    case ClientRequest::Kind::produce:
      return produce(r, payload.size());
    case ClientRequest::Kind::auth:
      authenticate(r);
      return Handled::done;
    case ClientRequest::Kind::subscribe:
    case ClientRequest::Kind::unsubscribe:
      control(r);
      return Handled::done;
    case ClientRequest::Kind::topics: {
      // What this client may read, decided with the principal it has now
      // (the hub answers on its own thread, and an auth frame may replace
      // the principal meanwhile). Kafka's internal topics are not listed.
      std::shared_ptr<const Principal> principal = principal_;
      const Authorizer* authorizer = services_.authorizer;
      ++pending_requests_;
      services_.hub->list_topics(
          shared_from_this(),
          [principal, authorizer](const std::string& name) {
            return name.rfind("__", 0) != 0 &&
                   authorizer->allows(principal ? *principal : anonymous(), name, TopicAction::read);
          },
          r.request_id);
      return Handled::done;
    }
  }
  return Handled::done;
}

std::optional<Refusal> Session::admit(std::string_view topic, TopicAction action) {
  // With tokens configured every session has a principal; one without is a
  // bug, and a bug must fail closed.
  if (services_.check_token && !principal_) {
    return Refusal{ClientError::not_allowed, "this session has no verified token"};
  }
  if (auto refusal = admit_topic(topic, action, encoding_, principal_ ? *principal_ : anonymous(), *services_.authorizer)) {
    return refusal;
  }
  const bool known = contains(subscribed_, topic) || contains(produced_, topic);
  if (!known && subscribed_.size() + produced_.size() >= services_.options.max_topics) {
    return Refusal{ClientError::topic_limit, "this session already uses " + std::to_string(services_.options.max_topics) +
                                                 " topics (serve.max_topics)"};
  }
  if (action == TopicAction::read && !contains(subscribed_, topic) &&
      subscribed_.size() >= services_.options.max_subscriptions) {
    ++services_.counters->subscription_limit_refusals;
    return Refusal{ClientError::topic_limit, "this session already subscribes to " +
                                                 std::to_string(services_.options.max_subscriptions) +
                                                 " topics (serve.max_subscriptions)"};
  }
  return std::nullopt;
}

bool Session::within_rate(const ClientRequest& r, std::string_view topic, size_t frame_bytes, Limited which) {
  const bool control = which == Limited::control;
  const RateLimits& limits = control ? services_.options.control_limits : services_.options.produce_limits;
  if (!limits.enabled()) return true;
  if (closing_) return false;  // frames read after the close was asked for
  const auto now = services_.clock ? services_.clock() : std::chrono::steady_clock::now();
  if (!limiters_) limiters_ = std::make_unique<Limiters>();
  std::optional<RateLimiter>& limiter = control ? limiters_->control : limiters_->produce;
  if (!limiter) limiter.emplace(limits, now);
  RateLimiter::Decision d = limiter->check(frame_bytes, now);
  if (d.verdict == RateLimiter::Verdict::allowed) {
    // A control frame is handled at once; a produce pays once it reached
    // Kafka's queue (produce()).
    if (control) limiter->spend(frame_bytes);
    return true;
  }
  ++services_.counters->rate_limited;
  // A kafka-websocket client cannot be told: refuse() counts and logs it.
  refuse(ClientError::rate_limited, d.why, r.request_id, topic);
  if (d.verdict == RateLimiter::Verdict::close && link_) {
    closing_ = true;
    ++services_.counters->rate_limit_closes;
    services_.log->warning("closing a client: " + d.close_reason);
    flush();
    if (link_) link_->close(CloseReason::policy, d.close_reason);
  }
  return false;
}

Session::Handled Session::produce(const ClientRequest& r, size_t frame_bytes) {
  RecordPolicy policy;
  PreparedRecord prepared;
  std::string_view topic;
  if (r.binary) {
    topic = r.binary_topic;
  } else {
    topic = r.message.topic;
  }
  if (services_.options.read_only) {
    // The session goes on: it may still read. refuse() tells a kws client,
    // and counts and logs it for a kafka-websocket one.
    refuse(ClientError::not_allowed, "this bridge is read-only", r.request_id, topic);
    return Handled::done;
  }
  if (!within_rate(r, topic, frame_bytes, Limited::produce)) return Handled::done;
  if (auto refusal = admit(topic, TopicAction::write)) {
    refuse(refusal->error, refusal->why, r.request_id, topic);
    return Handled::done;
  }
  if (r.binary) {
    prepare_plain_record(r.binary_value, policy, prepared, r.binary_topic);
  } else if (auto problem = prepare_envelope_record(r.message, policy, prepared)) {
    refuse(ClientError::bad_frame, *problem, r.request_id, topic);
    return Handled::done;
  }
  const uint64_t token = services_.deliveries->track(weak_from_this(), r.request_id);
  prepared.record.token = token;
  ++pending_produce_;
  ProduceOutcome out = services_.producer->try_produce(prepared.record);
  if (out.queued()) {
    insert_sorted(produced_, topic);
    if (limiters_ && limiters_->produce) limiters_->produce->spend(frame_bytes);
    return Handled::done;
  }
  --pending_produce_;
  services_.deliveries->forget(token);
  if (out.error == ProduceError::queue_full) return Handled::queue_full;
  ++services_.counters->produce_errors;
  reply(error_json(client_error_for(out.error), out.message, r.request_id, topic), ReplyKind::problem);
  return Handled::done;
}

void Session::control(const ClientRequest& r) {
  if (group_session_) {
    refuse(ClientError::bad_frame, "a group.id session cannot change its topics; reconnect with other topics",
           r.request_id);
    return;
  }
  // One frame cannot queue more hub requests than the session may have topics.
  if (r.topics.size() > services_.options.max_topics) {
    refuse(ClientError::topic_limit,
           "a frame may name at most " + std::to_string(services_.options.max_topics) + " topics (serve.max_topics)",
           r.request_id);
    return;
  }
  const bool subscribe = r.kind == ClientRequest::Kind::subscribe;
  for (const auto& name : r.topics) {
    if (!subscribe) {
      if (auto problem = topic_name_problem(name)) {
        refuse_in_turn(Refusal{ClientError::bad_topic, *problem}, r.request_id, name);
        continue;
      }
      erase_sorted(subscribed_, name);
      ++pending_requests_;
      services_.hub->unsubscribe(shared_from_this(), name, r.request_id);
      continue;
    }
    if (auto refusal = admit(name, TopicAction::read)) {
      refuse_in_turn(*refusal, r.request_id, name);
      continue;
    }
    insert_sorted(subscribed_, name);
    ++pending_requests_;
    services_.hub->subscribe(shared_from_this(), name,
                             subscription_spec(r.start, r.start_text, r.resume, r.filter, r.tell_caught_up, name),
                             r.request_id);
  }
}

}  // namespace kws
