#pragma once
// Who a client is and what it may touch: the principal a verified token (or,
// later, a client certificate) yields, and the topic grants of its ACL claim.
// Kept apart from how the token is checked (jwt.hpp) so the session layer
// can decide per topic without seeing any crypto.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kws {

enum class TopicAction { read, write };

// '*' matches any run of characters (possibly empty) anywhere in a pattern;
// every other character, '?' included, is literal. Linear in practice: the
// usual greedy match that backtracks only to the last '*'.
bool name_matches(std::string_view pattern, std::string_view name);

// The ACL claim {"read":[...],"write":[...],"groups":[...]}: name patterns
// of the topics a principal may read and write, and the consumer groups it
// may join. Empty lists grant nothing.
struct Grants {
  std::vector<std::string> read, write, groups;

  bool allows(std::string_view topic, TopicAction action) const;
  bool allows_group(std::string_view group) const;
};

struct Principal {
  std::string name;              // JWT "sub" (or a certificate subject later); "" anonymous
  std::optional<Grants> grants;  // nullopt: unrestricted (no authentication configured)
  std::optional<std::chrono::system_clock::time_point> expires;  // JWT "exp"; nullopt: never

  // Whether this principal may `action` on `topic`: always when unrestricted.
  bool allows(std::string_view topic, TopicAction action) const {
    return !grants || grants->allows(topic, action);
  }
};

// Reads an ACL claim into `out`. Returns the problem in words when the claim
// is not an object whose keys are among "read", "write" and "groups" (each
// optional), each a list of non-empty strings. Unknown keys are refused: the
// claim is kws's own, so an unknown key is most likely a typo ("wirte"), and
// a token refused with the key named is easier to fix than a 403 on every
// produce.
std::optional<std::string> parse_grants(const nlohmann::json& claim, Grants& out);

}  // namespace kws
