#pragma once
// Splitting an input stream into records (stdin lines for `kws send`).
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "core/util/log.hpp"

namespace kws {

// Reads `fd` to its end in large blocks and calls `on_record` for each record
// separated by `delimiter` (one or more bytes). A final record without a
// trailing delimiter is still delivered; the empty tail after a final
// delimiter is not. `on_record` returns false to stop early. Returns the
// number of records delivered. A signal that interrupts a read ends it early
// when `should_stop` then says so. Throws kws::Error on read errors.
//
// A reader of a slow stream (a pipe fed twice a second, a terminal) would
// otherwise sit in read() for as long as the input is quiet. `idle`, when
// given, is called at least every `idle_every` whatever the input rate (also
// when no byte arrives at all) and returns false to stop reading; it may throw.
struct IdleCall {
  std::function<bool()> call;
  std::chrono::milliseconds every{200};
};
size_t read_delimited(int fd, std::string_view delimiter,
                      const std::function<bool(std::string_view record)>& on_record, const StopCheck& should_stop,
                      const IdleCall& idle = {});

// Reads a whole file (or "-" for stdin) into memory. Throws kws::Error.
std::string read_whole_file(const std::string& path);

}  // namespace kws
