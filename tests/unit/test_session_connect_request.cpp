#include <catch2/catch.hpp>

#include "core/session/connect_request.hpp"

using namespace kws;

namespace {

std::optional<std::string> parse(const std::string& query, ConnectRequest& out) {
  return parse_connect_query(query, out);
}

}  // namespace

TEST_CASE("connect request: kafka-websocket's query, URL-decoded") {
  ConnectRequest r;
  REQUIRE_FALSE(parse("topics=a%2Cb,c&group.id=my+group", r));
  CHECK(r.topics == std::vector<std::string>{"a", "b", "c"});
  CHECK(r.group == "my group");
  CHECK_FALSE(r.kws_protocol);
  CHECK(r.start.kind == OffsetSpec::Kind::end);
}

TEST_CASE("connect request: offset is kws's own, and asks for the kws protocol") {
  ConnectRequest r;
  REQUIRE_FALSE(parse("topics=a&offset=-10", r));
  CHECK(r.kws_protocol);
  CHECK(r.start.kind == OffsetSpec::Kind::from_end);
  CHECK(r.start_text == "-10");
}

TEST_CASE("connect request: refusals name the problem") {
  auto why = [](const std::string& query) {
    ConnectRequest r;
    return parse(query, r).value_or("");
  };
  CHECK(why("topics=a,,b").find("empty topic name") != std::string::npos);
  CHECK(why("topics=a,").find("empty topic name") != std::string::npos);
  CHECK(why("group.id=x%00y&topics=a").find("control characters") != std::string::npos);
  CHECK(why("group.id=g").find("needs topics") != std::string::npos);
  CHECK(why("topics=a&topics=b").find("twice") != std::string::npos);
  CHECK(why("topics=a&colour=red").find("unknown query parameter") != std::string::npos);
  CHECK(why("topics=a%zz").find("bad %-escape") != std::string::npos);
  CHECK(why("offset=stored&topics=a").find("needs a group.id") != std::string::npos);
  CHECK(why("topics=bad topic").find("topics:") != std::string::npos);
  ConnectRequest empty;
  CHECK_FALSE(parse("topics=", empty));  // a produce-only client
  CHECK(empty.topics.empty());
}

TEST_CASE("connect request: the first subprotocol kws speaks wins, in the client's order") {
  ConnectRequest r;
  REQUIRE_FALSE(choose_subprotocol({"mqtt", "kafka-binary", "kws.v1"}, r));
  CHECK(r.subprotocol == "kafka-binary");
  CHECK(r.encoding == Encoding::kafka_binary);
  CHECK_FALSE(r.kws_protocol);
  ConnectRequest k;
  REQUIRE_FALSE(choose_subprotocol({"kws.v1"}, k));
  CHECK(k.kws_protocol);
  CHECK(k.encoding == Encoding::kafka_text);
  ConnectRequest none;
  CHECK(choose_subprotocol({"mqtt"}, none).value_or("").find("unsupported subprotocol") != std::string::npos);
}

TEST_CASE("connect request: a filter goes with group.id, and a bad one is refused as without it") {
  ConnectRequest r;
  REQUIRE_FALSE(parse("topics=a&group.id=g&filter=%7B%22key%22%3A%5B%22k%22%5D%7D", r));
  CHECK(r.group == "g");
  REQUIRE(r.filter);
  CHECK(r.filter->exact_keys() == std::vector<std::string>{"k"});
  CHECK(r.kws_protocol);
  for (const std::string bad : {"%7B", "%7B%7D", "%7B%22key%22%3A%22x%22%7D"}) {
    ConnectRequest alone, grouped;
    const auto without = parse("topics=a&filter=" + bad, alone);
    REQUIRE(without);
    CHECK(parse("topics=a&group.id=g&filter=" + bad, grouped) == without);
  }
}
