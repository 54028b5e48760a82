#pragma once
// One client of `kws serve`, apart from its transport: what it subscribed
// to, what it produced and waits for, its outbox, and the kws protocol it
// speaks (docs/PROTOCOL.md). It hears from the hub as a Subscriber, from its
// link as LinkEvents, from the producer through the ProduceTracker, and
// talks back through a Link. No socket, no Asio, no librdkafka: unit-tested
// with a fake link (tests/unit/test_session_session.cpp).
//
// Threads: deliver() and notify() come from the hub's thread (and a group
// session's reader), on_delivery() from the producer's; they only fill the
// outbox and ask the host for a wake-up. Everything else runs on the link's
// I/O thread, which alone touches the link.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/hub/group_reader.hpp"
#include "core/hub/hub.hpp"
#include "core/message_io.hpp"
#include "core/session/admission.hpp"
#include "core/session/client_session.hpp"
#include "core/session/client_frames.hpp"
#include "core/session/connect_request.hpp"
#include "core/session/link.hpp"
#include "core/session/outbox.hpp"
#include "core/session/produce_tracker.hpp"
#include "core/session/rate_limit.hpp"
#include "core/util/spin_lock.hpp"
#include "core/util/log.hpp"

namespace kws {

class Session;

// The side that runs sessions (the server). Thread-safe.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  // Run session->on_wake() soon on its I/O thread. Many wakes may become one.
  virtual void wake(std::shared_ptr<ClientSession> session) = 0;
  // Run session->on_wake() on its I/O thread after `delay`.
  virtual void wake_after(std::shared_ptr<ClientSession> session, std::chrono::milliseconds delay) = 0;
  // Keeps a closed group session's reader until its thread has ended (it
  // may hold the last reference to its session, so it cannot be joined
  // from there).
  virtual void retire(std::unique_ptr<GroupReader> reader) = 0;
  // The session's link is gone (from on_closed, on the I/O thread).
  virtual void closed(ClientSession& session) = 0;
};

struct SessionOptions {
  size_t client_buffer = 4 << 20;
  SlowClientPolicy slow_client = SlowClientPolicy::close;
  size_t max_frame = 1 << 20;
  size_t max_pending_produce = 1000;  // frames waiting for Kafka; beyond, reading pauses
  size_t max_pending_requests = 8;    // subscribe/unsubscribe waiting for the hub; beyond, reading pauses
  size_t max_topics = 100;            // topics one session may subscribe to and produce to, together
  size_t max_subscriptions = 64;      // of those, topics it may subscribe to (each costs the hub work)
  RateLimits produce_limits;   // per session; off unless set
  RateLimits control_limits = control_frame_limits(0);  // per session; off unless set
  size_t max_group_sessions = 64;     // on the whole bridge
  bool read_only = false;             // serve.read_only: every produce refused with not_allowed
  // A session ends this long after its token's `exp` (the verifier's leeway
  // for clock skew), unless the client sent a fresh token.
  std::chrono::seconds token_leeway{30};
};

// What the gateway's verifier says of a token an `auth` frame brought: a
// principal, or the reason it was refused. Sessions know no JWT.
struct TokenCheck {
  std::shared_ptr<const Principal> principal;
  std::string problem;
};

struct SessionCounters {
  std::atomic<uint64_t> frames_in{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> frames_out{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> produced{0};        // acknowledged by Kafka
  std::atomic<uint64_t> produce_errors{0};
  std::atomic<uint64_t> client_errors{0};   // requests refused for bad client input
  std::atomic<uint64_t> dropped{0};         // messages dropped for slow clients (drop-oldest), by sessions now closed
  std::atomic<uint64_t> conflated{0};       // messages replaced by a newer one of their key (latest-per-key)
  std::atomic<uint64_t> slow_closes{0};
  std::atomic<uint64_t> paused_reads{0};    // times a session stopped reading its client
  std::atomic<uint64_t> lost_notices{0};    // `lost` notices for sessions
  std::atomic<uint64_t> unsent_notices{0};  // replies and notices a kafka-websocket client was not sent
  std::atomic<uint64_t> rate_limited{0};    // produces and control frames refused with rate_limited
  std::atomic<uint64_t> rate_limit_closes{0};
  std::atomic<uint64_t> subscription_limit_refusals{0};  // subscriptions over serve.max_subscriptions
};

// What a group.id session reads (the bridge opens a consumer for it).
struct GroupRequest {
  std::string group;
  std::vector<std::string> topics;
  OffsetSpec start;
  bool start_explicit = false;
};

// What sessions share; it outlives every session.
struct SessionServices {
  SessionOptions options;
  Hub* hub = nullptr;
  MessageSink* producer = nullptr;  // try_produce from I/O threads
  ProduceTracker* deliveries = nullptr;
  std::function<std::unique_ptr<MessageSource>(const GroupRequest&)> open_group;
  const Authorizer* authorizer = nullptr;
  // Verifies the token of an `auth` frame, on the I/O thread; empty when no
  // token authentication is configured.
  std::function<TokenCheck(std::string_view token)> check_token;
  SessionHost* host = nullptr;
  // A reply's JSON as the link's bytes (a WebSocket text frame): the same
  // for every session of a server, safe from any thread.
  std::string (*frame_text)(std::string_view) = nullptr;
  // The I/O thread's reusable vector for flushes (empty between them).
  std::vector<OutItem>* flush_scratch = nullptr;
  SessionCounters* counters = nullptr;
  std::atomic<size_t>* group_sessions = nullptr;
  std::atomic<bool>* finishing = nullptr;  // the bridge shuts down: never resume reading
  LogSink* log = nullptr;
  SteadyClock clock;  // for the produce limits; empty: std::chrono::steady_clock
};

// Thousands of idle sessions are the common case, so a session keeps only
// what it needs after opening (docs/BENCHMARKS.md, memory per connection).
class Session : public ClientSession {
 public:
  // `principal` null: anonymous (no authentication configured).
  Session(const SessionServices& services, ConnectRequest request, std::shared_ptr<const Principal> principal);
  ~Session() override;

  // On the I/O thread, once the link is up: starts what the request asked
  // for (subscriptions, or the group reader).
  void open(Link& link);

  // Subscriber: from the hub's thread or a group reader's.
  void deliver(const FrameBatchPtr& batch) override;
  void notify(const HubNotice& notice) override;
  // From the producer's delivery thread (through the ProduceTracker).
  void on_delivery(const Delivery& delivery, const std::string& request_id) override;

  // LinkEvents, on the I/O thread.
  void on_message(MessageKind kind, std::string& payload) override;
  void on_drained() override;
  void on_closed() override;

  // On the I/O thread, when the host was asked to wake the session.
  void on_wake() override;
  // On the I/O thread: writes what is queued now, once the link took what
  // it was given before (`behind_pending`: at shutdown, behind it).
  void flush(bool behind_pending = false) override;
  // On the I/O thread, now and then: gives back buffers an idle session
  // kept from its last burst.
  void release_idle_memory() override;
  // On the I/O thread, now and then: closes the session (1008, "token
  // expired") once its principal's token has expired; true if it did.
  bool close_if_expired(std::chrono::system_clock::time_point now) override;

  size_t pending_bytes() const override { return outbox_.pending_bytes(); }
  uint64_t dropped() const override { return outbox_.dropped(); }
  bool closed() const { return closed_; }
  bool kws_protocol() const { return kws_protocol_; }

 private:
  enum class Handled { done, queue_full };

  void offered(Outbox::Offer offer);
  // A reply's JSON as this session's link bytes: a WebSocket text frame, or
  // an SSE event.
  std::string frame_own(std::string_view json) const;
  // SSE: after a write of messages, an `id:` line with the positions
  // delivered so far (a resume token the browser sends back as
  // Last-Event-ID when it reconnects).
  void append_sse_id(std::vector<OutItem>& items);
  void track_sse_positions(const HubNotice& notice);
  // Group sessions: what the last writes handed to the link, stored for the
  // group's commit once the socket took all of it (at least once).
  void note_written(const std::vector<OutItem>& items);
  void store_written();
  // A problem is an answer the client needs to know about (an error, a
  // loss); a legacy client cannot be told, so the operator is.
  enum class ReplyKind { answer, problem };
  void reply(const std::string& json, ReplyKind kind = ReplyKind::answer);
  void refuse(ClientError error, std::string_view why, std::string_view request_id, std::string_view topic = {});
  void refuse_in_turn(const Refusal& refusal, std::string_view request_id, std::string_view topic);
  void forget_failed_subscriptions();
  Handled handle(MessageKind kind, const std::string& payload);
  Handled produce(const ClientRequest& request, size_t frame_bytes);
  // Whether the produce limits (or, for a control frame, the control-frame
  // limit) let a frame of `frame_bytes` through; when not, the client has
  // been answered (and perhaps closed).
  enum class Limited { produce, control };
  bool within_rate(const ClientRequest& request, std::string_view topic, size_t frame_bytes, Limited which);
  void control(const ClientRequest& request);
  void authenticate(const ClientRequest& request);
  std::optional<Refusal> admit(std::string_view topic, TopicAction action);
  void request_done();
  void update_reading();
  void retry_blocked();
  void close_slow();
  void open_group(const ConnectRequest& request);

  using Blocked = std::deque<std::pair<MessageKind, std::string>>;

  const SessionServices& services_;
  std::unique_ptr<ConnectRequest> opening_;  // what the client asked for; only until open()
  std::shared_ptr<const Principal> principal_;
  Outbox outbox_;
  Link* link_ = nullptr;  // I/O thread; null before open() and after on_closed()
  std::unique_ptr<GroupReader> group_reader_;
  // Made at the first frame a limit applies to: most sessions send none
  // after they connect. One pointer for both keeps idle sessions small.
  struct Limiters {
    std::optional<RateLimiter> produce;
    std::optional<RateLimiter> control;
  };
  std::unique_ptr<Limiters> limiters_;
  // I/O-thread state.
  std::vector<std::string> subscribed_;  // sorted; topics this session reads
  std::vector<std::string> produced_;    // sorted; topics it wrote to
  // Frames waiting for room in Kafka's queue, in order; almost always none.
  std::unique_ptr<Blocked> blocked_;
  // Topics whose subscription the hub refused (hub thread in, I/O thread out).
  std::unique_ptr<std::vector<std::string>> not_subscribed_;
  std::atomic<uint32_t> pending_produce_{0};
  std::atomic<uint32_t> pending_requests_{0};
  std::atomic<bool> closed_{false};
  std::atomic<bool> kws_protocol_{false};
  const Encoding encoding_;
  const bool group_session_;
  bool reading_paused_ = false;
  bool retry_armed_ = false;
  bool closing_ = false;  // the session asked its link to close
  std::atomic<uint8_t> problems_logged_{0};  // warnings about a legacy client's untold problems
  SpinLock not_subscribed_lock_;
  // SSE sessions only: the last offset delivered per partition (from the
  // hub's thread at `subscribed`, from the I/O thread at each write).
  struct SsePositions {
    std::mutex mutex;
    ResumeByTopic last;
    bool changed = false;
  };
  std::unique_ptr<SsePositions> sse_;
  // Group sessions (I/O thread): per topic and partition, the offset after
  // the last message handed to the link and not yet stored.
  std::unique_ptr<ResumeByTopic> group_written_;
};

}  // namespace kws
