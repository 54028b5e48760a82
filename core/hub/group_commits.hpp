#pragma once
// Where a `group.id` session's commit may stand, per partition, when not
// every message read is sent: a filter keeps some on the bridge. Storing
// only what the socket took (at least once) would leave the commit behind
// a trailing run of filtered-out messages for ever, and every rebalance
// would read them again; storing what was read would commit past messages
// still waiting for the client. So per partition it keeps three offsets:
//   handed  past the last message handed to the session (the reader)
//   sent    past the last message the client's socket took (the session)
//   read    everything below was read: handed to the session or filtered out
// and the commit may go to `read` once `sent` caught up with `handed`
// (every message handed over is out, the rest was filtered out), else only
// to `sent`. It never goes backwards. Pure values, not thread-safe: the
// group reader guards it (core/hub/group_reader.hpp).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace kws {

class GroupCommits {
 public:
  // From the reader, before it hands a poll's messages on: in `topic`'s
  // `partition`, the messages it hands over end below `handed_next` (-1:
  // none this time), and every offset below `read_next` was read. Returns
  // the offset to store when the commit may advance.
  std::optional<int64_t> read(const std::string& topic, int32_t partition, int64_t handed_next, int64_t read_next);
  // From the session: its client's socket took everything handed over
  // below `next`. Returns the offset to store when the commit may advance.
  std::optional<int64_t> sent(const std::string& topic, int32_t partition, int64_t next);
  // The partition's offsets went backwards (a new log): what was known of
  // the old one no longer says anything about the new one.
  void forget(const std::string& topic, int32_t partition);

 private:
  struct Partition {
    int64_t handed = -1;
    int64_t sent = -1;
    int64_t read = -1;
    int64_t stored = -1;
  };
  static std::optional<int64_t> advance(Partition& p);
  std::map<std::pair<std::string, int32_t>, Partition> partitions_;
};

}  // namespace kws
