#include "core/auth/jwt.hpp"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/auth/printable.hpp"
#include "core/util/error.hpp"
#include "core/util/input.hpp"
#include "core/util/text.hpp"

namespace kws {

using auth_detail::printable;
using json = nlohmann::json;

namespace {

enum class KeyKind { hmac, rsa, ec_p256, ec_p384 };

const char* describe(KeyKind kind) {
  switch (kind) {
    case KeyKind::hmac:
      return "an HMAC secret";
    case KeyKind::rsa:
      return "an RSA key";
    case KeyKind::ec_p256:
      return "an EC P-256 key";
    case KeyKind::ec_p384:
      return "an EC P-384 key";
  }
  return "a key";
}

// How a signature is checked. HMAC goes to libjwt. Public-key signatures go
// to OpenSSL's EVP with the key parsed once at load: libjwt 1.10 parses the
// PEM key again on every call, and OpenSSL 3's decoders made that about ten
// times the cost of the RSA check itself (docs/SECURITY.md, "Token
// verification"); PS256 it does not have at all.
enum class Check { libjwt_hmac, rsa_pkcs1, rsa_pss, ecdsa };

// The algorithms kws accepts, each with the one kind of key it may be
// checked with. Deciding this from the token's "alg" before any library
// sees the token is what stops key confusion (an RS256 public key used as
// an HS256 secret, ES256 checked against a P-384 key).
struct Algorithm {
  std::string_view name;
  KeyKind kind;
  Check check;
  const char* digest;  // for EVP
  jwt_alg_t libjwt;    // for libjwt (HMAC only)
};
constexpr Algorithm kAlgorithms[] = {
    {"HS256", KeyKind::hmac, Check::libjwt_hmac, nullptr, JWT_ALG_HS256},
    {"HS384", KeyKind::hmac, Check::libjwt_hmac, nullptr, JWT_ALG_HS384},
    {"HS512", KeyKind::hmac, Check::libjwt_hmac, nullptr, JWT_ALG_HS512},
    {"RS256", KeyKind::rsa, Check::rsa_pkcs1, "SHA256", JWT_ALG_INVAL},
    {"RS384", KeyKind::rsa, Check::rsa_pkcs1, "SHA384", JWT_ALG_INVAL},
    {"RS512", KeyKind::rsa, Check::rsa_pkcs1, "SHA512", JWT_ALG_INVAL},
    {"PS256", KeyKind::rsa, Check::rsa_pss, "SHA256", JWT_ALG_INVAL},
    {"ES256", KeyKind::ec_p256, Check::ecdsa, "SHA256", JWT_ALG_INVAL},
    {"ES384", KeyKind::ec_p384, Check::ecdsa, "SHA384", JWT_ALG_INVAL},
};

const Algorithm* find_algorithm(std::string_view name) {
  for (const auto& a : kAlgorithms) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

constexpr size_t kMinSecretBytes = 32;
constexpr int kMinRsaBits = 2048;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// RFC 7515's base64url without padding, strictly: no other characters, no
// impossible length, no stray bits in the last character (so one token has
// one spelling).
bool base64url_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 == 1) return false;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const int v = base64url_value(c);
    if (v < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  return (bits & ((1u << count) - 1)) == 0;
}

const unsigned char* bytes_of(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// The kind of a public key, or the reason kws cannot use it.
std::optional<KeyKind> kind_of(EVP_PKEY* key, std::string& problem) {
  if (EVP_PKEY_is_a(key, "RSA")) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits < kMinRsaBits) {
      problem = "an RSA key of " + std::to_string(bits) + " bits; at least " + std::to_string(kMinRsaBits) +
                " are needed";
      return std::nullopt;
    }
    return KeyKind::rsa;
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t length = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof group, &length) == 1) {
      if (std::string_view(group) == "prime256v1") return KeyKind::ec_p256;
      if (std::string_view(group) == "secp384r1") return KeyKind::ec_p384;
    }
    problem = std::string("an EC key on curve ") + (group[0] ? group : "(unnamed)") +
              "; only P-256 (ES256) and P-384 (ES384) are supported";
    return std::nullopt;
  }
  const char* type = EVP_PKEY_get0_type_name(key);
  problem = std::string("a ") + (type ? type : "unknown") + " key; only RSA and EC keys are supported";
  return std::nullopt;
}

std::string read_key_source(const std::string& path) {
  try {
    return read_whole_file(path);
  } catch (const Error& e) {
    throw usage_error(e.what());
  }
}

}  // namespace

struct TokenVerifier::Key {
  KeyKind kind = KeyKind::hmac;
  std::string kid;       // JWKS only
  std::string alg;       // JWK "alg": the only algorithm this key may check; "" any of its kind
  std::string unusable;  // JWKS: why a listed key cannot check tokens ("use" enc, kty OKP); "" usable
  std::string secret;    // HMAC: what libjwt takes
  PkeyPtr pkey;          // RSA and EC: for EVP, parsed once
};

namespace {

using Key = TokenVerifier::Key;

std::unique_ptr<Key> load_secret(const std::string& path) {
  std::string secret = read_key_source(path);
  if (secret.size() >= 1 && secret.back() == '\n') secret.pop_back();
  if (secret.size() >= 1 && secret.back() == '\r') secret.pop_back();
  if (secret.size() < kMinSecretBytes) {
    throw usage_error(path + ": a JWT secret of " + std::to_string(secret.size()) + " bytes; at least " +
                      std::to_string(kMinSecretBytes) + " are needed (RFC 7518 section 3.2)");
  }
  auto key = std::make_unique<Key>();
  key->kind = KeyKind::hmac;
  key->secret = std::move(secret);
  return key;
}

std::unique_ptr<Key> key_from_pkey(PkeyPtr pkey, std::string& problem) {
  auto kind = kind_of(pkey.get(), problem);
  if (!kind) return nullptr;
  auto key = std::make_unique<Key>();
  key->kind = *kind;
  key->pkey = std::move(pkey);
  return key;
}

std::unique_ptr<Key> load_pem(const std::string& path) {
  const std::string text = read_key_source(path);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())),
                                                BIO_free);
  PkeyPtr pkey(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!pkey) {
    std::string hint;
    if (text.find("BEGIN CERTIFICATE") != std::string::npos) {
      hint = " (it holds a certificate: openssl x509 -pubkey -noout -in FILE prints its key)";
    } else if (text.find("PRIVATE KEY") != std::string::npos) {
      hint = " (it holds a private key: openssl pkey -pubout -in FILE prints the public one)";
    }
    throw usage_error(path + ": not a PEM public key (-----BEGIN PUBLIC KEY-----)" + hint);
  }
  std::string problem;
  auto key = key_from_pkey(std::move(pkey), problem);
  if (!key) throw usage_error(path + ": " + problem);
  return key;
}

// A JWK member that holds a base64url number or coordinate.
std::string jwk_bytes(const json& jwk, const char* name) {
  auto it = jwk.find(name);
  std::string out;
  if (it == jwk.end() || !it->is_string() || !base64url_decode(it->get_ref<const std::string&>(), out) ||
      out.empty()) {
    throw std::invalid_argument(std::string("\"") + name + "\" is missing or not base64url");
  }
  return out;
}

// A JWK (RFC 7518 section 6) as an OpenSSL key, built from its parameters
// with EVP_PKEY_fromdata and checked with EVP_PKEY_public_check (an EC point
// must be on its curve). Throws std::invalid_argument with the problem.
PkeyPtr pkey_from_jwk(const json& jwk, const std::string& kty) {
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> build(OSSL_PARAM_BLD_new(),
                                                                        OSSL_PARAM_BLD_free);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> n(nullptr, BN_free), e(nullptr, BN_free);
  std::string point;
  const char* type = nullptr;
  if (!build) throw std::invalid_argument("out of memory");
  if (kty == "RSA") {
    type = "RSA";
    const std::string n_bytes = jwk_bytes(jwk, "n"), e_bytes = jwk_bytes(jwk, "e");
    n.reset(BN_bin2bn(bytes_of(n_bytes), static_cast<int>(n_bytes.size()), nullptr));
    e.reset(BN_bin2bn(bytes_of(e_bytes), static_cast<int>(e_bytes.size()), nullptr));
    if (!n || !e || OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
      throw std::invalid_argument("OpenSSL refused n or e");
    }
  } else {
    type = "EC";
    auto crv = jwk.find("crv");
    const std::string curve = crv != jwk.end() && crv->is_string() ? crv->get<std::string>() : "";
    const char* group = curve == "P-256" ? "prime256v1" : curve == "P-384" ? "secp384r1" : nullptr;
    if (!group)
      throw std::invalid_argument("crv \"" + printable(curve) + "\"; only P-256 and P-384 are supported");
    const size_t size = curve == "P-256" ? 32 : 48;
    const std::string x = jwk_bytes(jwk, "x"), y = jwk_bytes(jwk, "y");
    if (x.size() != size || y.size() != size) {
      throw std::invalid_argument("x and y must be " + std::to_string(size) + " bytes each on " + curve);
    }
    point = '\x04' + x + y;  // SEC 1 uncompressed point
    if (OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) !=
            1) {
      throw std::invalid_argument("OpenSSL refused the point");
    }
  }
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(build.get()),
                                                                 OSSL_PARAM_free);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    // OpenSSL 3.0 decodes the point here, and refuses one off the curve.
    throw std::invalid_argument(kty == "EC" ? "the point is not on the curve" : "OpenSSL refused the key");
  }
  PkeyPtr pkey(raw);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> check(
      EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr), EVP_PKEY_CTX_free);
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    throw std::invalid_argument(kty == "EC" ? "the point is not on the curve" : "not a valid RSA public key");
  }
  return pkey;
}

std::string string_member(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end()) return {};
  if (!it->is_string()) throw std::invalid_argument(std::string("\"") + name + "\" is not a string");
  return it->get<std::string>();
}

std::vector<std::unique_ptr<Key>> load_jwks(const std::string& path) {
  const std::string text = read_key_source(path);
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw usage_error(path + ": not JSON");
  auto list = doc.is_object() ? doc.find("keys") : doc.end();
  if (!doc.is_object() || list == doc.end() || !list->is_array()) {
    throw usage_error(path + ": not a JWKS document ({\"keys\":[...]})");
  }
  std::vector<std::unique_ptr<Key>> keys;
  size_t usable = 0;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& jwk = (*list)[i];
    std::string kid;
    try {
      if (!jwk.is_object()) throw std::invalid_argument("not an object");
      kid = string_member(jwk, "kid");
      const std::string kty = string_member(jwk, "kty");
      const std::string use = string_member(jwk, "use");
      const std::string alg = string_member(jwk, "alg");
      auto key = std::make_unique<Key>();
      if (!use.empty() && use != "sig") {
        key->unusable = "is for \"" + printable(use) + "\", not for signatures";
      } else if (kty != "RSA" && kty != "EC") {
        // Providers publish other kinds next to RSA (OKP, oct): skipped, not
        // refused, so their whole set stays usable.
        key->unusable = "has kty \"" + printable(kty) + "\"; only RSA and EC are supported";
      } else if (!alg.empty() && !find_algorithm(alg)) {
        key->unusable = "is for alg \"" + printable(alg) + "\", which kws does not support";
      } else {
        std::string problem;
        auto made = key_from_pkey(pkey_from_jwk(jwk, kty), problem);
        if (!made) throw std::invalid_argument(problem);
        if (!alg.empty() && find_algorithm(alg)->kind != made->kind) {
          throw std::invalid_argument("alg " + alg + " does not fit " + describe(made->kind));
        }
        key = std::move(made);
        key->alg = alg;
        ++usable;
      }
      key->kid = kid;
      keys.push_back(std::move(key));
    } catch (const std::invalid_argument& e) {
      throw usage_error(path + ": key " + std::to_string(i) +
                        (kid.empty() ? "" : " (kid \"" + printable(kid) + "\")") + ": " + e.what());
    }
  }
  if (usable == 0) throw usage_error(path + ": no RSA or EC signing key in the set");
  return keys;
}

// Whether a NumericDate claim is present, and its value; `problem` set when
// it is not a number.
std::optional<double> numeric_date(const json& claims, const char* name, std::string& problem) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  if (!it->is_number()) {
    problem = std::string(name) + " is not a number";
    return std::nullopt;
  }
  return it->get<double>();
}

bool audience_holds(const json& aud, const std::string& wanted) {
  if (aud.is_string()) return aud.get_ref<const std::string&>() == wanted;
  if (!aud.is_array()) return false;
  for (const auto& a : aud) {
    if (a.is_string() && a.get_ref<const std::string&>() == wanted) return true;
  }
  return false;
}

// A public-key signature (RFC 7518 sections 3.3 to 3.5) with EVP. For PSS:
// MGF1 with the same hash, a salt as long as the hash. For ECDSA the JWS
// signature is R and S side by side, each the curve's size, which OpenSSL
// wants as DER.
bool verify_with_evp(const Algorithm& alg, EVP_PKEY* key, std::string_view signed_part,
                     std::string_view signature) {
  std::string der;
  if (alg.check == Check::ecdsa) {
    const size_t half = alg.kind == KeyKind::ec_p256 ? 32 : 48;
    if (signature.size() != 2 * half) return false;
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), ECDSA_SIG_free);
    BIGNUM* r = BN_bin2bn(bytes_of(signature), static_cast<int>(half), nullptr);
    BIGNUM* s = BN_bin2bn(bytes_of(signature) + half, static_cast<int>(half), nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
      BN_free(r);
      BN_free(s);
      return false;
    }
    unsigned char* out = nullptr;
    const int length = i2d_ECDSA_SIG(sig.get(), &out);
    if (length <= 0) return false;
    der.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(length));
    OPENSSL_free(out);
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestVerifyInit_ex(ctx.get(), &pctx, alg.digest, nullptr, nullptr, key, nullptr) != 1)
    return false;
  if (alg.check == Check::rsa_pkcs1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
    return false;
  if (alg.check == Check::rsa_pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                      EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, alg.digest, nullptr) != 1 ||
                                      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), bytes_of(signature), signature.size(), bytes_of(signed_part),
                          signed_part.size()) == 1;
}

// libjwt's check of an HMAC (it also parses the token again, with jansson).
// `alg` is what kws read from the header; libjwt must have read the same, or
// the two parsers disagree about the token (duplicate "alg" members) and it
// is refused.
bool verify_with_libjwt(const std::string& token, const std::string& secret, jwt_alg_t alg) {
  jwt_t* decoded = nullptr;
  const int status = jwt_decode(&decoded, token.c_str(), bytes_of(secret), static_cast<int>(secret.size()));
  const bool ok = status == 0 && decoded && jwt_get_alg(decoded) == alg;
  jwt_free(decoded);
  return ok;
}

TokenVerifier::Result refuse(std::string problem) { return {std::nullopt, std::move(problem)}; }

}  // namespace

TokenVerifier::TokenVerifier(JwtSettings settings, std::vector<std::unique_ptr<Key>> keys, bool from_jwks)
    : settings_(std::move(settings)), keys_(std::move(keys)), from_jwks_(from_jwks) {}

TokenVerifier::~TokenVerifier() = default;

std::shared_ptr<const TokenVerifier> TokenVerifier::load(const JwtSettings& settings) {
  const int sources =
      !settings.secret_file.empty() + !settings.key_file.empty() + !settings.jwks_file.empty();
  if (sources == 0)
    throw usage_error("no JWT key source: give a secret file, a public key file or a JWKS file");
  if (sources > 1) {
    throw usage_error(
        "more than one JWT key source (secret file, public key file, JWKS file): give exactly one, "
        "so which key checks a token is never in doubt");
  }
  if (settings.leeway.count() < 0) throw usage_error("the JWT leeway cannot be negative");
  if (settings.acl_claim.empty()) throw usage_error("the ACL claim name cannot be empty");
  std::vector<std::unique_ptr<Key>> keys;
  if (!settings.secret_file.empty()) keys.push_back(load_secret(settings.secret_file));
  if (!settings.key_file.empty()) keys.push_back(load_pem(settings.key_file));
  if (!settings.jwks_file.empty()) keys = load_jwks(settings.jwks_file);
  return std::shared_ptr<const TokenVerifier>(
      new TokenVerifier(settings, std::move(keys), !settings.jwks_file.empty()));
}

const TokenVerifier::Key* TokenVerifier::choose_key(std::string_view kid, bool has_kid,
                                                    std::string& problem) const {
  // A secret or a PEM key is the one key, whatever kid the token names.
  if (!from_jwks_) return keys_.front().get();
  if (!has_kid) {
    if (keys_.size() == 1 && keys_.front()->unusable.empty()) return keys_.front().get();
    problem = "token has no kid, and the key set has " + std::to_string(keys_.size()) + " keys";
    return nullptr;
  }
  for (const auto& key : keys_) {
    if (key->kid != kid) continue;
    if (!key->unusable.empty()) {
      problem = "key \"" + printable(kid) + "\" " + key->unusable;
      return nullptr;
    }
    return key.get();
  }
  problem = "unknown key id \"" + printable(kid) + "\"";
  return nullptr;
}

TokenVerifier::Result TokenVerifier::verify(std::string_view token,
                                            std::chrono::system_clock::time_point now) const {
  if (token.empty()) return refuse("empty token");
  if (token.size() > kMaxTokenBytes)
    return refuse("token longer than " + std::to_string(kMaxTokenBytes) + " bytes");

  // header.payload.signature, each base64url.
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return refuse("malformed token: not three dot-separated parts");
  }
  const std::string_view header_part = token.substr(0, dot1);
  const std::string_view payload_part = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_part = token.substr(dot2 + 1);

  std::string scratch;
  if (!base64url_decode(header_part, scratch)) return refuse("malformed token: header is not base64url");
  const json header = json::parse(scratch, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return refuse("malformed token: header is not a JSON object");

  auto alg_member = header.find("alg");
  if (alg_member == header.end() || !alg_member->is_string()) return refuse("token header has no alg");
  const std::string& alg_name = alg_member->get_ref<const std::string&>();
  // "none" in any spelling: an unsigned token is never accepted, even with
  // an empty signature, whatever the key.
  if (ascii_iequals(alg_name, "none")) return refuse("alg none is refused: tokens must be signed");
  const Algorithm* alg = find_algorithm(alg_name);
  if (!alg) return refuse("unsupported alg \"" + printable(alg_name) + "\"");
  // RFC 7515 4.1.11: extensions a verifier does not understand must fail it.
  if (header.contains("crit")) return refuse("token header has crit extensions, which kws does not support");
  // libjwt 1.10 refuses any typ but JWT (case aside) after the signature
  // check; said here, it is not mistaken for a bad signature. EVP does not
  // look at typ, so OAuth's "at+jwt" (RFC 9068) passes with RS, PS and ES.
  auto typ = header.find("typ");
  if (alg->check == Check::libjwt_hmac && typ != header.end() &&
      (!typ->is_string() || !ascii_iequals(typ->get_ref<const std::string&>(), "JWT"))) {
    return refuse("token typ \"" + (typ->is_string() ? printable(typ->get_ref<const std::string&>()) : "?") +
                  "\" is not supported with HMAC (only JWT)");
  }

  auto kid_member = header.find("kid");
  if (kid_member != header.end() && !kid_member->is_string()) return refuse("token kid is not a string");
  std::string problem;
  const Key* key =
      choose_key(kid_member != header.end() ? std::string_view(kid_member->get_ref<const std::string&>())
                                            : std::string_view(),
                 kid_member != header.end(), problem);
  if (!key) return refuse(std::move(problem));
  // Before any signature check: the algorithm must be one this key is for.
  if (alg->kind != key->kind) {
    return refuse("alg " + std::string(alg->name) + " does not fit the configured key (" +
                  describe(key->kind) + ")");
  }
  if (!key->alg.empty() && key->alg != alg->name) {
    return refuse("alg " + std::string(alg->name) + " does not fit key \"" + printable(key->kid) +
                  "\" (alg " + key->alg + ")");
  }

  // The payload is read before the signature is checked only so that a
  // payload libjwt would refuse unread is named as such, not as a bad
  // signature; nothing in it counts until the signature holds.
  if (!base64url_decode(payload_part, scratch)) return refuse("malformed token: payload is not base64url");
  const json claims = json::parse(scratch, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return refuse("malformed token: payload is not a JSON object");

  bool signature_ok = false;
  if (alg->check == Check::libjwt_hmac) {
    if (signature_part.empty()) return refuse("bad signature");
    signature_ok = verify_with_libjwt(std::string(token), key->secret, alg->libjwt);
  } else {
    if (!base64url_decode(signature_part, scratch))
      return refuse("malformed token: signature is not base64url");
    signature_ok = verify_with_evp(*alg, key->pkey.get(), token.substr(0, dot2), scratch);
  }
  if (!signature_ok) return refuse("bad signature");

  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double leeway_s = static_cast<double>(settings_.leeway.count());
  const auto exp = numeric_date(claims, "exp", problem);
  const auto nbf = numeric_date(claims, "nbf", problem);
  if (!problem.empty()) return refuse(std::move(problem));
  if (exp && *exp + leeway_s < now_s) return refuse("token expired");
  if (nbf && *nbf - leeway_s > now_s) return refuse("token not yet valid");

  if (!settings_.issuer.empty()) {
    auto iss = claims.find("iss");
    if (iss == claims.end()) return refuse("token has no issuer (iss)");
    if (!iss->is_string() || iss->get_ref<const std::string&>() != settings_.issuer)
      return refuse("wrong issuer");
  }
  if (!settings_.audience.empty()) {
    auto aud = claims.find("aud");
    if (aud == claims.end()) return refuse("token has no audience (aud)");
    if (!audience_holds(*aud, settings_.audience)) return refuse("wrong audience");
  }

  Principal principal;
  auto sub = claims.find("sub");
  if (sub != claims.end()) {
    if (!sub->is_string()) return refuse("token sub is not a string");
    principal.name = sub->get<std::string>();
  }
  principal.grants.emplace();
  auto acl = claims.find(settings_.acl_claim);
  if (acl != claims.end()) {
    if (auto bad = parse_grants(*acl, *principal.grants)) {
      return refuse("claim \"" + printable(settings_.acl_claim) + "\": " + *bad);
    }
  }
  if (exp) {
    // system_clock counts nanoseconds in 64 bits, up to the year 2262: a
    // later exp is that far off, not an overflow.
    const double limit = 9.0e9;
    const double seconds = std::max(-limit, std::min(limit, *exp));
    principal.expires =
        std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(seconds)));
  }
  return {std::move(principal), {}};
}

// --- where a token comes from ---------------------------------------------

std::optional<std::string> bearer_from_authorization(std::string_view header_value) {
  const std::string_view value = trim(header_value, " \t");
  constexpr std::string_view scheme = "bearer";
  if (value.size() <= scheme.size() || !ascii_iequals(value.substr(0, scheme.size()), scheme))
    return std::nullopt;
  if (value[scheme.size()] != ' ' && value[scheme.size()] != '\t') return std::nullopt;
  const std::string_view credentials = trim(value.substr(scheme.size()), " \t");
  // RFC 6750 2.1: one token68, no blanks inside.
  if (credentials.empty() || credentials.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
  return std::string(credentials);
}

namespace {

constexpr std::string_view kTokenParameter = "access_token";

// Whether a query parameter's name, decoded, is access_token: an encoded
// spelling ("access%5Ftoken") is read, so it must be redacted too.
bool names_token(std::string_view name) {
  if (name == kTokenParameter) return true;
  if (name.find_first_of("%+") == std::string_view::npos) return false;
  auto decoded = form_decode(name);
  return decoded && *decoded == kTokenParameter;
}

// Calls `each(name, value, whole)` for every '&'-separated parameter.
template <typename Each>
void for_each_parameter(std::string_view query, Each each) {
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view part = query.substr(start, end - start);
    const size_t eq = part.find('=');
    if (!each(part.substr(0, eq), eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1),
              eq != std::string_view::npos)) {
      return;
    }
    start = end + 1;
  }
}

}  // namespace

std::optional<std::string> token_from_query(std::string_view query) {
  std::optional<std::string> token;
  for_each_parameter(query, [&](std::string_view name, std::string_view value, bool has_value) {
    if (!has_value || !names_token(name)) return true;
    token = form_decode(value);
    if (token && token->empty()) token.reset();
    return false;  // the first one decides
  });
  return token;
}

std::optional<std::string> token_from_subprotocols(const std::vector<std::string>& offered) {
  constexpr std::string_view prefix = kBearerSubprotocolPrefix;
  for (const auto& p : offered) {
    if (p.size() > prefix.size() && std::string_view(p).substr(0, prefix.size()) == prefix) {
      return p.substr(prefix.size());
    }
  }
  return std::nullopt;
}

std::string redact_target(std::string_view target) {
  const size_t question = target.find('?');
  if (question == std::string_view::npos) return std::string(target);
  // Everything after the '?' is the query, a '#' included: a target carries
  // no fragment, and whatever a server hands token_from_query must be
  // redacted here.
  std::string out(target.substr(0, question + 1));
  out.reserve(target.size());
  bool first = true;
  for_each_parameter(target.substr(question + 1),
                     [&](std::string_view name, std::string_view value, bool has_value) {
                       if (!first) out += '&';
                       first = false;
                       out.append(name);
                       if (has_value) {
                         out += '=';
                         out.append(names_token(name) ? std::string_view("REDACTED") : value);
                       }
                       return true;
                     });
  return out;
}

}  // namespace kws
