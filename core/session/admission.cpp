#include "core/session/admission.hpp"

#include "core/hub/encodings.hpp"
#include "core/topic_name.hpp"

namespace kws {

bool TopicAllowList::allows(const Principal& principal, std::string_view topic, TopicAction action) const {
  if (!patterns_.empty()) {
    bool listed = false;
    for (const auto& p : patterns_) listed = listed || name_matches(p, topic);
    if (!listed) return false;
  }
  return inner_.allows(principal, topic, action);
}

std::optional<Refusal> admit_topic(std::string_view topic, TopicAction action, Encoding encoding,
                                   const Principal& principal, const Authorizer& authorizer) {
  if (auto problem = topic_name_problem(topic)) return Refusal{ClientError::bad_topic, *problem};
  if (action == TopicAction::read && encoding == Encoding::kafka_binary && topic.size() > kMaxBinaryTopicLength) {
    return Refusal{ClientError::bad_topic, "kafka-binary frames cannot carry a topic name over 255 bytes"};
  }
  if (!authorizer.allows(principal, topic, action)) {
    return Refusal{ClientError::not_allowed,
                   std::string(action == TopicAction::read ? "reading" : "writing") + " this topic is not allowed"};
  }
  return std::nullopt;
}

}  // namespace kws
