#pragma once
// The few Kafka protocol messages the embedded broker's front end must read
// or rewrite (see core/kafka/broker_frontend.hpp for why). Pure functions on
// frames (the bytes after the 4-byte size prefix), so they are unit-tested
// without sockets. Only the non-flexible versions librdkafka 2.0's mock
// cluster speaks are handled; callers pass anything else through untouched.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kws::wire {

enum ApiKey : int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kOffsetCommit = 8,
  kFindCoordinator = 10,
  kJoinGroup = 11,
  kHeartbeat = 12,
  kLeaveGroup = 13,
  kSyncGroup = 14,
  kListGroups = 16,
  kApiVersions = 18,
  kCreateTopics = 19,
  kDeleteTopics = 20,
};
// The newest versions the front end answers itself (the last before flexible
// encodings); the mock has neither request.
inline constexpr int16_t kCreateTopicsMaxVersion = 4;
inline constexpr int16_t kDeleteTopicsMaxVersion = 3;
inline constexpr int16_t kUnknownTopicOrPartition = 3;
inline constexpr int16_t kUnknownServerError = -1;
inline constexpr int16_t kInvalidTopic = 17;
inline constexpr int16_t kTopicAlreadyExists = 36;
inline constexpr int16_t kInvalidPartitions = 37;
inline constexpr int16_t kInvalidReplicationFactor = 38;
inline constexpr int16_t kInvalidReplicaAssignment = 39;
inline constexpr int16_t kInvalidConfig = 40;
inline constexpr int16_t kInvalidRequest = 42;
inline constexpr int16_t kTopicDeletionDisabled = 73;
inline constexpr int16_t kInconsistentGroupProtocol = 23;
inline constexpr int16_t kInvalidGroupId = 24;
inline constexpr int16_t kUnknownMemberId = 25;
inline constexpr int16_t kThrottlingQuotaExceeded = 89;

// A topic the front end answers for itself, with an error instead of metadata.
struct TopicError {
  std::string name;
  int16_t error = kUnknownTopicOrPartition;
};

struct RequestHeader {
  int16_t api_key = -1;
  int16_t api_version = -1;
  int32_t correlation_id = 0;
  size_t body_offset = 0;  // where the request body starts in the frame
};
std::optional<RequestHeader> parse_request_header(std::string_view frame);

// Metadata request v0-v4. `topics` is nullopt for "all topics". Names are
// kept once each, in first-seen order (a real broker reads them into a set):
// a request repeating one name a million times costs one entry.
struct MetadataRequest {
  std::optional<std::vector<std::string>> topics;
  bool allow_auto_create = true;  // v4+ field; earlier versions always allow
  bool too_many_topics = false;   // more than max_topics distinct names; topics then incomplete
};
std::optional<MetadataRequest> parse_metadata_request(const RequestHeader& header, std::string_view frame,
                                                      size_t max_topics = SIZE_MAX);

// Produce request v0-v7: whether the client expects a response (acks != 0).
// Unreadable requests count as expecting one.
bool produce_expects_response(const RequestHeader& header, std::string_view frame);

// Fetch request v0-v11: how long the client lets the broker wait for data,
// and how many bytes it wants before an answer.
struct FetchWait {
  int32_t max_wait_ms = 0;
  int32_t min_bytes = 0;
};
std::optional<FetchWait> parse_fetch_wait(const RequestHeader& header, std::string_view frame);

// The Fetch request v0-v11 `frame` with its wait replaced by `max_wait_ms`.
std::string with_fetch_max_wait(const RequestHeader& header, std::string_view frame, int32_t max_wait_ms);

// Fetch response v0-v11: how many bytes of records it carries. nullopt when
// it cannot be read to its end, names an error (top-level or in any
// partition) or a preferred read replica: such an answer must reach the
// client at once.
std::optional<int64_t> fetch_response_record_bytes(std::string_view frame, int16_t version);

// Re-encodes a Metadata request at `version` (0-2) with `topics`, keeping the
// original header's correlation id and client id.
std::string encode_metadata_request(std::string_view original_frame, const RequestHeader& header,
                                    int16_t version, const std::optional<std::vector<std::string>>& topics);

using AddressMap = std::function<std::optional<std::pair<std::string, int32_t>>(const std::string& host, int32_t port)>;

// Rewrites a Metadata response the broker sent at `broker_version` (0-2) into
// `client_version` (>= broker_version, <= 4): broker addresses go through
// `map`, `missing_topics` are appended with their error codes, and a
// controller id that names no listed broker becomes the lowest listed one.
// Returns nullopt when the frame cannot be parsed.
std::optional<std::string> rewrite_metadata_response(std::string_view frame, int16_t broker_version,
                                                     int16_t client_version, const AddressMap& map,
                                                     const std::vector<TopicError>& missing_topics);

// FindCoordinator response v0-v2: the coordinator address goes through `map`.
std::optional<std::string> rewrite_find_coordinator_response(std::string_view frame, int16_t version,
                                                             const AddressMap& map);

// ListOffsets request v0-v5: every lookup by timestamp (>= 0) becomes a
// lookup of the earliest offset (-2). The mock keeps no time index and
// answers -1 ("none") to every timestamp; the earliest offset is a correct
// superset, and `kws tail` skips the older messages itself. Returns nullopt
// when nothing needed changing or the frame cannot be parsed.
std::optional<std::string> rewrite_list_offsets_request(const RequestHeader& header, std::string_view frame);

// JoinGroup request v0-v5: caps session_timeout_ms at `max_ms`. The mock
// waits a whole session timeout (45 s by default) before letting a group
// that a member left rebalance again. Returns nullopt when nothing changed.
std::optional<std::string> cap_join_group_session_timeout(const RequestHeader& header, std::string_view frame,
                                                          int32_t max_ms);

// The group requests librdkafka 2.0's mock serves: JoinGroup v0-v5,
// Heartbeat v0-v3, LeaveGroup v0-v1, SyncGroup v0-v3, OffsetCommit v0-v7.
// The mock dereferences a null group id or member id (and aborts when the
// members of a group share no protocol), so the front end reads these first.
bool is_group_request(const RequestHeader& header);

struct GroupRequest {
  std::optional<std::string> group;      // nullopt: null on the wire
  std::optional<std::string> member;     // nullopt: null (or absent in OffsetCommit v0)
  bool null_member_inside = false;       // a null member id in SyncGroup's assignments
  int32_t session_timeout_ms = 0;        // JoinGroup
  int32_t rebalance_timeout_ms = 0;      // JoinGroup v1+ (v0: the session timeout)
  std::optional<std::string> protocol_type;  // JoinGroup
  std::vector<std::string> protocols;    // JoinGroup protocol names, in order (nulls skipped)
  bool null_protocol = false;            // JoinGroup: a null protocol name
  // OffsetCommit: the partitions named, to answer each with an error.
  std::vector<std::pair<std::string, std::vector<int32_t>>> partitions;
};
// nullopt when the request cannot be read to its end (or is not a group
// request of a version listed above).
std::optional<GroupRequest> parse_group_request(const RequestHeader& header, std::string_view frame);

// The response a broker gives to the group request `header` when it fails
// as a whole with `error` (for OffsetCommit: every partition of `request`).
std::string encode_group_error_response(const RequestHeader& header, const GroupRequest& request, int16_t error);

// Error code and member id of a JoinGroup v0-v5 response; error code of a
// LeaveGroup v0-v1 response (member id empty). nullopt when unreadable.
struct GroupResponse {
  int16_t error = 0;
  std::string member;
};
std::optional<GroupResponse> parse_group_response(int16_t api_key, int16_t version, std::string_view frame);

// A request the mock answers cheaply and in order (ApiVersions v0) with the
// original correlation id, to stand in for a request the front end answers
// itself: the response slot stays in sequence with the others.
std::string encode_placeholder_request(std::string_view original_frame, const RequestHeader& header);

// ListGroups response v0-v2 listing `groups` (group id, protocol type).
std::string encode_list_groups_response(int32_t correlation_id, int16_t version,
                                        const std::vector<std::pair<std::string, std::string>>& groups);

// CreateTopics request v0-v4: what each topic asks for. Configs and replica
// assignments are kept only as far as the front end needs to refuse them.
struct NewTopicRequest {
  std::string name;
  int32_t partitions = -1;    // -1 (v4+): the broker's default
  int16_t replication = -1;   // -1 (v4+): the broker's default
  bool has_assignments = false;
  size_t configs = 0;
  std::string first_config;  // its name, for the refusal
};
struct CreateTopicsRequest {
  std::vector<NewTopicRequest> topics;  // incomplete when too_many_topics
  int32_t timeout_ms = 0;
  bool validate_only = false;  // v1+
  bool too_many_topics = false;  // more than max_topics
};
std::optional<CreateTopicsRequest> parse_create_topics_request(const RequestHeader& header, std::string_view frame,
                                                               size_t max_topics = SIZE_MAX);

// One topic's answer in a CreateTopics or DeleteTopics response.
struct TopicAnswer {
  std::string name;
  int16_t error = 0;
  std::string message;  // CreateTopics v1+ only; empty: null
};
// CreateTopics response v0-v4.
std::string encode_create_topics_response(int32_t correlation_id, int16_t version,
                                          const std::vector<TopicAnswer>& topics);

// DeleteTopics request v0-v3: the names (null names are dropped).
struct DeleteTopicsRequest {
  std::vector<std::string> names;  // incomplete when too_many_topics
  bool too_many_topics = false;    // more than max_topics
};
std::optional<DeleteTopicsRequest> parse_delete_topics_request(const RequestHeader& header, std::string_view frame,
                                                               size_t max_topics = SIZE_MAX);
// DeleteTopics response v0-v3 (no messages before v5).
std::string encode_delete_topics_response(int32_t correlation_id, int16_t version,
                                          const std::vector<TopicAnswer>& topics);

// ApiVersions response v0-v2: raises the advertised Metadata max version from
// 2 to 4, so that clients can say whether they want topics auto-created, and
// adds ListGroups v0-v2, CreateTopics v0-v4 and DeleteTopics v0-v3, which the
// front end answers itself.
std::optional<std::string> rewrite_api_versions_response(std::string_view frame, int16_t version);

}  // namespace kws::wire
