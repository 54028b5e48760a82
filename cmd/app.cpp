#include "cmd/app.hpp"

#include <fstream>
#include <iostream>

#include "core/config.hpp"
#include "core/kafka/properties.hpp"
#include "core/util/text.hpp"
#include "core/util/error.hpp"
#include "core/version.hpp"

namespace kws::cmd {

const CommandDoc kws_doc{
    "",
    "Kafka and WebSocket from the command line",
    "[--version] [--help] COMMAND [OPTIONS] [ARGS]",
    "kws is a toolkit for Apache Kafka: produce and consume from a terminal with kcat's habits, "
    "inspect topics and their offsets, and run an in-memory Kafka-protocol broker so that all of "
    "it works on a machine with no Kafka installed.\n\n"
    "Every command that talks to Kafka takes -b BROKERS, -X key=value (any librdkafka property, "
    "passed through) and -F FILE (a config file of librdkafka properties and kws's own kws. "
    "settings, listed under SETTINGS). A setting given as a flag beats "
    "the environment, which beats the config file, which beats the default; `kws config` shows "
    "the effective settings and where each came from.\n\n"
    "stdout carries data only; diagnostics go to stderr, in colour on a terminal unless NO_COLOR "
    "is set (CLICOLOR_FORCE forces colour).",
    {{"kws broker &", "start the embedded broker on localhost:9092"},
     {"kws send demo hello", "produce a message"},
     {"kws tail -o beginning -e demo", "read it back"},
     {"kws topics", "list topics with their offsets"}},
    ""};

Cli::Cli() : app(kws_doc.summary, "kws") {}

namespace {

const CommandDoc config_doc{
    "config",
    "Show the effective settings and where each one came from",
    "[OPTIONS]",
    "Resolves the settings exactly as the other commands do (flag, then environment, then config "
    "file, then default) and prints one line per setting: key, value and its source. First come the "
    "librdkafka properties that are set, then every one of kws's own settings (the kws. keys, "
    "listed under SETTINGS), each checked as the commands that read it would check it; a librdkafka "
    "property librdkafka does not know, or a bad value for one, is refused as kws tail and kws send "
    "refuse it. Nothing connects to Kafka.",
    {{"KWS_BROKERS=k1:9092 kws config -X acks=1", "see which broker list and properties apply"},
     {"KWS_SERVE_LISTEN=0.0.0.0:8080 kws config | grep '^kws.serve'", "check kws serve's settings"}},
    ""};

const CommandDoc completion_doc{
    "completion",
    "Print a shell completion script (bash, zsh or fish)",
    "SHELL",
    "Prints a completion script generated from kws's own option tree: commands, options, the "
    "values of options with a fixed set of choices, and topic names, which it asks of the brokers "
    "the command line names (kws topics --names, at most half a second). Install it with, for "
    "example, `kws completion bash > /etc/bash_completion.d/kws`, or `kws completion fish > "
    "~/.config/fish/completions/kws.fish`.",
    {{"source <(kws completion bash)", "enable completion in the current bash"}},
    ""};

const CommandDoc manpage_doc{"manpage", "Print or write the man pages", "[PAGE] [--dir DIR]", "", {}, ""};

void print_setting(const std::string& key, const std::string& value, ConfigSource source,
                   const std::string& origin) {
  std::cout << key << " = " << value << "  (" << config_source_name(source);
  if (origin != config_source_name(source)) std::cout << ": " << origin;
  std::cout << ")\n";
}

int run_config(const ConfigOptions& o) {
  auto settings = o.connection.resolve("", {});
  // What kws tail or kws send would refuse is refused here too, by the same check.
  check_kafka_properties(settings.kafka);
  for (const auto& e : settings.kafka.entries()) print_setting(e.key, e.value, e.source, e.origin);
  for (const auto& s : settings.kws.all()) print_setting(s.key->file_key(), s.text, s.source, s.origin);
  return exit_ok;
}

int run_manpage(const Cli& cli) {
  const auto& o = cli.manpage;
  if (o.dir.empty()) {
    std::cout << man_page(cli, o.page.empty() ? "kws" : o.page);
    return exit_ok;
  }
  for (const auto& name : man_page_names(cli)) {
    if (!o.page.empty() && name != o.page) continue;
    std::string path = o.dir + "/" + name + ".1";
    std::ofstream file(path);
    file << man_page(cli, name);
    if (!file) throw Error("cannot write " + path);
  }
  return exit_ok;
}

}  // namespace

namespace {

// Flags other Kafka tools use for what a kws flag does. Typed out of habit,
// they get pointed at kws's own instead of "was not expected".
struct ForeignFlag {
  const char* command;  // "" for every command
  const char* flag;
  const char* whose;
  const char* instead;
};
constexpr ForeignFlag kForeignFlags[] = {
    {"tail", "--from-beginning", "the Kafka console consumer's", "kws tail takes kcat's -o beginning"},
    {"", "--bootstrap-server", "the Kafka console tools'", "kws takes -b BROKERS"},
};

bool argument_given(int argc, const char* const* argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == flag || (arg.size() > flag.size() && arg.substr(0, flag.size()) == flag && arg[flag.size()] == '=')) {
      return true;
    }
  }
  return false;
}

const Cli::Command* parsed_command(const Cli& cli) {
  for (const auto& c : cli.commands) {
    if (c.app->parsed()) return &c;
  }
  return nullptr;
}

}  // namespace

ParseErrorText explain_parse_error(const Cli& cli, int argc, const char* const* argv, const CLI::ParseError& error) {
  const Cli::Command* command = parsed_command(cli);
  if (!command) {
    // kws takes no option with a value before the command, so the first
    // word that is not an option is the command the user meant.
    std::vector<std::string> names;
    for (const auto& c : cli.commands) {
      if (c.documented) names.push_back(c.app->get_name());
    }
    for (int i = 1; i < argc; ++i) {
      std::string word = argv[i];
      if (word.empty() || word[0] == '-') continue;
      std::string message = "unknown command '" + word + "'";
      if (auto meant = closest_word(word, names)) {
        message += " (did you mean " + *meant + "?)";
      } else {
        std::string all;
        for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
        message += "; the commands are " + all;
      }
      return {message, true};
    }
    if (dynamic_cast<const CLI::RequiredError*>(&error)) {
      return {"a COMMAND is required (kws COMMAND [OPTIONS] [ARGS]; kws --help lists them)", true};
    }
    return {error.what(), false};
  }
  const std::string name = "kws " + command->app->get_name();
  for (const auto& f : kForeignFlags) {
    if ((!*f.command || command->app->get_name() == f.command) && argument_given(argc, argv, f.flag)) {
      return {name + ": " + f.flag + " is " + f.whose + " flag; " + f.instead, true};
    }
  }
  if (dynamic_cast<const CLI::RequiredError*>(&error)) {
    for (const CLI::Option* opt : command->app->get_options()) {
      if (opt->get_required() && opt->count() == 0 && opt->get_positional()) {
        // The type name may carry a validator's description: "SHELL:{bash,zsh,fish}".
        std::string what = opt->get_type_name();
        what = what.substr(0, what.find(':'));
        // The first form of the synopsis: a missing TOPIC is not helped by
        // kws tail's or kws send's second form, through a bridge.
        const std::string& synopsis = command->doc->synopsis;
        return {name + ": a " + what + " is required (" + name + " " + synopsis.substr(0, synopsis.find(" | ")) + ")",
                true};
      }
    }
  }
  return {error.what(), false};
}

std::unique_ptr<Cli> build_cli() {
  auto cli = std::make_unique<Cli>();
  Cli& c = *cli;
  c.app.set_version_flag("-V,--version", version_report());
  c.app.require_subcommand(1);
  c.app.fallthrough(false);
  c.app.footer("Run 'kws COMMAND --help' for a command's options; 'man kws' for more.");

  c.commands.push_back({register_serve(c.app, c.serve), &serve_doc, [&c] { return run_serve(c.serve); }, true});
  c.commands.push_back({register_broker(c.app, c.broker), &broker_doc, [&c] { return run_broker(c.broker); }, true});
  c.commands.push_back({register_send(c.app, c.send), &send_doc, [&c] { return run_send(c.send); }, true});
  c.commands.push_back({register_tail(c.app, c.tail), &tail_doc, [&c] { return run_tail(c.tail); }, true});
  c.commands.push_back({register_ingest(c.app, c.ingest), &ingest_doc, [&c] { return run_ingest(c.ingest); }, true});
  c.commands.push_back({register_topics(c.app, c.topics), &topics_doc, [&c] { return run_topics(c.topics); }, true});
  c.commands.push_back({register_bench(c.app, c.bench), &bench_doc, [&c] { return run_bench(c.bench); }, true});

  CLI::App* config = add_documented_subcommand(c.app, config_doc);
  add_connection_options(config, c.config.connection);
  c.commands.push_back({config, &config_doc, [&c] { return run_config(c.config); }, true});

  CLI::App* completion = add_documented_subcommand(c.app, completion_doc);
  completion->add_option("shell", c.completion.shell, "Shell to complete for")
      ->required()
      ->type_name("SHELL")
      ->check(CLI::IsMember({"bash", "zsh", "fish"}));
  c.commands.push_back({completion, &completion_doc,
                        [&c] {
                          std::cout << completion_script(c, c.completion.shell);
                          return exit_ok;
                        },
                        true});

  // Build-time helper that writes man/; not for users, so hidden.
  CLI::App* manpage = c.app.add_subcommand(manpage_doc.name, manpage_doc.summary);
  manpage->group("");
  manpage->add_option("page", c.manpage.page, "Page name, e.g. kws-tail");
  manpage->add_option("--dir", c.manpage.dir, "Write every page into DIR");
  c.commands.push_back({manpage, &manpage_doc, [&c] { return run_manpage(c); }, false});
  return cli;
}

}  // namespace kws::cmd
