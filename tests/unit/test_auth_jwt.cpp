// Tokens come from tests/unit/auth_fixtures/tokens.json, minted by Debian's
// python3-jwt (auth_fixtures/generate.py says how to make them again), so
// the verifier is checked against another implementation, not against
// itself. `now` is fixed: the fixtures expire in 2100 or at chosen dates.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/auth/jwt.hpp"
#include "core/util/error.hpp"
#include "core/util/input.hpp"

using namespace kws;
using json = nlohmann::json;
using std::chrono::seconds;
using std::chrono::system_clock;

namespace {

const std::string kFixtures = KWS_AUTH_FIXTURES;

std::string fixture(const std::string& name) { return kFixtures + "/" + name; }

// 2027-01-15: after every fixture's iat, before every exp but exp_2033's tests.
const system_clock::time_point kNow = system_clock::time_point(seconds(1800000000));

std::string token(const std::string& name) {
  static const json tokens = json::parse(read_whole_file(fixture("tokens.json")));
  REQUIRE(tokens.contains(name));
  return tokens.at(name).get<std::string>();
}

JwtSettings with(std::string JwtSettings::*source, const std::string& file) {
  JwtSettings s;
  s.*source = fixture(file);
  return s;
}

std::shared_ptr<const TokenVerifier> secret_verifier() {
  static auto v = TokenVerifier::load(with(&JwtSettings::secret_file, "secret.txt"));
  return v;
}

std::shared_ptr<const TokenVerifier> key_verifier(const std::string& file) {
  return TokenVerifier::load(with(&JwtSettings::key_file, file));
}

std::shared_ptr<const TokenVerifier> jwks_verifier(const std::string& file = "jwks.json") {
  return TokenVerifier::load(with(&JwtSettings::jwks_file, file));
}

void accepts(const TokenVerifier& v, const std::string& name, system_clock::time_point now = kNow) {
  INFO("token " << name);
  auto r = v.verify(token(name), now);
  INFO("problem: " << r.problem);
  REQUIRE(r.principal);
  CHECK(r.problem.empty());
}

void refuses(const TokenVerifier& v, const std::string& name, const std::string& problem,
             system_clock::time_point now = kNow) {
  INFO("token " << name);
  const std::string t = token(name);
  auto r = v.verify(t, now);
  CHECK_FALSE(r.principal);
  CHECK(r.problem == problem);
  // A refusal never quotes the token, nor its signature.
  CHECK(r.problem.find(t.substr(0, 20)) == std::string::npos);
  const std::string signature = t.substr(t.rfind('.') + 1);
  if (signature.size() >= 10) CHECK(r.problem.find(signature.substr(0, 10)) == std::string::npos);
}

std::string load_error(const JwtSettings& s) {
  try {
    TokenVerifier::load(s);
  } catch (const Error& e) {
    CHECK(e.exit_code() == exit_usage);
    return e.what();
  }
  FAIL("loaded");
  return {};
}

std::string repeated(const std::string& part, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += part;
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("auth jwt: each algorithm verifies with its key", "[auth]") {
  for (const char* name : {"hs256", "hs384", "hs512"}) accepts(*secret_verifier(), name);
  auto rsa = key_verifier("rsa.pub.pem");
  for (const char* name : {"rs256", "rs384", "rs512", "ps256"}) accepts(*rsa, name);
  accepts(*key_verifier("ec256.pub.pem"), "es256");
  accepts(*key_verifier("ec384.pub.pem"), "es384");
}

TEST_CASE("auth jwt: the principal carries sub, exp and the grants", "[auth]") {
  auto r = key_verifier("rsa.pub.pem")->verify(token("rs256"), kNow);
  REQUIRE(r.principal);
  CHECK(r.principal->name == "alice");
  REQUIRE(r.principal->expires);
  CHECK(*r.principal->expires == system_clock::time_point(seconds(4102444800)));
  REQUIRE(r.principal->grants);
  CHECK(r.principal->grants->read == std::vector<std::string>{"orders", "prices.*"});
  CHECK(r.principal->allows("prices.eur", TopicAction::read));
  CHECK_FALSE(r.principal->allows("orders", TopicAction::write));
  CHECK(r.principal->grants->allows_group("dash-7"));
}

TEST_CASE("auth jwt: alg none is refused in any spelling, with or without a signature", "[auth]") {
  const std::string none = "alg none is refused: tokens must be signed";
  for (const auto& v : {secret_verifier(), key_verifier("rsa.pub.pem"), jwks_verifier()}) {
    refuses(*v, "none_empty_signature", none);
    refuses(*v, "none_with_signature", none);
    refuses(*v, "none_capitalised", none);
  }
}

TEST_CASE("auth jwt: an alg that does not fit the key is refused before any signature check", "[auth]") {
  // The classic key confusion: HS256 with the RSA public key as the secret.
  refuses(*key_verifier("rsa.pub.pem"), "hs256_keyed_with_rsa_pub",
          "alg HS256 does not fit the configured key (an RSA key)");
  refuses(*secret_verifier(), "rs256", "alg RS256 does not fit the configured key (an HMAC secret)");
  refuses(*secret_verifier(), "ps256", "alg PS256 does not fit the configured key (an HMAC secret)");
  refuses(*key_verifier("ec256.pub.pem"), "rs256",
          "alg RS256 does not fit the configured key (an EC P-256 key)");
  refuses(*key_verifier("ec256.pub.pem"), "es384",
          "alg ES384 does not fit the configured key (an EC P-256 key)");
  refuses(*key_verifier("ec384.pub.pem"), "es256",
          "alg ES256 does not fit the configured key (an EC P-384 key)");
  refuses(*key_verifier("rsa.pub.pem"), "es256", "alg ES256 does not fit the configured key (an RSA key)");
  refuses(*secret_verifier(), "alg_unknown", "unsupported alg \"HS1\"");
  refuses(*secret_verifier(), "alg_missing", "token header has no alg");
}

TEST_CASE("auth jwt: a signature that does not verify is refused", "[auth]") {
  refuses(*key_verifier("rsa.pub.pem"), "rs256_tampered", "bad signature");
  refuses(*key_verifier("rsa.pub.pem"), "ps256_tampered", "bad signature");
  refuses(*key_verifier("ec256.pub.pem"), "es256_tampered", "bad signature");
  refuses(*secret_verifier(), "hs256_other_secret", "bad signature");
  refuses(*key_verifier("rsa2.pub.pem"), "rs256", "bad signature");
  refuses(*key_verifier("rsa2.pub.pem"), "ps256", "bad signature");
  // The right key, in a form JWS does not allow: an ECDSA signature as DER,
  // a PSS salt longer than the hash. The same PSS with a hash-long salt,
  // made the same way, passes.
  refuses(*key_verifier("ec256.pub.pem"), "es256_der_signature", "bad signature");
  refuses(*key_verifier("rsa.pub.pem"), "ps256_max_salt", "bad signature");
  accepts(*key_verifier("rsa.pub.pem"), "ps256_digest_salt");
  // Each token's own signature moved onto another alg's header and payload.
  const std::string rs = token("rs256"), ps = token("ps256");
  const std::string swapped = ps.substr(0, ps.rfind('.')) + rs.substr(rs.rfind('.'));
  auto r = key_verifier("rsa.pub.pem")->verify(swapped, kNow);
  CHECK_FALSE(r.principal);
  CHECK(r.problem == "bad signature");
}

TEST_CASE("auth jwt: malformed tokens are refused in words", "[auth]") {
  auto v = secret_verifier();
  const std::string hs = token("hs256");
  struct Case {
    std::string token, problem;
  };
  const Case cases[] = {
      {"", "empty token"},
      {"abc", "malformed token: not three dot-separated parts"},
      {"a.b", "malformed token: not three dot-separated parts"},
      {hs + ".x", "malformed token: not three dot-separated parts"},
      {"e30=." + hs.substr(hs.find('.') + 1), "malformed token: header is not base64url"},
      {"e+0." + hs.substr(hs.find('.') + 1), "malformed token: header is not base64url"},
      {"." + hs.substr(hs.find('.') + 1), "malformed token: header is not a JSON object"},
      {hs.substr(0, hs.rfind('.') + 1), "bad signature"},
      {std::string(17000, 'a'), "token longer than 16384 bytes"},
  };
  for (const auto& c : cases) {
    INFO(c.token.substr(0, 60));
    auto r = v->verify(c.token, kNow);
    CHECK_FALSE(r.principal);
    CHECK(r.problem == c.problem);
  }
  refuses(*v, "header_not_json", "malformed token: header is not a JSON object");
  refuses(*v, "payload_not_json", "malformed token: payload is not a JSON object");
  refuses(*v, "payload_array", "malformed token: payload is not a JSON object");
  refuses(*v, "crit_header", "token header has crit extensions, which kws does not support");
  refuses(*v, "sub_number", "token sub is not a string");
}

TEST_CASE("auth jwt: exp and nbf with the leeway", "[auth]") {
  auto v = secret_verifier();
  const auto exp = system_clock::time_point(seconds(2000000000));
  accepts(*v, "exp_2033", exp);
  accepts(*v, "exp_2033", exp + seconds(30));
  refuses(*v, "exp_2033", "token expired", exp + seconds(31));
  const auto nbf = system_clock::time_point(seconds(1900000000));
  accepts(*v, "nbf_2030", nbf);
  accepts(*v, "nbf_2030", nbf - seconds(30));
  refuses(*v, "nbf_2030", "token not yet valid", nbf - seconds(31));

  JwtSettings strict = with(&JwtSettings::secret_file, "secret.txt");
  strict.leeway = seconds(0);
  auto s = TokenVerifier::load(strict);
  accepts(*s, "exp_2033", exp);
  refuses(*s, "exp_2033", "token expired", exp + seconds(1));
  refuses(*s, "nbf_2030", "token not yet valid", nbf - seconds(1));

  // No exp: accepted, and the principal never expires.
  auto r = v->verify(token("no_exp"), system_clock::time_point(seconds(9000000000)));
  REQUIRE(r.principal);
  CHECK_FALSE(r.principal->expires);
  refuses(*v, "exp_string", "exp is not a number");
}

TEST_CASE("auth jwt: issuer and audience are checked when configured", "[auth]") {
  JwtSettings s = with(&JwtSettings::secret_file, "secret.txt");
  // Not configured: neither is looked at.
  for (const char* name : {"wrong_issuer", "no_issuer", "wrong_audience", "no_audience"})
    accepts(*secret_verifier(), name);

  s.issuer = "https://issuer.example";
  s.audience = "kws-gateway";
  auto v = TokenVerifier::load(s);
  accepts(*v, "hs256");
  accepts(*v, "audience_list_with");
  refuses(*v, "wrong_issuer", "wrong issuer");
  refuses(*v, "no_issuer", "token has no issuer (iss)");
  refuses(*v, "wrong_audience", "wrong audience");
  refuses(*v, "no_audience", "token has no audience (aud)");
  refuses(*v, "audience_list_without", "wrong audience");
}

TEST_CASE("auth jwt: no claim, no access; a malformed claim is refused", "[auth]") {
  auto v = secret_verifier();
  // A principal with empty grants: the server refuses each topic with 403.
  auto r = v->verify(token("no_claim"), kNow);
  REQUIRE(r.principal);
  REQUIRE(r.principal->grants);
  CHECK(r.principal->grants->read.empty());
  CHECK_FALSE(r.principal->allows("orders", TopicAction::read));

  refuses(*v, "claim_not_lists", "claim \"kws\": \"read\" is not a list");
  refuses(*v, "claim_unknown_key", "claim \"kws\": unknown key \"raed\" (expected read, write or groups)");

  JwtSettings s = with(&JwtSettings::secret_file, "secret.txt");
  s.acl_claim = "acl";
  r = TokenVerifier::load(s)->verify(token("claim_named_acl"), kNow);
  REQUIRE(r.principal);
  CHECK(r.principal->allows("audit", TopicAction::read));
  CHECK_FALSE(r.principal->allows("orders", TopicAction::read));

  r = v->verify(token("no_sub"), kNow);
  REQUIRE(r.principal);
  CHECK(r.principal->name.empty());
}

TEST_CASE("auth jwt: a JWKS key is chosen by kid, with its alg and use honoured", "[auth]") {
  auto v = jwks_verifier();
  for (const char* name : {"jwks_rs256_rsa1", "jwks_ps256_rsa2", "jwks_es256", "jwks_es384"})
    accepts(*v, name);
  refuses(*v, "jwks_ps256_rsa1", "alg PS256 does not fit key \"rsa-1\" (alg RS256)");
  refuses(*v, "jwks_unknown_kid", "unknown key id \"who?are-you\"");
  refuses(*v, "jwks_enc_kid", "key \"enc-1\" is for \"enc\", not for signatures");
  refuses(*v, "jwks_okp_kid", "key \"okp-1\" has kty \"OKP\"; only RSA and EC are supported");
  refuses(*v, "jwks_no_kid", "token has no kid, and the key set has 6 keys");
  refuses(*v, "jwks_wrong_key", "bad signature");
  refuses(*v, "hs256", "token has no kid, and the key set has 6 keys");

  // A set of one key serves a token without kid.
  auto single = jwks_verifier("jwks_single.json");
  accepts(*single, "jwks_no_kid");
  refuses(*single, "rs256", "bad signature");
}

TEST_CASE("auth jwt: an unknown kid is named short and printable", "[auth]") {
  auto v = jwks_verifier();
  // A hand-made header with a long kid full of control characters; no
  // signature is needed to reach the kid.
  const std::string header = R"({"alg":"RS256","kid":")" + repeated("\\u0001", 500) + "\"}";
  std::string b64;
  {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t bits = 0;
    int n = 0;
    for (unsigned char c : header) {
      bits = (bits << 8) | c;
      n += 8;
      while (n >= 6) b64 += alphabet[(bits >> (n -= 6)) & 63];
    }
    if (n > 0) b64 += alphabet[(bits << (6 - n)) & 63];
  }
  auto r = v->verify(b64 + ".e30.c2ln", kNow);
  CHECK_FALSE(r.principal);
  CHECK(r.problem.size() < 80);
  CHECK(r.problem.rfind("unknown key id \"????", 0) == 0);
}

TEST_CASE("auth jwt: typ other than JWT: refused with HMAC (libjwt 1.10), accepted with public keys",
          "[auth]") {
  // OAuth access tokens of RFC 9068 say typ "at+jwt". libjwt 1.10.2, which
  // checks HMACs, refuses them, so kws says why instead of "bad signature";
  // EVP, which checks the rest, does not read typ (docs/SECURITY.md).
  refuses(*secret_verifier(), "typ_at_jwt", "token typ \"at+jwt\" is not supported with HMAC (only JWT)");
  accepts(*key_verifier("rsa.pub.pem"), "rs256_typ_at_jwt");
}

TEST_CASE("auth jwt: load refuses missing, ambiguous and unusable key sources", "[auth]") {
  CHECK(contains(load_error(JwtSettings{}), "no JWT key source"));
  JwtSettings two = with(&JwtSettings::key_file, "rsa.pub.pem");
  two.jwks_file = fixture("jwks.json");
  CHECK(contains(load_error(two), "more than one JWT key source"));
  two.jwks_file.clear();
  two.secret_file = fixture("secret.txt");
  CHECK(contains(load_error(two), "more than one JWT key source"));

  CHECK(contains(load_error(with(&JwtSettings::secret_file, "nonexistent")), "nonexistent"));
  CHECK(contains(load_error(with(&JwtSettings::secret_file, "short_secret.txt")),
                 "short_secret.txt: a JWT secret of 9 bytes; at least 32 are needed"));
  CHECK(contains(load_error(with(&JwtSettings::key_file, "rsa1024.pub.pem")),
                 "rsa1024.pub.pem: an RSA key of 1024 bits; at least 2048 are needed"));
  CHECK(contains(load_error(with(&JwtSettings::key_file, "ec521.pub.pem")),
                 "only P-256 (ES256) and P-384 (ES384)"));
  CHECK(contains(load_error(with(&JwtSettings::key_file, "rsa.pem")), "it holds a private key"));
  CHECK(contains(load_error(with(&JwtSettings::key_file, "secret.txt")), "not a PEM public key"));
  CHECK(contains(load_error(with(&JwtSettings::jwks_file, "rsa.pub.pem")), "rsa.pub.pem: not JSON"));
  CHECK(contains(load_error(with(&JwtSettings::jwks_file, "tokens.json")), "not a JWKS document"));
}

TEST_CASE("auth jwt: a JWKS with a broken key names it", "[auth]") {
  const std::string path = "/tmp/kws-test-auth-jwks-" + std::to_string(::getpid()) + ".json";
  auto error_for = [&](const json& keys) {
    std::ofstream(path) << json{{"keys", keys}}.dump();
    JwtSettings s;
    s.jwks_file = path;
    return load_error(s);
  };
  const json good = json::parse(read_whole_file(fixture("jwks.json")))["keys"][3];  // ec-2, P-384
  json off_curve = good;
  off_curve["y"] = good["x"];
  CHECK(contains(error_for(json::array({off_curve})), "key 0 (kid \"ec-2\"): the point is not on the curve"));
  json short_x = good;
  short_x["x"] = "AAAA";
  CHECK(contains(error_for(json::array({short_x})), "x and y must be 48 bytes each on P-384"));
  json no_n = {{"kty", "RSA"}, {"e", "AQAB"}, {"kid", "r"}};
  CHECK(contains(error_for(json::array({no_n})), "key 0 (kid \"r\"): \"n\" is missing or not base64url"));
  json wrong_alg = good;
  wrong_alg["alg"] = "RS256";
  CHECK(contains(error_for(json::array({wrong_alg})), "alg RS256 does not fit an EC P-384 key"));
  CHECK(contains(error_for(json::array({json{{"kty", "oct"}, {"k", "c2VjcmV0"}}})),
                 "no RSA or EC signing key"));
  CHECK(contains(error_for(json::array()), "no RSA or EC signing key"));
  std::remove(path.c_str());
}

TEST_CASE("auth jwt: verify is safe from many threads at once", "[auth]") {
  auto rsa = key_verifier("rsa.pub.pem");
  auto ps = jwks_verifier();
  auto hs = secret_verifier();
  // Fetched here: Catch's assertions (inside token()) are not thread-safe.
  const std::string rs256 = token("rs256"), hs256 = token("hs256"), ps256 = token("jwks_ps256_rsa2");
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) {
        accepted += rsa->verify(rs256, kNow).principal.has_value();
        accepted += hs->verify(hs256, kNow).principal.has_value();
        accepted += ps->verify(ps256, kNow).principal.has_value();
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(accepted == 4 * 50 * 3);
}

TEST_CASE("auth token sources: Authorization header", "[auth]") {
  CHECK(bearer_from_authorization("Bearer abc.def.ghi") == "abc.def.ghi");
  CHECK(bearer_from_authorization("bearer abc") == "abc");
  CHECK(bearer_from_authorization("BEARER   abc  ") == "abc");
  CHECK(bearer_from_authorization("  Bearer\tabc") == "abc");
  CHECK_FALSE(bearer_from_authorization("Bearer"));
  CHECK_FALSE(bearer_from_authorization("Bearer "));
  CHECK_FALSE(bearer_from_authorization("Bearerabc"));
  CHECK_FALSE(bearer_from_authorization("Basic dXNlcjpwYXNz"));
  CHECK_FALSE(bearer_from_authorization("Bearer a b"));
  CHECK_FALSE(bearer_from_authorization(""));
}

TEST_CASE("auth token sources: access_token in the query", "[auth]") {
  CHECK(token_from_query("access_token=abc") == "abc");
  CHECK(token_from_query("topics=a&access_token=a.b.c&group.id=g") == "a.b.c");
  CHECK(token_from_query("access_token=a%2Eb") == "a.b");
  CHECK(token_from_query("access%5Ftoken=x") == "x");
  CHECK(token_from_query("access_token=first&access_token=second") == "first");
  CHECK_FALSE(token_from_query("access_token="));
  CHECK_FALSE(token_from_query("access_token"));
  CHECK_FALSE(token_from_query("access_token=%zz"));
  CHECK_FALSE(token_from_query("access_tokens=x"));
  CHECK_FALSE(token_from_query("xaccess_token=x"));
  CHECK_FALSE(token_from_query(""));
}

TEST_CASE("auth token sources: a bearer.T subprotocol", "[auth]") {
  CHECK(token_from_subprotocols({"kws.v1", "bearer.a.b.c"}) == "a.b.c");
  CHECK(token_from_subprotocols({"bearer.x", "bearer.y"}) == "x");
  CHECK_FALSE(token_from_subprotocols({"bearer."}));
  CHECK_FALSE(token_from_subprotocols({"Bearer.x"}));
  CHECK_FALSE(token_from_subprotocols({"kws.v1"}));
  CHECK_FALSE(token_from_subprotocols({}));
}

TEST_CASE("auth redact_target: every spelling of access_token is redacted, the rest kept", "[auth]") {
  CHECK(redact_target("/") == "/");
  CHECK(redact_target("/?") == "/?");
  CHECK(redact_target("/?topics=a") == "/?topics=a");
  CHECK(redact_target("/?access_token=abc") == "/?access_token=REDACTED");
  CHECK(redact_target("/ws?topics=a&access_token=x.y.z&group.id=g") ==
        "/ws?topics=a&access_token=REDACTED&group.id=g");
  CHECK(redact_target("/?access%5Ftoken=abc&access_token=def") ==
        "/?access%5Ftoken=REDACTED&access_token=REDACTED");
  CHECK(redact_target("/?access_token=abc#frag&access_token=b") ==
        "/?access_token=REDACTED&access_token=REDACTED");
  CHECK(redact_target("/?a&&b=") == "/?a&&b=");
  // Whatever token_from_query would read from the redacted target is the mark.
  const std::string redacted = redact_target("/?x=1&access_token=secret");
  CHECK(token_from_query(redacted.substr(redacted.find('?') + 1)) == "REDACTED");
}
