#pragma once
// TLS for kws serve's own transport, OpenSSL over memory BIOs as uSockets
// does (docs/ARCHITECTURE.md, "TLS"): the connection keeps reading its
// socket into the thread's scratch buffer and hands the ciphertext here;
// OpenSSL never touches the socket. So the read loop that keeps idle
// connections small is the same for ws:// and wss://, and with
// SSL_MODE_RELEASE_BUFFERS an idle TLS connection holds no record buffers.
// OpenSSL's types stay behind this header.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

struct ssl_ctx_st;
struct ssl_st;
struct bio_st;

namespace kws::ws {

// A server's certificate chain and key, shared by all its connections.
class TlsContext {
 public:
  // `cert_file`: PEM, the server's certificate first, then its chain.
  // `key_file`: its PEM private key. `client_ca_file` (PEM, optional):
  // clients must present a certificate issued by one of these (mTLS).
  // Throws kws::Error naming the file and OpenSSL's reason when one cannot
  // be used.
  TlsContext(const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file = {});
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  ssl_ctx_st* native() const { return ctx_; }

 private:
  ssl_ctx_st* ctx_ = nullptr;
};

// One connection's TLS, server side: ciphertext in through receive(),
// plaintext in through send(); what OpenSSL wants on the wire (records,
// handshake messages, tickets, alerts) collects in output() for the
// connection to write when the socket takes it.
class TlsStream {
 public:
  explicit TlsStream(const TlsContext& context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // No byte received yet: the first one tells TLS (a handshake record,
  // 0x16) from a client speaking plain HTTP to this port.
  bool fresh() const { return fresh_; }

  // Ciphertext read from the socket. Call read() until it returns 0 before
  // the next receive(): OpenSSL takes all of it into its own buffers then.
  void receive(std::string_view ciphertext);

  enum class ReadStatus { more, peer_closed, failed };
  // Decrypts into `into` (at most `capacity` bytes) and returns how many;
  // 0 with `status` saying whether more ciphertext is needed, the peer sent
  // close_notify, or the connection failed (error() says why).
  size_t read(char* into, size_t capacity, ReadStatus& status);

  // Encrypts all of `plaintext` into output() (the caller decides how much
  // to encrypt ahead of the socket). False when TLS failed.
  bool send(std::string_view plaintext);

  // Queues a close_notify alert into output().
  void close_notify();

  std::string_view output() const { return std::string_view(output_).substr(output_sent_); }
  size_t output_capacity() const { return output_.capacity(); }
  void consumed(size_t n);
  // Frees the output buffer's capacity once it is empty.
  void release_idle_memory();

  const std::string& error() const { return error_; }

  // The verified client certificate's subject (RFC 2253), "" without one.
  std::string peer_subject() const;

  // OpenSSL's callbacks into this stream's BIO (tls.cpp).
  static int bio_write(bio_st* bio, const char* data, int length);
  static int bio_read(bio_st* bio, char* into, int length);
  static long bio_ctrl(bio_st* bio, int command, long number, void* pointer);

 private:
  void fail(const char* what);

  ssl_st* ssl_ = nullptr;
  std::string_view input_;  // ciphertext given to receive() not yet taken by OpenSSL
  std::string output_;
  size_t output_sent_ = 0;
  std::string error_;
  bool fresh_ = true;
};

}  // namespace kws::ws
