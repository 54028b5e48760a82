#pragma once
// The versions of websocketpp and of the Asio it runs on, for
// `kws --version`, without their headers outside core/ws.
#include <string>

namespace kws {

std::string websocketpp_version();  // "0.8.2"
std::string asio_version();         // "1.22.1"

}  // namespace kws
