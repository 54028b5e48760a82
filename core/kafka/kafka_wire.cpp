#include "core/kafka/kafka_wire.hpp"

#include <cstring>

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

std::optional<MetadataRequest> parse_metadata_request(const RequestHeader& header, std::string_view frame) {
  if (header.api_key != kMetadata || header.api_version < 0 || header.api_version > 4) return std::nullopt;
  Reader r(frame, header.body_offset);
  MetadataRequest req;
  int32_t count = r.i32();
  if (count >= 0) {
    std::vector<std::string> topics;
    for (int32_t i = 0; i < count && !r.failed(); ++i) {
      auto name = r.string();
      if (!name) return std::nullopt;
      topics.push_back(*name);
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
  for (int32_t i = 0; i < brokers; ++i) {
    int32_t node = r.i32();
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
  if (broker_version >= 1) r.i32();     // controller id
  out.append(r.slice(middle));
  int32_t topics = r.i32();
  if (r.failed() || topics < 0) return std::nullopt;
  put(out, topics + static_cast<int32_t>(missing_topics.size()), 4);
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

bool join_group_is_well_formed(const RequestHeader& header, std::string_view frame) {
  const int16_t v = header.api_version;
  if (header.api_key != kJoinGroup || v < 0 || v > 5) return true;  // not ours to judge
  Reader r(frame, header.body_offset);
  auto group = r.string();
  r.i32();             // session timeout
  if (v >= 1) r.i32();  // rebalance timeout
  auto member = r.string();
  if (v >= 5) r.string();  // group instance id (nullable)
  auto type = r.string();
  int32_t protocols = r.i32();
  if (r.failed() || !group || !member || !type || protocols < 1) return false;
  for (int32_t i = 0; i < protocols; ++i) {
    auto name = r.string();
    int32_t metadata = r.i32();
    if (r.failed() || !name || metadata < -1) return false;
    if (metadata > 0) {
      if (static_cast<size_t>(metadata) > r.rest().size()) return false;
      Reader skip(frame, r.pos() + static_cast<size_t>(metadata));
      r = skip;
    }
  }
  return !r.failed();
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
  bool has_list_groups = false;
  for (int32_t i = 0; i < count; ++i) {
    int16_t key = r.i16();
    r.i16();
    size_t max_at = r.pos();
    int16_t max = r.i16();
    if (r.failed()) return std::nullopt;
    if (key == kListGroups) has_list_groups = true;
    if (key == kMetadata && max == 2) {
      std::string v;
      put(v, 4, 2);
      out.replace(max_at, 2, v);
    }
  }
  if (!has_list_groups) {
    std::string entry;
    put(entry, kListGroups, 2);
    put(entry, 0, 2);
    put(entry, 2, 2);
    out.insert(r.pos(), entry);  // after the last entry, before throttle_time_ms
    std::string new_count;
    put(new_count, count + 1, 4);
    out.replace(4 + 2, 4, new_count);
  }
  return out;
}

std::optional<GroupMention> parse_group_mention(const RequestHeader& header, std::string_view frame) {
  const int16_t v = header.api_version;
  const bool join = header.api_key == kJoinGroup && v >= 0 && v <= 5;
  const bool commit = header.api_key == kOffsetCommit && v >= 0 && v <= 7;
  if (!join && !commit) return std::nullopt;
  Reader r(frame, header.body_offset);
  GroupMention mention;
  auto group = r.string();
  if (r.failed() || !group || group->empty()) return std::nullopt;
  mention.group = *group;
  if (join) {
    r.i32();             // session timeout
    if (v >= 1) r.i32();  // rebalance timeout
    r.string();          // member id
    if (v >= 5) r.string();  // group instance id
    auto type = r.string();
    if (r.failed()) return std::nullopt;
    mention.protocol_type = type.value_or("");
  }
  return mention;
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
