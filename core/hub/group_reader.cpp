#include "core/hub/group_reader.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <string_view>
#include <vector>

namespace kws {

GroupReader::GroupReader(std::function<std::unique_ptr<MessageSource>()> open, GroupSubscription subscription,
                         std::shared_ptr<Subscriber> subscriber, std::function<size_t()> backlog, size_t high_water,
                         LogSink& log)
    : open_(std::move(open)),
      subscription_(std::move(subscription)),
      subscriber_(std::move(subscriber)),
      backlog_(std::move(backlog)),
      high_water_(high_water),
      log_(log),
      thread_([this] { run(); }) {}

GroupReader::~GroupReader() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void GroupReader::stop() { stopping_ = true; }

void GroupReader::store_offset(const std::string& topic, int32_t partition, int64_t next_offset) {
  std::lock_guard<std::mutex> lock(source_mutex_);
  if (!source_) return;
  if (auto commit = commits_.sent(topic, partition, next_offset)) source_->store_offset(topic, partition, *commit);
}

void GroupReader::note_read(const std::string& topic, int32_t partition, int64_t handed_next, int64_t read_next) {
  std::lock_guard<std::mutex> lock(source_mutex_);
  if (!source_) return;
  if (auto commit = commits_.read(topic, partition, handed_next, read_next)) {
    source_->store_offset(topic, partition, *commit);
  }
}

void GroupReader::run() {
  // Every thread catches at its top: a failure here ends this session's
  // stream with an error notice, never the process.
  try {
    {
      std::unique_ptr<MessageSource> opened = open_();
      std::lock_guard<std::mutex> lock(source_mutex_);
      source_ = std::move(opened);
    }
    MessageSource* source = source_.get();
    bool joined = false;
    bool paused = false;
    // A running average of what messages cost on the wire; it starts high, so
    // the first poll, before any message was seen, hands over little.
    size_t message_bytes = 64 << 10;
    std::map<std::string, std::shared_ptr<const std::string>> names;  // one shared name per topic
    std::shared_ptr<const std::string> topic;
    std::vector<FramePtr> frames;
    auto name_of = [&](std::string_view t) -> const std::shared_ptr<const std::string>& {
      auto& name = names[std::string(t)];
      if (!name) name = std::make_shared<const std::string>(t);
      return name;
    };
    // Per partition, since the last hand-over: past the last message kept
    // for the client, and past the last one read (kept or filtered out).
    struct Progress {
      std::shared_ptr<const std::string> topic;
      int32_t partition = -1;
      int64_t handed_next = -1;
      int64_t read_next = -1;
    };
    std::vector<Progress> progress;
    size_t last = 0;  // the entry the last message went to: most messages go where the previous one did
    auto progress_of = [&](const std::shared_ptr<const std::string>& name, int32_t partition) -> Progress& {
      if (last < progress.size() && progress[last].partition == partition && progress[last].topic == name) {
        return progress[last];
      }
      for (last = 0; last < progress.size(); ++last) {
        if (progress[last].partition == partition && progress[last].topic == name) return progress[last];
      }
      progress.push_back(Progress{name, partition});
      return progress.back();
    };
    auto hand_over = [&] {
      // The commit learns what was read before the session has the
      // messages, so it cannot hear they were sent before it knows of them.
      for (const auto& p : progress) note_read(*p.topic, p.partition, p.handed_next, p.read_next);
      progress.clear();
      if (frames.empty()) return;
      for (const auto& b : make_batches(topic, frames, 64 << 10)) subscriber_->deliver(b);
      frames.clear();
    };
    const MessageFilter* filter = subscription_.filter.get();
    while (!stopping_) {
      // A client behind: its partitions are paused (fetching stops, and
      // what was fetched is fetched again later), not dropped, and polling
      // goes on so the group keeps this member; resumed once it drained.
      const size_t backlog = backlog_();
      const bool behind = backlog > high_water_;
      if (behind != paused) {
        if (!source->pause_all(behind) && behind) {
          // A source that cannot pause: not polling lets its bounded fetch
          // queue fill and stop fetching.
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        paused = behind;
      }
      // One poll hands over at most what fits under the high water (by the
      // size of the messages lately seen): a thousand large messages at
      // once would overflow the client's budget, and a group session that
      // overflows is closed, never dropped from.
      const size_t room = high_water_ > backlog ? high_water_ - backlog : 0;
      const size_t max = std::min<size_t>(1000, std::max<size_t>(1, room / std::max<size_t>(1, message_bytes)));
      // While paused this serves rebalances (partitions assigned meanwhile
      // are paused too); a message fetched before the pause still goes on.
      source->poll_batch(
          std::chrono::milliseconds(paused ? 10 : 100), max,
          [&](const MessageView& m) {
            if (!topic || *topic != m.topic) {
              hand_over();
              topic = name_of(m.topic);
            }
            FramePtr frame = make_frame(m);
            // Offsets may go back within a poll (a rebalance gave a
            // partition back at its committed offset): keep the highest.
            Progress& p = progress_of(topic, m.partition);
            p.read_next = std::max(p.read_next, m.offset + 1);
            // Matched as clients get it (after the outgoing transforms), as
            // the hub's filtered subscriptions are.
            if (filter && !filter->matches(*frame)) return true;
            p.handed_next = std::max(p.handed_next, m.offset + 1);
            frames.push_back(std::move(frame));
            message_bytes = (message_bytes * 7 + frames.back()->wire_estimate()) / 8;
            return true;
          },
          [&](const PartitionEvent& e) {
            if (e.kind == PartitionEvent::Kind::assigned && !joined) {
              joined = true;
              for (const auto& t : subscription_.topics) {
                HubNotice n;
                n.kind = HubNotice::Kind::subscribed;
                n.topic = t;
                n.start = subscription_.start_text;
                n.group = subscription_.group;
                subscriber_->notify(n);
              }
            } else if (e.kind == PartitionEvent::Kind::end) {
              // Everything below the partition's end was read (transaction
              // markers and messages a plugin dropped included).
              Progress& p = progress_of(name_of(e.topic), e.partition);
              p.read_next = std::max(p.read_next, e.next_offset);
            } else if (e.kind == PartitionEvent::Kind::rewound) {
              hand_over();
              std::lock_guard<std::mutex> lock(source_mutex_);
              commits_.forget(std::string(e.topic), e.partition);
            } else if (e.kind == PartitionEvent::Kind::lost) {
              hand_over();
              HubNotice n;
              n.kind = HubNotice::Kind::lost;
              n.topic = std::string(e.topic);
              n.partition = e.partition;
              n.first = e.lost_from;
              n.last = e.next_offset - 1;
              subscriber_->notify(n);
            }
          });
      hand_over();
    }
  } catch (const std::exception& e) {
    {
      std::lock_guard<std::mutex> lock(source_mutex_);
      source_.reset();
    }
    HubNotice n;
    n.kind = HubNotice::Kind::error;
    n.error = ClientError::kafka_error;
    n.message = std::string("group '") + subscription_.group + "': " + e.what();
    subscriber_->notify(n);
    log_.warning(std::string("group session reader stopped: ") + e.what());
  }
  {
    // Leaving the group commits what the client's socket took (and nothing more).
    std::lock_guard<std::mutex> lock(source_mutex_);
    source_.reset();
  }
  subscriber_.reset();
  finished_ = true;
}

}  // namespace kws
