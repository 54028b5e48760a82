#include "cmd/common.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include <cstdlib>

#include "core/util/error.hpp"
#include "core/util/input.hpp"
#include "core/util/signals.hpp"
#include "core/util/text.hpp"

namespace kws::cmd {

CLI::Validator integer_in(long long min, long long max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        long long v = 0;
        size_t used = 0;
        try {
          v = std::stoll(text, &used);
        } catch (...) {
          used = 0;
        }
        if (used == 0 || used != text.size() || v < min || v > max) {
          return "'" + text + "' must be an integer from " + std::to_string(min) + " to " + std::to_string(max);
        }
        return "";
      },
      "");
}

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        size_t used = 0;
        double v = 0;
        try {
          v = std::stod(text, &used);
        } catch (...) {
          used = 0;
        }
        if (used == 0 || used != text.size() || !(v > 0)) return "'" + text + "' must be a number above 0";
        return "";
      },
      "");
}

KafkaSettings ConnectionOptions::resolve() const {
  return resolve_kafka_settings(inputs, process_environment());
}

ConnectionOptions::Resolved ConnectionOptions::resolve(std::string_view command,
                                                       const FlagValues& flags) const {
  EnvLookup env = process_environment();
  ConfigFile file = load_config_file(inputs.config_file, env);
  return {resolve_kafka_settings(inputs, file, env), resolve_kws_settings(command, flags, file, env)};
}

KafkaContext ConnectionOptions::kafka_context(LogSink& log) const {
  KafkaContext context;
  context.log = &log;
  context.should_stop = [] { return stop_requested(); };
  context.verbosity = verbosity;
  context.timeout = timeout();
  return context;
}

void add_connection_options(CLI::App* app, ConnectionOptions& options) {
  const char* group = "Connection";
  app->add_option("-b,--brokers", options.inputs.brokers,
                  "Bootstrap brokers host:port[,host:port] (else KWS_BROKERS, else the config "
                  "file's bootstrap.servers, else localhost:9092)")
      ->type_name("BROKERS")
      ->group(group);
  app->add_option("-X,--property", options.inputs.properties,
                  "librdkafka property key=value, passed through (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false)
      ->group(group);
  app->add_option("-F,--config", options.inputs.config_file,
                  "Config file: librdkafka properties and kws. settings (default: $KWS_CONFIG, else "
                  "~/.config/kws/kws.conf "
                  "if it exists)")
      ->type_name("FILE")
      ->group(group);
  app->add_option("--timeout", options.timeout_seconds,
                  "Seconds to wait for brokers and metadata, and how long the brokers may be unreachable or silent mid-run, before failing")
      ->type_name("SECONDS")
      ->default_val(10)
      ->check(positive_number())
      ->group(group);
  app->add_flag("-v,--verbose", options.verbosity, "Show librdkafka's log lines on stderr")->group(group);
}

void add_bridge_options(CLI::App* app, BridgeFlags& flags) {
  const char* group = "Through a kws serve bridge (ws:// or wss:// URL)";
  app->add_option("--token", flags.token_file,
                  "Send the bearer token in FILE as 'Authorization: Bearer' (else $KWS_TOKEN)")
      ->type_name("FILE")
      ->group(group);
  app->add_option("--ca", flags.tls.ca_file, "wss://: trust the CA certificates in FILE instead of the system store")
      ->type_name("FILE")
      ->group(group);
  app->add_option("--client-cert", flags.tls.cert_file, "wss://: client certificate chain (PEM), for mutual TLS")
      ->type_name("FILE")
      ->group(group);
  app->add_option("--client-key", flags.tls.key_file, "wss://: private key of --client-cert (PEM; default: in the same file)")
      ->type_name("FILE")
      ->group(group);
  app->add_flag("--insecure", flags.tls.insecure, "wss://: do not check the bridge's certificate or host name (warns)")
      ->group(group);
}

FeedClientSettings bridge_client_settings(const BridgeFlags& flags, const ConnectionOptions& connection,
                                          const std::string& url, std::vector<std::string> protocols) {
  FeedClientSettings client;
  client.url = url;
  client.peer = "bridge";
  client.protocols = std::move(protocols);
  client.tls = flags.tls;
  // A second more than --timeout, so the command's own deadline (which
  // names --timeout) ends a silent attempt first.
  client.open_timeout = connection.timeout() + std::chrono::milliseconds(1000);
  // Mid-run, as for a broker: a bridge silent for --timeout (no pong to a
  // ping sent every --timeout) ends the run.
  client.ping_interval = connection.timeout();
  client.pong_timeout = connection.timeout();
  std::string token;
  std::string from;
  if (!flags.token_file.empty()) {
    token = std::string(trim(read_whole_file(flags.token_file)));
    from = "--token " + flags.token_file;
    if (token.empty()) throw usage_error(from + " is empty");
  } else if (const char* env = std::getenv("KWS_TOKEN"); env && *env) {
    token = std::string(trim(env));
    from = "KWS_TOKEN";
  }
  for (unsigned char c : token) {
    // It goes into an HTTP header: a line break would end it.
    if (c <= 0x20 || c >= 0x7f) throw usage_error(from + ": a bearer token is printable ASCII without spaces");
  }
  if (!token.empty()) client.headers.emplace_back("Authorization", "Bearer " + token);
  return client;
}

void refuse_kafka_flags_for_bridge(const ConnectionOptions& connection) {
  const auto& in = connection.inputs;
  const char* flag = !in.brokers.empty() ? "-b" : !in.properties.empty() ? "-X" : !in.config_file.empty() ? "-F" : nullptr;
  if (flag) {
    throw usage_error(std::string(flag) +
                      " cannot be used with a ws:// or wss:// URL: the bridge talks to Kafka with its own settings");
  }
}

void refuse_bridge_flags_for_kafka(const BridgeFlags& flags) {
  if (flags.any_given()) {
    throw usage_error("--token, --ca, --client-cert, --client-key and --insecure apply to a ws:// or wss:// URL only");
  }
}

namespace {
std::map<const CLI::Option*, const SettingKey*>& setting_flags() {
  static std::map<const CLI::Option*, const SettingKey*> flags;
  return flags;
}

std::string value_name(const SettingKey& key) {
  switch (key.type) {
    case SettingType::host_port:
      return "HOST:PORT";
    case SettingType::bytes:
      return "SIZE";
    case SettingType::count:
      return "N";
    case SettingType::duration:
      return "D";
    case SettingType::factor:
      return "X";
    case SettingType::choice: {
      std::string out;
      for (const auto& c : key.choices) out += (out.empty() ? "" : "|") + c;
      return out;
    }
    case SettingType::path:
      return "FILE";
    case SettingType::text:
      return "TEXT";
    case SettingType::list:
      return "LIST";
    case SettingType::boolean:
      break;
  }
  return "BOOL";
}
}  // namespace

CLI::Option* add_setting_flag(CLI::App* app, const std::string& names, std::string_view key_name,
                              FlagValues& flags, const std::string& help) {
  const SettingKey* key = find_setting_key(key_name);
  if (!key || !key->used_by(app->get_name())) {
    throw std::logic_error(names + ": '" + std::string(key_name) + "' is not a setting kws " +
                           app->get_name() + " reads");
  }
  // Errors name the long flag ("--listen" for "-l,--listen"), as help and man page do.
  std::string origin;
  for (size_t at = 0; at <= names.size();) {
    size_t comma = std::min(names.find(',', at), names.size());
    std::string name = names.substr(at, comma - at);
    if (origin.empty() || (name.rfind("--", 0) == 0 && origin.rfind("--", 0) != 0)) origin = name;
    at = comma + 1;
  }
  CLI::Option* opt = app->add_option_function<std::string>(
      names,
      [&flags, name = key->name, origin](const std::string& text) {
        flags[name] = {text, origin};
      },
      help);
  opt->type_name(value_name(*key));
  if (!key->default_value.empty()) opt->default_str(key->default_value);
  setting_flags()[opt] = key;
  return opt;
}

const SettingKey* setting_key_of(const CLI::Option* option) {
  auto it = setting_flags().find(option);
  return it == setting_flags().end() ? nullptr : it->second;
}

CLI::App* add_documented_subcommand(CLI::App& parent, const CommandDoc& doc) {
  CLI::App* sub = parent.add_subcommand(doc.name, doc.summary);
  return sub;
}

}  // namespace kws::cmd
