#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/transform/fields.hpp"

using namespace kws;

namespace {
std::vector<AddedField> fields(std::initializer_list<const char*> items) {
  std::vector<AddedField> out;
  for (const char* i : items) {
    std::string problem;
    auto f = parse_added_field(i, problem);
    REQUIRE(f);
    out.push_back(*f);
  }
  return out;
}
}  // namespace

TEST_CASE("transform fields: NAME=bridge_time and NAME=JSON are read, anything else is refused with why") {
  std::string problem;
  auto t = parse_added_field("at=bridge_time", problem);
  REQUIRE(t);
  CHECK(t->name == "at");
  CHECK(t->bridge_time);
  auto j = parse_added_field("region=\"eu\"", problem);
  REQUIRE(j);
  CHECK_FALSE(j->bridge_time);
  CHECK(j->json == "\"eu\"");
  CHECK(parse_added_field("n={\"a\": 1}", problem)->json == "{\"a\":1}");
  CHECK_FALSE(parse_added_field("no-equals", problem));
  CHECK_THAT(problem, Catch::Contains("NAME=bridge_time"));
  CHECK_FALSE(parse_added_field("=1", problem));
  CHECK_THAT(problem, Catch::Contains("empty field name"));
  CHECK_FALSE(parse_added_field("region=eu", problem));
  CHECK_THAT(problem, Catch::Contains("neither bridge_time nor JSON"));
  CHECK_FALSE(parse_added_field("x=", problem));
  CHECK_FALSE(parse_added_field("\xff=1", problem));
  CHECK_THAT(problem, Catch::Contains("UTF-8"));
}

TEST_CASE("transform fields: fields go at the end of a JSON object, its own bytes untouched") {
  auto f = fields({"at=bridge_time", "region=\"eu\""});
  CHECK(add_fields(R"({"price": 1.50,  "n":1})", f, 1700000000123) ==
        std::string(R"({"price": 1.50,  "n":1,"at":1700000000123,"region":"eu"})"));
  CHECK(add_fields("  {}\n", f, 5) == std::string("  {\"at\":5,\"region\":\"eu\"}\n"));
  auto parsed = nlohmann::json::parse(*add_fields(R"({"a":{"b":[1,2]}})", f, 7));
  CHECK(parsed["at"] == 7);
  CHECK(parsed["a"]["b"].size() == 2);
}

TEST_CASE("transform fields: a field the object has keeps its value; other values pass untouched") {
  auto f = fields({"at=bridge_time"});
  CHECK_FALSE(add_fields(R"({"at":"client's"})", f, 5));
  CHECK(add_fields(R"({"at":1,"x":2})", fields({"at=bridge_time", "y=true"}), 5) == std::string(R"({"at":1,"x":2,"y":true})"));
  CHECK_FALSE(add_fields("plain text", f, 5));
  CHECK_FALSE(add_fields("[1,2]", f, 5));
  CHECK_FALSE(add_fields("{not json", f, 5));
  CHECK_FALSE(add_fields("{} trailing", f, 5));
  CHECK_FALSE(add_fields("", f, 5));
}
