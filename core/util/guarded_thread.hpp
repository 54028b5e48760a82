#pragma once
// Threads that end in an orderly way when they fail: each catches at its
// top and records what failed for the thread that owns it, which shuts
// down with that message; an exception escaping a std::thread would call
// std::terminate instead, with no graceful shutdown and no word said.
#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace kws {

// The first failure among a group of threads, for their owner to act on.
class ThreadFailure {
 public:
  void record(const std::string& thread, const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_) return;
    message_ = thread + ": " + what;
    failed_ = true;
  }
  bool failed() const { return failed_; }
  std::string message() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return message_;
  }

 private:
  mutable std::mutex mutex_;
  std::string message_;
  std::atomic<bool> failed_{false};
};

template <typename Body>
std::thread guarded_thread(ThreadFailure& failure, const char* name, Body body) {
  return std::thread([&failure, name, body] {
    try {
      body();
    } catch (const std::exception& e) {
      failure.record(name, e.what());
    } catch (...) {
      failure.record(name, "unknown failure");
    }
  });
}

}  // namespace kws
