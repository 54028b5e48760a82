#include <catch2/catch.hpp>

#include "core/kafka/kafka_wire.hpp"

using namespace kws::wire;

namespace {

// Frame builder: big-endian integers and int16-length strings.
struct Frame {
  std::string bytes;
  Frame& i8(int v) { return put(v, 1); }
  Frame& i16(int v) { return put(v, 2); }
  Frame& i32(int64_t v) { return put(v, 4); }
  Frame& i64(int64_t v) { return put(v, 8); }
  Frame& str(const std::string& s) {
    i16(static_cast<int>(s.size()));
    bytes += s;
    return *this;
  }
  Frame& null_str() { return i16(-1); }
  Frame& put(int64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) bytes += static_cast<char>((v >> (8 * i)) & 0xFF);
    return *this;
  }
};

Frame request_header(int16_t key, int16_t version, int32_t corr) {
  Frame f;
  f.i16(key).i16(version).i32(corr).str("client-1");
  return f;
}

// Reads back what the rewriters produce.
struct Cursor {
  const std::string& s;
  size_t pos = 0;
  int64_t get(int n) {
    REQUIRE(pos + n <= s.size());
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s[pos + i]);
    pos += n;
    int shift = 64 - 8 * n;
    return static_cast<int64_t>(v << shift) >> shift;
  }
  std::string str() {
    auto n = get(2);
    if (n < 0) return "<null>";
    std::string out = s.substr(pos, n);
    pos += n;
    return out;
  }
};

AddressMap mock_to_front = [](const std::string& host, int32_t port) -> std::optional<std::pair<std::string, int32_t>> {
  if (host == "127.0.0.1" && port == 40001) return std::make_pair(std::string("127.0.0.1"), 9092);
  return std::nullopt;
};

std::string metadata_v2_response() {
  Frame f;
  f.i32(77);                                                     // correlation id
  f.i32(2);                                                      // brokers
  f.i32(1).str("127.0.0.1").i32(40001).null_str();               // mapped
  f.i32(2).str("127.0.0.1").i32(40002).str("rack-b");            // not mapped
  f.str("cluster-x");                                            // cluster id
  f.i32(1);                                                      // controller
  f.i32(1);                                                      // topics
  f.i16(0).str("demo").i8(0).i32(1).i16(0).i32(0).i32(1).i32(1).i32(1).i32(1).i32(1);  // one partition
  return f.bytes;
}

}  // namespace

TEST_CASE("kafka_wire: request headers and Metadata requests v0-v4") {
  Frame v0 = request_header(kMetadata, 0, 5);
  v0.i32(0);
  auto h = parse_request_header(v0.bytes);
  REQUIRE(h);
  CHECK(h->api_key == kMetadata);
  CHECK(h->correlation_id == 5);
  auto req = parse_metadata_request(*h, v0.bytes);
  REQUIRE(req);
  CHECK_FALSE(req->topics.has_value());  // v0 empty list = all topics

  Frame v1 = request_header(kMetadata, 1, 6);
  v1.i32(-1);
  h = parse_request_header(v1.bytes);
  req = parse_metadata_request(*h, v1.bytes);
  REQUIRE(req);
  CHECK_FALSE(req->topics.has_value());
  CHECK(req->allow_auto_create);

  Frame v4 = request_header(kMetadata, 4, 7);
  v4.i32(2).str("a").str("b").i8(0);
  h = parse_request_header(v4.bytes);
  req = parse_metadata_request(*h, v4.bytes);
  REQUIRE(req);
  REQUIRE(req->topics);
  CHECK(*req->topics == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(req->allow_auto_create);

  // Downgraded to v2 with one topic left; parses back the same way.
  std::string v2 = encode_metadata_request(v4.bytes, *h, 2, std::vector<std::string>{"b"});
  auto h2 = parse_request_header(v2);
  REQUIRE(h2);
  CHECK(h2->api_version == 2);
  CHECK(h2->correlation_id == 7);
  auto req2 = parse_metadata_request(*h2, v2);
  REQUIRE(req2);
  CHECK(*req2->topics == std::vector<std::string>{"b"});
}

TEST_CASE("kafka_wire: Metadata responses get front-end addresses, v4 framing and missing topics") {
  std::string in = metadata_v2_response();
  auto out = rewrite_metadata_response(in, 2, 4, mock_to_front, {{"gone", kUnknownTopicOrPartition}});
  REQUIRE(out);
  Cursor c{*out};
  CHECK(c.get(4) == 77);
  CHECK(c.get(4) == 0);  // throttle_time_ms added for v3+
  CHECK(c.get(4) == 2);
  CHECK(c.get(4) == 1);
  CHECK(c.str() == "127.0.0.1");
  CHECK(c.get(4) == 9092);  // mapped
  CHECK(c.str() == "<null>");
  CHECK(c.get(4) == 2);
  CHECK(c.str() == "127.0.0.1");
  CHECK(c.get(4) == 40002);  // unknown address left alone
  CHECK(c.str() == "rack-b");
  CHECK(c.str() == "cluster-x");
  CHECK(c.get(4) == 1);
  CHECK(c.get(4) == 2);  // one real topic + one injected
  CHECK(c.get(2) == 0);
  CHECK(c.str() == "demo");
  c.pos += 1 + 4 + 2 + 4 + 4 + 4 + 4 + 4 + 4;  // is_internal + the partition
  CHECK(c.get(2) == kUnknownTopicOrPartition);
  CHECK(c.str() == "gone");
  CHECK(c.get(1) == 0);
  CHECK(c.get(4) == 0);
  CHECK(c.pos == out->size());

  // Same version in and out: only the address changes.
  auto same = rewrite_metadata_response(in, 2, 2, mock_to_front, {});
  REQUIRE(same);
  CHECK(same->size() == in.size());
  CHECK(same->find(std::string("\x00\x00\x23\x84", 4)) != std::string::npos);  // 9092
}

TEST_CASE("kafka_wire: v0 Metadata responses") {
  Frame f;
  f.i32(1).i32(1).i32(1).str("127.0.0.1").i32(40001).i32(0);
  auto out = rewrite_metadata_response(f.bytes, 0, 0, mock_to_front, {{"x", kInvalidTopic}});
  REQUIRE(out);
  Cursor c{*out};
  c.get(4);
  c.get(4);
  c.get(4);
  c.str();
  CHECK(c.get(4) == 9092);
  CHECK(c.get(4) == 1);
  CHECK(c.get(2) == kInvalidTopic);
  CHECK(c.str() == "x");
  CHECK(c.get(4) == 0);  // v0 has no is_internal byte
  CHECK(c.pos == out->size());
}

TEST_CASE("kafka_wire: FindCoordinator responses v0 and v1") {
  Frame v0;
  v0.i32(9).i16(0).i32(1).str("127.0.0.1").i32(40001);
  auto out = rewrite_find_coordinator_response(v0.bytes, 0, mock_to_front);
  REQUIRE(out);
  Cursor c{*out};
  c.pos = 4 + 2 + 4;
  CHECK(c.str() == "127.0.0.1");
  CHECK(c.get(4) == 9092);

  Frame v1;
  v1.i32(9).i32(0).i16(0).null_str().i32(1).str("127.0.0.1").i32(40001);
  out = rewrite_find_coordinator_response(v1.bytes, 1, mock_to_front);
  REQUIRE(out);
  Cursor c1{*out};
  c1.pos = 4 + 4 + 2 + 2 + 4;
  CHECK(c1.str() == "127.0.0.1");
  CHECK(c1.get(4) == 9092);
}

TEST_CASE("kafka_wire: ApiVersions advertises Metadata v4") {
  Frame f;
  f.i32(1).i16(0).i32(2).i16(0).i16(0).i16(7).i16(kMetadata).i16(0).i16(2).i32(0);
  auto out = rewrite_api_versions_response(f.bytes, 1);
  REQUIRE(out);
  Cursor c{*out};
  c.pos = 4 + 2 + 4 + 6 + 2 + 2;
  CHECK(c.get(2) == 4);
  CHECK(c.get(2) == kListGroups);  // appended, before throttle_time_ms
  CHECK(c.get(2) == 0);
  CHECK(c.get(2) == 2);
  CHECK(c.get(2) == kCreateTopics);  // the front end answers these too
  CHECK(c.get(2) == 0);
  CHECK(c.get(2) == kCreateTopicsMaxVersion);
  CHECK(c.get(2) == kDeleteTopics);
  CHECK(c.get(2) == 0);
  CHECK(c.get(2) == kDeleteTopicsMaxVersion);
  CHECK(c.get(4) == 0);
  CHECK(c.pos == out->size());
  Cursor count{*out};
  count.pos = 6;
  CHECK(count.get(4) == 5);
  Frame error;
  error.i32(1).i16(35).i32(0);
  CHECK_FALSE(rewrite_api_versions_response(error.bytes, 0));  // errors pass through
}

TEST_CASE("kafka_wire: truncated or garbage frames are refused, never read past the end") {
  std::string full = metadata_v2_response();
  auto whole = rewrite_metadata_response(full, 2, 4, mock_to_front, {});
  REQUIRE(whole);
  // Everything up to and including the topic count is read; the topics
  // after it are copied as they are.
  const size_t topics_start = 4 + 4 + (4 + 11 + 4 + 2) + (4 + 11 + 4 + 8) + 11 + 4 + 4;
  REQUIRE(topics_start < full.size());
  const std::string head = whole->substr(0, whole->size() - (full.size() - topics_start));
  for (size_t n = 0; n < full.size(); ++n) {
    INFO("cut at " << n);
    std::string cut = full.substr(0, n);
    auto out = rewrite_metadata_response(cut, 2, 4, mock_to_front, {});
    // Refused too: a count of one topic with no byte after it.
    if (n <= topics_start) {
      CHECK_FALSE(out);
    } else {
      // A cut inside the topics cannot be told from a shorter body: passed on
      // with exactly the bytes that came, never more.
      REQUIRE(out);
      CHECK(*out == head + cut.substr(topics_start));
    }
  }

  Frame v4 = request_header(kMetadata, 4, 7);
  v4.i32(2).str("a").str("b").i8(0);
  auto h = parse_request_header(v4.bytes);
  REQUIRE(h);
  for (size_t n = 0; n < v4.bytes.size(); ++n) {
    INFO("Metadata request cut at " << n);
    std::string cut = v4.bytes.substr(0, n);
    auto ch = parse_request_header(cut);
    if (n < h->body_offset) {
      CHECK_FALSE(ch);
    } else {
      REQUIRE(ch);
      CHECK_FALSE(parse_metadata_request(*ch, cut));
    }
  }

  Frame join = request_header(kJoinGroup, 1, 4);
  join.str("group").i32(45000).i32(300000).str("").str("consumer").i32(1).str("range").i32(2).i16(0);
  h = parse_request_header(join.bytes);
  REQUIRE(parse_group_request(*h, join.bytes));
  for (size_t n = h->body_offset; n < join.bytes.size(); ++n) {
    INFO("JoinGroup cut at " << n);
    CHECK_FALSE(parse_group_request(*h, join.bytes.substr(0, n)));
  }

  Frame offsets = request_header(kListOffsets, 1, 3);
  offsets.i32(-1).i32(1).str("demo").i32(1).i32(0).put(1714564800000, 8);
  h = parse_request_header(offsets.bytes);
  REQUIRE(rewrite_list_offsets_request(*h, offsets.bytes));
  for (size_t n = h->body_offset; n < offsets.bytes.size(); ++n) {
    INFO("ListOffsets cut at " << n);
    CHECK_FALSE(rewrite_list_offsets_request(*h, offsets.bytes.substr(0, n)));
  }

  Frame coordinator;
  coordinator.i32(9).i16(0).i32(1).str("127.0.0.1").i32(40001);
  for (size_t n = 0; n < coordinator.bytes.size(); ++n) {
    INFO("FindCoordinator cut at " << n);
    CHECK_FALSE(rewrite_find_coordinator_response(coordinator.bytes.substr(0, n), 0, mock_to_front));
  }

  Frame versions;
  versions.i32(1).i16(0).i32(2).i16(0).i16(0).i16(7).i16(kMetadata).i16(0).i16(2);
  const size_t entries_end = versions.bytes.size();
  versions.i32(0);  // throttle_time_ms
  for (size_t n = 0; n < versions.bytes.size(); ++n) {
    INFO("ApiVersions cut at " << n);
    auto out = rewrite_api_versions_response(versions.bytes.substr(0, n), 1);
    if (n < entries_end) {
      CHECK_FALSE(out);
    } else {
      // Only the trailing throttle time is cut: entries rewritten, the rest copied.
      REQUIRE(out);
      CHECK(out->size() == n + 3 * 6);
    }
  }

  CHECK_FALSE(parse_request_header(std::string("\x00\x03", 2)));
  Frame bad = request_header(kMetadata, 1, 1);
  bad.i32(5).str("only-one");
  h = parse_request_header(bad.bytes);
  REQUIRE(h);
  CHECK_FALSE(parse_metadata_request(*h, bad.bytes));
  CHECK_FALSE(rewrite_find_coordinator_response("abc", 0, mock_to_front));
  // A topic count the frame cannot hold.
  std::string lying = full.substr(0, topics_start - 4) + std::string("\x7f\xff\xff\xff", 4);
  CHECK_FALSE(rewrite_metadata_response(lying, 2, 4, mock_to_front, {{"x", kInvalidTopic}}));
}

TEST_CASE("kafka_wire: ListOffsets lookups by time become earliest-offset lookups") {
  for (int16_t version : {0, 1, 2, 4, 5}) {
    INFO("version " << version);
    Frame f = request_header(kListOffsets, version, 3);
    f.i32(-1);
    if (version >= 2) f.i8(0);
    f.i32(1).str("demo").i32(2);
    auto partition = [&](int32_t id, int64_t timestamp) {
      f.i32(id);
      if (version >= 4) f.i32(-1);
      f.put(timestamp, 8);
      if (version == 0) f.i32(1);
    };
    partition(0, 1714564800000);
    partition(1, -1);  // latest: left alone
    auto h = parse_request_header(f.bytes);
    REQUIRE(h);
    auto out = rewrite_list_offsets_request(*h, f.bytes);
    REQUIRE(out);
    REQUIRE(out->size() == f.bytes.size());
    Cursor c{*out};
    c.pos = h->body_offset + 4 + (version >= 2 ? 1 : 0) + 4 + 2 + 4 + 4 + 4;
    c.pos += version >= 4 ? 4 : 0;
    CHECK(c.get(8) == -2);
    c.pos += (version == 0 ? 4 : 0) + 4 + (version >= 4 ? 4 : 0);
    CHECK(c.get(8) == -1);
  }
  Frame latest_only = request_header(kListOffsets, 1, 3);
  latest_only.i32(-1).i32(1).str("demo").i32(1).i32(0).put(-1, 8);
  auto h = parse_request_header(latest_only.bytes);
  CHECK_FALSE(rewrite_list_offsets_request(*h, latest_only.bytes));  // nothing to change
}

TEST_CASE("kafka_wire: JoinGroup session timeouts are capped") {
  for (int16_t version : {0, 1, 5}) {
    Frame f = request_header(kJoinGroup, version, 4);
    f.str("group").i32(45000);
    if (version >= 1) f.i32(300000);
    f.str("").str("consumer").i32(0);
    auto h = parse_request_header(f.bytes);
    auto out = cap_join_group_session_timeout(*h, f.bytes, 6000);
    REQUIRE(out);
    Cursor c{*out};
    c.pos = h->body_offset + 2 + 5;
    CHECK(c.get(4) == 6000);
    if (version >= 1) CHECK(c.get(4) == 300000);  // rebalance timeout untouched
  }
  Frame small = request_header(kJoinGroup, 1, 4);
  small.str("group").i32(3000).i32(300000);
  auto h = parse_request_header(small.bytes);
  CHECK_FALSE(cap_join_group_session_timeout(*h, small.bytes, 6000));
}

TEST_CASE("kafka_wire: group requests are read to their end") {
  Frame join = request_header(kJoinGroup, 5, 1);
  join.str("billing").i32(45000).i32(300000).str("").null_str().str("consumer").i32(2);
  join.str("range").i32(3);
  join.bytes += "abc";  // protocol metadata
  join.str("roundrobin").i32(-1);
  auto h = parse_request_header(join.bytes);
  REQUIRE(is_group_request(*h));
  auto req = parse_group_request(*h, join.bytes);
  REQUIRE(req);
  CHECK(req->group == std::optional<std::string>("billing"));
  CHECK(req->member == std::optional<std::string>(""));
  CHECK(req->protocol_type == std::optional<std::string>("consumer"));
  CHECK(req->protocols == std::vector<std::string>{"range", "roundrobin"});
  CHECK(req->session_timeout_ms == 45000);
  CHECK(req->rebalance_timeout_ms == 300000);
  CHECK_FALSE(req->null_protocol);

  Frame commit = request_header(kOffsetCommit, 2, 2);
  commit.str("audit").i32(1).str("member").i64(-1).i32(1).str("t").i32(2);
  commit.i32(0).i64(5).str("").i32(3).i64(6).null_str();
  h = parse_request_header(commit.bytes);
  req = parse_group_request(*h, commit.bytes);
  REQUIRE(req);
  CHECK(req->group == std::optional<std::string>("audit"));
  CHECK(req->member == std::optional<std::string>("member"));
  REQUIRE(req->partitions.size() == 1);
  CHECK(req->partitions[0].first == "t");
  CHECK(req->partitions[0].second == std::vector<int32_t>{0, 3});

  Frame heartbeat = request_header(kHeartbeat, 0, 3);
  heartbeat.str("g").i32(1).null_str();  // null member: the mock dereferences it
  h = parse_request_header(heartbeat.bytes);
  req = parse_group_request(*h, heartbeat.bytes);
  REQUIRE(req);
  CHECK_FALSE(req->member);

  Frame sync = request_header(kSyncGroup, 1, 4);
  sync.str("g").i32(1).str("m").i32(1).null_str().i32(0);
  h = parse_request_header(sync.bytes);
  req = parse_group_request(*h, sync.bytes);
  REQUIRE(req);
  CHECK(req->null_member_inside);

  Frame other = request_header(kMetadata, 1, 3);
  other.i32(-1);
  h = parse_request_header(other.bytes);
  CHECK_FALSE(is_group_request(*h));
  CHECK_FALSE(parse_group_request(*h, other.bytes));
  Frame lying = request_header(kJoinGroup, 0, 1);
  lying.str("g").i32(1).str("").str("consumer").i32(0x7fffffff);  // far more protocols than bytes
  h = parse_request_header(lying.bytes);
  CHECK_FALSE(parse_group_request(*h, lying.bytes));
}

TEST_CASE("kafka_wire: group error responses have each version's shape") {
  GroupRequest req;
  req.member = "m-1";
  for (int16_t v : {0, 2, 5}) {
    INFO("JoinGroup v" << v);
    RequestHeader h{kJoinGroup, v, 9, 0};
    std::string out = encode_group_error_response(h, req, kInconsistentGroupProtocol);
    Cursor c{out};
    CHECK(c.get(4) == 9);
    if (v >= 2) CHECK(c.get(4) == 0);
    CHECK(c.get(2) == kInconsistentGroupProtocol);
    CHECK(c.get(4) == -1);
    CHECK(c.str() == "");
    CHECK(c.str() == "");
    CHECK(c.str() == "m-1");
    CHECK(c.get(4) == 0);
    CHECK(c.pos == out.size());
    auto parsed = parse_group_response(kJoinGroup, v, out);
    REQUIRE(parsed);
    CHECK(parsed->error == kInconsistentGroupProtocol);
    CHECK(parsed->member == "m-1");
  }
  for (int16_t key : {kHeartbeat, kLeaveGroup, kSyncGroup}) {
    for (int16_t v : {0, 1}) {
      INFO("key " << key << " v" << v);
      RequestHeader h{key, v, 9, 0};
      std::string out = encode_group_error_response(h, req, kUnknownMemberId);
      Cursor c{out};
      CHECK(c.get(4) == 9);
      if (v >= 1) CHECK(c.get(4) == 0);
      CHECK(c.get(2) == kUnknownMemberId);
      if (key == kSyncGroup) CHECK(c.get(4) == 0);
      CHECK(c.pos == out.size());
    }
  }
  req.partitions = {{"t", {0, 7}}};
  RequestHeader h{kOffsetCommit, 3, 9, 0};
  std::string out = encode_group_error_response(h, req, kInvalidGroupId);
  Cursor c{out};
  CHECK(c.get(4) == 9);
  CHECK(c.get(4) == 0);
  CHECK(c.get(4) == 1);
  CHECK(c.str() == "t");
  CHECK(c.get(4) == 2);
  CHECK(c.get(4) == 0);
  CHECK(c.get(2) == kInvalidGroupId);
  CHECK(c.get(4) == 7);
  CHECK(c.get(2) == kInvalidGroupId);
  CHECK(c.pos == out.size());
}

TEST_CASE("kafka_wire: Metadata requests keep each name once and stop at the limit") {
  Frame f = request_header(kMetadata, 4, 1);
  f.i32(5).str("").str("a").str("").str("a").str("b").i8(1);
  auto h = parse_request_header(f.bytes);
  auto req = parse_metadata_request(*h, f.bytes);
  REQUIRE(req);
  CHECK(*req->topics == std::vector<std::string>{"", "a", "b"});
  CHECK_FALSE(req->too_many_topics);
  req = parse_metadata_request(*h, f.bytes, 2);
  REQUIRE(req);
  CHECK(req->too_many_topics);

  Frame produce = request_header(kProduce, 3, 1);
  produce.null_str().i16(0).i32(1000).i32(0);
  h = parse_request_header(produce.bytes);
  CHECK_FALSE(produce_expects_response(*h, produce.bytes));
  Frame acked = request_header(kProduce, 2, 1);
  acked.i16(-1).i32(1000).i32(0);
  h = parse_request_header(acked.bytes);
  CHECK(produce_expects_response(*h, acked.bytes));
}

TEST_CASE("kafka_wire: ListGroups is answered through a placeholder request") {
  Frame list = request_header(kListGroups, 2, 42);
  auto h = parse_request_header(list.bytes);
  std::string placeholder = encode_placeholder_request(list.bytes, *h);
  auto ph = parse_request_header(placeholder);
  REQUIRE(ph);
  CHECK(ph->api_key == kApiVersions);
  CHECK(ph->api_version == 0);
  CHECK(ph->correlation_id == 42);
  CHECK(ph->body_offset == placeholder.size());

  std::string response = encode_list_groups_response(42, 1, {{"a", "consumer"}, {"b", ""}});
  Cursor c{response};
  CHECK(c.get(4) == 42);
  CHECK(c.get(4) == 0);  // throttle (v1+)
  CHECK(c.get(2) == 0);
  CHECK(c.get(4) == 2);
  CHECK(c.str() == "a");
  CHECK(c.str() == "consumer");
  CHECK(c.str() == "b");
  CHECK(c.str() == "");
  CHECK(c.pos == response.size());
  CHECK(encode_list_groups_response(1, 0, {}).size() == 4 + 2 + 4);  // v0: no throttle
}

namespace {

// A Fetch response with one partition per entry of `record_bytes` (-1: null
// records), at `version`.
std::string fetch_response(int16_t version, const std::vector<int32_t>& record_bytes, int16_t top_error = 0,
                           int16_t partition_error = 0) {
  Frame f;
  f.i32(9);                         // correlation id
  if (version >= 1) f.i32(0);       // throttle
  if (version >= 7) f.i16(top_error).i32(0);
  f.i32(1).str("demo").i32(static_cast<int64_t>(record_bytes.size()));
  for (size_t p = 0; p < record_bytes.size(); ++p) {
    f.i32(static_cast<int64_t>(p)).i16(partition_error).i64(100);
    if (version >= 4) {
      f.i64(100);
      if (version >= 5) f.i64(0);
      f.i32(1).i64(7).i64(3);  // one aborted transaction
    }
    if (version >= 11) f.i32(-1);
    f.i32(record_bytes[p]);
    if (record_bytes[p] > 0) f.bytes += std::string(static_cast<size_t>(record_bytes[p]), 'r');
  }
  return f.bytes;
}

}  // namespace

TEST_CASE("kafka_wire: a Fetch's wait is read and replaced, and its answer's record bytes counted") {
  Frame req = request_header(kFetch, 11, 9);
  req.i32(-1).i32(500).i32(1).i32(52428800).i8(0).i32(0).i32(-1).i32(0).i32(0).i32(0).str("");
  auto header = parse_request_header(req.bytes);
  REQUIRE(header);
  auto wait = parse_fetch_wait(*header, req.bytes);
  REQUIRE(wait);
  CHECK(wait->max_wait_ms == 500);
  CHECK(wait->min_bytes == 1);
  std::string rewritten = with_fetch_max_wait(*header, req.bytes, 0);
  REQUIRE(rewritten.size() == req.bytes.size());
  auto again = parse_fetch_wait(*header, rewritten);
  REQUIRE(again);
  CHECK(again->max_wait_ms == 0);
  CHECK(again->min_bytes == 1);
  CHECK(rewritten.substr(header->body_offset + 8) == req.bytes.substr(header->body_offset + 8));

  // Versions the mock does not speak, other requests and short frames: left alone.
  Frame v12 = request_header(kFetch, 12, 9);
  v12.i32(-1).i32(500).i32(1);
  CHECK_FALSE(parse_fetch_wait(*parse_request_header(v12.bytes), v12.bytes));
  Frame produce = request_header(kProduce, 7, 9);
  produce.i32(-1).i32(500).i32(1);
  CHECK_FALSE(parse_fetch_wait(*parse_request_header(produce.bytes), produce.bytes));
  Frame cut = request_header(kFetch, 4, 9);
  cut.i32(-1).i16(0);
  CHECK_FALSE(parse_fetch_wait(*parse_request_header(cut.bytes), cut.bytes));

  for (int16_t version : {0, 1, 4, 5, 7, 11}) {
    INFO("version " << version);
    CHECK(fetch_response_record_bytes(fetch_response(version, {0}), version) == 0);
    CHECK(fetch_response_record_bytes(fetch_response(version, {-1, 0}), version) == 0);
    CHECK(fetch_response_record_bytes(fetch_response(version, {70, 0, 30}), version) == 100);
    // An error anywhere must reach the client at once: not countable.
    CHECK_FALSE(fetch_response_record_bytes(fetch_response(version, {0, 0}, 0, 1), version));
    // Cut anywhere, or with bytes after its end: unreadable, never read past the end.
    std::string whole = fetch_response(version, {70, 0});
    for (size_t n = 0; n < whole.size(); ++n) CHECK_FALSE(fetch_response_record_bytes(whole.substr(0, n), version));
    CHECK_FALSE(fetch_response_record_bytes(whole + "x", version));
  }
  CHECK_FALSE(fetch_response_record_bytes(fetch_response(7, {0}, 1), 7));
  // A v11 answer naming a preferred read replica sends the client elsewhere: not to be held.
  std::string redirect = fetch_response(11, {0});
  redirect.replace(redirect.size() - 8, 4, std::string("\0\0\0\2", 4));
  CHECK_FALSE(fetch_response_record_bytes(redirect, 11));
  // Every version from 0 starts its body with replica id, wait and min bytes.
  for (int16_t version = 0; version <= 11; ++version) {
    Frame v = request_header(kFetch, version, 5);
    v.i32(-1).i32(250).i32(64).i32(1 << 20);
    auto h = parse_request_header(v.bytes);
    auto w = parse_fetch_wait(*h, v.bytes);
    REQUIRE(w);
    CHECK(w->max_wait_ms == 250);
    CHECK(w->min_bytes == 64);
  }
  CHECK_FALSE(fetch_response_record_bytes(fetch_response(12, {0}), 12));
}

TEST_CASE("kafka_wire: CreateTopics requests v0-v4 and their answers") {
  Frame f = request_header(kCreateTopics, 4, 21);
  f.i32(3);
  f.str("orders").i32(6).i16(1).i32(0).i32(0);                              // plain
  f.str("defaults").i32(-1).i16(-1).i32(0).i32(1).str("retention.ms").str("1000");  // broker defaults, a config
  f.str("placed").i32(-1).i16(-1).i32(1).i32(0).i32(2).i32(1).i32(2).i32(0);        // a replica assignment
  f.i32(30000).i8(1);                                                       // timeout, validate_only
  auto h = parse_request_header(f.bytes);
  REQUIRE(h);
  auto req = parse_create_topics_request(*h, f.bytes);
  REQUIRE(req);
  REQUIRE(req->topics.size() == 3);
  CHECK((req->topics[0].name == "orders" && req->topics[0].partitions == 6 && req->topics[0].replication == 1));
  CHECK_FALSE(req->topics[0].has_assignments);
  CHECK(req->topics[0].configs == 0);
  CHECK((req->topics[1].partitions == -1 && req->topics[1].replication == -1));
  CHECK((req->topics[1].configs == 1 && req->topics[1].first_config == "retention.ms"));
  CHECK(req->topics[2].has_assignments);
  CHECK(req->timeout_ms == 30000);
  CHECK(req->validate_only);
  for (size_t n = h->body_offset; n < f.bytes.size(); ++n) {
    INFO("CreateTopics cut at " << n);
    CHECK_FALSE(parse_create_topics_request(*h, f.bytes.substr(0, n)));
  }
  auto limited = parse_create_topics_request(*h, f.bytes, 2);
  REQUIRE(limited);
  CHECK(limited->too_many_topics);

  // v0 has no validate_only; a version the front end does not answer is not read.
  Frame v0 = request_header(kCreateTopics, 0, 22);
  v0.i32(1).str("t").i32(1).i16(1).i32(0).i32(0).i32(5000);
  auto h0 = parse_request_header(v0.bytes);
  auto req0 = parse_create_topics_request(*h0, v0.bytes);
  REQUIRE(req0);
  CHECK_FALSE(req0->validate_only);
  Frame v5 = request_header(kCreateTopics, 5, 23);
  v5.bytes += v0.bytes.substr(h0->body_offset);
  CHECK_FALSE(parse_create_topics_request(*parse_request_header(v5.bytes), v5.bytes));

  const std::vector<TopicAnswer> answers = {{"a", 0, ""}, {"b", kTopicAlreadyExists, "exists"}};
  for (int16_t v = 0; v <= kCreateTopicsMaxVersion; ++v) {
    INFO("version " << v);
    std::string out = encode_create_topics_response(21, v, answers);
    Cursor c{out};
    CHECK(c.get(4) == 21);
    if (v >= 2) CHECK(c.get(4) == 0);  // throttle_time_ms
    CHECK(c.get(4) == 2);
    CHECK(c.str() == "a");
    CHECK(c.get(2) == 0);
    if (v >= 1) CHECK(c.str() == "<null>");
    CHECK(c.str() == "b");
    CHECK(c.get(2) == kTopicAlreadyExists);
    if (v >= 1) CHECK(c.str() == "exists");
    CHECK(c.pos == out.size());
  }
}

TEST_CASE("kafka_wire: DeleteTopics requests v0-v3 and their answers") {
  Frame f = request_header(kDeleteTopics, 1, 31);
  f.i32(3).str("a").null_str().str("b").i32(5000);
  auto h = parse_request_header(f.bytes);
  auto req = parse_delete_topics_request(*h, f.bytes);
  REQUIRE(req);
  CHECK(req->names == std::vector<std::string>{"a", "b"});
  for (size_t n = h->body_offset; n < f.bytes.size(); ++n) {
    INFO("DeleteTopics cut at " << n);
    CHECK_FALSE(parse_delete_topics_request(*h, f.bytes.substr(0, n)));
  }
  CHECK(parse_delete_topics_request(*h, f.bytes, 2)->too_many_topics);
  for (int16_t v = 0; v <= kDeleteTopicsMaxVersion; ++v) {
    std::string out = encode_delete_topics_response(31, v, {{"a", kTopicDeletionDisabled, "ignored"}});
    Cursor c{out};
    CHECK(c.get(4) == 31);
    if (v >= 1) CHECK(c.get(4) == 0);
    CHECK(c.get(4) == 1);
    CHECK(c.str() == "a");
    CHECK(c.get(2) == kTopicDeletionDisabled);
    CHECK(c.pos == out.size());
  }
}

TEST_CASE("kafka_wire: a Metadata controller the response does not list becomes its lowest broker") {
  // The mock says controller 0 while its brokers are 1..n; admin clients
  // send CreateTopics to the controller and would wait for broker 0 forever.
  auto controller_of = [](int32_t said) {
    Frame f;
    f.i32(5).i32(2);
    f.i32(2).str("127.0.0.1").i32(40002).null_str();
    f.i32(1).str("127.0.0.1").i32(40001).null_str();
    f.str("cluster").i32(said).i32(0);
    auto out = rewrite_metadata_response(f.bytes, 2, 2, mock_to_front, {});
    REQUIRE(out);
    Cursor c{*out};
    c.get(4);
    c.get(4);
    for (int i = 0; i < 2; ++i) {
      c.get(4);
      c.str();
      c.get(4);
      c.str();
    }
    c.str();
    return c.get(4);
  };
  CHECK(controller_of(0) == 1);
  CHECK(controller_of(-1) == 1);
  CHECK(controller_of(2) == 2);  // a listed one stays
}
