#pragma once
// The URL `kws tail ws://...` and `kws send ws://...` connect to: a kws
// serve bridge's /v2/broker/ with the query parameters the flags stand for
// (docs/PROTOCOL.md, "Connecting"). Pure text; no sockets.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kws {

// Whether a command's first argument names a bridge rather than a topic.
bool is_bridge_url(std::string_view text);

struct BridgeRequest {
  std::vector<std::string> topics;    // added as topics= (the URL must not have one then)
  std::optional<std::string> offset;  // added as offset= (the URL must not have one then)
  bool caught_up = false;             // added as caught_up=1 (kws tail -e)
};

struct BridgeTarget {
  std::string url;                  // what to connect to
  std::vector<std::string> topics;  // what it subscribes to (decoded), in order
  bool group = false;               // it has a group.id=
  bool filter = false;              // it has a filter=
};

// Checks `url` (ws:// or wss://, no fragment, a well-formed query) and adds
// `request`. An empty path or "/" becomes the bridge's /v2/broker/. Throws a
// usage kws::Error naming what is wrong.
BridgeTarget make_bridge_target(std::string_view url, const BridgeRequest& request);

// RFC 3986 percent-encoding of everything but the unreserved characters.
std::string percent_encode(std::string_view text);

}  // namespace kws
