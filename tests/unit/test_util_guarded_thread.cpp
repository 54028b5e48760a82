#include <catch2/catch.hpp>

#include <stdexcept>

#include "core/util/guarded_thread.hpp"

using namespace kws;

TEST_CASE("guarded thread: a failure is recorded with the thread's name, never std::terminate") {
  ThreadFailure failure;
  std::thread fine = guarded_thread(failure, "the quiet one", [] {});
  fine.join();
  CHECK_FALSE(failure.failed());

  std::thread broken = guarded_thread(failure, "the shared Kafka reader", [] { throw std::runtime_error("disk full"); });
  broken.join();
  CHECK(failure.failed());
  CHECK(failure.message() == "the shared Kafka reader: disk full");

  // The first failure is the one told: later ones are its consequences.
  std::thread later = guarded_thread(failure, "the I/O thread", [] { throw 42; });
  later.join();
  CHECK(failure.message() == "the shared Kafka reader: disk full");

  ThreadFailure other;
  std::thread odd = guarded_thread(other, "the I/O thread", [] { throw 42; });
  odd.join();
  CHECK(other.message() == "the I/O thread: unknown failure");
}
