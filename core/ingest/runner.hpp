#pragma once
// The main loop of `kws ingest`: moves what the session buffered into a
// MessageSink (try_produce, so a slow Kafka holds the buffer instead of the
// socket thread), ticks the session's timers, and on a stop request, the end
// of input, --count or --duration stops reading and flushes everything that
// was read. Knows neither sockets nor librdkafka.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/ingest/buffer.hpp"
#include "core/ingest/session.hpp"
#include "core/message_io.hpp"

namespace kws {

// Header names on every ingested record (documented in kws-ingest(1)).
inline constexpr const char* kHeaderSource = "kws-source";
inline constexpr const char* kHeaderReceived = "kws-received-ms";
inline constexpr const char* kHeaderConnection = "kws-connection";
inline constexpr const char* kHeaderDowntime = "kws-downtime-ms";
inline constexpr const char* kHeaderFrame = "kws-frame";
inline constexpr const char* kHeaderMarker = "kws-marker";

struct RecordSettings {
  std::string topic;
  std::optional<int32_t> partition;
  std::optional<std::string> key;     // -k: every record's key
  std::vector<Header> extra_headers;  // -H
  std::string source;                 // the kws-source header's value
  bool ingest_headers = true;         // kws-source, kws-received-ms, kws-connection
};

struct RunLimits {
  std::chrono::milliseconds duration{0};  // 0: no limit
  // Once stopping, how long to wait for the feed to close before going on.
  std::chrono::milliseconds close_wait{3000};
};

struct RunHooks {
  StopCheck stop;                                            // a stop signal
  std::function<std::optional<std::string>()> kafka_lost;    // Producer::connection_lost
  std::function<void(const IngestItem&)> tee;                // echo (main thread)
  std::function<void()> tick;                                // called about every 100 ms (status, metrics)
};

// Feed messages and marker records apart, so that every feed message the
// session took is exactly one of delivered, failed, undelivered (or echoed in
// a dry run) and markers never inflate those numbers.
struct RunCounters {
  std::atomic<uint64_t> queued{0};       // feed messages handed to the sink
  std::atomic<uint64_t> delivered{0};    // feed messages Kafka confirmed
  std::atomic<uint64_t> failed{0};       // feed messages whose delivery failed, or refused outright
  std::atomic<uint64_t> undelivered{0};  // feed messages still pending when kws had to give up
  std::atomic<uint64_t> echoed{0};       // dry run: feed messages shown, not produced
  std::atomic<uint64_t> markers_delivered{0};
  std::atomic<uint64_t> markers_failed{0};  // refused, failed or still pending at the end
  std::atomic<bool> kafka_down{false};
};

// Why a run ended; cmd/ words it (the dry run's default --count is not the
// user's).
enum class RunEnd { interrupted, count_reached, duration_reached, gave_up, end_of_input };

class IngestRunner {
 public:
  // `sink` null: dry run, nothing is produced (records go to hooks.tee only).
  IngestRunner(FeedSession& session, IngestBuffer& buffer, FeedConnection& feed, MessageSink* sink,
               RecordSettings records, LogSink& log);
  // Detaches from the sink's delivery reports, which may outlive the runner.
  ~IngestRunner();
  IngestRunner(const IngestRunner&) = delete;
  IngestRunner& operator=(const IngestRunner&) = delete;

  // Runs until the session is finished and everything read is flushed (or
  // can no longer be). Returns why it stopped.
  RunEnd run(const RunLimits& limits, const RunHooks& hooks);
  const RunCounters& counters() const { return counters_; }

 private:
  bool produce(IngestItem& item);  // false: the sink's queue is full, try again later

  FeedSession& session_;
  IngestBuffer& buffer_;
  FeedConnection& feed_;
  MessageSink* sink_;
  RecordSettings records_;
  LogSink& log_;
  RunCounters counters_;
  std::atomic<uint64_t> in_flight_data_{0}, in_flight_markers_{0};
  std::vector<Header> headers_;
  uint64_t failures_logged_ = 0;
};

}  // namespace kws
