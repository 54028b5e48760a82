#pragma once
// Byte-level text helpers shared by the envelope, formats and CLI input.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kws {

bool is_valid_utf8(std::string_view bytes);

std::string base64_encode(std::string_view bytes);

// RFC 6455 section 4.2.2: the Sec-WebSocket-Accept value for a client's key,
// base64(SHA-1(key + the protocol's GUID)).
std::string websocket_accept(std::string_view key);
// Strict: only the standard alphabet, padding only at the end, no whitespace.
// Returns nothing and sets `error` otherwise.
std::optional<std::string> try_base64_decode(std::string_view text, std::string& error);
// The same, throwing kws::Error.
std::string base64_decode(std::string_view text);

// `s` without the given characters at either end (by default: blanks and
// line ends).
// application/x-www-form-urlencoded ('+' is a space, %XX a byte), as
// query strings are read; nothing on a bad escape.
std::optional<std::string> form_decode(std::string_view text);

std::string_view trim(std::string_view s, std::string_view chars = " \t\r\n");
// ASCII case folding, for protocol tokens and header names (not for text).
std::string ascii_lower(std::string_view s);
bool ascii_iequals(std::string_view a, std::string_view b);

// The word in `candidates` closest to `typed` when it is close enough to be
// what the user meant ("tial" -> "tail"): at most one edit for words of up
// to four letters, two beyond, where swapping two neighbours is one edit.
// Nothing when none is that close.
std::optional<std::string> closest_word(std::string_view typed, const std::vector<std::string>& candidates);

// Expands the backslash escapes users type on a command line:
// \n \t \r \0 \\ \xNN. Unknown escapes are kept literally. Throws on a
// truncated \x escape.
std::string unescape(std::string_view text);

// Appends `bytes` to `out` as the body of a JSON string (no quotes),
// escaping quotes, backslashes and control characters. Assumes valid UTF-8.
void append_json_escaped(std::string& out, std::string_view bytes);

// `text` as a quoted JSON string, for words meant to be read (error
// messages, names a client sent): bytes that are not UTF-8 become U+FFFD,
// so the result is always valid JSON.
std::string json_quote(std::string_view text);

}  // namespace kws
