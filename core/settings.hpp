#pragma once
// kws's own settings (listen address, limits, timeouts, TLS files): one key
// table that feeds parsing and validation, `kws config` and the man pages
// (ccache's k_config_key_table). librdkafka properties live in config.hpp
// and are passed through; these are the settings kws itself interprets.
//
// Where a value comes from, highest first: the command's flag > the
// environment (KWS_SERVE_LISTEN) > the config file (`kws.serve.listen=...`,
// the `kws.` prefix keeping them apart from librdkafka properties) > the
// table's default.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/config.hpp"

namespace kws {

// Numbers are decimal: digits with an optional fraction ("1.5", ".5", "2."),
// no sign, no exponent, no spaces.
enum class SettingType {
  host_port,  // HOST:PORT or [V6]:PORT, port 0-65535 (0: any free port); PORT or :PORT alone
              // means 127.0.0.1:PORT (parse_listen_address)
  bytes,      // a whole number of bytes above 0 (0 when SettingKey::zero says what it means): a number with an optional k, M or G (powers of
              // 1024) and an optional B after it ("64K", "1.5M", "16MiB", "16MB", "4096B")
  count,      // a whole number from 1 (0 when SettingKey::zero says what it means) to
              // SettingKey::max, or SettingKey::unlimited
  duration,   // a number with ms, s, m (or min) or h ("500ms", "1.5s"), or parts from the
              // largest unit down ("1m30s", "1h2m"); a plain number alone is seconds; a whole number of ms, at least 1 (0 when SettingKey::zero says what it
              // means), at most a year
  factor,     // a number from 1 to SettingKey::max ("1.5"); such a key must have a max
  choice,     // one of SettingKey::choices
  path,       // a readable regular file; empty means "not set"
  text,       // any text without control characters; empty means "not set"
  boolean,    // true/false, yes/no, on/off, 1/0
  list,       // items separated by commas, none empty, none with spaces (spaces around
              // the commas are dropped); empty means none. The command checks the items.
};
std::string_view setting_type_name(SettingType type);

struct SettingKey {
  std::string name;  // "serve.listen"; in the config file "kws.serve.listen"
  std::string env;   // "KWS_SERVE_LISTEN"
  std::string default_value;
  SettingType type;
  std::string doc;                    // one line, for the man page
  std::vector<std::string> commands;  // the commands that read it: "serve", "ingest"
  std::vector<std::string> choices;   // for SettingType::choice
  uint64_t max = 0;                   // for count, bytes and factor; 0: no limit below 2^63
  // For count, bytes and duration: what 0 means ("no pings"), for the man page; 0
  // is refused when this is empty.
  std::string zero;
  // For count: the word that stands for "no limit" ("forever"); none when empty.
  std::string unlimited;

  std::string file_key() const { return "kws." + name; }
  bool used_by(std::string_view command) const;
};

inline constexpr std::string_view kKwsKeyPrefix = "kws.";

// Every kws setting, in the order `kws config` and the man pages list them.
const std::vector<SettingKey>& kws_setting_keys();
// nullptr when there is no such key; `name` is without the "kws." prefix.
const SettingKey* find_setting_key(std::string_view name);
// Whether a config-file or -X key is one of kws's ("kws." prefix).
bool is_kws_key(std::string_view key);
// The key a config-file line with a "kws." key sets; a usage kws::Error
// naming file and line when there is no such key.
const SettingKey& kws_key_of(const ConfigEntry& entry);

struct HostPort {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
  bool operator==(const HostPort& o) const { return host == o.host && port == o.port; }
};

using SettingValue = std::variant<HostPort, uint64_t, std::chrono::milliseconds, double, std::string, bool>;

// Parses `text` as `key` demands. On bad input throws a usage kws::Error
// whose message starts with `origin` ("KWS_SERVE_LISTEN: ...",
// "/path/kws.conf:3: kws.serve.listen: ...", "--listen: ...").
SettingValue parse_setting(const SettingKey& key, const std::string& text, const std::string& origin);

// The host:port type's rule, also for listen addresses that are no setting
// (kws broker -l, kws serve --broker-listen, kws ingest --metrics), so every
// address kws binds is read alike: HOST:PORT, [V6]:PORT, and websocat's PORT
// and :PORT, which mean 127.0.0.1:PORT (every interface is only ever asked
// for by name: 0.0.0.0:PORT). "localhost" becomes 127.0.0.1. Throws as
// parse_setting does.
HostPort parse_listen_address(const std::string& text, const std::string& origin);

// The table's duration rule, for a flag that is no setting (ingest's per-run
// --duration), so every duration kws takes is read alike. `zero_allowed`
// lets 0 through. Throws as parse_setting does.
std::chrono::milliseconds parse_duration(const std::string& text, const std::string& origin, bool zero_allowed);

struct KwsSetting {
  const SettingKey* key = nullptr;
  std::string text;  // the value as given, e.g. "4M"
  SettingValue value;
  ConfigSource source = ConfigSource::default_value;
  std::string origin;  // "--listen", "KWS_SERVE_LISTEN", "/path/kws.conf:3", "default"

  // What an error about this value starts with: the origin, and for the file
  // and the default the key too ("/path/kws.conf:3: kws.serve.listen").
  std::string where() const;
};

// The resolved values of the keys one command reads. The typed getters
// throw std::logic_error when asked for a key that was not resolved or as
// the wrong type: that is a bug in the caller, not bad input.
class KwsSettings {
 public:
  const std::vector<KwsSetting>& all() const { return settings_; }
  const KwsSetting& at(std::string_view name) const;

  HostPort host_port(std::string_view name) const;
  uint64_t bytes(std::string_view name) const;
  uint64_t count(std::string_view name) const;  // logic_error for a key with an unlimited word
  std::optional<uint64_t> limit(std::string_view name) const;  // a count; nothing for the unlimited word
  std::chrono::milliseconds duration(std::string_view name) const;
  double factor(std::string_view name) const;
  const std::string& choice(std::string_view name) const;
  const std::string& path(std::string_view name) const;  // "" when not set
  const std::string& text(std::string_view name) const;  // "" when not set
  bool boolean(std::string_view name) const;
  std::vector<std::string> list(std::string_view name) const;  // empty when none

  void add(KwsSetting setting) { settings_.push_back(std::move(setting)); }

 private:
  const KwsSetting& typed(std::string_view name, SettingType type) const;
  std::vector<KwsSetting> settings_;
};

// A value a command's flag gave for a key; `origin` names the flag ("--listen").
struct FlagValue {
  std::string text;
  std::string origin;
};
using FlagValues = std::map<std::string, FlagValue, std::less<>>;  // by key name, "serve.listen"

// Use from a command (cmd/common.hpp: add_setting_flag files what a flag
// gave under its key; resolve reads the config file once for both kinds of
// settings):
//   add_setting_flag(app, "-l,--listen", "serve.listen", o.settings, "...");
//   ...after parsing:
//   auto resolved = o.connection.resolve("serve", o.settings);
//   HostPort at = resolved.kws.host_port("serve.listen");
//
// Resolves every key `command` reads ("" for all keys, as `kws config` does)
// from the flags the command parsed, the environment and the config file.
// Throws a usage kws::Error naming the origin for a bad value or an unknown
// `kws.` key in the file; std::logic_error for a flag whose key is unknown
// or not read by `command` (a bug in the command, not bad input).
KwsSettings resolve_kws_settings(std::string_view command, const FlagValues& flags, const ConfigFile& file,
                                 const EnvLookup& env);

}  // namespace kws
