#include "core/ingest/runner.hpp"

#include <algorithm>

namespace kws {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {
// Delivery tokens: which counters a delivery report goes to.
constexpr uint64_t kDataToken = 0;
constexpr uint64_t kMarkerToken = 1;
}  // namespace

IngestRunner::IngestRunner(FeedSession& session, IngestBuffer& buffer, FeedConnection& feed, MessageSink* sink,
                           RecordSettings records, LogSink& log)
    : session_(session), buffer_(buffer), feed_(feed), sink_(sink), records_(std::move(records)), log_(log) {
  if (sink_) {
    sink_->on_delivery([this](const Delivery& d) {
      const bool marker = d.token == kMarkerToken;
      --(marker ? in_flight_markers_ : in_flight_data_);
      if (d.ok()) {
        ++(marker ? counters_.markers_delivered : counters_.delivered);
        return;
      }
      ++(marker ? counters_.markers_failed : counters_.failed);
      if (++failures_logged_ <= 10) {
        log_.error("a record was not delivered: " + std::string(d.message));
      }
    });
  }
}

IngestRunner::~IngestRunner() {
  if (sink_) sink_->on_delivery({});
}

bool IngestRunner::produce(IngestItem& item) {
  if (!sink_) {
    if (!item.marker && !item.filtered) ++counters_.echoed;
    return true;
  }
  if (item.filtered) return true;  // only a dry run passes them on, and it has no sink
  size_t n = 0;
  auto set = [&](const char* name, std::string_view value) {
    if (headers_.size() <= n) headers_.emplace_back();
    Header& h = headers_[n++];
    h.name.assign(name);
    if (!h.value) h.value.emplace();
    h.value->assign(value.data(), value.size());
  };
  if (records_.ingest_headers || item.marker) {
    set(kHeaderSource, records_.source);
    set(kHeaderReceived, std::to_string(item.received_ms));
    set(kHeaderConnection, std::to_string(item.connection));
  }
  // The outage marker stays even without the source headers.
  if (item.downtime_ms >= 0) set(kHeaderDowntime, std::to_string(item.downtime_ms));
  if (item.binary) set(kHeaderFrame, "binary");
  if (item.marker) set(kHeaderMarker, item.connection > 1 ? "reconnected" : "connected");
  for (const auto& h : records_.extra_headers) {
    if (headers_.size() <= n) headers_.emplace_back();
    headers_[n++] = h;
  }
  headers_.resize(n);

  OutgoingRecord r;
  r.topic = records_.topic;
  r.partition = records_.partition;
  if (item.key) {
    r.key = std::string_view(*item.key);
  } else if (records_.key) {
    r.key = std::string_view(*records_.key);
  }
  r.value = std::string_view(item.payload);
  r.headers = &headers_;
  r.timestamp_ms = item.received_ms;
  r.token = item.marker ? kMarkerToken : kDataToken;
  ProduceOutcome outcome = sink_->try_produce(r);
  if (outcome.error == ProduceError::queue_full) return false;
  if (outcome.queued()) {
    if (item.marker) {
      ++in_flight_markers_;
    } else {
      ++counters_.queued;
      ++in_flight_data_;
    }
  } else {
    ++(item.marker ? counters_.markers_failed : counters_.failed);
    if (++failures_logged_ <= 10) log_.error("a record was refused: " + outcome.message);
  }
  return true;
}

RunEnd IngestRunner::run(const RunLimits& limits, const RunHooks& hooks) {
  const Clock::time_point started = Clock::now();
  // Popped items leave the buffer's accounting: keep the batch small against
  // its limit so the total held stays within 1.25 times the limit.
  const size_t batch = static_cast<size_t>(std::max<uint64_t>(1, std::min<uint64_t>(4096, buffer_.limits().messages / 4)));
  std::vector<IngestItem> pending;
  size_t next = 0;
  std::optional<RunEnd> reason;
  bool stopping = false;
  Clock::time_point stop_at{};
  Clock::time_point last_hook = started;

  auto check_kafka = [&] {
    if (!sink_ || !hooks.kafka_lost) return std::optional<std::string>();
    auto lost = hooks.kafka_lost();
    if (lost && !counters_.kafka_down) {
      counters_.kafka_down = true;
      log_.warning("Kafka unreachable (" + *lost + "); holding messages in the buffer");
    } else if (!lost && counters_.kafka_down) {
      counters_.kafka_down = false;
      log_.note("Kafka reachable again");
    }
    return lost;
  };

  session_.start();
  while (true) {
    const Clock::time_point now = Clock::now();
    if (!stopping) {
      if (hooks.stop && hooks.stop()) {
        reason = RunEnd::interrupted;
      } else if (session_.taken_all()) {
        reason = RunEnd::count_reached;
      } else if (limits.duration.count() > 0 && now - started >= limits.duration) {
        reason = RunEnd::duration_reached;
      } else if (session_.finished()) {
        reason = session_.failure() ? RunEnd::gave_up : RunEnd::end_of_input;
      }
      if (reason) {
        stopping = true;
        stop_at = now;
        session_.stop();
      }
    }
    session_.tick(buffer_.stats().paused);

    bool full = false;
    if (next >= pending.size()) {
      pending.clear();
      next = 0;
      const bool idle = stopping && session_.finished();
      if (buffer_.pop(pending, batch, idle ? milliseconds(0) : milliseconds(10))) feed_.resume_reading();
    }
    while (next < pending.size()) {
      if (!produce(pending[next])) {
        full = true;
        break;
      }
      if (hooks.tee && !pending[next].marker) hooks.tee(pending[next]);
      ++next;
    }
    if (sink_) sink_->serve_deliveries(full ? milliseconds(10) : milliseconds(0));

    if (now - last_hook >= milliseconds(100)) {
      last_hook = now;
      auto lost = check_kafka();
      if (hooks.tick) hooks.tick();
      // Stopping with Kafka gone: what cannot be queued is reported, not waited for forever.
      if (stopping && lost && full) break;
    }
    if (stopping && !session_.finished() && now - stop_at > limits.close_wait) {
      log_.warning("the feed did not close within " + std::to_string(limits.close_wait.count()) + " ms; going on");
      break;
    }
    if (stopping && session_.finished() && next >= pending.size() && buffer_.stats().messages == 0) break;
  }

  // Whatever is still in the buffer (a feed that did not close in time, or
  // Kafka gone) is moved to the sink or counted as undelivered.
  if (sink_) {
    bool gave_up = false;
    while (!gave_up) {
      while (next < pending.size()) {
        if (!produce(pending[next])) break;
        ++next;
      }
      if (next >= pending.size()) {
        pending.clear();
        next = 0;
        buffer_.pop(pending, batch, milliseconds(0));
        if (pending.empty()) break;
        continue;
      }
      sink_->serve_deliveries(milliseconds(50));
      if (check_kafka()) gave_up = true;
    }
    // What could not be handed over, by kind.
    buffer_.pop(pending, SIZE_MAX, milliseconds(0));
    uint64_t left_data = 0, left_markers = 0;
    for (size_t i = next; i < pending.size(); ++i) ++(pending[i].marker ? left_markers : left_data);
    while (sink_->in_flight() > 0) {
      sink_->serve_deliveries(milliseconds(100));
      if (check_kafka()) break;
    }
    counters_.undelivered = left_data + in_flight_data_;
    counters_.markers_failed += left_markers + in_flight_markers_;
  } else {
    while (next < pending.size()) {
      if (hooks.tee && !pending[next].marker) hooks.tee(pending[next]);
      ++next;
    }
  }
  return *reason;
}

}  // namespace kws
