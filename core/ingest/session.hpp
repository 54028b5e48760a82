#pragma once
// One feed, kept alive: connects, sends the open messages after every
// (re)connect, waits for a confirmation when asked, sends application
// heartbeats, reconnects with backoff when the connection fails, goes silent
// or sends a message that is too big, and gives up loudly after
// --max-retries. Messages go into the IngestBuffer tagged with their
// connection; the first record of a reconnected connection carries the
// downtime (and, with markers=record, a marker record precedes it).
//
// Two threads use it: the feed's thread calls the FeedListener methods, the
// main loop calls start/tick/stop and the getters.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/feed_io.hpp"
#include "core/ingest/backoff.hpp"
#include "core/ingest/buffer.hpp"
#include "core/ingest/fields.hpp"
#include "core/util/log.hpp"

namespace kws {

enum class MarkerMode { headers, record };

struct SessionSettings {
  std::vector<std::string> open_messages;  // sent in order after every open
  std::string await_reply;                 // "": the connection is confirmed at once
  std::chrono::milliseconds await_timeout{10000};
  std::chrono::milliseconds stale_after{0};  // 0: never
  std::string heartbeat;                     // "": none
  std::chrono::milliseconds heartbeat_interval{0};
  std::string heartbeat_reply;  // messages containing it are liveness, not data
  // Feeds that ping in their own protocol: a message containing `ping_pattern`
  // is answered with `ping_answer` and not produced.
  std::string ping_pattern;
  std::string ping_answer;
  BackoffSettings backoff;
  int64_t max_retries = -1;  // consecutive failed attempts allowed; -1: forever
  // Retry failures that retrying cannot fix (FeedFailure other than
  // transient) even before the feed's first healthy connection; otherwise
  // such a failure ends the run at once, saying why.
  bool retry_permanent = false;
  // A confirmed connection that stays up this long resets backoff and retries.
  std::chrono::milliseconds healthy_after{5000};
  MarkerMode markers = MarkerMode::headers;
  uint64_t take = 0;  // stop taking messages after this many (--count); 0: no limit
  // --dry-run: messages --filter leaves out go on to be shown (marked
  // `filtered`), and count toward `take` like the others.
  bool show_filtered = false;
};

struct SessionClock {
  std::function<std::chrono::steady_clock::time_point()> steady = [] { return std::chrono::steady_clock::now(); };
  std::function<int64_t()> wall_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
};

struct SessionStats {
  uint64_t connections = 0;      // opened so far
  // Messages read from the feed until --count was reached; each one is
  // exactly one of taken, filtered_out, heartbeat_replies, pings_answered
  // and oversize.
  uint64_t received = 0;
  uint64_t taken = 0;            // passed the filter and offered to the buffer
  uint64_t filtered_out = 0;
  uint64_t key_missing = 0;      // of taken: --key-field set, message lacks it: null key
  uint64_t heartbeat_replies = 0;
  uint64_t heartbeats_sent = 0;
  uint64_t pings_answered = 0;
  uint64_t oversize = 0;         // messages lost to --max-message-size
  uint64_t seq_gaps = 0, seq_skipped = 0, seq_out_of_order = 0, seq_skipped_across_reconnects = 0;
  bool connected = false;
  std::optional<std::chrono::milliseconds> last_message_age;
};

class FeedSession : public FeedListener {
 public:
  FeedSession(FeedConnection& feed, IngestBuffer& buffer, SessionSettings settings, FieldRules rules, LogSink& log,
              SessionClock clock = {}, uint64_t seed = std::random_device{}());

  // FeedListener (the feed's thread).
  void on_feed_open() override;
  void on_feed_message(std::string& payload, bool binary) override;
  void on_feed_too_big() override;
  void on_feed_closed(FeedEnd end, FeedFailure cause, const std::string& why) override;
  using FeedListener::on_feed_closed;

  // Main loop.
  void start();
  // Handles what the feed reported and what is due. `reading_paused`: the
  // buffer holds reading back (no staleness, no new connection meanwhile).
  void tick(bool reading_paused);
  // No more reconnects; closes the connection. finished() turns true once
  // the feed reported the close.
  void stop();
  bool finished() const { return state_ == State::done; }
  bool taken_all() const { return taken_all_.load(); }
  // Why the session gave up (exhausted retries); nothing otherwise.
  const std::optional<std::string>& failure() const { return failure_; }
  bool ended_by_input() const { return ended_by_input_; }
  SessionStats stats() const;

 private:
  enum class State { idle, connecting, open, closing, waiting, done };
  struct Event {
    bool opened = false;
    FeedEnd end = FeedEnd::lost;
    FeedFailure cause = FeedFailure::transient;
    std::string why;
    uint64_t connection = 0;
    int64_t downtime_ms = -1;
  };
  using TimePoint = std::chrono::steady_clock::time_point;
  int64_t steady_ms() const;
  void handle(const Event& e, TimePoint now);
  void close_because(const std::string& why);

  FeedConnection& feed_;
  IngestBuffer& buffer_;
  SessionSettings settings_;
  FieldRules rules_;
  LogSink& log_;
  SessionClock clock_;
  Backoff backoff_;

  // Feed thread only.
  SeqTracker seq_;
  bool first_of_connection_ = false;
  int64_t downtime_ms_ = -1;
  std::optional<TimePoint> lost_at_;
  uint64_t gap_warnings_ = 0;
  uint64_t too_big_warnings_ = 0;

  // Shared.
  mutable std::mutex events_mutex_;
  std::vector<Event> events_;
  std::atomic<uint64_t> connection_{0};
  std::atomic<int64_t> last_message_ms_{-1};  // steady ms
  std::atomic<bool> awaiting_{false};
  std::atomic<bool> reply_seen_{false};
  std::atomic<bool> taken_all_{false};
  std::atomic<uint64_t> received_{0}, taken_{0}, filtered_{0}, key_missing_{0}, hb_replies_{0}, pings_answered_{0}, oversize_{0};
  std::atomic<uint64_t> seq_gaps_{0}, seq_skipped_{0}, seq_ooo_{0}, seq_across_{0};

  // Main loop only.
  State state_ = State::idle;
  bool stopping_ = false;
  bool ended_by_input_ = false;
  bool confirmed_ = false;
  bool healthy_ = false;
  bool ever_healthy_ = false;  // some connection of this run was healthy
  bool was_paused_ = false;
  uint64_t attempts_ = 0;  // consecutive failed attempts since the last healthy connection
  uint64_t heartbeats_sent_ = 0;
  TimePoint open_at_{}, confirmed_at_{}, next_attempt_{}, heartbeat_due_{}, resumed_at_{};
  std::string close_reason_;
  std::optional<std::string> failure_;
};

}  // namespace kws
