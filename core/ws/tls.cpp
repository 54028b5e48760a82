#include "core/ws/tls.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>

#include "core/util/error.hpp"

namespace kws::ws {

namespace {

// OpenSSL's reasons queued on this thread, oldest first, and the queue emptied.
std::string openssl_errors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

// The one BIO method of every connection: reads come from the ciphertext
// the connection just read, writes go to the connection's output string.
BIO_METHOD* connection_bio_method();

}  // namespace

TlsContext::TlsContext(const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ctx_) throw Error("TLS: cannot make a context: " + openssl_errors());
  // TLS 1.2 and 1.3 with forward-secret AEAD suites only (Mozilla's
  // "intermediate" list); TLS 1.3's default suites are all of that kind.
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx_,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // An idle connection gives its 2 x 17 KiB record buffers back.
  SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);
  // Clients of a bridge reconnect to the same process: one ticket is enough
  // for a resumed handshake and halves what a new connection is sent.
  SSL_CTX_set_num_tickets(ctx_, 1);
  auto fail = [&](const std::string& what) {
    std::string why = openssl_errors();
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
    throw usage_error(what + ": " + why);
  };
  if (SSL_CTX_use_certificate_chain_file(ctx_, cert_file.c_str()) != 1) {
    fail("TLS certificate " + cert_file + ": not a readable PEM certificate chain");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL checks the key against the certificate as it loads it.
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      fail("TLS key " + key_file + " does not belong to the certificate in " + cert_file);
    }
    fail("TLS key " + key_file + ": not a readable PEM private key");
  }
  if (SSL_CTX_check_private_key(ctx_) != 1) {
    fail("TLS key " + key_file + " does not belong to the certificate in " + cert_file);
  }
  if (!client_ca_file.empty()) {
    // The handshake fails for a client without a certificate these CAs
    // issued: an unauthenticated client never reaches HTTP.
    if (SSL_CTX_load_verify_locations(ctx_, client_ca_file.c_str(), nullptr) != 1) {
      fail("TLS client CA " + client_ca_file + ": not a readable PEM certificate file");
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca_file.c_str());
    if (!names) fail("TLS client CA " + client_ca_file + ": no certificate in it");
    SSL_CTX_set_client_CA_list(ctx_, names);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_verify_depth(ctx_, 8);
    // With verification on, OpenSSL fails a resumed handshake unless
    // sessions are bound to a context (a resumed session keeps the
    // certificate it was verified with).
    static const unsigned char kContext[] = "kws-mtls";
    SSL_CTX_set_session_id_context(ctx_, kContext, sizeof(kContext) - 1);
  }
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::string TlsStream::peer_subject() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert || SSL_get_verify_result(ssl_) != X509_V_OK) return {};
  BIO* out = BIO_new(BIO_s_mem());
  if (!out) return {};
  X509_NAME_print_ex(out, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long length = BIO_get_mem_data(out, &data);
  std::string subject(data, length > 0 ? static_cast<size_t>(length) : 0);
  BIO_free(out);
  return subject;
}

TlsStream::TlsStream(const TlsContext& context) {
  ssl_ = SSL_new(context.native());
  if (!ssl_) throw Error("TLS: cannot make a connection: " + openssl_errors());
  BIO* bio = BIO_new(connection_bio_method());
  if (!bio) {
    SSL_free(ssl_);
    throw Error("TLS: cannot make a BIO: " + openssl_errors());
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // one reference, for both directions
  SSL_set_accept_state(ssl_);
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

void TlsStream::receive(std::string_view ciphertext) {
  if (!ciphertext.empty()) fresh_ = false;
  input_ = ciphertext;
}

size_t TlsStream::read(char* into, size_t capacity, ReadStatus& status) {
  status = ReadStatus::more;
  if (!error_.empty()) {
    status = ReadStatus::failed;
    return 0;
  }
  ERR_clear_error();
  const int n = SSL_read(ssl_, into, static_cast<int>(capacity > INT_MAX ? INT_MAX : capacity));
  if (n > 0) return static_cast<size_t>(n);
  switch (SSL_get_error(ssl_, n)) {
    case SSL_ERROR_WANT_READ:
      return 0;  // all of the input is in OpenSSL's buffers
    case SSL_ERROR_ZERO_RETURN:
      status = ReadStatus::peer_closed;
      return 0;
    default:
      fail("TLS");
      status = ReadStatus::failed;
      return 0;
  }
}

bool TlsStream::send(std::string_view plaintext) {
  if (!error_.empty()) return false;
  while (!plaintext.empty()) {
    ERR_clear_error();
    const int chunk = static_cast<int>(plaintext.size() > (1u << 30) ? (1u << 30) : plaintext.size());
    const int n = SSL_write(ssl_, plaintext.data(), chunk);
    if (n <= 0) {
      // The output BIO takes everything, so only a failed TLS ends here.
      fail("TLS");
      return false;
    }
    plaintext.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void TlsStream::close_notify() {
  if (!error_.empty() || !SSL_is_init_finished(ssl_)) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
}

void TlsStream::consumed(size_t n) {
  output_sent_ += n;
  if (output_sent_ >= output_.size()) {
    output_.clear();
    output_sent_ = 0;
  }
}

void TlsStream::release_idle_memory() {
  if (output_sent_ == 0 && output_.empty()) std::string().swap(output_);
}

void TlsStream::fail(const char* what) {
  error_ = std::string(what) + ": " + openssl_errors();
}

int TlsStream::bio_write(BIO* bio, const char* data, int length) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  self->output_.append(data, static_cast<size_t>(length));
  return length;
}

int TlsStream::bio_read(BIO* bio, char* into, int length) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (self->input_.empty()) {
    BIO_set_retry_read(bio);
    return -1;
  }
  const size_t n = std::min(self->input_.size(), static_cast<size_t>(length));
  std::copy_n(self->input_.data(), n, into);
  self->input_.remove_prefix(n);
  return static_cast<int>(n);
}

long TlsStream::bio_ctrl(BIO*, int command, long, void*) {
  // OpenSSL flushes after each flight; the connection writes the output
  // when it can, so there is nothing to do. Nothing else is supported.
  return command == BIO_CTRL_FLUSH ? 1 : 0;
}

namespace {

BIO_METHOD* connection_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kws connection");
    BIO_meth_set_write(m, &TlsStream::bio_write);
    BIO_meth_set_read(m, &TlsStream::bio_read);
    BIO_meth_set_ctrl(m, &TlsStream::bio_ctrl);
    return m;
  }();
  return method;
}

}  // namespace

}  // namespace kws::ws
