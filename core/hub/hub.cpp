#include "core/hub/hub.hpp"

#include <algorithm>

#include "core/util/error.hpp"
#include "core/util/text.hpp"

namespace kws {

namespace {

std::string quoted(std::string_view text) {
  std::string out = "\"";
  if (is_valid_utf8(text)) {
    append_json_escaped(out, text);
  } else {
    out += base64_encode(text);
  }
  out += '"';
  return out;
}

std::string subscribed_reply(const std::string& topic, size_t partitions, const std::string& start_text,
                             const std::string& id_json) {
  std::string out = "{\"type\":\"subscribed\",\"topic\":" + quoted(topic) +
                    ",\"partitions\":" + std::to_string(partitions) + ",\"offset\":" + quoted(start_text);
  if (!id_json.empty()) out += ",\"id\":" + id_json;
  out += '}';
  return out;
}

int64_t clamp_offset(int64_t value, int64_t low, int64_t high) { return std::max(low, std::min(value, high)); }

// The first offset at or after `from` whose message is not older than
// `start_ms`, among `frames` (a ring, in offset order); `end` when none is.
int64_t first_at_time(const std::deque<FramePtr>& frames, int64_t from, int64_t start_ms, int64_t end) {
  for (const auto& f : frames) {
    if (f->offset >= from && f->timestamp_ms >= start_ms) return f->offset;
  }
  return end;
}

}  // namespace

std::string error_reply(std::string_view code, std::string_view message, const std::string& id_json,
                        std::string_view topic) {
  std::string out = "{\"type\":\"error\",\"code\":" + quoted(code) + ",\"message\":" + quoted(message);
  if (!id_json.empty()) out += ",\"id\":" + id_json;
  if (!topic.empty()) out += ",\"topic\":" + quoted(topic);
  out += '}';
  return out;
}

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
  // The oldest offset the ring can replay from; `next` when it is empty.
  int64_t begin(int64_t next) const { return frames.empty() ? next : frames.front()->offset; }
};

struct Hub::Topic {
  struct Live {
    std::shared_ptr<Subscriber> subscriber;
    // While set: per partition, frames below this offset were already
    // delivered by a catch-up reader that ran ahead of the live one.
    std::vector<int64_t> skip_below;
  };
  std::string name;
  std::vector<int64_t> next;  // the live reader's position per partition
  std::vector<Ring> rings;
  std::vector<Live> live;
  std::vector<FramePtr> batch;  // frames read in the current poll
  uint64_t messages = 0;
  std::chrono::steady_clock::time_point idle_since{};
};

struct Hub::CatchUp {
  std::shared_ptr<Subscriber> subscriber;
  std::string topic;
  std::unique_ptr<PartitionFeed> feed;
  std::vector<int64_t> next;  // next offset to deliver, per partition
  int64_t start_time_ms = -1;
  std::vector<bool> reached_time;
};

struct Hub::Request {
  enum class Kind { subscribe, unsubscribe, remove } kind;
  std::shared_ptr<Subscriber> subscriber;
  std::string topic;
  OffsetSpec start;
  std::string start_text;
  std::string id_json;
};

Hub::Hub(std::unique_ptr<PartitionFeed> live, FeedFactory catchup_feeds, HubLimits limits, LogSink& log)
    : live_(std::move(live)), catchup_feeds_(std::move(catchup_feeds)), limits_(limits), log_(log) {}

Hub::~Hub() = default;

void Hub::subscribe(std::shared_ptr<Subscriber> subscriber, const std::string& topic, const OffsetSpec& start,
                    const std::string& start_text, const std::string& id_json) {
  auto r = std::make_unique<Request>(Request{Request::Kind::subscribe, std::move(subscriber), topic, start, start_text, id_json});
  std::lock_guard<std::mutex> lock(requests_mutex_);
  requests_.push_back(std::move(r));
  requests_cv_.notify_one();
}

void Hub::unsubscribe(const std::shared_ptr<Subscriber>& subscriber, const std::string& topic, const std::string& id_json) {
  auto r = std::make_unique<Request>(Request{Request::Kind::unsubscribe, subscriber, topic, {}, {}, id_json});
  std::lock_guard<std::mutex> lock(requests_mutex_);
  requests_.push_back(std::move(r));
}

void Hub::remove(const std::shared_ptr<Subscriber>& subscriber) {
  auto r = std::make_unique<Request>(Request{Request::Kind::remove, subscriber, {}, {}, {}, {}});
  std::lock_guard<std::mutex> lock(requests_mutex_);
  requests_.push_back(std::move(r));
}

void Hub::stop() {
  stopping_ = true;
  requests_cv_.notify_all();
}

Hub::Topic* Hub::find_topic(const std::string& name) {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second.get();
}

void Hub::run() {
  while (!stopping_) run_once(std::chrono::milliseconds(topics_.empty() && catchups_.empty() ? 0 : 20));
}

void Hub::run_once(std::chrono::milliseconds wait) {
  std::deque<std::unique_ptr<Request>> pending;
  {
    std::unique_lock<std::mutex> lock(requests_mutex_);
    // With nothing to read, sleep until a request arrives instead of polling.
    if (topics_.empty() && catchups_.empty() && requests_.empty() && !stopping_) {
      requests_cv_.wait_for(lock, std::chrono::milliseconds(200));
    }
    pending.swap(requests_);
  }
  for (auto& r : pending) handle(*r);
  if (!topics_.empty()) poll_live(catchups_.empty() ? wait : std::chrono::milliseconds(0));
  if (!catchups_.empty()) poll_catchups();
  retire_idle_topics();
  update_stats();
}

void Hub::handle(Request& r) {
  switch (r.kind) {
    case Request::Kind::remove: {
      std::vector<std::string> names;
      for (auto& [name, t] : topics_) names.push_back(name);
      for (const auto& name : names) detach(r.subscriber, name);
      return;
    }
    case Request::Kind::unsubscribe: {
      detach(r.subscriber, r.topic);
      std::string reply = "{\"type\":\"unsubscribed\",\"topic\":" + quoted(r.topic);
      if (!r.id_json.empty()) reply += ",\"id\":" + r.id_json;
      r.subscriber->reply(reply + "}");
      return;
    }
    case Request::Kind::subscribe: break;
  }
  // Subscribing again restarts the subscription at the new start.
  detach(r.subscriber, r.topic);
  if (r.start.kind == OffsetSpec::Kind::stored) {
    r.subscriber->reply(error_reply("bad_offset", "offset 'stored' needs a group.id", r.id_json, r.topic));
    return;
  }
  Topic* t = find_topic(r.topic);
  if (!t) {
    TopicLookup lookup = live_->describe(r.topic);
    if (!lookup.ok()) {
      r.subscriber->reply(error_reply(lookup.error == TopicLookup::Error::unknown_topic ? "unknown_topic" : "kafka_error",
                                      lookup.message, r.id_json, r.topic));
      return;
    }
    auto topic = std::make_unique<Topic>();
    topic->name = r.topic;
    for (const auto& p : lookup.partitions) topic->next.push_back(p.high);
    topic->rings.resize(lookup.partitions.size());
    live_->assign(r.topic, topic->next);
    t = topic.get();
    topics_.emplace(r.topic, std::move(topic));
    log_.info("reading topic '" + r.topic + "' (" + std::to_string(lookup.partitions.size()) + " partitions)");
  }
  start_subscription(*t, r);
}

void Hub::start_subscription(Topic& t, Request& r) {
  const size_t n = t.next.size();
  std::vector<int64_t> from = t.next;
  int64_t start_time = -1;
  if (r.start.kind != OffsetSpec::Kind::end) {
    TopicLookup lookup = live_->describe(t.name);
    if (!lookup.ok()) {
      r.subscriber->reply(error_reply("kafka_error", lookup.message, r.id_json, t.name));
      return;
    }
    std::vector<int64_t> times;
    if (r.start.kind == OffsetSpec::Kind::timestamp) {
      times = live_->offsets_for_time(t.name, r.start.value, n);
      start_time = r.start.value;
    }
    for (size_t p = 0; p < n; ++p) {
      int64_t low = p < lookup.partitions.size() ? std::max<int64_t>(0, lookup.partitions[p].low) : 0;
      low = std::min(low, t.next[p]);
      switch (r.start.kind) {
        case OffsetSpec::Kind::beginning: from[p] = low; break;
        case OffsetSpec::Kind::absolute: from[p] = clamp_offset(r.start.value, low, t.next[p]); break;
        case OffsetSpec::Kind::from_end: from[p] = clamp_offset(t.next[p] - r.start.value, low, t.next[p]); break;
        case OffsetSpec::Kind::timestamp:
          from[p] = p < times.size() && times[p] >= 0 ? clamp_offset(times[p], low, t.next[p]) : t.next[p];
          break;
        case OffsetSpec::Kind::end:
        case OffsetSpec::Kind::stored: break;
      }
    }
  }
  bool in_ring = true;
  for (size_t p = 0; p < n; ++p) in_ring = in_ring && from[p] >= t.rings[p].begin(t.next[p]);
  // A broker without a time index answers time lookups with an earlier
  // offset; within the ring, the frames' own times decide.
  if (in_ring && start_time >= 0) {
    for (size_t p = 0; p < n; ++p) from[p] = first_at_time(t.rings[p].frames, from[p], start_time, t.next[p]);
  }
  if (in_ring) {
    r.subscriber->reply(subscribed_reply(t.name, n, r.start_text, r.id_json));
    join_live(t, r.subscriber, from);
    return;
  }
  if (catchups_.size() >= limits_.max_catchups) {
    r.subscriber->reply(error_reply("catchup_limit",
                                    "too many subscriptions are reading history right now (" +
                                        std::to_string(limits_.max_catchups) + "); retry in a moment",
                                    r.id_json, t.name));
    return;
  }
  auto cu = std::make_unique<CatchUp>();
  cu->subscriber = r.subscriber;
  cu->topic = t.name;
  cu->next = from;
  cu->start_time_ms = start_time;
  cu->reached_time.assign(n, start_time < 0);
  try {
    cu->feed = catchup_feeds_();
    std::vector<int64_t> assign(n, -1);
    for (size_t p = 0; p < n; ++p) {
      if (from[p] < t.rings[p].begin(t.next[p])) assign[p] = from[p];
    }
    cu->feed->assign(t.name, assign);
  } catch (const std::exception& e) {
    r.subscriber->reply(error_reply("kafka_error", std::string("cannot start reading history: ") + e.what(), r.id_json, t.name));
    return;
  }
  r.subscriber->reply(subscribed_reply(t.name, n, r.start_text, r.id_json));
  t.idle_since = {};
  catchups_.push_back(std::move(cu));
}

void Hub::join_live(Topic& t, const std::shared_ptr<Subscriber>& s, const std::vector<int64_t>& from) {
  std::vector<FramePtr> replay;
  bool ahead = false;
  for (size_t p = 0; p < t.rings.size(); ++p) {
    for (const auto& f : t.rings[p].frames) {
      if (f->offset >= from[p]) replay.push_back(f);
    }
    if (from[p] > t.next[p]) ahead = true;
  }
  for (const auto& b : make_batches(replay, limits_.batch_bytes)) s->deliver(b);
  Topic::Live live{s, {}};
  if (ahead) live.skip_below = from;
  t.live.push_back(std::move(live));
  t.idle_since = {};
}

void Hub::detach(const std::shared_ptr<Subscriber>& s, const std::string& topic) {
  catchups_.erase(std::remove_if(catchups_.begin(), catchups_.end(),
                                 [&](const std::unique_ptr<CatchUp>& c) { return c->subscriber == s && c->topic == topic; }),
                  catchups_.end());
  Topic* t = find_topic(topic);
  if (!t) return;
  t->live.erase(std::remove_if(t->live.begin(), t->live.end(), [&](const Topic::Live& l) { return l.subscriber == s; }),
                t->live.end());
  bool catching_up = std::any_of(catchups_.begin(), catchups_.end(), [&](const auto& c) { return c->topic == topic; });
  if (t->live.empty() && !catching_up && t->idle_since == std::chrono::steady_clock::time_point{}) {
    t->idle_since = std::chrono::steady_clock::now();
  }
}

void Hub::poll_live(std::chrono::milliseconds wait) {
  Topic* current = nullptr;
  std::vector<Topic*> touched;
  live_->poll_batch(
      wait, limits_.batch,
      [&](const MessageView& m) {
        if (!current || current->name != m.topic) {
          auto it = topics_.find(std::string(m.topic));
          current = it == topics_.end() ? nullptr : it->second.get();
        }
        if (!current) return true;  // unassigned meanwhile
        auto p = static_cast<size_t>(m.partition);
        if (p >= current->next.size() || m.offset < current->next[p]) return true;
        FramePtr frame = encode_frame(m);
        current->next[p] = m.offset + 1;
        current->rings[p].push(frame, limits_.ring_bytes);
        if (current->batch.empty()) touched.push_back(current);
        current->batch.push_back(std::move(frame));
        ++current->messages;
        ++messages_;
        return true;
      },
      nullptr);
  std::vector<FramePtr> filtered;
  for (Topic* t : touched) {
    // Built once, shared by every subscriber: the fan-out's whole point.
    const std::vector<FrameBatchPtr> batches = make_batches(t->batch, limits_.batch_bytes);
    for (auto& l : t->live) {
      if (l.skip_below.empty()) {
        for (const auto& b : batches) l.subscriber->deliver(b);
        continue;
      }
      filtered.clear();
      bool still_ahead = false;
      for (const auto& f : t->batch) {
        if (f->offset >= l.skip_below[static_cast<size_t>(f->partition)]) filtered.push_back(f);
      }
      for (size_t p = 0; p < t->next.size(); ++p) still_ahead = still_ahead || l.skip_below[p] > t->next[p];
      if (!still_ahead) l.skip_below.clear();
      for (const auto& b : make_batches(filtered, limits_.batch_bytes)) l.subscriber->deliver(b);
    }
    t->batch.clear();
  }
}

void Hub::poll_catchups() {
  for (size_t i = 0; i < catchups_.size();) {
    CatchUp& cu = *catchups_[i];
    Topic* t = find_topic(cu.topic);
    bool finished = false;
    bool failed = false;
    std::vector<FramePtr> frames;
    try {
      cu.feed->poll_batch(
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
            frames.push_back(encode_frame(m));
            return true;
          },
          [&](const PartitionEnd& e) {
            auto p = static_cast<size_t>(e.partition);
            if (p < cu.next.size()) cu.next[p] = std::max(cu.next[p], e.next_offset);
          });
    } catch (const std::exception& e) {
      cu.subscriber->reply(error_reply("kafka_error", std::string("reading history failed: ") + e.what(), "", cu.topic));
      failed = true;
    }
    for (const auto& b : make_batches(frames, limits_.batch_bytes)) cu.subscriber->deliver(b);
    if (!failed && t) {
      finished = true;
      for (size_t p = 0; p < cu.next.size(); ++p) {
        finished = finished && cu.next[p] >= t->rings[p].begin(t->next[p]);
      }
      if (finished) {
        // Messages older than the start time are not replayed from the ring either.
        for (size_t p = 0; p < cu.next.size(); ++p) {
          if (!cu.reached_time[p]) cu.next[p] = first_at_time(t->rings[p].frames, cu.next[p], cu.start_time_ms, t->next[p]);
        }
        join_live(*t, cu.subscriber, cu.next);
      }
    }
    if (finished || failed || !t) {
      std::string topic = cu.topic;
      catchups_.erase(catchups_.begin() + static_cast<std::ptrdiff_t>(i));
      if (Topic* left = failed ? find_topic(topic) : nullptr; left && left->live.empty()) {
        left->idle_since = std::chrono::steady_clock::now();
      }
    } else {
      ++i;
    }
  }
}

void Hub::retire_idle_topics() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = topics_.begin(); it != topics_.end();) {
    Topic& t = *it->second;
    if (t.idle_since != std::chrono::steady_clock::time_point{} && now - t.idle_since >= limits_.linger) {
      live_->unassign(t.name);
      log_.info("stopped reading topic '" + t.name + "' (no subscribers)");
      it = topics_.erase(it);
    } else {
      ++it;
    }
  }
}

void Hub::update_stats() {
  auto now = std::chrono::steady_clock::now();
  if (now - stats_at_ < std::chrono::milliseconds(500)) return;
  stats_at_ = now;
  HubStats s;
  s.catchups = catchups_.size();
  s.messages = messages_;
  for (const auto& [name, t] : topics_) {
    TopicStats ts;
    ts.topic = name;
    ts.subscribers = t->live.size();
    for (const auto& c : catchups_) ts.subscribers += c->topic == name ? 1 : 0;
    for (size_t p = 0; p < t->rings.size(); ++p) {
      ts.ring_bytes += t->rings[p].bytes;
      ts.ring_frames += t->rings[p].frames.size();
      int64_t high = live_->cached_high_watermark(name, static_cast<int32_t>(p));
      if (high > t->next[p]) ts.lag += high - t->next[p];
    }
    ts.messages = t->messages;
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
