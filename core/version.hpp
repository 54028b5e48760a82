#pragma once
#include <string>

namespace kws {

// kws's version and those of the libraries it was built with, plus
// librdkafka's compiled-in features: the text of `kws --version`.
std::string version_report();

}  // namespace kws
