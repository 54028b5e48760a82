#include "core/message_io.hpp"

namespace kws {

std::string_view produce_error_code(ProduceError error) {
  switch (error) {
    case ProduceError::none: return "ok";
    case ProduceError::queue_full: return "queue_full";
    case ProduceError::too_large: return "too_large";
    case ProduceError::unknown_topic: return "unknown_topic";
    case ProduceError::bad_partition: return "bad_partition";
    case ProduceError::not_allowed: return "not_allowed";
    case ProduceError::timed_out: return "timed_out";
    case ProduceError::kafka_error: break;
  }
  return "kafka_error";
}

}  // namespace kws
