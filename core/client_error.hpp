#pragma once
// Why a client's request failed, as the bridge tells it (docs/PROTOCOL.md,
// "Error codes"). One enum for every place that answers a client (the hub,
// the session, the transport), so a code is never a string literal typed
// twice. The spellings are part of the wire protocol.
#include <string_view>

#include "core/message_io.hpp"

namespace kws {

enum class ClientError {
  bad_json,           // not JSON, or not an object
  bad_frame,          // a missing or wrong-typed field
  unknown_type,       // a "type" the bridge does not know
  unknown_topic,      // the topic does not exist (and may not be created)
  bad_topic,          // a name Kafka would refuse, or one this session may not use
  bad_offset,         // a start position that cannot be read (offset, resume)
  bad_filter,         // a server-side filter that is not one (docs/PROTOCOL.md, "Filters")
  bad_partition,      // the topic has no such partition
  too_large,          // over the bridge's frame limit or Kafka's message.max.bytes
  not_allowed,        // the cluster (or, later, the gateway) refused
  timed_out,          // Kafka did not confirm in time
  kafka_error,        // anything else Kafka said
  group_limit,        // too many group.id sessions on this bridge
  catchup_limit,      // too many subscriptions reading history at once; retry
  topic_limit,        // this session already uses as many topics as it may
  rate_limited,       // over the session's produce rate (--produce-rate, --produce-bytes-rate)
  bad_token,          // an `auth` frame's token failed verification (the session keeps its old one)
  internal,           // a bug: the bridge could not handle the request
};

std::string_view client_error_code(ClientError error);

// A produce failure in the client's words (ProduceError::queue_full never
// reaches a client: the session waits instead).
ClientError client_error_for(ProduceError error);

}  // namespace kws
