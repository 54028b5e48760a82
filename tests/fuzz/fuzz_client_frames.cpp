// libFuzzer target for the kws protocol above the WebSocket layer
// (core/session/client_frames.* and connect_request.*): every message a
// client sends is decoded by decode_client_message, and every connection's
// query and offered subprotocols by parse_connect_query and
// choose_subprotocol, before anything else looks at them. Build and run: see
// tests/fuzz/CMakeLists.txt.
//
// Input: [limit][split][bytes...]. The bytes are decoded as a text message
// and as a binary message, with the largest frame the first byte picks (so
// that too_large is reached); bytes[0, split) are a connect query and
// bytes[split, end) a Sec-WebSocket-Protocol value. What the session makes of
// a result (an error reply with the request's id, an ack, an admission
// refusal) must be valid JSON too, since the id is copied into replies as
// it is.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/hub/encodings.hpp"
#include "core/hub/topic_tree.hpp"
#include "core/session/admission.hpp"
#include "core/session/client_frames.hpp"
#include "core/session/connect_request.hpp"
#include "core/session/replies.hpp"
#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "core/util/text.hpp"
#include "core/ws/protocol.hpp"

#include "tests/fuzz/fuzz_check.hpp"

using namespace kws;
using kws::fuzz::violated;

namespace {

using json = nlohmann::json;

// JSON text that parses, without exceptions.
json parsed(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  CHECK(!doc.is_discarded());
  return doc;
}

// An object view inside `payload` (a binary produce's topic and value).
bool inside(std::string_view view, const std::string& payload) {
  return view.data() >= payload.data() && view.data() + view.size() <= payload.data() + payload.size();
}

// The error reply the session sends for a refusal, with the request's id.
void check_error_reply(ClientError error, std::string_view why, std::string_view request_id, std::string_view topic) {
  CHECK(!why.empty());
  json reply = parsed(error_json(error, why, request_id, topic));
  CHECK(reply.is_object() && reply["type"] == "error");
  if (!request_id.empty()) CHECK(reply["id"] == parsed(request_id));
}

// What the session does with a produce request's topic: admit it or refuse
// it in words, as a session of either kafka encoding.
void check_admission(std::string_view topic, TopicAction action, std::string_view request_id) {
  static const AllowEveryone everyone;
  for (Encoding encoding : {Encoding::kafka_text, Encoding::kafka_binary}) {
    auto refusal = admit_topic(topic, action, encoding, Principal{}, everyone);
    if (refusal) {
      check_error_reply(refusal->error, refusal->why, request_id, topic);
    } else {
      CHECK(is_valid_topic_name(topic));
    }
  }
}

// Accepted resume positions name only the subscription's topics, and
// written out they read back the same.
void check_resume(const ResumeByTopic& resume, const std::vector<std::string>& topics) {
  if (resume.empty()) return;
  for (const auto& [topic, positions] : resume) {
    CHECK(std::find(topics.begin(), topics.end(), topic) != topics.end());
    for (const auto& [partition, offset] : positions) CHECK(partition >= 0 && offset >= -1);
  }
  ResumeByTopic again;
  CHECK(!parse_resume(format_resume(resume), again));
  CHECK(again == resume);
}

void check_filter(const MessageFilter& filter) {
  std::string problem;
  FilterPtr again = MessageFilter::parse_text(filter.canonical(), problem);
  CHECK(again && again->canonical() == filter.canonical());
  CHECK(std::is_sorted(filter.exact_keys().begin(), filter.exact_keys().end()));
  // A message with one of the exact keys and nothing else decides without a crash.
  Frame f;
  f.key = filter.exact_keys().empty() ? std::string("k") : filter.exact_keys().front();
  f.value = "{\"a\":[1,{\"b\":null}]}";
  (void)filter.matches(f);
  // Topic filters are valid, sorted and unique; with no other entry, a key
  // made from the first one (wildcards as literal levels) matches it.
  const auto& topics = filter.mqtt_topics();
  CHECK(std::adjacent_find(topics.begin(), topics.end(), std::greater_equal<>()) == topics.end());
  for (const auto& t : topics) CHECK(!topic_filter_problem(t));
  if (filter.only_mqtt_topics() && topics.front()[0] != '+' && topics.front()[0] != '#') {
    std::string name = topics.front();
    for (char& c : name) c = c == '+' || c == '#' ? 'x' : c;
    f.key = name;
    CHECK(filter.matches(f));
  }
}

void check_message(MessageKind kind, const std::string& payload, size_t max_frame) {
  ClientRequest r = decode_client_message(kind, payload, max_frame);

  // The id: JSON text (a string or a number) or nothing, and only from a
  // client that spoke kws's protocol.
  if (!r.request_id.empty()) {
    CHECK(r.kws_only);
    json id = parsed(r.request_id);
    CHECK(id.is_string() || id.is_number());
  }
  if (payload.size() > max_frame) {
    // Refused unread.
    CHECK(r.kind == ClientRequest::Kind::invalid && r.error == ClientError::too_large);
    CHECK(r.request_id.empty() && !r.kws_only);
  }
  if (kind == MessageKind::binary) {
    // [1 byte topic length][topic][value]: no JSON, no id, no control.
    CHECK(r.request_id.empty() && !r.kws_only);
    CHECK(r.kind == ClientRequest::Kind::produce || r.kind == ClientRequest::Kind::invalid);
  }

  switch (r.kind) {
    case ClientRequest::Kind::invalid:
      // In words the client can read: JSON replies would carry bytes that
      // are not UTF-8 as U+FFFD.
      CHECK(is_valid_utf8(r.why));
      check_error_reply(r.error, r.why, r.request_id, r.topic);
      break;
    case ClientRequest::Kind::produce:
      CHECK(payload.size() <= max_frame);
      if (kind == MessageKind::binary) {
        CHECK(r.binary);
        const size_t length = static_cast<unsigned char>(payload[0]);
        CHECK(inside(r.binary_topic, payload) && inside(r.binary_value, payload));
        CHECK(r.binary_topic.data() == payload.data() + 1 && r.binary_topic.size() == length);
        CHECK(r.binary_value.data() == payload.data() + 1 + length);
        CHECK(r.binary_value.data() + r.binary_value.size() == payload.data() + payload.size());
        check_admission(r.binary_topic, TopicAction::write, r.request_id);
      } else {
        CHECK(!r.binary);
        // The topic is the frame's own "topic" string.
        json doc = parsed(payload);
        CHECK(doc.is_object() && doc["topic"].is_string() && doc["topic"].get<std::string>() == r.message.topic);
        check_admission(r.message.topic, TopicAction::write, r.request_id);
        // An ack names the id and the topic; it must be JSON whatever they are.
        if (!r.request_id.empty()) CHECK(parsed(ack_json(r.request_id, r.message.topic, 0, 0))["id"] == parsed(r.request_id));
      }
      break;
    case ClientRequest::Kind::topics: {
      // Answered with a list whatever the id: JSON whatever they are.
      CHECK(kind == MessageKind::text && r.kws_only);
      HubNotice n;
      n.kind = HubNotice::Kind::topics;
      n.request_id = r.request_id;
      n.names = {"a", std::string(payload.substr(0, 8))};
      CHECK(parsed(notice_json(n))["topics"].size() == 2);
      break;
    }
    case ClientRequest::Kind::auth: {
      // The frame's own non-empty "token" string; the answer to it is JSON whatever its id.
      CHECK(kind == MessageKind::text && r.kws_only && !r.token.empty());
      json doc = parsed(payload);
      CHECK(doc.is_object() && doc["token"].is_string() && doc["token"].get<std::string>() == r.token);
      CHECK(parsed(authenticated_json(r.request_id, r.token, 1))["sub"] == r.token);
      break;
    }
    case ClientRequest::Kind::subscribe:
    case ClientRequest::Kind::unsubscribe:
      CHECK(kind == MessageKind::text && r.kws_only);
      CHECK(!r.topics.empty());
      if (r.kind == ClientRequest::Kind::unsubscribe) {
        // The session only refuses a name Kafka would refuse.
        for (const auto& t : r.topics) {
          if (auto problem = topic_name_problem(t)) check_error_reply(ClientError::bad_topic, *problem, r.request_id, t);
        }
      } else {
        for (const auto& t : r.topics) check_admission(t, TopicAction::read, r.request_id);
        // The start text the hub echoes in `subscribed` reads back the same.
        CHECK(!r.start_text.empty());
        try {
          CHECK(parse_start(r.start_text).kind == r.start.kind);
        } catch (const Error&) {
          violated("an accepted start text is refused when read again");
        }
        check_resume(r.resume, r.topics);
        // An accepted filter reads back the same from its canonical text.
        if (r.filter) check_filter(*r.filter);
      }
      break;
  }
}

bool group_ok(const std::string& group) {
  if (group.empty() || group.size() > 255) return false;
  for (unsigned char c : group) {
    if (c < 0x20 || c == 0x7F) return false;
  }
  return true;
}

// Whether the query was accepted (into `out`).
bool check_query(std::string_view query, ConnectRequest& out) {
  auto problem = parse_connect_query(query, out);
  if (problem) {
    CHECK(!problem->empty());
    return false;
  }
  for (const auto& t : out.topics) CHECK(is_valid_topic_name(t));
  if (!out.group.empty()) CHECK(group_ok(out.group) && !out.topics.empty());
  if (out.start.kind == OffsetSpec::Kind::stored) CHECK(!out.group.empty());
  if (out.start_explicit) CHECK(out.kws_protocol);
  if (!out.resume.empty() || out.filter) CHECK(out.kws_protocol);
  if (!out.resume.empty()) CHECK(out.group.empty());  // a group session goes on from its commit; a filter goes with it
  check_resume(out.resume, out.topics);
  if (out.filter) check_filter(*out.filter);
  // What the session answers a client of the kws protocol with.
  for (const auto& t : out.topics) CHECK(parsed(error_json(ClientError::bad_topic, "x", "", t))["topic"] == t);
  return true;
}

// The offered subprotocols as the server reads them: every token of the
// Sec-WebSocket-Protocol value (HttpRequest::header_tokens).
std::vector<std::string> offered_subprotocols(std::string_view value) {
  ws::HttpRequest request;
  request.headers.emplace_back("sec-websocket-protocol", std::string(value));
  std::vector<std::string> offered = request.header_tokens("sec-websocket-protocol");
  for (const auto& p : offered) CHECK(!p.empty() && p.find(',') == std::string::npos);
  return offered;
}

bool speaks(const std::string& p) { return p == "kafka-text" || p == "kafka-binary" || p == kKwsSubprotocol; }

// Whether a subprotocol was agreed on (into `out`).
bool check_subprotocol(const std::vector<std::string>& offered, ConnectRequest& out) {
  const ConnectRequest before = out;
  auto problem = choose_subprotocol(offered, out);
  // The client's first choice that kws speaks, if any.
  std::string first;
  for (const auto& p : offered) {
    if (speaks(p)) {
      first = p;
      break;
    }
  }
  if (problem) {
    CHECK(!problem->empty());
    if (!first.empty()) {
      // Only a topic kafka-binary cannot carry refuses a subprotocol kws speaks.
      bool too_long = false;
      for (const auto& t : out.topics) too_long = too_long || t.size() > kMaxBinaryTopicLength;
      CHECK(first == "kafka-binary" && too_long);
    }
    return false;
  }
  if (offered.empty()) {
    CHECK(out.subprotocol.empty() && out.encoding == before.encoding && out.kws_protocol == before.kws_protocol);
    return true;
  }
  CHECK(!first.empty() && out.subprotocol == first);
  CHECK((out.encoding == Encoding::kafka_binary) == (first == "kafka-binary"));
  if (first == kKwsSubprotocol) CHECK(out.kws_protocol);
  if (first == "kafka-binary") {
    for (const auto& t : out.topics) CHECK(t.size() <= kMaxBinaryTopicLength);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  // Small limits (0..508 bytes) for most inputs, so too_large is reached; 1 MiB otherwise.
  const size_t max_frame = data[0] < 128 ? size_t{data[0]} * 4 : size_t{1} << 20;
  const size_t split = bytes.size() * data[1] / 255;

  check_message(MessageKind::text, bytes, max_frame);
  check_message(MessageKind::binary, bytes, max_frame);

  // As the server does it (ws/server.cpp): the query first, the subprotocol
  // on what it gave, then every topic of the query through admission, where
  // a name the two parsers let through must not be refused.
  const std::vector<std::string> offered = offered_subprotocols(std::string_view(bytes).substr(split));
  ConnectRequest request;
  if (check_query(std::string_view(bytes).substr(0, split), request) && check_subprotocol(offered, request)) {
    static const AllowEveryone everyone;
    for (const auto& t : request.topics) CHECK(!admit_topic(t, TopicAction::read, request.encoding, Principal{}, everyone));
  }
  // And on any topics, so the kafka-binary length rule is reached.
  ConnectRequest any;
  if (!bytes.empty()) any.topics.emplace_back(std::string(static_cast<unsigned char>(bytes[0]) + 1, 't'));
  check_subprotocol(offered, any);
  return 0;
}
