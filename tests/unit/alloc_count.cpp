#include "tests/unit/alloc_count.hpp"

#include <cstdlib>
#include <new>

namespace {
thread_local bool counting = false;
thread_local size_t counted = 0;
}  // namespace

void* operator new(std::size_t size) {
  if (counting) ++counted;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace kws::test {

CountAllocations::CountAllocations() {
  counted = 0;
  counting = true;
}
CountAllocations::~CountAllocations() { counting = false; }
size_t CountAllocations::allocations() const { return counted; }

}  // namespace kws::test
