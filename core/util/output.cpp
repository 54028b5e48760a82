#include "core/util/output.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <poll.h>
#include <unistd.h>

#include "core/util/error.hpp"

namespace kws {

OutputBuffer::OutputBuffer(int fd, size_t flush_threshold) : fd_(fd), flush_threshold_(flush_threshold) {
  pending_.reserve(flush_threshold + 4096);
}

OutputBuffer::~OutputBuffer() {
  try {
    flush();
  } catch (...) {
    // Destructors must not throw; a caller that cares calls flush() itself.
  }
}

bool OutputBuffer::flush() {
  if (closed_) {
    pending_.clear();
    return false;
  }
  size_t done = 0;
  while (done < pending_.size()) {
    ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      pending_.clear();
      if (errno == EPIPE) {
        closed_ = true;
        return false;
      }
      throw Error(std::string("cannot write output: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  pending_.clear();
  return true;
}

bool OutputBuffer::reader_gone() {
  if (closed_) return true;
  struct pollfd p {};
  p.fd = fd_;
  p.events = 0;
  if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP))) closed_ = true;
  return closed_;
}

bool colour_enabled(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  if (no_colour && *no_colour) return false;
  const char* force = std::getenv("CLICOLOR_FORCE");
  if (force && *force && std::strcmp(force, "0") != 0) return true;
  return isatty(fd) == 1;
}

void print_diagnostic(std::string_view level, std::string_view message) {
  static const bool colour = colour_enabled(STDERR_FILENO);
  const char* start = "";
  const char* end = "";
  if (colour) {
    start = level == "error" ? "\033[1;31m" : "\033[1;33m";
    end = "\033[0m";
  }
  fprintf(stderr, "kws: %s%.*s%s: %.*s\n", start, static_cast<int>(level.size()), level.data(), end,
          static_cast<int>(message.size()), message.data());
  fflush(stderr);
}

}  // namespace kws
