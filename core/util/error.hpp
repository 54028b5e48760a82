#pragma once
// The one error model of kws: code below main throws kws::Error, main
// catches it once, prints "kws: error: ..." and exits with its code.
#include <stdexcept>
#include <string>

namespace kws {

// Exit codes documented in every man page.
enum ExitCode : int {
  exit_ok = 0,
  exit_failure = 1,     // runtime failure: a message not delivered, broker unreachable
  exit_usage = 2,       // bad flags, bad -o, bad -X, bad config
  exit_interrupted = 130,  // SIGINT; SIGTERM gives 143 (stop_exit_status in signals.hpp)
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int exit_code = exit_failure)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

inline Error usage_error(const std::string& message) { return Error(message, exit_usage); }

}  // namespace kws
