#pragma once
// A self-signed certificate and key as PEM files, for the tests of kws
// serve's TLS (test_ws_tls.cpp) and kws bench's TLS client (test_bench_wire.cpp).
#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace kws::test {

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& tag) {
    char name[] = "/tmp/kws-tls-test-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    path = std::string(name) + tag;
    std::rename(name, path.c_str());
  }
  ~TempFile() { std::remove(path.c_str()); }
};

// A self-signed P-256 certificate for localhost and its key, as PEM files.
struct Identity {
  TempFile cert{".pem"};
  TempFile key{".key"};
  Identity() {
    EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    REQUIRE(pkey);
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, pkey);
    REQUIRE(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE* f = std::fopen(cert.path.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(key.path.c_str(), "w");
    PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
  }
};

}  // namespace kws::test
