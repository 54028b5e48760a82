#pragma once

#include <string_view>

namespace kws {

// The page `kws serve` answers GET / with: core/ws/demo_page.html, built into
// the binary (cmake/embed_file.cmake) so the server needs no files at run time.
extern const std::string_view kDemoPageHtml;

}  // namespace kws
