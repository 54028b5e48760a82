#include "core/util/input.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <unistd.h>

#include "core/util/error.hpp"

namespace kws {

size_t read_delimited(int fd, std::string_view delimiter,
                      const std::function<bool(std::string_view record)>& on_record, const StopCheck& should_stop,
                      const IdleCall& idle) {
  if (delimiter.empty()) throw usage_error("the record delimiter must not be empty");
  using Clock = std::chrono::steady_clock;
  auto next_idle = Clock::now() + idle.every;
  // Whether to go on reading. Only when an idle call is wanted does a read
  // wait in poll() first: one more system call per block of up to 1 MiB
  // (64 KiB from a pipe); scripts/bench still has kws send at kcat's speed.
  auto wait_for_input = [&]() -> bool {
    if (!idle.call) return true;
    while (true) {
      auto now = Clock::now();
      if (now >= next_idle) {
        if (!idle.call()) return false;
        now = Clock::now();
        next_idle = now + idle.every;
      }
      pollfd p{fd, POLLIN, 0};
      int wait_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next_idle - now).count());
      int ready = ::poll(&p, 1, wait_ms);
      if (ready > 0) return true;  // data, end of input or an error: read() tells which
      if (ready < 0) {
        if (errno != EINTR) return true;  // let read() report it
        if (should_stop && should_stop()) return false;
      }
    }
  };
  constexpr size_t kBlock = 1 << 20;
  std::string buffer;
  buffer.reserve(2 * kBlock);
  size_t delivered = 0;
  size_t scan_from = 0;  // bytes before this hold no delimiter start
  while (true) {
    if (!wait_for_input()) return delivered;
    size_t old_size = buffer.size();
    buffer.resize(old_size + kBlock);
    ssize_t n = ::read(fd, buffer.data() + old_size, kBlock);
    if (n < 0) {
      buffer.resize(old_size);
      // Ctrl-C while waiting for terminal input: stop without sending the
      // half-typed line.
      if (errno == EINTR) {
        if (should_stop && should_stop()) return delivered;
        continue;
      }
      throw Error(std::string("cannot read input: ") + std::strerror(errno));
    }
    buffer.resize(old_size + static_cast<size_t>(n));
    if (n == 0) break;

    size_t start = 0;
    while (true) {
      const char* hit;
      if (delimiter.size() == 1) {
        hit = static_cast<const char*>(
            std::memchr(buffer.data() + scan_from, delimiter[0], buffer.size() - scan_from));
      } else {
        size_t pos = buffer.find(delimiter, scan_from);
        hit = pos == std::string::npos ? nullptr : buffer.data() + pos;
      }
      if (!hit) break;
      size_t end = static_cast<size_t>(hit - buffer.data());
      ++delivered;
      if (!on_record(std::string_view(buffer.data() + start, end - start))) return delivered;
      start = end + delimiter.size();
      scan_from = start;
    }
    buffer.erase(0, start);
    // A delimiter may straddle the block boundary: rescan its possible start.
    scan_from = buffer.size() >= delimiter.size() ? buffer.size() - (delimiter.size() - 1) : 0;
  }
  if (!buffer.empty()) {
    ++delivered;
    on_record(buffer);
  }
  return delivered;
}

std::string read_whole_file(const std::string& path) {
  int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  std::string out;
  char block[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, block, sizeof block);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      if (fd != STDIN_FILENO) ::close(fd);
      throw Error("cannot read " + path + ": " + std::strerror(saved));
    }
    if (n == 0) break;
    out.append(block, static_cast<size_t>(n));
  }
  if (fd != STDIN_FILENO) ::close(fd);
  return out;
}

}  // namespace kws
