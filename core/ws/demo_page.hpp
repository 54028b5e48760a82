#pragma once
// The demo page kws serve answers GET / with, built into the binary.
#include <string_view>

namespace kws {
extern const std::string_view kDemoPageHtml;
}  // namespace kws
