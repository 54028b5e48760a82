// ws::Listener out of file descriptors: the path no integration test can
// reach, because kws serve caps --max-connections below its limit. It is
// there for descriptors taken by something else (Kafka connections, a
// library), and without it a full process stops answering even /healthz.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/ws/listener.hpp"

using namespace kws;

namespace {

// Lowers the soft descriptor limit for one test and gives it back.
struct DescriptorLimit {
  rlimit saved{};
  explicit DescriptorLimit(rlim_t soft) {
    getrlimit(RLIMIT_NOFILE, &saved);
    rlimit lowered = saved;
    lowered.rlim_cur = soft;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  }
  ~DescriptorLimit() { setrlimit(RLIMIT_NOFILE, &saved); }
};

int highest_open_descriptor() {
  int highest = 0;
  for (int fd = 0; fd < 65536; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) highest = fd;
  }
  return highest;
}

int client_socket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  timeval two_seconds{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof two_seconds);
  return fd;
}

void connect_to(int fd, uint16_t port) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
}

std::string read_some(int fd) {
  char buf[512];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

uint16_t port_of(const std::string& address) {
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

}  // namespace

TEST_CASE("listener: out of descriptors, a client is answered 503 and the listener goes on") {
  asio::io_context io;
  NullLog log;
  ws::Listener listener(io, log);
  listener.listen("127.0.0.1", 0);
  const uint16_t port = port_of(listener.address());
  std::vector<asio::ip::tcp::socket> taken;
  listener.start([&](asio::ip::tcp::socket& s) {
    taken.push_back(std::move(s));
    return true;
  });
  // Both clients' sockets exist before the descriptors run out.
  const int refused_client = client_socket();
  const int later_client = client_socket();
  std::vector<int> fillers;
  {
    DescriptorLimit limit(static_cast<rlim_t>(highest_open_descriptor()) + 16);
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
    REQUIRE(errno == EMFILE);

    connect_to(refused_client, port);
    for (int i = 0; i < 20 && taken.empty(); ++i) io.run_for(std::chrono::milliseconds(10));
    io.restart();
    CHECK(taken.empty());
    const std::string answer = read_some(refused_client);
    CHECK(answer.rfind("HTTP/1.1 503", 0) == 0);
    CHECK(answer.find("out of file descriptors") != std::string::npos);
    // The spare is held again: still no descriptor to spare.
    CHECK(::open("/dev/null", O_RDONLY | O_CLOEXEC) == -1);
    // Linux answers EMFILE even with nobody waiting: the listener must wait
    // for the next client, neither blocking the thread nor failing in a loop.
    rusage before{}, after{};
    getrusage(RUSAGE_THREAD, &before);
    io.run_for(std::chrono::milliseconds(300));
    io.restart();
    getrusage(RUSAGE_THREAD, &after);
    const auto cpu_us = [](const rusage& u) {
      return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000L + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
    };
    CHECK(cpu_us(after) - cpu_us(before) < 100000);

    for (int fd : fillers) ::close(fd);
  }
  connect_to(later_client, port);
  for (int i = 0; i < 100 && taken.empty(); ++i) io.run_for(std::chrono::milliseconds(10));
  CHECK(taken.size() == 1);
  ::close(refused_client);
  ::close(later_client);
  listener.close();
}
