#pragma once
// The process's open-file limit: servers raise the soft limit to the hard
// one at start, then size their connection caps by it.
#include <cstdint>

namespace kws {

// Raises the soft RLIMIT_NOFILE to the hard limit (where allowed) and
// returns the soft limit now in force.
uint64_t raise_open_file_limit();

}  // namespace kws
