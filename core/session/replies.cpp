#include "core/session/replies.hpp"

#include "core/util/text.hpp"

namespace kws {

namespace {

void append_offsets(std::string& out, const char* name, const std::vector<int64_t>& offsets) {
  out += ",\"";
  out += name;
  out += "\":[";
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(offsets[i]);
  }
  out += ']';
}

void append_id(std::string& out, std::string_view request_id) {
  if (request_id.empty()) return;
  out += ",\"id\":";
  out += request_id;
}

}  // namespace

std::string error_json(ClientError error, std::string_view message, std::string_view request_id,
                       std::string_view topic) {
  std::string out = "{\"type\":\"error\",\"code\":" + json_quote(client_error_code(error)) + ",\"message\":" + json_quote(message);
  append_id(out, request_id);
  if (!topic.empty()) out += ",\"topic\":" + json_quote(topic);
  out += '}';
  return out;
}

std::string notice_json(const HubNotice& n) {
  switch (n.kind) {
    case HubNotice::Kind::error:
      return error_json(n.error, n.message, n.request_id, n.topic);
    case HubNotice::Kind::unsubscribed: {
      std::string out = "{\"type\":\"unsubscribed\",\"topic\":" + json_quote(n.topic);
      append_id(out, n.request_id);
      return out + '}';
    }
    case HubNotice::Kind::lost:
      return "{\"type\":\"lost\",\"topic\":" + json_quote(n.topic) + ",\"partition\":" + std::to_string(n.partition) +
             ",\"from\":" + std::to_string(n.first) + ",\"to\":" + std::to_string(n.last) + "}";
    case HubNotice::Kind::kafka: {
      std::string out = std::string("{\"type\":\"kafka\",\"reachable\":") + (n.reachable ? "true" : "false");
      if (!n.message.empty()) out += ",\"message\":" + json_quote(n.message);
      return out + '}';
    }
    case HubNotice::Kind::topics: {
      std::string out = "{\"type\":\"topics\",\"topics\":[";
      for (size_t i = 0; i < n.names.size(); ++i) {
        if (i) out += ',';
        out += json_quote(n.names[i]);
      }
      out += ']';
      append_id(out, n.request_id);
      return out + '}';
    }
    case HubNotice::Kind::caught_up:
      return "{\"type\":\"caught_up\",\"topic\":" + json_quote(n.topic) + "}";
    case HubNotice::Kind::subscribed:
      break;
  }
  std::string out = "{\"type\":\"subscribed\",\"topic\":" + json_quote(n.topic);
  if (!n.start_offsets.empty()) out += ",\"partitions\":" + std::to_string(n.start_offsets.size());
  if (!n.group.empty()) out += ",\"group\":" + json_quote(n.group);
  out += ",\"offset\":" + json_quote(n.start);
  if (!n.start_offsets.empty()) {
    append_offsets(out, "start_offsets", n.start_offsets);
    append_offsets(out, "end_offsets", n.end_offsets);
  }
  if (n.resumed) {
    out += std::string(",\"recovered\":") + (n.recovered ? "true" : "false");
    auto append_ranges = [&out](const char* name, const char* last_name, const std::vector<HubNotice::Range>& ranges) {
      if (ranges.empty()) return;
      out += ",\"";
      out += name;
      out += "\":[";
      for (size_t i = 0; i < ranges.size(); ++i) {
        if (i) out += ',';
        out += "{\"partition\":" + std::to_string(ranges[i].partition) + ",\"from\":" + std::to_string(ranges[i].first) +
               ",\"" + last_name + "\":" + std::to_string(ranges[i].last) + "}";
      }
      out += ']';
    };
    append_ranges("lost", "to", n.resume_lost);
    append_ranges("reset", "end", n.resume_reset);
  }
  append_id(out, n.request_id);
  return out + '}';
}

std::string ack_json(std::string_view request_id, std::string_view topic, int32_t partition, int64_t offset) {
  std::string out = "{\"type\":\"ack\"";
  append_id(out, request_id);
  out += ",\"topic\":" + json_quote(topic) + ",\"partition\":" + std::to_string(partition) +
         ",\"offset\":" + std::to_string(offset) + "}";
  return out;
}

std::string dropped_json(uint64_t count) { return "{\"type\":\"dropped\",\"count\":" + std::to_string(count) + "}"; }
std::string conflated_json(uint64_t count) {
  return "{\"type\":\"conflated\",\"count\":" + std::to_string(count) + "}";
}

std::string authenticated_json(std::string_view request_id, std::string_view subject, int64_t expires) {
  std::string out = "{\"type\":\"authenticated\"";
  append_id(out, request_id);
  out += ",\"sub\":" + json_quote(subject);
  out += expires > 0 ? ",\"expires\":" + std::to_string(expires) : std::string(",\"expires\":null");
  out += "}";
  return out;
}

}  // namespace kws
