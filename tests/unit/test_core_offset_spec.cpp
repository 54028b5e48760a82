#include <catch2/catch.hpp>

#include "core/util/error.hpp"
#include "core/offset_spec.hpp"

using namespace kws;
using Kind = OffsetSpec::Kind;

TEST_CASE("offset_spec: named positions") {
  CHECK(parse_offset_spec("beginning") == OffsetSpec{Kind::beginning, 0});
  CHECK(parse_offset_spec("end") == OffsetSpec{Kind::end, 0});
  CHECK(parse_offset_spec("stored") == OffsetSpec{Kind::stored, 0});
}

TEST_CASE("offset_spec: absolute and relative offsets") {
  CHECK(parse_offset_spec("0") == OffsetSpec{Kind::absolute, 0});
  CHECK(parse_offset_spec("12345") == OffsetSpec{Kind::absolute, 12345});
  CHECK(parse_offset_spec("-10") == OffsetSpec{Kind::from_end, 10});
}

TEST_CASE("offset_spec: timestamps in ms") {
  CHECK(parse_offset_spec("@1714564800000") == OffsetSpec{Kind::timestamp, 1714564800000});
  CHECK(parse_offset_spec("s@1714564800000") == OffsetSpec{Kind::timestamp, 1714564800000});
}

TEST_CASE("offset_spec: ISO-8601 times") {
  CHECK(parse_offset_spec("2024-05-01T12:00:00Z") == OffsetSpec{Kind::timestamp, 1714564800000});
  CHECK(parse_offset_spec("2024-05-01T12:00:00.250Z") == OffsetSpec{Kind::timestamp, 1714564800250});
  CHECK(parse_offset_spec("2024-05-01T14:00:00+02:00") == OffsetSpec{Kind::timestamp, 1714564800000});
  CHECK(parse_offset_spec("2024-05-01T07:00:00-0500") == OffsetSpec{Kind::timestamp, 1714564800000});
  CHECK(parse_offset_spec("2024-05-01T12:00Z") == OffsetSpec{Kind::timestamp, 1714564800000});
  CHECK(parse_offset_spec("2024-05-01 12:00:00") == OffsetSpec{Kind::timestamp, 1714564800000});
  CHECK(parse_offset_spec("2024-05-01") == OffsetSpec{Kind::timestamp, 1714521600000});
  CHECK(parse_offset_spec("@2024-05-01T12:00:00Z") == OffsetSpec{Kind::timestamp, 1714564800000});
}

TEST_CASE("offset_spec: bad input is a usage error that lists the accepted forms") {
  for (const char* bad : {"", "begin", "12abc", "@", "@-5", "2024-13-01", "2024-02-30", "2024-05-01T25:00",
                          "2024-05-01T12:00:00Zjunk", "--5", "s@abc", "-9223372036854775808",
                          "-9223372036854775807", "1960-01-01", "99999999999999999999"}) {
    INFO(bad);
    try {
      parse_offset_spec(bad);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.exit_code() == exit_usage);
      CHECK(std::string(e.what()).find("beginning") != std::string::npos);
    }
  }
}
