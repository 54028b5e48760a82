#pragma once
// SIGINT/SIGTERM handling: the handler only records the signal; long-running
// loops poll stop_requested() and shut down properly (flush, close, commit).
#include <csignal>

namespace kws {

void install_stop_signals();
bool stop_requested();
int stop_signal();  // 0 when none arrived yet
// The exit status of a run that a stop signal ended: 128 + its number (130
// for SIGINT, 143 for SIGTERM), as a shell reports a process the signal
// killed, so scripts see the same status whether or not kws caught it. 0
// while no stop signal arrived.
int stop_exit_status();
// Blocks until a stop signal arrives.
void wait_for_stop_signal();

// SIGHUP asks a server to reload its certificate and keys: the handler only
// records it; take_reload_request() says once per SIGHUP (several before
// it was asked count as one).
void install_reload_signal();
bool take_reload_request();

}  // namespace kws
