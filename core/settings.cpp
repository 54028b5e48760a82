#include "core/settings.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "core/util/error.hpp"

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
    case SettingType::choice:
      return "choice";
    case SettingType::path:
      return "file";
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
  return {std::move(name), std::move(env),      std::move(default_value), type,
          std::move(doc),  std::move(commands), std::move(choices),       max};
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
               "What happens to a client whose buffer is full: close it, or drop its oldest queued frames.",
               {"serve"}, {"close", "drop-oldest"}),
      make_key("serve.ring_bytes", "KWS_SERVE_RING_BYTES", "8M", T::bytes,
               "Bytes of recent frames kept per partition for clients that join or fall behind.", {"serve"}),
      make_key("serve.max_frame", "KWS_SERVE_MAX_FRAME", "1M", T::bytes,
               "Largest inbound WebSocket frame accepted; a larger one closes the connection.", {"serve"}),
      make_key("serve.max_connections", "KWS_SERVE_MAX_CONNECTIONS", "10000", T::count,
               "Connections served at once; further ones are refused.", {"serve"}, {}, 1000000),
      make_key("serve.tls_cert", "KWS_SERVE_TLS_CERT", "", T::path,
               "PEM certificate chain for wss://. Not supported yet: kws serve speaks plain ws:// and "
               "refuses to start when this is set.",
               {"serve"}),
      make_key("serve.tls_key", "KWS_SERVE_TLS_KEY", "", T::path,
               "PEM private key for serve.tls_cert; not supported yet either.", {"serve"}),
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
      make_key("ingest.ping_interval", "KWS_INGEST_PING_INTERVAL", "20s", T::duration,
               "How often ingest pings the feed.", {"ingest"}),
      make_key("ingest.pong_timeout", "KWS_INGEST_PONG_TIMEOUT", "10s", T::duration,
               "A feed that does not answer a ping within this time is reconnected.", {"ingest"}),
      make_key("ingest.backoff_initial", "KWS_INGEST_BACKOFF_INITIAL", "500ms", T::duration,
               "First wait before reconnecting to the feed; doubles after each failure.", {"ingest"}),
      make_key("ingest.backoff_max", "KWS_INGEST_BACKOFF_MAX", "30s", T::duration,
               "Longest wait between reconnection attempts.", {"ingest"}),
      make_key("ingest.max_message_size", "KWS_INGEST_MAX_MESSAGE_SIZE", "16M", T::bytes,
               "Largest message accepted from the feed; a larger one closes the connection.", {"ingest"}),
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

HostPort parse_host_port(const std::string& text, const std::string& origin) {
  const std::string expected = "'" + text + "' is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080)";
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) bad(origin, expected);
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') bad(origin, expected);
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    bad(origin, "'" + text + "': an IPv6 address needs brackets, e.g. [::1]:8080");
  }
  uint64_t port = 0;
  if (!parse_digits(std::string_view(text).substr(colon + 1), port) || port > 65535) {
    bad(origin, "'" + text + "': the port must be a number from 0 to 65535");
  }
  return {host, static_cast<uint16_t>(port)};
}

uint64_t parse_bytes(const SettingKey& key, const std::string& text, const std::string& origin) {
  std::string_view digits = text;
  uint64_t unit = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
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
    if (unit != 1) digits.remove_suffix(1);
  }
  uint64_t n = 0;
  if (!parse_digits(digits, n)) {
    bad(origin, "'" + text + "' is not a size in bytes (a whole number with an optional k, M or G, e.g. 4M)");
  }
  uint64_t limit = key.max ? key.max : static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (n == 0) bad(origin, "'" + text + "': the size must be above 0");
  if (n > limit / unit)
    bad(origin, "'" + text + "' is too large (at most " + std::to_string(limit) + " bytes)");
  return n * unit;
}

uint64_t parse_count(const SettingKey& key, const std::string& text, const std::string& origin) {
  uint64_t n = 0;
  uint64_t limit = key.max ? key.max : static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!parse_digits(text, n) || n == 0 || n > limit) {
    bad(origin, "'" + text + "' must be a whole number from 1 to " + std::to_string(limit));
  }
  return n;
}

// NUMBER[UNIT], NUMBER digits with an optional fraction, UNIT ms, s, m or h;
// a plain number is seconds, which is what kws's duration flags have always
// taken (`kws serve --ping-interval 0.2`). Exact to the millisecond: a finer
// value is refused rather than rounded to something the user did not type.
milliseconds parse_duration(const std::string& text, const std::string& origin) {
  struct Unit {
    const char* suffix;
    uint64_t ms;
  };
  // "ms" before "m" and "s", so "500ms" is not read as 500 m + junk.
  static const Unit units[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  // A year is plenty for any timeout; it also keeps the arithmetic far from overflow.
  constexpr uint64_t kYearMs = 365ull * 24 * 3'600'000;
  const std::string not_a_duration =
      "'" + text +
      "' is not a duration (a number with ms, s, m or h, e.g. 30s, 500ms, 2m; a plain number is seconds)";

  std::string_view number = text;
  uint64_t unit_ms = 1000;
  for (const auto& u : units) {
    size_t len = std::strlen(u.suffix);
    if (number.size() > len && number.compare(number.size() - len, len, u.suffix) == 0) {
      number.remove_suffix(len);
      unit_ms = u.ms;
      break;
    }
  }
  std::string_view whole = number, fraction;
  if (auto dot = number.find('.'); dot != std::string_view::npos) {
    whole = number.substr(0, dot);
    fraction = number.substr(dot + 1);
    // At most 9 digits after the point, so fraction * unit stays below 2^64.
    if (fraction.empty() || fraction.size() > 9) bad(origin, not_a_duration);
  }
  uint64_t w = 0, f = 0, scale = 1;
  if (!parse_digits(whole, w) || (!fraction.empty() && !parse_digits(fraction, f)))
    bad(origin, not_a_duration);
  for (size_t i = 0; i < fraction.size(); ++i) scale *= 10;
  if (w > kYearMs / unit_ms) bad(origin, "'" + text + "' is too long");
  if (f * unit_ms % scale != 0) bad(origin, "'" + text + "' is finer than a millisecond");
  uint64_t ms = w * unit_ms + f * unit_ms / scale;
  if (ms == 0) bad(origin, "'" + text + "': the duration must be above 0");
  if (ms > kYearMs) bad(origin, "'" + text + "' is too long");
  return milliseconds(static_cast<int64_t>(ms));
}

std::string parse_path(const std::string& text, const std::string& origin) {
  if (text.empty()) return text;
  struct stat st {};
  if (::stat(text.c_str(), &st) != 0) bad(origin, "cannot use '" + text + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) bad(origin, "'" + text + "' is not a regular file");
  if (::access(text.c_str(), R_OK) != 0) bad(origin, "cannot read '" + text + "': " + std::strerror(errno));
  return text;
}

bool parse_boolean(const std::string& text, const std::string& origin) {
  std::string t = text;
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  bad(origin, "'" + text + "' is not a boolean (true/false, yes/no, on/off, 1/0)");
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
      return parse_host_port(text, origin);
    case SettingType::bytes:
      return parse_bytes(key, text, origin);
    case SettingType::count:
      return parse_count(key, text, origin);
    case SettingType::duration:
      return parse_duration(text, origin);
    case SettingType::path:
      return parse_path(text, origin);
    case SettingType::boolean:
      return parse_boolean(text, origin);
    case SettingType::choice:
      if (std::find(key.choices.begin(), key.choices.end(), text) == key.choices.end()) {
        bad(origin, "'" + text + "' is not one of: " + join(key.choices, ", "));
      }
      return text;
  }
  throw std::logic_error("unhandled setting type");
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
  return std::get<uint64_t>(typed(name, SettingType::count).value);
}
milliseconds KwsSettings::duration(std::string_view name) const {
  return std::get<milliseconds>(typed(name, SettingType::duration).value);
}
const std::string& KwsSettings::choice(std::string_view name) const {
  return std::get<std::string>(typed(name, SettingType::choice).value);
}
const std::string& KwsSettings::path(std::string_view name) const {
  return std::get<std::string>(typed(name, SettingType::path).value);
}
bool KwsSettings::boolean(std::string_view name) const {
  return std::get<bool>(typed(name, SettingType::boolean).value);
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
    std::string where;  // what goes before the problem in an error message
    if (auto f = flags.find(key.name); f != flags.end()) {
      s.text = f->second.text;
      s.source = ConfigSource::flag;
      s.origin = where = f->second.origin;
    } else if (auto v = env(key.env)) {
      s.text = *v;
      s.source = ConfigSource::environment;
      s.origin = where = key.env;
    } else if (auto e = from_file.find(key.name); e != from_file.end()) {
      s.text = e->second->value;
      s.source = ConfigSource::file;
      s.origin = e->second->origin;
      where = s.origin + ": " + key.file_key();
    } else {
      s.text = key.default_value;
      s.source = ConfigSource::default_value;
      s.origin = "default";
      where = "default of " + key.file_key();
    }
    s.value = parse_setting(key, s.text, where);
    settings.add(std::move(s));
  }
  return settings;
}

}  // namespace kws
