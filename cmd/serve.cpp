// kws serve: the Kafka <-> WebSocket bridge.
#include "cmd/serve.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/auth/jwt.hpp"
#include "core/bridge/bridge.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/kafka/local_cluster.hpp"
#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "core/util/output.hpp"
#include "core/util/signals.hpp"
#include "core/ws/demo_page.hpp"
#include "core/ws/origin.hpp"
#include "core/ws/tls.hpp"

namespace kws::cmd {

const CommandDoc serve_doc{
    "serve",
    "Bridge Kafka topics to WebSocket clients (kafka-websocket compatible)",
    "[OPTIONS]",
    "Serves a WebSocket endpoint at ws://HOST:PORT/v2/broker/ through which browsers and apps "
    "subscribe to Kafka topics and produce to them, with a demo page at http://HOST:PORT/. It is "
    "wire-compatible with kafka-websocket: ?topics=a,b and group.id in the query, subprotocols "
    "kafka-text (the default) and kafka-binary, and its frames both ways. On top of that, text "
    "frames carry the full kws envelope (partition, offset, timestamp, key, headers), produce "
    "frames with an \"id\" are answered with an ack or an error, subscriptions change at run time "
    "with control frames, and ?offset= picks where they start (latest, earliest, N, -N, @MS, an "
    "ISO-8601 time). ?resume=TOPIC:PARTITION:OFFSET,... goes on right after the last offset a client "
    "received, on this bridge or any other in front of the same cluster, and says what was lost; "
    "?filter= (a JSON filter on keys, headers or JSON fields) keeps other messages on the bridge. "
    "GET /v2/sse with the same query streams Server-Sent Events whose ids resume (Last-Event-ID). "
    "docs/PROTOCOL.md describes every frame.\n\n"
    "Sessions without group.id share one Kafka reader: each partition is read once and each "
    "message encoded once, whatever the number of clients; a ring of recent messages per "
    "partition (--ring-bytes) serves -N starts from memory. A session with group.id joins that "
    "consumer group with a consumer of its own (at most --max-group-sessions); the group commits only "
    "what the client's socket took, so a client whose bridge dies goes on at another without loss.\n\n"
    "Each client has an outbound budget (--client-buffer). A client that reads too slowly is "
    "closed with code 1008 (--slow-client close), loses its oldest messages and is told how "
    "many (--slow-client drop-oldest), or keeps only the newest message per key and is told how many "
    "were replaced (--slow-client latest-per-key, for tickers). The server pings every --ping-interval and closes peers "
    "silent for --idle-timeout; a quiet client that answers pings stays.\n\n"
    "Without -b, KWS_BROKERS or a config file, kws serve runs the embedded in-memory broker in the "
    "same process (on 127.0.0.1:9092; --broker-listen 127.0.0.1:0 for any free port) and prints BROKERS= so "
    "kws send and kws tail can reach it; its data is lost on exit, and its limits are those of "
    "kws broker (man kws-broker).\n\n"
    "With --tls-cert and --tls-key (PEM files) the port speaks only TLS 1.2 and 1.3: wss:// for "
    "the WebSocket, https:// for the demo page and the HTTP endpoints; a client speaking plain HTTP "
    "to it is answered 400. SIGHUP reads the certificate, key, client CA and JWT key files again for new "
    "connections; open sessions stay, and a file that cannot be used keeps the ones in use.\n\n"
    "As a gateway (docs/SECURITY.md): with --jwt-secret-file, --jwt-key or --jwks every upgrade, the demo "
    "page and /metrics need a valid token (Authorization: Bearer, the subprotocol bearer.TOKEN or "
    "access_token=), and its ACL claim (--acl-claim) decides which topics and groups it may read and "
    "write; --tls-client-ca requires client certificates. Listening on an address other than loopback "
    "without either is refused unless --auth none.\n\n"
    "Transforms (docs/PROTOCOL.md, \"Transforms\"): --read-only refuses every produce with not_allowed; "
    "--topics-allow lets clients use only the topics matching its patterns, on top of a token's ACL; "
    "--topic-prefix maps the names clients use to prefixed Kafka topics; --produce-header and "
    "--produce-time-header add headers to produced records; --add-field adds fields to outgoing JSON object "
    "values, once per message read, whatever the number of clients; --plugin loads a shared library that may "
    "rewrite or drop messages both ways (docs/PLUGINS.md). A plugin that cannot be loaded, lacks "
    "kws_plugin_entry or was built for another ABI version stops kws serve at start (exit 2).\n\n"
    "When ready it prints URL=ws://HOST:PORT/ (wss:// with TLS) as the first line on standard output. GET /healthz "
    "answers while the process runs, GET /readyz when Kafka answers, GET /metrics in Prometheus "
    "text format. On SIGTERM or SIGINT it stops accepting, waits up to 5 s for Kafka to confirm "
    "what clients sent (sending their acks), closes every connection with 1001 and exits (130 "
    "after SIGINT, 143 after SIGTERM).",
    {{"kws serve", "bridge the embedded broker on 127.0.0.1:8080; open http://127.0.0.1:8080/"},
     {"kws serve -b kafka1:9092 -l 0.0.0.0:8080 --auth none", "bridge a real cluster for other machines, unprotected"},
     {"kws tail 'ws://127.0.0.1:8080/v2/broker/?topics=demo&offset=-10'", "the last 10 messages of demo through the bridge, then live ones"},
     {"kws serve --slow-client drop-oldest --client-buffer 1M", "drop messages for slow clients instead of closing them"},
     {"kws serve --topic-prefix public. --read-only --add-field at=bridge_time",
      "clients read prices from Kafka's public.prices, each JSON object with the bridge's time in \"at\""},
     {"kws serve -l 0.0.0.0:8443 --tls-cert fullchain.pem --tls-key privkey.pem --jwks jwks.json",
      "wss:// and https:// for clients with a token from the JWKS's issuer"}},
    "1 when the listen address (or the embedded broker's) is taken or Kafka cannot be reached at "
    "start."};

CLI::App* register_serve(CLI::App& parent, ServeOptions& o) {
  CLI::App* app = add_documented_subcommand(parent, serve_doc);
  // Flags of serve.* settings: the key table checks their values and gives
  // their defaults, as it does for KWS_SERVE_* and the config file.
  add_setting_flag(app, "-l,--listen", "serve.listen", o.settings,
                   "Address to serve on (port 0: any free port)");
  add_setting_flag(app, "--tls-cert", "serve.tls_cert", o.settings,
                   "PEM certificate chain (the server's first): serve wss:// and https:// only");
  add_setting_flag(app, "--tls-key", "serve.tls_key", o.settings, "PEM private key of --tls-cert");
  const char* security = "Gateway security (docs/SECURITY.md)";
  add_setting_flag(app, "--tls-client-ca", "serve.tls_client_ca", o.settings,
                   "PEM CA file: require client certificates it issued (mTLS)")
      ->group(security);
  add_setting_flag(app, "--jwt-secret-file", "serve.jwt_secret_file", o.settings,
                   "Require tokens signed HS256/384/512 with the secret in FILE")
      ->group(security);
  add_setting_flag(app, "--jwt-key", "serve.jwt_key", o.settings,
                   "Require tokens signed with this PEM public key (RS*, PS256, ES256/384)")
      ->group(security);
  add_setting_flag(app, "--jwks", "serve.jwks", o.settings, "Require tokens signed by a key of this JWKS file (by kid)")
      ->group(security);
  add_setting_flag(app, "--jwt-issuer", "serve.jwt_issuer", o.settings, "Tokens must have this iss")->group(security);
  add_setting_flag(app, "--jwt-audience", "serve.jwt_audience", o.settings, "Tokens' aud must hold this")
      ->group(security);
  add_setting_flag(app, "--jwt-leeway", "serve.jwt_leeway", o.settings, "Clock skew allowed for exp and nbf")
      ->group(security);
  add_setting_flag(app, "--acl-claim", "serve.acl_claim", o.settings,
                   "Claim with the token's topic ACL {\"read\":[..],\"write\":[..],\"groups\":[..]}")
      ->group(security);
  add_setting_flag(app, "--auth", "serve.auth", o.settings,
                   "none: serve a non-loopback address without authentication (refused otherwise)")
      ->group(security);
  app->add_flag_function(
         "--public-page", [&o](int64_t) { o.settings["serve.public_page"] = {"true", "--public-page"}; },
         "Serve the demo page without a token (connecting still needs one)")
      ->group(security);
  add_setting_flag(app, "--metrics-listen", "serve.metrics_listen", o.settings,
                   "Also serve /metrics, /healthz, /readyz at HOST:PORT over plain HTTP, without a token")
      ->group(security);
  const char* flow = "Clients";
  add_setting_flag(app, "--client-buffer", "serve.client_buffer", o.settings,
                   "Bytes queued for one client before --slow-client applies")
      ->group(flow);
  add_setting_flag(app, "--slow-client", "serve.slow_client", o.settings,
                   "What to do with a client over its buffer: close, drop-oldest or latest-per-key")
      ->group(flow);
  add_setting_flag(app, "--ping-interval", "serve.ping_interval", o.settings,
                   "Time between server pings (20s, 500ms; a plain number is seconds)")
      ->group(flow);
  add_setting_flag(app, "--idle-timeout", "serve.idle_timeout", o.settings,
                   "Close a peer silent (no frame, no pong) this long (a plain number is seconds)")
      ->group(flow);
  add_setting_flag(app, "--max-frame", "serve.max_frame", o.settings, "Largest frame a client may send")
      ->group(flow);
  add_setting_flag(app, "--max-connections", "serve.max_connections", o.settings,
                   "Refuse upgrades (503) beyond this many connections")
      ->group(flow);
  add_setting_flag(app, "--write-timeout", "serve.write_timeout", o.settings,
                   "Close a client whose socket takes nothing this long while data waits")
      ->group(flow);
  add_setting_flag(app, "--max-topics", "serve.max_topics", o.settings,
                   "Topics one session may subscribe and produce to, together")
      ->group(flow);
  add_setting_flag(app, "--create-topics", "serve.create_topics", o.settings,
                   "Whether producing to a missing topic creates it (false: unknown_topic)")
      ->group(flow);
  add_setting_flag(app, "--produce-timeout", "serve.produce_timeout", o.settings,
                   "A produced message is acked or refused with timed_out within this")
      ->group(flow);
  add_setting_flag(app, "--ring-bytes", "serve.ring_bytes", o.settings,
                   "Recent messages kept per partition for -N starts")
      ->group(flow);
  // Limits for a server facing the internet (docs/SECURITY.md, "Limits").
  const char* limits = "Limits";
  add_setting_flag(app, "--max-connections-per-ip", "serve.max_connections_per_ip", o.settings,
                   "Connections one IP address may hold, plain HTTP included (429 beyond; 0: no cap)")
      ->group(limits);
  add_setting_flag(app, "--limit-loopback", "serve.limit_loopback", o.settings,
                   "Apply --max-connections-per-ip to 127.0.0.1 and ::1 too")
      ->group(limits);
  add_setting_flag(app, "--max-subscriptions", "serve.max_subscriptions", o.settings,
                   "Topics one session may subscribe to (within --max-topics)")
      ->group(limits);
  add_setting_flag(app, "--produce-rate", "serve.produce_rate", o.settings,
                   "Messages/s one session may produce (rate_limited beyond, 1008 if it keeps on; 0: no limit)")
      ->group(limits);
  add_setting_flag(app, "--produce-bytes-rate", "serve.produce_bytes_rate", o.settings,
                   "Bytes/s one session may produce (as --produce-rate; 0: no limit)")
      ->group(limits);
  add_setting_flag(app, "--control-rate", "serve.control_rate", o.settings,
                   "Subscribe, unsubscribe, topics and auth frames/s one session may send (as --produce-rate)")
      ->group(limits);
  // Repeatable: every pattern given counts (and commas separate several).
  add_setting_flag(app, "--allow-origin", "serve.allow_origin", o.settings,
                   "Origin whose pages may connect (repeatable; https://*.example.com; others get 403)")
      ->type_name("ORIGIN")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::Join)
      ->group(limits);
  // MQTT (docs/PROTOCOL.md "MQTT").
  const char* mqtt = "MQTT";
  app->add_flag_function(
         "--no-mqtt", [&o](int64_t) { o.settings["serve.mqtt"] = {"false", "--no-mqtt"}; },
         "Do not serve MQTT (/mqtt and --mqtt-listen), nor create its topics")
      ->group(mqtt);
  add_setting_flag(app, "--mqtt-listen", "serve.mqtt_listen", o.settings,
                   "Also serve MQTT over TCP at HOST:PORT (TLS with --tls-cert), for devices")
      ->type_name("HOST:PORT")
      ->group(mqtt);
  add_setting_flag(app, "--mqtt-kafka-topic", "serve.mqtt_kafka_topic", o.settings,
                   "Kafka topic for MQTT publishes, keyed by the MQTT topic (default mqtt-messages)")
      ->type_name("TOPIC")
      ->group(mqtt);
  add_setting_flag(app, "--mqtt-retained-topic", "serve.mqtt_retained_topic", o.settings,
                   "Compacted Kafka topic for MQTT retained messages (default mqtt-retained)")
      ->type_name("TOPIC")
      ->group(mqtt);
  // Transforms (docs/PROTOCOL.md "Transforms", docs/PLUGINS.md).
  const char* transforms = "Transforms";
  app->add_flag_function(
         "--read-only", [&o](int64_t) { o.settings["serve.read_only"] = {"true", "--read-only"}; },
         "Refuse every produce (not_allowed); clients may only read")
      ->group(transforms);
  add_setting_flag(app, "--topics-allow", "serve.topics_allow", o.settings,
                   "Topics clients may use at all (repeatable; prices,public-*; others refused as by an ACL)")
      ->type_name("PATTERN")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::Join)
      ->group(transforms);
  add_setting_flag(app, "--topic-prefix", "serve.topic_prefix", o.settings,
                   "Kafka topic = PREFIX + the client's name (clients see prices, Kafka holds public.prices)")
      ->type_name("PREFIX")
      ->group(transforms);
  add_setting_flag(app, "--produce-time-header", "serve.produce_time_header", o.settings,
                   "Add header NAME to produced records: the bridge's receive time, ms since the epoch")
      ->type_name("NAME")
      ->group(transforms);
  add_setting_flag(app, "--produce-header", "serve.produce_headers", o.settings,
                   "Add header NAME=VALUE to produced records (repeatable)")
      ->type_name("NAME=VALUE")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::Join)
      ->group(transforms);
  add_setting_flag(app, "--add-field", "serve.add_fields", o.settings,
                   "Add a field to outgoing JSON object values: NAME=bridge_time or NAME=JSON (repeatable)")
      ->type_name("NAME=VALUE")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::Join)
      ->group(transforms);
  add_setting_flag(app, "--plugin", "serve.plugin", o.settings,
                   "Load a plugin (shared library, docs/PLUGINS.md) that may rewrite or drop messages both ways")
      ->type_name("FILE.so")
      ->group(transforms);
  app->add_option("--max-group-sessions", o.max_group_sessions, "Sessions with group.id at once (each owns a consumer)")
      ->type_name("N")
      ->default_val(64)
      ->check(integer_in(0, 100000))
      ->group(flow);
  app->add_option("--max-catchups", o.max_catchups, "Subscriptions reading history older than the ring at once")
      ->type_name("N")
      ->default_val(32)
      ->check(integer_in(1, 100000))
      ->group(flow);
  app->add_option("--rewind-offsets", o.rewind_offsets,
                  "History at most N offsets behind a partition's end is read again by the topic's shared reader "
                  "instead of a catch-up reader per subscription (0: never)")
      ->type_name("N")
      ->default_val(20000)
      ->check(integer_in(0, 100000000))
      ->group(flow);
  app->add_option("--log-format", o.log_format, "Diagnostics on stderr as text or json (one object per line)")
      ->type_name("FORMAT")
      ->default_str("text")
      ->check(CLI::IsMember({"text", "json"}));
  const char* embedded = "Embedded broker (when no broker is configured)";
  app->add_option("-t,--topic", o.topics, "Create topic NAME with PARTITIONS partitions at start (repeatable)")
      ->type_name("NAME[:PARTITIONS]")
      ->allow_extra_args(false)
      ->group(embedded);
  app->add_option("--partitions", o.partitions, "Partitions of auto-created topics")
      ->type_name("N")
      ->default_val(1)
      ->check(integer_in(1, 100000))
      ->group(embedded);
  app->add_option("--broker-listen", o.broker_listen, "Address of the embedded broker (port 0: any free port)")
      ->type_name("HOST:PORT")
      ->default_str("127.0.0.1:9092")
      ->group(embedded);
  add_connection_options(app, o.connection);
  app->callback([&o, app] { o.broker_listen_given = app->count("--broker-listen") > 0; });
  return app;
}

namespace {

// "kws: 12 connections | 3400 msg/s from Kafka | 40800 frames/s out | 0 dropped", once a second.
class StatusLine {
 public:
  StatusLine() : enabled_(isatty(STDERR_FILENO) == 1) {}
  void update(const BridgeStatus& s) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    double secs = last_at_ == std::chrono::steady_clock::time_point{} ? 0
                                                                        : std::chrono::duration<double>(now - last_at_).count();
    if (secs > 0) {
      fprintf(stderr, "\r\033[Kkws: %zu connection(s) | %.0f msg/s from Kafka | %.0f frames/s out | %.0f produced/s | %llu dropped%s",
              s.connections, (s.messages_in - last_.messages_in) / secs, (s.frames_out - last_.frames_out) / secs,
              (s.produced - last_.produced) / secs, static_cast<unsigned long long>(s.dropped),
              s.kafka_ready ? "" : " | Kafka unreachable");
      fflush(stderr);
      shown_ = true;
    }
    last_ = s;
    last_at_ = now;
  }
  ~StatusLine() {
    if (shown_) fprintf(stderr, "\r\033[K");
  }

 private:
  bool enabled_;
  bool shown_ = false;
  BridgeStatus last_;
  std::chrono::steady_clock::time_point last_at_{};
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// The files behind TLS and tokens, read at start and again on SIGHUP.
struct Access {
  std::shared_ptr<const ws::TlsContext> tls;
  std::shared_ptr<const TokenChecker> check_token;
};

// Throws kws::Error naming the setting (and where it was given) whose file
// cannot be used.
Access load_access(const KwsSettings& s) {
  Access access;
  if (!s.path("serve.tls_cert").empty()) {
    try {
      access.tls = std::make_shared<const ws::TlsContext>(s.path("serve.tls_cert"), s.path("serve.tls_key"),
                                                          s.path("serve.tls_client_ca"));
    } catch (const Error& e) {
      // Named by where the file it is about was given (TlsContext's
      // messages start with "TLS certificate", "TLS key" or "TLS client CA").
      const std::string why = e.what();
      const char* about = why.rfind("TLS key", 0) == 0         ? "serve.tls_key"
                          : why.rfind("TLS client CA", 0) == 0 ? "serve.tls_client_ca"
                                                               : "serve.tls_cert";
      throw Error(s.at(about).where() + ": " + why, e.exit_code());
    }
  }
  JwtSettings jwt;
  jwt.secret_file = s.path("serve.jwt_secret_file");
  jwt.key_file = s.path("serve.jwt_key");
  jwt.jwks_file = s.path("serve.jwks");
  jwt.issuer = s.text("serve.jwt_issuer");
  jwt.audience = s.text("serve.jwt_audience");
  jwt.leeway = std::chrono::duration_cast<std::chrono::seconds>(s.duration("serve.jwt_leeway"));
  jwt.acl_claim = s.text("serve.acl_claim");
  if (jwt.configured()) {
    if (jwt.acl_claim.empty()) throw usage_error(s.at("serve.acl_claim").where() + ": must name a claim");
    const char* about = !jwt.jwks_file.empty() ? "serve.jwks" : !jwt.key_file.empty() ? "serve.jwt_key" : "serve.jwt_secret_file";
    std::shared_ptr<const TokenVerifier> verifier;
    try {
      verifier = TokenVerifier::load(jwt);
    } catch (const Error& e) {
      throw Error(s.at(about).where() + ": " + e.what(), e.exit_code());
    }
    access.check_token = std::make_shared<const TokenChecker>([verifier](std::string_view token) {
      TokenVerifier::Result r = verifier->verify(token, std::chrono::system_clock::now());
      TokenCheck check;
      if (r.principal) {
        check.principal = std::make_shared<const Principal>(std::move(*r.principal));
      } else {
        check.problem = std::move(r.problem);
      }
      return check;
    });
  }
  return access;
}

// The limits' settings into the server's options; a bad origin pattern is a
// usage error naming where it was given.
void apply_limits(const KwsSettings& s, ServerOptions& server) {
  server.max_connections_per_ip = s.count("serve.max_connections_per_ip");
  server.limit_loopback = s.boolean("serve.limit_loopback");
  server.session.max_subscriptions = s.count("serve.max_subscriptions");
  RateLimits& produce = server.session.produce_limits;
  produce.messages_per_s = s.count("serve.produce_rate");
  produce.bytes_per_s = s.bytes("serve.produce_bytes_rate");
  produce.min_byte_burst = server.session.max_frame;
  server.session.control_limits = control_frame_limits(s.count("serve.control_rate"));
  server.allow_origins = s.list("serve.allow_origin");
  for (const auto& pattern : server.allow_origins) {
    if (auto problem = ws::origin_pattern_problem(pattern)) throw usage_error(s.at("serve.allow_origin").where() + ": " + *problem);
  }
}

// The transform settings into the bridge's options; a bad item is a usage
// error naming where it was given. Loads the plugin, so that a file that is
// no plugin stops kws serve before it listens.
void apply_transforms(const KwsSettings& s, BridgeOptions& options) {
  options.server.session.read_only = s.boolean("serve.read_only");
  options.server.topics_allow = s.list("serve.topics_allow");
  for (const auto& pattern : options.server.topics_allow) {
    // A pattern is a topic name with '*' in it; anything else can match nothing.
    std::string as_name = pattern;
    std::replace(as_name.begin(), as_name.end(), '*', 'x');
    if (auto problem = topic_name_problem(as_name)) {
      throw usage_error(s.at("serve.topics_allow").where() + ": '" + pattern + "' can match no topic: " + *problem);
    }
  }
  TransformOptions& t = options.transforms;
  t.topic_prefix = s.text("serve.topic_prefix");
  if (auto problem = topic_prefix_problem(t.topic_prefix)) {
    throw usage_error(s.at("serve.topic_prefix").where() + ": " + *problem);
  }
  t.produce_time_header = s.text("serve.produce_time_header");
  for (const auto& item : s.list("serve.produce_headers")) {
    std::string problem;
    auto header = parse_produce_header(item, problem);
    if (!header) throw usage_error(s.at("serve.produce_headers").where() + ": " + problem);
    t.produce_headers.push_back(std::move(*header));
  }
  for (const auto& item : s.list("serve.add_fields")) {
    std::string problem;
    auto field = parse_added_field(item, problem);
    if (!field) throw usage_error(s.at("serve.add_fields").where() + ": " + problem);
    t.add_fields.push_back(std::move(*field));
  }
  if (!s.path("serve.plugin").empty()) t.plugin = Plugin::load(s.path("serve.plugin"), s.at("serve.plugin").where());
}

}  // namespace

int run_serve(const ServeOptions& o) {
  // At once: a SIGHUP during the Kafka connect would otherwise end the
  // process; it is acted on once serving.
  install_reload_signal();
  // Before anything starts, so a bad value is only a usage error naming where it came from.
  ConnectionOptions::Resolved resolved = o.connection.resolve("serve", o.settings);
  const KwsSettings& s = resolved.kws;
  // One without the other would serve in clear what was meant to be protected.
  if (s.path("serve.tls_cert").empty() != s.path("serve.tls_key").empty()) {
    const char* given = s.path("serve.tls_cert").empty() ? "serve.tls_key" : "serve.tls_cert";
    throw usage_error(s.at(given).where() + ": TLS needs both --tls-cert and --tls-key");
  }
  if (!s.path("serve.tls_client_ca").empty() && s.path("serve.tls_cert").empty()) {
    throw usage_error(s.at("serve.tls_client_ca").where() + ": client certificates need TLS: give --tls-cert and --tls-key too");
  }
  // Loaded before anything starts, so that a bad file is a usage error at once.
  const Access access = load_access(s);
  const bool authenticated = access.check_token || !s.path("serve.tls_client_ca").empty();
  const bool no_auth = s.choice("serve.auth") == "none";
  if (no_auth && authenticated) {
    throw usage_error(s.at("serve.auth").where() + ": 'none' contradicts the JWT key or client CA also given");
  }

  std::vector<std::string> log_later;  // warnings found before the log exists
  BridgeOptions options;
  HostPort listen = s.host_port("serve.listen");
  // The server binds an address, not a name; localhost is the one name people type.
  options.server.host = listen.host == "localhost" ? "127.0.0.1" : listen.host;
  options.server.port = listen.port;
  options.server.session.client_buffer = s.bytes("serve.client_buffer");
  const std::string slow_client = s.choice("serve.slow_client");
  options.server.session.slow_client = slow_client == "drop-oldest"      ? SlowClientPolicy::drop_oldest
                                       : slow_client == "latest-per-key" ? SlowClientPolicy::latest_per_key
                                                                         : SlowClientPolicy::close;
  options.server.ping_interval = s.duration("serve.ping_interval");
  options.server.idle_timeout = s.duration("serve.idle_timeout");
  options.server.write_timeout = s.duration("serve.write_timeout");
  options.server.session.max_frame = s.bytes("serve.max_frame");
  options.server.max_connections = s.count("serve.max_connections");
  options.server.tls = access.tls;
  options.server.check_token = access.check_token;
  options.server.public_page = s.boolean("serve.public_page");
  options.server.client_certificates = !s.path("serve.tls_client_ca").empty();
  options.server.session.token_leeway = std::chrono::duration_cast<std::chrono::seconds>(s.duration("serve.jwt_leeway"));
  if (!s.text("serve.metrics_listen").empty()) {
    const std::string& where = s.text("serve.metrics_listen");
    HostPort metrics = parse_listen_address(where, s.at("serve.metrics_listen").where());
    options.server.metrics_listener = true;
    options.server.metrics_host = metrics.host == "localhost" ? "127.0.0.1" : metrics.host;
    options.server.metrics_port = metrics.port;
    if (!is_loopback(options.server.metrics_host)) {
      log_later.push_back("--metrics-listen " + where +
                          " answers /metrics without a token to anyone who reaches it: topic names and traffic; keep "
                          "it on an internal network");
    }
  }
  options.mqtt = s.boolean("serve.mqtt");
  options.mqtt_settings.kafka_topic = s.text("serve.mqtt_kafka_topic");
  options.mqtt_settings.retained_topic = s.text("serve.mqtt_retained_topic");
  for (const char* key : {"serve.mqtt_kafka_topic", "serve.mqtt_retained_topic"}) {
    if (auto problem = topic_name_problem(s.text(key))) throw usage_error(s.at(key).where() + ": " + *problem);
  }
  if (options.mqtt_settings.kafka_topic == options.mqtt_settings.retained_topic) {
    throw usage_error("serve.mqtt_kafka_topic and serve.mqtt_retained_topic must differ: retained messages are kept "
                      "apart, compacted");
  }
  if (!s.text("serve.mqtt_listen").empty()) {
    if (!options.mqtt) throw usage_error(s.at("serve.mqtt_listen").where() + ": MQTT is off (--no-mqtt)");
    HostPort where = parse_listen_address(s.text("serve.mqtt_listen"), s.at("serve.mqtt_listen").where());
    options.server.mqtt_listener = true;
    options.server.mqtt_host = where.host == "localhost" ? "127.0.0.1" : where.host;
    options.server.mqtt_port = where.port;
  }
  options.server.session.max_group_sessions = static_cast<size_t>(o.max_group_sessions);
  options.server.session.max_topics = s.count("serve.max_topics");
  apply_limits(s, options.server);
  options.create_topics = s.boolean("serve.create_topics");
  options.produce_timeout = s.duration("serve.produce_timeout");
  options.hub.ring_bytes = s.bytes("serve.ring_bytes");
  options.hub.max_catchups = static_cast<size_t>(o.max_catchups);
  options.hub.rewind_offsets = o.rewind_offsets;
  apply_transforms(s, options);

  std::unique_ptr<LogSink> log;
  if (o.log_format == "json") {
    log = std::make_unique<JsonLinesLog>(o.connection.verbosity > 0 ? LogLevel::debug : LogLevel::info);
  } else {
    log = std::make_unique<StderrLog>(o.connection.verbosity > 0 ? LogLevel::debug : LogLevel::note);
  }
  for (const auto& warning : log_later) log->warning(warning);

  // The seed's whole case for a bridge: Kafka never faces the internet
  // unprotected. Loopback is a developer's machine; anything else needs
  // authentication or an explicit --auth none.
  // MQTT over TCP is another door from other machines, under the same rule.
  const bool exposed = !is_loopback(options.server.host) ||
                       (options.server.mqtt_listener && !is_loopback(options.server.mqtt_host));
  if (exposed) {
    const std::string door = !is_loopback(options.server.host) ? "serve.listen " + options.server.host
                                                                : "serve.mqtt_listen " + options.server.mqtt_host;
    if (!authenticated && !no_auth) {
      throw usage_error(door +
                        " is reachable from other machines and no authentication is configured: any web page could "
                        "read and produce to every topic. Give --jwt-secret-file, --jwt-key, --jwks or --tls-client-ca "
                        "(docs/SECURITY.md), or --auth none to serve it unprotected anyway");
    }
    if (no_auth) {
      log->warning("serving " + door.substr(door.find(' ') + 1) +
                   " WITHOUT AUTHENTICATION (--auth none): anyone who reaches this port can read and produce to "
                   "every topic");
    } else if (access.check_token && !access.tls) {
      log->warning("tokens are accepted over plain ws:// on " + options.server.host +
                   ": anyone on the path can read and replay them; use --tls-cert and --tls-key");
    }
  }

  KafkaSettings& settings = resolved.kafka;
  const ConfigEntry* brokers = settings.find("bootstrap.servers");
  const bool embedded = !brokers || brokers->source == ConfigSource::default_value;
  if (!embedded && !o.topics.empty()) throw usage_error("-t creates topics on the embedded broker; with -b, create them on your cluster");
  if (!embedded && o.broker_listen_given) throw usage_error("--broker-listen applies to the embedded broker only; -b names a cluster");
  auto [broker_host, broker_port] = split_host_port(o.broker_listen, "--broker-listen");
  std::unique_ptr<LocalCluster> cluster;
  if (embedded) {
    LocalClusterOptions local;
    local.partitions = o.partitions;
    local.topics = o.topics;
    local.listen_host = broker_host;
    local.listen_port = broker_port;
    local.listen_flag = "--broker-listen";
    cluster = std::make_unique<LocalCluster>(local, *log);
    settings.set({"bootstrap.servers", cluster->bootstrap_servers(), ConfigSource::default_value, "embedded broker"});
    log->warning("no broker configured (-b, KWS_BROKERS or a config file): serving the EMBEDDED IN-MEMORY broker at " +
                 cluster->bootstrap_servers() + "; this is demo data, lost when kws serve stops");
  }

  Bridge bridge(settings, o.connection.kafka_context(*log), options, kDemoPageHtml);
  const std::string ws_scheme = bridge.tls() ? "wss" : "ws";
  const std::string http_scheme = bridge.tls() ? "https" : "http";
  printf("URL=%s://%s/\n", ws_scheme.c_str(), bridge.address().c_str());
  if (cluster) printf("BROKERS=%s\n", cluster->bootstrap_servers().c_str());
  fflush(stdout);
  log->note("serving " + ws_scheme + "://" + bridge.address() + "/v2/broker/ and the demo page at " + http_scheme +
            "://" + bridge.address() + "/ (Ctrl-C stops)");

  if (!bridge.mqtt_address().empty()) {
    printf("MQTT=%s://%s\n", bridge.tls() ? "mqtts" : "mqtt", bridge.mqtt_address().c_str());
    fflush(stdout);
    log->note("serving MQTT over TCP at " + bridge.mqtt_address() + (bridge.tls() ? " (TLS)" : ""));
  }
  if (!bridge.metrics_address().empty()) {
    log->note("serving /metrics, /healthz and /readyz at http://" + bridge.metrics_address() + "/ without a token");
  }

  // SIGHUP: the same files read again; one that cannot be used keeps the
  // old one in force, so a botched renewal never takes the bridge down.
  auto reload = [&] {
    Access fresh;
    try {
      fresh = load_access(s);
    } catch (const Error& e) {
      log->warning(std::string("SIGHUP: ") + e.what() + "; keeping the certificate and keys in use");
      return;
    }
    bridge.reload(fresh.tls, fresh.check_token);
    log->note(std::string("SIGHUP: reloaded") + (fresh.tls ? " the TLS certificate and key" : "") +
              (fresh.tls && fresh.check_token ? " and" : "") + (fresh.check_token ? " the JWT keys" : "") +
              (!fresh.tls && !fresh.check_token ? " nothing (no TLS or JWT files configured)" : ""));
  };
  StatusLine status;
  bridge.run([&status, &reload](const BridgeStatus& s) {
    if (take_reload_request()) reload();
    status.update(s);
  });
  log->info("stopped");
  return exit_ok;
}

}  // namespace kws::cmd
