#include "core/util/library_version.hpp"

#include <openssl/crypto.h>

namespace kws {

std::string openssl_version() { return OpenSSL_version(OPENSSL_VERSION); }

}  // namespace kws
