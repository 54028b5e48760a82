#pragma once
// The per-address connection cap of kws serve (serve.max_connections_per_ip):
// how many connections each peer IP address holds now, counted from accept
// to the connection's end. Every TCP connection counts, whatever it asks
// for (an upgrade, a plain GET, a TLS handshake that never completes),
// because each holds a descriptor and its state; one address must not take
// the whole --max-connections. No Asio here: an address is its 16 bytes.
//
// Release is by RAII (PeerSlot): the connection owns its slot, so every
// path that ends a connection (a close handshake, a reset, a handshake
// timeout, a refused upgrade, a server going away) gives the place back,
// with no decrement to forget on an error path.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace kws::ws {

// An IPv4 address as its IPv4-mapped IPv6 form, so one table holds both.
struct PeerAddress {
  std::array<uint8_t, 16> bytes{};
  bool operator==(const PeerAddress& o) const { return bytes == o.bytes; }
  // 127.0.0.0/8 (as ::ffff:127.x.x.x) and ::1.
  bool loopback() const;
  std::string text() const;  // "192.0.2.1", "2001:db8::1" for messages
  static PeerAddress v4(uint32_t host_order);
  static PeerAddress v6(const std::array<uint8_t, 16>& bytes);
};

struct PeerLimitOptions {
  size_t max_per_address = 0;  // 0: no cap
  // Whether the cap applies to 127.0.0.0/8 and ::1 too. Off by default:
  // behind a reverse proxy on the same host every client is 127.0.0.1, and
  // kws bench opens its 10,000 clients from there (docs/SECURITY.md).
  bool limit_loopback = false;
};

class PeerLimits;

// One counted connection; gives its place back when destroyed. Empty
// (default-constructed, or moved from) it counts nothing.
class PeerSlot {
 public:
  PeerSlot() = default;
  PeerSlot(PeerSlot&& o) noexcept;
  PeerSlot& operator=(PeerSlot&& o) noexcept;
  PeerSlot(const PeerSlot&) = delete;
  PeerSlot& operator=(const PeerSlot&) = delete;
  ~PeerSlot() { release(); }
  bool counted() const { return table_ != nullptr; }

 private:
  friend class PeerLimits;
  struct Table;
  PeerSlot(std::shared_ptr<Table> table, const PeerAddress& address) : table_(std::move(table)), address_(address) {}
  void release();
  // Shared: a connection that outlives the server (its handlers destroyed
  // with the I/O context) still releases into a live table.
  std::shared_ptr<Table> table_;
  PeerAddress address_;
};

class PeerLimits {
 public:
  explicit PeerLimits(PeerLimitOptions options);

  struct Admission {
    bool admitted = false;
    PeerSlot slot;       // counted, when the address is tracked
    size_t holding = 0;  // connections the address held before this one
  };
  // Counts a new connection from `address`, or refuses it when the address
  // already holds the cap. Loopback peers are counted but, unless
  // limit_loopback, never refused. Thread-safe (a short lock): accepts run
  // on the I/O thread, but a slot may be released from whichever thread
  // drops the last reference to its connection.
  Admission admit(const PeerAddress& address);

  size_t max_per_address() const { return options_.max_per_address; }
  // Connections counted now, over every address; and how many addresses
  // hold at least one (for /metrics and the tests that every path releases).
  size_t connections() const;
  size_t addresses() const;

 private:
  PeerLimitOptions options_;
  std::shared_ptr<PeerSlot::Table> table_;
};

}  // namespace kws::ws
