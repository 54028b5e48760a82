#pragma once
// The shared fan-out: one reader for the whole bridge reads each partition
// once, keeps each message once (frame.hpp) and hands the same batch to
// every session subscribed to its topic. Sessions that start in the past are
// served from a bounded ring of recent frames per partition, or by a
// short-lived catch-up reader that hands over to the live stream at the ring
// with no gap and no duplicate (dedupe by offset).
//
// The hub never touches a socket or librdkafka: sessions are Subscribers,
// Kafka is a PartitionFeed and a TopicAdmin (core/message_io.hpp). All state
// is owned by the hub's thread (run()); other threads only queue requests.
// Nothing on that thread waits for Kafka: questions that need a broker's
// answer (watermarks, times, opening a catch-up reader) run on the admin
// worker and come back as results on the hub's queue, and the thread sleeps
// until a reader says it has something (PartitionFeed::on_ready) or a
// request arrives.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/client_error.hpp"
#include "core/hub/admin_worker.hpp"
#include "core/hub/frame.hpp"
#include "core/hub/subscription.hpp"
#include "core/message_io.hpp"
#include "core/offset_spec.hpp"
#include "core/util/log.hpp"

namespace kws {

// What the hub tells a subscriber besides messages. Structured, not text:
// each protocol says it in its own words (docs/PROTOCOL.md for WebSocket).
struct HubNotice {
  enum class Kind {
    subscribed,    // a subscription is live
    unsubscribed,  // an unsubscribe took effect
    error,         // a request failed, or a subscription stopped
    lost,          // messages of a subscribed partition no longer exist
    kafka,         // Kafka stopped or started answering the bridge (`reachable`)
    topics,        // the answer to list_topics: `names`
    caught_up,     // everything below the subscription's end_offsets was handed over (SubscriptionSpec::tell_caught_up)
  };
  Kind kind = Kind::error;
  std::string topic;
  // The answer to one subscribe or unsubscribe (exactly one per request):
  // with the id the session passed along ("" for none).
  bool answers_request = false;
  std::string request_id;
  // subscribed: the start as the client wrote it, and per partition the
  // first offset this subscription delivers and the partition's end (the
  // next offset Kafka will give) when it started.
  std::string start;
  std::string group;  // a group session's group (its partitions are the group's to assign)
  std::vector<int64_t> start_offsets;
  std::vector<int64_t> end_offsets;
  // error
  ClientError error = ClientError::internal;
  std::string message;
  // lost: first and last missing offset of `partition`, inclusive. Comes
  // before the next message of that partition.
  int32_t partition = -1;
  int64_t first = -1;
  int64_t last = -1;
  // kafka: whether it answers now; `message` says what failed when not.
  bool reachable = true;
  // subscribed, for a subscription that asked to resume: whether every
  // named position was still there (`recovered`); if not, per partition the
  // offsets that no longer exist (`resume_lost`, first..last, each also
  // told as a `lost` notice right after) or a position beyond the log's end
  // (`resume_reset`: first is the position after the client's, last the
  // log's end; the log started over, and delivery begins at its start).
  struct Range {
    int32_t partition = -1;
    int64_t first = -1;
    int64_t last = -1;
  };
  std::vector<std::string> names;  // topics: the ones the asker may see, sorted
  bool resumed = false;
  bool recovered = true;
  std::vector<Range> resume_lost;
  std::vector<Range> resume_reset;
};

// A session as the hub sees it. Called from the hub's thread (and, for
// group sessions, from their reader's).
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Message frames of one topic, in offset order per partition. The live
  // stream hands the same batch to every subscriber of the topic.
  virtual void deliver(const FrameBatchPtr& batch) = 0;
  virtual void notify(const HubNotice& notice) = 0;
};

using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;

struct HubLimits {
  size_t ring_bytes = 8 << 20;              // per partition
  size_t max_catchups = 32;                 // sessions reading history at once
  // History at most this many offsets behind the end of a partition is
  // read again by the live reader (rewound), not by a catch-up reader of
  // the subscription's own: after a bridge restart a thousand clients
  // resuming a few seconds back cost one read of those seconds, and every
  // later one starts in the ring. 0: never rewind.
  int64_t rewind_offsets = 20000;
  std::chrono::milliseconds linger{10000};  // keep a topic read this long after its last subscriber
  size_t batch = 4096;                      // messages per poll
  size_t batch_bytes = 64 << 10;            // bytes per batch handed to subscribers (estimated)
  size_t requests_per_round = 64;           // then the readers are polled again
  std::chrono::milliseconds watermark_cache{1000};  // how long a lookup answers later ones
  std::chrono::milliseconds partition_check{30000};  // how often a topic is looked up for new partitions
  bool admin_thread = true;                 // false (tests): admin work runs where it is asked for
};

struct TopicStats {
  std::string topic;
  size_t subscribers = 0;
  size_t ring_bytes = 0;
  size_t ring_frames = 0;
  int64_t lag = 0;        // messages Kafka has that the hub has not read yet (all partitions)
  bool reading = false;   // the live reader reads it now
  uint64_t messages = 0;  // read from Kafka since the bridge started (kept when reading stops)
  std::map<int32_t, uint64_t> lost;  // per partition: offsets skipped because Kafka no longer had them
};

struct HubStats {
  std::vector<TopicStats> topics;
  size_t catchups = 0;
  size_t admin_jobs = 0;  // waiting for or running on the admin worker
  uint64_t messages = 0;  // frames read by the live reader, all topics
  uint64_t rewinds = 0;   // partitions the live reader read again for a start older than the ring
};

class Hub {
 public:
  // `live` is the shared reader; `admin` answers what needs a broker and
  // opens catch-up readers (it must outlive the hub).
  Hub(std::unique_ptr<PartitionFeed> live, TopicAdmin& admin, HubLimits limits, LogSink& log,
      SteadyClock clock = {});
  ~Hub();

  // Thread-safe; take effect on the hub's thread, in the order called for
  // each subscriber (a request that needs Kafka's answer holds back that
  // subscriber's next ones, nobody else's). `request_id` is echoed in the
  // answer (HubNotice::request_id).
  // `spec`: where it starts (and resumes) and which messages it wants.
  void subscribe(std::shared_ptr<Subscriber> subscriber, const std::string& topic, SubscriptionSpec spec,
                 const std::string& request_id);
  void subscribe(std::shared_ptr<Subscriber> subscriber, const std::string& topic, const OffsetSpec& start,
                 const std::string& start_text, const std::string& request_id) {
    SubscriptionSpec spec;
    spec.start = start;
    spec.start_text = start_text;
    subscribe(std::move(subscriber), topic, std::move(spec), request_id);
  }
  void unsubscribe(const std::shared_ptr<Subscriber>& subscriber, const std::string& topic,
                   const std::string& request_id);
  // The cluster's topics that `visible` keeps (the asker's ACL, say),
  // answered with a `topics` notice (or an error) in its place among the
  // subscriber's requests.
  void list_topics(const std::shared_ptr<Subscriber>& subscriber, std::function<bool(const std::string&)> visible,
                   const std::string& request_id);
  // Answers a request the session refused itself (a bad topic name, say)
  // in its place among the subscriber's requests, so that answers keep the
  // order of the requests.
  void answer(const std::shared_ptr<Subscriber>& subscriber, HubNotice notice);
  // Forgets a closed session everywhere (no answer); its waiting requests
  // are dropped.
  void remove(const std::shared_ptr<Subscriber>& subscriber);

  // The hub's loop: serves requests and reads Kafka until stop() is called.
  void run();
  // One iteration of run() (tests call it): requests and admin results,
  // then the readers until they have nothing more, then a wait of at most
  // `wait` for a reader, a request or a result.
  void run_once(std::chrono::milliseconds wait);
  void stop();

  HubStats stats() const;

 private:
  struct Ring;
  struct Topic;
  struct CatchUp;
  struct FilterGroup;
  struct Request;
  struct SubscriberQueue;

  void enqueue(std::unique_ptr<Request> r);
  void post(std::function<void()> result);
  void wake();
  void handle(std::unique_ptr<Request> r);
  void start_next(Subscriber* s);
  void finish_request(Subscriber* s);
  bool handle_now(Request& r);
  void looked_up(uint64_t serial, AdminWorker::Lookup lookup);
  void opened_reader(uint64_t serial, std::unique_ptr<PartitionFeed> feed, std::string error);
  void listed_topics(uint64_t serial, std::vector<std::string> names, const std::string& error);
  bool start_subscription(Topic& t, Request& r, const AdminWorker::Lookup* lookup);
  bool rewind_live(Topic& t, const std::vector<int64_t>& from, const std::vector<PartitionWatermarks>& parts);
  SubscriberQueue* waiting_for(uint64_t serial, Subscriber*& who);
  void join_live(Topic& t, const std::shared_ptr<Subscriber>& s, const std::vector<int64_t>& from,
                 const FilterPtr& filter, const std::vector<int64_t>* tell_caught_up_at);
  void tell_caught_up(Topic& t);
  void notify_subscribed(const Request& r, std::vector<int64_t> start, std::vector<int64_t> end);
  FilterGroup* join_group(Topic& t, const FilterPtr& filter);
  void leave_group(Topic& t, FilterGroup* group);
  void detach(const std::shared_ptr<Subscriber>& s, const std::string& topic);
  void answer_error(Request& r, ClientError error, const std::string& message);
  bool poll_live();
  bool poll_catchups();
  void deliver_read(Topic& t);
  void on_live_event(const PartitionEvent& e);
  void retire_idle_topics();
  void check_partitions();
  void partitions_looked_up(const std::string& name, const AdminWorker::Lookup& lookup);
  void update_stats();
  Topic* find_topic(const std::string& name);
  std::chrono::steady_clock::time_point now() const { return clock_(); }

  std::unique_ptr<PartitionFeed> live_;
  HubLimits limits_;
  LogSink& log_;
  SteadyClock clock_;
  AdminWorker admin_;

  std::mutex mutex_;  // guards requests_, results_, ready_, stopping_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Request>> requests_;
  std::vector<std::function<void()>> results_;
  bool ready_ = false;  // a reader said it has something
  std::atomic<bool> stopping_{false};

  std::map<std::string, std::unique_ptr<Topic>> topics_;
  std::vector<std::unique_ptr<CatchUp>> catchups_;
  std::unordered_map<Subscriber*, SubscriberQueue> queues_;
  uint64_t next_serial_ = 1;
  uint64_t messages_ = 0;
  uint64_t rewinds_ = 0;
  struct Totals {
    uint64_t messages = 0;
    std::map<int32_t, uint64_t> lost;
  };
  std::map<std::string, Totals> totals_;  // per topic, kept after a topic stops being read

  mutable std::mutex stats_mutex_;
  HubStats stats_;
  std::chrono::steady_clock::time_point stats_at_{};
};

}  // namespace kws
