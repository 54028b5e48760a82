#include "core/util/proc_net.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kws {

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

std::optional<std::set<uint64_t>> socket_inodes(int pid) {
  const std::string fds = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = opendir(fds.c_str());
  if (!dir) return std::nullopt;
  std::set<uint64_t> sockets;
  while (dirent* e = readdir(dir)) {
    char target[64];
    std::string link = fds + "/" + e->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::strncmp(target, "socket:[", 8) == 0) sockets.insert(std::strtoull(target + 8, nullptr, 10));
  }
  closedir(dir);
  return sockets;
}

namespace {

std::string command_line(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\0') text.pop_back();
  // Arguments are NUL-separated, and may hold newlines of their own.
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  constexpr size_t kShown = 100;
  if (text.size() > kShown) text = text.substr(0, kShown) + "...";
  return text;
}

}  // namespace

std::optional<std::string> describe_tcp_listener(uint16_t port) {
  // This network namespace's table is the same through any pid; self is one
  // that always exists.
  std::optional<uint64_t> inode;
  for (const char* table : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (!inode && std::getline(in, line)) {
      auto row = parse_tcp_row(line);
      if (row && row->state == kTcpListen && row->local_port == port) inode = row->inode;
    }
  }
  if (!inode) return std::nullopt;
  DIR* proc = opendir("/proc");
  if (!proc) return std::string("a process this user cannot see");
  std::optional<std::string> found;
  while (dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    auto sockets = socket_inodes(static_cast<int>(pid));
    if (!sockets || !sockets->count(*inode)) continue;
    std::string cmd = command_line(static_cast<int>(pid));
    found = "pid " + std::to_string(pid) + (cmd.empty() ? "" : ": " + cmd);
    break;
  }
  closedir(proc);
  return found ? found : std::string("a process this user cannot see");
}

}  // namespace kws
