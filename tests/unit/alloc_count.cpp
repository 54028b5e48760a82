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
// The nothrow forms too (Catch2 registers its tests with one): otherwise
// they stay ASan's, and the delete below frees what they allocated, which
// ASan reports as an alloc-dealloc mismatch at exit.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  if (counting) ++counted;
  return std::malloc(size ? size : 1);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return ::operator new(size, tag); }
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
