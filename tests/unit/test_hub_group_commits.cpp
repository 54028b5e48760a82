#include <catch2/catch.hpp>

#include "core/hub/group_commits.hpp"

using namespace kws;

TEST_CASE("group commits: without a filter, the commit follows what the socket took") {
  GroupCommits c;
  CHECK_FALSE(c.read("t", 0, 3, 3));  // handed over, nothing sent yet
  CHECK(c.sent("t", 0, 2) == 2);
  CHECK(c.sent("t", 0, 3) == 3);
  CHECK_FALSE(c.sent("t", 0, 3));  // nothing new
  CHECK_FALSE(c.sent("t", 1, -1));
}

TEST_CASE("group commits: filtered-out messages are committed past once what came before them was sent") {
  GroupCommits c;
  // Offsets 0-9 read: 4 kept (handed over), the rest filtered out.
  CHECK_FALSE(c.read("t", 0, 5, 10));
  // Offset 4 still waits for the client: never past it.
  CHECK(c.sent("t", 0, 3) == 3);
  // It was sent: everything below 10 is accounted for.
  CHECK(c.sent("t", 0, 5) == 10);
  // A later run of filtered-out messages only, with nothing waiting: at once.
  CHECK(c.read("t", 0, -1, 25) == 25);
  // Every message filtered out from the start: at once too.
  CHECK(c.read("t", 1, -1, 7) == 7);
}

TEST_CASE("group commits: never past a message handed over and not yet sent, and never backwards") {
  GroupCommits c;
  CHECK_FALSE(c.read("t", 0, 5, 10));
  CHECK(c.sent("t", 0, 5) == 10);
  // 12 kept, 13-19 filtered out; 12 not sent yet.
  CHECK_FALSE(c.read("t", 0, 13, 20));
  // A poll of filtered-out messages meanwhile does not jump over 12.
  CHECK_FALSE(c.read("t", 0, -1, 30));
  // Sent: past all of them. A late report of older messages changes nothing.
  CHECK(c.sent("t", 0, 13) == 30);
  CHECK_FALSE(c.sent("t", 0, 11));
  // Offsets read again (a rebalance gave the partition back lower) and kept
  // again: the commit stays where it was.
  CHECK_FALSE(c.read("t", 0, 13, 20));
  // Partitions and topics are apart.
  CHECK(c.read("u", 0, -1, 4) == 4);
  CHECK_FALSE(c.read("t", 2, 3, 4));
}

TEST_CASE("group commits: a partition that went backwards (a new log) starts over") {
  GroupCommits c;
  CHECK(c.read("t", 0, -1, 100) == 100);
  c.forget("t", 0);
  CHECK(c.read("t", 0, -1, 3) == 3);
}
