// Heap bytes that one idle server-side OpenSSL connection keeps, with the
// settings of kws serve's TlsContext (core/ws/tls.cpp; keep them in step)
// and variants of them, to find out whether any knob brings an idle wss://
// connection nearer issue 14's 8 KiB (docs/BENCHMARKS.md, "Idle memory").
// Not part of kws. Server and client talk over memory BIOs in this one
// process; each server SSL does a handshake and a record each way, then
// loses its BIOs (kws serve's BIO holds no buffer when idle), and the heap
// in use (glibc's mallinfo2) is compared before and after.
//
//   build/bench/kws_tls_idle_probe [CONNECTIONS]      default 2000
#include <malloc.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct Variant {
  const char* name;
  int client_max_version;  // 0: TLS 1.3
  int tickets;
  long extra_options;
  bool session_cache_off;
  bool release_buffers;
  bool free_buffers_when_idle;
};

void move_bytes(BIO* from, BIO* to) {
  char buf[16384];
  int n;
  while ((n = BIO_read(from, buf, sizeof buf)) > 0) BIO_write(to, buf, n);
}

SSL_CTX* server_context(const Variant& v, EVP_PKEY* key, X509* cert) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | v.extra_options);
  if (v.release_buffers) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_num_tickets(ctx, static_cast<size_t>(v.tickets));
  if (v.session_cache_off) SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_use_certificate(ctx, cert);
  SSL_CTX_use_PrivateKey(ctx, key);
  return ctx;
}

// One connection up to an idle server SSL, which is returned.
SSL* idle_server(SSL_CTX* server_ctx, SSL_CTX* client_ctx, const Variant& v) {
  SSL* s = SSL_new(server_ctx);
  SSL* c = SSL_new(client_ctx);
  BIO* to_server = BIO_new(BIO_s_mem());
  BIO* from_server = BIO_new(BIO_s_mem());
  BIO* to_client = BIO_new(BIO_s_mem());
  BIO* from_client = BIO_new(BIO_s_mem());
  SSL_set_bio(s, to_server, from_server);
  SSL_set_bio(c, to_client, from_client);
  SSL_set_accept_state(s);
  SSL_set_connect_state(c);
  for (int i = 0; i < 10 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c)); ++i) {
    SSL_do_handshake(c);
    move_bytes(from_client, to_server);
    SSL_do_handshake(s);
    move_bytes(from_server, to_client);
  }
  char buf[64];
  SSL_write(c, "hello", 5);
  move_bytes(from_client, to_server);
  SSL_read(s, buf, sizeof buf);  // takes the client's Finished too; the ticket goes out
  SSL_write(s, "world", 5);
  move_bytes(from_server, to_client);
  SSL_read(c, buf, sizeof buf);
  if (!SSL_is_init_finished(s)) {
    std::fprintf(stderr, "tls_idle_probe: the handshake failed\n");
    std::exit(1);
  }
  if (v.free_buffers_when_idle) SSL_free_buffers(s);
  SSL_set_bio(s, nullptr, nullptr);  // frees the memory BIOs
  SSL_free(c);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const int connections = argc > 1 ? std::atoi(argv[1]) : 2000;
  EVP_PKEY* key = EVP_RSA_gen(2048);  // as scripts/bench-tls's certificate
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_set_pubkey(cert, key);
  X509_sign(cert, key, EVP_sha256());

  const Variant variants[] = {
      {"kws serve (RELEASE_BUFFERS, 1 ticket), TLS 1.3", 0, 1, 0, false, true, false},
      {"  + SSL_free_buffers when idle", 0, 1, 0, false, true, true},
      {"  num_tickets 0", 0, 0, 0, false, true, false},
      {"  num_tickets 0, session cache off", 0, 0, 0, true, true, false},
      {"  session cache off", 0, 1, 0, true, true, false},
      {"  SSL_OP_NO_TICKET (stateful tickets)", 0, 1, SSL_OP_NO_TICKET, false, true, false},
      {"  without RELEASE_BUFFERS", 0, 1, 0, false, false, false},
      {"kws serve, TLS 1.2", TLS1_2_VERSION, 1, 0, false, true, false},
      {"  NO_TICKET, cache off, SSL_free_buffers", TLS1_2_VERSION, 1, SSL_OP_NO_TICKET, true, true, true},
      // The first row pays for what the heap grows once (arenas, tables):
      // measured again last, it shows how much.
      {"kws serve again (the first row's order effect)", 0, 1, 0, false, true, false},
  };
  std::printf("%-50s %s\n", "server SSL settings", "heap bytes per idle connection");
  for (const Variant& v : variants) {
    SSL_CTX* server_ctx = server_context(v, key, cert);
    SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
    if (v.client_max_version) SSL_CTX_set_max_proto_version(client_ctx, v.client_max_version);
    SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);
    SSL_free(idle_server(server_ctx, client_ctx, v));  // OpenSSL's lazy one-time set-up, not counted
    std::vector<SSL*> idle;
    idle.reserve(static_cast<size_t>(connections));
    const size_t before = mallinfo2().uordblks;
    for (int i = 0; i < connections; ++i) idle.push_back(idle_server(server_ctx, client_ctx, v));
    const size_t after = mallinfo2().uordblks;
    std::printf("%-50s %8.0f\n", v.name, static_cast<double>(after - before) / connections);
    for (SSL* s : idle) SSL_free(s);
    SSL_CTX_free(client_ctx);
    SSL_CTX_free(server_ctx);
  }
  X509_free(cert);
  EVP_PKEY_free(key);
}
