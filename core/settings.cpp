#include "core/settings.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "core/util/error.hpp"
#include "core/util/text.hpp"

namespace kws {

using std::chrono::milliseconds;

std::string_view setting_type_name(SettingType type) {
  switch (type) {
    case SettingType::host_port:
      return "host:port";
    case SettingType::bytes:
      return "bytes";
    case SettingType::count:
      return "count";
    case SettingType::duration:
      return "duration";
    case SettingType::factor:
      return "factor";
    case SettingType::choice:
      return "choice";
    case SettingType::path:
      return "file";
    case SettingType::text:
      return "text";
    case SettingType::list:
      return "list";
    case SettingType::boolean:
      break;
  }
  return "bool";
}

bool SettingKey::used_by(std::string_view command) const {
  return command.empty() || std::find(commands.begin(), commands.end(), command) != commands.end();
}

namespace {
SettingKey make_key(std::string name, std::string env, std::string default_value, SettingType type,
                    std::string doc, std::vector<std::string> commands, std::vector<std::string> choices = {},
                    uint64_t max = 0) {
  return {std::move(name), std::move(env),      std::move(default_value), type, std::move(doc),
          std::move(commands), std::move(choices), max,  "",   ""};
}
SettingKey zero_means(SettingKey key, std::string meaning) {
  key.zero = std::move(meaning);
  return key;
}
SettingKey unlimited_as(SettingKey key, std::string word) {
  key.unlimited = std::move(word);
  return key;
}
}  // namespace

const std::vector<SettingKey>& kws_setting_keys() {
  using T = SettingType;
  // Add a key here and it is parsed, shown by `kws config` and documented
  // in the man pages; the command that reads it passes its flag's value to
  // resolve_kws_settings under the same name.
  static const std::vector<SettingKey> keys = {
      make_key("serve.listen", "KWS_SERVE_LISTEN", "127.0.0.1:8080", T::host_port,
               "Address the WebSocket server listens on (port 0: any free port).", {"serve"}),
      make_key("serve.ping_interval", "KWS_SERVE_PING_INTERVAL", "20s", T::duration,
               "How often the server pings each WebSocket client.", {"serve"}),
      make_key("serve.idle_timeout", "KWS_SERVE_IDLE_TIMEOUT", "60s", T::duration,
               "A client that sends nothing, not even a pong, for this long is closed.", {"serve"}),
      make_key("serve.client_buffer", "KWS_SERVE_CLIENT_BUFFER", "4M", T::bytes,
               "Outbound bytes queued per connection before serve.slow_client applies.", {"serve"}),
      make_key("serve.slow_client", "KWS_SERVE_SLOW_CLIENT", "close", T::choice,
               "What happens to a client whose buffer is full: close it, drop its oldest queued frames, or "
               "keep only the newest queued message per key (tickers; then the oldest if still full).",
               {"serve"}, {"close", "drop-oldest", "latest-per-key"}),
      make_key("serve.ring_bytes", "KWS_SERVE_RING_BYTES", "8M", T::bytes,
               "Bytes of recent frames kept per partition for clients that join or fall behind.", {"serve"}),
      make_key("serve.max_frame", "KWS_SERVE_MAX_FRAME", "1M", T::bytes,
               "Largest client message produced; a larger one is refused with too_large and the session "
               "goes on (only one over twice this plus 64 KiB closes the connection, with 1009).",
               {"serve"}),
      make_key("serve.max_connections", "KWS_SERVE_MAX_CONNECTIONS", "10000", T::count,
               "Connections served at once; further ones are refused (at most what the open-file limit "
               "allows).",
               {"serve"}, {}, 1000000),
      make_key("serve.write_timeout", "KWS_SERVE_WRITE_TIMEOUT", "30s", T::duration,
               "A client whose socket takes no byte for this long while data waits for it is closed.",
               {"serve"}),
      make_key("serve.max_topics", "KWS_SERVE_MAX_TOPICS", "100", T::count,
               "Topics one session may subscribe and produce to, together; more are refused with topic_limit.",
               {"serve"}, {}, 1000000),
      make_key("serve.max_subscriptions", "KWS_SERVE_MAX_SUBSCRIPTIONS", "64", T::count,
               "Topics one session may subscribe to (within serve.max_topics); more are refused with "
               "topic_limit, or 400 when the connect query names more.",
               {"serve"}, {}, 1000000),
      zero_means(make_key("serve.max_connections_per_ip", "KWS_SERVE_MAX_CONNECTIONS_PER_IP", "256", T::count,
                          "Connections one peer IP address may hold at once, plain HTTP and handshakes "
                          "included; more are answered 429. Loopback peers only with serve.limit_loopback.",
                          {"serve"}, {}, 1000000),
                 "no cap"),
      make_key("serve.limit_loopback", "KWS_SERVE_LIMIT_LOOPBACK", "false", T::boolean,
               "Whether serve.max_connections_per_ip applies to loopback peers (127.0.0.0/8, ::1) too; off "
               "because behind a reverse proxy on the same host every client is 127.0.0.1.",
               {"serve"}),
      zero_means(make_key("serve.produce_rate", "KWS_SERVE_PRODUCE_RATE", "1000", T::count,
                          "Messages per second one session may produce, with a burst of one second's worth; "
                          "more are refused with rate_limited, and a client that keeps on is closed (1008).",
                          {"serve"}, {}, 100000000),
                 "no limit"),
      zero_means(make_key("serve.control_rate", "KWS_SERVE_CONTROL_RATE", "100", T::count,
                          "Control frames (subscribe, unsubscribe, topics, auth) per second one session may "
                          "send, with a burst of one second's worth; more are refused with rate_limited, and a "
                          "client that keeps on is closed (1008). Each costs the hub or the token verifier work.",
                          {"serve"}, {}, 100000000),
                 "no limit"),
      zero_means(make_key("serve.produce_bytes_rate", "KWS_SERVE_PRODUCE_BYTES_RATE", "4M", T::bytes,
                          "Bytes per second one session may produce (its frames' payloads), with a burst of one "
                          "second's worth (at least serve.max_frame); as serve.produce_rate past it.",
                          {"serve"}),
                 "no limit"),
      make_key("serve.allow_origin", "KWS_SERVE_ALLOW_ORIGIN", "", T::list,
               "Origins whose pages may open a WebSocket, separated by commas (https://app.example.com, "
               "https://*.example.com, http://localhost:*); an upgrade with another Origin is answered 403. "
               "Empty: any. Requests without Origin (not browsers) are not checked.",
               {"serve"}),
      make_key("serve.create_topics", "KWS_SERVE_CREATE_TOPICS", "true", T::boolean,
               "Whether producing to a missing topic creates it (where the broker allows auto-creation); "
               "false answers unknown_topic.",
               {"serve"}),
      make_key("serve.produce_timeout", "KWS_SERVE_PRODUCE_TIMEOUT", "30s", T::duration,
               "Every message a client produces is acked, or refused with timed_out, within this "
               "(librdkafka's message.timeout.ms, which -X overrides).",
               {"serve"}),
      // Transforms (issue 16, docs/PROTOCOL.md "Transforms").
      make_key("serve.read_only", "KWS_SERVE_READ_ONLY", "false", T::boolean,
               "Refuse every produce with not_allowed (\"this bridge is read-only\"); sessions go on reading.",
               {"serve"}),
      make_key("serve.topics_allow", "KWS_SERVE_TOPICS_ALLOW", "", T::list,
               "Topic name patterns clients may read and write at all ('*' matches any run of characters), "
               "separated by commas, on top of a token's ACL; others are refused as the ACL refuses (403 at the "
               "upgrade, not_allowed). Client names, before serve.topic_prefix. Empty: any.",
               {"serve"}),
      make_key("serve.topic_prefix", "KWS_SERVE_TOPIC_PREFIX", "", T::text,
               "Prefix of every Kafka topic the bridge uses: clients name prices, Kafka holds PREFIXprices; "
               "frames, acks and ACLs use the client's name.",
               {"serve"}),
      make_key("serve.produce_time_header", "KWS_SERVE_PRODUCE_TIME_HEADER", "", T::text,
               "Header added to every produced record: when the bridge took it, in ms since the epoch as "
               "decimal text (a client's header of that name is replaced).",
               {"serve"}),
      make_key("serve.produce_headers", "KWS_SERVE_PRODUCE_HEADERS", "", T::list,
               "NAME=VALUE headers added to every produced record, separated by commas (a client's header of "
               "the same name is replaced).",
               {"serve"}),
      make_key("serve.add_fields", "KWS_SERVE_ADD_FIELDS", "", T::list,
               "NAME=bridge_time or NAME=JSON fields added to outgoing message values that are JSON objects, "
               "separated by commas (bridge_time: when the bridge read the message, ms since the epoch; a field "
               "the object has keeps its value).",
               {"serve"}),
      make_key("serve.plugin", "KWS_SERVE_PLUGIN", "", T::path,
               "Shared library with the kws plugin ABI (docs/PLUGINS.md) that may rewrite or drop messages "
               "both ways.",
               {"serve"}),
      make_key("serve.tls_cert", "KWS_SERVE_TLS_CERT", "", T::path,
               "PEM certificate chain, the server's certificate first: with serve.tls_key, kws serve "
               "speaks only TLS (wss:// and https://).",
               {"serve"}),
      make_key("serve.tls_key", "KWS_SERVE_TLS_KEY", "", T::path, "PEM private key of serve.tls_cert.", {"serve"}),
      make_key("serve.tls_client_ca", "KWS_SERVE_TLS_CLIENT_CA", "", T::path,
               "PEM CA certificates: clients must present a certificate one of them issued (mTLS); its "
               "subject names the client when no JWT key is set.",
               {"serve"}),
      make_key("serve.auth", "KWS_SERVE_AUTH", "required", T::choice,
               "required: kws serve refuses to listen on an address other than loopback without a JWT key "
               "or serve.tls_client_ca; none: it does so anyway, with a warning at every start.",
               {"serve"}, {"required", "none"}),
      make_key("serve.jwt_secret_file", "KWS_SERVE_JWT_SECRET_FILE", "", T::path,
               "Shared secret for HS256/384/512 tokens (the file's bytes, one trailing newline trimmed).",
               {"serve"}),
      make_key("serve.jwt_key", "KWS_SERVE_JWT_KEY", "", T::path,
               "PEM public key for RS256/384/512, PS256 (RSA) or ES256/384 (EC) tokens.", {"serve"}),
      make_key("serve.jwks", "KWS_SERVE_JWKS", "", T::path,
               "JWKS document (as OAuth providers publish it): the token's kid picks the key.", {"serve"}),
      make_key("serve.jwt_issuer", "KWS_SERVE_JWT_ISSUER", "", T::text,
               "Tokens must have this iss, when set.", {"serve"}),
      make_key("serve.jwt_audience", "KWS_SERVE_JWT_AUDIENCE", "", T::text,
               "Tokens' aud must hold this, when set.", {"serve"}),
      zero_means(make_key("serve.jwt_leeway", "KWS_SERVE_JWT_LEEWAY", "30s", T::duration,
                          "Clock skew allowed for a token's exp and nbf; a session ends this long after exp.",
                          {"serve"}),
                 "none"),
      make_key("serve.acl_claim", "KWS_SERVE_ACL_CLAIM", "kws", T::text,
               "Claim holding the token's ACL {\"read\":[...],\"write\":[...],\"groups\":[...]}; no claim, "
               "no access.",
               {"serve"}),
      make_key("serve.public_page", "KWS_SERVE_PUBLIC_PAGE", "false", T::boolean,
               "Serve the demo page without a token (it still needs one to connect).", {"serve"}),
      make_key("serve.metrics_listen", "KWS_SERVE_METRICS_LISTEN", "", T::text,
               "HOST:PORT of a second, plain-HTTP listener for /metrics, /healthz and /readyz, without a token.",
               {"serve"}),
      // MQTT (issue 17, docs/PROTOCOL.md "MQTT").
      make_key("serve.mqtt", "KWS_SERVE_MQTT", "true", T::boolean,
               "Serve MQTT 3.1.1 and 5 over WebSocket at /mqtt (and over TCP with serve.mqtt_listen); creates "
               "serve.mqtt_kafka_topic and serve.mqtt_retained_topic when they are missing.",
               {"serve"}),
      make_key("serve.mqtt_listen", "KWS_SERVE_MQTT_LISTEN", "", T::text,
               "HOST:PORT of a listener for MQTT over TCP (over TLS when the bridge has a certificate). Empty: none.",
               {"serve"}),
      make_key("serve.mqtt_kafka_topic", "KWS_SERVE_MQTT_KAFKA_TOPIC", "mqtt-messages", T::text,
               "The Kafka topic MQTT publishes go to, keyed by the MQTT topic name (kafka/TOPIC/KEY goes to "
               "TOPIC instead).",
               {"serve"}),
      make_key("serve.mqtt_retained_topic", "KWS_SERVE_MQTT_RETAINED_TOPIC", "mqtt-retained", T::text,
               "The compacted Kafka topic that keeps MQTT's retained messages, keyed by the MQTT topic name.",
               {"serve"}),
      make_key("ingest.buffer_messages", "KWS_INGEST_BUFFER_MESSAGES", "100000", T::count,
               "Messages held between the WebSocket feed and Kafka before ingest.when_full applies.",
               {"ingest"}, {}, 100000000),
      make_key("ingest.buffer_bytes", "KWS_INGEST_BUFFER_BYTES", "64M", T::bytes,
               "Bytes held between the WebSocket feed and Kafka before ingest.when_full applies.",
               {"ingest"}),
      make_key(
          "ingest.when_full", "KWS_INGEST_WHEN_FULL", "block", T::choice,
          "When the buffer is full: stop reading the feed, drop the oldest buffered message, or drop the "
          "newest.",
          {"ingest"}, {"block", "drop-oldest", "drop-newest"}),
      zero_means(make_key("ingest.ping_interval", "KWS_INGEST_PING_INTERVAL", "20s", T::duration,
                          "How often ingest sends the feed a WebSocket ping.", {"ingest"}),
                 "no pings"),
      zero_means(make_key("ingest.pong_timeout", "KWS_INGEST_PONG_TIMEOUT", "10s", T::duration,
                          "A feed that does not answer a ping within this time is reconnected.", {"ingest"}),
                 "pings are sent but their answer is not awaited"),
      zero_means(make_key("ingest.stale_after", "KWS_INGEST_STALE_AFTER", "0", T::duration,
                          "A feed that sent no message for this long is reconnected.", {"ingest"}),
                 "never"),
      zero_means(make_key("ingest.heartbeat_interval", "KWS_INGEST_HEARTBEAT_INTERVAL", "0", T::duration,
                          "How often ingest sends the application heartbeat that --heartbeat gives; "
                          "without --heartbeat it has no effect.",
                          {"ingest"}),
                 "none; --heartbeat then needs --heartbeat-interval"),
      make_key("ingest.await_timeout", "KWS_INGEST_AWAIT_TIMEOUT", "10s", T::duration,
               "A connection whose reply to --await-reply does not come within this time is reconnected.",
               {"ingest"}),
      make_key("ingest.backoff_initial", "KWS_INGEST_BACKOFF_INITIAL", "500ms", T::duration,
               "Ceiling of the first wait before reconnecting to the feed; grows by "
               "ingest.backoff_multiplier after each failure.",
               {"ingest"}),
      make_key("ingest.backoff_max", "KWS_INGEST_BACKOFF_MAX", "30s", T::duration,
               "Highest ceiling of the wait between reconnection attempts.", {"ingest"}),
      make_key("ingest.backoff_multiplier", "KWS_INGEST_BACKOFF_MULTIPLIER", "2", T::factor,
               "How much the reconnect wait's ceiling grows after each failed attempt.", {"ingest"}, {}, 100),
      unlimited_as(zero_means(make_key("ingest.max_retries", "KWS_INGEST_MAX_RETRIES", "forever", T::count,
                                       "Failed reconnection attempts in a row after which ingest gives up and "
                                       "exits 1; a connection that stays up 5 s starts the count again.",
                                       {"ingest"}, {}, 2147483647),
                              "give up at the first failure"),
                   "forever"),
      make_key("ingest.max_message_size", "KWS_INGEST_MAX_MESSAGE_SIZE", "16M", T::bytes,
               "Largest message accepted from the feed; a larger one is dropped and counted (on a WebSocket "
               "it also ends the connection).",
               {"ingest"}),
  };
  return keys;
}

const SettingKey* find_setting_key(std::string_view name) {
  for (const auto& k : kws_setting_keys()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

bool is_kws_key(std::string_view key) { return key.substr(0, kKwsKeyPrefix.size()) == kKwsKeyPrefix; }

const SettingKey& kws_key_of(const ConfigEntry& entry) {
  const SettingKey* key = find_setting_key(std::string_view(entry.key).substr(kKwsKeyPrefix.size()));
  if (!key)
    throw usage_error(entry.origin + ": unknown kws setting '" + entry.key +
                      "' (`kws config` lists them all)");
  return *key;
}

namespace {

[[noreturn]] void bad(const std::string& origin, const std::string& problem) {
  throw usage_error(origin + ": " + problem);
}

// Digits only (no sign, no spaces: strtoull would accept both), with
// overflow past 2^63 refused.
bool parse_digits(std::string_view text, uint64_t& out) {
  if (text.empty()) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    if (v > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - (c - '0')) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

// A decimal number as users type it: DIGITS, DIGITS.DIGITS, .DIGITS or
// DIGITS. (strtod and Go's durations take all four); no sign, exponent or
// spaces. Kept as whole + fraction / scale so that "1.5K" and "0.2" (seconds)
// are computed exactly, never rounded through a double.
struct Decimal {
  uint64_t whole = 0;
  uint64_t fraction = 0;
  uint64_t scale = 1;  // 10^(digits after the point)
};

bool parse_decimal(std::string_view text, Decimal& out) {
  std::string_view whole = text, fraction;
  if (auto dot = text.find('.'); dot != std::string_view::npos) {
    whole = text.substr(0, dot);
    fraction = text.substr(dot + 1);
    if (whole.empty() && fraction.empty()) return false;
    // At most 9 digits after the point, so fraction * unit stays below 2^64.
    if (fraction.size() > 9) return false;
  } else if (whole.empty()) {
    return false;
  }
  Decimal d;
  if (!whole.empty() && !parse_digits(whole, d.whole)) return false;
  if (!fraction.empty() && !parse_digits(fraction, d.fraction)) return false;
  for (size_t i = 0; i < fraction.size(); ++i) d.scale *= 10;
  out = d;
  return true;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint64_t parse_bytes(const SettingKey& key, const std::string& text, const std::string& origin) {
  const std::string not_a_size =
      "'" + text + "' is not a size in bytes (a number with an optional k, M or G, e.g. 4096, 64K, 1.5M, 16MiB)";
  // The unit: k, M or G (either case), then optionally B, or iB after a
  // letter ("MiB"). KB and MB mean powers of 1024 here, as they have for
  // kws ingest and as Docker's memory sizes do: these are buffer sizes, and
  // no one sizes a buffer in powers of ten. A lower-case b (bits) is refused.
  std::string_view number = text;
  bool needs_letter = false;
  if (ends_with(number, "iB")) {
    number.remove_suffix(2);
    needs_letter = true;
  } else if (ends_with(number, "B")) {
    number.remove_suffix(1);
  }
  uint64_t unit = 1;
  if (!number.empty()) {
    switch (number.back()) {
      case 'k':
      case 'K':
        unit = 1ull << 10;
        break;
      case 'm':
      case 'M':
        unit = 1ull << 20;
        break;
      case 'g':
      case 'G':
        unit = 1ull << 30;
        break;
      default:
        break;
    }
    if (unit != 1) number.remove_suffix(1);
  }
  Decimal d;
  if ((needs_letter && unit == 1) || !parse_decimal(number, d)) bad(origin, not_a_size);
  uint64_t limit = key.max ? key.max : static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (d.whole > limit / unit) bad(origin, "'" + text + "' is too large (at most " + std::to_string(limit) + " bytes)");
  if (d.fraction * unit % d.scale != 0) bad(origin, "'" + text + "' is not a whole number of bytes");
  uint64_t n = d.whole * unit + d.fraction * unit / d.scale;
  if (n == 0 && key.zero.empty()) bad(origin, "'" + text + "': the size must be above 0");
  if (n > limit) bad(origin, "'" + text + "' is too large (at most " + std::to_string(limit) + " bytes)");
  return n;
}

// "forever" (SettingKey::unlimited) as a count: above any limit a key can have.
constexpr uint64_t kUnlimitedCount = std::numeric_limits<uint64_t>::max();

uint64_t parse_count(const SettingKey& key, const std::string& text, const std::string& origin) {
  if (!key.unlimited.empty() && text == key.unlimited) return kUnlimitedCount;
  uint64_t n = 0;
  uint64_t limit = key.max ? key.max : static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t lowest = key.zero.empty() ? 1 : 0;
  if (!parse_digits(text, n) || n < lowest || n > limit) {
    bad(origin, "'" + text + "' must be a whole number from " + std::to_string(lowest) + " to " +
                    std::to_string(limit) + (key.unlimited.empty() ? "" : " or " + key.unlimited));
  }
  return n;
}

double parse_factor(const SettingKey& key, const std::string& text, const std::string& origin) {
  Decimal d;
  const uint64_t limit = key.max;  // every factor key has one (tests/unit/test_core_settings.cpp)
  if (!parse_decimal(text, d) || d.whole < 1 || d.whole > limit || (d.whole == limit && d.fraction != 0)) {
    bad(origin, "'" + text + "' must be a number from 1 to " + std::to_string(limit) + " (e.g. 1.5)");
  }
  return static_cast<double>(d.whole) + static_cast<double>(d.fraction) / static_cast<double>(d.scale);
}

}  // namespace

HostPort parse_listen_address(const std::string& text, const std::string& origin) {
  const std::string expected = "'" + text +
                               "' is not HOST:PORT (e.g. 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080; "
                               "8080 or :8080 alone mean 127.0.0.1:8080)";
  // websocat's "8080" and ":8080": loopback, never every interface by omission.
  const auto colon = text.rfind(':');
  std::string host = colon == std::string::npos ? "" : text.substr(0, colon);
  std::string_view port_text = colon == std::string::npos ? std::string_view(text) : std::string_view(text).substr(colon + 1);
  if (host.empty()) {
    uint64_t port = 0;
    if (!parse_digits(port_text, port)) bad(origin, expected);
    host = "127.0.0.1";
  } else if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') bad(origin, expected);
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    bad(origin, "'" + text + "': an IPv6 address needs brackets, e.g. [::1]:8080");
  }
  // Sockets bind addresses, not names; localhost is the one name people type.
  if (host == "localhost") host = "127.0.0.1";
  uint64_t port = 0;
  if (!parse_digits(port_text, port) || port > 65535) {
    bad(origin, "'" + text + "': the port must be a number from 0 to 65535");
  }
  return {host, static_cast<uint16_t>(port)};
}

// NUMBER UNIT, UNIT ms, s, m (or min) or h, or several from the largest
// unit down as Go and systemd write them ("1m30s", "1h2m", "2s500ms"); a
// plain number alone is seconds, which is what kws's duration flags have
// always taken (`--ping-interval 0.2`). Exact to the millisecond: a finer
// value is refused rather than rounded to something the user did not type
// (rounding turned ingest's "0.0004" into 0, which means "off" for some
// settings).
milliseconds parse_duration(const std::string& text, const std::string& origin, bool zero_allowed) {
  struct Unit {
    std::string_view name;
    uint64_t ms;
  };
  static const Unit units[] = {{"h", 3'600'000}, {"m", 60'000}, {"min", 60'000}, {"s", 1000}, {"ms", 1}};
  // A year is plenty for any timeout; it also keeps the arithmetic far from overflow.
  constexpr uint64_t kYearMs = 365ull * 24 * 3'600'000;
  const std::string not_a_duration =
      "'" + text +
      "' is not a duration (a number with ms, s, m or h, e.g. 30s, 500ms, 2m, 1m30s; a plain number is seconds)";

  auto is_number_char = [](char c) { return (c >= '0' && c <= '9') || c == '.'; };
  auto is_unit_char = [](char c) { return c >= 'a' && c <= 'z'; };
  std::string_view rest = text;
  uint64_t total = 0;
  uint64_t previous_unit = UINT64_MAX;  // each part's unit smaller than the last, as Go and systemd write them
  bool compound = false;
  while (!rest.empty()) {
    size_t n = 0;
    while (n < rest.size() && is_number_char(rest[n])) ++n;
    size_t u = n;
    while (u < rest.size() && is_unit_char(rest[u])) ++u;
    std::string_view number = rest.substr(0, n), unit_name = rest.substr(n, u - n);
    rest.remove_prefix(u);
    Decimal d;
    if (!parse_decimal(number, d)) bad(origin, not_a_duration);
    uint64_t unit_ms = 0;
    if (unit_name.empty()) {
      // A plain number is seconds only on its own: "1m30" is a typo, not 1m30s.
      if (compound || !rest.empty()) bad(origin, not_a_duration);
      unit_ms = 1000;
    } else {
      for (const auto& unit : units) {
        if (unit.name == unit_name) unit_ms = unit.ms;
      }
      if (unit_ms == 0) bad(origin, not_a_duration);
      if (unit_ms >= previous_unit) {
        bad(origin, "'" + text + "': a duration's parts go from the largest unit down, each once (e.g. 1h2m, 1m30s)");
      }
      previous_unit = unit_ms;
    }
    compound = true;
    if (d.whole > kYearMs / unit_ms) bad(origin, "'" + text + "' is too long");
    if (d.fraction * unit_ms % d.scale != 0) bad(origin, "'" + text + "' is finer than a millisecond");
    total += d.whole * unit_ms + d.fraction * unit_ms / d.scale;
    if (total > kYearMs) bad(origin, "'" + text + "' is too long");
  }
  if (!compound) bad(origin, not_a_duration);
  if (total == 0 && !zero_allowed) bad(origin, "'" + text + "': the duration must be above 0");
  return milliseconds(static_cast<int64_t>(total));
}

namespace {

std::string parse_path(const std::string& text, const std::string& origin) {
  if (text.empty()) return text;
  struct stat st {};
  if (::stat(text.c_str(), &st) != 0) bad(origin, "cannot use '" + text + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) bad(origin, "'" + text + "' is not a regular file");
  if (::access(text.c_str(), R_OK) != 0) bad(origin, "cannot read '" + text + "': " + std::strerror(errno));
  return text;
}

bool parse_boolean(const std::string& text, const std::string& origin) {
  const std::string t = ascii_lower(text);
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  bad(origin, "'" + text + "' is not a boolean (true/false, yes/no, on/off, 1/0)");
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  if (text.find_first_not_of(' ') == std::string_view::npos) return items;
  for (size_t at = 0; at <= text.size();) {
    size_t comma = std::min(text.find(',', at), text.size());
    std::string_view item = text.substr(at, comma - at);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    items.emplace_back(item);
    at = comma + 1;
  }
  return items;
}

std::string parse_list(const std::string& text, const std::string& origin) {
  std::string normal;
  for (const auto& item : split_list(text)) {
    if (item.empty()) bad(origin, "'" + text + "' has an empty item (items are separated by single commas)");
    if (item.find_first_of(" \t") != std::string::npos) bad(origin, "'" + item + "': an item cannot contain spaces");
    normal += (normal.empty() ? "" : ",") + item;
  }
  return normal;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

}  // namespace

SettingValue parse_setting(const SettingKey& key, const std::string& text, const std::string& origin) {
  switch (key.type) {
    case SettingType::host_port:
      return parse_listen_address(text, origin);
    case SettingType::bytes:
      return parse_bytes(key, text, origin);
    case SettingType::count:
      return parse_count(key, text, origin);
    case SettingType::duration:
      return parse_duration(text, origin, !key.zero.empty());
    case SettingType::factor:
      return parse_factor(key, text, origin);
    case SettingType::path:
      return parse_path(text, origin);
    case SettingType::text:
      for (unsigned char c : text) {
        if (c < 0x20 || c == 0x7f) bad(origin, "control characters are not allowed here");
      }
      return text;
    case SettingType::boolean:
      return parse_boolean(text, origin);
    case SettingType::list:
      return parse_list(text, origin);
    case SettingType::choice:
      if (std::find(key.choices.begin(), key.choices.end(), text) == key.choices.end()) {
        bad(origin, "'" + text + "' is not one of: " + join(key.choices, ", "));
      }
      return text;
  }
  throw std::logic_error("unhandled setting type");
}

std::string KwsSetting::where() const {
  switch (source) {
    case ConfigSource::flag:
    case ConfigSource::environment:
      return origin;
    case ConfigSource::file:
      return origin + ": " + key->file_key();
    case ConfigSource::default_value:
      break;
  }
  return "default of " + key->file_key();
}

const KwsSetting& KwsSettings::at(std::string_view name) const {
  for (const auto& s : settings_) {
    if (s.key->name == name) return s;
  }
  throw std::logic_error("kws setting '" + std::string(name) + "' was not resolved for this command");
}

const KwsSetting& KwsSettings::typed(std::string_view name, SettingType type) const {
  const KwsSetting& s = at(name);
  if (s.key->type != type) {
    throw std::logic_error("kws setting '" + std::string(name) + "' is a " +
                           std::string(setting_type_name(s.key->type)) + ", not a " +
                           std::string(setting_type_name(type)));
  }
  return s;
}

HostPort KwsSettings::host_port(std::string_view name) const {
  return std::get<HostPort>(typed(name, SettingType::host_port).value);
}
uint64_t KwsSettings::bytes(std::string_view name) const {
  return std::get<uint64_t>(typed(name, SettingType::bytes).value);
}
uint64_t KwsSettings::count(std::string_view name) const {
  const KwsSetting& s = typed(name, SettingType::count);
  if (!s.key->unlimited.empty()) {
    throw std::logic_error("kws setting '" + std::string(name) + "' may be " + s.key->unlimited +
                           "; read it with limit()");
  }
  return std::get<uint64_t>(s.value);
}
std::optional<uint64_t> KwsSettings::limit(std::string_view name) const {
  uint64_t n = std::get<uint64_t>(typed(name, SettingType::count).value);
  if (n == kUnlimitedCount) return std::nullopt;
  return n;
}
milliseconds KwsSettings::duration(std::string_view name) const {
  return std::get<milliseconds>(typed(name, SettingType::duration).value);
}
double KwsSettings::factor(std::string_view name) const {
  return std::get<double>(typed(name, SettingType::factor).value);
}
const std::string& KwsSettings::choice(std::string_view name) const {
  return std::get<std::string>(typed(name, SettingType::choice).value);
}
const std::string& KwsSettings::path(std::string_view name) const {
  return std::get<std::string>(typed(name, SettingType::path).value);
}
const std::string& KwsSettings::text(std::string_view name) const {
  return std::get<std::string>(typed(name, SettingType::text).value);
}
bool KwsSettings::boolean(std::string_view name) const {
  return std::get<bool>(typed(name, SettingType::boolean).value);
}
std::vector<std::string> KwsSettings::list(std::string_view name) const {
  return split_list(std::get<std::string>(typed(name, SettingType::list).value));
}

KwsSettings resolve_kws_settings(std::string_view command, const FlagValues& flags, const ConfigFile& file,
                                 const EnvLookup& env) {
  for (const auto& [name, flag] : flags) {
    const SettingKey* key = find_setting_key(name);
    if (!key) throw std::logic_error(flag.origin + " sets unknown kws setting '" + name + "'");
    if (!key->used_by(command)) {
      throw std::logic_error(flag.origin + " sets '" + name + "', which " + std::string(command) +
                             " does not read");
    }
  }
  // The last line for a key wins, as for librdkafka properties; unknown kws
  // keys are refused even when this command reads none of them.
  std::map<std::string, const ConfigEntry*, std::less<>> from_file;
  for (const auto& e : file.entries) {
    if (is_kws_key(e.key)) from_file[kws_key_of(e).name] = &e;
  }

  KwsSettings settings;
  for (const auto& key : kws_setting_keys()) {
    if (!key.used_by(command)) continue;
    KwsSetting s;
    s.key = &key;
    if (auto f = flags.find(key.name); f != flags.end()) {
      s.text = f->second.text;
      s.source = ConfigSource::flag;
      s.origin = f->second.origin;
    } else if (auto v = env(key.env)) {
      s.text = *v;
      s.source = ConfigSource::environment;
      s.origin = key.env;
    } else if (auto e = from_file.find(key.name); e != from_file.end()) {
      s.text = e->second->value;
      s.source = ConfigSource::file;
      s.origin = e->second->origin;
    } else {
      s.text = key.default_value;
      s.source = ConfigSource::default_value;
      s.origin = "default";
    }
    s.value = parse_setting(key, s.text, s.where());
    settings.add(std::move(s));
  }
  return settings;
}

}  // namespace kws
