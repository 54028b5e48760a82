#include "core/hub/group_commits.hpp"

#include <algorithm>

namespace kws {

std::optional<int64_t> GroupCommits::read(const std::string& topic, int32_t partition, int64_t handed_next,
                                          int64_t read_next) {
  Partition& p = partitions_[{topic, partition}];
  p.handed = std::max(p.handed, handed_next);
  p.read = std::max(p.read, read_next);
  return advance(p);
}

std::optional<int64_t> GroupCommits::sent(const std::string& topic, int32_t partition, int64_t next) {
  Partition& p = partitions_[{topic, partition}];
  p.sent = std::max(p.sent, next);
  return advance(p);
}

void GroupCommits::forget(const std::string& topic, int32_t partition) { partitions_.erase({topic, partition}); }

std::optional<int64_t> GroupCommits::advance(Partition& p) {
  // The session sends in the order it was handed messages, so once the
  // socket took the last one handed over it took all of them; what else
  // was read below `read` was filtered out.
  const int64_t safe = p.sent >= p.handed ? p.read : p.sent;
  if (safe <= p.stored) return std::nullopt;
  p.stored = safe;
  return safe;
}

}  // namespace kws
