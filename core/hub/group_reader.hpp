#pragma once
// A `group.id` session's own reader: librdkafka needs one consumer per group
// member, so each such session owns one, on its own thread (the expensive
// path; the bridge caps how many). It pauses while the session's client is
// behind, so a slow client holds back its group partitions instead of
// growing memory. At least once, end to end: the group commits only what
// the session says its client's socket took (store_offset), so a client
// cut off, or a bridge killed, loses nothing: the group's next member (on
// this bridge or another) goes on from the last offset really sent. With a
// filter, messages it leaves out never reach the session, and the commit
// goes past them once everything handed over before them was sent
// (core/hub/group_commits.hpp).
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/hub/group_commits.hpp"
#include "core/hub/hub.hpp"
#include "core/hub/subscription.hpp"
#include "core/message_io.hpp"
#include "core/util/log.hpp"

namespace kws {

struct GroupSubscription {
  std::string group;
  std::vector<std::string> topics;
  std::string start_text;  // as the client wrote it, for the `subscribed` notices
  FilterPtr filter;        // null: every message
};

class GroupReader {
 public:
  // `open` connects and joins (it may block and throw kws::Error; that is
  // reported to the subscriber as an error notice). The subscriber hears
  // `subscribed` for each topic once the group first assigned partitions to
  // this member (possibly none). `backlog` tells how many bytes wait for the
  // client; above `high_water` the reader pauses.
  GroupReader(std::function<std::unique_ptr<MessageSource>()> open, GroupSubscription subscription,
              std::shared_ptr<Subscriber> subscriber, std::function<size_t()> backlog, size_t high_water,
              LogSink& log);
  ~GroupReader();  // stops and joins
  // What it reads (fixed at construction, so safe from any thread).
  const GroupSubscription& subscription() const { return subscription_; }
  void stop();
  bool finished() const { return finished_; }
  // From the session's I/O thread: the client's socket took everything of
  // `partition` handed over below `next_offset`. Committed with the group's
  // next commit (past filtered-out messages too, when nothing handed over
  // before them still waits).
  void store_offset(const std::string& topic, int32_t partition, int64_t next_offset);

 private:
  void run();
  // On the reader's thread, before the messages read are handed on.
  void note_read(const std::string& topic, int32_t partition, int64_t handed_next, int64_t read_next);

  std::function<std::unique_ptr<MessageSource>()> open_;
  GroupSubscription subscription_;
  std::shared_ptr<Subscriber> subscriber_;
  std::function<size_t()> backlog_;
  size_t high_water_;
  LogSink& log_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finished_{false};
  // Guards source_ against store_offset while it opens and closes, and commits_.
  std::mutex source_mutex_;
  std::unique_ptr<MessageSource> source_;
  GroupCommits commits_;
  std::thread thread_;
};

}  // namespace kws
