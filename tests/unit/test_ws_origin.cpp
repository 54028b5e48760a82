// --allow-origin patterns and matching.
#include <catch2/catch.hpp>

#include "core/ws/origin.hpp"

using namespace kws::ws;

TEST_CASE("origin: exact patterns match exactly, ignoring case", "[limits]") {
  CHECK(origin_matches("https://app.example.com", "https://app.example.com"));
  CHECK(origin_matches("https://app.example.com", "HTTPS://App.Example.COM"));
  CHECK_FALSE(origin_matches("https://app.example.com", "http://app.example.com"));
  CHECK_FALSE(origin_matches("https://app.example.com", "https://app.example.com:8443"));
  CHECK_FALSE(origin_matches("https://app.example.com", "https://app.example.com.evil.net"));
  CHECK_FALSE(origin_matches("https://app.example.com", "https://xapp.example.com"));
  CHECK(origin_matches("http://localhost:8080", "http://localhost:8080"));
  CHECK(origin_matches("null", "null"));
}

TEST_CASE("origin: a star is one or more characters inside a host or a port", "[limits]") {
  const char* sub = "https://*.example.com";
  CHECK(origin_matches(sub, "https://a.example.com"));
  CHECK(origin_matches(sub, "https://a.b.example.com"));
  CHECK_FALSE(origin_matches(sub, "https://example.com"));
  CHECK_FALSE(origin_matches(sub, "https://.example.com.evil.net"));
  CHECK_FALSE(origin_matches(sub, "https://evil.net:1.example.com"));  // never across the port's colon
  CHECK_FALSE(origin_matches(sub, "https://evil.net/x.example.com"));  // nor a slash
  CHECK_FALSE(origin_matches(sub, "http://a.example.com"));
  CHECK(origin_matches("http://localhost:*", "http://localhost:5173"));
  CHECK_FALSE(origin_matches("http://localhost:*", "http://localhost"));
  CHECK_FALSE(origin_matches("http://localhost:*", "http://localhost.evil.net:80"));
  CHECK(origin_matches("https://*.example.*", "https://a.example.org"));
}

TEST_CASE("origin: patterns that could never match an Origin header are refused with why", "[limits]") {
  CHECK_FALSE(origin_pattern_problem("https://app.example.com"));
  CHECK_FALSE(origin_pattern_problem("https://*.example.com"));
  CHECK_FALSE(origin_pattern_problem("http://localhost:*"));
  CHECK_FALSE(origin_pattern_problem("null"));
  CHECK_THAT(*origin_pattern_problem("https://app.example.com/"), Catch::Contains("path"));
  CHECK_THAT(*origin_pattern_problem("app.example.com"), Catch::Contains("scheme://host"));
  CHECK(origin_pattern_problem("https://"));
  CHECK(origin_pattern_problem("ht tp://x"));
  CHECK(origin_pattern_problem("https://a b"));
}

TEST_CASE("origin policy: no patterns allow all; otherwise a browser's Origin must match one", "[limits]") {
  CHECK_FALSE(OriginPolicy().refusal(std::string_view("https://evil.net")));
  OriginPolicy policy({"https://app.example.com", "https://*.example.org"});
  CHECK(policy.restricts());
  CHECK_FALSE(policy.refusal(std::string_view("https://app.example.com")));
  CHECK_FALSE(policy.refusal(std::string_view("https://x.example.org")));
  CHECK_FALSE(policy.refusal(std::nullopt));  // no Origin: not a browser, not checked
  auto refused = policy.refusal(std::string_view("https://evil.net"));
  REQUIRE(refused);
  CHECK_THAT(*refused, Catch::Contains("https://evil.net") && Catch::Contains("serve.allow_origin"));
  CHECK(policy.refusal(std::string_view("")));  // an empty Origin is still an Origin
  CHECK(policy.refusal(std::string(5000, 'x'))->size() < 300);  // said back, but not at length
}

TEST_CASE("origin policy: on a request, only the presence of the header decides whether it is checked", "[limits]") {
  OriginPolicy policy({"https://app.example.com"});
  HttpRequest request;
  CHECK_FALSE(policy.refusal(request));
  request.headers.push_back({"origin", "https://evil.net"});
  CHECK(policy.refusal(request));
  request.headers[0].second = "https://app.example.com";
  CHECK_FALSE(policy.refusal(request));
}
