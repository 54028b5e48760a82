#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/util/proc_net.hpp"

using namespace kws;

TEST_CASE("proc_net: /proc/net/tcp rows") {
  auto row = parse_tcp_row(
      "   3: 0100007F:C350 0100007F:2384 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1");
  REQUIRE(row);
  CHECK(row->local_port == 50000);
  CHECK(row->remote_port == 9092);
  CHECK(row->state == kTcpEstablished);
  CHECK(row->inode == 4242);
  CHECK_FALSE(parse_tcp_row("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"));
}

TEST_CASE("proc_net: describe_tcp_listener names the process that listens on a port") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const uint16_t port = ntohs(addr.sin_port);
  // Bound but not listening: nobody to name.
  CHECK_FALSE(describe_tcp_listener(port));
  REQUIRE(::listen(fd, 1) == 0);
  auto holder = describe_tcp_listener(port);
  ::close(fd);
  REQUIRE(holder);
  CHECK(holder->rfind("pid " + std::to_string(getpid()) + ": ", 0) == 0);
  CHECK(holder->find("kws_unit_tests") != std::string::npos);
}
