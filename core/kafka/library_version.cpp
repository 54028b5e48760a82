#include "core/kafka/library_version.hpp"

#include <librdkafka/rdkafka.h>

namespace kws {

std::string librdkafka_version() { return rd_kafka_version_str(); }

std::string librdkafka_features() {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char features[512];
  size_t size = sizeof features;
  std::string out;
  if (rd_kafka_conf_get(conf, "builtin.features", features, &size) == RD_KAFKA_CONF_OK) out = features;
  rd_kafka_conf_destroy(conf);
  return out;
}

}  // namespace kws
