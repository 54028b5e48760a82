#include <catch2/catch.hpp>

#include "core/util/error.hpp"
#include "core/util/text.hpp"

using namespace kws;

TEST_CASE("text: UTF-8 validation accepts valid text and rejects malformed bytes") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("h\xC3\xA9llo"));              // é
  CHECK(is_valid_utf8("\xE2\x82\xAC"));               // €
  CHECK(is_valid_utf8("\xF0\x9F\x98\x80"));           // emoji, 4 bytes
  CHECK(is_valid_utf8(std::string("a\0b", 3)));       // NUL is valid UTF-8
  CHECK_FALSE(is_valid_utf8("\xFF"));
  CHECK_FALSE(is_valid_utf8("\xC3"));                 // truncated
  CHECK_FALSE(is_valid_utf8("\xE2\x82"));             // truncated
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));             // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));         // UTF-16 surrogate
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));     // > U+10FFFF
  CHECK_FALSE(is_valid_utf8("\x80"));                 // lone continuation
}

TEST_CASE("text: base64 round-trips every length and byte value") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n < all.size(); n += 7) {
    std::string part = all.substr(0, n);
    CHECK(base64_decode(base64_encode(part)) == part);
  }
}

TEST_CASE("text: base64 decoding rejects malformed input") {
  CHECK_THROWS_AS(base64_decode("abc"), Error);
  CHECK_THROWS_AS(base64_decode("ab!d"), Error);
  CHECK_THROWS_AS(base64_decode("a=bc"), Error);
  CHECK_THROWS_AS(base64_decode("Zg==Zg=="), Error);
}

TEST_CASE("text: unescape expands command-line escapes") {
  CHECK(unescape("a\\nb") == "a\nb");
  CHECK(unescape("\\t\\r\\\\") == "\t\r\\");
  CHECK(unescape("\\0") == std::string("\0", 1));
  CHECK(unescape("\\x41\\x7e") == "A~");
  CHECK(unescape("\\q") == "\\q");
  CHECK(unescape("trailing\\") == "trailing\\");
  CHECK_THROWS_AS(unescape("\\x4"), Error);
  CHECK_THROWS_AS(unescape("\\xZZ"), Error);
}

TEST_CASE("text: JSON escaping covers quotes, backslashes and control characters") {
  std::string out;
  append_json_escaped(out, std::string("a\"b\\c\n\x01\x1f", 8));
  CHECK(out == "a\\\"b\\\\c\\n\\u0001\\u001f");
}

TEST_CASE("text: closest_word suggests what a typo meant, and nothing for a stranger") {
  const std::vector<std::string> commands = {"serve", "broker", "send", "tail", "ingest", "topics", "config"};
  CHECK(closest_word("tial", commands) == "tail");    // two neighbours swapped: one edit
  CHECK(closest_word("sned", commands) == "send");
  CHECK(closest_word("topic", commands) == "topics");
  CHECK(closest_word("brokr", commands) == "broker");
  CHECK(closest_word("ingets", commands) == "ingest");
  CHECK(closest_word("servve", commands) == "serve");
  CHECK_FALSE(closest_word("produce", commands));
  CHECK_FALSE(closest_word("xyz", commands));
  CHECK_FALSE(closest_word("tl", commands));  // two edits from tail: too far for a short word
  CHECK_FALSE(closest_word("tail", {}));
}
