#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/auth/principal.hpp"

using namespace kws;
using json = nlohmann::json;

TEST_CASE("auth name_matches: '*' is any run of characters, the rest literal", "[auth]") {
  CHECK(name_matches("*", "anything"));
  CHECK(name_matches("*", ""));
  CHECK(name_matches("**", "x"));
  CHECK(name_matches("orders", "orders"));
  CHECK_FALSE(name_matches("orders", "orders2"));
  CHECK_FALSE(name_matches("orders", "order"));
  CHECK(name_matches("prices.*", "prices."));
  CHECK(name_matches("prices.*", "prices.eur.usd"));
  CHECK_FALSE(name_matches("prices.*", "prices"));
  CHECK_FALSE(name_matches("prices.*", "pricesXeur"));
  CHECK(name_matches("*.eur", "prices.eur"));
  CHECK_FALSE(name_matches("*.eur", "prices.eur.usd"));
  CHECK(name_matches("a*b*c", "abc"));
  CHECK(name_matches("a*b*c", "aXbYc"));
  CHECK(name_matches("a*b*c", "abbbcbc"));
  CHECK(name_matches("a*b*c", "acbc"));
  CHECK_FALSE(name_matches("a*b*c", "acb"));
  CHECK_FALSE(name_matches("a*b*c", "ab"));
  CHECK_FALSE(name_matches("a*b*c", "xabc"));
  // Only '*' is special: no '?', no classes, no escapes.
  CHECK_FALSE(name_matches("a?c", "abc"));
  CHECK(name_matches("a?c", "a?c"));
  CHECK(name_matches("[ab]", "[ab]"));
  // The empty pattern matches only the empty name.
  CHECK(name_matches("", ""));
  CHECK_FALSE(name_matches("", "a"));
  CHECK_FALSE(name_matches("a", ""));
}

TEST_CASE("auth name_matches: many stars against a long name stays quick", "[auth]") {
  const std::string name(5000, 'a');
  CHECK_FALSE(name_matches("*a*a*a*a*a*a*a*a*a*a*b", name));
  CHECK(name_matches("*a*a*a*a*a*a*a*a*a*a*", name));
}

TEST_CASE("auth grants: read, write and groups are separate lists", "[auth]") {
  Grants g;
  REQUIRE_FALSE(parse_grants(
      json::parse(R"({"read":["orders","prices.*"],"write":["clicks"],"groups":["dash-*"]})"), g));
  CHECK(g.allows("orders", TopicAction::read));
  CHECK(g.allows("prices.eur", TopicAction::read));
  CHECK_FALSE(g.allows("orders", TopicAction::write));
  CHECK(g.allows("clicks", TopicAction::write));
  CHECK_FALSE(g.allows("clicks", TopicAction::read));
  CHECK(g.allows_group("dash-1"));
  CHECK_FALSE(g.allows_group("other"));
}

TEST_CASE("auth grants: every key is optional; an empty claim grants nothing", "[auth]") {
  Grants g;
  g.read = {"left over"};
  REQUIRE_FALSE(parse_grants(json::object(), g));
  CHECK(g.read.empty());
  CHECK_FALSE(g.allows("orders", TopicAction::read));
  CHECK_FALSE(g.allows_group("g"));
  REQUIRE_FALSE(parse_grants(json::parse(R"({"write":["*"]})"), g));
  CHECK(g.allows("anything", TopicAction::write));
  CHECK_FALSE(g.allows("anything", TopicAction::read));
}

TEST_CASE("auth grants: a claim of the wrong shape is refused in words, and leaves out alone", "[auth]") {
  struct Case {
    const char* claim;
    const char* problem;
  };
  const Case cases[] = {
      {R"(["orders"])", "not an object"},
      {R"("orders")", "not an object"},
      {R"(null)", "not an object"},
      {R"({"read":"orders"})", "\"read\" is not a list"},
      {R"({"write":{"a":1}})", "\"write\" is not a list"},
      {R"({"groups":[1]})", "\"groups\" holds something other than a string"},
      {R"({"read":["ok",null]})", "\"read\" holds something other than a string"},
      {R"({"read":[""]})", "\"read\" holds an empty name"},
      {R"({"raed":["orders"]})", "unknown key \"raed\" (expected read, write or groups)"},
  };
  for (const auto& c : cases) {
    INFO(c.claim);
    Grants g;
    g.read = {"kept"};
    auto problem = parse_grants(json::parse(c.claim), g);
    REQUIRE(problem);
    CHECK(*problem == c.problem);
    CHECK(g.read == std::vector<std::string>{"kept"});
  }
}

TEST_CASE("auth grants: an unknown key is named printably and briefly", "[auth]") {
  Grants g;
  auto problem = parse_grants(json{{std::string("bad\nkey\"") + std::string(100, 'x'), json::array()}}, g);
  REQUIRE(problem);
  CHECK(problem->find('\n') == std::string::npos);
  CHECK(problem->size() < 100);
  CHECK(problem->rfind("unknown key \"bad?key?xxx", 0) == 0);
}

TEST_CASE("auth principal: no grants means unrestricted, empty grants mean nothing", "[auth]") {
  Principal open;
  CHECK(open.allows("anything", TopicAction::write));
  Principal none;
  none.grants.emplace();
  CHECK_FALSE(none.allows("anything", TopicAction::read));
}
