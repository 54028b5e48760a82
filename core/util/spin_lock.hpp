#pragma once
// A lock in one byte, for state two threads touch for a few instructions at
// a time (a connection's outbox: the hub thread offers, the I/O thread
// takes). std::mutex takes 40 bytes, and a bridge keeps one such lock per
// idle connection (docs/BENCHMARKS.md, memory per connection). Works with
// std::lock_guard.
#include <atomic>
#include <thread>

namespace kws {

class SpinLock {
 public:
  void lock() noexcept {
    while (held_.exchange(true, std::memory_order_acquire)) {
      // Wait without writing, and give the core away: on two cores the
      // holder may be the thread this one is keeping off the CPU.
      while (held_.load(std::memory_order_relaxed)) std::this_thread::yield();
    }
  }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

}  // namespace kws
