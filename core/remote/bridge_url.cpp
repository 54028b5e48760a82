#include "core/remote/bridge_url.hpp"

#include "core/util/error.hpp"
#include "core/util/text.hpp"

namespace kws {

bool is_bridge_url(std::string_view text) {
  auto starts = [&](std::string_view prefix) {
    return text.size() >= prefix.size() && ascii_iequals(text.substr(0, prefix.size()), prefix);
  };
  return starts("ws://") || starts("wss://");
}

std::string percent_encode(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

BridgeTarget make_bridge_target(std::string_view url, const BridgeRequest& request) {
  const std::string shown(url);
  if (!is_bridge_url(url)) throw usage_error("'" + shown + "' is not a ws:// or wss:// URL");
  if (url.find('#') != std::string_view::npos)
    throw usage_error("'" + shown + "': a bridge URL has no #fragment");
  for (unsigned char c : url) {
    if (c <= 0x20 || c == 0x7f)
      throw usage_error("'" + shown + "': a URL cannot hold spaces or control characters");
  }
  const size_t scheme_end = url.find("://") + 3;
  const size_t query_at = url.find('?');
  std::string_view before_query = url.substr(0, query_at);
  std::string_view query = query_at == std::string_view::npos ? std::string_view() : url.substr(query_at + 1);
  const size_t path_at = before_query.find('/', scheme_end);
  std::string_view authority = before_query.substr(
      scheme_end, path_at == std::string_view::npos ? std::string_view::npos : path_at - scheme_end);
  if (authority.empty()) throw usage_error("'" + shown + "' names no host");
  std::string path =
      path_at == std::string_view::npos ? std::string() : std::string(before_query.substr(path_at));
  if (path.empty() || path == "/") path = "/v2/broker/";

  BridgeTarget target;
  std::string out_query;
  bool has_topics = false, has_offset = false, has_caught_up = false;
  size_t pos = 0;
  while (pos < query.size()) {
    size_t amp = query.find('&', pos);
    std::string_view part =
        query.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    pos = amp == std::string_view::npos ? query.size() : amp + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    auto name = form_decode(part.substr(0, eq));
    auto value = form_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
    if (!name || !value)
      throw usage_error("'" + shown + "': bad %-escape in the query part '" + std::string(part) + "'");
    if (*name == "topics") {
      has_topics = true;
      size_t start = 0;
      while (start <= value->size() && !value->empty()) {
        size_t comma = value->find(',', start);
        std::string t = value->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!t.empty()) target.topics.push_back(t);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (*name == "offset") {
      has_offset = true;
    } else if (*name == "group.id") {
      target.group = true;
    } else if (*name == "filter") {
      target.filter = true;
    } else if (*name == "caught_up") {
      has_caught_up = true;
    }
    if (!out_query.empty()) out_query += '&';
    out_query += part;
  }
  if (!request.topics.empty()) {
    if (has_topics) {
      throw usage_error("'" + shown + "' already has topics=; give topics there or as arguments, not both");
    }
    std::string joined;
    for (const auto& t : request.topics) {
      if (t.find(',') != std::string::npos)
        throw usage_error("topic '" + t + "' cannot go through a bridge: it has a comma");
      if (!joined.empty()) joined += ',';
      joined += t;
      target.topics.push_back(t);
    }
    if (!out_query.empty()) out_query += '&';
    out_query += "topics=" + percent_encode(joined);
  }
  if (request.offset) {
    if (has_offset) throw usage_error("'" + shown + "' already has offset=; give -o or offset=, not both");
    if (!out_query.empty()) out_query += '&';
    out_query += "offset=" + percent_encode(*request.offset);
  }
  if (request.caught_up && !has_caught_up && !target.group) {
    if (!out_query.empty()) out_query += '&';
    out_query += "caught_up=1";
  }
  target.url = ascii_lower(before_query.substr(0, scheme_end)) + std::string(authority) + path;
  if (!out_query.empty()) target.url += "?" + out_query;
  return target;
}

}  // namespace kws
