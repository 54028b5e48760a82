#include "core/version.hpp"

#include <nlohmann/json.hpp>

#include "core/kafka/library_version.hpp"
#include "core/util/library_version.hpp"
#include "core/ws/library_version.hpp"
#include "kws/plugin.h"

namespace kws {

std::string version_report() {
  std::string out = "kws " KWS_VERSION "\n";
  out += "librdkafka " + librdkafka_version() + "\n";
  out += "websocketpp " + websocketpp_version() + "\n";
  out += openssl_version() + "\n";
  out += "asio " + asio_version() + "\n";
  out += "nlohmann_json " + std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
         std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." + std::to_string(NLOHMANN_JSON_VERSION_PATCH) + "\n";
  std::string features = librdkafka_features();
  if (!features.empty()) out += "librdkafka features: " + features + "\n";
  out += "kws features: embedded-broker\n";
  // What `kws serve --plugin` accepts (docs/PLUGINS.md).
  out += "kws plugin ABI: " + std::to_string(KWS_PLUGIN_ABI_VERSION) + "\n";
  return out;
}

}  // namespace kws
