#include "core/session/client_frames.hpp"

#include <algorithm>

#include "core/json_parse.hpp"
#include "core/session/connect_request.hpp"
#include "core/util/error.hpp"

namespace kws {

namespace {

ClientRequest invalid(ClientRequest r, ClientError error, std::string why, std::string topic = {}) {
  r.kind = ClientRequest::Kind::invalid;
  r.error = error;
  r.why = std::move(why);
  r.topic = std::move(topic);
  return r;
}

ClientRequest decode_binary(const std::string& payload) {
  ClientRequest r;
  if (payload.empty() || payload.size() < 1 + static_cast<size_t>(static_cast<unsigned char>(payload[0]))) {
    return invalid(std::move(r), ClientError::bad_frame,
                   "a binary frame is [1 byte topic length][topic][message]; this one is too short");
  }
  const size_t length = static_cast<unsigned char>(payload[0]);
  r.kind = ClientRequest::Kind::produce;
  r.binary = true;
  r.binary_topic = std::string_view(payload).substr(1, length);
  r.binary_value = std::string_view(payload).substr(1 + length);
  return r;
}

ClientRequest decode_control(ClientRequest r, const nlohmann::json& doc, bool subscribe) {
  r.kind = subscribe ? ClientRequest::Kind::subscribe : ClientRequest::Kind::unsubscribe;
  auto topics_it = doc.find("topics");
  auto topic_it = doc.find("topic");
  if (topics_it != doc.end() && topics_it->is_array()) {
    for (const auto& t : *topics_it) {
      if (!t.is_string()) return invalid(std::move(r), ClientError::bad_frame, "\"topics\" must be an array of strings");
      r.topics.push_back(t.get<std::string>());
    }
  } else if (topic_it != doc.end() && topic_it->is_string()) {
    r.topics.push_back(topic_it->get<std::string>());
  } else {
    return invalid(std::move(r), ClientError::bad_frame, "\"topics\" (an array of strings) is required");
  }
  if (r.topics.empty()) return invalid(std::move(r), ClientError::bad_frame, "\"topics\" must not be empty");
  if (!subscribe) return r;
  r.start = parse_start("latest");
  if (auto it = doc.find("offset"); it != doc.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      r.start_text = it->dump();
    } else if (it->is_string()) {
      r.start_text = it->get<std::string>();
    } else {
      return invalid(std::move(r), ClientError::bad_offset, "\"offset\" must be a string or an integer");
    }
    try {
      r.start = parse_start(r.start_text);
    } catch (const Error& e) {
      return invalid(std::move(r), ClientError::bad_offset, e.what());
    }
  }
  if (auto it = doc.find("resume"); it != doc.end() && !it->is_null()) {
    if (!it->is_string()) {
      return invalid(std::move(r), ClientError::bad_offset, "\"resume\" must be a string TOPIC:PARTITION:OFFSET[,...]");
    }
    if (auto problem = parse_resume(it->get_ref<const std::string&>(), r.resume)) {
      return invalid(std::move(r), ClientError::bad_offset, *problem);
    }
    for (const auto& [topic, positions] : r.resume) {
      if (std::find(r.topics.begin(), r.topics.end(), topic) == r.topics.end()) {
        return invalid(std::move(r), ClientError::bad_offset, "resume names '" + topic + "', which \"topics\" does not");
      }
    }
  }
  if (auto it = doc.find("filter"); it != doc.end() && !it->is_null()) {
    std::string problem;
    r.filter = MessageFilter::parse(*it, problem);
    if (!r.filter) return invalid(std::move(r), ClientError::bad_filter, problem);
  }
  if (auto it = doc.find("caught_up"); it != doc.end() && !it->is_null()) {
    if (!it->is_boolean()) return invalid(std::move(r), ClientError::bad_frame, "\"caught_up\" must be true or false");
    r.tell_caught_up = it->get<bool>();
  }
  return r;
}

}  // namespace

ClientRequest decode_client_message(MessageKind kind, const std::string& payload, size_t max_frame) {
  if (payload.size() > max_frame) {
    return invalid(ClientRequest{}, ClientError::too_large,
                   "frame of " + std::to_string(payload.size()) + " bytes is over the limit of " +
                       std::to_string(max_frame));
  }
  if (kind == MessageKind::binary) return decode_binary(payload);
  ClientRequest r;
  std::string why;
  std::optional<nlohmann::json> doc = parse_json_text(payload, why);
  if (!doc) return invalid(std::move(r), ClientError::bad_json, why);
  if (!doc->is_object()) return invalid(std::move(r), ClientError::bad_json, "a frame must be a JSON object");
  if (auto it = doc->find("id"); it != doc->end()) {
    r.kws_only = true;
    if (!it->is_string() && !it->is_number()) {
      return invalid(std::move(r), ClientError::bad_frame, "\"id\" must be a string or a number");
    }
    r.request_id = it->dump();
  }
  std::string type = "produce";
  if (auto it = doc->find("type"); it != doc->end()) {
    r.kws_only = true;
    if (!it->is_string()) return invalid(std::move(r), ClientError::bad_frame, "\"type\" must be a string");
    type = it->get<std::string>();
  }
  if (type == "subscribe" || type == "unsubscribe") return decode_control(std::move(r), *doc, type == "subscribe");
  if (type == "auth") {
    auto token = doc->find("token");
    if (token == doc->end() || !token->is_string() || token->get_ref<const std::string&>().empty()) {
      return invalid(std::move(r), ClientError::bad_frame, "\"token\" is required and must be a non-empty string");
    }
    r.kind = ClientRequest::Kind::auth;
    r.token = token->get<std::string>();
    return r;
  }
  if (type == "topics") {
    r.kind = ClientRequest::Kind::topics;
    return r;
  }
  if (type != "produce") {
    return invalid(std::move(r), ClientError::unknown_type,
                   "unknown frame type \"" + type + "\" (expected produce, subscribe, unsubscribe, topics or auth)");
  }
  auto topic = doc->find("topic");
  if (topic == doc->end() || !topic->is_string()) {
    return invalid(std::move(r), ClientError::bad_frame, "\"topic\" is required and must be a string");
  }
  DecodedEnvelope decoded = decode_envelope_document(*doc, {"id", "type"});
  if (!decoded) return invalid(std::move(r), ClientError::bad_frame, decoded.error, topic->get<std::string>());
  r.kind = ClientRequest::Kind::produce;
  r.message = std::move(*decoded.message);
  return r;
}

}  // namespace kws
