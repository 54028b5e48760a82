#include "core/session/connect_request.hpp"

#include <algorithm>
#include <set>

#include "core/hub/encodings.hpp"
#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "core/util/text.hpp"

namespace kws {

namespace {

// A group id reaches librdkafka as a C string and Kafka's logs as text: a
// control character would cut it short (x%00y joined group "x") or garble
// them.
std::optional<std::string> group_problem(const std::string& group) {
  if (group.empty()) return "group.id must not be empty";
  if (group.size() > 255) return "group.id is longer than 255 bytes";
  for (unsigned char c : group) {
    if (c < 0x20 || c == 0x7F) return "group.id must not contain control characters (NUL, newline, ...)";
  }
  return std::nullopt;
}

}  // namespace

OffsetSpec parse_start(std::string_view text) {
  if (text == "latest") return parse_offset_spec("end");
  if (text == "earliest") return parse_offset_spec("beginning");
  return parse_offset_spec(text);
}

std::optional<std::string> parse_connect_query(std::string_view query, ConnectRequest& out) {
  std::set<std::string> seen;
  size_t pos = 0;
  while (pos <= query.size() && !query.empty()) {
    size_t amp = query.find('&', pos);
    std::string_view part = query.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    pos = amp == std::string_view::npos ? query.size() + 1 : amp + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    auto name = form_decode(part.substr(0, eq));
    auto value = form_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
    if (!name || !value) return "malformed query: bad %-escape in '" + std::string(part) + "'";
    if (!seen.insert(*name).second) return "query parameter '" + *name + "' is given twice";
    if (*name == "topics") {
      if (value->empty()) continue;  // kafka-websocket's produce-only client may send topics=
      size_t start = 0;
      while (start <= value->size()) {
        size_t comma = value->find(',', start);
        std::string topic = value->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? value->size() + 1 : comma + 1;
        if (topic.empty()) return "topics: an empty topic name (two commas in a row, or one at an end)";
        if (auto problem = topic_name_problem(topic)) return "topics: " + *problem;
        out.topics.push_back(topic);
      }
    } else if (*name == "group.id") {
      if (auto problem = group_problem(*value)) return *problem;
      out.group = *value;
    } else if (*name == "offset") {
      try {
        out.start = parse_start(*value);
      } catch (const Error& e) {
        return std::string("offset: ") + e.what();
      }
      out.start_text = *value;
      out.start_explicit = true;
      out.kws_protocol = true;  // kafka-websocket has no offset parameter
    } else if (*name == "resume") {
      if (auto problem = parse_resume(*value, out.resume)) return *problem;
      out.kws_protocol = true;
    } else if (*name == "filter") {
      std::string problem;
      out.filter = MessageFilter::parse_text(*value, problem);
      if (!out.filter) return problem;
      out.kws_protocol = true;
    } else if (*name == "caught_up") {
      if (*value != "1" && *value != "true") return "caught_up: 1 or true (or leave it out)";
      out.tell_caught_up = true;
      out.kws_protocol = true;
    } else if (*name == "access_token") {
      // The gateway's token (docs/SECURITY.md): the server reads it before this.
    } else {
      return "unknown query parameter '" + *name + "' (accepted: topics, group.id, offset, resume, filter, caught_up, access_token)";
    }
  }
  if (out.start.kind == OffsetSpec::Kind::stored && out.group.empty()) return "offset=stored needs a group.id";
  if (!out.group.empty() && out.topics.empty()) return "a group.id session needs topics= in the query";
  for (const auto& [topic, positions] : out.resume) {
    if (std::find(out.topics.begin(), out.topics.end(), topic) == out.topics.end()) {
      return "resume names '" + topic + "', which topics= does not";
    }
  }
  if (!out.group.empty() && !out.resume.empty()) {
    return "resume= does not apply to a group.id session: the group's committed offsets are its position";
  }
  if (!out.group.empty() && out.tell_caught_up) {
    return "caught_up= does not apply to a group.id session: the group assigns its partitions, and has no end offsets";
  }
  return std::nullopt;
}

std::optional<std::string> choose_subprotocol(const std::vector<std::string>& offered, ConnectRequest& out) {
  if (offered.empty()) return std::nullopt;
  for (const auto& p : offered) {
    if (p == "kafka-text" || p == "kafka-binary" || p == kKwsSubprotocol) {
      out.subprotocol = p;
      break;
    }
  }
  if (out.subprotocol.empty()) {
    return "unsupported subprotocol; kws serve speaks " + std::string(kKwsSubprotocol) + ", kafka-text and kafka-binary";
  }
  if (out.subprotocol == "kafka-binary") {
    out.encoding = Encoding::kafka_binary;
    for (const auto& t : out.topics) {
      if (t.size() > kMaxBinaryTopicLength) return "kafka-binary cannot carry topic names over 255 bytes";
    }
  }
  if (out.subprotocol == kKwsSubprotocol) out.kws_protocol = true;
  return std::nullopt;
}

}  // namespace kws
