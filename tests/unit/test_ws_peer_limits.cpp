// The per-address connection count behind serve.max_connections_per_ip.
#include <catch2/catch.hpp>

#include <vector>

#include "core/ws/peer_limits.hpp"

using namespace kws::ws;

namespace {
const PeerAddress a = PeerAddress::v4(0xC0000201);  // 192.0.2.1
const PeerAddress b = PeerAddress::v4(0xC0000202);
const PeerAddress local = PeerAddress::v4(0x7F000001);
}  // namespace

TEST_CASE("peer limits: an address holds at most the cap; a released slot makes room", "[limits]") {
  PeerLimits limits({2, false});
  auto first = limits.admit(a);
  auto second = limits.admit(a);
  REQUIRE(first.admitted);
  REQUIRE(second.admitted);
  CHECK(second.holding == 1);
  auto third = limits.admit(a);
  CHECK_FALSE(third.admitted);
  CHECK_FALSE(third.slot.counted());
  CHECK(third.holding == 2);
  CHECK(limits.admit(b).admitted);  // another address is not affected (its slot is released at once)
  CHECK(limits.connections() == 2);
  first.slot = PeerSlot();
  CHECK(limits.connections() == 1);
  auto again = limits.admit(a);
  CHECK(again.admitted);
}

TEST_CASE("peer limits: every slot gone, the table is empty", "[limits]") {
  PeerLimits limits({3, false});
  {
    std::vector<PeerSlot> slots;
    for (int i = 0; i < 3; ++i) slots.push_back(std::move(limits.admit(a).slot));
    slots.push_back(std::move(limits.admit(b).slot));
    PeerSlot moved = std::move(slots[0]);  // a moved-from slot releases nothing
    CHECK(limits.connections() == 4);
    CHECK(limits.addresses() == 2);
  }
  CHECK(limits.connections() == 0);
  CHECK(limits.addresses() == 0);
}

TEST_CASE("peer limits: loopback peers are counted, and capped only with limit_loopback", "[limits]") {
  PeerLimits lenient({1, false});
  auto x = lenient.admit(local);
  auto y = lenient.admit(local);
  CHECK(y.admitted);
  CHECK(lenient.connections() == 2);
  PeerLimits strict({1, true});
  auto z = strict.admit(local);
  CHECK(z.admitted);
  CHECK_FALSE(strict.admit(local).admitted);
  CHECK(PeerAddress::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}).loopback());
  CHECK(PeerAddress::v4(0x7F0000FE).loopback());  // all of 127.0.0.0/8
  CHECK_FALSE(a.loopback());
}

TEST_CASE("peer limits: a cap of 0 is no cap", "[limits]") {
  PeerLimits limits({0, true});
  std::vector<PeerSlot> slots;
  for (int i = 0; i < 1000; ++i) {
    auto admission = limits.admit(a);
    REQUIRE(admission.admitted);
    slots.push_back(std::move(admission.slot));
  }
  CHECK(limits.connections() == 1000);
}

TEST_CASE("peer limits: a slot outliving its PeerLimits releases safely", "[limits]") {
  PeerSlot kept;
  {
    PeerLimits limits({1, false});
    kept = std::move(limits.admit(a).slot);
  }
  kept = PeerSlot();  // no crash, no leak (the sanitizer builds check)
  SUCCEED();
}

TEST_CASE("peer address: as text", "[limits]") {
  CHECK(a.text() == "192.0.2.1");
  CHECK(PeerAddress::v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}).text() == "2001:db8::1");
}
