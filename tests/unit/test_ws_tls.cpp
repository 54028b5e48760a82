// ws::TlsStream against an OpenSSL client, all in memory: the handshake,
// data both ways in pieces of any size, close_notify, a client that is not
// speaking TLS, and the files TlsContext refuses.
#include <catch2/catch.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/util/error.hpp"
#include "core/ws/tls.hpp"

using namespace kws;
using namespace kws::ws;

namespace {

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

// An OpenSSL client over two memory BIOs; trusts nothing (the test checks
// the server's TLS, not its certificate).
struct Client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  BIO* in = BIO_new(BIO_s_mem());   // what the server sent
  BIO* out = BIO_new(BIO_s_mem());  // what the client sends
  explicit Client(int max_version = 0) {
    if (max_version) SSL_CTX_set_max_proto_version(ctx, max_version);
    ssl = SSL_new(ctx);
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
  }
  ~Client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  std::string take_output() {
    std::string bytes;
    char buf[4096];
    int n;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(n));
    return bytes;
  }
  std::string read_all() {
    std::string plain;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) plain.append(buf, static_cast<size_t>(n));
    return plain;
  }
};

// Hands the server what the client sent, in pieces of `piece` bytes, and
// returns what the server decrypted.
std::string to_server(TlsStream& server, const std::string& ciphertext, size_t piece,
                      TlsStream::ReadStatus& status) {
  std::string plain;
  status = TlsStream::ReadStatus::more;
  char buf[1000];  // smaller than a record: read() is called until it returns 0
  for (size_t at = 0; at < ciphertext.size(); at += piece) {
    server.receive(std::string_view(ciphertext).substr(at, piece));
    while (size_t n = server.read(buf, sizeof buf, status)) plain.append(buf, n);
    if (status != TlsStream::ReadStatus::more) break;
  }
  return plain;
}

void to_client(TlsStream& server, Client& client) {
  const std::string_view out = server.output();
  BIO_write(client.in, out.data(), static_cast<int>(out.size()));
  server.consumed(out.size());
}

// Until the client is done and the server has its Finished (and sent its
// session ticket, in TLS 1.3).
void handshake(TlsStream& server, Client& client, size_t piece) {
  for (int round = 0; round < 10; ++round) {
    SSL_do_handshake(client.ssl);
    const std::string flight = client.take_output();
    if (flight.empty() && SSL_is_init_finished(client.ssl)) break;
    TlsStream::ReadStatus status;
    to_server(server, flight, piece, status);
    REQUIRE(status == TlsStream::ReadStatus::more);
    REQUIRE(server.error().empty());
    to_client(server, client);
  }
  REQUIRE(SSL_is_init_finished(client.ssl));
}

}  // namespace

TEST_CASE("tls: handshake and data both ways, the ciphertext cut anywhere") {
  Identity id;
  TlsContext context(id.cert.path, id.key.path);
  for (int version : {0, TLS1_2_VERSION}) {
    for (size_t piece : {size_t(1), size_t(7), size_t(1 << 20)}) {
      INFO("max version " << version << ", pieces of " << piece);
      TlsStream server(context);
      Client client(version);
      CHECK(server.fresh());
      handshake(server, client, piece);
      CHECK_FALSE(server.fresh());
      CHECK(SSL_version(client.ssl) == (version ? TLS1_2_VERSION : TLS1_3_VERSION));

      // Server to client: more than one record (16 KiB each).
      const std::string big(40000, 'b');
      REQUIRE(server.send("hello "));
      REQUIRE(server.send(big));
      to_client(server, client);
      CHECK(server.output().empty());
      CHECK(client.read_all() == "hello " + big);

      // Client to server, a record cut into pieces.
      const std::string request = "GET / HTTP/1.1\r\n\r\n" + std::string(20000, 'c');
      REQUIRE(SSL_write(client.ssl, request.data(), static_cast<int>(request.size())) > 0);
      TlsStream::ReadStatus status;
      CHECK(to_server(server, client.take_output(), piece, status) == request);
      CHECK(status == TlsStream::ReadStatus::more);
    }
  }
}

TEST_CASE("tls: a client's close_notify ends the stream, and the server answers with its own") {
  Identity id;
  TlsContext context(id.cert.path, id.key.path);
  TlsStream server(context);
  Client client;
  handshake(server, client, 1 << 20);
  SSL_shutdown(client.ssl);
  TlsStream::ReadStatus status;
  CHECK(to_server(server, client.take_output(), 1 << 20, status).empty());
  CHECK(status == TlsStream::ReadStatus::peer_closed);
  server.close_notify();
  to_client(server, client);
  CHECK(SSL_shutdown(client.ssl) == 1);  // both sides said goodbye
}

TEST_CASE("tls: bytes that are not TLS fail the stream with OpenSSL's reason and an alert") {
  Identity id;
  TlsContext context(id.cert.path, id.key.path);
  TlsStream server(context);
  TlsStream::ReadStatus status;
  const std::string garbage = std::string("\x16\x03\x01\x00\x10", 5) + std::string(16, '\xff');
  CHECK(to_server(server, garbage, 1 << 20, status).empty());
  CHECK(status == TlsStream::ReadStatus::failed);
  CHECK(server.error().rfind("TLS: ", 0) == 0);
  REQUIRE_FALSE(server.output().empty());
  CHECK(server.output()[0] == 21);  // an alert record
  CHECK_FALSE(server.send("nothing after a failure"));
}

TEST_CASE("tls: the context refuses missing, swapped and mismatched files, naming them") {
  Identity id;
  Identity other;
  auto refusal = [](const std::string& cert, const std::string& key) -> std::string {
    try {
      TlsContext context(cert, key);
    } catch (const Error& e) {
      CHECK(e.exit_code() == exit_usage);
      return e.what();
    }
    return "accepted";
  };
  CHECK(refusal("/nonexistent.pem", id.key.path).rfind("TLS certificate /nonexistent.pem: not a readable PEM", 0) == 0);
  CHECK(refusal(id.key.path, id.key.path).find("not a readable PEM certificate chain") != std::string::npos);
  CHECK(refusal(id.cert.path, id.cert.path).find("not a readable PEM private key") != std::string::npos);
  CHECK(refusal(id.cert.path, other.key.path).find("does not belong to the certificate") != std::string::npos);
  CHECK(refusal(id.cert.path, id.key.path) == "accepted");
  CHECK(ERR_peek_error() == 0);  // nothing left on the thread's error queue
}
