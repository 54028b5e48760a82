#pragma once
// The librdkafka properties in KafkaSettings, checked by librdkafka itself.
// No librdkafka type here, so cmd/ may include it.
#include "core/config.hpp"

namespace kws {

// Applies every property to a throwaway librdkafka configuration, exactly as
// create_client does, so an unknown name or a bad value fails here as it
// would for kws tail or kws send: a usage kws::Error naming where it came
// from (-X, the config file, ...). For commands that create no client but
// must not accept what the others refuse (kws config).
void check_kafka_properties(const KafkaSettings& settings);

}  // namespace kws
