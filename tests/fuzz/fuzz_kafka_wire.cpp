// libFuzzer target for the front end's Kafka frame parsers and rewriters
// (core/kafka/kafka_wire.cpp): every byte a client sends reaches them before
// anything else. Build and run: see tests/fuzz/CMakeLists.txt.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/kafka/kafka_wire.hpp"

using namespace kws::wire;

namespace {
std::optional<std::pair<std::string, int32_t>> map_any(const std::string& host, int32_t port) {
  if (port % 2 == 0) return std::make_pair(host + "-front", port + 1);
  return std::nullopt;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view frame(reinterpret_cast<const char*>(data), size);

  // As a request from a client.
  if (auto header = parse_request_header(frame)) {
    if (auto req = parse_metadata_request(*header, frame, 64)) {
      std::string out = encode_metadata_request(frame, *header, 2, req->topics);
      if (auto h2 = parse_request_header(out)) parse_metadata_request(*h2, out);
    }
    rewrite_list_offsets_request(*header, frame);
    cap_join_group_session_timeout(*header, frame, 6000);
    produce_expects_response(*header, frame);
    if (auto group = parse_group_request(*header, frame)) {
      std::string out = encode_group_error_response(*header, *group, kUnknownMemberId);
      parse_group_response(header->api_key, header->api_version, out);
    }
    encode_placeholder_request(frame, *header);
    if (auto create = parse_create_topics_request(*header, frame, 64)) {
      std::vector<TopicAnswer> answers;
      for (const auto& t : create->topics) answers.push_back({t.name, kInvalidConfig, t.first_config});
      encode_create_topics_response(header->correlation_id, header->api_version, answers);
    }
    if (auto names = parse_delete_topics_request(*header, frame, 64)) {
      std::vector<TopicAnswer> answers;
      for (const auto& n : names->names) answers.push_back({n, kTopicDeletionDisabled, ""});
      encode_delete_topics_response(header->correlation_id, header->api_version, answers);
    }
    if (parse_fetch_wait(*header, frame)) {
      std::string out = with_fetch_max_wait(*header, frame, 0);
      if (auto h2 = parse_request_header(out)) parse_fetch_wait(*h2, out);
    }
  }

  // As a response from the mock, at every version the front end rewrites.
  const AddressMap map = map_any;
  for (int16_t v = 0; v <= 2; ++v) {
    for (int16_t client = v; client <= 4; ++client) {
      rewrite_metadata_response(frame, v, client, map, {{"x", kUnknownTopicOrPartition}});
    }
    rewrite_find_coordinator_response(frame, v, map);
    rewrite_api_versions_response(frame, v);
  }
  for (int16_t v = 0; v <= 5; ++v) parse_group_response(kJoinGroup, v, frame);
  parse_group_response(kLeaveGroup, 1, frame);
  for (int16_t v = 0; v <= 11; ++v) fetch_response_record_bytes(frame, v);
  return 0;
}
