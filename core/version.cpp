#include "core/version.hpp"

#include <librdkafka/rdkafka.h>
#include <openssl/opensslv.h>
#include <openssl/crypto.h>
#include <websocketpp/version.hpp>
#include <asio/version.hpp>
#include <nlohmann/json.hpp>

namespace kws {

std::string version_report() {
  std::string out = "kws " KWS_VERSION "\n";
  out += std::string("librdkafka ") + rd_kafka_version_str() + "\n";
  out += "websocketpp " + std::to_string(websocketpp::major_version) + "." +
         std::to_string(websocketpp::minor_version) + "." + std::to_string(websocketpp::patch_version) + "\n";
  out += std::string(OpenSSL_version(OPENSSL_VERSION)) + "\n";
  out += "asio " + std::to_string(ASIO_VERSION / 100000) + "." + std::to_string(ASIO_VERSION / 100 % 1000) +
         "." + std::to_string(ASIO_VERSION % 100) + "\n";
  out += "nlohmann_json " + std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
         std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." + std::to_string(NLOHMANN_JSON_VERSION_PATCH) + "\n";
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char features[512];
  size_t size = sizeof features;
  if (rd_kafka_conf_get(conf, "builtin.features", features, &size) == RD_KAFKA_CONF_OK) {
    out += std::string("librdkafka features: ") + features + "\n";
  }
  rd_kafka_conf_destroy(conf);
  out += "kws features: embedded-broker\n";
  return out;
}

}  // namespace kws
