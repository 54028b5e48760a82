#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <string>

#include "core/util/log.hpp"

using namespace kws;

namespace {
std::string drain(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}
}  // namespace

TEST_CASE("log: JSON lines are one valid object per event, below-threshold events dropped") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  {
    JsonLinesLog log(LogLevel::info, fds[1]);
    log.debug("not shown");
    log.warning("broker \"a\"\tdown");
    log.error(std::string("bad \xff byte"));
  }
  close(fds[1]);
  std::string text = drain(fds[0]);
  close(fds[0]);
  auto first_end = text.find('\n');
  REQUIRE(first_end != std::string::npos);
  auto second_end = text.find('\n', first_end + 1);
  REQUIRE(second_end == text.size() - 1);
  auto a = nlohmann::json::parse(text.substr(0, first_end));
  auto b = nlohmann::json::parse(text.substr(first_end + 1, second_end - first_end - 1));
  CHECK(a["level"] == "warning");
  CHECK(a["message"] == "broker \"a\"\tdown");
  CHECK(a["time"].get<std::string>().back() == 'Z');
  CHECK(b["level"] == "error");
  CHECK(b["message"] == "bad ? byte");
}

TEST_CASE("log: level names") {
  CHECK(log_level_name(LogLevel::warning) == "warning");
  CHECK(log_level_name(LogLevel::debug) == "debug");
}
