#include "core/ws/protocol.hpp"

#include <algorithm>
#include <cstring>

#include "core/util/text.hpp"

namespace kws::ws {

namespace {

// Optional whitespace around header values and list items (RFC 7230 OWS):
// spaces and tabs only, so a stray CR stays and is refused as a control
// character.
std::string_view trim_ows(std::string_view s) { return trim(s, " \t"); }

// RFC 7230 token characters (header names, methods).
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

}  // namespace

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return {};
}

std::vector<std::string> HttpRequest::header_tokens(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (n != name) continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view token = trim_ows(rest.substr(0, comma));
      if (!token.empty()) out.emplace_back(token);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool HttpRequest::is_upgrade() const {
  for (const auto& t : header_tokens("upgrade")) {
    if (ascii_iequals(t, "websocket")) return true;
  }
  return false;
}

HeadParse parse_request_head(std::string_view bytes, HttpRequest& out) {
  HeadParse r;
  // A TLS ClientHello (a wss:// or https:// client on this plain port)
  // starts with a handshake record: 0x16, then version 3.x.
  if (bytes.size() >= 2 && bytes[0] == '\x16' && bytes[1] == '\x03') {
    r.status = HeadStatus::bad;
    r.problem = "this port speaks plain HTTP and WebSocket (http://, ws://), not TLS (https://, wss://)";
    return r;
  }
  size_t end = bytes.find("\r\n\r\n");
  // A line ending in a bare LF is not HTTP/1.1; say so at once rather than
  // waiting for a CRLF that may never come.
  const size_t head_bytes = end == std::string_view::npos ? bytes.size() : end + 4;
  for (size_t lf = bytes.find('\n'); lf < head_bytes; lf = bytes.find('\n', lf + 1)) {
    if (lf == 0 || bytes[lf - 1] != '\r') {
      r.status = HeadStatus::bad;
      r.problem = "request lines must end with CRLF, not a bare LF";
      return r;
    }
  }
  if (end == std::string_view::npos) {
    r.status = bytes.size() >= kMaxRequestHead ? HeadStatus::too_large : HeadStatus::incomplete;
    return r;
  }
  if (end + 4 > kMaxRequestHead) {
    r.status = HeadStatus::too_large;
    return r;
  }
  auto bad = [&](std::string why) {
    r.status = HeadStatus::bad;
    r.problem = std::move(why);
    return r;
  };
  std::string_view head = bytes.substr(0, end);
  size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return bad("malformed request line");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_tchar)) return bad("malformed method");
  if (target.empty() || target[0] != '/') return bad("the request target must be a path starting with /");
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad("control character in the request target");
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return bad("unsupported HTTP version");
  out.method = std::string(method);
  out.target = std::string(target);
  out.version = std::string(version);
  out.headers.clear();
  std::string_view rest = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t eol = rest.find("\r\n");
    std::string_view h = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
    if (h.empty()) continue;
    if (h[0] == ' ' || h[0] == '\t') return bad("obsolete header line folding");
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad("malformed header line");
    std::string_view name = h.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_tchar)) return bad("malformed header name");
    std::string_view value = trim_ows(h.substr(colon + 1));
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return bad("control character in a header");
    }
    if (out.headers.size() >= 100) return bad("more than 100 header lines");
    out.headers.emplace_back(ascii_lower(name), std::string(value));
  }
  r.status = HeadStatus::complete;
  r.consumed = end + 4;
  return r;
}

std::optional<std::string> upgrade_problem(const HttpRequest& request, bool& version_mismatch) {
  version_mismatch = false;
  if (request.method != "GET") return "a WebSocket upgrade must be a GET";
  if (request.version != "HTTP/1.1") return "a WebSocket upgrade needs HTTP/1.1";
  if (request.header("host").empty()) return "missing Host header";
  // Two values for a header that has one meaning are an attempt to make two
  // parsers disagree (request smuggling); RFC 7230 5.4 answers 400.
  for (std::string_view single : {"host", "sec-websocket-key", "sec-websocket-version"}) {
    size_t seen = 0;
    for (const auto& h : request.headers) seen += h.first == single ? 1 : 0;
    if (seen > 1) return "more than one " + std::string(single) + " header";
  }
  if (!request.is_upgrade()) return "missing 'Upgrade: websocket'";
  bool connection_upgrade = false;
  for (const auto& t : request.header_tokens("connection")) connection_upgrade = connection_upgrade || ascii_iequals(t, "upgrade");
  if (!connection_upgrade) return "missing 'Connection: Upgrade'";
  std::string_view key = request.header("sec-websocket-key");
  std::string error;
  auto decoded = try_base64_decode(key, error);
  if (key.empty() || !decoded || decoded->size() != 16) return "Sec-WebSocket-Key must be 16 bytes in base64";
  if (request.header("sec-websocket-version") != "13") {
    version_mismatch = true;
    return "unsupported Sec-WebSocket-Version (kws serve speaks 13)";
  }
  return std::nullopt;
}

std::string_view status_text(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string http_response(int status, std::string_view content_type, std::string_view body,
                          std::string_view extra_headers) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(status_text(status)) + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\nConnection: close\r\nServer: kws\r\n";
  out += extra_headers;
  out += "\r\n";
  out += body;
  return out;
}

std::string upgrade_response(std::string_view key, std::string_view subprotocol) {
  std::string out =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nServer: kws\r\n"
      "Sec-WebSocket-Accept: " + websocket_accept(key) + "\r\n";
  if (!subprotocol.empty()) {
    out += "Sec-WebSocket-Protocol: ";
    out += subprotocol;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

// ---- client frames ---------------------------------------------------------

bool ClientFrameParser::fail(std::vector<ClientEvent>& out, uint16_t code, std::string why) {
  failed_ = true;
  ClientEvent e;
  e.kind = ClientEvent::Kind::error;
  e.code = code;
  e.payload = std::move(why);
  out.push_back(std::move(e));
  held_.reset();
  return false;
}

void ClientFrameParser::feed(std::string_view bytes, std::vector<ClientEvent>& out) {
  if (failed_) return;
  // Parse straight from the caller's bytes when nothing is pending (whole
  // frames per read, the common case); only a partial tail is copied.
  std::string_view data = bytes;
  const bool staged = held_ && !held_->pending.empty();
  if (staged) {
    held_->pending.append(bytes);
    data = held_->pending;
  }
  size_t pos = 0;
  while (!failed_ && take_frame(data, pos, out)) {
  }
  if (failed_) return;
  if (!staged) {
    if (pos < data.size()) held().pending.assign(data.substr(pos));
  } else if (pos >= held_->pending.size()) {
    std::string().swap(held_->pending);
  } else {
    held_->pending.erase(0, pos);
  }
  // Idle connections hold nothing.
  if (held_ && held_->pending.empty() && held_->message.empty()) held_.reset();
}

bool ClientFrameParser::take_frame(std::string_view d, size_t& pos, std::vector<ClientEvent>& out) {
  if (pos >= d.size()) return false;
  size_t avail = d.size() - pos;
  if (avail < 2) return false;
  FrameHeader h;
  switch (read_frame_header(d.substr(pos), h)) {
    case HeaderRead::incomplete: return false;
    case HeaderRead::length_over_63_bits: return fail(out, close_protocol_error, "frame length over 2^63");
    case HeaderRead::complete: break;
  }
  if (h.reserved) return fail(out, close_protocol_error, "reserved bits set without an extension");
  if (!h.shortest) return fail(out, close_protocol_error, "frame length not in its shortest form");
  const bool fin = h.fin;
  const Opcode opcode = h.opcode;
  const bool masked = h.masked;
  const uint64_t length = h.length;
  if (!masked) return fail(out, close_protocol_error, "client frames must be masked");
  const bool control = (static_cast<uint8_t>(opcode) & 0x8) != 0;
  switch (opcode) {
    case Opcode::continuation:
    case Opcode::text:
    case Opcode::binary:
    case Opcode::close:
    case Opcode::ping:
    case Opcode::pong:
      break;
    default:
      return fail(out, close_protocol_error, "unknown opcode " + std::to_string(static_cast<int>(opcode)));
  }
  if (control && (!fin || length > 125)) return fail(out, close_protocol_error, "control frames must be whole and at most 125 bytes");
  if (!control) {
    if (opcode == Opcode::continuation && !in_message_) return fail(out, close_protocol_error, "continuation without a message");
    if (opcode != Opcode::continuation && in_message_) return fail(out, close_protocol_error, "new message inside a fragmented one");
    if (length + message_size() > max_message_) {
      return fail(out, close_too_big, "message of more than " + std::to_string(max_message_) + " bytes");
    }
  }
  if (avail - h.size < length) return false;  // incomplete; its size is within bounds
  const char* src = d.data() + pos + h.size;
  auto unmask_into = [&](std::string& dst) {
    size_t base = dst.size();
    dst.append(src, static_cast<size_t>(length));
    mask_payload(dst.data() + base, static_cast<size_t>(length), h.mask);
  };
  pos += h.size + static_cast<size_t>(length);
  if (control) {
    ClientEvent e;
    unmask_into(e.payload);
    if (opcode == Opcode::ping) {
      e.kind = ClientEvent::Kind::ping;
    } else if (opcode == Opcode::pong) {
      e.kind = ClientEvent::Kind::pong;
    } else {
      e.kind = ClientEvent::Kind::close;
      if (e.payload.size() == 1) return fail(out, close_protocol_error, "close frame with a one-byte payload");
      if (e.payload.empty()) {
        e.code = 1005;
      } else {
        e.code = static_cast<uint16_t>((static_cast<uint8_t>(e.payload[0]) << 8) | static_cast<uint8_t>(e.payload[1]));
        e.payload.erase(0, 2);
        // RFC 6455's codes plus 1012-1014, which IANA registered since: kws
        // itself closes with 1013, and a client echoes the code it got.
        bool valid = (e.code >= 1000 && e.code <= 1003) || (e.code >= 1007 && e.code <= 1014) ||
                     (e.code >= 3000 && e.code <= 4999);
        if (!valid) return fail(out, close_protocol_error, "invalid close code " + std::to_string(e.code));
        if (!is_valid_utf8(e.payload)) return fail(out, close_bad_payload, "close reason is not UTF-8");
      }
    }
    out.push_back(std::move(e));
    return true;
  }
  if (opcode != Opcode::continuation) {
    message_opcode_ = opcode;
    in_message_ = true;
  }
  if (fin && message_size() == 0) {
    // A whole message in one frame: no staging copy.
    ClientEvent e;
    e.opcode = message_opcode_;
    unmask_into(e.payload);
    in_message_ = false;
    if (e.opcode == Opcode::text && !is_valid_utf8(e.payload)) return fail(out, close_bad_payload, "text message is not UTF-8");
    out.push_back(std::move(e));
    return true;
  }
  unmask_into(held().message);
  if (fin) {
    ClientEvent e;
    e.opcode = message_opcode_;
    e.payload.swap(held_->message);
    std::string().swap(held_->message);
    in_message_ = false;
    if (e.opcode == Opcode::text && !is_valid_utf8(e.payload)) return fail(out, close_bad_payload, "text message is not UTF-8");
    out.push_back(std::move(e));
  }
  return true;
}

std::string control_frame(Opcode opcode, std::string_view payload) { return frame(opcode, payload.substr(0, 125)); }

std::string close_frame(uint16_t code, std::string_view reason) {
  // Cut the reason at a UTF-8 boundary so the frame stays valid.
  size_t n = std::min<size_t>(reason.size(), 123);
  while (n > 0 && n < reason.size() && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80) --n;
  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xFF);
  payload.append(reason.substr(0, n));
  return control_frame(Opcode::close, payload);
}

}  // namespace kws::ws
