#pragma once
// Where Kafka client settings come from, and which one wins:
// flag (-b, -X) > environment (KWS_BROKERS) > config file > default.
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kws {

enum class ConfigSource { default_value, file, environment, flag };
std::string_view config_source_name(ConfigSource source);

struct ConfigEntry {
  std::string key;
  std::string value;
  ConfigSource source = ConfigSource::default_value;
  std::string origin;  // "-X", "-b", "KWS_BROKERS", "/path/kws.conf:3", "default"
};

// What the command line said, before anything is resolved.
struct ConnectionInputs {
  std::string brokers;                   // -b; empty when not given
  std::vector<std::string> properties;   // -X key=value, in order
  std::string config_file;               // -F; empty when not given
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_environment();

// Environment variables that stand for a librdkafka property.
struct EnvAlias {
  const char* variable;
  const char* property;
};
const std::vector<EnvAlias>& environment_aliases();

inline constexpr const char* kDefaultBrokers = "localhost:9092";

class KafkaSettings {
 public:
  // Later entries for the same key win; callers add in ascending precedence.
  void set(ConfigEntry entry);
  const std::vector<ConfigEntry>& entries() const { return entries_; }
  const ConfigEntry* find(const std::string& key) const;
  std::string brokers() const;
  // The file that supplied settings, if any.
  std::string config_file;

 private:
  std::vector<ConfigEntry> entries_;
};

// Reads a properties file: key=value lines, '#' or '!' comments, blank
// lines. Throws kws::Error naming file and line on a malformed line.
std::vector<ConfigEntry> parse_properties_file(const std::string& path);

// The config file's lines, read once: librdkafka properties and kws's own
// `kws.` keys (settings.hpp) side by side.
struct ConfigFile {
  std::string path;  // empty when no file applies
  std::vector<ConfigEntry> entries;
};

// -F's file, else $KWS_CONFIG, else the default file if it exists. A file
// named by -F or KWS_CONFIG must exist.
ConfigFile load_config_file(const std::string& flag_path, const EnvLookup& env);

// Splits "key=value"; throws a usage kws::Error otherwise.
std::pair<std::string, std::string> split_property(const std::string& text, const std::string& origin);

// The default config file: $XDG_CONFIG_HOME/kws/kws.conf, else
// $HOME/.config/kws/kws.conf.
std::string default_config_path(const EnvLookup& env);

// librdkafka properties only: `kws.` keys in the file are checked against
// kws's key table (an unknown one is a usage error naming file and line) and
// left to resolve_kws_settings; `-X kws.…` is a usage error.
KafkaSettings resolve_kafka_settings(const ConnectionInputs& inputs, const ConfigFile& file,
                                     const EnvLookup& env);
// Loads the file itself (load_config_file(inputs.config_file, env)).
KafkaSettings resolve_kafka_settings(const ConnectionInputs& inputs, const EnvLookup& env);

}  // namespace kws
