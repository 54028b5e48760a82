#pragma once
// Bearer tokens for kws serve's gateway (issue 15): where a token comes from
// in a WebSocket upgrade, and its verification into a Principal. HMACs are
// checked by libjwt, public-key signatures (RS*, PS256, ES*) by OpenSSL's
// EVP with keys parsed once, and JWKs become keys through EVP too (libjwt
// 1.10 has neither PS256 nor JWKS); see docs/SECURITY.md, "Token
// verification". No libjwt or OpenSSL type appears here.
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/auth/principal.hpp"

namespace kws {

struct JwtSettings {
  // HS256/384/512 shared secret: the file's bytes with one trailing line end
  // ("\n" or "\r\n") removed, so `echo secret > file` works; at least 32
  // bytes (RFC 7518 3.2: no shorter than the HS256 hash).
  std::string secret_file;
  // A PEM public key ("BEGIN PUBLIC KEY"): RSA of at least 2048 bits (RS256,
  // RS384, RS512, PS256) or EC (ES256 on P-256, ES384 on P-384).
  std::string key_file;
  // A JWKS document {"keys":[...]}: the key is chosen by the token's "kid";
  // a token without one may use the only key of a one-key set. kty RSA and
  // EC; a key's "alg" and "use" are honoured when present; keys of other
  // types or for encryption are skipped (a token naming one is refused).
  std::string jwks_file;
  std::string issuer;               // "iss" must equal it, when non-empty
  std::string audience;             // "aud" (a string, or a list) must hold it, when non-empty
  std::chrono::seconds leeway{30};  // clock skew allowed for "exp" and "nbf"
  std::string acl_claim = "kws";    // the claim holding the Grants

  // Whether any key source is set, i.e. whether tokens are required.
  bool configured() const { return !secret_file.empty() || !key_file.empty() || !jwks_file.empty(); }
};

class TokenVerifier {
 public:
  // Reads and checks the key source now. Exactly one of secret_file,
  // key_file and jwks_file must be set: two would leave open which key a
  // token is checked with. Throws kws::Error (usage) naming the file and the
  // problem.
  static std::shared_ptr<const TokenVerifier> load(const JwtSettings& settings);

  // principal when the token is accepted; otherwise problem, a short reason
  // for an HTTP 401 body that never contains the token.
  struct Result {
    std::optional<Principal> principal;
    std::string problem;
  };

  // Thread-safe. A token that verifies but has no ACL claim yields a
  // principal with empty Grants ("no claim, no access": every topic is then
  // refused with 403, which tells the client more than a 401 would). A token
  // without "exp" never expires. `now` is passed in so tests need no clock.
  Result verify(std::string_view token, std::chrono::system_clock::time_point now) const;

  // Far larger than any token an issuer mints, far smaller than what would
  // cost the I/O thread: verify() is called before the client is anyone.
  static constexpr size_t kMaxTokenBytes = 16 * 1024;

  struct Key;  // one verification key (libjwt and OpenSSL forms), jwt.cpp
  ~TokenVerifier();
  TokenVerifier(const TokenVerifier&) = delete;
  TokenVerifier& operator=(const TokenVerifier&) = delete;

 private:
  TokenVerifier(JwtSettings settings, std::vector<std::unique_ptr<Key>> keys, bool from_jwks);
  const Key* choose_key(std::string_view kid, bool has_kid, std::string& problem) const;

  JwtSettings settings_;
  std::vector<std::unique_ptr<Key>> keys_;
  bool from_jwks_;
};

// Where a token comes from (browsers cannot set headers on a WebSocket):
// "Bearer T" (the scheme in any case).
std::optional<std::string> bearer_from_authorization(std::string_view header_value);
// The first access_token=T of a query string (without the '?'), decoded as
// application/x-www-form-urlencoded.
std::optional<std::string> token_from_query(std::string_view query);
// The first offered subprotocol "bearer.T". The server must never echo it.
inline constexpr std::string_view kBearerSubprotocolPrefix = "bearer.";
std::optional<std::string> token_from_subprotocols(const std::vector<std::string>& offered);

// The request target ("/path?query") for logs, with the value of every
// parameter token_from_query would read as access_token replaced by
// "REDACTED".
std::string redact_target(std::string_view target);

}  // namespace kws
