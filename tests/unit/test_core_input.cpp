#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>
#include <pthread.h>
#include <unistd.h>
#include <vector>

#include "core/util/input.hpp"

using namespace kws;

namespace {
// Feeds `data` through a pipe in chunks of `chunk` bytes, so records and
// delimiters straddle read boundaries. The writer thread only records what
// went wrong: a Catch2 v2 assertion off the main thread terminates the run
// instead of reporting, so every check happens here, after the join.
std::vector<std::string> split(const std::string& data, const std::string& delimiter, size_t chunk = 3) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  std::string write_error;
  std::thread writer([&] {
    // If the reader gives up early, write() fails with EPIPE here instead of
    // SIGPIPE killing the test binary.
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
    for (size_t i = 0; i < data.size(); i += chunk) {
      size_t n = std::min(chunk, data.size() - i);
      ssize_t written = write(fds[1], data.data() + i, n);
      if (written != static_cast<ssize_t>(n)) {
        write_error = "write at byte " + std::to_string(i) + " returned " + std::to_string(written) +
                      (written < 0 ? std::string(": ") + std::strerror(errno) : std::string());
        break;
      }
    }
    close(fds[1]);
  });
  std::vector<std::string> records;
  std::string read_error;
  try {
    read_delimited(fds[0], delimiter, [&](std::string_view r) {
      records.emplace_back(r);
      return true;
    }, {});
  } catch (const std::exception& e) {
    read_error = e.what();
  }
  close(fds[0]);  // unblocks the writer if the reader stopped early
  writer.join();
  CHECK(read_error == "");
  CHECK(write_error == "");
  return records;
}
}  // namespace

TEST_CASE("input: newline-delimited records") {
  CHECK(split("a\nbb\nccc\n", "\n") == std::vector<std::string>{"a", "bb", "ccc"});
  CHECK(split("a\nbb\nccc", "\n") == std::vector<std::string>{"a", "bb", "ccc"});  // no final newline
  CHECK(split("a\n\nb\n", "\n") == std::vector<std::string>{"a", "", "b"});          // blank line kept
  CHECK(split("", "\n").empty());
}

TEST_CASE("input: multi-byte and NUL delimiters across read boundaries") {
  CHECK(split("one||two||three", "||", 1) == std::vector<std::string>{"one", "two", "three"});
  CHECK(split("one||two||", "||", 2) == std::vector<std::string>{"one", "two"});
  CHECK(split(std::string("x\0y\0", 4), std::string("\0", 1)) == std::vector<std::string>{"x", "y"});
}

TEST_CASE("input: large input in one record") {
  std::string big(3 * 1024 * 1024, 'z');
  auto records = split(big + "\nend\n", "\n", 1 << 16);
  REQUIRE(records.size() == 2);
  CHECK(records[0] == big);
  CHECK(records[1] == "end");
}

TEST_CASE("input: the callback can stop reading") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  REQUIRE(write(fds[1], "a\nb\nc\n", 6) == 6);
  close(fds[1]);
  size_t seen = 0;
  size_t delivered = read_delimited(fds[0], "\n", [&](std::string_view) { return ++seen < 2; }, {});
  close(fds[0]);
  CHECK(seen == 2);
  CHECK(delivered == 2);
}

TEST_CASE("input: the idle call runs while no input arrives, and can stop reading") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  REQUIRE(write(fds[1], "a\nb", 3) == 3);  // the writer stays open: read() alone would block forever
  std::vector<std::string> records;
  int idle_calls = 0;
  auto start = std::chrono::steady_clock::now();
  size_t delivered = read_delimited(
      fds[0], "\n",
      [&](std::string_view r) {
        records.emplace_back(r);
        return true;
      },
      {}, IdleCall{[&] { return ++idle_calls < 3; }, std::chrono::milliseconds(20)});
  auto took = std::chrono::steady_clock::now() - start;
  close(fds[0]);
  close(fds[1]);
  CHECK(records == std::vector<std::string>{"a"});  // "b" is not a record until its delimiter or the end
  CHECK(delivered == 1);
  CHECK(idle_calls == 3);
  CHECK(took >= std::chrono::milliseconds(60));
  CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("input: the idle call runs on time also when input keeps trickling in") {
  // Input that arrives faster than the idle interval must not starve it: a
  // slow stream is exactly where a dead broker went unnoticed.
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  std::atomic<bool> stop{false};
  std::atomic<bool> write_failed{false};
  std::thread writer([&] {
    while (!stop) {
      if (write(fds[1], "x\n", 2) != 2) write_failed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    close(fds[1]);
  });
  int idle_calls = 0;
  size_t records = 0;
  auto start = std::chrono::steady_clock::now();
  read_delimited(
      fds[0], "\n",
      [&](std::string_view) {
        ++records;
        return true;
      },
      {}, IdleCall{[&] { return ++idle_calls < 5; }, std::chrono::milliseconds(40)});
  auto took = std::chrono::steady_clock::now() - start;
  stop = true;
  writer.join();
  close(fds[0]);
  CHECK_FALSE(write_failed);
  CHECK(idle_calls == 5);
  CHECK(records > 10);
  CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("input: an idle call that throws ends the read with its error") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  CHECK_THROWS_WITH(read_delimited(
                        fds[0], "\n", [](std::string_view) { return true; }, {},
                        IdleCall{[]() -> bool { throw std::runtime_error("cluster lost"); },
                                 std::chrono::milliseconds(10)}),
                    "cluster lost");
  close(fds[0]);
  close(fds[1]);
}
