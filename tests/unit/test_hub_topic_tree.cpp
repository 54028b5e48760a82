#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/hub/topic_tree.hpp"

using namespace kws;

namespace {

std::vector<int> found(const TopicTree<int>& tree, std::string_view name) {
  std::vector<int> out;
  tree.match(name, [&out](int v) { out.push_back(v); });
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("topic tree: topic_matches follows the examples of MQTT section 4.7") {
  // 4.7.1.2: the multi-level wildcard.
  CHECK(topic_matches("sport/tennis/player1/#", "sport/tennis/player1"));
  CHECK(topic_matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  CHECK(topic_matches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  CHECK_FALSE(topic_matches("sport/tennis/player1/#", "sport/tennis/player2"));
  CHECK(topic_matches("sport/#", "sport"));
  CHECK(topic_matches("#", "sport/tennis"));
  CHECK(topic_matches("#", "/"));
  // 4.7.1.3: the single-level wildcard.
  CHECK(topic_matches("sport/tennis/+", "sport/tennis/player1"));
  CHECK(topic_matches("sport/tennis/+", "sport/tennis/player2"));
  CHECK_FALSE(topic_matches("sport/tennis/+", "sport/tennis/player1/ranking"));
  CHECK_FALSE(topic_matches("sport/+", "sport"));
  CHECK(topic_matches("sport/+", "sport/"));
  CHECK(topic_matches("+/+", "/finance"));
  CHECK(topic_matches("/+", "/finance"));
  CHECK_FALSE(topic_matches("+", "/finance"));
  CHECK(topic_matches("+/tennis/#", "sport/tennis/player1"));
  // 4.7.2: topics beginning with '$'.
  CHECK_FALSE(topic_matches("#", "$SYS/x"));
  CHECK_FALSE(topic_matches("+/monitor/Clients", "$SYS/monitor/Clients"));
  CHECK(topic_matches("$SYS/#", "$SYS/x"));
  CHECK(topic_matches("$SYS/#", "$SYS"));
  CHECK(topic_matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
  // Levels are compared whole and case-sensitively; empty levels count.
  CHECK_FALSE(topic_matches("a/b", "a/bc"));
  CHECK_FALSE(topic_matches("a/b", "A/b"));
  CHECK_FALSE(topic_matches("a/b", "a/b/"));
  CHECK(topic_matches("a//b", "a//b"));
  CHECK(topic_matches("a/+/b", "a//b"));
  CHECK_FALSE(topic_matches("a/+", "a"));
  CHECK(topic_matches("a/x$", "a/x$"));
}

TEST_CASE("topic tree: filters and names are checked by the rules of section 4.7 and 1.5.4") {
  for (const char* good : {"#", "+", "/", "a", "a/#", "+/+", "/+", "sport/+/player1", "$SYS/#", "a//b", "+/#",
                           "caf\xC3\xA9/+"}) {
    INFO(good);
    CHECK_FALSE(topic_filter_problem(good));
  }
  CHECK(*topic_filter_problem("sport/tennis#") == "'#' must be the last level, alone");
  CHECK(*topic_filter_problem("sport/tennis/#/ranking") == "'#' must be the last level, alone");
  CHECK(*topic_filter_problem("##") == "'#' must be the last level, alone");
  CHECK(*topic_filter_problem("sport+") == "'+' must be a whole level");
  CHECK(*topic_filter_problem("a/++/b") == "'+' must be a whole level");
  CHECK(topic_filter_problem("")->find("empty") != std::string::npos);
  CHECK(topic_filter_problem(std::string("a\0b", 3))->find("U+0000") != std::string::npos);
  CHECK(topic_filter_problem("a/\xC3")->find("UTF-8") != std::string::npos);
  CHECK(topic_filter_problem(std::string(65536, 'a'))->find("65535") != std::string::npos);
  CHECK_FALSE(topic_filter_problem(std::string(65535, 'a')));

  for (const char* good : {"a", "/", "a//b", "$SYS/x", "sport/tennis/player1", "caf\xC3\xA9"}) {
    INFO(good);
    CHECK_FALSE(mqtt_topic_name_problem(good));
    CHECK(is_mqtt_topic_name(good));
  }
  for (const std::string& bad : {std::string(), std::string("a/+"), std::string("a/#"), std::string("a+b"),
                                 std::string("a\0b", 3), std::string("\xFF"), std::string(65536, 'a')}) {
    INFO(bad);
    CHECK(mqtt_topic_name_problem(bad));
    CHECK_FALSE(is_mqtt_topic_name(bad));
  }
}

TEST_CASE("topic tree: match finds every stored filter that matches, each once per insert") {
  TopicTree<int> tree;
  CHECK(tree.empty());
  tree.insert("sport/tennis/player1/#", 1);
  tree.insert("sport/+", 2);
  tree.insert("+/+", 3);
  tree.insert("/+", 4);
  tree.insert("$SYS/#", 5);
  tree.insert("#", 6);
  tree.insert("+/monitor/Clients", 7);
  tree.insert("sport/tennis/player1", 8);
  tree.insert("sport/#", 9);
  tree.insert("sport/#", 10);
  CHECK_FALSE(tree.empty());
  CHECK(found(tree, "sport/tennis/player1") == std::vector<int>{1, 6, 8, 9, 10});
  CHECK(found(tree, "sport/tennis/player1/ranking/x") == std::vector<int>{1, 6, 9, 10});
  CHECK(found(tree, "sport") == std::vector<int>{6, 9, 10});
  CHECK(found(tree, "sport/") == std::vector<int>{2, 3, 6, 9, 10});
  CHECK(found(tree, "/finance") == std::vector<int>{3, 4, 6});
  CHECK(found(tree, "$SYS/x") == std::vector<int>{5});
  CHECK(found(tree, "$SYS") == std::vector<int>{5});
  CHECK(found(tree, "$SYS/monitor/Clients") == std::vector<int>{5});
  CHECK(found(tree, "x/monitor/Clients") == std::vector<int>{6, 7});
  CHECK(found(tree, "weather") == std::vector<int>{6});
}

TEST_CASE("topic tree: erase removes one insert and prunes the nodes it leaves empty") {
  TopicTree<int> tree;
  tree.insert("a/+/c", 1);
  tree.insert("a/+/c", 1);
  tree.insert("a/b/#", 2);
  tree.insert("a/b/c", 3);
  CHECK(found(tree, "a/b/c") == std::vector<int>{1, 1, 2, 3});
  CHECK_FALSE(tree.erase("a/+/c", 4));    // no such value
  CHECK_FALSE(tree.erase("a/+/d", 1));    // no such filter
  CHECK_FALSE(tree.erase("a/b/c/#", 3));  // no such filter
  CHECK(tree.erase("a/+/c", 1));
  CHECK(found(tree, "a/b/c") == std::vector<int>{1, 2, 3});
  CHECK(tree.erase("a/+/c", 1));
  CHECK_FALSE(tree.erase("a/+/c", 1));
  CHECK(tree.erase("a/b/#", 2));
  CHECK(found(tree, "a/b/c") == std::vector<int>{3});
  CHECK(found(tree, "a/b") == std::vector<int>{});
  CHECK_FALSE(tree.empty());
  CHECK(tree.erase("a/b/c", 3));
  CHECK(tree.empty());  // every node pruned, the root included
  tree.insert("#", 7);
  tree.insert("+", 8);
  CHECK(found(tree, "x") == std::vector<int>{7, 8});
  CHECK(tree.erase("#", 7));
  CHECK(tree.erase("+", 8));
  CHECK(tree.empty());
}

TEST_CASE("topic tree: the tree agrees with topic_matches on thousands of filters and names") {
  // A small alphabet of levels, so that matches are frequent and every kind
  // of level (empty, '$', wildcards) meets every other.
  const std::vector<std::string> name_levels{"a", "b", "", "$x", "ab"};
  std::vector<std::string> filter_levels = name_levels;
  filter_levels.insert(filter_levels.end(), {"+", "+", "#"});
  std::mt19937 random(17);
  auto pick = [&random](const std::vector<std::string>& from) {
    return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(random)];
  };
  auto make = [&](const std::vector<std::string>& levels) {
    const int count = std::uniform_int_distribution<int>(1, 4)(random);
    std::string out;
    for (int i = 0; i < count; ++i) {
      std::string level = pick(levels);
      if (level == "#" && i + 1 < count) level = "+";  // '#' only last
      if (i > 0) out += '/';
      out += level;
      if (level == "#") break;
    }
    return out.empty() ? std::string("/") : out;  // "" is neither a filter nor a name
  };
  std::vector<std::string> filters;
  for (int i = 0; i < 400; ++i) {
    filters.push_back(make(filter_levels));
    INFO(filters.back());
    REQUIRE_FALSE(topic_filter_problem(filters.back()));
  }
  TopicTree<int> tree;
  for (size_t i = 0; i < filters.size(); ++i) tree.insert(filters[i], static_cast<int>(i));
  size_t matches = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string name = make(name_levels);
    std::vector<int> expected;
    for (size_t j = 0; j < filters.size(); ++j) {
      if (topic_matches(filters[j], name)) expected.push_back(static_cast<int>(j));
    }
    matches += expected.size();
    INFO(name);
    REQUIRE(found(tree, name) == expected);
  }
  CHECK(matches > 3000);  // the alphabet is small enough to match often
  // Erasing half keeps the rest found; erasing all empties the tree.
  for (size_t i = 0; i < filters.size(); i += 2) REQUIRE(tree.erase(filters[i], static_cast<int>(i)));
  for (const char* name : {"a", "a/b", "/", "$x/a", "ab//b/a", "b/b/b/b"}) {
    std::vector<int> expected;
    for (size_t j = 1; j < filters.size(); j += 2) {
      if (topic_matches(filters[j], name)) expected.push_back(static_cast<int>(j));
    }
    INFO(name);
    CHECK(found(tree, name) == expected);
  }
  for (size_t i = 1; i < filters.size(); i += 2) REQUIRE(tree.erase(filters[i], static_cast<int>(i)));
  CHECK(tree.empty());
}
