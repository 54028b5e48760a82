#pragma once
// Splitting an input stream into records (stdin lines for `kws send`).
#include <functional>
#include <string>
#include <string_view>

namespace kws {

// Reads `fd` to its end in large blocks and calls `on_record` for each record
// separated by `delimiter` (one or more bytes). A final record without a
// trailing delimiter is still delivered; the empty tail after a final
// delimiter is not. `on_record` returns false to stop early. Returns the
// number of records delivered. A stop signal (core/signals.hpp) that
// interrupts a read ends it early. Throws kws::Error on read errors.
size_t read_delimited(int fd, std::string_view delimiter,
                      const std::function<bool(std::string_view record)>& on_record);

// Reads a whole file (or "-" for stdin) into memory. Throws kws::Error.
std::string read_whole_file(const std::string& path);

}  // namespace kws
