#include "core/hub/group_reader.hpp"

#include <chrono>
#include <vector>

namespace kws {

GroupReader::GroupReader(std::function<std::unique_ptr<MessageSource>()> open, std::shared_ptr<Subscriber> subscriber,
                         std::function<size_t()> backlog, size_t high_water, LogSink& log)
    : open_(std::move(open)),
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

void GroupReader::run() {
  try {
    std::unique_ptr<MessageSource> source = open_();
    std::vector<FramePtr> frames;
    while (!stopping_) {
      if (backlog_() > high_water_) {
        // Not polling lets librdkafka's bounded fetch queue fill and stop
        // fetching: the group's partitions wait for this client.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      frames.clear();
      source->poll_batch(std::chrono::milliseconds(100), 1000,
                         [&](const MessageView& m) {
                           frames.push_back(encode_frame(m));
                           return true;
                         },
                         nullptr);
      for (const auto& b : make_batches(frames, 64 << 10)) subscriber_->deliver(b);
    }
  } catch (const std::exception& e) {
    subscriber_->reply(error_reply("kafka_error", std::string("group reader stopped: ") + e.what(), ""));
    log_.warning(std::string("group session reader stopped: ") + e.what());
  }
  subscriber_.reset();
  finished_ = true;
}

}  // namespace kws
