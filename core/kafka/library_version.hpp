#pragma once
// librdkafka's version and features for `kws --version`, behind a header
// that names no librdkafka type, so the report needs no librdkafka include.
#include <string>

namespace kws {

// The version of the librdkafka loaded at run time ("2.0.2"), which is the
// one that matters when a distribution upgrades the shared library.
std::string librdkafka_version();
// librdkafka's builtin.features ("gzip,snappy,ssl,..."); "" when it will
// not say.
std::string librdkafka_features();

}  // namespace kws
