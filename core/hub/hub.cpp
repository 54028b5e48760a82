#include "core/hub/hub.hpp"

#include <algorithm>

#include "core/hub/topic_tree.hpp"

namespace kws {

namespace {

int64_t clamp_offset(int64_t value, int64_t low, int64_t high) { return std::max(low, std::min(value, high)); }

// The first offset at or after `from` whose message is not older than
// `start_ms`, among `frames` (a ring, in offset order); `end` when none is.
int64_t first_at_time(const std::deque<FramePtr>& frames, int64_t from, int64_t start_ms, int64_t end) {
  for (const auto& f : frames) {
    if (f->offset >= from && f->timestamp_ms >= start_ms) return f->offset;
  }
  // Past the ring: while the live reader reads again after a rewind, `from`
  // may be ahead of it, and what lies between is older than the start.
  return std::max(from, end);
}

}  // namespace

struct Hub::Ring {
  std::deque<FramePtr> frames;
  size_t bytes = 0;

  void push(FramePtr frame, size_t capacity) {
    bytes += frame->memory();
    frames.push_back(std::move(frame));
    while (bytes > capacity && !frames.empty()) {
      bytes -= frames.front()->memory();
      frames.pop_front();
    }
  }
  void clear() {
    frames.clear();
    bytes = 0;
  }
  // The oldest offset the ring can replay from; `next` when it is empty.
  int64_t begin(int64_t next) const { return frames.empty() ? next : frames.front()->offset; }
};

// The subscribers of a topic with the same filter (by canonical text): the
// frames of a poll are matched once per group, not once per subscriber, and
// the group's batches are built (and encoded) once for all its members.
struct Hub::FilterGroup {
  FilterPtr filter;
  size_t members = 0;
  std::vector<FramePtr> matched;  // of the poll being delivered
  // The serial (Topic::frame_serial) of the last frame the topic tree
  // matched it with: a group with two topic filters that match the same
  // key ("a/+" and "a/#") gets the frame once.
  uint64_t last_tree_frame = 0;
};

struct Hub::Topic {
  struct Live {
    std::shared_ptr<Subscriber> subscriber;
    // While set: per partition, frames below this offset were already
    // delivered by a catch-up reader that ran ahead of the live one. Rare:
    // a pointer, so the common entry is small (one per subscribed session).
    std::unique_ptr<std::vector<int64_t>> skip_below;
    FilterGroup* group = nullptr;  // null: every message
  };
  // Subscribers waiting for a `caught_up` notice, with the end offsets it
  // waits for (apart from `live`, whose entries stay small: one per
  // subscribed session).
  struct CaughtUpWait {
    Subscriber* subscriber;
    std::vector<int64_t> at;
  };
  std::vector<CaughtUpWait> caught_up_waits;
  std::shared_ptr<const std::string> name;
  std::vector<int64_t> next;  // the live reader's position per partition
  // Per partition, after the live reader was rewound (rewind_live): the
  // position it had reached. Until it is back there, that is the end of
  // the partition as the hub knows it (end_of). Empty until a rewind.
  std::vector<int64_t> rewound_from;
  std::vector<Ring> rings;
  std::vector<Live> live;
  std::vector<FramePtr> batch;  // frames read in the current poll
  size_t waiting = 0;           // requests for it waiting for the admin worker
  std::chrono::steady_clock::time_point idle_since{};
  std::chrono::steady_clock::time_point partitions_checked{};
  bool checking_partitions = false;
  // Filtered subscribers, by filter. Groups whose filter names exact keys
  // are found through the key of each frame (`by_key`), so many sessions
  // with key filters cost a lookup per message, not a scan of the
  // sessions; groups whose filter is MQTT topic filters only are found by
  // walking `by_topic` with the key (one entry per topic filter), so
  // wildcards cost a walk per message too; the others (`unkeyed`) are each
  // checked.
  std::map<std::string, std::unique_ptr<FilterGroup>> groups;
  std::unordered_map<std::string, std::vector<FilterGroup*>> by_key;
  TopicTree<FilterGroup*> by_topic;
  uint64_t frame_serial = 0;  // per frame walked through `by_topic`
  std::vector<FilterGroup*> unkeyed;
};

namespace {

// The end of partition `p` as the hub knows it: where the live reader
// stands, or where it stood before a rewind made it read history again.
int64_t end_of(const std::vector<int64_t>& next, const std::vector<int64_t>& rewound_from, size_t p) {
  return p < rewound_from.size() ? std::max(next[p], rewound_from[p]) : next[p];
}

}  // namespace

struct Hub::CatchUp {
  std::shared_ptr<Subscriber> subscriber;
  std::string topic;
  std::unique_ptr<PartitionFeed> feed;
  std::vector<int64_t> next;  // next offset to deliver, per partition
  int64_t start_time_ms = -1;
  std::vector<bool> reached_time;
  FilterPtr filter;
  bool tell_caught_up = false;
  std::vector<int64_t> caught_up_at;  // the reply's end offsets
};

struct Hub::Request {
  enum class Kind { subscribe, unsubscribe, answer, remove, topics } kind = Kind::subscribe;
  std::function<bool(const std::string&)> visible;  // topics
  std::shared_ptr<Subscriber> subscriber;
  std::string topic;
  OffsetSpec start;
  std::string start_text;
  std::string request_id;
  HubNotice notice;  // answer: what to say
  // While waiting for the admin worker:
  uint64_t serial = 0;
  bool counted_on_topic = false;  // Topic::waiting includes it
  std::vector<int64_t> from;      // a catch-up's start, per partition
  int64_t start_time_ms = -1;
  ResumePositions resume;
  FilterPtr filter;
  bool tell_caught_up = false;
  bool fresh_lookup = false;  // asked Kafka itself, not the lookup cache
  std::vector<HubNotice::Range> resume_lost, resume_reset;
};

struct Hub::SubscriberQueue {
  std::deque<std::unique_ptr<Request>> waiting;
  std::unique_ptr<Request> busy;  // waiting for the admin worker
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
};

Hub::Hub(std::unique_ptr<PartitionFeed> live, TopicAdmin& admin, HubLimits limits, LogSink& log, SteadyClock clock)
    : live_(std::move(live)),
      limits_(limits),
      log_(log),
      clock_(clock ? std::move(clock) : SteadyClock([] { return std::chrono::steady_clock::now(); })),
      admin_(admin, clock_, limits.watermark_cache, limits.admin_thread) {
  live_->on_ready([this] { wake(); });
}

Hub::~Hub() {
  // Nothing may call back into a hub being destroyed: the worker's errands
  // and the readers' wake-ups end here, while the members still live.
  admin_.stop();
  live_->on_ready(nullptr);
  for (auto& c : catchups_) c->feed->on_ready(nullptr);
}

// ---- requests from other threads --------------------------------------------

void Hub::enqueue(std::unique_ptr<Request> r) {
  std::lock_guard<std::mutex> lock(mutex_);
  requests_.push_back(std::move(r));
  cv_.notify_one();
}

void Hub::post(std::function<void()> result) {
  std::lock_guard<std::mutex> lock(mutex_);
  results_.push_back(std::move(result));
  cv_.notify_one();
}

void Hub::wake() {
  std::lock_guard<std::mutex> lock(mutex_);
  ready_ = true;
  cv_.notify_one();
}

void Hub::subscribe(std::shared_ptr<Subscriber> subscriber, const std::string& topic, SubscriptionSpec spec,
                    const std::string& request_id) {
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::subscribe;
  r->subscriber = std::move(subscriber);
  r->topic = topic;
  r->start = spec.start;
  r->start_text = std::move(spec.start_text);
  r->resume = std::move(spec.resume);
  r->filter = std::move(spec.filter);
  r->tell_caught_up = spec.tell_caught_up;
  r->request_id = request_id;
  enqueue(std::move(r));
}

void Hub::unsubscribe(const std::shared_ptr<Subscriber>& subscriber, const std::string& topic,
                      const std::string& request_id) {
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::unsubscribe;
  r->subscriber = subscriber;
  r->topic = topic;
  r->request_id = request_id;
  enqueue(std::move(r));
}

void Hub::list_topics(const std::shared_ptr<Subscriber>& subscriber, std::function<bool(const std::string&)> visible,
                      const std::string& request_id) {
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::topics;
  r->subscriber = subscriber;
  r->visible = std::move(visible);
  r->request_id = request_id;
  enqueue(std::move(r));
}

void Hub::answer(const std::shared_ptr<Subscriber>& subscriber, HubNotice notice) {
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::answer;
  r->subscriber = subscriber;
  r->notice = std::move(notice);
  enqueue(std::move(r));
}

void Hub::remove(const std::shared_ptr<Subscriber>& subscriber) {
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::remove;
  r->subscriber = subscriber;
  enqueue(std::move(r));
}

void Hub::stop() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = true;
  cv_.notify_all();
}

Hub::Topic* Hub::find_topic(const std::string& name) {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second.get();
}

// ---- the loop ---------------------------------------------------------------

void Hub::run() {
  // The wait only bounds housekeeping (lingering topics, stats): readers and
  // requests wake the loop themselves.
  while (!stopping_) run_once(std::chrono::milliseconds(250));
}

void Hub::run_once(std::chrono::milliseconds wait) {
  std::vector<std::unique_ptr<Request>> requests;
  std::vector<std::function<void()>> results;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Cleared before polling: a reader that gets something while we poll
    // sets it again, and the wait below does not sleep through it.
    ready_ = false;
    results.swap(results_);
    // A bounded number per round, so a burst of requests cannot hold back
    // the live stream.
    while (!requests_.empty() && requests.size() < limits_.requests_per_round) {
      requests.push_back(std::move(requests_.front()));
      requests_.pop_front();
    }
  }
  for (auto& result : results) result();
  for (auto& r : requests) handle(std::move(r));
  bool more = false;
  if (!topics_.empty()) more = poll_live() || more;
  if (!catchups_.empty()) more = poll_catchups() || more;
  retire_idle_topics();
  check_partitions();
  update_stats();
  if (more || wait.count() <= 0) return;
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, wait, [&] { return ready_ || stopping_ || !requests_.empty() || !results_.empty(); });
}

// ---- requests, in order per subscriber ----------------------------------------

void Hub::handle(std::unique_ptr<Request> r) {
  Subscriber* s = r->subscriber.get();
  if (r->kind == Request::Kind::remove) {
    auto it = queues_.find(s);
    if (it != queues_.end()) {
      *it->second.cancelled = true;
      if (it->second.busy && it->second.busy->counted_on_topic) {
        if (Topic* t = find_topic(it->second.busy->topic)) --t->waiting;
      }
      queues_.erase(it);
    }
    std::vector<std::string> names;
    for (auto& [name, t] : topics_) names.push_back(name);
    for (const auto& c : catchups_) {
      if (c->subscriber.get() == s) names.push_back(c->topic);
    }
    for (const auto& name : names) detach(r->subscriber, name);
    return;
  }
  SubscriberQueue& q = queues_[s];
  q.waiting.push_back(std::move(r));
  if (!q.busy) start_next(s);
}

void Hub::start_next(Subscriber* s) {
  auto it = queues_.find(s);
  if (it == queues_.end()) return;
  SubscriberQueue& q = it->second;
  while (!q.busy && !q.waiting.empty()) {
    std::unique_ptr<Request> r = std::move(q.waiting.front());
    q.waiting.pop_front();
    if (!handle_now(*r)) q.busy = std::move(r);
  }
  if (!q.busy && q.waiting.empty()) queues_.erase(it);
}

void Hub::finish_request(Subscriber* s) {
  auto it = queues_.find(s);
  if (it == queues_.end()) return;
  if (it->second.busy && it->second.busy->counted_on_topic) {
    if (Topic* t = find_topic(it->second.busy->topic)) --t->waiting;
  }
  it->second.busy.reset();
  start_next(s);
}

// `subscribed`, then for a resume that found positions gone a `lost` notice
// per partition, before any message of it.
void Hub::notify_subscribed(const Request& r, std::vector<int64_t> start, std::vector<int64_t> end) {
  HubNotice n;
  n.kind = HubNotice::Kind::subscribed;
  n.topic = r.topic;
  n.answers_request = true;
  n.request_id = r.request_id;
  n.start = r.start_text;
  n.start_offsets = std::move(start);
  n.end_offsets = std::move(end);
  n.resumed = !r.resume.empty();
  n.recovered = r.resume_lost.empty() && r.resume_reset.empty();
  n.resume_lost = r.resume_lost;
  n.resume_reset = r.resume_reset;
  r.subscriber->notify(n);
  for (const auto& gap : r.resume_lost) {
    HubNotice lost;
    lost.kind = HubNotice::Kind::lost;
    lost.topic = r.topic;
    lost.partition = gap.partition;
    lost.first = gap.first;
    lost.last = gap.last;
    r.subscriber->notify(lost);
  }
}

void Hub::answer_error(Request& r, ClientError error, const std::string& message) {
  HubNotice n;
  n.kind = HubNotice::Kind::error;
  n.topic = r.topic;
  n.answers_request = true;
  n.request_id = r.request_id;
  n.error = error;
  n.message = message;
  r.subscriber->notify(n);
}

// Returns true when the request is answered; false when it waits for the
// admin worker (its answer then comes from looked_up or opened_reader).
bool Hub::handle_now(Request& r) {
  if (r.kind == Request::Kind::answer) {
    r.subscriber->notify(r.notice);
    return true;
  }
  if (r.kind == Request::Kind::topics) {
    r.serial = next_serial_++;
    const uint64_t serial = r.serial;
    admin_.topic_names(queues_[r.subscriber.get()].cancelled,
                       [this, serial](std::vector<std::string> names, std::string error) {
                         auto shared = std::make_shared<std::vector<std::string>>(std::move(names));
                         post([this, serial, shared, error] { listed_topics(serial, std::move(*shared), error); });
                       });
    return false;
  }
  if (r.kind == Request::Kind::unsubscribe) {
    detach(r.subscriber, r.topic);
    HubNotice n;
    n.kind = HubNotice::Kind::unsubscribed;
    n.topic = r.topic;
    n.answers_request = true;
    n.request_id = r.request_id;
    r.subscriber->notify(n);
    return true;
  }
  // Subscribing again restarts the subscription at the new start.
  detach(r.subscriber, r.topic);
  if (r.start.kind == OffsetSpec::Kind::stored) {
    answer_error(r, ClientError::bad_offset, "offset 'stored' needs a group.id");
    return true;
  }
  Topic* t = find_topic(r.topic);
  if (t && r.start.kind == OffsetSpec::Kind::end && r.resume.empty()) {
    start_subscription(*t, r, nullptr);  // never needs history
    return true;
  }
  r.serial = next_serial_++;
  if (t) {
    ++t->waiting;
    r.counted_on_topic = true;
  }
  std::optional<int64_t> time;
  if (r.start.kind == OffsetSpec::Kind::timestamp) time = r.start.value;
  const uint64_t serial = r.serial;
  admin_.look_up(r.topic, /*fresh=*/t == nullptr, time, queues_[r.subscriber.get()].cancelled,
                 [this, serial](AdminWorker::Lookup lookup) {
                   auto shared = std::make_shared<AdminWorker::Lookup>(std::move(lookup));
                   post([this, serial, shared] { looked_up(serial, std::move(*shared)); });
                 });
  return false;
}

Hub::SubscriberQueue* Hub::waiting_for(uint64_t serial, Subscriber*& who) {
  for (auto& [s, q] : queues_) {
    if (q.busy && q.busy->serial == serial) {
      who = s;
      return &q;
    }
  }
  return nullptr;
}

void Hub::listed_topics(uint64_t serial, std::vector<std::string> names, const std::string& error) {
  Subscriber* s = nullptr;
  SubscriberQueue* q = waiting_for(serial, s);
  if (!q) return;  // the subscriber left meanwhile
  Request& r = *q->busy;
  if (!error.empty()) {
    answer_error(r, ClientError::kafka_error, "cannot list topics: " + error);
  } else {
    HubNotice n;
    n.kind = HubNotice::Kind::topics;
    n.answers_request = true;
    n.request_id = r.request_id;
    for (auto& name : names) {
      if (!r.visible || r.visible(name)) n.names.push_back(std::move(name));
    }
    r.subscriber->notify(n);
  }
  finish_request(s);
}

void Hub::looked_up(uint64_t serial, AdminWorker::Lookup lookup) {
  Subscriber* s = nullptr;
  SubscriberQueue* q = waiting_for(serial, s);
  if (!q) return;  // the subscriber left meanwhile
  Request& r = *q->busy;
  if (!lookup.topic.ok()) {
    answer_error(r,
                 lookup.topic.error == TopicLookup::Error::unknown_topic ? ClientError::unknown_topic
                                                                         : ClientError::kafka_error,
                 lookup.topic.message);
    finish_request(s);
    return;
  }
  Topic* t = find_topic(r.topic);
  if (!t) {
    auto topic = std::make_unique<Topic>();
    topic->name = std::make_shared<const std::string>(r.topic);
    for (const auto& p : lookup.topic.partitions) topic->next.push_back(p.high);
    topic->rings.resize(lookup.topic.partitions.size());
    try {
      live_->assign(r.topic, topic->next);
    } catch (const std::exception& e) {
      answer_error(r, ClientError::kafka_error, e.what());
      finish_request(s);
      return;
    }
    t = topic.get();
    topics_.emplace(r.topic, std::move(topic));
    log_.info("reading topic '" + r.topic + "' (" + std::to_string(lookup.topic.partitions.size()) + " partitions)");
  }
  // A resume position is checked against the partitions and their ends; a
  // position past the end that the cache answered may only be newer than
  // the cache (delivered by another bridge a moment ago): ask Kafka.
  const auto& parts = lookup.topic.partitions;
  if (!r.resume.empty() && r.resume.rbegin()->first >= static_cast<int32_t>(parts.size())) {
    answer_error(r, ClientError::bad_partition,
                 "resume: '" + r.topic + "' has no partition " + std::to_string(r.resume.rbegin()->first) + " (it has " +
                     std::to_string(parts.size()) + ")");
    finish_request(s);
    return;
  }
  if (!r.fresh_lookup) {
    for (const auto& [p, last] : r.resume) {
      const auto up = static_cast<size_t>(p);
      if (last + 1 <= parts[up].high || (up < t->next.size() && last + 1 <= t->next[up])) continue;
      r.fresh_lookup = true;
      admin_.look_up(r.topic, /*fresh=*/true, std::nullopt, q->cancelled, [this, serial](AdminWorker::Lookup again) {
        auto shared = std::make_shared<AdminWorker::Lookup>(std::move(again));
        post([this, serial, shared] { looked_up(serial, std::move(*shared)); });
      });
      return;
    }
  }
  if (!start_subscription(*t, r, &lookup)) {
    finish_request(s);
    return;
  }
  // History older than the ring: a catch-up reader, opened on the worker.
  if (!r.counted_on_topic) {
    ++t->waiting;
    r.counted_on_topic = true;
  }
  admin_.open_reader(q->cancelled,
                     [this, serial](std::unique_ptr<PartitionFeed> feed, std::string error) {
                       auto shared = std::make_shared<std::unique_ptr<PartitionFeed>>(std::move(feed));
                       post([this, serial, shared, error] { opened_reader(serial, std::move(*shared), error); });
                     });
}

void Hub::opened_reader(uint64_t serial, std::unique_ptr<PartitionFeed> feed, std::string error) {
  Subscriber* s = nullptr;
  SubscriberQueue* q = waiting_for(serial, s);
  Topic* t = q ? find_topic(q->busy->topic) : nullptr;
  if (!t) {
    admin_.dispose(std::move(feed));
    return;
  }
  Request& r = *q->busy;
  const size_t n = t->next.size();
  auto cu = std::make_unique<CatchUp>();
  cu->subscriber = r.subscriber;
  cu->topic = r.topic;
  cu->next = r.from;
  cu->next.resize(n, 0);
  cu->start_time_ms = r.start_time_ms;
  cu->reached_time.assign(n, r.start_time_ms < 0);
  for (const auto& [p, last] : r.resume) {
    if (static_cast<size_t>(p) < n) cu->reached_time[static_cast<size_t>(p)] = true;
  }
  cu->filter = r.filter;
  std::vector<int64_t> ends(n);
  for (size_t p = 0; p < n; ++p) ends[p] = end_of(t->next, t->rewound_from, p);
  cu->tell_caught_up = r.tell_caught_up;
  cu->caught_up_at = ends;
  if (feed) {
    try {
      // Every partition, also those whose start is in the ring now: the
      // ring may move past it before the others are caught up.
      feed->on_ready([this] { wake(); });
      feed->assign(r.topic, cu->next);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!feed || !error.empty()) {
    if (feed) feed->on_ready(nullptr);
    admin_.dispose(std::move(feed));
    answer_error(r, ClientError::kafka_error, "cannot start reading history: " + error);
    finish_request(s);
    return;
  }
  cu->feed = std::move(feed);
  notify_subscribed(r, cu->next, std::move(ends));
  t->idle_since = {};
  catchups_.push_back(std::move(cu));
  finish_request(s);
}

// Answers with `subscribed` and joins the live stream when the start is in
// the ring (or answers an error). Returns true when the start is older than
// the ring: then r.from holds the catch-up reader's start.
bool Hub::start_subscription(Topic& t, Request& r, const AdminWorker::Lookup* lookup) {
  const size_t n = t.next.size();
  std::vector<int64_t> ends(n);
  for (size_t p = 0; p < n; ++p) ends[p] = end_of(t.next, t.rewound_from, p);
  std::vector<int64_t> from = ends;
  int64_t start_time = -1;
  r.from.clear();
  r.resume_lost.clear();
  r.resume_reset.clear();
  if (r.start.kind != OffsetSpec::Kind::end && lookup) {
    const auto& parts = lookup->topic.partitions;
    if (r.start.kind == OffsetSpec::Kind::timestamp) start_time = r.start.value;
    for (size_t p = 0; p < n; ++p) {
      if (r.resume.count(static_cast<int32_t>(p))) continue;
      int64_t low = p < parts.size() ? std::max<int64_t>(0, parts[p].low) : 0;
      low = std::min(low, ends[p]);
      switch (r.start.kind) {
        case OffsetSpec::Kind::beginning: from[p] = low; break;
        case OffsetSpec::Kind::absolute: from[p] = clamp_offset(r.start.value, low, ends[p]); break;
        case OffsetSpec::Kind::from_end: from[p] = clamp_offset(ends[p] - r.start.value, low, ends[p]); break;
        case OffsetSpec::Kind::timestamp:
          from[p] = p < lookup->times.size() && lookup->times[p] >= 0 ? clamp_offset(lookup->times[p], low, ends[p])
                                                                      : ends[p];
          break;
        case OffsetSpec::Kind::end:
        case OffsetSpec::Kind::stored: break;
      }
    }
  }
  // A resumed partition goes on right after the client's last offset: from
  // the ring, a catch-up reader, or (when the live reader is behind Kafka)
  // ahead of the live reader, which then skips what it already delivered.
  if (lookup) {
    const auto& parts = lookup->topic.partitions;
    for (const auto& [partition, last] : r.resume) {
      const auto p = static_cast<size_t>(partition);
      if (p >= n || p >= parts.size()) continue;
      const int64_t low = std::min(std::max<int64_t>(0, parts[p].low), ends[p]);
      const int64_t high = std::max(parts[p].high, ends[p]);
      const int64_t next = last + 1;
      if (next < low) {
        r.resume_lost.push_back({partition, next, low - 1});
        from[p] = low;
      } else if (next > high) {
        r.resume_reset.push_back({partition, next, high});
        from[p] = low;
      } else {
        from[p] = next;
      }
    }
  }
  bool in_ring = true;
  for (size_t p = 0; p < n; ++p) in_ring = in_ring && from[p] >= t.rings[p].begin(t.next[p]);
  // A broker without a time index answers time lookups with an earlier
  // offset; within the ring, the frames' own times decide.
  if (in_ring && start_time >= 0) {
    for (size_t p = 0; p < n; ++p) {
      if (r.resume.count(static_cast<int32_t>(p))) continue;
      from[p] = first_at_time(t.rings[p].frames, from[p], start_time, t.next[p]);
    }
  }
  // Recent history the live reader reads again for everyone (a time start
  // needs the frames' times, which only a catch-up reader checks).
  if (!in_ring && start_time < 0 && lookup) in_ring = rewind_live(t, from, lookup->topic.partitions);
  if (in_ring) {
    notify_subscribed(r, from, ends);
    join_live(t, r.subscriber, from, r.filter, r.tell_caught_up ? &ends : nullptr);
    return false;
  }
  size_t opening = 0;
  for (const auto& [s, q] : queues_) opening += q.busy && !q.busy->from.empty() ? 1 : 0;
  if (catchups_.size() + opening >= limits_.max_catchups) {
    answer_error(r, ClientError::catchup_limit,
                 "too many subscriptions are reading history right now (" + std::to_string(limits_.max_catchups) +
                     "); retry in a moment");
    return false;
  }
  r.from = std::move(from);
  r.start_time_ms = start_time;
  return true;
}

// Makes the live reader read again from `from` wherever that is older than
// the ring, when every such partition is at most rewind_offsets behind its
// end: then the start is in the ring (empty, at the live reader's new
// position). Subscribers already live skip what they already had, so each
// still gets every message once; the ring starts over at the new position.
// It goes back twice as far as asked (within rewind_offsets and the log
// start `parts[p].low`), so that in a storm of resumes each a little
// older than the last, most find their start in the ring.
// Returns false, changing nothing, when a catch-up reader should read it.
bool Hub::rewind_live(Topic& t, const std::vector<int64_t>& from, const std::vector<PartitionWatermarks>& parts) {
  const size_t n = t.next.size();
  std::vector<std::pair<size_t, int64_t>> targets;
  for (size_t p = 0; p < n; ++p) {
    if (from[p] >= t.rings[p].begin(t.next[p])) continue;
    const int64_t end = end_of(t.next, t.rewound_from, p);
    if (end - from[p] > limits_.rewind_offsets) return false;
    // One replay at a time: a client subscribing again and again further
    // back must not keep every live subscriber of the topic waiting.
    if (end > t.next[p]) return false;
    const int64_t low = p < parts.size() ? std::max<int64_t>(0, parts[p].low) : from[p];
    const int64_t further = end - std::min(2 * (end - from[p]), limits_.rewind_offsets);
    targets.emplace_back(p, std::max(std::min(from[p], low), std::min(from[p], further)));
  }
  if (targets.empty()) return false;
  for (const auto& [p, target] : targets) {
    try {
      live_->rewind(*t.name, static_cast<int32_t>(p), target);
    } catch (const std::exception& e) {
      // The partitions rewound so far stay rewound; that is consistent.
      log_.warning(std::string(e.what()) + "; reading that history with a reader of its own");
      return false;
    }
    for (auto& l : t.live) {
      if (!l.skip_below) l.skip_below = std::make_unique<std::vector<int64_t>>(t.next);
      (*l.skip_below)[p] = std::max((*l.skip_below)[p], t.next[p]);
    }
    t.rewound_from.resize(n, 0);
    t.rewound_from[p] = end_of(t.next, t.rewound_from, p);
    t.rings[p].clear();
    t.next[p] = target;
    ++rewinds_;
  }
  return true;
}

void Hub::join_live(Topic& t, const std::shared_ptr<Subscriber>& s, const std::vector<int64_t>& from,
                    const FilterPtr& filter, const std::vector<int64_t>* tell_caught_up_at) {
  std::vector<FramePtr> replay;
  bool ahead = false;
  for (size_t p = 0; p < t.rings.size(); ++p) {
    for (const auto& f : t.rings[p].frames) {
      if (f->offset >= from[p] && (!filter || filter->matches(*f))) replay.push_back(f);
    }
    if (from[p] > t.next[p]) ahead = true;
  }
  for (const auto& b : make_batches(t.name, replay, limits_.batch_bytes)) s->deliver(b);
  Topic::Live live{s, {}, filter ? join_group(t, filter) : nullptr};
  if (ahead) live.skip_below = std::make_unique<std::vector<int64_t>>(from);
  t.live.push_back(std::move(live));
  t.idle_since = {};
  if (tell_caught_up_at) {
    t.caught_up_waits.push_back({s.get(), *tell_caught_up_at});
    tell_caught_up(t);
  }
}

// Everything below the end offsets was handed over to a waiting subscriber
// (or filtered out) once the live reader, or the catch-up that ran ahead of
// it, is past them in every partition. Called after deliveries, so the
// notice follows the frames.
void Hub::tell_caught_up(Topic& t) {
  for (auto w = t.caught_up_waits.begin(); w != t.caught_up_waits.end();) {
    auto l = std::find_if(t.live.begin(), t.live.end(), [&](const Topic::Live& e) { return e.subscriber.get() == w->subscriber; });
    if (l == t.live.end()) {
      w = t.caught_up_waits.erase(w);
      continue;
    }
    bool reached = true;
    for (size_t p = 0; p < w->at.size() && p < t.next.size() && reached; ++p) {
      int64_t delivered = t.next[p];
      if (l->skip_below && p < l->skip_below->size()) delivered = std::max(delivered, (*l->skip_below)[p]);
      reached = delivered >= w->at[p];
    }
    if (!reached) {
      ++w;
      continue;
    }
    HubNotice n;
    n.kind = HubNotice::Kind::caught_up;
    n.topic = *t.name;
    l->subscriber->notify(n);
    w = t.caught_up_waits.erase(w);
  }
}

Hub::FilterGroup* Hub::join_group(Topic& t, const FilterPtr& filter) {
  auto& slot = t.groups[filter->canonical()];
  if (!slot) {
    slot = std::make_unique<FilterGroup>();
    slot->filter = filter;
    if (filter->has_exact_keys()) {
      for (const auto& key : filter->exact_keys()) t.by_key[key].push_back(slot.get());
    } else if (filter->only_mqtt_topics()) {
      for (const auto& topic_filter : filter->mqtt_topics()) t.by_topic.insert(topic_filter, slot.get());
    } else {
      t.unkeyed.push_back(slot.get());
    }
  }
  ++slot->members;
  return slot.get();
}

void Hub::leave_group(Topic& t, FilterGroup* group) {
  if (!group || --group->members > 0) return;
  auto drop = [group](std::vector<FilterGroup*>& list) { list.erase(std::remove(list.begin(), list.end(), group), list.end()); };
  if (group->filter->has_exact_keys()) {
    for (const auto& key : group->filter->exact_keys()) {
      auto it = t.by_key.find(key);
      if (it == t.by_key.end()) continue;
      drop(it->second);
      if (it->second.empty()) t.by_key.erase(it);
    }
  } else if (group->filter->only_mqtt_topics()) {
    for (const auto& topic_filter : group->filter->mqtt_topics()) t.by_topic.erase(topic_filter, group);
  } else {
    drop(t.unkeyed);
  }
  t.groups.erase(group->filter->canonical());
}

void Hub::detach(const std::shared_ptr<Subscriber>& s, const std::string& topic) {
  for (auto it = catchups_.begin(); it != catchups_.end();) {
    if ((*it)->subscriber == s && (*it)->topic == topic) {
      (*it)->feed->on_ready(nullptr);
      admin_.dispose(std::move((*it)->feed));
      it = catchups_.erase(it);
    } else {
      ++it;
    }
  }
  Topic* t = find_topic(topic);
  if (!t) return;
  auto& waits = t->caught_up_waits;
  waits.erase(std::remove_if(waits.begin(), waits.end(), [&](const Topic::CaughtUpWait& w) { return w.subscriber == s.get(); }),
              waits.end());
  for (auto it = t->live.begin(); it != t->live.end();) {
    if (it->subscriber != s) {
      ++it;
      continue;
    }
    leave_group(*t, it->group);
    it = t->live.erase(it);
  }
  bool catching_up = std::any_of(catchups_.begin(), catchups_.end(), [&](const auto& c) { return c->topic == topic; });
  if (t->live.empty() && !catching_up && t->idle_since == std::chrono::steady_clock::time_point{}) {
    t->idle_since = now();
  }
}

// ---- reading ------------------------------------------------------------------

// Hands the frames one poll read for `t` to its live subscribers.
void Hub::deliver_read(Topic& t) {
  if (t.batch.empty()) return;
  // Built once, shared by every subscriber: the fan-out's whole point. A
  // filter group's frames are matched once and its batches built once, for
  // all the group's members.
  std::vector<FrameBatchPtr> batches;
  bool unfiltered = false;
  if (!t.groups.empty()) {
    for (const auto& f : t.batch) {
      MessageFilter::ValueCache value;
      if (f->key) {
        auto it = t.by_key.find(*f->key);
        if (it != t.by_key.end()) {
          for (FilterGroup* g : it->second) {
            if (g->filter->matches(*f, value)) g->matched.push_back(f);
          }
        }
        // The tree matching the key is the whole of such a group's filter
        // (MessageFilter::matches), so it needs no second check.
        if (!t.by_topic.empty() && is_mqtt_topic_name(*f->key)) {
          const uint64_t serial = ++t.frame_serial;
          t.by_topic.match(*f->key, [&f, serial](FilterGroup* g) {
            if (g->last_tree_frame == serial) return;
            g->last_tree_frame = serial;
            g->matched.push_back(f);
          });
        }
      }
      for (FilterGroup* g : t.unkeyed) {
        if (g->filter->matches(*f, value)) g->matched.push_back(f);
      }
    }
  }
  std::map<FilterGroup*, std::vector<FrameBatchPtr>> group_batches;
  auto batches_for = [&](FilterGroup* g) -> const std::vector<FrameBatchPtr>& {
    if (!g) {
      if (!unfiltered) batches = make_batches(t.name, t.batch, limits_.batch_bytes);
      unfiltered = true;
      return batches;
    }
    auto [it, added] = group_batches.try_emplace(g);
    if (added) it->second = make_batches(t.name, g->matched, limits_.batch_bytes);
    return it->second;
  };
  std::vector<FramePtr> filtered;
  for (auto& l : t.live) {
    if (!l.skip_below) {
      for (const auto& b : batches_for(l.group)) l.subscriber->deliver(b);
      continue;
    }
    filtered.clear();
    bool still_ahead = false;
    for (const auto& f : l.group ? l.group->matched : t.batch) {
      if (f->offset >= (*l.skip_below)[static_cast<size_t>(f->partition)]) filtered.push_back(f);
    }
    for (size_t p = 0; p < t.next.size(); ++p) still_ahead = still_ahead || (*l.skip_below)[p] > t.next[p];
    if (!still_ahead) l.skip_below.reset();  // then the live reader's position says as much
    for (const auto& b : make_batches(t.name, filtered, limits_.batch_bytes)) l.subscriber->deliver(b);
  }
  if (!t.caught_up_waits.empty()) tell_caught_up(t);
  t.batch.clear();
  for (auto& [canonical, g] : t.groups) g->matched.clear();
}

void Hub::on_live_event(const PartitionEvent& e) {
  if (e.kind == PartitionEvent::Kind::end) return;
  Topic* t = find_topic(std::string(e.topic));
  const auto p = static_cast<size_t>(e.partition);
  if (!t || p >= t->next.size()) return;
  // What was read before the jump goes out before the notice.
  deliver_read(*t);
  if (e.kind == PartitionEvent::Kind::lost) {
    totals_[*t->name].lost[e.partition] += static_cast<uint64_t>(e.next_offset - e.lost_from);
    HubNotice n;
    n.kind = HubNotice::Kind::lost;
    n.topic = *t->name;
    n.partition = e.partition;
    n.last = e.next_offset - 1;
    for (auto& l : t->live) {
      // A catch-up that ran ahead delivered some of these already.
      n.first = l.skip_below ? std::max(e.lost_from, (*l.skip_below)[p]) : e.lost_from;
      if (n.first <= n.last) l.subscriber->notify(n);
    }
  } else {
    for (auto& l : t->live) {
      if (l.skip_below) (*l.skip_below)[p] = std::min((*l.skip_below)[p], e.next_offset);
    }
    // The log starts over: the end known before a rewind is gone with it.
    if (p < t->rewound_from.size()) t->rewound_from[p] = 0;
  }
  // The ring holds frames from before the jump only; starts in it would
  // straddle the gap.
  t->rings[p].clear();
  t->next[p] = e.next_offset;
  if (!t->caught_up_waits.empty()) tell_caught_up(*t);
}

bool Hub::poll_live() {
  std::vector<Topic*> touched;
  Topic* current = nullptr;
  auto on_message = [&](const MessageView& m) {
    if (!current || *current->name != m.topic) {
      auto it = topics_.find(std::string(m.topic));
      current = it == topics_.end() ? nullptr : it->second.get();
    }
    if (!current) return true;  // unassigned meanwhile
    auto p = static_cast<size_t>(m.partition);
    if (p >= current->next.size() || m.offset < current->next[p]) return true;
    FramePtr frame = make_frame(m);
    current->next[p] = m.offset + 1;
    current->rings[p].push(frame, limits_.ring_bytes);
    if (current->batch.empty()) touched.push_back(current);
    current->batch.push_back(std::move(frame));
    ++totals_[*current->name].messages;
    ++messages_;
    return true;
  };
  auto on_event = [&](const PartitionEvent& e) {
    current = nullptr;  // a topic's batch may be delivered here
    on_live_event(e);
  };
  // A few full polls in a row at most, then requests get their turn again.
  for (int round = 0; round < 4; ++round) {
    touched.clear();
    const size_t got = live_->poll_batch(std::chrono::milliseconds(0), limits_.batch, on_message, on_event);
    for (Topic* t : touched) deliver_read(*t);
    if (got < limits_.batch) return false;
  }
  return true;
}

bool Hub::poll_catchups() {
  bool more = false;
  for (size_t i = 0; i < catchups_.size();) {
    CatchUp& cu = *catchups_[i];
    Topic* t = find_topic(cu.topic);
    bool finished = false;
    bool failed = false;
    std::vector<FramePtr> frames;
    auto hand_over = [&] {
      if (!t) return;
      for (const auto& b : make_batches(t->name, frames, limits_.batch_bytes)) cu.subscriber->deliver(b);
      frames.clear();
    };
    try {
      const size_t got = cu.feed->poll_batch(
          std::chrono::milliseconds(0), limits_.batch,
          [&](const MessageView& m) {
            auto p = static_cast<size_t>(m.partition);
            if (p >= cu.next.size() || m.offset < cu.next[p]) return true;
            cu.next[p] = m.offset + 1;
            if (!cu.reached_time[p]) {
              // A broker without a time index answered the time lookup with
              // an earlier offset: skip to the first message at the time.
              if (m.timestamp_ms < cu.start_time_ms) return true;
              cu.reached_time[p] = true;
            }
            FramePtr frame = make_frame(m);
            if (cu.filter && !cu.filter->matches(*frame)) return true;
            frames.push_back(std::move(frame));
            return true;
          },
          [&](const PartitionEvent& e) {
            auto p = static_cast<size_t>(e.partition);
            if (p >= cu.next.size()) return;
            if (e.kind == PartitionEvent::Kind::lost) {
              hand_over();
              if (t) totals_[*t->name].lost[e.partition] += static_cast<uint64_t>(e.next_offset - e.lost_from);
              HubNotice n;
              n.kind = HubNotice::Kind::lost;
              n.topic = cu.topic;
              n.partition = e.partition;
              n.first = e.lost_from;
              n.last = e.next_offset - 1;
              cu.subscriber->notify(n);
              cu.next[p] = e.next_offset;
            } else if (e.kind == PartitionEvent::Kind::rewound) {
              cu.next[p] = e.next_offset;
            } else {
              cu.next[p] = std::max(cu.next[p], e.next_offset);
            }
          });
      more = more || got >= limits_.batch;
    } catch (const std::exception& e) {
      HubNotice n;
      n.kind = HubNotice::Kind::error;
      n.topic = cu.topic;
      n.error = ClientError::kafka_error;
      n.message = std::string("reading history failed: ") + e.what();
      cu.subscriber->notify(n);
      failed = true;
    }
    hand_over();
    if (!failed && t) {
      finished = true;
      for (size_t p = 0; p < cu.next.size(); ++p) {
        finished = finished && cu.next[p] >= t->rings[p].begin(t->next[p]);
      }
      if (finished) {
        // Partitions added meanwhile: the ring holds what the live reader read of them.
        cu.next.resize(t->next.size(), 0);
        cu.reached_time.resize(t->next.size(), true);
        // Messages older than the start time are not replayed from the ring either.
        for (size_t p = 0; p < cu.next.size(); ++p) {
          if (!cu.reached_time[p]) cu.next[p] = first_at_time(t->rings[p].frames, cu.next[p], cu.start_time_ms, t->next[p]);
        }
        join_live(*t, cu.subscriber, cu.next, cu.filter, cu.tell_caught_up ? &cu.caught_up_at : nullptr);
      }
    }
    if (finished || failed || !t) {
      std::string topic = cu.topic;
      cu.feed->on_ready(nullptr);
      admin_.dispose(std::move(cu.feed));
      catchups_.erase(catchups_.begin() + static_cast<std::ptrdiff_t>(i));
      if (Topic* left = failed ? find_topic(topic) : nullptr; left && left->live.empty()) left->idle_since = now();
    } else {
      ++i;
    }
  }
  return more;
}

// Partitions added to a topic after the hub started reading it would never
// be read: now and then each topic is looked up again, and new partitions
// are read from their start (all their messages are new to everyone).
void Hub::check_partitions() {
  const auto at = now();
  for (auto& [name, t] : topics_) {
    if (t->checking_partitions || at - t->partitions_checked < limits_.partition_check) continue;
    if (t->partitions_checked == std::chrono::steady_clock::time_point{}) {
      t->partitions_checked = at;  // just looked up when it started
      continue;
    }
    t->checking_partitions = true;
    std::string topic = name;
    admin_.look_up(topic, /*fresh=*/true, std::nullopt, nullptr, [this, topic](AdminWorker::Lookup lookup) {
      auto shared = std::make_shared<AdminWorker::Lookup>(std::move(lookup));
      post([this, topic, shared] { partitions_looked_up(topic, *shared); });
    });
  }
}

void Hub::partitions_looked_up(const std::string& name, const AdminWorker::Lookup& lookup) {
  Topic* t = find_topic(name);
  if (!t) return;
  t->checking_partitions = false;
  t->partitions_checked = now();
  const size_t had = t->next.size();
  if (!lookup.topic.ok() || lookup.topic.partitions.size() <= had) return;
  std::vector<int64_t> added(lookup.topic.partitions.size(), -1);
  for (size_t p = had; p < added.size(); ++p) {
    added[p] = std::max<int64_t>(0, lookup.topic.partitions[p].low);
    t->next.push_back(added[p]);
  }
  t->rings.resize(added.size());
  for (auto& l : t->live) {
    if (l.skip_below) l.skip_below->resize(added.size(), 0);
  }
  try {
    live_->assign(name, added);
  } catch (const std::exception& e) {
    log_.error("topic '" + name + "': cannot read its new partitions: " + e.what());
    return;
  }
  // A catch-up running meanwhile reads the new partitions from their start
  // too: when it hands over, the ring may have moved past their first
  // frames already.
  for (auto& cu : catchups_) {
    if (cu->topic != name || cu->next.size() >= added.size()) continue;
    std::vector<int64_t> more(added.size(), -1);
    for (size_t p = cu->next.size(); p < added.size(); ++p) more[p] = p >= had ? added[p] : 0;
    try {
      cu->feed->assign(name, more);
    } catch (const std::exception& e) {
      log_.warning("topic '" + name + "': a history reader cannot read the new partitions: " + e.what());
      continue;
    }
    for (size_t p = cu->next.size(); p < added.size(); ++p) cu->next.push_back(more[p]);
    cu->reached_time.resize(added.size(), true);
  }
  log_.info("topic '" + name + "' has " + std::to_string(added.size()) + " partitions now (was " +
            std::to_string(had) + "); reading the new ones from their start");
}

void Hub::retire_idle_topics() {
  const auto at = now();
  for (auto it = topics_.begin(); it != topics_.end();) {
    Topic& t = *it->second;
    if (t.waiting == 0 && t.idle_since != std::chrono::steady_clock::time_point{} && at - t.idle_since >= limits_.linger) {
      live_->unassign(it->first);
      log_.info("stopped reading topic '" + it->first + "' (no subscribers)");
      it = topics_.erase(it);
    } else {
      ++it;
    }
  }
}

void Hub::update_stats() {
  const auto at = now();
  if (at - stats_at_ < std::chrono::milliseconds(500)) return;
  stats_at_ = at;
  HubStats s;
  s.catchups = catchups_.size();
  s.admin_jobs = admin_.pending();
  s.messages = messages_;
  s.rewinds = rewinds_;
  for (const auto& [name, totals] : totals_) {
    TopicStats ts;
    ts.topic = name;
    ts.messages = totals.messages;
    ts.lost = totals.lost;
    if (Topic* t = find_topic(name)) {
      ts.reading = true;
      ts.subscribers = t->live.size();
      for (const auto& c : catchups_) ts.subscribers += c->topic == name ? 1 : 0;
      for (size_t p = 0; p < t->rings.size(); ++p) {
        ts.ring_bytes += t->rings[p].bytes;
        ts.ring_frames += t->rings[p].frames.size();
        int64_t high = live_->cached_high_watermark(name, static_cast<int32_t>(p));
        if (high > t->next[p]) ts.lag += high - t->next[p];
      }
    }
    s.topics.push_back(std::move(ts));
  }
  for (const auto& [name, t] : topics_) {
    if (totals_.count(name)) continue;
    TopicStats ts;
    ts.topic = name;
    ts.reading = true;
    ts.subscribers = t->live.size();
    s.topics.push_back(std::move(ts));
  }
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_ = std::move(s);
}

HubStats Hub::stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  return stats_;
}

}  // namespace kws
