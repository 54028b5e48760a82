#include "core/config.hpp"

#include <cstdlib>
#include <fstream>
#include <sys/stat.h>

#include "core/settings.hpp"
#include "core/util/error.hpp"
#include "core/util/text.hpp"

namespace kws {

std::string_view config_source_name(ConfigSource source) {
  switch (source) {
    case ConfigSource::flag: return "flag";
    case ConfigSource::environment: return "environment";
    case ConfigSource::file: return "file";
    case ConfigSource::default_value: break;
  }
  return "default";
}

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v || !*v) return std::nullopt;
    return std::string(v);
  };
}

const std::vector<EnvAlias>& environment_aliases() {
  static const std::vector<EnvAlias> aliases = {
      {"KWS_BROKERS", "bootstrap.servers"},
  };
  return aliases;
}

namespace {
// librdkafka accepts both names for the same property; keep one so that
// precedence is decided between like and like.
std::string canonical_key(const std::string& key) {
  if (key == "metadata.broker.list") return "bootstrap.servers";
  return key;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
}  // namespace

void KafkaSettings::set(ConfigEntry entry) {
  entry.key = canonical_key(entry.key);
  for (auto& e : entries_) {
    if (e.key == entry.key) {
      e = std::move(entry);
      return;
    }
  }
  entries_.push_back(std::move(entry));
}

const ConfigEntry* KafkaSettings::find(const std::string& key) const {
  std::string k = canonical_key(key);
  for (const auto& e : entries_) {
    if (e.key == k) return &e;
  }
  return nullptr;
}

std::string KafkaSettings::brokers() const {
  const auto* e = find("bootstrap.servers");
  return e ? e->value : kDefaultBrokers;
}

std::pair<std::string, std::string> split_property(const std::string& text, const std::string& origin) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw usage_error(origin + ": expected key=value, got '" + text + "'");
  }
  return {std::string(trim(text.substr(0, eq))), std::string(trim(text.substr(eq + 1)))};
}

std::vector<ConfigEntry> parse_properties_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw usage_error("cannot read config file " + path);
  std::vector<ConfigEntry> entries;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string t(trim(line));
    if (t.empty() || t[0] == '#' || t[0] == '!') continue;
    std::string origin = path + ":" + std::to_string(number);
    auto [key, value] = split_property(t, origin);
    entries.push_back({key, value, ConfigSource::file, origin});
  }
  return entries;
}

std::string default_config_path(const EnvLookup& env) {
  if (auto xdg = env("XDG_CONFIG_HOME")) return *xdg + "/kws/kws.conf";
  if (auto home = env("HOME")) return *home + "/.config/kws/kws.conf";
  return "";
}

ConfigFile load_config_file(const std::string& flag_path, const EnvLookup& env) {
  std::string path = flag_path;
  if (path.empty()) {
    if (auto from_env = env("KWS_CONFIG")) {
      path = *from_env;
    } else {
      std::string fallback = default_config_path(env);
      if (!fallback.empty() && file_exists(fallback)) path = fallback;
    }
  }
  ConfigFile file;
  if (!path.empty()) {
    file.entries = parse_properties_file(path);
    file.path = path;
  }
  return file;
}

KafkaSettings resolve_kafka_settings(const ConnectionInputs& inputs, const ConfigFile& file,
                                     const EnvLookup& env) {
  KafkaSettings settings;
  settings.set({"bootstrap.servers", kDefaultBrokers, ConfigSource::default_value, "default"});

  for (const auto& e : file.entries) {
    if (is_kws_key(e.key)) {
      // Checked here, by every command, so a misspelt kws key is never
      // silently ignored by the commands that do not read it.
      kws_key_of(e);
      continue;
    }
    settings.set(e);
  }
  if (!file.path.empty()) settings.config_file = file.path;

  for (const auto& alias : environment_aliases()) {
    if (auto v = env(alias.variable)) {
      settings.set({alias.property, *v, ConfigSource::environment, alias.variable});
    }
  }

  for (const auto& p : inputs.properties) {
    auto [key, value] = split_property(p, "-X " + p);
    if (is_kws_key(key)) {
      const SettingKey* k = find_setting_key(std::string_view(key).substr(kKwsKeyPrefix.size()));
      throw usage_error("-X " + p + ": " + key + " is a kws setting, not a librdkafka property; " +
                        (k ? "set it with " + k->env + ", in the config file, or with the command's flag"
                           : std::string("and there is no such kws setting (`kws config` lists them)")));
    }
    settings.set({key, value, ConfigSource::flag, "-X"});
  }
  // -b is the most specific way to name brokers, so it beats -X bootstrap.servers.
  if (!inputs.brokers.empty()) {
    settings.set({"bootstrap.servers", inputs.brokers, ConfigSource::flag, "-b"});
  }
  return settings;
}

KafkaSettings resolve_kafka_settings(const ConnectionInputs& inputs, const EnvLookup& env) {
  return resolve_kafka_settings(inputs, load_config_file(inputs.config_file, env), env);
}

}  // namespace kws
