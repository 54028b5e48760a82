#include "core/client_error.hpp"

namespace kws {

std::string_view client_error_code(ClientError error) {
  switch (error) {
    case ClientError::bad_json: return "bad_json";
    case ClientError::bad_frame: return "bad_frame";
    case ClientError::unknown_type: return "unknown_type";
    case ClientError::unknown_topic: return "unknown_topic";
    case ClientError::bad_topic: return "bad_topic";
    case ClientError::bad_filter: return "bad_filter";
    case ClientError::bad_offset: return "bad_offset";
    case ClientError::bad_partition: return "bad_partition";
    case ClientError::too_large: return "too_large";
    case ClientError::not_allowed: return "not_allowed";
    case ClientError::timed_out: return "timed_out";
    case ClientError::kafka_error: return "kafka_error";
    case ClientError::group_limit: return "group_limit";
    case ClientError::catchup_limit: return "catchup_limit";
    case ClientError::topic_limit: return "topic_limit";
    case ClientError::rate_limited: return "rate_limited";
    case ClientError::bad_token: return "bad_token";
    case ClientError::internal: break;
  }
  return "internal";
}

ClientError client_error_for(ProduceError error) {
  switch (error) {
    case ProduceError::too_large: return ClientError::too_large;
    case ProduceError::unknown_topic: return ClientError::unknown_topic;
    case ProduceError::bad_partition: return ClientError::bad_partition;
    case ProduceError::not_allowed: return ClientError::not_allowed;
    case ProduceError::timed_out: return ClientError::timed_out;
    case ProduceError::none:
    case ProduceError::queue_full:
    case ProduceError::kafka_error: break;
  }
  return ClientError::kafka_error;
}

}  // namespace kws
