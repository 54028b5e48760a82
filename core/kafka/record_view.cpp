#include "core/kafka/record_view.hpp"

namespace kws {

namespace {

TimestampType convert_timestamp_type(rd_kafka_timestamp_type_t t) {
  switch (t) {
    case RD_KAFKA_TIMESTAMP_CREATE_TIME: return TimestampType::create_time;
    case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME: return TimestampType::log_append_time;
    default: return TimestampType::none;
  }
}

std::optional<std::string_view> bytes(const void* data, size_t size) {
  if (!data) return std::nullopt;
  return std::string_view(static_cast<const char*>(data), size);
}

}  // namespace

void fill_message_view(const rd_kafka_message_t* msg, const char* topic, bool want_headers, MessageView& view) {
  view.topic = topic;
  view.partition = msg->partition;
  view.offset = msg->offset;
  rd_kafka_timestamp_type_t tstype;
  view.timestamp_ms = rd_kafka_message_timestamp(msg, &tstype);
  view.timestamp_type = convert_timestamp_type(tstype);
  view.key = bytes(msg->key, msg->key_len);
  view.value = bytes(msg->payload, msg->len);
  view.headers.clear();
  if (!want_headers) return;
  rd_kafka_headers_t* headers = nullptr;
  // rd_kafka_message_headers takes a non-const message: it parses lazily.
  if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(msg), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  const char* name;
  const void* value;
  size_t size;
  for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
    view.headers.push_back({name, bytes(value, size)});
  }
}

bool StartTimeFilter::admit(const char* topic, int32_t partition, int64_t timestamp_ms) {
  if (start_ms_ < 0) return true;
  std::pair<std::string, int32_t> tp{topic, partition};
  if (reached_.count(tp)) return true;
  if (timestamp_ms < start_ms_) return false;
  reached_.insert(std::move(tp));
  return true;
}

}  // namespace kws
