// Only the two version headers: this file is cheap to compile, unlike the
// rest of core/ws.
#include "core/ws/library_version.hpp"

#include <asio/version.hpp>
#include <websocketpp/version.hpp>

namespace kws {

std::string websocketpp_version() {
  return std::to_string(websocketpp::major_version) + "." + std::to_string(websocketpp::minor_version) + "." +
         std::to_string(websocketpp::patch_version);
}

// ASIO_VERSION is XXYYYZZ: major * 100000 + minor * 100 + patch.
std::string asio_version() {
  return std::to_string(ASIO_VERSION / 100000) + "." + std::to_string(ASIO_VERSION / 100 % 1000) + "." +
         std::to_string(ASIO_VERSION % 100);
}

}  // namespace kws
