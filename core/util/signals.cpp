#include "core/util/signals.hpp"

#include <atomic>
#include <unistd.h>

namespace kws {

namespace {
std::atomic<int> g_signal{0};
std::atomic<bool> g_reload{false};
void on_signal(int sig) { g_signal.store(sig); }
void on_reload_signal(int) { g_reload.store(true); }
}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A closed stdout must surface as EPIPE on write, not kill the process.
  signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() { return g_signal.load() != 0; }
int stop_signal() { return g_signal.load(); }
int stop_exit_status() {
  const int sig = g_signal.load();
  return sig == 0 ? 0 : 128 + sig;
}

void install_reload_signal() {
  struct sigaction sa {};
  sa.sa_handler = on_reload_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, nullptr);
}

bool take_reload_request() { return g_reload.exchange(false); }

void wait_for_stop_signal() {
  while (!stop_requested()) usleep(50 * 1000);
}

}  // namespace kws
