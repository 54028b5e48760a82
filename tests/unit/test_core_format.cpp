#include <catch2/catch.hpp>

#include "core/util/error.hpp"
#include "core/format.hpp"

using namespace kws;

namespace {
std::string render(const std::string& spec, const MessageView& m) {
  std::string out;
  MessageFormat::parse(spec).append(out, m);
  return out;
}

MessageView sample() {
  MessageView m;
  m.topic = "orders";
  m.partition = 2;
  m.offset = 17;
  m.timestamp_ms = 1714564800123;
  m.timestamp_type = TimestampType::create_time;
  m.key = std::string_view("k1");
  m.value = std::string_view("hello");
  m.headers = {{"a", std::string_view("1")}, {"b", std::nullopt}};
  return m;
}
}  // namespace

TEST_CASE("format: kcat tokens") {
  auto m = sample();
  CHECK(render("%t|%p|%o|%k|%s|%S|%K|%T", m) == "orders|2|17|k1|hello|5|2|1714564800123");
  CHECK(render("%h", m) == "a=1,b=");
  CHECK(render("%I", m) == "2024-05-01T12:00:00.123Z");
  CHECK(render("100%%", m) == "100%");
  CHECK(render("no tokens", m) == "no tokens");
}

TEST_CASE("format: escapes in literals") {
  auto m = sample();
  CHECK(render("%s\\n", m) == "hello\n");
  CHECK(render("%k\\t%s\\x21", m) == "k1\thello!");
}

TEST_CASE("format: null key and value") {
  MessageView m;
  m.topic = "t";
  CHECK(render("[%k][%s]%K %S %T", m) == "[][]-1 -1 -1");
  CHECK(render("%I", m).empty());
}

TEST_CASE("format: reports which headers it needs") {
  CHECK(MessageFormat::parse("%s %h").uses_headers());
  CHECK_FALSE(MessageFormat::parse("%s %k").uses_headers());
}

TEST_CASE("format: unknown tokens are usage errors") {
  try {
    MessageFormat::parse("%s %Q");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.exit_code() == exit_usage);
    CHECK(std::string(e.what()).find("%Q") != std::string::npos);
  }
  CHECK_THROWS_AS(MessageFormat::parse("50%"), Error);
  CHECK_THROWS_AS(MessageFormat::parse("\\xZ1"), Error);
}

TEST_CASE("format: ISO-8601 rendering handles epoch and pre-epoch times") {
  CHECK(format_iso8601_utc(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_iso8601_utc(-1) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("format: colour wraps metadata tokens but never the value") {
  std::string out;
  MessageFormat::parse("%k=%s", true).append(out, sample());
  CHECK(out == "\033[33mk1\033[0m=hello");
  out.clear();
  MessageFormat::parse("%k=%s", false).append(out, sample());
  CHECK(out == "k1=hello");
}
