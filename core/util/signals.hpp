#pragma once
// SIGINT/SIGTERM handling: the handler only records the signal; long-running
// loops poll stop_requested() and shut down properly (flush, close, commit).
#include <csignal>

namespace kws {

void install_stop_signals();
bool stop_requested();
int stop_signal();  // 0 when none arrived yet
// Blocks until a stop signal arrives.
void wait_for_stop_signal();

}  // namespace kws
