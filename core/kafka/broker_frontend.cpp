#include "core/kafka/broker_frontend.hpp"

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/kafka/embedded_broker.hpp"
#include "core/topic_name.hpp"
#include "core/util/descriptors.hpp"
#include "core/util/error.hpp"
#include "core/util/proc_net.hpp"
#include "core/kafka/kafka_wire.hpp"

namespace kws {

namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// The front end's one way to say something: a warning to the log sink the
// command passed in, prefixed so it reads as the broker's.
void diagnose(LogSink* log, const std::string& message) {
  if (log) log->warning("broker: " + message);
}

// Responses come from the mock, which is trusted; the cap only stops a
// corrupt size prefix from allocating without end.
constexpr uint32_t kMaxResponseBytes = 256u << 20;
// Frames are read in pieces of at most this size, so memory follows the
// bytes that actually arrived, not the size a prefix claims.
constexpr size_t kReadChunk = 64 << 10;

// See cap_join_group_session_timeout: a consumer group that a member left
// rejoins after about this long instead of 45 s. Kafka's own minimum.
constexpr int32_t kMaxSessionTimeoutMs = 6000;
// The relay forgets a group member this long after the mock would have
// (members are remembered to refuse inconsistent protocols; remembering
// too long only delays a member that changed its protocols).
constexpr auto kMemberGrace = std::chrono::seconds(3);

// librdkafka's mock listens with a backlog of 5: more connection attempts
// at once are dropped by the kernel and retried by TCP after 1, 3, 7... s.
// So at most this many connections to one mock broker are being set up at
// a time, each until the mock has answered a first request on it.
constexpr int kMaxConnectingPerBackend = 4;
constexpr int kConnectAttempts = 5;
constexpr auto kHandshakeTimeout = std::chrono::seconds(5);
// Descriptors kept back for everything that is not a relayed connection.
constexpr uint64_t kReservedDescriptors = 64;

// The 4-byte big-endian size in front of every Kafka frame.
std::array<unsigned char, 4> size_prefix(size_t size) {
  uint32_t n = static_cast<uint32_t>(size);
  return {static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16),
          static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
}

bool out_of_descriptors(const asio::error_code& ec) {
  return ec == asio::error::no_descriptors || ec.value() == ENFILE || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory;
}

// Creates topics on a thread of its own: each creation waits for the mock's
// thread, and the relay's I/O thread must not.
// A topic to create; 0 partitions or replicas: the broker's default.
struct TopicToCreate {
  std::string name;
  int partitions = 0;
  int replication = 0;
};

class TopicCreator {
 public:
  struct Result {
    std::string topic;
    std::string error;     // empty: created, or there already
    bool existed = false;  // it was there before this request
  };
  using Done = std::function<void(std::vector<Result>)>;
  using Create = std::function<bool(const std::string&, int partitions, int replication)>;

  explicit TopicCreator(Create create) : create_(std::move(create)) {
    thread_ = std::thread([this] { run(); });
  }
  ~TopicCreator() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  // `done` runs on the creator's thread; it must post back to the caller's.
  void submit(std::vector<TopicToCreate> topics, Done done) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back({std::move(topics), std::move(done)});
    }
    wake_.notify_one();
  }

 private:
  struct Job {
    std::vector<TopicToCreate> topics;
    Done done;
  };
  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (stop_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      std::vector<Result> results;
      for (auto& topic : job.topics) {
        Result r{topic.name, {}, false};
        if (created_.count(topic.name)) {
          r.existed = true;
        } else {
          try {
            r.existed = !create_(topic.name, topic.partitions, topic.replication);
            created_.insert(topic.name);
          } catch (const Error& e) {
            r.error = e.what();
          }
        }
        results.push_back(std::move(r));
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_) return;
      }
      job.done(std::move(results));
    }
  }

  Create create_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::set<std::string> created_;  // by this thread, so a topic two requests name is created once
  std::thread thread_;
};

class Connection;

struct Member {
  std::string protocol_type;
  std::vector<std::string> protocols;
  Clock::time_point expires;
};

struct Shared {
  explicit Shared(asio::io_context& io) : io(io), wake_timer(io) {}
  asio::io_context& io;
  // Connections holding back a Fetch until records arrive (see
  // Connection::on_fetch_request); every produce the mock answers wakes them.
  std::set<Connection*> parked_fetches;
  // Produces stored so far (answered, or forwarded with acks=0): an empty
  // Fetch answer from before the latest one may already be out of date.
  uint64_t stored_produces = 0;
  asio::steady_timer wake_timer;
  bool wake_armed = false;
  void wake_fetches();
  void wake_fetches_soon();
  FrontendConfig config;
  std::string advertised_host;
  std::vector<uint16_t> ports;  // front-end port per backend
  std::vector<tcp::endpoint> backends;
  std::set<std::string> known_topics;
  std::map<std::string, std::string> groups;  // id -> protocol type, from JoinGroup/OffsetCommit
  // group -> member id (or a pending JoinGroup's key) -> what it offered.
  std::map<std::string, std::map<std::string, Member>> members;
  std::unique_ptr<TopicCreator> creator;

  struct Gate {
    int active = 0;
    std::deque<std::shared_ptr<Connection>> waiting;
  };
  std::vector<Gate> gates;  // per backend

  uint64_t max_connections = 0;
  uint64_t live_connections = 0;
  std::function<void()> resume_accepting;

  std::optional<std::pair<std::string, int32_t>> map(const std::string& host, int32_t port) const {
    for (size_t i = 0; i < config.backends.size(); ++i) {
      if (config.backends[i].port == port && (config.backends[i].host == host || host == "localhost")) {
        return std::make_pair(advertised_host, static_cast<int32_t>(ports[i]));
      }
    }
    return std::nullopt;
  }

  void acquire(size_t backend, std::shared_ptr<Connection> c);
  void release(size_t backend);

  // The members of `group` the mock may still have, expired ones dropped.
  std::map<std::string, Member>& live_members(const std::string& group) {
    auto& all = members[group];
    auto now = Clock::now();
    for (auto it = all.begin(); it != all.end();) it = it->second.expires < now ? all.erase(it) : std::next(it);
    return all;
  }
  void forget_group_if_empty(const std::string& group) {
    auto it = members.find(group);
    if (it != members.end() && it->second.empty()) members.erase(it);
  }
};

Clock::time_point member_expiry(int32_t timeout_ms) {
  int32_t ms = std::clamp<int32_t>(timeout_ms, 0, 5 * 60 * 1000);
  return Clock::now() + std::chrono::milliseconds(ms) + kMemberGrace;
}

// One client connection and its connection to the mock broker behind it.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket client, Shared& shared, size_t backend_index, uint64_t serial)
      : client_(std::move(client)),
        broker_(shared.io),
        timer_(shared.io),
        fetch_timer_(shared.io),
        shared_(shared),
        backend_index_(backend_index),
        serial_(serial) {}

  void start() { shared_.acquire(backend_index_, shared_from_this()); }
  bool closed() const { return closed_; }

  // Asks the mock again for the parked Fetch's data: new records may have
  // arrived, or its deadline has come.
  void retry_fetch();

  // Called by the gate: this connection may now connect to the mock.
  void connect_backend();

  void close();

 private:
  struct Direction {
    std::array<unsigned char, 4> size{};
    std::string frame;
    std::string out;
  };
  struct Pending {
    int16_t api_key;
    int16_t client_version;
    int16_t broker_version;
    std::vector<wire::TopicError> missing;
    std::optional<std::string> local_response;  // answered by the front end itself
    std::string group;
    std::string member_key;
    // A Fetch the mock was asked to answer at once (see on_fetch_request):
    // an empty answer before the deadline is held back.
    Clock::time_point fetch_deadline{};
    uint64_t fetch_sent_after = 0;  // Shared::stored_produces when it was sent
    std::string fetch_request{};    // as sent to the mock, to ask again
  };
  enum class Verdict { forward, close, later };
  // The one Fetch held back because the mock had no data for it yet.
  struct ParkedFetch {
    int32_t correlation_id = 0;
    int16_t version = 0;
    Clock::time_point deadline{};
    // As sent to the mock, with no wait; shared with a retry's pending write.
    std::shared_ptr<const std::string> request;
    bool retrying = false;  // a copy of `request` is with the mock
  };

  void handshake_failed();
  void begin_relay();
  template <typename Handler>
  void read_frame(bool upstream, Handler&& handler);
  template <typename Handler>
  void read_body(bool upstream, uint32_t n, Handler handler);
  void next_request();
  void forward_request();
  void next_response();
  Verdict on_request();
  Verdict on_group_request(const wire::RequestHeader& header, const std::string& frame);
  Verdict on_metadata_request(const wire::RequestHeader& header, const std::string& frame);
  Verdict on_create_topics_request(const wire::RequestHeader& header, const std::string& frame);
  Verdict on_delete_topics_request(const wire::RequestHeader& header, const std::string& frame);
  void on_fetch_request(const wire::RequestHeader& header, const std::string& frame);
  void on_response_frame();
  void write_to_client(std::string& payload);
  void send_held_responses();
  void finish_metadata(const wire::RequestHeader& header, const std::string& frame, wire::MetadataRequest request,
                       std::vector<std::string> forwarded, std::vector<wire::TopicError> missing);
  void answer_locally(const wire::RequestHeader& header, std::string response);
  // What became of a response from the mock.
  enum class Answer { pass, park, release };
  Answer on_response(const std::string& frame);
  void release_buffer(std::string& s) {
    if (s.capacity() > (1u << 20)) {
      large_buffers_ = true;
      std::string().swap(s);
    } else {
      s.clear();
    }
  }

  tcp::socket client_;
  tcp::socket broker_;
  asio::steady_timer timer_;
  asio::steady_timer fetch_timer_;
  Shared& shared_;
  size_t backend_index_;
  uint64_t serial_;
  Direction up_;
  Direction down_;
  std::unordered_map<int32_t, Pending> pending_;
  std::vector<std::pair<std::string, std::string>> joins_;  // (group, key) of JoinGroups awaiting an answer
  std::optional<ParkedFetch> parked_;
  // Answers to requests sent after the parked Fetch: the client gets them
  // after it, in order, as a broker answers a connection's requests.
  std::deque<std::string> held_;
  bool writing_upstream_ = false;  // a forwarded request or a retried Fetch
  bool forward_waiting_ = false;
  bool retry_waiting_ = false;
  std::array<unsigned char, 4> retry_size_{};
  bool closed_ = false;
  bool holding_slot_ = false;
  bool muted_ = false;
  bool expects_response_ = true;
  bool large_buffers_ = false;
  int attempts_ = 0;
  int in_flight_ = 0;
};

void Shared::wake_fetches() {
  if (parked_fetches.empty()) return;
  std::vector<Connection*> parked(parked_fetches.begin(), parked_fetches.end());
  for (Connection* c : parked) c->retry_fetch();
}

// A produce with acks=0 gets no answer that would say the mock has stored
// it, so the parked fetches are asked again a moment after it was sent.
void Shared::wake_fetches_soon() {
  if (wake_armed) return;
  wake_armed = true;
  wake_timer.expires_after(std::chrono::milliseconds(1));
  wake_timer.async_wait([this](const asio::error_code& ec) {
    wake_armed = false;
    if (!ec) wake_fetches();
  });
}

void Shared::acquire(size_t backend, std::shared_ptr<Connection> c) {
  Gate& gate = gates[backend];
  if (gate.active < kMaxConnectingPerBackend) {
    ++gate.active;
    c->connect_backend();
  } else {
    gate.waiting.push_back(std::move(c));
  }
}

void Shared::release(size_t backend) {
  Gate& gate = gates[backend];
  --gate.active;
  while (gate.active < kMaxConnectingPerBackend && !gate.waiting.empty()) {
    auto next = std::move(gate.waiting.front());
    gate.waiting.pop_front();
    if (next->closed()) continue;
    ++gate.active;
    next->connect_backend();
  }
}

void Connection::connect_backend() {
  holding_slot_ = true;
  ++attempts_;
  auto self = shared_from_this();
  timer_.expires_after(kHandshakeTimeout);
  timer_.async_wait([self](const asio::error_code& ec) {
    if (ec) return;
    asio::error_code ignored;
    self->broker_.close(ignored);  // fails the pending connect, write or read
  });
  broker_.async_connect(shared_.backends[backend_index_], [self](const asio::error_code& ec) {
    if (self->closed_) return;
    if (ec) return self->handshake_failed();
    // A first request proves that the mock has accepted this connection
    // (a completed connect only means the kernel queued it).
    static const std::string kApiVersionsV0("\x00\x00\x00\x13\x00\x12\x00\x00\x00\x00\x00\x00\x00\x09kws-relay", 23);
    auto probe = std::make_shared<std::string>(kApiVersionsV0);
    asio::async_write(self->broker_, asio::buffer(*probe), [self, probe](const asio::error_code& ec2, size_t) {
      if (self->closed_) return;
      if (ec2) return self->handshake_failed();
      self->read_frame(false, [self] {
        self->timer_.cancel();
        self->release_buffer(self->down_.frame);
        self->begin_relay();
      });
    });
  });
}

void Connection::handshake_failed() {
  timer_.cancel();
  asio::error_code ignored;
  broker_.close(ignored);
  if (holding_slot_) {
    holding_slot_ = false;
    shared_.release(backend_index_);
  }
  if (closed_) return;
  if (attempts_ >= kConnectAttempts) {
    diagnose(shared_.config.log, "cannot reach the embedded broker behind the front end; closing a client connection");
    return close();
  }
  broker_ = tcp::socket(shared_.io);
  auto self = shared_from_this();
  timer_.expires_after(std::chrono::milliseconds(50 << attempts_));
  timer_.async_wait([self](const asio::error_code& ec) {
    if (ec || self->closed_) return;
    self->shared_.acquire(self->backend_index_, self);
  });
}

void Connection::begin_relay() {
  if (holding_slot_) {
    holding_slot_ = false;
    shared_.release(backend_index_);
  }
  if (closed_) return;
  asio::error_code ignored;
  client_.set_option(tcp::no_delay(true), ignored);
  broker_.set_option(tcp::no_delay(true), ignored);
  next_request();
  next_response();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  asio::error_code ignored;
  timer_.cancel();
  fetch_timer_.cancel();
  shared_.parked_fetches.erase(this);
  held_.clear();
  client_.close(ignored);
  broker_.close(ignored);
  if (holding_slot_) {
    holding_slot_ = false;
    shared_.release(backend_index_);
  }
  // JoinGroups still unanswered: the mock has added those members and keeps
  // them for a session timeout.
  for (const auto& [group, key] : joins_) {
    auto g = shared_.members.find(group);
    if (g == shared_.members.end()) continue;
    auto m = g->second.find(key);
    if (m != g->second.end()) m->second.expires = member_expiry(kMaxSessionTimeoutMs);
  }
  joins_.clear();
  pending_.clear();
  release_buffer(up_.frame);
  release_buffer(up_.out);
  release_buffer(down_.frame);
  release_buffer(down_.out);
#if defined(__GLIBC__)
  // glibc keeps freed large buffers mapped in its arenas; give them back
  // so that a client that made the relay buffer much leaves nothing behind.
  if (large_buffers_) malloc_trim(0);
#endif
  --shared_.live_connections;
  if (shared_.resume_accepting) shared_.resume_accepting();
}

// Reads one frame (size prefix, then the body as it arrives) into
// up_.frame or down_.frame and calls handler; closes on error or oversize.
template <typename Handler>
void Connection::read_frame(bool upstream, Handler&& handler) {
  auto self = shared_from_this();
  tcp::socket& from = upstream ? client_ : broker_;
  Direction& d = upstream ? up_ : down_;
  asio::async_read(from, asio::buffer(d.size),
                   [self, upstream, &d, handler = std::forward<Handler>(handler)](const asio::error_code& ec,
                                                                                   size_t) mutable {
                     if (self->closed_) return;
                     if (ec) return upstream || !self->holding_slot_ ? self->close() : self->handshake_failed();
                     uint32_t n = (uint32_t(d.size[0]) << 24) | (uint32_t(d.size[1]) << 16) |
                                  (uint32_t(d.size[2]) << 8) | d.size[3];
                     uint32_t limit = upstream ? kMaxRequestBytes : kMaxResponseBytes;
                     if (n > limit) {
                       if (upstream) {
                         diagnose(self->shared_.config.log, "closed a connection that sent a " + std::to_string(n) +
                                  "-byte request (the limit is " + std::to_string(limit) + ")");
                       }
                       return self->close();
                     }
                     d.frame.clear();
                     self->read_body(upstream, n, std::move(handler));
                   });
}

template <typename Handler>
void Connection::read_body(bool upstream, uint32_t n, Handler handler) {
  Direction& d = upstream ? up_ : down_;
  if (d.frame.size() == n) return handler();
  auto self = shared_from_this();
  tcp::socket& from = upstream ? client_ : broker_;
  size_t have = d.frame.size();
  size_t want = std::min<size_t>(kReadChunk, n - have);
  d.frame.resize(have + want);
  from.async_read_some(asio::buffer(&d.frame[have], want),
                       [self, upstream, n, have, &d, handler = std::move(handler)](const asio::error_code& ec,
                                                                                  size_t got) mutable {
                         if (self->closed_) return;
                         if (ec) return upstream || !self->holding_slot_ ? self->close() : self->handshake_failed();
                         d.frame.resize(have + got);
                         self->read_body(upstream, n, std::move(handler));
                       });
}

// Like a real broker, a connection whose answers are not being read stops
// being read from ("muted"): the mock never holds more than
// kMaxRequestsInFlight answers for it.
void Connection::next_request() {
  if (closed_) return;
  if (in_flight_ >= kMaxRequestsInFlight) {
    muted_ = true;
    return;
  }
  muted_ = false;
  auto self = shared_from_this();
  read_frame(true, [self] {
    switch (self->on_request()) {
      case Verdict::forward:
        return self->forward_request();
      case Verdict::close:
        return self->close();
      case Verdict::later:
        return;  // forward_request() runs when the topics exist
    }
  });
}

void Connection::forward_request() {
  if (closed_) return;
  if (writing_upstream_) {
    forward_waiting_ = true;  // after the retried Fetch
    return;
  }
  writing_upstream_ = true;
  auto self = shared_from_this();
  const std::string& payload = up_.out.empty() ? up_.frame : up_.out;
  up_.size = size_prefix(payload.size());
  if (expects_response_) ++in_flight_;
  std::array<asio::const_buffer, 2> buffers = {asio::buffer(up_.size), asio::buffer(payload)};
  asio::async_write(broker_, buffers, [self](const asio::error_code& ec, size_t) {
    if (self->closed_) return;
    if (ec) return self->close();
    self->writing_upstream_ = false;
    self->release_buffer(self->up_.out);
    self->release_buffer(self->up_.frame);
    if (!self->expects_response_) {  // a Produce with acks=0
      ++self->shared_.stored_produces;
      self->shared_.wake_fetches_soon();
    }
    if (self->retry_waiting_) {
      self->retry_waiting_ = false;
      self->retry_fetch();
    }
    self->next_request();
  });
}

void Connection::retry_fetch() {
  if (closed_ || !parked_ || parked_->retrying) return;
  if (writing_upstream_) {
    retry_waiting_ = true;
    return;
  }
  writing_upstream_ = true;
  parked_->retrying = true;
  Pending p{wire::kFetch, parked_->version, parked_->version, {}, std::nullopt, {}, {}};
  p.fetch_deadline = parked_->deadline;
  p.fetch_sent_after = shared_.stored_produces;
  pending_[parked_->correlation_id] = std::move(p);
  retry_size_ = size_prefix(parked_->request->size());
  auto self = shared_from_this();
  std::array<asio::const_buffer, 2> buffers = {asio::buffer(retry_size_), asio::buffer(*parked_->request)};
  asio::async_write(broker_, buffers, [self, request = parked_->request](const asio::error_code& ec, size_t) {
    if (self->closed_) return;
    if (ec) return self->close();
    self->writing_upstream_ = false;
    if (self->forward_waiting_) {
      self->forward_waiting_ = false;
      self->forward_request();
    }
  });
}

void Connection::next_response() {
  if (closed_) return;
  auto self = shared_from_this();
  read_frame(false, [self] { self->on_response_frame(); });
}

void Connection::on_response_frame() {
  Answer answer = on_response(down_.frame);
  std::string& payload = down_.out.empty() ? down_.frame : down_.out;
  if (answer == Answer::park) {
    release_buffer(down_.out);
    release_buffer(down_.frame);
    return next_response();
  }
  if (answer == Answer::pass && parked_) {
    held_.push_back(std::move(payload));
    down_.out.clear();
    down_.frame.clear();
    return next_response();
  }
  if (answer == Answer::release) {
    parked_.reset();
    fetch_timer_.cancel();
    shared_.parked_fetches.erase(this);
  }
  write_to_client(payload);
}

// Writes one answer (a buffer of down_) to the client, then the answers
// held behind a parked Fetch, then reads the mock's next answer.
void Connection::write_to_client(std::string& payload) {
  down_.size = size_prefix(payload.size());
  auto self = shared_from_this();
  std::array<asio::const_buffer, 2> buffers = {asio::buffer(down_.size), asio::buffer(payload)};
  asio::async_write(client_, buffers, [self](const asio::error_code& ec, size_t) {
    if (self->closed_) return;
    if (ec) return self->close();
    self->release_buffer(self->down_.out);
    self->release_buffer(self->down_.frame);
    if (self->in_flight_ > 0) --self->in_flight_;
    if (self->muted_) self->next_request();
    self->send_held_responses();
  });
}

void Connection::send_held_responses() {
  if (held_.empty() || parked_) return next_response();
  down_.out = std::move(held_.front());
  held_.pop_front();
  write_to_client(down_.out);
}

}  // namespace

namespace {

void Connection::answer_locally(const wire::RequestHeader& header, std::string response) {
  // The mock answers a stand-in request, keeping this answer in its place
  // among the others; on_response swaps it.
  up_.out = wire::encode_placeholder_request(up_.frame, header);
  Pending p{header.api_key, header.api_version, 0, {}, std::move(response), {}, {}};
  pending_[header.correlation_id] = std::move(p);
}

Connection::Verdict Connection::on_request() {
  const std::string& frame = up_.frame;
  expects_response_ = true;
  auto header = wire::parse_request_header(frame);
  if (!header) return Verdict::close;
  const int16_t key = header->api_key;
  const int16_t version = header->api_version;
  if (key == wire::kProduce) {
    expects_response_ = wire::produce_expects_response(*header, frame);
    // Its answer means the records are stored: parked fetches may have data.
    if (expects_response_) pending_[header->correlation_id] = {key, version, version, {}, std::nullopt, {}, {}};
    return Verdict::forward;
  }
  if (key == wire::kFetch) {
    on_fetch_request(*header, frame);
    return Verdict::forward;
  }
  if (key == wire::kListOffsets) {
    if (auto rewritten = wire::rewrite_list_offsets_request(*header, frame)) up_.out = std::move(*rewritten);
    return Verdict::forward;
  }
  if (wire::is_group_request(*header)) return on_group_request(*header, frame);
  if (key == wire::kListGroups && version <= 2) {
    // Answered here from the groups seen; the mock has no ListGroups.
    up_.out = wire::encode_placeholder_request(frame, *header);
    pending_[header->correlation_id] = {key, version, 0, {}, std::nullopt, {}, {}};
    return Verdict::forward;
  }
  if ((key == wire::kFindCoordinator || key == wire::kApiVersions) && version <= 2) {
    pending_[header->correlation_id] = {key, version, version, {}, std::nullopt, {}, {}};
    return Verdict::forward;
  }
  // The mock has neither; ApiVersions answers advertise the front end's.
  if (key == wire::kCreateTopics && version <= wire::kCreateTopicsMaxVersion) {
    return on_create_topics_request(*header, frame);
  }
  if (key == wire::kDeleteTopics && version <= wire::kDeleteTopicsMaxVersion) {
    return on_delete_topics_request(*header, frame);
  }
  if (key != wire::kMetadata || version > 4) return Verdict::forward;
  return on_metadata_request(*header, frame);
}

// librdkafka's mock never cuts a Fetch's wait short when records arrive: it
// answers an empty Fetch only after the client's whole wait, so a consumer
// would see each new record up to fetch.wait.max.ms late (500 ms by
// default). A real broker answers as soon as the records arrive, and so
// does this front end: it asks the mock to answer at once and, when the
// answer has fewer bytes than the client wants, holds it back and asks again
// whenever a produce is stored, or when the client's wait is over.
void Connection::on_fetch_request(const wire::RequestHeader& header, const std::string& frame) {
  auto wait = wire::parse_fetch_wait(header, frame);
  if (!wait || wait->max_wait_ms <= 0 || wait->min_bytes <= 0 || parked_) return;
  up_.out = wire::with_fetch_max_wait(header, frame, 0);
  Pending p{wire::kFetch, header.api_version, header.api_version, {}, std::nullopt, {}, {}};
  p.fetch_deadline = Clock::now() + std::chrono::milliseconds(wait->max_wait_ms);
  p.fetch_sent_after = shared_.stored_produces;
  p.fetch_request = up_.out;
  pending_[header.correlation_id] = std::move(p);
}

Connection::Verdict Connection::on_group_request(const wire::RequestHeader& header, const std::string& frame) {
  // The mock trusts its clients; a request it would choke on is answered
  // (or, when it cannot even be read, ends the connection) here.
  auto request = wire::parse_group_request(header, frame);
  if (!request) return Verdict::close;
  const int16_t key = header.api_key;
  int16_t error = 0;
  if (!request->group) {
    error = wire::kInvalidGroupId;
  } else if (!request->member || request->null_member_inside) {
    error = wire::kUnknownMemberId;
  } else if (key == wire::kJoinGroup &&
             (request->protocols.empty() || request->null_protocol || !request->protocol_type ||
              request->protocol_type->empty())) {
    error = wire::kInconsistentGroupProtocol;  // what Kafka answers to no protocols
  }
  if (!error && key == wire::kJoinGroup) {
    // Kafka admits a member only when it shares a protocol (and the protocol
    // type) with every current member; librdkafka's mock aborts instead.
    auto& members = shared_.live_members(*request->group);
    std::set<std::string> common(request->protocols.begin(), request->protocols.end());
    for (const auto& [id, m] : members) {
      if (!request->member->empty() && id == *request->member) continue;
      if (m.protocol_type != *request->protocol_type) common.clear();
      std::set<std::string> theirs(m.protocols.begin(), m.protocols.end());
      for (auto it = common.begin(); it != common.end();) it = theirs.count(*it) ? std::next(it) : common.erase(it);
    }
    if (common.empty()) error = wire::kInconsistentGroupProtocol;
  }
  if (error) {
    shared_.forget_group_if_empty(request->group.value_or(""));
    answer_locally(header, wire::encode_group_error_response(header, *request, error));
    return Verdict::forward;
  }

  const std::string& group = *request->group;
  if (!group.empty() && (key == wire::kJoinGroup || key == wire::kOffsetCommit)) {
    auto& type = shared_.groups[group];
    if (request->protocol_type && !request->protocol_type->empty()) type = *request->protocol_type;
  }
  if (key == wire::kJoinGroup) {
    if (auto rewritten = wire::cap_join_group_session_timeout(header, frame, kMaxSessionTimeoutMs)) {
      up_.out = std::move(*rewritten);
    }
    // Known as a pending join until the answer names the member.
    std::string member_key = request->member->empty()
                                 ? "\x01pending:" + std::to_string(serial_) + ":" + std::to_string(header.correlation_id)
                                 : *request->member;
    int32_t wait_ms = std::max(request->rebalance_timeout_ms, request->session_timeout_ms);
    shared_.members[group][member_key] = {*request->protocol_type, request->protocols, member_expiry(wait_ms)};
    joins_.emplace_back(group, member_key);
    Pending p{key, header.api_version, header.api_version, {}, std::nullopt, group, member_key};
    pending_[header.correlation_id] = std::move(p);
  } else if (key == wire::kLeaveGroup) {
    Pending p{key, header.api_version, header.api_version, {}, std::nullopt, group, *request->member};
    pending_[header.correlation_id] = std::move(p);
  } else {
    // Heartbeat, SyncGroup, OffsetCommit: the member is alive.
    auto g = shared_.members.find(group);
    if (g != shared_.members.end()) {
      auto m = g->second.find(*request->member);
      if (m != g->second.end()) m->second.expires = member_expiry(kMaxSessionTimeoutMs);
    }
  }
  return Verdict::forward;
}

Connection::Verdict Connection::on_metadata_request(const wire::RequestHeader& header, const std::string& frame) {
  // Forwarding a Metadata request the front end cannot read would let the
  // mock auto-create (or choke on) whatever it names.
  auto request = wire::parse_metadata_request(header, frame, kMaxTopicsPerMetadataRequest);
  if (!request) return Verdict::close;
  if (request->too_many_topics) {
    diagnose(shared_.config.log, "closed a connection whose Metadata request names more than " +
             std::to_string(kMaxTopicsPerMetadataRequest) + " topics");
    return Verdict::close;
  }
  std::vector<wire::TopicError> missing;
  std::vector<std::string> forwarded;
  std::vector<std::string> to_create;
  if (request->topics) {
    for (const auto& topic : *request->topics) {
      if (shared_.known_topics.count(topic)) {
        forwarded.push_back(topic);
      } else if (!is_valid_topic_name(topic)) {
        missing.push_back({topic, wire::kInvalidTopic});
      } else if (shared_.config.auto_create && request->allow_auto_create) {
        if (to_create.size() < kMaxTopicsCreatedPerRequest) {
          to_create.push_back(topic);
        } else {
          missing.push_back({topic, wire::kThrottlingQuotaExceeded});
        }
      } else {
        missing.push_back({topic, wire::kUnknownTopicOrPartition});
      }
    }
  }
  if (to_create.empty()) {
    finish_metadata(header, frame, std::move(*request), std::move(forwarded), std::move(missing));
    return Verdict::forward;
  }
  // Created off the I/O thread; this connection reads no further request
  // until they exist, the others go on.
  auto self = shared_from_this();
  auto state = std::make_shared<std::tuple<wire::RequestHeader, wire::MetadataRequest, std::vector<std::string>,
                                           std::vector<wire::TopicError>>>(header, std::move(*request),
                                                                           std::move(forwarded), std::move(missing));
  std::vector<TopicToCreate> jobs;
  for (auto& name : to_create) jobs.push_back({std::move(name)});
  shared_.creator->submit(std::move(jobs), [self, state](std::vector<TopicCreator::Result> results) {
    asio::post(self->shared_.io, [self, state, results = std::move(results)] {
      auto& [header, request, forwarded, missing] = *state;
      for (const auto& r : results) {
        if (r.error.empty()) {
          self->shared_.known_topics.insert(r.topic);
          forwarded.push_back(r.topic);
        } else {
          diagnose(self->shared_.config.log, r.error);
          missing.push_back({r.topic, wire::kUnknownTopicOrPartition});
        }
      }
      if (self->closed_) return;
      self->finish_metadata(header, self->up_.frame, std::move(request), std::move(forwarded), std::move(missing));
      self->forward_request();
    });
  });
  return Verdict::later;
}

// CreateTopics, answered as a broker with auto.create.topics.enable would,
// within what the mock can hold: no replica assignments and no topic configs
// (it keeps none; accepting them would pretend), at most
// kMaxPartitionsPerCreatedTopic partitions. Created off the I/O thread, as
// auto-created topics are.
Connection::Verdict Connection::on_create_topics_request(const wire::RequestHeader& header, const std::string& frame) {
  auto request = wire::parse_create_topics_request(header, frame, kMaxTopicsPerMetadataRequest);
  if (!request) return Verdict::close;
  if (request->too_many_topics) {
    diagnose(shared_.config.log, "closed a connection whose CreateTopics request names more than " +
             std::to_string(kMaxTopicsPerMetadataRequest) + " topics");
    return Verdict::close;
  }
  const int brokers = static_cast<int>(shared_.config.backends.size());
  auto answers = std::make_shared<std::vector<wire::TopicAnswer>>();
  std::vector<TopicToCreate> to_create;
  std::vector<size_t> slots;  // the answer of each topic in to_create
  std::set<std::string> named;
  for (const auto& t : request->topics) {
    wire::TopicAnswer a{t.name, 0, ""};
    const int32_t n = t.partitions;
    const int16_t r = t.replication;
    if (!named.insert(t.name).second) {
      a = {t.name, wire::kInvalidRequest, "topic '" + t.name + "' is named twice in one request"};
    } else if (!is_valid_topic_name(t.name)) {
      a = {t.name, wire::kInvalidTopic, "'" + t.name + "' is not a valid topic name"};
    } else if (shared_.known_topics.count(t.name)) {
      a = {t.name, wire::kTopicAlreadyExists, "Topic '" + t.name + "' already exists."};
    } else if (n == 0 || n < -1 || (n == -1 && header.api_version < 4)) {
      a = {t.name, wire::kInvalidPartitions, "the partition count must be at least 1, not " + std::to_string(n)};
    } else if (n > kMaxPartitionsPerCreatedTopic) {
      a = {t.name, wire::kInvalidPartitions, "kws broker creates at most " +
           std::to_string(kMaxPartitionsPerCreatedTopic) + " partitions per topic, not " + std::to_string(n)};
    } else if (r == 0 || r < -1 || (r == -1 && header.api_version < 4) || r > brokers) {
      a = {t.name, wire::kInvalidReplicationFactor, std::to_string(r) + " replicas asked for; this kws broker has " +
           std::to_string(brokers) + " broker(s)"};
    } else if (t.has_assignments) {
      a = {t.name, wire::kInvalidReplicaAssignment,
           "kws broker places replicas itself; give a partition count and replication factor instead"};
    } else if (t.configs > 0) {
      a = {t.name, wire::kInvalidConfig, "kws broker keeps no topic configs (got '" + t.first_config +
           "'); create the topic without them"};
    } else if (to_create.size() >= kMaxTopicsCreatedPerRequest) {
      a = {t.name, wire::kThrottlingQuotaExceeded, "kws broker creates at most " +
           std::to_string(kMaxTopicsCreatedPerRequest) + " topics per request"};
    } else if (!request->validate_only) {
      to_create.push_back({t.name, std::max(n, 0), std::max<int>(r, 0)});
      slots.push_back(answers->size());
    }
    answers->push_back(std::move(a));
  }
  if (to_create.empty()) {
    answer_locally(header, wire::encode_create_topics_response(header.correlation_id, header.api_version, *answers));
    return Verdict::forward;
  }
  auto self = shared_from_this();
  shared_.creator->submit(std::move(to_create), [self, header, answers, slots](std::vector<TopicCreator::Result> results) {
    asio::post(self->shared_.io, [self, header, answers, slots, results = std::move(results)] {
      for (size_t i = 0; i < results.size() && i < slots.size(); ++i) {
        const auto& r = results[i];
        auto& a = (*answers)[slots[i]];
        if (!r.error.empty()) {
          diagnose(self->shared_.config.log, r.error);
          a.error = wire::kUnknownServerError;
          a.message = r.error;
          continue;
        }
        // There now either way; one the mock had before this request is not "created".
        self->shared_.known_topics.insert(r.topic);
        if (r.existed) {
          a.error = wire::kTopicAlreadyExists;
          a.message = "Topic '" + r.topic + "' already exists.";
        }
      }
      if (self->closed_) return;
      self->answer_locally(header, wire::encode_create_topics_response(header.correlation_id, header.api_version,
                                                                       *answers));
      self->forward_request();
    });
  });
  return Verdict::later;
}

// The mock cannot delete a topic, so nothing is deleted: each existing topic
// is answered TOPIC_DELETION_DISABLED, what a Kafka broker with
// delete.topic.enable=false says, rather than a success that did nothing.
Connection::Verdict Connection::on_delete_topics_request(const wire::RequestHeader& header, const std::string& frame) {
  auto request = wire::parse_delete_topics_request(header, frame, kMaxTopicsPerMetadataRequest);
  if (!request) return Verdict::close;
  if (request->too_many_topics) {
    diagnose(shared_.config.log, "closed a connection whose DeleteTopics request names more than " +
             std::to_string(kMaxTopicsPerMetadataRequest) + " topics");
    return Verdict::close;
  }
  std::vector<wire::TopicAnswer> answers;
  for (const auto& name : request->names) {
    answers.push_back({name, shared_.known_topics.count(name) ? wire::kTopicDeletionDisabled
                                                              : wire::kUnknownTopicOrPartition, ""});
  }
  answer_locally(header, wire::encode_delete_topics_response(header.correlation_id, header.api_version, answers));
  return Verdict::forward;
}

void Connection::finish_metadata(const wire::RequestHeader& header, const std::string& frame,
                                 wire::MetadataRequest request, std::vector<std::string> forwarded_topics,
                                 std::vector<wire::TopicError> missing) {
  const int16_t version = header.api_version;
  std::optional<std::vector<std::string>> forwarded;
  if (request.topics) forwarded = std::move(forwarded_topics);
  int16_t broker_version = std::min<int16_t>(version, 2);
  // An empty v0 list would mean "all topics"; ask for all and filter nothing
  // rather than let the mock create what the client named.
  if (broker_version == 0 && forwarded && forwarded->empty()) forwarded = std::nullopt;
  // Re-encoded whenever names were dropped, repeated or refused.
  bool same = request.topics && forwarded && missing.empty();
  if (broker_version != version || !same) {
    up_.out = wire::encode_metadata_request(frame, header, broker_version, forwarded);
  }
  pending_[header.correlation_id] = {wire::kMetadata, version, broker_version, std::move(missing), std::nullopt,
                                     {}, {}};
}

Connection::Answer Connection::on_response(const std::string& frame) {
  if (frame.size() < 4) return Answer::pass;
  int32_t correlation_id = static_cast<int32_t>((uint32_t(static_cast<unsigned char>(frame[0])) << 24) |
                                                (uint32_t(static_cast<unsigned char>(frame[1])) << 16) |
                                                (uint32_t(static_cast<unsigned char>(frame[2])) << 8) |
                                                uint32_t(static_cast<unsigned char>(frame[3])));
  auto it = pending_.find(correlation_id);
  if (it == pending_.end()) return Answer::pass;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (p.local_response) {
    down_.out = std::move(*p.local_response);
    return Answer::pass;
  }
  auto map = [this](const std::string& host, int32_t port) { return shared_.map(host, port); };
  std::optional<std::string> rewritten;
  switch (p.api_key) {
    case wire::kProduce:
      ++shared_.stored_produces;
      shared_.wake_fetches();
      break;
    case wire::kFetch: {
      const bool is_parked = parked_ && parked_->correlation_id == correlation_id;
      auto bytes = wire::fetch_response_record_bytes(frame, p.client_version);
      // Only an empty answer waits: the mock answers with at most one
      // stored batch per partition, so a MinBytes above that would never be
      // reached by asking again.
      if (bytes && *bytes == 0 && Clock::now() < p.fetch_deadline) {
        if (is_parked) {
          parked_->retrying = false;
        } else if (parked_) {
          break;  // one parked Fetch at a time; this one goes as it is
        } else {
          parked_ = ParkedFetch{correlation_id, p.client_version, p.fetch_deadline,
                                std::make_shared<const std::string>(std::move(p.fetch_request)), false};
          shared_.parked_fetches.insert(this);
          fetch_timer_.expires_at(p.fetch_deadline);
          fetch_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
            if (!ec) self->retry_fetch();
          });
        }
        // A produce stored while this answer was on its way woke nobody.
        if (shared_.stored_produces != p.fetch_sent_after) retry_fetch();
        return Answer::park;
      }
      return is_parked ? Answer::release : Answer::pass;
    }
    case wire::kMetadata:
      rewritten = wire::rewrite_metadata_response(frame, p.broker_version, p.client_version, map, p.missing);
      break;
    case wire::kFindCoordinator:
      rewritten = wire::rewrite_find_coordinator_response(frame, p.client_version, map);
      break;
    case wire::kApiVersions:
      rewritten = wire::rewrite_api_versions_response(frame, p.client_version);
      break;
    case wire::kListGroups: {
      // A cluster lists each group once: the front end of broker 1 answers
      // for all of them, the others have none.
      std::vector<std::pair<std::string, std::string>> groups;
      if (backend_index_ == 0) groups.assign(shared_.groups.begin(), shared_.groups.end());
      rewritten = wire::encode_list_groups_response(correlation_id, p.client_version, groups);
      break;
    }
    case wire::kJoinGroup: {
      joins_.erase(std::remove(joins_.begin(), joins_.end(), std::make_pair(p.group, p.member_key)), joins_.end());
      auto g = shared_.members.find(p.group);
      if (g == shared_.members.end()) break;
      auto m = g->second.find(p.member_key);
      if (m == g->second.end()) break;
      Member member = std::move(m->second);
      g->second.erase(m);
      auto answer = wire::parse_group_response(p.api_key, p.client_version, frame);
      // Any member id the mock hands out may be a member it keeps.
      if (!answer || !answer->member.empty()) {
        member.expires = member_expiry(kMaxSessionTimeoutMs);
        g->second[answer ? answer->member : p.member_key] = std::move(member);
      }
      shared_.forget_group_if_empty(p.group);
      break;
    }
    case wire::kLeaveGroup: {
      auto answer = wire::parse_group_response(p.api_key, p.client_version, frame);
      auto g = shared_.members.find(p.group);
      if (answer && answer->error == 0 && g != shared_.members.end()) {
        g->second.erase(p.member_key);
        shared_.forget_group_if_empty(p.group);
      }
      break;
    }
    default:
      break;
  }
  if (rewritten) down_.out = std::move(*rewritten);
  return Answer::pass;
}

}  // namespace

struct BrokerFrontend::Impl {
  asio::io_context io;
  Shared shared{io};
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<bool> paused;
  std::unique_ptr<asio::steady_timer> retry_timer;
  bool limit_logged = false;
  bool descriptors_logged = false;
  uint64_t serial = 0;
  std::thread thread;

  void accept(size_t index) {
    if (shared.live_connections >= shared.max_connections) {
      // Waiting clients stay in the kernel's backlog until one closes.
      paused[index] = true;
      if (!limit_logged) {
        limit_logged = true;
        diagnose(shared.config.log, std::to_string(shared.live_connections) +
                 " connections open, the most this process's descriptor limit allows; new ones wait");
      }
      return;
    }
    acceptors[index]->async_accept([this, index](const asio::error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (out_of_descriptors(ec)) {
        // Accepting again at once would spin; wait for descriptors to free up.
        if (!descriptors_logged) {
          descriptors_logged = true;
          diagnose(shared.config.log, "out of file descriptors (" + ec.message() + "); not accepting connections for now");
        }
        paused[index] = true;
        retry_timer->expires_after(std::chrono::milliseconds(100));
        retry_timer->async_wait([this](const asio::error_code& e) {
          if (!e) resume();
        });
        return;
      }
      if (!ec) {
        ++shared.live_connections;
        std::make_shared<Connection>(std::move(socket), shared, index, ++serial)->start();
      }
      accept(index);
    });
  }

  void resume() {
    // Logged once per episode: again only after most connections have gone
    // (an accept that succeeds between two that run out of descriptors does
    // not end the episode).
    if (shared.live_connections <= shared.max_connections / 2) limit_logged = descriptors_logged = false;
    for (size_t i = 0; i < acceptors.size(); ++i) {
      if (paused[i] && shared.live_connections < shared.max_connections) {
        paused[i] = false;
        accept(i);
      }
    }
  }
};

BrokerFrontend::BrokerFrontend(FrontendConfig config) : impl_(std::make_unique<Impl>()) {
  Shared& shared = impl_->shared;
  shared.config = std::move(config);
  shared.known_topics.insert(shared.config.existing_topics.begin(), shared.config.existing_topics.end());
  shared.max_connections = shared.config.max_connections;
  if (shared.max_connections == 0) {
    uint64_t limit = raise_open_file_limit();
    shared.max_connections = std::max<uint64_t>(16, limit > kReservedDescriptors ? (limit - kReservedDescriptors) / 3 : 0);
  }
  shared.creator = std::make_unique<TopicCreator>(shared.config.create_topic);
  shared.resume_accepting = [this] { impl_->resume(); };
  impl_->retry_timer = std::make_unique<asio::steady_timer>(impl_->io);

  asio::error_code ec;
  auto address = asio::ip::make_address(shared.config.listen_host, ec);
  if (ec) throw usage_error("bad listen address '" + shared.config.listen_host + "': " + ec.message());
  shared.advertised_host = address.is_unspecified() ? "127.0.0.1" : shared.config.listen_host;

  for (size_t i = 0; i < shared.config.backends.size(); ++i) {
    const auto& b = shared.config.backends[i];
    shared.backends.emplace_back(asio::ip::make_address(b.host), b.port);
    shared.gates.emplace_back();
    uint16_t port = i == 0 ? shared.config.first_port : 0;
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
    tcp::endpoint endpoint(address, port);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::string why = "cannot listen on " + shared.config.listen_host + ":" + std::to_string(port) + ": " + ec.message();
      if (ec == asio::error::address_in_use && port != 0) {
        if (auto holder = describe_tcp_listener(port)) why += " (held by " + *holder + ")";
      }
      if (i == 0 && !shared.config.listen_hint.empty()) why += "; " + shared.config.listen_hint;
      throw Error(why);
    }
    shared.ports.push_back(acceptor->local_endpoint().port());
    impl_->acceptors.push_back(std::move(acceptor));
    impl_->paused.push_back(false);
  }
  for (size_t i = 0; i < impl_->acceptors.size(); ++i) impl_->accept(i);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

BrokerFrontend::~BrokerFrontend() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->shared.creator.reset();
}

std::string BrokerFrontend::bootstrap_servers() const {
  std::string out;
  const auto& host = impl_->shared.advertised_host;
  for (auto port : impl_->shared.ports) {
    if (!out.empty()) out += ',';
    out += (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
  return out;
}

}  // namespace kws
