#include "core/outgoing.hpp"

namespace kws {

std::optional<std::string> prepare_envelope_record(const Message& env, const RecordPolicy& policy,
                                                   PreparedRecord& out) {
  out.topic = policy.topic.empty() ? env.topic : policy.topic;
  if (out.topic.empty()) return std::string("the envelope names no \"topic\"");
  if (!policy.partition && policy.keep_envelope_partition && env.partition && policy.partition_count >= 0 &&
      *env.partition >= policy.partition_count) {
    return "partition " + std::to_string(*env.partition) + " does not exist in topic '" + out.topic + "' (it has " +
           std::to_string(policy.partition_count) + ")";
  }
  // librdkafka hands header names back as C strings; a NUL would cut them.
  for (const auto& h : env.headers) {
    if (h.name.find('\0') != std::string::npos) {
      return std::string("header name contains a NUL byte, which Kafka clients cannot read back");
    }
  }
  out.headers = env.headers;
  out.headers.insert(out.headers.end(), policy.extra_headers.begin(), policy.extra_headers.end());

  OutgoingRecord& r = out.record;
  r = OutgoingRecord{};
  r.topic = out.topic;
  if (policy.partition) {
    r.partition = policy.partition;
  } else if (policy.keep_envelope_partition) {
    r.partition = env.partition;
  }
  if (env.key) r.key = std::string_view(*env.key);
  if (policy.key) r.key = std::string_view(*policy.key);
  if (env.value) r.value = std::string_view(*env.value);
  r.headers = &out.headers;
  // Keep the producer's original time when copying; a broker-assigned
  // log-append time belongs to the source topic.
  if (env.timestamp_type == TimestampType::create_time && env.timestamp_ms) r.timestamp_ms = *env.timestamp_ms;
  return std::nullopt;
}

void prepare_plain_record(std::string_view bytes, const RecordPolicy& policy, PreparedRecord& out,
                          std::string_view topic) {
  OutgoingRecord& r = out.record;
  r = OutgoingRecord{};
  if (!topic.empty()) {
    r.topic = topic;
  } else {
    r.topic = policy.topic;
  }
  r.partition = policy.partition;
  r.value = bytes;
  if (!policy.key_delimiter.empty()) {
    auto pos = bytes.find(policy.key_delimiter);
    if (pos != std::string_view::npos) {
      r.key = bytes.substr(0, pos);
      r.value = bytes.substr(pos + policy.key_delimiter.size());
    }
  }
  if (policy.key) r.key = std::string_view(*policy.key);
  r.headers = &policy.extra_headers;
}

}  // namespace kws
