#include "core/ingest/session.hpp"

#include "core/ingest/units.hpp"

namespace kws {

using std::chrono::milliseconds;

FeedSession::FeedSession(FeedConnection& feed, IngestBuffer& buffer, SessionSettings settings, FieldRules rules,
                         LogSink& log, SessionClock clock, uint64_t seed)
    : feed_(feed),
      buffer_(buffer),
      settings_(std::move(settings)),
      rules_(std::move(rules)),
      log_(log),
      clock_(std::move(clock)),
      backoff_(settings_.backoff, seed) {}

int64_t FeedSession::steady_ms() const {
  return std::chrono::duration_cast<milliseconds>(clock_.steady().time_since_epoch()).count();
}

// --- the feed's thread ------------------------------------------------------

void FeedSession::on_feed_open() {
  const TimePoint now = clock_.steady();
  Event e;
  e.opened = true;
  e.connection = ++connection_;
  if (lost_at_) {
    e.downtime_ms = std::chrono::duration_cast<milliseconds>(now - *lost_at_).count();
    lost_at_.reset();
  }
  downtime_ms_ = e.downtime_ms;
  first_of_connection_ = e.connection > 1;
  seq_.new_connection();
  reply_seen_ = false;
  awaiting_ = !settings_.await_reply.empty();
  if (settings_.markers == MarkerMode::record) {
    // Forced into the buffer ahead of the connection's messages: consumers
    // see where the feed was (re)joined even when no message follows.
    IngestItem marker;
    marker.marker = true;
    marker.connection = e.connection;
    marker.downtime_ms = e.downtime_ms;
    marker.received_ms = clock_.wall_ms();
    marker.payload = "{\"kws_marker\":\"connected\",\"connection\":" + std::to_string(e.connection) +
                     ",\"downtime_ms\":" + (e.downtime_ms >= 0 ? std::to_string(e.downtime_ms) : "null") + "}";
    buffer_.push(std::move(marker), /*force=*/true);
  }
  std::lock_guard<std::mutex> lock(events_mutex_);
  events_.push_back(std::move(e));
}

void FeedSession::on_feed_message(std::string& payload, bool binary) {
  // What arrives while the connection closes after --count is not read:
  // counting it as received would make the summary's numbers not add up.
  if (taken_all_.load(std::memory_order_relaxed)) return;
  ++received_;
  last_message_ms_.store(steady_ms(), std::memory_order_relaxed);
  if (!settings_.heartbeat_reply.empty() && matches_pattern(payload, settings_.heartbeat_reply)) {
    ++hb_replies_;
    return;
  }
  if (!settings_.ping_pattern.empty() && matches_pattern(payload, settings_.ping_pattern)) {
    feed_.send_text(settings_.ping_answer);
    ++pings_answered_;
    return;
  }
  if (awaiting_.load(std::memory_order_relaxed) && matches_pattern(payload, settings_.await_reply)) {
    awaiting_ = false;
    reply_seen_ = true;
  }
  IngestItem item;
  if (rules_.active()) {
    Extracted x = rules_.extract(payload);
    if (!x.keep) {
      ++filtered_;
      if (!settings_.show_filtered) return;
      item.filtered = true;
    }
    if (x.key_missing && x.keep) ++key_missing_;
    item.key = std::move(x.key);
    if (x.seq && x.keep) {
      uint64_t skipped = seq_.observe(*x.seq);
      if (skipped > 0 && ++gap_warnings_ <= 20) {
        log_.warning("sequence gap: " + std::to_string(skipped) + " number(s) missing before " +
                     std::to_string(*x.seq) + " (connection " + std::to_string(connection_.load()) + ")" +
                     (gap_warnings_ == 20 ? "; not reporting further gaps one by one" : ""));
      }
      seq_gaps_ = seq_.gaps();
      seq_skipped_ = seq_.skipped();
      seq_ooo_ = seq_.out_of_order();
      seq_across_ = seq_.skipped_across_reconnects();
    }
  }
  const bool item_filtered = item.filtered;
  item.payload = std::move(payload);
  item.binary = binary;
  item.received_ms = clock_.wall_ms();
  item.connection = connection_.load(std::memory_order_relaxed);
  if (first_of_connection_) item.downtime_ms = downtime_ms_;
  IngestBuffer::PushResult pushed = buffer_.push(std::move(item));
  // The downtime rides on the first record that made it into the buffer.
  if (pushed.accepted) first_of_connection_ = false;
  if (pushed.pause) feed_.pause_reading();
  if (!item_filtered) ++taken_;
  // A dry run's --count is about messages shown, filtered or not.
  const uint64_t counted = taken_ + (settings_.show_filtered ? filtered_.load() : 0);
  if (settings_.take > 0 && counted >= settings_.take) taken_all_ = true;
}

void FeedSession::on_feed_too_big() {
  ++received_;
  ++oversize_;
  if (++too_big_warnings_ <= 20) {
    log_.error(std::string("a message over --max-message-size was skipped (counted as dropped)") +
               (too_big_warnings_ == 20 ? "; not reporting further ones one by one" : ""));
  }
}

void FeedSession::on_feed_closed(FeedEnd end, FeedFailure cause, const std::string& why) {
  Event e;
  e.end = end;
  e.cause = cause;
  e.why = why;
  if (!lost_at_) lost_at_ = clock_.steady();  // downtime runs from the first loss
  if (end == FeedEnd::too_big) {
    ++received_;
    ++oversize_;
  }
  std::lock_guard<std::mutex> lock(events_mutex_);
  events_.push_back(std::move(e));
}

// --- the main loop ----------------------------------------------------------

void FeedSession::start() {
  if (state_ != State::idle) return;
  state_ = State::connecting;
  feed_.connect();
}

void FeedSession::close_because(const std::string& why) {
  close_reason_ = why;
  state_ = State::closing;
  feed_.close(why);
}

void FeedSession::handle(const Event& e, TimePoint now) {
  if (e.opened) {
    open_at_ = now;
    heartbeat_due_ = now + settings_.heartbeat_interval;
    confirmed_ = settings_.await_reply.empty();
    confirmed_at_ = now;
    healthy_ = false;
    close_reason_.clear();
    if (stopping_) {
      // stop() may have asked already, while the attempt was connecting.
      if (state_ != State::closing) close_because("kws is shutting down");
      return;
    }
    state_ = State::open;
    if (e.connection == 1) {
      log_.info("connected");
    } else {
      log_.note("reconnected (connection " + std::to_string(e.connection) + ", " +
                format_duration(milliseconds(e.downtime_ms)) + " after the connection was lost)");
    }
    for (const auto& m : settings_.open_messages) feed_.send_text(m);
    return;
  }
  // The feed ended an attempt or a connection.
  const bool was_open = state_ == State::open || (state_ == State::closing && open_at_ != TimePoint{});
  std::string why = close_reason_.empty() ? e.why : close_reason_;
  close_reason_.clear();
  open_at_ = TimePoint{};
  if (stopping_) {
    state_ = State::done;
    return;
  }
  if (e.end == FeedEnd::end_of_input) {
    ended_by_input_ = true;
    state_ = State::done;
    return;
  }
  if (e.end == FeedEnd::too_big) {
    log_.error("the feed sent a message over --max-message-size; it is lost (counted as dropped)");
  }
  if (e.end == FeedEnd::failed && is_permanent(e.cause) && !ever_healthy_ && !settings_.retry_permanent) {
    failure_ = "cannot connect: " + why +
               "; not retrying, since waiting will not fix that (--retry-permanent retries anyway)";
    state_ = State::done;
    return;
  }
  ++attempts_;
  if (settings_.max_retries >= 0 && attempts_ > static_cast<uint64_t>(settings_.max_retries)) {
    failure_ = "giving up after " + std::to_string(attempts_) + " failed attempt(s) in a row (--max-retries " +
               std::to_string(settings_.max_retries) + "); last error: " + why;
    state_ = State::done;
    return;
  }
  milliseconds delay = backoff_.next();
  next_attempt_ = now + delay;
  state_ = State::waiting;
  log_.warning(std::string(was_open ? "connection lost: " : "cannot connect: ") + why + "; retrying in " +
               format_duration(delay) + " (attempt " + std::to_string(attempts_ + 1) + ")");
}

void FeedSession::tick(bool reading_paused) {
  const TimePoint now = clock_.steady();
  std::vector<Event> events;
  {
    std::lock_guard<std::mutex> lock(events_mutex_);
    events.swap(events_);
  }
  for (const auto& e : events) handle(e, now);

  if (was_paused_ && !reading_paused) resumed_at_ = now;
  was_paused_ = reading_paused;

  switch (state_) {
    case State::waiting:
      // No point in connecting while the buffer cannot take what arrives.
      if (now >= next_attempt_ && !reading_paused) {
        state_ = State::connecting;
        feed_.connect();
      }
      break;
    case State::open: {
      if (!confirmed_) {
        if (reply_seen_) {
          confirmed_ = true;
          confirmed_at_ = now;
        } else if (now - open_at_ > settings_.await_timeout) {
          close_because("no reply containing '" + settings_.await_reply + "' within " +
                        format_duration(settings_.await_timeout) + " (--await-timeout)");
          break;
        }
      }
      if (confirmed_ && !healthy_ && now - confirmed_at_ >= settings_.healthy_after) {
        healthy_ = true;
        ever_healthy_ = true;
        attempts_ = 0;
        backoff_.reset();
      }
      if (settings_.stale_after.count() > 0 && !reading_paused) {
        TimePoint last = std::max(open_at_, resumed_at_);
        int64_t last_ms = last_message_ms_.load(std::memory_order_relaxed);
        if (last_ms >= 0) last = std::max(last, TimePoint(milliseconds(last_ms)));
        if (now - last > settings_.stale_after) {
          close_because("no message for " + format_duration(settings_.stale_after) + " (--stale-after)");
          break;
        }
      }
      if (!settings_.heartbeat.empty() && settings_.heartbeat_interval.count() > 0 && now >= heartbeat_due_) {
        feed_.send_text(settings_.heartbeat);
        ++heartbeats_sent_;
        heartbeat_due_ = now + settings_.heartbeat_interval;
      }
      break;
    }
    default: break;
  }
}

void FeedSession::stop() {
  if (stopping_) return;
  stopping_ = true;
  switch (state_) {
    case State::connecting:
    case State::open: close_because("kws is shutting down"); break;
    case State::closing: break;
    default: state_ = State::done; break;
  }
}

SessionStats FeedSession::stats() const {
  SessionStats s;
  s.connections = connection_;
  s.received = received_;
  s.taken = taken_;
  s.filtered_out = filtered_;
  s.key_missing = key_missing_;
  s.heartbeat_replies = hb_replies_;
  s.heartbeats_sent = heartbeats_sent_;
  s.pings_answered = pings_answered_;
  s.oversize = oversize_;
  s.seq_gaps = seq_gaps_;
  s.seq_skipped = seq_skipped_;
  s.seq_out_of_order = seq_ooo_;
  s.seq_skipped_across_reconnects = seq_across_;
  s.connected = state_ == State::open;
  int64_t last = last_message_ms_;
  if (last >= 0) s.last_message_age = milliseconds(steady_ms() - last);
  return s;
}

}  // namespace kws
