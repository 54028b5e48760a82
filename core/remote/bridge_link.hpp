#pragma once
// The client side of the kws protocol (docs/PROTOCOL.md, "The WebSocket
// bridge"), as `kws tail ws://...` and `kws send ws://...` speak it: one
// connection to a kws serve bridge over a FeedConnection (core/ws/client.hpp
// makes the real one; tests can use a fake). No sockets and no websocketpp
// here.
//
// BridgeLink holds what both commands share: opening with a deadline,
// closing politely, and the frames' first look (message or control frame).
// The connection's thread calls the FeedListener methods; the command's
// thread waits in open/close and the subclasses' loops. One mutex guards
// all state; subclasses' frame handlers run under it.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include "core/feed_io.hpp"
#include "core/util/log.hpp"

namespace kws {

class BridgeLink : public FeedListener {
 public:
  // `where` names the bridge in messages (its URL); `log` outlives this.
  BridgeLink(std::string where, LogSink& log) : where_(std::move(where)), log_(log) {}

  // The connection to drive; set once, before open(). It must outlive this
  // object's use (destroy it first: its destructor stops its thread).
  void attach(FeedConnection& connection) { connection_ = &connection; }

  // Connects and waits until the WebSocket is open. Throws kws::Error (exit
  // 1) naming the bridge and the reason when it is refused, answers with an
  // HTTP status (its body included), or does not open within `timeout`.
  // Returns false when `stop` said so first.
  bool open(std::chrono::milliseconds timeout, const StopCheck& stop);

  // Sends a close frame (code 1001, `why`) and waits, at most `limit`, for
  // the connection to end. Harmless when it already ended.
  void close(const std::string& why, std::chrono::milliseconds limit = std::chrono::milliseconds(3000));

  // Whether the connection is open now (thread-safe).
  bool connected() {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_ == State::open;
  }

  // FeedListener, on the connection's thread.
  void on_feed_open() override;
  void on_feed_message(std::string& payload, bool binary) override;
  void on_feed_too_big() override {}
  void on_feed_closed(FeedEnd end, FeedFailure cause, const std::string& why) override;
  using FeedListener::on_feed_closed;

 protected:
  enum class State { idle, connecting, open, closed };

  // One frame from the bridge, under mutex_. The base wakes the waiters
  // after it.
  virtual void on_frame_locked(std::string& payload, bool binary) = 0;
  // The open connection ended (not by close()), under mutex_.
  virtual void on_lost_locked(const std::string& why) { (void)why; }

  // "error" frames in one shape: "the bridge refused: CODE: MESSAGE (topic T, id I)".
  static std::string describe_error_frame(const std::string& code, const std::string& message,
                                          const std::string& topic, const std::string& id);

  std::mutex mutex_;
  std::condition_variable changed_;
  State state_ = State::idle;
  bool closing_ = false;  // close() asked for the end
  std::string end_why_;   // why the connection ended, when it did
  std::string where_;
  LogSink& log_;
  FeedConnection* connection_ = nullptr;
};

}  // namespace kws
