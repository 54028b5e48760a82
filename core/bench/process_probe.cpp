#include "core/bench/process_probe.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace kws::bench {

std::optional<MemorySample> read_memory(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return std::nullopt;
  MemorySample s;
  bool rss = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      s.rss_kb = std::strtoull(line.c_str() + 6, nullptr, 10);
      rss = true;
    } else if (line.rfind("VmHWM:", 0) == 0) {
      s.hwm_kb = std::strtoull(line.c_str() + 6, nullptr, 10);
    }
  }
  if (!rss) return std::nullopt;
  return s;
}

std::optional<double> read_cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name may hold spaces and parentheses; fields restart after the last ')'.
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && (fields >> field); i++) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  if (!fields) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::optional<size_t> count_connections_to(int pid, const std::set<uint16_t>& ports) {
  const std::string proc = "/proc/" + std::to_string(pid);
  auto sockets = socket_inodes(pid);
  if (!sockets) return std::nullopt;
  size_t count = 0;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc + table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      auto row = parse_tcp_row(line);
      if (row && row->state == kTcpEstablished && ports.count(row->remote_port) && sockets->count(row->inode)) ++count;
    }
  }
  return count;
}

}  // namespace kws::bench
