#pragma once
// TCP sockets as Linux's /proc shows them: the rows of /proc/PID/net/tcp,
// which sockets a process holds, and who listens on a port (to say what
// holds an address kws cannot bind). Linux only; elsewhere the answers are
// empty.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace kws {

// One row of /proc/PID/net/tcp or tcp6.
struct TcpRow {
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  int state = 0;  // 1 = ESTABLISHED, 10 = LISTEN
  uint64_t inode = 0;
};
inline constexpr int kTcpEstablished = 1;
inline constexpr int kTcpListen = 10;
std::optional<TcpRow> parse_tcp_row(std::string_view line);

// The inodes of the sockets `pid` holds open; nothing when its descriptors
// cannot be read (gone, or another user's process).
std::optional<std::set<uint64_t>> socket_inodes(int pid);

// Who listens on TCP `port` (any address, IPv4 or IPv6), in words for an
// error message: "pid 1234: kws serve -t demo:3", or "a process this user
// cannot see" when the listener belongs to someone else. Nothing when no
// listener is found (the port may be bound without listening).
std::optional<std::string> describe_tcp_listener(uint16_t port);

}  // namespace kws
