#pragma once
// OpenSSL's version for `kws --version`; kws_util links OpenSSL privately,
// so this is the way for the rest of kws to name it.
#include <string>

namespace kws {

// OpenSSL's own line for the library loaded at run time, e.g.
// "OpenSSL 3.0.19 27 Jan 2026".
std::string openssl_version();

}  // namespace kws
