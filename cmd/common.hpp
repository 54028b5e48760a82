#pragma once
// What every subcommand shares: Kafka connection flags and the text that
// man pages are generated from.
#include <CLI/CLI.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "core/config.hpp"
#include "core/kafka/context.hpp"
#include "core/settings.hpp"
#include "core/util/log.hpp"
#include "core/ws/client.hpp"

namespace kws::cmd {

// Prose for a subcommand's man page; the options come from the CLI11 tree,
// so flags and their help cannot drift apart.
struct CommandDoc {
  std::string name;         // "tail"; "" for kws itself
  std::string summary;      // one line, also the --help description
  std::string synopsis;     // after the command name
  std::string description;  // paragraphs separated by blank lines
  std::vector<std::pair<std::string, std::string>> examples;  // {command, what it does}
  std::string extra_exit_status;  // command-specific notes on exit codes
};

struct ConnectionOptions {
  ConnectionInputs inputs;
  int verbosity = 0;
  double timeout_seconds = kDefaultKafkaTimeout.count() / 1000.0;

  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  }
  // flag > environment > config file > default.
  KafkaSettings resolve() const;
  // The same, plus kws's own settings that `command` reads ("" for all),
  // `flags` holding the values its flags gave; the file is read once.
  struct Resolved {
    KafkaSettings kafka;
    KwsSettings kws;
  };
  Resolved resolve(std::string_view command, const FlagValues& flags) const;
  // Diagnostics on stderr; -v adds librdkafka's own lines.
  StderrLog log() const { return StderrLog(verbosity > 0 ? LogLevel::debug : LogLevel::note); }
  // The context core's Kafka adapters run in: stop on SIGINT/SIGTERM.
  KafkaContext kafka_context(LogSink& log) const;
};

// kws tail ws://... and kws send ws://...: the flags only a bridge URL uses.
struct BridgeFlags {
  std::string token_file;  // --token; else $KWS_TOKEN
  TlsOptions tls;          // --ca, --client-cert, --client-key, --insecure
  bool any_given() const {
    return !token_file.empty() || !tls.ca_file.empty() || !tls.cert_file.empty() || !tls.key_file.empty() ||
           tls.insecure;
  }
};
void add_bridge_options(CLI::App* app, BridgeFlags& flags);
// The WebSocket client's settings for the bridge at `url`: the bearer token
// (--token FILE, else KWS_TOKEN) as Authorization: Bearer, the TLS files, and
// --timeout for the whole opening (TCP, TLS, upgrade). `protocols`: the
// subprotocols to offer.
FeedClientSettings bridge_client_settings(const BridgeFlags& flags, const ConnectionOptions& connection,
                                          const std::string& url, std::vector<std::string> protocols);
// Refuses (usage error, naming why) the Kafka connection flags -b, -X and
// -F with a bridge URL: the bridge has its own Kafka settings.
void refuse_kafka_flags_for_bridge(const ConnectionOptions& connection);
// Refuses the bridge flags without a bridge URL.
void refuse_bridge_flags_for_kafka(const BridgeFlags& flags);

// Validators with short error messages and no description, so help and man
// pages read "-c N" rather than "-c N:NONNEGATIVE".
CLI::Validator integer_in(long long min, long long max);
CLI::Validator positive_number();

// -b, -X, -F, -v, --timeout.
void add_connection_options(CLI::App* app, ConnectionOptions& options);

// Declares the flag of a key in kws's settings table (core/settings.hpp).
// CLI11 only keeps the text, filed in `flags` under the key's name with the
// long flag as its origin; ConnectionOptions::resolve checks it with the
// key's own rule, so the flag, its KWS_... variable and the config file share
// one validator and one error format ("--client-buffer: '4x' is not a size
// ..."). The help shows the table's default and a value name for its type.
// A key the table lacks, or that `app`'s command does not read, is a bug
// (std::logic_error at start-up).
CLI::Option* add_setting_flag(CLI::App* app, const std::string& names, std::string_view key,
                              FlagValues& flags, const std::string& help);
// The key behind a flag that add_setting_flag declared; nullptr for any other
// option. Such a flag has no CLI11 validator, so this is how the completion
// generator learns a choice key's values.
const SettingKey* setting_key_of(const CLI::Option* option);

// Adds a subcommand whose --help summary is the CommandDoc's; the rest of
// the doc feeds the man page generator.
CLI::App* add_documented_subcommand(CLI::App& parent, const CommandDoc& doc);

}  // namespace kws::cmd
