#pragma once
// Writing data to stdout and diagnostics to stderr.
#include <string>
#include <string_view>

namespace kws {

// Buffers bytes for a file descriptor and writes them in large chunks. A
// reader that went away (EPIPE, e.g. `kws tail | head`) is not an error: it
// turns `closed()` true and the caller stops cleanly.
class OutputBuffer {
 public:
  explicit OutputBuffer(int fd, size_t flush_threshold = 1 << 16);
  ~OutputBuffer();
  OutputBuffer(const OutputBuffer&) = delete;
  OutputBuffer& operator=(const OutputBuffer&) = delete;

  // The buffer to append to; call maybe_flush() after appending.
  std::string& buffer() { return pending_; }
  void maybe_flush() {
    if (pending_.size() >= flush_threshold_) flush();
  }
  // Returns false when the reader is gone. Throws kws::Error on other write errors.
  bool flush();
  bool closed() const { return closed_; }
  // Whether the reader went away, found without writing (poll() reports
  // POLLERR on a pipe whose read end is closed). Also sets closed().
  bool reader_gone();

 private:
  int fd_;
  size_t flush_threshold_;
  std::string pending_;
  bool closed_ = false;
};

// Colour on `fd` when it is a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
// forces it on anyway for pipes (NO_COLOR still wins).
bool colour_enabled(int fd);

// "kws: error: ..." (red on a colour terminal). Used by main and for warnings.
void print_diagnostic(std::string_view level, std::string_view message);

}  // namespace kws
