// libFuzzer target for core/auth: every byte a client controls before it is
// anyone. A token from an upgrade goes to TokenVerifier::verify (with an HS
// secret and with an RSA key), the request's Authorization header, query and
// offered subprotocols to the token-source functions and redact_target, and
// a claim's JSON to parse_grants. Build and run: see tests/fuzz/CMakeLists.txt.
//
// Input: [mode][bytes...]. An even mode passes the bytes as they are. An odd
// mode reads them as "HEADER\nPAYLOAD", base64url-encodes both and signs
// them with the fixtures' HS256 secret, so that the fuzzer reaches what comes
// after a good signature (dates, issuer, audience, the ACL claim) without
// having to forge an HMAC.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/auth/jwt.hpp"
#include "core/auth/principal.hpp"
#include "core/util/input.hpp"
#include "core/util/text.hpp"

#include "tests/fuzz/fuzz_check.hpp"

using namespace kws;

namespace {

const std::string kFixtures = KWS_AUTH_FIXTURES;

struct Verifiers {
  std::shared_ptr<const TokenVerifier> secret, rsa;
  std::string secret_bytes;
};

const Verifiers& verifiers() {
  static const Verifiers v = [] {
    Verifiers out;
    JwtSettings s;
    s.secret_file = kFixtures + "/secret.txt";
    s.issuer = "https://issuer.example";
    s.audience = "kws-gateway";
    out.secret = TokenVerifier::load(s);
    JwtSettings r;
    r.key_file = kFixtures + "/rsa.pub.pem";
    out.rsa = TokenVerifier::load(r);
    out.secret_bytes = read_whole_file(s.secret_file);
    out.secret_bytes.pop_back();  // the newline the verifier trims
    return out;
  }();
  return v;
}

std::string base64url(std::string_view bytes) {
  std::string out = base64_encode(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string signed_token(std::string_view header, std::string_view payload, const std::string& secret) {
  const std::string input = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &length);
  return input + "." + base64url(std::string_view(reinterpret_cast<const char*>(mac), length));
}

void check_result(const TokenVerifier::Result& r, std::string_view token) {
  CHECK(r.principal.has_value() == r.problem.empty());
  if (r.principal) {
    // A verified token always yields grants: no claim means none, never "unrestricted".
    CHECK(r.principal->grants.has_value());
    return;
  }
  // Short, printable words for a 401 body and a log line.
  CHECK(r.problem.size() < 200);
  for (unsigned char c : r.problem) CHECK(c >= 0x20 && c < 0x7F);
  // The answer never echoes the token. A token that is not three parts gets
  // one fixed sentence whatever its bytes (so a token that happens to be a
  // piece of that sentence is not an echo); a three-part token holds dots,
  // which no fixed sentence does, and is longer than any field decoded from it.
  if (token.empty() || token.size() > TokenVerifier::kMaxTokenBytes) return;
  if (std::count(token.begin(), token.end(), '.') != 2) {
    CHECK(r.problem == "malformed token: not three dot-separated parts");
    return;
  }
  if (token.size() >= 24) CHECK(r.problem.find(token) == std::string::npos);
}

void check_grants(const std::string& bytes) {
  const nlohmann::json claim = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (claim.is_discarded()) return;
  Grants grants;
  grants.read = {"untouched"};
  auto problem = parse_grants(claim, grants);
  if (problem) {
    CHECK(!problem->empty());
    CHECK(grants.read.size() == 1 && grants.read[0] == "untouched");
    return;
  }
  for (const auto* list : {&grants.read, &grants.write, &grants.groups}) {
    for (const auto& pattern : *list) {
      CHECK(!pattern.empty());
      // A pattern granted is a pattern that grants: its own text, with any
      // '*' standing for itself, is a name it matches.
      CHECK(name_matches(pattern, pattern));
    }
  }
}

void check_sources(const std::string& bytes) {
  if (auto t = bearer_from_authorization(bytes)) {
    CHECK(!t->empty() && t->find_first_of(" \t") == std::string::npos);
  }
  if (auto t = token_from_query(bytes)) CHECK(!t->empty());

  std::vector<std::string> offered;
  size_t start = 0;
  while (start <= bytes.size()) {
    size_t comma = bytes.find(',', start);
    if (comma == std::string::npos) comma = bytes.size();
    offered.push_back(bytes.substr(start, comma - start));
    start = comma + 1;
  }
  if (auto t = token_from_subprotocols(offered)) CHECK(!t->empty());

  // What a log shows of a target never holds a token token_from_query would
  // read, only the mark.
  for (const std::string& target : {"/?" + bytes, bytes}) {
    const std::string redacted = redact_target(target);
    const size_t question = redacted.find('?');
    CHECK((question == std::string::npos) == (target.find('?') == std::string::npos));
    if (question == std::string::npos) {
      CHECK(redacted == target);
      continue;
    }
    auto t = token_from_query(std::string_view(redacted).substr(question + 1));
    CHECK(!t || *t == "REDACTED");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Verifiers& v = verifiers();
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));

  std::string token = bytes;
  if (data[0] % 2 == 1) {
    const size_t newline = bytes.find('\n');
    token = signed_token(
        std::string_view(bytes).substr(0, newline),
        newline == std::string::npos ? std::string_view() : std::string_view(bytes).substr(newline + 1),
        v.secret_bytes);
  }
  check_result(v.secret->verify(token, now), token);
  check_result(v.rsa->verify(token, now), token);

  check_grants(bytes);
  check_sources(bytes);

  // A name with no '*' matches itself as a pattern; "*" matches everything.
  const size_t half = bytes.size() / 2;
  const std::string_view pattern = std::string_view(bytes).substr(0, half),
                         name = std::string_view(bytes).substr(half);
  if (pattern.find('*') == std::string_view::npos) CHECK(name_matches(pattern, pattern));
  CHECK(name_matches("*", name));
  (void)name_matches(pattern, name);
  return 0;
}
