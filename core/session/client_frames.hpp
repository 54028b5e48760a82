#pragma once
// The messages a client sends over the kws WebSocket protocol
// (docs/PROTOCOL.md, "Client -> server"), decoded into requests as pure
// functions: no session, no Kafka, so every rule is unit-tested and fuzzed.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/client_error.hpp"
#include "core/message.hpp"
#include "core/hub/subscription.hpp"
#include "core/offset_spec.hpp"
#include "core/session/link.hpp"

namespace kws {

struct ClientRequest {
  enum class Kind { produce, subscribe, unsubscribe, auth, topics, invalid };
  Kind kind = Kind::invalid;
  // The client's "id" as JSON text (string or number), "" when none.
  std::string request_id;
  // The message used something only kws has (an "id", a "type"): its sender
  // speaks the kws protocol and wants replies.
  bool kws_only = false;

  // produce, text: the decoded envelope.
  Message message;
  // produce, binary ([1 byte topic length][topic][value]): views into the
  // payload, which must outlive the request.
  bool binary = false;
  std::string_view binary_topic;
  std::string_view binary_value;

  // subscribe, unsubscribe
  std::vector<std::string> topics;
  OffsetSpec start;                  // subscribe
  std::string start_text = "latest";
  ResumeByTopic resume;              // subscribe: "resume", for the frame's topics
  FilterPtr filter;                  // subscribe: "filter", for the frame's topics
  bool tell_caught_up = false;       // subscribe: "caught_up": true

  // auth: a fresh token for the session (gateway security).
  std::string token;

  // invalid
  ClientError error = ClientError::bad_frame;
  std::string why;
  std::string topic;  // when known
};

// Decodes one whole message. A frame over `max_frame` bytes is refused
// unread (too_large, no id).
ClientRequest decode_client_message(MessageKind kind, const std::string& payload, size_t max_frame);

}  // namespace kws
