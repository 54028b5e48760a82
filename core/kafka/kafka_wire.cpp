#include "core/kafka/kafka_wire.hpp"

#include <cstring>
#include <unordered_set>

namespace kws::wire {

namespace {

// Big-endian reader over a frame; any read past the end sets `failed`.
class Reader {
 public:
  Reader(std::string_view data, size_t pos = 0) : data_(data), pos_(pos) {}
  bool failed() const { return failed_; }
  size_t pos() const { return pos_; }

  int64_t integer(int bytes) {
    if (pos_ + bytes > data_.size()) {
      failed_ = true;
      pos_ = data_.size();
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(data_[pos_ + i]);
    pos_ += bytes;
    // Sign-extend.
    int shift = 64 - 8 * bytes;
    return static_cast<int64_t>(v << shift) >> shift;
  }
  int16_t i16() { return static_cast<int16_t>(integer(2)); }
  int32_t i32() { return static_cast<int32_t>(integer(4)); }
  int8_t i8() { return static_cast<int8_t>(integer(1)); }

  // Nullable string: nullopt for length -1.
  std::optional<std::string> string() {
    int16_t len = i16();
    if (failed_ || len < 0) return std::nullopt;
    if (pos_ + static_cast<size_t>(len) > data_.size()) {
      failed_ = true;
      return std::nullopt;
    }
    std::string s(data_.substr(pos_, static_cast<size_t>(len)));
    pos_ += static_cast<size_t>(len);
    return s;
  }
  // Like string(), without copying; `null` tells a null from an empty one.
  std::string_view string_view(bool* null = nullptr) {
    int16_t len = i16();
    if (null) *null = !failed_ && len < 0;
    if (failed_ || len < 0) return {};
    if (pos_ + static_cast<size_t>(len) > data_.size()) {
      failed_ = true;
      return {};
    }
    std::string_view s = data_.substr(pos_, static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }
  // Skips nullable bytes (int32 length, -1 for null).
  void skip_bytes() {
    int32_t len = i32();
    if (failed_ || len < 0) return;
    if (pos_ + static_cast<size_t>(len) > data_.size()) {
      failed_ = true;
      pos_ = data_.size();
      return;
    }
    pos_ += static_cast<size_t>(len);
  }
  // An array count that the rest of the frame can hold (each element takes
  // at least `min_element` bytes); a larger one is a lie and fails.
  int32_t count(size_t min_element) {
    int32_t n = i32();
    if (!failed_ && n > 0 && static_cast<size_t>(n) > (data_.size() - pos_) / min_element) {
      failed_ = true;
      pos_ = data_.size();
      return 0;
    }
    return n;
  }
  std::string_view rest() const { return data_.substr(pos_); }
  std::string_view slice(size_t from) const { return data_.substr(from, pos_ - from); }

 private:
  std::string_view data_;
  size_t pos_;
  bool failed_ = false;
};

void put(std::string& out, int64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}
void put_string(std::string& out, const std::optional<std::string>& s) {
  if (!s) {
    put(out, -1, 2);
    return;
  }
  put(out, static_cast<int64_t>(s->size()), 2);
  out += *s;
}

}  // namespace

std::optional<RequestHeader> parse_request_header(std::string_view frame) {
  Reader r(frame);
  RequestHeader h;
  h.api_key = r.i16();
  h.api_version = r.i16();
  h.correlation_id = r.i32();
  r.string();  // client id
  if (r.failed()) return std::nullopt;
  h.body_offset = r.pos();
  return h;
}

std::optional<MetadataRequest> parse_metadata_request(const RequestHeader& header, std::string_view frame,
                                                      size_t max_topics) {
  if (header.api_key != kMetadata || header.api_version < 0 || header.api_version > 4) return std::nullopt;
  Reader r(frame, header.body_offset);
  MetadataRequest req;
  int32_t count = r.count(2);
  if (count >= 0) {
    std::vector<std::string> topics;
    std::unordered_set<std::string_view> seen;
    for (int32_t i = 0; i < count && !r.failed(); ++i) {
      bool null = false;
      auto name = r.string_view(&null);
      if (null) return std::nullopt;
      if (r.failed() || !seen.insert(name).second) continue;
      if (seen.size() > max_topics) {
        req.too_many_topics = true;
        req.topics = std::move(topics);
        return req;
      }
      topics.emplace_back(name);
    }
    // In v0 an empty list means "all topics"; from v1 that is -1.
    if (!(header.api_version == 0 && topics.empty())) req.topics = std::move(topics);
  } else if (header.api_version == 0) {
    return std::nullopt;
  }
  if (header.api_version >= 4) req.allow_auto_create = r.i8() != 0;
  if (r.failed()) return std::nullopt;
  return req;
}

bool produce_expects_response(const RequestHeader& header, std::string_view frame) {
  if (header.api_key != kProduce || header.api_version < 0 || header.api_version > 7) return true;
  Reader r(frame, header.body_offset);
  if (header.api_version >= 3) r.string_view();  // transactional id
  int16_t acks = r.i16();
  return r.failed() || acks != 0;
}

std::optional<FetchWait> parse_fetch_wait(const RequestHeader& header, std::string_view frame) {
  if (header.api_key != kFetch || header.api_version < 0 || header.api_version > 11) return std::nullopt;
  Reader r(frame, header.body_offset);
  r.i32();  // replica id
  FetchWait w;
  w.max_wait_ms = r.i32();
  w.min_bytes = r.i32();
  if (r.failed()) return std::nullopt;
  return w;
}

std::string with_fetch_max_wait(const RequestHeader& header, std::string_view frame, int32_t max_wait_ms) {
  std::string out(frame);
  size_t at = header.body_offset + 4;  // after the replica id
  if (at + 4 > out.size()) return out;
  for (int i = 0; i < 4; ++i) out[at + static_cast<size_t>(i)] = static_cast<char>((max_wait_ms >> (8 * (3 - i))) & 0xFF);
  return out;
}

std::optional<int64_t> fetch_response_record_bytes(std::string_view frame, int16_t version) {
  if (version < 0 || version > 11) return std::nullopt;
  Reader r(frame);
  r.i32();  // correlation id
  if (version >= 1) r.i32();  // throttle time
  if (version >= 7) {
    if (r.i16() != 0) return std::nullopt;
    r.i32();  // session id
  }
  int64_t bytes = 0;
  int32_t topics = r.count(6);
  for (int32_t t = 0; t < topics && !r.failed(); ++t) {
    r.string_view();
    int32_t partitions = r.count(18);
    for (int32_t p = 0; p < partitions && !r.failed(); ++p) {
      r.i32();  // partition
      if (r.i16() != 0) return std::nullopt;
      r.integer(8);  // high watermark
      if (version >= 4) {
        r.integer(8);  // last stable offset
        if (version >= 5) r.integer(8);  // log start offset
        int32_t aborted = r.count(16);
        for (int32_t a = 0; a < aborted && !r.failed(); ++a) {
          r.integer(8);
          r.integer(8);
        }
      }
      // An answer that sends the client to another replica must reach it at once.
      if (version >= 11 && r.i32() != -1) return std::nullopt;
      int32_t size = r.i32();
      if (r.failed()) break;
      if (size > 0) {
        if (static_cast<size_t>(size) > r.rest().size()) return std::nullopt;
        bytes += size;
        r = Reader(frame, r.pos() + static_cast<size_t>(size));
      }
    }
  }
  if (r.failed() || !r.rest().empty()) return std::nullopt;
  return bytes;
}

std::string encode_metadata_request(std::string_view original_frame, const RequestHeader& header,
                                    int16_t version, const std::optional<std::vector<std::string>>& topics) {
  std::string out;
  put(out, header.api_key, 2);
  put(out, version, 2);
  put(out, header.correlation_id, 4);
  out.append(original_frame.substr(8, header.body_offset - 8));  // client id as sent
  if (!topics) {
    put(out, version == 0 ? 0 : -1, 4);
  } else {
    put(out, static_cast<int64_t>(topics->size()), 4);
    for (const auto& t : *topics) put_string(out, t);
  }
  if (version >= 4) put(out, 1, 1);
  return out;
}

std::optional<std::string> rewrite_metadata_response(std::string_view frame, int16_t broker_version,
                                                     int16_t client_version, const AddressMap& map,
                                                     const std::vector<TopicError>& missing_topics) {
  if (broker_version < 0 || broker_version > 2 || client_version < broker_version || client_version > 4) {
    return std::nullopt;
  }
  // v3 and v4 responses are v2 with throttle_time_ms in front.
  if (client_version > 2 && broker_version != 2) return std::nullopt;
  Reader r(frame);
  std::string out;
  put(out, r.i32(), 4);  // correlation id
  if (client_version >= 3) put(out, 0, 4);  // throttle_time_ms

  int32_t brokers = r.i32();
  if (r.failed() || brokers < 0) return std::nullopt;
  put(out, brokers, 4);
  std::optional<int32_t> lowest_node;
  bool controller_listed = false;
  std::vector<int32_t> nodes;
  for (int32_t i = 0; i < brokers; ++i) {
    int32_t node = r.i32();
    if (!lowest_node || node < *lowest_node) lowest_node = node;
    nodes.push_back(node);
    auto host = r.string();
    int32_t port = r.i32();
    if (r.failed() || !host) return std::nullopt;
    if (auto mapped = map(*host, port)) {
      host = mapped->first;
      port = mapped->second;
    }
    put(out, node, 4);
    put_string(out, host);
    put(out, port, 4);
    if (broker_version >= 1) put_string(out, r.string());  // rack
  }
  size_t middle = r.pos();
  if (broker_version >= 2) r.string();  // cluster id
  out.append(r.slice(middle));
  if (broker_version >= 1) {
    // librdkafka 2.0's mock names controller 0, a broker it does not have
    // (its ids start at 1), and admin clients send CreateTopics to the
    // controller: they would wait for it forever. The lowest id stands in.
    int32_t controller = r.i32();
    for (int32_t node : nodes) controller_listed = controller_listed || node == controller;
    put(out, controller_listed || !lowest_node ? controller : *lowest_node, 4);
  }
  int32_t topics = r.i32();
  if (r.failed() || topics < 0) return std::nullopt;
  // A count the frame cannot hold is a lie (and adding to it could overflow).
  int64_t total = int64_t(topics) + static_cast<int64_t>(missing_topics.size());
  if (static_cast<size_t>(topics) > r.rest().size() || total > INT32_MAX) return std::nullopt;
  put(out, total, 4);
  out.append(r.rest());
  for (const auto& missing : missing_topics) {
    put(out, missing.error, 2);
    put_string(out, missing.name);
    if (client_version >= 1) put(out, 0, 1);  // is_internal
    put(out, 0, 4);                           // no partitions
  }
  return out;
}

std::optional<std::string> rewrite_find_coordinator_response(std::string_view frame, int16_t version,
                                                             const AddressMap& map) {
  if (version < 0 || version > 2) return std::nullopt;
  Reader r(frame);
  r.i32();  // correlation id
  if (version >= 1) r.i32();  // throttle
  r.i16();                    // error code
  if (version >= 1) r.string();  // error message
  r.i32();                       // node id
  size_t host_at = r.pos();
  auto host = r.string();
  int32_t port = r.i32();
  if (r.failed()) return std::nullopt;
  std::string out(frame.substr(0, host_at));
  if (host) {
    if (auto mapped = map(*host, port)) {
      host = mapped->first;
      port = mapped->second;
    }
  }
  put_string(out, host);
  put(out, port, 4);
  out.append(r.rest());
  return out;
}

std::optional<std::string> rewrite_list_offsets_request(const RequestHeader& header, std::string_view frame) {
  const int16_t v = header.api_version;
  if (header.api_key != kListOffsets || v < 0 || v > 5) return std::nullopt;
  Reader r(frame, header.body_offset);
  r.i32();             // replica id
  if (v >= 2) r.i8();  // isolation level
  std::string out(frame);
  bool changed = false;
  int32_t topics = r.i32();
  for (int32_t t = 0; t < topics && !r.failed(); ++t) {
    r.string();
    int32_t partitions = r.i32();
    for (int32_t p = 0; p < partitions && !r.failed(); ++p) {
      r.i32();             // partition
      if (v >= 4) r.i32();  // current leader epoch
      size_t at = r.pos();
      int64_t timestamp = r.integer(8);
      if (v == 0) r.i32();  // max number of offsets
      if (!r.failed() && timestamp >= 0) {
        std::string earliest;
        put(earliest, -2, 8);
        out.replace(at, 8, earliest);
        changed = true;
      }
    }
  }
  if (r.failed() || topics < 0 || !changed) return std::nullopt;
  return out;
}

std::optional<std::string> cap_join_group_session_timeout(const RequestHeader& header, std::string_view frame,
                                                          int32_t max_ms) {
  if (header.api_key != kJoinGroup || header.api_version < 0 || header.api_version > 5) return std::nullopt;
  Reader r(frame, header.body_offset);
  r.string();  // group id
  size_t at = r.pos();
  int32_t session_timeout = r.i32();
  if (r.failed() || session_timeout <= max_ms) return std::nullopt;
  std::string out(frame);
  std::string capped;
  put(capped, max_ms, 4);
  out.replace(at, 4, capped);
  return out;
}

std::optional<std::string> rewrite_api_versions_response(std::string_view frame, int16_t version) {
  if (version < 0 || version > 2) return std::nullopt;
  Reader r(frame);
  r.i32();  // correlation id
  int16_t error = r.i16();
  int32_t count = r.i32();
  if (r.failed() || error != 0 || count < 0) return std::nullopt;
  std::string out(frame);
  // Answered by the front end itself, whatever the mock says of them.
  struct Added {
    int16_t key;
    int16_t max;
    bool present;
  };
  Added added[] = {{kListGroups, 2, false},
                   {kCreateTopics, kCreateTopicsMaxVersion, false},
                   {kDeleteTopics, kDeleteTopicsMaxVersion, false}};
  for (int32_t i = 0; i < count; ++i) {
    int16_t key = r.i16();
    r.i16();
    size_t max_at = r.pos();
    int16_t max = r.i16();
    if (r.failed()) return std::nullopt;
    for (auto& a : added) {
      if (a.key == key) a.present = true;
    }
    if (key == kMetadata && max == 2) {
      std::string v;
      put(v, 4, 2);
      out.replace(max_at, 2, v);
    }
  }
  std::string entries;
  int64_t new_entries = 0;
  for (const auto& a : added) {
    if (a.present) continue;
    put(entries, a.key, 2);
    put(entries, 0, 2);
    put(entries, a.max, 2);
    ++new_entries;
  }
  if (new_entries > 0) {
    out.insert(r.pos(), entries);  // after the last entry, before throttle_time_ms
    std::string new_count;
    put(new_count, int64_t(count) + new_entries, 4);
    out.replace(4 + 2, 4, new_count);
  }
  return out;
}

std::optional<CreateTopicsRequest> parse_create_topics_request(const RequestHeader& header, std::string_view frame,
                                                               size_t max_topics) {
  const int16_t v = header.api_version;
  if (header.api_key != kCreateTopics || v < 0 || v > kCreateTopicsMaxVersion) return std::nullopt;
  Reader r(frame, header.body_offset);
  CreateTopicsRequest req;
  // name (2) + partitions (4) + replication (2) + two array counts (8)
  int32_t topics = r.count(16);
  if (topics > 0 && static_cast<size_t>(topics) > max_topics) {
    req.too_many_topics = true;
    return req;
  }
  for (int32_t i = 0; i < topics && !r.failed(); ++i) {
    NewTopicRequest t;
    auto name = r.string();
    if (!name) return std::nullopt;  // a null name: not a request Kafka would read either
    t.name = std::move(*name);
    t.partitions = r.i32();
    t.replication = r.i16();
    int32_t assignments = r.count(4 + 4);
    t.has_assignments = assignments > 0;
    for (int32_t a = 0; a < assignments && !r.failed(); ++a) {
      r.i32();  // partition index
      int32_t brokers = r.count(4);
      for (int32_t b = 0; b < brokers && !r.failed(); ++b) r.i32();
    }
    int32_t configs = r.count(2 + 2);
    for (int32_t c = 0; c < configs && !r.failed(); ++c) {
      std::string_view config = r.string_view();
      if (c == 0) t.first_config = std::string(config);
      r.string_view();  // value (nullable)
    }
    t.configs = configs > 0 ? static_cast<size_t>(configs) : 0;
    req.topics.push_back(std::move(t));
  }
  req.timeout_ms = r.i32();
  if (v >= 1) req.validate_only = r.i8() != 0;
  if (r.failed() || topics < 0) return std::nullopt;
  return req;
}

std::string encode_create_topics_response(int32_t correlation_id, int16_t version,
                                          const std::vector<TopicAnswer>& topics) {
  std::string out;
  put(out, correlation_id, 4);
  if (version >= 2) put(out, 0, 4);  // throttle_time_ms
  put(out, static_cast<int64_t>(topics.size()), 4);
  for (const auto& t : topics) {
    put_string(out, t.name);
    put(out, t.error, 2);
    if (version >= 1) put_string(out, t.message.empty() ? std::nullopt : std::optional<std::string>(t.message));
  }
  return out;
}

std::optional<DeleteTopicsRequest> parse_delete_topics_request(const RequestHeader& header, std::string_view frame,
                                                               size_t max_topics) {
  const int16_t v = header.api_version;
  if (header.api_key != kDeleteTopics || v < 0 || v > kDeleteTopicsMaxVersion) return std::nullopt;
  Reader r(frame, header.body_offset);
  DeleteTopicsRequest req;
  int32_t count = r.count(2);
  if (count > 0 && static_cast<size_t>(count) > max_topics) {
    req.too_many_topics = true;
    return req;
  }
  for (int32_t i = 0; i < count && !r.failed(); ++i) {
    if (auto name = r.string()) req.names.push_back(std::move(*name));
  }
  r.i32();  // timeout_ms
  if (r.failed() || count < 0) return std::nullopt;
  return req;
}

std::string encode_delete_topics_response(int32_t correlation_id, int16_t version,
                                          const std::vector<TopicAnswer>& topics) {
  std::string out;
  put(out, correlation_id, 4);
  if (version >= 1) put(out, 0, 4);  // throttle_time_ms
  put(out, static_cast<int64_t>(topics.size()), 4);
  for (const auto& t : topics) {
    put_string(out, t.name);
    put(out, t.error, 2);
  }
  return out;
}

bool is_group_request(const RequestHeader& header) {
  const int16_t v = header.api_version;
  switch (header.api_key) {
    case kJoinGroup: return v >= 0 && v <= 5;
    case kHeartbeat: return v >= 0 && v <= 3;
    case kLeaveGroup: return v >= 0 && v <= 1;
    case kSyncGroup: return v >= 0 && v <= 3;
    case kOffsetCommit: return v >= 0 && v <= 7;
    default: return false;
  }
}

std::optional<GroupRequest> parse_group_request(const RequestHeader& header, std::string_view frame) {
  if (!is_group_request(header)) return std::nullopt;
  const int16_t key = header.api_key;
  const int16_t v = header.api_version;
  Reader r(frame, header.body_offset);
  GroupRequest req;
  req.group = r.string();
  switch (key) {
    case kJoinGroup: {
      req.session_timeout_ms = r.i32();
      req.rebalance_timeout_ms = v >= 1 ? r.i32() : req.session_timeout_ms;
      req.member = r.string();
      if (v >= 5) r.string_view();  // group instance id (nullable)
      req.protocol_type = r.string();
      int32_t protocols = r.count(2 + 4);
      for (int32_t i = 0; i < protocols && !r.failed(); ++i) {
        auto name = r.string();
        r.skip_bytes();  // metadata
        if (!name) {
          if (!r.failed()) req.null_protocol = true;
        } else {
          req.protocols.push_back(std::move(*name));
        }
      }
      if (protocols < 0) req.null_protocol = true;
      break;
    }
    case kHeartbeat:
      r.i32();  // generation
      req.member = r.string();
      if (v >= 3) r.string_view();  // group instance id
      break;
    case kLeaveGroup:
      req.member = r.string();
      break;
    case kSyncGroup: {
      r.i32();  // generation
      req.member = r.string();
      if (v >= 3) r.string_view();  // group instance id
      int32_t assignments = r.count(2 + 4);
      for (int32_t i = 0; i < assignments && !r.failed(); ++i) {
        bool null = false;
        r.string_view(&null);
        r.skip_bytes();
        if (null) req.null_member_inside = true;
      }
      break;
    }
    case kOffsetCommit: {
      if (v >= 1) {
        r.i32();  // generation
        req.member = r.string();
      } else {
        req.member = std::string();  // v0 names no member
      }
      if (v >= 7) r.string_view();       // group instance id
      if (v >= 2 && v <= 4) r.integer(8);  // retention time
      int32_t topics = r.count(2 + 4);
      for (int32_t t = 0; t < topics && !r.failed(); ++t) {
        auto topic = r.string_view();
        int32_t partitions = r.count(4 + 8 + 2);
        std::vector<int32_t> ids;
        for (int32_t p = 0; p < partitions && !r.failed(); ++p) {
          ids.push_back(r.i32());
          r.integer(8);               // offset
          if (v == 1) r.integer(8);   // timestamp
          if (v >= 6) r.i32();        // leader epoch
          r.string_view();            // metadata (nullable)
        }
        req.partitions.emplace_back(std::string(topic), std::move(ids));
      }
      break;
    }
    default:
      return std::nullopt;
  }
  if (r.failed()) return std::nullopt;
  return req;
}

std::string encode_group_error_response(const RequestHeader& header, const GroupRequest& request, int16_t error) {
  const int16_t v = header.api_version;
  std::string out;
  put(out, header.correlation_id, 4);
  switch (header.api_key) {
    case kJoinGroup:
      if (v >= 2) put(out, 0, 4);  // throttle_time_ms
      put(out, error, 2);
      put(out, -1, 4);           // generation
      put_string(out, "");       // protocol name
      put_string(out, "");       // leader
      put_string(out, request.member.value_or(""));
      put(out, 0, 4);            // members
      break;
    case kHeartbeat:
    case kLeaveGroup:
      if (v >= 1) put(out, 0, 4);
      put(out, error, 2);
      break;
    case kSyncGroup:
      if (v >= 1) put(out, 0, 4);
      put(out, error, 2);
      put(out, 0, 4);  // empty assignment
      break;
    case kOffsetCommit:
      if (v >= 3) put(out, 0, 4);
      put(out, static_cast<int64_t>(request.partitions.size()), 4);
      for (const auto& [topic, partitions] : request.partitions) {
        put_string(out, topic);
        put(out, static_cast<int64_t>(partitions.size()), 4);
        for (int32_t p : partitions) {
          put(out, p, 4);
          put(out, error, 2);
        }
      }
      break;
    default:
      break;
  }
  return out;
}

std::optional<GroupResponse> parse_group_response(int16_t api_key, int16_t version, std::string_view frame) {
  Reader r(frame);
  r.i32();  // correlation id
  GroupResponse response;
  if (api_key == kJoinGroup && version >= 0 && version <= 5) {
    if (version >= 2) r.i32();
    response.error = r.i16();
    r.i32();     // generation
    r.string_view();  // protocol name
    r.string_view();  // leader
    response.member = r.string().value_or("");
  } else if (api_key == kLeaveGroup && version >= 0 && version <= 1) {
    if (version >= 1) r.i32();
    response.error = r.i16();
  } else {
    return std::nullopt;
  }
  if (r.failed()) return std::nullopt;
  return response;
}

std::string encode_placeholder_request(std::string_view original_frame, const RequestHeader& header) {
  std::string out;
  put(out, kApiVersions, 2);
  put(out, 0, 2);
  put(out, header.correlation_id, 4);
  out.append(original_frame.substr(8, header.body_offset - 8));  // client id as sent
  return out;
}

std::string encode_list_groups_response(int32_t correlation_id, int16_t version,
                                        const std::vector<std::pair<std::string, std::string>>& groups) {
  std::string out;
  put(out, correlation_id, 4);
  if (version >= 1) put(out, 0, 4);  // throttle_time_ms
  put(out, 0, 2);                    // error code
  put(out, static_cast<int64_t>(groups.size()), 4);
  for (const auto& [group, protocol_type] : groups) {
    put_string(out, group);
    put_string(out, protocol_type);
  }
  return out;
}

}  // namespace kws::wire
