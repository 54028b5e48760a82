#include "core/ws/peer_limits.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace kws::ws {

namespace {

struct AddressHash {
  size_t operator()(const PeerAddress& a) const {
    // FNV-1a over the 16 bytes: cheap, and an attacker picking addresses
    // gains little from collisions in a table bounded by the connection cap.
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : a.bytes) h = (h ^ b) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

constexpr std::array<uint8_t, 12> kV4MappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool v4_mapped(const PeerAddress& a) { return std::memcmp(a.bytes.data(), kV4MappedPrefix.data(), 12) == 0; }

}  // namespace

struct PeerSlot::Table {
  std::mutex mutex;
  std::unordered_map<PeerAddress, size_t, AddressHash> held;
  size_t total = 0;
};

PeerAddress PeerAddress::v4(uint32_t host_order) {
  PeerAddress a;
  std::memcpy(a.bytes.data(), kV4MappedPrefix.data(), 12);
  a.bytes[12] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[13] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[14] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[15] = static_cast<uint8_t>(host_order);
  return a;
}

PeerAddress PeerAddress::v6(const std::array<uint8_t, 16>& bytes) {
  PeerAddress a;
  a.bytes = bytes;
  return a;
}

bool PeerAddress::loopback() const {
  if (v4_mapped(*this)) return bytes[12] == 127;
  static constexpr std::array<uint8_t, 16> kV6Loopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return bytes == kV6Loopback;
}

std::string PeerAddress::text() const {
  char out[INET6_ADDRSTRLEN] = {};
  if (v4_mapped(*this)) {
    inet_ntop(AF_INET, bytes.data() + 12, out, sizeof out);
  } else {
    inet_ntop(AF_INET6, bytes.data(), out, sizeof out);
  }
  return out;
}

PeerSlot::PeerSlot(PeerSlot&& o) noexcept : table_(std::move(o.table_)), address_(o.address_) {}

PeerSlot& PeerSlot::operator=(PeerSlot&& o) noexcept {
  if (this != &o) {
    release();
    table_ = std::move(o.table_);
    address_ = o.address_;
  }
  return *this;
}

void PeerSlot::release() {
  if (!table_) return;
  {
    std::lock_guard<std::mutex> lock(table_->mutex);
    auto it = table_->held.find(address_);
    // Erased at zero, so the table holds only addresses with connections.
    if (it != table_->held.end() && --it->second == 0) table_->held.erase(it);
    --table_->total;
  }
  table_.reset();
}

PeerLimits::PeerLimits(PeerLimitOptions options) : options_(options), table_(std::make_shared<PeerSlot::Table>()) {}

PeerLimits::Admission PeerLimits::admit(const PeerAddress& address) {
  Admission a;
  std::lock_guard<std::mutex> lock(table_->mutex);
  size_t& held = table_->held[address];
  a.holding = held;
  const bool capped = options_.max_per_address > 0 && (options_.limit_loopback || !address.loopback());
  if (capped && held >= options_.max_per_address) return a;  // held > 0 here: nothing to erase
  ++held;
  ++table_->total;
  a.admitted = true;
  a.slot = PeerSlot(table_, address);
  return a;
}

size_t PeerLimits::connections() const {
  std::lock_guard<std::mutex> lock(table_->mutex);
  return table_->total;
}

size_t PeerLimits::addresses() const {
  std::lock_guard<std::mutex> lock(table_->mutex);
  return table_->held.size();
}

}  // namespace kws::ws
