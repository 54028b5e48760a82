#include <catch2/catch.hpp>

#include "core/ingest/fields.hpp"
#include "core/util/error.hpp"

using namespace kws;

TEST_CASE("fields: key from a JSON pointer; strings unquoted, others as JSON") {
  FieldRules r({"/data/s", {}, ""});
  CHECK(r.extract(R"({"data":{"s":"BTC"}})").key == std::optional<std::string>("BTC"));
  CHECK(r.extract(R"({"data":{"s":7}})").key == std::optional<std::string>("7"));
  CHECK(r.extract(R"({"data":{"s":{"a":1}}})").key == std::optional<std::string>(R"({"a":1})"));
  auto missing = r.extract(R"({"data":{}})");
  CHECK_FALSE(missing.key);
  CHECK(missing.key_missing);
  CHECK(r.extract(R"({"data":{"s":null}})").key_missing);
  CHECK(r.extract(R"({"data":[1,2]})").key_missing);  // through an array by name
  auto not_json = r.extract("hello");
  CHECK(not_json.keep);
  CHECK(not_json.key_missing);
}

TEST_CASE("fields: filters must all match; non-JSON never matches") {
  FieldRules r({"", {"/type=trade", "/n=5"}, ""});
  CHECK(r.extract(R"({"type":"trade","n":5})").keep);
  CHECK_FALSE(r.extract(R"({"type":"trade","n":6})").keep);
  CHECK_FALSE(r.extract(R"({"type":"book","n":5})").keep);
  CHECK_FALSE(r.extract(R"({"n":5})").keep);
  CHECK_FALSE(r.extract("trade").keep);
  FieldRules eq({"", {"/a=b=c"}, ""});  // the first '=' splits
  CHECK(eq.extract(R"({"a":"b=c"})").keep);
  FieldRules arr({"", {"/xs/1=y"}, ""});
  CHECK(arr.extract(R"({"xs":["x","y"]})").keep);
}

TEST_CASE("fields: a filter that reads like another syntax is refused, saying what is accepted") {
  auto refusal = [](const std::string& filter) -> std::string {
    try {
      FieldRules r({"", {filter}, ""});
    } catch (const Error& e) {
      return e.exit_code() == exit_usage ? e.what() : "not a usage error";
    }
    return "";
  };
  // Each of these used to be taken as some pointer and value that no message has.
  for (const char* f : {"/symbol==BTC", "/symbol!=BTC", "/n>=5", "/n<=5", "/s~=x", "/s=\"BTC\"", "/s='BTC'",
                        "/s =BTC", "/s= BTC"}) {
    INFO(f);
    std::string why = refusal(f);
    CHECK(why.find("accepted: /pointer=value") != std::string::npos);
  }
  CHECK(refusal("/symbol==BTC").find("for equality write /symbol=BTC") != std::string::npos);
  CHECK(refusal("/s=\"BTC\"").find("/s=BTC") != std::string::npos);
  // Still accepted: '=' inside the value, an empty value, a lone quote.
  CHECK(refusal("/a=b=c").empty());
  CHECK(refusal("/a=").empty());
  CHECK(refusal("/a=\"").empty());
}

TEST_CASE("fields: why_filtered says which filter left a message out") {
  FieldRules r({"", {"/type=trade", "/n=5"}, ""});
  CHECK(r.why_filtered(R"({"type":"trade","n":5})").empty());
  CHECK(r.why_filtered(R"({"type":"book","n":5})") == R"(/type is "book", not trade)");
  CHECK(r.why_filtered(R"({"type":"trade","n":6})") == "/n is 6, not 5");
  CHECK(r.why_filtered(R"({"type":"trade"})") == "/n is missing");
  CHECK(r.why_filtered("hello") == "not JSON");
}

TEST_CASE("fields: sequence numbers, integers or digit strings") {
  FieldRules r({"", {}, "/seq"});
  CHECK(r.extract(R"({"seq":42})").seq == std::optional<int64_t>(42));
  CHECK(r.extract(R"({"seq":"43"})").seq == std::optional<int64_t>(43));
  CHECK_FALSE(r.extract(R"({"seq":"4x"})").seq);
  CHECK_FALSE(r.extract(R"({"seq":1.5})").seq);
}

TEST_CASE("fields: malformed pointers and filters are usage errors") {
  auto usage = [](FieldSpecs s) {
    try {
      FieldRules r(s);
    } catch (const Error& e) {
      return e.exit_code() == exit_usage;
    }
    return false;
  };
  CHECK(usage({"s", {}, ""}));
  CHECK(usage({"", {"/s"}, ""}));
  CHECK(usage({"", {"s=1"}, ""}));
  CHECK(usage({"", {}, "/a~2"}));
  CHECK_FALSE(FieldRules({"", {}, ""}).active());
}

TEST_CASE("seq: gaps within a connection, jumps across a reconnect counted apart") {
  SeqTracker t;
  for (int64_t s : {1, 2, 3, 5, 6, 9}) t.observe(s);
  CHECK(t.gaps() == 2);
  CHECK(t.skipped() == 3);
  t.observe(9);  // repeated
  CHECK(t.out_of_order() == 1);
  t.new_connection();
  CHECK(t.observe(20) == 0);
  CHECK(t.skipped_across_reconnects() == 10);
  CHECK(t.observe(22) == 1);
  CHECK(t.gaps() == 3);
}
