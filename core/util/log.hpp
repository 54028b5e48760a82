#pragma once
// Core reports, it never prints: everything below cmd/ that has something to
// say hands it to a LogSink that the command chose (stderr lines for the
// terminal commands; stderr or JSON lines for `kws serve`). One call is one
// event and becomes one line. Callers never pass tokens, passwords or
// message payloads.
#include <functional>
#include <mutex>
#include <string_view>

namespace kws {

enum class LogLevel { debug, info, note, warning, error };
std::string_view log_level_name(LogLevel level);

class LogSink {
 public:
  virtual ~LogSink() = default;
  // Records one event. Thread-safe; `message` holds no newline.
  virtual void write(LogLevel level, std::string_view message) = 0;

  void debug(std::string_view m) { write(LogLevel::debug, m); }
  void info(std::string_view m) { write(LogLevel::info, m); }
  void note(std::string_view m) { write(LogLevel::note, m); }
  void warning(std::string_view m) { write(LogLevel::warning, m); }
  void error(std::string_view m) { write(LogLevel::error, m); }
};

// "kws: warning: ..." on stderr, coloured on a terminal; drops events below
// `threshold`.
class StderrLog : public LogSink {
 public:
  explicit StderrLog(LogLevel threshold = LogLevel::note) : threshold_(threshold) {}
  void write(LogLevel level, std::string_view message) override;

 private:
  LogLevel threshold_;
  std::mutex mutex_;
};

// One JSON object per line on stderr: {"time":"...Z","level":"warning","message":"..."}.
class JsonLinesLog : public LogSink {
 public:
  explicit JsonLinesLog(LogLevel threshold = LogLevel::info, int fd = 2) : threshold_(threshold), fd_(fd) {}
  void write(LogLevel level, std::string_view message) override;

 private:
  LogLevel threshold_;
  int fd_;
  std::mutex mutex_;
};

// Keeps nothing; for tests and for callers that want silence.
class NullLog : public LogSink {
 public:
  void write(LogLevel, std::string_view) override {}
};

// Whether a long operation should give up now (a stop signal, a closing
// server). Core takes one of these instead of reading global state.
using StopCheck = std::function<bool()>;

}  // namespace kws
