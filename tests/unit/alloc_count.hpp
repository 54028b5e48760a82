#pragma once
// Counts operator new calls made by this thread while an instance lives, so a
// test can pin "this costs no heap memory" (alloc_count.cpp replaces the
// global operator new for the unit-test binary).
#include <cstddef>

namespace kws::test {

class CountAllocations {
 public:
  CountAllocations();
  ~CountAllocations();
  CountAllocations(const CountAllocations&) = delete;
  CountAllocations& operator=(const CountAllocations&) = delete;
  size_t allocations() const;
};

}  // namespace kws::test
