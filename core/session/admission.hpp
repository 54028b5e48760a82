#pragma once
// Where every topic a client names enters the bridge: the connect query, a
// subscribe frame, a JSON produce and a binary produce. One function decides,
// so a rule (a name Kafka would refuse, a limit per session, and later the
// gateway's ACLs) can never be skipped by one of the four doors.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/auth/principal.hpp"
#include "core/client_error.hpp"
#include "core/hub/frame.hpp"

namespace kws {

// TopicAction and Principal (who is asking, and their grants) live in
// core/auth/principal.hpp, with the token that yields them.

// The authorisation seam: GrantsAuthorizer (the token's ACL claim) in the
// server, others in tests.
class Authorizer {
 public:
  virtual ~Authorizer() = default;
  virtual bool allows(const Principal& principal, std::string_view topic, TopicAction action) const = 0;
  // Whether a session may read as consumer group `group` (group.id).
  virtual bool allows_group(const Principal& principal, std::string_view group) const = 0;
};

// The gateway's rule: a principal's grants (its token's ACL claim) decide;
// a principal without grants (no authentication configured, or a client
// certificate alone) is not restricted.
class GrantsAuthorizer : public Authorizer {
 public:
  bool allows(const Principal& principal, std::string_view topic, TopicAction action) const override {
    return principal.allows(topic, action);
  }
  bool allows_group(const Principal& principal, std::string_view group) const override {
    return !principal.grants || principal.grants->allows_group(group);
  }
};

// `serve.topics_allow`: a bridge-wide list of topic name patterns ('*' as
// in name_matches, core/auth/principal.hpp) over another authorizer (the
// gateway's grants). A topic must match a pattern AND be allowed by `inner`;
// an empty list restricts nothing. Client-visible names (before the topic
// prefix, core/transform/pipeline.hpp).
class TopicAllowList : public Authorizer {
 public:
  TopicAllowList(const Authorizer& inner, std::vector<std::string> patterns)
      : inner_(inner), patterns_(std::move(patterns)) {}
  bool allows(const Principal& principal, std::string_view topic, TopicAction action) const override;
  bool allows_group(const Principal& principal, std::string_view group) const override {
    return inner_.allows_group(principal, group);
  }

 private:
  const Authorizer& inner_;
  std::vector<std::string> patterns_;
};

class AllowEveryone : public Authorizer {
 public:
  bool allows(const Principal&, std::string_view, TopicAction) const override { return true; }
  bool allows_group(const Principal&, std::string_view) const override { return true; }
};

struct Refusal {
  ClientError error = ClientError::bad_topic;
  std::string why;
};

// Whether `principal` may `action` on `topic` as a session with `encoding`
// (kafka-binary cannot name a topic over 255 bytes).
std::optional<Refusal> admit_topic(std::string_view topic, TopicAction action, Encoding encoding,
                                   const Principal& principal, const Authorizer& authorizer);

}  // namespace kws
