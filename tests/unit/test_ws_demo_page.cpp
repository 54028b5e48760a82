#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <string>

#include "core/ws/demo_page.hpp"

// KWS_DEMO_PAGE_SOURCE is the checked-in page (tests/unit/CMakeLists.txt).
static std::string read_source_page() {
  std::ifstream in(KWS_DEMO_PAGE_SOURCE, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_CASE("demo page: the embedded bytes are the checked-in file, byte for byte") {
  const std::string file = read_source_page();
  REQUIRE(file.size() > 1000);
  CHECK(kws::kDemoPageHtml.size() == file.size());
  CHECK(kws::kDemoPageHtml == file);
}

TEST_CASE("demo page: loads nothing from another host") {
  // The page must work on a machine with no internet: no CDN scripts, fonts
  // or styles. Every URL it uses is built from location at run time.
  const std::string_view page = kws::kDemoPageHtml;
  for (std::string_view scheme : {"http://", "https://", "ws://", "wss://", "src=\"//", "href=\"//"}) {
    INFO("found " << scheme);
    CHECK(page.find(scheme) == std::string_view::npos);
  }
  CHECK(page.find("<script src") == std::string_view::npos);
  CHECK(page.find("<link rel=\"stylesheet") == std::string_view::npos);
}
