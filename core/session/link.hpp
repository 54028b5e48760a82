#pragma once
// The seam between a client session and its transport (Centrifugo's
// Transport): a session speaks its protocol through a Link and hears from
// it through LinkEvents, and knows nothing of sockets, WebSocket or TLS. A
// WebSocket connection is one Link (core/ws/connection.*); SSE or MQTT over
// TCP would be others, and the session layer stays as it is.
//
// Both interfaces are used on the link's I/O thread only.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/hub/frame.hpp"

namespace kws {

// One piece of what a session writes: a shared batch (written from the
// batch's own bytes, never copied per client) or bytes of its own.
struct OutItem {
  FrameBatchPtr batch;  // write batch->bytes(encoding)
  std::string bytes;    // when batch is null: complete frames
  // How the batch is written: one session may mix them (MQTT's two topic
  // mappings are two encodings).
  Encoding encoding = Encoding::kafka_text;
};

// Why a session ends its link; each transport says it its own way
// (WebSocket close codes: 1000, 1001, 1008, 1011, 1013).
enum class CloseReason {
  normal,           // the session is done (idle timeout)
  going_away,       // the bridge shuts down
  policy,           // the client broke a rule (too slow to read)
  try_again_later,  // the bridge is at a limit
  internal,         // the bridge failed
};

class Link {
 public:
  virtual ~Link() = default;
  // Hands everything in `items` to the socket in one gathered write, after
  // what it already holds; `items` is left empty with its capacity. A link
  // that frames packets (MQTT over WebSocket) makes the write one binary
  // message.
  virtual void write(std::vector<OutItem>& items) = 0;
  // Bytes handed over and not yet taken by the kernel.
  virtual size_t buffered() const = 0;
  // Ends the link after what was handed over, or instead of it with
  // `drop_pending` (a client too slow to read it).
  virtual void close(CloseReason reason, std::string_view why, bool drop_pending = false) = 0;
  // Stops reading the client's messages until resume_reading().
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
};

enum class MessageKind { text, binary };

class LinkEvents {
 public:
  virtual ~LinkEvents() = default;
  // One whole message from the client (fragments joined; text is UTF-8).
  virtual void on_message(MessageKind kind, std::string& payload) = 0;
  // The socket took everything handed over: the session may write more.
  virtual void on_drained() = 0;
  // Exactly once, when the link is gone for any reason; the Link must not
  // be used after it.
  virtual void on_closed() = 0;
};

}  // namespace kws
