#pragma once
// The fields of the bridge's control frames (docs/PROTOCOL.md, "Server →
// client") that kws tail and kws send read, parsed once.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kws {

struct ControlFrame {
  std::string type;  // "" when the frame is no JSON object with a string "type"
  std::string topic;
  std::string code;     // error
  std::string message;  // error, kafka
  std::string id;       // as text: a string id as it is, a number in decimal; "" when absent
  bool has_id = false;
  bool id_is_number = false;
  uint64_t number_id = 0;                           // when id_is_number and it is a non-negative integer
  int32_t partition = -1;                           // ack, lost
  int64_t offset = -1;                              // ack
  int64_t from = -1, to = -1;                       // lost
  int64_t count = 0;                                // dropped
  bool reachable = true;                            // kafka
  std::vector<int64_t> start_offsets, end_offsets;  // subscribed
};

// Whether a text frame is a JSON object with a "type": a control frame, not
// a message (an envelope never has one).
bool frame_has_type(std::string_view payload);

ControlFrame parse_control_frame(std::string_view payload);

}  // namespace kws
