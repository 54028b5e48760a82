#include "core/bench/wire.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <random>

#include "core/util/error.hpp"
#include "core/util/text.hpp"

namespace kws::bench {

namespace {

const char kHex[] = "0123456789abcdef";
const char kHexUpper[] = "0123456789ABCDEF";

char* write_decimal(char* p, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

// Parses decimal digits at `p` up to `end`, followed by ':'; advances p past the ':'.
bool read_decimal(const char*& p, const char* end, uint64_t& out) {
  const char* start = p;
  uint64_t v = 0;
  while (p < end && *p >= '0' && *p <= '9' && p - start < 20) v = v * 10 + static_cast<uint64_t>(*p++ - '0');
  if (p == start || p >= end || *p != ':') return false;
  ++p;
  out = v;
  return true;
}

}  // namespace

std::string make_run_tag() {
  std::random_device rd;
  std::string tag(kTagBytes, '0');
  for (auto& c : tag) c = kHex[rd() & 15];
  return tag;
}

void format_message(std::string& out, std::string_view tag, uint64_t seq, uint64_t sent_ns, size_t size) {
  out.assign(std::max(size, kMaxStampBytes), 'x');
  char* p = out.data();
  memcpy(p, "kwsb", 4);
  p += 4;
  memcpy(p, tag.data(), tag.size());
  p += tag.size();
  *p++ = ':';
  p = write_decimal(p, seq);
  *p++ = ':';
  p = write_decimal(p, sent_ns);
  *p++ = ':';
  out.resize(std::max(size, static_cast<size_t>(p - out.data())));
}

std::optional<Stamp> find_stamp(std::string_view payload, std::string_view tag) {
  char needle[4 + kTagBytes + 1];
  if (tag.size() != kTagBytes) return std::nullopt;
  memcpy(needle, "kwsb", 4);
  memcpy(needle + 4, tag.data(), kTagBytes);
  needle[4 + kTagBytes] = ':';
  const void* hit = memmem(payload.data(), payload.size(), needle, sizeof needle);
  if (!hit) return std::nullopt;
  const char* p = static_cast<const char*>(hit) + sizeof needle;
  const char* end = payload.data() + payload.size();
  Stamp s;
  if (!read_decimal(p, end, s.seq) || !read_decimal(p, end, s.sent_ns)) return std::nullopt;
  return s;
}

WsUrl parse_ws_url(const std::string& url) {
  auto bad = [&](const std::string& why) { return usage_error("bad URL '" + url + "': " + why); };
  std::string_view rest(url);
  WsUrl out;
  if (rest.rfind("wss://", 0) == 0) {
    out.tls = true;
    out.port = 443;
    rest.remove_prefix(6);
  } else if (rest.rfind("ws://", 0) == 0) {
    rest.remove_prefix(5);
  } else if (rest.rfind("mqtt://", 0) == 0) {
    out.raw_mqtt = true;
    out.port = 1883;
    rest.remove_prefix(7);
  } else {
    throw bad("expected ws://HOST:PORT/, wss://HOST:PORT/ or mqtt://HOST:PORT");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.empty()) throw bad("no host");
  std::string_view port_text;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) throw bad("unclosed '['");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw bad("expected ':' after ']'");
      port_text = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (out.host.empty()) throw bad("no host");
  if (authority.find('@') != std::string_view::npos) throw bad("user info is not supported");
  if (!port_text.empty() || authority.back() == ':') {
    int port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port > 65535) throw bad("bad port");
      port = port * 10 + (c - '0');
    }
    if (port_text.empty() || port < 1 || port > 65535) throw bad("port must be 1-65535");
    out.port = static_cast<uint16_t>(port);
  }
  if (out.path.find('#') != std::string::npos) throw bad("fragments are not allowed");
  if (out.raw_mqtt && out.path != "/") throw bad("an mqtt:// URL has no path");
  return out;
}

std::string url_encode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHexUpper[c >> 4];
      out += kHexUpper[c & 15];
    }
  }
  return out;
}

std::string subscribe_target(const WsUrl& url, const std::string& topic) {
  std::string path = url.path;
  std::string query;
  if (auto q = path.find('?'); q != std::string::npos) {
    query = path.substr(q + 1);
    path.resize(q);
  }
  if (path == "/") path = "/v2/broker/";
  std::string target = path + "?" + query;
  if (!query.empty()) target += '&';
  target += "topics=" + url_encode(topic);
  // A kws-only parameter asks kws serve for its replies (the `subscribed`
  // the bench waits for); kafka-websocket reads topics and group.id only.
  if (("&" + query).find("&offset=") == std::string::npos) target += "&offset=latest";
  return target;
}

std::string mqtt_target(const WsUrl& url) { return url.path == "/" ? "/mqtt" : url.path; }

std::string new_handshake_key() {
  std::random_device rd;
  std::string raw(16, '\0');
  for (auto& c : raw) c = static_cast<char>(rd() & 0xff);
  return base64_encode(raw);
}

std::string handshake_request(const WsUrl& url, const std::string& target, std::string_view key,
                              std::string_view subprotocol) {
  std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  std::string r = "GET " + target + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(url.port) +
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(key) +
                  "\r\nSec-WebSocket-Version: 13\r\n";
  if (!subprotocol.empty()) r += "Sec-WebSocket-Protocol: " + std::string(subprotocol) + "\r\n";
  return r + "User-Agent: kws-bench\r\n\r\n";
}

HandshakeAnswer check_handshake(std::string_view response, std::string_view expected_accept,
                                std::string_view subprotocol) {
  HandshakeAnswer a;
  size_t end = response.find("\r\n\r\n");
  if (end == std::string_view::npos) return a;
  a.header_bytes = end + 4;
  std::string_view head = response.substr(0, end);
  size_t eol = head.find("\r\n");
  std::string status_line(trim(head.substr(0, eol)));
  if (status_line.rfind("HTTP/1.1 101", 0) != 0) {
    std::string body(response.substr(a.header_bytes, 300));
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    a.error = "the server answered '" + status_line + "'" + (body.empty() ? "" : ": " + body);
    return a;
  }
  std::string accept, protocol;
  while (eol != std::string_view::npos) {
    size_t next = head.find("\r\n", eol + 2);
    std::string_view line = head.substr(eol + 2, next == std::string_view::npos ? std::string_view::npos : next - eol - 2);
    eol = next;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = ascii_lower(line.substr(0, colon));
    if (name == "sec-websocket-accept") accept = trim(line.substr(colon + 1));
    if (name == "sec-websocket-protocol") protocol = trim(line.substr(colon + 1));
  }
  if (accept != expected_accept) {
    a.error = "the server's Sec-WebSocket-Accept is wrong ('" + accept + "', expected '" + std::string(expected_accept) + "')";
    return a;
  }
  if (!protocol.empty() && protocol != subprotocol) {
    a.error = "the server chose subprotocol '" + protocol + "', not '" + std::string(subprotocol) + "'";
    return a;
  }
  a.ok = true;
  return a;
}

size_t parse_server_frame(std::string_view bytes, FrameView& frame, std::string& error, uint64_t max_payload) {
  ws::FrameHeader h;
  const ws::HeaderRead read = ws::read_frame_header(bytes, h);
  // The first two bytes are enough to refuse these, so a bad server is
  // named at once instead of after a length and a key that may never come.
  if (h.reserved) {
    error = "frame with reserved bits set (no extension was negotiated)";
    return 0;
  }
  if (h.masked) {
    error = "masked frame from the server";
    return 0;
  }
  if (read == ws::HeaderRead::incomplete) return 0;
  // A length over 2^63, which RFC 6455 forbids, is over any limit in use.
  if (read == ws::HeaderRead::length_over_63_bits || h.length > max_payload) {
    error = "frame of " + std::to_string(h.length) + " bytes, over the " + std::to_string(max_payload) + " byte limit";
    return 0;
  }
  if (bytes.size() - h.size < h.length) return 0;
  frame.opcode = h.opcode;
  frame.fin = h.fin;
  frame.payload = bytes.substr(h.size, static_cast<size_t>(h.length));
  return h.size + static_cast<size_t>(h.length);
}

std::string client_frame(Opcode opcode, std::string_view payload) {
  // The mask only has to be unpredictable to defeat cache poisoning by
  // intermediaries (RFC 6455 10.3); a fixed one is fine for a load generator.
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string f;
  f.reserve(14 + payload.size());
  ws::append_frame_header(f, opcode, payload.size(), key);
  const size_t at = f.size();
  f.append(payload);
  ws::mask_payload(f.data() + at, payload.size(), key);
  return f;
}

std::pair<int, std::string> close_reason(std::string_view payload) {
  if (payload.size() < 2) return {1005, ""};
  int code = (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
  return {code, std::string(payload.substr(2))};
}

}  // namespace kws::bench
