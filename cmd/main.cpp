// kws entry point: parse, dispatch, and the one place errors are caught.
#include <iostream>

#include "cmd/app.hpp"
#include "core/util/error.hpp"
#include "core/util/output.hpp"
#include "core/util/signals.hpp"

int main(int argc, char** argv) {
  kws::install_stop_signals();
  auto cli = kws::cmd::build_cli();
  try {
    cli->app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli->app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return cli->app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return cli->app.exit(e);
  } catch (const CLI::ParseError& e) {
    auto text = kws::cmd::explain_parse_error(*cli, argc, argv, e);
    kws::print_diagnostic("error", text.message);
    if (!text.specific) std::cerr << "Run 'kws --help' or 'kws COMMAND --help' for usage.\n";
    return kws::exit_usage;
  }
  // One rule for every command (EXIT STATUS in each man page): a run that
  // SIGINT or SIGTERM ended exits 130 or 143 once the command's own orderly
  // shutdown is over, whatever it returned or threw; what was lost on the way
  // is said on stderr.
  try {
    for (const auto& command : cli->commands) {
      if (command.app->parsed()) {
        const int status = command.run();
        if (const int stopped = kws::stop_exit_status()) return stopped;
        return status;
      }
    }
    kws::print_diagnostic("error", "no command given");
    return kws::exit_usage;
  } catch (const kws::Error& e) {
    kws::print_diagnostic("error", e.what());
    if (const int stopped = kws::stop_exit_status()) return stopped;
    return e.exit_code();
  } catch (const std::exception& e) {
    kws::print_diagnostic("error", std::string("internal error: ") + e.what());
    return kws::exit_failure;
  }
}
