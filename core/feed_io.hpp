#pragma once
// The seam between `kws ingest` and where its messages come from: a
// WebSocket feed (core/ws/client.hpp) or standard input (core/ingest/
// stdin_feed.hpp). core/ingest drives a FeedConnection and hears back
// through a FeedListener, so its logic is unit-tested with a fake feed.
#include <string>

namespace kws {

enum class FeedEnd {
  failed,        // the attempt never opened (refused, TLS, HTTP status, timeout)
  lost,          // an open connection ended (closed by the peer, ping timeout, asked to close)
  too_big,       // the peer sent a message over the size limit; that message is lost
  end_of_input,  // the source has nothing more (stdin's end); do not reconnect
};

// Why an attempt failed (FeedEnd::failed), as far as the feed can tell. The
// session ends a run whose feed never had a healthy connection at the first
// failure that retrying cannot fix (unless told to retry anyway); after a
// healthy connection every failure is retried, since the cause may pass.
enum class FeedFailure {
  transient,     // refused, reset, timed out, 5xx, 408, 429, closed: worth retrying
  no_such_host,  // the host name does not resolve
  http_refused,  // the feed answered the upgrade with a 4xx (but 408 and 429)
  tls_mismatch,  // wss:// to a plain port, or ws:// to a TLS port
  not_http,      // the answer is not HTTP: not a web server at all
  certificate,   // the feed's certificate does not verify (CA, name, dates)
};
inline bool is_permanent(FeedFailure f) { return f != FeedFailure::transient; }

// Called on the feed's own thread, never concurrently with each other.
class FeedListener {
 public:
  virtual ~FeedListener() = default;
  // The connection is open; messages may follow at once.
  virtual void on_feed_open() = 0;
  // One message. `payload` may be moved from.
  virtual void on_feed_message(std::string& payload, bool binary) = 0;
  // A message over the size limit was read and thrown away, and the
  // connection goes on: standard input, whose lines stand alone. (A WebSocket
  // connection cannot skip a frame; it ends with FeedEnd::too_big instead.)
  virtual void on_feed_too_big() = 0;
  // The attempt or the connection ended: exactly once per connect(), after
  // on_feed_open or instead of it. `cause` says more about a failed attempt.
  virtual void on_feed_closed(FeedEnd end, FeedFailure cause, const std::string& why) = 0;
  // Every end that is not a failed attempt, and failures worth retrying.
  void on_feed_closed(FeedEnd end, const std::string& why) { on_feed_closed(end, FeedFailure::transient, why); }
};

// All methods are thread-safe and return at once; the work happens on the
// feed's thread.
class FeedConnection {
 public:
  virtual ~FeedConnection() = default;
  // Starts one connection attempt. Call only when no connection is active
  // (before the first, or after on_feed_closed).
  virtual void connect() = 0;
  // Sends one text message on the open connection; dropped when none is open.
  virtual void send_text(const std::string& text) = 0;
  // Ends the open connection (or attempt), saying why; on_feed_closed follows.
  virtual void close(const std::string& why) = 0;
  // Stops reading so the peer's sends block (TCP pushes back) and resumes.
  // The state holds across reconnects. Protocol pings are not sent while
  // paused, since their answer could not be read.
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
};

}  // namespace kws
