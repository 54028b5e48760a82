#pragma once
// The kws protocol's reply and notice frames (docs/PROTOCOL.md), as JSON
// text: the one place that spells them. The transport frames the text
// (a WebSocket text frame today).
#include <cstdint>
#include <string>
#include <string_view>

#include "core/client_error.hpp"
#include "core/hub/hub.hpp"

namespace kws {

// `request_id` is the client's id as JSON text ("" when it gave none).
std::string notice_json(const HubNotice& notice);
std::string error_json(ClientError error, std::string_view message, std::string_view request_id = {},
                       std::string_view topic = {});
std::string ack_json(std::string_view request_id, std::string_view topic, int32_t partition, int64_t offset);
std::string dropped_json(uint64_t count);
// latest-per-key: this many queued messages were replaced by a newer one of
// their key since the last write.
std::string conflated_json(uint64_t count);
// The answer to an `auth` frame: the new token is in force; `expires` is its
// `exp` in seconds since the epoch (0: none).
std::string authenticated_json(std::string_view request_id, std::string_view subject, int64_t expires);

}  // namespace kws
