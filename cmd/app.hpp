#pragma once
// The whole command-line tree. main parses with it; `kws completion` and
// `kws manpage` walk it, so help, completions and man pages share one source.
#include <functional>
#include <memory>
#include <vector>

#include "cmd/bench.hpp"
#include "cmd/broker.hpp"
#include "cmd/common.hpp"
#include "cmd/ingest.hpp"
#include "cmd/send.hpp"
#include "cmd/serve.hpp"
#include "cmd/tail.hpp"
#include "cmd/topics.hpp"

namespace kws::cmd {

struct Cli;

struct CompletionOptions {
  std::string shell;
};
struct ManpageOptions {
  std::string page;  // "kws" or "kws-tail"; "" with --dir writes all
  std::string dir;
};
struct ConfigOptions {
  ConnectionOptions connection;
};

struct Cli {
  CLI::App app;
  BenchOptions bench;
  BrokerOptions broker;
  IngestOptions ingest;
  SendOptions send;
  ServeOptions serve;
  TailOptions tail;
  TopicsOptions topics;
  ConfigOptions config;
  CompletionOptions completion;
  ManpageOptions manpage;

  struct Command {
    CLI::App* app;
    const CommandDoc* doc;
    std::function<int()> run;
    bool documented;  // gets a man page and completions
  };
  std::vector<Command> commands;

  Cli();
};

extern const CommandDoc kws_doc;
std::unique_ptr<Cli> build_cli();

// What main prints for a command line CLI11 refused. CLI11's own words name
// its internals ("A subcommand is required", "topics is required"); these
// say what is missing or mistyped in the user's terms, and suggest what
// was meant. `specific` is false when CLI11's message is kept as it is.
struct ParseErrorText {
  std::string message;
  bool specific = false;
};
ParseErrorText explain_parse_error(const Cli& cli, int argc, const char* const* argv, const CLI::ParseError& error);

// Generators (completion.cpp, manpage.cpp).
std::string completion_script(const Cli& cli, const std::string& shell);
std::string man_page(const Cli& cli, const std::string& page);
std::vector<std::string> man_page_names(const Cli& cli);

}  // namespace kws::cmd
