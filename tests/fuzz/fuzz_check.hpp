#pragma once
// The fuzz targets' invariant check: a broken invariant aborts, which
// libFuzzer reports as a crash with the input that caused it.
#include <cstdio>
#include <cstdlib>

namespace kws::fuzz {

[[noreturn]] inline void violated(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

}  // namespace kws::fuzz

#define CHECK(cond)                          \
  do {                                       \
    if (!(cond)) kws::fuzz::violated(#cond); \
  } while (0)
