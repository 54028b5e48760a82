#include "core/bench/process_probe.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
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

std::optional<TcpRow> parse_tcp_row(std::string_view line) {
  // "  0: 0100007F:2384 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 123456 ..."
  std::istringstream in{std::string(line)};
  std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
  if (!(in >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode)) {
    return std::nullopt;
  }
  if (slot.empty() || slot.back() != ':') return std::nullopt;
  auto port_of = [](const std::string& address) -> long {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) return -1;
    char* end = nullptr;
    long port = std::strtol(address.c_str() + colon + 1, &end, 16);
    return *end == '\0' ? port : -1;
  };
  long lp = port_of(local), rp = port_of(remote);
  if (lp < 0 || rp < 0 || lp > 65535 || rp > 65535) return std::nullopt;
  TcpRow row;
  row.local_port = static_cast<uint16_t>(lp);
  row.remote_port = static_cast<uint16_t>(rp);
  row.state = static_cast<int>(std::strtol(state.c_str(), nullptr, 16));
  row.inode = std::strtoull(inode.c_str(), nullptr, 10);
  return row;
}

std::optional<size_t> count_connections_to(int pid, const std::set<uint16_t>& ports) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::set<uint64_t> sockets;
  DIR* dir = opendir((proc + "/fd").c_str());
  if (!dir) return std::nullopt;
  while (dirent* e = readdir(dir)) {
    char target[64];
    std::string link = proc + "/fd/" + e->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::strncmp(target, "socket:[", 8) == 0) sockets.insert(std::strtoull(target + 8, nullptr, 10));
  }
  closedir(dir);
  size_t count = 0;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc + table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      auto row = parse_tcp_row(line);
      if (row && row->state == 1 && ports.count(row->remote_port) && sockets.count(row->inode)) ++count;
    }
  }
  return count;
}

}  // namespace kws::bench
