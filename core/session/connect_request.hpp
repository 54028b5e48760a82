#pragma once
// What a client asks for when it connects: the query of
// GET /v2/broker/?topics=...&group.id=...&offset=... and the subprotocol it
// offered, parsed without any transport. Every refusal is a reason in words,
// answered before the upgrade (400).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/hub/frame.hpp"
#include "core/hub/subscription.hpp"
#include "core/offset_spec.hpp"

namespace kws {

// The subprotocol that asks for the kws protocol (docs/PROTOCOL.md): kws's
// control and reply frames, messages as kafka-text envelopes.
inline constexpr std::string_view kKwsSubprotocol = "kws.v1";

struct ConnectRequest {
  std::vector<std::string> topics;
  std::string group;
  OffsetSpec start;
  std::string start_text = "latest";
  bool start_explicit = false;
  // resume=TOPIC:PARTITION:OFFSET,...: the last offset received per
  // partition of the query's topics (kws-only).
  ResumeByTopic resume;
  // filter=JSON: a server-side filter for the query's topics (kws-only).
  FilterPtr filter;
  // caught_up=1: a `caught_up` frame per topic once its history up to the
  // reply's end_offsets is through (kws-only).
  bool tell_caught_up = false;
  Encoding encoding = Encoding::kafka_text;
  std::string subprotocol;  // the one chosen; "" when the client offered none
  // The client asked for kws's protocol (a kws-only query parameter, or the
  // kws.v1 subprotocol): it gets replies and notices, not only messages.
  bool kws_protocol = false;
};

// `offset=` and a subscribe frame's "offset", in `kws tail -o` words plus
// kafka-websocket-friendly `latest` and `earliest`. Throws a usage kws::Error.
OffsetSpec parse_start(std::string_view text);

// Parses the query (without '?'); returns the reason on failure.
std::optional<std::string> parse_connect_query(std::string_view query, ConnectRequest& out);

// Picks the first subprotocol the client offered that kws speaks (the
// client's order is its preference); returns the reason when it offered only
// others. An empty offer means kafka-text.
std::optional<std::string> choose_subprotocol(const std::vector<std::string>& offered, ConnectRequest& out);

}  // namespace kws
